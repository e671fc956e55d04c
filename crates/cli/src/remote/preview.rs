//! A dry run's answer for people: what creating or changing an environment would do, per
//! stack and per system, each changed resource with its property diffs (`old → new`),
//! read the way `terraform plan` and `pulumi preview` are read.
//!
//! It renders the server's `PreviewView` as it comes (`--json` prints it unchanged);
//! secret values arrive as `[secret]` and stay so.

use std::fmt::Write;

use serde_json::Value;

use super::s;

/// The kinds of change, in the order they are counted.
const CHANGES: [&str; 4] = ["create", "update", "replace", "delete"];

/// Whether the preview changes anything.
pub(super) fn has_changes(p: &Value) -> bool {
    CHANGES
        .iter()
        .any(|k| p["counts"][k].as_u64().unwrap_or(0) > 0)
}

/// The whole preview: the parameters as they would be, each stack and each system with
/// its counts and changes, and the totals.
pub(super) fn render(p: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Environment {}/{} (environment@{}):",
        s(&p["team"]),
        s(&p["environment"]),
        s(&p["blueprintVersion"])
    );
    let params: Vec<String> = p["parameters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {}", parameter(v)))
        .collect();
    if !params.is_empty() {
        let _ = writeln!(out, "  {}", params.join("   "));
    }
    for st in p["stacks"].as_array().into_iter().flatten() {
        let mut about: Vec<String> = Vec::new();
        if let Some(stage) = st["stage"].as_str() {
            about.push(format!("stage {stage}"));
        }
        if s(&st["action"]) == "destroy" {
            about.push("destroyed".into());
        }
        let about = if about.is_empty() {
            String::new()
        } else {
            format!(" ({})", about.join(", "))
        };
        let _ = writeln!(
            out,
            "\n{}{about}: {}",
            s(&st["stack"]),
            counts(&st["counts"])
        );
        for sys in st["systems"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  {}: {}", s(&sys["system"]), counts(&sys["counts"]));
            for c in sys["changes"].as_array().into_iter().flatten() {
                change(&mut out, c);
            }
        }
    }
    let totals: Vec<String> = CHANGES
        .iter()
        .map(|k| format!("{} to {k}", p["counts"][k].as_u64().unwrap_or(0)))
        .collect();
    let _ = writeln!(out, "\nPlan: {}.", totals.join(", "));
    out
}

/// One changed resource: `+ create  name (type)`, then its property diffs.
fn change(out: &mut String, c: &Value) {
    let kind = s(&c["kind"]);
    let symbol = match kind {
        "create" => "+",
        "update" => "~",
        "replace" => "-/+",
        "delete" => "-",
        _ => " ",
    };
    let forcing: Vec<&str> = diffs(c)
        .filter(|d| d["forcesReplace"] == true)
        .map(|d| s(&d["property"]))
        .collect();
    let why = if kind == "replace" && !forcing.is_empty() {
        format!("  ({} forces replacement)", forcing.join(", "))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "    {symbol:>3} {kind:<7}  {} ({}){why}",
        s(&c["name"]),
        s(&c["type"])
    );
    for d in diffs(c) {
        diff(out, s(&d["property"]), &d["old"], &d["new"]);
    }
}

/// One property's change as lines: `property: new` (made), `property: old → new`, or
/// `property: old → (none)`; a map changed in place key by key (`hard["pods"]: …`), only
/// the keys that differ.
fn diff(out: &mut String, property: &str, old: &Value, new: &Value) {
    let _ = match (old, new) {
        (Value::Null, Value::Null) => Ok(()),
        (Value::Object(o), Value::Object(n)) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (o, n) = (&o.get(k), &n.get(k));
                if o != n {
                    let (o, n) = (o.unwrap_or(&Value::Null), n.unwrap_or(&Value::Null));
                    diff(
                        out,
                        &format!("{property}[{}]", Value::from(k.as_str())),
                        o,
                        n,
                    );
                }
            }
            Ok(())
        }
        (Value::Null, new) => writeln!(out, "          {property}: {}", value(new)),
        (old, Value::Null) => writeln!(out, "          {property}: {} → (none)", value(old)),
        (old, new) => writeln!(out, "          {property}: {} → {}", value(old), value(new)),
    };
}

fn diffs(c: &Value) -> impl Iterator<Item = &Value> {
    c["diffs"].as_array().into_iter().flatten()
}

