//! The engine's behaviour, specified against real state and the test cloud: every test
//! runs on SQLite (`sqlite::NAME`) and on PostgreSQL (`postgres::NAME`).

mod common;

use std::time::Duration;

use common::{Recorder, Rig, Store};
use paddock_engine::state::{Holder, Lease, LeaseOutcome};
use paddock_engine::{DesiredGraph, Discard, EngineError, Expr, StepKind, Value};
use paddock_providers::TestCloudOptions;
use tokio_util::sync::CancellationToken;

on_every_store!(
    first_up_creates_dependencies_before_dependents,
    an_unchanged_stack_plans_no_changes_with_a_stable_hash,
    plan_kinds_follow_the_schema,
    replacement_creates_the_new_resource_before_deleting_the_old,
    delete_before_replace_deletes_the_old_resource_first,
    deletes_run_dependents_first,
    a_destroy_that_meets_an_object_not_its_own_deletes_nothing,
    ignored_changes_do_not_update,
    protected_resources_are_not_deleted,
    a_gate_sees_the_plan_that_will_run_and_can_stop_it_before_any_step,
    a_failure_stops_dependents_but_independent_branches_finish,
    cancellation_stops_starting_steps_and_waits_for_those_in_flight,
    a_busy_stack_refuses_a_second_operation_and_says_who_holds_it,
    a_stale_lease_is_taken_over,
    stack_references_read_another_stacks_outputs_and_keep_secrets_secret,
    secrets_are_never_stored_printed_or_sent_in_events_in_clear,
    refresh_records_drift_and_the_next_plan_corrects_it,
    import_adopts_an_existing_object,
    an_interrupted_create_is_adopted_not_duplicated,
    an_operation_that_loses_its_lease_stops_and_fails,
    writes_are_fenced_by_the_lease,
    every_part_of_an_up_reports_how_long_it_took,
);

fn go() -> CancellationToken {
    CancellationToken::new()
}

/// a <- b <- c (c depends on b, b on a), and d alone.
fn chain() -> DesiredGraph {
    let mut g = DesiredGraph::new();
    g.resource("a", "test:resource").set("name", "a");
    g.resource("b", "test:resource")
        .set("name", "b")
        .set("parent", Expr::reference("a", &["id"]));
    g.resource("c", "test:resource")
        .set("name", "c")
        .set("parent", Expr::reference("b", &["id"]));
    g.resource("d", "test:resource").set("name", "d");
    g
}

fn kinds(plan: &paddock_engine::Plan) -> Vec<(String, StepKind)> {
    plan.steps
        .iter()
        .map(|s| (s.name.clone(), s.kind))
        .collect()
}

async fn first_up_creates_dependencies_before_dependents(store: Store) {
    let rig = Rig::on(&store).await;
    let events = Recorder::default();
    let report = rig
        .engine
        .up("dev", &chain(), &events, &go())
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.done.get(&StepKind::Create), Some(&4));
    assert!(events.position("succeeded create a") < events.position("started create b"));
    assert!(events.position("succeeded create b") < events.position("started create c"));
    // b's parent is a's id, resolved at apply time.
    let state = rig.engine.read_state("dev").await.unwrap();
    let a = state.resources.iter().find(|r| r.name == "a").unwrap();
    let b = state.resources.iter().find(|r| r.name == "b").unwrap();
    assert_eq!(b.inputs["parent"], Value::String(a.id.clone()));
    assert_eq!(rig.cloud.list().unwrap().len(), 4);
}

async fn an_unchanged_stack_plans_no_changes_with_a_stable_hash(store: Store) {
    let rig = Rig::on(&store).await;
    rig.engine
        .up("dev", &chain(), &Discard, &go())
        .await
        .unwrap();
    let first = rig.engine.preview("dev", &chain()).await.unwrap();
    let second = rig.engine.preview("dev", &chain()).await.unwrap();
    assert!(!first.has_changes());
    assert_eq!(first.hash, second.hash);
    let mut changed = chain();
    changed.resources[3].set("size", 2);
    let third = rig.engine.preview("dev", &changed).await.unwrap();
    assert_ne!(first.hash, third.hash);
}

