//! Plans: the difference between the desired graph and a stack's state, step by step and
//! property by property, with a stable hash that an approval can bind to.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::EngineError;
use crate::graph::{Diagnostic, Diagnostics, Reference, ValidGraph};
use crate::provider::ProviderRegistry;
use crate::state::ResourceState;
use crate::value::{Props, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    Same,
    Create,
    Update,
    Replace,
    Delete,
}

impl StepKind {
    /// The symbol Terraform and Pulumi users read plans by.
    pub fn symbol(self) -> &'static str {
        match self {
            StepKind::Same => " ",
            StepKind::Create => "+",
            StepKind::Update => "~",
            StepKind::Replace => "±",
            StepKind::Delete => "-",
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            StepKind::Same => "same",
            StepKind::Create => "create",
            StepKind::Update => "update",
            StepKind::Replace => "replace",
            StepKind::Delete => "delete",
        }
    }
}

/// A change to one property.
#[derive(Clone, Debug, PartialEq)]
pub struct PropertyDiff {
    pub property: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// This change cannot be made in place.
    pub forces_replace: bool,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub ty: String,
    pub kind: StepKind,
    pub diffs: Vec<PropertyDiff>,
    /// The existing instance acted on (update, replace, delete).
    pub instance: Option<String>,
    /// Planned inputs (may hold unknowns); empty for deletes and unchanged resources.
    pub inputs: Props,
    pub delete_before_replace: bool,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub stack: String,
    /// Creates, updates and replaces in dependency order, then deletes in reverse
    /// dependency order. `Same` steps are kept so the plan is complete.
    pub steps: Vec<Step>,
    pub outputs: Props,
    /// Journal entries of an interrupted run, reconciled before applying.
    pub pending: usize,
    pub hash: String,
}

