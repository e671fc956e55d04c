//! The sign-in paths' small parsers and checks: the `Cookie` headers a request carries
//! (the session cookie, the sign-in form's double-submit cookie), the CSRF check, and
//! the redirect after sign-in to the `next` page asked for.
//!
//! Properties: no panic; a cookie is found only as a `name=value` pair in one of the
//! headers, and the session cookie the server sets comes back as it was set, whatever
//! other cookies surround it; a request that changes something passes the CSRF check only
//! with the session's token; the redirect after sign-in always answers (never a 500) and
//! never leaves the server's origin, as a browser reads its `Location`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use paddock_server::auth::{SESSION_COOKIE, session_cookie};
use paddock_server::fuzzing::{cookie, csrf_passes, sign_in_redirect};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    headers: Vec<&'a [u8]>,
    name: &'a str,
    /// Cookies set beside the session's, as `(name, value)`.
    others: Vec<(&'a str, &'a str)>,
    /// The session secret: 32 random bytes, base64url, as the server makes them.
    secret: [u8; 32],
    csrf: [u8; 32],
    method: &'a str,
    csrf_header: Option<&'a [u8]>,
    csrf_form: Option<&'a str>,
    next: Option<&'a str>,
}

const ORIGIN: &str = "https://paddock.example";

fuzz_target!(|i: Input<'_>| {
    // Any headers: a value found is a pair's value in one of them.
    if let Some(value) = cookie(&i.headers, i.name) {
        let pair = format!("{}={value}", i.name);
        assert!(
            i.headers
                .iter()
                .any(|h| String::from_utf8_lossy(h).contains(&pair)),
            "found {pair:?} in none of the headers"
        );
    }

    // The session cookie, as set, read back among others.
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(i.secret);
    let set = session_cookie(&secret, 3600, true);
    let sent = set.split(';').next().expect("name=value");
    let others: Vec<String> = i
        .others
        .iter()
        .filter(|(n, v)| token(n) && *n != SESSION_COOKIE && token(v))
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let header = others
        .iter()
        .map(String::as_str)
        .chain([sent])
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        cookie(&[header.as_bytes()], SESSION_COOKIE).as_deref(),
        Some(secret.as_str()),
        "{header}"
    );

    // CSRF: safe methods pass; others only with the session's token.
    let csrf = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(i.csrf);
    let passes = csrf_passes(&csrf, i.method, i.csrf_header, i.csrf_form);
    if !matches!(i.method, "GET" | "HEAD" | "OPTIONS") {
        let by_header = i.csrf_header == Some(csrf.as_bytes());
        let by_form = i.csrf_form == Some(csrf.as_str());
        assert!(
            !passes || by_header || by_form,
            "{:?} passed without the token",
            i.method
        );
        if by_header && http_method(i.method) {
            assert!(passes, "the session's own token in the header is refused");
        }
    }

    // The redirect after sign-in stays on the server's origin, as a browser resolves it.
    let location = sign_in_redirect(i.next)
        .unwrap_or_else(|| panic!("no Location for next={:?} (a 500)", i.next));
    let location = location.to_str().expect("a Location of visible ASCII");
    let base = url::Url::parse(&format!("{ORIGIN}/sign-in")).expect("base");
    let target = base
        .join(location)
        .expect("a Location a browser can follow");
    assert_eq!(
        target.origin(),
        base.origin(),
        "next={:?} redirects to {target}",
        i.next
    );
});

/// Whether `m` is a method a request can carry (an HTTP token).
fn http_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A cookie name or value without separators (RFC 6265's token, roughly).
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b'=' | b',' | b'"' | b'\\'))
}
