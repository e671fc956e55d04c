//! The desired graph: what a stack should contain. Built by a blueprint (YAML) or directly
//! in Rust — the automation API — and validated against the providers' schemas before any
//! plan is made.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::provider::ProviderRegistry;
use crate::value::{SortedMap, Value};

/// Where something was written, for error messages: file, line, column, and the field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Site {
    pub file: Option<Arc<str>>,
    /// 1-based; 0 when not known (a graph built in code).
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `resources.rg.properties.name`.
    pub field: String,
}

impl Site {
    pub fn field(field: impl Into<String>) -> Site {
        Site {
            field: field.into(),
            ..Site::default()
        }
    }
    pub fn with_field(&self, field: impl Into<String>) -> Site {
        Site {
            field: field.into(),
            ..self.clone()
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{file}: ")?,
            (Some(file), line) => write!(f, "{file}:{line}:{}: ", self.column)?,
            (None, 0) => {}
            (None, line) => write!(f, "line {line}:{}: ", self.column)?,
        }
        if !self.field.is_empty() {
            write!(f, "`{}`", self.field)?;
        }
        Ok(())
    }
}

/// One problem with a blueprint or graph, located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub site: Site,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let site = self.site.to_string();
        let site = site.trim_end_matches([' ', ':']);
        if site.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{site}: {}", self.message)
        }
    }
}

/// All the problems found, reported at once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A reference to another resource's property or output (`${rg.name}`,
/// `${app.outputs.clientId}`), to a stack reference's output, or — in blueprints, before
/// rendering — to a parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub target: String,
    pub path: Vec<String>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}", self.target)?;
        for p in &self.path {
            write!(f, ".{p}")?;
        }
        f.write_str("}")
    }
}

/// A property expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Value),
    Ref(Reference),
    /// String interpolation: the parts' texts joined.
    Concat(Vec<Expr>),
    List(Vec<Expr>),
    Map(SortedMap<Expr>),
}

impl Expr {
    /// Parses `${...}` interpolations in a string; `$${` escapes a literal `${`.
    /// A string that is exactly one reference keeps the referenced value's type.
    pub fn template(text: &str) -> Result<Expr, String> {
        let mut parts: Vec<Expr> = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            lit.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(escaped) = after.strip_prefix("$${") {
                lit.push_str("${");
                rest = escaped;
            } else if let Some(body) = after.strip_prefix("${") {
                let end = body
                    .find('}')
                    .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
                let reference = parse_reference(&body[..end])?;
                if !lit.is_empty() {
                    parts.push(Expr::Literal(Value::String(std::mem::take(&mut lit))));
                }
                parts.push(Expr::Ref(reference));
                rest = &body[end + 1..];
            } else {
                lit.push('$');
                rest = &after[1..];
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() || parts.is_empty() {
            parts.push(Expr::Literal(Value::String(lit)));
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::Concat(parts)
        })
    }

