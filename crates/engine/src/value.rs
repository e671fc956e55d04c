//! Property values: JSON-like data that remembers which parts are secret and which are
//! not yet known (planned values that depend on outputs of resources still to be created).

use std::collections::BTreeMap;
use std::fmt;

/// Properties of a resource, or outputs of a stack: a map ordered by key, so that plans,
/// hashes and stored state are stable.
pub type Props = BTreeMap<String, Value>;

/// A property value.
///
/// `Secret` marks a value that must never be printed or stored in clear; it survives
/// interpolation (a string built from a secret is a secret). `Unknown` appears only in
/// plans: a value that will be known after apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(Props),
    Secret(Box<Value>),
    Unknown,
}

/// What a redacted rendering shows in place of a secret.
pub const SECRET_PLACEHOLDER: &str = "[secret]";
/// What a redacted rendering shows in place of a value only known after apply.
pub const UNKNOWN_PLACEHOLDER: &str = "(known after apply)";

impl Value {
    pub fn secret(v: Value) -> Value {
        match v {
            Value::Secret(_) => v,
            other => Value::Secret(Box::new(other)),
        }
    }

    /// The value with every secret wrapper removed, for handing to a provider.
    pub fn reveal(&self) -> Value {
        match self {
            Value::Secret(v) => v.reveal(),
            Value::List(items) => Value::List(items.iter().map(Value::reveal).collect()),
            Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), v.reveal())).collect()),
            other => other.clone(),
        }
    }

    /// True if the value or any part of it is secret.
    pub fn contains_secret(&self) -> bool {
        match self {
            Value::Secret(_) => true,
            Value::List(items) => items.iter().any(Value::contains_secret),
            Value::Map(m) => m.values().any(Value::contains_secret),
            _ => false,
        }
    }

    /// True if the value or any part of it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::Secret(v) => v.contains_unknown(),
            Value::List(items) => items.iter().any(Value::contains_unknown),
            Value::Map(m) => m.values().any(Value::contains_unknown),
            _ => false,
        }
    }

    /// The kind of value, as named in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Secret(v) => v.kind(),
            Value::Unknown => "unknown",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Secret(v) => v.as_str(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Secret(v) => v.as_i64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Secret(v) => v.as_bool(),
            _ => None,
        }
    }

    /// Follows a path of map keys and list indexes. Secrecy is inherited: a field of a
    /// secret is a secret; a field of an unknown is unknown.
    pub fn get_path(&self, path: &[String]) -> Option<Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self.clone());
        };
        match self {
            Value::Secret(inner) => inner.get_path(path).map(Value::secret),
            Value::Unknown => Some(Value::Unknown),
            Value::Map(m) => m.get(first)?.get_path(rest),
            Value::List(items) => items.get(first.parse::<usize>().ok()?)?.get_path(rest),
            _ => None,
        }
    }

    /// Text used when the value is spliced into a larger string.
    pub fn to_interpolated_string(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Secret(v) => v.to_interpolated_string(),
            Value::Null => String::new(),
            other => other.reveal().to_json().to_string(),
        }
    }

    /// Plain JSON with secrets revealed: only for providers and for encryption.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null | Value::Unknown => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Secret(v) => v.to_json(),
        }
    }

    /// JSON safe to print or return: secrets and unknowns replaced by placeholders.
    pub fn to_redacted_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Secret(_) => J::String(SECRET_PLACEHOLDER.into()),
            Value::Unknown => J::String(UNKNOWN_PLACEHOLDER.into()),
            Value::List(items) => J::Array(items.iter().map(Value::to_redacted_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.to_redacted_json()))
                    .collect(),
            ),
            other => other.to_json(),
        }
    }

    pub fn from_json(json: serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or_default())),
            J::String(s) => Value::String(s),
            J::Array(items) => Value::List(items.into_iter().map(Value::from_json).collect()),
            J::Object(m) => Value::Map(
                m.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for Value {
    /// Redacted, compact rendering for plans and progress lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Secret(_) => f.write_str(SECRET_PLACEHOLDER),
            Value::Unknown => f.write_str(UNKNOWN_PLACEHOLDER),
            Value::String(s) => write!(f, "{s:?}"),
            other => write!(f, "{}", other.to_redacted_json()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Props with secrets revealed, as plain JSON, for provider calls.
pub fn reveal_props(props: &Props) -> Props {
    props.iter().map(|(k, v)| (k.clone(), v.reveal())).collect()
}

/// Props rendered safe to print.
pub fn redacted_props(props: &Props) -> serde_json::Value {
    serde_json::Value::Object(
        props
            .iter()
            .map(|(k, v)| (k.clone(), v.to_redacted_json()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_of_a_secret_is_a_secret() {
        let v = Value::secret(Value::Map(Props::from([("k".into(), "v".into())])));
        assert_eq!(v.get_path(&["k".into()]), Some(Value::secret("v".into())));
    }

    #[test]
    fn redaction_hides_secrets_at_any_depth() {
        let v = Value::List(vec![Value::secret("hunter2".into()), "plain".into()]);
        let shown = v.to_redacted_json().to_string();
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains(SECRET_PLACEHOLDER));
        assert_eq!(format!("{}", Value::secret("hunter2".into())), "[secret]");
    }
}
