//! Management locks as ARM enforces them: over every principal's permissions, on the
//! locked scope and everything below it; and who may place or lift one.

mod common;

use std::time::Duration;

use paddock_sandbox::ArmConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

async fn send(
    c: &reqwest::Client,
    method: Method,
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
async fn a_locked_group_refuses_deletes_from_everyone_and_only_owners_lift_the_lock() {
    let (_dir, s) = common::start_with(|config| {
        config.arm = ArmConfig {
            delete_delay: Duration::from_millis(100),
            principal_replication_delay: Duration::ZERO,
            ..ArmConfig::default()
        };
    })
    .await;
    let owner = common::platform_client(&s).await;
    let sub = &s.identity.subscription_id;
    let group_path = format!("/subscriptions/{sub}/resourceGroups/rg-team");
    let group = format!("{}{group_path}?api-version=2024-11-01", s.base_url);
    let lock_path = format!("{group_path}/providers/Microsoft.Authorization/locks/no-delete");
    let lock = format!("{}{lock_path}?api-version=2016-09-01", s.base_url);
    send(
        &owner,
        Method::PUT,
        &group,
        Some(json!({"location": "westeurope"})),
    )
    .await;

    // A deployer: Contributor on the group, as Paddock makes a stage's identity.
    let deployer = common::register(&s, "deployer").await;
    let assignment = format!(
        "{}{group_path}/providers/Microsoft.Authorization/roleAssignments/0b8e3c52-8d1e-4f3a-9a57-3f6c2a1d5e77?api-version=2022-04-01",
        s.base_url
    );
    let (status, body) = send(
        &owner,
        Method::PUT,
        &assignment,
        Some(json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"),
            "principalId": deployer.object_id, "principalType": "ServicePrincipal"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let contributor = common::client_as(&s, &deployer).await;

    // Placing a lock is an RBAC action Contributor lacks.
    let no_delete = json!({"properties": {"level": "CanNotDelete", "notes": "Paddock's"}});
    let (status, denied) = send(&contributor, Method::PUT, &lock, Some(no_delete.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert_eq!(denied["error"]["code"], "AuthorizationFailed");
    assert!(
        denied["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "'Microsoft.Authorization/locks/write' over scope '{lock_path}'"
            )),
        "{denied}"
    );
    let (status, body) = send(&owner, Method::PUT, &lock, Some(no_delete)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The lock holds against its own creator too, and against a delete of the group or
    // of anything in it; reads and writes go on.
    for (who, client) in [("owner", &owner), ("contributor", &contributor)] {
        let (status, refused) = send(client, Method::DELETE, &group, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{who}: {refused}");
        assert_eq!(refused["error"]["code"], "ScopeLocked");
        assert_eq!(
            refused["error"]["message"],
            format!(
                "The scope '{group_path}' cannot perform delete operation because following scope(s) are locked: '{group_path}'. Please remove the lock and try again."
            )
        );
    }
    let (status, refused) = send(&owner, Method::DELETE, &assignment, None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("ScopeLocked")),
        "a role assignment under a locked group stays"
    );
    let (status, _) = send(
        &contributor,
        Method::PATCH,
        &group,
        Some(json!({"tags": {"deployedBy": "workflow"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "CanNotDelete lets writes through");

    // Lifting it is RBAC's question too.
    let (status, denied) = send(&contributor, Method::DELETE, &lock, None).await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("AuthorizationFailed"))
    );
    let (status, listed) = send(
        &contributor,
        Method::GET,
        &format!(
            "{}{group_path}/providers/Microsoft.Authorization/locks?api-version=2020-05-01",
            s.base_url
        ),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "Contributor may read locks");
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);

    // ReadOnly refuses writes as well.
    let (status, _) = send(
        &owner,
        Method::PUT,
        &lock,
        Some(json!({"properties": {"level": "ReadOnly"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = send(
        &contributor,
        Method::PATCH,
        &group,
        Some(json!({"tags": {"deployedBy": "again"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot perform write operation"),
        "{refused}"
    );

    // Once the owner lifts the lock, the group goes, and its locks with it.
    let (status, _) = send(&owner, Method::DELETE, &lock, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&owner, Method::DELETE, &group, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_subscription_lock_covers_every_group_and_bad_locks_are_refused() {
    let (_dir, s) = common::start().await;
    let owner = common::platform_client(&s).await;
    let sub = &s.identity.subscription_id;
    let group = format!(
        "{}/subscriptions/{sub}/resourceGroups/rg-any?api-version=2024-11-01",
        s.base_url
    );
    send(
        &owner,
        Method::PUT,
        &group,
        Some(json!({"location": "westeurope"})),
    )
    .await;
    let lock = |name: &str, version: &str| {
        format!(
            "{}/subscriptions/{sub}/providers/Microsoft.Authorization/locks/{name}?api-version={version}",
            s.base_url
        )
    };
    let body = json!({"properties": {"level": "CanNotDelete"}});
    let (status, _) = send(
        &owner,
        Method::PUT,
        &lock("freeze", "2020-05-01"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refused) = send(&owner, Method::DELETE, &group, None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("ScopeLocked"))
    );

    let (status, bad) = send(
        &owner,
        Method::PUT,
        &lock("a:b", "2020-05-01"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, bad) = send(
        &owner,
        Method::PUT,
        &lock("x", "2020-05-01"),
        Some(json!({"properties": {"notes": "no level"}})),
    )
    .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidRequestContent"))
    );
    let (status, bad) = send(&owner, Method::PUT, &lock("x", "2022-04-01"), Some(body)).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidApiVersionParameter")),
        "locks have their own api-versions"
    );
}
