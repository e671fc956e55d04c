//! A pack's behaviour: compiling (errors located), deciding (deny over approval over
//! allow, reasons sorted), its own tests, its digest and its limits.

use std::collections::BTreeMap;

use paddock_policy::{MAX_INPUT_BYTES, Outcome, Pack, PolicyError};
use serde_json::json;

fn pack(files: &[(&str, &str)]) -> Result<Pack, PolicyError> {
    Pack::from_files(
        &files
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    )
}

const LIMITS: &str = r#"
package paddock.policies.limits

deny contains {"rule": "max-size", "field": "size", "message": sprintf("size %d is above %d", [input.size, data.settings.max])} if {
	input.size > data.settings.max
}

approve contains {"message": "big sizes need a second look", "approvers": "team-admin"} if {
	input.size > 5
}
"#;

const LIMITS_TEST: &str = r#"
package paddock.policies.limits

test_small_is_allowed if {
	count(deny) == 0 with input as {"size": 1}
}

test_the_limit_is_data if {
	count(deny) == 1 with input as {"size": 2} with data.settings.max as 1
}

test_this_one_fails if {
	count(deny) == 1 with input as {"size": 1}
}
"#;

const DATA: &str = r#"{"settings": {"max": 10}}"#;

#[test]
fn decisions_collect_every_package_deny_first_then_approval() {
    let other = r#"
package paddock.policies.other

deny contains "plain strings are messages" if input.size > 100
"#;
    let p = pack(&[
        ("limits.rego", LIMITS),
        ("other.rego", other),
        ("data.json", DATA),
    ])
    .unwrap();
    let decisions: BTreeMap<&str, _> = [
        ("allow", json!({"size": 1})),
        ("approval", json!({"size": 7})),
        ("deny", json!({"size": 200})),
    ]
    .into_iter()
    .map(|(name, input)| (name, p.evaluate(&input).unwrap()))
    .collect();
    assert_eq!(decisions["allow"].outcome, Outcome::Allow);
    assert_eq!(decisions["approval"].outcome, Outcome::RequireApproval);
    assert_eq!(decisions["deny"].outcome, Outcome::Deny);
    insta::assert_json_snapshot!("decisions", decisions);
}

#[test]
fn the_pack_runs_its_own_tests_with_input_and_data_overridden() {
    let p = pack(&[
        ("limits.rego", LIMITS),
        ("limits_test.rego", LIMITS_TEST),
        ("data.json", DATA),
    ])
    .unwrap();
    let report = p.run_tests().unwrap();
    assert_eq!((report.passed(), report.failed()), (2, 1));
    let failed: Vec<_> = report.failures().map(|r| r.name.as_str()).collect();
    assert_eq!(failed, ["test_this_one_fails"]);
    let first = &report.results[0];
    assert_eq!(first.package, "paddock.policies.limits");
    assert_eq!(first.file, "limits_test.rego");
}

#[test]
fn a_syntax_error_names_its_file_and_line() {
    let broken = "package paddock.policies.broken\n\ndeny contains x if {\n\tx := = 1\n}\n";
    let err = pack(&[("broken.rego", broken)]).unwrap_err();
    match &err {
        PolicyError::Compile { file, line, .. } => {
            assert_eq!(file, "broken.rego");
            assert_eq!(*line, 4);
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("broken.rego:4:"), "{err}");
}

#[test]
fn an_unsafe_variable_in_a_head_is_reported_with_its_line_when_reached() {
    // regorus checks a rule head's variables when the rule's body first holds, not when
    // the module is analysed.
    let unsafe_var = "package paddock.policies.u\n\ndeny contains msg if {\n\tinput.x == 1\n}\n";
    let p = pack(&[("u.rego", unsafe_var)]).unwrap();
    assert_eq!(
        p.evaluate(&json!({"x": 2})).unwrap().outcome,
        Outcome::Allow
    );
    let err = p.evaluate(&json!({"x": 1})).unwrap_err().to_string();
    assert!(
        err.starts_with("evaluating paddock.policies.u.deny: u.rego:3:15: var msg is unsafe"),
        "{err}"
    );
}

#[test]
fn a_module_outside_the_policies_namespace_is_refused() {
    let err = pack(&[("x.rego", "package other\n\ndeny contains \"x\"\n")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.rego: the package must be `paddock.policies.<name>`, not `other`"
    );
}

#[test]
fn only_rego_modules_and_data_json_make_a_pack() {
    let err = pack(&[("notes.txt", "hello")]).unwrap_err();
    assert!(err.to_string().starts_with("notes.txt: "), "{err}");
    let err = pack(&[("../x.rego", LIMITS)]).unwrap_err();
    assert!(err.to_string().contains("no directories"), "{err}");
    let err = pack(&[("limits.rego", LIMITS), ("data.json", "[1]")]).unwrap_err();
    assert_eq!(err.to_string(), "data.json: must be a JSON object");
    assert!(matches!(
        pack(&[("data.json", DATA)]),
        Err(PolicyError::Empty)
    ));
}

#[test]
fn the_digest_covers_names_and_contents() {
    let a = pack(&[("limits.rego", LIMITS)]).unwrap();
    let same = pack(&[("limits.rego", LIMITS)]).unwrap();
    let renamed = pack(&[("limits2.rego", LIMITS)]).unwrap();
    let edited = pack(&[("limits.rego", &LIMITS.replace("second look", "look"))]).unwrap();
    assert!(a.digest().starts_with("sha256:"));
    assert_eq!(a.digest(), same.digest());
    assert_ne!(a.digest(), renamed.digest());
    assert_ne!(a.digest(), edited.digest());
}

#[test]
fn a_reason_that_is_not_a_reason_is_an_error_naming_the_rule() {
    let p = pack(&[(
        "bad.rego",
        "package paddock.policies.bad\n\ndeny contains 7 if true\n",
    )])
    .unwrap();
    let err = p.evaluate(&json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad.deny: an element must be an object or a string, found a number"
    );
}

#[test]
fn an_oversized_input_is_refused_before_evaluation() {
    let p = pack(&[("limits.rego", LIMITS), ("data.json", DATA)]).unwrap();
    let big = json!({"size": 1, "padding": "x".repeat(MAX_INPUT_BYTES)});
    assert!(matches!(
        p.evaluate(&big),
        Err(PolicyError::InputTooLarge { .. })
    ));
}

#[test]
fn a_runaway_query_on_hostile_input_is_stopped() {
    // Every pair of every pair of a large list: far more work than the time limit allows.
    let quadratic = r#"
package paddock.policies.slow

deny contains "slow" if {
	n := count([1 | some a in input.items; some b in input.items; some c in input.items; a + b + c == -1])
	n > 0
}
"#;
    let p = pack(&[("slow.rego", quadratic)]).unwrap();
    let items: Vec<u32> = (0..2000).collect();
    let err = p.evaluate(&json!({ "items": items })).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Evaluation { rule, .. } if rule == "paddock.policies.slow.deny"),
        "{err:?}"
    );
}
