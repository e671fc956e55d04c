//! The default pack (`policies/`): its own tests pass, and its decisions on the examples.

use std::collections::BTreeMap;
use std::path::Path;

use paddock_policy::{Outcome, shipped};

#[test]
fn every_test_of_the_shipped_pack_passes() {
    let report = shipped().unwrap().run_tests().unwrap();
    let failures: Vec<String> = report
        .failures()
        .map(|r| format!("{}.{}: {:?}", r.package, r.name, r.error))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // Every policy has tests of its own.
    let packages: std::collections::BTreeSet<&str> =
        report.results.iter().map(|r| r.package.as_str()).collect();
    assert_eq!(
        packages.into_iter().collect::<Vec<_>>(),
        [
            "paddock.policies.environment_limit",
            "paddock.policies.naming",
            "paddock.policies.prod_approval",
            "paddock.policies.quota",
            "paddock.policies.regions",
            "paddock.policies.resource_types",
        ]
    );
}

#[test]
fn the_examples_decide_as_documented() {
    let pack = shipped().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/examples");
    let mut decisions = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let input: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        decisions.insert(name, pack.evaluate(&input).unwrap());
    }
    assert_eq!(
        decisions["request-create-eastus.json"].outcome,
        Outcome::Deny
    );
    assert_eq!(
        decisions["plan-prod-quota-change.json"].outcome,
        Outcome::RequireApproval
    );
    insta::assert_json_snapshot!("examples", decisions);
}
