//! An environment request's parameter values from the command line, typed by the
//! blueprint's own JSON Schema.
//!
//! Values come from `--params-file` (YAML or JSON), then the convenience flags
//! (`--stages`, `--region`, `--quota`, `--admin`, `--contributor`, each the same as its
//! `--param`), then `--param KEY=VALUE`. Text is typed by the schema the server publishes
//! for the `environment` blueprint version (`GET /api/v1/blueprints/environment/versions/
//! {version}/schema`): an `array` is comma-separated, an `integer`, a `number` and a
//! `boolean` are parsed, anything else stays text. The server receives typed JSON and
//! checks it; a value that does not parse, or a key that is not a parameter, is sent as
//! given, so that the server's message names the field.
//!
//! Must not: check values itself (allowed values, patterns, who may ask for what): the
//! server is the one place that does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::seg;
use crate::UsageError;
use crate::client::Client;

/// The values of an environment request, as flags.
#[derive(Args, Default)]
pub struct ParamArgs {
    /// A parameter of the environment blueprint, `KEY=VALUE` (repeatable), typed by the
    /// blueprint's schema: lists comma-separated (`stages=dev,test`), integers, booleans.
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// A YAML or JSON file of parameter values (the flags win over it).
    #[arg(long, value_name = "FILE")]
    params_file: Option<PathBuf>,
    /// The stages, comma-separated (prod needs the team's admin role); the same as
    /// `--param stages=…`.
    #[arg(long, value_delimiter = ',', value_name = "STAGE,…")]
    stages: Vec<String>,
    /// The Azure region; the same as `--param region=…`.
    #[arg(long)]
    region: Option<String>,
    /// How much of the cluster each stage may use (small, medium, large); the same as
    /// `--param quota=…`.
    #[arg(long)]
    quota: Option<String>,
    /// An admin of the environment (repeatable; default: the team's admins); the same as
    /// `--param admins=…`.
    #[arg(long = "admin", value_name = "LOGIN")]
    admins: Vec<String>,
    /// A contributor (repeatable; default: the team's contributors); the same as
    /// `--param contributors=…`.
    #[arg(long = "contributor", value_name = "LOGIN")]
    contributors: Vec<String>,
    /// The `environment` blueprint version to ask for (default: the newest the server
    /// publishes, which it renders).
    #[arg(long, value_name = "VERSION")]
    blueprint_version: Option<String>,
}

/// Keys of the request body that are not parameters.
const RESERVED: [&str; 2] = ["name", "blueprintVersion"];

impl ParamArgs {
    /// Whether anything at all was given (an update needs something to change).
    pub(super) fn is_empty(&self) -> bool {
        self.params.is_empty()
            && self.params_file.is_none()
            && self.stages.is_empty()
            && self.region.is_none()
            && self.quota.is_none()
            && self.admins.is_empty()
            && self.contributors.is_empty()
            && self.blueprint_version.is_none()
    }

    /// The values as given, before typing: the file's (typed as YAML/JSON reads them), then
    /// the flags' text. A key given both by a convenience flag and by `--param` is refused.
    fn given(&self) -> Result<BTreeMap<String, Value>, UsageError> {
        let mut values = BTreeMap::new();
        if let Some(path) = &self.params_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("--params-file {}: {e}", path.display())))?;
            let parsed =
                paddock_engine::blueprint::parse_values(&path.display().to_string(), &text)
                    .map_err(|e| UsageError(format!("--params-file: {e}")))?;
            values.extend(parsed.into_iter().map(|(k, v)| (k, v.to_json())));
        }
        let mut flagged: Vec<&str> = Vec::new();
        let lists = [
            ("stages", &self.stages),
            ("admins", &self.admins),
            ("contributors", &self.contributors),
        ];
        for (key, items) in lists.into_iter().filter(|(_, items)| !items.is_empty()) {
            values.insert(key.to_owned(), Value::String(items.join(",")));
            flagged.push(key);
        }
        for (key, v) in [("region", &self.region), ("quota", &self.quota)] {
            if let Some(v) = v {
                values.insert(key.to_owned(), Value::String(v.clone()));
                flagged.push(key);
            }
        }
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| UsageError(format!("--param {p:?}: expected KEY=VALUE")))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(UsageError(format!("--param {p:?}: the key is empty")));
            }
            if flagged.contains(&k) {
                return Err(UsageError(format!(
                    "`{k}` is given twice: by --{} and by --param {k}=…",
                    flag_of(k)
                )));
            }
            values.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        if let Some(k) = RESERVED.iter().find(|k| values.contains_key(**k)) {
            return Err(UsageError(format!(
                "`{k}` is not a parameter: {}",
                if *k == "name" {
                    "the environment's name is the command's NAME argument"
                } else {
                    "use --blueprint-version"
                }
            )));
        }
        Ok(values)
    }

    /// The request's body: `blueprintVersion` if asked for, and every value typed by the
    /// schema of the version the server will check it against.
    pub(super) async fn body(&self, c: &Client) -> anyhow::Result<serde_json::Map<String, Value>> {
        let given = self.given()?;
        let mut body = serde_json::Map::new();
        if let Some(v) = &self.blueprint_version {
            body.insert("blueprintVersion".into(), Value::String(v.clone()));
        }
        if given.is_empty() {
            return Ok(body);
        }
        let schema = schema(c, self.blueprint_version.as_deref()).await?;
        for (k, v) in given {
            let typed = typed(&schema["properties"][&k], v);
            body.insert(k, typed);
        }
        Ok(body)
    }
}

