//! An operation's events as the server sends them (event views as JSON), read back: as
//! the engine's [`Event`]s for the progress display, and as one log line each.

use paddock_engine::{Event, EventSink, StepKind};
use serde_json::Value;

use super::s;
use crate::client::Client;
use crate::progress::Progress;

/// Every event so far at `path` (the JSON form pages by 1000).
pub(super) async fn all_events(c: &Client, path: &str) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut after = 0i64;
    loop {
        let page = c.get_query(path, &[("after", after.to_string())]).await?;
        let page = page.as_array().cloned().unwrap_or_default();
        let n = page.len();
        if let Some(last) = page.last().and_then(|e| e["id"].as_i64()) {
            after = last;
        }
        all.extend(page);
        if n < 1000 {
            return Ok(all);
        }
    }
}

pub(super) fn step_kind(v: &Value) -> Option<StepKind> {
    Some(match v.as_str()? {
        "same" => StepKind::Same,
        "create" => StepKind::Create,
        "update" => StepKind::Update,
        "replace" => StepKind::Replace,
        "delete" => StepKind::Delete,
        _ => return None,
    })
}

/// The engine's event back from its JSON (as the server stores it).
fn engine_event(kind: &str, d: &Value) -> Option<Event> {
    let text = |k: &str| d[k].as_str().map(str::to_owned);
    Some(match kind {
        "planned" => Event::Planned {
            steps: d["steps"].as_u64()? as usize,
            changes: d["changes"].as_u64()? as usize,
            hash: text("hash").unwrap_or_default(),
        },
        "reconciled" => Event::Reconciled {
            resource: text("resource")?,
            outcome: text("outcome")?,
        },
        "stepStarted" => Event::StepStarted {
            resource: text("resource")?,
            ty: text("ty")?,
            kind: step_kind(&d["kind"])?,
        },
        "stepSucceeded" => Event::StepSucceeded {
            resource: text("resource")?,
            ty: text("ty")?,
            kind: step_kind(&d["kind"])?,
            elapsed_ms: d["elapsedMs"].as_u64().unwrap_or(0),
        },
        "stepFailed" => Event::StepFailed {
            resource: text("resource")?,
            ty: text("ty")?,
            kind: step_kind(&d["kind"])?,
            code: text("code"),
            message: text("message").unwrap_or_default(),
        },
        "stepSkipped" => Event::StepSkipped {
            resource: text("resource")?,
            reason: text("reason").unwrap_or_default(),
        },
        "drift" => Event::Drift {
            resource: text("resource")?,
            change: text("change").unwrap_or_default(),
        },
        _ => return None,
    })
}

/// The platform's own events (not the engine's), as a line.
fn platform_event(kind: &str, d: &Value) -> Option<String> {
    Some(match kind {
        "operationStarted" => format!(
            "operation {} ({}) started, attempt {}",
            s(&d["operation"]),
            s(&d["kind"]),
            d["attempt"]
        ),
        "operationFinished" => format!("operation {} {}", s(&d["operation"]), s(&d["state"])),
        "waiting" => format!(
            "  waiting for stack {}, held by {}",
            s(&d["stack"]),
            s(&d["heldBy"])
        ),
        "plan" => format!("  {}: {}", s(&d["stack"]), s(&d["summary"])),
        _ => return None,
    })
}

/// Feeds one SSE `data` (an event view) to the progress display.
pub(super) fn show_progress(progress: &Progress, data: &str) {
    let Ok(e) = serde_json::from_str::<Value>(data) else {
        return;
    };
    let kind = s(&e["kind"]);
    if let Some(event) = engine_event(kind, &e["data"]) {
        progress.emit(&event);
    } else if kind != "operationFinished"
        && let Some(line) = platform_event(kind, &e["data"])
    {
        progress.println(&line);
    }
}

/// One event as a log line: time, operation, what happened.
pub(super) fn event_line(e: &Value) -> String {
    let kind = s(&e["kind"]);
    let d = &e["data"];
    let what = if let Some(line) = platform_event(kind, d) {
        line.trim_start().to_owned()
    } else if let Some(event) = engine_event(kind, d) {
        match event {
            Event::Planned { steps, changes, .. } => {
                format!("planned: {changes} change(s) in {steps} step(s)")
            }
            Event::Reconciled { resource, outcome } => {
                format!("! {resource}: interrupted step settled: {outcome}")
            }
            Event::StepStarted { resource, ty, kind } => {
                format!("{} {resource} {ty} {}...", kind.symbol(), verb(kind, false))
            }
            Event::StepSucceeded {
                resource,
                ty,
                kind,
                elapsed_ms,
            } => format!(
                "{} {resource} {ty} {} ({elapsed_ms} ms)",
                kind.symbol(),
                verb(kind, true)
            ),
            Event::StepFailed {
                resource,
                ty,
                kind,
                code,
                message,
            } => {
                let code = code.map(|c| format!("[{c}] ")).unwrap_or_default();
                format!(
                    "✗ {resource} {ty} {} failed: {code}{message}",
                    verb(kind, false)
                )
            }
            Event::StepSkipped { resource, reason } => format!("· {resource} skipped: {reason}"),
            Event::Drift { resource, change } => format!("~ {resource}: {change} outside Paddock"),
        }
    } else {
        format!("{kind} {d}")
    };
    format!("{}  {}  {what}", s(&e["at"]), s(&e["operation"]))
}

/// What a step is doing, or did, in words: one wording for local and remote progress.
pub(super) use crate::progress::describe as verb;

/// Prints one streamed event (an event view as JSON) on stdout.
pub(super) fn print_event(data: &str, json: bool) {
    if json {
        println!("{data}");
    } else if let Ok(e) = serde_json::from_str::<Value>(data) {
        println!("{}", event_line(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_back_as_lines() {
        let e = json!({"id": 3, "operation": "op_1", "at": "2026-01-01T00:00:00.000Z",
            "kind": "stepFailed", "data": {"event": "stepFailed", "resource": "rg", "ty": "azure:resourceGroup",
            "kind": "create", "code": "AuthorizationFailed", "message": "no"}});
        assert_eq!(
            event_line(&e),
            "2026-01-01T00:00:00.000Z  op_1  ✗ rg azure:resourceGroup creating failed: [AuthorizationFailed] no"
        );
    }
}
