//! The blueprint catalog: every published blueprint and its versions, and for a version
//! its parameter documentation (type, default, allowed values, pattern, description) and
//! what it creates, grouped by system (for a version this server ships, read from the
//! blueprint YAML compiled into it).
//!
//! Invariant: what a version creates is read from its own sources (an `environment`
//! version's bundle), or from the shipped YAML only when the published digest is the
//! shipped one, so an old version never shows new resources.
//!
//! Must not: publish or change blueprints.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use paddock_engine::blueprint::Blueprint;

use crate::AppState;
use crate::api::Query;
use crate::policy::Action;

use super::environments::SYSTEMS;
use super::home::PageQuery;
use super::*;

const PER_PAGE: usize = 25;

struct BlueprintRow {
    name: String,
    latest: String,
    versions: Vec<(String, When)>,
    description: String,
}

#[derive(Template)]
#[template(path = "blueprints.html")]
struct ListPage {
    chrome: Chrome,
    blueprints: Vec<BlueprintRow>,
    pager: Pager,
    /// Platform admins see the rollouts of each blueprint.
    may_roll_out: bool,
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<PageQuery>,
) -> PageResult {
    state
        .authorize(&viewer.ctx, Action::ListBlueprints, "blueprints")
        .await?;
    let all = state.db.blueprints().await?;
    let mut rows: Vec<BlueprintRow> = Vec::new();
    for b in &all {
        match rows.iter_mut().find(|r| r.name == b.name) {
            Some(r) => {
                r.versions
                    .insert(0, (b.version.clone(), When::at(b.published_at)));
                r.latest = b.version.clone();
                r.description = b.description.clone();
            }
            None => rows.push(BlueprintRow {
                name: b.name.clone(),
                latest: b.version.clone(),
                versions: vec![(b.version.clone(), When::at(b.published_at))],
                description: b.description.clone(),
            }),
        }
    }
    let offset = offset_of(q.page, PER_PAGE as i64);
    let total = rows.len() as i64;
    let blueprints: Vec<BlueprintRow> = rows
        .into_iter()
        .skip(offset as usize)
        .take(PER_PAGE)
        .collect();
    let pager = if total > PER_PAGE as i64 {
        Pager::offsets(offset, PER_PAGE as i64, blueprints.len(), total, |o| {
            format!("/blueprints?page={}", o / PER_PAGE as i64 + 1)
        })
    } else {
        Pager::default()
    };
    ok(&ListPage {
        chrome: viewer
            .chrome("Blueprints")
            .section("blueprints")
            .crumb("Blueprints", "/blueprints"),
        blueprints,
        pager,
        may_roll_out: viewer.may(&Action::ReadRollouts),
    })
}

struct ParamRow {
    name: String,
    title: String,
    ty: String,
    required: bool,
    default: String,
    allowed: String,
    pattern: String,
    description: String,
}

/// Parameter documentation from a published parameters document: a map of name →
/// rules, or a JSON Schema object (`properties`, `required`).
fn params_of(doc: &serde_json::Value) -> Vec<ParamRow> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let list = |v: &serde_json::Value| {
        v.as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let (props, required): (Option<&serde_json::Map<_, _>>, Vec<String>) =
        match doc.get("properties") {
            Some(p) => (
                p.as_object(),
                doc["required"]
                    .as_array()
                    .map(|r| r.iter().map(text).collect())
                    .unwrap_or_default(),
            ),
            None => (doc.as_object(), Vec::new()),
        };
    props
        .into_iter()
        .flatten()
        .map(|(name, p)| {
            let schema = doc.get("properties").is_some();
            let ty = match (p["type"].as_str(), schema) {
                (Some("array"), true) => format!(
                    "list of {}",
                    p["items"]["type"].as_str().unwrap_or("values")
                ),
                (Some(t), _) => t.to_owned(),
                (None, _) if p.get("enum").is_some() => "enum".into(),
                _ => "value".into(),
            };
            let allowed = [&p["values"], &p["enum"], &p["items"]["enum"]]
                .into_iter()
                .map(list)
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            ParamRow {
                name: name.clone(),
                title: text(&p["title"]),
                ty,
                required: if schema {
                    required.contains(name)
                } else {
                    p["required"].as_bool().unwrap_or(false)
                },
                default: text(&p["default"]),
                allowed,
                pattern: text(
                    p.get("pattern")
                        .or_else(|| p["items"].get("pattern"))
                        .unwrap_or(&serde_json::Value::Null),
                ),
                description: text(&p["description"]),
            }
        })
        .collect()
}

