//! What a team and an environment are, as stacks of Paddock's engine.
//!
//! Job: turn a team or an environment request into the stacks that make it — which
//! blueprint each renders, with which parameters — and run them in dependency order:
//! the platform's own stack (the template repository) once, a team's stack (GitHub team
//! and Entra group), an environment's repository stack, then one stack per stage, each
//! living and dying on its own so that dev can change while prod waits.
//!
//! Invariants: stack names are derived from the request alone (`team-{team}`,
//! `{team}-{app}`, `{team}-{app}-{stage}`), which is what the blueprints' stack
//! references name; prod's deployments need the environment's admins as reviewers, and
//! only prod's; an environment is rendered from one [`Bundle`] (a version of the
//! `environment` blueprint: the shipped one, or one published since), never from a mix;
//! the team blueprint and the template ship inside the binary.
//!
//! Must not: speak HTTP or SQL, or know which clouds are real: the engine's providers do.

use std::collections::BTreeMap;

use paddock_engine::blueprint::Blueprint;
use paddock_engine::graph::Diagnostics;
use paddock_engine::{
    AdmitAll, ApplyReport, DesiredGraph, Engine, EngineError, EventSink, Expr, PlanGate, Value,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

mod bundle;

pub use bundle::{
    BUNDLE_FILES, Bundle, REPOSITORY_FILE, REQUEST_FILE, STAGE_FILE, Version, newest, older,
};

pub const TEAM_BLUEPRINT: &str = include_str!("../../../blueprints/team.yaml");
/// What an environment request may ask for: its parameters are the one schema the API,
/// the portal's form and the CLI check against.
pub const ENVIRONMENT_BLUEPRINT: &str = include_str!("../../../blueprints/environment.yaml");
pub const REPOSITORY_BLUEPRINT: &str =
    include_str!("../../../blueprints/environment/repository.yaml");
pub const STAGE_BLUEPRINT: &str = include_str!("../../../blueprints/environment/stage.yaml");

/// The files of the environment repositories' template, path → content.
pub const TEMPLATE_FILES: &[(&str, &str)] = &[
    (
        ".github/workflows/deploy.yml",
        include_str!("../../../templates/environment/.github/workflows/deploy.yml"),
    ),
    (
        ".github/workflows/stage.yml",
        include_str!("../../../templates/environment/.github/workflows/stage.yml"),
    ),
    (
        "README.md",
        include_str!("../../../templates/environment/README.md"),
    ),
    (
        "deploy/azure.bicep",
        include_str!("../../../templates/environment/deploy/azure.bicep"),
    ),
    (
        "deploy/deploy.sh",
        include_str!("../../../templates/environment/deploy/deploy.sh"),
    ),
    (
        "k8s/app.yaml",
        include_str!("../../../templates/environment/k8s/app.yaml"),
    ),
];

/// The stack that holds the platform's own resources.
pub const PLATFORM_STACK: &str = "paddock-platform";

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<Diagnostics> for PlatformError {
    fn from(d: Diagnostics) -> Self {
        PlatformError::Invalid(d)
    }
}

/// Where the platform provisions: settings every stage needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub github_org: String,
    /// The issuer of GitHub Actions' OIDC tokens, which Entra is told to trust.
    pub oidc_issuer: String,
    pub tenant_id: String,
    pub subscription_id: String,
    /// The template repository in `github_org` that environments are generated from.
    pub template_repository: String,
}

/// The issuer of GitHub Actions' OIDC tokens on github.com.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const DEFAULT_TEMPLATE_REPOSITORY: &str = "paddock-environment-template";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dev,
    Test,
    Prod,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Dev, Stage::Test, Stage::Prod];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Dev => "dev",
            Stage::Test => "test",
            Stage::Prod => "prod",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.name() == s)
    }
}

/// How much of the cluster a stage's namespace may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaSize {
    Small,
    #[default]
    Medium,
    Large,
}

impl QuotaSize {
    pub fn name(self) -> &'static str {
        match self {
            QuotaSize::Small => "small",
            QuotaSize::Medium => "medium",
            QuotaSize::Large => "large",
        }
    }

    /// (CPU, memory, pods).
    fn figures(self) -> (&'static str, &'static str, &'static str) {
        match self {
            QuotaSize::Small => ("2", "4Gi", "10"),
            QuotaSize::Medium => ("4", "8Gi", "20"),
            QuotaSize::Large => ("16", "32Gi", "60"),
        }
    }
}

/// A team: the people who own environments.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub admins: Vec<String>,
    #[serde(default)]
    pub contributors: Vec<String>,
}

