//! kubectl's typed commands, unchanged, against `paddock sandbox`: they speak Kubernetes
//! protobuf (`application/vnd.kubernetes.protobuf`), request and answer, errors included.
//! The README's own walk-through — a namespace, a deployer account bound to `edit`, a
//! token for it — then the other `create` commands, `describe` and `delete`; each checked
//! on what kubectl printed and on what the sandbox then holds (read back as plain JSON).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::rig::{Clients, SandboxPorts, SandboxProcess, deleted_lines, succeeded};

struct Kubectl<'a> {
    program: &'a Path,
    kubeconfig: &'a str,
    /// The sandbox's root URL: `--raw` paths are taken from it (kubectl versions differ on
    /// whether they keep a server URL's own path).
    root: &'a str,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.program);
        crate::rig::clean_env(&mut cmd);
        cmd.arg("--kubeconfig").arg(self.kubeconfig).args(args);
        cmd.output().expect("running kubectl")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        succeeded(&format!("kubectl {}", args.join(" ")), &self.run(args))
    }

    /// What the sandbox holds at `path`, read as JSON (not through the typed clients).
    fn stored(&self, path: &str) -> Value {
        let raw = self.ok(&[
            "--server",
            self.root,
            "get",
            "--raw",
            &format!("/kubernetes{path}"),
        ]);
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}: {raw}"))
    }

    fn missing(&self, path: &str) -> bool {
        let out = self.run(&[
            "--server",
            self.root,
            "get",
            "--raw",
            &format!("/kubernetes{path}"),
        ]);
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound")
    }
}

/// Whether `describe` printed `line`, however it aligned its columns.
fn shows(described: &str, line: &str) -> bool {
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    words(described).contains(&words(line))
}

/// Which manager kubectl's typed `create` records for the fields it set.
fn managers(object: &Value) -> Vec<&str> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["manager"].as_str())
        .collect()
}

