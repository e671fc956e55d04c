//! The policy gate: every plan a worker is about to apply passes the active policy pack.
//!
//! The engine computes each stack's plan under the stack's lease and shows it to this gate
//! before any step runs ([`paddock_engine::PlanGate`]). The gate turns the plan into the
//! policy pack's plan input (`policies/README.md`), evaluates it, and:
//! - allow: the plan runs;
//! - deny: nothing of this stack runs; the operation fails naming each rule;
//! - require approval: the plan runs only if this operation's approval for this stack is
//!   bound to this very plan's hash; otherwise the operation stops to wait for one. An
//!   approval given to another plan (state or inputs changed since) does not count: the
//!   worker asks again with the new plan.
//!
//! The gate writes nothing: the worker records the wait (approval, operation state, audit)
//! in one transaction when the run ends.

use std::sync::Mutex;

use async_trait::async_trait;
use paddock_engine::{Halt, Plan, PlanGate, StepKind};
use paddock_policy::{Decision, Outcome, Reason};
use paddock_store::db;
use serde_json::{Value as Json, json};

use crate::AppState;

/// Why the gate stopped a run, for the worker to record.
pub(crate) enum Stop {
    Denied {
        stack: String,
        reasons: Vec<Reason>,
    },
    NeedsApproval {
        stack: String,
        plan_hash: String,
        /// The plan, redacted, as the approver will see it.
        plan: crate::views::StackPreview,
        reasons: Vec<Reason>,
    },
    /// The pack could not be read or evaluated: fail closed.
    Unavailable {
        stack: String,
        message: String,
    },
}

/// Who asks, and for what: the parts of the plan input that do not depend on the plan.
pub(crate) struct Context {
    pub operation: Json,
    pub requester: Json,
    pub team: String,
    pub environment: Option<String>,
    pub blueprint: Json,
    /// The stage each stack is, by stack name.
    pub stages: Vec<(String, paddock_platform::Stage)>,
}

impl Context {
    /// The context of `op`, read from the database.
    pub(crate) async fn of(
        state: &AppState,
        op: &db::Operation,
        env: Option<&db::Environment>,
    ) -> Result<Context, db::DbError> {
        let user = state.db.user_by_login(&op.requested_by).await?;
        let members = state.db.members(&op.team).await?;
        let team_role = members
            .iter()
            .find(|m| m.login == op.requested_by)
            .map(|m| m.role.clone());
        let stages = match env {
            Some(e) => {
                let app = e.name.clone();
                [
                    paddock_platform::Stage::Dev,
                    paddock_platform::Stage::Test,
                    paddock_platform::Stage::Prod,
                ]
                .into_iter()
                .map(|s| (paddock_platform::stage_stack_name(&op.team, &app, s), s))
                .collect()
            }
            None => Vec::new(),
        };
        Ok(Context {
            operation: json!({"id": op.id, "kind": op.kind, "requestedBy": op.requested_by}),
            requester: json!({
                "login": op.requested_by,
                "platformAdmin": user.as_ref().is_some_and(|u| u.platform_admin),
                "teamRole": team_role,
            }),
            team: op.team.clone(),
            environment: env.map(|e| e.name.clone()),
            blueprint: match env {
                Some(e) => json!({"name": e.blueprint, "version": e.blueprint_version}),
                None => json!({"name": "team", "version": null}),
            },
            stages,
        })
    }

    fn stage_of(&self, stack: &str) -> Option<paddock_platform::Stage> {
        self.stages
            .iter()
            .find(|(name, _)| name == stack)
            .map(|(_, s)| *s)
    }

    /// The plan as the approver sees it: per system, every change with its diffs.
    pub(crate) fn preview(&self, plan: &Plan) -> crate::views::StackPreview {
        let destroys =
            !plan.steps.is_empty() && plan.steps.iter().all(|s| s.kind == StepKind::Delete);
        crate::api::stack_preview(
            plan,
            self.stage_of(&plan.stack),
            if destroys { "destroy" } else { "up" },
        )
    }

