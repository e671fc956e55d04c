//! The policy packs, for platform admins: every version, the active one's tests and
//! files, and a form that publishes a new version with one file edited (through the
//! API's one way to publish, so it is compiled, tested and audited the same).

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;

use crate::AppState;
use crate::api::{self, NewPolicyPack, Query};
use crate::policy::Action;

use super::*;

struct VersionRow {
    version: i64,
    description: String,
    published_by: String,
    when: When,
    digest: String,
    active: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct PublishForm {
    csrf_token: Option<String>,
    #[serde(default)]
    file: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
pub(crate) struct PoliciesQuery {
    /// A file of the active version to put in the form.
    edit: Option<String>,
    /// The version just published, for its notice.
    published: Option<i64>,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    chrome: Chrome,
    versions: Vec<VersionRow>,
    active: i64,
    files: BTreeMap<String, String>,
    /// (`package.test`, passed, why not)
    tests: Vec<(String, bool, String)>,
    passed: usize,
    failed: usize,
    form: PublishForm,
    errors: FormErrors,
    /// The errors about the pack's files, shown at the file field.
    file_error: String,
    published: String,
}

pub(crate) async fn page(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<PoliciesQuery>,
) -> PageResult {
    let mut form = PublishForm::default();
    if let Some(name) = q.edit {
        let active = active_files(&state).await?;
        form.content = active.get(&name).cloned().unwrap_or_default();
        form.file = name;
    }
    let notice = q
        .published
        .map(|v| format!("Version {v} is published and enforced from now on."))
        .unwrap_or_default();
    policies_page(&state, &viewer, form, Vec::new(), notice).await
}

pub(crate) async fn publish(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    body: Bytes,
) -> PageResult {
    let f: PublishForm = form(&body)?;
    viewer.check_form(f.csrf_token.as_deref())?;
    let mut files = active_files(&state).await?;
    files.insert(f.file.trim().to_owned(), f.content.replace("\r\n", "\n"));
    let new = NewPolicyPack {
        description: f.description.clone(),
        files,
    };
    match api::publish_pack(&state, &viewer.ctx, new).await {
        Ok((v, true)) => see(&format!("/policies?published={}", v.version)),
        Ok((v, false)) => {
            policies_page(
                &state,
                &viewer,
                f,
                Vec::new(),
                format!(
                    "Version {} already has these very files: nothing published.",
                    v.version
                ),
            )
            .await
        }
        Err(p) => {
            let errors = field_errors(p)?;
            let mut page = policies_page(&state, &viewer, f, errors, String::new()).await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
    }
}

async fn active_files(state: &AppState) -> Result<BTreeMap<String, String>, Problem> {
    Ok(state.policy_pack().await?.files().clone())
}

async fn policies_page(
    state: &AppState,
    viewer: &Viewer,
    form: PublishForm,
    errors: Vec<FieldError>,
    published: String,
) -> PageResult {
    state
        .authorize(&viewer.ctx, Action::EvaluatePolicies, "policy-packs")
        .await?;
    let rows = state.db.policy_packs().await?;
    let (active, pack) = state.active_policy_pack().await?;
    let report = pack
        .run_tests()
        .map_err(|e| Problem::internal(e.to_string()))?;
    let file_error = errors
        .iter()
        .filter(|e| e.field.starts_with("files"))
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ");
    let mut chrome = viewer.chrome("Policies");
    chrome.section = "policies";
    ok(&PoliciesPage {
        chrome,
        versions: rows
            .iter()
            .map(|v| VersionRow {
                version: v.version,
                description: v.description.clone(),
                published_by: v.published_by.clone(),
                when: When::at(v.published_at),
                digest: v.digest.chars().take(19).collect(),
                active: v.version == active,
            })
            .collect(),
        active,
        files: pack.files().clone(),
        tests: report
            .results
            .iter()
            .map(|t| {
                (
                    format!("{}.{}", t.package, t.name),
                    t.passed,
                    t.error.clone().unwrap_or_default(),
                )
            })
            .collect(),
        passed: report.passed(),
        failed: report.failed(),
        form,
        errors: FormErrors::of(errors),
        file_error,
        published,
    })
}
