//! GitHub: every URL the sandbox returns is served. One of everything is made (a team with
//! members, a repository from a template with a team's permission, files, a branch, a tag,
//! a pull request, branch protection, an environment with reviewers, branch policies,
//! secrets and variables, the app's installation token), then every link in every answer
//! (`url`, `*_url`, `href`, `Location`, `Link`) is followed, recursively, with the token
//! that reaches it, and must answer 2xx; every list is paged through to its end.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::github::{app_jwt, seal};
use paddock_sandbox::{GITHUB_ORG, Sandbox};
use reqwest::header::{LINK, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Links not followed with a `GET`, and why: a repository's git transports (`git://`,
/// ssh) are not HTTP; `merges_url` takes only a `POST` (a merge), on GitHub too, and the
/// sandbox merges nothing; `git_tags_url` names annotated tag objects by sha, and the
/// sandbox makes none (its tags are refs). `access_tokens_url` is followed with a `POST`.
const NOT_FOLLOWED: &[&str] = &["git_url", "ssh_url", "merges_url", "git_tags_url"];
/// How many distinct URLs the crawl follows at most.
const MOST: usize = 2000;

struct Crawl {
    http: reqwest::Client,
    api: String,
    base: String,
    admin: String,
    installation: String,
    jwt: String,
    /// Values for the variables of URL templates (`{/member}`), by `repo/field:variable`,
    /// `field:variable`, `repo/variable` or variable; a variable without one (or with an
    /// empty one) is removed, as clients do.
    fill: BTreeMap<String, String>,
    seen: BTreeSet<String>,
    queue: VecDeque<(String, String)>,
    failures: Vec<String>,
    fields: BTreeSet<String>,
}

impl Crawl {
    /// The token a URL wants: the app's JWT for the app's own endpoints, the
    /// installation's token for the installation's, the admin's otherwise.
    fn token(&self, url: &str) -> &str {
        let path = url.strip_prefix(&self.api).unwrap_or_default();
        if path.starts_with("/app") || path.ends_with("/installation") {
            &self.jwt
        } else if path.starts_with("/installation/") {
            &self.installation
        } else {
            &self.admin
        }
    }

    async fn send(&self, method: Method, url: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.token(url))
            .header("accept", "application/vnd.github+json");
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.api);
        let response = self.send(method.clone(), &url, body).await;
        let status = response.status().as_u16();
        if let Some(location) = response.headers().get(LOCATION) {
            let location = location.to_str().unwrap().to_owned();
            self.enqueue("Location", &location);
        }
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(
            (200..300).contains(&status) || status == 303,
            "{method} {path}: {status} {text}"
        );
        self.collect(&value);
        (status, value)
    }

    /// A template filled, its unfilled variables removed.
    fn expand(&self, field: &str, template: &str) -> String {
        let repo = template
            .split_once(&format!("/repos/{GITHUB_ORG}/"))
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').unwrap() + open;
            let expression = &rest[open + 1..close];
            let (prefix, names) = match expression.chars().next() {
                Some(c @ ('/' | '+' | '?')) => (c, &expression[1..]),
                _ => (' ', expression),
            };
            if prefix != '?' {
                for name in names.split(',') {
                    let value = [
                        format!("{repo}/{field}:{name}"),
                        format!("{field}:{name}"),
                        format!("{repo}/{name}"),
                        name.to_owned(),
                    ]
                    .iter()
                    .find_map(|key| self.fill.get(key));
                    if let Some(v) = value.filter(|v| !v.is_empty()) {
                        if prefix == '/' {
                            out.push('/');
                        }
                        out.push_str(v);
                    }
                }
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Queues a link (templates are filled when it is followed, once every value is
    /// known).
    fn enqueue(&mut self, field: &str, url: &str) {
        self.fields.insert(field.to_owned());
        if !NOT_FOLLOWED.contains(&field) {
            self.queue.push_back((field.to_owned(), url.to_owned()));
        }
    }

    /// Every link in an answer.
    fn collect(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let is_link = k == "url" || k.ends_with("_url") || k == "href";
                    match v {
                        Value::String(s) if is_link => self.enqueue(k, s),
                        _ => self.collect(v),
                    }
                }
                if let Some(links) = map.get("_links").and_then(Value::as_object) {
                    for (rel, link) in links {
                        if let Some(s) = link.as_str() {
                            self.enqueue(&format!("_links.{rel}"), s);
                        }
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    /// Follows every link found, and every link in what they answer.
    async fn follow_all(&mut self) {
        while let Some((field, template)) = self.queue.pop_front() {
            let url = self.expand(&field, &template);
            assert!(
                url.starts_with(&self.base),
                "{field} points outside the sandbox: {url}"
            );
            if self.seen.len() >= MOST || !self.seen.insert(url.clone()) {
                continue;
            }
            let method = match field.as_str() {
                "access_tokens_url" => Method::POST,
                _ => Method::GET,
            };
            let response = self.send(method, &url, None).await;
            let status = response.status();
            for link in links(&response) {
                self.enqueue("Link", &link.1);
            }
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                self.failures
                    .push(format!("{field} {url}: {status} {text}"));
                continue;
            }
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                self.collect(&value);
            }
        }
    }

    /// Pages through a list one item at a time with `Link: rel="next"`, checking
    /// `first`, `prev` and `last` on the way, and that the pages hold the whole list.
    async fn page_through(&mut self, path: &str, items_of: impl Fn(&Value) -> Vec<Value>) {
        let url = format!("{}{path}", self.api);
        let whole = self
            .send(
                Method::GET,
                &format!("{url}{}per_page=100", sep(&url)),
                None,
            )
            .await;
        assert!(whole.status().is_success(), "{path}");
        let whole = items_of(&whole.json().await.unwrap());
        let mut next = Some(format!("{url}{}per_page=1", sep(&url)));
        let (mut paged, mut pages) = (Vec::new(), 0);
        while let Some(page) = next.take() {
            let response = self.send(Method::GET, &page, None).await;
            assert!(response.status().is_success(), "{page}");
            let rels: BTreeMap<String, String> = links(&response).into_iter().collect();
            pages += 1;
            if pages > 1 {
                assert!(
                    rels.contains_key("prev") && rels.contains_key("first"),
                    "{page}"
                );
            }
            // `first`, `prev` and `last` lead to pages too.
            for (rel, url) in &rels {
                if rel != "next" {
                    let status = self.send(Method::GET, url, None).await.status();
                    assert!(status.is_success(), "{path}: rel={rel} {url}: {status}");
                }
            }
            next = rels.get("next").cloned();
            if next.is_some() {
                assert!(rels.contains_key("last"), "{page}: a next page and no last");
            }
            paged.extend(items_of(&response.json().await.unwrap()));
            assert!(pages <= whole.len().max(1), "{path} pages on past its end");
        }
        assert_eq!(paged, whole, "{path}: the pages hold the whole list");
    }
}

fn sep(url: &str) -> &'static str {
    if url.contains('?') { "&" } else { "?" }
}

/// The `Link` header's (rel, URL) pairs.
fn links(response: &reqwest::Response) -> Vec<(String, String)> {
    let Some(header) = response.headers().get(LINK) else {
        return Vec::new();
    };
    header
        .to_str()
        .unwrap()
        .split(", ")
        .filter_map(|part| {
            let (url, rel) = part.split_once("; rel=")?;
            Some((
                rel.trim_matches('"').to_owned(),
                url.trim_matches(['<', '>']).to_owned(),
            ))
        })
        .collect()
}

async fn crawl_of(s: &Sandbox) -> Crawl {
    let env: BTreeMap<_, _> = s.env().into_iter().collect();
    let jwt = app_jwt(
        &env["PADDOCK_SANDBOX_GITHUB_APP_KEY_FILE"],
        env["PADDOCK_SANDBOX_GITHUB_APP_ID"].parse().unwrap(),
        540,
    );
    let api = format!("{}/api/v3", s.base_url);
    // Redirects are links too: they are followed as such, not by the client.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let installation: Value = http
        .post(format!(
            "{api}/app/installations/{}/access_tokens",
            env["PADDOCK_SANDBOX_GITHUB_INSTALLATION_ID"]
        ))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Crawl {
        http,
        api,
        base: s.base_url.clone(),
        admin: s.github_token.clone(),
        installation: installation["token"].as_str().unwrap().to_owned(),
        jwt,
        fill: BTreeMap::new(),
        seen: BTreeSet::new(),
        queue: VecDeque::new(),
        failures: Vec::new(),
        fields: BTreeSet::new(),
    }
}

fn file(content: &str, message: &str) -> Value {
    json!({"message": message, "content": B64.encode(content)})
}

#[tokio::test]
async fn every_link_the_github_sandbox_returns_is_served() {
    let (_dir, s) = common::start_with(|config| {
        config.github_template_delay = std::time::Duration::from_millis(50);
    })
    .await;
    let org = GITHUB_ORG;
    for login in ["alice", "bob"] {
        s.add_person(login).await.unwrap();
    }
    let mut c = crawl_of(&s).await;

    // A team with two members.
    let (_, team) = c
        .call(
            Method::POST,
            &format!("/orgs/{org}/teams"),
            Some(json!({"name": "Platform"})),
        )
        .await;
    for (login, role) in [("alice", "maintainer"), ("bob", "member")] {
        let path = format!("/orgs/{org}/teams/platform/memberships/{login}");
        c.call(Method::PUT, &path, Some(json!({ "role": role })))
            .await;
    }

    // A template with files, and a repository made from it.
    c.call(
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "template", "is_template": true, "private": true})),
    )
    .await;
    for path in ["README.md", "deploy/app.yaml"] {
        let path = format!("/repos/{org}/template/contents/{path}");
        c.call(Method::PUT, &path, Some(file("hello\n", "Add a file")))
            .await;
    }
    let (_, service) = c
        .call(
            Method::POST,
            &format!("/repos/{org}/template/generate"),
            Some(json!({"owner": org, "name": "service", "private": true})),
        )
        .await;
    let repo = format!("/repos/{org}/service");
    loop {
        let url = format!("{}{repo}/branches/main", c.api);
        if c.send(Method::GET, &url, None).await.status() == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    c.call(
        Method::PUT,
        &format!("/orgs/{org}/teams/platform/repos/{org}/service"),
        Some(json!({"permission": "push"})),
    )
    .await;

    // A file, a branch with a change, a tag, a pull request, a protected branch.
    let (_, written) = c
        .call(
            Method::PUT,
            &format!("{repo}/contents/docs/notes.md"),
            Some(file("notes\n", "Notes")),
        )
        .await;
    let main = written["commit"]["sha"].as_str().unwrap().to_owned();
    for (name, sha) in [("refs/heads/feature", &main), ("refs/tags/v1", &main)] {
        c.call(
            Method::POST,
            &format!("{repo}/git/refs"),
            Some(json!({"ref": name, "sha": sha})),
        )
        .await;
    }
    let mut change = file("changed\n", "Change the notes");
    change["branch"] = json!("feature");
    change["sha"] = written["content"]["sha"].clone();
    c.call(
        Method::PUT,
        &format!("{repo}/contents/docs/notes.md"),
        Some(change),
    )
    .await;
    let (_, pull) = c
        .call(
            Method::POST,
            &format!("{repo}/pulls"),
            Some(json!({"title": "Change", "head": "feature", "base": "main"})),
        )
        .await;
    // A branch's `protection_url` answers 404 until it is protected, as on GitHub: the
    // branches the crawl meets are.
    for name in ["service", "template"] {
        c.call(
            Method::PUT,
            &format!("/repos/{org}/{name}/branches/main/protection"),
            Some(json!({
                "required_status_checks": null, "enforce_admins": true, "restrictions": null,
                "required_pull_request_reviews": {"required_approving_review_count": 1},
            })),
        )
        .await;
    }

    // An environment with reviewers, a branch policy (made twice: the second is a 303),
    // a secret and a variable.
    let env = format!("{repo}/environments/production");
    let (_, alice) = c.call(Method::GET, "/users/alice", None).await;
    c.call(
        Method::PUT,
        &env,
        Some(json!({
            "wait_timer": 5,
            "reviewers": [{"type": "Team", "id": team["id"]}, {"type": "User", "id": alice["id"]}],
            "deployment_branch_policy": {"protected_branches": false, "custom_branch_policies": true},
        })),
    )
    .await;
    for _ in 0..2 {
        c.call(
            Method::POST,
            &format!("{env}/deployment-branch-policies"),
            Some(json!({"name": "release/*"})),
        )
        .await;
    }
    let (_, key) = c
        .call(Method::GET, &format!("{env}/secrets/public-key"), None)
        .await;
    let sealed = seal(key["key"].as_str().unwrap(), "s3cret");
    for name in ["DEPLOY_KEY", "OTHER_KEY"] {
        c.call(
            Method::PUT,
            &format!("{env}/secrets/{name}"),
            Some(json!({"encrypted_value": sealed, "key_id": key["key_id"]})),
        )
        .await;
    }
    for name in ["REGION", "ZONE"] {
        c.call(
            Method::POST,
            &format!("{env}/variables"),
            Some(json!({"name": name, "value": "west"})),
        )
        .await;
    }

    // What the templates are filled with: the same for both repositories, then each
    // one's own objects (the template has no pull request, no branch but main, and only
    // the org admin as a collaborator).
    for (name, value) in [
        ("member", "alice"),
        ("user", "alice"),
        ("branch", "main"),
        ("ref", "main"),
        ("archive_format", "tarball"),
        ("base", "main"),
        ("path", "README.md"),
        ("public_members_url:member", ""),
        ("git_refs_url:sha", ""),
        ("service/collaborator", "alice"),
        ("service/head", "feature"),
        ("service/pulls_url:number", &pull["number"].to_string()),
        ("service/issues_url:number", &pull["number"].to_string()),
        ("template/collaborator", "paddock-admin"),
        ("template/head", "main"),
    ] {
        c.fill.insert(name.to_owned(), value.to_owned());
    }
    for name in ["service", "template"] {
        let path = format!("/repos/{org}/{name}");
        let content = c
            .call(Method::GET, &format!("{path}/contents/README.md"), None)
            .await
            .1;
        let branch = c
            .call(Method::GET, &format!("{path}/branches/main"), None)
            .await
            .1;
        let commit = &branch["commit"];
        for (variable, value) in [
            ("sha", &commit["sha"]),
            ("blobs_url:sha", &content["sha"]),
            ("trees_url:sha", &commit["commit"]["tree"]["sha"]),
        ] {
            c.fill.insert(
                format!("{name}/{variable}"),
                value.as_str().unwrap().to_owned(),
            );
        }
    }

    // Everything there is to read, and everything it links to.
    for path in [
        format!("/orgs/{org}"),
        format!("/orgs/{org}/teams"),
        format!("/orgs/{org}/teams/platform"),
        format!("/orgs/{org}/teams/platform/memberships/alice"),
        format!("/orgs/{org}/repos"),
        repo.clone(),
        format!("/repos/{org}/template"),
        format!("{repo}/branches/main"),
        format!("{repo}/branches/main/protection"),
        format!("{repo}/contents/docs/notes.md?ref=feature"),
        format!("{repo}/pulls?state=all"),
        format!("{repo}/environments"),
        env.clone(),
        format!("{env}/deployment-branch-policies"),
        format!("{env}/secrets"),
        format!("{env}/variables"),
        "/users/alice".to_owned(),
        "/user".to_owned(),
        "/app".to_owned(),
        format!("/orgs/{org}/installation"),
        "/installation/repositories".to_owned(),
        format!("{repo}/zipball/main"),
    ] {
        c.call(Method::GET, &path, None).await;
    }
    c.collect(&service);
    c.follow_all().await;
    assert!(
        c.failures.is_empty(),
        "links that do not resolve:\n{}",
        c.failures.join("\n")
    );
    // The crawl met every kind of link.
    for field in [
        "url",
        "html_url",
        "members_url",
        "repositories_url",
        "avatar_url",
        "download_url",
        "git_url",
        "archive_url",
        "compare_url",
        "issue_url",
        "diff_url",
        "access_tokens_url",
        "protection_url",
        "Location",
        "_links.self",
    ] {
        assert!(c.fields.contains(field), "no {field} met: {:?}", c.fields);
    }
    assert!(c.seen.len() > 150, "{} links followed", c.seen.len());
    println!("{} links followed; kinds: {:?}", c.seen.len(), c.fields);

    // Every list, page by page.
    let array = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let field = |name: &'static str| move |v: &Value| array(&v[name]);
    for path in [
        format!("/orgs/{org}/teams"),
        format!("/orgs/{org}/repos"),
        format!("/orgs/{org}/members"),
        format!("/orgs/{org}/teams/platform/members"),
        format!("/orgs/{org}/teams/platform/repos"),
        format!("{repo}/pulls?state=all"),
        format!("{repo}/commits"),
        format!("{repo}/branches"),
        format!("{repo}/tags"),
        format!("{repo}/collaborators"),
        format!("{repo}/teams"),
    ] {
        c.page_through(&path, array).await;
    }
    c.page_through(&format!("{repo}/environments"), field("environments"))
        .await;
    c.page_through(&format!("{env}/secrets"), field("secrets"))
        .await;
    c.page_through(&format!("{env}/variables"), field("variables"))
        .await;
    c.page_through("/installation/repositories", field("repositories"))
        .await;

    // A team's `url` and a repository's id route take a delete, as a client sends it.
    let team_url = team["url"].as_str().unwrap().to_owned();
    assert_eq!(
        c.send(Method::DELETE, &team_url, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let by_slug = format!("{}/orgs/{org}/teams/platform", c.api);
    assert_eq!(
        c.send(Method::GET, &by_slug, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let by_id = format!("{}/repositories/{}", c.api, service["id"]);
    assert_eq!(
        c.send(Method::GET, &by_id, None)
            .await
            .json::<Value>()
            .await
            .unwrap()["full_name"],
        json!(format!("{org}/service"))
    );
    assert_eq!(
        c.send(Method::DELETE, &by_id, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.send(Method::GET, &format!("{}{repo}", c.api), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn a_repository_archive_holds_its_files() {
    let (_dir, s) = common::start().await;
    let mut c = crawl_of(&s).await;
    let org = GITHUB_ORG;
    c.call(
        Method::POST,
        &format!("/orgs/{org}/repos"),
        Some(json!({"name": "site"})),
    )
    .await;
    c.call(
        Method::PUT,
        &format!("/repos/{org}/site/contents/index.html"),
        Some(file("<h1>hi</h1>\n", "Add the page")),
    )
    .await;
    let raw = format!("{}/{org}/site/raw/main/index.html", s.base_url);
    let page = c.http.get(&raw).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), "<h1>hi</h1>\n");
    let tarball = c
        .send(
            Method::GET,
            &format!("{}/repos/{org}/site/tarball/main", c.api),
            None,
        )
        .await
        .bytes()
        .await
        .unwrap();
    // A gzip member of stored blocks: the tar (and its file) is there as written.
    assert_eq!(&tarball[..2], &[0x1f, 0x8b]);
    let text = String::from_utf8_lossy(&tarball);
    assert!(
        text.contains("/index.html") && text.contains("<h1>hi</h1>"),
        "{text}"
    );
    let zipball = c
        .send(
            Method::GET,
            &format!("{}/repos/{org}/site/zipball/main", c.api),
            None,
        )
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&zipball[..4], b"PK\x03\x04");
    s.stop().await;
}
