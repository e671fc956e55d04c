//! The GitHub provider against the sandbox's GitHub: each type created, read, updated,
//! imported by id, deleted (twice); membership following its lists; a repository from a
//! template handed over with its files; sealed secrets opened to exactly what was sent;
//! the GitHub App path; retried creates adopting; errors with GitHub's code and a hint.

mod common;

use std::time::Duration;

use paddock_engine::{Props, Provider, Value};
use paddock_providers::family::Family;
use paddock_providers::github::{GitHubAuth, GitHubConfig, provider};
use paddock_sandbox::{GITHUB_ORG, Sandbox};
use reqwest::Method;
use serde_json::{Value as Json, json};

fn github(s: &Sandbox) -> Family {
    provider(&common::github(s)).unwrap()
}

/// Makes a user of the sandbox's GitHub.
async fn user(s: &Sandbox, login: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/github/users", s.control_url))
        .json(&json!({ "login": login }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{login}: {}",
        response.status()
    );
}

/// A request to the sandbox's GitHub as its org admin: (status, body).
async fn api(s: &Sandbox, method: Method, path: &str, body: Option<Json>) -> (u16, Json) {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!("{}{}{path}", s.base_url, paddock_sandbox::GITHUB_ROOT),
        )
        .bearer_auth(&s.github_token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Json::Null))
}

async fn get(s: &Sandbox, path: &str) -> (u16, Json) {
    api(s, Method::GET, path, None).await
}

/// The logins of a team's members in `role`, sorted.
async fn roster(s: &Sandbox, slug: &str, role: &str) -> Vec<String> {
    let (status, users) = get(
        s,
        &format!("/orgs/{GITHUB_ORG}/teams/{slug}/members?role={role}"),
    )
    .await;
    assert_eq!(status, 200);
    let mut logins: Vec<String> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["login"].as_str().unwrap().to_owned())
        .collect();
    logins.sort();
    logins
}

