//! Environment secrets (libsodium sealed boxes, opened with the environment's key so
//! tests can check what arrived) and variables, of an environment or of a repository.

use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::documents::Documents;
use crate::{SandboxError, uuid_v4};

use super::errors::{GitHubError, GitHubResult, error, invalid, not_found, parse_json};
use super::paging::Paging;
use super::{API, ENV_KEY, GitHub, REPO_VARIABLE, SECRET, VARIABLE, json_ok, now_iso, numeric_id};

/// GitHub's rule for secret and variable names.
pub(super) fn check_secret_name(name: &str, docs: &'static str) -> Result<(), GitHubError> {
    let upper = name.to_uppercase();
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !upper.starts_with("GITHUB_");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "Validation Failed",
            "Secret",
            "name",
            "names may only contain letters, digits and '_', may not start with a digit or GITHUB_",
            docs,
        ))
    }
}

/// Control API: the clear value of an environment secret, as it arrived.
pub(crate) async fn secret_value(
    docs: &Documents,
    repo: &str,
    env: &str,
    name: &str,
) -> Result<Option<String>, SandboxError> {
    let key = format!(
        "{}/{}/{}",
        repo.to_lowercase(),
        env.to_lowercase(),
        name.to_uppercase()
    );
    Ok(docs
        .get(API, SECRET, &key)
        .await?
        .and_then(|s| s["value"].as_str().map(str::to_owned)))
}

/// Control API: the `vars` context of a job of `repo` running in the environment `env`
/// (GitHub Actions' rule: the repository's variables, overridden by the environment's of
/// the same name), by name.
pub(crate) async fn workflow_vars(
    docs: &Documents,
    repo: &str,
    env: &str,
) -> Result<serde_json::Map<String, Value>, SandboxError> {
    let repo = repo.to_lowercase();
    let mut vars = serde_json::Map::new();
    let levels = [
        (REPO_VARIABLE, format!("{repo}/")),
        (VARIABLE, format!("{repo}/{}/", env.to_lowercase())),
    ];
    for (kind, prefix) in levels {
        for var in docs.values(API, kind, &prefix).await? {
            if let Some(name) = var["name"].as_str() {
                vars.insert(name.to_owned(), var["value"].clone());
            }
        }
    }
    Ok(vars)
}

