//! What the stacks' states describe against what the sandbox holds.
//!
//! Each resource in state names one object of the sandbox (`locate`: its provider's id →
//! the sandbox's document key). An object in state that the sandbox lacks is lost; an
//! object of a kind Paddock makes that no state names is orphaned — or duplicated when a
//! named one has the same name (an Entra application or group made twice, say). Objects
//! that come with another (a namespace's `default` service account, a GitHub
//! environment's branch policy, a team's memberships) belong to their parent: they are
//! orphaned when it is no longer in state. The sandbox's own objects (its platform and
//! sign-in applications, the cluster's system namespaces) are the baseline, taken before
//! any kill.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value as Json;

/// A sandbox document: (api, kind, key).
pub type Doc = (String, String, String);

/// Where a resource of type `ty` with provider id `id` lives in the sandbox; `None` for a
/// type that is part of another object (a repository's file).
fn locate(ty: &str, id: &str) -> Option<Doc> {
    let doc = |api: &str, kind: &str, key: String| Some((api.into(), kind.into(), key));
    // ARM: the scope (lower-cased, as the sandbox keys it) and the name.
    let arm = |kind: &str| {
        let (scope, rest) = id.split_once("/providers/Microsoft.Authorization/")?;
        let name = rest.rsplit('/').next()?;
        doc("arm", kind, format!("{}|{name}", scope.to_lowercase()))
    };
    match ty {
        "azure:resourceGroup" => {
            let rest = id.strip_prefix("/subscriptions/")?;
            let (sub, rg) = rest.split_once("/resourceGroups/")?;
            doc("arm", "resourceGroup", format!("{sub}/{rg}"))
        }
        "azure:roleAssignment" => arm("roleAssignment"),
        "azure:managementLock" => arm("managementLock"),
        "github:repository" => doc("github", "repo", id.into()),
        "github:team" => doc("github", "team", id.into()),
        "github:teamRepository" => doc("github", "teamRepo", id.into()),
        "github:branchProtection" => doc("github", "branchProtection", id.into()),
        "github:environment" => doc("github", "environment", id.into()),
        "github:environmentVariable" => doc("github", "variable", id.into()),
        "github:repositoryVariable" => doc("github", "repositoryVariable", id.into()),
        "github:environmentSecret" => doc("github", "secret", id.into()),
        "entra:application" => doc("graph", "application", id.into()),
        "entra:servicePrincipal" => doc("graph", "servicePrincipal", id.into()),
        "entra:group" => doc("graph", "group", id.into()),
        "entra:federatedCredential" => doc(
            "graph",
            "federatedIdentityCredential",
            id.replacen('/', "|", 1),
        ),
        "kubernetes:namespace" => doc("kubernetes", "namespaces", id.into()),
        "kubernetes:serviceAccount" => doc("kubernetes", "serviceaccounts", id.into()),
        "kubernetes:serviceAccountToken" => doc("kubernetes", "secrets", id.into()),
        "kubernetes:limitRange" => doc("kubernetes", "limitranges", id.into()),
        "kubernetes:resourceQuota" => doc("kubernetes", "resourcequotas", id.into()),
        "kubernetes:networkPolicy" => doc("kubernetes", "networkpolicies", id.into()),
        "kubernetes:role" => doc("kubernetes", "roles", id.into()),
        "kubernetes:roleBinding" => doc("kubernetes", "rolebindings", id.into()),
        _ => None,
    }
}

/// The kinds of object `locate` finds: those Paddock makes.
const MADE: [(&str, &str); 23] = [
    ("arm", "resourceGroup"),
    ("arm", "roleAssignment"),
    ("arm", "managementLock"),
    ("github", "repo"),
    ("github", "team"),
    ("github", "teamRepo"),
    ("github", "branchProtection"),
    ("github", "environment"),
    ("github", "variable"),
    ("github", "repositoryVariable"),
    ("github", "secret"),
    ("graph", "application"),
    ("graph", "servicePrincipal"),
    ("graph", "group"),
    ("graph", "federatedIdentityCredential"),
    ("kubernetes", "namespaces"),
    ("kubernetes", "serviceaccounts"),
    ("kubernetes", "secrets"),
    ("kubernetes", "limitranges"),
    ("kubernetes", "resourcequotas"),
    ("kubernetes", "networkpolicies"),
    ("kubernetes", "roles"),
    ("kubernetes", "rolebindings"),
];

/// The object a document comes with, for those that are not made on their own.
fn parent(doc: &Doc) -> Option<Doc> {
    let (api, kind, key) = doc;
    let up = |api: &str, kind: &str, key: &str| Some((api.into(), kind.into(), key.to_owned()));
    match (api.as_str(), kind.as_str()) {
        // `repo/env/branch:main` → the environment `repo/env`.
        ("github", "branchPolicy") => up("github", "environment", key.rsplit_once('/')?.0),
        ("github", "environmentKey") => up("github", "environment", key),
        // `team/login` → the team.
        ("github", "membership") => up("github", "team", key.split_once('/')?.0),
        // `group|person` → the group.
        ("graph", "owner" | "member") => up("graph", "group", key.split_once('|')?.0),
        ("kubernetes", "serviceaccounts") if key.ends_with("/default") => {
            up("kubernetes", "namespaces", key.split_once('/')?.0)
        }
        _ => None,
    }
}

