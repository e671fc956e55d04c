//! GitHub: repositories, environments with reviewers, sealed-box secrets and variables,
//! every request and response checked against GitHub's own OpenAPI description.

mod common;

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::contract::Contract;
use common::github::{app_jwt, seal};
use common::swagger::Spec;
use paddock_sandbox::{GITHUB_ORG, Sandbox};
use reqwest::Method;
use serde_json::{Value, json};

/// The operations each contract test exercises: together, with `NOT_IMPLEMENTED`, every
/// operation of the description.
const REPOSITORIES_AND_ENVIRONMENTS: &[&str] = &[
    "orgs/get",
    "repos/create-in-org",
    "repos/get",
    "repos/delete",
    "repos/create-or-update-environment",
    "repos/get-environment",
    "repos/get-all-environments",
    "repos/delete-an-environment",
    "actions/get-environment-public-key",
    "actions/create-or-update-environment-secret",
    "actions/get-environment-secret",
    "actions/list-environment-secrets",
    "actions/delete-environment-secret",
    "actions/create-environment-variable",
    "actions/update-environment-variable",
    "actions/get-environment-variable",
    "actions/list-environment-variables",
    "actions/delete-environment-variable",
];
const RATE_LIMIT: &[&str] = &["orgs/get", "rate-limit/get"];
const TEAMS: &[&str] = &[
    "users/get-by-username",
    "teams/create",
    "teams/get-by-name",
    "teams/update-in-org",
    "teams/list",
    "teams/add-or-update-membership-for-user-in-org",
    "teams/get-membership-for-user-in-org",
    "teams/remove-membership-for-user-in-org",
    "repos/create-in-org",
    "teams/add-or-update-repo-permissions-in-org",
    "teams/check-permissions-for-repo-in-org",
    "teams/remove-repo-in-org",
    "teams/delete-in-org",
];
const TEMPLATES_AND_PROTECTION: &[&str] = &[
    "repos/create-in-org",
    "repos/create-or-update-file-contents",
    "repos/create-using-template",
    "repos/get-content",
    "repos/get-branch-protection",
    "repos/update-branch-protection",
    "repos/delete-branch-protection",
];
const BRANCHES_AND_PULL_REQUESTS: &[&str] = &[
    "repos/create-in-org",
    "repos/create-or-update-file-contents",
    "repos/get-content",
    "git/create-ref",
    "pulls/create",
    "pulls/list",
];
const GITHUB_APP: &[&str] = &[
    "apps/get-authenticated",
    "apps/get-org-installation",
    "apps/create-installation-access-token",
];
const LISTING_AND_EDITING_REPOSITORIES: &[&str] = &[
    "repos/create-in-org",
    "repos/list-for-org",
    "repos/update",
    "repos/get",
];
const DEPLOYMENT_BRANCH_POLICIES: &[&str] = &[
    "repos/create-in-org",
    "repos/create-or-update-environment",
    "repos/list-deployment-branch-policies",
    "repos/create-deployment-branch-policy",
];
const ERRORS: &[&str] = &[
    "orgs/get",
    "teams/create",
    "teams/update-in-org",
    "teams/get-by-name",
    "teams/delete-in-org",
    "teams/get-membership-for-user-in-org",
    "teams/add-or-update-repo-permissions-in-org",
    "repos/create-in-org",
    "repos/delete",
    "repos/create-using-template",
    "repos/delete-branch-protection",
    "repos/create-or-update-environment",
    "repos/get-environment",
    "repos/delete-an-environment",
    "actions/get-environment-public-key",
    "actions/get-environment-secret",
    "actions/create-or-update-environment-secret",
    "actions/create-environment-variable",
    "actions/get-environment-variable",
    "actions/update-environment-variable",
    "actions/delete-environment-variable",
];
const PAGES: &[&str] = &[
    "teams/create",
    "teams/list",
    "repos/create-in-org",
    "repos/create-or-update-environment",
    "repos/get-all-environments",
    "actions/get-environment-public-key",
    "actions/create-or-update-environment-secret",
    "actions/list-environment-secrets",
    "actions/create-environment-variable",
    "actions/list-environment-variables",
];
/// Operations of the description the sandbox does not serve yet: none. (What it serves
/// beyond the description is listed in `specs/github/README.md`.)
const NOT_IMPLEMENTED: &[&str] = &[];

/// The test exercised exactly the operations it claims to cover.
fn assert_covers(c: &Contract, operations: &[&str]) {
    let claimed: BTreeSet<String> = operations.iter().map(|o| (*o).to_owned()).collect();
    assert_eq!(*c.seen.borrow(), claimed, "the operations this test covers");
}

#[test]
fn the_contract_tests_cover_every_operation_of_the_description() {
    let covered: BTreeSet<&str> = [
        REPOSITORIES_AND_ENVIRONMENTS,
        RATE_LIMIT,
        TEAMS,
        TEMPLATES_AND_PROTECTION,
        BRANCHES_AND_PULL_REQUESTS,
        GITHUB_APP,
        LISTING_AND_EDITING_REPOSITORIES,
        DEPLOYMENT_BRANCH_POLICIES,
        ERRORS,
        PAGES,
    ]
    .concat()
    .into_iter()
    .collect();
    let missing: BTreeSet<&str> = NOT_IMPLEMENTED.iter().copied().collect();
    assert!(
        covered.is_disjoint(&missing),
        "covered yet listed as not implemented: {:?}",
        covered.intersection(&missing).collect::<Vec<_>>()
    );
    let all = Spec::load("github/github.json").operation_ids();
    let accounted: Vec<String> = covered.union(&missing).map(|o| (*o).to_owned()).collect();
    assert_eq!(
        accounted, all,
        "every operation is covered or listed as missing"
    );
}

fn client(s: &Sandbox) -> Contract {
    let mut c = Contract::new(
        reqwest::Client::new(),
        Spec::load("github/github.json"),
        format!("{}/api/v3", s.base_url),
    );
    c.token = Some(s.github_token.clone());
    c
}

