//! Sign-in with an identity provider: OpenID Connect (Entra ID, or any issuer with a
//! discovery document) or GitHub's OAuth web flow, both as the authorization code flow
//! with PKCE (S256).
//!
//! Job: [`IdentityProvider::begin`] makes the authorization URL and the [`PendingSignIn`]
//! (state, nonce, PKCE verifier) the server keeps, keyed by state, until the callback;
//! [`IdentityProvider::finish`] redeems the code and says who signed in.
//!
//! Invariants: an ID token is accepted only if its RS256 signature verifies with a key
//! from the issuer's JWKS (by `kid`), `iss` is exactly the issuer the discovery document
//! names (which must be the configured one), `aud` contains our client id, it is within
//! `exp`/`nbf`/`iat` (two minutes' skew) and its `nonce` is the one we sent. No other
//! algorithm is accepted (no `none`, no HMAC), headers that point at keys elsewhere
//! (`jku`, `x5u`, `jwk`) are ignored, a `crit` header is refused, tokens over
//! [`MAX_TOKEN_BYTES`] are refused before any decoding, and header and claims must be
//! JSON objects without duplicate names (so no two readers can disagree on `iss`).
//! `tests/id_token.rs` holds the table of hostile tokens and the refusal each gets. Tokens, codes, verifiers and secrets never appear in
//! errors or logs; the provider's own error codes (`AADSTS…`, `bad_verification_code`)
//! do, since they say what went wrong.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rand::RngCore as _;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::{BigUint, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const SKEW_SECS: i64 = 120;
/// The longest ID token looked at; real ones are a few KiB (Entra's with group claims
/// stay well under this).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Attacker-chosen strings (`alg`, `kid`, `iss`) are cut to this many characters in errors.
const ECHO_CHARS: usize = 64;
/// JWKS fetched again at most this often when a token names an unknown key (rotation).
const JWKS_REFRESH: Duration = Duration::from_secs(60);

/// Which protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenID Connect: discovery, ID token.
    Oidc,
    /// GitHub's OAuth apps (github.com or GitHub Enterprise Server): no ID token, so who
    /// signed in comes from `GET {api}/user`.
    #[serde(rename = "github")]
    GitHub,
}

/// An identity provider, as the configuration file names it (`[[identity_providers]]`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderConfig {
    /// Short name, in URLs (`/sign-in/provider/{name}`) and on the sign-in page.
    pub name: String,
    pub kind: ProviderKind,
    /// The OpenID Connect issuer (`https://login.microsoftonline.com/{tenant}/v2.0`), or
    /// GitHub's web root (`https://github.com`).
    pub issuer: String,
    /// GitHub's API root; default `https://api.github.com` for github.com, else
    /// `{issuer}/api/v3` (GitHub Enterprise Server).
    #[serde(default)]
    pub api_url: Option<String>,
    pub client_id: String,
    /// Required by GitHub; for OpenID Connect, absent for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Default `openid profile email` (OpenID Connect) or `read:user` (GitHub).
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl IdentityProviderConfig {
    /// An OpenID Connect provider with a confidential client and the default scopes.
    pub fn oidc(name: &str, issuer: String, client_id: String, secret: String) -> Self {
        IdentityProviderConfig {
            name: name.to_owned(),
            kind: ProviderKind::Oidc,
            issuer,
            api_url: None,
            client_id,
            client_secret: Some(secret),
            scopes: Vec::new(),
        }
    }

    /// A GitHub OAuth app on the GitHub at `web_url` whose API is `api_url`.
    pub fn github(
        name: &str,
        web_url: String,
        api_url: String,
        client_id: String,
        secret: String,
    ) -> Self {
        IdentityProviderConfig {
            name: name.to_owned(),
            kind: ProviderKind::GitHub,
            issuer: web_url,
            api_url: Some(api_url),
            client_id,
            client_secret: Some(secret),
            scopes: Vec::new(),
        }
    }
}

/// The secret stays out of debug output (configs get logged).
impl std::fmt::Debug for IdentityProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "(redacted)"),
            )
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What the server keeps between [`IdentityProvider::begin`] and the callback, keyed by
/// `state` (each a random 32-byte base64url value).
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    /// The PKCE code verifier; the authorization URL carries its S256 challenge.
    pub verifier: String,
}

