//! A stage's kubeconfig — the `KUBECONFIG` secret its GitHub environment holds — used with
//! kubectl, unchanged, against `paddock serve`'s in-process sandbox: the team is free
//! inside its namespace, and refused everywhere else and on its guardrails.

use std::process::Command;

use crate::rig::{Cli, Clients, ServeProcess, free_port, make_environment};

/// kubectl with the stage's kubeconfig: whether it succeeded, and what it printed.
fn kubectl(clients: &Clients, kubeconfig: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(&clients.kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    // Both streams: `auth can-i` answers `no` on stdout with a failing exit.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const WORKLOAD: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: checkout-settings
data:
  LOG_LEVEL: info
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  labels: {app: checkout}
spec:
  replicas: 2
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels: {app: checkout}
    spec:
      containers:
      - name: web
        image: ghcr.io/paddock/checkout:1.0.0
";

#[test]
fn a_stage_kubeconfig_works_with_kubectl_inside_its_namespace_and_nowhere_else() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(&dir.path().join("data"), free_port());
    let cli = Cli::for_serve(&serve, dir.path());
    make_environment(&cli);
    let env = cli.json(&["env", "show", "payments", "checkout", "--reveal", "--json"]);
    let dev = env["outputs"]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stack"] == "payments-checkout-dev")
        .unwrap();
    let kubeconfig = dir.path().join("dev.kubeconfig");
    std::fs::write(&kubeconfig, dev["outputs"]["kubeconfig"].as_str().unwrap()).unwrap();

    // Inside: the namespace comes from the kubeconfig's context.
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["config", "view", "--minify", "-o", "jsonpath={..namespace}"],
    );
    assert!(ok && out == "payments-checkout-dev", "{out}");
    let workload = dir.path().join("workload.yaml");
    std::fs::write(&workload, WORKLOAD).unwrap();
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["apply", "-f", workload.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("configmap/checkout-settings created")
            && out.contains("deployment.apps/checkout created"),
        "{out}"
    );
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["apply", "-f", workload.to_str().unwrap()],
    );
    assert!(
        ok && out.contains("deployment.apps/checkout unchanged"),
        "{out}"
    );
    let (ok, out) = kubectl(&clients, &kubeconfig, &["get", "deployments"]);
    assert!(ok, "{out}");
    assert!(out.starts_with("NAME") && out.contains("checkout"), "{out}");
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["auth", "can-i", "create", "deployments"],
    );
    assert!(ok && out.trim() == "yes", "{out}");

    // Its guardrails and everything outside: refused, as a cluster refuses.
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["auth", "can-i", "delete", "networkpolicies"],
    );
    assert!(!ok && out.trim() == "no", "{out}");
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["get", "networkpolicies", "-o", "name"],
    );
    assert!(ok, "the guardrails are readable: {out}");
    let policy = out.lines().next().expect("a network policy").to_owned();
    let (ok, out) = kubectl(&clients, &kubeconfig, &["delete", &policy]);
    assert!(!ok && out.contains("Forbidden"), "{out}");
    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["-n", "payments-checkout-test", "get", "configmaps"],
    );
    assert!(!ok && out.contains("Forbidden"), "{out}");
    let (ok, out) = kubectl(&clients, &kubeconfig, &["get", "namespaces"]);
    assert!(!ok && out.contains("Forbidden"), "{out}");

    let (ok, out) = kubectl(
        &clients,
        &kubeconfig,
        &["delete", "-f", workload.to_str().unwrap()],
    );
    assert!(ok && out.contains("deleted"), "{out}");
}