impl Plan {
    pub fn counts(&self) -> BTreeMap<StepKind, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.steps {
            *counts.entry(s.kind).or_insert(0) += 1;
        }
        counts
    }

    pub fn has_changes(&self) -> bool {
        self.steps.iter().any(|s| s.kind != StepKind::Same)
    }

    /// Machine-readable plan; secrets redacted.
    pub fn to_json(&self) -> serde_json::Value {
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "type": s.ty,
                    "kind": s.kind,
                    "diffs": s.diffs.iter().map(|d| serde_json::json!({
                        "property": d.property,
                        "old": d.old.as_ref().map(Value::to_redacted_json),
                        "new": d.new.as_ref().map(Value::to_redacted_json),
                        "forcesReplace": d.forces_replace,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let counts: BTreeMap<&str, usize> = self
            .counts()
            .into_iter()
            .map(|(k, v)| (k.verb(), v))
            .collect();
        serde_json::json!({
            "stack": self.stack,
            "hash": self.hash,
            "summary": counts,
            "pendingOperations": self.pending,
            "steps": steps,
            "outputs": self.outputs.iter().map(|(k, v)| (k.clone(), v.to_redacted_json())).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// One line: `2 to create, 1 to update, …`.
    pub fn summary(&self) -> String {
        let counts = self.counts();
        let get = |k| counts.get(&k).copied().unwrap_or(0);
        format!(
            "{} to create, {} to update, {} to replace, {} to delete, {} unchanged",
            get(StepKind::Create),
            get(StepKind::Update),
            get(StepKind::Replace),
            get(StepKind::Delete),
            get(StepKind::Same)
        )
    }
}

impl fmt::Display for Plan {
    /// The plan as Terraform and Pulumi users expect to read it; secrets as `[secret]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in self.steps.iter().filter(|s| s.kind != StepKind::Same) {
            let reason = if s.kind == StepKind::Replace {
                let keys: Vec<&str> = s
                    .diffs
                    .iter()
                    .filter(|d| d.forces_replace)
                    .map(|d| d.property.as_str())
                    .collect();
                let order = if s.delete_before_replace {
                    "delete first"
                } else {
                    "create first"
                };
                if keys.is_empty() {
                    format!(" ({order})")
                } else {
                    format!(" ({} forces replacement; {order})", keys.join(", "))
                }
            } else {
                String::new()
            };
            writeln!(
                f,
                "  {} {:width$}  {}  {}{}",
                s.kind.symbol(),
                s.name,
                s.ty,
                s.kind.verb(),
                reason
            )?;
            for d in &s.diffs {
                let mark = if d.forces_replace {
                    "  (forces replacement)"
                } else {
                    ""
                };
                match (&d.old, &d.new) {
                    (None, Some(n)) => writeln!(f, "      + {}: {n}{mark}", d.property)?,
                    (Some(o), None) => writeln!(f, "      - {}: {o}{mark}", d.property)?,
                    (Some(o), Some(n)) => writeln!(f, "      ~ {}: {o} => {n}{mark}", d.property)?,
                    (None, None) => {}
                }
            }
        }
        if !self.outputs.is_empty() {
            writeln!(f, "Outputs:")?;
            for (k, v) in &self.outputs {
                writeln!(f, "    {k}: {v}")?;
            }
        }
        if self.pending > 0 {
            writeln!(
                f,
                "Note: {} step(s) of an interrupted run will be reconciled first.",
                self.pending
            )?;
        }
        write!(f, "Plan: {}.", self.summary())
    }
}

/// Resolves a reference to a realized resource: `${r}` and `${r.id}` are its id, `${r.x}`
/// an output, or else an input, then a path into it.
pub fn lookup(resource: &ResourceState, path: &[String]) -> Option<Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(Value::String(resource.id.clone()));
    };
    if first == "id" && rest.is_empty() {
        return Some(Value::String(resource.id.clone()));
    }
    resource
        .outputs
        .get(first)
        .or_else(|| resource.inputs.get(first))?
        .get_path(rest)
}

/// Resolves a reference to another stack's outputs.
pub fn lookup_stack_ref(
    stack_refs: &BTreeMap<String, (String, Props)>,
    r: &Reference,
) -> Option<Result<Value, EngineError>> {
    let (stack, outputs) = stack_refs.get(&r.target)?;
    let Some((first, rest)) = r.path.split_first() else {
        return Some(Err(EngineError::StackReference {
            stack: stack.clone(),
            message: format!(
                "`{r}` must name an output, e.g. `${{{}.someOutput}}`",
                r.target
            ),
        }));
    };
    Some(
        outputs
            .get(first)
            .and_then(|v| v.get_path(rest))
            .ok_or_else(|| EngineError::StackReference {
                stack: stack.clone(),
                message: format!(
                    "stack `{stack}` has no output `{}` (referenced as `{r}`)",
                    r.path.join(".")
                ),
            }),
    )
}

/// The state resources that are live (not awaiting deletion): name → position in state.
pub fn live_by_name(state: &[ResourceState]) -> HashMap<&str, usize> {
    let mut live = HashMap::with_capacity(state.len());
    live.extend(
        state
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.delete_pending)
            .map(|(i, r)| (r.name.as_str(), i)),
    );
    live
}

/// What a resource's properties evaluate to: resolved references, schema secrets marked.
pub fn evaluate_inputs(
    graph: &ValidGraph<'_>,
    i: usize,
    providers: &ProviderRegistry,
    stack_refs: &BTreeMap<String, (String, Props)>,
    resolve_resource: &mut dyn FnMut(usize, &Reference) -> Result<Value, EngineError>,
) -> Result<Props, EngineError> {
    let spec = &graph.graph.resources[i];
    let mut resolve = |r: &Reference| -> Result<Value, EngineError> {
        if let Some(&j) = graph.index.get(r.target.as_str()) {
            return resolve_resource(j, r);
        }
        lookup_stack_ref(stack_refs, r).unwrap_or_else(|| {
            Err(EngineError::Invalid(Diagnostics(vec![Diagnostic {
                site: spec.site.clone(),
                message: format!("`{r}` refers to nothing"),
            }])))
        })
    };
    let mut props = Props::new();
    for (k, e) in &spec.properties {
        props.insert(k.clone(), e.eval(&mut resolve)?);
    }
    Ok(match providers.schema(&spec.ty) {
        Some(schema) => schema.mark_secrets(props),
        None => props,
    })
}

