//! The attempts, as data: what a credential tries, where, and the refusal the wall must
//! answer with (status and the API's own code). Positive controls are attempts expected
//! to succeed: a wall that refused everything would pass the rest.

use reqwest::Method;
use serde_json::{Value as Json, json};

use super::rig::StageRef;

/// What the attempt must get.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Refused with this status and code (Kubernetes' `reason`, ARM's and Graph's
    /// `error.code`, Entra's `AADSTS…`).
    Refused(u16, &'static str),
    /// A positive control: any 2xx.
    Allowed,
}

#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Json),
    MergePatch(Json),
    Form(Vec<(String, String)>),
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub what: String,
    pub method: Method,
    /// Relative to the API's root (the sandbox's base URL or the cluster's server).
    pub path: String,
    pub body: Body,
    pub expect: Expect,
}

fn attempt(what: String, method: Method, path: String, body: Body, expect: Expect) -> Attempt {
    Attempt {
        what,
        method,
        path,
        body,
        expect,
    }
}

const FORBIDDEN: Expect = Expect::Refused(403, "Forbidden");
const ARM_DENIED: Expect = Expect::Refused(403, "AuthorizationFailed");
const LOCKED: Expect = Expect::Refused(409, "ScopeLocked");
const GRAPH_DENIED: Expect = Expect::Refused(403, "Authorization_RequestDenied");
/// No federated credential of the application matches the token's subject.
const NO_FEDERATION: Expect = Expect::Refused(400, "AADSTS70021");

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces";
const NET: &str = "/apis/networking.k8s.io/v1/namespaces";
const APPS: &str = "/apis/apps/v1/namespaces";
const CORE: &str = "/api/v1/namespaces";

const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
const LOCK_NAME: &str = "paddock-no-delete";

fn config_map(name: &str) -> Json {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
        "data": {"GREETING": "hello"}})
}

fn deployment(name: &str) -> Json {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}}})
}

fn binding(name: &str, kind: &str, role: &str, ns: &str) -> Json {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]})
}