impl std::fmt::Debug for PendingSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Who signed in. `(issuer, subject)` is the stable key of the person at the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub issuer: String,
    /// The ID token's `sub`, or GitHub's numeric user id (logins can be renamed).
    pub subject: String,
    /// `preferred_username` (falling back to `email`, then `sub`), or the GitHub login.
    pub login: String,
    /// The display name, or the login when the provider has none.
    pub name: String,
    pub email: Option<String>,
}

/// Why an ID token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenCheck {
    #[error("malformed: {0}")]
    Malformed(&'static str),
    #[error("longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("signed with `{0}`; only RS256 is accepted")]
    Algorithm(String),
    #[error("signed with key `{0}`, which the issuer's JWKS does not publish")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("issued by `{0}`, not this provider's issuer")]
    Issuer(String),
    #[error("not issued to this client (audience)")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf)")]
    NotYetValid,
    #[error("issued in the future (iat)")]
    IssuedInFuture,
    #[error("has an `{0}` claim that is not a whole number of seconds")]
    NotNumeric(&'static str),
    #[error("the nonce does not match this sign-in")]
    Nonce,
    #[error("has no `{0}` claim")]
    Missing(&'static str),
}

/// What went wrong signing in. Carries the provider's name and, when it refused, its own
/// error code and description; never a token, code, verifier or secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("identity provider `{provider}` is misconfigured: {message}")]
    Config { provider: String, message: String },
    #[error("identity provider `{provider}`: cannot reach its {what}: {message}")]
    Unreachable {
        provider: String,
        what: &'static str,
        message: String,
    },
    #[error("identity provider `{provider}` answered its {what} request with HTTP {status}")]
    Status {
        provider: String,
        what: &'static str,
        status: u16,
    },
    #[error("identity provider `{provider}` sent an unreadable {what}: {message}")]
    Malformed {
        provider: String,
        what: &'static str,
        message: String,
    },
    #[error(
        "identity provider `{provider}`'s discovery document names issuer `{found}`, not the configured `{expected}`"
    )]
    IssuerMismatch {
        provider: String,
        expected: String,
        found: String,
    },
    /// The provider refused the code exchange: `error` is its code (`invalid_grant`,
    /// `bad_verification_code`), `description` its words (Entra's start `AADSTS…`).
    #[error("identity provider `{provider}` refused the sign-in: {error}: {description}")]
    Refused {
        provider: String,
        error: String,
        description: String,
    },
    #[error("identity provider `{provider}`: the ID token is {reason}")]
    InvalidToken {
        provider: String,
        reason: TokenCheck,
    },
}

/// The parts of an OpenID Connect discovery document used here.
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

/// A provider people sign in with. Cheap to share behind an `Arc`; caches the discovery
/// document and the JWKS.
pub struct IdentityProvider {
    config: IdentityProviderConfig,
    http: reqwest::Client,
    /// The issuer without a trailing slash, for building URLs under it.
    base: String,
    api_url: String,
    discovery: tokio::sync::OnceCell<Discovery>,
    jwks: tokio::sync::Mutex<Option<KeySet>>,
}

/// The issuer's signing keys by `kid`, and when they were fetched.
struct KeySet {
    keys: Vec<(String, RsaPublicKey)>,
    fetched: std::time::Instant,
}