/// Applies `ignoreChanges`: ignored properties keep their recorded values.
pub fn with_ignored(mut news: Props, olds: &Props, ignore: &[String]) -> Props {
    for k in ignore {
        match olds.get(k) {
            Some(v) => news.insert(k.clone(), v.clone()),
            None => news.remove(k),
        };
    }
    news
}

/// Applies accepted drift (see [`ResourceState::accepted`]): where the blueprint still
/// declares what it declared when the drift was accepted, the accepted value stands in.
pub fn with_accepted(mut news: Props, accepted: &Props) -> Props {
    for (k, v) in accepted.iter() {
        let Value::Map(entry) = v else { continue };
        if news.get(k) != entry.get("declared") {
            continue;
        }
        match entry.get("accepted") {
            Some(cloud) => news.insert(k.clone(), cloud.clone()),
            None => news.remove(k),
        };
    }
    news
}

/// Diffs one resource's planned inputs against its recorded state.
pub async fn diff_resource(
    providers: &ProviderRegistry,
    ty: &str,
    old: &ResourceState,
    news: &Props,
) -> Result<(StepKind, Vec<PropertyDiff>), EngineError> {
    if old.ty == ty && old.inputs == *news {
        // Equal inputs: nothing to ask the provider.
        return Ok((StepKind::Same, Vec::new()));
    }
    if old.ty != ty {
        let diffs = vec![PropertyDiff {
            property: "type".into(),
            old: Some(Value::String(old.ty.clone())),
            new: Some(Value::String(ty.into())),
            forces_replace: true,
        }];
        return Ok((StepKind::Replace, diffs));
    }
    let provider = providers
        .for_type(ty)
        .ok_or_else(|| EngineError::UnknownType(ty.to_owned()))?;
    let result = provider
        .diff(ty, &old.inputs, news)
        .await
        .map_err(|error| EngineError::Provider {
            resource: old.name.clone(),
            error,
        })?;
    let diffs: Vec<PropertyDiff> = result
        .changed
        .iter()
        .map(|k| PropertyDiff {
            property: k.clone(),
            old: old.inputs.get(k).cloned(),
            new: news.get(k).cloned(),
            forces_replace: result.replace.contains(k),
        })
        .collect();
    let kind = if diffs.is_empty() {
        StepKind::Same
    } else if result.replace.is_empty() {
        StepKind::Update
    } else {
        StepKind::Replace
    };
    Ok((kind, diffs))
}

