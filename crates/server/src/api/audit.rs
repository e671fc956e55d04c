//! The audit log: read, export, verify.

use super::*;

// --- audit -----------------------------------------------------------------------------

/// The filters of the list and of the export, which differ only in how many records
/// they answer at most.
macro_rules! audit_query {
    ($(#[$doc:meta])* $name:ident, $max:tt) => {
        $(#[$doc])*
        #[derive(Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub(crate) struct $name {
            /// Only this team's records (team members may read their team's; the whole
            /// log is for platform admins).
            pub(crate) team: Option<String>,
            pub(crate) environment: Option<String>,
            pub(crate) actor: Option<String>,
            /// RFC 3339 or Unix milliseconds.
            #[param(schema_with = instant)]
            pub(crate) since: Option<String>,
            #[param(schema_with = instant)]
            pub(crate) until: Option<String>,
            /// Records after this sequence number.
            pub(crate) after: Option<i64>,
            /// At most this many records.
            #[param(minimum = 1, maximum = $max)]
            pub(crate) limit: Option<i64>,
        }
    };
}

audit_query!(
    /// `GET /audit`: at most 1,000 records (default 100).
    AuditQuery, 1000
);
audit_query!(
    /// `GET /audit/export`: at most 100,000 records (the default). Only its description
    /// is used: the export reads [`AuditQuery`], bounded by [`audit_records`]' `max`.
    #[allow(dead_code)]
    AuditExportQuery, 100000
);

/// `since` and `until`: an RFC 3339 date-time or Unix milliseconds.
fn instant() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^-?[0-9]{1,15}$")),
        )
        .build()
        .into()
}

pub(crate) fn parse_when(field: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    if let Some(ms) = parse_rfc3339(v) {
        return Ok(Some(ms));
    }
    humantime::parse_rfc3339_weak(v)
        .map(|t| {
            Some(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default(),
            )
        })
        .map_err(|e| Problem::field(field, format!("`{v}` is not an RFC 3339 time: {e}")))
}

pub(crate) async fn audit_records(
    state: &AppState,
    ctx: &Ctx,
    q: &AuditQuery,
    max: i64,
) -> ApiResult<Vec<db::AuditRecord>> {
    let target = match &q.team {
        Some(t) => format!("teams/{t}/audit"),
        None => "audit".into(),
    };
    state
        .authorize(
            ctx,
            Action::ReadAudit {
                team: q.team.as_deref(),
            },
            &target,
        )
        .await?;
    let filter = db::AuditFilter {
        team: q.team.clone(),
        environment: q.environment.clone(),
        actor: q.actor.clone(),
        since: parse_when("since", &q.since)?,
        until: parse_when("until", &q.until)?,
        after: q.after,
        limit: match q.limit {
            None if max > 1000 => max,
            None => 100,
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => {
                return Err(Problem::field(
                    "limit",
                    format!("{n} is out of range: 1 to {max}"),
                ));
            }
        },
    };
    Ok(state.db.audit(&filter).await?)
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditView]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn list_audit(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let records = audit_records(&state, &ctx, &q, 1000).await?;
    Ok(json(
        &records.iter().map(AuditView::from).collect::<Vec<_>>(),
    ))
}

#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditExportQuery),
    responses((status = 200, content_type = "application/jsonl", description = "One record per line (JSON Lines)")))]
pub(crate) async fn export_audit(
    axum::extract::State(state): State,
    ctx: Ctx,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let records = audit_records(&state, &ctx, &q, 100_000).await?;
    let mut out = String::new();
    for r in &records {
        out.push_str(&serde_json::to_string(&AuditView::from(r)).unwrap_or_default());
        out.push('\n');
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = Problem)))]
pub(crate) async fn verify_audit(axum::extract::State(state): State, ctx: Ctx) -> ApiResult {
    Ok(json(&verification(&state, &ctx).await?))
}

/// Recomputes the audit chain (platform admins): the API's `GET /audit/verify` and the
/// portal's audit page.
pub(crate) async fn verification(state: &AppState, ctx: &Ctx) -> ApiResult<Verification> {
    state
        .authorize(ctx, Action::ReadAudit { team: None }, "audit")
        .await?;
    let v = state.db.verify_audit().await?;
    Ok(Verification {
        intact: v.intact(),
        records: v.records,
        problems: v.problems,
    })
}