async fn create_user(s: &Sandbox, login: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/github/users", s.control_url))
        .json(&json!({"login": login, "name": login}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn repositories_environments_secrets_and_variables_match_githubs_description() {
    let (_dir, s) = common::start().await;
    let c = client(&s);
    let reviewer = create_user(&s, "ada").await;
    let org = GITHUB_ORG;
    let repo = format!("/repos/{org}/checkout");
    let env = format!("{repo}/environments/prod");

    assert_eq!(
        c.call("orgs/get", Method::GET, &format!("/orgs/{org}"), None)
            .await
            .0,
        200
    );
    let (status, created, headers) = c
        .call(
            "repos/create-in-org",
            Method::POST,
            &format!("/orgs/{org}/repos"),
            Some(json!({"name": "checkout", "private": true})),
        )
        .await;
    assert_eq!(
        (status, created["full_name"].as_str()),
        (201, Some(format!("{org}/checkout").as_str()))
    );
    let remaining: u64 = headers["x-ratelimit-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining, paddock_sandbox::github::RATE_LIMIT - 2);
    let (status, err, _) = c
        .call(
            "repos/create-in-org",
            Method::POST,
            &format!("/orgs/{org}/repos"),
            Some(json!({"name": "checkout"})),
        )
        .await;
    assert_eq!(
        (status, err["errors"][0]["message"].as_str()),
        (422, Some("name already exists on this account"))
    );
    assert_eq!(
        c.call(
            "repos/create-in-org",
            Method::POST,
            &format!("/orgs/{org}/repos"),
            Some(json!({"name": "bad name"}))
        )
        .await
        .0,
        422
    );
    assert_eq!(c.call("repos/get", Method::GET, &repo, None).await.0, 200);

    let unknown = json!({"reviewers": [{"type": "User", "id": 101}]});
    assert_eq!(
        c.call(
            "repos/create-or-update-environment",
            Method::PUT,
            &env,
            Some(unknown)
        )
        .await
        .0,
        422,
        "reviewers must exist"
    );
    let protection = json!({"reviewers": [{"type": "User", "id": reviewer["id"]}], "deployment_branch_policy": {"protected_branches": true, "custom_branch_policies": false}});
    let (status, environment, _) = c
        .call(
            "repos/create-or-update-environment",
            Method::PUT,
            &env,
            Some(protection),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        environment["protection_rules"][0]["type"], "required_reviewers",
        "prod needs a reviewer"
    );
    assert_eq!(
        c.call("repos/get-environment", Method::GET, &env, None)
            .await
            .1["name"],
        "prod"
    );
    assert_eq!(
        c.call(
            "repos/get-all-environments",
            Method::GET,
            &format!("{repo}/environments"),
            None
        )
        .await
        .1["total_count"],
        1
    );

    let (_, public_key, _) = c
        .call(
            "actions/get-environment-public-key",
            Method::GET,
            &format!("{env}/secrets/public-key"),
            None,
        )
        .await;
    let put = |value: &str| json!({"encrypted_value": seal(public_key["key"].as_str().unwrap(), value), "key_id": public_key["key_id"]});
    let secret = format!("{env}/secrets/KUBE_TOKEN");
    assert_eq!(
        c.call(
            "actions/create-or-update-environment-secret",
            Method::PUT,
            &secret,
            Some(put("s3cr3t-token"))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "actions/create-or-update-environment-secret",
            Method::PUT,
            &secret,
            Some(put("rotated-token"))
        )
        .await
        .0,
        204
    );
    let arrived: Value = reqwest::get(format!(
        "{}/github/secrets/checkout/prod/KUBE_TOKEN",
        s.control_url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        arrived["value"], "rotated-token",
        "the sandbox opened the sealed box"
    );
    let forged = json!({"encrypted_value": B64.encode(b"not a sealed box at all, not at all"), "key_id": public_key["key_id"]});
    assert_eq!(
        c.call(
            "actions/create-or-update-environment-secret",
            Method::PUT,
            &secret,
            Some(forged)
        )
        .await
        .0,
        422
    );
    let (_, meta, _) = c
        .call("actions/get-environment-secret", Method::GET, &secret, None)
        .await;
    assert!(
        meta.get("value").is_none() && meta["name"] == "KUBE_TOKEN",
        "the value never comes back: {meta}"
    );
    assert_eq!(
        c.call(
            "actions/list-environment-secrets",
            Method::GET,
            &format!("{env}/secrets"),
            None
        )
        .await
        .1["total_count"],
        1
    );

    let vars = format!("{env}/variables");
    assert_eq!(
        c.call(
            "actions/create-environment-variable",
            Method::POST,
            &vars,
            Some(json!({"name": "AZURE_CLIENT_ID", "value": "1234"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        c.call(
            "actions/create-environment-variable",
            Method::POST,
            &vars,
            Some(json!({"name": "AZURE_CLIENT_ID", "value": "1234"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        c.call(
            "actions/update-environment-variable",
            Method::PATCH,
            &format!("{vars}/AZURE_CLIENT_ID"),
            Some(json!({"value": "5678"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        c.call(
            "actions/get-environment-variable",
            Method::GET,
            &format!("{vars}/AZURE_CLIENT_ID"),
            None
        )
        .await
        .1["value"],
        "5678"
    );
    assert_eq!(
        c.call(
            "actions/list-environment-variables",
            Method::GET,
            &vars,
            None
        )
        .await
        .1["total_count"],
        1
    );
    assert_eq!(
        c.call(
            "actions/delete-environment-variable",
            Method::DELETE,
            &format!("{vars}/AZURE_CLIENT_ID"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        c.call(
            "actions/delete-environment-secret",
            Method::DELETE,
            &secret,
            None
        )
        .await
        .0,
        204
    );
    let production = format!("{repo}/environments/production");
    c.call(
        "repos/create-or-update-environment",
        Method::PUT,
        &production,
        Some(json!({})),
    )
    .await;
    c.call(
        "actions/create-environment-variable",
        Method::POST,
        &format!("{production}/variables"),
        Some(json!({"name": "STAGE", "value": "production"})),
    )
    .await;
    assert_eq!(
        c.call("repos/delete-an-environment", Method::DELETE, &env, None)
            .await
            .0,
        204
    );
    assert_eq!(
        c.call(
            "actions/get-environment-variable",
            Method::GET,
            &format!("{production}/variables/STAGE"),
            None
        )
        .await
        .0,
        200,
        "deleting prod leaves production and its variables alone"
    );
    assert_eq!(
        c.call("repos/delete", Method::DELETE, &repo, None).await.0,
        204
    );
    assert_eq!(c.call("repos/get", Method::GET, &repo, None).await.0, 404);

    assert_covers(&c, REPOSITORIES_AND_ENVIRONMENTS);
    s.stop().await;
}

#[tokio::test]
async fn github_wants_a_token_and_counts_requests() {
    let (_dir, s) = common::start().await;
    let root = format!("{}/api/v3", s.base_url);
    let anonymous = reqwest::get(format!("{root}/orgs/{GITHUB_ORG}"))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["message"],
        "Bad credentials"
    );
    let r = reqwest::Client::new()
        .get(format!("{root}/orgs/{GITHUB_ORG}"))
        .header("authorization", format!("token {}", s.github_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-ratelimit-used"], "1");
    let c = client(&s);
    let (_, limits, _) = c
        .call("rate-limit/get", Method::GET, "/rate_limit", None)
        .await;
    assert_eq!(
        limits["resources"]["core"]["used"], 1,
        "rate_limit itself is free"
    );
    assert_eq!(
        c.call(
            "orgs/get",
            Method::GET,
            &format!("/orgs/{GITHUB_ORG}"),
            None
        )
        .await
        .2["x-ratelimit-used"],
        "2"
    );
    assert_covers(&c, RATE_LIMIT);
    s.stop().await;
}

#[tokio::test]
async fn teams_members_and_repository_permissions_match_githubs_description() {
    let (_dir, s) = common::start().await;
    let c = client(&s);
    let org = GITHUB_ORG;
    create_user(&s, "ada").await;
    assert_eq!(
        c.call("users/get-by-username", Method::GET, "/users/ada", None)
            .await
            .1["login"],
        "ada"
    );
    assert_eq!(
        c.call("users/get-by-username", Method::GET, "/users/nobody", None)
            .await
            .0,
        404
    );

    let (status, team, _) = c
        .call(
            "teams/create",
            Method::POST,
            &format!("/orgs/{org}/teams"),
            Some(json!({"name": "Team Payments", "privacy": "closed"})),
        )
        .await;
    assert_eq!(
        (status, team["slug"].as_str()),
        (201, Some("team-payments"))
    );
    assert_eq!(
        c.call(
            "teams/create",
            Method::POST,
            &format!("/orgs/{org}/teams"),
            Some(json!({"name": "Team Payments"}))
        )
        .await
        .0,
        422
    );
    let t = format!("/orgs/{org}/teams/team-payments");
    assert_eq!(
        c.call("teams/get-by-name", Method::GET, &t, None).await.0,
        200
    );
    assert_eq!(
        c.call(
            "teams/update-in-org",
            Method::PATCH,
            &t,
            Some(json!({"name": "Team Payments", "description": "Payments"}))
        )
        .await
        .1["description"],
        "Payments"
    );
    assert_eq!(
        c.call(
            "teams/list",
            Method::GET,
            &format!("/orgs/{org}/teams"),
            None
        )
        .await
        .1
        .as_array()
        .unwrap()
        .len(),
        1
    );

    let (status, membership, _) = c
        .call(
            "teams/add-or-update-membership-for-user-in-org",
            Method::PUT,
            &format!("{t}/memberships/ada"),
            Some(json!({"role": "maintainer"})),
        )
        .await;
    assert_eq!(
        (status, membership["role"].as_str()),
        (200, Some("maintainer"))
    );
    assert_eq!(
        c.call(
            "teams/add-or-update-membership-for-user-in-org",
            Method::PUT,
            &format!("{t}/memberships/nobody"),
            Some(json!({"role": "member"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        c.call(
            "teams/get-membership-for-user-in-org",
            Method::GET,
            &format!("{t}/memberships/ada"),
            None
        )
        .await
        .0,
        200
    );

    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "checkout"})),
    )
    .await;
    let grant = format!("{t}/repos/{org}/checkout");
    assert_eq!(
        c.call(
            "teams/add-or-update-repo-permissions-in-org",
            Method::PUT,
            &grant,
            Some(json!({"permission": "maintain"}))
        )
        .await
        .0,
        204
    );
    let (status, permission, _) = c
        .call(
            "teams/check-permissions-for-repo-in-org",
            Method::GET,
            &grant,
            None,
        )
        .await;
    assert_eq!(
        (
            status,
            permission["permissions"]["maintain"].as_bool(),
            permission["permissions"]["admin"].as_bool()
        ),
        (200, Some(true), Some(false))
    );
    assert_eq!(
        c.call("teams/remove-repo-in-org", Method::DELETE, &grant, None)
            .await
            .0,
        204
    );
    assert_eq!(
        c.call(
            "teams/check-permissions-for-repo-in-org",
            Method::GET,
            &grant,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        c.call(
            "teams/remove-membership-for-user-in-org",
            Method::DELETE,
            &format!("{t}/memberships/ada"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        c.call("teams/delete-in-org", Method::DELETE, &t, None)
            .await
            .0,
        204
    );
    assert_eq!(
        c.call("teams/get-by-name", Method::GET, &t, None).await.0,
        404
    );
    assert_covers(&c, TEAMS);
    s.stop().await;
}

#[tokio::test]
async fn a_repository_from_a_template_gets_its_files_a_little_later() {
    let (_dir, s) = common::start_with(|config| {
        config.github_template_delay = std::time::Duration::from_millis(400);
    })
    .await;
    let c = client(&s);
    let org = GITHUB_ORG;
    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "paddock-template", "is_template": true})),
    )
    .await;
    let workflow = format!("/repos/{org}/paddock-template/contents/.github/workflows/deploy.yml");
    let file = json!({"message": "Add the deploy workflow", "content": B64.encode("on: push\n")});
    let (status, written, _) = c
        .call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &workflow,
            Some(file),
        )
        .await;
    assert_eq!(status, 201);
    let update = json!({"message": "Deploy on release too", "content": B64.encode("on: [push, release]\n"), "sha": written["content"]["sha"]});
    assert_eq!(
        c.call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &workflow,
            Some(update)
        )
        .await
        .0,
        200
    );
    let stale =
        json!({"message": "Stale", "content": B64.encode("x"), "sha": written["content"]["sha"]});
    assert_eq!(
        c.call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &workflow,
            Some(stale)
        )
        .await
        .0,
        409,
        "a stale sha conflicts"
    );
    let blind = json!({"message": "Overwrite", "content": B64.encode("x")});
    let (status, err, _) = c
        .call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &workflow,
            Some(blind),
        )
        .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (422, Some("Invalid request.\n\n\"sha\" wasn't supplied.")),
        "replacing a file takes its sha"
    );

    let (status, generated, _) = c
        .call(
            "repos/create-using-template",
            Method::POST,
            &format!("/repos/{org}/paddock-template/generate"),
            Some(json!({"owner": org, "name": "checkout", "private": true})),
        )
        .await;
    assert_eq!(
        (status, generated["name"].as_str()),
        (201, Some("checkout"))
    );
    let copied = format!("/repos/{org}/checkout/contents/.github/workflows/deploy.yml");
    assert_eq!(
        c.call("repos/get-content", Method::GET, &copied, None)
            .await
            .0,
        404,
        "the files are not there yet"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, content, _) = c
        .call("repos/get-content", Method::GET, &copied, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        B64.decode(content["content"].as_str().unwrap()).unwrap(),
        b"on: [push, release]\n"
    );
    // Branch protection on the default branch.
    let protection = format!("/repos/{org}/checkout/branches/main/protection");
    assert_eq!(
        c.call(
            "repos/get-branch-protection",
            Method::GET,
            &protection,
            None
        )
        .await
        .0,
        404
    );
    let rules = json!({"required_status_checks": null, "enforce_admins": true, "required_pull_request_reviews": {"required_approving_review_count": 1}, "restrictions": null});
    let (status, protected, _) = c
        .call(
            "repos/update-branch-protection",
            Method::PUT,
            &protection,
            Some(rules),
        )
        .await;
    assert_eq!(
        (status, protected["enforce_admins"]["enabled"].as_bool()),
        (200, Some(true))
    );
    let partial =
        json!({"required_status_checks": null, "enforce_admins": true, "restrictions": null});
    assert_eq!(
        c.call_invalid(
            "repos/update-branch-protection",
            Method::PUT,
            &protection,
            partial
        )
        .await
        .0,
        422
    );
    assert_eq!(
        c.call(
            "repos/get-branch-protection",
            Method::GET,
            &protection,
            None
        )
        .await
        .1["required_pull_request_reviews"]["required_approving_review_count"],
        1
    );
    assert_eq!(
        c.call(
            "repos/delete-branch-protection",
            Method::DELETE,
            &protection,
            None
        )
        .await
        .0,
        204
    );
    let not_a_template = c
        .call(
            "repos/create-using-template",
            Method::POST,
            &format!("/repos/{org}/checkout/generate"),
            Some(json!({"owner": org, "name": "x"})),
        )
        .await;
    assert_eq!(not_a_template.0, 422);
    assert_covers(&c, TEMPLATES_AND_PROTECTION);
    s.stop().await;
}

#[tokio::test]
async fn a_github_app_exchanges_its_jwt_for_an_installation_token() {
    let (_dir, s) = common::start().await;
    let env: std::collections::BTreeMap<_, _> = s.env().into_iter().collect();
    let (key_file, app_id) = (
        &env["PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE"],
        env["PADDOCK_SANDBOX_GITHUB_APP_ID"].parse::<i64>().unwrap(),
    );
    let mut c = client(&s);
    c.token = Some(app_jwt(key_file, app_id, 540));
    assert_eq!(
        c.call("apps/get-authenticated", Method::GET, "/app", None)
            .await
            .1["id"],
        json!(app_id)
    );
    let (_, installation, _) = c
        .call(
            "apps/get-org-installation",
            Method::GET,
            &format!("/orgs/{GITHUB_ORG}/installation"),
            None,
        )
        .await;
    let id = installation["id"].as_i64().unwrap();
    let (status, token, _) = c
        .call(
            "apps/create-installation-access-token",
            Method::POST,
            &format!("/app/installations/{id}/access_tokens"),
            None,
        )
        .await;
    assert_eq!(status, 201);
    // The installation token works on the API; the JWT does not, and a JWT that lives
    // too long is refused.
    let installation_token = token["token"].as_str().unwrap();
    let root = format!("{}/api/v3/orgs/{GITHUB_ORG}", s.base_url);
    assert_eq!(
        reqwest::Client::new()
            .get(&root)
            .bearer_auth(installation_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::Client::new()
            .get(&root)
            .bearer_auth(c.token.as_deref().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    c.token = Some(app_jwt(key_file, app_id, 3600));
    let (status, err, _) = c
        .send("apps/get-authenticated", Method::GET, "/app", None)
        .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (
            401,
            Some("'Expiration time' claim ('exp') is too far in the future")
        )
    );
    assert_covers(&c, GITHUB_APP);
    s.stop().await;
}

/// Sends `operation` with a query string (the contract client's `query` is appended to the
/// path it checks against the description).
async fn call_with_query(
    c: &mut Contract,
    operation: &str,
    path: &str,
    query: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    c.query = query.to_owned();
    let response = c.call(operation, Method::GET, path, None).await;
    c.query.clear();
    response
}

#[tokio::test]
async fn branches_are_refs_to_commits_and_pull_requests_compare_them() {
    let (_dir, s) = common::start().await;
    let mut c = client(&s);
    let org = GITHUB_ORG;
    let repo = format!("/repos/{org}/checkout");
    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "checkout"})),
    )
    .await;
    let refs = format!("{repo}/git/refs");
    let branch = |name: &str, sha: &Value| json!({"ref": format!("refs/heads/{name}"), "sha": sha});
    let (status, err, _) = c
        .call(
            "git/create-ref",
            Method::POST,
            &refs,
            Some(branch("feature", &json!("0".repeat(40)))),
        )
        .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (409, Some("Git Repository is empty.")),
        "a new repository has no commits to branch from"
    );

    // A file write is a commit on the default branch, which it creates.
    let write = |path: &str, text: &str, branch: Option<&str>, sha: Option<&Value>| {
        let mut body = json!({"message": format!("Write {path}"), "content": B64.encode(text)});
        if let Some(branch) = branch {
            body["branch"] = json!(branch);
        }
        if let Some(sha) = sha {
            body["sha"] = sha.clone();
        }
        body
    };
    let readme = format!("{repo}/contents/README.md");
    let (status, first, _) = c
        .call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &readme,
            Some(write("README.md", "# checkout\n", None, None)),
        )
        .await;
    assert_eq!(status, 201);
    let root = first["commit"]["sha"].clone();
    assert_eq!(first["commit"]["parents"], json!([]), "the first commit");

    let (status, created, headers) = c
        .call(
            "git/create-ref",
            Method::POST,
            &refs,
            Some(branch("feature", &root)),
        )
        .await;
    assert_eq!(
        (status, &created["ref"], &created["object"]["sha"]),
        (201, &json!("refs/heads/feature"), &root)
    );
    assert_eq!(headers["location"], created["url"].as_str().unwrap());
    for (body, message) in [
        (branch("feature", &root), "Reference already exists"),
        (
            branch("other", &json!("0".repeat(40))),
            "Object does not exist",
        ),
        (
            json!({"ref": "heads/other", "sha": root}),
            "Reference name must contain at least three slash-separated components.",
        ),
        (
            json!({"ref": "refs/heads/a..b", "sha": root}),
            "refs/heads/a..b is not a valid ref name.",
        ),
    ] {
        let (status, err, _) = c
            .call("git/create-ref", Method::POST, &refs, Some(body))
            .await;
        assert_eq!((status, err["message"].as_str()), (422, Some(message)));
    }

    let pulls = format!("{repo}/pulls");
    let open = |head: &str, base: &str| json!({"title": format!("{head} into {base}"), "head": head, "base": base});
    let (status, err, _) = c
        .call(
            "pulls/create",
            Method::POST,
            &pulls,
            Some(open("feature", "main")),
        )
        .await;
    assert_eq!(
        (status, err["errors"][0]["message"].as_str()),
        (422, Some("No commits between main and feature")),
        "a branch fresh from main brings nothing"
    );

    // A write to the branch changes the branch only.
    let workflow = format!("{repo}/contents/.github/workflows/deploy.yml");
    let (_, on_feature, _) = c
        .call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &workflow,
            Some(write("deploy.yml", "on: push\n", Some("feature"), None)),
        )
        .await;
    assert_eq!(on_feature["commit"]["parents"][0]["sha"], root);
    assert_eq!(
        c.call("repos/get-content", Method::GET, &workflow, None)
            .await
            .0,
        404,
        "main does not have it"
    );
    assert_eq!(
        call_with_query(&mut c, "repos/get-content", &workflow, "ref=feature")
            .await
            .0,
        200
    );
    let (status, err, _) =
        call_with_query(&mut c, "repos/get-content", &workflow, "ref=nowhere").await;
    assert_eq!(
        (status, err["message"].as_str()),
        (404, Some("No commit found for the ref nowhere"))
    );

    let (status, pull, headers) = c
        .call(
            "pulls/create",
            Method::POST,
            &pulls,
            Some(open("feature", "main")),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(headers["location"], pull["url"].as_str().unwrap());
    assert_eq!(
        (
            &pull["number"],
            &pull["state"],
            &pull["head"]["sha"],
            &pull["base"]["sha"]
        ),
        (
            &json!(1),
            &json!("open"),
            &on_feature["commit"]["sha"],
            &root
        )
    );
    assert_eq!(
        (&pull["commits"], &pull["changed_files"], &pull["mergeable"]),
        (&json!(1), &json!(1), &json!(true))
    );

    for (body, field, code) in [
        (open("feature", "main"), None, "custom"),
        (open("main", "main"), None, "custom"),
        (open("nowhere", "main"), Some("head"), "invalid"),
        (open("feature", "nowhere"), Some("base"), "invalid"),
        (
            json!({"head": "feature", "base": "main"}),
            Some("title"),
            "missing_field",
        ),
    ] {
        let (status, err, _) = c
            .call("pulls/create", Method::POST, &pulls, Some(body.clone()))
            .await;
        assert_eq!(
            (
                status,
                err["message"].as_str(),
                err["errors"][0]["code"].as_str()
            ),
            (422, Some("Validation Failed"), Some(code)),
            "{body}"
        );
        assert_eq!(err["errors"][0]["field"].as_str(), field, "{body}");
    }
    let (_, err, _) = c
        .call(
            "pulls/create",
            Method::POST,
            &pulls,
            Some(open("feature", "main")),
        )
        .await;
    assert_eq!(
        err["errors"][0]["message"],
        format!("A pull request already exists for {org}:feature.")
    );

    // Both branches change the README, differently: the second pull request conflicts.
    c.call(
        "git/create-ref",
        Method::POST,
        &refs,
        Some(branch("rename", &root)),
    )
    .await;
    let readme_sha = first["content"]["sha"].clone();
    c.call(
        "repos/create-or-update-file-contents",
        Method::PUT,
        &readme,
        Some(write(
            "README.md",
            "# renamed\n",
            Some("rename"),
            Some(&readme_sha),
        )),
    )
    .await;
    let (_, on_main, _) = c
        .call(
            "repos/create-or-update-file-contents",
            Method::PUT,
            &readme,
            Some(write("README.md", "# checkout!\n", None, Some(&readme_sha))),
        )
        .await;
    let (_, second, _) = c
        .call(
            "pulls/create",
            Method::POST,
            &pulls,
            Some(open("rename", "main")),
        )
        .await;
    assert_eq!(
        (
            &second["number"],
            &second["mergeable"],
            &second["mergeable_state"]
        ),
        (&json!(2), &json!(false), &json!("dirty"))
    );

    let (status, listed, _) = c.call("pulls/list", Method::GET, &pulls, None).await;
    let numbers: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["number"])
        .collect();
    assert_eq!(
        (status, numbers),
        (200, vec![&json!(2), &json!(1)]),
        "newest first"
    );
    assert_eq!(
        listed[1]["base"]["sha"], on_main["commit"]["sha"],
        "an open pull request follows its branches"
    );
    for (query, expected) in [
        ("state=closed", vec![]),
        ("state=all&direction=asc", vec![1, 2]),
        ("head=paddock-sandbox%3Afeature", vec![1]),
        ("base=release", vec![]),
    ] {
        let (_, listed, _) = call_with_query(&mut c, "pulls/list", &pulls, query).await;
        let numbers: Vec<i64> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["number"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, expected, "{query}");
    }
    let (_, page, headers) = call_with_query(&mut c, "pulls/list", &pulls, "per_page=1").await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    let link = headers["link"].to_str().unwrap();
    assert!(
        link.contains("page=2>; rel=\"next\"") && link.contains("per_page=1"),
        "{link}"
    );

    // `auto_init` makes the first commit: a README on the default branch.
    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "initialized", "description": "Ready", "auto_init": true})),
    )
    .await;
    let (status, readme, _) = c
        .call(
            "repos/get-content",
            Method::GET,
            &format!("/repos/{org}/initialized/contents/README.md"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        B64.decode(readme["content"].as_str().unwrap()).unwrap(),
        b"# initialized\nReady"
    );
    assert_covers(&c, BRANCHES_AND_PULL_REQUESTS);
    s.stop().await;
}

#[tokio::test]
async fn writes_beyond_the_minutes_budget_meet_the_secondary_rate_limit() {
    let (_dir, s) = common::start_with(|config| config.github_mutations_per_minute = 3).await;
    let http = reqwest::Client::new();
    let teams = format!("{}/api/v3/orgs/{GITHUB_ORG}/teams", s.base_url);
    let create = |name: &str| {
        http.post(&teams)
            .bearer_auth(&s.github_token)
            .json(&json!({ "name": name }))
            .send()
    };
    for name in ["one", "two", "three"] {
        assert_eq!(create(name).await.unwrap().status(), 201, "{name}");
    }
    let refused = create("four").await.unwrap();
    assert_eq!(refused.status(), 403);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "the window frees within the minute: {retry_after}"
    );
    let err: Value = refused.json().await.unwrap();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("You have exceeded a secondary rate limit"),
        "{err}"
    );
    assert!(
        err["documentation_url"]
            .as_str()
            .unwrap()
            .contains("secondary-rate-limits"),
        "{err}"
    );

    let read = |path: String| http.get(path).bearer_auth(&s.github_token).send();
    assert_eq!(
        read(format!("{teams}/four")).await.unwrap().status(),
        404,
        "the refused write did nothing"
    );
    let listed: Value = read(teams.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "reads still work");
    s.stop().await;
}

/// The repositories' names in a listing, in its order.
fn names(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .unwrap_or_else(|| panic!("a list: {listed}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn organization_repositories_are_listed_paged_and_edited_as_githubs_description_says() {
    let (_dir, s) = common::start().await;
    let mut c = client(&s);
    let org = GITHUB_ORG;
    let repos = format!("/orgs/{org}/repos");
    let (status, listed, headers) = c
        .call("repos/list-for-org", Method::GET, &repos, None)
        .await;
    assert_eq!((status, &listed), (200, &json!([])));
    assert!(headers.get("link").is_none(), "one page, no links");
    for body in [
        json!({"name": "alpha", "private": true}),
        json!({"name": "beta"}),
        json!({"name": "gamma", "visibility": "private", "description": "G"}),
    ] {
        let (status, created, _) = c
            .call("repos/create-in-org", Method::POST, &repos, Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        // Creation times are whole seconds; the listing orders within one by the
        // millisecond, so keep them apart.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let (_, listed, _) = c
        .call("repos/list-for-org", Method::GET, &repos, None)
        .await;
    assert_eq!(names(&listed), ["gamma", "beta", "alpha"], "newest first");
    assert_eq!(
        (&listed[1]["visibility"], &listed[1]["private"]),
        (&json!("public"), &json!(false)),
        "`private` defaults to false"
    );
    for (query, expected) in [
        ("direction=asc", vec!["alpha", "beta", "gamma"]),
        ("type=public", vec!["beta"]),
        ("type=private", vec!["gamma", "alpha"]),
        ("type=forks", vec![]),
        ("type=sources", vec!["gamma", "beta", "alpha"]),
        ("type=member", vec!["gamma", "beta", "alpha"]),
        ("sort=full_name", vec!["alpha", "beta", "gamma"]),
        (
            "sort=full_name&direction=desc",
            vec!["gamma", "beta", "alpha"],
        ),
    ] {
        let (status, listed, _) =
            call_with_query(&mut c, "repos/list-for-org", &repos, query).await;
        assert_eq!((status, names(&listed)), (200, expected), "{query}");
    }
    for query in ["type=everything", "sort=stars", "direction=up"] {
        let (status, err, _) = call_with_query(&mut c, "repos/list-for-org", &repos, query).await;
        assert_eq!(
            (status, err["message"].as_str()),
            (422, Some("Validation Failed")),
            "{query}"
        );
    }

    // Pages, and the `Link` header that walks them.
    let (_, first, headers) = call_with_query(
        &mut c,
        "repos/list-for-org",
        &repos,
        "sort=full_name&per_page=2",
    )
    .await;
    assert_eq!(names(&first), ["alpha", "beta"]);
    let link = headers["link"].to_str().unwrap();
    let url = format!(
        "{}/api/v3/orgs/{org}/repos?sort=full_name&per_page=2",
        s.base_url
    );
    assert_eq!(
        link,
        format!("<{url}&page=2>; rel=\"next\", <{url}&page=2>; rel=\"last\"")
    );
    let (_, second, headers) = call_with_query(
        &mut c,
        "repos/list-for-org",
        &repos,
        "sort=full_name&per_page=2&page=2",
    )
    .await;
    assert_eq!(names(&second), ["gamma"]);
    assert_eq!(
        headers["link"].to_str().unwrap(),
        format!("<{url}&page=1>; rel=\"prev\", <{url}&page=1>; rel=\"first\"")
    );
    let (_, beyond, _) =
        call_with_query(&mut c, "repos/list-for-org", &repos, "per_page=2&page=3").await;
    assert_eq!(beyond, json!([]));

    // Editing: what changes shows in the repository and in the listing.
    let alpha = format!("/repos/{org}/alpha");
    let (status, edited, _) = c
        .call(
            "repos/update",
            Method::PATCH,
            &alpha,
            Some(json!({"description": "The first", "homepage": "https://alpha.example", "visibility": "public", "has_wiki": true, "is_template": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            &edited["description"],
            &edited["homepage"],
            &edited["visibility"],
            &edited["private"],
            &edited["has_wiki"],
            &edited["is_template"]
        ),
        (
            &json!("The first"),
            &json!("https://alpha.example"),
            &json!("public"),
            &json!(false),
            &json!(true),
            &json!(true)
        )
    );
    let (_, got, _) = c.call("repos/get", Method::GET, &alpha, None).await;
    assert_eq!(
        (&got["description"], &got["visibility"]),
        (&json!("The first"), &json!("public"))
    );
    let (_, listed, _) = call_with_query(&mut c, "repos/list-for-org", &repos, "type=public").await;
    assert_eq!(names(&listed), ["beta", "alpha"]);
    let (_, listed, _) =
        call_with_query(&mut c, "repos/list-for-org", &repos, "sort=updated").await;
    assert_eq!(
        names(&listed)[0],
        "alpha",
        "the one updated last comes first"
    );
    let (status, edited, _) = c
        .call(
            "repos/update",
            Method::PATCH,
            &alpha,
            Some(json!({"private": true})),
        )
        .await;
    assert_eq!((status, &edited["visibility"]), (200, &json!("private")));

    // What the sandbox cannot do, or the description refuses, fails in GitHub's shape.
    for body in [
        json!({"name": "renamed"}),
        json!({"default_branch": "trunk"}),
        json!({"archived": true}),
    ] {
        let (status, err, _) = c
            .call("repos/update", Method::PATCH, &alpha, Some(body.clone()))
            .await;
        assert_eq!(
            (status, err["errors"][0]["code"].as_str()),
            (422, Some("custom")),
            "{body}"
        );
    }
    let (status, err, _) = c
        .call_invalid(
            "repos/update",
            Method::PATCH,
            &alpha,
            json!({"visibility": "secret"}),
        )
        .await;
    assert_eq!(
        (status, err["errors"][0]["field"].as_str()),
        (422, Some("visibility"))
    );
    let (status, err, _) = c
        .call(
            "repos/update",
            Method::PATCH,
            &format!("/repos/{org}/nowhere"),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!((status, err["message"].as_str()), (404, Some("Not Found")));
    let (status, _, _) = c
        .call(
            "repos/list-for-org",
            Method::GET,
            "/orgs/elsewhere/repos",
            None,
        )
        .await;
    assert_eq!(status, 404, "another organization");
    assert_covers(&c, LISTING_AND_EDITING_REPOSITORIES);
    s.stop().await;
}

#[tokio::test]
async fn deployment_branch_policies_match_githubs_description() {
    let (_dir, s) = common::start().await;
    let mut c = client(&s);
    // A pattern the environment has already is answered with a redirect to it: see it.
    c.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let org = GITHUB_ORG;
    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "checkout"})),
    )
    .await;
    let env = format!("/repos/{org}/checkout/environments/prod");
    let policies = format!("{env}/deployment-branch-policies");
    let protect = |custom: bool| json!({"deployment_branch_policy": {"protected_branches": !custom, "custom_branch_policies": custom}});
    assert_eq!(
        c.call(
            "repos/list-deployment-branch-policies",
            Method::GET,
            &policies,
            None
        )
        .await
        .0,
        404,
        "no environment yet"
    );
    c.call(
        "repos/create-or-update-environment",
        Method::PUT,
        &env,
        Some(protect(false)),
    )
    .await;
    let main = json!({"name": "main", "type": "branch"});
    for (operation, method, body) in [
        ("repos/list-deployment-branch-policies", Method::GET, None),
        (
            "repos/create-deployment-branch-policy",
            Method::POST,
            Some(main.clone()),
        ),
    ] {
        assert_eq!(
            c.call(operation, method, &policies, body).await.0,
            404,
            "{operation}: protected branches, not custom policies"
        );
    }
    c.call(
        "repos/create-or-update-environment",
        Method::PUT,
        &env,
        Some(protect(true)),
    )
    .await;
    let (status, listed, _) = c
        .call(
            "repos/list-deployment-branch-policies",
            Method::GET,
            &policies,
            None,
        )
        .await;
    assert_eq!(
        (status, &listed),
        (200, &json!({"total_count": 0, "branch_policies": []}))
    );

    let (status, created, _) = c
        .call(
            "repos/create-deployment-branch-policy",
            Method::POST,
            &policies,
            Some(json!({"name": "release/*"})),
        )
        .await;
    assert_eq!(
        (status, &created["name"], &created["type"]),
        (200, &json!("release/*"), &json!("branch")),
        "a branch pattern unless told otherwise"
    );
    let (_, on_main, _) = c
        .call(
            "repos/create-deployment-branch-policy",
            Method::POST,
            &policies,
            Some(main.clone()),
        )
        .await;
    let (_, tag, _) = c
        .call(
            "repos/create-deployment-branch-policy",
            Method::POST,
            &policies,
            Some(json!({"name": "v*", "type": "tag"})),
        )
        .await;
    assert_eq!(tag["type"], "tag");
    let (status, again, headers) = c
        .call(
            "repos/create-deployment-branch-policy",
            Method::POST,
            &policies,
            Some(main),
        )
        .await;
    let location = headers["location"].to_str().unwrap().to_owned();
    assert_eq!((status, &again), (303, &Value::Null));
    assert_eq!(
        location,
        format!("{}/api/v3{policies}/{}", s.base_url, on_main["id"])
    );
    for invalid in [
        json!({"type": "branch"}),
        json!({"name": "main", "type": "commit"}),
    ] {
        let (status, err, _) = c
            .call_invalid(
                "repos/create-deployment-branch-policy",
                Method::POST,
                &policies,
                invalid.clone(),
            )
            .await;
        assert_eq!(
            (status, err["message"].as_str()),
            (422, Some("Validation Failed")),
            "{invalid}"
        );
    }

    let (_, listed, _) = c
        .call(
            "repos/list-deployment-branch-policies",
            Method::GET,
            &policies,
            None,
        )
        .await;
    assert_eq!(listed["total_count"], 3);
    let (_, page, headers) = call_with_query(
        &mut c,
        "repos/list-deployment-branch-policies",
        &policies,
        "per_page=2",
    )
    .await;
    assert_eq!(
        (
            &page["total_count"],
            page["branch_policies"].as_array().unwrap().len()
        ),
        (&json!(3), 2)
    );
    assert!(
        headers["link"]
            .to_str()
            .unwrap()
            .contains("per_page=2&page=2>; rel=\"next\""),
        "{:?}",
        headers["link"]
    );
    let (_, rest, _) = call_with_query(
        &mut c,
        "repos/list-deployment-branch-policies",
        &policies,
        "per_page=2&page=2",
    )
    .await;
    assert_eq!(rest["branch_policies"].as_array().unwrap().len(), 1);

    // Beyond the cut description, as Paddock's provider uses them: one policy, read and
    // deleted by id.
    let http = reqwest::Client::new();
    let read = http
        .get(&location)
        .bearer_auth(&s.github_token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap(), on_main);
    let deleted = http
        .delete(&location)
        .bearer_auth(&s.github_token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (_, listed, _) = c
        .call(
            "repos/list-deployment-branch-policies",
            Method::GET,
            &policies,
            None,
        )
        .await;
    assert_eq!(listed["total_count"], 2);

    // Back to protected branches: the custom policies go.
    c.call(
        "repos/create-or-update-environment",
        Method::PUT,
        &env,
        Some(protect(false)),
    )
    .await;
    c.call(
        "repos/create-or-update-environment",
        Method::PUT,
        &env,
        Some(protect(true)),
    )
    .await;
    let (_, listed, _) = c
        .call(
            "repos/list-deployment-branch-policies",
            Method::GET,
            &policies,
            None,
        )
        .await;
    assert_eq!(listed["total_count"], 0);
    assert_covers(&c, DEPLOYMENT_BRANCH_POLICIES);
    s.stop().await;
}

/// Asserts GitHub's error shape beyond what the contract client checked (the body against
/// the declared error or `basic-error`/`validation-error`): the status, and the message.
fn assert_error(response: (u16, Value, reqwest::header::HeaderMap), status: u16, message: &str) {
    let (got, body, _) = response;
    assert_eq!(
        (got, body["message"].as_str()),
        (status, Some(message)),
        "{body}"
    );
    assert!(
        body["documentation_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://docs.github.com/")),
        "{body}"
    );
}

#[tokio::test]
async fn refusals_have_githubs_error_shapes() {
    let (_dir, s) = common::start().await;
    let c = client(&s);
    let org = GITHUB_ORG;
    let (nf, vf) = ("Not Found", "Validation Failed");
    assert_error(
        c.call("orgs/get", Method::GET, "/orgs/elsewhere", None)
            .await,
        404,
        nf,
    );

    // Teams: the description's enums are the API's; names are unique; a rename is refused.
    let teams = format!("/orgs/{org}/teams");
    assert_error(
        c.call_invalid(
            "teams/create",
            Method::POST,
            &teams,
            json!({"name": "Ops", "privacy": "open"}),
        )
        .await,
        422,
        vf,
    );
    let (status, team, _) = c
        .call(
            "teams/create",
            Method::POST,
            &teams,
            Some(json!({"name": "Ops", "notification_setting": "notifications_disabled"})),
        )
        .await;
    assert_eq!(
        (status, &team["privacy"], &team["notification_setting"]),
        (201, &json!("secret"), &json!("notifications_disabled"))
    );
    let ops = format!("{teams}/ops");
    assert_error(
        c.call_invalid(
            "teams/update-in-org",
            Method::PATCH,
            &ops,
            json!({"privacy": "open"}),
        )
        .await,
        422,
        vf,
    );
    assert_error(
        c.call(
            "teams/update-in-org",
            Method::PATCH,
            &ops,
            Some(json!({"name": "Operations"})),
        )
        .await,
        422,
        vf,
    );
    assert_eq!(
        c.call("teams/get-by-name", Method::GET, &ops, None).await.1["privacy"],
        "secret",
        "a refused edit changes nothing"
    );
    assert_error(
        c.call(
            "teams/update-in-org",
            Method::PATCH,
            &format!("{teams}/nobody"),
            Some(json!({"description": "x"})),
        )
        .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "teams/get-membership-for-user-in-org",
            Method::GET,
            &format!("{ops}/memberships/ada"),
            None,
        )
        .await,
        404,
        nf,
    );

    let repo = format!("/repos/{org}/checkout");
    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "checkout"})),
    )
    .await;
    assert_error(
        c.call(
            "teams/add-or-update-repo-permissions-in-org",
            Method::PUT,
            &format!("{ops}/repos/{org}/checkout"),
            Some(json!({"permission": "write"})),
        )
        .await,
        422,
        vf,
    );
    assert_error(
        c.call(
            "teams/add-or-update-repo-permissions-in-org",
            Method::PUT,
            &format!("{ops}/repos/{org}/nowhere"),
            Some(json!({"permission": "push"})),
        )
        .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "teams/delete-in-org",
            Method::DELETE,
            &format!("{teams}/nobody"),
            None,
        )
        .await,
        404,
        nf,
    );

    // Repositories.
    assert_error(
        c.call(
            "repos/delete",
            Method::DELETE,
            &format!("/repos/{org}/nowhere"),
            None,
        )
        .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "repos/create-using-template",
            Method::POST,
            &format!("/repos/{org}/nowhere/generate"),
            Some(json!({"name": "copy"})),
        )
        .await,
        404,
        nf,
    );
    c.call(
        "repos/create-or-update-environment",
        Method::PUT,
        &format!("{repo}/environments/prod"),
        Some(json!({})),
    )
    .await;
    assert_error(
        c.call(
            "repos/delete-branch-protection",
            Method::DELETE,
            &format!("{repo}/branches/main/protection"),
            None,
        )
        .await,
        404,
        "Branch not found",
    );

    // Environments, their secrets and variables.
    let missing = format!("{repo}/environments/nowhere");
    assert_error(
        c.call("repos/get-environment", Method::GET, &missing, None)
            .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "repos/delete-an-environment",
            Method::DELETE,
            &missing,
            None,
        )
        .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "actions/get-environment-public-key",
            Method::GET,
            &format!("{missing}/secrets/public-key"),
            None,
        )
        .await,
        404,
        nf,
    );
    for wait_timer in [-1, 43_201] {
        assert_error(
            c.call(
                "repos/create-or-update-environment",
                Method::PUT,
                &format!("{repo}/environments/prod"),
                Some(json!({ "wait_timer": wait_timer })),
            )
            .await,
            422,
            vf,
        );
    }
    assert_error(
        c.call(
            "repos/create-or-update-environment",
            Method::PUT,
            &format!("{repo}/environments/prod"),
            Some(json!({"deployment_branch_policy": {"protected_branches": true, "custom_branch_policies": true}})),
        )
        .await,
        422,
        vf,
    );
    let env = format!("{repo}/environments/prod");
    let (_, key, _) = c
        .call(
            "actions/get-environment-public-key",
            Method::GET,
            &format!("{env}/secrets/public-key"),
            None,
        )
        .await;
    let sealed = json!({"encrypted_value": seal(key["key"].as_str().unwrap(), "v"), "key_id": key["key_id"]});
    for name in ["GITHUB_TOKEN", "1ST", "WITH-DASH"] {
        assert_error(
            c.call(
                "actions/create-or-update-environment-secret",
                Method::PUT,
                &format!("{env}/secrets/{name}"),
                Some(sealed.clone()),
            )
            .await,
            422,
            vf,
        );
    }
    let stale = json!({"encrypted_value": sealed["encrypted_value"], "key_id": "not-the-key"});
    assert_error(
        c.call(
            "actions/create-or-update-environment-secret",
            Method::PUT,
            &format!("{env}/secrets/TOKEN"),
            Some(stale),
        )
        .await,
        422,
        vf,
    );
    assert_error(
        c.call(
            "actions/get-environment-secret",
            Method::GET,
            &format!("{env}/secrets/TOKEN"),
            None,
        )
        .await,
        404,
        nf,
    );
    let vars = format!("{env}/variables");
    assert_error(
        c.call_invalid(
            "actions/create-environment-variable",
            Method::POST,
            &vars,
            json!({"name": "STAGE"}),
        )
        .await,
        422,
        vf,
    );
    assert_error(
        c.call(
            "actions/create-environment-variable",
            Method::POST,
            &vars,
            Some(json!({"name": "GITHUB_STAGE", "value": "x"})),
        )
        .await,
        422,
        vf,
    );
    assert_error(
        c.call(
            "actions/create-environment-variable",
            Method::POST,
            &format!("{missing}/variables"),
            Some(json!({"name": "STAGE", "value": "x"})),
        )
        .await,
        404,
        nf,
    );
    let stage = format!("{vars}/STAGE");
    assert_error(
        c.call(
            "actions/get-environment-variable",
            Method::GET,
            &stage,
            None,
        )
        .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "actions/update-environment-variable",
            Method::PATCH,
            &stage,
            Some(json!({"value": "y"})),
        )
        .await,
        404,
        nf,
    );
    assert_error(
        c.call(
            "actions/delete-environment-variable",
            Method::DELETE,
            &stage,
            None,
        )
        .await,
        404,
        nf,
    );
    assert_covers(&c, ERRORS);
    s.stop().await;
}

