//! Stack state, the journal of in-flight steps, leases, and the store contract.
//!
//! The engine owns the meaning; a store (SQLite, PostgreSQL) owns durability. Values reach
//! the store already sealed (secrets encrypted), so no store ever sees a secret in clear.
//! Every change is one small write: a journal entry before a mutating provider call, and
//! its completion (journal entry removed + resource row written, atomically) after.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::graph::ResourceOptions;
use crate::secrets::{Sealed, SecretsError, StackCipher};
use crate::value::Props;

/// One resource instance in a stack's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceState {
    /// Unique to this instance (the creation token): a replaced resource briefly has two.
    pub instance: String,
    pub name: String,
    pub ty: String,
    /// The provider's id of the object.
    pub id: String,
    pub inputs: Props,
    pub outputs: Props,
    /// Names of the resources this one depended on when last written.
    pub dependencies: Vec<String>,
    pub options: ResourceOptions,
    /// The old instance of a create-before-delete replacement, awaiting deletion.
    pub delete_pending: bool,
    /// Drift accepted in place of the blueprint's values, by property: a map of
    /// `declared` (what the blueprint said when the drift was accepted) and `accepted`
    /// (the cloud's value kept instead; absent when the cloud had removed the property).
    /// While the blueprint still declares `declared`, plans use `accepted`; once it
    /// declares something else, the blueprint wins again.
    pub accepted: Props,
    /// Taken over by `import` rather than created: destroy may delete it without
    /// Paddock's ownership mark.
    pub imported: bool,
    /// Recorded before Paddock marked what it made (the store's migration 0009 says so of
    /// every record it found): its object may carry no mark, and destroy deletes it on
    /// the state's word, as it did then.
    pub unmarked: bool,
}

impl ResourceState {
    /// Whether a destroy may delete the object without Paddock's mark on it.
    pub fn deletable_unmarked(&self) -> bool {
        self.imported || self.unmarked
    }
}

/// A resource as stored: values sealed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRecord {
    pub instance: String,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub id: String,
    pub inputs: Sealed,
    pub outputs: Sealed,
    // Defaults are left out: a large stack's state is read in full on every plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    #[serde(default, skip_serializing_if = "ResourceOptions::is_default")]
    pub options: ResourceOptions,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_pending: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Sealed>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmarked: bool,
}

impl ResourceState {
    pub fn to_record(&self, cipher: &StackCipher) -> ResourceRecord {
        ResourceRecord {
            instance: self.instance.clone(),
            name: self.name.clone(),
            ty: self.ty.clone(),
            id: self.id.clone(),
            inputs: cipher.seal_props(&self.inputs),
            outputs: cipher.seal_props(&self.outputs),
            dependencies: self.dependencies.clone(),
            options: self.options.clone(),
            delete_pending: self.delete_pending,
            accepted: (!self.accepted.is_empty()).then(|| cipher.seal_props(&self.accepted)),
            imported: self.imported,
            unmarked: self.unmarked,
        }
    }