/// `1 to create, 2 to update`, with `3 unchanged` after, or `no changes`.
fn counts(c: &Value) -> String {
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let mut parts: Vec<String> = CHANGES
        .iter()
        .filter(|k| n(k) > 0)
        .map(|k| format!("{} to {k}", n(k)))
        .collect();
    if parts.is_empty() {
        parts.push("no changes".into());
    }
    if n("same") > 0 {
        parts.push(format!("{} unchanged", n("same")));
    }
    parts.join(", ")
}

/// A property's value: JSON, except the placeholders for secrets and values known only
/// after apply, shown bare.
fn value(v: &Value) -> String {
    match v.as_str() {
        Some(p @ ("[secret]" | "(known after apply)")) => p.to_owned(),
        _ => v.to_string(),
    }
}

/// A parameter's value as people type it: a list comma-separated (`-` if empty).
fn parameter(v: &Value) -> String {
    match v {
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(parameter).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_preview_reads_per_stack_and_per_system() {
        let zero = json!({"create": 0, "update": 0, "replace": 0, "delete": 0, "same": 0});
        let with = |k: &str, n: u64| {
            let mut c = zero.clone();
            c[k] = json!(n);
            c
        };
        let p = json!({
            "team": "payments", "environment": "checkout", "blueprintVersion": "1.1.0",
            "parameters": {"admins": ["ada"], "contributors": [], "quota": "large", "stages": ["test"]},
            "counts": {"create": 0, "update": 1, "replace": 1, "delete": 2, "same": 3},
            "stacks": [
                {"stack": "payments-checkout", "stage": null, "action": "up", "hash": "sha256:1",
                 "counts": with("same", 3), "systems": [
                    {"system": "GitHub", "counts": with("same", 3), "changes": []}]},
                {"stack": "payments-checkout-test", "stage": "test", "action": "up", "hash": "sha256:2",
                 "counts": {"create": 0, "update": 1, "replace": 1, "delete": 0, "same": 0}, "systems": [
                    {"system": "Kubernetes", "counts": {"create": 0, "update": 1, "replace": 1, "delete": 0, "same": 0},
                     "changes": [
                        {"name": "quota", "type": "kubernetes:resourceQuota", "kind": "update", "diffs": [
                            {"property": "hard", "old": {"pods": "20", "cpu": "1"}, "new": {"pods": "60", "cpu": "1", "requests.cpu": "4"}, "forcesReplace": false}]},
                        {"name": "token", "type": "kubernetes:serviceAccountToken", "kind": "replace", "diffs": [
                            {"property": "serviceAccount", "old": "a", "new": "b", "forcesReplace": true},
                            {"property": "value", "old": "[secret]", "new": "(known after apply)", "forcesReplace": false}]}]}]},
                {"stack": "payments-checkout-dev", "stage": "dev", "action": "destroy", "hash": "sha256:3",
                 "counts": with("delete", 2), "systems": [
                    {"system": "Azure", "counts": with("delete", 2), "changes": [
                        {"name": "resourceGroup", "type": "azure:resourceGroup", "kind": "delete", "diffs": []},
                        {"name": "lock", "type": "azure:lock", "kind": "delete", "diffs": [
                            {"property": "level", "old": "CanNotDelete", "new": null, "forcesReplace": false}]}]}]}
            ]
        });
        assert!(has_changes(&p));
        assert_eq!(
            render(&p),
            r#"Environment payments/checkout (environment@1.1.0):
  admins: ada   contributors: -   quota: large   stages: test

payments-checkout: no changes, 3 unchanged
  GitHub: no changes, 3 unchanged

payments-checkout-test (stage test): 1 to update, 1 to replace
  Kubernetes: 1 to update, 1 to replace
      ~ update   quota (kubernetes:resourceQuota)
          hard["pods"]: "20" → "60"
          hard["requests.cpu"]: "4"
    -/+ replace  token (kubernetes:serviceAccountToken)  (serviceAccount forces replacement)
          serviceAccount: "a" → "b"
          value: [secret] → (known after apply)

payments-checkout-dev (stage dev, destroyed): 2 to delete
  Azure: 2 to delete
      - delete   resourceGroup (azure:resourceGroup)
      - delete   lock (azure:lock)
          level: "CanNotDelete" → (none)

Plan: 0 to create, 1 to update, 1 to replace, 2 to delete.
"#
        );
        let mut same = p.clone();
        same["counts"] = with("same", 3);
        assert!(!has_changes(&same));
    }
}
