//! Blueprint versions and fleet upgrades: platform admins publish a new version of the
//! `environment` blueprint through the API (checked like the shipped one, parameters kept
//! compatible, never greater-than-or-equal to what exists); environments on older
//! versions say an upgrade is available and show its plan; a fleet rollout upgrades them
//! in waves — a canary, then batches — skipping pinned ones and stopping after the first
//! wave with a failure, and its report says what became of each environment.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Rig};
use reqwest::Method;
use serde_json::{Value, json};

on_both_databases!(
    a_fleet_upgrades_in_waves_and_stops_after_the_wave_that_failed,
    publishing_is_for_platform_admins_and_refuses_broken_stale_or_incompatible_bundles,
    a_team_admin_upgrades_and_pins_one_environment,
);

const REQUEST: &str = include_str!("../../../blueprints/environment.yaml");
const REPOSITORY: &str = include_str!("../../../blueprints/environment/repository.yaml");
const STAGE: &str = include_str!("../../../blueprints/environment/stage.yaml");
const PUBLISH: &str = "/api/v1/blueprints/environment/versions";
const ROLLOUTS: &str = "/api/v1/blueprints/environment/rollouts";

/// The version the server ships.
fn shipped_version() -> String {
    REQUEST
        .lines()
        .find_map(|l| l.strip_prefix("version:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The shipped files as version `version`, the stage blueprint passed through `stage`.
fn bundle(version: &str, stage: impl FnOnce(&str) -> String) -> Value {
    let request = REQUEST.replace(
        &format!("version: {}", shipped_version()),
        &format!("version: {version}"),
    );
    json!({
        "version": version,
        "files": {
            "environment.yaml": request,
            "environment/repository.yaml": REPOSITORY,
            "environment/stage.yaml": stage(STAGE),
        }
    })
}

/// Version 2.0.0: one more tag on each stage's resource group, one more label on its
/// namespace.
fn v2() -> Value {
    bundle("2.0.0", |stage| {
        let tagged = "        managedBy: paddock\n";
        let labelled = "        paddock.dev/stage: ${stage}\n";
        assert!(stage.contains(tagged) && stage.contains(labelled));
        stage
            .replacen(tagged, &format!("{tagged}        generation: v2\n"), 1)
            .replacen(
                labelled,
                &format!("{labelled}        paddock.dev/generation: v2\n"),
                1,
            )
    })
}

async fn inspect(rig: &Rig) -> Value {
    reqwest::get(format!("{}/inspect", rig.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The tags of the resource group `name` in the sandbox.
fn group_tags(inspect: &Value, name: &str) -> Value {
    inspect["arm"]["resourceGroup"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no resource group {name}"))["tags"]
        .clone()
}

/// The labels of namespace `name` in the sandbox's cluster.
fn namespace_labels(inspect: &Value, name: &str) -> Value {
    inspect["kubernetes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(kind, _)| kind.contains("namespace"))
        .flat_map(|(_, items)| items.as_array().unwrap().iter())
        .find(|n| n["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no namespace {name}"))["metadata"]["labels"]
        .clone()
}

/// Ids made at random, replaced by their kind.
fn without_ids(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let trimmed = w.trim_end_matches([')', ';', ',']);
            if trimmed.starts_with("op_") && trimmed.len() > 10 {
                w.replace(trimmed, "op_…")
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until the rollout has ended; returns its report.
async fn rollout_ends(rig: &Rig, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r = rig
            .get(&rig.admin(), &format!("{ROLLOUTS}/{id}"))
            .await
            .expect(200);
        if r.body["state"] != "running" {
            return r.body;
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not end: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_fleet_upgrades_in_waves_and_stops_after_the_wave_that_failed(backend: Backend) {
    // Twenty environments on two shared cores: leases long enough that a starved
    // heartbeat does not hand an operation over mid-run.
    let rig = Rig::start_with(backend, |c| c.workers.lease_seconds = Some(30)).await;
    let admin = rig.admin();
    let v1 = shipped_version();
    rig.team("fleet", &[]).await;
    let names: Vec<String> = (1..=20).map(|i| format!("app{i:02}")).collect();
    let started = Instant::now();
    let mut ops = Vec::new();
    for name in &names {
        let created = rig
            .post(
                &admin,
                "/api/v1/teams/fleet/environments",
                json!({"name": name, "stages": ["dev"], "quota": "small"}),
            )
            .await
            .expect(202);
        ops.push(created.body);
    }
    for op in &ops {
        rig.succeeds(op).await;
    }
    eprintln!(
        "20 environments (repository + dev) created in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let env = |name: &str| format!("/api/v1/teams/fleet/environments/{name}");
    rig.call(
        &admin,
        Method::PUT,
        &format!("{}/pin", env("app20")),
        Some(json!({"version": v1})),
    )
    .await
    .expect(200);

    // Publishing v2 marks every environment on v1 "upgrade available"...
    let published = rig.post(&admin, PUBLISH, v2()).await.expect(201);
    assert_eq!(published.body["version"], "2.0.0");
    let app01 = rig.get(&admin, &env("app01")).await.expect(200).body;
    assert_eq!(app01["blueprintVersion"], v1.as_str());
    assert_eq!(app01["upgradeAvailable"], "2.0.0");
    // ...and the upgrade's plan changes the dev stage's group and namespace, nothing else.
    let plan = rig
        .get(&admin, &format!("{}/upgrade", env("app01")))
        .await
        .expect(200)
        .body;
    assert_eq!(plan["blueprintVersion"], "2.0.0");
    let changed: Vec<String> = plan["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["systems"].as_array().unwrap().iter())
        .flat_map(|s| s["changes"].as_array().unwrap().iter())
        .map(|c| format!("{} {} {}", c["kind"], c["type"], c["name"]))
        .collect();
    // (The role assignment scoped to the group shows as a replace: its scope is known
    // only once the group's update returns; the apply re-plans it as unchanged.)
    assert_eq!(
        changed,
        [
            "\"update\" \"azure:resourceGroup\" \"resourceGroup\"",
            "\"replace\" \"azure:roleAssignment\" \"contributor\"",
            "\"update\" \"kubernetes:namespace\" \"namespace\""
        ],
        "{plan:#}"
    );
    assert_eq!(plan["stacks"][0]["stack"], "fleet-app01");
    assert_eq!(
        plan["stacks"][0]["counts"]["same"],
        plan["stacks"][0]["counts"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        "the repository does not change"
    );

    // One environment of the second batch cannot update its resource group.
    rig.fault(
        "arm",
        Some("PUT"),
        Some("rg-fleet-app09-dev"),
        0,
        Some("403"),
    );
    let rollout = rig
        .post(
            &admin,
            ROLLOUTS,
            json!({"targetVersion": "2.0.0", "canary": 1, "batchSize": 5}),
        )
        .await
        .expect(201);
    let id = rollout.body["id"].as_str().unwrap().to_owned();
    assert!(rollout.headers["location"].to_str().unwrap().ends_with(&id));
    let started = Instant::now();
    let report = rollout_ends(&rig, &id).await;
    eprintln!(
        "rollout of 19 environments ended after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    assert_eq!(report["state"], "failed", "{report:#}");
    let lines: Vec<String> = report["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let wave = match t["wave"].as_i64() {
                Some(0) => "canary ".to_owned(),
                Some(n) => format!("batch {n}"),
                None => "-      ".to_owned(),
            };
            let detail = t["detail"]
                .as_str()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            format!(
                "{} {wave} {}→2.0.0 {}{detail}",
                t["environment"].as_str().unwrap(),
                t["fromVersion"].as_str().unwrap(),
                t["status"].as_str().unwrap()
            )
        })
        .collect();
    let summary = format!(
        "state: {}\nreason: {}\ncounts: {}\n\n{}",
        report["state"].as_str().unwrap(),
        without_ids(report["reason"].as_str().unwrap()),
        report["counts"],
        lines.join("\n").replace(&v1, "v1")
    );
    insta::assert_snapshot!("rollout_report", summary);

    // Each environment is on the version the report says, in the API and in the sandbox.
    let upgraded: Vec<&str> = report["environments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "upgraded")
        .map(|t| t["environment"].as_str().unwrap())
        .collect();
    assert_eq!(
        upgraded.len(),
        10,
        "the canary, batch 1 and four of batch 2"
    );
    let cloud = inspect(&rig).await;
    for name in &names {
        let e = rig.get(&admin, &env(name)).await.expect(200).body;
        let tags = group_tags(&cloud, &format!("rg-fleet-{name}-dev"));
        let labels = namespace_labels(&cloud, &format!("fleet-{name}-dev"));
        if upgraded.contains(&name.as_str()) {
            assert_eq!(e["blueprintVersion"], "2.0.0", "{e}");
            assert!(e.get("upgradeAvailable").is_none(), "{e}");
            assert_eq!(tags["generation"], "v2", "{name}: {tags}");
            assert_eq!(labels["paddock.dev/generation"], "v2", "{name}: {labels}");
        } else {
            assert_eq!(e["blueprintVersion"], v1.as_str(), "{e}");
            assert_eq!(e["upgradeAvailable"], "2.0.0", "{e}");
            assert!(tags.get("generation").is_none(), "{name}: {tags}");
        }
    }
    let failed = rig.get(&admin, &env("app09")).await.expect(200).body;
    assert_eq!(failed["status"], "failed");
    let pinned = rig.get(&admin, &env("app20")).await.expect(200).body;
    assert_eq!(pinned["pinnedVersion"], v1.as_str());

    // The failed upgrade is an operation like any other, attributed to the admin.
    let failure = report["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["status"] == "failed")
        .unwrap();
    let op = rig
        .get(
            &admin,
            &format!(
                "/api/v1/operations/{}",
                failure["operation"].as_str().unwrap()
            ),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (&op["kind"], &op["state"]),
        (&json!("up"), &json!("failed"))
    );
    assert_eq!(op["requestedBy"], "admin");

    // The portal shows the report to platform admins, linked from the catalog.
    let page = rig
        .get(&admin, &format!("/blueprints/environment/rollouts/{id}"))
        .await
        .expect(200)
        .text;
    assert!(
        page.contains("Rollout to environment@2.0.0") && page.contains("fleet/app09"),
        "{page}"
    );
    let page = rig
        .get(&admin, "/blueprints/environment/rollouts")
        .await
        .expect(200)
        .text;
    assert!(
        page.contains(&id) && page.contains("Start the rollout"),
        "{page}"
    );
    let catalog = rig.get(&admin, "/blueprints").await.expect(200).text;
    assert!(
        catalog.contains("/blueprints/environment/rollouts"),
        "{catalog}"
    );

    // The list shows it; a rollout that ended cannot be cancelled; the next one may start.
    let list = rig.get(&admin, ROLLOUTS).await.expect(200).body;
    assert_eq!(list[0]["id"], id.as_str());
    rig.post(&admin, &format!("{ROLLOUTS}/{id}/cancel"), json!({}))
        .await
        .expect(409);
    rig.stop().await;
}

async fn publishing_is_for_platform_admins_and_refuses_broken_stale_or_incompatible_bundles(
    backend: Backend,
) {
    let rig = Rig::start(backend).await;
    let admin = rig.admin();
    let cole = rig.person("cole").await;
    let v1 = shipped_version();

    rig.post(&cole, PUBLISH, v2()).await.expect(403);
    rig.post(&cole, ROLLOUTS, json!({"targetVersion": v1}))
        .await
        .expect(403);
    rig.get(&cole, ROLLOUTS).await.expect(403);

    // A broken file is named, with its line and field.
    let broken = bundle("2.0.0", |s| {
        s.replacen("type: azure:resourceGroup", "type: azure:resourceGrope", 1)
    });
    let refused = rig.post(&admin, PUBLISH, broken).await.expect(422);
    let error = &refused.body["errors"][0];
    assert_eq!(
        error["field"], "files.environment/stage.yaml",
        "{}",
        refused.text
    );
    // The resource whose type is unknown, at its line.
    let line = STAGE.lines().position(|l| l == "  resourceGroup:").unwrap() + 1;
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("environment/stage.yaml:{line}:"))
            && message.contains("`resources.resourceGroup.type`")
            && message.contains("unknown resource type `azure:resourceGrope`"),
        "{message}"
    );
    let unparsable = bundle("2.0.0", |s| format!("{s}\n  oops: [\n"));
    let refused = rig.post(&admin, PUBLISH, unparsable).await.expect(422);
    assert_eq!(
        refused.body["errors"][0]["field"],
        "files.environment/stage.yaml"
    );

    // Parameters stay compatible: no value an environment may hold is dropped.
    let mut narrower = v2();
    let request = narrower["files"]["environment.yaml"]
        .as_str()
        .unwrap()
        .replace("values: [small, medium, large]", "values: [medium, large]");
    narrower["files"]["environment.yaml"] = json!(request);
    let refused = rig.post(&admin, PUBLISH, narrower).await.expect(422);
    assert!(
        refused.text.contains("no longer allows small"),
        "{}",
        refused.text
    );

    // The body's version and the file's agree, and it is a semantic version.
    let mut disagreeing = v2();
    disagreeing["version"] = json!("2.0.1");
    let refused = rig.post(&admin, PUBLISH, disagreeing).await.expect(422);
    assert!(refused.text.contains("says 2.0.0"), "{}", refused.text);
    let mut loose = v2();
    loose["version"] = json!("2.0");
    rig.post(&admin, PUBLISH, loose).await.expect(422);

    // Versions only go up; a published version never changes.
    rig.post(&admin, PUBLISH, bundle("1.0.0", str::to_owned))
        .await
        .expect(409);
    let changed_v1 = bundle(&v1, |s| {
        s.replacen("managedBy: paddock", "managedBy: other", 1)
    });
    rig.post(&admin, PUBLISH, changed_v1).await.expect(409);
    rig.post(&admin, PUBLISH, v2()).await.expect(201);
    rig.post(&admin, PUBLISH, v2()).await.expect(200);
    let shown = rig
        .get(&admin, &format!("{PUBLISH}/2.0.0"))
        .await
        .expect(200);
    assert_eq!(shown.body["version"], "2.0.0");

    // Every publication is audited, refusals of non-admins too.
    let audit = rig.get(&admin, "/api/v1/audit").await.expect(200);
    let outcomes: Vec<(String, String)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "blueprint.publish" && r["actor"] != "system")
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("cole".into(), "denied".into())),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("admin".into(), "allowed".into())),
        "{outcomes:?}"
    );
    rig.stop().await;
}

async fn a_team_admin_upgrades_and_pins_one_environment(backend: Backend) {
    let rig = Rig::start(backend).await;
    let admin = rig.admin();
    let ada = rig.person("ada").await;
    let cole = rig.person("cole").await;
    rig.team("payments", &[("ada", "admin"), ("cole", "contributor")])
        .await;
    let created = rig
        .post(
            &ada,
            "/api/v1/teams/payments/environments",
            json!({"name": "checkout", "stages": ["dev"], "quota": "small"}),
        )
        .await
        .expect(202);
    rig.succeeds(&created.body).await;
    let checkout = "/api/v1/teams/payments/environments/checkout";
    // Nothing newer yet.
    let e = rig.get(&cole, checkout).await.expect(200).body;
    assert!(e.get("upgradeAvailable").is_none(), "{e}");
    rig.post(&ada, &format!("{checkout}/upgrade"), json!({}))
        .await
        .expect(422);

    rig.post(&admin, PUBLISH, v2()).await.expect(201);
    let e = rig.get(&cole, checkout).await.expect(200).body;
    assert_eq!(e["upgradeAvailable"], "2.0.0");
    // The environment page shows the upgrade and its plan to everyone, the button to
    // admins; the rollouts are for platform admins only.
    let page = "/teams/payments/environments/checkout";
    let seen_by_ada = rig.get(&ada, page).await.expect(200).text;
    assert!(
        seen_by_ada.contains("Upgrade available: environment@2.0.0")
            && seen_by_ada.contains("<code>resourceGroup</code>")
            && seen_by_ada.contains("Upgrade to 2.0.0"),
        "{seen_by_ada}"
    );
    let seen_by_cole = rig.get(&cole, page).await.expect(200).text;
    assert!(
        seen_by_cole.contains("Upgrade available") && !seen_by_cole.contains("Upgrade to 2.0.0"),
        "{seen_by_cole}"
    );
    rig.get(&cole, "/blueprints/environment/rollouts")
        .await
        .expect(403);
    // The catalog lists what the published version creates, from its own sources.
    let version_page = rig
        .get(&cole, "/blueprints/environment/versions/2.0.0")
        .await
        .expect(200)
        .text;
    assert!(
        version_page.contains("resourceGroup") && !version_page.contains("does not ship"),
        "{version_page}"
    );
    // Readers see the plan; only admins upgrade or pin.
    rig.get(&cole, &format!("{checkout}/upgrade"))
        .await
        .expect(200);
    rig.post(&cole, &format!("{checkout}/upgrade"), json!({}))
        .await
        .expect(403);
    let pin = format!("{checkout}/pin");
    rig.call(&cole, Method::PUT, &pin, Some(json!({"version": "2.0.0"})))
        .await
        .expect(403);
    rig.call(&ada, Method::PUT, &pin, Some(json!({"version": "9.9.9"})))
        .await
        .expect(422);
    let pinned = rig
        .call(
            &ada,
            Method::PUT,
            &pin,
            Some(json!({"version": shipped_version()})),
        )
        .await
        .expect(200);
    assert_eq!(pinned.body["pinnedVersion"], shipped_version().as_str());
    let refused = rig
        .post(&ada, &format!("{checkout}/upgrade"), json!({}))
        .await
        .expect(422);
    assert!(refused.text.contains("pinned"), "{}", refused.text);
    // A change keeps the environment's version.
    rig.call(
        &ada,
        Method::PATCH,
        checkout,
        Some(json!({"blueprintVersion": "2.0.0", "quota": "medium"})),
    )
    .await
    .expect(422);
    rig.call(&ada, Method::PUT, &pin, Some(json!({"version": null})))
        .await
        .expect(200);

    let upgrade = rig
        .post(&ada, &format!("{checkout}/upgrade"), json!({}))
        .await
        .expect(202);
    rig.succeeds(&upgrade.body).await;
    let e = rig.get(&cole, checkout).await.expect(200).body;
    assert_eq!(e["blueprintVersion"], "2.0.0");
    assert!(e.get("upgradeAvailable").is_none(), "{e}");
    let tags = group_tags(&inspect(&rig).await, "rg-payments-checkout-dev");
    assert_eq!(tags["generation"], "v2", "{tags}");
    // Later changes render the version the environment is on.
    let changed = rig
        .call(
            &ada,
            Method::PATCH,
            checkout,
            Some(json!({"quota": "medium"})),
        )
        .await
        .expect(202);
    rig.succeeds(&changed.body).await;
    let tags = group_tags(&inspect(&rig).await, "rg-payments-checkout-dev");
    assert_eq!(tags["generation"], "v2", "{tags}");
    rig.stop().await;
}
