//! The Entra ID provider against the sandbox's Graph and token endpoint: groups whose
//! membership is exactly what the blueprint says, applications upserted by uniqueName,
//! service principals adopted, federated credentials, and the federation they make: a
//! GitHub Actions run of the test environment signs in as the application, prod does not.

mod common;

use paddock_engine::{Props, Provider, Value};
use paddock_providers::entra;
use paddock_providers::family::Family;
use paddock_providers::http::HttpError;
use paddock_providers::http::auth::{EntraSecret, EntraSignIn};
use paddock_sandbox::Sandbox;
use paddock_sandbox::graph::USER_DOMAIN;
use reqwest::Method;
use serde_json::json;

fn provider(s: &Sandbox) -> Family {
    entra::provider(&common::entra(s)).unwrap()
}

fn text(props: &Props, name: &str) -> String {
    props
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no `{name}` in {props:?}"))
        .to_owned()
}

fn upn(name: &str) -> String {
    format!("{name}@{USER_DOMAIN}")
}

/// A group's members or owners as Graph lists them: user principal names, else ids.
async fn principals(s: &Sandbox, group: &str, relation: &str) -> Vec<String> {
    let (status, listed) =
        common::graph(s, Method::GET, &format!("/groups/{group}/{relation}"), None).await;
    assert_eq!(status, 200, "{listed}");
    let mut names: Vec<String> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["userPrincipalName"]
                .as_str()
                .or(p["id"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

async fn update(p: &Family, ty: &str, id: &str, olds: &Props, news: &Props) -> Props {
    let urn = format!("urn:test:{ty}");
    p.update(common::resource(ty, &urn), id, olds, news)
        .await
        .unwrap_or_else(|e| panic!("{ty}: {e}"))
}

async fn read(p: &Family, ty: &str, id: &str, inputs: &Props) -> Option<(Props, Props)> {
    p.read(ty, id, inputs)
        .await
        .unwrap_or_else(|e| panic!("{ty}: {e}"))
        .map(|r| (r.inputs.expect("inputs read back"), r.outputs))
}

#[tokio::test]
async fn groups_hold_exactly_their_members_named_by_bare_name_upn_or_object_id() {
    let (_dir, s) = common::sandbox().await;
    let p = provider(&s);
    let ty = "entra:group";
    common::graph_user(&s, "ada").await;
    common::graph_user(&s, "grace").await;
    let linus = common::graph_user(&s, "linus").await;

    let given = json!({
        "displayName": "Team Payments",
        "description": "pays",
        "members": ["ada", upn("grace")],
        "owners": [linus],
    });
    let (id, outputs) = common::create(&p, ty, given.clone()).await;
    assert_eq!(text(&outputs, "objectId"), id);
    let (_, group) = common::graph(&s, Method::GET, &format!("/groups/{id}"), None).await;
    assert_eq!(
        (
            &group["mailNickname"],
            &group["securityEnabled"],
            &group["mailEnabled"]
        ),
        (&json!("team-payments"), &json!(true), &json!(false)),
        "a security group, its nickname derived from its name"
    );
    assert_eq!(
        principals(&s, &id, "members").await,
        [upn("ada"), upn("grace")]
    );
    assert_eq!(principals(&s, &id, "owners").await, [upn("linus")]);
    let olds = common::props(given);
    let (inputs, _) = read(&p, ty, &id, &olds).await.unwrap();
    assert_eq!(inputs, olds, "read back as written: no drift");

    // Membership is authoritative: ada leaves, linus joins.
    let news = common::props(json!({
        "displayName": "Team Payments",
        "description": "pays",
        "members": ["grace", linus],
        "owners": [linus],
    }));
    update(&p, ty, &id, &olds, &news).await;
    assert_eq!(
        principals(&s, &id, "members").await,
        [upn("grace"), upn("linus")]
    );

    // Someone adds ada by hand: a refresh shows it, and the next update takes her out.
    let ada_ref = json!({"@odata.id": format!("{}/graph/v1.0/directoryObjects/{}", s.base_url, common::graph_user(&s, "ada2").await)});
    let (status, _) = common::graph(
        &s,
        Method::POST,
        &format!("/groups/{id}/members/$ref"),
        Some(ada_ref),
    )
    .await;
    assert_eq!(status, 204);
    let (drifted, _) = read(&p, ty, &id, &news).await.unwrap();
    assert_eq!(
        drifted.get("members"),
        Some(&Value::from_json(json!(["grace", linus, "ada2"])))
    );
    update(&p, ty, &id, &drifted, &news).await;
    assert_eq!(
        principals(&s, &id, "members").await,
        [upn("grace"), upn("linus")]
    );

    // Import: everything from Graph, people by bare name.
    let (imported, outputs) = read(&p, ty, &id, &Props::new()).await.unwrap();
    assert_eq!(
        imported,
        common::props(json!({
            "displayName": "Team Payments",
            "description": "pays",
            "members": ["grace", "linus"],
            "owners": ["linus"],
        }))
    );
    assert_eq!(text(&outputs, "objectId"), id);

    // A retried create, and a crashed one, adopt the group rather than make another.
    let retry = json!({"displayName": "Team Payments", "description": "pays", "members": ["grace", linus], "owners": [linus]});
    let (again, _) = common::create(&p, ty, retry).await;
    assert_eq!(again, id);
    let urn = "urn:test:entra:group";
    let found = p
        .find(
            common::resource(ty, urn),
            &common::props(json!({"displayName": "Team Payments"})),
        )
        .await
        .unwrap()
        .expect("found by its name");
    assert_eq!(found.id, id);
    assert_eq!(common::count(&s, "graph", "group").await, 1);

    p.delete(ty, &id, &news).await.unwrap();
    p.delete(ty, &id, &news)
        .await
        .expect("deleting what is gone succeeds");
    assert!(read(&p, ty, &id, &news).await.is_none());
    assert_eq!(common::count(&s, "graph", "group").await, 0);
    s.stop().await;
}

#[tokio::test]
async fn a_group_naming_someone_unknown_fails_with_graphs_code_and_leaves_nothing() {
    let (_dir, s) = common::sandbox().await;
    let p = provider(&s);
    let inputs = common::props(json!({"displayName": "team-x", "members": ["nobody"]}));
    let urn = "urn:test:entra:group";
    let err = p
        .create(common::resource("entra:group", urn), &inputs)
        .await
        .unwrap_err();
    assert_eq!(err.code, "Request_ResourceNotFound", "{err}");
    assert!(err.message.contains(&upn("nobody")), "{err}");
    assert_eq!(common::count(&s, "graph", "group").await, 0);

    // Without a user domain a bare name means nothing.
    let config = entra::EntraConfig {
        user_domain: None,
        ..common::entra(&s)
    };
    let err = entra::provider(&config)
        .unwrap()
        .create(common::resource("entra:group", urn), &inputs)
        .await
        .unwrap_err();
    assert_eq!(err.code, "InvalidInput", "{err}");
    s.stop().await;
}

#[tokio::test]
async fn applications_are_upserted_by_unique_name_without_any_password() {
    let (_dir, s) = common::sandbox().await;
    let p = provider(&s);
    let ty = "entra:application";
    let before = common::count(&s, "graph", "application").await;
    let given = json!({"displayName": "checkout (test)", "uniqueName": "paddock-checkout-test"});
    let (id, outputs) = common::create(&p, ty, given.clone()).await;
    let (again, outputs_again) = common::create(&p, ty, given.clone()).await;
    assert_eq!(
        (&again, &outputs_again),
        (&id, &outputs),
        "two creates, one application"
    );
    assert_eq!(common::count(&s, "graph", "application").await, before + 1);
    assert_eq!(text(&outputs, "objectId"), id);
    let (_, app) = common::graph(&s, Method::GET, &format!("/applications/{id}"), None).await;
    assert_eq!(app["appId"], json!(text(&outputs, "appId")));
    assert_eq!(app["signInAudience"], "AzureADMyOrg");
    assert_eq!(app["passwordCredentials"], json!([]), "never a password");

    let (imported, read_outputs) = read(&p, ty, &id, &Props::new()).await.unwrap();
    assert_eq!(imported, common::props(given.clone()));
    assert_eq!(read_outputs, outputs);

    let news =
        common::props(json!({"displayName": "checkout", "uniqueName": "paddock-checkout-test"}));
    let updated = update(&p, ty, &id, &common::props(given), &news).await;
    assert_eq!(updated, outputs);
    let (_, app) = common::graph(&s, Method::GET, &format!("/applications/{id}"), None).await;
    assert_eq!(app["displayName"], "checkout");

    let urn = "urn:test:entra:application";
    let found = p
        .find(common::resource(ty, urn), &news)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id.as_str(), &found.outputs), (id.as_str(), &outputs));
    p.delete(ty, &id, &news).await.unwrap();
    p.delete(ty, &id, &news).await.unwrap();
    assert!(read(&p, ty, &id, &news).await.is_none());
    assert!(
        p.find(common::resource(ty, urn), &news)
            .await
            .unwrap()
            .is_none()
    );
    s.stop().await;
}

#[tokio::test]
async fn a_service_principal_this_stack_made_is_adopted() {
    let (_dir, s) = common::sandbox().await;
    let p = provider(&s);
    let (_, app) = common::create(
        &p,
        "entra:application",
        json!({"displayName": "checkout", "uniqueName": "checkout"}),
    )
    .await;
    let app_id = text(&app, "appId");
    let (status, existing) = common::graph(
        &s,
        Method::POST,
        "/servicePrincipals",
        // Made by an earlier create of this stack, whose answer was lost: it carries the
        // stack's mark (one without it is refused: tests/ownership.rs).
        Some(json!({"appId": app_id, "tags": ["paddock-stack=urn", "paddock-creation-token=token-0"]})),
    )
    .await;
    assert_eq!(status, 201);
    let before = common::count(&s, "graph", "servicePrincipal").await;

    let ty = "entra:servicePrincipal";
    let (id, outputs) = common::create(&p, ty, json!({"appId": app_id})).await;
    assert_eq!(id, existing["id"].as_str().unwrap(), "adopted");
    assert_eq!(text(&outputs, "objectId"), id);
    assert_eq!(common::count(&s, "graph", "servicePrincipal").await, before);
    let inputs = common::props(json!({"appId": app_id}));
    let (imported, _) = read(&p, ty, &id, &Props::new()).await.unwrap();
    assert_eq!(imported, inputs);

    p.delete(ty, &id, &inputs).await.unwrap();
    p.delete(ty, &id, &inputs).await.unwrap();
    assert!(read(&p, ty, &id, &inputs).await.is_none());
    let urn = "urn:test:entra:servicePrincipal";
    assert!(
        p.find(common::resource(ty, urn), &inputs)
            .await
            .unwrap()
            .is_none()
    );
    let (created, _) = common::create(&p, ty, json!({"appId": app_id})).await;
    assert_ne!(created, id, "made anew once gone");
    let found = p
        .find(common::resource(ty, urn), &inputs)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created);
    s.stop().await;
}

