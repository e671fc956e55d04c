//! Live progress of an operation: a bar and a spinner per in-flight step on a terminal,
//! one plain line per event otherwise (CI logs, pipes), nothing with `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use paddock_engine::{Event, EventSink, StepKind};

pub enum Progress {
    Quiet,
    Lines,
    Bars(Box<Bars>),
}

pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// The display that fits where stderr goes.
    pub fn for_terminal(json: bool) -> Progress {
        if json {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps {msg}",
                )
                .expect("valid template"),
            );
            total.enable_steady_tick(Duration::from_millis(120));
            Progress::Bars(Box::new(Bars {
                multi,
                total,
                running: Mutex::new(HashMap::new()),
            }))
        } else {
            Progress::Lines
        }
    }

    /// Prints a line above the bars (or plainly).
    pub fn println(&self, line: &str) {
        match self {
            Progress::Quiet => {}
            Progress::Lines => eprintln!("{line}"),
            Progress::Bars(b) => {
                let _ = b.multi.println(line);
            }
        }
    }

    pub fn finish(&self) {
        if let Progress::Bars(b) = self {
            b.total.finish_and_clear();
            for (_, bar) in b.running.lock().expect("bars lock").drain() {
                bar.finish_and_clear();
            }
        }
    }
}

pub(crate) fn describe(kind: StepKind, done: bool) -> &'static str {
    match (kind, done) {
        (StepKind::Create, false) => "creating",
        (StepKind::Create, true) => "created",
        (StepKind::Update, false) => "updating",
        (StepKind::Update, true) => "updated",
        (StepKind::Replace, false) => "replacing",
        (StepKind::Replace, true) => "replaced",
        (StepKind::Delete, false) => "deleting",
        (StepKind::Delete, true) => "deleted",
        (StepKind::Same, _) => "unchanged",
    }
}

impl EventSink for Progress {
    fn emit(&self, event: &Event) {
        let line = match event {
            Event::Planned { changes, .. } => {
                if let Progress::Bars(b) = self {
                    // One per stack: an operation on a server plans several.
                    b.total.inc_length(*changes as u64);
                }
                return;
            }
            Event::Reconciled { resource, outcome } => {
                format!("  ! {resource}: interrupted step settled: {outcome}")
            }
            Event::StepStarted { resource, ty, kind } => {
                if let Progress::Bars(b) = self {
                    let bar = b.multi.insert_before(&b.total, ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {msg} ({elapsed})")
                            .expect("valid template"),
                    );
                    bar.set_message(format!(
                        "{} {resource} {ty} {}",
                        kind.symbol(),
                        describe(*kind, false)
                    ));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    b.running
                        .lock()
                        .expect("bars lock")
                        .insert(resource.clone(), bar);
                    return;
                }
                format!(
                    "  {} {resource} {ty} {}...",
                    kind.symbol(),
                    describe(*kind, false)
                )
            }
            Event::StepSucceeded {
                resource,
                ty,
                kind,
                elapsed_ms,
            } => {
                if let Progress::Bars(b) = self {
                    if let Some(bar) = b.running.lock().expect("bars lock").remove(resource) {
                        bar.finish_and_clear();
                    }
                    b.total.inc(1);
                }
                format!(
                    "  {} {resource} {ty} {} ({elapsed_ms} ms)",
                    kind.symbol(),
                    describe(*kind, true)
                )
            }
            Event::StepFailed {
                resource,
                ty,
                kind,
                code,
                message,
            } => {
                if let Progress::Bars(b) = self {
                    if let Some(bar) = b.running.lock().expect("bars lock").remove(resource) {
                        bar.finish_and_clear();
                    }
                    b.total.inc(1);
                }
                let code = code
                    .as_deref()
                    .map(|c| format!("[{c}] "))
                    .unwrap_or_default();
                format!(
                    "  ✗ {resource} {ty} {} failed: {code}{message}",
                    describe(*kind, false)
                )
            }
            Event::StepSkipped { resource, reason } => format!("  · {resource} skipped: {reason}"),
            Event::Drift { resource, change } => {
                format!("  ~ {resource}: {change} outside Paddock")
            }
        };
        self.println(&line);
    }
}