#[test]
fn the_readme_walk_through_works_with_kubectl_typed_commands() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let kubectl = Kubectl {
        program: &clients.kubectl,
        kubeconfig: sandbox.get("PADDOCK_SANDBOX_KUBECONFIG"),
        root: sandbox.get("PADDOCK_SANDBOX_ARM_URL"),
    };

    assert_eq!(
        kubectl.ok(&["create", "namespace", "team-a"]),
        "namespace/team-a created\n"
    );
    let namespace = kubectl.stored("/api/v1/namespaces/team-a");
    assert_eq!(namespace["status"]["phase"], "Active");
    assert_eq!(managers(&namespace), ["kubectl-create"]);

    assert_eq!(
        kubectl.ok(&["-n", "team-a", "create", "serviceaccount", "deployer"]),
        "serviceaccount/deployer created\n"
    );
    assert_eq!(
        kubectl.ok(&[
            "-n",
            "team-a",
            "create",
            "rolebinding",
            "deployer-edit",
            "--clusterrole=edit",
            "--serviceaccount=team-a:deployer",
        ]),
        "rolebinding.rbac.authorization.k8s.io/deployer-edit created\n"
    );
    let binding = kubectl
        .stored("/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/deployer-edit");
    assert_eq!(
        (&binding["roleRef"], &binding["subjects"]),
        (
            &json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}),
            &json!([{"kind": "ServiceAccount", "name": "deployer", "namespace": "team-a"}])
        )
    );

    // The token signs in as the account, which `edit` lets write config maps in team-a only.
    let token = kubectl.ok(&[
        "-n",
        "team-a",
        "create",
        "token",
        "deployer",
        "--duration=1h",
    ]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let as_deployer = format!("--token={token}");
    assert_eq!(
        kubectl.ok(&[
            &as_deployer,
            "-n",
            "team-a",
            "create",
            "configmap",
            "settings",
            "--from-literal=LOG_LEVEL=info",
        ]),
        "configmap/settings created\n"
    );
    let listed = kubectl.ok(&[
        &as_deployer,
        "-n",
        "team-a",
        "get",
        "configmaps",
        "-o",
        "name",
    ]);
    assert_eq!(listed, "configmap/settings\n");
    let settings = kubectl.stored("/api/v1/namespaces/team-a/configmaps/settings");
    assert_eq!(settings["data"], json!({"LOG_LEVEL": "info"}));

    // A refusal comes back as a Status kubectl reads (in protobuf, as it asked).
    let refused = kubectl.run(&[
        &as_deployer,
        "-n",
        "kube-system",
        "create",
        "configmap",
        "elsewhere",
        "--from-literal=a=b",
    ]);
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        "error: failed to create configmap: configmaps is forbidden: User \
         \"system:serviceaccount:team-a:deployer\" cannot create resource \"configmaps\" in \
         API group \"\" in the namespace \"kube-system\"\n"
    );
    let exists = kubectl.run(&["create", "namespace", "team-a"]);
    assert_eq!(
        String::from_utf8_lossy(&exists.stderr),
        "Error from server (AlreadyExists): namespaces \"team-a\" already exists\n"
    );

    assert_eq!(
        kubectl.ok(&[
            "-n",
            "team-a",
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2",
        ]),
        "secret/db created\n"
    );
    let secret = kubectl.stored("/api/v1/namespaces/team-a/secrets/db");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"],
        json!({"password": "aHVudGVyMg=="}),
        "base64 of hunter2"
    );
    let read_back = kubectl.ok(&[
        "-n",
        "team-a",
        "get",
        "secret",
        "db",
        "-o",
        "go-template={{.data.password | base64decode}}",
    ]);
    assert_eq!(read_back, "hunter2");

    assert_eq!(
        kubectl.ok(&[
            "-n",
            "team-a",
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
        ]),
        "deployment.apps/web created\n"
    );
    let web = kubectl.stored("/apis/apps/v1/namespaces/team-a/deployments/web");
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(
        web["spec"]["selector"]["matchLabels"],
        json!({"app": "web"})
    );
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(web["spec"]["strategy"]["type"], "RollingUpdate");

    assert_eq!(
        kubectl.ok(&[
            "-n",
            "team-a",
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=configmaps",
        ]),
        "role.rbac.authorization.k8s.io/reader created\n"
    );
    let reader =
        kubectl.stored("/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles/reader");
    assert_eq!(
        reader["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    );

    assert_eq!(
        kubectl.ok(&[
            "-n",
            "team-a",
            "create",
            "quota",
            "compute",
            "--hard=pods=10,count/configmaps=5",
        ]),
        "resourcequota/compute created\n"
    );
    let quota = kubectl.stored("/api/v1/namespaces/team-a/resourcequotas/compute");
    assert_eq!(
        quota["spec"]["hard"],
        json!({"pods": "10", "count/configmaps": "5"})
    );
    assert_eq!(quota["status"]["used"]["count/configmaps"], "1");

    // `describe` reads through the typed clients, and lists events by field selector.
    let described = kubectl.ok(&["describe", "namespace", "team-a"]);
    for line in [
        "Name:         team-a",
        "Status:       Active",
        "  count/configmaps  1     5",
        "No LimitRange resource.",
    ] {
        assert!(shows(&described, line), "{line:?} in:\n{described}");
    }
    let described = kubectl.ok(&["-n", "team-a", "describe", "serviceaccount", "deployer"]);
    for line in [
        "Name:                deployer",
        "Namespace:           team-a",
        "Events:              <none>",
    ] {
        assert!(shows(&described, line), "{line:?} in:\n{described}");
    }
    let described = kubectl.ok(&["-n", "team-a", "describe", "deployment", "web"]);
    for line in [
        "Name:               web",
        "Replicas:           2 desired",
        "StrategyType:       RollingUpdate",
        "    Image:         nginx:1.27",
        "Events:            <none>",
    ] {
        assert!(shows(&described, line), "{line:?} in:\n{described}");
    }

    assert_eq!(
        deleted_lines(&kubectl.ok(&["-n", "team-a", "delete", "configmap", "settings"])),
        ["configmap \"settings\" deleted"]
    );
    assert!(kubectl.missing("/api/v1/namespaces/team-a/configmaps/settings"));
    assert_eq!(
        deleted_lines(&kubectl.ok(&["-n", "team-a", "delete", "deployment", "web"])),
        ["deployment.apps \"web\" deleted"]
    );
    assert!(kubectl.missing("/apis/apps/v1/namespaces/team-a/deployments/web"));
    // Waiting on a namespace's end needs watch, which the sandbox does not serve.
    assert_eq!(
        deleted_lines(&kubectl.ok(&["delete", "namespace", "team-a", "--wait=false"])),
        ["namespace \"team-a\" deleted"]
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !kubectl.missing("/api/v1/namespaces/team-a") {
        assert!(Instant::now() < deadline, "team-a was never removed");
        std::thread::sleep(Duration::from_millis(500));
    }
}