    /// The policy pack's plan input for `plan` (see `policies/README.md`).
    pub(crate) fn plan_input(&self, plan: &Plan) -> Json {
        let stage = self.stage_of(&plan.stack).map(|s| s.name());
        let changes: Vec<Json> = plan
            .steps
            .iter()
            .filter(|s| s.kind != StepKind::Same)
            .map(|s| {
                let before: serde_json::Map<String, Json> = s
                    .diffs
                    .iter()
                    .filter_map(|d| {
                        d.old
                            .as_ref()
                            .map(|v| (d.property.clone(), v.to_redacted_json()))
                    })
                    .collect();
                json!({
                    "resource": s.name,
                    "type": s.ty,
                    "action": s.kind.verb(),
                    "properties": s.inputs.iter().map(|(k, v)| (k.clone(), v.to_redacted_json())).collect::<serde_json::Map<_, _>>(),
                    "before": if s.kind == StepKind::Create { Json::Null } else { Json::Object(before) },
                    "diff": s.diffs.iter().map(|d| json!({
                        "property": d.property,
                        "before": d.old.as_ref().map(|v| v.to_redacted_json()),
                        "after": d.new.as_ref().map(|v| v.to_redacted_json()),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "point": "plan",
            "operation": self.operation,
            "requester": self.requester,
            "team": {"name": self.team},
            "environment": self.environment.as_ref().map(|name| json!({"name": name})),
            "blueprint": self.blueprint,
            "stack": plan.stack,
            "stage": stage,
            "changes": changes,
        })
    }
}

/// The gate of one run of one operation.
pub(crate) struct PolicyGate<'a> {
    state: &'a AppState,
    operation_id: &'a str,
    context: Context,
    stop: Mutex<Option<Stop>>,
    /// Decisions made, for the operation's events and outcome.
    decisions: Mutex<Vec<Json>>,
}

impl<'a> PolicyGate<'a> {
    pub(crate) fn new(state: &'a AppState, operation_id: &'a str, context: Context) -> Self {
        PolicyGate {
            state,
            operation_id,
            context,
            stop: Mutex::new(None),
            decisions: Mutex::new(Vec::new()),
        }
    }

    /// Why the run was stopped, if the gate stopped it.
    pub(crate) fn take_stop(&self) -> Option<Stop> {
        self.stop.lock().expect("gate lock").take()
    }

    /// Every decision this gate made, in order (stack, outcome, rules).
    pub(crate) fn decisions(&self) -> Vec<Json> {
        self.decisions.lock().expect("gate lock").clone()
    }

    fn halt(&self, stop: Stop, message: String) -> Halt {
        *self.stop.lock().expect("gate lock") = Some(stop);
        Halt { message }
    }

    async fn decide(&self, plan: &Plan) -> Result<Decision, String> {
        let pack = self
            .state
            .policy_pack()
            .await
            .map_err(|e| format!("the policy pack could not be read: {e}"))?;
        let input = self.context.plan_input(plan);
        pack.evaluate(&input)
            .map_err(|e| format!("the policy pack failed to evaluate: {e}"))
    }
}

/// `rule: message` for each reason, for one-line messages.
pub(crate) fn describe(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(|r| match &r.field {
            Some(field) => format!("{} ({field}): {}", r.rule, r.message),
            None => format!("{}: {}", r.rule, r.message),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[async_trait]
impl PlanGate for PolicyGate<'_> {
    async fn admit(&self, plan: &Plan) -> Result<(), Halt> {
        // A plan that changes nothing has nothing for policy to decide.
        if !plan.has_changes() {
            return Ok(());
        }
        let stack = plan.stack.clone();
        let decision = match self.decide(plan).await {
            Ok(d) => d,
            Err(message) => {
                return Err(self.halt(
                    Stop::Unavailable {
                        stack,
                        message: message.clone(),
                    },
                    message,
                ));
            }
        };
        self.decisions.lock().expect("gate lock").push(json!({
            "stack": stack,
            "planHash": plan.hash,
            "decision": decision,
        }));
        match decision.outcome {
            Outcome::Allow => Ok(()),
            Outcome::Deny => {
                let message = format!("denied by policy: {}", describe(&decision.denials));
                Err(self.halt(
                    Stop::Denied {
                        stack,
                        reasons: decision.denials,
                    },
                    message,
                ))
            }
            Outcome::RequireApproval => {
                let approved = self
                    .state
                    .db
                    .approved_plan(self.operation_id, &stack, &plan.hash)
                    .await;
                match approved {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => {
                        let message = format!(
                            "stack `{stack}` waits for approval: {}",
                            describe(&decision.approvals)
                        );
                        Err(self.halt(
                            Stop::NeedsApproval {
                                stack,
                                plan_hash: plan.hash.clone(),
                                plan: self.context.preview(plan),
                                reasons: decision.approvals,
                            },
                            message,
                        ))
                    }
                    Err(e) => {
                        let message = format!("approvals could not be read: {e}");
                        Err(self.halt(
                            Stop::Unavailable {
                                stack,
                                message: message.clone(),
                            },
                            message,
                        ))
                    }
                }
            }
        }
    }
}

// TEMPORARY until the policy-pack store lands (merged from the `policy` branch).
impl AppState {
    pub(crate) async fn policy_pack(
        &self,
    ) -> Result<std::sync::Arc<paddock_policy::Pack>, paddock_policy::PolicyError> {
        paddock_policy::shipped().map(std::sync::Arc::new)
    }
}