async fn plan_kinds_follow_the_schema(store: Store) {
    let rig = Rig::on(&store).await;
    rig.engine
        .up("dev", &chain(), &Discard, &go())
        .await
        .unwrap();
    let mut g = chain();
    g.resources[0].set("size", 3); // a: in-place update
    g.resources[3].set("name", "d2"); // d: name forces replacement
    g.resources.remove(2); // c: deleted
    let plan = rig.engine.preview("dev", &g).await.unwrap();
    assert_eq!(
        kinds(&plan),
        vec![
            ("a".into(), StepKind::Update),
            ("d".into(), StepKind::Replace),
            // b's parent is a's id, which an update keeps.
            ("b".into(), StepKind::Same),
            ("c".into(), StepKind::Delete),
        ]
    );
    let d = plan.steps.iter().find(|s| s.name == "d").unwrap();
    assert!(
        d.diffs
            .iter()
            .any(|diff| diff.property == "name" && diff.forces_replace)
    );
    insta::assert_snapshot!(plan.to_string().replace(&plan.hash, "HASH"), @r#"
      ~ a  test:resource  update
          + size: 3
      ± d  test:resource  replace (name forces replacement; create first)
          ~ name: "d" => "d2"  (forces replacement)
      - c  test:resource  delete
    Plan: 0 to create, 1 to update, 1 to replace, 1 to delete, 1 unchanged.
    "#);
}

async fn replacement_creates_the_new_resource_before_deleting_the_old(store: Store) {
    let rig = Rig::on(&store).await;
    rig.engine
        .up("dev", &chain(), &Discard, &go())
        .await
        .unwrap();
    let old_id = rig
        .engine
        .read_state("dev")
        .await
        .unwrap()
        .resources
        .iter()
        .find(|r| r.name == "d")
        .unwrap()
        .id
        .clone();
    let mut g = chain();
    g.resources[3].set("name", "d2");
    let events = Recorder::default();
    let report = rig.engine.up("dev", &g, &events, &go()).await.unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert!(events.position("succeeded replace d") < events.position("started delete d"));
    let objects = rig.cloud.list().unwrap();
    assert_eq!(objects.len(), 4);
    assert!(objects.iter().all(|o| o.id != old_id), "the old d is gone");
    assert_eq!(
        rig.engine.read_state("dev").await.unwrap().resources.len(),
        4
    );
}

async fn delete_before_replace_deletes_the_old_resource_first(store: Store) {
    let rig = Rig::on(&store).await;
    let mut g = chain();
    g.resources[3].delete_before_replace();
    rig.engine.up("dev", &g, &Discard, &go()).await.unwrap();
    g.resources[3].set("name", "d2");
    let events = Recorder::default();
    rig.engine.up("dev", &g, &events, &go()).await.unwrap();
    assert_eq!(
        events.lines(),
        vec!["started replace d", "succeeded replace d"],
        "one step: the delete and the create happen inside it"
    );
    let ds: Vec<_> = rig
        .cloud
        .list()
        .unwrap()
        .into_iter()
        .filter(|o| o.urn.ends_with(":d"))
        .collect();
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].inputs["name"], "d2");
}

async fn deletes_run_dependents_first(store: Store) {
    let rig = Rig::on(&store).await;
    rig.engine
        .up("dev", &chain(), &Discard, &go())
        .await
        .unwrap();
    let plan = rig
        .engine
        .preview("dev", &DesiredGraph::new())
        .await
        .unwrap();
    let order: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    let pos = |n| order.iter().position(|o| *o == n).unwrap();
    assert!(pos("c") < pos("b") && pos("b") < pos("a"), "{order:?}");
    let events = Recorder::default();
    let report = rig.engine.destroy("dev", &events, &go()).await.unwrap();
    assert!(report.succeeded());
    assert!(events.position("succeeded delete c") < events.position("started delete b"));
    assert!(events.position("succeeded delete b") < events.position("started delete a"));
    assert!(rig.cloud.list().unwrap().is_empty());
    assert!(
        rig.engine
            .read_state("dev")
            .await
            .unwrap()
            .resources
            .is_empty()
    );
}