/// An environment: an application of a team, in some stages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    pub team: String,
    pub app: String,
    pub stages: Vec<Stage>,
    /// Who approves prod deployments.
    pub admins: Vec<String>,
    #[serde(default)]
    pub contributors: Vec<String>,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default)]
    pub quota: QuotaSize,
}

fn default_region() -> String {
    "westeurope".to_owned()
}

/// One stack to bring to a desired state.
#[derive(Clone, Debug)]
pub struct StackRun {
    pub stack: String,
    pub graph: DesiredGraph,
}

pub fn team_stack_name(team: &str) -> String {
    format!("team-{team}")
}

pub fn repository_stack_name(team: &str, app: &str) -> String {
    format!("{team}-{app}")
}

pub fn stage_stack_name(team: &str, app: &str, stage: Stage) -> String {
    format!("{team}-{app}-{}", stage.name())
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn list(items: &[String]) -> Value {
    Value::List(items.iter().map(|s| text(s)).collect())
}

fn render(
    file: &str,
    blueprint: &str,
    values: BTreeMap<String, Value>,
) -> Result<DesiredGraph, PlatformError> {
    Ok(Blueprint::parse(file, blueprint)?.render(&values)?)
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) fn settings() -> super::Settings {
        super::Settings {
            github_org: "acme".into(),
            oidc_issuer: super::GITHUB_ACTIONS_ISSUER.into(),
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            template_repository: super::DEFAULT_TEMPLATE_REPOSITORY.into(),
        }
    }
}

/// The platform's own stack: the template repository environments are generated from,
/// holding [`TEMPLATE_FILES`].
pub fn platform_stack(settings: &Settings) -> StackRun {
    let mut graph = DesiredGraph::new();
    graph
        .resource("template", "github:repository")
        .set("name", settings.template_repository.as_str())
        .set(
            "description",
            "The template every Paddock environment repository is generated from.",
        )
        .set("visibility", "private")
        .set("isTemplate", true);
    for (i, (path, content)) in TEMPLATE_FILES.iter().enumerate() {
        graph
            .resource(&format!("file{i}"), "github:file")
            .set("repository", Expr::reference("template", &["name"]))
            .set("path", *path)
            .set("content", *content)
            .set("message", format!("Paddock: {path}"));
    }
    graph.output(
        "templateRepository",
        Expr::reference("template", &["fullName"]),
    );
    StackRun {
        stack: PLATFORM_STACK.to_owned(),
        graph,
    }
}

pub fn team_stack(team: &TeamSpec) -> Result<StackRun, PlatformError> {
    let values = BTreeMap::from([
        ("team".to_owned(), text(&team.name)),
        ("description".to_owned(), text(&team.description)),
        ("admins".to_owned(), list(&team.admins)),
        ("contributors".to_owned(), list(&team.contributors)),
    ]);
    Ok(StackRun {
        stack: team_stack_name(&team.name),
        graph: render("blueprints/team.yaml", TEAM_BLUEPRINT, values)?,
    })
}

/// The shipped bundle's repository stack (see [`Bundle::repository_stack`]).
pub fn repository_stack(
    env: &EnvironmentSpec,
    settings: &Settings,
) -> Result<StackRun, PlatformError> {
    Bundle::shipped().repository_stack(env, settings)
}

/// The shipped bundle's stage stack (see [`Bundle::stage_stack`]).
pub fn stage_stack(
    env: &EnvironmentSpec,
    stage: Stage,
    settings: &Settings,
) -> Result<StackRun, PlatformError> {
    Bundle::shipped().stage_stack(env, stage, settings)
}

/// The shipped bundle's stacks (see [`Bundle::environment_stacks`]).
/// The platform settings a blueprint declares as parameters, as values: each stack
/// blueprint takes those it needs (a version's repository blueprint may hold what every
/// stage shares, an older one's stages may hold it themselves).
fn settings_declared(blueprint: &Blueprint, settings: &Settings) -> Vec<(String, Value)> {
    [
        ("githubOrg", &settings.github_org),
        ("oidcIssuer", &settings.oidc_issuer),
        ("tenantId", &settings.tenant_id),
        ("subscriptionId", &settings.subscription_id),
    ]
    .into_iter()
    .filter(|(name, _)| blueprint.parameters.iter().any(|p| p.name == *name))
    .map(|(name, value)| (name.to_owned(), text(value)))
    .collect()
}

pub fn environment_stacks(
    env: &EnvironmentSpec,
    settings: &Settings,
) -> Result<Vec<StackRun>, PlatformError> {
    Bundle::shipped().environment_stacks(env, settings)
}

