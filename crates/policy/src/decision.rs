//! A decision and its reasons, read from what the `deny` and `approve` sets hold.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::PolicyError;

/// What a pack decides about one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Nothing denied, nothing to approve.
    Allow,
    /// At least one `deny` reason: refused.
    Deny,
    /// No deny, at least one `approve` reason: someone named by `approvers` must agree.
    RequireApproval,
}

impl Outcome {
    /// The word used in JSON, the CLI and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::RequireApproval => "requireApproval",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why: one element of a `deny` or `approve` set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reason {
    /// The rule's name (the package's short name unless the element says otherwise).
    pub rule: String,
    /// The input field at fault, dotted (`parameters.region`), when there is one.
    pub field: Option<String>,
    /// For people: what is wrong, or what needs approval, and why.
    pub message: String,
    /// Who may approve (`approve` only), e.g. `team-admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<String>,
}

/// A pack's decision with every reason, sorted (stable output for people and snapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub outcome: Outcome,
    pub denials: Vec<Reason>,
    pub approvals: Vec<Reason>,
}

impl Decision {
    /// Any deny wins; then any approval; else allow.
    pub(crate) fn from_reasons(mut denials: Vec<Reason>, mut approvals: Vec<Reason>) -> Decision {
        for reasons in [&mut denials, &mut approvals] {
            reasons.sort();
            reasons.dedup();
        }
        let outcome = if !denials.is_empty() {
            Outcome::Deny
        } else if !approvals.is_empty() {
            Outcome::RequireApproval
        } else {
            Outcome::Allow
        };
        Decision {
            outcome,
            denials,
            approvals,
        }
    }
}

/// Reads the value of a `deny`/`approve` rule of the package whose short name is
/// `package`: a set (or array) of reason objects or message strings. Undefined or empty
/// yields nothing.
pub(crate) fn reasons(package: &str, rule: &str, value: &Json) -> Result<Vec<Reason>, PolicyError> {
    let malformed = |message: String| PolicyError::Malformed {
        rule: format!("{package}.{rule}"),
        message,
    };
    let elements = match value {
        Json::Null => return Ok(Vec::new()),
        Json::Array(items) => items,
        other => {
            return Err(malformed(format!(
                "must be a set of reasons, found {}",
                kind(other)
            )));
        }
    };
    elements
        .iter()
        .map(|element| match element {
            Json::String(message) => Ok(Reason {
                rule: package.to_owned(),
                field: None,
                message: message.clone(),
                approvers: None,
            }),
            Json::Object(fields) => {
                let text = |name: &str| -> Result<Option<String>, PolicyError> {
                    match fields.get(name) {
                        None | Some(Json::Null) => Ok(None),
                        Some(Json::String(s)) => Ok(Some(s.clone())),
                        Some(other) => Err(malformed(format!(
                            "`{name}` must be a string, found {}",
                            kind(other)
                        ))),
                    }
                };
                let message = text("message")?
                    .ok_or_else(|| malformed(format!("an element has no `message`: {element}")))?;
                Ok(Reason {
                    rule: text("rule")?.unwrap_or_else(|| package.to_owned()),
                    field: text("field")?,
                    message,
                    approvers: text("approvers")?,
                })
            }
            other => Err(malformed(format!(
                "an element must be an object or a string, found {}",
                kind(other)
            ))),
        })
        .collect()
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outcome_serializes_as_its_word() {
        assert_eq!(
            serde_json::to_value([Outcome::Allow, Outcome::Deny, Outcome::RequireApproval])
                .unwrap(),
            json!(["allow", "deny", "requireApproval"])
        );
    }

    #[test]
    fn a_string_is_a_message_and_rule_defaults_to_the_package() {
        let got = reasons(
            "regions",
            "deny",
            &json!(["plain", {"message": "m", "field": "parameters.region"}]),
        )
        .unwrap();
        assert_eq!(got[0].rule, "regions");
        assert_eq!(got[0].message, "plain");
        assert_eq!(got[1].field.as_deref(), Some("parameters.region"));
    }

    #[test]
    fn an_element_without_message_is_malformed_naming_the_rule() {
        let err = reasons("regions", "deny", &json!([{"rule": "x"}])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("regions.deny: an element has no `message`")
        );
        let err = reasons("regions", "deny", &json!(true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "regions.deny: must be a set of reasons, found a boolean"
        );
    }

    #[test]
    fn deny_wins_over_approval_and_reasons_are_sorted() {
        let r = |rule: &str| Reason {
            rule: rule.into(),
            field: None,
            message: "m".into(),
            approvers: None,
        };
        let d = Decision::from_reasons(vec![r("b"), r("a"), r("a")], vec![r("c")]);
        assert_eq!(d.outcome, Outcome::Deny);
        assert_eq!(d.denials, vec![r("a"), r("b")]);
        let d = Decision::from_reasons(vec![], vec![r("c")]);
        assert_eq!(d.outcome, Outcome::RequireApproval);
        assert_eq!(
            Decision::from_reasons(vec![], vec![]).outcome,
            Outcome::Allow
        );
    }
}
