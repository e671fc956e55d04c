//! The isolation suite's rig: a sandbox, two teams with an environment each provisioned
//! through the real providers, and the credentials each stage hands its team — taken the
//! way the team gets them (the `KUBECONFIG` environment secret as GitHub holds it, the
//! Azure identity through a GitHub Actions token exchanged by federation).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{Discard, Engine, EngineOptions, Value};
use paddock_platform::{
    DEFAULT_TEMPLATE_REPOSITORY, EnvironmentSpec, QuotaSize, Settings, Stage, TeamSpec,
};
use paddock_providers::clouds::Clouds;
use paddock_providers::kubernetes::{KubeAuth, KubernetesConfig};
use paddock_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub sandbox: Sandbox,
    pub engine: Engine,
    pub settings: Settings,
}

/// One stage of one team's environment, and what Paddock made for it.
#[derive(Clone, Debug)]
pub struct StageRef {
    pub team: String,
    /// The repository's name (`payments-checkout`), and with its org.
    pub repo: String,
    pub full_repo: String,
    pub stage: &'static str,
    pub namespace: String,
    pub group_id: String,
    pub client_id: String,
    /// The stage identity's service principal.
    pub principal_id: String,
    pub application_object_id: String,
}

impl StageRef {
    pub fn label(&self) -> String {
        format!("{}/{}", self.repo, self.stage)
    }
}

pub const STAGES: [Stage; 3] = [Stage::Dev, Stage::Test, Stage::Prod];

/// The two teams: (team, app, admins, contributors).
pub const TEAMS: [(&str, &str, &str, &str); 2] = [
    ("payments", "checkout", "ada", "bob"),
    ("ledger", "books", "cy", "dee"),
];

pub async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path().join("sandbox"));
    config.arm.delete_delay = Duration::from_millis(300);
    config.arm.principal_replication_delay = Duration::from_millis(500);
    config.github_template_delay = Duration::from_millis(300);
    config.kubernetes.namespace_termination = Duration::from_millis(300);
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
    for (_, _, admin, contributor) in TEAMS {
        for login in [admin, contributor] {
            person(&sandbox, login).await;
        }
    }
    Rig {
        dir,
        sandbox,
        engine,
        settings,
    }
}

/// A person: a GitHub user and a directory user of the same name.
async fn person(s: &Sandbox, login: &str) {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/github/users", s.control_url))
        .json(&json!({"login": login}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let token = platform_token(s, "https://graph.microsoft.com/.default").await;
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

/// Posts a form to the tenant's token endpoint: status and body.
pub async fn token_endpoint(s: &Sandbox, form: &[(&str, &str)]) -> (u16, Json) {
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

async fn platform_token(s: &Sandbox, scope: &str) -> String {
    let (_, t) = token_endpoint(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &s.platform.client_id),
            ("client_secret", &s.platform.client_secret),
            ("scope", scope),
        ],
    )
    .await;
    t["access_token"].as_str().unwrap().to_owned()
}

fn team(name: &str, admin: &str, contributor: &str) -> TeamSpec {
    TeamSpec {
        name: name.into(),
        description: format!("Team {name}."),
        admins: vec![admin.into()],
        contributors: vec![contributor.into()],
    }
}

fn environment(team: &str, app: &str, admin: &str, contributor: &str) -> EnvironmentSpec {
    EnvironmentSpec {
        team: team.into(),
        app: app.into(),
        stages: STAGES.to_vec(),
        admins: vec![admin.into()],
        contributors: vec![contributor.into()],
        region: "westeurope".into(),
        quota: QuotaSize::Small,
    }
}

/// Brings up the platform, both teams and both environments; every stack must succeed.
/// The stages, in team then stage order.
pub async fn provision(r: &Rig) -> Vec<StageRef> {
    let mut runs = vec![paddock_platform::platform_stack(&r.settings)];
    for (name, app, admin, contributor) in TEAMS {
        runs.push(paddock_platform::team_stack(&team(name, admin, contributor)).unwrap());
        let env = environment(name, app, admin, contributor);
        runs.extend(paddock_platform::environment_stacks(&env, &r.settings).unwrap());
    }
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
    let mut stages = Vec::new();
    for (name, app, _, _) in TEAMS {
        for stage in STAGES {
            let stack = format!("{name}-{app}-{}", stage.name());
            let state = r.engine.read_state(&stack).await.unwrap();
            let application = state
                .resources
                .iter()
                .find(|x| x.name == "application")
                .unwrap();
            let repo = format!("{name}-{app}");
            stages.push(StageRef {
                team: name.to_owned(),
                full_repo: format!("{}/{repo}", r.settings.github_org),
                repo,
                stage: stage.name(),
                namespace: output(&r.engine, &stack, "namespace").await,
                group_id: output(&r.engine, &stack, "resourceGroupId").await,
                client_id: output(&r.engine, &stack, "clientId").await,
                principal_id: output(&r.engine, &stack, "servicePrincipalId").await,
                application_object_id: application
                    .outputs
                    .get("objectId")
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_owned(),
            });
        }
    }
    stages
}

async fn output(engine: &Engine, stack: &str, name: &str) -> String {
    let outputs = engine.outputs(stack).await.unwrap();
    outputs
        .get(name)
        .map(Value::reveal)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{stack} has no output {name}"))
}

/// The deployer's token, read from the `KUBECONFIG` secret as GitHub delivered it, the
/// way kubectl reads a kubeconfig.
pub async fn deployer_token(r: &Rig, stage: &StageRef) -> String {
    let secret: Json = reqwest::get(format!(
        "{}/github/secrets/{}/{}/KUBECONFIG",
        r.sandbox.control_url, stage.repo, stage.stage
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let path = r.dir.path().join(format!("kubeconfig-{}", stage.namespace));
    std::fs::write(&path, secret["value"].as_str().unwrap()).unwrap();
    let config = KubernetesConfig::from_kubeconfig(&path, None).unwrap();
    assert_eq!(
        config.server,
        r.sandbox.kubernetes_url(),
        "the kubeconfig names the cluster"
    );
    match config.auth {
        KubeAuth::Token(token) => token,
        other => panic!(
            "{}: a deployer authenticates by token, not {other:?}",
            stage.label()
        ),
    }
}

/// The token GitHub Actions gives a run of `repo` (`ORG/REPO`) in `environment`.
pub async fn workflow_token(s: &Sandbox, repo: &str, environment: &str) -> String {
    let minted: Json = reqwest::Client::new()
        .post(format!("{}/github-actions/tokens", s.control_url))
        .json(&json!({"repository": repo, "environment": environment}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    minted["value"].as_str().unwrap().to_owned()
}

/// `azure/login`'s exchange: a workflow token as the client assertion of `client_id`,
/// for `scope`. Status and body.
pub async fn exchange(s: &Sandbox, client_id: &str, assertion: &str, scope: &str) -> (u16, Json) {
    token_endpoint(
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

/// The stage's identity, signed in from its own workflow: a token for `scope`.
pub async fn stage_identity(s: &Sandbox, stage: &StageRef, scope: &str) -> String {
    let assertion = workflow_token(s, &stage.full_repo, stage.stage).await;
    let (status, token) = exchange(s, &stage.client_id, &assertion, scope).await;
    assert_eq!(status, 200, "{}: {token}", stage.label());
    token["access_token"].as_str().unwrap().to_owned()
}