/// A template repository holding `README.md`.
async fn template(s: &Sandbox, name: &str) {
    let (status, _) = api(
        s,
        Method::POST,
        &format!("/orgs/{GITHUB_ORG}/repos"),
        Some(json!({"name": name, "is_template": true})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = api(
        s,
        Method::PUT,
        &format!("/repos/{GITHUB_ORG}/{name}/contents/README.md"),
        Some(json!({"message": "Add README", "content": "IyBUZW1wbGF0ZQo="})),
    )
    .await;
    assert_eq!(status, 201);
}

/// A repository with a commit on `main`, made through the provider.
async fn repository_with_branch(s: &Sandbox, p: &dyn Provider, name: &str) {
    common::create(p, "github:repository", json!({ "name": name })).await;
    let (status, _) = api(
        s,
        Method::PUT,
        &format!("/repos/{GITHUB_ORG}/{name}/contents/README.md"),
        Some(json!({"message": "Start", "content": "aGk="})),
    )
    .await;
    assert_eq!(status, 201);
}

async fn read(p: &dyn Provider, ty: &str, id: &str, inputs: &Props) -> Option<(Props, Props)> {
    p.read(ty, id, inputs)
        .await
        .unwrap_or_else(|e| panic!("read {ty} {id}: {e}"))
        .map(|r| (r.inputs.expect("inputs read back"), r.outputs))
}

/// Reads with the recorded inputs (no drift: they come back as they were) and with none
/// (an import: `expected` is what is rebuilt from GitHub).
async fn assert_reads(p: &dyn Provider, ty: &str, id: &str, recorded: &Props, expected: Json) {
    let (inputs, _) = read(p, ty, id, recorded).await.expect("exists");
    assert_eq!(&inputs, recorded, "{ty} {id} read with its recorded inputs");
    let (imported, _) = read(p, ty, id, &Props::new()).await.expect("exists");
    assert_eq!(imported, common::props(expected), "{ty} {id} imported");
}

async fn update(p: &dyn Provider, ty: &str, id: &str, olds: &Props, news: Json) -> (Props, Props) {
    let news = common::props(news);
    assert!(p.check(ty, &news).await.is_empty());
    let urn = format!("urn:test:{ty}");
    let outputs = p
        .update(common::resource(ty, &urn), id, olds, &news)
        .await
        .unwrap_or_else(|e| panic!("update {ty} {id}: {e}"));
    (news, outputs)
}

/// Deletes twice (the second finds it gone), then the object reads as gone.
async fn delete_twice(p: &dyn Provider, ty: &str, id: &str, inputs: &Props) {
    p.delete(ty, id, inputs).await.unwrap();
    p.delete(ty, id, inputs).await.unwrap();
    assert!(
        read(p, ty, id, inputs).await.is_none(),
        "{ty} {id} still reads"
    );
}

fn text(props: &Props, name: &str) -> String {
    props
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string `{name}` in {props:?}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teams_membership_follows_its_lists() {
    let (_dir, s) = common::sandbox().await;
    for login in ["ada", "grace", "linus"] {
        user(&s, login).await;
    }
    let p = github(&s);
    let inputs = json!({"name": "Platform Team", "description": "Runs the platform", "maintainers": ["ada"], "members": ["grace"]});
    let (id, outputs) = common::create(&p, "github:team", inputs.clone()).await;
    assert_eq!(id, text(&outputs, "slug"));
    assert!(outputs.get("teamId").and_then(Value::as_i64).is_some());
    // The creator GitHub made maintainer is gone: the lists are the membership.
    assert_eq!(roster(&s, &id, "maintainer").await, ["ada"]);
    assert_eq!(roster(&s, &id, "member").await, ["grace"]);
    let (_, team) = get(&s, &format!("/orgs/{GITHUB_ORG}/teams/{id}")).await;
    assert_eq!(team["privacy"], "closed");

    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:team", &id, &recorded, inputs).await;

    let (news, _) = update(
        &p,
        "github:team",
        &id,
        &recorded,
        json!({"name": "Platform Team", "privacy": "secret", "maintainers": ["grace"], "members": ["linus", "ada"]}),
    )
    .await;
    assert_eq!(roster(&s, &id, "maintainer").await, ["grace"]);
    assert_eq!(roster(&s, &id, "member").await, ["ada", "linus"]);
    let (_, team) = get(&s, &format!("/orgs/{GITHUB_ORG}/teams/{id}")).await;
    assert_eq!(team["privacy"], "secret");
    assert_eq!(
        team["description"], "[paddock stack=urn token=token-1]",
        "no description but Paddock's mark"
    );
    assert_reads(
        &p,
        "github:team",
        &id,
        &news,
        json!({"name": "Platform Team", "privacy": "secret", "maintainers": ["grace"], "members": ["ada", "linus"]}),
    )
    .await;

    // Membership changed behind Paddock's back is drift a read reports.
    api(
        &s,
        Method::DELETE,
        &format!("/orgs/{GITHUB_ORG}/teams/{id}/memberships/linus"),
        None,
    )
    .await;
    let (drifted, _) = read(&p, "github:team", &id, &news).await.unwrap();
    assert_eq!(
        drifted.get("members"),
        Some(&Value::List(vec!["ada".into()]))
    );

    delete_twice(&p, "github:team", &id, &news).await;
    assert_eq!(common::count(&s, "github", "team").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_memberships_one_by_one() {
    let (_dir, s) = common::sandbox().await;
    user(&s, "ada").await;
    let p = github(&s);
    // A team listing no one leaves its membership to `github:teamMembership`.
    let (team, _) = common::create(&p, "github:team", json!({"name": "ops"})).await;
    let inputs = json!({"team": team, "username": "ada"});
    let (id, outputs) = common::create(&p, "github:teamMembership", inputs.clone()).await;
    assert_eq!(id, "ops/ada");
    assert_eq!(text(&outputs, "state"), "active");
    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:teamMembership", &id, &recorded, inputs).await;

    let (news, _) = update(
        &p,
        "github:teamMembership",
        &id,
        &recorded,
        json!({"team": "ops", "username": "ada", "role": "maintainer"}),
    )
    .await;
    let (_, membership) = get(&s, &format!("/orgs/{GITHUB_ORG}/teams/ops/memberships/ada")).await;
    assert_eq!(membership["role"], "maintainer");
    assert_reads(
        &p,
        "github:teamMembership",
        &id,
        &news,
        json!({"team": "ops", "username": "ada", "role": "maintainer"}),
    )
    .await;

    // Updating the team leaves the memberships it does not list alone.
    update(
        &p,
        "github:team",
        &team,
        &common::props(json!({"name": "ops"})),
        json!({"name": "ops", "description": "On call"}),
    )
    .await;
    assert!(
        roster(&s, &team, "maintainer")
            .await
            .contains(&"ada".to_owned())
    );

    delete_twice(&p, "github:teamMembership", &id, &news).await;
    assert!(!roster(&s, &team, "all").await.contains(&"ada".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repositories_are_created_read_updated_imported_and_deleted() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    let inputs = json!({"name": "payments", "description": "Takes the money"});
    let (id, outputs) = common::create(&p, "github:repository", inputs.clone()).await;
    assert_eq!(id, "payments");
    assert_eq!(text(&outputs, "fullName"), format!("{GITHUB_ORG}/payments"));
    assert_eq!(text(&outputs, "defaultBranch"), "main");
    assert!(text(&outputs, "htmlUrl").ends_with("/payments"));
    assert!(outputs.get("repoId").and_then(Value::as_i64).is_some());
    let (_, repo) = get(&s, &format!("/repos/{GITHUB_ORG}/payments")).await;
    assert_eq!(repo["visibility"], "private");

    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:repository", &id, &recorded, inputs).await;

    for visibility in ["internal", "public"] {
        let news = json!({"name": "payments", "description": "Takes the money, safely", "visibility": visibility});
        let (news, _) = update(&p, "github:repository", &id, &recorded, news.clone()).await;
        let (_, repo) = get(&s, &format!("/repos/{GITHUB_ORG}/payments")).await;
        assert_eq!(repo["visibility"], visibility);
        assert_eq!(
            repo["description"],
            "Takes the money, safely [paddock stack=urn token=token-1]"
        );
        let (read_back, _) = read(&p, "github:repository", &id, &news).await.unwrap();
        assert_eq!(read_back, news);
    }
    let recorded = common::props(
        json!({"name": "payments", "description": "Takes the money, safely", "visibility": "public"}),
    );
    delete_twice(&p, "github:repository", &id, &recorded).await;
    assert_eq!(common::count(&s, "github", "repo").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_from_a_template_has_its_files_when_create_returns() {
    let (_dir, s) =
        common::sandbox_with(|c| c.github_template_delay = Duration::from_millis(1500)).await;
    template(&s, "service-template").await;
    let p = github(&s);
    let template_name = format!("{GITHUB_ORG}/service-template");
    let inputs = json!({"name": "billing", "template": template_name});
    let (id, outputs) = common::create(&p, "github:repository", inputs.clone()).await;
    assert_eq!(text(&outputs, "defaultBranch"), "main");
    let (status, file) = get(
        &s,
        &format!("/repos/{GITHUB_ORG}/billing/contents/README.md"),
    )
    .await;
    assert_eq!(status, 200, "the template's files are there: {file}");
    assert_eq!(file["content"], "IyBUZW1wbGF0ZQo=");
    let (inputs_read, _) = read(&p, "github:repository", &id, &common::props(inputs.clone()))
        .await
        .unwrap();
    assert_eq!(inputs_read, common::props(inputs));

    // Files that take longer than the provider may wait: a clear, retryable error; the
    // retry adopts the repository and waits again.
    let impatient = provider(&GitHubConfig {
        template_wait: Duration::from_millis(200),
        ..common::github(&s)
    })
    .unwrap();
    let inputs = common::props(json!({"name": "ledger", "template": template_name}));
    let error = impatient
        .create(common::resource("github:repository", "urn:ledger"), &inputs)
        .await
        .unwrap_err();
    assert_eq!(error.code, "TemplateNotReady");
    assert!(error.retryable);
    assert!(
        error.message.contains("ledger") && error.message.contains("service-template"),
        "{error}"
    );
    assert!(error.hint.is_some());
    let (id, _) = common::create(
        &p,
        "github:repository",
        json!({"name": "ledger", "template": template_name}),
    )
    .await;
    assert_eq!(id, "ledger");
    assert_eq!(
        get(
            &s,
            &format!("/repos/{GITHUB_ORG}/ledger/contents/README.md")
        )
        .await
        .0,
        200
    );
    assert_eq!(common::count(&s, "github", "repo").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_a_template_repository_reach_the_repositories_generated_from_it() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    let repo = json!({"name": "golden", "isTemplate": true});
    let (repo_id, _) = common::create(&p, "github:repository", repo.clone()).await;
    assert_eq!(
        get(&s, &format!("/repos/{GITHUB_ORG}/golden")).await.1["is_template"],
        true
    );
    assert_reads(
        &p,
        "github:repository",
        &repo_id,
        &common::props(repo.clone()),
        repo,
    )
    .await;

    let workflow = "name: deploy\non: push\n";
    let inputs = json!({"repository": "golden", "path": ".github/workflows/deploy.yml", "content": workflow, "message": "Add the workflow"});
    let (id, outputs) = common::create(&p, "github:file", inputs.clone()).await;
    assert_eq!(id, "golden/.github/workflows/deploy.yml");
    assert!(!text(&outputs, "sha").is_empty());
    let contents = format!("/repos/{GITHUB_ORG}/golden/contents/.github/workflows/deploy.yml");
    assert_eq!(get(&s, &contents).await.0, 200);
    let recorded = common::props(inputs);
    let (read_back, _) = read(&p, "github:file", &id, &recorded).await.unwrap();
    assert_eq!(read_back, recorded);
    let (imported, _) = read(&p, "github:file", &id, &Props::new()).await.unwrap();
    assert_eq!(
        imported,
        common::props(
            json!({"repository": "golden", "path": ".github/workflows/deploy.yml", "content": workflow})
        )
    );
    // Writing what is already there is adopting it: no new commit.
    let (again, _) = common::create(&p, "github:file", json!({"repository": "golden", "path": ".github/workflows/deploy.yml", "content": workflow})).await;
    assert_eq!(again, id);

    let changed = "name: deploy\non: [push, workflow_dispatch]\n";
    let news =
        json!({"repository": "golden", "path": ".github/workflows/deploy.yml", "content": changed});
    let (news, outputs_after) = update(&p, "github:file", &id, &recorded, news).await;
    assert_ne!(outputs_after.get("sha"), outputs.get("sha"));
    assert_eq!(read(&p, "github:file", &id, &news).await.unwrap().0, news);

    // A repository generated from it has the file once created.
    let (generated, _) = common::create(
        &p,
        "github:repository",
        json!({"name": "app", "template": format!("{GITHUB_ORG}/golden")}),
    )
    .await;
    let (status, file) = get(
        &s,
        &format!("/repos/{GITHUB_ORG}/{generated}/contents/.github/workflows/deploy.yml"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        file["content"].as_str().unwrap(),
        "bmFtZTogZGVwbG95Cm9uOiBbcHVzaCwgd29ya2Zsb3dfZGlzcGF0Y2hdCg=="
    );

    delete_twice(&p, "github:file", &id, &news).await;
    assert_eq!(get(&s, &contents).await.0, 404);
    let (news, _) = update(
        &p,
        "github:repository",
        &repo_id,
        &common::props(json!({"name": "golden", "isTemplate": true})),
        json!({"name": "golden"}),
    )
    .await;
    assert_eq!(
        get(&s, &format!("/repos/{GITHUB_ORG}/golden")).await.1["is_template"],
        false
    );
    assert_eq!(
        read(&p, "github:repository", &repo_id, &news)
            .await
            .unwrap()
            .0,
        news
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_permissions_on_repositories() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    let (team, _) = common::create(&p, "github:team", json!({"name": "devs", "members": []})).await;
    common::create(&p, "github:repository", json!({"name": "api"})).await;
    let inputs = json!({"team": team, "repository": "api", "permission": "maintain"});
    let (id, _) = common::create(&p, "github:teamRepository", inputs.clone()).await;
    assert_eq!(id, "devs/api");
    let path = format!("/orgs/{GITHUB_ORG}/teams/devs/repos/{GITHUB_ORG}/api");
    assert_eq!(get(&s, &path).await.1["role_name"], "maintain");
    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:teamRepository", &id, &recorded, inputs).await;

    let (news, _) = update(
        &p,
        "github:teamRepository",
        &id,
        &recorded,
        json!({"team": "devs", "repository": "api", "permission": "pull"}),
    )
    .await;
    assert_eq!(get(&s, &path).await.1["role_name"], "pull");
    assert_reads(
        &p,
        "github:teamRepository",
        &id,
        &news,
        json!({"team": "devs", "repository": "api", "permission": "pull"}),
    )
    .await;
    delete_twice(&p, "github:teamRepository", &id, &news).await;
    assert_eq!(get(&s, &path).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_protection_of_the_default_branch() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    repository_with_branch(&s, &p, "web").await;
    let inputs = json!({"repository": "web"});
    let (id, _) = common::create(&p, "github:branchProtection", inputs.clone()).await;
    assert_eq!(id, "web/main");
    let path = format!("/repos/{GITHUB_ORG}/web/branches/main/protection");
    let (_, protection) = get(&s, &path).await;
    assert_eq!(protection["enforce_admins"]["enabled"], true);
    assert_eq!(
        protection["required_pull_request_reviews"]["required_approving_review_count"],
        1
    );
    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:branchProtection", &id, &recorded, inputs).await;

    let news = json!({"repository": "web", "requiredReviews": 2, "enforceAdmins": false});
    let (news_props, _) = update(&p, "github:branchProtection", &id, &recorded, news.clone()).await;
    let (_, protection) = get(&s, &path).await;
    assert_eq!(protection["enforce_admins"]["enabled"], false);
    assert_eq!(
        protection["required_pull_request_reviews"]["required_approving_review_count"],
        2
    );
    assert_reads(&p, "github:branchProtection", &id, &news_props, news).await;

    delete_twice(&p, "github:branchProtection", &id, &news_props).await;
    assert_eq!(get(&s, &path).await.0, 404);

    // A branch named outright is recorded so.
    let inputs = json!({"repository": "web", "branch": "main", "requiredReviews": 0});
    let (id, _) = common::create(&p, "github:branchProtection", inputs.clone()).await;
    let (read_back, _) = read(
        &p,
        "github:branchProtection",
        &id,
        &common::props(inputs.clone()),
    )
    .await
    .unwrap();
    assert_eq!(read_back, common::props(inputs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_with_reviewers_wait_timers_and_branches() {
    let (_dir, s) = common::sandbox().await;
    for login in ["ada", "grace"] {
        user(&s, login).await;
    }
    let p = github(&s);
    let (approvers, _) = common::create(
        &p,
        "github:team",
        json!({"name": "approvers", "members": ["grace"]}),
    )
    .await;
    common::create(&p, "github:repository", json!({"name": "shop"})).await;
    let inputs = json!({
        "repository": "shop", "name": "production", "reviewers": ["ada"], "reviewerTeams": [approvers],
        "waitTimer": 10, "branches": ["main", "release/*"],
    });
    let (id, outputs) = common::create(&p, "github:environment", inputs.clone()).await;
    assert_eq!(id, "shop/production");
    assert!(
        outputs
            .get("environmentId")
            .and_then(Value::as_i64)
            .is_some()
    );
    assert!(text(&outputs, "htmlUrl").contains("production"));
    let env_path = format!("/repos/{GITHUB_ORG}/shop/environments/production");
    let (_, environment) = get(&s, &env_path).await;
    let rules = environment["protection_rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["type"] == "wait_timer" && r["wait_timer"] == 10),
        "{rules:?}"
    );
    let reviewers = &rules
        .iter()
        .find(|r| r["type"] == "required_reviewers")
        .unwrap()["reviewers"];
    assert_eq!(reviewers.as_array().unwrap().len(), 2);
    assert_eq!(
        environment["deployment_branch_policy"]["custom_branch_policies"],
        true
    );
    let (_, policies) = get(&s, &format!("{env_path}/deployment-branch-policies")).await;
    assert_eq!(policies["total_count"], 2);

    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:environment", &id, &recorded, inputs).await;

    let news = json!({"repository": "shop", "name": "production", "reviewers": ["grace"], "branches": ["release/*"]});
    let (news_props, _) = update(&p, "github:environment", &id, &recorded, news.clone()).await;
    let (_, environment) = get(&s, &env_path).await;
    let rules = environment["protection_rules"].as_array().unwrap();
    assert!(
        !rules.iter().any(|r| r["type"] == "wait_timer"),
        "{rules:?}"
    );
    let (_, policies) = get(&s, &format!("{env_path}/deployment-branch-policies")).await;
    assert_eq!(policies["branch_policies"][0]["name"], "release/*");
    assert_eq!(policies["total_count"], 1);
    assert_reads(&p, "github:environment", &id, &news_props, news).await;

    // No branches: any branch may deploy.
    let news = json!({"repository": "shop", "name": "production"});
    let (news_props, _) = update(&p, "github:environment", &id, &news_props, news.clone()).await;
    let (_, environment) = get(&s, &env_path).await;
    assert_eq!(environment["deployment_branch_policy"], Json::Null);
    assert_eq!(environment["protection_rules"], json!([]));
    assert_reads(&p, "github:environment", &id, &news_props, news).await;

    delete_twice(&p, "github:environment", &id, &news_props).await;
    assert_eq!(common::count(&s, "github", "environment").await, 0);

    let error = p
        .create(
            common::resource("github:environment", "urn:staging"),
            &common::props(
                json!({"repository": "shop", "name": "staging", "reviewers": ["nobody"]}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, "404");
    assert!(error.message.contains("nobody"), "{error}");
    assert!(error.hint.is_some());
}

/// The clear value the sandbox opened from the sealed box.
async fn secret_value(s: &Sandbox, repo: &str, env: &str, name: &str) -> Option<String> {
    let response = reqwest::get(format!(
        "{}/github/secrets/{repo}/{env}/{name}",
        s.control_url
    ))
    .await
    .unwrap();
    if response.status() == 404 {
        return None;
    }
    let body: Json = response.json().await.unwrap();
    body["value"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_secrets_are_sealed_for_the_environment() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    common::create(&p, "github:repository", json!({"name": "shop"})).await;
    common::create(
        &p,
        "github:environment",
        json!({"repository": "shop", "name": "production"}),
    )
    .await;
    let value = "p@ss w0rd/with+symbols=ü";
    let inputs = json!({"repository": "shop", "environment": "production", "name": "db_password", "value": value});
    let (id, outputs) = common::create(&p, "github:environmentSecret", inputs.clone()).await;
    assert_eq!(id, "shop/production/db_password");
    assert!(outputs.is_empty());
    assert_eq!(
        secret_value(&s, "shop", "production", "DB_PASSWORD")
            .await
            .as_deref(),
        Some(value)
    );

    // GitHub never returns the value: the recorded one stands, and an import has none.
    let recorded = common::props(inputs);
    let (read_back, _) = read(&p, "github:environmentSecret", &id, &recorded)
        .await
        .unwrap();
    assert_eq!(
        read_back.get("value").map(Value::reveal),
        Some(Value::String(value.into()))
    );
    assert!(read_back.get("value").unwrap().contains_secret());
    let (imported, _) = read(&p, "github:environmentSecret", &id, &Props::new())
        .await
        .unwrap();
    assert_eq!(
        imported,
        common::props(
            json!({"repository": "shop", "environment": "production", "name": "db_password"})
        )
    );
    let schema = p.schema("github:environmentSecret").unwrap();
    assert!(schema.input("value").unwrap().secret);

    let (news, _) = update(
        &p,
        "github:environmentSecret",
        &id,
        &recorded,
        json!({"repository": "shop", "environment": "production", "name": "db_password", "value": "rotated"}),
    )
    .await;
    assert_eq!(
        secret_value(&s, "shop", "production", "DB_PASSWORD")
            .await
            .as_deref(),
        Some("rotated")
    );

    delete_twice(&p, "github:environmentSecret", &id, &news).await;
    assert_eq!(
        secret_value(&s, "shop", "production", "DB_PASSWORD").await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    common::create(&p, "github:repository", json!({"name": "shop"})).await;
    common::create(
        &p,
        "github:environment",
        json!({"repository": "shop", "name": "staging"}),
    )
    .await;
    let inputs = json!({"repository": "shop", "environment": "staging", "name": "REGION", "value": "westeurope"});
    let (id, _) = common::create(&p, "github:environmentVariable", inputs.clone()).await;
    assert_eq!(id, "shop/staging/REGION");
    let recorded = common::props(inputs.clone());
    assert_reads(&p, "github:environmentVariable", &id, &recorded, inputs).await;

    let news = json!({"repository": "shop", "environment": "staging", "name": "REGION", "value": "swedencentral"});
    let (news_props, _) = update(
        &p,
        "github:environmentVariable",
        &id,
        &recorded,
        news.clone(),
    )
    .await;
    let (_, variable) = get(
        &s,
        &format!("/repos/{GITHUB_ORG}/shop/environments/staging/variables/REGION"),
    )
    .await;
    assert_eq!(variable["value"], "swedencentral");
    assert_reads(&p, "github:environmentVariable", &id, &news_props, news).await;

    delete_twice(&p, "github:environmentVariable", &id, &news_props).await;
    assert_eq!(common::count(&s, "github", "variable").await, 0);
}

/// A repository's variable: what every environment's jobs see unless their environment
/// has its own of that name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_variables_are_shared_and_an_environments_own_takes_precedence() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    common::create(&p, "github:repository", json!({"name": "shop"})).await;
    for env in ["staging", "production"] {
        common::create(
            &p,
            "github:environment",
            json!({"repository": "shop", "name": env}),
        )
        .await;
    }
    let inputs = json!({"repository": "shop", "name": "TENANT", "value": "contoso"});
    let (id, _) = common::create(&p, "github:repositoryVariable", inputs.clone()).await;
    assert_eq!(id, "shop/TENANT");
    let recorded = common::props(inputs.clone());
    assert_reads(
        &p,
        "github:repositoryVariable",
        &id,
        &recorded,
        inputs.clone(),
    )
    .await;
    let (status, variable) = get(
        &s,
        &format!("/repos/{GITHUB_ORG}/shop/actions/variables/TENANT"),
    )
    .await;
    assert_eq!((status, &variable["value"]), (200, &json!("contoso")));

    // A retried create of the same value writes nothing more.
    let writes = |p: &Family| p.costs_by_urn()["urn:test:github:repositoryVariable"].requests;
    let first = writes(&p);
    let (again, _) = common::create(&p, "github:repositoryVariable", inputs).await;
    assert_eq!(again, id);
    assert_eq!(
        writes(&p).github_writes - first.github_writes,
        1,
        "the refused POST only, no PATCH of an unchanged value"
    );

    common::create(
        &p,
        "github:environmentVariable",
        json!({"repository": "shop", "environment": "production", "name": "TENANT", "value": "fabrikam"}),
    )
    .await;
    let vars = |env: &'static str| {
        let url = format!("{}/github/vars/shop/{env}", s.control_url);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(vars("staging").await, json!({"TENANT": "contoso"}));
    assert_eq!(vars("production").await, json!({"TENANT": "fabrikam"}));

    let news = json!({"repository": "shop", "name": "TENANT", "value": "northwind"});
    let (news_props, _) = update(
        &p,
        "github:repositoryVariable",
        &id,
        &recorded,
        news.clone(),
    )
    .await;
    assert_eq!(vars("staging").await, json!({"TENANT": "northwind"}));
    assert_reads(&p, "github:repositoryVariable", &id, &news_props, news).await;

    delete_twice(&p, "github:repositoryVariable", &id, &news_props).await;
    assert_eq!(common::count(&s, "github", "repositoryVariable").await, 0);
    assert_eq!(vars("staging").await, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_after_the_object_exists_adopts_it() {
    let (_dir, s) = common::sandbox().await;
    user(&s, "ada").await;
    let p = github(&s);
    let cases = [
        (
            "github:team",
            json!({"name": "SRE Team", "description": "Pages", "members": ["ada"]}),
            "team",
        ),
        (
            "github:repository",
            json!({"name": "infra", "description": "Everything"}),
            "repo",
        ),
        (
            "github:environment",
            json!({"repository": "infra", "name": "prod", "waitTimer": 5}),
            "environment",
        ),
        (
            "github:environmentVariable",
            json!({"repository": "infra", "environment": "prod", "name": "TIER", "value": "gold"}),
            "variable",
        ),
        (
            "github:environmentSecret",
            json!({"repository": "infra", "environment": "prod", "name": "TOKEN", "value": "t0k3n"}),
            "secret",
        ),
        (
            "github:repositoryVariable",
            json!({"repository": "infra", "name": "TIER", "value": "gold"}),
            "repositoryVariable",
        ),
        (
            "github:teamRepository",
            json!({"team": "sre-team", "repository": "infra", "permission": "admin"}),
            "teamRepo",
        ),
        (
            "github:teamMembership",
            json!({"team": "sre-team", "username": "ada", "role": "maintainer"}),
            "membership",
        ),
    ];
    for (ty, inputs, kind) in cases {
        let (first, _) = common::create(&p, ty, inputs.clone()).await;
        let before = common::count(&s, "github", kind).await;
        // The answer to the first attempt was lost; the engine tries again…
        let (again, _) = common::create(&p, ty, inputs.clone()).await;
        assert_eq!(again, first, "{ty}");
        assert_eq!(
            common::count(&s, "github", kind).await,
            before,
            "{ty} duplicated"
        );
        // …or, after a crash, finds it by its natural key.
        let found = p
            .find(common::resource(ty, "urn:x"), &common::props(inputs))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{ty} not found"));
        assert_eq!(found.id, first, "{ty}");
    }
    // A variable whose first attempt landed with another value takes this one.
    let inputs =
        json!({"repository": "infra", "environment": "prod", "name": "TIER", "value": "platinum"});
    common::create(&p, "github:environmentVariable", inputs).await;
    let (_, variable) = get(
        &s,
        &format!("/repos/{GITHUB_ORG}/infra/environments/prod/variables/TIER"),
    )
    .await;
    assert_eq!(variable["value"], "platinum");
    // Nothing is found where nothing was made.
    let nothing = p
        .find(
            common::resource("github:team", "urn:y"),
            &common::props(json!({"name": "Nobody"})),
        )
        .await
        .unwrap();
    assert!(nothing.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_app_path_works() {
    let (_dir, s) = common::sandbox().await;
    user(&s, "ada").await;
    let p = provider(&common::github_app(&s)).unwrap();
    let (team, _) = common::create(
        &p,
        "github:team",
        json!({"name": "app-made", "maintainers": ["ada"]}),
    )
    .await;
    assert_eq!(roster(&s, &team, "all").await, ["ada"]);
    common::create(&p, "github:repository", json!({"name": "app-repo"})).await;
    common::create(
        &p,
        "github:environment",
        json!({"repository": "app-repo", "name": "prod"}),
    )
    .await;
    common::create(
        &p,
        "github:environmentSecret",
        json!({"repository": "app-repo", "environment": "prod", "name": "KEY", "value": "from-the-app"}),
    )
    .await;
    assert_eq!(
        secret_value(&s, "app-repo", "prod", "KEY").await.as_deref(),
        Some("from-the-app")
    );
    assert!(common::count(&s, "github", "installationToken").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_githubs_code_and_a_hint() {
    let (_dir, s) = common::sandbox().await;
    let p = github(&s);
    common::create(&p, "github:team", json!({"name": "core"})).await;

    let error = p
        .create(
            common::resource("github:teamMembership", "urn:m"),
            &common::props(json!({"team": "core", "username": "ghost"})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, "404");
    assert!(
        error.hint.as_deref().unwrap().contains("not a GitHub user"),
        "{error:?}"
    );

    let error = p
        .create(
            common::resource("github:repository", "urn:r"),
            &common::props(json!({"name": "no spaces allowed"})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, "custom");
    assert!(error.message.contains("name"), "{error:?}");
    assert!(
        error.hint.as_deref().unwrap().contains("letters, digits"),
        "{error:?}"
    );

    let error = p
        .create(
            common::resource("github:team", "urn:t"),
            &common::props(json!({"name": "x", "privacy": "public"})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, "InvalidInput");

    let refused = provider(&GitHubConfig {
        auth: GitHubAuth::Token("not-a-token".into()),
        ..common::github(&s)
    })
    .unwrap();
    let error = refused
        .create(
            common::resource("github:team", "urn:t"),
            &common::props(json!({"name": "y"})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, "401");
    assert!(
        error.hint.as_deref().unwrap().contains("credentials"),
        "{error:?}"
    );
    assert!(!format!("{error:?}").contains(&s.github_token));
}
