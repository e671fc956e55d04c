//! The Azure provider against the sandbox's Azure Resource Manager: resource groups, role
//! assignments and management locks through the provider contract, as the engine drives
//! them.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_engine::{Props, Provider, ProviderError, Value};
use paddock_providers::azure::{AzureConfig, provider};
use paddock_providers::family::Family;
use paddock_providers::http::auth::{EntraSecret, EntraSignIn};
use paddock_providers::http::form_encode;
use paddock_sandbox::Sandbox;
use serde_json::{Value as Json, json};

const GROUP: &str = "azure:resourceGroup";
const ASSIGNMENT: &str = "azure:roleAssignment";
const LOCK: &str = "azure:managementLock";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const READER: &str = "acdd72a7-3c35-4c8d-ab8b-9ca3bf74b8e7";

fn azure(s: &Sandbox) -> Family {
    provider(&common::azure(s)).unwrap()
}

/// A new application with a service principal: `{clientId, clientSecret, objectId}`.
async fn principal(s: &Sandbox, name: &str) -> Json {
    let reply = reqwest::Client::new()
        .post(format!("{}/principals", s.control_url))
        .json(&json!({ "displayName": name }))
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
    reply.json().await.unwrap()
}

/// An ARM token for an application, from the sandbox's Entra token endpoint (client
/// credentials).
async fn arm_token(s: &Sandbox, client_id: &str, secret: &str) -> String {
    let reply: Json = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            s.base_url, s.identity.tenant_id
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_encode(&[
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.to_owned()),
            ("client_secret", secret.to_owned()),
            ("scope", "https://management.azure.com/.default".to_owned()),
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {reply}"))
        .to_owned()
}

/// A raw ARM request with a bearer token: (status, body).
async fn arm(
    s: &Sandbox,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Json>,
) -> (u16, Json) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", s.base_url))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Json::Null))
}

/// The Azure provider signed in as another application.
fn azure_as(s: &Sandbox, app: &Json) -> Family {
    let sign_in = EntraSignIn::new(
        &s.base_url,
        &s.identity.tenant_id,
        app["clientId"].as_str().unwrap(),
        EntraSecret::ClientSecret(app["clientSecret"].as_str().unwrap().to_owned()),
    );
    provider(&AzureConfig {
        sign_in: Arc::new(sign_in),
        ..common::azure(s)
    })
    .unwrap()
}

async fn groups(s: &Sandbox) -> Vec<Json> {
    common::inspect(s).await["arm"]["resourceGroup"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The role assignments the sandbox holds at `scope`.
async fn assignments_at(s: &Sandbox, scope: &str) -> Vec<Json> {
    common::inspect(s).await["arm"]["roleAssignment"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| {
            a["properties"]["scope"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(scope))
        })
        .collect()
}

fn text<'a>(props: &'a Props, key: &str) -> &'a str {
    props
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`{key}` in {props:?}"))
}

async fn group(p: &Family, name: &str) -> String {
    common::create(p, GROUP, json!({ "name": name, "location": "westeurope" }))
        .await
        .0
}

async fn create_err(p: &Family, ty: &str, inputs: Json) -> ProviderError {
    let urn = format!("urn:test:{ty}");
    p.create(common::resource(ty, &urn), &common::props(inputs))
        .await
        .map(|c| c.id)
        .expect_err("the create must fail")
}