impl IdentityProvider {
    /// A provider on `http` (the server's client: rustls with `ring`, plus any extra CA,
    /// as `paddock_providers::http::reqwest_client` builds it). Checks the configuration;
    /// talks to no one yet.
    pub fn new(
        config: IdentityProviderConfig,
        http: reqwest::Client,
    ) -> Result<IdentityProvider, OidcError> {
        let bad = |message: &str| OidcError::Config {
            provider: config.name.clone(),
            message: message.to_owned(),
        };
        let is_url =
            |u: &str| reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
        if config.name.is_empty()
            || !config
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("name: letters, digits, '-' and '_' only"));
        }
        if !is_url(&config.issuer) {
            return Err(bad("issuer: an absolute http(s) URL"));
        }
        if config.client_id.is_empty() {
            return Err(bad("client_id: required"));
        }
        let base = config.issuer.trim_end_matches('/').to_owned();
        let api_url = match (&config.kind, &config.api_url) {
            (_, Some(api)) => api.trim_end_matches('/').to_owned(),
            (ProviderKind::GitHub, None) if base == "https://github.com" => {
                "https://api.github.com".to_owned()
            }
            (ProviderKind::GitHub, None) => format!("{base}/api/v3"),
            (ProviderKind::Oidc, None) => String::new(),
        };
        if config.kind == ProviderKind::GitHub {
            if config.client_secret.as_deref().is_none_or(str::is_empty) {
                return Err(bad("client_secret: GitHub OAuth apps require one"));
            }
            if !is_url(&api_url) {
                return Err(bad("api_url: an absolute http(s) URL"));
            }
        }
        Ok(IdentityProvider {
            config,
            http,
            base,
            api_url,
            discovery: tokio::sync::OnceCell::new(),
            jwks: tokio::sync::Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    fn scopes(&self) -> String {
        if !self.config.scopes.is_empty() {
            return self.config.scopes.join(" ");
        }
        match self.config.kind {
            ProviderKind::Oidc => "openid profile email".to_owned(),
            ProviderKind::GitHub => "read:user".to_owned(),
        }
    }

    /// Starts a sign-in: the URL to send the browser to, and what to keep until the
    /// callback (keyed by its `state`).
    pub async fn begin(&self, redirect_uri: &str) -> Result<(String, PendingSignIn), OidcError> {
        let pending = PendingSignIn {
            state: random(),
            nonce: random(),
            verifier: random(),
        };
        let endpoint = match self.config.kind {
            ProviderKind::Oidc => self.discovery().await?.authorization_endpoint.clone(),
            ProviderKind::GitHub => format!("{}/login/oauth/authorize", self.base),
        };
        let mut url = reqwest::Url::parse(&endpoint).map_err(|e| OidcError::Malformed {
            provider: self.config.name.clone(),
            what: "authorization endpoint",
            message: e.to_string(),
        })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.scopes())
                .append_pair("state", &pending.state)
                .append_pair("code_challenge", &challenge(&pending.verifier))
                .append_pair("code_challenge_method", "S256");
            if self.config.kind == ProviderKind::Oidc {
                query
                    .append_pair("response_type", "code")
                    .append_pair("response_mode", "query")
                    .append_pair("nonce", &pending.nonce);
            }
        }
        Ok((url.into(), pending))
    }

    /// Finishes a sign-in: redeems `code` (with the PKCE verifier) and says who signed in.
    /// `redirect_uri` must be the one `begin` was given.
    pub async fn finish(
        &self,
        pending: &PendingSignIn,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Identity, OidcError> {
        match self.config.kind {
            ProviderKind::Oidc => self.finish_oidc(pending, code, redirect_uri).await,
            ProviderKind::GitHub => self.finish_github(pending, code, redirect_uri).await,
        }
    }

    async fn finish_oidc(
        &self,
        pending: &PendingSignIn,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Identity, OidcError> {
        let discovery = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", self.config.client_id.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let mut request = self.http.post(&discovery.token_endpoint);
        if let Some(secret) = &self.config.client_secret {
            // `client_secret_post` unless the provider only takes HTTP Basic.
            let methods = &discovery.token_endpoint_auth_methods_supported;
            if methods.is_empty() || methods.iter().any(|m| m == "client_secret_post") {
                form.push(("client_secret", secret.as_str()));
            } else {
                request = request.basic_auth(
                    form_encode(&self.config.client_id),
                    Some(form_encode(secret)),
                );
            }
        }
        let body = self.exchange(request, &form).await?;
        let id_token = body["id_token"]
            .as_str()
            .ok_or_else(|| self.malformed("token response", "it has no id_token"))?;
        self.verify_id_token(id_token, &pending.nonce).await
    }

    async fn finish_github(
        &self,
        pending: &PendingSignIn,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Identity, OidcError> {
        let form = [
            ("client_id", self.config.client_id.as_str()),
            (
                "client_secret",
                self.config.client_secret.as_deref().unwrap_or_default(),
            ),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let request = self
            .http
            .post(format!("{}/login/oauth/access_token", self.base));
        let body = self.exchange(request, &form).await?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| self.malformed("token response", "it has no access_token"))?;
        let response = self
            .http
            .get(format!("{}/user", self.api_url))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header(reqwest::header::USER_AGENT, "paddock")
            .send()
            .await
            .map_err(|e| self.unreachable("user API", &e))?;
        if !response.status().is_success() {
            return Err(OidcError::Status {
                provider: self.config.name.clone(),
                what: "user API",
                status: response.status().as_u16(),
            });
        }
        let user: Value = response
            .json()
            .await
            .map_err(|e| self.malformed("user", &e.to_string()))?;
        let login = user["login"]
            .as_str()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| self.malformed("user", "it has no login"))?;
        let id = user["id"]
            .as_i64()
            .ok_or_else(|| self.malformed("user", "it has no numeric id"))?;
        Ok(Identity {
            issuer: self.base.clone(),
            subject: id.to_string(),
            login: login.to_owned(),
            name: user["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(login)
                .to_owned(),
            email: user["email"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(str::to_owned),
        })
    }

    /// Posts the code exchange form, asking for JSON: the token response, or the
    /// provider's refusal (GitHub's come with 200, OAuth's with 400/401).
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        form: &[(&str, &str)],
    ) -> Result<Value, OidcError> {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let response = request
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable("token endpoint", &e))?;
        let status = response.status();
        let body: Option<Value> = response.json().await.ok();
        if let Some(error) = body.as_ref().and_then(|b| b["error"].as_str()) {
            let description = body.as_ref().and_then(|b| b["error_description"].as_str());
            return Err(OidcError::Refused {
                provider: self.config.name.clone(),
                error: error.to_owned(),
                description: summary(description.unwrap_or("(no description)")),
            });
        }
        match body {
            Some(body) if status.is_success() => Ok(body),
            _ if !status.is_success() => Err(OidcError::Status {
                provider: self.config.name.clone(),
                what: "token endpoint",
                status: status.as_u16(),
            }),
            _ => Err(self.malformed("token response", "not JSON")),
        }
    }

    /// Checks an ID token from this provider (see the module's invariants) and reads the
    /// identity from it. `finish` calls it; public so a token can be checked on its own.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let invalid = |reason| OidcError::InvalidToken {
            provider: self.config.name.clone(),
            reason,
        };
        if id_token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(TokenCheck::TooLarge));
        }
        let discovery = self.discovery().await?;
        let token = SignedToken::read(id_token).map_err(invalid)?;
        // The key comes only from the issuer's JWKS; `jku`, `x5u` and `jwk` are not read.
        let key = self.key(&discovery.jwks_uri, token.kid.as_deref()).await?;
        let key = key.ok_or_else(|| {
            invalid(TokenCheck::UnknownKey(echo(
                token.kid.as_deref().unwrap_or(""),
            )))
        })?;
        let expected = Expected {
            issuer: &discovery.issuer,
            client_id: &self.config.client_id,
            nonce,
            now: now_secs(),
        };
        token.check(&key, &expected).map_err(invalid)
    }

    /// The discovery document, fetched once; its issuer must be the configured one
    /// (OIDC Discovery 4.3), or tokens could name any issuer the document claims.
    async fn discovery(&self) -> Result<&Discovery, OidcError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.base);
                let doc: Discovery = self.get_json(&url, "discovery document").await?;
                if doc.issuer != self.config.issuer {
                    return Err(OidcError::IssuerMismatch {
                        provider: self.config.name.clone(),
                        expected: self.config.issuer.clone(),
                        found: doc.issuer,
                    });
                }
                Ok(doc)
            })
            .await
    }

    /// The key `kid` names (or the only key, when the token names none). An unknown `kid`
    /// fetches the JWKS again (the provider may have rotated keys), at most once a minute.
    async fn key(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<Option<RsaPublicKey>, OidcError> {
        let find = |keys: &[(String, RsaPublicKey)]| find_key(keys, kid).cloned();
        let mut cache = self.jwks.lock().await;
        if let Some(set) = cache.as_ref() {
            if let Some(key) = find(&set.keys) {
                return Ok(Some(key));
            }
            if set.fetched.elapsed() < JWKS_REFRESH {
                return Ok(None);
            }
        }
        let jwks: Value = self.get_json(jwks_uri, "JWKS").await?;
        let keys: Vec<(String, RsaPublicKey)> = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| {
                k["kty"] == "RSA"
                    && k["use"].as_str().is_none_or(|u| u == "sig")
                    && k["alg"].as_str().is_none_or(|a| a == "RS256")
            })
            .filter_map(|k| {
                let n = B64URL.decode(k["n"].as_str()?).ok()?;
                let e = B64URL.decode(k["e"].as_str()?).ok()?;
                let key = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                    .ok()?;
                Some((k["kid"].as_str().unwrap_or_default().to_owned(), key))
            })
            .collect();
        let key = find(&keys);
        *cache = Some(KeySet {
            keys,
            fetched: std::time::Instant::now(),
        });
        Ok(key)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &'static str,
    ) -> Result<T, OidcError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.unreachable(what, &e))?;
        if !response.status().is_success() {
            return Err(OidcError::Status {
                provider: self.config.name.clone(),
                what,
                status: response.status().as_u16(),
            });
        }
        response
            .json()
            .await
            .map_err(|e| self.malformed(what, &e.to_string()))
    }

    fn unreachable(&self, what: &'static str, e: &reqwest::Error) -> OidcError {
        // The URL is kept (it holds no secret: codes and secrets travel in POST bodies);
        // the error chain says why (refused, TLS, timeout).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        OidcError::Unreachable {
            provider: self.config.name.clone(),
            what,
            message,
        }
    }

    fn malformed(&self, what: &'static str, message: &str) -> OidcError {
        OidcError::Malformed {
            provider: self.config.name.clone(),
            what,
            message: message.to_owned(),
        }
    }
}

