//! Blueprints built from parts (parameters of every type with defaults, patterns and
//! bounds; resources whose properties interpolate parameters, other resources and stack
//! references; outputs), printed as YAML and parsed: the deep paths (reference checks,
//! defaults, rendering with values) that random text seldom reaches.
//!
//! Properties: no panic; decided within the time bound; what parses is what was printed
//! (parameter names, types and secrecy; resource names, types and `dependsOn`; outputs),
//! a refusal names fields the blueprint has; a blueprint renders with submitted values or
//! refuses with diagnostics about parameters, and a rendered graph has its resources.
#![no_main]

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use paddock_engine::blueprint::{Blueprint, ParamType};
use paddock_engine::value::Value;
use paddock_fuzz::{bounded, text};

const PARAMS: &[&str] = &["team", "region", "size", "stages", "secret", "p-1"];
const RESOURCES: &[&str] = &["rg", "repo", "ns", "app_1"];
const REFS: &[&str] = &["shared", "network"];

#[derive(Debug)]
struct Param {
    name: &'static str,
    ty: &'static str,
    default: Option<String>,
    pattern: Option<&'static str>,
    min: Option<i64>,
    max: Option<i64>,
    values: Vec<String>,
    secret: Option<bool>,
    required: Option<bool>,
}

#[derive(Debug)]
struct Resource {
    name: &'static str,
    ty: &'static str,
    properties: Vec<(String, String)>,
    depends_on: Vec<&'static str>,
    protect: Option<bool>,
}

#[derive(Debug)]
struct Input {
    params: Vec<Param>,
    stack_refs: Vec<(&'static str, String)>,
    resources: Vec<Resource>,
    outputs: Vec<(String, String, bool)>,
    values: Vec<(&'static str, String)>,
}

/// A YAML scalar (as a JSON string, which YAML reads the same) or a plain one.
fn scalar(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => serde_json::to_string(&text(u)?).expect("a string"),
        1 => u.arbitrary::<i64>()?.to_string(),
        2 => (*u.choose(&["true", "false", "null", "~", "1.5", "[a, b]", "[]", "{}"])?).to_owned(),
        _ => serde_json::to_string(&expression(u)?).expect("a string"),
    })
}

/// A template: literal text around references to parameters, resources and stack
/// references (some of them to names that do not exist).
fn expression(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let mut out = String::new();
    for _ in 0..u.int_in_range(1..=3)? {
        match u.int_in_range(0..=4)? {
            0 => out.push_str(&text(u)?),
            1 => write!(out, "${{{}}}", u.choose(PARAMS)?).expect("write"),
            2 => write!(
                out,
                "${{{}.{}}}",
                u.choose(RESOURCES)?,
                u.choose(&["name", "id", "a.b"])?
            )
            .expect("write"),
            3 => write!(
                out,
                "${{{}.{}}}",
                u.choose(REFS)?,
                u.choose(&["networkId", "x"])?
            )
            .expect("write"),
            _ => out.push_str(u.choose(&["$${literal}", "${", "$", "${unknown}"])?),
        }
    }
    Ok(out)
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut params = Vec::new();
        for name in PARAMS {
            if u.arbitrary()? {
                params.push(Param {
                    name: *name,
                    ty: *u
                        .choose(&["string", "int", "bool", "enum", "list", "integer", "float"])?,
                    default: if u.arbitrary()? {
                        Some(scalar(u)?)
                    } else {
                        None
                    },
                    pattern: *u.choose(&[
                        None,
                        Some("^[a-z][a-z0-9-]+$"),
                        Some("("),
                        Some("^e"),
                    ])?,
                    min: if u.ratio(1, 4)? {
                        Some(u.int_in_range(-2..=5)?)
                    } else {
                        None
                    },
                    max: if u.ratio(1, 4)? {
                        Some(u.int_in_range(-2..=5)?)
                    } else {
                        None
                    },
                    values: (0..u.int_in_range(0..=3)?)
                        .map(|_| text(u))
                        .collect::<arbitrary::Result<_>>()?,
                    secret: u.arbitrary()?,
                    required: u.arbitrary()?,
                });
            }
        }
        let mut stack_refs = Vec::new();
        for name in REFS {
            if u.ratio(1, 3)? {
                stack_refs.push((*name, serde_json::to_string(&expression(u)?).expect("json")));
            }
        }
        let mut resources = Vec::new();
        for name in RESOURCES {
            if u.arbitrary()? {
                let properties = (0..u.int_in_range(0..=4)?)
                    .map(|_| Ok((serde_json::to_string(&text(u)?).expect("json"), scalar(u)?)))
                    .collect::<arbitrary::Result<_>>()?;
                resources.push(Resource {
                    name: *name,
                    ty: *u.choose(&["test:resource", "azure:resource-group", ""])?,
                    properties,
                    depends_on: (0..u.int_in_range(0..=2)?)
                        .map(|_| u.choose(RESOURCES).copied())
                        .collect::<arbitrary::Result<_>>()?,
                    protect: u.arbitrary()?,
                });
            }
        }
        let outputs = (0..u.int_in_range(0..=3)?)
            .map(|i| Ok((format!("out{i}"), scalar(u)?, u.arbitrary()?)))
            .collect::<arbitrary::Result<_>>()?;
        let values = (0..u.int_in_range(0..=3)?)
            .map(|_| Ok((*u.choose(PARAMS)?, text(u)?)))
            .collect::<arbitrary::Result<_>>()?;
        Ok(Input {
            params,
            stack_refs,
            resources,
            outputs,
            values,
        })
    }
}

