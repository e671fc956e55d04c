//! Official clients, unchanged, against `paddock sandbox` and `paddock serve`: kubectl, the
//! Azure CLI, schemathesis and the clouds' client libraries for Python (see `rig.rs` for
//! where they come from). Each module is one client family.

mod azure;
mod deploy;
mod fuzz_api;
mod github;
mod kubectl;
mod kubectl_typed;
mod kubernetes_python;
mod restart;
mod rig;
mod stage_kubectl;

use rig::{Clients, SandboxPorts, SandboxProcess, succeeded};

/// The rig itself: kubectl reads the kubeconfig `paddock sandbox` writes and reaches it.
#[test]
fn kubectl_reaches_the_sandbox_through_the_kubeconfig_it_writes() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let out = std::process::Command::new(&clients.kubectl)
        .arg("--kubeconfig")
        .arg(sandbox.get("PADDOCK_SANDBOX_KUBECONFIG"))
        .args(["version", "--output", "json"])
        .output()
        .unwrap();
    let version: serde_json::Value =
        serde_json::from_str(&succeeded("kubectl version", &out)).expect("kubectl prints JSON");
    assert!(
        version["serverVersion"]["gitVersion"].is_string(),
        "{version}"
    );
}