impl GitHub {
    /// The environment's key pair, created on first use.
    pub(super) async fn key_pair(
        &self,
        env_key: &str,
    ) -> Result<(String, crypto_box::SecretKey), GitHubError> {
        if let Some(stored) = self.docs.get(API, ENV_KEY, env_key).await? {
            let bytes: [u8; 32] = B64
                .decode(stored["secret"].as_str().unwrap_or_default())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "corrupt environment key",
                        "https://docs.github.com/rest",
                    )
                })?;
            return Ok((
                stored["key_id"].as_str().unwrap_or_default().to_owned(),
                crypto_box::SecretKey::from(bytes),
            ));
        }
        let secret = crypto_box::SecretKey::generate(&mut rand::rngs::OsRng);
        let key_id = numeric_id(&uuid_v4()).to_string();
        self.docs
            .put(
                API,
                ENV_KEY,
                env_key,
                &json!({"key_id": key_id, "secret": B64.encode(secret.to_bytes())}),
            )
            .await?;
        Ok((key_id, secret))
    }

    /// `list` is the list's URL and the request's query, for paging.
    pub(super) async fn secrets(
        &self,
        method: &Method,
        env_key: &str,
        rest: &[&str],
        list: (&str, &[(String, String)]),
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/actions/secrets";
        match (rest, method) {
            (["public-key"], &Method::GET) => {
                let (key_id, secret) = self.key_pair(env_key).await?;
                Ok(json_ok(
                    StatusCode::OK,
                    json!({"key_id": key_id, "key": B64.encode(secret.public_key().as_bytes())}),
                ))
            }
            ([], &Method::GET) => {
                let secrets: Vec<Value> = self.docs.list(API, SECRET, &format!("{env_key}/")).await?.into_iter().map(|(_, s)| json!({"name": s["name"], "created_at": s["created_at"], "updated_at": s["updated_at"]})).collect();
                let (url, query) = list;
                Ok(Paging::of(query).counted("secrets", &secrets, url, query))
            }
            ([name], m) => {
                let key = format!("{env_key}/{}", name.to_uppercase());
                let existing = self.docs.get(API, SECRET, &key).await?;
                match *m {
                    Method::GET => {
                        let s = existing.ok_or_else(|| not_found(DOCS))?;
                        Ok(json_ok(
                            StatusCode::OK,
                            json!({"name": s["name"], "created_at": s["created_at"], "updated_at": s["updated_at"]}),
                        ))
                    }
                    Method::DELETE => {
                        existing.ok_or_else(|| not_found(DOCS))?;
                        self.docs.delete(API, SECRET, &key).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    Method::PUT => {
                        check_secret_name(name, DOCS)?;
                        let request: Value = parse_json(body, DOCS)?;
                        let (key_id, secret_key) = self.key_pair(env_key).await?;
                        if request["key_id"] != json!(key_id) {
                            return Err(invalid(
                                "Validation Failed",
                                "Secret",
                                "key_id",
                                "key_id does not match the environment's public key",
                                DOCS,
                            ));
                        }
                        let sealed = request["encrypted_value"]
                            .as_str()
                            .and_then(|v| B64.decode(v).ok())
                            .unwrap_or_default();
                        let value = secret_key
                            .unseal(&sealed)
                            .ok()
                            .and_then(|v| String::from_utf8(v).ok())
                            .ok_or_else(|| {
                                invalid(
                                    "Validation Failed",
                                    "Secret",
                                    "encrypted_value",
                                    "encrypted_value is not a sealed box for this key",
                                    DOCS,
                                )
                            })?;
                        let now = now_iso();
                        let created = existing
                            .as_ref()
                            .and_then(|e| e["created_at"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| now.clone());
                        self.docs.put(API, SECRET, &key, &json!({"name": name.to_uppercase(), "value": value, "created_at": created, "updated_at": now})).await?;
                        Ok(if existing.is_some() {
                            StatusCode::NO_CONTENT
                        } else {
                            StatusCode::CREATED
                        }
                        .into_response())
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }

    /// The variables of an environment (`kind` `VARIABLE`, `owner` its key) or of a
    /// repository (`REPO_VARIABLE`, the repository's key): the same API at two levels.
    /// `list` is the list's URL and the request's query, for paging.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn variables(
        &self,
        method: &Method,
        kind: &'static str,
        owner: &str,
        rest: &[&str],
        list: (&str, &[(String, String)]),
        body: &[u8],
    ) -> GitHubResult {
        const DOCS: &str = "https://docs.github.com/rest/actions/variables";
        match (rest, method) {
            ([], &Method::GET) => {
                let vars: Vec<Value> = self.docs.values(API, kind, &format!("{owner}/")).await?;
                let (url, query) = list;
                // GitHub pages variables 10 at a time, at most 30.
                Ok(Paging::sized(query, 10, 30).counted("variables", &vars, url, query))
            }
            ([], &Method::POST) => {
                let request = parse_json(body, DOCS)?;
                let (Some(name), Some(value)) =
                    (request["name"].as_str(), request["value"].as_str())
                else {
                    return Err(invalid(
                        "Validation Failed",
                        "Variable",
                        "name",
                        "name and value are required",
                        DOCS,
                    ));
                };
                check_secret_name(name, DOCS)?;
                let now = now_iso();
                let var = json!({"name": name.to_uppercase(), "value": value, "created_at": now, "updated_at": now});
                if !self
                    .docs
                    .insert_new(API, kind, &format!("{owner}/{}", name.to_uppercase()), &var)
                    .await?
                {
                    return Err(error(
                        StatusCode::CONFLICT,
                        "Already exists - Variable already exists",
                        DOCS,
                    ));
                }
                Ok(json_ok(StatusCode::CREATED, json!({})))
            }
            ([name], m) => {
                let key = format!("{owner}/{}", name.to_uppercase());
                let mut var = self
                    .docs
                    .get(API, kind, &key)
                    .await?
                    .ok_or_else(|| not_found(DOCS))?;
                match *m {
                    Method::GET => Ok(json_ok(StatusCode::OK, var)),
                    Method::PATCH => {
                        let request = parse_json(body, DOCS)?;
                        if let Some(value) = request["value"].as_str() {
                            var["value"] = json!(value);
                        }
                        var["updated_at"] = json!(now_iso());
                        self.docs.put(API, kind, &key, &var).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    Method::DELETE => {
                        self.docs.delete(API, kind, &key).await?;
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    _ => Err(not_found(DOCS)),
                }
            }
            _ => Err(not_found(DOCS)),
        }
    }
}
