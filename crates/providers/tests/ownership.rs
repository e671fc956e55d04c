//! Never touch what Paddock did not make. For every resource type the cloud providers
//! create: a look-alike made outside Paddock with the same natural key is never adopted
//! (the create fails with a conflict naming the object and how to import it) and never
//! deleted (a destroy refuses it and leaves it), while a create Paddock itself made, cut
//! short, is still recovered and adopted, and a retried create of the same stack takes its
//! own object over.
//!
//! The look-alikes are made with the clouds' own APIs, as someone else would, from the
//! table below; the providers see the same sandbox.

mod common;

use std::collections::BTreeMap;

use paddock_engine::provider::ResourceRef;
use paddock_engine::{Props, Provider};
use paddock_sandbox::Sandbox;
use serde_json::Value as Json;

/// One of the sandbox's APIs, as a raw client reaches it.
#[derive(Clone, Copy)]
enum Api {
    Arm,
    Graph,
    GitHub,
    Kubernetes,
}

/// A request someone else makes: `{var}`s in the path and body are filled from what is
/// known (`name`, `sub`, `org`, a fresh `guid`, and what earlier requests `save`d).
struct Raw {
    api: Api,
    method: &'static str,
    path: &'static str,
    body: &'static str,
    /// Keeps the answer's `id` and `appId` as `{save.id}` and `{save.appId}`.
    save: &'static str,
}

const fn raw(api: Api, method: &'static str, path: &'static str, body: &'static str) -> Raw {
    Raw {
        api,
        method,
        path,
        body,
        save: "",
    }
}

const fn saved(
    api: Api,
    method: &'static str,
    path: &'static str,
    body: &'static str,
    save: &'static str,
) -> Raw {
    Raw {
        api,
        method,
        path,
        body,
        save,
    }
}

/// A resource type: what it needs to exist (made outside Paddock, as the parent or the
/// principal the object names), its look-alike, Paddock's inputs and the provider's id of
/// the look-alike.
struct Case {
    ty: &'static str,
    needs: &'static [Raw],
    lookalike: &'static [Raw],
    inputs: &'static str,
    id: &'static str,
}

const RG: &str = "/subscriptions/{sub}/resourcegroups/{name}?api-version=2025-04-01";

