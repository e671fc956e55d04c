//! Who a request comes from: API tokens (`Authorization: Bearer pdk_…`) and session
//! cookies, and the secrets behind them.
//!
//! Bearer secrets (tokens, session ids, sign-in links) are 256 random bits, handed out once
//! and stored only as SHA-256 digests: a leaked database grants nothing. Passwords are
//! argon2id hashes. A request with a session cookie that changes anything must also carry
//! the session's CSRF token (`X-CSRF-Token` header or `csrf_token` form field); bearer
//! tokens are not ambient credentials and need none.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use paddock_store::db::{Db, User, now_ms};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::policy::{Principal, Role, Scope};
use crate::problem::Problem;

/// The session cookie's name. `__Host-` would pin it to HTTPS; the embedded default
/// serves plain HTTP on loopback, so the name stays plain and the flags do the work.
pub const SESSION_COOKIE: &str = "paddock_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// API tokens start with this, so secret scanners can find leaked ones.
pub const TOKEN_PREFIX: &str = "pdk_";

/// 256 random bits, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A short random id with a prefix, e.g. `op_3f9a…`.
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex(&bytes))
}

/// Bytes as lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the database keeps of a bearer secret.
pub fn digest(secret: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(secret.as_bytes())))
}

pub fn hash_password(password: &str) -> Result<String, Problem> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Problem::internal(format!("hashing the password failed: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// How the request proved who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    Token { id: String },
    Session { digest: String, csrf: String },
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    pub principal: Principal,
    pub credential: Credential,
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Resolves the caller of a request: `Ok(None)` for anonymous, 401 for credentials that
/// are wrong, revoked or expired (saying which).
pub async fn authenticate(db: &Db, headers: &HeaderMap) -> Result<Option<Caller>, Problem> {
    let now = now_ms();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| Problem::unauthorized("the Authorization header is not text"))?;
        let Some(token) = value.strip_prefix("Bearer ") else {
            return Err(Problem::unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        let Some((user, token)) = db.token_by_digest(&digest(token.trim())).await? else {
            return Err(Problem::unauthorized("the API token is not valid"));
        };
        if token.revoked_at.is_some() {
            return Err(Problem::unauthorized(format!(
                "the API token `{}` was revoked; create a new one",
                token.name
            )));
        }
        if token.expires_at.is_some_and(|at| at <= now) {
            return Err(Problem::unauthorized(format!(
                "the API token `{}` expired; create a new one",
                token.name
            )));
        }
        db.touch_token(&token, now).await?;
        let scope = if token.scope == "read" {
            Scope::Read
        } else {
            Scope::Write
        };
        let principal = principal(db, &user, scope).await?;
        return Ok(Some(Caller {
            user,
            principal,
            credential: Credential::Token { id: token.id },
        }));
    }
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        let digest = digest(session);
        let Some(session) = db.session(&digest, now).await? else {
            return Err(Problem::unauthorized(
                "the session has expired or was signed out; sign in again",
            ));
        };
        let principal = principal(db, &session.user, Scope::Write).await?;
        return Ok(Some(Caller {
            user: session.user,
            principal,
            credential: Credential::Session {
                digest,
                csrf: session.csrf,
            },
        }));
    }
    Ok(None)
}

async fn principal(db: &Db, user: &User, scope: Scope) -> Result<Principal, Problem> {
    let roles: BTreeMap<String, Role> = db
        .memberships(&user.id)
        .await?
        .into_iter()
        .filter_map(|(team, role)| Some((team, Role::parse(&role)?)))
        .collect();
    Ok(Principal {
        user_id: user.id.clone(),
        login: user.login.clone(),
        platform_admin: user.platform_admin,
        roles,
        scope,
    })
}

/// A cookie-authenticated request that changes anything must echo the session's CSRF
/// token; `form_token` is the `csrf_token` field of a form post.
pub fn check_csrf(
    caller: &Caller,
    method: &Method,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Result<(), Problem> {
    let Credential::Session { csrf, .. } = &caller.credential else {
        return Ok(());
    };
    if csrf_passes(csrf, method, headers, form_token) {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "this request is authenticated by a session cookie and changes something, so it \
             must carry the session's CSRF token (the X-CSRF-Token header or the csrf_token \
             form field)",
        ))
    }
}

/// The CSRF rule for a session whose token is `csrf`: safe methods pass; others must echo
/// the token (the header, else the form field).
pub(crate) fn csrf_passes(
    csrf: &str,
    method: &Method,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token);
    sent.is_some_and(|sent| constant_time_eq(sent.as_bytes(), csrf.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value for a new session.
pub fn session_cookie(secret: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn secrets_are_random_and_stored_as_digests() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(!digest(&a).contains(&a));
        assert_eq!(digest(&a), digest(&a));
    }
}
