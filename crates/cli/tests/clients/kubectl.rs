//! kubectl, unchanged, against `paddock sandbox`: `get` (server-side tables, `-o wide`,
//! `-o yaml|json`, label selectors, all namespaces), `apply` client-side (validated by the
//! server: kubectl sends `fieldValidation=Strict` once `/openapi/v3` says it may) and
//! server-side, `delete -f`, `explain`, namespaces from the kubeconfig's context, and
//! `auth can-i` / `whoami`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::rig::{Clients, SandboxPorts, SandboxProcess, clean_env, deleted_lines, succeeded};

/// kubectl with its own kubeconfig (a copy, so `kubectl config` may change it) and cache.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn new(clients: &Clients, sandbox: &SandboxProcess, dir: &Path) -> Kubectl {
        let kubeconfig = dir.join("kubeconfig");
        std::fs::copy(sandbox.get("PADDOCK_SANDBOX_KUBECONFIG"), &kubeconfig).unwrap();
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Kubectl {
            bin: clients.kubectl.clone(),
            kubeconfig,
            home,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.bin);
        clean_env(&mut cmd);
        cmd.env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args);
        cmd.output().expect("running kubectl")
    }

    /// Runs kubectl, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("kubectl {}", args.join(" ")), &self.run(args))
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(&[args, &["-o", "json"]].concat());
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}): {out}"))
    }
}

/// A sandbox, kubectl pointed at it, and `team.yaml` (the file [`TEAM`]) beside them.
struct Rig {
    kubectl: Kubectl,
    file: String,
    dir: tempfile::TempDir,
    _sandbox: SandboxProcess,
}

fn start() -> Option<Rig> {
    let clients = Clients::find()?;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let file = dir.path().join("team.yaml");
    std::fs::write(&file, TEAM).unwrap();
    Some(Rig {
        kubectl: Kubectl::new(&clients, &sandbox, dir.path()),
        file: file.to_str().unwrap().to_owned(),
        dir,
        _sandbox: sandbox,
    })
}

/// The words of each line of a table kubectl printed.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn row<'a>(table: &'a [Vec<String>], first: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in {table:?}"))
}

const TEAM: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: team-a
  labels: {tier: web}
data:
  mode: blue
  size: "3"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: deployer
  namespace: team-a
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: read-config
  namespace: team-a
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer-reads
  namespace: team-a
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-config}
subjects:
- {kind: ServiceAccount, name: deployer, namespace: team-a}
- {kind: User, name: ana, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
  namespace: team-a
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: nginx, image: "nginx:1.27"}
"#;

const KINDS: &[&str] = &[
    "namespace/team-a",
    "configmap/settings",
    "serviceaccount/deployer",
    "role.rbac.authorization.k8s.io/read-config",
    "rolebinding.rbac.authorization.k8s.io/deployer-reads",
    "networkpolicy.networking.k8s.io/deny-all",
    "deployment.apps/web",
];

