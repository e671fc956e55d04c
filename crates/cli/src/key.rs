//! `paddock key`: the master key ring — list, add, rotate (re-wrap every data key under a
//! new primary, in batches, resumable), retire. Acts on the database and the ring file
//! directly, like `audit verify --offline`: run it where both are (on a server's host, or
//! `kubectl exec` into a replica).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use paddock_engine::keyring::KeyRing;
use paddock_store::db::Db;
use paddock_store::keyring::{self, KeyStatus, RotateOptions, RotationStart};

use crate::{Global, exit, workspace};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// The master keys: id, when made, which is primary, how many data keys each wraps.
    List,
    /// Add a new key to the ring, not yet used. Copy the ring to every replica (and
    /// restart them), then `paddock key rotate` makes it the primary.
    Add,
    /// Make a key the primary and re-wrap every data key under it, in batches (one
    /// transaction each). Interrupted, it resumes where it stopped when run again.
    Rotate {
        /// The key to rotate to (default: the newest key of the ring never used, as
        /// `key add` leaves it; else a new key, added to this ring).
        #[arg(long, value_name = "ID")]
        to: Option<String>,
        /// Data keys re-wrapped per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
        /// Stop after this many batches (to spread a large rotation over several runs).
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Retire a key: refused while it is the primary or wraps any data key; then removed
    /// from this ring.
    Retire {
        /// The key's id (`paddock key list`).
        id: String,
        /// Only mark it retired in the database; leave the ring file alone (a read-only
        /// copy, as in a Kubernetes pod: remove the key's line from the Secret instead).
        #[arg(long)]
        keep_in_ring: bool,
    },
}

pub async fn run(cmd: KeyCommand, g: &Global) -> anyhow::Result<u8> {
    if let KeyCommand::Add = cmd {
        // Only the file: the key is used once `rotate` makes it the primary.
        let ring = KeyRing::open_or_create(&workspace::key_path(g))?;
        return add(&ring, g);
    }
    // The store opens (and migrates) the database before the platform layer reads it.
    let (_store, key) = workspace::open_keyed_store(g).await?;
    let ring = key.ring().clone();
    let db = Db::connect(&workspace::database_url(g)).await?;
    match cmd {
        KeyCommand::List => list(&ring, &db, g).await,
        KeyCommand::Add => add(&ring, g),
        KeyCommand::Rotate {
            to,
            batch_size,
            max_batches,
        } => rotate(&ring, &db, to, batch_size, max_batches, g).await,
        KeyCommand::Retire { id, keep_in_ring } => {
            let held = keyring::retire(&ring, &db, &id, !keep_in_ring).await?;
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"id": id, "retired": true, "removedFromRing": held})
                );
            } else {
                println!(
                    "Retired key {id}; {} {}.\nRemove its line from every other copy of the \
                     ring too (the Kubernetes Secret).",
                    match (held, keep_in_ring) {
                        (true, _) => "removed it from",
                        (false, true) => "left it in",
                        (false, false) => "it was not in",
                    },
                    ring.path().display()
                );
            }
            Ok(exit::OK)
        }
    }
}

fn add(ring: &KeyRing, g: &Global) -> anyhow::Result<u8> {
    let info = ring.add()?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"id": info.id, "created": info.created})
        );
    } else {
        println!(
            "Added key {} to {} (not used yet).\nCopy this ring to every replica and restart \
             them, then run `paddock key rotate`.",
            info.id,
            ring.path().display()
        );
    }
    Ok(exit::OK)
}

async fn list(ring: &KeyRing, db: &Db, g: &Global) -> anyhow::Result<u8> {
    let keys = keyring::list(ring, db).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(exit::OK);
    }
    println!(
        "{:<20} {:<21} {:<8} {:>9}  NOTE",
        "KEY", "CREATED", "PRIMARY", "DATA KEYS"
    );
    for k in &keys {
        println!(
            "{:<20} {:<21} {:<8} {:>9}  {}",
            k.id,
            k.created.as_deref().unwrap_or("-"),
            if k.primary { "yes" } else { "" },
            k.data_keys,
            note(k, ring)
        );
    }
    Ok(exit::OK)
}

fn note(k: &KeyStatus, ring: &KeyRing) -> String {
    let mut notes = Vec::new();
    if k.retired {
        notes.push("retired".to_owned());
    }
    if !k.in_ring {
        notes.push(format!("not in {}", ring.path().display()));
    }
    if k.in_ring && !k.primary && k.data_keys == 0 && !k.retired {
        notes.push("unused".to_owned());
    }
    notes.join(", ")
}

async fn rotate(
    ring: &KeyRing,
    db: &Db,
    to: Option<String>,
    batch_size: i64,
    max_batches: Option<u64>,
    g: &Global,
) -> anyhow::Result<u8> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let on_signal = interrupted.clone();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.store(true, Ordering::SeqCst);
        }
    });
    let display = Display::new(g.json);
    let mut batches = 0u64;
    let options = RotateOptions { to, batch_size };
    let report = keyring::rotate(ring, db, &options, |start, rewrapped| {
        batches += 1;
        display.batch(start, rewrapped);
        !interrupted.load(Ordering::SeqCst) && max_batches.is_none_or(|m| batches < m)
    })
    .await;
    listener.abort();
    display.finish();
    let report = report?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let start = &report.start;
        if start.generated {
            println!(
                "Made key {} and added it to {}: replicas reading another copy of the ring \
                 need its line.",
                start.to_key,
                ring.path().display()
            );
        }
        if let Some(before) = start.resumed_after {
            println!(
                "Resumed the rotation to key {} ({before} data key(s) re-wrapped before).",
                start.to_key
            );
        }
        if report.finished {
            println!(
                "Rotated to key {}: {} data key(s) re-wrapped in {} batch(es); every data key \
                 is wrapped by it. Retire the old key(s) with `paddock key retire ID`.",
                start.to_key, report.rewrapped, report.batches
            );
        } else {
            println!(
                "Stopped: {} data key(s) re-wrapped under key {} in {} batch(es), {} left. Run \
                 `paddock key rotate` again to resume.",
                report.rewrapped, start.to_key, report.batches, report.left
            );
        }
    }
    Ok(if report.finished || !interrupted.load(Ordering::SeqCst) {
        exit::OK
    } else {
        exit::CANCELLED
    })
}

/// Rotation progress: a bar on a terminal, a line per batch otherwise, nothing with
/// `--json`.
enum Display {
    Quiet,
    Lines,
    Bar(ProgressBar),
}

impl Display {
    fn new(json: bool) -> Display {
        use std::io::IsTerminal;
        if json {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} data keys re-wrapped {msg}",
                )
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Bar(bar)
        } else {
            Display::Lines
        }
    }

    fn batch(&self, start: &RotationStart, rewrapped: i64) {
        match self {
            Display::Quiet => {}
            Display::Lines => eprintln!(
                "re-wrapped {rewrapped}/{} data key(s) under key {}",
                start.to_rewrap, start.to_key
            ),
            Display::Bar(bar) => {
                bar.set_length(start.to_rewrap);
                bar.set_position(rewrapped as u64);
                bar.set_message(format!("under key {}", start.to_key));
            }
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