async fn a_destroy_that_meets_an_object_not_its_own_deletes_nothing(store: Store) {
    let options = TestCloudOptions {
        foreign_names: Some(regex::Regex::new("^a$").unwrap()),
        ..Default::default()
    };
    let rig = Rig::with(&store, options, 10).await;
    rig.engine
        .up("dev", &chain(), &Discard, &go())
        .await
        .unwrap();
    let report = rig.engine.destroy("dev", &Discard, &go()).await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].resource, "a");
    assert_eq!(report.failures[0].code.as_deref(), Some("NotOwned"));
    let mut skipped: Vec<&str> = report.skipped.iter().map(|(n, _)| n.as_str()).collect();
    skipped.sort_unstable();
    assert_eq!(skipped, ["b", "c", "d"]);
    assert!(
        report.skipped[0]
            .1
            .starts_with("nothing was deleted: a could not be confirmed"),
        "{:?}",
        report.skipped
    );
    // Not half a stack: everything is still there, in the cloud and in state.
    assert_eq!(rig.cloud.list().unwrap().len(), 4);
    assert_eq!(
        rig.engine.read_state("dev").await.unwrap().resources.len(),
        4
    );

    // Recorded before Paddock marked what it made (as migration 0009 says of old records),
    // `a` is deleted on the state's word.
    let url = match &rig.db {
        Some(db) => db.url().to_owned(),
        None => format!("sqlite://{}", rig.dir.path().join("state.db").display()),
    };
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let records: Vec<(String, String)> =
        sqlx::query_as("SELECT instance, record FROM resources WHERE name = 'a'")
            .fetch_all(&raw)
            .await
            .unwrap();
    assert_eq!(records.len(), 1);
    for (instance, record) in records {
        let mut record: serde_json::Value = serde_json::from_str(&record).unwrap();
        record["unmarked"] = serde_json::Value::Bool(true);
        sqlx::query("UPDATE resources SET record = $1 WHERE instance = $2")
            .bind(record.to_string())
            .bind(instance)
            .execute(&raw)
            .await
            .unwrap();
    }
    raw.close().await;
    let report = rig.engine.destroy("dev", &Discard, &go()).await.unwrap();
    assert!(report.succeeded(), "{:?}", report.failures);
    assert!(rig.cloud.list().unwrap().is_empty());
}

async fn ignored_changes_do_not_update(store: Store) {
    let rig = Rig::on(&store).await;
    let mut g = DesiredGraph::new();
    g.resource("a", "test:resource")
        .set("name", "a")
        .set("size", 1)
        .ignore_changes("size");
    rig.engine.up("dev", &g, &Discard, &go()).await.unwrap();
    g.resources[0].set("size", 5);
    let plan = rig.engine.preview("dev", &g).await.unwrap();
    assert!(!plan.has_changes(), "{plan}");
}

async fn protected_resources_are_not_deleted(store: Store) {
    let rig = Rig::on(&store).await;
    let mut g = chain();
    g.resources[0].protect();
    rig.engine.up("dev", &g, &Discard, &go()).await.unwrap();
    let err = rig
        .engine
        .destroy("dev", &Discard, &go())
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Protected { ref resource, action: "delete" } if resource == "a"),
        "{err}"
    );
    assert_eq!(rig.cloud.list().unwrap().len(), 4, "nothing was deleted");
}

/// Admits only a plan whose hash it was given (an approval bound to a plan), recording
/// every hash it was shown.
struct HashGate {
    approved: Option<String>,
    seen: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl paddock_engine::PlanGate for HashGate {
    async fn admit(&self, plan: &paddock_engine::Plan) -> Result<(), paddock_engine::Halt> {
        self.seen.lock().unwrap().push(plan.hash.clone());
        if self.approved.as_deref() == Some(plan.hash.as_str()) {
            Ok(())
        } else {
            Err(paddock_engine::Halt {
                message: format!("plan {} is not approved", plan.hash),
            })
        }
    }
}

async fn a_gate_sees_the_plan_that_will_run_and_can_stop_it_before_any_step(store: Store) {
    let rig = Rig::on(&store).await;
    let preview = rig.engine.preview("dev", &chain()).await.unwrap();
    let refuse = HashGate {
        approved: None,
        seen: Default::default(),
    };
    let err = rig
        .engine
        .up_gated("dev", &chain(), &Discard, &go(), &refuse)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Halted { ref stack, .. } if stack == "dev"),
        "{err}"
    );
    assert!(rig.cloud.list().unwrap().is_empty(), "nothing was applied");
    // The gate was shown the plan the preview promised.
    assert_eq!(*refuse.seen.lock().unwrap(), vec![preview.hash.clone()]);

    // Approved for that hash: it runs (the lease was released by the halt).
    let approve = HashGate {
        approved: Some(preview.hash.clone()),
        seen: Default::default(),
    };
    let report = rig
        .engine
        .up_gated("dev", &chain(), &Discard, &go(), &approve)
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(rig.cloud.list().unwrap().len(), 4);

    // Once inputs change, the old approval no longer admits the new plan.
    let mut changed = chain();
    changed.resources[3].set("size", 2);
    let err = rig
        .engine
        .up_gated("dev", &changed, &Discard, &go(), &approve)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Halted { .. }), "{err}");
    let state = rig.engine.read_state("dev").await.unwrap();
    let d = state.resources.iter().find(|r| r.name == "d").unwrap();
    assert!(
        !d.inputs.contains_key("size"),
        "the unapproved change did not run"
    );

    // A destroy is gated too.
    let err = rig
        .engine
        .destroy_gated("dev", &Discard, &go(), &refuse)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Halted { .. }), "{err}");
    assert_eq!(rig.cloud.list().unwrap().len(), 4, "nothing was deleted");
}