/// Computes the plan for `graph` against `state`.
pub async fn plan(
    stack: &str,
    graph: &ValidGraph<'_>,
    state: &[ResourceState],
    pending: usize,
    stack_refs: &BTreeMap<String, (String, Props)>,
    providers: &ProviderRegistry,
) -> Result<Plan, EngineError> {
    let live = live_by_name(state);
    let old_of = |name: &str| live.get(name).map(|&i| &state[i]);
    // State resources the graph still wants; the rest are deleted.
    let mut wanted = vec![false; state.len()];
    let resources = &graph.graph.resources;
    // Per resource, filled in dependency order.
    let mut planned: Vec<Option<Step>> = vec![None; resources.len()];
    let mut diags = Vec::new();
    for &i in &graph.order {
        let spec = &resources[i];
        let inputs = {
            let planned = &planned;
            let mut resolve = |j: usize, r: &Reference| -> Result<Value, EngineError> {
                resolve_planned(
                    &resources[j].name,
                    planned[j].as_ref(),
                    old_of(resources[j].name.as_str()),
                    r,
                )
            };
            evaluate_inputs(graph, i, providers, stack_refs, &mut resolve)?
        };
        let provider = providers
            .for_type(&spec.ty)
            .ok_or_else(|| EngineError::UnknownType(spec.ty.clone()))?;
        for failure in provider.check(&spec.ty, &inputs).await {
            diags.push(Diagnostic {
                site: spec.property_site(&failure.property),
                message: failure.reason,
            });
        }
        let old = old_of(spec.name.as_str());
        if let Some(&at) = live.get(spec.name.as_str()) {
            wanted[at] = true;
        }
        let inputs = match old {
            Some(old) => with_accepted(
                with_ignored(inputs, &old.inputs, &spec.options.ignore_changes),
                &old.accepted,
            ),
            None => inputs,
        };
        let (kind, diffs, instance) = match old {
            None => {
                let diffs = inputs
                    .iter()
                    .map(|(k, v)| PropertyDiff {
                        property: k.clone(),
                        old: None,
                        new: Some(v.clone()),
                        forces_replace: false,
                    })
                    .collect();
                (StepKind::Create, diffs, None)
            }
            Some(old) => {
                let (kind, diffs) = diff_resource(providers, &spec.ty, old, &inputs).await?;
                if kind == StepKind::Replace && old.options.protect {
                    return Err(EngineError::Protected {
                        resource: spec.name.clone(),
                        action: "replace",
                    });
                }
                (kind, diffs, Some(old.instance.clone()))
            }
        };
        // An unchanged resource's inputs are in state already; keeping a copy per step
        // would double the plan's memory on large stacks.
        let inputs = if kind == StepKind::Same {
            Props::new()
        } else {
            inputs
        };
        planned[i] = Some(Step {
            name: spec.name.clone(),
            ty: spec.ty.clone(),
            kind,
            diffs,
            instance,
            inputs,
            delete_before_replace: spec.options.delete_before_replace,
        });
    }
    if !diags.is_empty() {
        return Err(EngineError::Invalid(Diagnostics(diags)));
    }
    let mut outputs = Props::new();
    for o in &graph.graph.outputs {
        let mut resolve = |r: &Reference| -> Result<Value, EngineError> {
            if let Some(&j) = graph.index.get(r.target.as_str()) {
                return resolve_planned(
                    &resources[j].name,
                    planned[j].as_ref(),
                    old_of(resources[j].name.as_str()),
                    r,
                );
            }
            lookup_stack_ref(stack_refs, r).unwrap_or(Ok(Value::Unknown))
        };
        let v = o.value.eval(&mut resolve)?;
        outputs.insert(o.name.clone(), if o.secret { Value::secret(v) } else { v });
    }
    let mut steps: Vec<Step> = Vec::with_capacity(planned.len() + state.len());
    steps.extend(graph.order.iter().filter_map(|&i| planned[i].take()));
    for r in deletion_order(state, &wanted) {
        if r.options.protect && !r.delete_pending {
            return Err(EngineError::Protected {
                resource: r.name.clone(),
                action: "delete",
            });
        }
        steps.push(Step {
            name: r.name.clone(),
            ty: r.ty.clone(),
            kind: StepKind::Delete,
            diffs: Vec::new(),
            instance: Some(r.instance.clone()),
            inputs: Props::new(),
            delete_before_replace: false,
        });
    }
    let mut plan = Plan {
        stack: stack.to_owned(),
        steps,
        outputs,
        pending,
        hash: String::new(),
    };
    plan.hash = plan_hash(&plan);
    Ok(plan)
}

