//! Git objects the way git keeps them, content-addressed: blobs, commits (each with the
//! whole tree, path → blob sha, and its parent), and refs (`heads/…`, `tags/…`) naming
//! commits.

use std::collections::{BTreeSet, HashSet};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::now_ms;

use super::errors::{GitHubError, GitHubResult, error, parse_json};
use super::paging::with_location;
use super::{API, COMMIT, GitHub, REF, json_ok, now_iso, numeric_id};

/// What merging one branch into another would bring.
pub(super) struct Comparison {
    /// Commits on the head branch since the merge base.
    pub(super) commits: usize,
    /// Paths the head branch changed since the merge base.
    pub(super) changed_files: usize,
    /// Whether both branches changed a path, differently.
    pub(super) conflicts: bool,
}

/// A git-style object id: 40 hex digits of a digest over the object's type, length and
/// content (SHA-256 cut to SHA-1's length: the sandbox need not match git's ids).
pub(super) fn object_id(kind: &str, content: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest([format!("{kind} {}\0", content.len()).as_bytes(), content].concat())[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Git's rules for ref names (`git check-ref-format`), which GitHub applies.
pub(super) fn valid_ref_name(name: &str) -> bool {
    !name.contains("..")
        && !name.contains("@{")
        && !name.ends_with(".lock")
        && !name.ends_with('.')
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.'))
        && !name
            .chars()
            .any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c))
}

impl GitHub {
    /// The commit a ref (`heads/main`, `tags/v1`) names, once it is visible (a generated
    /// repository's branch appears with its files).
    pub(super) async fn ref_target(
        &self,
        repo_key: &str,
        name: &str,
    ) -> Result<Option<String>, GitHubError> {
        Ok(self
            .docs
            .get(API, REF, &format!("{repo_key}/{name}"))
            .await?
            .filter(|r| r["readyAtMs"].as_i64().is_none_or(|at| at <= now_ms()))
            .and_then(|r| r["sha"].as_str().map(str::to_owned)))
    }

    pub(super) async fn branch_head(
        &self,
        repo_key: &str,
        branch: &str,
    ) -> Result<Option<String>, GitHubError> {
        self.ref_target(repo_key, &format!("heads/{branch}")).await
    }

    /// Whether the repository has no refs at all: what GitHub calls an empty repository.
    pub(super) async fn is_empty(&self, repo_key: &str) -> Result<bool, GitHubError> {
        Ok(self
            .docs
            .list(API, REF, &format!("{repo_key}/"))
            .await?
            .is_empty())
    }

    pub(super) async fn commit(
        &self,
        repo_key: &str,
        sha: &str,
    ) -> Result<Option<Value>, GitHubError> {
        Ok(self
            .docs
            .get(API, COMMIT, &format!("{repo_key}/{sha}"))
            .await?)
    }

    /// What a `ref` parameter may name: a branch, a tag, a full ref or a commit sha.
    pub(super) async fn resolve(
        &self,
        repo_key: &str,
        rev: &str,
    ) -> Result<Option<String>, GitHubError> {
        let name = rev.strip_prefix("refs/").unwrap_or(rev);
        for candidate in [
            name.to_owned(),
            format!("heads/{name}"),
            format!("tags/{name}"),
        ] {
            if (candidate.starts_with("heads/") || candidate.starts_with("tags/"))
                && let Some(sha) = self.ref_target(repo_key, &candidate).await?
            {
                return Ok(Some(sha));
            }
        }
        Ok(self.commit(repo_key, rev).await?.map(|_| rev.to_owned()))
    }

    /// Records a commit of `tree` (path → blob sha) on top of `parent`; its sha covers the
    /// tree, the parent, the time and the message, as a git commit's does.
    pub(super) async fn write_commit(
        &self,
        repo_key: &str,
        parent: Option<&str>,
        tree: &serde_json::Map<String, Value>,
        message: &str,
        committer: &Value,
    ) -> Result<Value, GitHubError> {
        let mut entries: Vec<(&String, &Value)> = tree.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let listing: String = entries
            .iter()
            .map(|(path, blob)| format!("{} {path}\n", blob.as_str().unwrap_or_default()))
            .collect();
        let tree_sha = object_id("tree", listing.as_bytes());
        let parents: Vec<&str> = parent.into_iter().collect();
        let text = format!(
            "tree {tree_sha}\n{}time {}\n\n{message}",
            parents
                .iter()
                .map(|p| format!("parent {p}\n"))
                .collect::<String>(),
            now_ms()
        );
        let sha = object_id("commit", text.as_bytes());
        let commit = json!({
            "sha": sha, "tree": tree, "tree_sha": tree_sha, "parents": parents, "message": message,
            "date": now_iso(),
            "name": committer["name"].as_str().unwrap_or("paddock"),
            "email": committer["email"].as_str().unwrap_or("paddock@sandbox"),
        });
        self.docs
            .put(API, COMMIT, &format!("{repo_key}/{sha}"), &commit)
            .await?;
        Ok(commit)
    }