    /// `${target.path…}`.
    pub fn reference(target: &str, path: &[&str]) -> Expr {
        Expr::Ref(Reference {
            target: target.into(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// Every reference in the expression.
    pub fn references(&self) -> Vec<&Reference> {
        let mut out = Vec::new();
        self.visit_refs(&mut |r| out.push(r));
        out
    }

    fn visit_refs<'a>(&'a self, f: &mut impl FnMut(&'a Reference)) {
        match self {
            Expr::Literal(_) => {}
            Expr::Ref(r) => f(r),
            Expr::Concat(items) | Expr::List(items) => items.iter().for_each(|i| i.visit_refs(f)),
            Expr::Map(m) => m.values().for_each(|i| i.visit_refs(f)),
        }
    }

    /// Evaluates with `resolve` answering references. A string built from a secret is a
    /// secret; from an unknown, unknown.
    pub fn eval<E>(
        &self,
        resolve: &mut impl FnMut(&Reference) -> Result<Value, E>,
    ) -> Result<Value, E> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Ref(r) => resolve(r)?,
            Expr::Concat(parts) => {
                let (mut text, mut secret) = (String::new(), false);
                for p in parts {
                    let v = p.eval(resolve)?;
                    if v.contains_unknown() {
                        return Ok(Value::Unknown);
                    }
                    secret |= v.contains_secret();
                    text.push_str(&v.to_interpolated_string());
                }
                if secret {
                    Value::secret(Value::String(text))
                } else {
                    Value::String(text)
                }
            }
            Expr::List(items) => Value::List(
                items
                    .iter()
                    .map(|i| i.eval(resolve))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Map(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), v.eval(resolve)?)))
                    .collect::<Result<_, E>>()?,
            ),
        })
    }

    /// Replaces references for which `subst` has a value (how parameters are bound).
    pub fn substitute(&self, subst: &impl Fn(&Reference) -> Option<Value>) -> Expr {
        match self {
            Expr::Literal(_) => self.clone(),
            Expr::Ref(r) => subst(r).map_or_else(|| self.clone(), Expr::Literal),
            Expr::Concat(items) => {
                Expr::Concat(items.iter().map(|i| i.substitute(subst)).collect())
            }
            Expr::List(items) => Expr::List(items.iter().map(|i| i.substitute(subst)).collect()),
            Expr::Map(m) => Expr::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.substitute(subst)))
                    .collect(),
            ),
        }
    }
}

fn parse_reference(body: &str) -> Result<Reference, String> {
    let body = body.trim();
    let mut segments = body.split('.');
    let target = segments.next().unwrap_or_default();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !valid(target) || !target.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(format!(
            "`${{{body}}}` is not a valid reference: expected `${{name}}` or `${{name.field}}`"
        ));
    }
    let path: Vec<String> = segments.map(str::to_owned).collect();
    if let Some(bad) = path.iter().find(|s| !valid(s)) {
        return Err(format!("`${{{body}}}` has an invalid path segment {bad:?}"));
    }
    Ok(Reference {
        target: target.to_owned(),
        path,
    })
}

