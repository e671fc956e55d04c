//! The sandbox cluster speaks Kubernetes protobuf as a real API server does: a body sent
//! as `application/vnd.kubernetes.protobuf` is read, an answer is written in it when the
//! `Accept` header prefers it (errors too), and the same object reads the same in either
//! form. Request bodies here are built byte by byte from the official field numbers.

mod common;

use paddock_sandbox::Sandbox;
use paddock_sandbox::kubernetes::protobuf::{self, MAGIC, MEDIA_TYPE};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

/// `kubectl`'s own Accept header.
const KUBECTL_ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field: `number`, then the bytes.
fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint((u64::from(number) << 3) | 2, &mut out);
    varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// `k8s\0` + runtime.Unknown{typeMeta{apiVersion = 1, kind = 2} = 1, raw = 2}.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
    [MAGIC.to_vec(), field(1, &type_meta), field(2, raw)].concat()
}

/// ObjectMeta{name = 1}.
fn object_meta(name: &str) -> Vec<u8> {
    field(1, name.as_bytes())
}

struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    /// The answer as JSON, decoded from protobuf when it came as protobuf.
    fn value(&self) -> Value {
        if self.content_type == MEDIA_TYPE {
            protobuf::decode(&self.body).expect("the answer is Kubernetes protobuf")
        } else {
            serde_json::from_slice(&self.body).expect("the answer is JSON")
        }
    }
}

async fn send(
    s: &Sandbox,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    accept: &str,
    body: Vec<u8>,
) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", s.kubernetes_url()))
        .header(ACCEPT, accept)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(ct) = content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

async fn post_protobuf(s: &Sandbox, path: &str, body: Vec<u8>) -> Answer {
    let token = s.kubernetes_token.clone();
    send(
        s,
        Method::POST,
        path,
        Some(&token),
        Some(MEDIA_TYPE),
        KUBECTL_ACCEPT,
        body,
    )
    .await
}

async fn delete_protobuf(s: &Sandbox, path: &str, options: Vec<u8>) -> Answer {
    let token = s.kubernetes_token.clone();
    send(
        s,
        Method::DELETE,
        path,
        Some(&token),
        Some(MEDIA_TYPE),
        KUBECTL_ACCEPT,
        options,
    )
    .await
}

