//! The pack's own tests, run like `opa test`: every rule named `test_*` passes when it
//! evaluates to `true` (with whatever `with input as …` / `with data… as …` it sets).

use serde::{Deserialize, Serialize};

use crate::pack::{Pack, eval};
use crate::{PolicyError, pack};

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// `paddock.policies.<name>`.
    pub package: String,
    /// The rule's name, `test_…`.
    pub name: String,
    /// The file that defines it.
    pub file: String,
    pub passed: bool,
    /// Why it failed: its body did not hold, a value other than `true`, or the run-time
    /// error.
    pub error: Option<String>,
}

/// Every test of a pack, in package then source order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }

    /// The failing tests, for an error message.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

impl Pack {
    /// Runs every `test_*` rule on its own copy of the engine (no input unless the test
    /// sets one with `with`).
    pub fn run_tests(&self) -> Result<TestReport, PolicyError> {
        let mut results = Vec::new();
        for package in self.packages() {
            for (name, file) in &package.tests {
                let mut engine = self.engine();
                let (passed, error) = match eval(&mut engine, &package.rule_path(name)) {
                    Ok(serde_json::Value::Bool(true)) => (true, None),
                    Ok(serde_json::Value::Null) => {
                        (false, Some("its body did not hold".to_owned()))
                    }
                    Ok(other) => (false, Some(format!("evaluated to {other}"))),
                    Err(PolicyError::Evaluation { message, .. }) => (false, Some(message)),
                    Err(other) => (false, Some(other.to_string())),
                };
                results.push(TestResult {
                    package: pack::package_path(&package.name),
                    name: name.clone(),
                    file: file.clone(),
                    passed,
                    error,
                });
            }
        }
        Ok(TestReport { results })
    }
}