/// What an ID token must match besides its signature.
pub(crate) struct Expected<'a> {
    /// The issuer the discovery document names.
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    /// The nonce this sign-in sent.
    pub(crate) nonce: &'a str,
    /// The time now, in seconds since the epoch.
    pub(crate) now: i64,
}

/// A compact JWS whose header has been read and found acceptable (RS256, no `crit`), not
/// yet verified: what is needed to pick its key.
pub(crate) struct SignedToken<'t> {
    /// `header.claims`, the signing input.
    signing_input: &'t str,
    claims: &'t str,
    signature: &'t str,
    pub(crate) kid: Option<String>,
}

impl<'t> SignedToken<'t> {
    /// Splits the token and reads its header. Refuses, before any decoding, tokens over
    /// [`MAX_TOKEN_BYTES`].
    pub(crate) fn read(id_token: &'t str) -> Result<SignedToken<'t>, TokenCheck> {
        if id_token.len() > MAX_TOKEN_BYTES {
            return Err(TokenCheck::TooLarge);
        }
        let mut parts = id_token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenCheck::Malformed("not three parts"));
        };
        let header = decode_object(h).ok_or(TokenCheck::Malformed("header"))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            Some(other) => return Err(TokenCheck::Algorithm(echo(&other.to_string()))),
            None => "",
        };
        if alg != "RS256" {
            return Err(TokenCheck::Algorithm(echo(alg)));
        }
        // RFC 7515 4.1.11: extensions we do not understand must not be skipped.
        if header.contains_key("crit") {
            return Err(TokenCheck::Malformed("crit header"));
        }
        let kid = match header.get("kid") {
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenCheck::Malformed("kid is not a string")),
            None => None,
        };
        Ok(SignedToken {
            signing_input: &id_token[..h.len() + 1 + c.len()],
            claims: c,
            signature: s,
            kid,
        })
    }

    /// Verifies the signature with `key`, then the claims against `expected`, and reads
    /// the identity.
    pub(crate) fn check(
        &self,
        key: &RsaPublicKey,
        expected: &Expected<'_>,
    ) -> Result<Identity, TokenCheck> {
        let signature = B64URL
            .decode(self.signature)
            .ok()
            .and_then(|b| Signature::try_from(b.as_slice()).ok())
            .ok_or(TokenCheck::Malformed("signature"))?;
        VerifyingKey::<Sha256>::new(key.clone())
            .verify(self.signing_input.as_bytes(), &signature)
            .map_err(|_| TokenCheck::BadSignature)?;
        let claims = decode_object(self.claims).ok_or(TokenCheck::Malformed("claims"))?;
        let claim = |name: &str| claims.get(name).unwrap_or(&Value::Null);
        let iss = claim("iss").as_str().unwrap_or_default();
        if iss != expected.issuer {
            return Err(TokenCheck::Issuer(echo(iss)));
        }
        let client_id = expected.client_id;
        let audience_ok = match claim("aud") {
            Value::String(aud) => aud == client_id,
            Value::Array(auds) => auds.iter().any(|a| a == client_id),
            _ => false,
        };
        // With several audiences, the authorized party must be us (OIDC Core 3.1.3.7).
        let azp_ok = match claim("azp") {
            Value::Null => true,
            azp => azp == client_id,
        };
        if !audience_ok || !azp_ok {
            return Err(TokenCheck::Audience);
        }
        let now = expected.now;
        let time = |name: &'static str| match claim(name) {
            Value::Null => Ok(None),
            value => value.as_i64().map(Some).ok_or(TokenCheck::NotNumeric(name)),
        };
        let exp = time("exp")?.ok_or(TokenCheck::Missing("exp"))?;
        // Saturating: `exp` near i64::MAX must not overflow (a panic in debug builds).
        if exp.saturating_add(SKEW_SECS) <= now {
            return Err(TokenCheck::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| nbf.saturating_sub(SKEW_SECS) > now) {
            return Err(TokenCheck::NotYetValid);
        }
        if time("iat")?.is_some_and(|iat| iat.saturating_sub(SKEW_SECS) > now) {
            return Err(TokenCheck::IssuedInFuture);
        }
        // Compared in constant time: the nonce binds the token to this browser's sign-in.
        // It is single-use because the pending sign-in holding it is taken on callback.
        let sent = claim("nonce").as_str().unwrap_or_default();
        let nonce = expected.nonce;
        if nonce.is_empty() || !constant_time_eq(sent.as_bytes(), nonce.as_bytes()) {
            return Err(TokenCheck::Nonce);
        }
        let subject = claim("sub")
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or(TokenCheck::Missing("sub"))?;
        let email = claim("email")
            .as_str()
            .filter(|e| !e.is_empty())
            .map(str::to_owned);
        let login = claim("preferred_username")
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .or_else(|| email.clone())
            .unwrap_or_else(|| subject.to_owned());
        Ok(Identity {
            issuer: iss.to_owned(),
            subject: subject.to_owned(),
            name: claim("name")
                .as_str()
                .filter(|n| !n.is_empty())
                .map_or_else(|| login.clone(), str::to_owned),
            login,
            email,
        })
    }
}

