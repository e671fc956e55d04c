//! The official Kubernetes client for Python (`kubernetes` from PyPI), unchanged, doing
//! against `paddock sandbox` what Paddock's Kubernetes provider does: a namespace, a
//! service account and its token, a role and its binding, a quota, a limit range and a
//! network policy, each written by server-side apply (as `paddock`, forced), read, changed
//! and deleted — the namespace last, waited for until gone.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::rig::{Clients, SandboxPorts, SandboxProcess, succeeded};

const SCRIPT: &str = r#"
import json, os, time
from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=os.environ["KUBECONFIG"])
core, rbac, net = client.CoreV1Api(), client.RbacAuthorizationV1Api(), client.NetworkingV1Api()
NS = "team-py"
APPLY = dict(field_manager="paddock", force=True, _content_type="application/apply-patch+yaml")
report = {}

def status_of(call):
    try:
        call()
        return 200
    except ApiException as e:
        return e.status

ns = core.patch_namespace(NS, {"apiVersion": "v1", "kind": "Namespace",
    "metadata": {"name": NS, "labels": {"paddock.dev/team": "py"}}}, **APPLY)
report["namespace_phase"] = ns.status.phase

objects = [
    ("serviceaccount", core.patch_namespaced_service_account, core.read_namespaced_service_account,
     core.delete_namespaced_service_account,
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer", "namespace": NS}}),
    ("role", rbac.patch_namespaced_role, rbac.read_namespaced_role, rbac.delete_namespaced_role,
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "deployer", "namespace": NS},
      "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "patch"]}]}),
    ("rolebinding", rbac.patch_namespaced_role_binding, rbac.read_namespaced_role_binding,
     rbac.delete_namespaced_role_binding,
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "deployer", "namespace": NS},
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
      "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": NS}]}),
    ("quota", core.patch_namespaced_resource_quota, core.read_namespaced_resource_quota,
     core.delete_namespaced_resource_quota,
     {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute", "namespace": NS},
      "spec": {"hard": {"requests.cpu": "4", "count/configmaps": "20"}}}),
    ("limitrange", core.patch_namespaced_limit_range, core.read_namespaced_limit_range,
     core.delete_namespaced_limit_range,
     {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults", "namespace": NS},
      "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}}]}}),
    ("networkpolicy", net.patch_namespaced_network_policy, net.read_namespaced_network_policy,
     net.delete_namespaced_network_policy,
     {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "same-namespace", "namespace": NS},
      "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}], "policyTypes": ["Ingress"]}}),
]

for key, apply, read, delete, body in objects:
    name = body["metadata"]["name"]
    created = apply(name, NS, body, **APPLY)
    again = apply(name, NS, body, **APPLY)
    read_back = read(name, NS)
    managers = [(m.manager, m.operation) for m in read_back.metadata.managed_fields]
    report[key] = {"uid": created.metadata.uid, "same_uid": again.metadata.uid == created.metadata.uid,
                   "unchanged_version": again.metadata.resource_version == created.metadata.resource_version,
                   "managers": managers}

# Changes, as the provider makes them: apply again with the new inputs.
quota = objects[3][4]
quota["spec"]["hard"]["requests.cpu"] = "8"
core.patch_namespaced_resource_quota("compute", NS, quota, **APPLY)
report["quota_cpu"] = core.read_namespaced_resource_quota("compute", NS).spec.hard["requests.cpu"]
# A strategic merge patch from the same client (its default for a dict body).
core.patch_namespaced_service_account("deployer", NS, {"metadata": {"annotations": {"owner": "py"}}})
report["annotation"] = core.read_namespaced_service_account("deployer", NS).metadata.annotations["owner"]

token = core.create_namespaced_service_account_token("deployer", NS,
    client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)))
report["token_issued"] = bool(token.status.token)

listed = core.list_namespaced_resource_quota(NS, label_selector="")
report["quotas_listed"] = [q.metadata.name for q in listed.items]

# Deletes with the uid precondition the provider sends; a second delete is a 404.
for key, apply, read, delete, body in reversed(objects):
    name = body["metadata"]["name"]
    delete(name, NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=report[key]["uid"])))
    report[key]["after_delete"] = status_of(lambda: read(name, NS))
    report[key]["second_delete"] = status_of(lambda: delete(name, NS))

core.delete_namespace(NS)
report["namespace_after_delete"] = core.read_namespace(NS).status.phase
deadline = time.time() + 60
while time.time() < deadline and status_of(lambda: core.read_namespace(NS)) != 404:
    time.sleep(0.5)
report["namespace_gone"] = status_of(lambda: core.read_namespace(NS)) == 404
print(json.dumps(report))
"#;

#[test]
fn the_python_kubernetes_client_does_what_the_provider_does() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let env = BTreeMap::from([(
        "KUBECONFIG".to_owned(),
        sandbox.get("PADDOCK_SANDBOX_KUBECONFIG").to_owned(),
    )]);
    let out = clients.python(SCRIPT, &env);
    let stdout = succeeded("the Kubernetes client for Python", &out);
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(report["namespace_phase"], "Active");
    for kind in [
        "serviceaccount",
        "role",
        "rolebinding",
        "quota",
        "limitrange",
        "networkpolicy",
    ] {
        let r = &report[kind];
        assert_eq!(
            r["same_uid"], true,
            "{kind}: applying twice keeps the object: {r}"
        );
        assert_eq!(
            r["unchanged_version"], true,
            "{kind}: an unchanged apply writes nothing: {r}"
        );
        assert_eq!(
            r["managers"],
            serde_json::json!([["paddock", "Apply"]]),
            "{kind}: {r}"
        );
        assert_eq!(
            (r["after_delete"].as_u64(), r["second_delete"].as_u64()),
            (Some(404), Some(404)),
            "{kind}: {r}"
        );
    }
    assert_eq!(report["quota_cpu"], "8");
    assert_eq!(report["annotation"], "py");
    assert_eq!(report["token_issued"], true);
    assert_eq!(report["quotas_listed"], serde_json::json!(["compute"]));
    assert_eq!(report["namespace_after_delete"], "Terminating");
    assert_eq!(report["namespace_gone"], true, "{report}");
}
