//! Protobuf ⇄ the JSON the sandbox stores, driven by the message descriptors, with the
//! JSON forms Kubernetes gives its special types: `Time` and `MicroTime` (RFC 3339
//! strings), `Quantity` (a string), `IntOrString` (a number or a string), `RawExtension`
//! and `FieldsV1` (embedded JSON), `Verbs` and `ExtraValue` (arrays), bytes (base64).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::ProtoError;
use super::schema::{Field, Label, Scalar, Schema, Type};
use super::wire::{self, Reader, Wire};

const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
/// Messages that wrap a `repeated string items = 1` and are a bare array in JSON.
const STRING_ARRAYS: &[&str] = &[
    "k8s.io.apimachinery.pkg.apis.meta.v1.Verbs",
    "k8s.io.api.authentication.v1.ExtraValue",
    "k8s.io.api.authorization.v1.ExtraValue",
];

/// Go writes its non-pointer fields to protobuf even when zero, and its JSON mostly leaves
/// them out (`omitempty`): a zero scalar read from protobuf is taken as absent, except in
/// these fields, pointers whose zero means something or fields JSON always has.
const KEPT_WHEN_ZERO: &[(&str, &str)] = &[
    ("k8s.io.api.apps.v1.DeploymentSpec", "replicas"),
    (
        "k8s.io.api.core.v1.ServiceAccount",
        "automountServiceAccountToken",
    ),
    ("k8s.io.api.core.v1.PodSpec", "automountServiceAccountToken"),
    ("k8s.io.api.core.v1.Secret", "immutable"),
    ("k8s.io.api.core.v1.ConfigMap", "immutable"),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        "gracePeriodSeconds",
    ),
    (
        "k8s.io.apimachinery.pkg.apis.meta.v1.APIResource",
        "namespaced",
    ),
];

fn invalid(path: &str, why: impl std::fmt::Display) -> ProtoError {
    ProtoError::Value(format!("{path}: {why}"))
}

// --- JSON → protobuf -------------------------------------------------------------------

/// The bytes of `message` holding `value`; JSON properties the message has no field for
/// are left out, and so are nulls.
pub(super) fn encode(
    schema: &Schema,
    message: &str,
    value: &Value,
    path: &str,
) -> Result<Vec<u8>, ProtoError> {
    if let Some(bytes) = encode_special(message, value, path)? {
        return Ok(bytes);
    }
    let Value::Object(object) = value else {
        return Err(invalid(path, "expected an object"));
    };
    let descriptor = schema
        .message(message)
        .ok_or_else(|| invalid(path, format!("no message {message}")))?;
    let mut out = Vec::new();
    for field in &descriptor.fields {
        let here = format!("{path}.{}", field.name);
        if field.inline {
            let Type::Message(inner) = &field.ty else {
                continue;
            };
            wire::put_len(&mut out, field.number, &encode(schema, inner, value, path)?);
            continue;
        }
        let Some(v) = object.get(&field.name).filter(|v| !v.is_null()) else {
            continue;
        };
        match field.label {
            Label::Optional => encode_one(schema, &mut out, field, v, &here)?,
            Label::Repeated => {
                let items = v
                    .as_array()
                    .ok_or_else(|| invalid(&here, "expected an array"))?;
                for (i, item) in items.iter().enumerate() {
                    encode_one(schema, &mut out, field, item, &format!("{here}[{i}]"))?;
                }
            }
            Label::Map(key) => {
                let entries = v
                    .as_object()
                    .ok_or_else(|| invalid(&here, "expected an object"))?;
                for (k, item) in entries {
                    let mut entry = Vec::new();
                    let key_value = match key {
                        Scalar::String => Value::String(k.clone()),
                        _ => k
                            .parse::<i64>()
                            .map(Value::from)
                            .map_err(|_| invalid(&here, format!("map key {k:?}")))?,
                    };
                    put_scalar(&mut entry, 1, key, &key_value, &here)?;
                    let item_path = format!("{here}[{k:?}]");
                    match &field.ty {
                        Type::Scalar(s) => put_scalar(&mut entry, 2, *s, item, &item_path)?,
                        Type::Message(m) => {
                            wire::put_len(&mut entry, 2, &encode(schema, m, item, &item_path)?)
                        }
                    }
                    wire::put_len(&mut out, field.number, &entry);
                }
            }
        }
    }
    Ok(out)
}

