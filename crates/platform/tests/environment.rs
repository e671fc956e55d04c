//! The platform end to end against the sandbox cloud: team `payments` and environment
//! `checkout` with dev, test and prod, through the real providers, checked in the four
//! APIs — and then changed, attacked and destroyed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{Discard, Engine, EngineOptions, StepKind, Value};
use paddock_platform::{
    DEFAULT_TEMPLATE_REPOSITORY, EnvironmentSpec, QuotaSize, Settings, Stage, TeamSpec,
};
use paddock_providers::clouds::Clouds;
use paddock_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

struct Rig {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    engine: Engine,
    settings: Settings,
}

async fn rig(configure: impl FnOnce(&mut SandboxConfig)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path().join("sandbox"));
    config.arm.delete_delay = Duration::from_millis(300);
    config.arm.principal_replication_delay = Duration::from_millis(500);
    config.github_template_delay = Duration::from_millis(300);
    config.kubernetes.namespace_termination = Duration::from_millis(300);
    configure(&mut config);
    let sandbox = Sandbox::start(config).await.unwrap();
    let env: BTreeMap<String, String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let clouds = Clouds::from_sandbox_env(&env).unwrap();
    let store = paddock_store::SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    let key = LocalKeyFile::open_or_create(&dir.path().join("master.key")).unwrap();
    let engine = Engine::new(
        Arc::new(store),
        clouds.registry().unwrap(),
        Arc::new(key),
        EngineOptions::default(),
    );
    let settings = Settings {
        github_org: env["PADDOCK_SANDBOX_GITHUB_ORG"].clone(),
        oidc_issuer: clouds.oidc_issuer.clone(),
        tenant_id: env["PADDOCK_SANDBOX_TENANT_ID"].clone(),
        subscription_id: env["PADDOCK_SANDBOX_SUBSCRIPTION_ID"].clone(),
        template_repository: DEFAULT_TEMPLATE_REPOSITORY.to_owned(),
    };
    for login in ["ada", "bob", "cy"] {
        people(&sandbox, login).await;
    }
    Rig {
        _dir: dir,
        sandbox,
        engine,
        settings,
    }
}

