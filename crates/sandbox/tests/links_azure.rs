//! Every URL the Azure side of the sandbox hands out leads somewhere. Each operation that
//! emits a link is run, and each link it emits is followed as a client would follow it
//! (with the credentials that client holds), expecting success: ARM's `Location`,
//! `Azure-AsyncOperation`, `nextLink` and resource ids; Graph's `@odata.nextLink` and
//! `@odata.context`; the cloud metadata document's endpoints; the discovery documents'
//! endpoints (Entra's and the GitHub Actions issuer's); and the token endpoint's
//! `error_uri`.

mod common;

use std::time::Duration;

use paddock_sandbox::Sandbox;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const RESOURCES: &str = "api-version=2024-11-01";

/// GETs `url`; panics unless the answer is a success. Returns the status and the body (as
/// JSON when it is JSON).
async fn follow(client: &Client, url: &str, what: &str) -> (StatusCode, Value) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status.is_success(),
        "{what} ({url}) answered {status}: {text}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A client presenting a bearer token.
fn bearer(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Client::builder().default_headers(headers).build().unwrap()
}

async fn create_group(arm: &Client, s: &Sandbox, name: &str) -> Value {
    let r = arm
        .put(format!(
            "{}/subscriptions/{}/resourcegroups/{name}?{RESOURCES}",
            s.base_url, s.identity.subscription_id
        ))
        .json(&json!({"location": "westeurope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

#[tokio::test]
async fn arm_next_links_ids_and_operation_urls_resolve() {
    let (_dir, s) = common::start_with(|c| {
        c.arm.page_size = 1;
        c.arm.delete_delay = Duration::from_millis(300);
    })
    .await;
    let arm = common::platform_client(&s).await;
    let first = create_group(&arm, &s, "rg-links-a").await;
    create_group(&arm, &s, "rg-links-b").await;

    // A resource's id, under ARM's root, is where it is.
    follow(
        &arm,
        &format!(
            "{}{}?{RESOURCES}",
            s.base_url,
            first["id"].as_str().unwrap()
        ),
        "a resource group's id",
    )
    .await;

    // Pages link to the next one, until the last.
    let list = format!(
        "{}/subscriptions/{}/resourcegroups?{RESOURCES}",
        s.base_url, s.identity.subscription_id
    );
    let (_, page) = follow(&arm, &list, "the resource groups").await;
    let next = page["nextLink"].as_str().expect("a nextLink").to_owned();
    let (_, second) = follow(&arm, &next, "nextLink").await;
    assert_eq!(second["value"][0]["name"], "rg-links-b", "{second}");
    assert!(second.get("nextLink").is_none(), "{second}");

    // A long-running delete names where to poll; both addresses answer while it runs and
    // after it is done.
    let r = arm
        .delete(format!(
            "{}{}?{RESOURCES}",
            s.base_url,
            first["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let (location, status) = (header(&r, "location"), header(&r, "azure-asyncoperation"));
    follow(&arm, &location, "Location").await;
    let (_, running) = follow(&arm, &status, "Azure-AsyncOperation").await;
    assert_eq!(running["status"], "InProgress", "{running}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (done, _) = follow(&arm, &location, "Location, once done").await;
    assert_eq!(done, StatusCode::OK);
    let (_, finished) = follow(&arm, &status, "Azure-AsyncOperation, once done").await;
    assert_eq!(finished["status"], "Succeeded", "{finished}");

    // The subscriptions and tenants a caller sees are where their ids say.
    let versions = "api-version=2022-12-01";
    for list in ["subscriptions", "tenants"] {
        let (_, listed) = follow(&arm, &format!("{}/{list}?{versions}", s.base_url), list).await;
        let items = listed["value"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{listed}");
        if list == "subscriptions" {
            let id = items[0]["id"].as_str().unwrap();
            follow(
                &arm,
                &format!("{}{id}?{versions}", s.base_url),
                "a subscription's id",
            )
            .await;
        }
    }
}

#[tokio::test]
async fn the_cloud_metadata_document_names_endpoints_that_answer() {
    let (_dir, s) = common::start().await;
    let anonymous = Client::new();
    let (_, cloud) = follow(
        &anonymous,
        &format!("{}/metadata/endpoints?api-version=2022-09-01", s.base_url),
        "the cloud metadata",
    )
    .await;

    // The authority: its tenant's OpenID configuration, and the token endpoint it names
    // issues tokens for the audience the document gives ARM.
    let login = cloud["authentication"]["loginEndpoint"].as_str().unwrap();
    let (_, oidc) = follow(
        &anonymous,
        &format!(
            "{login}{}/v2.0/.well-known/openid-configuration",
            s.identity.tenant_id
        ),
        "loginEndpoint's discovery",
    )
    .await;
    let audience = cloud["authentication"]["audiences"][0].as_str().unwrap();
    let token = token_at(&oidc, &s, &format!("{audience}/.default")).await;

    // ARM's root serves ARM to that token.
    let rm = cloud["resourceManager"].as_str().unwrap();
    follow(
        &bearer(&token),
        &format!("{rm}subscriptions?api-version=2022-12-01"),
        "resourceManager",
    )
    .await;

    // Graph's resource id is Graph's root, and a token for it opens Graph.
    let graph = cloud["microsoftGraphResourceId"].as_str().unwrap();
    assert_eq!(cloud["graph"], graph);
    let graph_token = token_at(&oidc, &s, &format!("{graph}/.default")).await;
    follow(
        &bearer(&graph_token),
        &format!("{graph}v1.0/applications"),
        "microsoftGraphResourceId",
    )
    .await;

    // The portal is the sandbox's own page.
    follow(&anonymous, cloud["portal"].as_str().unwrap(), "portal").await;

    // The older forms: a list of clouds (the same one), and the first short form.
    for version in ["2019-05-01", "2020-06-01"] {
        let (_, clouds) = follow(
            &anonymous,
            &format!("{}/metadata/endpoints?api-version={version}", s.base_url),
            version,
        )
        .await;
        assert_eq!(clouds, json!([cloud.clone()]), "{version}");
    }
    let (_, old) = follow(
        &anonymous,
        &format!("{}/metadata/endpoints?api-version=2015-01-01", s.base_url),
        "2015-01-01",
    )
    .await;
    assert_eq!(old["authentication"]["loginEndpoint"], login);
}

/// A client-credentials token for the platform identity from the discovery document's
/// token endpoint.
async fn token_at(oidc: &Value, s: &Sandbox, scope: &str) -> String {
    let r = Client::new()
        .post(oidc["token_endpoint"].as_str().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.platform.client_id),
            ("client_secret", &s.platform.client_secret),
            ("scope", scope),
        ]))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {scope}: {body}"))
        .to_owned()
}

#[tokio::test]
async fn graph_next_links_and_contexts_resolve() {
    let (_dir, s) = common::start().await;
    let graph = bearer(&common::token_for(&s, &s.platform, "https://graph.microsoft.com").await);
    let root = format!("{}/graph/v1.0", s.base_url);
    for name in ["links-a", "links-b"] {
        let r = graph
            .post(format!("{root}/groups"))
            .json(&json!({"displayName": name, "mailNickname": name, "mailEnabled": false, "securityEnabled": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    // Every page but the last links to the next, keeping the filter.
    let mut url = format!("{root}/groups?$top=1");
    let mut seen = 0;
    loop {
        let (_, page) = follow(&graph, &url, "a page of groups").await;
        seen += page["value"].as_array().unwrap().len();
        // The context names the service's metadata, which is served.
        let context = page["@odata.context"].as_str().unwrap();
        let (metadata, _) = context.split_once('#').unwrap();
        follow(&graph, metadata, "@odata.context").await;
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 2);
    let filtered =
        format!("{root}/applications?$top=1&$filter=displayName%20eq%20'paddock-platform'");
    let (_, page) = follow(&graph, &filtered, "a filtered list").await;
    assert_eq!(page["value"].as_array().unwrap().len(), 1, "{page}");
    assert!(page.get("@odata.nextLink").is_none(), "{page}");

    // An entity's context resolves as well.
    let (_, app) = follow(
        &graph,
        &format!("{root}/applications(appId='{}')", s.platform.client_id),
        "an application",
    )
    .await;
    let context = app["@odata.context"].as_str().unwrap();
    follow(
        &graph,
        context.split_once('#').unwrap().0,
        "an entity's context",
    )
    .await;
}

#[tokio::test]
async fn discovery_documents_and_error_pages_resolve() {
    let (_dir, s) = common::start().await;
    let anonymous = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let issuer = format!("{}/{}/v2.0", s.base_url, s.identity.tenant_id);
    let (_, oidc) = follow(
        &anonymous,
        &format!("{issuer}/.well-known/openid-configuration"),
        "Entra's discovery",
    )
    .await;
    assert_eq!(oidc["issuer"], issuer);
    let (_, keys) = follow(&anonymous, oidc["jwks_uri"].as_str().unwrap(), "jwks_uri").await;
    assert!(!keys["keys"].as_array().unwrap().is_empty());

    // The token endpoint takes a POST (a token), the authorize endpoint a browser.
    token_at(&oidc, &s, "https://management.azure.com/.default").await;
    let app = s
        .register_sign_in_app(&["http://127.0.0.1:9/callback".to_owned()])
        .await
        .unwrap();
    let authorize = format!(
        "{}?client_id={}&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        oidc["authorization_endpoint"].as_str().unwrap(),
        app.entra.client_id
    );
    let (_, page) = follow(&anonymous, &authorize, "authorization_endpoint").await;
    assert_eq!(page, Value::Null, "a page, not JSON");

    // A refusal's error_uri is a page about its code.
    let r = Client::new()
        .post(oidc["token_endpoint"].as_str().unwrap())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &s.platform.client_id),
            ("client_secret", "not-the-secret"),
            ("scope", "https://management.azure.com/.default"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let refusal: Value = r.json().await.unwrap();
    follow(
        &anonymous,
        refusal["error_uri"].as_str().unwrap(),
        "error_uri",
    )
    .await;

    // The GitHub Actions issuer's discovery names its keys.
    let actions = paddock_sandbox::actions::issuer(&s.base_url);
    let (_, doc) = follow(
        &anonymous,
        &format!("{actions}/.well-known/openid-configuration"),
        "the Actions issuer's discovery",
    )
    .await;
    assert_eq!(doc["issuer"], actions);
    follow(
        &anonymous,
        doc["jwks_uri"].as_str().unwrap(),
        "the Actions jwks_uri",
    )
    .await;
}
