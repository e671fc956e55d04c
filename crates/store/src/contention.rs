//! Writers of one database in one process take turns here, before they touch it.
//!
//! SQLite has one write lock per file. Left to SQLite, writers that find it taken sleep and
//! poll (the busy handler, up to its 10 s timeout) while holding a pool connection: with a
//! handful of connections, a transaction that needs one more connection (a read through the
//! pool) waits on writers that wait on it, and a polling writer can lose every race for
//! seconds. So every writer of a file in this process — the platform's transactions, the
//! engine's group commit, leases, events — first takes its turn at a [`WriteGate`] (one per
//! database, shared by every pool on it): in arrival order, without holding a connection,
//! with lease renewals served before anything else waiting, so that a renewal never waits
//! behind a queue of writes. SQLite's own lock then only arbitrates between processes.
//!
//! On PostgreSQL the platform's transactions take the gate too (they are serialized by an
//! advisory lock anyway): waiting for it in process keeps them from holding pool
//! connections while they wait.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::metrics::{StoreMetrics, Writer};

/// What every handle on one database in this process shares.
pub(crate) struct Shared {
    gate: Mutex<Gate>,
    pub metrics: StoreMetrics,
}

#[derive(Default)]
struct Gate {
    /// The task holding the gate, if a task does.
    holder: Option<Holder>,
    /// Lease renewals waiting: served first.
    urgent: VecDeque<oneshot::Sender<()>>,
    waiting: VecDeque<oneshot::Sender<()>>,
}

#[derive(Clone, Copy)]
struct Holder {
    task: Option<tokio::task::Id>,
}

/// Every database opened in this process, by canonical path (SQLite) or URL (PostgreSQL).
static OPEN: Mutex<Option<HashMap<String, Weak<Shared>>>> = Mutex::new(None);

/// The shared state of the SQLite database at `path` (which must exist).
pub(crate) fn sqlite(path: &Path) -> Arc<Shared> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    of(format!("sqlite:{}", key.display()))
}

/// The shared state of the PostgreSQL database at `url`.
pub(crate) fn postgres(url: &str) -> Arc<Shared> {
    of(url.to_owned())
}

fn of(key: String) -> Arc<Shared> {
    let mut open = OPEN.lock().expect("open databases");
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(shared) = open.get(&key).and_then(Weak::upgrade) {
        return shared;
    }
    open.retain(|_, w| w.strong_count() > 0);
    let shared = Arc::new(Shared {
        gate: Mutex::default(),
        metrics: StoreMetrics::default(),
    });
    open.insert(key, Arc::downgrade(&shared));
    shared
}

/// This process's turn to write; the next waiter's when dropped. Records how long it was
/// held.
pub(crate) struct Turn {
    shared: Arc<Shared>,
    writer: Writer,
    since: Instant,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.shared.metrics.held(self.writer, self.since.elapsed());
        self.shared.release();
    }
}

/// A waiter's place in the queue. Dropped while waiting (its task cancelled), it passes
/// on a turn that was handed to it.
struct Place {
    rx: Option<oneshot::Receiver<()>>,
    shared: Arc<Shared>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.shared.release();
            }
        }
    }
}

impl Shared {
    /// Waits for this process's turn to write (lease renewals ahead of everything else
    /// waiting). Records the wait.
    pub(crate) async fn turn(self: &Arc<Self>, writer: Writer) -> Turn {
        let asked = Instant::now();
        // Waiting for the turn this task holds would wait forever.
        assert!(
            !self.held_by_this_task(),
            "a write asked for the write lock from the task that holds it (a write through \
             `Db` while a `WriteTx` is open?): write through the WriteTx"
        );
        let rx = {
            let mut gate = self.gate.lock().expect("write gate");
            if gate.holder.is_none() {
                gate.holder = Some(Holder {
                    task: tokio::task::try_id(),
                });
                None
            } else {
                let (tx, rx) = oneshot::channel();
                if writer == Writer::Lease {
                    gate.urgent.push_back(tx);
                } else {
                    gate.waiting.push_back(tx);
                }
                Some(rx)
            }
        };
        if let Some(rx) = rx {
            let mut place = Place {
                rx: Some(rx),
                shared: self.clone(),
            };
            if let Some(rx) = place.rx.as_mut() {
                // Only `release` sends, and it never drops a sender unsent.
                let _ = rx.await;
            }
            place.rx = None;
            self.gate.lock().expect("write gate").holder = Some(Holder {
                task: tokio::task::try_id(),
            });
        }
        self.metrics.waited(writer, asked.elapsed());
        Turn {
            shared: self.clone(),
            writer,
            since: Instant::now(),
        }
    }

