//! Repositories: created, generated from a template, listed, edited, shaped as GitHub
//! returns them.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::now_ms;

use super::errors::{GitHubResult, invalid, not_found, parse_json, validation_failed};
use super::git::object_id;
use super::paging::{Paging, param};
use super::{API, BLOB, DEFAULT_BRANCH, GitHub, REF, REPO, json_ok, now_iso, numeric_id};

impl GitHub {
    /// A repository as `GET /repos/{owner}/{repo}` returns it (every field the description
    /// requires).
    pub(super) fn repository(&self, stored: &Value) -> Value {
        let name = stored["name"].as_str().unwrap_or_default();
        let full = format!("{}/{name}", self.org);
        let api = format!("{}/repos/{full}", self.api());
        let web = format!("{}/{full}", self.base_url);
        let mut repo = json!({
            "id": numeric_id(&full), "node_id": format!("R_{}", numeric_id(&full)), "name": name, "full_name": full,
            "owner": self.owner(), "private": stored["private"], "visibility": stored["visibility"].as_str().unwrap_or(if stored["private"] == json!(true) { "private" } else { "public" }),
            "html_url": web, "description": stored["description"], "fork": false, "url": api,
            "clone_url": format!("{web}.git"), "git_url": format!("git://{}/{full}.git", self.host()),
            "ssh_url": format!("git@sandbox:{full}.git"), "svn_url": web, "mirror_url": null, "homepage": stored.get("homepage").unwrap_or(&Value::Null), "language": null,
            "default_branch": "main", "forks": 0, "forks_count": 0, "open_issues": 0, "open_issues_count": 0,
            "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 0, "network_count": 0, "subscribers_count": 1,
            "has_issues": stored["has_issues"].as_bool().unwrap_or(true), "has_projects": stored["has_projects"].as_bool().unwrap_or(false),
            "has_wiki": stored["has_wiki"].as_bool().unwrap_or(false), "has_pages": false, "has_discussions": stored["has_discussions"].as_bool().unwrap_or(false),
            "archived": false, "disabled": false, "license": null, "is_template": stored["is_template"],
            "created_at": stored["created_at"], "updated_at": stored.get("updated_at").unwrap_or(&stored["created_at"]), "pushed_at": stored["created_at"],
        });
        for (field, suffix) in [
            ("archive_url", "{archive_format}{/ref}"),
            ("assignees_url", "assignees{/user}"),
            ("blobs_url", "git/blobs{/sha}"),
            ("branches_url", "branches{/branch}"),
            ("collaborators_url", "collaborators{/collaborator}"),
            ("comments_url", "comments{/number}"),
            ("commits_url", "commits{/sha}"),
            ("compare_url", "compare/{base}...{head}"),
            ("contents_url", "contents/{+path}"),
            ("contributors_url", "contributors"),
            ("deployments_url", "deployments"),
            ("downloads_url", "downloads"),
            ("events_url", "events"),
            ("forks_url", "forks"),
            ("git_commits_url", "git/commits{/sha}"),
            ("git_refs_url", "git/refs{/sha}"),
            ("git_tags_url", "git/tags{/sha}"),
            ("hooks_url", "hooks"),
            ("issue_comment_url", "issues/comments{/number}"),
            ("issue_events_url", "issues/events{/number}"),
            ("issues_url", "issues{/number}"),
            ("keys_url", "keys{/key_id}"),
            ("labels_url", "labels{/name}"),
            ("languages_url", "languages"),
            ("merges_url", "merges"),
            ("milestones_url", "milestones{/number}"),
            (
                "notifications_url",
                "notifications{?since,all,participating}",
            ),
            ("pulls_url", "pulls{/number}"),
            ("releases_url", "releases{/id}"),
            ("stargazers_url", "stargazers"),
            ("statuses_url", "statuses/{sha}"),
            ("subscribers_url", "subscribers"),
            ("subscription_url", "subscription"),
            ("tags_url", "tags"),
            ("teams_url", "teams"),
            ("trees_url", "git/trees{/sha}"),
        ] {
            repo[field] = json!(format!("{api}/{suffix}"));
        }
        repo
    }