    /// The commits reachable from `sha`, newest first (one parent each: the sandbox makes
    /// no merges).
    pub(super) async fn history(
        &self,
        repo_key: &str,
        sha: &str,
    ) -> Result<Vec<Value>, GitHubError> {
        let mut commits = Vec::new();
        let mut next = Some(sha.to_owned());
        while let Some(sha) = next {
            let Some(commit) = self.commit(repo_key, &sha).await? else {
                break;
            };
            next = commit["parents"][0].as_str().map(str::to_owned);
            commits.push(commit);
        }
        Ok(commits)
    }

    /// What merging `head` into `base` would bring, from their merge base.
    pub(super) async fn compare(
        &self,
        repo_key: &str,
        base_sha: &str,
        head_sha: &str,
    ) -> Result<Comparison, GitHubError> {
        let base = self.history(repo_key, base_sha).await?;
        let head = self.history(repo_key, head_sha).await?;
        let in_base: HashSet<&str> = base.iter().filter_map(|c| c["sha"].as_str()).collect();
        let ahead = head
            .iter()
            .take_while(|c| !c["sha"].as_str().is_some_and(|s| in_base.contains(s)))
            .count();
        let empty = json!({});
        let tree = |c: Option<&Value>| c.map_or(&empty, |c| &c["tree"]).clone();
        let (merge_base, ours, theirs) = (
            tree(head.get(ahead)),
            tree(head.first()),
            tree(base.first()),
        );
        let changed = |side: &Value| -> BTreeSet<String> {
            let paths = side.as_object().into_iter().chain(merge_base.as_object());
            paths
                .flat_map(|t| t.keys())
                .filter(|p| side[p.as_str()] != merge_base[p.as_str()])
                .cloned()
                .collect()
        };
        let (changed_here, changed_there) = (changed(&ours), changed(&theirs));
        let conflicts = changed_here
            .intersection(&changed_there)
            .any(|p| ours[p.as_str()] != theirs[p.as_str()]);
        Ok(Comparison {
            commits: ahead,
            changed_files: changed_here.len(),
            conflicts,
        })
    }

    /// A commit as a file write returns it.
    pub(super) fn commit_json(&self, full: &str, commit: &Value) -> Value {
        let sha = commit["sha"].as_str().unwrap_or_default();
        let api = format!("{}/repos/{full}", self.api());
        let web = format!("{}/{full}", self.base_url);
        let person =
            json!({"date": commit["date"], "name": commit["name"], "email": commit["email"]});
        let parents: Vec<Value> = commit["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| json!({"sha": p, "url": format!("{api}/git/commits/{p}"), "html_url": format!("{web}/commit/{p}")}))
            .collect();
        json!({
            "sha": sha, "node_id": format!("C_{sha}"),
            "url": format!("{api}/git/commits/{sha}"), "html_url": format!("{web}/commit/{sha}"),
            "author": person, "committer": person, "message": commit["message"],
            "tree": {"url": format!("{api}/git/trees/{}", commit["tree_sha"].as_str().unwrap_or_default()), "sha": commit["tree_sha"]},
            "parents": parents,
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
        })
    }

    /// `POST git/refs`: a new ref (`refs/heads/x` is a branch) at a commit the repository
    /// knows.
    pub(super) async fn create_ref(
        &self,
        repo_key: &str,
        repo: &Value,
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/git/refs#create-a-reference";
        let request = parse_json(body, DOCS)?;
        let unprocessable =
            |message: String| error(StatusCode::UNPROCESSABLE_ENTITY, message, DOCS);
        let field = |name: &str| {
            request[name].as_str().ok_or_else(|| {
                unprocessable(format!("Invalid request.\n\n\"{name}\" wasn't supplied."))
            })
        };
        let (name, sha) = (field("ref")?, field("sha")?);
        let Some(short) = name.strip_prefix("refs/").filter(|rest| rest.contains('/')) else {
            return Err(unprocessable(
                "Reference name must contain at least three slash-separated components.".to_owned(),
            ));
        };
        if !valid_ref_name(name) {
            return Err(unprocessable(format!("{name} is not a valid ref name.")));
        }
        let _git = self.git.lock().await;
        if self.is_empty(repo_key).await? {
            return Err(error(
                StatusCode::CONFLICT,
                "Git Repository is empty.",
                DOCS,
            ));
        }
        if self.commit(repo_key, sha).await?.is_none() {
            return Err(unprocessable("Object does not exist".to_owned()));
        }
        if !self
            .docs
            .insert_new(
                API,
                REF,
                &format!("{repo_key}/{short}"),
                &json!({ "sha": sha }),
            )
            .await?
        {
            return Err(unprocessable("Reference already exists".to_owned()));
        }
        let (api, full) = (self.api(), self.full_name(repo));
        let url = format!("{api}/repos/{full}/git/{name}");
        let reference = json!({
            "ref": name, "node_id": format!("REF_{}", numeric_id(&format!("{full}/{name}"))), "url": url,
            "object": {"type": "commit", "sha": sha, "url": format!("{api}/repos/{full}/git/commits/{sha}")},
        });
        Ok(with_location(json_ok(StatusCode::CREATED, reference), &url))
    }
}