/// The key `kid` names, or the only key when the token names none.
pub(crate) fn find_key<'k>(
    keys: &'k [(String, RsaPublicKey)],
    kid: Option<&str>,
) -> Option<&'k RsaPublicKey> {
    match kid {
        Some(kid) => keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key),
        None if keys.len() == 1 => Some(&keys[0].1),
        None => None,
    }
}

/// 32 random bytes, base64url: a state, nonce or PKCE verifier (43 characters, within
/// RFC 7636's 43–128).
fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

/// The S256 PKCE challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// A base64url (unpadded, canonical) JSON object with no name twice at any depth:
/// serde_json alone keeps the last of `{"iss":"good","iss":"evil"}`, other readers the
/// first, so such a token is refused rather than read one way.
pub(crate) fn decode_object(part: &str) -> Option<serde_json::Map<String, Value>> {
    let bytes = B64URL.decode(part).ok()?;
    match serde_json::from_slice::<Strict>(&bytes).ok()?.0 {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// JSON that refuses duplicate object names while deserializing.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Strict(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Strict, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((name, Strict(value))) = map.next_entry::<String, Strict>()? {
                    if object.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!("duplicate name `{name}`")));
                    }
                    object.insert(name, value);
                }
                Ok(Strict(Value::Object(object)))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// An attacker-chosen string as errors may show it: escaped, at most [`ECHO_CHARS`].