fn resolve_planned(
    name: &str,
    planned: Option<&Step>,
    live: Option<&ResourceState>,
    r: &Reference,
) -> Result<Value, EngineError> {
    let missing = || EngineError::MissingProperty {
        resource: name.to_owned(),
        reference: r.to_string(),
    };
    match (planned, live) {
        (Some(step), Some(old)) if step.kind == StepKind::Same => {
            lookup(old, &r.path).ok_or_else(missing)
        }
        (Some(Step { kind, inputs, .. }), old) => {
            let Some((first, rest)) = r.path.split_first() else {
                return Ok(existing_id(*kind, old));
            };
            if first == "id" && rest.is_empty() {
                return Ok(existing_id(*kind, old));
            }
            // A planned input is known if it has no unknowns; outputs are not.
            Ok(inputs
                .get(first)
                .and_then(|v| v.get_path(rest))
                .unwrap_or(Value::Unknown))
        }
        (None, _) => Ok(Value::Unknown),
    }
}

fn existing_id(kind: StepKind, old: Option<&ResourceState>) -> Value {
    match (kind, old) {
        (StepKind::Update, Some(old)) => Value::String(old.id.clone()),
        _ => Value::Unknown,
    }
}

/// Resources to delete — not desired any more, or replaced and awaiting deletion — in
/// reverse dependency order: a resource goes after everything that depends on it.
pub fn deletion_order<'s>(state: &'s [ResourceState], wanted: &[bool]) -> Vec<&'s ResourceState> {
    let doomed: Vec<&ResourceState> = state
        .iter()
        .zip(wanted)
        .filter(|(r, wanted)| r.delete_pending || !**wanted)
        .map(|(r, _)| r)
        .collect();
    let deps = deletion_dependencies(&doomed);
    let order =
        crate::graph::topological_order(&deps).unwrap_or_else(|_| (0..doomed.len()).collect());
    order.into_iter().map(|i| doomed[i]).collect()
}

/// For each resource to delete, the ones that must be deleted before it: its dependents
/// among them. Old halves of replacements constrain nothing (their names now belong to
/// the new instances).
pub fn deletion_dependencies(doomed: &[&ResourceState]) -> Vec<Vec<usize>> {
    let position: HashMap<&str, usize> = doomed
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.delete_pending)
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); doomed.len()];
    for (i, r) in doomed.iter().enumerate() {
        for d in &r.dependencies {
            if let Some(&j) = position.get(d.as_str()) {
                deps[j].push(i);
            }
        }
    }
    deps
}

/// Feeds a value to the hash, tagged by kind so that different values never feed the
/// same bytes; secrets contribute only a digest of their value.
fn feed(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update(b"n"),
        Value::Unknown => h.update(b"u"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Int(i) => {
            h.update(b"i");
            h.update(i.to_le_bytes());
        }
        Value::Float(f) => {
            h.update(b"d");
            h.update(f.to_le_bytes());
        }
        Value::String(s) => feed_str(h, s),
        Value::List(items) => {
            h.update(b"l");
            h.update((items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| feed(h, i));
        }
        Value::Map(m) => feed_map(h, m),
        Value::Secret(inner) => {
            h.update(b"x");
            h.update(Sha256::digest(
                inner.reveal().to_json().to_string().as_bytes(),
            ));
        }
    }
}

fn feed_str(h: &mut Sha256, s: &str) {
    h.update(b"s");
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

fn feed_map(h: &mut Sha256, m: &Props) {
    h.update(b"m");
    h.update((m.len() as u64).to_le_bytes());
    for (k, v) in m {
        feed_str(h, k);
        feed(h, v);
    }
}

/// sha256 over a canonical encoding of the steps and outputs (keys sorted, secrets
/// digested): equal plans hash equal, any change to what would be done changes it.
/// Unchanged resources contribute their identity (name, type, instance).
fn plan_hash(plan: &Plan) -> String {
    let mut h = Sha256::new();
    feed_str(&mut h, &plan.stack);
    for s in &plan.steps {
        feed_str(&mut h, &s.name);
        feed_str(&mut h, &s.ty);
        feed_str(&mut h, s.kind.verb());
        feed_str(&mut h, s.instance.as_deref().unwrap_or(""));
        feed_map(&mut h, &s.inputs);
        h.update([u8::from(s.delete_before_replace)]);
    }
    feed_map(&mut h, &plan.outputs);
    format!("sha256:{}", hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