/// The `rel`s of a `Link` header and the page each points to.
fn rels(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let Some(link) = headers.get("link") else {
        return Vec::new();
    };
    link.to_str()
        .unwrap()
        .split(", ")
        .map(|part| {
            let (url, rel) = part.split_once("; rel=").unwrap();
            let page = url.trim_matches(['<', '>']).rsplit("page=").next().unwrap();
            (rel.trim_matches('"').to_owned(), page.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn lists_come_in_pages_as_github_pages_them() {
    let (_dir, s) = common::start().await;
    let mut c = client(&s);
    let org = GITHUB_ORG;
    let pages = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(r, p)| ((*r).to_owned(), (*p).to_owned()))
            .collect()
    };

    let teams = format!("/orgs/{org}/teams");
    for name in ["a", "b", "c"] {
        c.call(
            "teams/create",
            Method::POST,
            &teams,
            Some(json!({ "name": name })),
        )
        .await;
    }
    let (_, listed, headers) = call_with_query(&mut c, "teams/list", &teams, "per_page=2").await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(rels(&headers), pages(&[("next", "2"), ("last", "2")]));
    let (_, listed, headers) =
        call_with_query(&mut c, "teams/list", &teams, "per_page=2&page=2").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(rels(&headers), pages(&[("prev", "1"), ("first", "1")]));

    c.call(
        "repos/create-in-org",
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "checkout"})),
    )
    .await;
    let repo = format!("/repos/{org}/checkout");
    for env in ["dev", "prod", "test"] {
        c.call(
            "repos/create-or-update-environment",
            Method::PUT,
            &format!("{repo}/environments/{env}"),
            Some(json!({})),
        )
        .await;
    }
    let (_, listed, headers) = call_with_query(
        &mut c,
        "repos/get-all-environments",
        &format!("{repo}/environments"),
        "per_page=1&page=2",
    )
    .await;
    assert_eq!(
        (&listed["total_count"], &listed["environments"][0]["name"]),
        (&json!(3), &json!("prod"))
    );
    assert_eq!(
        rels(&headers),
        pages(&[("prev", "1"), ("next", "3"), ("last", "3"), ("first", "1")])
    );

    let env = format!("{repo}/environments/prod");
    let (_, key, _) = c
        .call(
            "actions/get-environment-public-key",
            Method::GET,
            &format!("{env}/secrets/public-key"),
            None,
        )
        .await;
    for name in ["ONE", "TWO"] {
        let sealed = json!({"encrypted_value": seal(key["key"].as_str().unwrap(), name), "key_id": key["key_id"]});
        c.call(
            "actions/create-or-update-environment-secret",
            Method::PUT,
            &format!("{env}/secrets/{name}"),
            Some(sealed),
        )
        .await;
    }
    let (_, listed, headers) = call_with_query(
        &mut c,
        "actions/list-environment-secrets",
        &format!("{env}/secrets"),
        "per_page=1",
    )
    .await;
    assert_eq!(
        (
            &listed["total_count"],
            listed["secrets"].as_array().unwrap().len()
        ),
        (&json!(2), 1)
    );
    assert_eq!(rels(&headers), pages(&[("next", "2"), ("last", "2")]));

    // Variables come ten to a page unless asked, and at most thirty.
    let vars = format!("{env}/variables");
    for n in 0..11 {
        c.call(
            "actions/create-environment-variable",
            Method::POST,
            &vars,
            Some(json!({"name": format!("V{n:02}"), "value": "x"})),
        )
        .await;
    }
    let (_, listed, headers) = c
        .call(
            "actions/list-environment-variables",
            Method::GET,
            &vars,
            None,
        )
        .await;
    assert_eq!(
        (
            &listed["total_count"],
            listed["variables"].as_array().unwrap().len()
        ),
        (&json!(11), 10)
    );
    assert_eq!(rels(&headers), pages(&[("next", "2"), ("last", "2")]));
    let (_, listed, headers) = call_with_query(
        &mut c,
        "actions/list-environment-variables",
        &vars,
        "per_page=100",
    )
    .await;
    assert_eq!(listed["variables"].as_array().unwrap().len(), 11);
    assert!(rels(&headers).is_empty(), "all on one page");
    assert_covers(&c, PAGES);
    s.stop().await;
}