/// What the deployer token of `own` tries in the cluster: its own guardrails, the other
/// stages' namespaces, and the controls it must keep.
pub fn kubernetes(own: &StageRef, others: &[&StageRef]) -> Vec<Attempt> {
    let ns = own.namespace.as_str();
    let policy = format!("{NET}/{ns}/networkpolicies/paddock-deny-other-namespaces");
    let quota = format!("{CORE}/{ns}/resourcequotas/paddock-quota");
    let limits = format!("{CORE}/{ns}/limitranges/paddock-defaults");
    let role = format!("{RBAC}/{ns}/roles/paddock-deployer");
    let role_binding = format!("{RBAC}/{ns}/rolebindings/paddock-deployer");
    let k = |what: &str, method: Method, path: &str, body: Body, expect: Expect| {
        attempt(what.to_owned(), method, path.to_owned(), body, expect)
    };
    let mut out = vec![
        k(
            "delete its network policy",
            Method::DELETE,
            &policy,
            Body::None,
            FORBIDDEN,
        ),
        k(
            "open its network policy to every namespace",
            Method::PATCH,
            &policy,
            Body::MergePatch(json!({"spec": {"ingress": [{}]}})),
            FORBIDDEN,
        ),
        k(
            "add a network policy admitting every namespace",
            Method::POST,
            &format!("{NET}/{ns}/networkpolicies"),
            Body::Json(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "allow-all"},
                "spec": {"podSelector": {}, "ingress": [{}]}}),
            ),
            FORBIDDEN,
        ),
        k(
            "delete its quota",
            Method::DELETE,
            &quota,
            Body::None,
            FORBIDDEN,
        ),
        k(
            "raise its quota",
            Method::PATCH,
            &quota,
            Body::MergePatch(json!({"spec": {"hard": {"pods": "1000", "requests.cpu": "64"}}})),
            FORBIDDEN,
        ),
        k(
            "delete its limit range",
            Method::DELETE,
            &limits,
            Body::None,
            FORBIDDEN,
        ),
        k(
            "loosen its limit range",
            Method::PATCH,
            &limits,
            Body::MergePatch(
                json!({"spec": {"limits": [{"type": "Container", "default": {"cpu": "8"}}]}}),
            ),
            FORBIDDEN,
        ),
        k(
            "delete its role binding",
            Method::DELETE,
            &role_binding,
            Body::None,
            FORBIDDEN,
        ),
        k(
            "add a subject to its role binding",
            Method::PATCH,
            &role_binding,
            Body::MergePatch(json!({"subjects": [
                {"kind": "ServiceAccount", "name": "deployer", "namespace": ns},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"}]})),
            FORBIDDEN,
        ),
        k(
            "bind itself to the admin cluster role",
            Method::POST,
            &format!("{RBAC}/{ns}/rolebindings"),
            Body::Json(binding("self-admin", "ClusterRole", "admin", ns)),
            FORBIDDEN,
        ),
        k(
            "bind itself to cluster-admin",
            Method::POST,
            &format!("{RBAC}/{ns}/rolebindings"),
            Body::Json(binding("self-root", "ClusterRole", "cluster-admin", ns)),
            FORBIDDEN,
        ),
        k(
            "delete its role",
            Method::DELETE,
            &role,
            Body::None,
            FORBIDDEN,
        ),
        k(
            "grant its role network policies",
            Method::PATCH,
            &role,
            Body::MergePatch(
                json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            ),
            FORBIDDEN,
        ),
        k(
            "escalate through a new role",
            Method::POST,
            &format!("{RBAC}/{ns}/roles"),
            Body::Json(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "escalator"},
                "rules": [{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["*"]}]}),
            ),
            FORBIDDEN,
        ),
        k(
            "relabel its namespace",
            Method::PATCH,
            &format!("{CORE}/{ns}"),
            Body::MergePatch(json!({"metadata": {"labels": {"paddock.dev/team": "platform"}}})),
            FORBIDDEN,
        ),
        k(
            "delete its namespace",
            Method::DELETE,
            &format!("{CORE}/{ns}"),
            Body::None,
            FORBIDDEN,
        ),
        k(
            "list every namespace",
            Method::GET,
            CORE,
            Body::None,
            FORBIDDEN,
        ),
        k(
            "create a cluster role",
            Method::POST,
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            Body::Json(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": format!("{ns}-root")},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
            ),
            FORBIDDEN,
        ),
    ];
    for other in others {
        let theirs = other.namespace.as_str();
        let label = other.label();
        let mut push = |what: &str, method: Method, path: String, body: Body| {
            out.push(attempt(
                format!("{what} in {label}"),
                method,
                path,
                body,
                FORBIDDEN,
            ));
        };
        push(
            "list secrets",
            Method::GET,
            format!("{CORE}/{theirs}/secrets"),
            Body::None,
        );
        push(
            "read the deployer's token secret",
            Method::GET,
            format!("{CORE}/{theirs}/secrets/deployer-token"),
            Body::None,
        );
        push(
            "mint a token for the deployer",
            Method::POST,
            format!("{CORE}/{theirs}/serviceaccounts/deployer/token"),
            Body::Json(
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600}}),
            ),
        );
        push(
            "create a config map",
            Method::POST,
            format!("{CORE}/{theirs}/configmaps"),
            Body::Json(config_map("intruder")),
        );
        push(
            "create a deployment",
            Method::POST,
            format!("{APPS}/{theirs}/deployments"),
            Body::Json(deployment("intruder")),
        );
        push(
            "delete the network policy",
            Method::DELETE,
            format!("{NET}/{theirs}/networkpolicies/paddock-deny-other-namespaces"),
            Body::None,
        );
        push(
            "delete the secret",
            Method::DELETE,
            format!("{CORE}/{theirs}/secrets/deployer-token"),
            Body::None,
        );
    }
    // Positive controls: the team deploys into its own namespace.
    let probe = "isolation-probe";
    out.extend([
        k(
            "create a config map",
            Method::POST,
            &format!("{CORE}/{ns}/configmaps"),
            Body::Json(config_map(probe)),
            Expect::Allowed,
        ),
        k(
            "change the config map",
            Method::PATCH,
            &format!("{CORE}/{ns}/configmaps/{probe}"),
            Body::MergePatch(json!({"data": {"GREETING": "hi"}})),
            Expect::Allowed,
        ),
        k(
            "create a deployment",
            Method::POST,
            &format!("{APPS}/{ns}/deployments"),
            Body::Json(deployment(probe)),
            Expect::Allowed,
        ),
        k(
            "create a secret",
            Method::POST,
            &format!("{CORE}/{ns}/secrets"),
            Body::Json(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": probe},
                "stringData": {"password": "s3cret"}}),
            ),
            Expect::Allowed,
        ),
        k(
            "read its network policy",
            Method::GET,
            &policy,
            Body::None,
            Expect::Allowed,
        ),
        k(
            "read its quota",
            Method::GET,
            &quota,
            Body::None,
            Expect::Allowed,
        ),
        k(
            "remove the deployment",
            Method::DELETE,
            &format!("{APPS}/{ns}/deployments/{probe}"),
            Body::None,
            Expect::Allowed,
        ),
    ]);
    in_order(out, &["delete its role", "delete its role binding"])
}

