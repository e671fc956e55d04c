//! GitHub: PyGithub, unchanged, against `paddock sandbox` over HTTPS, doing what
//! Paddock's GitHub provider does (`github/provider.py`).

use serde_json::{Value, json};

use crate::rig::{Clients, SandboxPorts, SandboxProcess, succeeded};

#[test]
fn pygithub_does_what_the_github_provider_does() {
    let Some(clients) = Clients::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::start(&dir.path().join("sandbox"), SandboxPorts::kept());
    let out = clients.python(include_str!("github/provider.py"), &sandbox.env);
    let seen: Value =
        serde_json::from_str(&succeeded("PyGithub", &out)).expect("the script prints JSON");

    let org = sandbox.get("PADDOCK_SANDBOX_GITHUB_ORG");
    // A team's URL is its id route, and PyGithub reached the team through it.
    let team_url = seen["team_url"].as_str().unwrap();
    assert!(
        team_url.contains("/organizations/") && team_url.contains("/team/"),
        "{team_url}"
    );
    assert_eq!(seen["members"], json!(["ada", "paddock-admin"]));
    assert_eq!(seen["permission"], json!(true));
    assert!(
        seen["readme"]
            .as_str()
            .unwrap()
            .starts_with("# service-template"),
        "{seen}"
    );
    for name in ["staging", "production"] {
        let environment = &seen["environments"][name];
        assert_eq!(environment["reviewers"], json!(["Team", "User"]), "{name}");
        // Listed by name only: a secret's value never comes back.
        let secrets = environment["secrets"].as_array().unwrap();
        assert_eq!(secrets.len(), 1, "{name}");
        assert_eq!(secrets[0]["name"], "DEPLOY_TOKEN");
        assert!(secrets[0].get("value").is_none() && secrets[0].get("encrypted_value").is_none());
        assert_eq!(environment["variables"], json!({"REGION": "westeurope"}));
        // The sealed box PyGithub made opens, in the sandbox, to what was sealed.
        assert_eq!(environment["arrived"], json!(format!("token-for-{name}")));
        assert!(
            environment["html_url"]
                .as_str()
                .unwrap()
                .contains(&format!("/{org}/payments/"))
        );
    }
    assert_eq!(
        seen["environments"]["production"]["rules"],
        json!(["required_reviewers", "wait_timer"])
    );
    assert_eq!(seen["listed"], json!(["production", "staging"]));
    assert_eq!(seen["team_after_delete"], json!(404));
    assert_eq!(seen["repo_after_delete"], json!(404));
}