struct Creates {
    title: &'static str,
    systems: Vec<(&'static str, Vec<(String, String)>)>,
}

/// What an `environment` version creates, from its bundle (shipped or published since).
fn environment_creates(bundle: &paddock_platform::Bundle) -> Vec<Creates> {
    let file = |f: &str| bundle.files.get(f).map_or("", String::as_str);
    creates_of(
        "environment",
        vec![
            (
                "Per stage (dev, test, prod: each its own stack)",
                file(paddock_platform::STAGE_FILE),
            ),
            (
                "The repository (one per environment)",
                file(paddock_platform::REPOSITORY_FILE),
            ),
        ],
    )
}

/// What the shipped YAML of `name` creates, per part.
fn creates(name: &str) -> Vec<Creates> {
    let parts: Vec<(&'static str, &str)> = match name {
        "environment" => vec![
            (
                "Per stage (dev, test, prod: each its own stack)",
                paddock_platform::STAGE_BLUEPRINT,
            ),
            (
                "The repository (one per environment)",
                paddock_platform::REPOSITORY_BLUEPRINT,
            ),
        ],
        "team" => vec![("The team", paddock_platform::TEAM_BLUEPRINT)],
        _ => Vec::new(),
    };
    creates_of(name, parts)
}

fn creates_of(name: &str, parts: Vec<(&'static str, &str)>) -> Vec<Creates> {
    parts
        .into_iter()
        .filter_map(|(title, yaml)| {
            let b = Blueprint::parse(&format!("{name}.yaml"), yaml).ok()?;
            let mut systems: Vec<(&'static str, Vec<(String, String)>)> = Vec::new();
            for (prefix, system) in SYSTEMS {
                let rs: Vec<(String, String)> = b
                    .resources()
                    .iter()
                    .filter(|r| r.ty.split(':').next() == Some(prefix))
                    .map(|r| (r.name.clone(), r.ty.clone()))
                    .collect();
                if !rs.is_empty() {
                    systems.push((system, rs));
                }
            }
            Some(Creates { title, systems })
        })
        .collect()
}

#[derive(Template)]
#[template(path = "blueprint.html")]
struct VersionPage {
    chrome: Chrome,
    name: String,
    version: String,
    description: String,
    digest: String,
    published: When,
    params: Vec<ParamRow>,
    creates: Vec<Creates>,
    shipped: bool,
    others: Vec<String>,
}

pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path((name, version)): Path<(String, String)>,
) -> PageResult {
    state
        .authorize(&viewer.ctx, Action::ListBlueprints, "blueprints")
        .await?;
    let b = state
        .db
        .blueprint(&name, &version)
        .await?
        .ok_or_else(|| Problem::not_found(format!("blueprint {name}@{version}")))?;
    let others = state
        .db
        .blueprints()
        .await?
        .into_iter()
        .filter(|o| o.name == name && o.version != version)
        .map(|o| o.version)
        .collect();
    let shipped = crate::shipped_blueprints()
        .iter()
        .any(|s| s.name == b.name && s.version == b.version && s.digest == b.digest);
    let doc: serde_json::Value = serde_json::from_str(&b.parameters).unwrap_or_default();
    // A published environment version keeps its sources: what it creates is known.
    let environment = match name.as_str() {
        "environment" => state.bundle(&version).await.ok(),
        _ => None,
    };
    ok(&VersionPage {
        chrome: viewer
            .chrome(format!("{name}@{version}"))
            .section("blueprints")
            .crumb("Blueprints", "/blueprints")
            .crumb(
                format!("{name}@{version}"),
                format!("/blueprints/{name}/versions/{version}"),
            ),
        params: params_of(&doc),
        creates: match (name.as_str(), &environment) {
            ("environment", Some(b)) => environment_creates(b),
            _ if shipped => creates(&name),
            _ => Vec::new(),
        },
        shipped: shipped || environment.is_some(),
        description: b.description,
        digest: b.digest,
        published: When::at(b.published_at),
        name,
        version,
        others,
    })
}
