//! Forms generated from a blueprint's parameters, and submitted forms read back.
//!
//! Job: turn a blueprint version's parameters (in their order) into form fields — text
//! with its pattern as a hint, a select for an enum, checkboxes for a list of allowed
//! values, a people picker (the team's members) for a list of `format: member`, defaults
//! filled, descriptions as help — and turn a submitted form into the same request the
//! API and the CLI make ([`EnvironmentRequest`] with text values, coerced by type), so
//! that one check ([`crate::api::requests::check`]) gives the same messages everywhere.
//!
//! Must not: check values itself, or decide who may see a field: the request check and
//! the policy do.

use std::collections::BTreeMap;

use paddock_engine::Value;
use paddock_engine::blueprint::{Blueprint, ParamType, Parameter};
use paddock_engine::parameters::{Input, label};
use paddock_store::db;

use crate::api::EnvironmentRequest;
use crate::problem::FieldError;

/// One control of a generated form.
#[derive(Clone, Debug)]
pub struct Field {
    /// The parameter's name: the control's `name`, and the field errors name it.
    pub name: String,
    pub label: String,
    pub help: String,
    pub required: bool,
    pub control: Control,
    /// The error at this field (or at one of its items), if any.
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Control {
    /// Free text (strings, and integers as text); `hint` explains the pattern.
    Text { value: String, hint: Option<String> },
    /// A yes/no choice.
    Checkbox { checked: bool },
    /// One of several values.
    Select { options: Vec<Choice> },
    /// Any of several values.
    Checkboxes { options: Vec<Choice> },
    /// Team members, any number of them.
    People { options: Vec<Choice> },
    /// Free items, comma-separated.
    List { value: String },
}

#[derive(Clone, Debug)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Field {
    /// The control's element id (also the id its error is shown under).
    pub fn id(&self) -> String {
        format!("param-{}", self.name)
    }

    pub fn error_id(&self) -> String {
        format!("error-{}", self.name)
    }
}

/// The fields of `blueprint`, showing `values` (a submission, or an environment's current
/// values; defaults where absent) and `errors` next to the fields they name.
pub fn fields(
    blueprint: &Blueprint,
    members: &[db::Member],
    values: &BTreeMap<String, Value>,
    errors: &[FieldError],
) -> Vec<Field> {
    blueprint
        .parameters
        .iter()
        .map(|p| {
            field(
                p,
                members,
                values.get(&p.name).or(p.default.as_ref()),
                errors,
            )
        })
        .collect()
}

