//! `Microsoft.Authorization/locks`: management locks at subscription or resource-group
//! scope, and their enforcement.
//!
//! A lock applies to its scope and everything below it, whoever asks: `CanNotDelete`
//! refuses a delete, `ReadOnly` a write or a delete, with `409 ScopeLocked` — after RBAC
//! has allowed the request, as ARM checks locks last. A delete of a scope is also refused
//! while anything below it is locked. Locks themselves are exempt (removing a lock is how
//! a locked scope is released); who may write or delete one is RBAC's business
//! (`Microsoft.Authorization/locks/write|delete`, which Contributor's `notActions` exclude).

use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{API, Arm, ArmError, ArmResult, json_response};

/// The api-versions of management locks: the stable ones, newest first.
pub const LOCKS_API_VERSIONS: &[&str] = &["2020-05-01", "2017-04-01", "2016-09-01", "2015-01-01"];

const LOCK: &str = "managementLock";
const LEVELS: &[&str] = &["CanNotDelete", "ReadOnly"];
const MAX_NOTES: usize = 512;
const MAX_NAME: usize = 260;

fn lock_key(scope: &str, name: &str) -> String {
    format!("{}|{}", scope.to_lowercase(), name.to_lowercase())
}

/// `a` is `b` or lies below it (scopes are case-insensitive paths).
fn within(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    a == b || a.starts_with(&format!("{b}/"))
}

fn invalid(message: impl Into<String>) -> ArmError {
    ArmError::new(
        StatusCode::BAD_REQUEST,
        "InvalidRequestContent",
        format!(
            "The request content was invalid and could not be deserialized: {}",
            message.into()
        ),
    )
}

/// The lock name rule ARM's description states: at most 260 characters, none of
/// `< > % & : \ ? /` or control characters.
fn check_name(name: &str) -> Result<(), ArmError> {
    let bad = name
        .chars()
        .find(|c| c.is_control() || "<>%&:\\?/".contains(*c));
    if name.is_empty() || name.chars().count() > MAX_NAME || bad.is_some() {
        // ARM's own code for this case was not found; the sandbox names the rule.
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidLockName",
            format!(
                "The lock name '{name}' is invalid. The lock name can be a maximum of 260 characters. It cannot contain <, > %, &, :, \\, ?, /, or any control characters."
            ),
        ));
    }
    Ok(())
}

impl Arm {
    /// Routes `{scope}/providers/Microsoft.Authorization/locks[/{name}]`; `scope` is the
    /// canonical id of a scope that exists.
    pub(super) async fn locks(
        &self,
        method: &Method,
        uri: &Uri,
        scope: &str,
        rest: &[&str],
        body: &[u8],
    ) -> ArmResult {
        match (rest, method) {
            ([_], &Method::GET) => self.list_locks(uri, scope).await,
            ([_, name], m) => {
                check_name(name)?;
                let key = lock_key(scope, name);
                match *m {
                    Method::PUT => self.put_lock(scope, name, body).await,
                    Method::GET => {
                        let lock = self.docs.get(API, LOCK, &key).await?.ok_or_else(|| {
                            ArmError::new(
                                StatusCode::NOT_FOUND,
                                "LockNotFound",
                                format!("The lock '{name}' could not be found."),
                            )
                        })?;
                        Ok(json_response(StatusCode::OK, &lock))
                    }
                    Method::DELETE => match self.docs.get(API, LOCK, &key).await? {
                        Some(_) => {
                            self.docs.delete(API, LOCK, &key).await?;
                            Ok(StatusCode::OK.into_response())
                        }
                        None => Ok(StatusCode::NO_CONTENT.into_response()),
                    },
                    _ => Err(super::method_not_allowed(method)),
                }
            }
            _ => Err(super::no_route(uri)),
        }
    }

