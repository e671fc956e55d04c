//! The sandbox's GitHub App: its JWT, its installation on the organization and the
//! installation's tokens.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::now_ms;

use super::errors::{GitHubError, GitHubResult, error, not_found};
use super::{API, APP_ID, GitHub, INSTALLATION_ID, INSTALLATION_TOKEN, json_ok, numeric_id};

/// What the sandbox's app may do: what Paddock's provider needs.
pub(super) fn app_permissions() -> Value {
    json!({"administration": "write", "contents": "write", "environments": "write", "secrets": "write", "actions_variables": "write", "members": "write", "metadata": "read"})
}

impl GitHub {
    /// The admin token, or an installation token that has not expired.
    pub(super) async fn token_ok(&self, token: &str) -> Result<bool, GitHubError> {
        if token == self.admin_token {
            return Ok(true);
        }
        let stored = self.docs.get(API, INSTALLATION_TOKEN, token).await?;
        Ok(stored.is_some_and(|t| t["expiresAtMs"].as_i64().is_some_and(|at| at > now_ms())))
    }

    /// A JWT as GitHub wants it from an app: RS256 with the app's key, issued by the app's
    /// id, expiring within ten minutes.
    pub(super) fn check_app_jwt(&self, token: &str) -> Result<(), GitHubError> {
        const DOCS: &str = "https://docs.github.com/rest";
        let now = now_ms() / 1000;
        let claims = self.app_key.verify(token, now).map_err(|_| {
            error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
                DOCS,
            )
        })?;
        let issuer = claims["iss"]
            .as_i64()
            .or_else(|| claims["iss"].as_str().and_then(|s| s.parse().ok()));
        if issuer != Some(APP_ID) {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "'Issuer' claim ('iss') must be an Integer",
                DOCS,
            ));
        }
        if claims["exp"]
            .as_i64()
            .is_some_and(|exp| exp > now + 600 + 60)
        {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "'Expiration time' claim ('exp') is too far in the future",
                DOCS,
            ));
        }
        Ok(())
    }

    pub(super) fn installation(&self) -> Value {
        let api = self.api();
        json!({
            "id": INSTALLATION_ID, "app_id": APP_ID, "app_slug": "paddock", "target_id": numeric_id(&self.org), "target_type": "Organization",
            "account": self.owner(), "single_file_name": null, "repository_selection": "all",
            "access_tokens_url": format!("{api}/app/installations/{INSTALLATION_ID}/access_tokens"),
            "html_url": format!("{}/organizations/{}/settings/installations/{INSTALLATION_ID}", self.base_url, self.org),
            "repositories_url": format!("{api}/installation/repositories"), "events": [],
            "permissions": app_permissions(), "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "suspended_by": null, "suspended_at": null,
        })
    }

    pub(super) async fn app(&self, method: &Method, segments: &[&str]) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/apps/apps";
        match (segments, method) {
            (["app"], &Method::GET) => Ok(json_ok(
                StatusCode::OK,
                json!({
                    "id": APP_ID, "slug": "paddock", "node_id": format!("A_{APP_ID}"), "owner": self.owner(), "name": "Paddock",
                    "description": "Self-service infrastructure", "external_url": format!("{}/apps/paddock", self.base_url), "html_url": format!("{}/apps/paddock", self.base_url),
                    "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "permissions": app_permissions(), "events": [],
                }),
            )),
            (["orgs", org, "installation"], &Method::GET) if self.is_org(org) => {
                Ok(json_ok(StatusCode::OK, self.installation()))
            }
            (["app", "installations", id, "access_tokens"], &Method::POST)
                if *id == INSTALLATION_ID.to_string() =>
            {
                let token = format!("ghs_{}", crate::new_id());
                let expires = now_ms() + 3_600_000;
                self.docs
                    .put(
                        API,
                        INSTALLATION_TOKEN,
                        &token,
                        &json!({ "expiresAtMs": expires }),
                    )
                    .await?;
                let expires_at = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(expires as u64),
                )
                .to_string();
                Ok(json_ok(
                    StatusCode::CREATED,
                    json!({"token": token, "expires_at": expires_at, "permissions": app_permissions(), "repository_selection": "all"}),
                ))
            }
            _ => Err(not_found(DOCS)),
        }
    }
}
