//! `paddock bench provision`: N environments (repository + dev, test, prod) provisioned at
//! once through the real providers into an in-process sandbox that adds a fixed latency
//! to every request. Prints the wall time, the critical path of the injected latencies
//! (the longest chain of requests that must follow one another, times the latency), their
//! ratio, and the requests an environment costs, by API and by resource type; where the
//! time went (see [`breakdown`]); and the GitHub writes an environment costs, by stage,
//! with those of a second, unchanged `up` of every environment (which must be none).

mod breakdown;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{DesiredGraph, Discard, Engine, EngineOptions};
use paddock_platform::{EnvironmentSpec, QuotaSize, Settings, StackRun, Stage, TeamSpec};
use paddock_providers::clouds::{Clouds, registry_of};
use paddock_providers::family::{Family, UrnCost};
use paddock_sandbox::faults::FaultRule;
use paddock_sandbox::{Sandbox, SandboxConfig};
use paddock_store::SqliteStore;
use tokio_util::sync::CancellationToken;

use crate::Global;

pub async fn measure(
    dir: &std::path::Path,
    environments: usize,
    latency_ms: u64,
    g: &Global,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(environments >= 1, "--environments: at least 1");
    let mut config = SandboxConfig::new(dir.join("sandbox"));
    // The clouds' own delays are kept short: the figure of interest is Paddock's overhead
    // over the request latency; rate limits are lifted so they do not dominate.
    config.arm.delete_delay = Duration::from_millis(100);
    config.arm.retry_after_secs = 1;
    config.arm.writes_per_hour = 1_000_000;
    config.arm.reads_per_hour = 1_000_000;
    // A template's files arrive at once by default: the copy is the cloud's work, not a
    // request, so the bound (requests × latency) does not count it, and neither should
    // the wall time. `PADDOCK_BENCH_TEMPLATE_DELAY_MS` puts a delay back (100 ms before
    // 2026-12-06), to see what waiting for the files costs.
    config.github_template_delay = Duration::from_millis(template_delay_ms()?);
    config.github_mutations_per_minute = 1_000_000;
    config.graph_requests_per_10s = 1_000_000;
    config.kubernetes.namespace_termination = Duration::from_millis(100);
    let sandbox = Sandbox::start(config).await?;
    let result = run(&sandbox, dir, environments, latency_ms, g).await;
    sandbox.stop().await;
    result
}

