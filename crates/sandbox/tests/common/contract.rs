//! A client that sends each request as one operation of an official description and
//! checks it both ways: the path, method and body against the operation, the status and
//! body of the response against what it declares. It remembers which operations it
//! exercised, so a test can assert coverage.

use std::cell::RefCell;
use std::collections::BTreeSet;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::swagger::Spec;

pub struct Contract {
    pub http: reqwest::Client,
    pub spec: Spec,
    /// The API root the description's paths are relative to.
    pub root: String,
    /// Appended to every URL (ARM's `api-version=…`), or empty.
    pub query: String,
    /// A bearer token to present, if the client does not carry its own.
    pub token: Option<String>,
    pub seen: RefCell<BTreeSet<String>>,
}

impl Contract {
    pub fn new(http: reqwest::Client, spec: Spec, root: String) -> Contract {
        Contract {
            http,
            spec,
            root,
            query: String::new(),
            token: None,
            seen: RefCell::default(),
        }
    }

    /// Sends a request as `operation`, checking the request and the response.
    pub async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, HeaderMap) {
        if let Some(body) = &body {
            self.spec.check_request(operation, body).unwrap();
        }
        self.send(operation, method, path, body).await
    }

    /// Sends a request the description itself refuses (to see the API refuse it too); the
    /// response is still checked.
    pub async fn call_invalid(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Value,
    ) -> (u16, Value, HeaderMap) {
        assert!(
            self.spec.check_request(operation, &body).is_err(),
            "{operation}: the request was meant to be invalid"
        );
        self.send(operation, method, path, Some(body)).await
    }

    /// Sends without checking the request body; checks path, method and response.
    pub async fn send(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, HeaderMap) {
        self.spec.check_path(operation, path).unwrap();
        let (_, declared, _) = self.spec.operation(operation);
        assert!(
            declared.eq_ignore_ascii_case(method.as_str()),
            "{operation} is {declared}, not {method}"
        );
        let separator = if self.query.is_empty() { "" } else { "?" };
        let mut request = self.http.request(
            method,
            format!("{}{path}{separator}{}", self.root, self.query),
        );
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.unwrap();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        match self.spec.check_response(operation, status, &value) {
            Ok(()) => {}
            // An empty body only has to come with a declared status.
            Err(e) if text.is_empty() && e.contains("does not match") => {}
            Err(e) => panic!("{e}"),
        }
        self.seen.borrow_mut().insert(operation.to_owned());
        (status, value, headers)
    }
}
