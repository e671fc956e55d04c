//! The Kubernetes provider against the sandbox cluster: every type through the provider
//! contract (create, read, update, import by id, delete twice), namespaces that are gone
//! when their delete returns, retried creates that leave one object, kubeconfigs read and
//! written, and a service account's token that acts in its namespace only.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{create, props, resource};
use paddock_engine::{Props, Provider, ProviderError, Value};
use paddock_providers::kubernetes::{KubeAuth, KubernetesConfig, provider};
use paddock_sandbox::Sandbox;
use serde_json::{Value as Json, json};

/// A raw request to the sandbox cluster with `token`: status and body.
async fn raw(
    s: &Sandbox,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Json>,
) -> (u16, Json) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", s.kubernetes_url());
    let mut request = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Json::Null))
}

/// GET as the cluster admin.
async fn get(s: &Sandbox, path: &str) -> (u16, Json) {
    raw(s, &s.kubernetes_token, "GET", path, None).await
}

fn admin(s: &Sandbox) -> impl Provider {
    provider(&common::kubernetes(s)).unwrap()
}

async fn read(p: &dyn Provider, ty: &str, id: &str, known: &Props) -> Option<(Props, Props)> {
    p.read(ty, id, known)
        .await
        .unwrap_or_else(|e| panic!("{ty} {id}: {e}"))
        .map(|r| (r.inputs.expect("inputs are rebuilt"), r.outputs))
}

/// Inputs and outputs together, as the engine hands them back to a provider.
fn prior(inputs: &Props, outputs: &Props) -> Props {
    let mut all = inputs.clone();
    all.extend(outputs.clone());
    all
}

fn uid(outputs: &Props) -> String {
    outputs
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// One type through the contract: create, read (known and by id alone), update, read
/// again; the object as the cluster has it after the update.
async fn round_trip(
    s: &Sandbox,
    p: &dyn Provider,
    ty: &str,
    path: &str,
    inputs: Json,
    changed: Json,
) -> (String, Props, Json) {
    let (id, outputs) = create(p, ty, inputs.clone()).await;
    let first_uid = uid(&outputs);
    assert!(!first_uid.is_empty(), "{ty}: a uid output");

    let (status, object) = get(s, path).await;
    assert_eq!(status, 200, "{ty}: {object}");
    assert_eq!(object["metadata"]["uid"], first_uid.as_str());
    let appliers: Vec<&Json> = object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["manager"] == "paddock" && m["operation"] == "Apply")
        .collect();
    assert_eq!(
        appliers.len(),
        1,
        "{ty} is written with server-side apply: {object}"
    );

    let given = props(inputs.clone());
    let (known, again) = read(p, ty, &id, &prior(&given, &outputs))
        .await
        .expect("exists");
    assert_eq!(known, given, "{ty}: read with known inputs");
    assert_eq!(again, outputs, "{ty}: outputs");
    let (imported, _) = read(p, ty, &id, &Props::new()).await.expect("exists");
    assert_eq!(imported, given, "{ty}: imported by id alone");

    let news = props(changed.clone());
    let r = resource(ty, "urn:test");
    let updated = p
        .update(r, &id, &given, &news)
        .await
        .unwrap_or_else(|e| panic!("{ty} update: {e}"));
    assert_eq!(uid(&updated), first_uid, "{ty}: updated in place");
    let (imported, _) = read(p, ty, &id, &Props::new()).await.expect("exists");
    assert_eq!(imported, news, "{ty}: read after the update");
    let (_, object) = get(s, path).await;
    (id, prior(&news, &updated), object)
}

