//! Contract checks against an official API description — Swagger 2.0 (ARM) or OpenAPI 3.0
//! (GitHub): requests and responses are validated with a JSON Schema validator against the
//! operation's declared schemas, and the status must be one the operation declares.
//! OpenAPI 3.0's `nullable` is read as JSON Schema's `null` type.

use serde_json::{Value, json};

pub struct Spec {
    name: String,
    doc: Value,
}

impl Spec {
    /// Loads a description shipped in `crates/sandbox/specs/`.
    pub fn load(relative: &str) -> Spec {
        let path = format!("{}/specs/{relative}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Spec {
            name: relative.into(),
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    /// `(path template, method, operation)` of an operationId.
    pub fn operation(&self, id: &str) -> (&str, &str, &Value) {
        for (path, ops) in self.doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("path item") {
                if op.get("operationId").and_then(Value::as_str) == Some(id) {
                    return (path, method, op);
                }
            }
        }
        panic!("{}: no operation {id}", self.name)
    }

    /// Every operationId the description declares.
    pub fn operation_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(_, ops)| ops.as_object().into_iter().flatten())
            .filter_map(|(_, op)| op.get("operationId")?.as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/"))
        {
            Some(pointer) => self
                .doc
                .pointer(&format!("/{pointer}"))
                .expect("local $ref resolves"),
            None => v,
        }
    }

    fn is_openapi(&self) -> bool {
        self.doc.get("openapi").is_some()
    }

    fn validate(&self, what: &str, schema: &Value, instance: &Value) -> Result<(), String> {
        let mut root = nullable_to_null(schema);
        if self.is_openapi() {
            root["components"] = nullable_to_null(&self.doc["components"]);
        } else {
            root["definitions"] = self.doc["definitions"].clone();
        }
        let validator = jsonschema::draft4::new(&root)
            .map_err(|e| format!("{}: {what}: bad schema: {e}", self.name))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}: {what} does not match the schema:\n  {}\n{instance:#}",
                self.name,
                errors.join("\n  ")
            ))
        }
    }

    /// The request body against the operation's body schema.
    pub fn check_request(&self, id: &str, body: &Value) -> Result<(), String> {
        let (_, _, op) = self.operation(id);
        let schema = if self.is_openapi() {
            self.resolve(&op["requestBody"])["content"]["application/json"]["schema"].clone()
        } else {
            let param = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| self.resolve(p))
                .find(|p| p["in"] == "body")
                .ok_or_else(|| format!("{id} takes no body"))?;
            param["schema"].clone()
        };
        if schema.is_null() {
            return Err(format!("{id} takes no body"));
        }
        self.validate(&format!("{id} request"), &schema, body)
    }

    /// The status must be declared (errors may fall to `default`) and the body must match
    /// the declared schema, if any.
    pub fn check_response(&self, id: &str, status: u16, body: &Value) -> Result<(), String> {
        let (_, _, op) = self.operation(id);
        let responses = &op["responses"];
        let declared = responses
            .get(status.to_string())
            .or_else(|| (status >= 400).then(|| responses.get("default")).flatten());
        // GitHub's descriptions leave out many error statuses; its errors all have the
        // shape of its `basic-error` (or `validation-error`) component.
        if declared.is_none() && status >= 400 && self.is_openapi() {
            let error = if status == 422 {
                "validation-error"
            } else {
                "basic-error"
            };
            let schema = json!({"$ref": format!("#/components/schemas/{error}")});
            if self.doc["components"]["schemas"].get(error).is_some() {
                return self.validate(&format!("{id} {status} error"), &schema, body);
            }
        }
        let response = declared.ok_or_else(|| {
            format!(
                "{id}: status {status} is not declared (declared: {})",
                json!(responses.as_object().map(|r| r.keys().collect::<Vec<_>>()))
            )
        })?;
        let response = self.resolve(response);
        let schema = if self.is_openapi() {
            response["content"]["application/json"].get("schema")
        } else {
            response.get("schema")
        };
        match schema {
            Some(schema) => self.validate(&format!("{id} {status} response"), schema, body),
            None => Ok(()),
        }
    }

    /// The request path matches the operation's template (ARM's are case-insensitive;
    /// `{scope}` — ARM's `x-ms-skip-url-encoding` scope — and `{path}` — GitHub's file
    /// path — stand for one or more segments).
    pub fn check_path(&self, id: &str, path: &str) -> Result<(), String> {
        fn matches(t: &[&str], p: &[&str]) -> bool {
            match (t.split_first(), p.split_first()) {
                (None, None) => true,
                (Some((&("{scope}" | "{path}"), t_rest)), Some(_)) => {
                    (1..=p.len()).any(|n| matches(t_rest, &p[n..]))
                }
                (Some((t0, t_rest)), Some((p0, p_rest))) => {
                    ((t0.starts_with('{') && t0.ends_with('}')) || t0.eq_ignore_ascii_case(p0))
                        && matches(t_rest, p_rest)
                }
                _ => false,
            }
        }
        let (template, _, _) = self.operation(id);
        let t: Vec<&str> = template.trim_matches('/').split('/').collect();
        let p: Vec<&str> = path.trim_matches('/').split('/').collect();
        if matches(&t, &p) {
            Ok(())
        } else {
            Err(format!("{id}: path {path} does not match {template}"))
        }
    }
}

/// OpenAPI 3.0's `nullable: true`, as JSON Schema says it; and `oneOf` read as `anyOf`,
/// as OpenAPI tools do (GitHub's descriptions list overlapping alternatives, e.g. two
/// error shapes a plain error matches both of).
fn nullable_to_null(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out: serde_json::Map<String, Value> = m
                .iter()
                .filter(|(k, _)| *k != "nullable" && *k != "discriminator")
                .map(|(k, v)| {
                    (
                        if k == "oneOf" {
                            "anyOf".to_owned()
                        } else {
                            k.clone()
                        },
                        nullable_to_null(v),
                    )
                })
                .collect();
            if m.get("nullable") == Some(&Value::Bool(true)) {
                match out.get("type").cloned() {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                        if let Some(Value::Array(e)) = out.get_mut("enum") {
                            e.push(Value::Null);
                        }
                    }
                    _ => return json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(nullable_to_null).collect()),
        other => other.clone(),
    }
}
