//! The subscriptions and tenants a caller can see (`GET /subscriptions`,
//! `GET /subscriptions/{id}`, `GET /tenants`): what `az login` lists to pick an account
//! from, and what `az account show` shows. The sandbox has one tenant and one subscription;
//! a caller sees the subscription when one of its roles is assigned there or below, as in
//! Azure.

use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use super::{Arm, ArmError, ArmResult, Caller, api_version, json_response};

/// The api-versions of `Microsoft.Resources` subscriptions (`SubscriptionClient`).
pub const SUBSCRIPTIONS_API_VERSIONS: &[&str] = &[
    "2022-12-01",
    "2021-01-01",
    "2020-01-01",
    "2019-11-01",
    "2019-06-01",
    "2018-06-01",
    "2016-06-01",
];

/// The display name of the sandbox's subscription and tenant.
const DISPLAY_NAME: &str = "Paddock sandbox";

pub(super) fn subscription_not_found(id: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "SubscriptionNotFound",
        format!("The subscription '{id}' could not be found."),
    )
}

impl Arm {
    /// `GET /subscriptions`, `GET /subscriptions/{id}` and `GET /tenants`.
    pub(super) async fn subscriptions(
        &self,
        uri: &Uri,
        caller: &Caller,
        segments: &[&str],
    ) -> ArmResult {
        api_version(uri, SUBSCRIPTIONS_API_VERSIONS)?;
        let visible = self.visible_to(caller).await?;
        let body = match segments {
            [tenants] if tenants.eq_ignore_ascii_case("tenants") => {
                json!({ "value": [self.tenant()] })
            }
            [_] => {
                let value: Vec<Value> = visible.then(|| self.subscription()).into_iter().collect();
                json!({ "value": value })
            }
            [_, id] if visible && id.eq_ignore_ascii_case(&self.identity.subscription_id) => {
                self.subscription()
            }
            [_, id] => return Err(subscription_not_found(id)),
            _ => return Err(super::no_route(uri)),
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    /// Whether the caller holds a role anywhere in the subscription.
    async fn visible_to(&self, caller: &Caller) -> Result<bool, ArmError> {
        let scope = format!("/subscriptions/{}", self.identity.subscription_id);
        self.assigned_within(&caller.object_id, &scope).await
    }

    fn subscription(&self) -> Value {
        let id = &self.identity.subscription_id;
        json!({
            "id": format!("/subscriptions/{id}"),
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": id,
            "tenantId": self.identity.tenant_id,
            "displayName": DISPLAY_NAME,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        })
    }

    fn tenant(&self) -> Value {
        let id = &self.identity.tenant_id;
        json!({
            "id": format!("/tenants/{id}"),
            "tenantId": id,
            "tenantCategory": "Home",
            "displayName": DISPLAY_NAME,
            "domains": [crate::graph::USER_DOMAIN],
            "defaultDomain": crate::graph::USER_DOMAIN,
            "tenantType": "AAD",
        })
    }
}