#[tokio::test]
async fn a_resource_group_is_created_read_updated_imported_and_deleted_for_good() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let sub = &s.identity.subscription_id;
    let inputs = json!({"name": "rg-team-a", "location": "westeurope", "tags": {"team": "a"}});
    let (id, outputs) = common::create(&p, GROUP, inputs.clone()).await;
    assert_eq!(id, format!("/subscriptions/{sub}/resourceGroups/rg-team-a"));
    assert_eq!(text(&outputs, "resourceGroupId"), id);
    assert_eq!(text(&outputs, "name"), "rg-team-a");
    assert_eq!(text(&outputs, "location"), "westeurope");
    let held = groups(&s).await;
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0]["tags"],
        json!({"team": "a", "paddock-stack": "urn", "paddock-creation-token": "token-1"}),
        "the user's tags and Paddock's mark"
    );

    // Read with the inputs: nothing drifted.
    let read = p
        .read(GROUP, &id, &common::props(inputs.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.inputs.unwrap(), common::props(inputs.clone()));
    assert_eq!(read.outputs, outputs);

    // Tags change in place.
    let news = json!({"name": "rg-team-a", "location": "westeurope", "tags": {"team": "a", "costCenter": "42"}});
    let diff = p
        .diff(
            GROUP,
            &common::props(inputs.clone()),
            &common::props(news.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        (diff.changed, diff.replace),
        (vec!["tags".to_owned()], vec![])
    );
    let updated = p
        .update(
            common::resource(GROUP, "urn:test:g"),
            &id,
            &common::props(inputs.clone()),
            &common::props(news.clone()),
        )
        .await
        .unwrap();
    assert_eq!(updated, outputs);
    let mut tags = groups(&s).await[0]["tags"].clone();
    assert_eq!(tags["paddock-stack"], "urn", "the mark stays");
    tags.as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("paddock-"));
    assert_eq!(tags, json!({"team": "a", "costCenter": "42"}));

    // Import by id alone: the inputs come back from ARM.
    let imported = p.read(GROUP, &id, &Props::new()).await.unwrap().unwrap();
    assert_eq!(imported.inputs.unwrap(), common::props(news.clone()));
    assert_eq!(imported.outputs, outputs);

    // A crashed create finds the group by name.
    let found = p
        .find(
            common::resource(GROUP, "urn:test:g"),
            &common::props(news.clone()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id);

    // Delete waits for ARM's long-running operation: the group is gone when it returns.
    let started = Instant::now();
    p.delete(GROUP, &id, &outputs).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned before the operation ended"
    );
    assert!(p.read(GROUP, &id, &Props::new()).await.unwrap().is_none());
    assert!(groups(&s).await.is_empty());
    assert!(
        p.find(common::resource(GROUP, "urn:test:g"), &common::props(news))
            .await
            .unwrap()
            .is_none()
    );
    p.delete(GROUP, &id, &outputs)
        .await
        .expect("deleting what is gone succeeds");
    s.stop().await;
}

#[tokio::test]
async fn a_group_read_back_keeps_the_blueprints_spelling_and_empty_tags_stay_unset() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let inputs = json!({"name": "Rg-Team.(b)", "location": "West Europe"});
    let (id, outputs) = common::create(&p, GROUP, inputs.clone()).await;
    assert_eq!(text(&outputs, "location"), "westeurope", "ARM's spelling");
    let read = p
        .read(GROUP, &id, &common::props(inputs.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.inputs.unwrap(),
        common::props(inputs),
        "no drift from spelling alone"
    );
    let imported = p.read(GROUP, &id, &Props::new()).await.unwrap().unwrap();
    assert_eq!(
        imported.inputs.unwrap(),
        common::props(json!({"name": "Rg-Team.(b)", "location": "westeurope"}))
    );
    // Ids that are not ARM's are refused before anything is sent.
    let e = p.read(GROUP, "rg-team-b", &Props::new()).await.unwrap_err();
    assert_eq!(e.code, "InvalidResourceId");
    s.stop().await;
}

