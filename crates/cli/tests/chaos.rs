//! Chaos: `paddock serve` is killed with SIGKILL at random instants while it creates,
//! updates and destroys environments in a sandbox cloud that outlives it (`paddock
//! sandbox`, a process of its own) — one process on SQLite, then three replicas on one
//! PostgreSQL database — and started again on the same data after each kill. At the end:
//! every operation has reached a final state (and succeeded: the sandbox injects no
//! fault), each stack's state names exactly the objects the sandbox holds (lost,
//! duplicated and orphaned objects are counted and printed, and must be 0), no event is
//! lost, and the audit chain verifies (`paddock audit verify`).
//!
//! Size: `PADDOCK_CHAOS_KILLS` kills per database, each landing while an operation runs
//! (default 20; the full run is 200). The workload, the victims and the instants are drawn
//! from a seeded generator; the seed is printed and `PADDOCK_CHAOS_SEED=<seed>` replays
//! the draws (the processes' own timing varies from run to run). The PostgreSQL variant
//! needs `PADDOCK_TEST_DATABASE_URL` (which `./scripts/test` sets).

mod common;
#[path = "clients/rig.rs"]
mod rig;

#[path = "chaos/inventory.rs"]
mod inventory;
#[path = "chaos/workload.rs"]
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use paddock_store::db::{Db, Operation};
use paddock_store::testing::{TestDatabase, admin_url};
use rand::Rng;

use rig::{Cli, SandboxPorts, SandboxProcess, ServeProcess, free_port};
use workload::{Api, Workload};

/// The operation lease: a killed replica's operation is taken over once it expires.
const LEASE_SECONDS: &str = "3";
/// Operations each replica runs at once.
const WORKERS: &str = "2";
/// Operations kept unfinished while the kills go on.
const IN_FLIGHT: usize = 3;
/// The longest a kill waits, once an operation runs, before it lands.
const MAX_KILL_DELAY_MS: u64 = 2_500;
/// How long the operations may take to finish once the kills stop.
const SETTLE: Duration = Duration::from_secs(600);

