//! `paddock policy`: a policy pack's own tests (`test`), a decision on an input document
//! (`eval`), both local; and the packs a server enforces (`list`, `show`, `publish`, in
//! [`crate::remote`]).
//!
//! `test` prints each test like `opa test -v` and closes with `N passed, N failed`
//! (exit 1 when any failed). `eval` exits 0 (allow), [`exit::DENIED`] or
//! [`exit::NEEDS_APPROVAL`]; a pack that does not compile is [`exit::INVALID`], naming
//! the file and line.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use paddock_policy::{Decision, Outcome, Pack, Reason, TestReport};

use crate::{Global, UsageError, exit};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run a pack's own tests (rules named `test_*`), like `opa test -v`.
    Test {
        /// The pack's directory (default: `./policies` if it exists, else the pack this
        /// binary ships).
        dir: Option<PathBuf>,
    },
    /// Evaluate an input document (a request or a plan; see `policies/README.md`) and
    /// print the decision with its reasons. Exit code: 0 allow, 6 deny, 7 approval needed.
    Eval {
        /// The input document, JSON (`-` reads standard input).
        #[arg(long, short)]
        input: PathBuf,
        /// The pack's directory (default: `./policies` if it exists, else the shipped pack).
        #[arg(long)]
        pack: Option<PathBuf>,
    },
}

/// Runs a policy command.
pub async fn run(cmd: PolicyCommand, g: &Global) -> anyhow::Result<u8> {
    match cmd {
        PolicyCommand::Test { dir } => {
            let (pack, from) = load(dir.as_deref())?;
            eprintln!("Testing {from}");
            let report = pack.run_tests()?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_report(&report));
            }
            Ok(if report.failed() == 0 {
                exit::OK
            } else {
                exit::FAILED
            })
        }
        PolicyCommand::Eval { input, pack } => {
            let (pack, _) = load(pack.as_deref())?;
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&input)
                    .map_err(|e| UsageError(format!("--input {}: {e}", input.display())))?
            };
            let document: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| UsageError(format!("--input {}: not JSON: {e}", input.display())))?;
            let decision = pack.evaluate(&document)?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&decision)?);
            } else {
                print!("{}", render_decision(&decision));
            }
            Ok(outcome_code(decision.outcome))
        }
    }
}

/// The exit code of a decision.
pub fn outcome_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Allow => exit::OK,
        Outcome::Deny => exit::DENIED,
        Outcome::RequireApproval => exit::NEEDS_APPROVAL,
    }
}

/// The pack in `dir`, else `./policies`, else the shipped one; and where it came from.
fn load(dir: Option<&Path>) -> anyhow::Result<(Pack, String)> {
    let local = Path::new("policies");
    match dir {
        Some(dir) => Ok((Pack::from_dir(dir)?, dir.display().to_string())),
        None if local.is_dir() => Ok((Pack::from_dir(local)?, "./policies".into())),
        None => Ok((paddock_policy::shipped()?, "the shipped policy pack".into())),
    }
}

/// Each test under its file, `opa test -v` style, then `N passed, N failed`.
pub fn render_report(report: &TestReport) -> String {
    let mut out = String::new();
    let mut file = None;
    for r in &report.results {
        if file != Some(&r.file) {
            if file.is_some() {
                out.push('\n');
            }
            out.push_str(&format!("{}:\n", r.file));
            file = Some(&r.file);
        }
        let verdict = if r.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!("data.{}.{}: {verdict}\n", r.package, r.name));
        if let Some(error) = r.error.as_deref().filter(|_| !r.passed) {
            out.push_str(&format!("  {error}\n"));
        }
    }
    if !report.results.is_empty() {
        out.push_str(&"-".repeat(80));
        out.push('\n');
    }
    out.push_str(&format!(
        "{} passed, {} failed\n",
        report.passed(),
        report.failed()
    ));
    out
}

/// The outcome, then one line per reason: `deny [rule] field: message`.
pub fn render_decision(decision: &Decision) -> String {
    let mut out = format!("Decision: {}\n", decision.outcome);
    for (word, reasons) in [
        ("deny", &decision.denials),
        ("approve", &decision.approvals),
    ] {
        for reason in reasons {
            out.push_str(&format!("  {word:<7} {}\n", reason_line(reason)));
        }
    }
    out
}

/// `[rule] field: message (approvers: …)`, the field and approvers when present.
pub fn reason_line(reason: &Reason) -> String {
    let field = reason
        .field
        .as_deref()
        .map(|f| format!("{f}: "))
        .unwrap_or_default();
    let approvers = reason
        .approvers
        .as_deref()
        .map(|a| format!(" (approvers: {a})"))
        .unwrap_or_default();
    format!("[{}] {field}{}{approvers}", reason.rule, reason.message)
}
