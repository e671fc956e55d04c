//! Property values: JSON-like data that remembers which parts are secret and which are
//! not yet known (planned values that depend on outputs of resources still to be created).

use std::fmt;

/// Properties of a resource, or outputs of a stack: a map ordered by key, so that plans,
/// hashes and stored state are stable.
pub type Props = SortedMap<Value>;

/// A map with string keys, ordered by key.
///
/// A sorted vector rather than a `BTreeMap`: resources have a handful of properties, and a
/// B-tree node costs ~700 bytes however few it holds. Large stacks hold tens of thousands
/// of these; compact maps keep plans fast where caches run out.
#[derive(Clone, Debug, PartialEq)]
pub struct SortedMap<V>(Vec<(String, V)>);

/// Iterator over a [`SortedMap`]'s entries, in key order.
pub type MapIter<'a, V> =
    std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> (&'a String, &'a V)>;

impl<V> Default for SortedMap<V> {
    fn default() -> Self {
        SortedMap(Vec::new())
    }
}

impl<V> SortedMap<V> {
    pub fn new() -> SortedMap<V> {
        SortedMap(Vec::new())
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.position(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key`, returning the value it replaced.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> MapIter<'_, V> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl<V> FromIterator<(String, V)> for SortedMap<V> {
    /// Later entries win over earlier ones with the same key, as with a map.
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> SortedMap<V> {
        let mut entries: Vec<(String, V)> = iter.into_iter().collect();
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            entries.reverse();
            entries.sort_by(|a, b| a.0.cmp(&b.0)); // stable: the last of equal keys first
            entries.dedup_by(|later, first| later.0 == first.0);
        }
        SortedMap(entries)
    }
}

impl<V> Extend<(String, V)> for SortedMap<V> {
    fn extend<I: IntoIterator<Item = (String, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<V, const N: usize> From<[(String, V); N]> for SortedMap<V> {
    fn from(entries: [(String, V); N]) -> SortedMap<V> {
        entries.into_iter().collect()
    }
}

impl<V> IntoIterator for SortedMap<V> {
    type Item = (String, V);
    type IntoIter = std::vec::IntoIter<(String, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a SortedMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = MapIter<'a, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<V> std::ops::Index<&str> for SortedMap<V> {
    type Output = V;
    /// Panics if `key` is absent, as a map's index does.
    fn index(&self, key: &str) -> &V {
        self.get(key).unwrap_or_else(|| panic!("no entry `{key}`"))
    }
}

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
    fn props_keep_keys_sorted_and_unique_and_the_last_value_wins() {
        let p: Props = [("b", 1), ("a", 2), ("b", 3)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::Int(v)))
            .collect();
        assert_eq!(p.keys().cloned().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(p["b"], Value::Int(3));
        let mut q = p.clone();
        assert_eq!(q.insert("c".into(), Value::Null), None);
        assert_eq!(q.insert("a".into(), Value::Int(9)), Some(Value::Int(2)));
        assert_eq!(q.remove("b"), Some(Value::Int(3)));
        assert_eq!(
            q.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

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
