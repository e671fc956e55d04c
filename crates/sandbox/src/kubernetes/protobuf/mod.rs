//! `application/vnd.kubernetes.protobuf`, which kubectl's typed commands (`create
//! namespace`, `create token`, `describe`...) send and ask for first, as a real API server
//! serves it: the magic `k8s\0`, then a `runtime.Unknown` whose `typeMeta` names the kind
//! and whose `raw` holds the object's own message. Requests in protobuf are turned into the
//! JSON the cluster works with before it sees them, and answers (errors included) into
//! protobuf when the `Accept` header prefers it; everything else stays JSON.

mod schema;
mod transcode;
mod wire;

use axum::body::{Body, Bytes, HttpBody as _};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::KubeError;
use schema::Schema;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// What every Kubernetes protobuf object starts with.
pub const MAGIC: &[u8] = b"k8s\0";
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("protobuf schema: {0}")]
    Schema(String),
    #[error("the object does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")]
    NoMagic,
    #[error("malformed protobuf: {0}")]
    Malformed(String),
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\"")]
    UnknownKind { api_version: String, kind: String },
    #[error("{0}")]
    Value(String),
}

/// The JSON object (with `apiVersion` and `kind`) a protobuf body holds.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    decode_with(schema::schema(), body)
}

fn decode_with(schema: &Schema, body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::NoMagic)?;
    let unknown = transcode::decode(schema, UNKNOWN, rest, "Unknown")?.unwrap_or_default();
    let api_version = unknown["typeMeta"]["apiVersion"]
        .as_str()
        .unwrap_or_default();
    let kind = unknown["typeMeta"]["kind"].as_str().unwrap_or_default();
    if let Some(encoding) = unknown["contentEncoding"].as_str() {
        return Err(ProtoError::Malformed(format!(
            "content encoding {encoding:?} is not served"
        )));
    }
    let message =
        message_for(schema, api_version, kind).ok_or_else(|| ProtoError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })?;
    let raw = STANDARD
        .decode(unknown["raw"].as_str().unwrap_or_default())
        .expect("bytes were base64-encoded here");
    let mut object = transcode::decode(schema, &message, &raw, kind)?.unwrap_or(json!({}));
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

/// The protobuf form of a JSON object, or `None` when its kind has no protobuf message
/// (a `Table`, a discovery document without `kind`).
pub fn encode(value: &Value) -> Result<Option<Vec<u8>>, ProtoError> {
    let schema = schema::schema();
    let (Some(api_version), Some(kind)) = (value["apiVersion"].as_str(), value["kind"].as_str())
    else {
        return Ok(None);
    };
    let Some(message) = message_for(schema, api_version, kind) else {
        return Ok(None);
    };
    let raw = transcode::encode(schema, &message, value, kind)?;
    let mut type_meta = Vec::new();
    wire::put_len(&mut type_meta, 1, api_version.as_bytes());
    wire::put_len(&mut type_meta, 2, kind.as_bytes());
    let mut out = MAGIC.to_vec();
    wire::put_len(&mut out, 1, &type_meta);
    wire::put_len(&mut out, 2, &raw);
    Ok(Some(out))
}

/// The message of a kind: its group's package, else `meta/v1`'s (`Status`,
/// `DeleteOptions`, which any group version may carry).
fn message_for(schema: &Schema, api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => Some("k8s.io.api.core"),
        "apps" => Some("k8s.io.api.apps"),
        "rbac.authorization.k8s.io" => Some("k8s.io.api.rbac"),
        "networking.k8s.io" => Some("k8s.io.api.networking"),
        "authentication.k8s.io" => Some("k8s.io.api.authentication"),
        "authorization.k8s.io" => Some("k8s.io.api.authorization"),
        "events.k8s.io" => Some("k8s.io.api.events"),
        "meta.k8s.io" => Some("k8s.io.apimachinery.pkg.apis.meta"),
        _ => None,
    };
    package
        .map(|p| format!("{p}.{version}.{kind}"))
        .into_iter()
        .chain([format!("{META}.{kind}")])
        .find(|m| schema.message(m).is_some())
}

/// How an answer is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Format {
    Json,
    Protobuf,
}

/// The first media range of `Accept` the cluster can write, by preference; JSON when none
/// is (as for browsers). A range asking for another shape (`as=Table`) is JSON's.
pub(crate) fn response_format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut ranges: Vec<(f32, &str, bool)> = accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next()?;
            let (mut q, mut reshaped) = (1.0, false);
            for param in parts {
                match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("q", v)) => q = v.parse().unwrap_or(0.0),
                    Some(("as", _)) => reshaped = true,
                    _ => {}
                }
            }
            (q > 0.0).then_some((q, media, reshaped))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, media, reshaped) in ranges {
        match media.to_ascii_lowercase().as_str() {
            MEDIA_TYPE if !reshaped => return Format::Protobuf,
            "application/json" | "application/*" | "*/*" => return Format::Json,
            _ => {}
        }
    }
    Format::Json
}

/// A write's body as JSON: protobuf decoded, JSON as sent; other media types are refused
/// with `415`. Patches keep their own media types, which the cluster checks.
pub(crate) fn request_body(
    method: &Method,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Bytes, KubeError> {
    if !matches!(*method, Method::POST | Method::PUT | Method::DELETE) || body.is_empty() {
        return Ok(body);
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "" | "application/json" => Ok(body),
        MEDIA_TYPE => {
            let object = decode(&body).map_err(|e| match e {
                ProtoError::UnknownKind { .. } => KubeError::bad_request(e.to_string()),
                _ => KubeError::bad_request(format!(
                    "the object provided is unrecognized or is not valid protobuf: {e}"
                )),
            })?;
            Ok(serde_json::to_vec(&object)
                .expect("JSON values serialize")
                .into())
        }
        other => Err(KubeError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, {MEDIA_TYPE} (got {other:?})"
            ),
        )),
    }
}

/// The cluster's JSON answer in the negotiated format. Streams (no known length) and
/// kinds without a protobuf message pass as they are.
pub(crate) async fn respond(format: Format, response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if format == Format::Json || !is_json || response.body().size_hint().exact().is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return KubeError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the answer could not be read",
        )
        .into_response();
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .map(|value| encode(&value));
    match encoded {
        Some(Ok(Some(protobuf))) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(protobuf))
        }
        Some(Err(e)) => {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            let message = format!("Internal error occurred: the answer has no protobuf form: {e}");
            let body = super::status_body(status, "InternalError", &message);
            match encode(&body) {
                Ok(Some(protobuf)) => (
                    status,
                    [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
                    protobuf,
                )
                    .into_response(),
                _ => (status, axum::Json(body)).into_response(),
            }
        }
        _ => Response::from_parts(parts, Body::from(bytes)),
    }
}

#[cfg(test)]
mod tests;
