//! `kubernetes:role`: a namespaced Role, the rules a role binding can grant within one
//! namespace — how Paddock defines what a team may do there, rather than lending it a
//! built-in ClusterRole such as `admin`.

use async_trait::async_trait;
use paddock_engine::provider::{PropertySchema, PropertyType, TypeSchema};
use paddock_engine::{Props, ProviderError};
use serde_json::{Value as Json, json};

use super::super::client::Kind;
use super::{Shape, invalid, key_inputs, list_of_maps, name_input, namespace_input, uid_output};

static ROLE: Kind = Kind {
    api_version: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    plural: "roles",
    namespaced: true,
    template: "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/{name}",
    terminates: false,
};

/// The lists a PolicyRule of a Role may hold (`nonResourceURLs` belong to ClusterRoles).
const RULE_LISTS: [&str; 4] = ["apiGroups", "resources", "verbs", "resourceNames"];

pub(super) struct Role;

#[async_trait]
impl Shape for Role {
    fn kind(&self) -> &'static Kind {
        &ROLE
    }

    fn schema(&self) -> TypeSchema {
        TypeSchema {
            name: "kubernetes:role".into(),
            description: "A role: what may be done in one namespace, granted by a role binding with `roleKind: Role`."
                .into(),
            inputs: vec![
                namespace_input(),
                name_input("role"),
                PropertySchema::new("rules", PropertyType::List)
                    .required()
                    .describe("PolicyRules as in the API: `apiGroups` (`\"\"` is the core group), `resources` (`pods`, `pods/log`), `verbs`, and optionally `resourceNames`."),
            ],
            outputs: vec![uid_output()],
        }
    }

    fn manifest(&self, inputs: &Props) -> Result<Json, ProviderError> {
        let rules = list_of_maps(inputs, "rules")?.unwrap_or_default();
        for (i, rule) in rules.iter().enumerate() {
            for (key, value) in rule.as_object().into_iter().flatten() {
                if !RULE_LISTS.contains(&key.as_str()) {
                    return Err(invalid(format!(
                        "`rules[{i}].{key}` is not a field of a Role's rule: use {}",
                        RULE_LISTS.map(|k| format!("`{k}`")).join(", ")
                    )));
                }
                let strings = value
                    .as_array()
                    .is_some_and(|items| items.iter().all(Json::is_string));
                if !strings {
                    return Err(invalid(format!(
                        "`rules[{i}].{key}` must be a list of strings"
                    )));
                }
            }
            if rule["verbs"].as_array().is_none_or(Vec::is_empty) {
                return Err(invalid(format!(
                    "`rules[{i}].verbs` must name at least one verb"
                )));
            }
        }
        Ok(json!({ "rules": rules }))
    }

    fn inputs(&self, object: &Json) -> Json {
        let mut m = key_inputs(object);
        m.insert("rules".into(), object["rules"].clone());
        Json::Object(m)
    }

    /// The API server leaves out a rule's empty lists; the user may have written them.
    fn normalize(&self, inputs: &mut Json, prior: &Json) {
        let rules = inputs.get_mut("rules").and_then(Json::as_array_mut);
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            for key in RULE_LISTS {
                let given = &prior["rules"][i][key];
                if rule.get(key).is_none() && given.as_array().is_some_and(Vec::is_empty) {
                    rule[key] = json!([]);
                }
            }
        }
    }
}
