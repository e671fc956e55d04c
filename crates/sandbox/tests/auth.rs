//! Tokens and Azure RBAC: the walled garden is enforced the way Azure enforces it.

mod common;

use paddock_sandbox::Sandbox;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn form(s: &Sandbox, tenant: &str, body: &str) -> (StatusCode, Value) {
    common::post_token(s, tenant, body).await
}

#[tokio::test]
async fn the_token_endpoint_refuses_like_entra() {
    let (_dir, s) = common::start().await;
    let tenant = s.identity.tenant_id.clone();
    let p = &s.platform;
    let scope = "scope=https%3A%2F%2Fmanagement.azure.com%2F.default";
    let cases = [
        (
            "not-our-tenant".to_owned(),
            format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&{scope}",
                p.client_id, p.client_secret
            ),
            StatusCode::BAD_REQUEST,
            90002,
        ),
        (
            tenant.clone(),
            format!(
                "grant_type=client_credentials&client_id=00000000-0000-0000-0000-000000000000&client_secret=x&{scope}"
            ),
            StatusCode::BAD_REQUEST,
            700016,
        ),
        (
            tenant.clone(),
            format!(
                "grant_type=client_credentials&client_id={}&client_secret=wrong&{scope}",
                p.client_id
            ),
            StatusCode::UNAUTHORIZED,
            7000215,
        ),
        (
            tenant.clone(),
            format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com",
                p.client_id, p.client_secret
            ),
            StatusCode::BAD_REQUEST,
            1002012,
        ),
    ];
    for (tenant, body, status, code) in cases {
        let (got, err) = form(&s, &tenant, &body).await;
        assert_eq!(
            (got, err["error_codes"][0].as_u64()),
            (status, Some(code)),
            "{err}"
        );
        assert!(
            err["error_description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("AADSTS{code}: "))
        );
    }
    let (status, ok) = form(
        &s,
        &tenant,
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&{scope}",
            p.client_id, p.client_secret
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ok["token_type"], "Bearer");

    // MSAL-style discovery, and keys that verify what the endpoint issues.
    let discovery: Value = reqwest::get(format!(
        "{}/{tenant}/v2.0/.well-known/openid-configuration",
        s.base_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/token", s.base_url)
    );
    let keys: Value = reqwest::get(discovery["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = ok["access_token"].as_str().unwrap();
    let header: Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(keys["keys"][0]["kid"], header["kid"]);
    assert_eq!(header["alg"], "RS256");
    s.stop().await;
}

#[tokio::test]
async fn arm_requires_a_valid_token_for_its_audience() {
    let (_dir, s) = common::start().await;
    let url = format!(
        "{}/subscriptions/{}/resourcegroups?api-version=2024-11-01",
        s.base_url, s.identity.subscription_id
    );
    let graph_token = {
        let p = &s.platform;
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
            p.client_id, p.client_secret
        );
        form(&s, &s.identity.tenant_id, &body).await.1["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let cases = [
        (None, "AuthenticationFailed"),
        (
            Some("Bearer not.a.token".to_owned()),
            "InvalidAuthenticationToken",
        ),
        (
            Some(format!("Bearer {graph_token}")),
            "InvalidAuthenticationTokenAudience",
        ),
    ];
    for (authorization, code) in cases {
        let mut request = reqwest::Client::new().get(&url);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(&format!(
                "Bearer authorization_uri=\"{}/{}\"",
                s.base_url, s.identity.tenant_id
            )),
            "{challenge}"
        );
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], code);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_contributor_on_one_group_can_touch_nothing_else() {
    let (_dir, s) = common::start().await;
    let platform = common::platform_client(&s).await;
    let groups = format!(
        "{}/subscriptions/{}/resourcegroups",
        s.base_url, s.identity.subscription_id
    );
    let v = "api-version=2024-11-01";
    for name in ["rg-team-a", "rg-team-b"] {
        let r = platform
            .put(format!("{groups}/{name}?{v}"))
            .json(&json!({"location": "westeurope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let team_a = common::register(&s, "team-a-dev").await;
    let assignment = format!(
        "{groups}/rg-team-a/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
        paddock_sandbox::uuid_v4()
    );
    let grant = json!({"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c", "principalId": team_a.object_id, "principalType": "ServicePrincipal"}});
    assert_eq!(
        platform
            .put(&assignment)
            .json(&grant)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );

    let a = common::client_as(&s, &team_a).await;
    let own = a
        .put(format!("{groups}/rg-team-a?{v}"))
        .json(&json!({"location": "westeurope", "tags": {"owner": "team-a"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.status(),
        StatusCode::OK,
        "Contributor may change its own group"
    );
    let denied = [
        (
            a.get(format!("{groups}/rg-team-b?{v}")),
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ),
        (
            a.put(format!("{groups}/rg-new?{v}"))
                .json(&json!({"location": "westeurope"})),
            "Microsoft.Resources/subscriptions/resourceGroups/write",
        ),
        (
            a.get(format!("{groups}?{v}")),
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ),
        (
            a.put(assignment.replace(
                &assignment[assignment.rfind('/').unwrap() + 1..assignment.find('?').unwrap()],
                &paddock_sandbox::uuid_v4(),
            ))
            .json(&grant),
            "Microsoft.Authorization/roleAssignments/write",
        ),
    ];
    for (request, action) in denied {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["error"]["code"], "AuthorizationFailed");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("with object id '{}'", team_a.object_id))
                && message.contains(&format!("perform action '{action}'")),
            "{message}"
        );
    }
    s.stop().await;
}