async fn run(
    sandbox: &Sandbox,
    dir: &std::path::Path,
    n: usize,
    latency_ms: u64,
    g: &Global,
) -> anyhow::Result<serde_json::Value> {
    let env: BTreeMap<String, String> = sandbox
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let clouds = Clouds::from_sandbox_env(&env)?;
    let families = clouds.families()?;
    let store = SqliteStore::open(&dir.join("state.db")).await?;
    let key = LocalKeyFile::open_or_create(&dir.join("master.key"))?;
    let options = EngineOptions {
        parallelism: g.parallelism.max(1),
        ..Default::default()
    };
    let engine = Arc::new(Engine::new(
        Arc::new(store),
        registry_of(&families),
        Arc::new(key),
        options,
    ));
    let settings = Settings {
        github_org: env["PADDOCK_SANDBOX_GITHUB_ORG"].clone(),
        oidc_issuer: clouds.oidc_issuer.clone(),
        tenant_id: env["PADDOCK_SANDBOX_TENANT_ID"].clone(),
        subscription_id: env["PADDOCK_SANDBOX_SUBSCRIPTION_ID"].clone(),
        template_repository: paddock_platform::DEFAULT_TEMPLATE_REPOSITORY.to_owned(),
    };
    for login in ["ada", "bob"] {
        sandbox.add_person(login).await?;
    }
    let cancel = CancellationToken::new();
    let team = TeamSpec {
        name: "bench".into(),
        description: String::new(),
        admins: vec!["ada".into()],
        contributors: vec!["bob".into()],
    };
    let setup = [
        paddock_platform::platform_stack(&settings),
        paddock_platform::team_stack(&team)?,
    ];
    check(paddock_platform::up(&engine, &setup, &Discard, &cancel).await?)?;

    sandbox.faults.set(vec![FaultRule {
        api: "*".into(),
        method: None,
        path_contains: None,
        probability: 1.0,
        latency_ms,
        error: None,
        retry_after_secs: None,
    }]);
    let specs: Vec<EnvironmentSpec> = (0..n)
        .map(|i| EnvironmentSpec {
            team: "bench".into(),
            app: format!("app{i}"),
            stages: Stage::ALL.to_vec(),
            admins: vec!["ada".into()],
            contributors: vec!["bob".into()],
            region: "westeurope".into(),
            quota: QuotaSize::Small,
        })
        .collect();
    let runs: Vec<Vec<StackRun>> = specs
        .iter()
        .map(|s| paddock_platform::environment_stacks(s, &settings))
        .collect::<Result<_, _>>()?;
    let before = paddock_providers::http::calls_by_api();
    let mutations_before = paddock_providers::http::mutations_by_api();
    let (turns_before, turn_count_before) = paddock_providers::http::github_turns();
    let recorder = Arc::new(breakdown::Recorder::default());
    let started = Instant::now();
    // Each environment on a task of its own, as the server's workers run them.
    let tasks: Vec<_> = runs
        .iter()
        .map(|r| {
            let (engine, run, recorder, cancel) =
                (engine.clone(), r.clone(), recorder.clone(), cancel.clone());
            tokio::spawn(async move {
                paddock_platform::up(&engine, &run, recorder.as_ref(), &cancel).await
            })
        })
        .collect();
    let outcomes = futures_util::future::join_all(tasks).await;
    let wall = started.elapsed();
    sandbox.faults.set(Vec::new());
    for o in outcomes {
        check(o??)?;
    }
    let after = paddock_providers::http::calls_by_api();
    let (turns_after, turn_count_after) = paddock_providers::http::github_turns();
    let turns = turns_after - turns_before;
    let turn_count = turn_count_after - turn_count_before;

    // The same environments again, unchanged: nothing may be rewritten.
    let mutations_settled = paddock_providers::http::mutations_by_api();
    for o in futures_util::future::join_all(
        runs.iter()
            .map(|r| paddock_platform::up(&engine, r, &Discard, &cancel)),
    )
    .await
    {
        check(o?)?;
    }
    let noop_writes =
        paddock_providers::http::mutations_by_api()["github"] - mutations_settled["github"];

    let costs = costs_by_urn(&families);
    let calls: HashMap<String, u64> = costs
        .iter()
        .map(|(urn, c)| (urn.clone(), c.requests.requests))
        .collect();
    let latency = Duration::from_millis(latency_ms);
    let split = breakdown::environment(&recorder, &runs[0], &costs, latency);
    let writes = github_writes(&runs, &costs);
    // An environment's stacks run one after another: their bounds add up.
    let (path_calls, stack_calls) = runs[0]
        .iter()
        .map(|r| stack_bounds(r, &costs))
        .fold((0, 0), |(c, b), (c1, b1)| (c + c1, b + b1));
    let critical = Duration::from_millis(path_calls * latency_ms);
    let stacks_bound = Duration::from_millis(stack_calls * latency_ms);
    // GitHub asks integrators to send mutations one at a time: all environments' GitHub
    // writes queue behind each other, a floor under the wall time however wide the graph.
    let github_mutations =
        paddock_providers::http::mutations_by_api()["github"] - mutations_before["github"];
    let github_serial = Duration::from_millis(github_mutations * latency_ms);
    let bound = stacks_bound.max(github_serial);
    eprintln!(
        "bench provision: {n} environment(s), wall {} ms, bound {} ms ({}), ratio {}; critical path alone {} ms, ratio {}",
        wall.as_millis(),
        bound.as_millis(),
        if github_serial > stacks_bound {
            "all GitHub writes one at a time"
        } else if stacks_bound > critical {
            "each stack's critical path, with its GitHub writes one at a time"
        } else {
            "critical path"
        },
        ratio(wall, bound),
        critical.as_millis(),
        ratio(wall, critical),
    );
    eprint!("environment app0:\n{}", split.table());
    eprintln!(
        "GitHub's mutation turn: held {} ms over {turn_count} writes ({:.2} ms each, latency {latency_ms} ms); idle {} ms of the wall",
        turns.as_millis(),
        breakdown::ms(turns) / turn_count.max(1) as f64,
        wall.saturating_sub(turns).as_millis()
    );
    eprintln!(
        "GitHub writes per environment: {} ({}); unchanged up: {noop_writes}",
        writes["total"], writes["byStage"]
    );
    let per_api: BTreeMap<&str, f64> = after
        .iter()
        .map(|(api, count)| (*api, (count - before[api]) as f64 / n as f64))
        .filter(|(_, c)| *c > 0.0)
        .collect();
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    for run in &runs[0] {
        for r in &run.graph.resources {
            *per_type.entry(r.ty.clone()).or_default() += calls
                .get(&urn(&run.stack, &r.ty, &r.name))
                .copied()
                .unwrap_or(0);
        }
    }
    Ok(serde_json::json!({
        "environments": n,
        "stacksPerEnvironment": runs[0].len(),
        "resourcesPerEnvironment": runs[0].iter().map(|r| r.graph.resources.len()).sum::<usize>(),
        "latencyMs": latency_ms,
        "templateDelayMs": template_delay_ms()?,
        "wallMs": wall.as_millis() as u64,
        "criticalPathCalls": path_calls,
        "criticalPathMs": critical.as_millis() as u64,
        "ratio": ratio(wall, critical),
        "stackBoundCalls": stack_calls,
        "stackBoundMs": stacks_bound.as_millis() as u64,
        "githubSerialMutations": github_mutations,
        "githubSerialMs": github_serial.as_millis() as u64,
        "ratioToBound": ratio(wall, bound),
        "callsPerEnvironmentByApi": per_api,
        "callsPerEnvironmentByType": per_type,
        "breakdown": split.to_json(),
        "githubTurn": {
            "heldMs": breakdown::ms(turns),
            "writes": turn_count,
            "meanHeldMs": (breakdown::ms(turns) / turn_count.max(1) as f64 * 100.0).round() / 100.0,
            "idleMs": breakdown::ms(wall.saturating_sub(turns)),
        },
        "githubWritesPerEnvironment": writes,
        "githubWritesUnchangedUp": noop_writes,
    }))
}