/// The flag that is the same as `--param KEY=…`.
fn flag_of(key: &str) -> &str {
    match key {
        "admins" => "admin",
        "contributors" => "contributor",
        other => other,
    }
}

/// The JSON Schema of the `environment` blueprint's parameters: of `version`, or of the
/// newest version the server publishes.
async fn schema(c: &Client, version: Option<&str>) -> anyhow::Result<Value> {
    let version = match version {
        Some(v) => v.to_owned(),
        None => newest(&c.get("/blueprints").await?, "environment").ok_or_else(|| {
            anyhow::anyhow!("the server publishes no `environment` blueprint to request")
        })?,
    };
    c.get(&format!(
        "/blueprints/environment/versions/{}/schema",
        seg(&version)
    ))
    .await
}

/// The newest version of blueprint `name` among those listed (semantic versions compared
/// by number).
fn newest(listed: &Value, name: &str) -> Option<String> {
    let key = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    listed
        .as_array()?
        .iter()
        .filter(|b| b["name"] == name)
        .filter_map(|b| b["version"].as_str())
        .max_by_key(|v| key(v))
        .map(str::to_owned)
}

/// A value typed by its parameter's schema (`Null` for a key the schema does not know):
/// text is parsed by the schema's `type`, list items by `items`; what does not parse, and
/// values already typed, are left for the server to judge.
fn typed(schema: &Value, v: Value) -> Value {
    match (schema["type"].as_str(), v) {
        (Some("array"), Value::String(text)) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| typed(&schema["items"], Value::String(p.to_owned())))
                .collect(),
        ),
        (Some("array"), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|i| typed(&schema["items"], i))
                .collect(),
        ),
        (Some("integer"), Value::String(text)) => match text.trim().parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(text),
        },
        (Some("number"), Value::String(text)) => match text.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::from(n),
            _ => Value::String(text),
        },
        (Some("boolean"), Value::String(text)) => match text.trim() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => Value::String(text),
        },
        (_, v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"properties": {
            "stages": {"type": "array", "items": {"type": "string", "enum": ["dev", "test"]}},
            "ports": {"type": "array", "items": {"type": "integer"}},
            "replicas": {"type": "integer"},
            "ratio": {"type": "number"},
            "public": {"type": "boolean"},
            "region": {"type": "string"},
        }})
    }

    fn t(key: &str, v: Value) -> Value {
        typed(&schema()["properties"][key], v)
    }

    #[test]
    fn text_is_typed_by_the_schema() {
        let text = |s: &str| Value::String(s.into());
        assert_eq!(t("stages", text("dev, test,")), json!(["dev", "test"]));
        assert_eq!(t("stages", text("")), json!([]));
        assert_eq!(t("ports", text("80,443")), json!([80, 443]));
        assert_eq!(t("replicas", text(" 3 ")), json!(3));
        assert_eq!(t("ratio", text("0.5")), json!(0.5));
        assert_eq!(t("public", text("yes")), json!(true));
        assert_eq!(t("public", text("false")), json!(false));
        assert_eq!(t("region", text("7")), json!("7"));
        // Left for the server to name: what does not parse, and unknown keys.
        assert_eq!(t("replicas", text("many")), json!("many"));
        assert_eq!(t("public", text("maybe")), json!("maybe"));
        assert_eq!(t("colour", text("red,blue")), json!("red,blue"));
        // A file's values: lists item by item, typed values as they are.
        assert_eq!(t("ports", json!(["80", 443])), json!([80, 443]));
        assert_eq!(t("replicas", json!(2)), json!(2));
    }

    #[test]
    fn the_newest_version_is_compared_by_number() {
        let listed = json!([
            {"name": "environment", "version": "1.10.0"},
            {"name": "environment", "version": "1.9.2"},
            {"name": "team", "version": "7.0.0"},
        ]);
        assert_eq!(newest(&listed, "environment").as_deref(), Some("1.10.0"));
        assert_eq!(newest(&listed, "nothing"), None);
    }

    #[test]
    fn flags_and_params_make_one_set_of_values() {
        let args = ParamArgs {
            params: vec!["quota=large".into(), "region=northeurope".into()],
            stages: vec!["dev".into(), "test".into()],
            admins: vec!["ada".into(), "bob".into()],
            ..ParamArgs::default()
        };
        let given = args.given().unwrap();
        assert_eq!(given["stages"], json!("dev,test"));
        assert_eq!(given["admins"], json!("ada,bob"));
        assert_eq!(given["quota"], json!("large"));
        assert_eq!(given["region"], json!("northeurope"));

        let twice = ParamArgs {
            params: vec!["stages=prod".into()],
            stages: vec!["dev".into()],
            ..ParamArgs::default()
        };
        let e = twice.given().unwrap_err().0;
        assert!(e.contains("`stages` is given twice"), "{e}");
        let reserved = ParamArgs {
            params: vec!["name=other".into()],
            ..ParamArgs::default()
        };
        assert!(reserved.given().unwrap_err().0.contains("NAME argument"));
        let malformed = ParamArgs {
            params: vec!["quota".into()],
            ..ParamArgs::default()
        };
        assert!(malformed.given().unwrap_err().0.contains("KEY=VALUE"));
        assert!(ParamArgs::default().is_empty());
    }
}