impl Bundle {
    pub fn repository_stack(
        &self,
        env: &EnvironmentSpec,
        settings: &Settings,
    ) -> Result<StackRun, PlatformError> {
        let mut values = BTreeMap::from([
            ("team".to_owned(), text(&env.team)),
            ("app".to_owned(), text(&env.app)),
            (
                "template".to_owned(),
                text(&format!(
                    "{}/{}",
                    settings.github_org, settings.template_repository
                )),
            ),
        ]);
        values.extend(settings_declared(&self.repository, settings));
        Ok(StackRun {
            stack: repository_stack_name(&env.team, &env.app),
            graph: self.repository.render(&values)?,
        })
    }

    pub fn stage_stack(
        &self,
        env: &EnvironmentSpec,
        stage: Stage,
        settings: &Settings,
    ) -> Result<StackRun, PlatformError> {
        let (cpu, memory, pods) = env.quota.figures();
        // Prod waits for an admin; the other stages deploy on their own.
        let reviewers: &[String] = if stage == Stage::Prod {
            &env.admins
        } else {
            &[]
        };
        let branches: Vec<String> = match stage {
            Stage::Dev => vec!["main".to_owned()],
            Stage::Test | Stage::Prod => Vec::new(),
        };
        let mut values = BTreeMap::from([
            ("team".to_owned(), text(&env.team)),
            ("app".to_owned(), text(&env.app)),
            ("stage".to_owned(), text(stage.name())),
            ("region".to_owned(), text(&env.region)),
            ("reviewers".to_owned(), list(reviewers)),
            ("branches".to_owned(), list(&branches)),
            ("quotaCpu".to_owned(), text(cpu)),
            ("quotaMemory".to_owned(), text(memory)),
            ("quotaPods".to_owned(), text(pods)),
        ]);
        values.extend(settings_declared(&self.stage, settings));
        Ok(StackRun {
            stack: stage_stack_name(&env.team, &env.app, stage),
            graph: self.stage.render(&values)?,
        })
    }

    /// The environment's stacks in the order they are brought up: the repository, then
    /// each stage (dev, test, prod).
    pub fn environment_stacks(
        &self,
        env: &EnvironmentSpec,
        settings: &Settings,
    ) -> Result<Vec<StackRun>, PlatformError> {
        let mut stages = env.stages.clone();
        stages.sort();
        stages.dedup();
        let mut runs = vec![self.repository_stack(env, settings)?];
        for stage in stages {
            runs.push(self.stage_stack(env, stage, settings)?);
        }
        Ok(runs)
    }
}

/// The shipped environment request's blueprint (parameters only).
pub fn environment_request() -> &'static Blueprint {
    &Bundle::shipped().request
}

/// The stacks of stages an operation names that the environment no longer declares, in
/// the order they are destroyed (prod first): removing a stage destroys its stack.
pub fn retired_stage_stacks(env: &EnvironmentSpec, named: &[Stage]) -> Vec<String> {
    let mut retired: Vec<Stage> = named
        .iter()
        .copied()
        .filter(|s| !env.stages.contains(s))
        .collect();
    retired.sort();
    retired.dedup();
    retired
        .into_iter()
        .rev()
        .map(|s| stage_stack_name(&env.team, &env.app, s))
        .collect()
}

/// The stacks of an environment in the order they are destroyed: stages (prod first),
/// then the repository.
pub fn environment_teardown(env: &EnvironmentSpec) -> Vec<String> {
    let mut stacks: Vec<String> = Stage::ALL
        .iter()
        .rev()
        .map(|s| stage_stack_name(&env.team, &env.app, *s))
        .collect();
    stacks.push(repository_stack_name(&env.team, &env.app));
    stacks
}

/// What happened to one stack.
#[derive(Debug)]
pub struct StackOutcome {
    pub stack: String,
    pub report: ApplyReport,
}

/// Brings each stack up in order, stopping after the first that does not succeed (the
/// next ones read its outputs).
pub async fn up(
    engine: &Engine,
    runs: &[StackRun],
    sink: &dyn EventSink,
    cancel: &CancellationToken,
) -> Result<Vec<StackOutcome>, PlatformError> {
    up_gated(engine, runs, sink, cancel, &AdmitAll).await
}

/// [`up`], each stack's plan passing `gate` (policy, approvals) before it is applied; a
/// halted stack stops the run with `EngineError::Halted`, the stacks before it applied.
pub async fn up_gated(
    engine: &Engine,
    runs: &[StackRun],
    sink: &dyn EventSink,
    cancel: &CancellationToken,
    gate: &dyn PlanGate,
) -> Result<Vec<StackOutcome>, PlatformError> {
    let mut outcomes = Vec::new();
    for run in runs {
        let report = engine
            .up_gated(&run.stack, &run.graph, sink, cancel, gate)
            .await?;
        let succeeded = report.succeeded();
        outcomes.push(StackOutcome {
            stack: run.stack.clone(),
            report,
        });
        if !succeeded {
            break;
        }
    }
    Ok(outcomes)
}