    /// `GET /orgs/{org}/repos`: the organization's repositories as `minimal-repository`
    /// items, filtered by `type` (`all`, the default; `public`, `private` and, as GitHub
    /// Enterprise has it, `internal` by visibility; `sources`, every one, as the sandbox
    /// has no forks; `forks`, none; `member`, every one, as both the org admin and the
    /// app's installation reach them all), sorted by `sort` (`created`, the default,
    /// `updated`, `pushed` or `full_name`) in `direction` (`asc` by default for
    /// `full_name`, otherwise `desc`), paged by `per_page` and `page` with a `Link` header.
    pub(super) async fn list_repos(&self, query: &[(String, String)]) -> GitHubResult {
        const DOCS: &str =
            "https://docs.github.com/rest/repos/repos#list-organization-repositories";
        let refuse = |field: &str| {
            validation_failed(
                json!([{"resource": "Repository", "field": field, "code": "invalid"}]),
                DOCS,
            )
        };
        let kind = param(query, "type").unwrap_or("all");
        let wanted = |repo: &Value| match kind {
            "public" | "private" | "internal" => repo["visibility"] == kind,
            "forks" => repo["fork"] == true,
            _ => true,
        };
        let kinds = [
            "all", "public", "private", "internal", "forks", "sources", "member",
        ];
        if !kinds.contains(&kind) {
            return Err(refuse("type"));
        }
        let sort = param(query, "sort").unwrap_or("created");
        // By what the repository reports (`pushed_at` is its creation: the sandbox does
        // not track pushes on the repository), then, as the timestamps are whole seconds,
        // by the millisecond it was created or updated, then by name.
        let (field, ms) = match sort {
            "created" | "pushed" => ("created_at", "created_ms"),
            "updated" => ("updated_at", "updated_ms"),
            "full_name" => ("full_name", "created_ms"),
            _ => return Err(refuse("sort")),
        };
        let ascending = match param(query, "direction") {
            Some("asc") => true,
            Some("desc") => false,
            None => sort == "full_name",
            Some(_) => return Err(refuse("direction")),
        };
        let mut repos: Vec<(Value, Value)> = self
            .docs
            .values(API, REPO, "")
            .await?
            .into_iter()
            .map(|stored| (self.repository(&stored), stored))
            .filter(|(repo, _)| wanted(repo))
            .collect();
        repos.sort_by(|(a, a_stored), (b, b_stored)| {
            let key = |r: &Value, stored: &Value| {
                (
                    r[field].as_str().unwrap_or_default().to_lowercase(),
                    stored[ms]
                        .as_i64()
                        .or_else(|| stored["created_ms"].as_i64())
                        .unwrap_or_default(),
                    r["name"].as_str().unwrap_or_default().to_lowercase(),
                )
            };
            key(a, a_stored).cmp(&key(b, b_stored))
        });
        if !ascending {
            repos.reverse();
        }
        let items: Vec<Value> = repos
            .into_iter()
            .map(|(mut repo, _)| {
                // The org admin and the app's installation may do anything with each.
                repo["permissions"] = json!({"admin": true, "maintain": true, "push": true, "triage": true, "pull": true});
                repo
            })
            .collect();
        let url = format!("{}/orgs/{}/repos", self.api(), self.org);
        Ok(Paging::of(query).array(&items, &url, query))
    }