/// The name that makes two documents the same object to a person.
fn natural_name(doc: &Doc, body: &Json) -> String {
    let field = |f: &str| body[f].as_str().unwrap_or_default().to_owned();
    match (doc.0.as_str(), doc.1.as_str()) {
        ("graph", "application" | "servicePrincipal" | "group") => field("displayName"),
        ("graph", "federatedIdentityCredential") => {
            format!(
                "{}|{}",
                doc.2.split('|').next().unwrap_or_default(),
                field("name")
            )
        }
        _ => doc.2.clone(),
    }
}

/// Every document of the sandbox but its own bookkeeping, with its body.
async fn documents(sandbox_data: &Path) -> BTreeMap<Doc, Json> {
    let url = format!(
        "sqlite://{}?mode=ro",
        sandbox_data.join("sandbox.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("reading the sandbox's database");
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT api, kind, key, body FROM documents WHERE api <> 'sandbox'")
            .fetch_all(&pool)
            .await
            .expect("reading the sandbox's documents");
    pool.close().await;
    rows.into_iter()
        .map(|(api, kind, key, body)| {
            (
                (api, kind, key),
                serde_json::from_str(&body).unwrap_or_default(),
            )
        })
        .collect()
}

/// Every resource in every stack's state: (stack, type, id).
async fn states(db_url: &str) -> Vec<(String, String, String)> {
    let store = paddock_store::open(db_url).await.expect("the state store");
    let mut out = Vec::new();
    for s in store.list_stacks().await.expect("listing stacks") {
        let stack = store.load(&s.name).await.expect("loading a stack");
        for r in stack.resources {
            out.push((s.name.clone(), r.ty, r.id));
        }
    }
    out
}

/// The sandbox's objects that no state names, before anything is killed.
pub struct Baseline(BTreeSet<Doc>);

pub async fn baseline(db_url: &str, sandbox_data: &Path) -> Baseline {
    let named: BTreeSet<Doc> = states(db_url)
        .await
        .iter()
        .filter_map(|(_, ty, id)| locate(ty, id))
        .collect();
    Baseline(
        documents(sandbox_data)
            .await
            .into_keys()
            .filter(|d| !named.contains(d))
            .collect(),
    )
}

pub struct Comparison {
    /// Resources in state.
    pub in_state: usize,
    /// Stacks with at least one resource.
    pub stacks: BTreeSet<String>,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub orphaned: Vec<String>,
}

pub async fn compare(db_url: &str, sandbox_data: &Path, baseline: &Baseline) -> Comparison {
    let states = states(db_url).await;
    let docs = documents(sandbox_data).await;
    let mut named: BTreeMap<Doc, Vec<String>> = BTreeMap::new();
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    for (stack, ty, id) in &states {
        let Some(doc) = locate(ty, id) else { continue };
        if !docs.contains_key(&doc) {
            lost.push(format!("{stack}: {ty} {id}"));
        }
        named
            .entry(doc)
            .or_default()
            .push(format!("{stack}: {ty} {id}"));
    }
    // One object named by two resources is one object made for two.
    for (doc, by) in &named {
        if by.len() > 1 {
            duplicated.push(format!("{doc:?} named by {by:?}"));
        }
    }
    let names_in_state: BTreeSet<(String, String, String)> = named
        .keys()
        .filter_map(|d| {
            let body = docs.get(d)?;
            Some((d.0.clone(), d.1.clone(), natural_name(d, body)))
        })
        .collect();
    let mut orphaned = Vec::new();
    for (doc, body) in &docs {
        if named.contains_key(doc) || baseline.0.contains(doc) {
            continue;
        }
        if !MADE.contains(&(doc.0.as_str(), doc.1.as_str())) && parent(doc).is_none() {
            continue;
        }
        let what = format!("{}/{} {}", doc.0, doc.1, doc.2);
        match parent(doc) {
            Some(p) if named.contains_key(&p) || baseline.0.contains(&p) => {}
            Some(p) => orphaned.push(format!(
                "{what} (its {}/{} {} is in no state)",
                p.0, p.1, p.2
            )),
            None => {
                let name = natural_name(doc, body);
                if names_in_state.contains(&(doc.0.clone(), doc.1.clone(), name.clone())) {
                    duplicated.push(format!("{what} (a second `{name}`)"));
                } else {
                    orphaned.push(what);
                }
            }
        }
    }
    Comparison {
        in_state: states.len(),
        stacks: states.iter().map(|(s, ..)| s.clone()).collect(),
        lost,
        duplicated,
        orphaned,
    }
}