#[tokio::test]
async fn arms_own_error_codes_reach_the_developer() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let e = create_err(&p, GROUP, json!({"name": "rg-nowhere"})).await;
    assert_eq!(e.code, "LocationRequired", "{e}");
    assert!(e.hint.is_some());
    let e = create_err(&p, GROUP, json!({"name": "rg-mars", "location": "mars"})).await;
    assert_eq!(e.code, "LocationNotAvailableForResourceGroup", "{e}");
    let e = create_err(
        &p,
        GROUP,
        json!({"name": "rg bad!", "location": "westeurope"}),
    )
    .await;
    assert_eq!(e.code, "InvalidResourceGroup", "{e}");
    let e = create_err(
        &p,
        GROUP,
        json!({"name": "rg-tags", "location": "westeurope", "tags": {"n": 1}}),
    )
    .await;
    assert_eq!(e.code, "InvalidInput", "{e}");

    // A location cannot change in place: the hint says how to replace the group.
    group(&p, "rg-moving").await;
    let e = create_err(
        &p,
        GROUP,
        json!({"name": "rg-moving", "location": "swedencentral"}),
    )
    .await;
    assert_eq!(e.code, "InvalidResourceGroupLocation", "{e}");
    assert!(
        e.hint.as_deref().unwrap().contains("deleteBeforeReplace"),
        "{e}"
    );
    assert!(
        groups(&s)
            .await
            .iter()
            .all(|g| g["name"] != "rg-nowhere" && g["name"] != "rg-mars")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_role_assignment_is_deterministic_resolves_role_names_and_imports_by_id() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let sub = s.identity.subscription_id.clone();
    let scope = group(&p, "rg-team-a").await;
    // Assigned at once: the principal is younger than ARM's replication delay, which
    // `principalType` (sent by default) makes irrelevant.
    let app = principal(&s, "team-a-deployer").await;
    let principal_id = app["objectId"].as_str().unwrap().to_owned();
    let inputs = json!({"scope": scope, "principalId": principal_id, "role": "Contributor"});
    let (id, outputs) = common::create(&p, ASSIGNMENT, inputs.clone()).await;
    assert!(
        id.starts_with(&format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/"
        )),
        "{id}"
    );
    assert_eq!(text(&outputs, "roleAssignmentId"), id);
    assert!(text(&outputs, "roleDefinitionId").ends_with(CONTRIBUTOR));
    let held = assignments_at(&s, &scope).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["properties"]["principalType"], "ServicePrincipal");

    // The same grant, asked for again or by the role's id, is the same assignment.
    let again = common::create(&p, ASSIGNMENT, inputs.clone()).await.0;
    let by_guid = common::create(
        &p,
        ASSIGNMENT,
        json!({"scope": scope, "principalId": principal_id, "role": CONTRIBUTOR}),
    )
    .await
    .0;
    let by_id = common::create(
        &p,
        ASSIGNMENT,
        json!({"scope": scope, "principalId": principal_id, "role": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}")}),
    )
    .await
    .0;
    assert_eq!([&again, &by_guid, &by_id], [&id; 3]);
    assert_eq!(assignments_at(&s, &scope).await.len(), 1, "no duplicate");
    let found = p
        .find(
            common::resource(ASSIGNMENT, "urn:a"),
            &common::props(inputs.clone()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id);

    // Another role is another assignment.
    let (reader, _) = common::create(
        &p,
        ASSIGNMENT,
        json!({"scope": scope, "principalId": principal_id, "role": "reader"}),
    )
    .await;
    assert_ne!(reader, id);
    assert_eq!(assignments_at(&s, &scope).await.len(), 2);

    // Import by id: the role comes back by name, the default principal type left unset.
    let imported = p
        .read(ASSIGNMENT, &id, &Props::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(imported.inputs.unwrap(), common::props(inputs.clone()));
    assert_eq!(imported.outputs, outputs);
    let imported = p
        .read(ASSIGNMENT, &reader, &Props::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text(imported.inputs.as_ref().unwrap(), "role"), "Reader");
    // Read with inputs that name the role by id keeps the id.
    let with_guid = json!({"scope": scope, "principalId": principal_id, "role": CONTRIBUTOR, "principalType": "ServicePrincipal"});
    let read = p
        .read(ASSIGNMENT, &id, &common::props(with_guid.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.inputs.unwrap(), common::props(with_guid));

    // The description changes in place.
    let described = json!({"scope": scope, "principalId": principal_id, "role": "Contributor", "description": "deploys team a"});
    let diff = p
        .diff(
            ASSIGNMENT,
            &common::props(inputs.clone()),
            &common::props(described.clone()),
        )
        .await
        .unwrap();
    assert!(diff.replace.is_empty());
    let updated = p
        .update(
            common::resource(ASSIGNMENT, "urn:a"),
            &id,
            &common::props(inputs.clone()),
            &common::props(described.clone()),
        )
        .await
        .unwrap();
    assert_eq!(updated, outputs);
    let read = p
        .read(ASSIGNMENT, &id, &common::props(described.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.inputs.unwrap(), common::props(described));
    assert_eq!(assignments_at(&s, &scope).await.len(), 2);

    // Role names are looked up with `$filter`, form-encoded as most Azure clients send it.
    let token = arm_token(&s, &s.platform.client_id, &s.platform.client_secret).await;
    let (status, definitions) = arm(
        &s,
        &token,
        reqwest::Method::GET,
        &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions?%24filter=roleName+eq+%27Reader%27&api-version=2022-04-01"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{definitions}");
    assert_eq!(
        definitions["value"].as_array().unwrap().len(),
        1,
        "{definitions}"
    );

    // An unknown role is named.
    let e = create_err(
        &p,
        ASSIGNMENT,
        json!({"scope": scope, "principalId": principal_id, "role": "Janitor"}),
    )
    .await;
    assert_eq!(e.code, "RoleDefinitionDoesNotExist", "{e}");
    let e = create_err(
        &p,
        ASSIGNMENT,
        json!({"scope": scope, "principalId": "alice", "role": "Reader"}),
    )
    .await;
    assert_eq!(e.code, "InvalidPrincipalId", "{e}");

    // Delete, twice.
    p.delete(ASSIGNMENT, &id, &outputs).await.unwrap();
    assert!(
        p.read(ASSIGNMENT, &id, &Props::new())
            .await
            .unwrap()
            .is_none()
    );
    p.delete(ASSIGNMENT, &id, &outputs)
        .await
        .expect("deleting what is gone succeeds");
    assert_eq!(assignments_at(&s, &scope).await.len(), 1);

    // Deleting the group takes its assignments along; deleting one afterwards succeeds.
    p.delete(GROUP, &scope, &Props::new()).await.unwrap();
    assert!(assignments_at(&s, &scope).await.is_empty());
    assert!(
        p.read(ASSIGNMENT, &reader, &Props::new())
            .await
            .unwrap()
            .is_none()
    );
    p.delete(ASSIGNMENT, &reader, &Props::new()).await.unwrap();
    assert!(
        p.find(
            common::resource(ASSIGNMENT, "urn:a"),
            &common::props(inputs)
        )
        .await
        .unwrap()
        .is_none()
    );
    s.stop().await;
}

#[tokio::test]
async fn an_equal_assignment_made_elsewhere_is_neither_adopted_nor_duplicated() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let scope = group(&p, "rg-team-b").await;
    let app = principal(&s, "team-b-deployer").await;
    let principal_id = app["objectId"].as_str().unwrap();
    // Someone assigned the role by hand, under a name of their own.
    let token = arm_token(&s, &s.platform.client_id, &s.platform.client_secret).await;
    let by_hand = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/3f2c0e4b-1d5a-4c6e-8b7f-9a0b1c2d3e4f"
    );
    let (status, body) = arm(
        &s,
        &token,
        reqwest::Method::PUT,
        &format!("{by_hand}?api-version=2022-04-01"),
        Some(json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{READER}", s.identity.subscription_id),
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
        }})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let inputs = json!({"scope": scope, "principalId": principal_id, "role": "Reader"});
    // RoleAssignmentExists: the existing one is someone else's, and stays theirs.
    let e = create_err(&p, ASSIGNMENT, inputs.clone()).await;
    assert_eq!(e.code, "OwnershipConflict", "{e}");
    assert!(e.to_string().contains(&by_hand), "{e}");
    assert_eq!(assignments_at(&s, &scope).await.len(), 1);
    let found = p
        .find(
            common::resource(ASSIGNMENT, "urn:b"),
            &common::props(inputs),
        )
        .await
        .unwrap();
    assert!(found.is_none(), "recovery does not adopt it either");
    s.stop().await;
}

#[tokio::test]
async fn the_assigned_principal_is_walled_into_its_own_group() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let mine = group(&p, "rg-mine").await;
    let theirs = group(&p, "rg-theirs").await;
    let app = principal(&s, "walled-deployer").await;
    common::create(
        &p,
        ASSIGNMENT,
        json!({"scope": mine, "principalId": app["objectId"], "role": "Contributor"}),
    )
    .await;

    // With its own token, straight to ARM.
    let token = arm_token(
        &s,
        app["clientId"].as_str().unwrap(),
        app["clientSecret"].as_str().unwrap(),
    )
    .await;
    let put = |id: &str| format!("{id}?api-version=2024-11-01");
    let tagged = json!({"location": "westeurope", "tags": {"by": "deployer"}});
    let (status, body) = arm(
        &s,
        &token,
        reqwest::Method::PUT,
        &put(&mine),
        Some(tagged.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tags"], json!({"by": "deployer"}));
    let (status, body) = arm(
        &s,
        &token,
        reqwest::Method::PUT,
        &put(&theirs),
        Some(tagged),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("AuthorizationFailed")),
        "{body}"
    );

    // Through the provider, signed in as the principal.
    let as_app = azure_as(&s, &app);
    let olds = common::props(json!({"name": "rg-mine", "location": "westeurope"}));
    let news = common::props(
        json!({"name": "rg-mine", "location": "westeurope", "tags": {"team": "mine"}}),
    );
    as_app
        .update(common::resource(GROUP, "urn:g"), &mine, &olds, &news)
        .await
        .unwrap();
    let news = common::props(
        json!({"name": "rg-theirs", "location": "westeurope", "tags": {"team": "mine"}}),
    );
    let e = as_app
        .update(common::resource(GROUP, "urn:g"), &theirs, &olds, &news)
        .await
        .unwrap_err();
    assert_eq!(e.code, "AuthorizationFailed", "{e}");
    assert!(e.hint.is_some());
    let e = create_err(
        &as_app,
        GROUP,
        json!({"name": "rg-new", "location": "westeurope"}),
    )
    .await;
    assert_eq!(e.code, "AuthorizationFailed", "{e}");
    let held = groups(&s).await;
    let tags_of = |name: &str| held.iter().find(|g| g["name"] == name).unwrap()["tags"].clone();
    assert_eq!(tags_of("rg-mine")["team"], "mine");
    assert_eq!(tags_of("rg-theirs")["team"], Json::Null);
    assert_eq!(held.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn with_arm_failing_often_everything_still_happens_once() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let app = principal(&s, "flaky-deployer").await;
    let faults = reqwest::Client::new()
        .put(format!("{}/faults", s.control_url))
        .json(&json!([{"api": "arm", "probability": 0.3, "error": "503", "retryAfterSecs": 0}]))
        .send()
        .await
        .unwrap();
    assert!(faults.status().is_success());
    // The rule bites: some plain requests fail.
    let token = arm_token(&s, &s.platform.client_id, &s.platform.client_secret).await;
    let mut failed = 0;
    for _ in 0..20 {
        let path = format!(
            "/subscriptions/{}/resourcegroups?api-version=2025-04-01",
            s.identity.subscription_id
        );
        if arm(&s, &token, reqwest::Method::GET, &path, None).await.0 == 503 {
            failed += 1;
        }
    }
    assert!((1..20).contains(&failed), "{failed} of 20 failed");

    let group_inputs =
        json!({"name": "rg-flaky", "location": "westeurope", "tags": {"team": "flaky"}});
    let (scope, group_out) = common::create(&p, GROUP, group_inputs.clone()).await;
    assert_eq!(
        common::create(&p, GROUP, group_inputs.clone()).await.0,
        scope
    );
    let inputs = json!({"scope": scope, "principalId": app["objectId"], "role": "Contributor"});
    let (id, outputs) = common::create(&p, ASSIGNMENT, inputs.clone()).await;
    for _ in 0..3 {
        assert_eq!(common::create(&p, ASSIGNMENT, inputs.clone()).await.0, id);
    }
    assert_eq!(groups(&s).await.len(), 1);
    assert_eq!(assignments_at(&s, &scope).await.len(), 1);
    let imported = p
        .read(ASSIGNMENT, &id, &Props::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(imported.inputs.unwrap(), common::props(inputs));
    let imported = p.read(GROUP, &scope, &Props::new()).await.unwrap().unwrap();
    assert_eq!(imported.inputs.unwrap(), common::props(group_inputs));

    p.delete(ASSIGNMENT, &id, &outputs).await.unwrap();
    p.delete(GROUP, &scope, &group_out).await.unwrap();
    assert!(groups(&s).await.is_empty());
    assert!(assignments_at(&s, &scope).await.is_empty());
    assert!(
        p.read(GROUP, &scope, &Props::new())
            .await
            .unwrap()
            .is_none()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_management_lock_is_created_read_updated_imported_and_deleted_twice() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let scope = group(&p, "rg-locked").await;
    let inputs = json!({"scope": scope, "name": "paddock-no-delete", "level": "CanNotDelete",
        "notes": "Paddock removes it before it destroys the stage."});
    let (id, outputs) = common::create(&p, LOCK, inputs.clone()).await;
    assert_eq!(
        id,
        format!("{scope}/providers/Microsoft.Authorization/locks/paddock-no-delete")
    );
    assert_eq!(text(&outputs, "lockId"), id);

    // The lock holds: the group cannot be deleted, not even by Paddock.
    let e = p
        .delete(GROUP, &scope, &Props::new())
        .await
        .expect_err("a locked group stays");
    assert_eq!(e.code, "ScopeLocked");
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("remove the lock")),
        "{e:?}"
    );

    // Read with the inputs: nothing drifted; by id alone the inputs come back.
    let read = p
        .read(LOCK, &id, &common::props(inputs.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.inputs.unwrap(), common::props(inputs.clone()));
    let imported = p.read(LOCK, &id, &Props::new()).await.unwrap().unwrap();
    assert_eq!(imported.inputs.unwrap(), common::props(inputs.clone()));

    // The level changes in place; scope and name replace.
    let news = json!({"scope": scope, "name": "paddock-no-delete", "level": "ReadOnly"});
    let diff = p
        .diff(
            LOCK,
            &common::props(inputs.clone()),
            &common::props(news.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        (diff.changed, diff.replace),
        (vec!["level".to_owned(), "notes".to_owned()], vec![])
    );
    p.update(
        common::resource(LOCK, "urn:test:lock"),
        &id,
        &common::props(inputs.clone()),
        &common::props(news.clone()),
    )
    .await
    .unwrap();
    let read = p
        .read(LOCK, &id, &common::props(news.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.inputs.unwrap(), common::props(news.clone()));

    // Drift made behind Paddock's back is seen.
    let token = arm_token(&s, &s.platform.client_id, &s.platform.client_secret).await;
    let (status, _) = arm(
        &s,
        &token,
        reqwest::Method::PUT,
        &format!("{id}?api-version=2016-09-01"),
        Some(json!({"properties": {"level": "CanNotDelete"}})),
    )
    .await;
    assert_eq!(status, 200);
    let read = p
        .read(LOCK, &id, &common::props(news.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.inputs.unwrap().get("level").and_then(Value::as_str),
        Some("CanNotDelete")
    );

    // A retried create finds the lock by scope and name, and makes no second one.
    let found = p
        .find(
            common::resource(LOCK, "urn:test:lock"),
            &common::props(news.clone()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, id);
    common::create(&p, LOCK, news.clone()).await;
    assert_eq!(common::count(&s, "arm", "managementLock").await, 1);

    // Deleted twice; then the group may go.
    p.delete(LOCK, &id, &outputs).await.unwrap();
    p.delete(LOCK, &id, &outputs)
        .await
        .expect("deleting what is gone succeeds");
    assert!(p.read(LOCK, &id, &Props::new()).await.unwrap().is_none());
    p.delete(GROUP, &scope, &Props::new()).await.unwrap();
    p.delete(LOCK, &id, &outputs)
        .await
        .expect("its scope gone too");

    let e = create_err(
        &p,
        LOCK,
        json!({"scope": "rg-locked", "name": "x", "level": "CanNotDelete"}),
    )
    .await;
    assert_eq!(e.code, "InvalidInput");
    let e = create_err(
        &p,
        LOCK,
        json!({"scope": scope, "name": "x", "level": "Frozen"}),
    )
    .await;
    assert!(e.message.contains("`level`"), "{e}");
    s.stop().await;
}

#[tokio::test]
async fn a_group_whose_tags_the_team_replaced_is_still_its_stacks_while_its_lock_vouches_for_it() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let token = arm_token(&s, &s.platform.client_id, &s.platform.client_secret).await;
    // What `az group update --tags team=payments` sends: the tags replaced, mark and all.
    let retag = |group: String| {
        let (s, token) = (&s, &token);
        async move {
            let (status, body) = arm(
                s,
                token,
                reqwest::Method::PATCH,
                &format!("{group}?api-version=2021-04-01"),
                Some(json!({"tags": {"team": "payments"}})),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let urn = format!("urn:test:{GROUP}");
    let ours = common::resource(GROUP, &urn);

    // Locked by this stack: the lock vouches, the mark is written back, the destroy goes on.
    let locked = group(&p, "rg-vouched").await;
    let (lock, _) = common::create(
        &p,
        LOCK,
        json!({"scope": locked, "name": "paddock-no-delete", "level": "CanNotDelete"}),
    )
    .await;
    retag(locked.clone()).await;
    p.confirm_owned(ours.clone(), &locked, &Props::new())
        .await
        .unwrap();
    let read = p
        .read(GROUP, &locked, &Props::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.inputs.unwrap().get("tags").map(Value::to_json),
        Some(json!({"team": "payments"})),
        "the team's tags are kept, the mark is not shown"
    );
    p.delete_owned(
        common::resource(LOCK, "urn:test:lock"),
        &lock,
        &Props::new(),
    )
    .await
    .unwrap();
    p.delete_owned(ours.clone(), &locked, &Props::new())
        .await
        .unwrap();
    assert!(
        p.read(GROUP, &locked, &Props::new())
            .await
            .unwrap()
            .is_none()
    );

    // Unlocked, or locked by another stack: nothing vouches for it, and it is kept.
    let bare = group(&p, "rg-unvouched").await;
    retag(bare.clone()).await;
    let theirs = paddock_engine::provider::ResourceRef {
        ty: LOCK,
        urn: "other:lock",
        token: "token-9",
        imported: false,
    };
    let inputs = json!({"scope": bare, "name": "their-lock", "level": "CanNotDelete"});
    p.create(theirs, &common::props(inputs)).await.unwrap();
    let e = p
        .confirm_owned(ours.clone(), &bare, &Props::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, "NotOwned", "{e}");
    assert!(p.read(GROUP, &bare, &Props::new()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_contributor_can_neither_place_nor_lift_a_lock() {
    let (_dir, s) = common::sandbox().await;
    let p = azure(&s);
    let scope = group(&p, "rg-team").await;
    let app = principal(&s, "team-deployer").await;
    common::create(
        &p,
        ASSIGNMENT,
        json!({"scope": scope, "principalId": app["objectId"], "principalType": "ServicePrincipal", "role": "Contributor"}),
    )
    .await;
    let (id, outputs) = common::create(
        &p,
        LOCK,
        json!({"scope": scope, "name": "paddock-no-delete", "level": "CanNotDelete"}),
    )
    .await;
    let team = azure_as(&s, &app);
    let e = team.delete(LOCK, &id, &outputs).await.unwrap_err();
    assert_eq!(e.code, "AuthorizationFailed");
    let e = create_err(
        &team,
        LOCK,
        json!({"scope": scope, "name": "mine", "level": "ReadOnly"}),
    )
    .await;
    assert_eq!(e.code, "AuthorizationFailed");
    let e = team.delete(GROUP, &scope, &Props::new()).await.unwrap_err();
    assert_eq!(e.code, "ScopeLocked");
    assert_eq!(groups(&s).await.len(), 1);
    s.stop().await;
}