    pub(super) async fn create_repo(&self, body: &[u8]) -> GitHubResult {
        const DOCS: &str =
            "https://docs.github.com/rest/repos/repos#create-an-organization-repository";
        let request: Value = parse_json(body, DOCS)?;
        let name = request["name"].as_str().unwrap_or_default();
        let valid = !name.is_empty()
            && name.len() <= 100
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(invalid(
                "Repository creation failed.",
                "Repository",
                "name",
                "name is invalid: use letters, digits, '-', '_' and '.'",
                DOCS,
            ));
        }
        let visibility = match request["visibility"].as_str() {
            Some(v @ ("public" | "private" | "internal")) => v,
            Some(_) => {
                return Err(invalid(
                    "Repository creation failed.",
                    "Repository",
                    "visibility",
                    "visibility must be public, private or internal",
                    DOCS,
                ));
            }
            // `private` defaults to false, as the description says.
            None if request["private"] == json!(true) => "private",
            None => "public",
        };
        let mut stored = json!({
            "name": name,
            "description": request["description"],
            "homepage": request["homepage"].as_str(),
            "private": visibility != "public",
            "visibility": visibility,
            "is_template": request["is_template"].as_bool().unwrap_or(false),
            "created_at": now_iso(),
            "created_ms": now_ms(),
        });
        for field in ["has_issues", "has_projects", "has_wiki"] {
            if let Some(on) = request[field].as_bool() {
                stored[field] = json!(on);
            }
        }
        let key = name.to_lowercase();
        if !self.docs.insert_new(API, REPO, &key, &stored).await? {
            return Err(invalid(
                "Repository creation failed.",
                "Repository",
                "name",
                "name already exists on this account",
                DOCS,
            ));
        }
        // `auto_init`: a first commit on the default branch with a README, as GitHub
        // makes it (the name as a heading, then the description).
        if request["auto_init"] == json!(true) {
            let mut readme = format!("# {name}");
            if let Some(description) = request["description"].as_str() {
                readme.push_str(&format!("\n{description}"));
            }
            let _git = self.git.lock().await;
            let blob_sha = object_id("blob", readme.as_bytes());
            let blob = json!({"content": B64.encode(&readme), "size": readme.len()});
            self.docs
                .put(API, BLOB, &format!("{key}/{blob_sha}"), &blob)
                .await?;
            let mut tree = serde_json::Map::new();
            tree.insert("README.md".to_owned(), json!(blob_sha));
            let commit = self
                .write_commit(&key, None, &tree, "Initial commit", &Value::Null)
                .await?;
            self.docs
                .put(
                    API,
                    REF,
                    &format!("{key}/heads/{DEFAULT_BRANCH}"),
                    &json!({"sha": commit["sha"]}),
                )
                .await?;
        }
        Ok(json_ok(StatusCode::CREATED, self.repository(&stored)))
    }

    /// `PATCH /repos/{owner}/{repo}` (`repos/update`): description, homepage, visibility
    /// (`private`, or `visibility` with GitHub Enterprise's `internal`), `is_template` and
    /// the `has_issues`/`has_projects`/`has_wiki` switches. What the sandbox cannot do is
    /// refused rather than ignored: a rename (it keys everything of a repository by its
    /// name), another default branch, archiving. The merge and security settings GitHub
    /// also takes are accepted and not kept (the sandbox merges nothing).
    pub(super) async fn update_repo(
        &self,
        key: &str,
        mut stored: Value,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/repos/repos#update-a-repository";
        let request = parse_json(body, DOCS)?;
        let refuse = |field: &str, message: &str| {
            validation_failed(
                json!([{"resource": "Repository", "code": "custom", "field": field, "message": message}]),
                DOCS,
            )
        };
        if let Some(name) = request.get("name") {
            let current = stored["name"].as_str().unwrap_or_default();
            if !name
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(current))
            {
                return Err(refuse("name", "the sandbox does not rename repositories"));
            }
        }
        for field in ["description", "homepage"] {
            match request.get(field) {
                Some(v @ (Value::String(_) | Value::Null)) => stored[field] = v.clone(),
                Some(_) => return Err(refuse(field, &format!("{field} must be a string"))),
                None => {}
            }
        }
        let visibility = match (request.get("visibility"), request.get("private")) {
            (Some(Value::String(v)), _)
                if ["public", "private", "internal"].contains(&v.as_str()) =>
            {
                Some(v.as_str())
            }
            (Some(_), _) => {
                return Err(refuse(
                    "visibility",
                    "visibility must be public, private or internal",
                ));
            }
            (None, Some(Value::Bool(private))) => Some(if *private { "private" } else { "public" }),
            (None, Some(_)) => return Err(refuse("private", "private must be a boolean")),
            (None, None) => None,
        };
        if let Some(v) = visibility {
            stored["visibility"] = json!(v);
            stored["private"] = json!(v != "public");
        }
        if let Some(branch) = request.get("default_branch")
            && branch != DEFAULT_BRANCH
        {
            return Err(refuse(
                "default_branch",
                &format!("the sandbox's default branch is always {DEFAULT_BRANCH}"),
            ));
        }
        if request["archived"] == json!(true) {
            return Err(refuse(
                "archived",
                "the sandbox does not archive repositories",
            ));
        }
        for field in ["is_template", "has_issues", "has_projects", "has_wiki"] {
            match request.get(field) {
                Some(v @ Value::Bool(_)) => stored[field] = v.clone(),
                Some(_) => return Err(refuse(field, &format!("{field} must be a boolean"))),
                None => {}
            }
        }
        stored["updated_at"] = json!(now_iso());
        stored["updated_ms"] = json!(now_ms());
        self.docs.put(API, REPO, key, &stored).await?;
        Ok(json_ok(StatusCode::OK, self.repository(&stored)))
    }

    /// `POST /repos/{template}/generate`: a new repository whose one commit holds the
    /// template's files; its branch appears after `template_delay`, as GitHub copies the
    /// files asynchronously.
    pub(super) async fn generate(&self, template: &str, body: &[u8]) -> GitHubResult {
        const DOCS: &str =
            "https://docs.github.com/rest/repos/repos#create-a-repository-using-a-template";
        let source = self
            .docs
            .get(API, REPO, &template.to_lowercase())
            .await?
            .ok_or_else(|| not_found(DOCS))?;
        if source["is_template"] != json!(true) {
            return Err(invalid(
                "Validation Failed",
                "Repository",
                "template_repo",
                "the repository is not a template",
                DOCS,
            ));
        }
        let request: Value = parse_json(body, DOCS)?;
        let name = request["name"].as_str().unwrap_or_default();
        let mut create = json!({"name": name, "private": request["private"].as_bool().unwrap_or(false), "description": request["description"]});
        create["visibility"] = json!(if create["private"] == json!(true) {
            "private"
        } else {
            "public"
        });
        let response = self.create_repo(create.to_string().as_bytes()).await?;
        let (source, target) = (template.to_lowercase(), name.to_lowercase());
        let _git = self.git.lock().await;
        let Some(head) = self.branch_head(&source, DEFAULT_BRANCH).await? else {
            return Ok(response);
        };
        let tree = self
            .commit(&source, &head)
            .await?
            .and_then(|c| c["tree"].as_object().cloned())
            .unwrap_or_default();
        for blob_sha in tree.values().filter_map(Value::as_str) {
            if let Some(blob) = self
                .docs
                .get(API, BLOB, &format!("{source}/{blob_sha}"))
                .await?
            {
                self.docs
                    .put(API, BLOB, &format!("{target}/{blob_sha}"), &blob)
                    .await?;
            }
        }
        let commit = self
            .write_commit(&target, None, &tree, "Initial commit", &json!({}))
            .await?;
        let ready = now_ms() + self.template_delay.as_millis() as i64;
        self.docs
            .put(
                API,
                REF,
                &format!("{target}/heads/{DEFAULT_BRANCH}"),
                &json!({"sha": commit["sha"], "readyAtMs": ready}),
            )
            .await?;
        Ok(response)
    }
}