const CASES: &[Case] = &[
    Case {
        ty: "azure:resourceGroup",
        needs: &[],
        lookalike: &[raw(Api::Arm, "PUT", RG, r#"{"location": "westeurope"}"#)],
        inputs: r#"{"name": "{name}", "location": "westeurope"}"#,
        id: "/subscriptions/{sub}/resourceGroups/{name}",
    },
    Case {
        ty: "azure:roleAssignment",
        needs: &[
            raw(Api::Arm, "PUT", RG, r#"{"location": "westeurope"}"#),
            saved(
                Api::Graph,
                "POST",
                "/applications",
                r#"{"displayName": "{name}"}"#,
                "app",
            ),
            saved(
                Api::Graph,
                "POST",
                "/servicePrincipals",
                r#"{"appId": "{app.appId}"}"#,
                "sp",
            ),
        ],
        lookalike: &[saved(
            Api::Arm,
            "PUT",
            "/subscriptions/{sub}/resourceGroups/{name}/providers/Microsoft.Authorization/roleAssignments/{guid}?api-version=2022-04-01",
            r#"{"properties": {"roleDefinitionId": "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c", "principalId": "{sp.id}", "principalType": "ServicePrincipal"}}"#,
            "assignment",
        )],
        inputs: r#"{"scope": "/subscriptions/{sub}/resourceGroups/{name}", "principalId": "{sp.id}", "role": "Contributor"}"#,
        id: "{assignment.id}",
    },
    Case {
        ty: "entra:group",
        needs: &[],
        lookalike: &[saved(
            Api::Graph,
            "POST",
            "/groups",
            r#"{"displayName": "{name}", "mailNickname": "{name}", "securityEnabled": true, "mailEnabled": false}"#,
            "group",
        )],
        inputs: r#"{"displayName": "{name}"}"#,
        id: "{group.id}",
    },
    Case {
        ty: "entra:application",
        needs: &[],
        lookalike: &[saved(
            Api::Graph,
            "POST",
            "/applications",
            r#"{"displayName": "{name}", "uniqueName": "{name}"}"#,
            "app",
        )],
        inputs: r#"{"displayName": "{name}", "uniqueName": "{name}"}"#,
        id: "{app.id}",
    },
    Case {
        ty: "entra:servicePrincipal",
        needs: &[saved(
            Api::Graph,
            "POST",
            "/applications",
            r#"{"displayName": "{name}"}"#,
            "app",
        )],
        lookalike: &[saved(
            Api::Graph,
            "POST",
            "/servicePrincipals",
            r#"{"appId": "{app.appId}"}"#,
            "sp",
        )],
        inputs: r#"{"appId": "{app.appId}"}"#,
        id: "{sp.id}",
    },
    Case {
        ty: "entra:federatedCredential",
        needs: &[saved(
            Api::Graph,
            "POST",
            "/applications",
            r#"{"displayName": "{name}"}"#,
            "app",
        )],
        lookalike: &[saved(
            Api::Graph,
            "POST",
            "/applications/{app.id}/federatedIdentityCredentials",
            r#"{"name": "{name}", "issuer": "https://issuer.example", "subject": "repo:o/r:environment:dev", "audiences": ["api://AzureADTokenExchange"]}"#,
            "credential",
        )],
        inputs: r#"{"application": "{app.id}", "name": "{name}", "issuer": "https://issuer.example", "subject": "repo:o/r:environment:dev"}"#,
        id: "{app.id}/{credential.id}",
    },
    Case {
        ty: "github:team",
        needs: &[],
        lookalike: &[raw(
            Api::GitHub,
            "POST",
            "/orgs/{org}/teams",
            r#"{"name": "{name}"}"#,
        )],
        inputs: r#"{"name": "{name}"}"#,
        id: "{name}",
    },
    Case {
        ty: "github:repository",
        needs: &[],
        lookalike: &[raw(
            Api::GitHub,
            "POST",
            "/orgs/{org}/repos",
            r#"{"name": "{name}"}"#,
        )],
        inputs: r#"{"name": "{name}"}"#,
        id: "{name}",
    },
    Case {
        ty: "kubernetes:namespace",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/api/v1/namespaces",
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "{name}"}}"#,
        )],
        inputs: r#"{"name": "{name}"}"#,
        id: "{name}",
    },
    Case {
        ty: "kubernetes:serviceAccount",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/api/v1/namespaces/shared/serviceaccounts",
            r#"{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "{name}"}}"#,
        )],
        inputs: r#"{"namespace": "shared", "name": "{name}"}"#,
        id: "shared/{name}",
    },
    Case {
        ty: "kubernetes:role",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shared/roles",
            r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "{name}"}, "rules": []}"#,
        )],
        inputs: r#"{"namespace": "shared", "name": "{name}", "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}"#,
        id: "shared/{name}",
    },
    Case {
        ty: "kubernetes:roleBinding",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/shared/rolebindings",
            r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "{name}"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "auditors"}]}"#,
        )],
        inputs: r#"{"namespace": "shared", "name": "{name}", "role": "view", "subjects": [{"kind": "Group", "name": "auditors"}]}"#,
        id: "shared/{name}",
    },
    Case {
        ty: "kubernetes:resourceQuota",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/api/v1/namespaces/shared/resourcequotas",
            r#"{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "{name}"}, "spec": {"hard": {"pods": "10"}}}"#,
        )],
        inputs: r#"{"namespace": "shared", "name": "{name}", "hard": {"pods": "10"}}"#,
        id: "shared/{name}",
    },
    Case {
        ty: "kubernetes:limitRange",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/api/v1/namespaces/shared/limitranges",
            r#"{"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "{name}"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]}}"#,
        )],
        inputs: r#"{"namespace": "shared", "name": "{name}", "limits": [{"type": "Container", "default": {"cpu": "500m"}}]}"#,
        id: "shared/{name}",
    },
    Case {
        ty: "kubernetes:networkPolicy",
        needs: &[],
        lookalike: &[raw(
            Api::Kubernetes,
            "POST",
            "/apis/networking.k8s.io/v1/namespaces/shared/networkpolicies",
            r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "{name}"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}"#,
        )],
        inputs: r#"{"namespace": "shared", "name": "{name}", "policyTypes": ["Egress"]}"#,
        id: "shared/{name}",
    },
];

/// The sandbox's four clouds as someone else's scripts reach them, and the providers.
struct Rig {
    _dir: tempfile::TempDir,
    sandbox: Sandbox,
    http: reqwest::Client,
    arm_token: String,
    graph_token: String,
    providers: BTreeMap<&'static str, Box<dyn Provider>>,
}