#[tokio::test]
async fn federated_credentials_round_trip() {
    let (_dir, s) = common::sandbox().await;
    let p = provider(&s);
    let (app, _) = common::create(
        &p,
        "entra:application",
        json!({"displayName": "checkout", "uniqueName": "checkout"}),
    )
    .await;
    let ty = "entra:federatedCredential";
    let issuer = paddock_sandbox::actions::issuer(&s.base_url);
    let given = json!({
        "application": app,
        "name": "github-test",
        "issuer": issuer,
        "subject": "repo:acme/checkout:environment:test",
    });
    let (id, outputs) = common::create(&p, ty, given.clone()).await;
    assert_eq!(id, format!("{app}/{}", text(&outputs, "credentialId")));
    let (_, listed) = common::graph(
        &s,
        Method::GET,
        &format!("/applications/{app}/federatedIdentityCredentials"),
        None,
    )
    .await;
    assert_eq!(
        listed["value"][0]["audiences"],
        json!(["api://AzureADTokenExchange"])
    );
    let olds = common::props(given.clone());
    assert_eq!(read(&p, ty, &id, &olds).await.unwrap().0, olds);
    assert_eq!(
        read(&p, ty, &id, &Props::new()).await.unwrap(),
        (olds.clone(), outputs.clone()),
        "imported"
    );

    let mut dev = given.clone();
    dev["subject"] = json!("repo:acme/checkout:environment:dev");
    dev["description"] = json!("the dev stage");
    let news = common::props(dev);
    assert_eq!(update(&p, ty, &id, &olds, &news).await, outputs);
    assert_eq!(read(&p, ty, &id, &news).await.unwrap().0, news);

    // A retried create adopts the credential of that name, as given.
    let (again, _) = common::create(&p, ty, given.clone()).await;
    assert_eq!(again, id);
    assert_eq!(read(&p, ty, &id, &olds).await.unwrap().0, olds);
    let urn = "urn:test:entra:federatedCredential";
    assert_eq!(
        p.find(common::resource(ty, urn), &olds)
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );

    // Graph's own refusal keeps its code.
    let mut twin = given.clone();
    twin["name"] = json!("github-test-twin");
    let err = p
        .create(common::resource(ty, urn), &common::props(twin))
        .await
        .unwrap_err();
    assert_eq!(err.code, "Request_MultipleObjectsWithSameKeyValue", "{err}");

    p.delete(ty, &id, &olds).await.unwrap();
    p.delete(ty, &id, &olds).await.unwrap();
    assert!(read(&p, ty, &id, &olds).await.is_none());
    assert!(
        p.find(common::resource(ty, urn), &olds)
            .await
            .unwrap()
            .is_none()
    );
    s.stop().await;
}

