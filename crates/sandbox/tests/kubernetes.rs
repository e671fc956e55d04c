//! The sandbox cluster's Kubernetes API: every operation checked against the official
//! object schemas, and the behaviour real clusters have that Paddock's provider relies
//! on — asynchronous namespace deletion, RBAC for service-account tokens, resourceVersion
//! conflicts, server-side apply, paging, quotas, validation, persistence.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::k8s::Kube;
use serde_json::{Value, json};

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": "payments"}}})
}

fn service_account(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
}

fn binding(name: &str, role_kind: &str, role: &str, account_ns: &str, account: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_ns}],
    })
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}})
}

fn quota(pods: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": pods, "requests.cpu": "4", "count/serviceaccounts": "3"}}})
}

/// A bound token for a service account, from `TokenRequest`.
async fn token_for(kube: &Kube, ns: &str, account: &str) -> String {
    let (status, body) = kube
        .create(
            &format!("/api/v1/namespaces/{ns}/serviceaccounts/{account}/token"),
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["status"]["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_served_operation_answers_as_the_official_schemas_say() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    let ns = "/api/v1/namespaces/checkout-dev";
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/checkout-dev";
    let net = "/apis/networking.k8s.io/v1/namespaces/checkout-dev";

    let (status, created) = kube
        .create("/api/v1/namespaces", namespace("checkout-dev"))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"]["phase"], "Active");
    assert_eq!(
        created["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "checkout-dev"
    );

    let objects: Vec<(String, Value)> = vec![
        (format!("{ns}/serviceaccounts"), service_account("deployer")),
        (
            format!("{ns}/secrets"),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app"},
                "stringData": {"password": "hunter2"}}),
        ),
        (format!("{ns}/resourcequotas"), quota("20")),
        (
            format!("{ns}/limitranges"),
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
                "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}}),
        ),
        (
            format!("{rbac}/roles"),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        ),
        (
            format!("{rbac}/rolebindings"),
            binding(
                "deployer-edit",
                "ClusterRole",
                "edit",
                "checkout-dev",
                "deployer",
            ),
        ),
        (
            format!("{net}/networkpolicies"),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny-other-namespaces"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {}}]}]}}),
        ),
        (
            format!("{ns}/configmaps"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                "data": {"LOG_LEVEL": "info"}}),
        ),
        (
            "/apis/apps/v1/namespaces/checkout-dev/deployments".to_owned(),
            deployment("web"),
        ),
        (
            format!("{ns}/events"),
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"},
                "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                    "namespace": "checkout-dev", "name": "web"},
                "reason": "ScalingReplicaSet", "message": "Scaled up replica set web-1 to 2",
                "type": "Normal", "source": {"component": "deployment-controller"}, "count": 1}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles".to_owned(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "paddock-auditor"},
                "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]}),
        ),
    ];
    for (collection, object) in &objects {
        let name = object["metadata"]["name"].as_str().unwrap();
        let path = format!("{collection}/{name}");
        let (status, created) = kube.create(collection, object.clone()).await;
        assert_eq!(status, 201, "{created}");
        assert!(created["metadata"]["uid"].is_string());
        let (status, got) = kube.get(&path).await;
        assert_eq!(status, 200, "{got}");
        let (status, list) = kube.get(collection).await;
        assert_eq!(status, 200, "{list}");
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["metadata"]["name"] == name)
        );

        let mut changed = got.clone();
        changed["metadata"]["labels"] = json!({"changed-by": "update"});
        let (status, updated) = kube.update(&path, changed).await;
        assert_eq!(status, 200, "{updated}");
        assert_ne!(
            updated["metadata"]["resourceVersion"],
            got["metadata"]["resourceVersion"]
        );

        let (status, patched) = kube
            .merge_patch(
                &path,
                json!({"metadata": {"annotations": {"paddock.dev/stack": "checkout"}}}),
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["metadata"]["labels"]["changed-by"], "update");

        let mut config = object.clone();
        config["metadata"]["labels"] = json!({"applied": "yes"});
        let (status, applied) = kube.apply(&path, "paddock", true, config).await;
        assert_eq!(status, 200, "{applied}");
        assert_eq!(applied["metadata"]["labels"]["applied"], "yes");
    }
    // The token, the namespace's own operations, and deletes last.
    token_for(&kube, "checkout-dev", "deployer").await;
    let (status, got) = kube.get("/api/v1/namespaces/checkout-dev").await;
    assert_eq!(status, 200);
    let (status, _) = kube.get("/api/v1/namespaces").await;
    assert_eq!(status, 200);
    let mut changed = got.clone();
    changed["metadata"]["labels"]["stage"] = json!("dev");
    assert_eq!(
        kube.update("/api/v1/namespaces/checkout-dev", changed)
            .await
            .0,
        200
    );
    let patch = json!({"metadata": {"annotations": {"owner": "payments"}}});
    assert_eq!(
        kube.merge_patch("/api/v1/namespaces/checkout-dev", patch)
            .await
            .0,
        200
    );
    let apply = namespace("checkout-dev");
    assert_eq!(
        kube.apply("/api/v1/namespaces/checkout-dev", "paddock", true, apply)
            .await
            .0,
        200
    );
    for (collection, object) in &objects {
        let name = object["metadata"]["name"].as_str().unwrap();
        let (status, gone) = kube.delete(&format!("{collection}/{name}")).await;
        assert_eq!(status, 200, "{gone}");
        // A quota's delete answers with the deleted quota, as its registry does
        // (`ReturnDeletedObject`); the others with a `Status`.
        if object["kind"] == "ResourceQuota" {
            assert_eq!(gone["metadata"]["name"], name);
        } else {
            assert_eq!(gone["status"], "Success");
        }
    }
    let (status, terminating) = kube.delete("/api/v1/namespaces/checkout-dev").await;
    assert_eq!(status, 200);
    assert_eq!(terminating["status"]["phase"], "Terminating");

    // Coverage: every verb discovery advertises, on every resource it lists.
    let mut advertised = BTreeSet::new();
    for group in [
        "/api/v1",
        "/apis/rbac.authorization.k8s.io/v1",
        "/apis/networking.k8s.io/v1",
        "/apis/apps/v1",
    ] {
        let (status, list) = kube
            .call("get", reqwest::Method::GET, group, "", None)
            .await;
        assert_eq!(status, 200);
        for r in list["resources"].as_array().unwrap() {
            for verb in r["verbs"].as_array().unwrap() {
                advertised.insert(format!(
                    "{} {}",
                    verb.as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ));
            }
        }
    }
    let seen = kube.seen.borrow();
    let missing: Vec<&String> = advertised.iter().filter(|op| !seen.contains(*op)).collect();
    assert!(
        missing.is_empty(),
        "advertised but never exercised: {missing:?}"
    );
    assert_eq!(
        advertised.len(),
        12 * 6 + 1,
        "twelve kinds, six verbs, and the token: {advertised:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_and_version_are_served_like_a_real_api_server() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    let (_, version) = kube
        .call("get", reqwest::Method::GET, "/version", "", None)
        .await;
    assert_eq!(version["major"], "1");
    let (_, api) = kube
        .call("get", reqwest::Method::GET, "/api", "", None)
        .await;
    assert_eq!(api["versions"], json!(["v1"]));
    let (_, groups) = kube
        .call("get", reqwest::Method::GET, "/apis", "", None)
        .await;
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rbac.authorization.k8s.io",
            "networking.k8s.io",
            "apps",
            "authentication.k8s.io",
            "authorization.k8s.io"
        ]
    );
    let (status, missing) = kube.get("/apis/batch/v1/namespaces/default/jobs").await;
    assert_eq!(
        (status, missing["reason"].as_str()),
        (404, Some("NotFound"))
    );

    // The cluster starts as clusters do: system namespaces, each with its `default` account.
    let (_, namespaces) = kube.get("/api/v1/namespaces").await;
    let names: BTreeSet<&str> = namespaces["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(names.is_superset(&BTreeSet::from(["default", "kube-system", "kube-public"])));
    let (status, _) = kube
        .get("/api/v1/namespaces/default/serviceaccounts/default")
        .await;
    assert_eq!(status, 200);
    let (status, edit) = kube
        .get("/apis/rbac.authorization.k8s.io/v1/clusterroles/edit")
        .await;
    assert_eq!(status, 200, "{edit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_namespace_terminates_before_it_and_its_contents_are_gone() {
    let (_dir, s) = common::start_with(|c| {
        c.kubernetes.namespace_termination = Duration::from_millis(600);
    })
    .await;
    let kube = Kube::admin(&s);
    kube.create("/api/v1/namespaces", namespace("old")).await;
    kube.create(
        "/api/v1/namespaces/old/serviceaccounts",
        service_account("bot"),
    )
    .await;

    let (status, ns) = kube.delete("/api/v1/namespaces/old").await;
    assert_eq!(status, 200);
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let (status, still) = kube.get("/api/v1/namespaces/old").await;
    assert_eq!(
        (status, &still["status"]["phase"]),
        (200, &json!("Terminating"))
    );
    let (status, refused) = kube
        .create(
            "/api/v1/namespaces/old/serviceaccounts",
            service_account("late"),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("is being terminated"),
        "{refused}"
    );
    let (status, again) = kube.create("/api/v1/namespaces", namespace("old")).await;
    assert_eq!(
        (status, again["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, gone) = kube.get("/api/v1/namespaces/old").await;
    assert_eq!(
        (status, gone["reason"].as_str()),
        (404, Some("NotFound")),
        "{gone}"
    );
    assert_eq!(gone["message"], "namespaces \"old\" not found");
    let (status, _) = kube.get("/api/v1/namespaces/old/serviceaccounts/bot").await;
    assert_eq!(status, 404);
    let (status, _) = kube.create("/api/v1/namespaces", namespace("old")).await;
    assert_eq!(status, 201, "the name is free again");

    let (status, protected) = kube.delete("/api/v1/namespaces/default").await;
    assert_eq!(status, 403, "{protected}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_acts_only_where_its_role_bindings_allow() {
    let (_dir, s) = common::start().await;
    let admin = Kube::admin(&s);
    for ns in ["team-a", "team-b"] {
        admin.create("/api/v1/namespaces", namespace(ns)).await;
    }
    admin
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts",
            service_account("deployer"),
        )
        .await;
    let bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings";
    let (status, _) = admin
        .create(
            bindings,
            binding("deployer-edit", "ClusterRole", "edit", "team-a", "deployer"),
        )
        .await;
    assert_eq!(status, 201);
    let deployer = Kube::with_token(&s, &token_for(&admin, "team-a", "deployer").await);

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"url": "postgres://"}});
    let (status, body) = deployer
        .create("/api/v1/namespaces/team-a/secrets", secret.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = deployer.get("/api/v1/namespaces/team-a").await;
    assert_eq!(status, 200, "a namespace's own bindings let it be read");

    let (status, denied) = deployer
        .create("/api/v1/namespaces/team-b/secrets", secret)
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        denied["message"],
        "secrets is forbidden: User \"system:serviceaccount:team-a:deployer\" cannot create resource \"secrets\" in API group \"\" in the namespace \"team-b\""
    );
    let (status, denied) = deployer.get("/api/v1/namespaces").await;
    assert_eq!(status, 403);
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .ends_with("at the cluster scope"),
        "{denied}"
    );
    let (status, _) = deployer
        .create("/api/v1/namespaces/team-a/resourcequotas", quota("1000"))
        .await;
    assert_eq!(
        status, 403,
        "edit does not manage quotas: the guardrail stays"
    );
    let (status, _) = deployer
        .create(
            bindings,
            binding("self-admin", "ClusterRole", "admin", "team-a", "deployer"),
        )
        .await;
    assert_eq!(status, 403, "edit cannot write role bindings");

    // As namespace admin it may bind what it holds, and nothing more.
    admin
        .create(
            bindings,
            binding(
                "deployer-admin",
                "ClusterRole",
                "admin",
                "team-a",
                "deployer",
            ),
        )
        .await;
    let (status, body) = deployer
        .create(
            bindings,
            binding("peer-view", "ClusterRole", "view", "team-a", "default"),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles";
    let escalation = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "quota-writer"},
        "rules": [{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["update"]}]});
    let (status, denied) = deployer.create(roles, escalation.clone()).await;
    assert_eq!(status, 403, "{denied}");
    let message = denied["message"].as_str().unwrap();
    assert!(
        message.contains("is attempting to grant RBAC permissions not currently held"),
        "{message}"
    );
    assert!(
        message.contains("{APIGroups:[\"\"], Resources:[\"resourcequotas\"], Verbs:[\"update\"]}"),
        "{message}"
    );

    // `escalate` on roles, and `bind` on the role a binding names, pass the check, as
    // they do in Kubernetes.
    admin
        .create(
            roles,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "role-escalator"},
                "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                    "verbs": ["escalate"]},
                    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                    "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]}),
        )
        .await;
    admin
        .create(
            bindings,
            binding(
                "deployer-escalates",
                "Role",
                "role-escalator",
                "team-a",
                "deployer",
            ),
        )
        .await;
    let (status, body) = deployer.create(roles, escalation).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = deployer
        .create(
            bindings,
            binding("root", "ClusterRole", "cluster-admin", "team-a", "default"),
        )
        .await;
    assert_eq!(status, 201, "bind on cluster-admin by name: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_refused_when_forged_for_another_audience_or_outliving_their_account() {
    let (_dir, s) = common::start().await;
    let admin = Kube::admin(&s);
    admin
        .create("/api/v1/namespaces", namespace("team-a"))
        .await;
    admin
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts",
            service_account("bot"),
        )
        .await;
    admin
        .create(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
            binding("bot-view", "ClusterRole", "view", "team-a", "bot"),
        )
        .await;
    let token = token_for(&admin, "team-a", "bot").await;
    let bot = Kube::with_token(&s, &token);
    assert_eq!(
        bot.get("/api/v1/namespaces/team-a/serviceaccounts").await.0,
        200
    );

    let (status, unauthorized) = Kube::with_token(&s, "not-a-token")
        .get("/api/v1/namespaces/team-a/serviceaccounts")
        .await;
    assert_eq!(
        (status, unauthorized["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        Kube::with_token(&s, &tampered)
            .get("/api/v1/namespaces/team-a/serviceaccounts")
            .await
            .0,
        401
    );

    // A token for another audience (a vault, say) does not open the API server.
    let (status, other) = admin
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts/bot/token",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": ["vault"]}}),
        )
        .await;
    assert_eq!(status, 201);
    let vault = Kube::with_token(&s, other["status"]["token"].as_str().unwrap());
    assert_eq!(
        vault
            .get("/api/v1/namespaces/team-a/serviceaccounts")
            .await
            .0,
        401
    );
    let (status, short) = admin
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts/bot/token",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 60}}),
        )
        .await;
    assert_eq!(
        (status, short["reason"].as_str()),
        (422, Some("Invalid")),
        "{short}"
    );

    // A legacy token lives as long as its Secret; both die with the account.
    let (status, secret) = admin
        .create(
            "/api/v1/namespaces/team-a/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": "bot-token", "annotations": {"kubernetes.io/service-account.name": "bot"}}}),
        )
        .await;
    assert_eq!(status, 201);
    use base64::Engine as _;
    let legacy = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["token"].as_str().unwrap())
        .unwrap();
    let legacy = Kube::with_token(&s, std::str::from_utf8(&legacy).unwrap());
    assert_eq!(
        legacy
            .get("/api/v1/namespaces/team-a/serviceaccounts")
            .await
            .0,
        200
    );

    admin
        .delete("/api/v1/namespaces/team-a/serviceaccounts/bot")
        .await;
    admin
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts",
            service_account("bot"),
        )
        .await;
    assert_eq!(
        bot.get("/api/v1/namespaces/team-a/serviceaccounts").await.0,
        401,
        "a new account of the same name is not the old one"
    );
    assert_eq!(
        legacy
            .get("/api/v1/namespaces/team-a/serviceaccounts")
            .await
            .0,
        401
    );
    assert_eq!(
        admin
            .get("/api/v1/namespaces/team-a/secrets/bot-token")
            .await
            .0,
        404,
        "the token controller removed it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_with_a_stale_resource_version_conflict_and_no_op_writes_keep_it() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    kube.create("/api/v1/namespaces", namespace("team-a")).await;
    let path = "/api/v1/namespaces/team-a/resourcequotas/compute";
    let (_, first) = kube
        .create("/api/v1/namespaces/team-a/resourcequotas", quota("10"))
        .await;
    let mut edit = first.clone();
    edit["spec"]["hard"]["pods"] = json!("20");
    let (status, second) = kube.update(path, edit.clone()).await;
    assert_eq!(status, 200);
    let (status, stale) = kube.update(path, edit).await;
    assert_eq!((status, stale["reason"].as_str()), (409, Some("Conflict")));
    assert_eq!(
        stale["message"],
        "Operation cannot be fulfilled on resourcequotas \"compute\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let (status, same) = kube.update(path, second.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        second["metadata"]["resourceVersion"]
    );
    assert_eq!(
        same["status"]["hard"]["pods"], "20",
        "quota status follows spec"
    );
    assert_eq!(
        same["status"]["used"]["count/serviceaccounts"], "1",
        "the default account"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_tracks_field_owners() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    kube.create("/api/v1/namespaces", namespace("team-a")).await;
    let path = "/api/v1/namespaces/team-a/resourcequotas/compute";

    let (status, created) = kube.apply(path, "paddock", false, quota("10")).await;
    assert_eq!(status, 201, "apply creates: {created}");
    let managers: Vec<&Value> = created["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(managers.len(), 1);
    assert_eq!(
        (
            managers[0]["manager"].as_str(),
            managers[0]["operation"].as_str()
        ),
        (Some("paddock"), Some("Apply"))
    );

    // A field the applier drops is removed.
    let mut smaller = quota("10");
    smaller["spec"]["hard"]
        .as_object_mut()
        .unwrap()
        .remove("requests.cpu");
    let (_, applied) = kube.apply(path, "paddock", false, smaller).await;
    assert!(
        applied["spec"]["hard"].get("requests.cpu").is_none(),
        "{applied}"
    );

    // Another manager changing paddock's field conflicts, unless it forces.
    let (status, conflict) = kube.apply(path, "kubectl", false, quota("99")).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(
        conflict["message"],
        "Apply failed with 1 conflict: conflict with \"paddock\": .spec.hard.pods"
    );
    assert_eq!(conflict["details"]["causes"][0]["field"], ".spec.hard.pods");
    let (status, forced) = kube.apply(path, "kubectl", true, quota("99")).await;
    assert_eq!(status, 200);
    assert_eq!(forced["spec"]["hard"]["pods"], "99");

    let (status, missing) = kube
        .call(
            "patch",
            reqwest::Method::PATCH,
            path,
            "application/apply-patch+yaml",
            Some(quota("1")),
        )
        .await;
    assert_eq!(status, 422, "{missing}");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value")
    );
    let (status, unsupported) = kube
        .call(
            "patch",
            reqwest::Method::PATCH,
            path,
            "application/json-patch+json",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, unsupported["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_page_with_continue_tokens_and_filter_by_label() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    kube.create("/api/v1/namespaces", namespace("team-a")).await;
    for i in 0..5 {
        let mut sa = service_account(&format!("bot-{i}"));
        sa["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        kube.create("/api/v1/namespaces/team-a/serviceaccounts", sa)
            .await;
    }
    let collection = "/api/v1/namespaces/team-a/serviceaccounts";
    let mut names = Vec::new();
    let mut next = String::new();
    let mut pages = 0;
    loop {
        let (status, page) = kube
            .get(&format!("{collection}?limit=2&continue={next}"))
            .await;
        assert_eq!(status, 200);
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_owned());
        }
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                assert!(page["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
                next = token.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3, "six accounts (with `default`) in pages of two");
    assert_eq!(
        names,
        ["bot-0", "bot-1", "bot-2", "bot-3", "bot-4", "default"]
    );
    let (_, odd) = kube
        .get(&format!("{collection}?labelSelector=parity%3Dodd"))
        .await;
    assert_eq!(odd["items"].as_array().unwrap().len(), 2);
    let (status, bad) = kube.get(&format!("{collection}?continue=%%%")).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_objects_are_refused_naming_the_field() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    let (status, bad) = kube.create("/api/v1/namespaces", namespace("Team_A")).await;
    assert_eq!((status, bad["reason"].as_str()), (422, Some("Invalid")));
    assert_eq!(bad["details"]["causes"][0]["field"], "metadata.name");
    assert!(bad["message"].as_str().unwrap().starts_with("Namespace \"Team_A\" is invalid: metadata.name: Invalid value: \"Team_A\": a lowercase RFC 1123 label"), "{bad}");

    kube.create("/api/v1/namespaces", namespace("team-a")).await;
    let (status, bad) = kube
        .create("/api/v1/namespaces/team-a/resourcequotas", quota("lots"))
        .await;
    assert_eq!(status, 422);
    assert_eq!(bad["details"]["causes"][0]["field"], "spec.hard[pods]");
    let mut wrong = binding("b", "Pod", "edit", "team-a", "x");
    wrong["subjects"][0]["kind"] = json!("Robot");
    let (status, bad) = kube
        .create(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
            wrong,
        )
        .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = bad["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["roleRef.kind", "subjects[0].kind"]);

    let (status, _) = kube
        .create(
            "/api/v1/namespaces/nowhere/serviceaccounts",
            service_account("x"),
        )
        .await;
    assert_eq!(status, 404);
    let mut elsewhere = service_account("x");
    elsewhere["metadata"]["namespace"] = json!("team-b");
    let (status, bad) = kube
        .create("/api/v1/namespaces/team-a/serviceaccounts", elsewhere)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        bad["message"],
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    let (status, bad) = kube
        .call(
            "create",
            reqwest::Method::POST,
            "/api/v1/namespaces",
            "application/json",
            None,
        )
        .await;
    assert_eq!((status, bad["reason"].as_str()), (400, Some("BadRequest")));
    kube.create(
        "/api/v1/namespaces/team-a/serviceaccounts",
        service_account("x"),
    )
    .await;
    let (status, dup) = kube
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts",
            service_account("x"),
        )
        .await;
    assert_eq!(
        (status, dup["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    assert_eq!(dup["message"], "serviceaccounts \"x\" already exists");

    let mut unselected = deployment("web");
    unselected["spec"]["template"]["metadata"]["labels"] = json!({"app": "api"});
    unselected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    let (status, bad) = kube
        .create("/apis/apps/v1/namespaces/team-a/deployments", unselected)
        .await;
    assert_eq!(status, 422, "{bad}");
    let fields: Vec<&str> = bad["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.template.metadata.labels",
            "spec.template.spec.containers[0].image"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn object_count_quotas_are_enforced() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    kube.create("/api/v1/namespaces", namespace("team-a")).await;
    kube.create("/api/v1/namespaces/team-a/resourcequotas", quota("10"))
        .await;
    let accounts = "/api/v1/namespaces/team-a/serviceaccounts";
    assert_eq!(kube.create(accounts, service_account("one")).await.0, 201);
    assert_eq!(kube.create(accounts, service_account("two")).await.0, 201);
    let (status, over) = kube.create(accounts, service_account("three")).await;
    assert_eq!(status, 403, "{over}");
    assert_eq!(
        over["message"],
        "serviceaccounts \"three\" is forbidden: exceeded quota: compute, requested: count/serviceaccounts=1, used: count/serviceaccounts=3, limited: count/serviceaccounts=3"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_survives_a_restart_and_writes_its_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let s = paddock_sandbox::Sandbox::start(paddock_sandbox::SandboxConfig::new(dir.path()))
        .await
        .unwrap();
    let kubeconfig = std::fs::read_to_string(s.kubeconfig_file()).unwrap();
    assert!(
        kubeconfig.contains(&format!("server: {}", s.kubernetes_url())),
        "{kubeconfig}"
    );
    assert!(kubeconfig.contains(&format!("token: {}", s.kubernetes_token)));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.kubeconfig_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds the admin token");
    let kube = Kube::admin(&s);
    let (_, created) = kube.create("/api/v1/namespaces", namespace("team-a")).await;
    let token = s.kubernetes_token.clone();
    s.stop().await;

    let s = paddock_sandbox::Sandbox::start(paddock_sandbox::SandboxConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(s.kubernetes_token, token);
    let kube = Kube::admin(&s);
    let (status, again) = kube.get("/api/v1/namespaces/team-a").await;
    assert_eq!(status, 200);
    assert_eq!(again["metadata"]["uid"], created["metadata"]["uid"]);
    let (_, sa) = kube
        .create(
            "/api/v1/namespaces/team-a/serviceaccounts",
            service_account("after"),
        )
        .await;
    let version = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        version(&sa) > version(&created),
        "resourceVersions keep increasing"
    );
}

#[test]
fn the_contract_check_refuses_what_the_schemas_do_not_declare() {
    let schemas = common::k8s::Schemas::load();
    let good = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}, "status": {"phase": "Active"}});
    schemas
        .check("io.k8s.api.core.v1.Namespace", &good)
        .unwrap();
    let invented =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "owner": "me"}});
    assert!(
        schemas
            .check("io.k8s.api.core.v1.Namespace", &invented)
            .is_err()
    );
    let mistyped =
        json!({"apiVersion": "v1", "kind": "Namespace", "spec": {"finalizers": "kubernetes"}});
    assert!(
        schemas
            .check("io.k8s.api.core.v1.Namespace", &mistyped)
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inspection_lists_cluster_objects_but_not_secret_values() {
    let (_dir, s) = common::start().await;
    let kube = Kube::admin(&s);
    kube.create("/api/v1/namespaces", namespace("team-a")).await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "stringData": {"password": "hunter2"}});
    let (status, _) = kube
        .create("/api/v1/namespaces/team-a/secrets", secret)
        .await;
    assert_eq!(status, 201);
    for page in ["/inspect", "/"] {
        let text = reqwest::get(format!("{}{page}", s.control_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("team-a"), "{page} lists the namespace");
        assert!(!text.contains("aHVudGVyMg"), "{page} shows no secret value");
        assert!(!text.contains("hunter2"), "{page} shows no secret value");
    }
}
