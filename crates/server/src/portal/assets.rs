//! The portal's static files, compiled into the binary and served under
//! `/assets/{hash}/{name}`: the stylesheet, our small script, and the vendored htmx and its
//! SSE extension (see `assets/README.md` for their versions, licences and sources).
//!
//! Invariants: a URL names its file's content (the first 16 hex digits of its SHA-256),
//! so it is cached for a year as immutable; a request for an old hash still gets the
//! current file, uncached. Nothing is loaded from outside Paddock at run time.
//!
//! Must not: read files from disk at run time, or serve anything not listed here.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::problem::Problem;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "portal.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/portal.css"),
    },
    Asset {
        name: "portal.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/portal.js"),
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "sse.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/htmx-ext-sse-2.2.4.min.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../assets/favicon.svg"),
    },
];

/// Each asset's content hash, computed once.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| crate::auth::hex(&Sha256::digest(a.bytes))[..16].to_owned())
            .collect()
    })
}

/// The URL of an asset by name (`portal.css`).
pub(crate) fn url(name: &str) -> String {
    let i = ASSETS
        .iter()
        .position(|a| a.name == name)
        .unwrap_or_else(|| panic!("no asset named {name}"));
    format!("/assets/{}/{name}", hashes()[i])
}

/// The URLs every page's layout links.
#[derive(Clone, Debug)]
pub(crate) struct AssetUrls {
    pub css: String,
    pub js: String,
    pub htmx: String,
    pub sse: String,
    pub icon: String,
}

pub(crate) fn urls() -> &'static AssetUrls {
    static URLS: OnceLock<AssetUrls> = OnceLock::new();
    URLS.get_or_init(|| AssetUrls {
        css: url("portal.css"),
        js: url("portal.js"),
        htmx: url("htmx.min.js"),
        sse: url("sse.min.js"),
        icon: url("favicon.svg"),
    })
}

pub(crate) async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Problem::not_found(format!("asset `{name}`")).into_response();
    };
    let asset = &ASSETS[i];
    let mut response = asset.bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if hash == hashes()[i] {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_content() {
        let css = url("portal.css");
        assert!(
            css.starts_with("/assets/") && css.ends_with("/portal.css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets//portal.css".len() + 16);
        assert_ne!(url("portal.js"), url("htmx.min.js"));
    }
}
