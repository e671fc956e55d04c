//! The codec as a specification: every served kind survives JSON → protobuf → JSON, the
//! special types take their Kubernetes forms, and bad input is an error, never a panic.

use super::*;

fn round_trip(object: Value) {
    let bytes = encode(&object)
        .unwrap_or_else(|e| panic!("{e}: {object}"))
        .unwrap_or_else(|| panic!("no protobuf form for {object}"));
    assert!(bytes.starts_with(MAGIC));
    assert_eq!(decode(&bytes).unwrap(), object);
}

fn meta(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "team-a",
        "uid": "6a1f4b1e-8f51-4c4f-9f0c-5f2f0d7e4c11",
        "resourceVersion": "42",
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "labels": {"app": "web", "team": "payments"},
        "annotations": {"kubernetes.io/description": "the web tier"},
        "managedFields": [{
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2026-01-02T03:04:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
        }],
    })
}

#[test]
fn every_served_kind_survives_a_round_trip() {
    let mut namespace_meta = meta("team-a");
    namespace_meta.as_object_mut().unwrap().remove("namespace");
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": namespace_meta,
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("deployer"),
            "secrets": [{"name": "deployer-token"}], "automountServiceAccountToken": false}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("app"), "type": "Opaque",
            "data": {"password": "aHVudGVyMg==", "empty": ""}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("settings"),
            "data": {"LOG_LEVEL": "info"}, "binaryData": {"blob": "AAEC"}}),
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("compute"),
            "spec": {"hard": {"pods": "20", "requests.cpu": "4", "count/serviceaccounts": "3"}},
            "status": {"hard": {"pods": "20"}, "used": {"pods": "0"}}}),
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("defaults"),
            "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
                "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("reader"),
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": meta("deployer-edit"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "edit", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
                {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("deny"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}],
                    "ports": [{"protocol": "TCP", "port": 8080}, {"port": "http"}]}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "demo"}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 10}}],
                        "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 420}}],
                        "terminationGracePeriodSeconds": 30}}}}),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"name": "deployer", "namespace": "team-a", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600},
            "status": {"token": "eyJhbGciOi.x.y", "expirationTimestamp": "2026-01-02T04:04:05Z"}}),
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {}, "spec": {"resourceAttributes": {"namespace": "team-a", "verb": "create", "resource": "configmaps"}},
            "status": {"allowed": true, "reason": "RBAC: allowed by RoleBinding"}}),
        json!({"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": "7"}, "items": []}),
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "message": "namespaces \"nope\" not found", "reason": "NotFound", "code": 404,
            "details": {"name": "nope", "kind": "namespaces"}}),
        json!({"apiVersion": "v1", "kind": "APIResourceList", "groupVersion": "v1",
            "resources": [{"name": "namespaces", "singularName": "namespace", "namespaced": false,
                "kind": "Namespace", "verbs": ["create", "get"], "shortNames": ["ns"]}]}),
    ] {
        round_trip(object);
    }
}

#[test]
fn lists_carry_their_items_without_type_meta() {
    round_trip(json!({"apiVersion": "v1", "kind": "ConfigMapList",
        "metadata": {"resourceVersion": "9", "continue": "c2V0dGluZ3M", "remainingItemCount": 2},
        "items": [{"metadata": {"name": "a", "namespace": "team-a"}, "data": {"k": "v"}},
            {"metadata": {"name": "b", "namespace": "team-a"}}]}));
}

#[test]
fn special_types_take_their_kubernetes_wire_forms() {
    let bytes = encode(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "creationTimestamp": "2026-01-02T03:04:05Z"},
        "data": {"k": "aGk="}}))
    .unwrap()
    .unwrap();
    let body = &bytes[MAGIC.len()..];
    // Unknown{typeMeta{apiVersion "v1", kind "Secret"}, raw}.
    assert_eq!(&body[..15], b"\x0a\x0c\x0a\x02v1\x12\x06Secret\x12");
    // The Time is {seconds}: 1767323045 as a varint, no nanos.
    let mut seconds = Vec::new();
    wire::put_varint(&mut seconds, 1_767_323_045);
    let time = [&[0x42, 1 + seconds.len() as u8, 0x08][..], &seconds].concat();
    assert!(bytes.windows(time.len()).any(|w| w == time));
    // The map entry {1: "k", 2: b"hi"}: the bytes, not their base64.
    assert!(bytes.windows(7).any(|w| w == b"\x0a\x01k\x12\x02hi"));

    // MicroTime keeps its microseconds; IntOrString is a number or a string.
    round_trip(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "e"}, "eventTime": "2026-01-02T03:04:05.123456Z",
        "reportingController": "paddock", "action": "Created"}));
}