impl From<Value> for Expr {
    fn from(v: Value) -> Self {
        Expr::Literal(v)
    }
}
impl From<&str> for Expr {
    /// A literal string: no interpolation (use [`Expr::template`] for that).
    fn from(s: &str) -> Self {
        Expr::Literal(Value::String(s.to_owned()))
    }
}
impl From<String> for Expr {
    fn from(s: String) -> Self {
        Expr::Literal(Value::String(s))
    }
}
impl From<i64> for Expr {
    fn from(i: i64) -> Self {
        Expr::Literal(Value::Int(i))
    }
}
impl From<bool> for Expr {
    fn from(b: bool) -> Self {
        Expr::Literal(Value::Bool(b))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceOptions {
    /// Refuse to delete (or replace) this resource.
    pub protect: bool,
    /// On replacement, delete the old resource before creating the new one (for
    /// resources whose names must be unique).
    pub delete_before_replace: bool,
    /// Properties whose changes are ignored when diffing.
    pub ignore_changes: Vec<String>,
    /// Properties whose drift (a change made in the cloud, outside Paddock) may be
    /// accepted: kept in place of the blueprint's value instead of reverted.
    pub accept_drift: Vec<String>,
}

/// One desired resource.
#[derive(Clone, Debug)]
pub struct ResourceSpec {
    pub name: String,
    pub ty: String,
    pub properties: SortedMap<Expr>,
    pub depends_on: Vec<String>,
    pub options: ResourceOptions,
    pub site: Site,
    /// Where each property was written, when known.
    pub property_sites: BTreeMap<String, Site>,
}

impl ResourceOptions {
    pub fn is_default(&self) -> bool {
        *self == ResourceOptions::default()
    }
}

impl ResourceSpec {
    /// Where property `key` was written (or the resource, with the field named).
    pub fn property_site(&self, key: &str) -> Site {
        self.property_sites.get(key).cloned().unwrap_or_else(|| {
            self.site
                .with_field(format!("resources.{}.properties.{key}", self.name))
        })
    }

    pub fn set(&mut self, key: &str, value: impl Into<Expr>) -> &mut Self {
        self.properties.insert(key.to_owned(), value.into());
        self
    }
    pub fn depends_on(&mut self, name: &str) -> &mut Self {
        self.depends_on.push(name.to_owned());
        self
    }
    pub fn protect(&mut self) -> &mut Self {
        self.options.protect = true;
        self
    }
    pub fn delete_before_replace(&mut self) -> &mut Self {
        self.options.delete_before_replace = true;
        self
    }
    pub fn accept_drift(&mut self, property: &str) -> &mut Self {
        self.options.accept_drift.push(property.to_owned());
        self
    }

    pub fn ignore_changes(&mut self, property: &str) -> &mut Self {
        self.options.ignore_changes.push(property.to_owned());
        self
    }
}

#[derive(Clone, Debug)]
pub struct OutputSpec {
    pub name: String,
    pub value: Expr,
    pub secret: bool,
    pub site: Site,
}

/// What a stack should contain.
#[derive(Clone, Debug, Default)]
pub struct DesiredGraph {
    pub resources: Vec<ResourceSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Alias → name of another stack whose outputs this graph reads.
    pub stack_refs: BTreeMap<String, String>,
}

impl DesiredGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a resource and returns it for setting properties.
    pub fn resource(&mut self, name: &str, ty: &str) -> &mut ResourceSpec {
        self.resources.push(ResourceSpec {
            name: name.into(),
            ty: ty.into(),
            properties: SortedMap::new(),
            depends_on: Vec::new(),
            options: ResourceOptions::default(),
            site: Site::field(format!("resources.{name}")),
            property_sites: BTreeMap::new(),
        });
        self.resources.last_mut().expect("just pushed")
    }

    pub fn output(&mut self, name: &str, value: impl Into<Expr>) -> &mut Self {
        self.outputs.push(OutputSpec {
            name: name.into(),
            value: value.into(),
            secret: false,
            site: Site::field(format!("outputs.{name}")),
        });
        self
    }

    pub fn secret_output(&mut self, name: &str, value: impl Into<Expr>) -> &mut Self {
        self.output(name, value);
        self.outputs.last_mut().expect("just pushed").secret = true;
        self
    }

    pub fn stack_ref(&mut self, alias: &str, stack: &str) -> &mut Self {
        self.stack_refs.insert(alias.into(), stack.into());
        self
    }

    /// Checks names, references, types and properties, and orders the graph.
    pub fn validate(&self, providers: &ProviderRegistry) -> Result<ValidGraph<'_>, Diagnostics> {
        let mut diags = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, r) in self.resources.iter().enumerate() {
            if index.insert(r.name.as_str(), i).is_some() {
                diags.push(Diagnostic {
                    site: r.site.clone(),
                    message: format!("resource `{}` is declared twice", r.name),
                });
            }
            if self.stack_refs.contains_key(&r.name) {
                diags.push(Diagnostic {
                    site: r.site.clone(),
                    message: format!("`{}` is both a resource and a stack reference", r.name),
                });
            }
        }
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); self.resources.len()];
        for (i, r) in self.resources.iter().enumerate() {
            let schema = providers.schema(&r.ty);
            if schema.is_none() {
                let known = providers
                    .types()
                    .keys()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                diags.push(Diagnostic {
                    site: r.site.with_field(format!("resources.{}.type", r.name)),
                    message: format!("unknown resource type `{}` (known types: {known})", r.ty),
                });
            }
            for (key, expr) in &r.properties {
                for reference in expr.references() {
                    match index.get(reference.target.as_str()) {
                        Some(&j) => deps[i].push(j),
                        None if self.stack_refs.contains_key(&reference.target) => {}
                        None => diags.push(Diagnostic {
                            site: r.property_site(key),
                            message: format!(
                                "`{reference}` refers to unknown resource `{}`",
                                reference.target
                            ),
                        }),
                    }
                }
                if let (Some(schema), Expr::Literal(v)) = (schema, expr) {
                    match schema.input(key) {
                        None => {}
                        Some(p) if !p.ty.admits(v) => diags.push(Diagnostic {
                            site: r.property_site(key),
                            message: format!(
                                "type mismatch: `{}` expects {}, got {}",
                                r.ty,
                                p.ty.name(),
                                v.kind()
                            ),
                        }),
                        Some(_) => {}
                    }
                }
            }
            if let Some(schema) = schema {
                for failure in schema.check_names(r.properties.keys()) {
                    diags.push(Diagnostic {
                        site: r.property_site(&failure.property),
                        message: failure.reason,
                    });
                }
            }
            for d in &r.depends_on {
                match index.get(d.as_str()) {
                    Some(&j) => deps[i].push(j),
                    None => diags.push(Diagnostic {
                        site: r.site.with_field(format!("resources.{}.dependsOn", r.name)),
                        message: format!("depends on unknown resource `{d}`"),
                    }),
                }
            }
            deps[i].sort_unstable();
            deps[i].dedup();
        }
        for o in &self.outputs {
            for reference in o.value.references() {
                if !index.contains_key(reference.target.as_str())
                    && !self.stack_refs.contains_key(&reference.target)
                {
                    diags.push(Diagnostic {
                        site: o.site.clone(),
                        message: format!(
                            "`{reference}` refers to unknown resource `{}`",
                            reference.target
                        ),
                    });
                }
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        let order = topological_order(&deps).map_err(|cycle| {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| self.resources[i].name.as_str())
                .collect();
            let first = &self.resources[cycle[0]];
            Diagnostics(vec![Diagnostic {
                site: first.site.clone(),
                message: format!("reference cycle: {}", names.join(" -> ")),
            }])
        })?;
        Ok(ValidGraph {
            graph: self,
            index,
            deps,
            order,
        })
    }
}