async fn a_failure_stops_dependents_but_independent_branches_finish(store: Store) {
    let options = TestCloudOptions {
        fail_names: Some(regex::Regex::new("^b$").unwrap()),
        ..Default::default()
    };
    let rig = Rig::with(&store, options, 10).await;
    let events = Recorder::default();
    let report = rig
        .engine
        .up("dev", &chain(), &events, &go())
        .await
        .unwrap();
    assert!(!report.succeeded());
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].resource, "b");
    assert_eq!(report.failures[0].code.as_deref(), Some("InjectedFailure"));
    assert_eq!(
        report.skipped,
        vec![("c".to_owned(), "depends on `b`, which failed".to_owned())]
    );
    let mut names: Vec<String> = rig
        .cloud
        .list()
        .unwrap()
        .iter()
        .map(|o| o.inputs["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a", "d"]);
    let state = rig.engine.read_state("dev").await.unwrap();
    assert_eq!(state.resources.len(), 2);
    assert_eq!(state.pending, 0, "the failed create was settled");
}

async fn cancellation_stops_starting_steps_and_waits_for_those_in_flight(store: Store) {
    let options = TestCloudOptions {
        latency: Duration::from_millis(200),
        ..Default::default()
    };
    let rig = Rig::with(&store, options, 2).await;
    let mut g = DesiredGraph::new();
    for i in 0..10 {
        g.resource(&format!("r{i}"), "test:resource")
            .set("name", format!("r{i}"));
    }
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let events = Recorder::default();
    let sink = |e: &paddock_engine::Event| {
        events.0.lock().unwrap().push(e.clone());
        if matches!(e, paddock_engine::Event::StepStarted { .. }) {
            trigger.cancel();
        }
    };
    let report = rig.engine.up("dev", &g, &sink, &cancel).await.unwrap();
    assert!(report.cancelled);
    let started = events
        .lines()
        .iter()
        .filter(|l| l.starts_with("started"))
        .count();
    let created = report.done.get(&StepKind::Create).copied().unwrap_or(0);
    assert!(
        (1..=2).contains(&started),
        "only the steps already under way ran: {:?}",
        events.lines()
    );
    assert_eq!(
        created, started,
        "in-flight steps finished and were recorded"
    );
    assert_eq!(report.skipped.len(), 10 - started);
    assert_eq!(rig.cloud.list().unwrap().len(), started);
    assert_eq!(
        rig.engine.read_state("dev").await.unwrap().resources.len(),
        started
    );
    // The next run does the rest.
    let report = rig.engine.up("dev", &g, &Discard, &go()).await.unwrap();
    assert!(report.succeeded());
    assert_eq!(rig.cloud.list().unwrap().len(), 10);
}

fn foreign_lease(op: &str, host: &str, pid: u32, expires_in_ms: i64) -> Lease {
    let now = paddock_engine::state::now_ms();
    Lease {
        op_id: op.into(),
        operation: "up".into(),
        holder: Holder {
            user: "alice".into(),
            host: host.into(),
            pid,
        },
        acquired_at_ms: now,
        expires_at_ms: now + expires_in_ms,
    }
}

