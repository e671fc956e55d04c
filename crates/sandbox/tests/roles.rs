//! Role assignments: what ARM refuses, and what goes away with a resource group.

mod common;

use std::time::Duration;

use paddock_sandbox::ArmConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = c.request(method, url);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_role_assignments_are_refused_and_a_deleted_group_takes_its_assignments_along() {
    let (_dir, s) = common::start_with(|config| {
        config.arm = ArmConfig {
            delete_delay: Duration::from_millis(100),
            ..ArmConfig::default()
        };
    })
    .await;
    let c = common::platform_client(&s).await;
    let sub = &s.identity.subscription_id;
    let rg = format!("{}/subscriptions/{sub}/resourcegroups/rg-team", s.base_url);
    use reqwest::Method;
    send(
        &c,
        Method::PUT,
        &format!("{rg}?api-version=2024-11-01"),
        Some(json!({"location": "westeurope"})),
    )
    .await;
    let assign = |name: &str| {
        format!(
            "{rg}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
        )
    };
    let good = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"), "principalId": "6f1c1e0a-58b5-4c5e-9a43-2c3e1f2b9d10", "principalType": "ServicePrincipal"}});
    let name = "0b8e3c52-8d1e-4f3a-9a57-3f6c2a1d5e77";

    let refused = [
        (
            assign("not-a-guid"),
            good.clone(),
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentId",
        ),
        (
            assign(name),
            json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000000", "principalId": "6f1c1e0a-58b5-4c5e-9a43-2c3e1f2b9d10"}}),
            StatusCode::BAD_REQUEST,
            "RoleDefinitionDoesNotExist",
        ),
        (
            assign(name),
            json!({"properties": {"roleDefinitionId": CONTRIBUTOR, "principalId": "alice"}}),
            StatusCode::BAD_REQUEST,
            "InvalidPrincipalId",
        ),
        (
            format!(
                "{}/subscriptions/{sub}/resourcegroups/nope/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01",
                s.base_url
            ),
            good.clone(),
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
        ),
        (
            assign(name).replace("2022-04-01", "2024-11-01"),
            good.clone(),
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
        ),
    ];
    for (url, body, status, code) in refused {
        let (got, err) = send(&c, Method::PUT, &url, Some(body)).await;
        assert_eq!(
            (got, err["error"]["code"].as_str()),
            (status, Some(code)),
            "{url}: {err}"
        );
    }
    let (status, _) = send(&c, Method::PUT, &assign(name), Some(good.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let changed = json!({"properties": {"roleDefinitionId": "acdd72a7-3c35-4c8d-ab8b-9ca3bf74b8e7", "principalId": "6f1c1e0a-58b5-4c5e-9a43-2c3e1f2b9d10"}});
    let (status, err) = send(&c, Method::PUT, &assign(name), Some(changed)).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("RoleAssignmentUpdateNotPermitted")
        )
    );

    // The assignment is visible from the subscription, filtered by principal.
    let list = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20'6f1c1e0a-58b5-4c5e-9a43-2c3e1f2b9d10'",
        s.base_url
    );
    assert_eq!(
        send(&c, Method::GET, &list, None).await.1["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let at_scope = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()",
        s.base_url
    );
    let at_subscription = send(&c, Method::GET, &at_scope, None).await.1;
    assert_eq!(
        at_subscription["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["properties"]["principalId"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [s.platform.object_id.as_str()],
        "only the platform's Owner is at or above the subscription"
    );

    send(
        &c,
        Method::DELETE,
        &format!("{rg}?api-version=2024-11-01"),
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        send(
            &c,
            Method::GET,
            &format!("{rg}?api-version=2024-11-01"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert!(
        send(&c, Method::GET, &list, None).await.1["value"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the group's assignments went with it"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_new_principal_is_not_found_until_replicated_unless_its_type_is_given() {
    let (_dir, s) = common::start_with(|config| {
        config.arm = ArmConfig {
            principal_replication_delay: Duration::from_millis(500),
            ..ArmConfig::default()
        };
    })
    .await;
    let c = common::platform_client(&s).await;
    let fresh = common::register(&s, "just-created").await;
    let scope = format!(
        "{}/subscriptions/{}",
        s.base_url, s.identity.subscription_id
    );
    let assign = || {
        format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
            paddock_sandbox::uuid_v4()
        )
    };
    let body = |role: &str, typed: bool| {
        let mut b = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"), "principalId": fresh.object_id}});
        if typed {
            b["properties"]["principalType"] = json!("ServicePrincipal");
        }
        b
    };
    use reqwest::Method;
    let (status, err) = send(&c, Method::PUT, &assign(), Some(body(CONTRIBUTOR, false))).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("PrincipalNotFound"))
    );
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("replication delay")
    );
    let (status, _) = send(&c, Method::PUT, &assign(), Some(body(CONTRIBUTOR, true))).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "with principalType the lookup is skipped"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _) = send(
        &c,
        Method::PUT,
        &assign(),
        Some(body("acdd72a7-3c35-4c8d-ab8b-9ca3bf74b8e7", false)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "once replicated, found");
    let unknown = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"), "principalId": paddock_sandbox::uuid_v4()}});
    assert_eq!(
        send(&c, Method::PUT, &assign(), Some(unknown)).await.1["error"]["code"],
        "PrincipalNotFound"
    );
    s.stop().await;
}
