//! Writes that merge: JSON merge patch (RFC 7386, also used for strategic merge patch,
//! whose list strategies the sandbox's kinds do not need), and server-side apply with
//! field ownership kept in `metadata.managedFields` as `FieldsV1` sets.
//!
//! Lists are atomic, as they are for every list in the kinds the sandbox serves that has
//! no merge key Paddock relies on: an applier owns a list whole.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// A field path: object keys from the root.
pub(super) type FieldPath = Vec<String>;

/// Fields that identify the object or that the server keeps, rather than configure it;
/// nobody owns them.
fn is_identity(path: &[String]) -> bool {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(
        path.as_slice(),
        ["apiVersion"]
            | ["kind"]
            | [
                "metadata",
                "name" | "namespace" | "uid" | "resourceVersion" | "generation"
            ]
            | [
                "metadata",
                "creationTimestamp" | "deletionTimestamp" | "generateName"
            ]
            | ["metadata", "managedFields", ..]
            | ["status", ..]
    )
}

/// RFC 7386: `null` removes, objects merge key by key, anything else replaces.
pub(super) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The leaf fields a configuration sets (scalars, lists and empty objects are leaves).
pub(super) fn fields_of(config: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !is_identity(path) {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(config, &mut Vec::new(), &mut out);
    out
}

/// A field set in Kubernetes' `FieldsV1` form: `{"f:spec": {"f:hard": {"f:pods": {}}}}`.
pub(super) fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in fields {
        let mut node = &mut root;
        for key in path {
            node = node
                .as_object_mut()
                .expect("fields nodes are objects")
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}));
        }
    }
    root
}

/// The leaf fields of a `FieldsV1` set (`.` entries and non-`f:` keys are skipped).
pub(super) fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let children: Vec<_> = v
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, c)| k.strip_prefix("f:").map(|k| (k, c)))
            .collect();
        if children.is_empty() {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            return;
        }
        for (k, child) in children {
            path.push(k.to_owned());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

pub(super) fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// Removes a field, and the objects left empty above it.
pub(super) fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    if let Some(Value::Object(parent)) = parents.iter().try_fold(&mut *v, |v, k| v.get_mut(k)) {
        parent.remove(last);
    }
    if !parents.is_empty()
        && get_path(v, parents).is_some_and(|p| p.as_object().is_some_and(Map::is_empty))
    {
        remove_path(v, parents);
    }
}

/// One manager's claim on fields, as `metadata.managedFields` records it.
#[derive(Clone, Debug)]
pub(super) struct Ownership {
    pub manager: String,
    pub operation: String,
    pub fields: BTreeSet<FieldPath>,
    pub entry: Value,
}

pub(super) fn ownerships(object: &Value) -> Vec<Ownership> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Ownership {
            manager: e["manager"].as_str().unwrap_or_default().to_owned(),
            operation: e["operation"].as_str().unwrap_or_default().to_owned(),
            fields: from_fields_v1(&e["fieldsV1"]),
            entry: e.clone(),
        })
        .collect()
}

/// A field another manager owns with a different value.
#[derive(Debug)]
pub(super) struct Conflict {
    pub manager: String,
    pub field: String,
}