/// Signs in as `client_id` with a GitHub Actions token as the client assertion.
async fn sign_in_as(
    s: &Sandbox,
    dir: &std::path::Path,
    client_id: &str,
    assertion: &str,
) -> Result<String, HttpError> {
    let file = dir.join(format!("assertion-{}", rand_suffix()));
    std::fs::write(&file, assertion).unwrap();
    EntraSignIn::new(
        &s.base_url,
        &s.identity.tenant_id,
        client_id,
        EntraSecret::AssertionFile(file),
    )
    .token(
        &reqwest::Client::new(),
        "https://management.azure.com/.default",
    )
    .await
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn a_test_environment_run_signs_in_as_the_application_and_a_prod_run_does_not() {
    let (dir, s) = common::sandbox().await;
    let p = provider(&s);
    let (app, outputs) = common::create(
        &p,
        "entra:application",
        json!({"displayName": "checkout-test", "uniqueName": "paddock-acme-checkout-test"}),
    )
    .await;
    let client_id = text(&outputs, "appId");
    common::create(&p, "entra:servicePrincipal", json!({"appId": client_id})).await;
    common::create(
        &p,
        "entra:federatedCredential",
        json!({
            "application": app,
            "name": "github-test",
            "issuer": paddock_sandbox::actions::issuer(&s.base_url),
            "subject": "repo:acme/checkout:environment:test",
        }),
    )
    .await;

    let test_run = common::github_actions_token(&s, "acme/checkout", "test").await;
    let token = sign_in_as(&s, dir.path(), &client_id, &test_run).await;
    assert!(
        token.is_ok_and(|t| !t.is_empty()),
        "the test environment signs in"
    );

    let prod_run = common::github_actions_token(&s, "acme/checkout", "prod").await;
    let err = sign_in_as(&s, dir.path(), &client_id, &prod_run)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request", "{err}");
    assert!(
        err.message().contains("AADSTS70021"),
        "no federated credential matches prod: {err}"
    );
    s.stop().await;
}
