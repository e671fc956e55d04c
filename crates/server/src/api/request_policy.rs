//! The policy pack at the request point: a create, update or destroy of an environment,
//! after its own checks, is described as the request input document
//! (`policies/README.md`) and decided by the active pack. A denial is refused with 422
//! `policy-denied`, each reason at its field like any field error (with its `rule`), and
//! audited; an approval is returned in the decision for the caller to act on.

use paddock_policy::{Decision, Outcome};

use super::*;

/// What a request asks, for the input document.
pub(crate) struct RequestPoint<'a> {
    /// `create`, `update`, `destroy` or `extend`.
    pub(crate) action: &'static str,
    pub(crate) team: &'a str,
    pub(crate) environment: &'a str,
    pub(crate) blueprint_version: &'a str,
    /// The environment's parameters now (redacted), when it exists.
    pub(crate) current: Option<serde_json::Value>,
    /// The whole request's parameters after defaults (redacted).
    pub(crate) parameters: serde_json::Value,
    /// An expiry asked for or extended, as `{"days": N}`, if any.
    pub(crate) expiry: Option<serde_json::Value>,
}

/// A field for the reasons that name none: the request as a whole.
pub(crate) const WHOLE_REQUEST: &str = "(request)";

/// The request input document.
async fn input(
    state: &AppState,
    caller: &auth::Caller,
    point: &RequestPoint<'_>,
) -> ApiResult<serde_json::Value> {
    let environments = state.db.environments(Some(point.team)).await?;
    let alive: Vec<&str> = environments
        .iter()
        .filter(|e| e.status != "destroyed")
        .map(|e| e.name.as_str())
        .collect();
    let requester = Requester {
        login: &caller.user.login,
        platform_admin: caller.principal.platform_admin,
        team_role: caller.principal.roles.get(point.team).copied(),
    };
    Ok(request_input(point, &requester, &alive))
}

/// Who asks, as the request input names them.
pub(crate) struct Requester<'a> {
    pub(crate) login: &'a str,
    pub(crate) platform_admin: bool,
    pub(crate) team_role: Option<crate::policy::Role>,
}

/// The request input document (`policies/README.md`) from the request and what the
/// database says: the names of the team's environments that are not destroyed.
pub(crate) fn request_input(
    point: &RequestPoint<'_>,
    requester: &Requester<'_>,
    alive_environments: &[&str],
) -> serde_json::Value {
    let exists = alive_environments.contains(&point.environment);
    let mut input = serde_json::json!({
        "point": "request",
        "action": point.action,
        "requester": {
            "login": requester.login,
            "platformAdmin": requester.platform_admin,
            "teamRole": requester.team_role.map(|r| r.name()),
        },
        "team": {
            "name": point.team,
            "environments": alive_environments.len(),
        },
        "blueprint": {"name": "environment", "version": point.blueprint_version},
        "environment": {
            "name": point.environment,
            "exists": exists,
            "parameters": point.current.clone(),
        },
        "parameters": point.parameters.clone(),
    });
    if let Some(expiry) = &point.expiry {
        input["expiry"] = expiry.clone();
    }
    if point.action == "update"
        && let (Some(serde_json::Value::Object(now)), serde_json::Value::Object(asked)) =
            (&point.current, &point.parameters)
    {
        let mut changed: Vec<&String> = asked
            .iter()
            .filter(|(k, v)| now.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(now.keys().filter(|k| !asked.contains_key(*k)))
            .collect();
        changed.sort();
        changed.dedup();
        input["changed"] = serde_json::json!(changed);
    }
    input
}

/// The active pack's decision on a request, with the version that made it.
pub(crate) async fn request_decision(
    state: &AppState,
    caller: &auth::Caller,
    point: &RequestPoint<'_>,
) -> ApiResult<(i64, Decision)> {
    let input = input(state, caller, point).await?;
    let (version, pack) = state.active_policy_pack().await?;
    let decision = pack.evaluate(&input).map_err(|e| {
        tracing::error!(error = %e, version, "the policy pack could not decide a request");
        Problem::internal(format!(
            "policy pack version {version} could not decide this request: {e}"
        ))
    })?;
    Ok((version, decision))
}

/// A denial's reasons as field errors, each naming its rule.
pub(crate) fn denial_errors(decision: &Decision) -> Vec<FieldError> {
    decision
        .denials
        .iter()
        .map(|r| FieldError {
            field: r.field.clone().unwrap_or_else(|| WHOLE_REQUEST.to_owned()),
            message: r.message.clone(),
            rule: Some(r.rule.clone()),
        })
        .collect()
}

/// Decides a request; a denial is audited (`audit_action`, outcome `denied`, the rules in
/// the detail) and refused with 422 `policy-denied`. Otherwise the decision is returned
/// (an approval is for the caller to act on).
pub(crate) async fn enforce(
    state: &AppState,
    ctx: &Ctx,
    audit_action: &str,
    target: &str,
    point: &RequestPoint<'_>,
) -> ApiResult<Decision> {
    let caller = ctx.caller()?;
    let (version, decision) = request_decision(state, caller, point).await?;
    if decision.outcome != Outcome::Deny {
        return Ok(decision);
    }
    let errors = denial_errors(&decision);
    let mut tx = state.db.write().await?;
    tx.append_audit(
        &NewAudit {
            actor: &caller.user.login,
            source: &ctx.source,
            action: audit_action,
            target,
            team: Some(point.team),
            environment: Some(point.environment),
            outcome: "denied",
            detail: &serde_json::json!({
                "policyPack": version,
                "rules": decision.denials.iter().map(|r| &r.rule).collect::<Vec<_>>(),
                "reasons": errors,
            }),
        },
        now_ms(),
    )
    .await?;
    tx.commit().await?;
    Err(Problem::policy_denied(errors))
}