async fn a_busy_stack_refuses_a_second_operation_and_says_who_holds_it(store: Store) {
    let rig = Rig::on(&store).await;
    rig.engine.init_stack("dev").await.unwrap();
    let store = rig.engine.store().clone();
    let lease = foreign_lease("op-1", "build-agent-7", 4242, 60_000);
    assert!(matches!(
        store
            .acquire_lease("dev", &lease, paddock_engine::state::now_ms(), None)
            .await
            .unwrap(),
        LeaseOutcome::Acquired
    ));
    let err = rig
        .engine
        .up("dev", &chain(), &Discard, &go())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, EngineError::StackBusy { .. }));
    assert!(
        message.starts_with(
            "stack `dev` is busy (operation op-1 `up` by alice@build-agent-7 pid 4242 since "
        ),
        "{message}"
    );
    assert!(rig.cloud.list().unwrap().is_empty(), "nothing was done");
    // Once released, the stack is free again.
    store.release_lease("dev", "op-1").await.unwrap();
    assert!(
        rig.engine
            .up("dev", &chain(), &Discard, &go())
            .await
            .unwrap()
            .succeeded()
    );
}

async fn a_stale_lease_is_taken_over(store: Store) {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let here = Holder::this_process().host;
    let stale = [
        ("expired", foreign_lease("op-old", "gone-host", 1, -1)),
        (
            "held by a dead process on this host",
            foreign_lease("op-dead", &here, dead_pid, 60_000),
        ),
    ];
    for (why, lease) in stale {
        let rig = Rig::on(&store).await;
        rig.engine.init_stack("dev").await.unwrap();
        let store = rig.engine.store();
        store
            .acquire_lease("dev", &lease, lease.acquired_at_ms - 10, None)
            .await
            .unwrap();
        let report = rig.engine.up("dev", &chain(), &Discard, &go()).await;
        assert!(
            report.is_ok_and(|r| r.succeeded()),
            "a lease {why} is taken over"
        );
    }
}

async fn stack_references_read_another_stacks_outputs_and_keep_secrets_secret(store: Store) {
    let rig = Rig::on(&store).await;
    let mut team = DesiredGraph::new();
    team.resource("group", "test:resource")
        .set("name", "team-payments");
    team.resource("token", "random:string").set("length", 24);
    team.output("groupId", Expr::reference("group", &["id"]));
    team.output("token", Expr::reference("token", &["result"]));
    rig.engine.up("team", &team, &Discard, &go()).await.unwrap();
    let team_outputs = rig.engine.outputs("team").await.unwrap();
    assert!(matches!(team_outputs["token"], Value::Secret(_)));

    let mut env = DesiredGraph::new();
    env.stack_ref("team", "team");
    env.resource("rg", "test:resource")
        .set("name", "rg")
        .set("parent", Expr::reference("team", &["groupId"]))
        .set("password", Expr::reference("team", &["token"]));
    env.output("teamToken", Expr::template("token=${team.token}").unwrap());
    rig.engine.up("env", &env, &Discard, &go()).await.unwrap();
    let rg = rig
        .engine
        .read_state("env")
        .await
        .unwrap()
        .resources
        .into_iter()
        .find(|r| r.name == "rg")
        .unwrap();
    assert_eq!(rg.inputs["parent"], team_outputs["groupId"]);
    let outputs = rig.engine.outputs("env").await.unwrap();
    assert!(
        matches!(outputs["teamToken"], Value::Secret(_)),
        "interpolating a secret yields a secret"
    );
    let token = team_outputs["token"].reveal().as_str().unwrap().to_owned();
    let bytes = rig.state_bytes().await;
    assert!(
        !contains(&bytes, token.as_bytes()),
        "the token is never stored in clear"
    );

    let mut missing = env.clone();
    missing.output("nope", Expr::reference("team", &["noSuchOutput"]));
    let err = rig.engine.preview("env", &missing).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "stack reference to `team`: stack `team` has no output `noSuchOutput` (referenced as `${team.noSuchOutput}`)"
    );
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn secrets_are_never_stored_printed_or_sent_in_events_in_clear(store: Store) {
    let rig = Rig::on(&store).await;
    let secret = "correct-horse-battery-staple";
    let mut g = DesiredGraph::new();
    g.resource("db", "test:resource")
        .set("name", "db")
        .set("password", secret);
    g.resource("pw", "random:string").set("length", 40);
    g.output("password", Expr::reference("db", &["password"]));
    g.output("generated", Expr::reference("pw", &["result"]));
    g.output(
        "dsn",
        Expr::template("postgres://app:${pw.result}@db").unwrap(),
    );
    let plan = rig.engine.preview("dev", &g).await.unwrap();
    let shown = format!("{plan}\n{}", plan.to_json());
    assert!(!shown.contains(secret), "{shown}");
    let events = Recorder::default();
    rig.engine.up("dev", &g, &events, &go()).await.unwrap();
    let outputs = rig.engine.outputs("dev").await.unwrap();
    let generated = outputs["generated"].reveal().as_str().unwrap().to_owned();
    assert_eq!(generated.len(), 40);
    for key in ["password", "generated", "dsn"] {
        assert!(matches!(outputs[key], Value::Secret(_)), "{key} is secret");
        assert_eq!(outputs[key].to_string(), "[secret]");
    }
    let event_text = format!("{:?}", events.0.lock().unwrap());
    assert!(!event_text.contains(secret) && !event_text.contains(&generated));
    let bytes = rig.state_bytes().await;
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, secret.as_bytes()),
        "the literal secret is not in the database file"
    );
    assert!(
        !contains(&bytes, generated.as_bytes()),
        "the generated secret is not in the database file"
    );
    assert!(
        contains(&bytes, b"$secret"),
        "sealed values are there instead"
    );
}