pub(crate) fn echo(s: &str) -> String {
    let escaped: String = s.escape_debug().collect();
    match escaped.char_indices().nth(ECHO_CHARS) {
        Some((i, _)) => format!("{}…", &escaped[..i]),
        None => escaped,
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A provider's error description, cut to its first line (Entra appends trace ids and
/// timestamps on later lines) and to a sane length.
fn summary(description: &str) -> String {
    let first = description.lines().next().unwrap_or_default().trim();
    match first.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &first[..i]),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_base64url_sha256() {
        assert_eq!(
            challenge("0123456789abcdefghijklmnopqrstuvwxyz-._~ABC"),
            "uboYUqpnBOR-hxVhitFnHJWVZvvO5dnnRhVNTp7LpnU"
        );
        assert_eq!(random().len(), 43);
    }

    #[test]
    fn config_reads_from_toml_and_hides_the_secret() {
        let config: IdentityProviderConfig = toml::from_str(
            "name = \"gh\"\nkind = \"github\"\nissuer = \"https://github.com\"\nclient_id = \"x\"\nclient_secret = \"s3cret\"\n",
        )
        .unwrap();
        assert_eq!(config.kind, ProviderKind::GitHub);
        assert!(!format!("{config:?}").contains("s3cret"));
        let http = paddock_providers::http::reqwest_client(None, None).unwrap();
        let provider = IdentityProvider::new(config, http).unwrap();
        assert_eq!(provider.api_url, "https://api.github.com");
    }
}
