//! Blueprints: YAML programs that describe a stack.
//!
//! ```yaml
//! name: demo
//! version: 1.0.0
//! parameters:
//!   team: { type: string, pattern: "^[a-z][a-z0-9-]+$", description: Owning team }
//! stackReferences:
//!   shared: "shared-${team}"
//! resources:
//!   rg:
//!     type: test:resource
//!     properties: { name: "rg-${team}", parent: "${shared.networkId}" }
//!     options: { protect: true }
//! outputs:
//!   rgName: ${rg.name}
//! ```
//!
//! Parsing keeps every node's line and column, so each error names file, line and field.
//! Rendering binds parameter values and yields a [`DesiredGraph`] — the same type the
//! Rust API builds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoaderOptions, Node, Span};
use serde::Serialize;

use crate::graph::{
    DesiredGraph, Diagnostic, Diagnostics, Expr, OutputSpec, ResourceOptions, ResourceSpec, Site,
};
use crate::value::{SortedMap, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    Enum,
    List,
}

/// A typed parameter: enough to render a form and to validate what is submitted.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ParamType,
    pub description: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_value_opt"
    )]
    pub default: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Int: smallest value; string: shortest length; list: fewest items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Allowed values of an enum, or of a list's items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    pub secret: bool,
    /// A request must give it. Parameters with a default never are; one without may say
    /// `required: false`, leaving its value to whoever takes the request.
    pub required: bool,
    /// A short label for forms (default: the name, in words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A hint for forms about what the text is: `member` (a login of the requesting
    /// team's members, chosen with a people picker). Not checked here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip)]
    pub site: Site,
    #[serde(skip)]
    regex: Option<regex::Regex>,
}

fn ser_value_opt<S: serde::Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    v.as_ref().map(Value::to_redacted_json).serialize(s)
}

impl Parameter {
    /// Checks (and coerces from text, as given on a command line) a submitted value.
    /// Checks a value, coercing command-line or form text to the parameter's type first
    /// (`"3"` → 3, `"yes"` → true, `"a, b"` → a list).
    pub fn admit(&self, v: &Value) -> Result<Value, String> {
        let v = &v.reveal();
        let v = match (self.ty, v) {
            (ParamType::Int, Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("expected an integer, got {s:?}"))?,
            (ParamType::Bool, Value::String(s)) => match s.trim() {
                "true" | "yes" => Value::Bool(true),
                "false" | "no" => Value::Bool(false),
                _ => return Err(format!("expected true or false, got {s:?}")),
            },
            (ParamType::List, Value::String(s)) => Value::List(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(Value::from)
                    .collect(),
            ),
            _ => v.clone(),
        };
        self.check(v)
    }

    /// Checks a value as it came in a JSON request: its JSON type must be the parameter's
    /// (no text coercion), then the same rules as [`Parameter::admit`].
    pub fn admit_json(&self, json: &serde_json::Value) -> Result<Value, String> {
        self.check(Value::from_json(json.clone()))
    }