async fn refresh_records_drift_and_the_next_plan_corrects_it(store: Store) {
    let rig = Rig::on(&store).await;
    let mut g = DesiredGraph::new();
    g.resource("a", "test:resource")
        .set("name", "a")
        .set("size", 1);
    g.resource("b", "test:resource").set("name", "b");
    rig.engine.up("dev", &g, &Discard, &go()).await.unwrap();
    // Someone changes `a` behind Paddock's back and deletes `b`.
    let objects = rig.cloud.list().unwrap();
    let a = objects.iter().find(|o| o.inputs["name"] == "a").unwrap();
    let b = objects.iter().find(|o| o.inputs["name"] == "b").unwrap();
    let path = rig
        .dir
        .path()
        .join("cloud/objects")
        .join(format!("{}.json", a.id));
    let mut edited = a.clone();
    edited.inputs["size"] = serde_json::json!(7);
    std::fs::write(&path, serde_json::to_vec(&edited).unwrap()).unwrap();
    std::fs::remove_file(
        rig.dir
            .path()
            .join("cloud/objects")
            .join(format!("{}.json", b.id)),
    )
    .unwrap();

    let drift = rig.engine.refresh("dev", false, &Discard).await.unwrap();
    let summary: Vec<(String, &str, Vec<String>)> = drift
        .into_iter()
        .map(|d| (d.resource, d.change, d.properties))
        .collect();
    assert!(
        summary.contains(&("a".into(), "changed", vec!["size".into()])),
        "{summary:?}"
    );
    assert!(
        summary.contains(&("b".into(), "deleted", vec![])),
        "{summary:?}"
    );
    let plan = rig.engine.preview("dev", &g).await.unwrap();
    assert_eq!(
        kinds(&plan),
        vec![
            ("a".into(), StepKind::Update),
            ("b".into(), StepKind::Create)
        ]
    );
}

async fn import_adopts_an_existing_object(store: Store) {
    let rig = Rig::on(&store).await;
    let mut g = DesiredGraph::new();
    g.resource("legacy", "test:resource")
        .set("name", "legacy-db")
        .set("size", 3);
    rig.engine.up("old", &g, &Discard, &go()).await.unwrap();
    let id = rig.cloud.list().unwrap()[0].id.clone();

    let imported = rig
        .engine
        .import("new", "test:resource", "legacy", &id)
        .await
        .unwrap();
    assert_eq!(imported.inputs["name"], Value::from("legacy-db"));
    let plan = rig.engine.preview("new", &g).await.unwrap();
    assert!(
        !plan.has_changes(),
        "the imported object matches the blueprint: {plan}"
    );
    let err = rig
        .engine
        .import("new", "test:resource", "legacy", &id)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already has a resource named `legacy`"),
        "{err}"
    );
    let err = rig
        .engine
        .import("new", "test:resource", "other", "obj-missing")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "import: no `test:resource` with id `obj-missing` exists"
    );
}

