//! `paddock-policy`: guardrails as code. A policy pack is a set of Rego modules (and an
//! optional `data.json`) evaluated in-process with `regorus`, at two points: on a request
//! (who asks what of which blueprint) and on a plan (every resource change).
//!
//! Convention (see `policies/README.md`): each module is `package paddock.policies.<name>`
//! and may define the sets `deny` and `approve`, whose elements are objects
//! `{"rule", "field", "message"}` (`approve` also `"approvers"`), or plain strings (taken
//! as the message). Rules named `test_*` are the pack's own tests, run like `opa test`.
//! Any deny makes the decision [`Outcome::Deny`]; else any approve makes it
//! [`Outcome::RequireApproval`]; else [`Outcome::Allow`].
//!
//! Invariants: a [`Pack`] only exists compiled (every module parsed and analysed, its
//! package checked, its data an object), so evaluating it can fail only on the input or at
//! run time; decisions are deterministic (reasons sorted); an evaluation is bounded (input
//! size, and a time limit that stops a runaway query); the [`Pack::digest`] covers every
//! file's name and content.
//!
//! Must not: know anything of Paddock's other crates (the server builds the input
//! documents), read the network or the clock into a decision, or perform I/O other than
//! [`Pack::from_dir`] reading its directory.

mod decision;
mod pack;
mod shipped;
mod testing;

use std::path::PathBuf;

pub use decision::{Decision, Outcome, Reason};
pub use pack::{MAX_INPUT_BYTES, Pack};
pub use shipped::{shipped, shipped_files};
pub use testing::{TestReport, TestResult};

/// What can go wrong loading or evaluating a pack. Each names the file (and line, for
/// Rego that does not compile) or the rule at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A module does not parse or does not pass analysis (e.g. an unsafe variable).
    #[error("{file}:{line}:{column}: {message}")]
    Compile {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },
    /// A file the pack cannot take: a name that is neither `*.rego` nor `data.json`, a
    /// module outside `paddock.policies.<name>`, a `data.json` that is not a JSON object.
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// The pack's directory or one of its files could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A pack without a single module decides nothing; refused rather than allowing all.
    #[error("the policy pack has no .rego module")]
    Empty,
    /// The input document is larger than [`MAX_INPUT_BYTES`].
    #[error("the input document is {size} bytes; at most {limit} bytes are evaluated")]
    InputTooLarge { size: usize, limit: usize },
    /// A rule failed while evaluating (a run-time error, or the time limit was reached).
    #[error("evaluating {rule}: {message}")]
    Evaluation { rule: String, message: String },
    /// A `deny` or `approve` rule produced something that is not a reason.
    #[error("{rule}: {message}")]
    Malformed { rule: String, message: String },
}
