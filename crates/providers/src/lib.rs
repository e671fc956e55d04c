//! Paddock's resource providers.
//!
//! Job: implement the engine's [`Provider`](paddock_engine::Provider) contract for each
//! family of resource types. For now the built-in ones: `random` (values generated once
//! and kept in state) and `test` (a cloud that lives in a directory, with injectable
//! latency and failures, for examples, tests and benchmarks).
//!
//! Invariants: `create` marks what it makes with its stack and the engine's creation
//! token (`ownership`), so that `find` recognises it after a crash and nothing made by
//! anyone else is adopted or deleted; `delete` of something already gone succeeds.
//!
//! Must not: touch the engine's state; providers only talk to their cloud.

pub mod azure;
pub mod clouds;
pub mod entra;
pub mod family;
pub mod github;
pub mod http;
pub mod kubernetes;
pub mod ownership;
pub mod random;
pub mod testcloud;

pub use random::RandomProvider;
pub use testcloud::{TestCloud, TestCloudOptions};
