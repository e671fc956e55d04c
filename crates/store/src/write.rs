//! What both stores share: the fenced writes that go through a group-commit writer, and
//! the decoding of stored JSON.

use paddock_engine::state::{Lease, ResourceRecord, StateChange, StoreError};
use tokio::sync::oneshot;

/// A write that goes through the group-commit writer, fenced by a lease.
pub(crate) struct Write {
    pub stack: String,
    /// The operation that must hold the stack's lease for the write to apply.
    pub lease: String,
    pub change: Change,
}

pub(crate) enum Change {
    JournalBegin {
        entry_id: String,
        entry: String,
    },
    JournalComplete {
        entry_id: String,
        change: StateChange,
    },
    PutResource {
        // Boxed: a record is several times larger than the other changes.
        record: Box<ResourceRecord>,
    },
    RemoveResource {
        instance: String,
    },
    SetOutputs {
        outputs: String,
    },
}

/// A write and where its outcome goes.
pub(crate) type Pending = (Write, oneshot::Sender<Result<(), StoreError>>);

/// The most writes one group commit takes.
pub(crate) const MAX_BATCH: usize = 512;

pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("malformed stored JSON: {e}"))
}

pub(crate) fn writer_stopped() -> StoreError {
    StoreError::Backend("the database writer has stopped".into())
}

/// Parses JSON rows into a vector allocated once.
pub(crate) fn parse_all<T: serde::de::DeserializeOwned>(
    rows: &[String],
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(serde_json::from_str(row).map_err(json_err)?);
    }
    Ok(out)
}

pub(crate) fn parse_lease(text: Option<String>) -> Result<Option<Lease>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(json_err))
        .transpose()
}
