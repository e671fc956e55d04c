//! The deployment artifacts under `deploy/` hold: each Kustomize overlay renders with
//! `kubectl kustomize`, and every object it renders is valid against the official schemas
//! of a current Kubernetes release (`kubernetes-validate --strict`, from PyPI); the
//! settings they carry are ones `paddock serve` reads; the probes and the scrape path are
//! served; the systemd unit passes `systemd-analyze verify` where systemd is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::rig::{Clients, ServeProcess, free_port, http, succeeded};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The overlay rendered by kubectl, written to `out`, and its objects as JSON.
fn render(clients: &Clients, overlay: &str, out: &Path) -> Vec<Value> {
    let dir = repo().join("deploy/kubernetes/overlays").join(overlay);
    let rendered = Command::new(&clients.kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap();
    let yaml = succeeded(&format!("kubectl kustomize {overlay}"), &rendered);
    std::fs::write(out, &yaml).unwrap();
    let to_json = "import json,sys,yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))";
    let json = Command::new(clients.bin("python"))
        .args(["-c", to_json])
        .arg(out)
        .output()
        .unwrap();
    serde_json::from_str(&succeeded("reading the rendered YAML", &json)).unwrap()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// Every `PADDOCK_*` name in `text`.
fn settings_named(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"PADDOCK_[A-Z_]+").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

#[test]
fn the_kustomize_overlays_render_valid_objects_that_paddock_understands() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for (overlay, replicas) in [("single-sqlite", 1), ("postgres", 3)] {
        let file = dir.path().join(format!("{overlay}.yaml"));
        let objects = render(&clients, overlay, &file);
        let validate = Command::new(clients.bin("kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .arg(&file)
            .output()
            .unwrap();
        let report = succeeded(&format!("kubernetes-validate {overlay}"), &validate);
        assert!(!report.contains("ERROR"), "{overlay}: {report}");

        let deployments = of_kind(&objects, "Deployment");
        assert_eq!(deployments.len(), 1, "{overlay}");
        let d = deployments[0];
        assert_eq!(d["spec"]["replicas"], replicas, "{overlay}");
        let pod = &d["spec"]["template"];
        let c = &pod["spec"]["containers"][0];
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(
            pod["metadata"]["annotations"]["prometheus.io/path"],
            "/metrics"
        );
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            of_kind(&objects, "PodDisruptionBudget").len(),
            1,
            "{overlay}"
        );

        // The settings file is one `paddock serve` accepts (unknown keys are refused).
        let config = of_kind(&objects, "ConfigMap")[0]["data"]["config.toml"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = dir.path().join(format!("{overlay}.toml"));
        std::fs::write(&path, &config).unwrap();
        paddock_server::Config::load(Some(&path), |_| None)
            .unwrap_or_else(|e| panic!("{overlay}'s config.toml: {e}"));
        // Every variable it sets is documented.
        for name in settings_named(&std::fs::read_to_string(&file).unwrap()) {
            assert!(
                readme.contains(&name),
                "{overlay} sets {name}, which README does not document"
            );
        }
    }
}

#[test]
fn the_probes_and_the_scrape_path_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start(&dir.path().join("data"), free_port());
    http(async |http| {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = http
                .get(format!("{}{path}", serve.url))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
    });
}

#[test]
fn the_systemd_unit_and_its_settings_hold() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/paddock.service")).unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for name in settings_named(&unit) {
        assert!(
            readme.contains(&name),
            "the unit sets {name}, which README does not document"
        );
    }
    paddock_server::Config::load(Some(&repo().join("deploy/systemd/config.toml")), |_| None)
        .expect("deploy/systemd/config.toml");
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the unit's syntax is not verified here");
        return;
    };
    // The unit as installed, pointing at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let installed = dir.path().join("paddock.service");
    std::fs::write(
        &installed,
        unit.replace("/usr/local/bin/paddock", env!("CARGO_BIN_EXE_paddock")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&installed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("paddock.service"))
        .collect();
    assert!(problems.is_empty(), "systemd-analyze verify: {stderr}");
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}
