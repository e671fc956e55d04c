//! What kubectl needs of the sandbox cluster beyond the objects themselves: server-side
//! printing (Tables), the OpenAPI documents (v2 and v3, derived from the official schemas),
//! field validation, and the access and identity reviews behind `kubectl auth`.

mod common;

use common::k8s::Kube;
use reqwest::Method;
use serde_json::{Value, json};

const TABLE: &str = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json;as=Table;g=meta.k8s.io;v=v1beta1,application/json";

/// A raw request: status, headers and JSON body.
async fn send(
    kube: &Kube,
    method: Method,
    path: &str,
    accept: &str,
    content_type: &str,
    body: Option<String>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = kube
        .http
        .request(method, format!("{}{path}", kube.server))
        .bearer_auth(&kube.token)
        .header("accept", accept);
    if let Some(body) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, headers, value)
}

async fn table(kube: &Kube, path: &str) -> Value {
    let (status, _, t) = send(kube, Method::GET, path, TABLE, "", None).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1")),
        "{t}"
    );
    t
}

fn column_names(t: &Value) -> Vec<(String, u64)> {
    t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn row_named<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == name)
        .unwrap_or_else(|| panic!("no row {name}: {t}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn get_and_list_answer_tables_with_the_api_servers_columns() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    let ns = "/api/v1/namespaces/shop";
    kube.create(
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    )
    .await;
    for (path, body) in [
        (
            format!("{ns}/configmaps"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "labels": {"tier": "web"}}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
        ),
        (
            format!("{ns}/configmaps"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "db", "labels": {"tier": "db"}}}),
        ),
        (
            format!("{ns}/secrets"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "type": "Opaque", "stringData": {"user": "u", "password": "p"}}),
        ),
        (
            format!("{ns}/resourcequotas"),
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"count/configmaps": "10", "limits.memory": "8Gi", "requests.cpu": "4"}}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings".into(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "deployers"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "shop"}, {"kind": "User", "name": "ana", "apiGroup": "rbac.authorization.k8s.io"}, {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies".into(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny"}, "spec": {"podSelector": {}}}),
        ),
        (
            "/apis/apps/v1/namespaces/shop/deployments".into(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}),
        ),
    ] {
        let (status, created) = kube.create(&path, body).await;
        assert_eq!(status, 201, "{created}");
    }

    let namespaces = table(&kube, "/api/v1/namespaces").await;
    assert_eq!(
        column_names(&namespaces),
        [("Name".into(), 0), ("Status".into(), 0), ("Age".into(), 0)]
    );
    let shop = row_named(&namespaces, "shop");
    assert_eq!(shop["cells"][1], "Active");
    assert!(shop["cells"][2].as_str().unwrap().ends_with('s'), "{shop}");
    // By default a row carries the object's metadata, as PartialObjectMetadata.
    assert_eq!(shop["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(shop["object"]["metadata"]["name"], "shop");

    let configmaps = table(&kube, &format!("{ns}/configmaps?labelSelector=tier%3Dweb")).await;
    assert_eq!(
        configmaps["rows"].as_array().unwrap().len(),
        1,
        "{configmaps}"
    );
    assert_eq!(row_named(&configmaps, "web")["cells"][1], 3);
    let one = table(&kube, &format!("{ns}/configmaps/db")).await;
    assert_eq!(one["rows"][0]["cells"][1], 0);

    let secrets = table(&kube, &format!("{ns}/secrets")).await;
    assert_eq!(
        row_named(&secrets, "creds")["cells"],
        json!(["creds", "Opaque", 2, secrets["rows"][0]["cells"][3]])
    );

    let quotas = table(&kube, &format!("{ns}/resourcequotas")).await;
    let q = row_named(&quotas, "q");
    assert_eq!(q["cells"][2], "count/configmaps: 2/10, requests.cpu: 0/4");
    assert_eq!(q["cells"][3], "limits.memory: 0/8Gi");

    let bindings = table(
        &kube,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings",
    )
    .await;
    assert_eq!(
        column_names(&bindings),
        [
            ("Name".into(), 0),
            ("Role".into(), 0),
            ("Age".into(), 0),
            ("Users".into(), 1),
            ("Groups".into(), 1),
            ("ServiceAccounts".into(), 1)
        ]
    );
    let b = &row_named(&bindings, "deployers")["cells"];
    assert_eq!(
        (&b[1], &b[3], &b[4], &b[5]),
        (
            &json!("ClusterRole/edit"),
            &json!("ana"),
            &json!("devs"),
            &json!("shop/default")
        )
    );

    let roles = table(&kube, "/apis/rbac.authorization.k8s.io/v1/clusterroles").await;
    assert_eq!(
        column_names(&roles),
        [("Name".into(), 0), ("Created At".into(), 0)]
    );
    assert!(
        row_named(&roles, "cluster-admin")["cells"][1]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let policies = table(
        &kube,
        "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies",
    )
    .await;
    assert_eq!(row_named(&policies, "deny")["cells"][1], "<none>");

    let deployments = table(&kube, "/apis/apps/v1/deployments").await;
    let d = &row_named(&deployments, "web")["cells"];
    assert_eq!((&d[1], &d[2], &d[3]), (&json!("0/3"), &json!(0), &json!(0)));
    assert_eq!(
        (&d[5], &d[6], &d[7]),
        (&json!("nginx"), &json!("nginx:1.27"), &json!("app=web"))
    );

    // `includeObject=Object` carries the whole object; `None`, nothing.
    let (_, _, full) = send(
        &kube,
        Method::GET,
        &format!("{ns}/configmaps/web?includeObject=Object"),
        TABLE,
        "",
        None,
    )
    .await;
    assert_eq!(full["rows"][0]["object"]["data"]["a"], "1");
    let (_, _, bare) = send(
        &kube,
        Method::GET,
        &format!("{ns}/configmaps/web?includeObject=None"),
        TABLE,
        "",
        None,
    )
    .await;
    assert!(bare["rows"][0].get("object").is_none(), "{bare}");
    // A client that does not ask for a Table gets the object.
    let (_, plain) = kube.get(&format!("{ns}/configmaps/web")).await;
    assert_eq!(plain["kind"], "ConfigMap");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_documents_describe_what_is_served() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    let (status, _, index) = send(
        &kube,
        Method::GET,
        "/openapi/v3",
        "application/json",
        "",
        None,
    )
    .await;
    assert_eq!(status, 200, "{index}");
    let paths = index["paths"].as_object().unwrap();
    let keys: Vec<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "api/v1",
            "apis/apps/v1",
            "apis/networking.k8s.io/v1",
            "apis/rbac.authorization.k8s.io/v1"
        ]
    );
    let url = paths["api/v1"]["serverRelativeURL"].as_str().unwrap();
    assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");

    let (status, headers, core) = send(&kube, Method::GET, url, "application/json", "", None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, immutable");
    assert_eq!(core["openapi"], "3.0.0");
    let patch = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"fieldValidation")
            && params.contains(&"fieldManager")
            && params.contains(&"dryRun"),
        "{params:?}"
    );
    assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
    let configmap = &core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
    assert_eq!(
        configmap["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
    );
    assert_eq!(configmap["properties"]["data"]["type"], "object");
    // Every served kind is there; what is not served is not.
    for path in [
        "/api/v1/namespaces/{name}",
        "/api/v1/secrets",
        "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
    ] {
        assert!(core["paths"][path].is_object(), "{path}");
    }
    assert!(core["paths"]["/api/v1/namespaces/{namespace}/pods"].is_null());
    let (status, _, apps) = send(
        &kube,
        Method::GET,
        "/openapi/v3/apis/apps/v1",
        "application/json",
        "",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let containers =
        &apps["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");

    let (status, _, v2) = send(
        &kube,
        Method::GET,
        "/openapi/v2",
        "application/json",
        "",
        None,
    )
    .await;
    assert_eq!((status, v2["swagger"].as_str()), (200, Some("2.0")));
    assert_eq!(
        v2["definitions"]["io.k8s.api.core.v1.ConfigMap"]["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    // The protobuf form of v2 is not served: kubectl reads v3 instead.
    let (status, _, refused) = send(
        &kube,
        Method::GET,
        "/openapi/v2",
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        "",
        None,
    )
    .await;
    assert_eq!(
        (status, refused["reason"].as_str()),
        (406, Some("NotAcceptable"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn field_validation_refuses_warns_about_or_drops_unknown_and_duplicate_fields() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    let cms = "/api/v1/namespaces/default/configmaps";
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"},"spec":{"foo":1},"data":{"b":"2"}}"#;

    let (status, _, refused) = send(
        &kube,
        Method::POST,
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        "application/json",
        Some(body.into()),
    )
    .await;
    assert_eq!(
        (status, refused["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert_eq!(
        refused["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\", duplicate field \"data\""
    );
    let (status, _) = kube.get(&format!("{cms}/c")).await;
    assert_eq!(status, 404, "a refused create stores nothing");

    let (status, headers, created) = send(
        &kube,
        Method::POST,
        &format!("{cms}?fieldValidation=Warn"),
        "application/json",
        "application/json",
        Some(body.into()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let warnings: Vec<&str> = headers
        .get_all("warning")
        .iter()
        .map(|w| w.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec\"""#,
            r#"299 - "duplicate field \"data\"""#
        ]
    );
    assert!(
        created.get("spec").is_none(),
        "the unknown field is dropped: {created}"
    );
    assert_eq!(
        created["data"],
        json!({"b": "2"}),
        "the last duplicate wins"
    );

    let patch = r#"{"data":{"c":"3"},"immutabel":true}"#;
    let (status, _, refused) = send(
        &kube,
        Method::PATCH,
        &format!("{cms}/c?fieldValidation=Strict"),
        "application/json",
        "application/strategic-merge-patch+json",
        Some(patch.into()),
    )
    .await;
    assert_eq!(
        (
            status,
            refused["message"]
                .as_str()
                .map(|m| m.ends_with("unknown field \"immutabel\""))
        ),
        (400, Some(true)),
        "{refused}"
    );
    let (status, headers, patched) = send(
        &kube,
        Method::PATCH,
        &format!("{cms}/c?fieldValidation=Ignore"),
        "application/json",
        "application/merge-patch+json",
        Some(patch.into()),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("warning").is_none());
    assert_eq!(patched["data"], json!({"b": "2", "c": "3"}));

    let apply = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"b":"2"},"extra":1}"#;
    let (status, _, refused) = send(
        &kube,
        Method::PATCH,
        &format!("{cms}/c?fieldManager=me&fieldValidation=Strict"),
        "application/json",
        "application/apply-patch+yaml",
        Some(apply.into()),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["message"],
        "failed to create typed patch object (/v1, Kind=ConfigMap): .extra: field not declared in schema"
    );
}

async fn review(kube: &Kube, path: &str, body: Value) -> (u16, Value) {
    let (status, _, v) = send(
        kube,
        Method::POST,
        path,
        "application/json",
        "application/json",
        Some(body.to_string()),
    )
    .await;
    (status, v)
}

fn access(verb: &str, resource: &str, namespace: &str) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}}})
}

#[tokio::test(flavor = "multi_thread")]
async fn access_and_identity_reviews_answer_from_rbac() {
    let (_dir, s) = common::start().await;
    let admin = Kube::admin(&s);
    let ssar = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (status, allowed) = review(&admin, ssar, access("delete", "namespaces", "")).await;
    assert_eq!(status, 201, "{allowed}");
    assert_eq!(
        (
            allowed["kind"].as_str(),
            allowed["status"]["allowed"].as_bool()
        ),
        (Some("SelfSubjectAccessReview"), Some(true))
    );

    // A service account whose role lets it read config maps in `default`, nothing more.
    admin
        .create(
            "/api/v1/namespaces/default/serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}),
        )
        .await;
    admin.create("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "read-cm"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]})).await;
    admin.create("/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"}, "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": "default"}]})).await;
    let (_, token) = admin.create("/api/v1/namespaces/default/serviceaccounts/reader/token", json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})).await;
    let reader = Kube::with_token(&s, token["status"]["token"].as_str().unwrap());
    for (verb, resource, ns, expected) in [
        ("list", "configmaps", "default", true),
        ("delete", "configmaps", "default", false),
        ("list", "configmaps", "kube-system", false),
        ("list", "configmaps", "", false),
        ("create", "selfsubjectaccessreviews", "", true),
    ] {
        let mut body = access(verb, resource, ns);
        if resource == "selfsubjectaccessreviews" {
            body["spec"]["resourceAttributes"]["group"] = json!("authorization.k8s.io");
        }
        let (status, answer) = review(&reader, ssar, body).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(
            answer["status"]["allowed"], expected,
            "{verb} {resource} in {ns:?}: {answer}"
        );
    }

    let (status, rules) = review(&reader, "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}})).await;
    assert_eq!(status, 201, "{rules}");
    assert!(
        rules["status"]["resourceRules"]
            .as_array()
            .unwrap()
            .contains(
                &json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]})
            ),
        "{rules}"
    );

    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "system:serviceaccount:default:reader", "resourceAttributes": {"verb": "get", "resource": "configmaps", "namespace": "default"}}});
    let (status, answer) = review(
        &admin,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar.clone(),
    )
    .await;
    assert_eq!(
        (status, answer["status"]["allowed"].as_bool()),
        (201, Some(true)),
        "{answer}"
    );
    let (status, refused) = review(
        &reader,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        sar,
    )
    .await;
    assert_eq!(
        (status, refused["reason"].as_str()),
        (403, Some("Forbidden"))
    );

    let (status, me) = review(
        &reader,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(status, 201, "{me}");
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:default:reader"
    );
    assert!(
        me["status"]["userInfo"]["groups"]
            .as_array()
            .unwrap()
            .contains(&json!("system:serviceaccounts:default"))
    );

    let (_, resources) = admin
        .call(
            "get",
            Method::GET,
            "/apis/authorization.k8s.io/v1",
            "",
            None,
        )
        .await;
    let names: Vec<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "selfsubjectaccessreviews",
            "selfsubjectrulesreviews",
            "subjectaccessreviews"
        ]
    );
}