/// Deletes twice (the second finds nothing and succeeds); the object is then gone.
async fn delete_twice(
    s: &Sandbox,
    p: &dyn Provider,
    ty: &str,
    id: &str,
    known: &Props,
    path: &str,
) {
    p.delete(ty, id, known)
        .await
        .unwrap_or_else(|e| panic!("{ty} delete: {e}"));
    p.delete(ty, id, known)
        .await
        .unwrap_or_else(|e| panic!("{ty} second delete: {e}"));
    assert!(read(p, ty, id, known).await.is_none(), "{ty}: gone");
    assert_eq!(get(s, path).await.0, 404, "{ty}: gone from the cluster");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_is_created_read_updated_imported_and_deleted() {
    let (_dir, s) = common::sandbox().await;
    let p = admin(&s);
    let ns = "/api/v1/namespaces/team-a";
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a";
    let net = "/apis/networking.k8s.io/v1/namespaces/team-a";

    let (id, known, object) = round_trip(
        &s,
        &p,
        "kubernetes:namespace",
        ns,
        json!({"name": "team-a", "labels": {"team": "a"}, "annotations": {"paddock.dev/owner": "platform"}}),
        json!({"name": "team-a", "labels": {"team": "a", "tier": "gold"}}),
    )
    .await;
    assert_eq!(id, "team-a");
    assert_eq!(object["metadata"]["labels"]["tier"], "gold");
    assert!(
        object["metadata"]
            .get("annotations")
            .is_none_or(|a| a.get("paddock.dev/owner").is_none()),
        "an annotation Paddock stopped setting is removed: {object}"
    );

    let cases = [
        (
            "kubernetes:serviceAccount",
            format!("{ns}/serviceaccounts/deployer"),
            json!({"namespace": "team-a", "name": "deployer", "labels": {"app": "web"}}),
            json!({"namespace": "team-a", "name": "deployer", "labels": {"app": "web", "tier": "gold"}}),
        ),
        (
            "kubernetes:role",
            format!("{rbac}/roles/deployer"),
            json!({"namespace": "team-a", "name": "deployer", "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": []}]}),
            json!({"namespace": "team-a", "name": "deployer", "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}),
        ),
        (
            "kubernetes:roleBinding",
            format!("{rbac}/rolebindings/deployer-edit"),
            json!({"namespace": "team-a", "name": "deployer-edit", "role": "edit",
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}]}),
            json!({"namespace": "team-a", "name": "deployer-edit", "role": "edit",
                "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"},
                    {"kind": "Group", "name": "team-a-developers"}]}),
        ),
        (
            "kubernetes:resourceQuota",
            format!("{ns}/resourcequotas/compute"),
            json!({"namespace": "team-a", "name": "compute", "hard": {"pods": "10", "requests.cpu": "4"}}),
            json!({"namespace": "team-a", "name": "compute", "hard": {"pods": "20", "limits.memory": "8Gi"}}),
        ),
        (
            "kubernetes:limitRange",
            format!("{ns}/limitranges/defaults"),
            json!({"namespace": "team-a", "name": "defaults",
                "limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}}]}),
            json!({"namespace": "team-a", "name": "defaults",
                "limits": [{"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "512Mi"}}]}),
        ),
        (
            "kubernetes:networkPolicy",
            format!("{net}/networkpolicies/dns-only"),
            json!({"namespace": "team-a", "name": "dns-only", "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
            json!({"namespace": "team-a", "name": "dns-only", "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": [{"podSelector": {}}]}]}),
        ),
        (
            "kubernetes:serviceAccountToken",
            format!("{ns}/secrets/deployer-token"),
            json!({"namespace": "team-a", "serviceAccount": "deployer", "name": "deployer-token"}),
            json!({"namespace": "team-a", "serviceAccount": "deployer", "name": "deployer-token"}),
        ),
    ];
    let mut made = Vec::new();
    for (ty, path, inputs, changed) in cases {
        let (id, known, object) = round_trip(&s, &p, ty, &path, inputs, changed).await;
        let name = path.rsplit('/').next().unwrap();
        assert_eq!(id, format!("team-a/{name}"));
        match ty {
            "kubernetes:roleBinding" => {
                assert_eq!(
                    object["roleRef"],
                    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"})
                );
                assert_eq!(
                    object["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io",
                    "filled as the API requires"
                );
            }
            "kubernetes:role" => {
                assert_eq!(
                    object["rules"],
                    json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]),
                    "the rules are replaced, not merged"
                );
            }
            "kubernetes:resourceQuota" => {
                assert_eq!(
                    object["spec"]["hard"],
                    json!({"pods": "20", "limits.memory": "8Gi"}),
                    "a limit dropped is removed"
                );
            }
            "kubernetes:networkPolicy" => {
                assert!(object["spec"].get("egress").is_none(), "{object}");
                assert_eq!(
                    object["spec"]["podSelector"],
                    json!({"matchLabels": {"app": "web"}})
                );
            }
            "kubernetes:serviceAccountToken" => {
                assert_eq!(object["type"], "kubernetes.io/service-account-token");
                let token = known["token"].clone();
                assert!(matches!(token, Value::Secret(_)), "the token is a secret");
                assert!(!token.as_str().unwrap().is_empty());
                assert!(matches!(known["kubeconfig"], Value::Secret(_)));
                assert_eq!(known["caCertificate"], Value::from(""), "plain HTTP: no CA");
            }
            _ => {}
        }
        made.push((ty, id, known, path));
    }
    for (ty, id, known, path) in made.into_iter().rev() {
        delete_twice(&s, &p, ty, &id, &known, &path).await;
    }
    delete_twice(&s, &p, "kubernetes:namespace", &id, &known, ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schema_marks_the_token_and_kubeconfig_secret() {
    let (_dir, s) = common::sandbox().await;
    let p = admin(&s);
    let schema = p.schema("kubernetes:serviceAccountToken").unwrap();
    let secret = |name: &str| {
        schema
            .outputs
            .iter()
            .find(|o| o.name == name)
            .unwrap()
            .secret
    };
    assert!(secret("token") && secret("kubeconfig") && !secret("caCertificate"));
    let names: Vec<&str> = p.schemas().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "kubernetes:namespace",
            "kubernetes:serviceAccount",
            "kubernetes:role",
            "kubernetes:roleBinding",
            "kubernetes:resourceQuota",
            "kubernetes:limitRange",
            "kubernetes:networkPolicy",
            "kubernetes:serviceAccountToken"
        ]
    );
    assert_eq!(p.name(), "kubernetes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_delete_returns_only_once_it_is_gone() {
    let termination = Duration::from_millis(1500);
    let (_dir, s) =
        common::sandbox_with(|c| c.kubernetes.namespace_termination = termination).await;
    let p = admin(&s);
    let (id, outputs) = create(&p, "kubernetes:namespace", json!({"name": "short-lived"})).await;
    create(
        &p,
        "kubernetes:serviceAccount",
        json!({"namespace": "short-lived", "name": "bot"}),
    )
    .await;

    let started = Instant::now();
    p.delete("kubernetes:namespace", &id, &outputs)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= termination - Duration::from_millis(100),
        "returned while Terminating"
    );
    assert_eq!(get(&s, "/api/v1/namespaces/short-lived").await.0, 404);
    assert_eq!(
        get(&s, "/api/v1/namespaces/short-lived/serviceaccounts/bot")
            .await
            .0,
        404
    );

    // A create of a name whose namespace is still terminating waits for it to go, then
    // creates a new one (rather than applying to the one about to vanish).
    create(&p, "kubernetes:namespace", json!({"name": "reborn"})).await;
    let (status, _) = raw(
        &s,
        &s.kubernetes_token,
        "DELETE",
        "/api/v1/namespaces/reborn",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, again) = create(&p, "kubernetes:namespace", json!({"name": "reborn"})).await;
    tokio::time::sleep(termination + Duration::from_millis(300)).await;
    let (status, object) = get(&s, "/api/v1/namespaces/reborn").await;
    assert_eq!(status, 200, "{object}");
    assert_eq!(object["status"]["phase"], "Active");
    assert_eq!(object["metadata"]["uid"], uid(&again).as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_create_leaves_one_object() {
    let (_dir, s) = common::sandbox().await;
    let p = admin(&s);
    let cases = [
        (
            "kubernetes:namespace",
            "namespaces",
            json!({"name": "team-b", "labels": {"team": "b"}}),
        ),
        (
            "kubernetes:serviceAccount",
            "serviceaccounts",
            json!({"namespace": "team-b", "name": "deployer"}),
        ),
        (
            "kubernetes:role",
            "roles",
            json!({"namespace": "team-b", "name": "deployer",
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}),
        ),
        (
            "kubernetes:roleBinding",
            "rolebindings",
            json!({"namespace": "team-b", "name": "deployer-admin", "role": "admin",
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-b"}]}),
        ),
        (
            "kubernetes:resourceQuota",
            "resourcequotas",
            json!({"namespace": "team-b", "name": "compute", "hard": {"pods": 10}}),
        ),
        (
            "kubernetes:limitRange",
            "limitranges",
            json!({"namespace": "team-b", "name": "defaults",
            "limits": [{"type": "Container", "default": {"memory": "512Mi"}}]}),
        ),
        (
            "kubernetes:networkPolicy",
            "networkpolicies",
            json!({"namespace": "team-b", "name": "deny-all", "policyTypes": ["Ingress"]}),
        ),
        (
            "kubernetes:serviceAccountToken",
            "secrets",
            json!({"namespace": "team-b", "serviceAccount": "deployer", "name": "deployer-token"}),
        ),
    ];
    for (ty, kind, inputs) in cases {
        let (id, first) = create(&p, ty, inputs.clone()).await;
        let objects = common::count(&s, "kubernetes", kind).await;
        let (again, second) = create(&p, ty, inputs.clone()).await;
        assert_eq!(again, id, "{ty}");
        assert_eq!(uid(&second), uid(&first), "{ty}: the same object");
        assert_eq!(
            common::count(&s, "kubernetes", kind).await,
            objects,
            "{ty}: no duplicate"
        );

        let found = p
            .find(resource(ty, "urn:test"), &props(inputs))
            .await
            .unwrap()
            .expect("found by natural key");
        assert_eq!(found.id, id, "{ty}");
        assert_eq!(uid(&found.outputs), uid(&first), "{ty}");
    }
    let quota = get(&s, "/api/v1/namespaces/team-b/resourcequotas/compute")
        .await
        .1;
    assert_eq!(
        quota["spec"]["hard"]["pods"], "10",
        "a number is sent as a quantity string"
    );
    let (known, _) = read(
        &p,
        "kubernetes:resourceQuota",
        "team-b/compute",
        &props(json!({"hard": {"pods": 10}})),
    )
    .await
    .unwrap();
    assert_eq!(
        known["hard"],
        props(json!({"x": {"pods": 10}}))["x"],
        "read back in the form given"
    );

    let missing = props(json!({"namespace": "team-b", "name": "nobody"}));
    assert!(
        p.find(resource("kubernetes:serviceAccount", "urn:test"), &missing)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_an_object_by_one_of_the_same_name_keeps_the_replacement() {
    let (_dir, s) = common::sandbox().await;
    let p = admin(&s);
    create(&p, "kubernetes:namespace", json!({"name": "team-c"})).await;
    create(
        &p,
        "kubernetes:serviceAccount",
        json!({"namespace": "team-c", "name": "deployer"}),
    )
    .await;
    create(
        &p,
        "kubernetes:serviceAccount",
        json!({"namespace": "team-c", "name": "releaser"}),
    )
    .await;
    let path = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-c/rolebindings/deployer";
    let subjects = json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-c"}]);
    let old_inputs =
        json!({"namespace": "team-c", "name": "deployer", "role": "edit", "subjects": subjects});
    let (id, old) = create(&p, "kubernetes:roleBinding", old_inputs.clone()).await;

    // What the engine does for a replacement: create the new one, then delete the old.
    let (new_id, new) = create(
        &p,
        "kubernetes:roleBinding",
        json!({"namespace": "team-c", "name": "deployer", "role": "admin", "subjects": subjects}),
    )
    .await;
    assert_eq!(new_id, id);
    assert_ne!(
        uid(&new),
        uid(&old),
        "a role binding's role changes only by recreating it"
    );
    let old_known = prior(&props(old_inputs), &old);
    assert!(
        read(&p, "kubernetes:roleBinding", &id, &old_known)
            .await
            .is_none(),
        "the old incarnation is gone"
    );
    p.delete("kubernetes:roleBinding", &id, &old_known)
        .await
        .unwrap();
    let (status, object) = get(&s, path).await;
    assert_eq!(status, 200, "the replacement survives the old one's delete");
    assert_eq!(object["roleRef"]["name"], "admin");

    // A token Secret moved to another account, likewise.
    let token = json!({"namespace": "team-c", "serviceAccount": "deployer", "name": "ci-token"});
    let (id, old) = create(&p, "kubernetes:serviceAccountToken", token.clone()).await;
    let (_, new) = create(
        &p,
        "kubernetes:serviceAccountToken",
        json!({"namespace": "team-c", "serviceAccount": "releaser", "name": "ci-token"}),
    )
    .await;
    assert_ne!(new["token"], old["token"]);
    p.delete(
        "kubernetes:serviceAccountToken",
        &id,
        &prior(&props(token), &old),
    )
    .await
    .unwrap();
    let (status, secret) = get(&s, "/api/v1/namespaces/team-c/secrets/ci-token").await;
    assert_eq!(status, 200);
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        "releaser"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_kubeconfig_is_read_as_kubectl_reads_it() {
    let (_dir, s) = common::sandbox().await;
    let config = KubernetesConfig::from_kubeconfig(&s.kubeconfig_file(), None).unwrap();
    assert_eq!(config.server, s.kubernetes_url());
    assert!(matches!(&config.auth, KubeAuth::Token(t) if *t == s.kubernetes_token));
    assert!(config.ca_pem.is_none());
    let named =
        KubernetesConfig::from_kubeconfig(&s.kubeconfig_file(), Some("paddock-sandbox")).unwrap();
    assert_eq!(named.server, config.server);
    let missing =
        KubernetesConfig::from_kubeconfig(&s.kubeconfig_file(), Some("production")).unwrap_err();
    assert!(missing.to_string().contains("production"), "{missing}");

    let p = provider(&config).unwrap();
    create(
        &p,
        "kubernetes:namespace",
        json!({"name": "from-kubeconfig"}),
    )
    .await;
    assert_eq!(get(&s, "/api/v1/namespaces/from-kubeconfig").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfigs_name_contexts_data_files_and_client_certificates() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ca")).unwrap();
    std::fs::write(dir.path().join("ca/prod.pem"), "PROD CA\n").unwrap();
    let file = dir.path().join("config");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: v1
kind: Config
preferences: {{}}
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://dev.example:6443
    certificate-authority-data: {dev_ca}
- name: prod-cluster
  cluster:
    server: https://prod.example
    certificate-authority: ca/prod.pem
- name: lax-cluster
  cluster:
    server: https://lax.example
    insecure-skip-tls-verify: true
users:
- name: dev-user
  user:
    token: dev-token
- name: prod-user
  user:
    tokenFile: tokens/prod
- name: cert-user
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubelogin
contexts:
- name: dev
  context: {{cluster: dev-cluster, user: dev-user, namespace: default}}
- name: prod
  context:
    cluster: prod-cluster
    user: prod-user
- name: cert
  context:
    cluster: dev-cluster
    user: cert-user
- name: exec
  context:
    cluster: dev-cluster
    user: exec-user
- name: lax
  context:
    cluster: lax-cluster
    user: dev-user
"#,
            dev_ca = b64("DEV CA\n"),
            cert = b64("CERT"),
            key = b64("KEY\n"),
        ),
    )
    .unwrap();

    let dev = KubernetesConfig::from_kubeconfig(&file, None).unwrap();
    assert_eq!(dev.server, "https://dev.example:6443");
    assert!(matches!(&dev.auth, KubeAuth::Token(t) if t == "dev-token"));
    assert_eq!(dev.ca_pem.as_deref(), Some(&b"DEV CA\n"[..]));

    let prod = KubernetesConfig::from_kubeconfig(&file, Some("prod")).unwrap();
    assert_eq!(
        prod.ca_pem.as_deref(),
        Some(&b"PROD CA\n"[..]),
        "relative to the kubeconfig"
    );
    assert!(matches!(&prod.auth, KubeAuth::TokenFile(p) if p == &dir.path().join("tokens/prod")));

    let cert = KubernetesConfig::from_kubeconfig(&file, Some("cert")).unwrap();
    assert!(matches!(&cert.auth, KubeAuth::ClientCertificate(pem) if pem == b"CERT\nKEY\n"));

    for (context, why) in [("exec", "exec"), ("lax", "TLS"), ("nowhere", "nowhere")] {
        let e = KubernetesConfig::from_kubeconfig(&file, Some(context)).unwrap_err();
        assert!(e.to_string().contains(why), "{context}: {e}");
    }
    assert!(KubernetesConfig::from_kubeconfig(Path::new("/nonexistent/kubeconfig"), None).is_err());
    assert!(
        provider(&KubernetesConfig {
            server: "dev.example".into(),
            auth: KubeAuth::Token("t".into()),
            ca_pem: None
        })
        .is_err(),
        "a server that is no URL is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_token_acts_in_its_namespace_only() {
    let (dir, s) = common::sandbox().await;
    let p = admin(&s);
    for ns in ["team-a", "team-b"] {
        create(&p, "kubernetes:namespace", json!({"name": ns})).await;
        create(
            &p,
            "kubernetes:serviceAccount",
            json!({"namespace": ns, "name": "deployer"}),
        )
        .await;
    }
    create(
        &p,
        "kubernetes:roleBinding",
        json!({"namespace": "team-a", "name": "deployer-edit", "role": "edit",
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}]}),
    )
    .await;
    let (_, outputs) = create(
        &p,
        "kubernetes:serviceAccountToken",
        json!({"namespace": "team-a", "serviceAccount": "deployer", "name": "deployer-token"}),
    )
    .await;
    let token = outputs["token"].as_str().unwrap().to_owned();
    let kubeconfig = outputs["kubeconfig"].as_str().unwrap().to_owned();
    assert!(kubeconfig.contains("namespace: \"team-a\""), "{kubeconfig}");
    assert!(
        !kubeconfig.contains("certificate-authority"),
        "plain HTTP: no CA"
    );

    let file = dir.path().join("team-a.kubeconfig");
    std::fs::write(&file, &kubeconfig).unwrap();
    let config = KubernetesConfig::from_kubeconfig(&file, None).unwrap();
    assert_eq!(config.server, s.kubernetes_url());
    assert!(matches!(&config.auth, KubeAuth::Token(t) if *t == token));

    // As the account: a Secret in its namespace, yes; in another, no.
    let secret = |name: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"password": "hunter2"}});
    let (status, body) = raw(
        &s,
        &token,
        "POST",
        "/api/v1/namespaces/team-a/secrets",
        Some(secret("app")),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = raw(
        &s,
        &token,
        "POST",
        "/api/v1/namespaces/team-b/secrets",
        Some(secret("app")),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("Forbidden")),
        "{body}"
    );

    // The same through the provider, configured from the kubeconfig alone.
    let team = provider(&config).unwrap();
    let (id, _) = create(
        &team,
        "kubernetes:serviceAccountToken",
        json!({"namespace": "team-a", "serviceAccount": "deployer", "name": "second-token"}),
    )
    .await;
    assert_eq!(id, "team-a/second-token");
    let refused: ProviderError = team
        .create(
            resource("kubernetes:serviceAccountToken", "urn:test"),
            &props(json!({"namespace": "team-b", "serviceAccount": "deployer", "name": "stolen"})),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, "Forbidden", "{refused}");
    assert!(
        refused
            .message
            .contains("system:serviceaccount:team-a:deployer"),
        "{refused}"
    );
    let refused = team
        .create(
            resource("kubernetes:namespace", "urn:test"),
            &props(json!({"name": "team-z"})),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, "Forbidden", "{refused}");
    assert_eq!(
        get(&s, "/api/v1/namespaces/team-b/secrets/stolen").await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mounted_service_account_is_read_as_a_pod_has_it() {
    let (dir, s) = common::sandbox().await;
    let p = admin(&s);
    create(&p, "kubernetes:namespace", json!({"name": "apps"})).await;
    create(
        &p,
        "kubernetes:serviceAccount",
        json!({"namespace": "apps", "name": "paddock"}),
    )
    .await;
    create(
        &p,
        "kubernetes:roleBinding",
        json!({"namespace": "apps", "name": "paddock-view", "role": "view",
            "subjects": [{"kind": "ServiceAccount", "name": "paddock", "namespace": "apps"}]}),
    )
    .await;
    let (_, outputs) = create(
        &p,
        "kubernetes:serviceAccountToken",
        json!({"namespace": "apps", "serviceAccount": "paddock", "name": "paddock-token"}),
    )
    .await;
    let mounted = dir.path().join("serviceaccount");
    std::fs::create_dir_all(&mounted).unwrap();
    std::fs::write(mounted.join("token"), outputs["token"].as_str().unwrap()).unwrap();

    let config = KubernetesConfig::from_service_account(&s.kubernetes_url(), &mounted).unwrap();
    assert!(matches!(&config.auth, KubeAuth::TokenFile(p) if p == &mounted.join("token")));
    assert!(config.ca_pem.is_none());
    let pod = provider(&config).unwrap();
    let (known, _) = read(
        &pod,
        "kubernetes:serviceAccount",
        "apps/paddock",
        &Props::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        known,
        props(json!({"namespace": "apps", "name": "paddock"}))
    );

    assert!(
        KubernetesConfig::from_service_account(&s.kubernetes_url(), &dir.path().join("none"))
            .is_err()
    );
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        let e = KubernetesConfig::in_cluster().unwrap_err();
        assert!(e.to_string().contains("KUBERNETES_SERVICE_HOST"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_keep_the_reason_kubernetes_gives() {
    let (_dir, s) = common::sandbox().await;
    let p = admin(&s);
    create(&p, "kubernetes:namespace", json!({"name": "team-e"})).await;
    let fail = |ty: &'static str, inputs: Json| {
        let p = &p;
        async move {
            p.create(resource(ty, "urn:test"), &props(inputs))
                .await
                .expect_err("refused")
        }
    };

    let e = fail(
        "kubernetes:resourceQuota",
        json!({"namespace": "team-e", "name": "q", "hard": {"pods": "ten"}}),
    )
    .await;
    assert_eq!(e.code, "Invalid", "{e}");
    assert!(e.message.contains("spec.hard[pods]"), "{e}");
    let e = fail(
        "kubernetes:serviceAccount",
        json!({"namespace": "nowhere", "name": "bot"}),
    )
    .await;
    assert_eq!(e.code, "NotFound", "{e}");
    let e = fail(
        "kubernetes:serviceAccountToken",
        json!({"namespace": "team-e", "serviceAccount": "ghost", "name": "t"}),
    )
    .await;
    assert_eq!(e.code, "NotFound", "{e}");
    assert!(e.message.contains("ghost"), "{e}");
    let e = fail(
        "kubernetes:roleBinding",
        json!({"namespace": "team-e", "name": "b", "roleKind": "Bogus", "role": "x"}),
    )
    .await;
    assert_eq!(e.code, "InvalidInput", "{e}");
    let e = fail("kubernetes:namespace", json!({"name": "Not_A_Label"})).await;
    assert_eq!(e.code, "Invalid", "{e}");

    let e = p
        .read("kubernetes:serviceAccount", "no-namespace", &Props::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidId", "{e}");
    let e = p
        .read(
            "kubernetes:serviceAccountToken",
            "team-e/plain",
            &Props::new(),
        )
        .await;
    assert!(matches!(e, Ok(None)), "a missing Secret is gone");

    let stranger = provider(&KubernetesConfig {
        server: s.kubernetes_url(),
        auth: KubeAuth::Token("not-a-token".into()),
        ca_pem: None,
    })
    .unwrap();
    let e = stranger
        .read("kubernetes:namespace", "team-e", &Props::new())
        .await
        .unwrap_err();
    assert_eq!(e.code, "Unauthorized", "{e}");
    assert!(e.hint.is_some(), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_https_the_ca_is_trusted_and_handed_on() {
    let (_dir, s) = common::sandbox_with(|c| {
        c.https_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await;
    let config = KubernetesConfig::from_kubeconfig(&s.kubeconfig_file(), None).unwrap();
    assert!(config.server.starts_with("https://"), "{}", config.server);
    let ca = std::fs::read(s.ca_file.as_ref().unwrap()).unwrap();
    assert_eq!(config.ca_pem.as_deref(), Some(ca.as_slice()));
    let p = provider(&config).unwrap();
    create(&p, "kubernetes:namespace", json!({"name": "secure"})).await;
    create(
        &p,
        "kubernetes:serviceAccount",
        json!({"namespace": "secure", "name": "deployer"}),
    )
    .await;
    create(
        &p,
        "kubernetes:roleBinding",
        json!({"namespace": "secure", "name": "deployer-view", "role": "view",
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "secure"}]}),
    )
    .await;
    let (_, outputs) = create(
        &p,
        "kubernetes:serviceAccountToken",
        json!({"namespace": "secure", "serviceAccount": "deployer", "name": "deployer-token"}),
    )
    .await;
    assert_eq!(
        outputs["caCertificate"].as_str().unwrap().as_bytes(),
        ca.as_slice()
    );
    let kubeconfig = outputs["kubeconfig"].as_str().unwrap();
    assert!(
        kubeconfig.contains("certificate-authority-data"),
        "{kubeconfig}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(&file, kubeconfig).unwrap();
    let team = KubernetesConfig::from_kubeconfig(&file, None).unwrap();
    assert_eq!(team.ca_pem.as_deref(), Some(ca.as_slice()));
    let (known, _) = read(
        &provider(&team).unwrap(),
        "kubernetes:serviceAccount",
        "secure/deployer",
        &Props::new(),
    )
    .await
    .unwrap();
    assert_eq!(known["name"], Value::from("deployer"));

    // A client certificate and key (here the sandbox CA's own pair) make an identity.
    let pem = [
        ca.clone(),
        std::fs::read(s.data_dir.join("ca-key.pem")).unwrap(),
    ]
    .concat();
    let with_cert = KubernetesConfig {
        auth: KubeAuth::ClientCertificate(pem),
        ..config
    };
    let p = provider(&with_cert).unwrap();
    let e = p
        .read("kubernetes:namespace", "secure", &Props::new())
        .await
        .unwrap_err();
    assert_eq!(
        e.code, "Unauthorized",
        "the sandbox takes bearer tokens only: {e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_real_api_server_defaults_is_not_read_back_as_inputs() {
    let (_dir, s) = common::sandbox().await;
    let p = admin(&s);
    let admin_token = s.kubernetes_token.clone();
    let post = |path: &'static str, body: Json| {
        let (s, token) = (&s, &admin_token);
        async move {
            let (status, created) = raw(s, token, "POST", path, Some(body)).await;
            assert_eq!(status, 201, "{created}");
        }
    };
    // Objects as a real API server stores them once it has filled in its defaults.
    post(
        "/api/v1/namespaces",
        json!({"metadata": {"name": "legacy"}}),
    )
    .await;
    post(
        "/apis/networking.k8s.io/v1/namespaces/legacy/networkpolicies",
        json!({"metadata": {"name": "web"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80, "protocol": "TCP"}]}]}}),
    )
    .await;
    post(
        "/api/v1/namespaces/legacy/limitranges",
        json!({"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container",
            "max": {"cpu": "2"}, "default": {"cpu": "2", "memory": "256Mi"}, "defaultRequest": {"cpu": "2", "memory": "128Mi"}}]}}),
    )
    .await;
    post(
        "/api/v1/namespaces/legacy/resourcequotas",
        json!({"metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "1", "requests.memory": "1Gi"}}}),
    )
    .await;
    post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/legacy/rolebindings",
        json!({"metadata": {"name": "auditors"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "auditors"}]}),
    )
    .await;

    let imported = |ty: &'static str, id: &'static str| {
        let p = &p;
        async move { read(p, ty, id, &Props::new()).await.expect("exists").0 }
    };
    assert_eq!(
        imported("kubernetes:namespace", "legacy").await,
        props(json!({"name": "legacy"}))
    );
    assert_eq!(
        imported("kubernetes:networkPolicy", "legacy/web").await,
        props(json!({"namespace": "legacy", "name": "web",
            "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}]})),
        "the default policy types and protocol are left out; an empty selector inside a rule is kept"
    );
    assert_eq!(
        imported("kubernetes:limitRange", "legacy/defaults").await,
        props(
            json!({"namespace": "legacy", "name": "defaults", "limits": [{"type": "Container",
            "max": {"cpu": "2"}, "default": {"memory": "256Mi"}, "defaultRequest": {"memory": "128Mi"}}]})
        ),
        "a default taken from max, and a default request taken from the default, are left out"
    );
    assert_eq!(
        imported("kubernetes:roleBinding", "legacy/auditors").await,
        props(
            json!({"namespace": "legacy", "name": "auditors", "role": "view",
            "subjects": [{"kind": "Group", "name": "auditors"}]})
        ),
    );

    // What the user wrote stays as written, defaults and other forms of a quantity too.
    let written = props(
        json!({"namespace": "legacy", "name": "web", "podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80, "protocol": "TCP"}]}]}),
    );
    let (known, _) = read(&p, "kubernetes:networkPolicy", "legacy/web", &written)
        .await
        .unwrap();
    assert_eq!(known, written);
    let written = props(
        json!({"namespace": "legacy", "name": "compute", "hard": {"requests.cpu": "1000m", "requests.memory": "1024Mi"}}),
    );
    let (known, _) = read(&p, "kubernetes:resourceQuota", "legacy/compute", &written)
        .await
        .unwrap();
    assert_eq!(known, written);
    let written = props(
        json!({"namespace": "legacy", "name": "auditors", "roleKind": "ClusterRole", "role": "view",
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "auditors"}]}),
    );
    let (known, _) = read(&p, "kubernetes:roleBinding", "legacy/auditors", &written)
        .await
        .unwrap();
    assert_eq!(known, written);
}
