//! `test:resource`: a provider whose cloud is a directory, one JSON file per object,
//! written atomically (temp file + rename). Latency and failures can be injected, so the
//! engine's tests and benchmarks exercise real concurrency and real crashes; the cloud
//! can be listed to check that it holds exactly what state says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use paddock_engine::provider::{
    Created, PropertySchema, PropertyType, ReadResult, ResourceRef, TypeSchema,
};
use paddock_engine::{Props, Provider, ProviderError, Value};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// How the test cloud behaves.
#[derive(Clone, Debug, Default)]
pub struct TestCloudOptions {
    /// Added to every call, as a real API's round trip.
    pub latency: Duration,
    /// Creates and updates of resources whose `name` matches fail with `InjectedFailure`.
    pub fail_names: Option<regex::Regex>,
    /// Objects whose `name` matches are someone else's when a destroy comes: deletes of
    /// them are refused with `NotOwned`, as a provider refuses an object without its mark.
    pub foreign_names: Option<regex::Regex>,
}

impl TestCloudOptions {
    /// From `PADDOCK_TEST_LATENCY_MS` and `PADDOCK_TEST_FAIL` (a regex of names).
    pub fn from_env() -> Result<TestCloudOptions, String> {
        let latency = match std::env::var("PADDOCK_TEST_LATENCY_MS") {
            Ok(v) => Duration::from_millis(v.parse().map_err(|_| {
                format!("PADDOCK_TEST_LATENCY_MS: expected milliseconds, got {v:?}")
            })?),
            Err(_) => Duration::ZERO,
        };
        let fail_names = match std::env::var("PADDOCK_TEST_FAIL") {
            Ok(v) => Some(regex::Regex::new(&v).map_err(|e| format!("PADDOCK_TEST_FAIL: {e}"))?),
            Err(_) => None,
        };
        Ok(TestCloudOptions {
            latency,
            fail_names,
            foreign_names: None,
        })
    }
}

/// An object in the test cloud.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TestObject {
    pub id: String,
    pub urn: String,
    /// The creation token of the engine step that made it.
    pub token: String,
    pub inputs: serde_json::Value,
    pub revision: i64,
}

pub struct TestCloud {
    dir: PathBuf,
    options: TestCloudOptions,
    schemas: Vec<TypeSchema>,
}

fn io_error(e: std::io::Error) -> ProviderError {
    ProviderError {
        retryable: true,
        ..ProviderError::new("IoError", format!("test cloud: {e}"))
    }
}

impl TestCloud {
    /// A cloud in `dir` (created if missing).
    pub fn open(dir: &Path, options: TestCloudOptions) -> std::io::Result<TestCloud> {
        std::fs::create_dir_all(dir.join("objects"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let schema = TypeSchema {
            name: "test:resource".into(),
            description: "A generic object in the test cloud.".into(),
            inputs: vec![
                PropertySchema::new("name", PropertyType::String)
                    .required()
                    .replace_on_change()
                    .describe("The object's name; changing it replaces the object."),
                PropertySchema::new("size", PropertyType::Int),
                PropertySchema::new("tags", PropertyType::Map),
                PropertySchema::new("data", PropertyType::Any),
                PropertySchema::new("parent", PropertyType::String),
                PropertySchema::new("password", PropertyType::String).secret(),
            ],
            outputs: vec![
                PropertySchema::new("revision", PropertyType::Int),
                PropertySchema::new("url", PropertyType::String),
            ],
        };
        Ok(TestCloud {
            dir: dir.to_owned(),
            options,
            schemas: vec![schema],
        })
    }

    /// Every object in the cloud, by id.
    pub fn list(&self) -> std::io::Result<Vec<TestObject>> {
        CloudDir(self.dir.clone()).list()
    }

    /// One call to the cloud: the injected failure, or `work` within the injected latency,
    /// on a blocking-pool thread, so file I/O never stalls the engine's task and the
    /// latency is exact (the async timer's 1 ms ticks would add up to a millisecond).
    async fn call<T: Send + 'static>(
        &self,
        name: Option<&Value>,
        work: impl FnOnce(&CloudDir) -> Result<T, ProviderError> + Send + 'static,
    ) -> Result<T, ProviderError> {
        if let (Some(re), Some(name)) = (&self.options.fail_names, name.and_then(Value::as_str))
            && re.is_match(name)
        {
            if !self.options.latency.is_zero() {
                tokio::time::sleep(self.options.latency).await;
            }
            return Err(ProviderError::new(
                "InjectedFailure",
                format!("the test cloud refused `{name}` (PADDOCK_TEST_FAIL)"),
            )
            .with_hint("unset PADDOCK_TEST_FAIL or rename the resource"));
        }
        let (latency, dir) = (self.options.latency, CloudDir(self.dir.clone()));
        tokio::task::spawn_blocking(move || {
            // The latency is the whole round trip: the cloud's own work happens within it.
            let started = std::time::Instant::now();
            let result = work(&dir);
            std::thread::sleep(latency.saturating_sub(started.elapsed()));
            result
        })
        .await
        .map_err(|e| ProviderError::new("Internal", e.to_string()))?
    }

    fn outputs(obj: &TestObject) -> Props {
        Props::from([
            ("revision".to_owned(), Value::Int(obj.revision)),
            (
                "url".to_owned(),
                Value::String(format!("test://{}", obj.id)),
            ),
        ])
    }
}

/// The directory the objects live in.
struct CloudDir(PathBuf);

impl CloudDir {
    fn path(&self, id: &str) -> PathBuf {
        self.0.join("objects").join(format!("{id}.json"))
    }

