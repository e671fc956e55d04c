//! The isolation suite: every credential a stage hands its team, tried against every
//! other stage and against its own guardrails, for two teams' environments (dev, test,
//! prod each) provisioned through the real providers into the sandbox.
//!
//! The credentials are the ones a team really holds: the deployer token in the stage's
//! `KUBECONFIG` environment secret, and the stage's Azure identity, signed in by
//! exchanging the stage's GitHub Actions token (for ARM and for Graph); plus workflow
//! tokens of every other repository and environment presented to each federated
//! credential. Each attempt names the refusal the wall must give; positive controls (the
//! stage deploys into its own namespace and resource group) must succeed. Zero attempts
//! may succeed, none may fail otherwise than expected, every control must pass — and the
//! walls must not stand in the way of Paddock's own teardown.

#[path = "isolation/attempts.rs"]
mod attempts;
#[path = "isolation/rig.rs"]
mod rig;

use std::fmt;

use attempts::{Attempt, Body, Expect};
use paddock_engine::Discard;
use rig::{Rig, StageRef};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

/// The refusal code an API puts in its error body.
fn code_of(body: &Json) -> String {
    if let Some(reason) = body["reason"].as_str() {
        return reason.to_owned();
    }
    if let Some(code) = body["error"]["code"].as_str() {
        return code.to_owned();
    }
    if let Some(code) = body["error_codes"][0].as_u64() {
        return format!("AADSTS{code}");
    }
    String::new()
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Sends one attempt to `root` with `bearer`: the status and the body.
async fn send(
    http: &reqwest::Client,
    root: &str,
    bearer: Option<&str>,
    a: &Attempt,
) -> (u16, Json) {
    let mut request = http.request(a.method.clone(), format!("{root}{}", a.path));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request = match &a.body {
        Body::None => request,
        Body::Json(body) => request.json(body),
        Body::MergePatch(body) => request
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string()),
        Body::Form(pairs) => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(pairs)),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Json::Null))
}

/// What one credential got.
#[derive(Default)]
struct Tally {
    credential: String,
    attempts: usize,
    refused: usize,
    succeeded: Vec<String>,
    /// Refused, but not by the wall expected (another status or code).
    unexpected: Vec<String>,
    controls: usize,
    controls_failed: Vec<String>,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<44} {:>3} attempts, {:>3} refused, {} succeeded; positive controls {}/{}",
            self.credential,
            self.attempts,
            self.refused,
            self.succeeded.len(),
            self.controls - self.controls_failed.len(),
            self.controls,
        )
    }
}

/// Runs a credential's attempts in order and tallies them.
async fn try_all(
    credential: String,
    root: &str,
    bearer: Option<&str>,
    attempts: Vec<Attempt>,
) -> Tally {
    let http = reqwest::Client::new();
    let mut tally = Tally {
        credential,
        ..Tally::default()
    };
    for a in &attempts {
        let (status, body) = send(&http, root, bearer, a).await;
        let code = code_of(&body);
        let seen = format!("{} ({} {}): {status} {code}", a.what, a.method, a.path);
        match &a.expect {
            Expect::Allowed => {
                tally.controls += 1;
                if !(200..300).contains(&status) {
                    tally.controls_failed.push(format!("{seen} {body}"));
                }
            }
            Expect::Refused(want_status, want_code) => {
                tally.attempts += 1;
                if (200..300).contains(&status) {
                    tally.succeeded.push(seen);
                } else if status == *want_status && code == *want_code {
                    tally.refused += 1;
                } else {
                    tally.unexpected.push(format!(
                        "{seen}, expected {want_status} {want_code}: {body}"
                    ));
                }
            }
        }
    }
    tally
}

