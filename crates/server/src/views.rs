//! What the API speaks: request and response bodies (each with its OpenAPI schema), and
//! the checks on names and parameters.

use paddock_platform::{QuotaSize, Stage};
use paddock_store::db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::policy::{Role, Scope};
use crate::problem::FieldError;

/// Team and environment names: they become GitHub, Entra and Kubernetes names.
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9-]{1,30}$";

/// Checks a team or environment name, naming `field`.
pub fn check_name(field: &str, name: &str, errors: &mut Vec<FieldError>) {
    let ok = name.len() >= 2
        && name.len() <= 31
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        errors.push(FieldError {
            field: field.to_owned(),
            message: format!(
                "`{}` is not a valid name: 2 to 31 characters, lowercase letters, digits and \
                 `-`, starting with a letter",
                name.chars().take(64).collect::<String>()
            ),
            rule: None,
        });
    }
}

/// Whether a text says nothing: white space only, as the API's `\S` patterns read it
/// (Unicode white space and the ASCII information separators, which Python and
/// ECMAScript count as white space).
pub fn blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// A login: what GitHub and the directory know the person by.
pub fn check_login(field: &str, login: &str, errors: &mut Vec<FieldError>) {
    let ok = !login.is_empty()
        && login.len() <= 39
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        errors.push(FieldError {
            field: field.to_owned(),
            message: "a login is 1 to 39 letters, digits, `-`, `_` or `.`".into(),
            rule: None,
        });
    }
}

/// Unix milliseconds from an RFC 3339 date-time (`2026-12-24T18:00:00.5+01:00`, any
/// offset, `T`/`Z` in either case), as JSON Schema's `date-time` format reads it.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        millis = format!("{:0<3}", &frac[..digits.min(3)]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let at = text.len() - 6;
            let (oh, om) = (num(at + 1..at + 3)?, num(at + 4..at + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = oh * 60 + om;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    // Howard Hinnant's days_from_civil.
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset * 60;
    Some(secs * 1000 + millis)
}

/// RFC 3339 in UTC with milliseconds, from Unix milliseconds.
pub fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: String,
    pub login: String,
    pub name: String,
    pub email: Option<String>,
    pub platform_admin: bool,
    pub created_at: String,
}

