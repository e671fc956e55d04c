//! The platform against real GitHub, Azure, Entra ID and Kubernetes. Ignored — reported
//! as skipped — unless run on purpose with credentials (README, "Real clouds"):
//!
//!     PADDOCK_GITHUB_ORG=… PADDOCK_AZURE_TENANT_ID=… … \
//!       cargo nextest run -p paddock-platform --run-ignored only -E 'test(live_)'
//!
//! It provisions a team and a one-stage environment under unique names, checks them
//! through the same providers, and destroys them, leaving nothing behind.

use std::sync::Arc;

use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{Discard, Engine, EngineOptions};
use paddock_platform::{EnvironmentSpec, QuotaSize, Settings, Stage, TeamSpec};
use paddock_providers::clouds::Clouds;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs real cloud credentials: PADDOCK_GITHUB_ORG, PADDOCK_AZURE_*, PADDOCK_KUBECONFIG, PADDOCK_LIVE_ADMIN (see README)"]
async fn live_a_team_and_a_dev_environment_round_trip_on_real_clouds() {
    let Some(clouds) = Clouds::from_env().expect("the PADDOCK_* settings are consistent") else {
        eprintln!(
            "live: skipped, no PADDOCK_GITHUB_ORG / PADDOCK_AZURE_TENANT_ID in the environment"
        );
        return;
    };
    let admin = std::env::var("PADDOCK_LIVE_ADMIN")
        .expect("PADDOCK_LIVE_ADMIN: a GitHub login that is also a directory user");
    let suffix = format!("{:06x}", rand_suffix());
    let team = TeamSpec {
        name: format!("paddock-live-{suffix}"),
        description: "Paddock's live test; deleted at its end.".into(),
        admins: vec![admin.clone()],
        contributors: Vec::new(),
    };
    let env = EnvironmentSpec {
        team: team.name.clone(),
        app: "probe".into(),
        stages: vec![Stage::Dev],
        admins: vec![admin],
        contributors: Vec::new(),
        region: std::env::var("PADDOCK_LIVE_REGION").unwrap_or_else(|_| "westeurope".into()),
        quota: QuotaSize::Small,
    };
    let settings = Settings {
        github_org: clouds.github.org.clone(),
        oidc_issuer: clouds.oidc_issuer.clone(),
        tenant_id: clouds.entra.tenant_id.clone(),
        subscription_id: clouds.azure.subscription_id.clone(),
        template_repository: std::env::var("PADDOCK_LIVE_TEMPLATE")
            .unwrap_or_else(|_| paddock_platform::DEFAULT_TEMPLATE_REPOSITORY.into()),
    };
    let dir = tempfile::tempdir().unwrap();
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
    let cancel = CancellationToken::new();

    let mut runs = vec![
        paddock_platform::platform_stack(&settings),
        paddock_platform::team_stack(&team).unwrap(),
    ];
    runs.extend(paddock_platform::environment_stacks(&env, &settings).unwrap());
    let outcomes = paddock_platform::up(&engine, &runs, &Discard, &cancel)
        .await
        .unwrap();
    let provisioned = outcomes.len() == runs.len() && outcomes.iter().all(|o| o.report.succeeded());

    // Clean up whatever happened; the platform stack (the template) is kept for next time.
    let mut teardown = paddock_platform::environment_teardown(&env);
    teardown.push(paddock_platform::team_stack_name(&team.name));
    let destroyed = paddock_platform::destroy(&engine, &teardown, &Discard, &cancel)
        .await
        .unwrap();
    assert!(provisioned, "{outcomes:?}");
    assert!(
        destroyed.iter().all(|o| o.report.succeeded()),
        "{destroyed:?}"
    );
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32))
        & 0xff_ffff
}