    /// The rules text (a string, or one item of a list) meets: allowed values, pattern.
    pub(crate) fn check_text(&self, s: &str) -> Result<(), String> {
        if !self.values.is_empty() && !self.values.iter().any(|a| a == s) {
            return Err(format!("{s:?} is not one of: {}", self.values.join(", ")));
        }
        if let Some(re) = &self.regex
            && !re.is_match(s)
        {
            return Err(format!(
                "{s:?} does not match the pattern {}",
                self.pattern.as_deref().unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// The rules every value meets, whatever it came from: type, allowed values, pattern,
    /// min and max. Secret parameters' values come back sealed as secrets.
    fn check(&self, v: Value) -> Result<Value, String> {
        let expected = match self.ty {
            ParamType::String | ParamType::Enum => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::List => "list",
        };
        if v.kind() != expected {
            return Err(format!("expected {expected}, got {}", v.kind()));
        }
        let check_text = |s: &str| self.check_text(s);
        let size = match &v {
            Value::String(s) => {
                check_text(s)?;
                Some(("characters", s.chars().count() as i64))
            }
            Value::Int(i) => Some(("", *i)),
            Value::List(items) => {
                for item in items {
                    let text = item.as_str().ok_or_else(|| {
                        format!("list items must be strings, got {}", item.kind())
                    })?;
                    check_text(text)?;
                }
                Some(("items", items.len() as i64))
            }
            _ => None,
        };
        if let Some((unit, n)) = size {
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            };
            if let Some(min) = self.min.filter(|&m| n < m) {
                if self.ty == ParamType::List && !self.values.is_empty() {
                    return Err(format!(
                        "choose at least {min} of: {}",
                        self.values.join(", ")
                    ));
                }
                return Err(format!("must be at least {min}{unit}, got {n}"));
            }
            if let Some(max) = self.max.filter(|&m| n > m) {
                return Err(format!("must be at most {max}{unit}, got {n}"));
            }
        }
        Ok(if self.secret { Value::secret(v) } else { v })
    }
}

/// A parsed blueprint, parameters not yet bound.
#[derive(Clone, Debug)]
pub struct Blueprint {
    pub file: Arc<str>,
    pub name: String,
    pub version: String,
    pub description: String,
    pub parameters: Vec<Parameter>,
    stack_refs: Vec<(String, Expr, Site)>,
    resources: Vec<ResourceSpec>,
    outputs: Vec<OutputSpec>,
}

/// Collects diagnostics while walking the YAML tree.
struct Reader {
    file: Arc<str>,
    diags: Vec<Diagnostic>,
}

impl Reader {
    fn site(&self, span: &Span, field: &str) -> Site {
        let (line, column) = span.start().map_or((0, 0), |m| (m.line(), m.column()));
        Site {
            file: Some(self.file.clone()),
            line,
            column,
            field: field.to_owned(),
        }
    }

    fn error(&mut self, span: &Span, field: &str, message: impl Into<String>) {
        let site = self.site(span, field);
        self.diags.push(Diagnostic {
            site,
            message: message.into(),
        });
    }

    fn mapping<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n MarkedMappingNode> {
        let m = node.as_mapping();
        if m.is_none() {
            self.error(node.span(), field, "expected a mapping");
        }
        m
    }

    fn scalar<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n MarkedScalarNode> {
        let s = node.as_scalar();
        if s.is_none() {
            self.error(node.span(), field, "expected a single value");
        }
        s
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        self.scalar(node, field).map(|s| s.as_str().to_owned())
    }

    /// A scalar read as `T` (unquoted only), or an error saying what was expected.
    fn typed<T>(
        &mut self,
        node: &Node,
        field: &str,
        expected: &str,
        read: impl Fn(&MarkedScalarNode) -> Option<T>,
    ) -> Option<T> {
        let s = self.scalar(node, field)?;
        let v = read(s);
        if v.is_none() {
            self.error(
                s.span(),
                field,
                format!("expected {expected}, got {:?}", s.as_str()),
            );
        }
        v
    }

    fn int(&mut self, node: &Node, field: &str) -> Option<i64> {
        self.typed(node, field, "an integer", MarkedScalarNode::as_i64)
    }

    fn bool(&mut self, node: &Node, field: &str) -> Option<bool> {
        self.typed(node, field, "true or false", MarkedScalarNode::as_bool)
    }

    fn string_list(&mut self, node: &Node, field: &str) -> Vec<String> {
        match node {
            Node::Sequence(seq) => seq
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.string(n, &format!("{field}[{i}]")))
                .collect(),
            other => {
                self.error(other.span(), field, "expected a list");
                Vec::new()
            }
        }
    }

    /// Refuses keys outside `known`, so a typo is an error rather than ignored.
    fn known_keys(&mut self, map: &MarkedMappingNode, field: &str, known: &[&str]) {
        for (k, _) in map.iter() {
            if !known.contains(&k.as_str()) {
                let path = if field.is_empty() {
                    k.as_str().to_owned()
                } else {
                    format!("{field}.{}", k.as_str())
                };
                self.error(
                    k.span(),
                    &path,
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    /// A YAML node as an expression; strings are templates.
    fn expr(&mut self, node: &Node, field: &str) -> Expr {
        match node {
            Node::Scalar(s) => {
                if !s.may_coerce() {
                    return self.template(s, field);
                }
                let text = s.as_str();
                if matches!(text, "~" | "null" | "") {
                    Expr::Literal(Value::Null)
                } else if let Some(b) = s.as_bool() {
                    Expr::Literal(Value::Bool(b))
                } else if let Some(i) = s.as_i64() {
                    Expr::Literal(Value::Int(i))
                } else if let Some(f) = s.as_f64().filter(|_| text.contains('.')) {
                    Expr::Literal(Value::Float(f))
                } else {
                    self.template(s, field)
                }
            }
            Node::Sequence(seq) => Expr::List(
                seq.iter()
                    .enumerate()
                    .map(|(i, n)| self.expr(n, &format!("{field}[{i}]")))
                    .collect(),
            ),
            Node::Mapping(m) => Expr::Map(
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            self.expr(v, &format!("{field}.{}", k.as_str())),
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn template(&mut self, s: &MarkedScalarNode, field: &str) -> Expr {
        Expr::template(s.as_str()).unwrap_or_else(|e| {
            self.error(s.span(), field, e);
            Expr::Literal(Value::Null)
        })
    }
}

impl Blueprint {
    pub fn load(path: &Path) -> Result<Blueprint, Diagnostics> {
        let file: Arc<str> = path.display().to_string().into();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                site: Site {
                    file: Some(file.clone()),
                    ..Site::default()
                },
                message: format!("cannot read blueprint: {e}"),
            }])
        })?;
        Blueprint::parse(&file, &text)
    }

    /// The resources it declares, as written (expressions unbound): what a version
    /// creates, for catalogs.
    pub fn resources(&self) -> &[ResourceSpec] {
        &self.resources
    }

    pub fn parse(file: &str, text: &str) -> Result<Blueprint, Diagnostics> {
        let mut r = Reader {
            file: file.into(),
            diags: Vec::new(),
        };
        // A quoted scalar is a string, as YAML says: `"4"` must not become an int.
        let options = LoaderOptions::default()
            .error_on_duplicate_keys(true)
            .prevent_coercion(true);
        let root = marked_yaml::parse_yaml_with_options(0, text, options)
            .map_err(|e| yaml_error(file, &e))?;
        let Some(top) = r.mapping(&root, "(top)") else {
            return Err(Diagnostics(r.diags));
        };
        r.known_keys(
            top,
            "",
            &[
                "name",
                "version",
                "description",
                "parameters",
                "stackReferences",
                "resources",
                "outputs",
            ],
        );
        let text_field = |r: &mut Reader, key: &str, required: bool| -> String {
            match top.get_node(key) {
                Some(n) => r.string(n, key).unwrap_or_default(),
                None => {
                    if required {
                        r.error(top.span(), key, "required field is missing");
                    }
                    String::new()
                }
            }
        };
        let name = text_field(&mut r, "name", true);
        let version = text_field(&mut r, "version", true);
        let description = text_field(&mut r, "description", false);

        let mut parameters = Vec::new();
        if let Some(params) = top
            .get_node("parameters")
            .and_then(|n| r.mapping(n, "parameters"))
        {
            for (k, v) in params.iter() {
                if let Some(p) = read_parameter(&mut r, k.as_str(), v) {
                    parameters.push(p);
                }
            }
        }
        let param_names: BTreeSet<&str> = parameters.iter().map(|p| p.name.as_str()).collect();

        let mut stack_refs = Vec::new();
        if let Some(refs) = top
            .get_node("stackReferences")
            .and_then(|n| r.mapping(n, "stackReferences"))
        {
            for (k, v) in refs.iter() {
                let field = format!("stackReferences.{}", k.as_str());
                if let Some(s) = r.scalar(v, &field) {
                    let expr = r.template(s, &field);
                    stack_refs.push((k.as_str().to_owned(), expr, r.site(v.span(), &field)));
                }
            }
        }
        let ref_names: BTreeSet<&str> = stack_refs.iter().map(|(a, _, _)| a.as_str()).collect();

        let mut resources = Vec::new();
        if let Some(res) = top
            .get_node("resources")
            .and_then(|n| r.mapping(n, "resources"))
        {
            for (k, v) in res.iter() {
                if let Some(spec) = read_resource(&mut r, k, v) {
                    resources.push(spec);
                }
            }
        }
        let resource_names: BTreeSet<&str> = resources
            .iter()
            .map(|s: &ResourceSpec| s.name.as_str())
            .collect();
        for name in param_names.intersection(&resource_names) {
            r.diags.push(Diagnostic {
                site: Site {
                    file: Some(r.file.clone()),
                    ..Site::field(format!("parameters.{name}"))
                },
                message: format!("`{name}` is both a parameter and a resource"),
            });
        }

        let mut outputs = Vec::new();
        if let Some(outs) = top
            .get_node("outputs")
            .and_then(|n| r.mapping(n, "outputs"))
        {
            for (k, v) in outs.iter() {
                let field = format!("outputs.{}", k.as_str());
                let site = r.site(v.span(), &field);
                let (value, secret) = match v.as_mapping() {
                    Some(m) if m.get_node("value").is_some() => {
                        r.known_keys(m, &field, &["value", "secret", "description"]);
                        let secret = m
                            .get_node("secret")
                            .and_then(|n| r.bool(n, &format!("{field}.secret")))
                            .unwrap_or(false);
                        (
                            r.expr(
                                m.get_node("value").expect("checked"),
                                &format!("{field}.value"),
                            ),
                            secret,
                        )
                    }
                    _ => (r.expr(v, &field), false),
                };
                outputs.push(OutputSpec {
                    name: k.as_str().to_owned(),
                    value,
                    secret,
                    site,
                });
            }
        }

        // Every reference must name a parameter, a resource or a stack reference.
        let check = |r: &mut Reader, expr: &Expr, site: &Site, allow_resources: bool| {
            for reference in expr.references() {
                let t = reference.target.as_str();
                let known = param_names.contains(t)
                    || ref_names.contains(t)
                    || (allow_resources && resource_names.contains(t));
                if !known {
                    let what = if allow_resources {
                        "parameter, resource or stack reference"
                    } else {
                        "parameter"
                    };
                    r.diags.push(Diagnostic {
                        site: site.clone(),
                        message: format!(
                            "`{reference}` refers to nothing: no {what} is named `{t}`"
                        ),
                    });
                } else if param_names.contains(t) && !reference.path.is_empty() {
                    r.diags.push(Diagnostic {
                        site: site.clone(),
                        message: format!(
                            "`{reference}`: parameter `{t}` has no fields; write `${{{t}}}`"
                        ),
                    });
                }
            }
        };
        for (_, expr, site) in &stack_refs {
            check(&mut r, expr, site, false);
        }
        for spec in &resources {
            for (key, expr) in &spec.properties {
                check(&mut r, expr, &spec.property_site(key), true);
            }
        }
        for o in &outputs {
            check(&mut r, &o.value, &o.site, true);
        }
        if !r.diags.is_empty() {
            return Err(Diagnostics(r.diags));
        }
        Ok(Blueprint {
            file: r.file,
            name,
            version,
            description,
            parameters,
            stack_refs,
            resources,
            outputs,
        })
    }

    /// Binds parameter values (typed, or text to coerce) and yields the desired graph.
    pub fn render(&self, values: &BTreeMap<String, Value>) -> Result<DesiredGraph, Diagnostics> {
        let mut diags = Vec::new();
        let param_site = |name: &str| Site {
            file: Some(self.file.clone()),
            ..Site::field(format!("parameters.{name}"))
        };
        for name in values.keys() {
            if !self.parameters.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = self.parameters.iter().map(|p| p.name.as_str()).collect();
                diags.push(Diagnostic {
                    site: param_site(name),
                    message: format!(
                        "unknown parameter `{name}` (parameters of `{}`: {})",
                        self.name,
                        known.join(", ")
                    ),
                });
            }
        }
        let mut bound: BTreeMap<&str, Value> = BTreeMap::new();
        for p in &self.parameters {
            let given = values.get(&p.name).or(p.default.as_ref());
            match given {
                None if !p.required => {
                    bound.insert(&p.name, Value::Null);
                }
                None => diags.push(Diagnostic {
                    site: p.site.clone(),
                    message: format!("parameter `{}` is required", p.name),
                }),
                Some(v) => match p.admit(v) {
                    Ok(v) => {
                        bound.insert(&p.name, v);
                    }
                    Err(e) => diags.push(Diagnostic {
                        site: p.site.clone(),
                        message: format!("parameter `{}`: {e}", p.name),
                    }),
                },
            }
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        let subst = |r: &crate::graph::Reference| bound.get(r.target.as_str()).cloned();
        let mut graph = DesiredGraph::new();
        for (alias, expr, site) in &self.stack_refs {
            let name = expr.substitute(&subst).eval(&mut |r| -> Result<Value, ()> {
                Ok(bound.get(r.target.as_str()).cloned().unwrap_or(Value::Null))
            });
            match name.ok().as_ref().and_then(Value::as_str) {
                Some(n) => {
                    graph.stack_refs.insert(alias.clone(), n.to_owned());
                }
                None => diags.push(Diagnostic {
                    site: site.clone(),
                    message: "a stack reference must be a stack name".into(),
                }),
            }
        }
        for spec in &self.resources {
            let mut spec = spec.clone();
            spec.properties = spec
                .properties
                .iter()
                .map(|(k, e)| (k.clone(), e.substitute(&subst)))
                .collect();
            graph.resources.push(spec);
        }
        for o in &self.outputs {
            graph.outputs.push(OutputSpec {
                value: o.value.substitute(&subst),
                ..o.clone()
            });
        }
        if !diags.is_empty() {
            return Err(Diagnostics(diags));
        }
        Ok(graph)
    }
}

/// A YAML syntax error, located.
fn yaml_error(file: &str, e: &marked_yaml::LoadError) -> Diagnostics {
    use marked_yaml::LoadError as E;
    let (marker, message) = match e {
        E::ScanError(m, scan) => (Some(*m), scan.info().to_owned()),
        E::TopLevelMustBeMapping(m) => (Some(*m), "the top level must be a mapping".into()),
        E::UnexpectedAnchor(m) => (Some(*m), "anchors are not supported".into()),
        E::UnexpectedTag(m) => (Some(*m), "tags are not supported".into()),
        E::MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be plain values".into()),
        E::DuplicateKey(inner) => (
            inner.key.span().start().copied(),
            format!("duplicate key `{}`", inner.key.as_str()),
        ),
        other => (None, other.to_string()),
    };
    Diagnostics(vec![Diagnostic {
        site: Site {
            file: Some(file.into()),
            line: marker.map_or(0, |m| m.line()),
            column: marker.map_or(0, |m| m.column()),
            field: String::new(),
        },
        message: format!("not valid YAML: {message}"),
    }])
}

fn read_parameter(r: &mut Reader, name: &str, node: &Node) -> Option<Parameter> {
    let field = format!("parameters.{name}");
    let map = r.mapping(node, &field)?;
    r.known_keys(
        map,
        &field,
        &[
            "type",
            "description",
            "default",
            "pattern",
            "min",
            "max",
            "values",
            "secret",
            "required",
            "title",
            "format",
        ],
    );
    let sub = |k: &str| format!("{field}.{k}");
    let ty = match map
        .get_node("type")
        .and_then(|n| r.string(n, &sub("type")))
        .as_deref()
    {
        Some("string") => ParamType::String,
        Some("int") | Some("integer") => ParamType::Int,
        Some("bool") | Some("boolean") => ParamType::Bool,
        Some("enum") => ParamType::Enum,
        Some("list") => ParamType::List,
        Some(other) => {
            r.error(
                map.get_node("type").expect("present").span(),
                &sub("type"),
                format!(
                    "unknown parameter type `{other}` (expected string, int, bool, enum or list)"
                ),
            );
            return None;
        }
        None => {
            r.error(map.span(), &sub("type"), "required field is missing");
            return None;
        }
    };
    let pattern = map
        .get_node("pattern")
        .and_then(|n| r.string(n, &sub("pattern")));
    let regex = match &pattern {
        Some(p) => match regex::Regex::new(p) {
            Ok(re) => Some(re),
            Err(e) => {
                r.error(
                    map.get_node("pattern").expect("present").span(),
                    &sub("pattern"),
                    format!("invalid regular expression: {e}"),
                );
                None
            }
        },
        None => None,
    };
    let values = map
        .get_node("values")
        .map(|n| r.string_list(n, &sub("values")))
        .unwrap_or_default();
    if ty == ParamType::Enum && values.is_empty() {
        r.error(
            map.span(),
            &sub("values"),
            "an enum parameter needs `values`",
        );
    }
    let mut p = Parameter {
        name: name.to_owned(),
        ty,
        description: map
            .get_node("description")
            .and_then(|n| r.string(n, &sub("description")))
            .unwrap_or_default(),
        default: None,
        pattern,
        min: map.get_node("min").and_then(|n| r.int(n, &sub("min"))),
        max: map.get_node("max").and_then(|n| r.int(n, &sub("max"))),
        values,
        secret: map
            .get_node("secret")
            .and_then(|n| r.bool(n, &sub("secret")))
            .unwrap_or(false),
        required: true,
        title: map
            .get_node("title")
            .and_then(|n| r.string(n, &sub("title"))),
        format: map
            .get_node("format")
            .and_then(|n| r.string(n, &sub("format"))),
        site: r.site(node.span(), &field),
        regex,
    };
    if let Some(d) = map.get_node("default") {
        match r.expr(d, &sub("default")) {
            Expr::Literal(v) => match p.admit(&v) {
                Ok(admitted) => p.default = Some(admitted),
                Err(e) => r.error(
                    d.span(),
                    &sub("default"),
                    format!("default does not fit the parameter: {e}"),
                ),
            },
            Expr::List(items) if items.iter().all(|i| matches!(i, Expr::Literal(_))) => {
                let v = Value::List(
                    items
                        .into_iter()
                        .filter_map(|i| {
                            if let Expr::Literal(v) = i {
                                Some(v)
                            } else {
                                None
                            }
                        })
                        .collect(),
                );
                match p.admit(&v) {
                    Ok(admitted) => p.default = Some(admitted),
                    Err(e) => r.error(
                        d.span(),
                        &sub("default"),
                        format!("default does not fit the parameter: {e}"),
                    ),
                }
            }
            _ => r.error(
                d.span(),
                &sub("default"),
                "a default must be a plain value, without references",
            ),
        }
    }
    let explicit = map
        .get_node("required")
        .and_then(|n| r.bool(n, &sub("required")));
    p.required = match explicit {
        Some(true) if map.get_node("default").is_some() => {
            r.error(
                map.span(),
                &sub("required"),
                "a parameter with a default is never required",
            );
            false
        }
        Some(required) => required,
        None => map.get_node("default").is_none(),
    };
    Some(p)
}

fn read_resource(r: &mut Reader, key: &MarkedScalarNode, node: &Node) -> Option<ResourceSpec> {
    let name = key.as_str();
    let field = format!("resources.{name}");
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        r.error(
            key.span(),
            &field,
            "resource names are letters, digits, '_' and '-', starting with a letter",
        );
    }
    let map = r.mapping(node, &field)?;
    r.known_keys(
        map,
        &field,
        &["type", "properties", "dependsOn", "options", "description"],
    );
    let ty = match map.get_node("type") {
        Some(n) => r.string(n, &format!("{field}.type"))?,
        None => {
            r.error(
                map.span(),
                &format!("{field}.type"),
                "required field is missing",
            );
            return None;
        }
    };
    let mut spec = ResourceSpec {
        name: name.to_owned(),
        ty,
        properties: SortedMap::new(),
        depends_on: Vec::new(),
        options: ResourceOptions::default(),
        site: r.site(key.span(), &field),
        property_sites: BTreeMap::new(),
    };
    if let Some(props) = map
        .get_node("properties")
        .and_then(|n| r.mapping(n, &format!("{field}.properties")))
    {
        for (k, v) in props.iter() {
            let pf = format!("{field}.properties.{}", k.as_str());
            spec.property_sites
                .insert(k.as_str().to_owned(), r.site(v.span(), &pf));
            let e = r.expr(v, &pf);
            spec.properties.insert(k.as_str().to_owned(), e);
        }
    }
    if let Some(d) = map.get_node("dependsOn") {
        spec.depends_on = r.string_list(d, &format!("{field}.dependsOn"));
    }
    if let Some(opts) = map
        .get_node("options")
        .and_then(|n| r.mapping(n, &format!("{field}.options")))
    {
        let of = format!("{field}.options");
        r.known_keys(
            opts,
            &of,
            &[
                "protect",
                "deleteBeforeReplace",
                "ignoreChanges",
                "acceptDrift",
            ],
        );
        if let Some(n) = opts.get_node("protect") {
            spec.options.protect = r.bool(n, &format!("{of}.protect")).unwrap_or(false);
        }
        if let Some(n) = opts.get_node("deleteBeforeReplace") {
            spec.options.delete_before_replace = r
                .bool(n, &format!("{of}.deleteBeforeReplace"))
                .unwrap_or(false);
        }
        if let Some(n) = opts.get_node("ignoreChanges") {
            spec.options.ignore_changes = r.string_list(n, &format!("{of}.ignoreChanges"));
        }
        if let Some(n) = opts.get_node("acceptDrift") {
            spec.options.accept_drift = r.string_list(n, &format!("{of}.acceptDrift"));
        }
    }
    Some(spec)
}

/// Reads parameter values from a YAML (or JSON) mapping, e.g. a `--params-file`.
pub fn parse_values(file: &str, text: &str) -> Result<BTreeMap<String, Value>, Diagnostics> {
    let mut r = Reader {
        file: file.into(),
        diags: Vec::new(),
    };
    let options = LoaderOptions::default().prevent_coercion(true);
    let root =
        marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| yaml_error(file, &e))?;
    let mut values = BTreeMap::new();
    if let Some(map) = r.mapping(&root, "(top)") {
        for (k, v) in map.iter() {
            match r.expr(v, k.as_str()) {
                Expr::Literal(value) => {
                    values.insert(k.as_str().to_owned(), value);
                }
                Expr::List(items) if items.iter().all(|i| matches!(i, Expr::Literal(_))) => {
                    let items = items
                        .into_iter()
                        .filter_map(|i| {
                            if let Expr::Literal(v) = i {
                                Some(v)
                            } else {
                                None
                            }
                        })
                        .collect();
                    values.insert(k.as_str().to_owned(), Value::List(items));
                }
                _ => r.error(
                    v.span(),
                    k.as_str(),
                    "a parameter value must be a plain value, without references",
                ),
            }
        }
    }
    if r.diags.is_empty() {
        Ok(values)
    } else {
        Err(Diagnostics(r.diags))
    }
}