impl From<&db::User> for UserView {
    fn from(u: &db::User) -> Self {
        UserView {
            id: u.id.clone(),
            login: u.login.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            platform_admin: u.platform_admin,
            created_at: time(u.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub team: String,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    pub user: UserView,
    pub teams: Vec<Membership>,
    /// Present when signed in by a session: send it as `X-CSRF-Token` with changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPerson {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,39}$")]
    pub login: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// For a local account; 12 to 1024 characters.
    #[serde(default)]
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    #[serde(default)]
    pub platform_admin: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewToken {
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    pub name: String,
    /// `write` (the default) or `read`.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Days until it expires (1 to 365); default 90.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&db::ApiToken> for TokenView {
    fn from(t: &db::ApiToken) -> Self {
        TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            scope: t.scope.clone(),
            created_at: time(t.created_at),
            expires_at: opt_time(t.expires_at),
            revoked_at: opt_time(t.revoked_at),
            last_used_at: opt_time(t.last_used_at),
        }
    }
}

/// A new token: the secret is shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTeam {
    #[schema(pattern = "^[a-z][a-z0-9-]{1,30}$")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberRole {
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub login: String,
    pub name: String,
    pub role: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamView {
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
    pub members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueprintView {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub description: String,
    /// The parameters' schema (what the form asks for).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub published_at: String,
}

impl From<&db::BlueprintVersion> for BlueprintView {
    fn from(b: &db::BlueprintVersion) -> Self {
        BlueprintView {
            name: b.name.clone(),
            version: b.version.clone(),
            digest: b.digest.clone(),
            description: b.description.clone(),
            parameters: serde_json::from_str(&b.parameters).unwrap_or_default(),
            published_at: time(b.published_at),
        }
    }
}

/// A request for an environment: its name, the `environment` blueprint's version, and
/// values for that version's parameters (`GET /api/v1/blueprints/environment/versions/
/// {version}/schema` says which; those not given take their defaults).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewEnvironment {
    #[schema(pattern = "^[a-z][a-z0-9-]{1,30}$")]
    pub name: String,
    /// The `environment` blueprint's version; default the newest.
    #[serde(default)]
    pub blueprint_version: Option<String>,
    /// When the environment is torn down (RFC 3339); or give `ttl`.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// How long the environment lives, e.g. `7d`, `12h`; or give `expiresAt`.
    #[serde(default)]
    pub ttl: Option<String>,
    /// The blueprint's parameters, e.g. `"stages": ["dev", "prod"]`, `"region": "westeurope"`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A change of an environment's parameters: those given replace the current values (a
/// removed stage is destroyed), the others stay.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentUpdate {
    /// Move to this version of the `environment` blueprint; default the newest.
    #[serde(default)]
    pub blueprint_version: Option<String>,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
}

/// `?dryRun=true`: plan and show, change nothing.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DryRun {
    /// Return the preview of what the request would do (200) instead of queuing it; only
    /// the audit record is written.
    pub dry_run: Option<bool>,
}

/// What a create or an update would do, per stack and per system, before confirming.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewView {
    pub team: String,
    pub environment: String,
    pub blueprint_version: String,
    /// The parameters as they would be, defaults filled.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Steps by kind over every stack: `create`, `update`, `replace`, `delete`, `same`.
    pub counts: std::collections::BTreeMap<String, usize>,
    pub stacks: Vec<StackPreview>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackPreview {
    pub stack: String,
    /// The stage this stack is, if it is one.
    pub stage: Option<String>,
    /// `up`, or `destroy` for a stage being removed.
    pub action: String,
    pub hash: String,
    pub counts: std::collections::BTreeMap<String, usize>,
    pub systems: Vec<SystemPreview>,
}

/// The changes to one system's resources (Azure, Entra ID, Kubernetes, GitHub).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemPreview {
    pub system: String,
    pub counts: std::collections::BTreeMap<String, usize>,
    /// Each resource that changes.
    pub changes: Vec<ChangePreview>,
}

/// One resource that changes, with its property diffs (secrets as `[secret]`; a create's
/// diffs are every input it will be made with).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePreview {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// `create`, `update`, `replace` or `delete`.
    pub kind: String,
    pub diffs: Vec<DiffPreview>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiffPreview {
    pub property: String,
    #[schema(value_type = Option<Object>)]
    pub old: Option<serde_json::Value>,
    /// `"(known after apply)"` where it is not known yet.
    #[schema(value_type = Option<Object>)]
    pub new: Option<serde_json::Value>,
    pub forces_replace: bool,
}

/// An environment's parameter values, as the platform takes them (stored as the
/// admitted JSON object, defaults filled).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentParameters {
    #[schema(value_type = Vec<String>)]
    pub stages: Vec<Stage>,
    pub region: String,
    #[schema(value_type = String)]
    pub quota: QuotaSize,
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub contributors: Vec<String>,
}