async fn an_interrupted_create_is_adopted_not_duplicated(store: Store) {
    use paddock_engine::state::{JournalEntry, JournalKind};
    let rig = Rig::on(&store).await;
    rig.engine.init_stack("dev").await.unwrap();
    // A crashed run: the journal says a create started; the cloud has the object.
    let token = paddock_engine::new_id();
    let provider = rig
        .engine
        .providers()
        .for_type("test:resource")
        .unwrap()
        .clone();
    let inputs = paddock_engine::Props::from([("name".to_owned(), Value::from("a"))]);
    let r = paddock_engine::provider::ResourceRef {
        ty: "test:resource",
        urn: "paddock:dev:test:resource:a",
        token: &token,
        imported: false,
    };
    provider.create(r, &inputs).await.unwrap();
    let entry = JournalEntry {
        op_id: "op-crashed".into(),
        kind: JournalKind::Create,
        name: "a".into(),
        ty: "test:resource".into(),
        instance: token.clone(),
        id: None,
        inputs: paddock_engine::secrets::Sealed::without_secrets(inputs.clone()).unwrap(),
        dependencies: vec![],
        options: Default::default(),
        replaces: None,
        started_at_ms: 0,
    };
    // Written under the crashed run's lease, which the next run takes over.
    let store = rig.engine.store();
    let crashed = foreign_lease("op-crashed-run", "gone-host", 1, -1);
    let now = paddock_engine::state::now_ms();
    store
        .acquire_lease("dev", &crashed, now, None)
        .await
        .unwrap();
    let fence = paddock_engine::state::Fence {
        stack: "dev",
        op_id: "op-crashed-run",
    };
    store.journal_begin(fence, &entry).await.unwrap();
    let mut g = DesiredGraph::new();
    g.resource("a", "test:resource").set("name", "a");
    assert_eq!(rig.engine.preview("dev", &g).await.unwrap().pending, 1);
    let events = Recorder::default();
    let report = rig.engine.up("dev", &g, &events, &go()).await.unwrap();
    assert!(report.succeeded());
    assert!(
        report.done.is_empty(),
        "adopted, so nothing left to create: {report:?}"
    );
    assert_eq!(rig.cloud.list().unwrap().len(), 1);
    let state = rig.engine.read_state("dev").await.unwrap();
    assert_eq!((state.resources.len(), state.pending), (1, 0));
}

async fn an_operation_that_loses_its_lease_stops_and_fails(store: Store) {
    let cloud = TestCloudOptions {
        latency: Duration::from_millis(100),
        ..Default::default()
    };
    let options = paddock_engine::EngineOptions {
        parallelism: 1,
        lease_ttl: Duration::from_millis(300),
        ..Default::default()
    };
    let rig = Rig::with_options(&store, cloud, options).await;
    let mut g = DesiredGraph::new();
    for i in 0..20 {
        g.resource(&format!("r{i}"), "test:resource")
            .set("name", format!("r{i}"));
    }
    let store = rig.engine.store().clone();
    let thief = async {
        // Once the operation holds the lease, another holder takes it over.
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let stacks = store.list_stacks().await.unwrap();
            if let Some(held) = stacks.first().and_then(|s| s.lease.clone()) {
                let lease = foreign_lease("op-thief", "elsewhere", 1, 60_000);
                let now = paddock_engine::state::now_ms();
                store
                    .acquire_lease("dev", &lease, now, Some(&held.op_id))
                    .await
                    .unwrap();
                return;
            }
        }
    };
    let cancel = go();
    let (result, ()) = tokio::join!(rig.engine.up("dev", &g, &Discard, &cancel), thief);
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the lease on stack `dev` was lost (expired and taken over)"
    );
    let created = rig.cloud.list().unwrap().len();
    assert!(
        created < 20,
        "it stopped starting steps once the lease was gone ({created} created)"
    );
    // Its last writes were fenced off, but each step it began is journaled: once the
    // thief is done, the next run adopts what was made and creates only the rest.
    let state = rig.engine.read_state("dev").await.unwrap();
    assert_eq!(
        state.resources.len() + state.pending,
        created,
        "every object made is recorded or journaled"
    );
    store.release_lease("dev", "op-thief").await.unwrap();
    let report = rig.engine.up("dev", &g, &Discard, &go()).await.unwrap();
    assert!(report.succeeded());
    assert_eq!(
        rig.cloud.list().unwrap().len(),
        20,
        "nothing was made twice"
    );
}

