//! A blueprint's parameters as the schema of a request: the one definition of what may
//! be asked for, which the API, the portal's form and the CLI all check against.
//!
//! [`admit_request`] checks a whole set of values as it came in a JSON request (unknown
//! names, required parameters, defaults, then each parameter's own rules) and reports
//! every problem with the field it is at, so that a form can put each message next to
//! its control. [`json_schema`] renders the same rules as JSON Schema (2020-12) for
//! other tools; the two agree on what they accept.

use std::collections::BTreeMap;

use serde_json::json;

use crate::blueprint::{Blueprint, ParamType, Parameter};
use crate::value::Value;

/// One problem with a request's value, at a field (`region`, `stages[1]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How values arrive: typed (JSON) or as text to coerce (a form, `--param key=value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Json,
    Text,
}

/// Checks `given` against the blueprint's parameters: every name must be a parameter;
/// a missing one takes its default, or is an error if required, or stays absent;
/// each value must meet its parameter's rules. Returns the admitted values (defaults
/// filled, secrets marked) or every error found.
pub fn admit_request(
    blueprint: &Blueprint,
    given: &BTreeMap<String, Value>,
    input: Input,
) -> Result<BTreeMap<String, Value>, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = given
        .keys()
        .filter(|name| !blueprint.parameters.iter().any(|p| &p.name == *name))
        .map(|name| not_a_parameter(blueprint, name))
        .collect();
    let mut admitted = BTreeMap::new();
    for p in &blueprint.parameters {
        match given.get(&p.name) {
            None => match &p.default {
                Some(d) => {
                    admitted.insert(p.name.clone(), d.clone());
                }
                None if p.required => {
                    errors.push(FieldError::new(p.name.clone(), required_message(p)));
                }
                None => {}
            },
            Some(v) => match admit_one(p, v, input) {
                Ok(v) => {
                    admitted.insert(p.name.clone(), v);
                }
                Err(e) => errors.push(e),
            },
        }
    }
    if errors.is_empty() {
        Ok(admitted)
    } else {
        Err(errors)
    }
}