impl EnvironmentParameters {
    /// The environment as the platform's stacks take it.
    pub fn spec(&self, team: &str, app: &str) -> paddock_platform::EnvironmentSpec {
        paddock_platform::EnvironmentSpec {
            team: team.to_owned(),
            app: app.to_owned(),
            stages: self.stages.clone(),
            admins: self.admins.clone(),
            contributors: self.contributors.clone(),
            region: self.region.clone(),
            quota: self.quota,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentView {
    pub id: String,
    pub team: String,
    pub name: String,
    pub blueprint: String,
    pub blueprint_version: String,
    /// The blueprint's parameters, as admitted (defaults filled).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// `creating`, `ready`, `updating`, `failed`, `drifted` (a refresh found objects
    /// changed outside Paddock), `destroying` or `destroyed`.
    pub status: String,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    /// When the environment is torn down, if it has an expiry.
    pub expires_at: Option<String>,
    /// Who set the expiry: the teardown is theirs.
    pub expiry_set_by: Option<String>,
    /// Within the expiry warning window.
    pub expiring: bool,
    /// What to know about the expiry, when `expiring`.
    pub warning: Option<String>,
    /// The newest published version of its blueprint, when it is on an older one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_available: Option<String>,
    /// The version fleet rollouts keep it on, if pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_version: Option<String>,
}

impl EnvironmentView {
    /// The view, saying whether `latest` (the newest published version) is an upgrade.
    pub fn with_latest(mut self, latest: &str) -> EnvironmentView {
        if self.status != "destroyed" {
            self.upgrade_available =
                crate::bundles::upgrade_available(&self.blueprint_version, latest);
        }
        self
    }

    pub fn of(e: &db::Environment) -> Result<EnvironmentView, crate::problem::Problem> {
        Ok(EnvironmentView {
            id: e.id.clone(),
            team: e.team.clone(),
            name: e.name.clone(),
            blueprint: e.blueprint.clone(),
            blueprint_version: e.blueprint_version.clone(),
            parameters: serde_json::from_str(&e.parameters).map_err(|err| {
                crate::problem::Problem::internal(format!(
                    "environment {}'s parameters are unreadable: {err}",
                    e.id
                ))
            })?,
            status: e.status.clone(),
            created_at: time(e.created_at),
            created_by: e.created_by.clone(),
            updated_at: time(e.updated_at),
            expires_at: None,
            expiry_set_by: None,
            expiring: false,
            warning: None,
            upgrade_available: None,
            pinned_version: e.pinned_version.clone(),
        })
    }

    /// With its expiry, if it has one, `expiring` within `warning` of `now`.
    pub fn with_expiry(
        mut self,
        expiry: Option<&db::Expiry>,
        warning: std::time::Duration,
        now: i64,
    ) -> EnvironmentView {
        if let Some(x) = expiry.filter(|_| self.status != "destroyed") {
            self.expires_at = Some(time(x.expires_at));
            self.expiry_set_by = Some(x.set_by.clone());
            self.expiring = x.expires_at - (warning.as_millis() as i64) <= now;
            self.warning = self.expiring.then(|| {
                format!(
                    "environment `{}` expires at {} and will then be destroyed with everything \
                     in it; extend it with PUT …/expiry to keep it",
                    self.name,
                    time(x.expires_at)
                )
            });
        }
        self
    }
}

/// What to do to an environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// Plan only: what `up` would change.
    Preview,
    /// Create or update the stages' resources.
    Up,
    /// Read the clouds and record drift in the state.
    Refresh,
    /// Delete every resource of the stages (all stages: the environment).
    Destroy,
    /// Adopt objects that exist in the cloud as the stage's resources (one stage).
    Import,
}

impl OperationKind {
    pub fn name(self) -> &'static str {
        match self {
            OperationKind::Preview => "preview",
            OperationKind::Up => "up",
            OperationKind::Refresh => "refresh",
            OperationKind::Destroy => "destroy",
            OperationKind::Import => "import",
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOperation {
    pub kind: OperationKind,
    /// The stages to act on; default all of the environment's (an import names one).
    #[serde(default)]
    #[schema(value_type = Option<Vec<StageName>>)]
    pub stages: Option<Vec<Stage>>,
    /// For an import: the objects to adopt, each as the blueprint resource it stands for.
    #[serde(default)]
    pub resources: Option<Vec<ImportResource>>,
}

/// A stage of an environment, as the API names it.
#[derive(Serialize, ToSchema)]
#[schema(as = Stage)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used: the API reads `paddock_platform::Stage`.
pub enum StageName {
    Dev,
    Test,
    Prod,
}

/// An existing object to adopt: the stage blueprint's resource `name` (of `type`) is the
/// cloud's object `id`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportResource {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationView {
    pub id: String,
    pub team: String,
    /// The environment's name; absent for an operation on the team itself.
    pub environment: Option<String>,
    pub kind: String,
    #[schema(value_type = Vec<String>)]
    pub stages: Vec<Stage>,
    /// `queued`, `running`, `waiting_for_approval`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub requested_by: String,
    pub retry_of: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub attempts: i64,
    pub cancel_requested: bool,
    /// Per stack: steps done, and for a failure the resource, the cloud's code and
    /// message, and what to do.
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<serde_json::Value>,
    pub links: OperationLinks,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub events: String,
}

impl OperationView {
    pub fn of(o: &db::Operation, environment: Option<String>) -> OperationView {
        OperationView {
            id: o.id.clone(),
            team: o.team.clone(),
            environment,
            kind: o.kind.clone(),
            stages: serde_json::from_str(&o.stages).unwrap_or_default(),
            state: o.state.clone(),
            requested_by: o.requested_by.clone(),
            retry_of: o.retry_of.clone(),
            created_at: time(o.created_at),
            started_at: opt_time(o.started_at),
            finished_at: opt_time(o.finished_at),
            attempts: o.attempts,
            cancel_requested: o.cancel_requested,
            outcome: o
                .outcome
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            links: OperationLinks {
                this: format!("/api/v1/operations/{}", o.id),
                events: format!("/api/v1/operations/{}/events", o.id),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: i64,
    pub operation: String,
    pub at: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&db::EventRow> for EventView {
    fn from(e: &db::EventRow) -> Self {
        EventView {
            id: e.id,
            operation: e.operation_id.clone(),
            at: time(e.at),
            kind: e.kind.clone(),
            data: serde_json::from_str(&e.data).unwrap_or_default(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackOutputs {
    pub stack: String,
    /// Output values; secrets are `"[secret]"` unless revealed.
    #[schema(value_type = Object)]
    pub outputs: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// The cloud's id of the object.
    pub id: String,
    /// Secret values are `"[secret]"`.
    #[schema(value_type = Object)]
    pub outputs: serde_json::Value,
    pub dependencies: Vec<String>,
    pub delete_pending: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StackResources {
    pub stack: String,
    pub resources: Vec<ResourceView>,
    /// Journal entries of an interrupted run, settled by the next operation.
    pub pending: usize,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputsView {
    pub revealed: bool,
    pub stacks: Vec<StackOutputs>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub team: Option<String>,
    pub environment: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&db::AuditRecord> for AuditView {
    fn from(r: &db::AuditRecord) -> Self {
        AuditView {
            seq: r.seq,
            at: time(r.at),
            actor: r.actor.clone(),
            source: r.source.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            team: r.team.clone(),
            environment: r.environment.clone(),
            outcome: r.outcome.clone(),
            detail: r.detail.clone(),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub intact: bool,
    pub records: i64,
    pub problems: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_796_083_200_123), "2026-12-01T00:00:00.123Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn names_must_fit_every_cloud() {
        let mut errors = Vec::new();
        for ok in ["payments", "ab", "team-2"] {
            check_name("name", ok, &mut errors);
        }
        assert!(errors.is_empty(), "{errors:?}");
        for bad in ["", "a", "Payments", "2team", "pay_ments", &"x".repeat(32)] {
            check_name("name", bad, &mut errors);
        }
        assert_eq!(errors.len(), 6);
    }
}

/// An approval an operation waits for (or got): the exact plan, why policy asks, and the
/// decision.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    pub id: String,
    pub operation: String,
    pub team: String,
    /// The environment's name.
    pub environment: Option<String>,
    pub stack: String,
    /// `pending`, `approved`, `rejected` or `superseded` (the plan changed before it ran,
    /// or the operation ended).
    pub state: String,
    /// The hash of the plan this approval is bound to.
    pub plan_hash: String,
    /// The plan the approver is asked about: every change per system with its property
    /// diffs, secrets redacted.
    pub plan: Option<StackPreview>,
    /// The policy rules that ask for approval, with their messages.
    #[schema(value_type = Vec<Object>)]
    pub reasons: serde_json::Value,
    pub requested_by: String,
    pub requested_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// The approver's comment, or the rejection's reason.
    pub comment: Option<String>,
    pub links: ApprovalLinks,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub operation: String,
    pub approve: String,
    pub reject: String,
}

impl ApprovalView {
    pub fn of(a: &db::Approval, environment: Option<String>) -> ApprovalView {
        ApprovalView {
            id: a.id.clone(),
            operation: a.operation_id.clone(),
            team: a.team.clone(),
            environment,
            stack: a.stack.clone(),
            state: a.state.clone(),
            plan_hash: a.plan_hash.clone(),
            plan: serde_json::from_str(&a.plan).ok(),
            reasons: serde_json::from_str(&a.reasons).unwrap_or_default(),
            requested_by: a.requested_by.clone(),
            requested_at: time(a.requested_at),
            decided_by: a.decided_by.clone(),
            decided_at: opt_time(a.decided_at),
            comment: a.comment.clone(),
            links: ApprovalLinks {
                this: format!("/api/v1/approvals/{}", a.id),
                operation: format!("/api/v1/operations/{}", a.operation_id),
                approve: format!("/api/v1/approvals/{}/approve", a.id),
                reject: format!("/api/v1/approvals/{}/reject", a.id),
            },
        }
    }
}