    pub fn from_record(r: ResourceRecord, cipher: &StackCipher) -> Result<Self, SecretsError> {
        Ok(ResourceState {
            inputs: cipher.open_props(r.inputs)?,
            outputs: cipher.open_props(r.outputs)?,
            instance: r.instance,
            name: r.name,
            ty: r.ty,
            id: r.id,
            dependencies: r.dependencies,
            options: r.options,
            delete_pending: r.delete_pending,
            accepted: match r.accepted {
                Some(sealed) => cipher.open_props(sealed)?,
                None => Props::new(),
            },
            imported: r.imported,
            unmarked: r.unmarked,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    Create,
    Update,
    Delete,
}

/// A mutating step that was started: written durably before the provider call.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub op_id: String,
    pub kind: JournalKind,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// Create: the new instance (its token). Update/delete: the instance acted on.
    pub instance: String,
    /// Provider id, when the object already exists (update, delete).
    pub id: Option<String>,
    /// Sealed inputs the call was made with.
    pub inputs: Sealed,
    pub dependencies: Vec<String>,
    pub options: ResourceOptions,
    /// Create as part of a replacement: the instance it replaces.
    pub replaces: Option<String>,
    pub started_at_ms: i64,
}

/// What completing a journal entry does to the state, atomically with removing the entry.
#[derive(Clone, Debug)]
pub enum StateChange {
    /// Write the resource; mark `retire` (the replaced instance) as pending deletion.
    Upsert {
        record: Box<ResourceRecord>,
        retire: Option<String>,
    },
    Remove {
        instance: String,
    },
    /// The step turned out to do nothing (e.g. reconciliation found no object).
    Nothing,
}

/// A stack's state as stored.
#[derive(Clone, Debug)]
pub struct StoredStack {
    pub name: String,
    pub wrapped_key: String,
    pub created_at_ms: i64,
    pub resources: Vec<ResourceRecord>,
    pub journal: Vec<JournalEntry>,
    pub outputs: Sealed,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StackSummary {
    pub name: String,
    pub created_at_ms: i64,
    pub resources: u64,
    pub pending: u64,
    pub lease: Option<Lease>,
}

/// Who runs an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Holder {
    /// The current process, as seen by the OS.
    pub fn this_process() -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Holder {
            user,
            host,
            pid: std::process::id(),
        }
    }

    /// True when the holder is a process on this host that no longer exists: its lease
    /// can be taken over at once instead of waiting for expiry.
    pub fn is_dead_local_process(&self) -> bool {
        let here = Holder::this_process();
        if self.host != here.host || self.pid == 0 {
            return false;
        }
        // SAFETY: kill with signal 0 only checks for the process's existence.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, 0) };
        rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

/// The right to run one operation on a stack, until it expires unless renewed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub op_id: String,
    pub operation: String,
    pub holder: Holder,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
}

#[derive(Clone, Debug)]
pub enum LeaseOutcome {
    Acquired,
    /// Someone else holds an unexpired lease.
    Busy(Lease),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stack `{0}` does not exist")]
    NoSuchStack(String),
    #[error("stack `{0}` already exists")]
    StackExists(String),
    #[error("the lease on stack `{0}` was lost (expired and taken over)")]
    LeaseLost(String),
    #[error("state store: {0}")]
    Backend(String),
}

/// Who writes: a stack, and the operation that must still hold its lease for the write
/// to apply. Fencing stops a holder that was paused past its lease's expiry from
/// overwriting the work of the operation that took over.
#[derive(Clone, Copy, Debug)]
pub struct Fence<'a> {
    pub stack: &'a str,
    pub op_id: &'a str,
}

/// Durable state for stacks. Implementations must make each method atomic.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn create_stack(
        &self,
        name: &str,
        wrapped_key: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Removes a stack and everything recorded for it.
    async fn remove_stack(&self, name: &str) -> Result<(), StoreError>;
    async fn list_stacks(&self) -> Result<Vec<StackSummary>, StoreError>;
    async fn load(&self, name: &str) -> Result<StoredStack, StoreError>;
    /// Only the stack's key and outputs (for stack references).
    async fn load_outputs(&self, name: &str) -> Result<(String, Sealed), StoreError>;

    // Writes are fenced: each applies only while `fence.op_id` holds the stack's lease,
    // else fails with `LeaseLost` and changes nothing.

    /// Records a step about to be made. Durable when this returns.
    async fn journal_begin(&self, fence: Fence<'_>, entry: &JournalEntry)
    -> Result<(), StoreError>;
    /// Removes the journal entry and applies its effect, in one transaction.
    async fn journal_complete(
        &self,
        fence: Fence<'_>,
        entry_id: &str,
        change: StateChange,
    ) -> Result<(), StoreError>;
    /// Writes a resource outside any journaled step (refresh, import).
    async fn put_resource(
        &self,
        fence: Fence<'_>,
        record: &ResourceRecord,
    ) -> Result<(), StoreError>;
    /// Forgets a resource outside any journaled step (refresh found it deleted).
    async fn remove_resource(&self, fence: Fence<'_>, instance: &str) -> Result<(), StoreError>;
    async fn set_outputs(&self, fence: Fence<'_>, outputs: &Sealed) -> Result<(), StoreError>;

    /// Acquires the stack's lease if it is free, expired, or held by `replacing` (an op id
    /// whose holder is known to be dead).
    async fn acquire_lease(
        &self,
        stack: &str,
        lease: &Lease,
        now_ms: i64,
        replacing: Option<&str>,
    ) -> Result<LeaseOutcome, StoreError>;
    /// Extends the lease; `LeaseLost` if it is no longer ours.
    async fn renew_lease(
        &self,
        stack: &str,
        op_id: &str,
        expires_at_ms: i64,
    ) -> Result<(), StoreError>;
    async fn release_lease(&self, stack: &str, op_id: &str) -> Result<(), StoreError>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// RFC 3339 rendering of a millisecond timestamp, for messages.
pub fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