/// Positive controls first, so that a missing wall further down cannot hide whether they
/// work; last, the attempts that would take the credential's own rights away (or its
/// scope) if they got through, so they cannot mask the others.
fn in_order(mut attempts: Vec<Attempt>, last: &[&str]) -> Vec<Attempt> {
    attempts.sort_by_key(|a| match a.expect {
        Expect::Allowed => 0,
        _ if last.contains(&a.what.as_str()) => 2,
        _ => 1,
    });
    attempts
}

/// A GUID for an attempted role assignment: ARM names assignments by GUID.
fn assignment_name(i: usize, j: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{j:012x}")
}

fn assign(principal: &str, role: &str, subscription: &str) -> Body {
    Body::Json(json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        "principalId": principal, "principalType": "ServicePrincipal"}}))
}

/// What the stage's Azure identity tries in ARM. `own_assignment` is the id of its
/// Contributor assignment.
pub fn arm(
    own: &StageRef,
    others: &[&StageRef],
    subscription: &str,
    own_assignment: &str,
    index: usize,
) -> Vec<Attempt> {
    let group = |s: &StageRef| format!("{}?api-version=2024-11-01", s.group_id);
    let lock = |s: &StageRef, name: &str| {
        format!(
            "{}/providers/Microsoft.Authorization/locks/{name}?api-version=2020-05-01",
            s.group_id
        )
    };
    let assignment = |scope: &str, j: usize| {
        format!(
            "{scope}/providers/Microsoft.Authorization/roleAssignments/{}?api-version=2022-04-01",
            assignment_name(index, j)
        )
    };
    let a = |what: &str, method: Method, path: String, body: Body, expect: Expect| {
        attempt(what.to_owned(), method, path, body, expect)
    };
    let me = own.principal_id.as_str();
    let sub = format!("/subscriptions/{subscription}");
    let mut out = vec![
        a(
            "delete its resource group",
            Method::DELETE,
            group(own),
            Body::None,
            LOCKED,
        ),
        a(
            "delete its lock",
            Method::DELETE,
            lock(own, LOCK_NAME),
            Body::None,
            ARM_DENIED,
        ),
        a(
            "weaken its lock",
            Method::PUT,
            lock(own, LOCK_NAME),
            Body::Json(json!({"properties": {"level": "ReadOnly", "notes": "mine now"}})),
            ARM_DENIED,
        ),
        a(
            "place a lock of its own",
            Method::PUT,
            lock(own, "team-lock"),
            Body::Json(json!({"properties": {"level": "ReadOnly"}})),
            ARM_DENIED,
        ),
        a(
            "make itself Owner of its group",
            Method::PUT,
            assignment(&own.group_id, 1),
            assign(me, OWNER, subscription),
            ARM_DENIED,
        ),
        a(
            "make itself Owner of the subscription",
            Method::PUT,
            assignment(&sub, 2),
            assign(me, OWNER, subscription),
            ARM_DENIED,
        ),
        a(
            "delete its role assignment",
            Method::DELETE,
            format!("{own_assignment}?api-version=2022-04-01"),
            Body::None,
            ARM_DENIED,
        ),
        a(
            "create a resource group",
            Method::PUT,
            format!(
                "{sub}/resourcegroups/rg-{}-shadow?api-version=2024-11-01",
                own.namespace
            ),
            Body::Json(json!({"location": "westeurope"})),
            ARM_DENIED,
        ),
        a(
            "list the subscription's resource groups",
            Method::GET,
            format!("{sub}/resourcegroups?api-version=2024-11-01"),
            Body::None,
            ARM_DENIED,
        ),
    ];
    for (j, other) in others.iter().enumerate() {
        let label = other.label();
        let mut push = |what: &str, method: Method, path: String, body: Body| {
            out.push(attempt(
                format!("{what} of {label}"),
                method,
                path,
                body,
                ARM_DENIED,
            ));
        };
        push(
            "read the resource group",
            Method::GET,
            group(other),
            Body::None,
        );
        push(
            "tag the resource group",
            Method::PATCH,
            group(other),
            Body::Json(json!({"tags": {"owner": "intruder"}})),
        );
        push(
            "delete the resource group",
            Method::DELETE,
            group(other),
            Body::None,
        );
        push(
            "delete the lock",
            Method::DELETE,
            lock(other, LOCK_NAME),
            Body::None,
        );
        push(
            "make itself Contributor",
            Method::PUT,
            assignment(&other.group_id, 100 + j),
            assign(me, CONTRIBUTOR, subscription),
        );
    }
    // Positive controls: the stage deploys into its own group.
    out.extend([
        a("read its resource group", Method::GET, group(own), Body::None, Expect::Allowed),
        a(
            "tag its resource group",
            Method::PATCH,
            group(own),
            Body::Json(json!({"tags": {"team": own.team, "stage": own.stage, "managedBy": "paddock", "deployedBy": "workflow"}})),
            Expect::Allowed,
        ),
        a("read its lock", Method::GET, lock(own, LOCK_NAME), Body::None, Expect::Allowed),
    ]);
    in_order(
        out,
        &["delete its role assignment", "delete its resource group"],
    )
}