/// A person: a GitHub user and a directory user of the same name.
async fn people(s: &Sandbox, login: &str) {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/github/users", s.control_url))
        .json(&json!({"login": login}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let token = graph_token(s).await;
    let r = http
        .post(format!("{}/graph/v1.0/users", s.base_url))
        .bearer_auth(token)
        .json(&json!({
            "accountEnabled": true,
            "displayName": login,
            "mailNickname": login,
            "userPrincipalName": format!("{login}@{}", paddock_sandbox::graph::USER_DOMAIN),
            "passwordProfile": {"password": "Unused-1234!"},
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn token_for(s: &Sandbox, form: &[(&str, &str)]) -> (u16, Json) {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            s.base_url, s.identity.tenant_id
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn graph_token(s: &Sandbox) -> String {
    let (_, t) = token_for(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &s.platform.client_id),
            ("client_secret", &s.platform.client_secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    t["access_token"].as_str().unwrap().to_owned()
}

fn team() -> TeamSpec {
    TeamSpec {
        name: "payments".into(),
        description: "Takes the money.".into(),
        admins: vec!["ada".into()],
        contributors: vec!["bob".into()],
    }
}

fn checkout() -> EnvironmentSpec {
    EnvironmentSpec {
        team: "payments".into(),
        app: "checkout".into(),
        stages: vec![Stage::Dev, Stage::Test, Stage::Prod],
        admins: vec!["ada".into()],
        contributors: vec!["bob".into()],
        region: "westeurope".into(),
        quota: QuotaSize::Small,
    }
}

/// Brings up the platform, the team and the environment; every stack must succeed.
async fn provision(r: &Rig) {
    let mut runs = vec![
        paddock_platform::platform_stack(&r.settings),
        paddock_platform::team_stack(&team()).unwrap(),
    ];
    runs.extend(paddock_platform::environment_stacks(&checkout(), &r.settings).unwrap());
    let outcomes = paddock_platform::up(&r.engine, &runs, &Discard, &CancellationToken::new())
        .await
        .unwrap();
    for o in &outcomes {
        assert!(
            o.report.succeeded(),
            "{}: {:?} {:?}",
            o.stack,
            o.report.failures,
            o.report.skipped
        );
    }
    assert_eq!(outcomes.len(), runs.len());
}

async fn inspect(s: &Sandbox) -> Json {
    reqwest::get(format!("{}/inspect", s.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn docs<'a>(all: &'a Json, api: &str, kind: &str) -> Vec<&'a Json> {
    all[api][kind]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

async fn output(engine: &Engine, stack: &str, name: &str) -> String {
    let outputs = engine.outputs(stack).await.unwrap();
    outputs
        .get(name)
        .map(Value::reveal)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{stack} has no output {name}"))
}

/// An ARM token for a workflow run of `repo` in `environment`, got the way `azure/login`
/// gets it: GitHub's OIDC token exchanged as a client assertion for the stage's app.
async fn workflow_arm_token(
    s: &Sandbox,
    client_id: &str,
    repo: &str,
    environment: &str,
) -> (u16, Json) {
    let minted: Json = reqwest::Client::new()
        .post(format!("{}/github-actions/tokens", s.control_url))
        .json(&json!({"repository": repo, "environment": environment}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token_for(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", minted["value"].as_str().unwrap()),
            ("scope", "https://management.azure.com/.default"),
        ],
    )
    .await
}

/// Adds a tag to `group` as `az group update --set tags.deployedBy=workflow` does: the
/// group's tags read, and PATCHed back with the new one (a PATCH replaces all tags; the
/// ones Paddock's ownership mark is made of are kept).
async fn tag_group(s: &Sandbox, token: &str, group: &str) -> (u16, Json) {
    let url = format!(
        "{}/subscriptions/{}/resourcegroups/{group}?api-version=2024-11-01",
        s.base_url, s.identity.subscription_id
    );
    let client = reqwest::Client::new();
    let read = client.get(&url).bearer_auth(token).send().await.unwrap();
    let mut tags = if read.status().is_success() {
        let group: Json = read.json().await.unwrap_or(Json::Null);
        group["tags"].as_object().cloned().unwrap_or_default()
    } else {
        serde_json::Map::new()
    };
    tags.insert("deployedBy".into(), json!("workflow"));
    let r = client
        .patch(&url)
        .bearer_auth(token)
        .json(&json!({ "tags": tags }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Json::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_and_its_environment_are_provisioned_walled_changed_and_destroyed() {
    let r = rig(|_| {}).await;
    provision(&r).await;
    let s = &r.sandbox;
    let all = inspect(s).await;
    let org = &r.settings.github_org;
    let repo = format!("{org}/payments-checkout");

    // Azure: a group per stage, locked against deletion, and its identity is Contributor
    // there and nowhere else.
    let locked: Vec<&str> = docs(&all, "arm", "managementLock")
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(locked.len(), 3, "{locked:?}");
    for stage in ["dev", "test", "prod"] {
        assert!(
            locked.iter().any(|id| id.contains(&format!(
                "/resourceGroups/rg-payments-checkout-{stage}/providers/Microsoft.Authorization/locks/"
            ))),
            "{stage}: {locked:?}"
        );
    }
    let groups: Vec<&str> = docs(&all, "arm", "resourceGroup")
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "rg-payments-checkout-dev",
            "rg-payments-checkout-prod",
            "rg-payments-checkout-test"
        ]
    );
    for stage in ["dev", "test", "prod"] {
        let stack = format!("payments-checkout-{stage}");
        let principal = output(&r.engine, &stack, "servicePrincipalId").await;
        let scopes: Vec<String> = docs(&all, "arm", "roleAssignment")
            .iter()
            .filter(|a| a["properties"]["principalId"] == principal.as_str())
            .map(|a| a["properties"]["scope"].as_str().unwrap().to_lowercase())
            .collect();
        assert_eq!(scopes.len(), 1, "{stage}: {scopes:?}");
        assert!(
            scopes[0].ends_with(&format!("/resourcegroups/rg-payments-checkout-{stage}")),
            "{scopes:?}"
        );
    }

    // Entra: one federated credential per stage, for that stage's GitHub environment only.
    let mut subjects: Vec<&str> = docs(&all, "graph", "federatedIdentityCredential")
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            format!("repo:{repo}:environment:dev"),
            format!("repo:{repo}:environment:prod"),
            format!("repo:{repo}:environment:test"),
        ]
    );
    // No long-lived secret exists for an environment: the only password is the platform's.
    assert_eq!(docs(&all, "graph", "secret").len(), 1);
    for app in docs(&all, "graph", "application") {
        if app["appId"] != s.platform.client_id.as_str() {
            let passwords = app["passwordCredentials"].as_array().map_or(0, Vec::len);
            assert_eq!(passwords, 0, "{app}");
        }
    }

    // Kubernetes: each namespace with its guardrails.
    for stage in ["dev", "test", "prod"] {
        let ns = format!("payments-checkout-{stage}");
        for kind in [
            "serviceaccounts",
            "roles",
            "rolebindings",
            "resourcequotas",
            "limitranges",
            "networkpolicies",
        ] {
            assert!(
                docs(&all, "kubernetes", kind)
                    .iter()
                    .any(|o| o["metadata"]["namespace"] == ns.as_str()),
                "{ns} has no {kind}"
            );
        }
    }

    // GitHub: the repository from the template, three environments; prod alone reviewed;
    // the secret that arrived is the one Paddock meant to send.
    let environments: Vec<&Json> = docs(&all, "github", "environment");
    assert_eq!(environments.len(), 3, "{environments:?}");
    for stage in ["dev", "test", "prod"] {
        let stack = format!("payments-checkout-{stage}");
        let state = r.engine.read_state(&stack).await.unwrap();
        let token = state
            .resources
            .iter()
            .find(|x| x.name == "deployerToken")
            .unwrap();
        let meant = token.outputs.get("kubeconfig").unwrap().reveal();
        let arrived: Json = reqwest::get(format!(
            "{}/github/secrets/payments-checkout/{stage}/KUBECONFIG",
            s.control_url
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(arrived["value"].as_str(), meant.as_str(), "{stage}");
    }

    // What each stage's deploy job reads as `vars`: its own identity, group and
    // namespace from its environment; the tenant and subscription, which every stage
    // shares, from the repository (written once, not once per stage).
    for stage in ["dev", "test", "prod"] {
        let vars: Json = reqwest::get(format!(
            "{}/github/vars/payments-checkout/{stage}",
            s.control_url
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let client = output(&r.engine, &format!("payments-checkout-{stage}"), "clientId").await;
        assert_eq!(
            vars,
            json!({
                "AZURE_CLIENT_ID": client,
                "AZURE_TENANT_ID": s.identity.tenant_id,
                "AZURE_SUBSCRIPTION_ID": s.identity.subscription_id,
                "AZURE_RESOURCE_GROUP": format!("rg-payments-checkout-{stage}"),
                "K8S_NAMESPACE": format!("payments-checkout-{stage}"),
            }),
            "{stage}"
        );
    }
    let environment_level: Vec<&str> = docs(&all, "github", "variable")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(environment_level.len(), 9, "{environment_level:?}");
    assert!(!environment_level.contains(&"AZURE_TENANT_ID"));
    assert_eq!(docs(&all, "github", "repositoryVariable").len(), 2);

    // The walled garden: a test workflow's token reaches test's group, not prod's.
    let test_client = output(&r.engine, "payments-checkout-test", "clientId").await;
    let (status, token) = workflow_arm_token(s, &test_client, &repo, "test").await;
    assert_eq!(status, 200, "{token}");
    let token = token["access_token"].as_str().unwrap();
    assert_eq!(
        tag_group(s, token, "rg-payments-checkout-test").await.0,
        200
    );
    let (status, denied) = tag_group(s, token, "rg-payments-checkout-prod").await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["error"]["code"], "AuthorizationFailed");
    let prod_client = output(&r.engine, "payments-checkout-prod", "clientId").await;
    let (status, refused) = workflow_arm_token(s, &prod_client, &repo, "test").await;
    assert_eq!(status, 400, "a test run cannot be prod: {refused}");

    // Changing the admins changes the team's membership and prod's reviewers, nothing else.
    let mut env = checkout();
    env.admins = vec!["ada".into(), "cy".into()];
    let mut team = team();
    team.admins = env.admins.clone();
    let mut runs = vec![paddock_platform::team_stack(&team).unwrap()];
    runs.extend(paddock_platform::environment_stacks(&env, &r.settings).unwrap());
    let mut changed = BTreeMap::new();
    for run in &runs {
        let plan = r.engine.preview(&run.stack, &run.graph).await.unwrap();
        let names: Vec<String> = plan
            .steps
            .iter()
            .filter(|st| st.kind != StepKind::Same)
            .map(|st| format!("{:?} {}", st.kind, st.name))
            .collect();
        changed.insert(run.stack.clone(), names);
    }
    assert_eq!(
        changed["team-payments"],
        ["Update githubTeam", "Update group"]
    );
    assert_eq!(
        changed["payments-checkout-prod"],
        ["Update githubEnvironment"]
    );
    for quiet in [
        "payments-checkout",
        "payments-checkout-dev",
        "payments-checkout-test",
    ] {
        assert!(changed[quiet].is_empty(), "{quiet}: {:?}", changed[quiet]);
    }
    let outcomes = paddock_platform::up(&r.engine, &runs, &Discard, &CancellationToken::new())
        .await
        .unwrap();
    assert!(outcomes.iter().all(|o| o.report.succeeded()));
    let all = inspect(s).await;
    let prod = docs(&all, "github", "environment")
        .into_iter()
        .find(|e| e["name"] == "prod")
        .unwrap();
    assert_eq!(
        prod.to_string().matches("\"login\":\"cy\"").count(),
        1,
        "cy reviews prod: {prod}"
    );

    // Destroy: everything goes, in order, and nothing is left in any API.
    let mut teardown = paddock_platform::environment_teardown(&env);
    teardown.push(paddock_platform::team_stack_name("payments"));
    teardown.push(paddock_platform::PLATFORM_STACK.to_owned());
    let outcomes =
        paddock_platform::destroy(&r.engine, &teardown, &Discard, &CancellationToken::new())
            .await
            .unwrap();
    for o in &outcomes {
        assert!(o.report.succeeded(), "{}: {:?}", o.stack, o.report.failures);
    }
    assert_nothing_left(s).await;
}

/// Only what the sandbox starts with remains: the platform identity and its Owner
/// assignment, the system namespaces.
async fn assert_nothing_left(s: &Sandbox) {
    let all = inspect(s).await;
    assert!(
        docs(&all, "arm", "resourceGroup").is_empty(),
        "{}",
        all["arm"]
    );
    assert_eq!(
        docs(&all, "arm", "roleAssignment").len(),
        1,
        "the platform's Owner only"
    );
    assert!(
        docs(&all, "arm", "managementLock").is_empty(),
        "locks left: {:?}",
        docs(&all, "arm", "managementLock")
    );
    for kind in ["roles", "rolebindings", "networkpolicies"] {
        assert!(
            docs(&all, "kubernetes", kind).is_empty(),
            "kubernetes {kind} left: {:?}",
            docs(&all, "kubernetes", kind)
        );
    }
    for kind in ["group", "federatedIdentityCredential"] {
        assert!(
            docs(&all, "graph", kind).is_empty(),
            "graph {kind} left: {:?}",
            docs(&all, "graph", kind)
        );
    }
    assert_eq!(
        docs(&all, "graph", "application").len(),
        1,
        "the platform's own application only"
    );
    assert_eq!(docs(&all, "graph", "servicePrincipal").len(), 1);
    for kind in ["repo", "team", "environment"] {
        assert!(
            docs(&all, "github", kind).is_empty(),
            "github {kind} left: {:?}",
            docs(&all, "github", kind)
        );
    }
    let namespaces: Vec<&str> = docs(&all, "kubernetes", "namespaces")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        namespaces
            .iter()
            .all(|n| n.starts_with("kube-") || *n == "default"),
        "{namespaces:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioning_through_faults_completes_without_duplicates() {
    let r = rig(|c| c.fault_seed = 20261130).await;
    let rules = json!([
        {"api": "*", "probability": 0.05, "error": "503", "retryAfterSecs": 0},
        {"api": "*", "probability": 0.05, "error": "429", "retryAfterSecs": 0},
        {"api": "*", "probability": 0.3, "latencyMs": 25},
    ]);
    let set = reqwest::Client::new()
        .put(format!("{}/faults", r.sandbox.control_url))
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.text().await.unwrap());
    provision(&r).await;
    let faults: Json = reqwest::get(format!("{}/faults", r.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reqwest::Client::new()
        .delete(format!("{}/faults", r.sandbox.control_url))
        .send()
        .await
        .unwrap();

    let all = inspect(&r.sandbox).await;
    let counts: Vec<(&str, &str, usize)> = vec![
        ("arm", "resourceGroup", 3),
        ("arm", "roleAssignment", 4),
        ("arm", "managementLock", 3),
        ("graph", "application", 4),
        ("graph", "servicePrincipal", 4),
        ("graph", "federatedIdentityCredential", 3),
        ("graph", "group", 1),
        ("github", "repo", 2),
        ("github", "team", 1),
        ("github", "environment", 3),
        ("kubernetes", "roles", 3),
        ("kubernetes", "rolebindings", 3),
        ("kubernetes", "resourcequotas", 3),
        ("kubernetes", "networkpolicies", 3),
    ];
    for (api, kind, expected) in counts {
        assert_eq!(
            docs(&all, api, kind).len(),
            expected,
            "{api} {kind} (faults {faults})"
        );
    }
}