async fn writes_are_fenced_by_the_lease(store: Store) {
    use paddock_engine::state::Fence;
    let rig = Rig::on(&store).await;
    rig.engine.init_stack("dev").await.unwrap();
    let store = rig.engine.store();
    let now = paddock_engine::state::now_ms();
    store
        .acquire_lease(
            "dev",
            &foreign_lease("op-a", "host-a", 1, 60_000),
            now,
            None,
        )
        .await
        .unwrap();
    let outputs =
        paddock_engine::secrets::Sealed::without_secrets(paddock_engine::Props::new()).unwrap();
    store
        .set_outputs(
            Fence {
                stack: "dev",
                op_id: "op-a",
            },
            &outputs,
        )
        .await
        .unwrap();
    // op-a's lease expires and op-b takes over; op-a, resuming, can no longer write.
    store
        .acquire_lease(
            "dev",
            &foreign_lease("op-b", "host-b", 2, 60_000),
            now + 120_000,
            None,
        )
        .await
        .unwrap();
    let err = store
        .set_outputs(
            Fence {
                stack: "dev",
                op_id: "op-a",
            },
            &outputs,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the lease on stack `dev` was lost (expired and taken over)"
    );
    store
        .set_outputs(
            Fence {
                stack: "dev",
                op_id: "op-b",
            },
            &outputs,
        )
        .await
        .unwrap();
}

/// What `bench provision`'s breakdown is made of: each phase of the stack in order, and
/// for each step its preparation, slot, journal entry, provider call and completion, all
/// within the step, and the steps within the apply.
async fn every_part_of_an_up_reports_how_long_it_took(store: Store) {
    use paddock_engine::{Phase, Timing};
    use std::sync::Mutex;
    use std::time::Instant;

    /// A timed part: its resource (none for the stack's own phases), phase, start, end.
    type Span = (Option<String>, Phase, Instant, Instant);
    #[derive(Default)]
    struct Timings(Mutex<Vec<Span>>);
    impl paddock_engine::EventSink for Timings {
        fn emit(&self, _: &paddock_engine::Event) {}
        fn timing(&self, t: &Timing<'_>) {
            assert_eq!(t.stack, "dev");
            let span = (
                t.resource.map(str::to_owned),
                t.phase,
                t.started,
                t.started + t.elapsed,
            );
            self.0.lock().unwrap().push(span);
        }
    }
    let rig = Rig::on(&store).await;
    let timings = Timings::default();
    let report = rig
        .engine
        .up("dev", &chain(), &timings, &go())
        .await
        .unwrap();
    assert!(report.succeeded(), "{report:?}");
    let spans = timings.0.into_inner().unwrap();
    let of_stack: Vec<Phase> = spans
        .iter()
        .filter(|s| s.0.is_none())
        .map(|s| s.1)
        .collect();
    assert_eq!(
        of_stack,
        [
            Phase::CreateStack,
            Phase::LeaseAcquire,
            Phase::Recover,
            Phase::StackRefs,
            Phase::Plan,
            Phase::Apply,
            Phase::Outputs,
            Phase::LeaseRelease,
        ]
    );
    let stack_span = |phase| {
        spans
            .iter()
            .find(|s| s.0.is_none() && s.1 == phase)
            .unwrap()
    };
    let apply = stack_span(Phase::Apply);
    for name in ["a", "b", "c", "d"] {
        let of_step = |phase| {
            spans
                .iter()
                .find(|s| s.0.as_deref() == Some(name) && s.1 == phase)
                .unwrap_or_else(|| panic!("{name}: no {phase:?}"))
        };
        let step = of_step(Phase::Step);
        assert!(
            apply.2 <= step.2 && step.3 <= apply.3,
            "{name} within the apply"
        );
        let parts = [
            Phase::Prepare,
            Phase::SlotWait,
            Phase::JournalBegin,
            Phase::ProviderCall,
            Phase::JournalComplete,
        ];
        let mut at = step.2;
        for phase in parts {
            let part = of_step(phase);
            assert!(
                at <= part.2 && part.3 <= step.3,
                "{name}: {phase:?} in order, within the step"
            );
            at = part.3;
        }
    }
    // c waited for b, which waited for a.
    let end = |name: &str| {
        spans
            .iter()
            .find(|s| s.0.as_deref() == Some(name) && s.1 == Phase::Step)
            .unwrap()
            .3
    };
    let start = |name: &str| {
        spans
            .iter()
            .find(|s| s.0.as_deref() == Some(name) && s.1 == Phase::Step)
            .unwrap()
            .2
    };
    assert!(end("a") <= start("b") && end("b") <= start("c"));
}
