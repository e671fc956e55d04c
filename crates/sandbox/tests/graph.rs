//! Microsoft Graph: the directory Paddock registers environment identities in, checked
//! against Graph's own metadata (CSDL).

mod common;

use common::csdl::Csdl;
use paddock_sandbox::{AppCredentials, Sandbox};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Graph {
    http: reqwest::Client,
    root: String,
    csdl: Csdl,
}

impl Graph {
    async fn new(s: &Sandbox, creds: &AppCredentials) -> Graph {
        let token = common::token_for(s, creds, "https://graph.microsoft.com").await;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap();
        Graph {
            http,
            root: format!("{}/graph/v1.0", s.base_url),
            csdl: Csdl::load(),
        }
    }

    /// Sends, and checks any returned entity (or list of them) against the metadata.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        ty: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.root));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if let (Some(ty), true) = (ty, status.is_success()) {
            let entities = v
                .get("value")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_else(|| vec![v.clone()]);
            for e in &entities {
                self.csdl.check(ty, e).unwrap();
            }
        }
        if status.is_client_error() {
            assert!(
                v["error"]["code"].is_string()
                    && v["error"]["innerError"]["request-id"].is_string(),
                "Graph's error shape: {v}"
            );
        }
        (status, v)
    }
}

#[tokio::test]
async fn applications_service_principals_and_credentials_behave_like_graph() {
    let (_dir, s) = common::start().await;
    let g = Graph::new(&s, &s.platform).await;
    use reqwest::Method;

    let (status, app) = g
        .send(
            Method::POST,
            "/applications",
            Some(json!({"displayName": "payments-checkout-dev"})),
            Some("application"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (id, app_id) = (
        app["id"].as_str().unwrap().to_owned(),
        app["appId"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        g.send(
            Method::GET,
            &format!("/applications(appId='{app_id}')"),
            None,
            Some("application")
        )
        .await
        .1["id"],
        json!(id)
    );

    let (status, password) = g
        .send(
            Method::POST,
            &format!("/applications/{id}/addPassword"),
            Some(json!({"passwordCredential": {"displayName": "ci"}})),
            Some("passwordCredential"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let secret = password["secretText"].as_str().unwrap().to_owned();
    let (_, app) = g
        .send(
            Method::GET,
            &format!("/applications/{id}"),
            None,
            Some("application"),
        )
        .await;
    assert_eq!(
        app["passwordCredentials"][0]["secretText"],
        Value::Null,
        "the secret is shown once"
    );

    // Without a service principal the application cannot sign in, as in Entra.
    let creds = AppCredentials {
        client_id: app_id.clone(),
        client_secret: secret,
        object_id: String::new(),
    };
    let r = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/v2.0/token", s.base_url, s.identity.tenant_id))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&client_id={app_id}&client_secret={}&scope=https%3A%2F%2Fmanagement.azure.com%2F.default", creds.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error_codes"][0], 7000229);
    let (status, sp) = g
        .send(
            Method::POST,
            "/servicePrincipals",
            Some(json!({"appId": app_id})),
            Some("servicePrincipal"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err) = g
        .send(
            Method::POST,
            "/servicePrincipals",
            Some(json!({"appId": app_id})),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("Request_MultipleObjectsWithSameKeyValue")
        )
    );
    assert!(
        !common::token(&s, &creds).await.is_empty(),
        "with a service principal it signs in"
    );
    assert_eq!(
        g.send(
            Method::GET,
            &format!("/servicePrincipals(appId='{app_id}')"),
            None,
            Some("servicePrincipal")
        )
        .await
        .1["id"],
        sp["id"]
    );

    // Federated credentials: one per GitHub environment.
    let fic = |stage: &str| json!({"name": format!("github-{stage}"), "issuer": "https://token.actions.githubusercontent.com", "subject": format!("repo:acme/checkout:environment:{stage}"), "audiences": ["api://AzureADTokenExchange"]});
    let path = format!("/applications/{id}/federatedIdentityCredentials");
    assert_eq!(
        g.send(
            Method::POST,
            &path,
            Some(fic("dev")),
            Some("federatedIdentityCredential")
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        g.send(Method::POST, &path, Some(fic("dev")), None).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        g.send(
            Method::POST,
            &path,
            Some(json!({"name": "x", "issuer": "i", "audiences": ["a"]})),
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let (_, list) = g
        .send(
            Method::GET,
            &path,
            None,
            Some("federatedIdentityCredential"),
        )
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);

    assert_eq!(
        g.send(
            Method::GET,
            "/applications/00000000-0000-0000-0000-000000000000",
            None,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn unique_names_upsert_and_lists_page() {
    let (_dir, s) = common::start().await;
    let g = Graph::new(&s, &s.platform).await;
    use reqwest::Method;
    let path = "/applications(uniqueName='paddock-payments-checkout')";
    assert_eq!(
        g.send(
            Method::PATCH,
            path,
            Some(json!({"displayName": "checkout"})),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let created = g
        .http
        .patch(format!("{}{path}", g.root))
        .header("prefer", "create-if-missing")
        .json(&json!({"displayName": "checkout"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    g.csdl
        .check("application", &created.json::<Value>().await.unwrap())
        .unwrap();
    let again = g
        .http
        .patch(format!("{}{path}", g.root))
        .header("prefer", "create-if-missing")
        .json(&json!({"displayName": "checkout (renamed)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::NO_CONTENT,
        "the second upsert updates"
    );
    assert_eq!(
        g.send(Method::GET, path, None, Some("application")).await.1["displayName"],
        "checkout (renamed)"
    );

    let mut seen = 0;
    let mut next = Some(format!("{}/applications?$top=1", g.root));
    while let Some(url) = next {
        let page: Value = g.http.get(&url).send().await.unwrap().json().await.unwrap();
        seen += page["value"].as_array().unwrap().len();
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 2, "the platform's own application and this one");
    s.stop().await;
}

#[tokio::test]
async fn groups_hold_members_and_owners_by_reference() {
    let (_dir, s) = common::start().await;
    let g = Graph::new(&s, &s.platform).await;
    use reqwest::Method;
    let (status, group) = g.send(Method::POST, "/groups", Some(json!({"displayName": "team-payments", "mailNickname": "team-payments", "mailEnabled": false, "securityEnabled": true})), Some("group")).await;
    assert_eq!(status, StatusCode::CREATED);
    let gid = group["id"].as_str().unwrap();
    let member =
        json!({"@odata.id": format!("{}/directoryObjects/{}", g.root, s.platform.object_id)});
    assert_eq!(
        g.send(
            Method::POST,
            &format!("/groups/{gid}/members/$ref"),
            Some(member.clone()),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        g.send(
            Method::POST,
            &format!("/groups/{gid}/members/$ref"),
            Some(member),
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST,
        "already a member"
    );
    let (_, members) = g
        .send(
            Method::GET,
            &format!("/groups/{gid}/members"),
            None,
            Some("servicePrincipal"),
        )
        .await;
    assert_eq!(members["value"][0]["id"], json!(s.platform.object_id));
    assert_eq!(
        g.send(
            Method::DELETE,
            &format!("/groups/{gid}/members/{}/$ref", s.platform.object_id),
            None,
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    // People are members too.
    let (status, ada) = g.send(Method::POST, "/users", Some(json!({"displayName": "Ada", "userPrincipalName": "ada@sandbox.example", "mailNickname": "ada", "accountEnabled": true, "passwordProfile": {"password": "Str0ng!pass", "forceChangePasswordNextSignIn": false}})), Some("user")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        ada.get("passwordProfile").is_none(),
        "the password is never returned"
    );
    let (status, _) = g.send(Method::POST, "/users", Some(json!({"displayName": "Ada 2", "userPrincipalName": "ADA@sandbox.example", "mailNickname": "ada2", "accountEnabled": true})), None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "userPrincipalName is unique"
    );
    let ada_ref = json!({"@odata.id": format!("{}/directoryObjects/{}", g.root, ada["id"].as_str().unwrap())});
    assert_eq!(
        g.send(
            Method::POST,
            &format!("/groups/{gid}/members/$ref"),
            Some(ada_ref),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, members) = g
        .send(
            Method::GET,
            &format!("/groups/{gid}/members"),
            None,
            Some("user"),
        )
        .await;
    assert_eq!(
        members["value"][0]["userPrincipalName"],
        "ada@sandbox.example"
    );
    let missing = json!({"@odata.id": format!("{}/directoryObjects/00000000-0000-0000-0000-000000000000", g.root)});
    assert_eq!(
        g.send(
            Method::POST,
            &format!("/groups/{gid}/owners/$ref"),
            Some(missing),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn only_the_platform_may_change_the_directory() {
    let (_dir, s) = common::start().await;
    let team = common::register(&s, "team-a").await;
    let g = Graph::new(&s, &team).await;
    let (status, err) = g
        .send(
            reqwest::Method::POST,
            "/applications",
            Some(json!({"displayName": "sneaky"})),
            None,
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("Authorization_RequestDenied"))
    );
    // The metadata check itself refuses what Graph would never send.
    assert!(g.csdl.check("application", &json!({"bogus": 1})).is_err());
    assert!(
        g.csdl
            .check("application", &json!({"displayName": 5}))
            .is_err()
    );
    let anonymous = reqwest::Client::new()
        .get(format!("{}/graph/v1.0/applications", s.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn each_application_has_its_own_budget_of_requests_per_ten_seconds() {
    let (_dir, s) = common::start_with(|config| config.graph_requests_per_10s = 3).await;
    let team = common::register(&s, "team-a").await;
    let (platform, other) = (
        Graph::new(&s, &s.platform).await,
        Graph::new(&s, &team).await,
    );
    use reqwest::Method;
    for _ in 0..3 {
        assert_eq!(
            platform
                .send(Method::GET, "/applications", None, Some("application"))
                .await
                .0,
            StatusCode::OK
        );
    }
    let throttled = platform
        .http
        .get(format!("{}/applications", platform.root))
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=10).contains(&retry_after),
        "within the ten seconds: {retry_after}"
    );
    let err: Value = throttled.json().await.unwrap();
    assert_eq!(err["error"]["code"], "TooManyRequests", "{err}");
    for field in ["date", "request-id", "client-request-id"] {
        assert!(err["error"]["innerError"][field].is_string(), "{err}");
    }
    assert_eq!(
        other
            .send(Method::GET, "/applications", None, Some("application"))
            .await
            .0,
        StatusCode::OK,
        "another application has a budget of its own"
    );
    s.stop().await;
}

#[tokio::test]
async fn directory_objects_are_found_by_key_and_updated_in_place() {
    let (_dir, s) = common::start().await;
    let g = Graph::new(&s, &s.platform).await;
    use reqwest::Method;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_owned();

    // Users by userPrincipalName as well as by id.
    let (_, ada) = g.send(Method::POST, "/users", Some(json!({"displayName": "Ada", "userPrincipalName": "ada@sandbox.example", "mailNickname": "ada", "accountEnabled": true})), Some("user")).await;
    let (status, found) = g
        .send(
            Method::GET,
            "/users/ADA@sandbox.example",
            None,
            Some("user"),
        )
        .await;
    assert_eq!((status, &found["id"]), (StatusCode::OK, &ada["id"]));
    let (status, err) = g
        .send(Method::GET, "/users/nobody@sandbox.example", None, None)
        .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::NOT_FOUND, "Request_ResourceNotFound".into())
    );

    // `$filter` on any string property, clauses joined by `and`, without regard to case;
    // paging keeps the filter.
    for (name, nick) in [
        ("team's one", "one"),
        ("team's one", "one-b"),
        ("two", "two"),
    ] {
        let body = json!({"displayName": name, "mailNickname": nick, "mailEnabled": false, "securityEnabled": true});
        assert_eq!(
            g.send(Method::POST, "/groups", Some(body), Some("group"))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    /// The mail nicknames of the groups a filter selects, a page of one at a time.
    async fn filtered(g: &Graph, filter: &str) -> Vec<String> {
        // A space as `+`, as forms and most clients write it.
        let url = format!(
            "{}/groups?$filter={}&$top=1",
            g.root,
            filter.replace(' ', "+")
        );
        let mut page: Value = g.http.get(url).send().await.unwrap().json().await.unwrap();
        let mut seen = Vec::new();
        loop {
            for v in page["value"].as_array().unwrap() {
                seen.push(v["mailNickname"].as_str().unwrap().to_owned());
            }
            let Some(next) = page["@odata.nextLink"].as_str() else {
                break;
            };
            page = g.http.get(next).send().await.unwrap().json().await.unwrap();
        }
        seen.sort();
        seen
    }
    assert_eq!(
        filtered(&g, "displayName eq 'TEAM''S ONE'").await,
        ["one", "one-b"]
    );
    assert_eq!(
        filtered(
            &g,
            "displayName eq 'team''s one' and mailNickname eq 'one-b'"
        )
        .await,
        ["one-b"]
    );
    assert!(filtered(&g, "displayName eq 'three'").await.is_empty());
    let (status, err) = g
        .send(
            Method::GET,
            "/groups?$filter=startswith(displayName,'t')",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::BAD_REQUEST, "Request_UnsupportedQuery".into())
    );

    // Groups are updated in place; deleting one drops its references.
    let (_, two) = g
        .send(
            Method::GET,
            "/groups?$filter=mailNickname%20eq%20'two'",
            None,
            Some("group"),
        )
        .await;
    let gid = two["value"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = g
        .send(
            Method::PATCH,
            &format!("/groups/{gid}"),
            Some(json!({"displayName": "two (renamed)", "description": "the second"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, two) = g
        .send(Method::GET, &format!("/groups/{gid}"), None, Some("group"))
        .await;
    assert_eq!(
        (two["displayName"].as_str(), two["description"].as_str()),
        (Some("two (renamed)"), Some("the second"))
    );
    let ada_ref = json!({"@odata.id": format!("{}/directoryObjects/{}", g.root, ada["id"].as_str().unwrap())});
    g.send(
        Method::POST,
        &format!("/groups/{gid}/members/$ref"),
        Some(ada_ref),
        None,
    )
    .await;
    let (status, err) = g
        .send(
            Method::DELETE,
            &format!("/groups/{gid}/members/00000000-0000-0000-0000-000000000000/$ref"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::NOT_FOUND, "Request_ResourceNotFound".into())
    );
    assert_eq!(
        g.send(Method::DELETE, &format!("/groups/{gid}"), None, None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    let members = reqwest::get(format!("{}/inspect", s.control_url))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["graph"]["member"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(members, 0, "the group's member references went with it");

    // Alternate keys are OData string literals: a quote inside is doubled.
    let created = g
        .http
        .patch(format!("{}/applications(uniqueName='o''brien')", g.root))
        .header("prefer", "create-if-missing")
        .json(&json!({"displayName": "o'brien"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let (_, app) = g
        .send(
            Method::GET,
            "/applications(uniqueName='o''brien')",
            None,
            Some("application"),
        )
        .await;
    assert_eq!(app["uniqueName"], "o'brien");
    let (app_object, app_id) = (app["id"].as_str().unwrap(), app["appId"].as_str().unwrap());
    let (_, listed) = g
        .send(
            Method::GET,
            &format!("/applications?$filter=appId eq '{}'", app_id.to_uppercase()),
            None,
            Some("application"),
        )
        .await;
    assert_eq!(listed["value"][0]["id"], app["id"]);

    // Federated credentials are read and updated one by one; the name is fixed.
    let path = format!("/applications/{app_object}/federatedIdentityCredentials");
    let (_, fic) = g.send(Method::POST, &path, Some(json!({"name": "github-test", "issuer": "https://issuer.example", "subject": "repo:acme/checkout:environment:test", "audiences": ["api://AzureADTokenExchange"]})), Some("federatedIdentityCredential")).await;
    let one = format!("{path}/{}", fic["id"].as_str().unwrap());
    let (status, _) = g
        .send(
            Method::PATCH,
            &one,
            Some(json!({"subject": "repo:acme/checkout:environment:dev", "description": "dev"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, got) = g
        .send(Method::GET, &one, None, Some("federatedIdentityCredential"))
        .await;
    assert_eq!(
        (status, got["subject"].as_str(), got["description"].as_str()),
        (
            StatusCode::OK,
            Some("repo:acme/checkout:environment:dev"),
            Some("dev")
        )
    );
    let (status, _) = g
        .send(Method::PATCH, &one, Some(json!({"name": "other"})), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the name cannot change");
    assert_eq!(
        g.send(
            Method::DELETE,
            &format!("/applications/{app_object}"),
            None,
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (status, err) = g.send(Method::GET, &one, None, None).await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::NOT_FOUND, "Request_ResourceNotFound".into())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_control_api_makes_a_person_in_github_and_in_the_directory() {
    let (_dir, s) = common::start().await;
    let http = reqwest::Client::new();
    let made = http
        .post(format!("{}/people", s.control_url))
        .body(r#"{"login": "ada"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let upn = format!("ada@{}", paddock_sandbox::graph::USER_DOMAIN);
    let token = common::token_for(&s, &s.platform, "https://graph.microsoft.com").await;
    let user = http
        .get(format!("{}/graph/v1.0/users/{upn}", s.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), StatusCode::OK);
    let github = http
        .get(format!(
            "{}{}/users/ada",
            s.base_url,
            paddock_sandbox::GITHUB_ROOT
        ))
        .bearer_auth(&s.github_token)
        .send()
        .await
        .unwrap();
    assert_eq!(github.status(), StatusCode::OK);
    let bad = http
        .post(format!("{}/people", s.control_url))
        .body(r#"{"login": "a b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("login"));
}
