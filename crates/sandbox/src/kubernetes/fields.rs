//! `fieldValidation` on create, update, patch and apply: unknown fields (against the
//! kind's schema) and duplicate fields (in the body as sent). `Strict` refuses the request
//! with a 400 naming every one; `Warn` (the default) answers with a `Warning` header per
//! field; `Ignore` says nothing. Either way an unknown field is dropped, as the API server
//! drops what its types do not declare.

use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::kinds::Kind;
use super::openapi::{DEFINITIONS, Definitions};
use super::{KubeError, query};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Strict,
    Warn,
    Ignore,
}

/// What field validation found in a request body, and the body to go on with.
pub(super) struct Checked {
    warnings: Vec<String>,
    pub body: Vec<u8>,
}

impl Checked {
    /// Adds the `Warning` headers (`299 - "unknown field \"spec.foo\""`) to an answer.
    pub fn warn(&self, mut response: Response) -> Response {
        for w in &self.warnings {
            let text = format!("299 - {:?}", w);
            if let Ok(v) = HeaderValue::from_str(&text) {
                response.headers_mut().append("warning", v);
            }
        }
        response
    }
}

/// Checks a write's body. `patch` says the body is a merge or strategic-merge patch:
/// its `$`-directives are not fields, a `null` removes rather than sets.
pub(super) fn check(
    uri: &Uri,
    kind: &Kind,
    content_type: &str,
    body: &[u8],
) -> Result<Checked, KubeError> {
    let mode = match query(uri, "fieldValidation").as_deref() {
        None | Some("") | Some("Warn") => Mode::Warn,
        Some("Strict") => Mode::Strict,
        Some("Ignore") => Mode::Ignore,
        Some(other) => {
            return Err(KubeError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}; valid values are Ignore, Warn and Strict"
            )));
        }
    };
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let patch = media.contains("merge-patch");
    let apply = media == "application/apply-patch+yaml";
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        // Not JSON: the handler reports it as it always has.
        return Ok(Checked {
            warnings: Vec::new(),
            body: body.to_vec(),
        });
    };
    let mut problems = Vec::new();
    let mut duplicates = Vec::new();
    let _ = Duplicates {
        path: String::new(),
        out: &mut duplicates,
    }
    .deserialize(&mut serde_json::Deserializer::from_slice(body));
    let mut unknown = Vec::new();
    if let Some(schema) = DEFINITIONS.of(kind.group, kind.version, kind.kind) {
        prune(&DEFINITIONS, schema, &mut object, "", patch, &mut unknown);
    }
    problems.extend(unknown.iter().map(|f| format!("unknown field {f:?}")));
    problems.extend(duplicates.iter().map(|f| format!("duplicate field {f:?}")));
    if mode == Mode::Strict && !problems.is_empty() {
        let message = if apply {
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!(".{f}: field not declared in schema"))
                .collect();
            format!(
                "failed to create typed patch object ({}, Kind={}): {}",
                gv(kind),
                kind.kind,
                if fields.is_empty() {
                    problems.join(", ")
                } else {
                    fields.join(", ")
                }
            )
        } else {
            format!(
                "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
                kind.kind,
                kind.version,
                kind.kind,
                problems.join(", ")
            )
        };
        return Err(KubeError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            message,
        ));
    }
    let body = if unknown.is_empty() {
        body.to_vec()
    } else {
        serde_json::to_vec(&object).expect("a value serializes")
    };
    Ok(Checked {
        warnings: if mode == Mode::Warn {
            problems
        } else {
            Vec::new()
        },
        body,
    })
}

fn gv(kind: &Kind) -> String {
    if kind.group.is_empty() {
        format!("/{}", kind.version)
    } else {
        format!("{}/{}", kind.group, kind.version)
    }
}

/// Removes the fields `schema` does not declare from `value`, recording their paths
/// (`spec.template.spec.containers[0].foo`).
fn prune(
    defs: &Definitions,
    schema: &Value,
    value: &mut Value,
    path: &str,
    patch: bool,
    out: &mut Vec<String>,
) {
    let schema = defs.resolve(schema);
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none() && extra.is_none() {
                // A free-form object (`FieldsV1`, a `Patch`): anything goes.
                return;
            }
            let mut drop = Vec::new();
            for (key, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if patch && (key.starts_with('$') || child.is_null()) {
                    continue;
                }
                match props.and_then(|p| p.get(key)).or(extra) {
                    Some(s) => prune(defs, s, child, &child_path, patch, out),
                    None => {
                        out.push(child_path);
                        drop.push(key.clone());
                    }
                }
            }
            for key in drop {
                map.remove(&key);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(defs, item_schema, item, &format!("{path}[{i}]"), patch, out);
                }
            }
        }
        _ => {}
    }
}

/// Walks a JSON document as the decoder reads it, noting keys that appear twice in one
/// object (which `serde_json::Value` would silently collapse).
struct Duplicates<'a> {
    path: String,
    out: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Duplicates<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Duplicates<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                self.out.push(path.clone());
            }
            map.next_value_seed(Duplicates {
                path,
                out: self.out,
            })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(Duplicates {
                path: format!("{}[{i}]", self.path),
                out: self.out,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmap() -> &'static Kind {
        super::super::kinds::KINDS
            .iter()
            .find(|k| k.kind == "ConfigMap")
            .unwrap()
    }

    #[test]
    fn strict_names_unknown_and_duplicate_fields() {
        let uri: Uri = "/api/v1/namespaces/a/configmaps?fieldValidation=Strict"
            .parse()
            .unwrap();
        let body = br#"{"metadata":{"name":"x","nam":"y"},"data":{"a":"1"},"spec":{"foo":1},"data":{"b":"2"}}"#;
        let e = check(&uri, configmap(), "application/json", body)
            .err()
            .unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"metadata.nam\", unknown field \"spec\", duplicate field \"data\""
        );
    }

    #[test]
    fn warn_drops_unknown_fields_and_says_so() {
        let uri: Uri = "/api/v1/namespaces/a/configmaps".parse().unwrap();
        let body = br#"{"metadata":{"name":"x","labels":{"any":"label"},"managedFields":[{"fieldsV1":{"f:data":{}}}]},"data":{"a":"1"},"extra":true}"#;
        let c = check(&uri, configmap(), "application/json", body).unwrap();
        assert_eq!(c.warnings, vec!["unknown field \"extra\"".to_owned()]);
        let kept: Value = serde_json::from_slice(&c.body).unwrap();
        assert!(kept.get("extra").is_none());
        assert_eq!(kept["metadata"]["labels"]["any"], "label");
        assert!(kept["metadata"]["managedFields"][0]["fieldsV1"]["f:data"].is_object());
    }

    #[test]
    fn a_patchs_directives_and_removals_are_not_unknown_fields() {
        let uri: Uri = "/api/v1/namespaces/a/configmaps/x?fieldValidation=Strict"
            .parse()
            .unwrap();
        let body = br#"{"$setElementOrder/data":[],"data":{"a":null},"immutable":null}"#;
        check(
            &uri,
            configmap(),
            "application/strategic-merge-patch+json",
            body,
        )
        .unwrap();
    }
}