/// Server-side apply of `config` by `manager` onto `live` (an object that exists):
/// fields the manager applied before and no longer does are removed unless someone else
/// owns them; fields another manager owns with another value conflict unless `force`,
/// which takes them over. Returns the merged object, `managedFields` included.
pub(super) fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
    api_version: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied = fields_of(config);
    let mut owners = ownerships(live);
    let mut conflicts = Vec::new();
    for owner in owners.iter_mut().filter(|o| o.manager != manager) {
        let contested: Vec<FieldPath> = owner
            .fields
            .iter()
            .filter(|f| applied.contains(*f) && get_path(live, f) != get_path(config, f))
            .cloned()
            .collect();
        if force {
            for f in &contested {
                owner.fields.remove(f);
            }
        } else {
            conflicts.extend(contested.into_iter().map(|f| Conflict {
                manager: owner.manager.clone(),
                field: format!(".{}", f.join(".")),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut merged = live.clone();
    let before: BTreeSet<FieldPath> = owners
        .iter()
        .find(|o| o.manager == manager && o.operation == "Apply")
        .map(|o| o.fields.clone())
        .unwrap_or_default();
    for dropped in before.difference(&applied) {
        let kept_by_other = owners
            .iter()
            .any(|o| o.manager != manager && o.fields.contains(dropped));
        if !kept_by_other {
            remove_path(&mut merged, dropped);
        }
    }
    merge_patch(&mut merged, &strip_nulls(config));
    let mut entries: Vec<Value> = owners
        .into_iter()
        .filter(|o| !(o.fields.is_empty() || o.manager == manager && o.operation == "Apply"))
        .map(|o| {
            let mut entry = o.entry;
            entry["fieldsV1"] = to_fields_v1(&o.fields);
            entry
        })
        .collect();
    entries.push(managed_entry(manager, "Apply", &applied, now, api_version));
    merged["metadata"]["managedFields"] = Value::Array(entries);
    Ok(merged)
}

/// Ownership after an update (`PUT` or a merge patch) by `manager`: it takes every field
/// whose value it changed or added, as the API server records it (updates never
/// conflict); fields the update removed leave every manager.
pub(super) fn update_ownership(
    old: &Value,
    new: &Value,
    manager: &str,
    now: &str,
    api_version: &str,
) -> Value {
    let present = fields_of(new);
    let changed: BTreeSet<FieldPath> = present
        .iter()
        .filter(|f| get_path(old, f) != get_path(new, f))
        .cloned()
        .collect();
    let mut mine = changed.clone();
    let mut entries = Vec::new();
    for owner in ownerships(old) {
        let kept: BTreeSet<FieldPath> = owner
            .fields
            .into_iter()
            .filter(|f| present.contains(f) && !changed.contains(f))
            .collect();
        if owner.manager == manager && owner.operation == "Update" {
            mine.extend(kept);
        } else if !kept.is_empty() {
            let mut entry = owner.entry;
            entry["fieldsV1"] = to_fields_v1(&kept);
            entries.push(entry);
        }
    }
    if !mine.is_empty() {
        entries.push(managed_entry(manager, "Update", &mine, now, api_version));
    }
    Value::Array(entries)
}

/// The `managedFields` entry of one manager.
pub(super) fn managed_entry(
    manager: &str,
    operation: &str,
    fields: &BTreeSet<FieldPath>,
    now: &str,
    api_version: &str,
) -> Value {
    json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(fields),
    })
}

/// An applied configuration's explicit nulls mean "unset", not "remove someone's field".
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let mut v = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        merge_patch(&mut v, &json!({"a": {"b": null, "c": [3]}, "e": "x"}));
        assert_eq!(v, json!({"a": {"c": [3]}, "d": 1, "e": "x"}));
    }

    #[test]
    fn fields_round_trip_through_fields_v1() {
        let config = json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "labels": {"team": "a"}},
            "spec": {"hard": {"pods": "10", "secrets": "5"}}});
        let fields = fields_of(&config);
        assert_eq!(fields.len(), 3, "{fields:?}");
        assert_eq!(from_fields_v1(&to_fields_v1(&fields)), fields);
    }

    #[test]
    fn reapplying_without_a_field_removes_it_unless_another_manager_owns_it() {
        let live =
            json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "secrets": "5"}}});
        let first = apply(&live, &live, "paddock", false, "t", "v1").unwrap();
        let second = apply(
            &first,
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10"}}}),
            "paddock",
            false,
            "t",
            "v1",
        )
        .unwrap();
        assert_eq!(second["spec"]["hard"], json!({"pods": "10"}));

        let conflict = apply(
            &second,
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "20"}}}),
            "someone-else",
            false,
            "t",
            "v1",
        )
        .unwrap_err();
        assert_eq!(conflict[0].manager, "paddock");
        assert_eq!(conflict[0].field, ".spec.hard.pods");
        let forced = apply(
            &second,
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "20"}}}),
            "someone-else",
            true,
            "t",
            "v1",
        )
        .unwrap();
        assert_eq!(forced["spec"]["hard"]["pods"], "20");
        let owners = ownerships(&forced);
        assert_eq!(owners.len(), 1, "paddock lost its only field: {owners:?}");
    }
}
