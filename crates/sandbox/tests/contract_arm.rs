//! Contract tests: every ARM operation the sandbox implements, exercised, its requests and
//! responses validated against the official description (`specs/arm`, cut from
//! Azure/azure-rest-api-specs).

mod common;

use std::time::Duration;

use common::contract::Contract;
use common::swagger::Spec;
use paddock_sandbox::ArmConfig;
use serde_json::json;

#[tokio::test]
async fn resource_group_operations_match_the_official_description() {
    let (_dir, sandbox) = common::start_with(|config| {
        config.arm = ArmConfig {
            delete_delay: Duration::from_millis(200),
            page_size: 2,
            ..ArmConfig::default()
        };
    })
    .await;
    let mut c = Contract::new(
        common::platform_client(&sandbox).await,
        Spec::load("arm/resources-2024-11-01.json"),
        sandbox.base_url.clone(),
    );
    c.query = "api-version=2024-11-01".into();
    let sub = &sandbox.identity.subscription_id;
    let group = |name: &str| format!("/subscriptions/{sub}/resourcegroups/{name}");
    use reqwest::Method;

    let (status, _, _) = c
        .call(
            "ResourceGroups_CreateOrUpdate",
            Method::PUT,
            &group("rg-a"),
            Some(json!({"location": "westeurope", "tags": {"team": "payments"}})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _, _) = c
        .call(
            "ResourceGroups_CreateOrUpdate",
            Method::PUT,
            &group("rg-a"),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(status, 200);
    for name in ["rg-b", "rg-c"] {
        c.call(
            "ResourceGroups_CreateOrUpdate",
            Method::PUT,
            &group(name),
            Some(json!({"location": "eastus"})),
        )
        .await;
    }
    // Errors, in ARM's error shape (the `default` response).
    let (status, _, _) = c
        .call(
            "ResourceGroups_CreateOrUpdate",
            Method::PUT,
            &group("bad name!"),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = c
        .call("ResourceGroups_Get", Method::GET, &group("missing"), None)
        .await;
    assert_eq!(status, 404);

    let (status, body, _) = c
        .call("ResourceGroups_Get", Method::GET, &group("rg-a"), None)
        .await;
    assert_eq!((status, body["name"].as_str()), (200, Some("rg-a")));
    assert_eq!(
        c.call(
            "ResourceGroups_CheckExistence",
            Method::HEAD,
            &group("rg-a"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        c.call(
            "ResourceGroups_CheckExistence",
            Method::HEAD,
            &group("missing"),
            None
        )
        .await
        .0,
        404
    );
    let (status, body, _) = c
        .call(
            "ResourceGroups_Update",
            Method::PATCH,
            &group("rg-a"),
            Some(json!({"tags": {"stage": "dev"}})),
        )
        .await;
    assert_eq!((status, &body["tags"]), (200, &json!({"stage": "dev"})));
    let (status, page, _) = c
        .call(
            "ResourceGroups_List",
            Method::GET,
            &format!("/subscriptions/{sub}/resourcegroups"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(page["nextLink"].is_string(), "paged: {page}");

    let (status, _, headers) = c
        .call(
            "ResourceGroups_Delete",
            Method::DELETE,
            &group("rg-c"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert!(headers.contains_key("location"));

    let seen = c.seen.borrow().iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        seen,
        c.spec.operation_ids(),
        "every operation of the description is exercised"
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn role_operations_match_the_official_description() {
    let (_dir, sandbox) = common::start().await;
    let sub = sandbox.identity.subscription_id.clone();
    let http = common::platform_client(&sandbox).await;
    http.put(format!(
        "{}/subscriptions/{sub}/resourcegroups/rg-a?api-version=2024-11-01",
        sandbox.base_url
    ))
    .json(&json!({"location": "westeurope"}))
    .send()
    .await
    .unwrap();
    let mut c = Contract::new(
        http,
        Spec::load("arm/authorization-2022-04-01.json"),
        sandbox.base_url.clone(),
    );
    c.query = "api-version=2022-04-01".into();
    use reqwest::Method;
    let rg = format!("/subscriptions/{sub}/resourceGroups/rg-a");
    let contributor = format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
    );
    let principal = "6f1c1e0a-58b5-4c5e-9a43-2c3e1f2b9d10";
    let assignment = format!(
        "{rg}/providers/Microsoft.Authorization/roleAssignments/0b8e3c52-8d1e-4f3a-9a57-3f6c2a1d5e77"
    );

    let (status, body, _) = c
        .call(
            "RoleDefinitions_List",
            Method::GET,
            &format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["properties"]["roleName"] == "Contributor")
    );
    let (status, body, _) = c
        .call("RoleDefinitions_Get", Method::GET, &contributor, None)
        .await;
    assert_eq!(
        (status, body["properties"]["roleName"].as_str()),
        (200, Some("Contributor"))
    );

    let create = json!({"properties": {"roleDefinitionId": contributor, "principalId": principal, "principalType": "ServicePrincipal"}});
    let (status, body, _) = c
        .call(
            "RoleAssignments_Create",
            Method::PUT,
            &assignment,
            Some(create.clone()),
        )
        .await;
    assert_eq!(
        (status, body["properties"]["scope"].as_str()),
        (201, Some(rg.as_str()))
    );
    assert_eq!(
        c.call(
            "RoleAssignments_Create",
            Method::PUT,
            &assignment,
            Some(create.clone())
        )
        .await
        .0,
        200,
        "the same assignment again"
    );
    let other_name = format!(
        "{rg}/providers/Microsoft.Authorization/roleAssignments/9a0d5b7e-1c2f-4e3d-8b4a-5c6d7e8f9a0b"
    );
    let (status, body, _) = c
        .call(
            "RoleAssignments_Create",
            Method::PUT,
            &other_name,
            Some(create),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("RoleAssignmentExists"))
    );
    let (status, _, _) = c
        .call("RoleAssignments_Get", Method::GET, &assignment, None)
        .await;
    assert_eq!(status, 200);

    let at = |scope: &str| format!("{scope}/providers/Microsoft.Authorization/roleAssignments");
    let (_, by_scope, _) = c
        .call("RoleAssignments_ListForScope", Method::GET, &at(&rg), None)
        .await;
    let (_, by_group, _) = c
        .call(
            "RoleAssignments_ListForResourceGroup",
            Method::GET,
            &at(&rg),
            None,
        )
        .await;
    let (_, by_sub, _) = c
        .call(
            "RoleAssignments_ListForSubscription",
            Method::GET,
            &at(&format!("/subscriptions/{sub}")),
            None,
        )
        .await;
    // Each list holds the new assignment and the platform's Owner on the subscription.
    for list in [&by_scope, &by_group, &by_sub] {
        let principals: Vec<&str> = list["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["properties"]["principalId"].as_str())
            .collect();
        assert_eq!(principals.len(), 2, "{list}");
        assert!(
            principals.contains(&principal)
                && principals.contains(&sandbox.platform.object_id.as_str())
        );
    }

    let (status, _, _) = c
        .call("RoleAssignments_Delete", Method::DELETE, &assignment, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        c.call("RoleAssignments_Delete", Method::DELETE, &assignment, None)
            .await
            .0,
        204,
        "already gone"
    );
    let (status, body, _) = c
        .call("RoleAssignments_Get", Method::GET, &assignment, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("RoleAssignmentNotFound"))
    );

    let seen = c.seen.borrow().iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        seen,
        c.spec.operation_ids(),
        "every operation of the description is exercised"
    );
    sandbox.stop().await;
}

#[tokio::test]
async fn lock_operations_match_the_official_description() {
    let (_dir, sandbox) = common::start().await;
    let sub = sandbox.identity.subscription_id.clone();
    let http = common::platform_client(&sandbox).await;
    for group in ["rg-a", "rg-b"] {
        http.put(format!(
            "{}/subscriptions/{sub}/resourcegroups/{group}?api-version=2024-11-01",
            sandbox.base_url
        ))
        .json(&json!({"location": "westeurope"}))
        .send()
        .await
        .unwrap();
    }
    let mut c = Contract::new(
        http,
        Spec::load("arm/locks-2020-05-01.json"),
        sandbox.base_url.clone(),
    );
    c.query = "api-version=2020-05-01".into();
    use reqwest::Method;
    let rg = format!("/subscriptions/{sub}/resourceGroups/rg-a");
    let lock = format!("{rg}/providers/Microsoft.Authorization/locks/paddock-no-delete");
    let create = json!({"properties": {"level": "CanNotDelete", "notes": "Paddock removes it before it destroys the stage."}});

    let (status, body, _) = c
        .call(
            "ManagementLocks_CreateOrUpdateAtResourceGroupLevel",
            Method::PUT,
            &lock,
            Some(create),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], lock.as_str());
    assert_eq!(body["type"], "Microsoft.Authorization/locks");
    let (status, body, _) = c
        .call(
            "ManagementLocks_CreateOrUpdateAtResourceGroupLevel",
            Method::PUT,
            &lock,
            Some(json!({"properties": {"level": "ReadOnly"}})),
        )
        .await;
    assert_eq!(
        (status, &body["properties"]),
        (200, &json!({"level": "ReadOnly"})),
        "a lock's level and notes change in place"
    );
    let (status, body, _) = c
        .call(
            "ManagementLocks_CreateOrUpdateAtResourceGroupLevel",
            Method::PUT,
            &format!("{rg}/providers/Microsoft.Authorization/locks/broken"),
            Some(json!({"properties": {"level": "NotSpecified"}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("InvalidRequestContent"))
    );
    let (status, body, _) = c
        .call(
            "ManagementLocks_GetAtResourceGroupLevel",
            Method::GET,
            &lock,
            None,
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (200, Some("paddock-no-delete"))
    );
    let (status, body, _) = c
        .call(
            "ManagementLocks_ListAtResourceGroupLevel",
            Method::GET,
            &format!("{rg}/providers/Microsoft.Authorization/locks"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"].as_array().unwrap().len(), 1, "{body}");
    let (_, other, _) = c
        .call(
            "ManagementLocks_ListAtResourceGroupLevel",
            Method::GET,
            &format!(
                "/subscriptions/{sub}/resourceGroups/rg-b/providers/Microsoft.Authorization/locks"
            ),
            None,
        )
        .await;
    assert_eq!(
        other["value"],
        json!([]),
        "another group's locks are its own"
    );

    let (status, _, _) = c
        .call(
            "ManagementLocks_DeleteAtResourceGroupLevel",
            Method::DELETE,
            &lock,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = c
        .call(
            "ManagementLocks_DeleteAtResourceGroupLevel",
            Method::DELETE,
            &lock,
            None,
        )
        .await;
    assert_eq!(status, 204, "already gone");
    let (status, body, _) = c
        .call(
            "ManagementLocks_GetAtResourceGroupLevel",
            Method::GET,
            &lock,
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("LockNotFound"))
    );

    let seen = c.seen.borrow().iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        seen,
        c.spec.operation_ids(),
        "every operation of the description is exercised"
    );
    sandbox.stop().await;
}