/// Destroys each stack in order and removes it; stacks that do not exist are skipped.
/// Stops after the first that does not succeed.
pub async fn destroy(
    engine: &Engine,
    stacks: &[String],
    sink: &dyn EventSink,
    cancel: &CancellationToken,
) -> Result<Vec<StackOutcome>, PlatformError> {
    destroy_gated(engine, stacks, sink, cancel, &AdmitAll).await
}

/// [`destroy`], each stack's deletion plan passing `gate` first.
pub async fn destroy_gated(
    engine: &Engine,
    stacks: &[String],
    sink: &dyn EventSink,
    cancel: &CancellationToken,
    gate: &dyn PlanGate,
) -> Result<Vec<StackOutcome>, PlatformError> {
    let existing: Vec<String> = engine
        .list_stacks()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut outcomes = Vec::new();
    for stack in stacks.iter().filter(|s| existing.contains(s)) {
        let report = engine.destroy_gated(stack, sink, cancel, gate).await?;
        let succeeded = report.succeeded();
        if succeeded {
            engine.remove_stack(stack, false).await?;
        }
        outcomes.push(StackOutcome {
            stack: stack.clone(),
            report,
        });
        if !succeeded {
            break;
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            github_org: "acme".into(),
            oidc_issuer: GITHUB_ACTIONS_ISSUER.into(),
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            template_repository: DEFAULT_TEMPLATE_REPOSITORY.into(),
        }
    }

    fn checkout() -> EnvironmentSpec {
        EnvironmentSpec {
            team: "payments".into(),
            app: "checkout".into(),
            stages: vec![Stage::Prod, Stage::Dev, Stage::Test],
            admins: vec!["ada".into()],
            contributors: vec!["bob".into()],
            region: "westeurope".into(),
            quota: QuotaSize::Small,
        }
    }

    #[test]
    fn an_environment_is_its_repository_then_its_stages_in_order() {
        let runs = environment_stacks(&checkout(), &settings()).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.stack.as_str()).collect();
        assert_eq!(
            names,
            [
                "payments-checkout",
                "payments-checkout-dev",
                "payments-checkout-test",
                "payments-checkout-prod"
            ]
        );
        assert_eq!(runs[1].graph.stack_refs["repo"], "payments-checkout");
        assert_eq!(runs[1].graph.stack_refs["owners"], "team-payments");
        assert_eq!(
            environment_teardown(&checkout()),
            [
                "payments-checkout-prod",
                "payments-checkout-test",
                "payments-checkout-dev",
                "payments-checkout"
            ]
        );
    }

    #[test]
    fn the_environment_request_blueprint_parses_and_names_every_spec_field() {
        let bp = environment_request();
        let names: Vec<&str> = bp.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["stages", "region", "quota", "admins", "contributors"]
        );
        assert!(bp.resources().is_empty(), "a request, not a stack");
    }

    #[test]
    fn a_stage_no_longer_declared_is_retired_prod_first() {
        let mut env = checkout();
        env.stages = vec![Stage::Dev];
        assert_eq!(
            retired_stage_stacks(&env, &[Stage::Dev, Stage::Test, Stage::Prod]),
            ["payments-checkout-prod", "payments-checkout-test"]
        );
        assert!(retired_stage_stacks(&env, &[Stage::Dev]).is_empty());
    }

    #[test]
    fn only_prod_waits_for_reviewers() {
        let reviewers = |stage| {
            let run = stage_stack(&checkout(), stage, &settings()).unwrap();
            let env = run
                .graph
                .resources
                .iter()
                .find(|r| r.name == "githubEnvironment")
                .unwrap();
            format!("{:?}", env.properties.get("reviewers").unwrap())
        };
        assert!(reviewers(Stage::Prod).contains("ada"));
        assert!(!reviewers(Stage::Dev).contains("ada"));
        assert!(!reviewers(Stage::Test).contains("ada"));
    }

    #[test]
    fn bad_names_are_refused_by_the_blueprints_naming_the_parameter() {
        let mut env = checkout();
        env.app = "Check Out".into();
        let err = repository_stack(&env, &settings()).unwrap_err().to_string();
        assert!(err.contains("app"), "{err}");
    }

    #[test]
    fn the_platform_stack_carries_every_template_file() {
        let run = platform_stack(&settings());
        let files = run
            .graph
            .resources
            .iter()
            .filter(|r| r.ty == "github:file")
            .count();
        assert_eq!(files, TEMPLATE_FILES.len());
        assert!(
            TEMPLATE_FILES
                .iter()
                .any(|(p, c)| *p == ".github/workflows/stage.yml" && c.contains("azure/login"))
        );
    }
}
