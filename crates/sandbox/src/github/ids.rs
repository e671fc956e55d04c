//! GitHub's routes by id, which the URLs it returns use: a team's `url` is
//! `/organizations/{org_id}/team/{team_id}`, and `/repositories/{repository_id}` and
//! `/user/{account_id}` name a repository and a user. Each is the same resource as its
//! route by name, so a request by id is served as that request by name.

use super::errors::{GitHubError, not_found};
use super::{API, GitHub, REPO, TEAM, numeric_id};

const DOCS: &str = "https://docs.github.com/rest";

impl GitHub {
    /// The route by name of a route by id (404 when the id names nothing), or `None` for
    /// a route that is not by id.
    pub(super) async fn by_name(
        &self,
        segments: &[&str],
    ) -> Result<Option<Vec<String>>, GitHubError> {
        let owned = |rest: &[&str]| rest.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let named = match segments {
            ["organizations", org_id, rest @ ..] => {
                if org_id.parse() != Ok(numeric_id(&self.org)) {
                    return Err(not_found(DOCS));
                }
                let mut named = vec!["orgs".to_owned(), self.org.clone()];
                match rest {
                    ["team", team_id, tail @ ..] => {
                        let slug = self.team_slug(team_id).await?.ok_or(not_found(DOCS))?;
                        named.extend(["teams".to_owned(), slug]);
                        named.extend(owned(tail));
                    }
                    tail => named.extend(owned(tail)),
                }
                named
            }
            ["repositories", id, tail @ ..] => {
                let name = self.repo_name(id).await?.ok_or(not_found(DOCS))?;
                let mut named = vec!["repos".to_owned(), self.org.clone(), name];
                named.extend(owned(tail));
                named
            }
            ["user", id] if id.parse::<i64>().is_ok() => {
                let login = self
                    .login_of(id.parse().unwrap_or_default())
                    .await?
                    .ok_or(not_found(DOCS))?;
                vec!["users".to_owned(), login]
            }
            _ => return Ok(None),
        };
        Ok(Some(named))
    }

    /// The slug of the team whose id is `id`.
    async fn team_slug(&self, id: &str) -> Result<Option<String>, GitHubError> {
        let id: i64 = id.parse().map_err(|_| not_found(DOCS))?;
        Ok(self
            .docs
            .list(API, TEAM, "")
            .await?
            .into_iter()
            .map(|(slug, _)| slug)
            .find(|slug| numeric_id(slug) == id))
    }

    /// The name of the repository whose id is `id`.
    async fn repo_name(&self, id: &str) -> Result<Option<String>, GitHubError> {
        let id: i64 = id.parse().map_err(|_| not_found(DOCS))?;
        Ok(self
            .docs
            .values(API, REPO, "")
            .await?
            .into_iter()
            .filter_map(|repo| repo["name"].as_str().map(str::to_owned))
            .find(|name| numeric_id(&format!("{}/{name}", self.org)) == id))
    }
}
