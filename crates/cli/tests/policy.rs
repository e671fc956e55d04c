//! `paddock policy test` and `paddock policy eval`: how CI runs the shipped pack's own
//! tests, and the decisions on the documented examples, with their exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `paddock` in `dir` (which decides whether `./policies` exists).
fn paddock(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or_else(|| panic!("killed: {o:?}"))
}

#[test]
fn the_shipped_pack_passes_its_own_tests() {
    // From the repository's root: `./policies`, as CI runs it.
    let o = paddock(&repo(), &["policy", "test"]);
    let out = text(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("Testing ./policies"));
    let last = out.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{out}");
    // Every policy has allow and deny tests.
    for file in [
        "environment_limit_test.rego",
        "naming_test.rego",
        "prod_approval_test.rego",
        "quota_test.rego",
        "regions_test.rego",
        "resource_types_test.rego",
    ] {
        assert!(out.contains(&format!("{file}:\n")), "{file} missing: {out}");
    }
    assert!(!out.contains("FAIL"), "{out}");

    // Elsewhere, the pack compiled into the binary: the same tests.
    let elsewhere = tempfile::tempdir().unwrap();
    let o = paddock(elsewhere.path(), &["policy", "test"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stderr).contains("Testing the shipped policy pack"));
    assert_eq!(text(&o.stdout), out, "the binary ships ./policies as it is");
}

#[test]
fn a_failing_test_fails_the_command_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("size.rego"),
        "package paddock.policies.size\n\ndeny contains \"too big\" if input.size > 3\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("size_test.rego"),
        "package paddock.policies.size\n\n\
         test_small_is_allowed if count(deny) == 0 with input as {\"size\": 1}\n\n\
         test_wrongly_expects_a_denial if count(deny) == 1 with input as {\"size\": 2}\n",
    )
    .unwrap();
    let o = paddock(dir.path(), &["policy", "test", "."]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!("failing_test", text(&o.stdout));
}

#[test]
fn a_pack_that_does_not_compile_is_invalid_input_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rego"),
        "package paddock.policies.broken\n\ndeny contains x if {\n\tx := = 1\n}\n",
    )
    .unwrap();
    let o = paddock(dir.path(), &["policy", "test", "."]);
    assert_eq!(code(&o), 2);
    assert!(
        text(&o.stderr).starts_with("error: broken.rego:4:"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn eval_prints_the_decision_and_its_exit_code_says_which() {
    let examples = repo().join("policies/examples");
    let outside = tempfile::tempdir().unwrap();
    for (example, expected_code) in [
        ("request-create-eastus.json", 6),
        ("plan-prod-quota-change.json", 7),
    ] {
        let input = examples.join(example);
        let input = input.to_str().unwrap();
        let o = paddock(outside.path(), &["policy", "eval", "--input", input]);
        assert_eq!(code(&o), expected_code, "{}", text(&o.stderr));
        insta::assert_snapshot!(format!("eval_{example}"), text(&o.stdout));
        let o = paddock(
            outside.path(),
            &["policy", "eval", "--input", input, "--json"],
        );
        assert_eq!(code(&o), expected_code);
        let decision: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(decision["outcome"].is_string(), "{decision}");
    }

    // An input the pack allows: 0. A pack given explicitly.
    let allowed = outside.path().join("allowed.json");
    std::fs::write(
        &allowed,
        r#"{"point": "request", "action": "create",
            "team": {"name": "payments", "environments": 0},
            "environment": {"name": "checkout", "exists": false, "parameters": null},
            "parameters": {"stages": ["dev"], "region": "westeurope", "quota": "small"}}"#,
    )
    .unwrap();
    let pack = repo().join("policies");
    let o = paddock(
        outside.path(),
        &[
            "policy",
            "eval",
            "--input",
            allowed.to_str().unwrap(),
            "--pack",
            pack.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Decision: allow\n");

    // Not JSON: invalid input, named.
    std::fs::write(&allowed, "region: eastus").unwrap();
    let o = paddock(
        outside.path(),
        &["policy", "eval", "--input", allowed.to_str().unwrap()],
    );
    assert_eq!(code(&o), 2);
    assert!(text(&o.stderr).contains("not JSON"), "{}", text(&o.stderr));
}