    fn list(&self) -> std::io::Result<Vec<TestObject>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.0.join("objects"))? {
            let path = entry?.path();
            let text = std::fs::read_to_string(&path)?;
            let obj: TestObject = serde_json::from_str(&text).map_err(std::io::Error::other)?;
            out.push(obj);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn load(&self, id: &str) -> Result<Option<TestObject>, ProviderError> {
        if id.contains('/') || id.contains("..") {
            return Err(ProviderError::new(
                "InvalidId",
                format!("`{id}` is not a test cloud id"),
            ));
        }
        match std::fs::read_to_string(self.path(id)) {
            Ok(text) => {
                Ok(Some(serde_json::from_str(&text).map_err(|e| {
                    ProviderError::new("Corrupt", e.to_string())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    /// Writes atomically: a crash leaves the old object or the new one, never half.
    fn store(&self, obj: &TestObject) -> Result<(), ProviderError> {
        let tmp = self
            .0
            .join("tmp")
            .join(format!("{}.{}.tmp", obj.id, std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(obj).expect("serializable")).map_err(io_error)?;
        std::fs::rename(&tmp, self.path(&obj.id)).map_err(io_error)
    }
}

fn to_json(props: &Props) -> serde_json::Value {
    Value::Map(props.clone()).to_json()
}

fn from_json(json: &serde_json::Value) -> Props {
    match Value::from_json(json.clone()) {
        Value::Map(m) => m,
        _ => Props::new(),
    }
}

#[async_trait]
impl Provider for TestCloud {
    fn name(&self) -> &str {
        "test"
    }

    fn schemas(&self) -> &[TypeSchema] {
        &self.schemas
    }

    async fn create(&self, r: ResourceRef<'_>, inputs: &Props) -> Result<Created, ProviderError> {
        let mut raw = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id: String = std::iter::once("obj-".to_owned())
            .chain(raw.iter().map(|b| format!("{b:02x}")))
            .collect();
        let obj = TestObject {
            id: id.clone(),
            urn: r.urn.to_owned(),
            token: r.token.to_owned(),
            inputs: to_json(inputs),
            revision: 1,
        };
        self.call(inputs.get("name"), move |dir| {
            dir.store(&obj)?;
            Ok(Created {
                id,
                outputs: TestCloud::outputs(&obj),
            })
        })
        .await
    }

    async fn read(
        &self,
        _ty: &str,
        id: &str,
        _prior: &Props,
    ) -> Result<Option<ReadResult>, ProviderError> {
        let id = id.to_owned();
        self.call(None, move |dir| {
            Ok(dir.load(&id)?.map(|obj| ReadResult {
                inputs: Some(from_json(&obj.inputs)),
                outputs: TestCloud::outputs(&obj),
            }))
        })
        .await
    }

    async fn update(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        _olds: &Props,
        news: &Props,
    ) -> Result<Props, ProviderError> {
        let (id, ty, inputs) = (id.to_owned(), r.ty.to_owned(), to_json(news));
        self.call(news.get("name"), move |dir| {
            let mut obj = dir.load(&id)?.ok_or_else(|| {
                ProviderError::new("NotFound", format!("{ty} `{id}` does not exist"))
                    .with_hint("run `paddock refresh` to forget it")
            })?;
            obj.inputs = inputs;
            obj.revision += 1;
            dir.store(&obj)?;
            Ok(TestCloud::outputs(&obj))
        })
        .await
    }

    async fn delete(&self, _ty: &str, id: &str, _props: &Props) -> Result<(), ProviderError> {
        let id = id.to_owned();
        self.call(None, move |dir| match std::fs::remove_file(dir.path(&id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(e)),
        })
        .await
    }

    async fn confirm_owned(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<(), ProviderError> {
        match (
            &self.options.foreign_names,
            props.get("name").and_then(Value::as_str),
        ) {
            (Some(re), Some(name)) if re.is_match(name) && !r.imported => Err(ProviderError::new(
                "NotOwned",
                format!("test:resource `{id}` is not stack `{}`'s", r.stack()),
            )),
            _ => Ok(()),
        }
    }

    async fn delete_owned(
        &self,
        r: ResourceRef<'_>,
        id: &str,
        props: &Props,
    ) -> Result<(), ProviderError> {
        self.confirm_owned(r.clone(), id, props).await?;
        self.delete(r.ty, id, props).await
    }

    async fn find(
        &self,
        r: ResourceRef<'_>,
        _inputs: &Props,
    ) -> Result<Option<Created>, ProviderError> {
        let token = r.token.to_owned();
        self.call(None, move |dir| {
            let found = dir
                .list()
                .map_err(io_error)?
                .into_iter()
                .find(|o| o.token == token);
            Ok(found.map(|obj| Created {
                id: obj.id.clone(),
                outputs: TestCloud::outputs(&obj),
            }))
        })
        .await
    }
}