    async fn put_lock(&self, scope: &str, name: &str, body: &[u8]) -> ArmResult {
        let request: Value = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let props = request
            .get("properties")
            .filter(|p| p.is_object())
            .ok_or_else(|| invalid("`properties` is required."))?;
        let level = props["level"]
            .as_str()
            .ok_or_else(|| invalid("`properties.level` is required."))?;
        let level = LEVELS
            .iter()
            .find(|l| l.eq_ignore_ascii_case(level))
            .ok_or_else(|| {
                invalid(format!(
                    "the lock level '{level}' is not supported. Supported levels are '{}'.",
                    LEVELS.join(", ")
                ))
            })?;
        let notes = match &props["notes"] {
            Value::Null => None,
            Value::String(n) if n.chars().count() <= MAX_NOTES => Some(n.clone()),
            Value::String(_) => {
                return Err(invalid(format!(
                    "`properties.notes` may hold at most {MAX_NOTES} characters."
                )));
            }
            _ => return Err(invalid("`properties.notes` must be a string.")),
        };
        let key = lock_key(scope, name);
        let existing = self.docs.get(API, LOCK, &key).await?;
        // A lock keeps the name it was created with; its level and notes may change.
        let name = existing
            .as_ref()
            .and_then(|l| l["name"].as_str().map(str::to_owned))
            .unwrap_or_else(|| name.to_owned());
        let mut properties = json!({"level": level});
        if let Some(notes) = notes {
            properties["notes"] = json!(notes);
        }
        if let Some(owners) = props.get("owners").filter(|o| o.is_array()) {
            properties["owners"] = owners.clone();
        }
        let lock = json!({
            "id": format!("{scope}/providers/Microsoft.Authorization/locks/{name}"),
            "name": name,
            "type": "Microsoft.Authorization/locks",
            "properties": properties,
        });
        self.docs.put(API, LOCK, &key, &lock).await?;
        let status = if existing.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json_response(status, &lock))
    }

    /// Locks at the scope and below it; `$filter=atScope()` keeps those at the scope and
    /// above (the ones that apply to it).
    async fn list_locks(&self, uri: &Uri, scope: &str) -> ArmResult {
        let at_scope = super::authorization::odata_filter(uri).contains("atScope()");
        let value: Vec<Value> = self
            .docs
            .list(API, LOCK, "")
            .await?
            .into_iter()
            .map(|(_, l)| l)
            .filter(|l| {
                let s = lock_scope(l);
                if at_scope {
                    within(scope, &s)
                } else {
                    within(&s, scope)
                }
            })
            .collect();
        Ok(json_response(StatusCode::OK, &json!({ "value": value })))
    }

    /// Refuses a write or delete of `target` (a resource id, as the request named it) that
    /// a lock forbids, with ARM's `ScopeLocked`.
    pub(super) async fn check_locks(&self, method: &Method, target: &str) -> Result<(), ArmError> {
        let deleting = *method == Method::DELETE;
        let writing = matches!(*method, Method::PUT | Method::PATCH | Method::POST);
        if !deleting && !writing {
            return Ok(());
        }
        let mut locked: Vec<String> = Vec::new();
        for (_, lock) in self.docs.list(API, LOCK, "").await? {
            let s = lock_scope(&lock);
            let applies = within(target, &s) || (deleting && within(&s, target));
            let forbids = deleting || lock["properties"]["level"] == "ReadOnly";
            if applies && forbids && !locked.iter().any(|l| l.eq_ignore_ascii_case(&s)) {
                locked.push(s);
            }
        }
        if locked.is_empty() {
            return Ok(());
        }
        let operation = if deleting { "delete" } else { "write" };
        let scopes: Vec<String> = locked.iter().map(|s| format!("'{s}'")).collect();
        Err(ArmError::new(
            StatusCode::CONFLICT,
            "ScopeLocked",
            format!(
                "The scope '{target}' cannot perform {operation} operation because following scope(s) are locked: {}. Please remove the lock and try again.",
                scopes.join(",")
            ),
        ))
    }

    /// Removes the locks at or below a scope that is going away.
    pub(super) async fn remove_locks_within(&self, scope: &str) -> Result<(), ArmError> {
        for (key, lock) in self.docs.list(API, LOCK, "").await? {
            if within(&lock_scope(&lock), scope) {
                self.docs.delete(API, LOCK, &key).await?;
            }
        }
        Ok(())
    }
}

/// The scope a lock document applies to: its id up to `/providers/Microsoft.Authorization`.
fn lock_scope(lock: &Value) -> String {
    let id = lock["id"].as_str().unwrap_or_default();
    let cut = id
        .to_lowercase()
        .rfind("/providers/microsoft.authorization/locks/")
        .unwrap_or(id.len());
    id[..cut].to_owned()
}
