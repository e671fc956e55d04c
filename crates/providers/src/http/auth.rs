//! Credentials: where the `Authorization` header of a request comes from.
//!
//! - a fixed token (a GitHub token, a Kubernetes bearer token);
//! - a token file re-read when it may have rotated (Kubernetes' in-cluster account);
//! - a GitHub App: a JWT signed with the app's private key, exchanged for an installation
//!   token, refreshed five minutes before it expires;
//! - Entra ID client credentials: a client secret, a certificate (a signed client
//!   assertion), or workload identity federation (an assertion read from a file, as in
//!   GitHub Actions or AKS); tokens cached per scope and refreshed before they expire.
//!
//! Tokens are kept only in memory and never logged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer as _};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Api, HttpError, cloud_error, form_encode};

/// Refresh a cached token this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[async_trait]
pub trait Credential: Send + Sync {
    /// The `Authorization` header's value.
    async fn authorization(&self, http: &reqwest::Client) -> Result<String, HttpError>;

    /// Forgets a cached token (the API refused it).
    fn invalidate(&self) {}
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn epoch_secs() -> i64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A token that does not change: `Bearer …` (or GitHub's `token …`).
pub struct StaticToken {
    header: String,
}

impl StaticToken {
    pub fn bearer(token: &str) -> StaticToken {
        StaticToken {
            header: format!("Bearer {token}"),
        }
    }
}

#[async_trait]
impl Credential for StaticToken {
    async fn authorization(&self, _: &reqwest::Client) -> Result<String, HttpError> {
        Ok(self.header.clone())
    }
}

/// A bearer token kept in a file that another process rotates (a Kubernetes projected
/// service-account token): re-read every minute and when refused.
pub struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> TokenFile {
        TokenFile {
            path,
            cached: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Credential for TokenFile {
    async fn authorization(&self, _: &reqwest::Client) -> Result<String, HttpError> {
        if let Some((token, read_at)) = &*self.cached.lock().expect("token lock")
            && read_at.elapsed().unwrap_or_default() < Duration::from_secs(60)
        {
            return Ok(format!("Bearer {token}"));
        }
        let token = std::fs::read_to_string(&self.path)
            .map_err(|e| HttpError::Config {
                api: "kubernetes",
                message: format!("cannot read the token file {}: {e}", self.path.display()),
            })?
            .trim()
            .to_owned();
        *self.cached.lock().expect("token lock") = Some((token.clone(), now()));
        Ok(format!("Bearer {token}"))
    }

    fn invalidate(&self) {
        *self.cached.lock().expect("token lock") = None;
    }
}

/// Sends a sign-in request, retrying what a token endpoint's hiccup looks like (a dropped
/// connection, 429, 5xx) a few times, so a blip there does not fail the operation: the
/// status and JSON body of the last answer.
async fn sign_in_request(
    api: super::Api,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Value), reqwest::Error> {
    let policy = super::RetryPolicy::default();
    let attempts = 5;
    let mut attempt = 0;
    let user_agent = super::user_agent();
    loop {
        attempt += 1;
        let mut request = build();
        if let Some(agent) = &user_agent {
            request = request.header(reqwest::header::USER_AGENT, agent);
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = super::retry_after(response.headers());
                response.bytes().await.map(|b| {
                    (
                        status,
                        retry_after,
                        serde_json::from_slice(&b).unwrap_or(Value::Null),
                    )
                })
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((status, retry_after, body)) => {
                let why = match status.as_u16() {
                    429 => super::Retry::Throttled,
                    _ if status.is_server_error() => super::Retry::ServerError,
                    _ => return Ok((status, body)),
                };
                if attempt >= attempts {
                    return Ok((status, body));
                }
                why.count(api);
                tokio::time::sleep(policy.delay(attempt, retry_after).min(policy.max_delay)).await;
            }
            Err(e) if attempt >= attempts => return Err(e),
            Err(_) => {
                super::Retry::Connection.count(api);
                tokio::time::sleep(policy.delay(attempt, None)).await
            }
        }
    }
}

/// An RS256 JSON Web Token.
fn sign_jwt(key: &SigningKey<Sha256>, header: &Value, claims: &Value) -> String {
    let body = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = key.sign(body.as_bytes());
    format!("{body}.{}", B64.encode(signature.to_bytes()))
}

fn parse_key(api: &'static str, pem: &str) -> Result<SigningKey<Sha256>, HttpError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| HttpError::Config {
            api,
            message: format!("the private key is not an RSA key in PEM (PKCS#8 or PKCS#1): {e}"),
        })?;
    Ok(SigningKey::new(key))
}

/// A GitHub App installation: app JWT → installation token.
pub struct GitHubApp {
    api_url: String,
    app_id: String,
    installation_id: String,
    key: SigningKey<Sha256>,
    cached: Mutex<Option<(String, SystemTime)>>,
}

impl GitHubApp {
    /// `private_key_pem` is the app's key as GitHub hands it out (PKCS#1) or PKCS#8.
    pub fn new(
        api_url: &str,
        app_id: &str,
        installation_id: &str,
        private_key_pem: &str,
    ) -> Result<GitHubApp, HttpError> {
        Ok(GitHubApp {
            api_url: api_url.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            installation_id: installation_id.to_owned(),
            key: parse_key("github", private_key_pem)?,
            cached: Mutex::new(None),
        })
    }

    /// The app's own JWT: issued a minute in the past against clock drift, nine minutes
    /// long (GitHub allows ten).
    fn app_jwt(&self) -> String {
        let now = epoch_secs();
        sign_jwt(
            &self.key,
            &json!({"alg": "RS256", "typ": "JWT"}),
            &json!({"iat": now - 60, "exp": now + 540, "iss": self.app_id}),
        )
    }
}

#[async_trait]
impl Credential for GitHubApp {
    async fn authorization(&self, http: &reqwest::Client) -> Result<String, HttpError> {
        if let Some((token, expires)) = &*self.cached.lock().expect("token lock")
            && now() + REFRESH_MARGIN < *expires
        {
            return Ok(format!("Bearer {token}"));
        }
        let url = format!(
            "{}/app/installations/{}/access_tokens",
            self.api_url, self.installation_id
        );
        let jwt = self.app_jwt();
        let (status, body) = sign_in_request(super::Api::GitHub, || {
            http.post(&url)
                .bearer_auth(&jwt)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
        })
        .await
        .map_err(|e| HttpError::Auth {
            api: "github",
            code: "ConnectionFailed".into(),
            message: format!("cannot reach GitHub for an installation token: {e}"),
        })?;
        if !status.is_success() {
            let (code, message) = cloud_error(Api::GitHub, status, &body);
            return Err(HttpError::Auth {
                api: "github",
                code,
                message: format!(
                    "the GitHub App {} could not get a token for installation {}: {message} (check the app id, its private key and that it is installed on the organization)",
                    self.app_id, self.installation_id
                ),
            });
        }
        let token = body["token"].as_str().unwrap_or_default().to_owned();
        let expires = body["expires_at"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .unwrap_or_else(|| now() + Duration::from_secs(3600));
        *self.cached.lock().expect("token lock") = Some((token.clone(), expires));
        Ok(format!("Bearer {token}"))
    }

    fn invalidate(&self) {
        *self.cached.lock().expect("token lock") = None;
    }
}

/// How an Entra application proves who it is.
pub enum EntraSecret {
    ClientSecret(String),
    /// A certificate's private key (PEM) and the certificate (PEM), for a signed client
    /// assertion.
    Certificate {
        key_pem: String,
        cert_pem: String,
    },
    /// Workload identity federation: a file holding a token from a trusted issuer (as
    /// `AZURE_FEDERATED_TOKEN_FILE` in AKS or a GitHub Actions OIDC token), re-read for
    /// each sign-in since it rotates.
    AssertionFile(PathBuf),
}

/// Signs in to Entra ID with client credentials; tokens cached per scope.
pub struct EntraSignIn {
    authority: String,
    tenant: String,
    client_id: String,
    secret: EntraSecret,
    tokens: Mutex<HashMap<String, (String, SystemTime)>>,
}

impl EntraSignIn {
    pub fn new(authority: &str, tenant: &str, client_id: &str, secret: EntraSecret) -> EntraSignIn {
        EntraSignIn {
            authority: authority.trim_end_matches('/').to_owned(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }

    fn assertion(&self) -> Result<Option<String>, HttpError> {
        let config = |message: String| HttpError::Config {
            api: "entra",
            message,
        };
        match &self.secret {
            EntraSecret::ClientSecret(_) => Ok(None),
            EntraSecret::AssertionFile(path) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_owned()))
                .map_err(|e| {
                    config(format!(
                        "cannot read the federated token file {}: {e}",
                        path.display()
                    ))
                }),
            EntraSecret::Certificate { key_pem, cert_pem } => {
                use sha2::Digest;
                let der = pem_body(cert_pem)
                    .ok_or_else(|| config("the certificate is not PEM".to_owned()))?;
                let thumbprint = B64.encode(Sha256::digest(&der));
                let now = epoch_secs();
                let key = parse_key("entra", key_pem)?;
                Ok(Some(sign_jwt(
                    &key,
                    &json!({"alg": "RS256", "typ": "JWT", "x5t#S256": thumbprint}),
                    &json!({
                        "aud": self.endpoint(),
                        "iss": self.client_id,
                        "sub": self.client_id,
                        "jti": format!("{:x}", rand::random::<u128>()),
                        "nbf": now,
                        "iat": now,
                        "exp": now + 600,
                    }),
                )))
            }
        }
    }

    /// An access token for `scope` (`https://management.azure.com/.default`).
    pub async fn token(&self, http: &reqwest::Client, scope: &str) -> Result<String, HttpError> {
        if let Some((token, expires)) = self.tokens.lock().expect("token lock").get(scope)
            && now() + REFRESH_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.client_id.clone()),
            ("scope", scope.to_owned()),
        ];
        match (&self.secret, self.assertion()?) {
            (EntraSecret::ClientSecret(secret), _) => form.push(("client_secret", secret.clone())),
            (_, Some(assertion)) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", assertion));
            }
            (_, None) => unreachable!("every other kind of secret makes an assertion"),
        }
        let body = form_encode(&form);
        let endpoint = self.endpoint();
        let (status, json) = sign_in_request(super::Api::Entra, || {
            http.post(&endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
        })
        .await
        .map_err(|e| HttpError::Auth {
            api: "entra",
            code: "ConnectionFailed".into(),
            message: format!("cannot reach the Entra token endpoint: {e}"),
        })?;
        if !status.is_success() {
            let (code, message) = cloud_error(Api::Entra, status, &json);
            return Err(HttpError::Auth {
                api: "entra",
                code,
                message: format!(
                    "application {} could not sign in to tenant {}: {message}",
                    self.client_id, self.tenant
                ),
            });
        }
        let token = json["access_token"].as_str().unwrap_or_default().to_owned();
        let lifetime = json["expires_in"].as_u64().unwrap_or(3600);
        self.tokens.lock().expect("token lock").insert(
            scope.to_owned(),
            (token.clone(), now() + Duration::from_secs(lifetime)),
        );
        Ok(token)
    }

    fn forget(&self, scope: &str) {
        self.tokens.lock().expect("token lock").remove(scope);
    }
}

/// An Entra sign-in for one audience: ARM or Graph.
pub struct EntraToken {
    pub sign_in: std::sync::Arc<EntraSignIn>,
    pub scope: String,
}

#[async_trait]
impl Credential for EntraToken {
    async fn authorization(&self, http: &reqwest::Client) -> Result<String, HttpError> {
        Ok(format!(
            "Bearer {}",
            self.sign_in.token(http, &self.scope).await?
        ))
    }

    fn invalidate(&self) {
        self.sign_in.forget(&self.scope);
    }
}

/// The DER bytes of the first PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN")?;
    let body_start = pem[start..].find('\n')? + start + 1;
    let end = pem[body_start..].find("-----END")? + body_start;
    let b64: String = pem[body_start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded_so_secrets_with_symbols_survive() {
        let form = form_encode(&[("client_secret", "a+b/c=d e&f".to_owned())]);
        assert_eq!(form, "client_secret=a%2Bb%2Fc%3Dd+e%26f");
    }

    #[test]
    fn pem_bodies_decode() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_body(pem), Some(vec![0, 1, 2, 3]));
    }
}