fn texts(v: Option<&Value>) -> Vec<String> {
    match v.map(Value::reveal) {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn field(
    p: &Parameter,
    members: &[db::Member],
    value: Option<&Value>,
    errors: &[FieldError],
) -> Field {
    let chosen = texts(value);
    let choices = |values: &[String]| -> Vec<Choice> {
        values
            .iter()
            .map(|v| Choice {
                value: v.clone(),
                label: v.clone(),
                selected: chosen.contains(v),
            })
            .collect()
    };
    let control = match p.ty {
        ParamType::Enum => Control::Select {
            options: choices(&p.values),
        },
        ParamType::Bool => Control::Checkbox {
            checked: matches!(value, Some(Value::Bool(true))),
        },
        ParamType::List if !p.values.is_empty() => Control::Checkboxes {
            options: choices(&p.values),
        },
        ParamType::List if p.format.as_deref() == Some("member") => Control::People {
            options: members
                .iter()
                .map(|m| Choice {
                    value: m.login.clone(),
                    label: format!("{} ({}, {})", m.name, m.login, m.role),
                    selected: chosen.contains(&m.login),
                })
                .collect(),
        },
        ParamType::List => Control::List {
            value: chosen.join(", "),
        },
        ParamType::String | ParamType::Int => Control::Text {
            value: match value.map(Value::reveal) {
                // A secret's value is never shown back.
                _ if p.secret => String::new(),
                Some(Value::String(s)) => s,
                Some(Value::Int(i)) => i.to_string(),
                _ => String::new(),
            },
            hint: hint(p),
        },
    };
    let error = errors
        .iter()
        .filter(|e| e.field == p.name || e.field.starts_with(&format!("{}[", p.name)))
        .map(|e| e.message.clone())
        .collect::<Vec<_>>();
    Field {
        name: p.name.clone(),
        label: label(p),
        help: p.description.clone(),
        required: p.required,
        control,
        error: (!error.is_empty()).then(|| error.join("; ")),
    }
}

/// What a text field's rules are, in words.
fn hint(p: &Parameter) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(pattern) = &p.pattern {
        parts.push(format!("must match {pattern}"));
    }
    match (p.ty, p.min, p.max) {
        (ParamType::Int, Some(a), Some(b)) => parts.push(format!("from {a} to {b}")),
        (ParamType::Int, Some(a), None) => parts.push(format!("at least {a}")),
        (ParamType::Int, None, Some(b)) => parts.push(format!("at most {b}")),
        (ParamType::String, Some(a), Some(b)) => parts.push(format!("{a} to {b} characters")),
        (ParamType::String, None, Some(b)) => parts.push(format!("at most {b} characters")),
        _ => {}
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// A submitted form (`application/x-www-form-urlencoded` pairs) as a request: each
/// parameter of the blueprint from its controls, as text for the check to coerce.
/// Empty text and unticked lists are absent, so defaults apply (on an update: the
/// current value stays) — except a list of checkboxes, which the form always sends as a
/// whole (`{name}.present` marks it), so that unticking every box is a choice the check
/// can refuse.
pub fn request(
    blueprint: &Blueprint,
    name: &str,
    pairs: &[(String, String)],
) -> EnvironmentRequest {
    let all = |key: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mut values = BTreeMap::new();
    for p in &blueprint.parameters {
        let mut given = all(&p.name);
        given.retain(|s| !s.trim().is_empty());
        let present = !all(&format!("{}.present", p.name)).is_empty();
        let value = match p.ty {
            ParamType::List if given.is_empty() && present => Some(Value::List(Vec::new())),
            ParamType::List if given.is_empty() => None,
            ParamType::List if given.len() == 1 && p.values.is_empty() && p.format.is_none() => {
                // A free list typed as "a, b".
                Some(Value::String(given[0].to_owned()))
            }
            ParamType::List => Some(Value::List(
                given
                    .iter()
                    .map(|s| Value::String((*s).to_owned()))
                    .collect(),
            )),
            // The last of a hidden "false" and a ticked "true".
            ParamType::Bool => given.last().map(|s| Value::String((*s).to_owned())),
            _ => given
                .last()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Value::String(s.trim().to_owned())),
        };
        if let Some(v) = value {
            values.insert(p.name.clone(), v);
        }
    }
    // Names the form has no control for are the request's too: the check names them.
    for (k, v) in pairs {
        let known = blueprint
            .parameters
            .iter()
            .any(|p| *k == p.name || *k == format!("{}.present", p.name));
        if !known && !k.starts_with('_') && !matches!(k.as_str(), "name" | "csrf_token") {
            values.insert(k.clone(), Value::String(v.clone()));
        }
    }
    EnvironmentRequest {
        name: name.to_owned(),
        blueprint_version: pairs
            .iter()
            .find(|(k, _)| k == "_blueprintVersion")
            .map(|(_, v)| v.clone()),
        values,
        input: Input::Text,
        // The create form's "expires in" choice; empty means no expiry.
        expiry: crate::api::ExpiryRequest {
            expires_at: None,
            ttl: pairs
                .iter()
                .find(|(k, _)| k == "_ttl")
                .map(|(_, v)| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<db::Member> {
        vec![db::Member {
            user_id: "u1".into(),
            login: "ada".into(),
            name: "Ada".into(),
            role: "admin".into(),
        }]
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_environment_form_reads_in_the_blueprints_order_with_its_controls() {
        let bp = paddock_platform::environment_request();
        let f = fields(bp, &members(), &BTreeMap::new(), &[]);
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["stages", "region", "quota", "admins", "contributors"]
        );
        assert!(matches!(f[0].control, Control::Checkboxes { .. }));
        assert!(
            matches!(&f[1].control, Control::Text { value, hint: Some(_) } if value == "westeurope")
        );
        match &f[2].control {
            Control::Select { options } => {
                assert!(options.iter().any(|o| o.value == "medium" && o.selected))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&f[3].control, Control::People { options } if options[0].value == "ada"));
        assert_eq!(f[3].label, "Administrators");
        assert!(f[0].required && !f[3].required);
    }

    #[test]
    fn errors_sit_next_to_their_field_items_included() {
        let bp = paddock_platform::environment_request();
        let errors = vec![FieldError {
            field: "stages[0]".into(),
            message: "\"staging\" is not one of: dev, test, prod".into(),
            rule: None,
        }];
        let f = fields(bp, &members(), &BTreeMap::new(), &errors);
        assert!(f[0].error.as_deref().unwrap().contains("staging"));
        assert!(f[1].error.is_none());
    }

    #[test]
    fn a_submitted_form_is_the_same_request_as_the_apis() {
        let bp = paddock_platform::environment_request();
        let req = request(
            bp,
            "checkout",
            &pairs(&[
                ("csrf_token", "x"),
                ("stages.present", "1"),
                ("stages", "dev"),
                ("stages", "prod"),
                ("region", " northeurope "),
                ("quota", "large"),
                ("admins", "ada"),
                ("contributors", ""),
            ]),
        );
        assert_eq!(req.name, "checkout");
        assert_eq!(
            req.values["stages"],
            Value::List(vec![Value::from("dev"), Value::from("prod")])
        );
        assert_eq!(req.values["region"], Value::from("northeurope"));
        assert!(!req.values.contains_key("contributors"), "empty is absent");
        let none = request(bp, "checkout", &pairs(&[("stages.present", "1")]));
        assert_eq!(none.values["stages"], Value::List(Vec::new()));
        let admitted =
            paddock_engine::parameters::admit_request(bp, &req.values, req.input).unwrap();
        assert_eq!(admitted["quota"], Value::from("large"));
    }
}