impl Rig {
    async fn new() -> Rig {
        let (dir, s) = common::sandbox().await;
        let http = reqwest::Client::new();
        let sign_in = common::sign_in(&s);
        let arm_token = sign_in
            .token(&http, "https://management.azure.com/.default")
            .await
            .unwrap();
        let graph_token = sign_in
            .token(&http, "https://graph.microsoft.com/.default")
            .await
            .unwrap();
        let mut providers: BTreeMap<&'static str, Box<dyn Provider>> = BTreeMap::new();
        providers.insert(
            "azure",
            Box::new(paddock_providers::azure::provider(&common::azure(&s)).unwrap()),
        );
        providers.insert(
            "entra",
            Box::new(paddock_providers::entra::provider(&common::entra(&s)).unwrap()),
        );
        providers.insert(
            "github",
            Box::new(paddock_providers::github::provider(&common::github(&s)).unwrap()),
        );
        providers.insert(
            "kubernetes",
            Box::new(paddock_providers::kubernetes::provider(&common::kubernetes(&s)).unwrap()),
        );
        let rig = Rig {
            _dir: dir,
            sandbox: s,
            http,
            arm_token,
            graph_token,
            providers,
        };
        // The namespace the namespaced look-alikes live in: someone else's too.
        let ns = r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shared"}}"#;
        rig.send(
            &raw(Api::Kubernetes, "POST", "/api/v1/namespaces", ns),
            &mut BTreeMap::new(),
        )
        .await;
        rig
    }

    fn provider(&self, ty: &str) -> &dyn Provider {
        self.providers[ty.split(':').next().unwrap()].as_ref()
    }

    /// Sends a request as someone else would; its answer's ids are saved in `vars`.
    async fn send(&self, r: &Raw, vars: &mut BTreeMap<String, String>) -> Json {
        vars.insert("guid".into(), uuid());
        let fill = |t: &str| fill(t, vars);
        let s = &self.sandbox;
        let (base, token) = match r.api {
            Api::Arm => (s.base_url.clone(), self.arm_token.clone()),
            Api::Graph => (
                format!("{}/graph/v1.0", s.base_url),
                self.graph_token.clone(),
            ),
            Api::GitHub => (
                format!("{}{}", s.base_url, paddock_sandbox::GITHUB_ROOT),
                s.github_token.clone(),
            ),
            Api::Kubernetes => (s.kubernetes_url(), s.kubernetes_token.clone()),
        };
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        let body: Json = serde_json::from_str(&fill(r.body)).unwrap();
        let response = self
            .http
            .request(method, format!("{base}{}", fill(r.path)))
            .bearer_auth(token)
            .header("User-Agent", "someone-else")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Json = response.json().await.unwrap_or(Json::Null);
        assert!(
            status.is_success(),
            "{} {}: {status} {answer}",
            r.method,
            r.path
        );
        if !r.save.is_empty() {
            for key in ["id", "appId"] {
                if let Some(v) = answer[key].as_str() {
                    vars.insert(format!("{}.{key}", r.save), v.to_owned());
                }
            }
        }
        answer
    }
}

fn uuid() -> String {
    let hex = paddock_engine::new_id();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn fill(template: &str, vars: &BTreeMap<String, String>) -> String {
    vars.iter().fold(template.to_owned(), |t, (k, v)| {
        t.replace(&format!("{{{k}}}"), v)
    })
}

fn urn(stack: &str, ty: &str) -> String {
    format!("paddock:{stack}:{ty}:it")
}

fn reference<'a>(ty: &'a str, urn: &'a str, token: &'a str) -> ResourceRef<'a> {
    ResourceRef {
        ty,
        urn,
        token,
        imported: false,
    }
}