/// A graph that passed validation: acyclic, every reference resolved.
pub struct ValidGraph<'g> {
    pub graph: &'g DesiredGraph,
    pub index: HashMap<&'g str, usize>,
    /// For each resource, the resources it depends on.
    pub deps: Vec<Vec<usize>>,
    /// Dependencies first.
    pub order: Vec<usize>,
}

/// Kahn's algorithm; on a cycle, returns one cycle's members in order (first repeated at
/// the end).
pub fn topological_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut indegree = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        indegree[i] = ds.len();
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &j in &dependents[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push_back(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk dependencies from any node left over until one repeats.
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut at = (0..n)
        .find(|&i| indegree[i] > 0)
        .expect("a node on a cycle");
    loop {
        if let Some(&start) = seen.get(&at) {
            let mut cycle = path[start..].to_vec();
            cycle.push(at);
            return Err(cycle);
        }
        seen.insert(at, path.len());
        path.push(at);
        at = *deps[at]
            .iter()
            .find(|&&d| indegree[d] > 0)
            .expect("a node on a cycle has a dependency on the cycle");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_reference_keeps_its_type_and_text_interpolates() {
        assert_eq!(
            Expr::template("${rg.name}").unwrap(),
            Expr::reference("rg", &["name"])
        );
        let e = Expr::template("rg-${team}-$${literal}").unwrap();
        let v = e
            .eval(&mut |r: &Reference| -> Result<Value, ()> {
                assert_eq!(r.target, "team");
                Ok(Value::secret("pay".into()))
            })
            .unwrap();
        assert_eq!(v, Value::secret("rg-pay-${literal}".into()));
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(Expr::template("${").unwrap_err().contains("unterminated"));
        assert!(
            Expr::template("${9x}")
                .unwrap_err()
                .contains("not a valid reference")
        );
        assert!(
            Expr::template("${a..b}")
                .unwrap_err()
                .contains("invalid path segment")
        );
    }

    #[test]
    fn cycles_are_reported_in_order() {
        let deps = vec![vec![2], vec![0], vec![1]];
        let cycle = topological_order(&deps).unwrap_err();
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle.first(), cycle.last());
    }
}
