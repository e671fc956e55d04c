//! Refresh and accepted drift, specified against real state and the test cloud: reads go
//! out in parallel (bounded per provider) and come back in state order; each drifted
//! value is reported with its path; accepted drift is kept by later plans until the
//! blueprint declares something else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use paddock_engine::provider::{Created, ReadResult, ResourceRef, TypeSchema};
use paddock_engine::secrets::LocalKeyFile;
use paddock_engine::{
    DesiredGraph, Discard, Engine, EngineError, EngineOptions, Props, Provider, ProviderError,
    ProviderRegistry, StepKind, Value,
};
use paddock_providers::{TestCloud, TestCloudOptions};
use paddock_store::SqliteStore;
use tokio_util::sync::CancellationToken;

/// The test cloud, counting the reads in flight.
struct Counting {
    cloud: Arc<TestCloud>,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

#[async_trait]
impl Provider for Counting {
    fn name(&self) -> &str {
        self.cloud.name()
    }
    fn schemas(&self) -> &[TypeSchema] {
        self.cloud.schemas()
    }
    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        self.cloud.create(r, inputs).await
    }
    async fn read(
        &self,
        ty: &str,
        id: &str,
        inputs: &Props,
    ) -> Result<Option<ReadResult>, ProviderError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let read = self.cloud.read(ty, id, inputs).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        read
    }
    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        self.cloud.update(r, id, olds, news).await
    }
    async fn delete(&self, ty: &str, id: &str, props: &Props) -> Result<(), ProviderError> {
        self.cloud.delete(ty, id, props).await
    }
    async fn find(
        &self,
        r: ResourceRef<'_>,
        inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        self.cloud.find(r, inputs).await
    }
}

struct Rig {
    dir: tempfile::TempDir,
    engine: Engine,
    counting: Arc<Counting>,
}

async fn rig(parallelism: usize) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Arc::new(
        TestCloud::open(
            &dir.path().join("cloud"),
            TestCloudOptions {
                latency: Duration::from_millis(5),
                fail_names: None,
                foreign_names: None,
            },
        )
        .unwrap(),
    );
    let counting = Arc::new(Counting {
        cloud,
        in_flight: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
    });
    let store = SqliteStore::open(&dir.path().join("state.db"))
        .await
        .unwrap();
    let key = LocalKeyFile::open_or_create(&dir.path().join("master.key")).unwrap();
    let engine = Engine::new(
        Arc::new(store),
        ProviderRegistry::new().with(counting.clone()),
        Arc::new(key),
        EngineOptions {
            parallelism,
            ..Default::default()
        },
    );
    Rig {
        dir,
        engine,
        counting,
    }
}

/// Twelve resources, each tagged; `r05`'s tags may be accepted.
fn graph(r05_owner: &str) -> DesiredGraph {
    let mut g = DesiredGraph::new();
    for i in 0..12 {
        let name = format!("r{i:02}");
        let owner = if i == 5 { r05_owner } else { "ada" };
        let spec = g
            .resource(&name, "test:resource")
            .set("name", name.as_str())
            .set("size", 1)
            .set(
                "tags",
                Value::from_json(serde_json::json!({"owner": owner, "team": "payments"})),
            );
        if i == 5 {
            spec.accept_drift("tags");
        }
    }
    g
}

/// Edits an object in the test cloud, as someone with the cloud's console would.
fn edit(rig: &Rig, name: &str, change: impl FnOnce(&mut serde_json::Value)) {
    let objects = rig.counting.cloud.list().unwrap();
    let object = objects
        .iter()
        .find(|o| o.inputs["name"] == name)
        .unwrap()
        .clone();
    let path = rig
        .dir
        .path()
        .join("cloud/objects")
        .join(format!("{}.json", object.id));
    let mut edited = serde_json::to_value(&object).unwrap();
    change(&mut edited["inputs"]);
    std::fs::write(path, serde_json::to_vec(&edited).unwrap()).unwrap();
}

fn cloud_inputs(rig: &Rig, name: &str) -> serde_json::Value {
    rig.counting
        .cloud
        .list()
        .unwrap()
        .into_iter()
        .find(|o| o.inputs["name"] == name)
        .unwrap()
        .inputs
}

