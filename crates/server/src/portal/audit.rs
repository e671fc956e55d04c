//! The audit page: the log filtered by team, environment, actor, action and time range,
//! newest first and paged by sequence number, each record's details expandable; an
//! export link (the API's `/api/v1/audit/export` with the same filters) and the chain's
//! verification (the API's verify logic, for platform admins).
//!
//! Invariants: a page is one bounded query (`Db::audit_page`); verifying the chain reads
//! the whole log, so it is its own request (`/audit/verify`), which the page loads after
//! it is shown (htmx) or links to (without JavaScript).
//!
//! Must not: show more of the log than `Action::ReadAudit` allows (a team's members see
//! their team's records; the whole log is for platform admins).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use paddock_store::db::AuditFilter;
use serde::Deserialize;

use crate::AppState;
use crate::api::{self, Query};
use crate::policy::Action;

use super::*;

const RECORDS_PER_PAGE: i64 = 50;

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditForm {
    #[serde(default)]
    team: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` field, read as UTC) or RFC 3339.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
}

fn opt(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A form's time as RFC 3339 (a `datetime-local` value has no zone: UTC).
fn when(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(if s.len() == 16 && s.as_bytes()[10] == b'T' {
        format!("{s}:00Z")
    } else {
        s.to_owned()
    })
}

struct Row {
    seq: i64,
    when: When,
    actor: String,
    action: String,
    target: String,
    team: String,
    environment: String,
    outcome: Status,
    source: String,
    detail: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    f: AuditForm,
    rows: Vec<Row>,
    pager: Pager,
    export: String,
    may_verify: bool,
}

pub(crate) async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(f): Query<AuditForm>,
) -> PageResult {
    let team = opt(&f.team);
    let target = match &team {
        Some(t) => format!("teams/{t}/audit"),
        None => "audit".into(),
    };
    state
        .authorize(
            &viewer.ctx,
            Action::ReadAudit {
                team: team.as_deref(),
            },
            &target,
        )
        .await?;
    let filter = AuditFilter {
        team: team.clone(),
        environment: opt(&f.environment),
        actor: opt(&f.actor),
        since: api::parse_when("since", &when(&f.since))?,
        until: api::parse_when("until", &when(&f.until))?,
        after: None,
        limit: RECORDS_PER_PAGE,
    };
    let action = opt(&f.action);
    let mut records = state
        .db
        .audit_page(&filter, action.as_deref(), f.before, RECORDS_PER_PAGE + 1)
        .await?;
    let more = records.len() as i64 > RECORDS_PER_PAGE;
    records.truncate(RECORDS_PER_PAGE as usize);
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("team", &f.team),
        ("environment", &f.environment),
        ("actor", &f.actor),
        ("action", &f.action),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if !v.trim().is_empty() {
            query.push((k, v.trim().to_owned()));
        }
    }
    let qs = |extra: Option<(&str, String)>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().cloned().chain(extra) {
            s.append_pair(k, &v);
        }
        s.finish()
    };
    let pager = Pager::keyset(
        f.before.map(|_| format!("/audit?{}", qs(None))),
        if more {
            records
                .last()
                .map(|r| format!("/audit?{}", qs(Some(("before", r.seq.to_string())))))
        } else {
            None
        },
    );
    // The API's export takes the same filters, as RFC 3339.
    let mut export = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &query {
        let v = match *k {
            "since" | "until" => when(v).unwrap_or_default(),
            _ => v.clone(),
        };
        if *k != "action" {
            export.append_pair(k, &v);
        }
    }
    let rows = records
        .into_iter()
        .map(|r| Row {
            seq: r.seq,
            when: When::at(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            team: r.team.unwrap_or_default(),
            environment: r.environment.unwrap_or_default(),
            outcome: Status::of(&r.outcome),
            source: r.source,
            detail: serde_json::to_string_pretty(&r.detail).unwrap_or_default(),
            hash: r.hash,
        })
        .collect();
    let mut chrome = viewer.chrome("Audit log").section("audit");
    chrome = match &team {
        Some(t) => chrome
            .in_team(t)
            .crumb("Audit log", format!("/audit?team={t}")),
        None => chrome.crumb("Audit log", "/audit"),
    };
    ok(&AuditPage {
        chrome,
        may_verify: viewer.may(&Action::ReadAudit { team: None }),
        f,
        rows,
        pager,
        export: format!("/api/v1/audit/export?{}", export.finish()),
    })
}

#[derive(Template)]
#[template(path = "audit_verify.html")]
struct VerifyPage {
    chrome: Chrome,
    intact: bool,
    records: String,
    problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "audit_verify_body.html")]
struct VerifyFragment {
    intact: bool,
    records: String,
    problems: Vec<String>,
}

/// The chain's verification: a fragment for htmx, a page otherwise.
pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
) -> PageResult {
    let v = api::verification(&state, &viewer.ctx).await?;
    if headers.contains_key("hx-request") {
        return ok(&VerifyFragment {
            intact: v.intact,
            records: thousands(v.records),
            problems: v.problems,
        });
    }
    ok(&VerifyPage {
        chrome: viewer
            .chrome("Audit chain")
            .section("audit")
            .crumb("Audit log", "/audit")
            .crumb("Verification", "/audit/verify"),
        intact: v.intact,
        records: thousands(v.records),
        problems: v.problems,
    })
}