fn encode_one(
    schema: &Schema,
    out: &mut Vec<u8>,
    field: &Field,
    value: &Value,
    path: &str,
) -> Result<(), ProtoError> {
    match &field.ty {
        Type::Scalar(s) => put_scalar(out, field.number, *s, value, path),
        Type::Message(m) => {
            wire::put_len(out, field.number, &encode(schema, m, value, path)?);
            Ok(())
        }
    }
}

fn integer(value: &Value, path: &str) -> Result<i64, ProtoError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| invalid(path, format!("expected an integer, got {value}")))
}

fn put_scalar(
    out: &mut Vec<u8>,
    number: u32,
    scalar: Scalar,
    value: &Value,
    path: &str,
) -> Result<(), ProtoError> {
    match scalar {
        Scalar::String => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                _ => return Err(invalid(path, "expected a string")),
            };
            wire::put_len(out, number, s.as_bytes());
        }
        Scalar::Bytes => {
            let s = value
                .as_str()
                .ok_or_else(|| invalid(path, "expected a base64 string"))?;
            let bytes = STANDARD
                .decode(s)
                .map_err(|e| invalid(path, format!("illegal base64 data: {e}")))?;
            wire::put_len(out, number, &bytes);
        }
        Scalar::Bool => {
            let b = value
                .as_bool()
                .ok_or_else(|| invalid(path, "expected true or false"))?;
            wire::put_tag(out, number, wire::VARINT);
            wire::put_varint(out, u64::from(b));
        }
        Scalar::Int32 | Scalar::Int64 | Scalar::UInt32 | Scalar::UInt64 => {
            let n = integer(value, path)?;
            let fits = match scalar {
                Scalar::Int32 => i32::try_from(n).is_ok(),
                Scalar::UInt32 => u32::try_from(n).is_ok(),
                Scalar::UInt64 => n >= 0,
                _ => true,
            };
            if !fits {
                return Err(invalid(path, format!("{n} is out of range")));
            }
            wire::put_tag(out, number, wire::VARINT);
            // Negative int32s are sign-extended to ten bytes, as proto2 does.
            wire::put_varint(out, n as u64);
        }
        Scalar::Double | Scalar::Float => {
            let f = value
                .as_f64()
                .ok_or_else(|| invalid(path, "expected a number"))?;
            if scalar == Scalar::Double {
                wire::put_tag(out, number, wire::FIXED64);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            } else {
                wire::put_tag(out, number, wire::FIXED32);
                out.extend_from_slice(&(f as f32).to_bits().to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Special types' JSON forms, or `None` for an ordinary message.
fn encode_special(message: &str, value: &Value, path: &str) -> Result<Option<Vec<u8>>, ProtoError> {
    let mut out = Vec::new();
    match message {
        TIME | MICRO_TIME => {
            let s = value
                .as_str()
                .ok_or_else(|| invalid(path, "expected an RFC 3339 time"))?;
            let t = humantime::parse_rfc3339_weak(s)
                .map_err(|e| invalid(path, format!("{s:?} is not an RFC 3339 time: {e}")))?;
            let (seconds, nanos) = match t.duration_since(UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                Err(before) => {
                    let d = before.duration();
                    let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
                    if n == 0 {
                        (-s, 0)
                    } else {
                        (-s - 1, 1_000_000_000 - n)
                    }
                }
            };
            put_scalar(&mut out, 1, Scalar::Int64, &json!(seconds), path)?;
            if nanos != 0 {
                put_scalar(&mut out, 2, Scalar::Int32, &json!(nanos), path)?;
            }
        }
        QUANTITY => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(invalid(path, "expected a quantity")),
            };
            wire::put_len(&mut out, 1, s.as_bytes());
        }
        INT_OR_STRING => match value {
            Value::String(s) => {
                put_scalar(&mut out, 1, Scalar::Int64, &json!(1), path)?;
                wire::put_len(&mut out, 3, s.as_bytes());
            }
            _ => {
                put_scalar(&mut out, 1, Scalar::Int64, &json!(0), path)?;
                put_scalar(&mut out, 2, Scalar::Int32, value, path)?;
            }
        },
        RAW_EXTENSION | FIELDS_V1 => {
            let raw = serde_json::to_vec(value).expect("JSON values serialize");
            wire::put_len(&mut out, 1, &raw);
        }
        m if STRING_ARRAYS.contains(&m) => {
            let items = value
                .as_array()
                .ok_or_else(|| invalid(path, "expected an array of strings"))?;
            for (i, item) in items.iter().enumerate() {
                put_scalar(&mut out, 1, Scalar::String, item, &format!("{path}[{i}]"))?;
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(out))
}

// --- protobuf → JSON -------------------------------------------------------------------

/// The JSON of `message` read from `bytes`, or `None` for a zero `Time`, which JSON
/// writes as null. Fields the message does not declare are skipped.
pub(super) fn decode(
    schema: &Schema,
    message: &str,
    bytes: &[u8],
    path: &str,
) -> Result<Option<Value>, ProtoError> {
    let descriptor = schema
        .message(message)
        .ok_or_else(|| invalid(path, format!("no message {message}")))?;
    let mut object = Map::new();
    let mut reader = Reader::new(bytes);
    while let Some((number, wire_value)) = reader.field().map_err(at(path))? {
        let Some(field) = descriptor.fields.iter().find(|f| f.number == number) else {
            continue;
        };
        let here = format!("{path}.{}", field.name);
        match field.label {
            Label::Optional => {
                let Some(v) = decode_one(schema, &field.ty, wire_value, &here)? else {
                    continue;
                };
                if field.inline {
                    if let Value::Object(inner) = v {
                        object.extend(inner);
                    }
                } else if !is_zero(&v) || KEPT_WHEN_ZERO.contains(&(message, field.name.as_str())) {
                    object.insert(field.name.clone(), v);
                }
            }
            Label::Repeated => {
                let items = object
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                let items = items.as_array_mut().expect("repeated fields hold arrays");
                match (&field.ty, wire_value) {
                    // Packed numbers: one length-delimited run of values.
                    (Type::Scalar(s), Wire::Len(run))
                        if !matches!(s, Scalar::String | Scalar::Bytes) =>
                    {
                        let mut run_reader = Reader::new(run);
                        while !run_reader.at_end() {
                            let item = match s {
                                Scalar::Double => Wire::Fixed64(u64::from_le_bytes(
                                    run_reader
                                        .take(8)
                                        .map_err(at(&here))?
                                        .try_into()
                                        .expect("8 bytes"),
                                )),
                                Scalar::Float => Wire::Fixed32(u32::from_le_bytes(
                                    run_reader
                                        .take(4)
                                        .map_err(at(&here))?
                                        .try_into()
                                        .expect("4 bytes"),
                                )),
                                _ => Wire::Varint(run_reader.varint().map_err(at(&here))?),
                            };
                            items.push(scalar_json(*s, item, &here)?);
                        }
                    }
                    (ty, w) => items.push(decode_one(schema, ty, w, &here)?.unwrap_or(Value::Null)),
                }
            }
            Label::Map(key) => {
                let Wire::Len(entry) = wire_value else {
                    return Err(wire_mismatch(&here, wire_value));
                };
                let (mut k, mut v) = (None, None);
                let mut entry_reader = Reader::new(entry);
                while let Some((n, w)) = entry_reader.field().map_err(at(&here))? {
                    match n {
                        1 => k = Some(scalar_json(key, w, &here)?),
                        2 => v = decode_one(schema, &field.ty, w, &here)?,
                        _ => {}
                    }
                }
                let k = match k {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let v = match (v, &field.ty) {
                    (Some(v), _) => v,
                    (None, Type::Scalar(Scalar::String | Scalar::Bytes)) => json!(""),
                    (None, Type::Scalar(Scalar::Bool)) => json!(false),
                    (None, Type::Scalar(_)) => json!(0),
                    (None, Type::Message(_)) => json!({}),
                };
                let map = object
                    .entry(field.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                map.as_object_mut()
                    .expect("map fields hold objects")
                    .insert(k, v);
            }
        }
    }
    // A list's `items` is written even when empty.
    if message.ends_with("List")
        && descriptor.fields.iter().any(|f| f.name == "items")
        && !object.contains_key("items")
    {
        object.insert("items".into(), json!([]));
    }
    decode_special(schema, message, object, path)
}

/// Names where in the message a wire-level error was met.
fn at(path: &str) -> impl Fn(ProtoError) -> ProtoError + '_ {
    move |e| match e {
        ProtoError::Malformed(why) => ProtoError::Malformed(format!("{path}: {why}")),
        other => other,
    }
}

fn wire_mismatch(path: &str, got: Wire<'_>) -> ProtoError {
    ProtoError::Malformed(format!(
        "{path}: unexpected {} value for this field",
        got.type_name()
    ))
}

fn decode_one(
    schema: &Schema,
    ty: &Type,
    value: Wire<'_>,
    path: &str,
) -> Result<Option<Value>, ProtoError> {
    match ty {
        Type::Scalar(s) => scalar_json(*s, value, path).map(Some),
        Type::Message(m) => {
            let Wire::Len(bytes) = value else {
                return Err(wire_mismatch(path, value));
            };
            decode(schema, m, bytes, path)
        }
    }
}

fn scalar_json(scalar: Scalar, value: Wire<'_>, path: &str) -> Result<Value, ProtoError> {
    Ok(match (scalar, value) {
        (Scalar::String, Wire::Len(b)) => Value::String(
            String::from_utf8(b.to_vec())
                .map_err(|_| ProtoError::Malformed(format!("{path}: a string is not UTF-8")))?,
        ),
        (Scalar::Bytes, Wire::Len(b)) => Value::String(STANDARD.encode(b)),
        (Scalar::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        (Scalar::Int32, Wire::Varint(v)) => json!(v as i32),
        (Scalar::Int64, Wire::Varint(v)) => json!(v as i64),
        (Scalar::UInt32, Wire::Varint(v)) => json!(v as u32),
        (Scalar::UInt64, Wire::Varint(v)) => json!(v),
        (Scalar::Double, Wire::Fixed64(v)) => finite(f64::from_bits(v), path)?,
        (Scalar::Float, Wire::Fixed32(v)) => finite(f64::from(f32::from_bits(v)), path)?,
        (_, other) => return Err(wire_mismatch(path, other)),
    })
}

fn finite(f: f64, path: &str) -> Result<Value, ProtoError> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| ProtoError::Malformed(format!("{path}: {f} has no JSON form")))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// A special type's JSON form from its decoded fields (zeros already dropped).
fn decode_special(
    schema: &Schema,
    message: &str,
    mut object: Map<String, Value>,
    path: &str,
) -> Result<Option<Value>, ProtoError> {
    let mut field = |name: &str| object.remove(name).unwrap_or(Value::Null);
    Ok(Some(match message {
        TIME | MICRO_TIME => {
            let seconds = field("seconds").as_i64().unwrap_or(0);
            let nanos = field("nanos").as_i64().unwrap_or(0);
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            let since = Duration::new(seconds.unsigned_abs(), 0);
            let t = if seconds >= 0 {
                UNIX_EPOCH.checked_add(since)
            } else {
                UNIX_EPOCH.checked_sub(since)
            }
            .and_then(|t: SystemTime| t.checked_add(Duration::from_nanos(nanos.max(0) as u64)))
            .ok_or_else(|| ProtoError::Malformed(format!("{path}: time out of range")))?;
            let text = if message == TIME {
                humantime::format_rfc3339_seconds(t).to_string()
            } else {
                humantime::format_rfc3339_micros(t).to_string()
            };
            Value::String(text)
        }
        QUANTITY => json!(field("string").as_str().unwrap_or("0")),
        INT_OR_STRING => match field("type").as_i64() {
            Some(1) => json!(field("strVal").as_str().unwrap_or_default()),
            _ => json!(field("intVal").as_i64().unwrap_or(0)),
        },
        RAW_EXTENSION | FIELDS_V1 => {
            let raw = field("raw");
            let raw = STANDARD
                .decode(raw.as_str().unwrap_or_default())
                .expect("bytes were base64-encoded here");
            if raw.is_empty() {
                return Ok(None);
            }
            if raw.starts_with(super::MAGIC) {
                super::decode_with(schema, &raw)?
            } else {
                serde_json::from_slice(&raw).map_err(|e| {
                    ProtoError::Malformed(format!("{path}: embedded object is not JSON: {e}"))
                })?
            }
        }
        m if STRING_ARRAYS.contains(&m) => match field("items") {
            Value::Null => json!([]),
            items => items,
        },
        _ => Value::Object(object),
    }))
}