#[tokio::test]
async fn refresh_reads_in_parallel_per_provider_and_reports_each_value_in_state_order() {
    for parallelism in [1, 4] {
        let rig = rig(parallelism).await;
        rig.engine
            .up("dev", &graph("ada"), &Discard, &CancellationToken::new())
            .await
            .unwrap();
        edit(&rig, "r05", |inputs| {
            inputs["size"] = 2.into();
            inputs["tags"]["owner"] = "bob".into();
            inputs["tags"]["costCenter"] = "42".into();
        });
        edit(&rig, "r09", |inputs| {
            inputs["tags"].as_object_mut().unwrap().remove("team");
        });
        let order: Vec<String> = rig
            .engine
            .read_state("dev")
            .await
            .unwrap()
            .resources
            .into_iter()
            .map(|r| r.name)
            .collect();
        rig.counting.most.store(0, Ordering::SeqCst);

        let drift = rig.engine.refresh("dev", false, &Discard).await.unwrap();
        assert_eq!(
            drift.iter().map(|d| d.resource.clone()).collect::<Vec<_>>(),
            order,
            "in state order"
        );
        assert_eq!(
            rig.counting.most.load(Ordering::SeqCst),
            parallelism,
            "at most `parallelism` reads in flight, and that many"
        );
        let mut report: Vec<String> = drift
            .iter()
            .filter(|d| d.change != "unchanged")
            .flat_map(|d| {
                d.diff.iter().map(move |p| {
                    format!(
                        "{} {}: {} -> {}",
                        d.resource,
                        p.path,
                        p.state
                            .as_ref()
                            .map_or("(absent)".into(), |v| v.to_string()),
                        p.cloud
                            .as_ref()
                            .map_or("(absent)".into(), |v| v.to_string())
                    )
                })
            })
            .collect();
        report.sort();
        assert_eq!(
            report,
            [
                "r05 size: 1 -> 2",
                "r05 tags.costCenter: (absent) -> \"42\"",
                "r05 tags.owner: \"ada\" -> \"bob\"",
                "r09 tags.team: \"payments\" -> (absent)",
            ]
        );
    }
}

#[tokio::test]
async fn accepted_drift_is_kept_until_the_blueprint_declares_something_else() {
    let rig = rig(4).await;
    let go = CancellationToken::new();
    rig.engine
        .up("dev", &graph("ada"), &Discard, &go)
        .await
        .unwrap();
    edit(&rig, "r05", |inputs| {
        inputs["size"] = 2.into();
        inputs["tags"]["owner"] = "bob".into();
    });
    rig.engine.refresh("dev", false, &Discard).await.unwrap();

    // Only what the blueprint lists may be accepted.
    let refused = rig
        .engine
        .accept_drift("dev", &graph("ada"), "r05", &["size".into()])
        .await
        .unwrap_err();
    let EngineError::Invalid(d) = refused else {
        panic!("{refused}")
    };
    assert!(d.to_string().contains("properties[0]"), "{d}");

    let accepted = rig
        .engine
        .accept_drift("dev", &graph("ada"), "r05", &["tags".into()])
        .await
        .unwrap();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].accepted.as_ref().unwrap()["owner"], "bob");
    // The plan now reverts only what was not accepted.
    let plan = rig.engine.preview("dev", &graph("ada")).await.unwrap();
    let r05 = plan.steps.iter().find(|s| s.name == "r05").unwrap();
    assert_eq!(r05.kind, StepKind::Update);
    assert_eq!(
        r05.diffs
            .iter()
            .map(|d| d.property.as_str())
            .collect::<Vec<_>>(),
        ["size"]
    );
    rig.engine
        .up("dev", &graph("ada"), &Discard, &go)
        .await
        .unwrap();
    assert_eq!(cloud_inputs(&rig, "r05")["size"], 1);
    assert_eq!(cloud_inputs(&rig, "r05")["tags"]["owner"], "bob");
    assert!(
        !rig.engine
            .preview("dev", &graph("ada"))
            .await
            .unwrap()
            .has_changes(),
        "accepted drift stays accepted"
    );

    // Once the blueprint declares another owner, it wins.
    let plan = rig.engine.preview("dev", &graph("cleo")).await.unwrap();
    let r05 = plan.steps.iter().find(|s| s.name == "r05").unwrap();
    assert_eq!(r05.kind, StepKind::Update);
    rig.engine
        .up("dev", &graph("cleo"), &Discard, &go)
        .await
        .unwrap();
    assert_eq!(cloud_inputs(&rig, "r05")["tags"]["owner"], "cleo");
    let state = rig.engine.read_state("dev").await.unwrap();
    let r05 = state.resources.iter().find(|r| r.name == "r05").unwrap();
    assert_eq!(r05.inputs["size"], Value::Int(1));
}