fn print(i: &Input) -> String {
    let mut y = String::from("name: fuzz\nversion: 1.0.0\n");
    if !i.params.is_empty() {
        y.push_str("parameters:\n");
    }
    for p in &i.params {
        writeln!(y, "  {}:\n    type: {}", p.name, p.ty).expect("write");
        if let Some(d) = &p.default {
            writeln!(y, "    default: {d}").expect("write");
        }
        if let Some(pattern) = p.pattern {
            writeln!(
                y,
                "    pattern: {}",
                serde_json::to_string(pattern).expect("json")
            )
            .expect("write");
        }
        if let Some(min) = p.min {
            writeln!(y, "    min: {min}").expect("write");
        }
        if let Some(max) = p.max {
            writeln!(y, "    max: {max}").expect("write");
        }
        if !p.values.is_empty() {
            writeln!(
                y,
                "    values: {}",
                serde_json::to_string(&p.values).expect("json")
            )
            .expect("write");
        }
        if let Some(secret) = p.secret {
            writeln!(y, "    secret: {secret}").expect("write");
        }
        if let Some(required) = p.required {
            writeln!(y, "    required: {required}").expect("write");
        }
    }
    if !i.stack_refs.is_empty() {
        y.push_str("stackReferences:\n");
    }
    for (name, e) in &i.stack_refs {
        writeln!(y, "  {name}: {e}").expect("write");
    }
    if !i.resources.is_empty() {
        y.push_str("resources:\n");
    }
    for r in &i.resources {
        writeln!(
            y,
            "  {}:\n    type: {}",
            r.name,
            serde_json::to_string(r.ty).expect("json")
        )
        .expect("write");
        if !r.properties.is_empty() {
            y.push_str("    properties:\n");
            let mut seen = Vec::new();
            for (k, v) in &r.properties {
                if !seen.contains(k) {
                    writeln!(y, "      {k}: {v}").expect("write");
                    seen.push(k.clone());
                }
            }
        }
        if !r.depends_on.is_empty() {
            writeln!(
                y,
                "    dependsOn: {}",
                serde_json::to_string(&r.depends_on).expect("json")
            )
            .expect("write");
        }
        if let Some(protect) = r.protect {
            writeln!(y, "    options: {{ protect: {protect} }}").expect("write");
        }
    }
    if !i.outputs.is_empty() {
        y.push_str("outputs:\n");
    }
    for (name, v, secret) in &i.outputs {
        if *secret {
            writeln!(y, "  {name}:\n    value: {v}\n    secret: true").expect("write");
        } else {
            writeln!(y, "  {name}: {v}").expect("write");
        }
    }
    y
}

fuzz_target!(|input: Input| {
    let yaml = print(&input);
    let lines = paddock_fuzz::yaml_lines(&yaml);
    let parsed = bounded("parsing a blueprint", || {
        Blueprint::parse("fuzz.yaml", &yaml)
    });
    let blueprint = match parsed {
        Err(diagnostics) => {
            for d in &diagnostics.0 {
                assert!(d.site.line <= lines, "{d}\n{yaml}");
                let field = &d.site.field;
                let top = field.split('.').next().unwrap_or_default();
                assert!(
                    field.is_empty()
                        || [
                            "name",
                            "version",
                            "parameters",
                            "stackReferences",
                            "resources",
                            "outputs"
                        ]
                        .contains(&top),
                    "a diagnostic about a field the blueprint has not: {d}\n{yaml}"
                );
            }
            return;
        }
        Ok(b) => b,
    };
    let names: Vec<&str> = blueprint
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let printed: Vec<&str> = input.params.iter().map(|p| p.name).collect();
    assert_eq!(names, printed, "{yaml}");
    for (p, q) in blueprint.parameters.iter().zip(&input.params) {
        let ty = match p.ty {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Enum => "enum",
            ParamType::List => "list",
        };
        assert_eq!(ty, q.ty.replace("integer", "int"), "{yaml}");
        assert_eq!(p.secret, q.secret.unwrap_or(false), "{yaml}");
    }
    let resources: Vec<(&str, &str, &[String])> = blueprint
        .resources()
        .iter()
        .map(|r| (r.name.as_str(), r.ty.as_str(), r.depends_on.as_slice()))
        .collect();
    assert_eq!(resources.len(), input.resources.len(), "{yaml}");
    for ((name, ty, depends), r) in resources.iter().zip(&input.resources) {
        assert_eq!((*name, *ty), (r.name, r.ty), "{yaml}");
        assert_eq!(depends.to_vec(), r.depends_on, "{yaml}");
    }
    let values: BTreeMap<String, Value> = input
        .values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
        .collect();
    match bounded("rendering a blueprint", || blueprint.render(&values)) {
        Ok(graph) => {
            assert_eq!(graph.resources.len(), input.resources.len(), "{yaml}");
            assert_eq!(graph.outputs.len(), input.outputs.len(), "{yaml}");
        }
        Err(diagnostics) => {
            for d in &diagnostics.0 {
                assert!(
                    d.site.field.starts_with("parameters.")
                        || d.site.field.starts_with("stackReferences.")
                        || d.message.contains("stack reference"),
                    "rendering refused for a reason not about parameters: {d}\n{yaml}"
                );
            }
        }
    }
});