/// The id of the stage identity's role assignment, from the sandbox's inspection.
async fn assignment_of(r: &Rig, stage: &StageRef) -> String {
    let all: Json = reqwest::get(format!("{}/inspect", r.sandbox.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["arm"]["roleAssignment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["properties"]["principalId"] == stage.principal_id.as_str())
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("{}: no role assignment", stage.label()))
        .to_owned()
}

/// Workflow tokens that are not `own`'s: every other stage's (repository, environment),
/// and a run of its own repository outside any environment.
async fn wrong_tokens(r: &Rig, own: &StageRef, all: &[StageRef]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for other in all.iter().filter(|o| o.namespace != own.namespace) {
        let token = rig::workflow_token(&r.sandbox, &other.full_repo, other.stage).await;
        out.push((other.full_repo.clone(), other.stage.to_owned(), token));
    }
    let branch_run: Json = reqwest::Client::new()
        .post(format!("{}/github-actions/tokens", r.sandbox.control_url))
        .json(&json!({"repository": own.full_repo, "ref": "refs/heads/main"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    out.push((
        own.full_repo.clone(),
        "(none: a branch run)".to_owned(),
        branch_run["value"].as_str().unwrap().to_owned(),
    ));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credential_a_stage_holds_gets_past_any_wall() {
    let r = rig::rig().await;
    let stages = rig::provision(&r).await;
    assert_eq!(stages.len(), 6, "two teams, three stages each");
    let s = &r.sandbox;
    let subscription = s.identity.subscription_id.clone();
    let mut tallies = Vec::new();
    for (index, own) in stages.iter().enumerate() {
        let others: Vec<&StageRef> = stages
            .iter()
            .filter(|o| o.namespace != own.namespace)
            .collect();

        let deployer = rig::deployer_token(&r, own).await;
        tallies.push(
            try_all(
                format!("{} KUBECONFIG deployer", own.label()),
                &s.kubernetes_url(),
                Some(&deployer),
                attempts::kubernetes(own, &others),
            )
            .await,
        );

        let arm = rig::stage_identity(s, own, "https://management.azure.com/.default").await;
        let assignment = assignment_of(&r, own).await;
        tallies.push(
            try_all(
                format!("{} Azure identity (ARM)", own.label()),
                &s.base_url,
                Some(&arm),
                attempts::arm(own, &others, &subscription, &assignment, index),
            )
            .await,
        );

        let graph = rig::stage_identity(s, own, "https://graph.microsoft.com/.default").await;
        tallies.push(
            try_all(
                format!("{} Azure identity (Graph)", own.label()),
                &s.base_url,
                Some(&graph),
                attempts::graph(own, &others),
            )
            .await,
        );

        let wrong = wrong_tokens(&r, own, &stages).await;
        tallies.push(
            try_all(
                format!("{} federated credential", own.label()),
                &s.base_url,
                None,
                attempts::federation(own, &s.identity.tenant_id, &wrong),
            )
            .await,
        );
    }

    println!("isolation: what each credential a stage holds got");
    for tally in &tallies {
        println!("  {tally}");
    }
    let attempts: usize = tallies.iter().map(|t| t.attempts).sum();
    let refused: usize = tallies.iter().map(|t| t.refused).sum();
    let controls: usize = tallies.iter().map(|t| t.controls).sum();
    println!(
        "isolation: {} credentials, {attempts} attempts, {refused} refused, {controls} positive controls",
        tallies.len()
    );
    let succeeded: Vec<String> = tallies
        .iter()
        .flat_map(|t| {
            t.succeeded
                .iter()
                .map(move |x| format!("{}: {x}", t.credential))
        })
        .collect();
    let unexpected: Vec<String> = tallies
        .iter()
        .flat_map(|t| {
            t.unexpected
                .iter()
                .map(move |x| format!("{}: {x}", t.credential))
        })
        .collect();
    let failed_controls: Vec<String> = tallies
        .iter()
        .flat_map(|t| {
            t.controls_failed
                .iter()
                .map(move |x| format!("{}: {x}", t.credential))
        })
        .collect();
    assert!(
        succeeded.is_empty(),
        "walls got past:\n{}",
        succeeded.join("\n")
    );
    assert!(
        unexpected.is_empty(),
        "refused, but not by the wall expected:\n{}",
        unexpected.join("\n")
    );
    assert!(
        failed_controls.is_empty(),
        "positive controls failed:\n{}",
        failed_controls.join("\n")
    );
    assert!(
        attempts >= 6 * 60 && controls >= 6 * 10,
        "the table is as large as meant"
    );

    // The walls hold against the team, not against Paddock: teardown leaves nothing.
    let mut teardown = Vec::new();
    for (team, app, _, _) in rig::TEAMS {
        for stage in rig::STAGES.iter().rev() {
            teardown.push(format!("{team}-{app}-{}", stage.name()));
        }
        teardown.push(format!("{team}-{app}"));
        teardown.push(paddock_platform::team_stack_name(team));
    }
    let outcomes =
        paddock_platform::destroy(&r.engine, &teardown, &Discard, &CancellationToken::new())
            .await
            .unwrap();
    for o in &outcomes {
        assert!(o.report.succeeded(), "{}: {:?}", o.stack, o.report.failures);
    }
    let all: Json = reqwest::get(format!("{}/inspect", s.control_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for kind in ["resourceGroup", "managementLock"] {
        assert!(
            all["arm"][kind].as_array().is_none_or(Vec::is_empty),
            "{kind} left: {}",
            all["arm"][kind]
        );
    }
}