/// `PADDOCK_BENCH_TEMPLATE_DELAY_MS`, 0 if unset.
fn template_delay_ms() -> anyhow::Result<u64> {
    match std::env::var("PADDOCK_BENCH_TEMPLATE_DELAY_MS") {
        Ok(v) => v.parse().map_err(|_| {
            anyhow::anyhow!("PADDOCK_BENCH_TEMPLATE_DELAY_MS: milliseconds, not {v:?}")
        }),
        Err(_) => Ok(0),
    }
}

/// `a / b`, to three decimals.
fn ratio(a: Duration, b: Duration) -> f64 {
    (a.as_secs_f64() / b.as_secs_f64().max(1e-9) * 1000.0).round() / 1000.0
}

fn check(outcomes: Vec<paddock_platform::StackOutcome>) -> anyhow::Result<()> {
    for o in outcomes {
        anyhow::ensure!(
            o.report.succeeded(),
            "stack {} did not succeed: {:?}",
            o.stack,
            o.report
                .failures
                .iter()
                .map(|f| format!("{}: {}", f.resource, f.message))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

fn urn(stack: &str, ty: &str, name: &str) -> String {
    format!("paddock:{stack}:{ty}:{name}")
}

fn costs_by_urn(families: &[Arc<Family>]) -> HashMap<String, UrnCost> {
    families.iter().flat_map(|f| f.costs_by_urn()).collect()
}

/// GitHub's content-creating requests per environment, in all and by stage (the
/// repository's stack, then each stage's), averaged over the environments.
fn github_writes(runs: &[Vec<StackRun>], costs: &HashMap<String, UrnCost>) -> serde_json::Value {
    let mut by_stage: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0.0;
    for env in runs {
        for (k, run) in env.iter().enumerate() {
            let stage = match k {
                0 => "repository".to_owned(),
                _ => run.stack.rsplit('-').next().unwrap_or_default().to_owned(),
            };
            let writes: u64 = run
                .graph
                .resources
                .iter()
                .filter_map(|r| costs.get(&urn(&run.stack, &r.ty, &r.name)))
                .map(|c| c.requests.github_writes)
                .sum();
            let per_env = writes as f64 / runs.len() as f64;
            *by_stage.entry(stage).or_default() += per_env;
            total += per_env;
        }
    }
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let by_stage: BTreeMap<String, f64> =
        by_stage.into_iter().map(|(s, w)| (s, round(w))).collect();
    serde_json::json!({ "total": round(total), "byStage": by_stage })
}

/// Each resource's dependencies (by index): what it references and what it depends on.
fn deps_of(graph: &DesiredGraph) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = graph
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    graph
        .resources
        .iter()
        .map(|r| {
            let mut d: Vec<usize> = r
                .properties
                .values()
                .flat_map(|e| e.references())
                .filter_map(|reference| index.get(reference.target.as_str()).copied())
                .chain(
                    r.depends_on
                        .iter()
                        .filter_map(|n| index.get(n.as_str()).copied()),
                )
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect()
}

/// A stack's two lower bounds, in requests of the injected latency: the most requests on
/// one chain of dependent resources (its critical path), and that bound with GitHub's
/// one-mutation-at-a-time rule besides. For any set of GitHub writes, none can start
/// before the earliest of their resources could (its `head`: the longest chain before
/// it), they go one after another, and after the last the shortest of their `tail`s
/// (the longest chain after each) is still to run: head + writes + tail, the classic
/// lower bound of one-machine scheduling, at its largest over the sets worth trying.
fn stack_bounds(run: &StackRun, costs: &HashMap<String, UrnCost>) -> (u64, u64) {
    let graph: &DesiredGraph = &run.graph;
    let deps = deps_of(graph);
    let n = graph.resources.len();
    let cost = |i: usize| {
        let r = &graph.resources[i];
        costs
            .get(&urn(&run.stack, &r.ty, &r.name))
            .map_or((0, 0), |c| (c.requests.requests, c.requests.github_writes))
    };
    let order = topological(&deps);
    let mut head = vec![0u64; n];
    for &i in &order {
        head[i] = deps[i]
            .iter()
            .map(|&d| head[d] + cost(d).0)
            .max()
            .unwrap_or(0);
    }
    let mut tail = vec![0u64; n];
    for &i in order.iter().rev() {
        for &d in &deps[i] {
            tail[d] = tail[d].max(cost(i).0 + tail[i]);
        }
    }
    let critical = (0..n)
        .map(|i| head[i] + cost(i).0 + tail[i])
        .max()
        .unwrap_or(0);
    let writers: Vec<usize> = (0..n).filter(|&i| cost(i).1 > 0).collect();
    let mut bound = critical;
    for &h in &writers {
        for &t in &writers {
            let (from, to) = (head[h], tail[t]);
            let writes: u64 = writers
                .iter()
                .filter(|&&v| head[v] >= from && tail[v] >= to)
                .map(|&v| cost(v).1)
                .sum();
            if writes > 0 {
                bound = bound.max(from + writes + to);
            }
        }
    }
    (critical, bound)
}

/// The resources in an order where each comes after what it depends on.
fn topological(deps: &[Vec<usize>]) -> Vec<usize> {
    fn visit(i: usize, deps: &[Vec<usize>], seen: &mut [bool], out: &mut Vec<usize>) {
        if std::mem::replace(&mut seen[i], true) {
            return;
        }
        for &d in &deps[i] {
            visit(d, deps, seen, out);
        }
        out.push(i);
    }
    let mut seen = vec![false; deps.len()];
    let mut out = Vec::with_capacity(deps.len());
    for i in 0..deps.len() {
        visit(i, deps, &mut seen, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use paddock_engine::Expr;
    use paddock_providers::http::CallCost;

    use super::*;

    /// A stack of `(name, depends on, requests, GitHub writes)`.
    fn stack(resources: &[(&str, &[&str], u64, u64)]) -> (StackRun, HashMap<String, UrnCost>) {
        let mut graph = DesiredGraph::new();
        let mut costs = HashMap::new();
        for &(name, deps, requests, github_writes) in resources {
            let r = graph.resource(name, "test:resource");
            for d in deps {
                r.set(&format!("from_{d}"), Expr::reference(d, &["id"]));
            }
            let cost = UrnCost {
                requests: CallCost {
                    requests,
                    github_writes,
                    ..CallCost::default()
                },
                ..UrnCost::default()
            };
            costs.insert(urn("s", "test:resource", name), cost);
        }
        let run = StackRun {
            stack: "s".into(),
            graph,
        };
        (run, costs)
    }

    #[test]
    fn writes_that_must_wait_for_the_same_resource_raise_the_bound_by_going_one_at_a_time() {
        // A repository (3 requests, 1 write), then four GitHub writes that need it.
        let (run, costs) = stack(&[
            ("repository", &[], 3, 1),
            ("team", &["repository"], 1, 1),
            ("protection", &["repository"], 1, 1),
            ("tenant", &["repository"], 1, 1),
            ("subscription", &["repository"], 1, 1),
        ]);
        assert_eq!(stack_bounds(&run, &costs), (4, 3 + 4));
    }

    #[test]
    fn a_longer_chain_elsewhere_is_the_bound_when_the_writes_fit_beside_it() {
        let (run, costs) = stack(&[
            ("repository", &[], 3, 1),
            ("team", &["repository"], 1, 1),
            ("namespace", &[], 4, 0),
            ("account", &["namespace"], 4, 0),
            ("token", &["account"], 4, 0),
        ]);
        assert_eq!(stack_bounds(&run, &costs), (12, 12));
    }

    #[test]
    fn writes_with_work_after_them_keep_it_in_the_bound() {
        // Two writes, each followed by a chain of 5 requests: one of them ends 5 after
        // the second write at the earliest.
        let (run, costs) = stack(&[
            ("a", &[], 1, 1),
            ("b", &[], 1, 1),
            ("after_a", &["a"], 5, 0),
            ("after_b", &["b"], 5, 0),
        ]);
        assert_eq!(stack_bounds(&run, &costs), (6, 2 + 5));
    }
}