async fn get(s: &Sandbox, path: &str, accept: &str) -> Answer {
    let token = s.kubernetes_token.clone();
    send(s, Method::GET, path, Some(&token), None, accept, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_created_in_protobuf_answers_in_protobuf_and_reads_the_same_as_json() {
    let (_dir, s) = common::start().await;
    let namespace = envelope("v1", "Namespace", &field(1, &object_meta("team-a")));
    let created = post_protobuf(&s, "/api/v1/namespaces", namespace).await;
    assert_eq!(
        (created.status, created.content_type.as_str()),
        (201, MEDIA_TYPE)
    );
    assert!(created.body.starts_with(MAGIC));
    let created = created.value();
    assert_eq!(created["kind"], "Namespace");
    assert_eq!(created["metadata"]["name"], "team-a");
    assert_eq!(created["status"]["phase"], "Active");

    let as_json = get(&s, "/api/v1/namespaces/team-a", "application/json").await;
    assert_eq!(as_json.content_type, "application/json");
    let as_protobuf = get(&s, "/api/v1/namespaces/team-a", KUBECTL_ACCEPT).await;
    assert_eq!(as_protobuf.content_type, MEDIA_TYPE);
    assert_eq!(as_protobuf.value(), as_json.value());
    assert_eq!(as_json.value(), created);

    // A list: NamespaceList, its items without apiVersion and kind, as in JSON.
    let list = get(&s, "/api/v1/namespaces", KUBECTL_ACCEPT).await;
    assert_eq!(list.content_type, MEDIA_TYPE);
    let list = list.value();
    assert_eq!(list["kind"], "NamespaceList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"team-a") && names.contains(&"default"),
        "{names:?}"
    );
    assert_eq!(list["items"][0].get("kind"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_bytes_travel_raw_in_protobuf_and_as_base64_in_json() {
    let (_dir, s) = common::start().await;
    // Secret{metadata = 1, data = 2 (map<string, bytes>), type = 3}.
    let entry = [field(1, b"password"), field(2, b"hunter2")].concat();
    let secret = [
        field(1, &object_meta("db")),
        field(2, &entry),
        field(3, b"Opaque"),
    ]
    .concat();
    let created = post_protobuf(
        &s,
        "/api/v1/namespaces/default/secrets",
        envelope("v1", "Secret", &secret),
    )
    .await;
    assert_eq!(created.status, 201);
    let stored = get(
        &s,
        "/api/v1/namespaces/default/secrets/db",
        "application/json",
    )
    .await
    .value();
    assert_eq!(stored["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(stored["type"], "Opaque");
    let read = get(&s, "/api/v1/namespaces/default/secrets/db", KUBECTL_ACCEPT).await;
    assert!(
        read.body.windows(7).any(|w| w == b"hunter2"),
        "protobuf carries the bytes themselves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_request_in_protobuf_issues_a_token() {
    let (_dir, s) = common::start().await;
    // TokenRequest{spec = 2 {expirationSeconds = 4 (int64)}}.
    let mut spec = vec![4 << 3];
    varint(3600, &mut spec);
    let request = envelope("authentication.k8s.io/v1", "TokenRequest", &field(2, &spec));
    let answer = post_protobuf(
        &s,
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        request,
    )
    .await;
    assert_eq!(
        (answer.status, answer.content_type.as_str()),
        (201, MEDIA_TYPE)
    );
    let token = answer.value();
    assert_eq!(token["kind"], "TokenRequest");
    assert_eq!(token["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        token["status"]["token"]
            .as_str()
            .unwrap()
            .split('.')
            .count(),
        3
    );
    assert!(
        token["status"]["expirationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_status_objects_in_the_negotiated_form() {
    let (_dir, s) = common::start().await;
    let missing = get(&s, "/api/v1/namespaces/nope", KUBECTL_ACCEPT).await;
    assert_eq!(
        (missing.status, missing.content_type.as_str()),
        (404, MEDIA_TYPE)
    );
    let status = missing.value();
    assert_eq!(
        (
            &status["kind"],
            &status["reason"],
            &status["code"],
            &status["message"]
        ),
        (
            &json!("Status"),
            &json!("NotFound"),
            &json!(404),
            &json!("namespaces \"nope\" not found")
        )
    );
    let as_json = get(&s, "/api/v1/namespaces/nope", "application/json").await;
    assert_eq!(as_json.content_type, "application/json");
    // The same Status, but for the empty `details.group`, which protobuf cannot tell
    // from an absent one (and Go's JSON leaves out).
    let mut from_json = as_json.value();
    assert_eq!(from_json["details"]["group"], "");
    from_json["details"]
        .as_object_mut()
        .unwrap()
        .remove("group");
    assert_eq!(from_json, status);

    // A body in a format the cluster does not read: 415, as a Status.
    let token = s.kubernetes_token.clone();
    let unsupported = send(
        &s,
        Method::POST,
        "/api/v1/namespaces",
        Some(&token),
        Some("text/plain"),
        "application/json",
        b"team-b".to_vec(),
    )
    .await;
    assert_eq!(unsupported.status, 415);
    assert_eq!(unsupported.value()["reason"], "UnsupportedMediaType");

    // Malformed protobuf: 400, saying so; to a stranger, 401 and nothing about the body.
    let malformed = post_protobuf(&s, "/api/v1/namespaces", b"k8s\0\x0a\x09v1".to_vec()).await;
    assert_eq!(malformed.status, 400);
    let why = malformed.value();
    assert_eq!(why["reason"], "BadRequest");
    assert!(
        why["message"]
            .as_str()
            .unwrap()
            .starts_with("the object provided is unrecognized or is not valid protobuf: "),
        "{why}"
    );
    let anonymous = send(
        &s,
        Method::POST,
        "/api/v1/namespaces",
        None,
        Some(MEDIA_TYPE),
        KUBECTL_ACCEPT,
        b"k8s\0\x0a\x09v1".to_vec(),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.value()["reason"], "Unauthorized");

    let unknown_kind = post_protobuf(&s, "/api/v1/namespaces", envelope("v1", "Pod", b"")).await;
    assert_eq!(unknown_kind.status, 400);
    assert_eq!(
        unknown_kind.value()["message"],
        "no kind \"Pod\" is registered for version \"v1\""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_options_in_protobuf_carry_their_preconditions() {
    let (_dir, s) = common::start().await;
    let config_map = envelope("v1", "ConfigMap", &field(1, &object_meta("settings")));
    assert_eq!(
        post_protobuf(&s, "/api/v1/namespaces/default/configmaps", config_map)
            .await
            .status,
        201
    );
    // DeleteOptions{preconditions = 2 {uid = 1}}, in the group version of the request.
    let options = envelope("v1", "DeleteOptions", &field(2, &field(1, b"not-the-uid")));
    let path = "/api/v1/namespaces/default/configmaps/settings";
    let refused = delete_protobuf(&s, path, options).await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.value()["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition: not-the-uid"),
    );
    let options = envelope("v1", "DeleteOptions", &field(4, b"Background"));
    let deleted = delete_protobuf(&s, path, options).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.value()["status"], "Success");
    assert_eq!(get(&s, path, KUBECTL_ACCEPT).await.status, 404);
}