    /// Hands the gate to the next waiter (renewals first), or leaves it free.
    fn release(&self) {
        let mut gate = self.gate.lock().expect("write gate");
        loop {
            let Some(next) = gate.urgent.pop_front().or_else(|| gate.waiting.pop_front()) else {
                gate.holder = None;
                return;
            };
            // A waiter that gave up refuses it: then the next one.
            if next.send(()).is_ok() {
                // Held, until the new holder names itself.
                gate.holder = Some(Holder { task: None });
                return;
            }
        }
    }

    /// Whether the task running now holds the write turn: a read through the pool from
    /// there would read around its own transaction (and, with every connection taken,
    /// wait on itself).
    pub(crate) fn held_by_this_task(&self) -> bool {
        let Some(me) = tokio::task::try_id() else {
            return false;
        };
        let gate = self.gate.lock().expect("write gate");
        gate.holder.is_some_and(|h| h.task == Some(me))
    }

    /// Runs one write statement in its turn, retrying (with backoff, for up to `BUSY_FOR`)
    /// while another process holds SQLite's lock past the busy timeout.
    pub(crate) async fn in_turn<T, F, Fut>(
        self: &Arc<Self>,
        writer: Writer,
        mut write: F,
    ) -> Result<T, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let _turn = self.turn(writer).await;
        self.retry_busy(&mut write).await
    }

    /// Retries `write` while the database answers busy or locked, with backoff, for up to
    /// `BUSY_FOR`; each retry is counted.
    pub(crate) async fn retry_busy<T, F, Fut>(&self, write: &mut F) -> Result<T, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match write().await {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_FOR => {
                    self.metrics.busy_retry();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }
}

/// How long a write keeps retrying while the database is busy.
const BUSY_FOR: Duration = Duration::from_secs(60);

/// SQLite's `SQLITE_BUSY` or `SQLITE_LOCKED` (and their extended codes): another connection
/// holds what the statement needs; nothing was written.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let primary = code
                .as_deref()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            matches!(primary, Some(5 | 6)) || db.message().contains("database is locked")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        of(format!("test:{}", rand_key()))
    }

    fn rand_key() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[tokio::test]
    async fn writers_take_turns_in_order_and_a_renewal_goes_first() {
        let shared = shared();
        let first = shared.turn(Writer::Platform).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, writer) in [
            ("a", Writer::Platform),
            ("b", Writer::State),
            ("renewal", Writer::Lease),
        ] {
            let (shared, order) = (shared.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = shared.turn(writer).await;
                order.lock().unwrap().push(name);
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["renewal", "a", "b"]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let shared = shared();
        let first = shared.turn(Writer::Platform).await;
        let gave_up = {
            let shared = shared.clone();
            // Cancelled before its turn comes.
            tokio::spawn(async move { drop(shared.turn(Writer::Platform).await) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), shared.turn(Writer::Platform))
            .await
            .expect("the gate is free again");
    }

    #[tokio::test]
    async fn the_holder_knows_it_holds_the_turn() {
        let shared = shared();
        let held = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let _turn = shared.turn(Writer::Platform).await;
                shared.held_by_this_task()
            })
        };
        assert!(held.await.unwrap());
        let other = {
            let shared = shared.clone();
            tokio::spawn(async move { shared.held_by_this_task() })
        };
        assert!(!other.await.unwrap());
    }
}
