//! Query strings, GitHub's paging of lists (`per_page`, `page`, the `Link` header) and
//! the `Location` of what a request created.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::percent_decode;

use super::json_ok;

/// `name=value` pairs of a query string, decoded (`+` is a space).
pub(super) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            (decode(k), decode(v))
        })
        .collect()
}

pub(super) fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The inverse of `query_pairs`, for the URLs of `Link` headers.
pub(super) fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// GitHub's paging of a list: `per_page` (default 30, at most 100) items on page `page`
/// (from 1); anything else in those parameters falls back to the default, as GitHub does.
pub(super) struct Paging {
    pub(super) per_page: usize,
    pub(super) page: usize,
}

/// Adds the `Location` of what a request created.
pub(super) fn with_location(mut response: Response, url: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

impl Paging {
    pub(super) fn of(query: &[(String, String)]) -> Paging {
        Paging::sized(query, 30, 100)
    }

    /// With another default and most per page (environment variables: 10 and 30).
    pub(super) fn sized(query: &[(String, String)], default: usize, most: usize) -> Paging {
        let number = |name: &str| param(query, name).and_then(|v| v.parse::<usize>().ok());
        Paging {
            per_page: number("per_page").unwrap_or(default).clamp(1, most),
            page: number("page").unwrap_or(1).max(1),
        }
    }

    /// A page of `items` as `{"total_count": …, field: […]}`, with its `Link` header.
    pub(super) fn counted(
        &self,
        field: &str,
        items: &[Value],
        url: &str,
        query: &[(String, String)],
    ) -> Response {
        let body = json!({"total_count": items.len(), field: self.slice(items)});
        self.link(json_ok(StatusCode::OK, body), url, query, items.len())
    }

    /// A page of `items` as a JSON array, with its `Link` header.
    pub(super) fn array(&self, items: &[Value], url: &str, query: &[(String, String)]) -> Response {
        let body = json!(self.slice(items));
        self.link(json_ok(StatusCode::OK, body), url, query, items.len())
    }

    /// This page's share of `items`.
    pub(super) fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = ((self.page - 1) * self.per_page).min(items.len());
        &items[start..(start + self.per_page).min(items.len())]
    }

    /// `response` with the `Link` header GitHub sends with a list of `total` items at
    /// `url` (the request's other parameters kept): `prev` and `first` after the first
    /// page, `next` and `last` before the last; none when everything fits on one page.
    pub(super) fn link(
        &self,
        mut response: Response,
        url: &str,
        query: &[(String, String)],
        total: usize,
    ) -> Response {
        let last = total.div_ceil(self.per_page).max(1);
        let at = |n: usize| {
            let mut pairs: Vec<(String, String)> =
                query.iter().filter(|(k, _)| k != "page").cloned().collect();
            pairs.push(("page".to_owned(), n.to_string()));
            format!("<{url}?{}>", encode_query(&pairs))
        };
        let mut rels = Vec::new();
        if self.page > 1 {
            rels.push(format!("{}; rel=\"prev\"", at((self.page - 1).min(last))));
        }
        if self.page < last {
            rels.push(format!("{}; rel=\"next\"", at(self.page + 1)));
            rels.push(format!("{}; rel=\"last\"", at(last)));
        }
        if self.page > 1 {
            rels.push(format!("{}; rel=\"first\"", at(1)));
        }
        if let Ok(value) = HeaderValue::from_str(&rels.join(", "))
            && !rels.is_empty()
        {
            response.headers_mut().insert(header::LINK, value);
        }
        response
    }
}