/// Checks a change to values admitted before: each changed value by its parameter's
/// rules (the error at its field), then the whole again as a request, so that the rules
/// of the version asked for apply to the values kept too. Kept values of parameters the
/// version no longer has are dropped.
pub fn admit_update(
    blueprint: &Blueprint,
    current: &BTreeMap<String, Value>,
    changes: &BTreeMap<String, Value>,
    input: Input,
) -> Result<BTreeMap<String, Value>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut merged = current.clone();
    merged.retain(|k, _| blueprint.parameters.iter().any(|p| &p.name == k));
    for (name, v) in changes {
        match blueprint.parameters.iter().find(|p| &p.name == name) {
            None => errors.push(not_a_parameter(blueprint, name)),
            Some(p) => match admit_one(p, v, input) {
                Ok(v) => {
                    merged.insert(name.clone(), v);
                }
                Err(e) => errors.push(e),
            },
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    admit_request(blueprint, &merged, Input::Json)
}

fn not_a_parameter(blueprint: &Blueprint, name: &str) -> FieldError {
    let known: Vec<&str> = blueprint
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    FieldError::new(
        name,
        format!(
            "`{name}` is not a parameter of {}@{} (its parameters: {})",
            blueprint.name,
            blueprint.version,
            known.join(", ")
        ),
    )
}

fn required_message(p: &Parameter) -> String {
    match p.ty {
        ParamType::List => match p.min {
            Some(n) if n > 0 && !p.values.is_empty() => {
                format!("choose at least {n} of: {}", p.values.join(", "))
            }
            _ => "is required".to_owned(),
        },
        ParamType::Enum => format!("choose one of: {}", p.values.join(", ")),
        _ => "is required".to_owned(),
    }
}

/// One value, its error located at the list item at fault where there is one.
fn admit_one(p: &Parameter, v: &Value, input: Input) -> Result<Value, FieldError> {
    let result = match input {
        Input::Json => p.admit_json(&v.to_json()),
        Input::Text => p.admit(v),
    };
    result.map_err(|message| {
        // Point at the offending item of a list, so a form can mark the choice.
        let field = match (p.ty, v) {
            (ParamType::List, Value::List(items)) => items
                .iter()
                .position(|item| item.as_str().is_none_or(|t| p.check_text(t).is_err()))
                .map(|i| format!("{}[{i}]", p.name))
                .unwrap_or_else(|| p.name.clone()),
            _ => p.name.clone(),
        };
        FieldError::new(field, message)
    })
}

/// The parameters as a JSON Schema (2020-12) object schema, `$id` the URL it is served at.
pub fn json_schema(blueprint: &Blueprint, id: &str) -> serde_json::Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for p in &blueprint.parameters {
        if p.required {
            required.push(json!(p.name));
        }
        properties.insert(p.name.clone(), parameter_schema(p));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": id,
        "title": format!("{}@{}", blueprint.name, blueprint.version),
        "description": blueprint.description,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// A parameter's label for forms: its title, or its name in words (`quotaSize` → "Quota
/// size").
pub fn label(p: &Parameter) -> String {
    if let Some(t) = &p.title {
        return t.clone();
    }
    let mut out = String::new();
    for (i, c) in p.name.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn parameter_schema(p: &Parameter) -> serde_json::Value {
    let mut s = serde_json::Map::new();
    s.insert("title".into(), json!(label(p)));
    if !p.description.is_empty() {
        s.insert("description".into(), json!(p.description));
    }
    let text_rules = |s: &mut serde_json::Map<String, serde_json::Value>| {
        if !p.values.is_empty() {
            s.insert("enum".into(), json!(p.values));
        }
        if let Some(pattern) = &p.pattern {
            s.insert("pattern".into(), json!(pattern));
        }
        if let Some(f) = &p.format {
            s.insert("format".into(), json!(f));
        }
    };
    match p.ty {
        ParamType::String | ParamType::Enum => {
            s.insert("type".into(), json!("string"));
            text_rules(&mut s);
            if let Some(n) = p.min {
                s.insert("minLength".into(), json!(n));
            }
            if let Some(n) = p.max {
                s.insert("maxLength".into(), json!(n));
            }
        }
        ParamType::Int => {
            s.insert("type".into(), json!("integer"));
            if let Some(n) = p.min {
                s.insert("minimum".into(), json!(n));
            }
            if let Some(n) = p.max {
                s.insert("maximum".into(), json!(n));
            }
        }
        ParamType::Bool => {
            s.insert("type".into(), json!("boolean"));
        }
        ParamType::List => {
            s.insert("type".into(), json!("array"));
            let mut items = serde_json::Map::new();
            items.insert("type".into(), json!("string"));
            text_rules(&mut items);
            s.insert("items".into(), items.into());
            if let Some(n) = p.min {
                s.insert("minItems".into(), json!(n));
            }
            if let Some(n) = p.max {
                s.insert("maxItems".into(), json!(n));
            }
        }
    }
    if p.secret {
        s.insert("writeOnly".into(), json!(true));
    }
    if let Some(d) = &p.default {
        // A secret's default is never shown.
        if !p.secret {
            s.insert("default".into(), d.to_redacted_json());
        }
    }
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = r#"
name: demo
version: 2.0.0
description: A request.
parameters:
  stages:
    type: list
    values: [dev, test, prod]
    min: 1
    description: Which stages.
  region:
    type: string
    pattern: "^[a-z0-9]+$"
    default: westeurope
  size:
    type: enum
    values: [small, large]
    default: small
  replicas:
    type: int
    min: 1
    max: 5
    default: 1
  owners:
    type: list
    format: member
    required: false
  password:
    type: string
    secret: true
    required: false
"#;

    fn blueprint() -> Blueprint {
        Blueprint::parse("demo.yaml", REQUEST).unwrap()
    }

    fn given(json: serde_json::Value) -> BTreeMap<String, Value> {
        match Value::from_json(json) {
            Value::Map(m) => m.into_iter().collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_fill_what_is_missing_and_optional_parameters_stay_absent() {
        let v = admit_request(
            &blueprint(),
            &given(json!({"stages": ["dev"]})),
            Input::Json,
        )
        .unwrap();
        assert_eq!(v["region"], Value::from("westeurope"));
        assert_eq!(v["replicas"], Value::Int(1));
        assert!(!v.contains_key("owners"));
    }

    #[test]
    fn every_error_is_reported_at_its_field() {
        let errors = admit_request(
            &blueprint(),
            &given(json!({
                "stages": ["dev", "staging"], "region": "West Europe", "size": "huge",
                "replicas": 9, "colour": "red"
            })),
            Input::Json,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["colour", "stages[1]", "region", "size", "replicas"],
            "{errors:?}"
        );
        assert!(
            errors[1]
                .message
                .contains("\"staging\" is not one of: dev, test, prod")
        );
        assert!(errors[4].message.contains("at most 5"));
    }

    #[test]
    fn a_required_parameter_is_named_when_missing() {
        let errors = admit_request(&blueprint(), &BTreeMap::new(), Input::Json).unwrap_err();
        assert_eq!(
            errors,
            [FieldError::new(
                "stages",
                "choose at least 1 of: dev, test, prod"
            )]
        );
    }

    #[test]
    fn json_requests_are_typed_and_text_is_coerced() {
        let bp = blueprint();
        let json = admit_request(
            &bp,
            &given(json!({"stages": "dev,test", "replicas": "2"})),
            Input::Json,
        )
        .unwrap_err();
        assert_eq!(json.len(), 2, "{json:?}");
        let text = admit_request(
            &bp,
            &given(json!({"stages": "dev,test", "replicas": "2"})),
            Input::Text,
        )
        .unwrap();
        assert_eq!(text["replicas"], Value::Int(2));
        assert_eq!(
            text["stages"],
            Value::List(vec![Value::from("dev"), Value::from("test")])
        );
    }

    #[test]
    fn secrets_come_back_sealed_and_their_defaults_stay_out_of_the_schema() {
        let v = admit_request(
            &blueprint(),
            &given(json!({"stages": ["dev"], "password": "hunter2"})),
            Input::Json,
        )
        .unwrap();
        assert!(matches!(v["password"], Value::Secret(_)));
        let schema = json_schema(&blueprint(), "https://x/schema");
        assert_eq!(schema["properties"]["password"]["writeOnly"], json!(true));
    }

    #[test]
    fn the_json_schema_says_what_admit_checks() {
        let schema = json_schema(&blueprint(), "https://paddock.example/schema");
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["required"], json!(["stages"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        let stages = &schema["properties"]["stages"];
        assert_eq!(stages["type"], "array");
        assert_eq!(stages["minItems"], 1);
        assert_eq!(stages["items"]["enum"], json!(["dev", "test", "prod"]));
        assert_eq!(schema["properties"]["replicas"]["maximum"], 5);
        assert_eq!(schema["properties"]["region"]["pattern"], "^[a-z0-9]+$");
        assert_eq!(schema["properties"]["owners"]["items"]["format"], "member");
        assert_eq!(schema["properties"]["size"]["default"], "small");
    }

    #[test]
    fn an_update_checks_what_changes_at_its_field_and_keeps_the_rest() {
        let bp = blueprint();
        let current = admit_request(
            &bp,
            &given(json!({"stages": ["dev"], "size": "large"})),
            Input::Json,
        )
        .unwrap();
        let v = admit_update(
            &bp,
            &current,
            &given(json!({"stages": "dev,prod"})),
            Input::Text,
        )
        .unwrap();
        assert_eq!(v["size"], Value::from("large"));
        assert_eq!(
            v["stages"],
            Value::List(vec![Value::from("dev"), Value::from("prod")])
        );
        let errors = admit_update(
            &bp,
            &current,
            &given(json!({"region": "North Europe", "colour": "red"})),
            Input::Json,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["colour", "region"]);
    }

    #[test]
    fn labels_are_words() {
        let bp = blueprint();
        assert_eq!(label(&bp.parameters[3]), "Replicas");
        let mut p = bp.parameters[0].clone();
        p.name = "quotaSize".into();
        assert_eq!(label(&p), "Quota size");
    }
}