/// What the stage's identity tries in the directory: to trust another workflow, its own
/// or another stage's application.
pub fn graph(own: &StageRef, others: &[&StageRef]) -> Vec<Attempt> {
    let credential = |app: &StageRef| {
        attempt(
            format!("trust any workflow on the application of {}", app.label()),
            Method::POST,
            format!(
                "/graph/v1.0/applications/{}/federatedIdentityCredentials",
                app.application_object_id
            ),
            Body::Json(
                json!({"name": "anyone", "issuer": "https://token.actions.githubusercontent.com",
                "subject": "repo:intruder/anything:environment:prod",
                "audiences": ["api://AzureADTokenExchange"]}),
            ),
            GRAPH_DENIED,
        )
    };
    let mut out = vec![
        credential(own),
        attempt(
            format!("add a password to the application of {}", own.label()),
            Method::POST,
            format!(
                "/graph/v1.0/applications/{}/addPassword",
                own.application_object_id
            ),
            Body::Json(json!({"passwordCredential": {"displayName": "backdoor"}})),
            GRAPH_DENIED,
        ),
    ];
    out.extend(others.iter().map(|o| credential(o)));
    out
}

/// Workflow tokens that must not sign in as `own`'s identity: every other stage's
/// environment, every other repository, and a run outside any environment: `wrong`
/// holds (repository, environment, minted token).
pub fn federation(
    own: &StageRef,
    tenant: &str,
    wrong: &[(String, String, String)],
) -> Vec<Attempt> {
    wrong
        .iter()
        .map(|(repo, environment, token)| {
            attempt(
                format!(
                    "sign in as {} with a token of {repo} in `{environment}`",
                    own.label()
                ),
                Method::POST,
                format!("/{tenant}/oauth2/v2.0/token"),
                Body::Form(vec![
                    ("grant_type".into(), "client_credentials".into()),
                    ("client_id".into(), own.client_id.clone()),
                    (
                        "client_assertion_type".into(),
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                    ),
                    ("client_assertion".into(), token.clone()),
                    (
                        "scope".into(),
                        "https://management.azure.com/.default".into(),
                    ),
                ]),
                NO_FEDERATION,
            )
        })
        .collect()
}