/// Who manages the `settings` config map, and how: `(manager, operation)`.
fn managers_of_settings(kubectl: &Kubectl) -> Vec<(String, String)> {
    let args = [
        "get",
        "configmap",
        "settings",
        "-n",
        "team-a",
        "--show-managed-fields",
    ];
    kubectl.json(&args)["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap().to_owned(),
                m["operation"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn lines_say(out: &str, what: &str) {
    let expected: Vec<String> = KINDS.iter().map(|k| format!("{k} {what}")).collect();
    let printed: Vec<&str> = out.lines().collect();
    assert_eq!(printed, expected, "{out}");
}

#[test]
fn kubectl_apply_creates_configures_and_deletes_a_file_of_several_kinds() {
    let Some(Rig {
        kubectl,
        file,
        dir,
        _sandbox,
    }) = start()
    else {
        return;
    };
    let file = file.as_str();

    // Validation is on (no --validate=false): kubectl reads /openapi/v3, sees the server
    // validates fields, and leaves it to the server.
    lines_say(&kubectl.ok(&["apply", "-f", file]), "created");
    lines_say(&kubectl.ok(&["apply", "-f", file]), "unchanged");
    let settings = kubectl.json(&["get", "configmap", "settings", "-n", "team-a"]);
    assert_eq!(settings["data"]["mode"], "blue");
    assert!(
        settings["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    std::fs::write(file, TEAM.replace("mode: blue", "mode: green")).unwrap();
    let out = kubectl.ok(&["apply", "-f", file]);
    assert!(out.contains("configmap/settings configured"), "{out}");
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    let settings = kubectl.json(&["get", "configmap", "settings", "-n", "team-a"]);
    assert_eq!(settings["data"]["mode"], "green");

    // The server refuses what the schema does not declare, naming the field.
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo, namespace: team-a}\ndatta: {a: b}\n",
    )
    .unwrap();
    let refused = kubectl.run(&["apply", "-f", typo.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(r#"strict decoding error: unknown field "datta""#),
        "{stderr}"
    );

    // Switching to server-side apply: kubectl becomes an owner of what it applies.
    lines_say(
        &kubectl.ok(&["apply", "--server-side", "-f", file]),
        "serverside-applied",
    );
    let owners = managers_of_settings(&kubectl);
    assert!(
        owners.contains(&("kubectl".into(), "Apply".into())),
        "{owners:?}"
    );

    // kubectl waits for deletions by watching, which the sandbox does not serve.
    let deleted = kubectl.ok(&["delete", "-f", file, "--wait=false"]);
    let expected: Vec<String> = KINDS
        .iter()
        .map(|k| {
            let (kind, name) = k.split_once('/').unwrap();
            format!("{kind} \"{name}\" deleted")
        })
        .collect();
    assert_eq!(deleted_lines(&deleted), expected, "{deleted}");
    // The namespace terminates, then goes.
    let namespace = kubectl.run(&[
        "get",
        "namespace",
        "team-a",
        "-o",
        "jsonpath={.status.phase}",
    ]);
    let gone = String::from_utf8_lossy(&namespace.stderr).contains("not found");
    assert!(gone || String::from_utf8_lossy(&namespace.stdout) == "Terminating");
}

#[test]
fn kubectl_server_side_apply_records_kubectl_as_the_fields_manager() {
    let Some(Rig {
        kubectl,
        file,
        dir: _dir,
        _sandbox,
    }) = start()
    else {
        return;
    };
    let file = file.as_str();
    lines_say(
        &kubectl.ok(&["apply", "--server-side", "-f", file]),
        "serverside-applied",
    );
    lines_say(
        &kubectl.ok(&["apply", "--server-side", "-f", file]),
        "serverside-applied",
    );
    let managers = managers_of_settings(&kubectl);
    assert_eq!(managers, [("kubectl".to_owned(), "Apply".to_owned())]);

    // Dropping a field from the applied configuration removes it.
    std::fs::write(file, TEAM.replace("  size: \"3\"\n", "")).unwrap();
    kubectl.ok(&["apply", "--server-side", "-f", file]);
    let settings = kubectl.json(&["get", "configmap", "settings", "-n", "team-a"]);
    assert_eq!(settings["data"], serde_json::json!({"mode": "blue"}));
}

#[test]
fn kubectl_get_prints_the_api_servers_tables() {
    let Some(Rig {
        kubectl,
        file,
        dir: _dir,
        _sandbox,
    }) = start()
    else {
        return;
    };
    let file = file.as_str();
    kubectl.ok(&["apply", "-f", file]);

    let namespaces = rows(&kubectl.ok(&["get", "ns"]));
    assert_eq!(namespaces[0], ["NAME", "STATUS", "AGE"]);
    assert_eq!(row(&namespaces, "team-a")[1], "Active");
    assert_eq!(row(&namespaces, "kube-system")[1], "Active");

    let configmaps = rows(&kubectl.ok(&["get", "configmaps", "-n", "team-a", "-l", "tier=web"]));
    assert_eq!(configmaps[0], ["NAME", "DATA", "AGE"]);
    assert_eq!(configmaps.len(), 2, "{configmaps:?}");
    assert_eq!(row(&configmaps, "settings")[1], "2");
    let none = kubectl.run(&["get", "configmaps", "-n", "team-a", "-l", "tier=db"]);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found in team-a namespace.")
    );

    let bindings = rows(&kubectl.ok(&["get", "rolebindings", "-n", "team-a"]));
    assert_eq!(bindings[0], ["NAME", "ROLE", "AGE"]);
    assert_eq!(row(&bindings, "deployer-reads")[1], "Role/read-config");
    let wide = rows(&kubectl.ok(&["get", "rolebindings", "-n", "team-a", "-o", "wide"]));
    assert_eq!(
        wide[0],
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    );
    let b = row(&wide, "deployer-reads");
    assert_eq!(
        (b[3].as_str(), b[4].as_str()),
        ("ana", "team-a/deployer"),
        "{b:?}"
    );

    let deployments = rows(&kubectl.ok(&["get", "deploy", "-n", "team-a", "-o", "wide"]));
    assert_eq!(
        deployments[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let d = row(&deployments, "web");
    assert_eq!(
        (d[1].as_str(), d[5].as_str(), d[6].as_str(), d[7].as_str()),
        ("0/2", "nginx", "nginx:1.27", "app=web")
    );
    // `all` is the kinds of that category the cluster serves: here, deployments.
    let all = rows(&kubectl.ok(&["get", "all", "-n", "team-a"]));
    assert_eq!(row(&all, "web")[1], "0/2", "{all:?}");

    let policies = rows(&kubectl.ok(&["get", "netpol", "-n", "team-a"]));
    assert_eq!(policies[0], ["NAME", "POD-SELECTOR", "AGE"]);
    assert_eq!(row(&policies, "deny-all")[1], "<none>");
    let roles = rows(&kubectl.ok(&["get", "roles", "-n", "team-a"]));
    assert_eq!(roles[0], ["NAME", "CREATED", "AT"]);
    let accounts = rows(&kubectl.ok(&["get", "sa", "-n", "team-a"]));
    assert_eq!(accounts[0], ["NAME", "SECRETS", "AGE"]);
    assert_eq!(row(&accounts, "deployer")[1], "0");

    // Every namespace: kubectl adds the NAMESPACE column from each row's metadata.
    let everywhere = rows(&kubectl.ok(&["get", "serviceaccounts", "-A"]));
    assert_eq!(everywhere[0], ["NAMESPACE", "NAME", "SECRETS", "AGE"]);
    for ns in ["default", "kube-system", "team-a"] {
        assert!(
            everywhere.iter().any(|r| r[0] == ns && r[1] == "default"),
            "{everywhere:?}"
        );
    }

    // Objects, not tables, for -o yaml and -o json.
    let yaml = kubectl.ok(&["get", "cm", "settings", "-n", "team-a", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("mode: blue"),
        "{yaml}"
    );
    let list = kubectl.json(&["get", "cm", "-n", "team-a"]);
    assert_eq!(list["kind"], "List");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["metadata"]["name"] == "settings")
    );
}

#[test]
fn kubectl_uses_the_namespace_of_its_current_context() {
    let Some(Rig {
        kubectl,
        file,
        dir,
        _sandbox,
    }) = start()
    else {
        return;
    };
    let file = file.as_str();
    kubectl.ok(&["apply", "-f", file]);
    kubectl.ok(&["config", "set-context", "--current", "--namespace=team-a"]);
    let namespace = kubectl.ok(&["config", "view", "--minify", "-o", "jsonpath={..namespace}"]);
    assert_eq!(namespace, "team-a");

    // Without -n: listed, created and deleted in team-a.
    let configmaps = rows(&kubectl.ok(&["get", "configmaps"]));
    assert!(
        configmaps.iter().any(|r| r[0] == "settings"),
        "{configmaps:?}"
    );
    let loose = dir.path().join("loose.yaml");
    std::fs::write(
        &loose,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loose}\ndata: {a: b}\n",
    )
    .unwrap();
    assert_eq!(
        kubectl.ok(&["apply", "-f", loose.to_str().unwrap()]).trim(),
        "configmap/loose created"
    );
    let loose_object = kubectl.json(&["get", "configmap", "loose", "--namespace", "team-a"]);
    assert_eq!(loose_object["metadata"]["namespace"], "team-a");
    let elsewhere = kubectl.run(&["get", "configmap", "loose", "-n", "default"]);
    assert!(!elsewhere.status.success());
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains(r#"configmaps "loose" not found"#));
    assert_eq!(
        deleted_lines(&kubectl.ok(&["delete", "configmap", "loose"])),
        [r#"configmap "loose" deleted"#]
    );
}

#[test]
fn kubectl_explain_reads_the_served_openapi_v3_schemas() {
    let Some(Rig {
        kubectl,
        file: _,
        dir: _dir,
        _sandbox,
    }) = start()
    else {
        return;
    };
    let out = kubectl.ok(&["explain", "configmap"]);
    assert!(
        out.contains("KIND:       ConfigMap") && out.contains("VERSION:    v1"),
        "{out}"
    );
    assert!(out.contains("data\t<map[string]string>"), "{out}");
    let out = kubectl.ok(&["explain", "deployment.spec.template.spec.containers.image"]);
    assert!(
        out.contains("GROUP:      apps") && out.contains("FIELD: image <string>"),
        "{out}"
    );
    let out = kubectl.run(&["explain", "pods"]);
    assert!(!out.status.success(), "pods are not served");
}

/// `kubectl auth can-i` and `whoami` send their reviews as protobuf (`Content-Type:
/// application/vnd.kubernetes.protobuf`, kubectl 1.32), answered from the cluster's RBAC.
#[test]
fn kubectl_auth_can_i_answers_from_the_clusters_rbac() {
    let Some(Rig {
        kubectl,
        file,
        dir: _dir,
        _sandbox,
    }) = start()
    else {
        return;
    };
    let file = file.as_str();
    kubectl.ok(&["apply", "-f", file]);
    assert_eq!(
        kubectl
            .ok(&["auth", "can-i", "delete", "namespaces"])
            .trim(),
        "yes"
    );
    assert_eq!(
        kubectl
            .ok(&["auth", "can-i", "--list", "-n", "team-a"])
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().next()),
        Some(Some("*.*"))
    );

    // The deployer's token, from TokenRequest.
    let token = kubectl.ok(&["create", "token", "deployer", "-n", "team-a"]);
    let token = token.trim();
    let as_deployer = |args: &[&str]| kubectl.run(&[&["--token", token], args].concat());
    let yes = as_deployer(&["auth", "can-i", "list", "configmaps", "-n", "team-a"]);
    assert_eq!(String::from_utf8_lossy(&yes.stdout).trim(), "yes");
    let no = as_deployer(&["auth", "can-i", "delete", "configmaps", "-n", "team-a"]);
    assert_eq!(
        (String::from_utf8_lossy(&no.stdout).trim(), no.status.code()),
        ("no", Some(1))
    );
    let elsewhere = as_deployer(&["auth", "can-i", "list", "configmaps", "-n", "default"]);
    assert_eq!(String::from_utf8_lossy(&elsewhere.stdout).trim(), "no");
    let list =
        String::from_utf8_lossy(&as_deployer(&["auth", "can-i", "--list", "-n", "team-a"]).stdout)
            .into_owned();
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["configmaps", "[]", "[]", "[get", "list]"]),
        "{list}"
    );
    let me = String::from_utf8_lossy(&as_deployer(&["auth", "whoami"]).stdout).into_owned();
    assert!(me.contains("system:serviceaccount:team-a:deployer"), "{me}");
}
