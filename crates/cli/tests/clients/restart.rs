//! A restart changes nothing: environments made before a restart of `paddock serve` (with
//! its in-process sandbox) or of `paddock sandbox` alone plan no change afterwards, and a
//! stage's GitHub Actions token still signs in as the stage's identity.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::rig::{
    Cli, SandboxPorts, SandboxProcess, ServeProcess, free_port, http, make_environment, read_env,
};

/// Each stack's plan summary of a fresh preview of `payments/checkout`.
fn preview(cli: &Cli) -> BTreeMap<String, String> {
    let op = cli.json(&["env", "preview", "payments", "checkout", "--wait", "--json"]);
    assert_eq!(op["state"], "succeeded", "{op}");
    op["outcome"]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let summary = p["summary"].as_str().unwrap().to_owned();
            (p["stack"].as_str().unwrap().to_owned(), summary)
        })
        .collect()
}

#[track_caller]
fn assert_nothing_to_change(plans: &BTreeMap<String, String>) {
    assert_eq!(plans.len(), 3, "{plans:?}");
    for (stack, summary) in plans {
        assert!(
            summary.starts_with("0 to create, 0 to update, 0 to replace, 0 to delete"),
            "{stack} plans a change after the restart: {summary}"
        );
    }
}

/// The dev stage's identity (its `clientId` output).
fn dev_client_id(cli: &Cli) -> String {
    let env = cli.json(&["env", "show", "payments", "checkout", "--json"]);
    env["outputs"]["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stack"] == "payments-checkout-dev")
        .and_then(|s| s["outputs"]["clientId"].as_str())
        .unwrap_or_else(|| panic!("no dev clientId in {env}"))
        .to_owned()
}

/// A workflow run of `payments-checkout` in its `dev` environment exchanges its GitHub
/// Actions token for the stage's identity, then reads the stage's resource group.
fn dev_workflow_signs_in(sandbox: &BTreeMap<String, String>, client_id: &str) {
    http(async |http| {
        let api = &sandbox["PADDOCK_SANDBOX_HTTP_URL"];
        let run: Value = http
            .post(format!(
                "{}/github-actions/tokens",
                sandbox["PADDOCK_SANDBOX_CONTROL_URL"]
            ))
            .json(&json!({
                "repository": format!("{}/payments-checkout", sandbox["PADDOCK_SANDBOX_GITHUB_ORG"]),
                "environment": "dev",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let assertion = run["value"].as_str().expect("a minted token");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", "https://management.azure.com/.default"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ];
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let r = http
            .post(format!(
                "{api}/{}/oauth2/v2.0/token",
                sandbox["PADDOCK_SANDBOX_TENANT_ID"]
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let token: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "the dev workflow cannot sign in: {token}");
        let access = token["access_token"].as_str().unwrap();
        let rg = http
            .get(format!(
                "{api}/subscriptions/{}/resourceGroups/rg-payments-checkout-dev?api-version=2021-04-01",
                sandbox["PADDOCK_SANDBOX_SUBSCRIPTION_ID"]
            ))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(rg.status(), 200, "{}", rg.text().await.unwrap());
    });
}

#[test]
fn a_restart_of_paddock_serve_leaves_every_environment_with_nothing_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let serve = ServeProcess::start(&data, port);
    let cli = Cli::for_serve(&serve, dir.path());
    make_environment(&cli);
    assert_nothing_to_change(&preview(&cli));
    let before = serve.sandbox_env.clone();
    serve.process.stop();

    let serve = ServeProcess::start(&data, port);
    assert_eq!(
        serve.sandbox_env, before,
        "the in-process sandbox's URLs and settings moved"
    );
    let cli = Cli {
        // The first start's token file is the same; the server kept its accounts.
        token: cli.token,
        ..Cli::for_serve(&serve, dir.path())
    };
    assert_nothing_to_change(&preview(&cli));
    dev_workflow_signs_in(&serve.sandbox_env, &dev_client_id(&cli));
}

#[test]
fn a_restart_of_paddock_sandbox_leaves_every_environment_with_nothing_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox_dir = dir.path().join("sandbox");
    // Ports chosen by the sandbox at its first start, and kept.
    let sandbox = SandboxProcess::start(&sandbox_dir, SandboxPorts::kept());
    let env_file = sandbox_dir.join("sandbox.env");
    let serve = ServeProcess::start_with(&dir.path().join("data"), free_port(), Some(&env_file));
    let cli = Cli::for_serve(&serve, dir.path());
    make_environment(&cli);
    let before = sandbox.env.clone();
    sandbox.process.stop();

    let sandbox = SandboxProcess::start(&sandbox_dir, SandboxPorts::kept());
    assert_eq!(sandbox.env, before, "the sandbox's URLs and settings moved");
    assert_eq!(read_env(&env_file), before);
    assert_nothing_to_change(&preview(&cli));
    dev_workflow_signs_in(&sandbox.env, &dev_client_id(&cli));
}

#[test]
fn a_kept_address_that_is_taken_stops_the_sandbox_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox_dir = dir.path().join("sandbox");
    let sandbox = SandboxProcess::start(&sandbox_dir, SandboxPorts::kept());
    let http = sandbox.get("PADDOCK_SANDBOX_HTTP_URL").to_owned();
    sandbox.process.stop();
    // Someone else takes the sandbox's port.
    let squatter = std::net::TcpListener::bind(http.trim_start_matches("http://")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["sandbox", "--data"])
        .arg(&sandbox_dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--https-listen",
            "127.0.0.1:0",
            "--control-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    drop(squatter);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(http.trim_start_matches("http://"))
            && stderr.contains("addresses.json")
            && stderr.contains("in use"),
        "{stderr}"
    );
}