fn kills_wanted() -> usize {
    std::env::var("PADDOCK_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn seeded_rng(variant: &str) -> rand::rngs::StdRng {
    common::seeded_rng("PADDOCK_CHAOS_SEED", &format!("chaos ({variant})"))
}

/// A runtime for the test's own requests and database reads, around the processes.
fn runtime() -> tokio::runtime::Runtime {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One `paddock serve` replica: its data directory and port are kept across restarts.
struct Replica {
    data: PathBuf,
    port: u16,
    serve: Option<ServeProcess>,
    /// Every pid it has had, so a holder names its replica after a restart.
    pids: Vec<u32>,
}

/// The replicas, their settings, and the database they share.
struct Cluster {
    replicas: Vec<Replica>,
    settings: Vec<(&'static str, String)>,
    /// Where the test reads operations and state from.
    db_url: String,
}

impl Cluster {
    fn new(dir: &Path, n: usize, sandbox_env: &Path, database: Option<&str>) -> Cluster {
        let mut settings = vec![
            ("PADDOCK_SANDBOX_ENV", sandbox_env.display().to_string()),
            ("PADDOCK_LEASE_SECONDS", LEASE_SECONDS.to_owned()),
            ("PADDOCK_WORKERS", WORKERS.to_owned()),
        ];
        let replicas: Vec<Replica> = (0..n)
            .map(|i| Replica {
                data: dir.join(format!("serve{i}")),
                port: free_port(),
                serve: None,
                pids: Vec::new(),
            })
            .collect();
        let db_url = match database {
            Some(url) => {
                settings.push(("PADDOCK_DATABASE_URL", url.to_owned()));
                settings.push((
                    "PADDOCK_KEY_FILE",
                    dir.join("master.key").display().to_string(),
                ));
                url.to_owned()
            }
            None => format!("sqlite://{}", replicas[0].data.join("paddock.db").display()),
        };
        Cluster {
            replicas,
            settings,
            db_url,
        }
    }

    fn start(&mut self, i: usize) {
        let env: Vec<(&str, &Path)> = self
            .settings
            .iter()
            .map(|(k, v)| (*k, Path::new(v.as_str())))
            .collect();
        let r = &mut self.replicas[i];
        let serve = ServeProcess::start_env(&r.data, r.port, &env);
        r.pids.push(serve.process.pid());
        r.serve = Some(serve);
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self, i: usize) {
        if let Some(serve) = self.replicas[i].serve.take() {
            serve.process.kill();
        }
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[i].port)
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|i| self.replicas[*i].serve.is_some())
            .collect()
    }

    /// The replica a holder (`host:pid:nonce`) is, while that process runs.
    fn running_as(&self, holder: &str) -> Option<usize> {
        let pid: u32 = holder.split(':').nth(1)?.parse().ok()?;
        self.replicas
            .iter()
            .position(|r| r.serve.as_ref().is_some_and(|s| s.process.pid() == pid))
    }

    fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| std::fs::read_to_string(r.data.join("serve.log")).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop(&mut self) {
        for r in &mut self.replicas {
            if let Some(serve) = r.serve.take() {
                serve.process.stop();
            }
        }
    }
}

/// What the run measured.
#[derive(Default)]
struct Figures {
    kills: usize,
    /// Kills that landed while no operation ran (a wait for one timed out).
    idle_kills: usize,
    /// Per kind of operation (create, update, destroy, team), how many kills landed while
    /// one of that kind ran on the victim.
    kills_during: BTreeMap<&'static str, usize>,
    restarts: usize,
    operations: BTreeMap<String, usize>,
    attempts: i64,
}

/// The operations asked for, as the database has them now (one query).
async fn operations(db: &Db, ids: &[String]) -> Vec<Operation> {
    let all: BTreeMap<String, Operation> = db
        .operations(workload::TEAM, None, 100_000)
        .await
        .expect("reading the operations")
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    ids.iter()
        .map(|id| {
            all.get(id)
                .cloned()
                .unwrap_or_else(|| panic!("operation {id} is not in the database"))
        })
        .collect()
}

/// The running operations, with the replica running each (if its holder is alive).
async fn running(db: &Db, cluster: &Cluster, ids: &[String]) -> Vec<(String, Option<usize>)> {
    operations(db, ids)
        .await
        .into_iter()
        .filter(|o| o.state == "running")
        .map(|o| {
            let on = o.holder.as_deref().and_then(|h| cluster.running_as(h));
            (o.id, on)
        })
        .collect()
}

fn unfinished(op: &Operation) -> bool {
    matches!(op.state.as_str(), "queued" | "running")
}

fn chaos(variant: &str, replicas: usize, database: Option<&TestDatabase>) {
    let started = Instant::now();
    let kills_wanted = kills_wanted();
    let mut rng = seeded_rng(variant);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let _in_runtime = rt.enter();

    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let sandbox_env = dir.path().join("sandbox/sandbox.env");
    let mut cluster = Cluster::new(
        dir.path(),
        replicas,
        &sandbox_env,
        database.map(TestDatabase::url),
    );
    // The first replica makes the key file and the first admin; then the others.
    for i in 0..replicas {
        cluster.start(i);
    }
    let token = std::fs::read_to_string(cluster.replicas[0].data.join("initial-admin-token"))
        .expect("the first replica wrote the initial admin token")
        .trim()
        .to_owned();
    let api = Api::new(token.clone());
    let db = rt
        .block_on(Db::connect(&cluster.db_url))
        .expect("the database");

    // The team and its members, before any kill.
    let mut work = Workload::new();
    let setup = rt.block_on(work.setup(&api, &cluster.url(0)));
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let ops = operations(&db, &setup).await;
            if ops.iter().all(|o| !unfinished(o)) {
                for o in &ops {
                    assert_eq!(o.state, "succeeded", "setup: {o:?}\n{}", cluster.logs());
                }
                break;
            }
            assert!(Instant::now() < deadline, "setup took over 180 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let baseline = rt.block_on(inventory::baseline(&cluster.db_url, &sandbox.data));
    println!(
        "chaos ({variant}): {replicas} replica(s) and the team ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut figures = Figures::default();
    let mut ids: Vec<String> = setup.clone();
    let kills_started = Instant::now();
    while figures.kills - figures.idle_kills < kills_wanted {
        // Requests until enough operations are unfinished, each followed by a random
        // delay; a request cut short by a kill is sent again with its idempotency key.
        let delay_after = rng.gen_range(0..MAX_KILL_DELAY_MS);
        let drawn_victim = rng.gen_range(0..replicas);
        rt.block_on(async {
            loop {
                let ops = operations(&db, &ids).await;
                let open = ops.iter().filter(|o| unfinished(o)).count();
                if open >= IN_FLIGHT {
                    break;
                }
                let urls: Vec<String> = cluster.alive().iter().map(|i| cluster.url(*i)).collect();
                let Some(id) = work.next(&api, &urls, &ops, &mut rng).await else {
                    break;
                };
                ids.push(id);
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
            }
        });

        // The victim: the drawn replica if it runs an operation, else one that does; the
        // instant: a random delay once it does.
        let victim = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let busy: BTreeSet<usize> = running(&db, &cluster, &ids)
                    .await
                    .into_iter()
                    .filter_map(|(_, on)| on)
                    .collect();
                if busy.contains(&drawn_victim) {
                    break Some(drawn_victim);
                }
                if let Some(v) = busy.first() {
                    break Some(*v);
                }
                if Instant::now() > deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        rt.block_on(tokio::time::sleep(Duration::from_millis(delay_after)));
        let victim = victim.unwrap_or(drawn_victim);
        let during: Vec<String> = rt
            .block_on(running(&db, &cluster, &ids))
            .into_iter()
            .filter(|(_, on)| *on == Some(victim))
            .map(|(id, _)| id)
            .collect();
        cluster.kill(victim);
        figures.kills += 1;
        if during.is_empty() {
            figures.idle_kills += 1;
        }
        for id in &during {
            *figures.kills_during.entry(work.label(id)).or_default() += 1;
        }
        cluster.start(victim);
        figures.restarts += 1;
        if figures.kills % 10 == 0 {
            println!(
                "chaos ({variant}): {} kills in {:.0} s",
                figures.kills,
                kills_started.elapsed().as_secs_f64()
            );
        }
    }
    let kill_time = kills_started.elapsed();

    // Every operation reaches a final state.
    let finals = rt.block_on(async {
        let deadline = Instant::now() + SETTLE;
        loop {
            let ops = operations(&db, &ids).await;
            if ops.iter().all(|o| !unfinished(o)) {
                break ops;
            }
            assert!(
                Instant::now() < deadline,
                "operations still unfinished {} s after the last kill: {:?}",
                SETTLE.as_secs(),
                ops.iter()
                    .filter(|o| unfinished(o))
                    .map(|o| format!("{} {} {} attempts {}", o.id, o.kind, o.state, o.attempts))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    for o in &finals {
        *figures.operations.entry(o.state.clone()).or_default() += 1;
        figures.attempts += o.attempts;
    }
    let failed: Vec<String> = finals
        .iter()
        .filter(|o| o.state != "succeeded")
        .map(|o| {
            format!(
                "{} ({} {}) {}: {}",
                o.id,
                work.label(&o.id),
                o.kind,
                o.state,
                o.outcome.as_deref().unwrap_or_default()
            )
        })
        .collect();

    // The events, the audit chain, the environments; then, with every replica stopped,
    // what the states describe against what the sandbox holds.
    let events = rt.block_on(workload::check_events(&db, &finals));
    let event_warnings = cluster.logs().matches("recording an event failed").count();
    let cli = Cli {
        server: cluster.url(0),
        token,
        home: dir.path().join("cli"),
    };
    let audit = cli.run(&["audit", "verify"]);
    let environments = rt.block_on(work.environments(&api, &cluster.url(0)));
    cluster.stop();
    let comparison = rt.block_on(inventory::compare(
        &cluster.db_url,
        &sandbox.data,
        &baseline,
    ));

    println!(
        "chaos ({variant}) figures: {} kills ({} while an operation ran: {}; {} idle) and {} \
         restarts of {replicas} replica(s) in {:.0} s; {} operations ({}) in {} attempts; \
         objects: {} in state, {} lost, {} duplicated, {} orphaned; events: {} lost, {} \
         failed writes; audit: {}; {:.0} s in all",
        figures.kills,
        figures.kills - figures.idle_kills,
        figures
            .kills_during
            .iter()
            .map(|(k, n)| format!("{n} during {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        figures.idle_kills,
        figures.restarts,
        kill_time.as_secs_f64(),
        finals.len(),
        figures
            .operations
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        figures.attempts,
        comparison.in_state,
        comparison.lost.len(),
        comparison.duplicated.len(),
        comparison.orphaned.len(),
        events.len(),
        event_warnings,
        if audit.status.success() {
            "verified"
        } else {
            "BROKEN"
        },
        started.elapsed().as_secs_f64()
    );

    assert!(
        failed.is_empty(),
        "operations that did not succeed: {failed:#?}"
    );
    assert!(
        comparison.lost.is_empty(),
        "lost (in state, not in the sandbox): {:#?}",
        comparison.lost
    );
    assert!(
        comparison.duplicated.is_empty(),
        "duplicated (in the sandbox twice): {:#?}",
        comparison.duplicated
    );
    assert!(
        comparison.orphaned.is_empty(),
        "orphaned (in the sandbox, in no state): {:#?}",
        comparison.orphaned
    );
    assert!(events.is_empty(), "events lost: {events:#?}");
    assert_eq!(event_warnings, 0, "event writes failed");
    assert!(
        audit.status.success(),
        "paddock audit verify: {}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    assert_eq!(
        environments,
        work.expected(),
        "each environment is as last requested"
    );
    assert_eq!(
        comparison.stacks,
        work.expected_stacks(),
        "a stack per team, repository and stage that exists"
    );

    sandbox.process.stop();
}

#[test]
fn serve_on_sqlite_survives_sigkill_during_create_update_and_destroy() {
    chaos("sqlite", 1, None);
}

#[test]
fn three_replicas_on_postgres_survive_sigkill_during_create_update_and_destroy() {
    let Some(admin) = admin_url() else { return };
    let db = runtime()
        .block_on(TestDatabase::create(&admin))
        .expect("creating a test database");
    chaos("postgres", 3, Some(&db));
}