#[test]
fn zeros_read_from_protobuf_are_absent_as_go_writes_json() {
    // Go writes every non-pointer field; its JSON leaves empty ones out.
    let mut raw = Vec::new();
    let mut meta = Vec::new();
    wire::put_len(&mut meta, 1, b"team-a");
    wire::put_len(&mut meta, 2, b"");
    wire::put_len(&mut meta, 6, b"");
    wire::put_tag(&mut meta, 7, wire::VARINT);
    wire::put_varint(&mut meta, 0);
    wire::put_len(&mut meta, 8, b"\x08\x00"); // creationTimestamp: the zero Time
    wire::put_len(&mut raw, 1, &meta);
    wire::put_len(&mut raw, 2, b""); // spec: {}
    let body = envelope("v1", "Namespace", &raw);
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}, "spec": {}})
    );
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::new();
    wire::put_len(&mut type_meta, 1, api_version.as_bytes());
    wire::put_len(&mut type_meta, 2, kind.as_bytes());
    let mut out = MAGIC.to_vec();
    wire::put_len(&mut out, 1, &type_meta);
    wire::put_len(&mut out, 2, raw);
    out
}

#[test]
fn unknown_fields_are_skipped_and_unknown_json_properties_left_out() {
    let mut raw = Vec::new();
    wire::put_len(&mut raw, 99, b"from a newer Kubernetes");
    wire::put_tag(&mut raw, 98, wire::FIXED32);
    raw.extend_from_slice(&[1, 2, 3, 4]);
    wire::put_len(&mut raw, 1, b"\x0a\x03cfg");
    wire::put_len(&mut raw, 2, b"\x0a\x01k\x12\x01v");
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &raw)).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}})
    );
    let encoded = encode(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg"}, "sandboxOnly": true}))
    .unwrap()
    .unwrap();
    assert_eq!(
        decode(&encoded).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})
    );
}

#[test]
fn a_delete_options_body_in_any_group_version_is_read() {
    let mut raw = Vec::new();
    wire::put_len(&mut raw, 4, b"Foreground");
    wire::put_tag(&mut raw, 1, wire::VARINT);
    wire::put_varint(&mut raw, 0);
    assert_eq!(
        decode(&envelope("apps/v1", "DeleteOptions", &raw)).unwrap(),
        json!({"apiVersion": "apps/v1", "kind": "DeleteOptions",
            "propagationPolicy": "Foreground", "gracePeriodSeconds": 0})
    );
}

#[test]
fn malformed_input_is_a_clear_error_not_a_panic() {
    let errors = [
        decode(b"{\"kind\": \"Namespace\"}").unwrap_err(),
        decode(b"k8s\0\x0a\x05ab").unwrap_err(),
        decode(&envelope("v1", "Pod", b"")).unwrap_err(),
        decode(&envelope("v1", "Namespace", b"\x0a\x02\xff\xfe")).unwrap_err(),
        decode(&envelope("v1", "Namespace", b"\x08\x01")).unwrap_err(),
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "the object does not start with the Kubernetes protobuf prefix \"k8s\\x00\"",
            "malformed protobuf: Unknown: 5 bytes announced, fewer left",
            "no kind \"Pod\" is registered for version \"v1\"",
            "malformed protobuf: Namespace.metadata: a varint runs past the end",
            "malformed protobuf: Namespace.metadata: unexpected varint value for this field",
        ]
    );
    // Every prefix of a valid object is an error or a value, never a panic.
    let full = encode(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta("web"), "spec": {"replicas": 2}}))
    .unwrap()
    .unwrap();
    for end in 0..full.len() {
        let _ = decode(&full[..end]);
    }
    let err = encode(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"k": "not base64!"}}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Secret.data[\"k\"]: illegal base64 data"),
        "{err}"
    );
}

#[test]
fn kinds_without_a_protobuf_message_stay_json() {
    assert!(
        encode(&json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1"}))
            .unwrap()
            .is_none()
    );
    assert!(encode(&json!({"major": "1"})).unwrap().is_none());
}

#[test]
fn accept_headers_choose_the_answer_format_as_kubectl_sends_them() {
    let format = |accept: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, accept.parse().unwrap());
        response_format(&headers)
    };
    assert_eq!(
        format("application/vnd.kubernetes.protobuf,application/json"),
        Format::Protobuf
    );
    assert_eq!(format("application/json, */*"), Format::Json);
    assert_eq!(
        format("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
        Format::Json
    );
    assert_eq!(
        format("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"),
        Format::Json
    );
    assert_eq!(
        format("application/json;q=0.5,application/vnd.kubernetes.protobuf"),
        Format::Protobuf
    );
    assert_eq!(format("text/html"), Format::Json);
    assert_eq!(response_format(&HeaderMap::new()), Format::Json);
}