/// A message with what differs from run to run (ports, GUIDs) made stable.
fn stable(message: &str, s: &Sandbox) -> String {
    let guid = regex::Regex::new(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    )
    .unwrap();
    let message = message.replace(&s.kubernetes_url(), "[cluster]");
    guid.replace_all(&message, "[guid]").into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lookalike_made_outside_paddock_is_never_adopted_nor_deleted() {
    let rig = Rig::new().await;
    let mut conflicts = String::new();
    for case in CASES {
        let ty = case.ty;
        let p = rig.provider(ty);
        let mut vars = BTreeMap::from([
            ("name".to_owned(), "theirs".to_owned()),
            (
                "sub".to_owned(),
                rig.sandbox.identity.subscription_id.clone(),
            ),
            ("org".to_owned(), paddock_sandbox::GITHUB_ORG.to_owned()),
        ]);
        for r in case.needs.iter().chain(case.lookalike) {
            rig.send(r, &mut vars).await;
        }
        let inputs = common::props(serde_json::from_str(&fill(case.inputs, &vars)).unwrap());
        let id = fill(case.id, &vars);
        let urn = urn("env-a", ty);
        let r = reference(ty, &urn, "token-1");

        let e = p.create(r.clone(), &inputs).await.unwrap_err();
        assert_eq!(e.code, "OwnershipConflict", "{ty}: {e}");
        conflicts.push_str(&format!(
            "{ty}:\n  {}\n",
            stable(&e.to_string(), &rig.sandbox)
        ));

        let found = p.find(r.clone(), &inputs).await.unwrap();
        assert!(found.is_none(), "{ty}: recovery adopted the look-alike");

        let e = p.delete_owned(r.clone(), &id, &inputs).await.unwrap_err();
        assert_eq!(e.code, "NotOwned", "{ty}: {e}");
        let kept = p.read(ty, &id, &inputs).await.unwrap();
        assert!(kept.is_some(), "{ty}: the look-alike was deleted");
    }
    insta::assert_snapshot!(conflicts);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_paddock_made_is_recovered_adopted_and_deleted_by_its_stack_only() {
    let rig = Rig::new().await;
    for case in CASES {
        let ty = case.ty;
        let p = rig.provider(ty);
        let mut vars = BTreeMap::from([
            ("name".to_owned(), "ours".to_owned()),
            (
                "sub".to_owned(),
                rig.sandbox.identity.subscription_id.clone(),
            ),
            ("org".to_owned(), paddock_sandbox::GITHUB_ORG.to_owned()),
        ]);
        for r in case.needs {
            rig.send(r, &mut vars).await;
        }
        let inputs = common::props(serde_json::from_str(&fill(case.inputs, &vars)).unwrap());
        let (ours, theirs) = (urn("env-a", ty), urn("env-b", ty));
        let r = reference(ty, &ours, "token-1");

        // The create is cut short after the cloud made the object: recovery finds it by
        // this create's token, and only this create's.
        let made = p.create(r.clone(), &inputs).await.unwrap();
        let found = p.find(r.clone(), &inputs).await.unwrap();
        assert_eq!(found.map(|c| c.id), Some(made.id.clone()), "{ty}");
        let later = reference(ty, &ours, "token-2");
        assert!(
            p.find(later.clone(), &inputs).await.unwrap().is_none(),
            "{ty}"
        );
        assert!(
            p.find(reference(ty, &theirs, "token-1"), &inputs)
                .await
                .unwrap()
                .is_none(),
            "{ty}: another stack's recovery adopted it"
        );

        // Another stack's create of the same key is refused; this stack's retry takes it.
        let e = p
            .create(reference(ty, &theirs, "token-3"), &inputs)
            .await
            .unwrap_err();
        assert_eq!(e.code, "OwnershipConflict", "{ty}: {e}");
        assert!(e.to_string().contains("Paddock stack `env-a`"), "{ty}: {e}");
        let again = p.create(later.clone(), &inputs).await.unwrap();
        assert_eq!(again.id, made.id, "{ty}");

        // Only its own stack deletes it.
        let known: Props = inputs.clone().into_iter().chain(made.outputs).collect();
        let e = p
            .delete_owned(reference(ty, &theirs, "token-2"), &made.id, &known)
            .await
            .unwrap_err();
        assert_eq!(e.code, "NotOwned", "{ty}: {e}");
        p.delete_owned(later, &made.id, &known).await.unwrap();
        assert!(
            p.read(ty, &made.id, &known).await.unwrap().is_none(),
            "{ty}: not deleted"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_marks_the_object_and_its_stack_may_then_delete_it() {
    let rig = Rig::new().await;
    for case in CASES {
        let ty = case.ty;
        let p = rig.provider(ty);
        let mut vars = BTreeMap::from([
            ("name".to_owned(), "imported".to_owned()),
            (
                "sub".to_owned(),
                rig.sandbox.identity.subscription_id.clone(),
            ),
            ("org".to_owned(), paddock_sandbox::GITHUB_ORG.to_owned()),
        ]);
        for r in case.needs.iter().chain(case.lookalike) {
            rig.send(r, &mut vars).await;
        }
        let inputs = common::props(serde_json::from_str(&fill(case.inputs, &vars)).unwrap());
        let id = fill(case.id, &vars);
        let urn = urn("env-a", ty);
        let imported = ResourceRef {
            imported: true,
            ..reference(ty, &urn, "token-import")
        };
        let before = p.read(ty, &id, &Props::new()).await.unwrap().unwrap();
        p.mark_imported(imported.clone(), &id, &inputs)
            .await
            .unwrap();
        // The mark is Paddock's business: what the object reads as is unchanged.
        let after = p.read(ty, &id, &Props::new()).await.unwrap().unwrap();
        assert_eq!(after.inputs, before.inputs, "{ty}");
        // Marked, the object is now this stack's: its recovery adopts it.
        assert!(
            p.find(imported.clone(), &inputs).await.unwrap().is_some(),
            "{ty}"
        );
        p.delete_owned(imported, &id, &inputs).await.unwrap();
        assert!(p.read(ty, &id, &inputs).await.unwrap().is_none(), "{ty}");
    }
}
