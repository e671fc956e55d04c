//! Where an environment's time went: the engine reports how long each part of each stack
//! and of each step took ([`Recorder`]), the providers what each resource's calls cost
//! ([`UrnCost`]); this module follows the chain of steps that set each stack's end
//! (each step's latest-finishing dependency, back from the step that finished last) and
//! splits the environment's wall time into the injected latency of the requests on that
//! chain and everything else, by cause. The parts add up to the wall time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use paddock_engine::{Event, EventSink, Phase, Timing};
use paddock_platform::StackRun;
use paddock_providers::family::UrnCost;

use super::{deps_of, urn};

/// One reported timing, relative to the recorder's origin.
#[derive(Clone, Debug)]
struct Span {
    stack: String,
    resource: Option<String>,
    phase: Phase,
    start: Duration,
    end: Duration,
}

/// An event sink that keeps every timing the engine reports.
pub struct Recorder {
    origin: Instant,
    spans: Mutex<Vec<Span>>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder {
            origin: Instant::now(),
            spans: Mutex::new(Vec::new()),
        }
    }
}

impl Recorder {
    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans lock").clone()
    }
}

impl EventSink for Recorder {
    fn emit(&self, _: &Event) {}

    fn timing(&self, t: &Timing<'_>) {
        let start = t.started.saturating_duration_since(self.origin);
        self.spans.lock().expect("spans lock").push(Span {
            stack: t.stack.to_owned(),
            resource: t.resource.map(str::to_owned),
            phase: t.phase,
            start,
            end: start + t.elapsed,
        });
    }
}

/// The causes an environment's wall time is split into, in the order printed.
pub const CAUSES: [(&str, &str); 17] = [
    (
        "latency",
        "injected latency of the requests on the critical chain",
    ),
    (
        "requestOverhead",
        "those requests beyond the latency: the sandbox's handling, timers, loopback",
    ),
    (
        "githubTurnWait",
        "waiting for GitHub's one-mutation-at-a-time turn",
    ),
    ("tokens", "getting tokens for requests"),
    ("retryBackoff", "pauses before retried requests"),
    (
        "providerOther",
        "provider time between requests: polls' pauses, sealing, JSON",
    ),
    ("journalBegin", "journal entries written before calls"),
    (
        "journalComplete",
        "results recorded, journal entries removed",
    ),
    ("prepare", "inputs evaluated, diffed, checked"),
    ("slotWait", "waiting for a provider call slot"),
    (
        "scheduling",
        "between a dependency's end and its dependent's start",
    ),
    ("createStack", "stack records made (data key wrapped)"),
    ("lease", "stack leases taken and released"),
    ("stateRead", "state read, decrypted, journal checked"),
    ("stackRefs", "referenced stacks' outputs read"),
    ("planAndOutputs", "planning, and outputs stored"),
    (
        "betweenStacks",
        "between one stack's end and the next one's start",
    ),
];

/// An environment's wall time by cause (milliseconds), and the requests on its chain.
pub struct Breakdown {
    pub wall: Duration,
    pub causes: BTreeMap<&'static str, Duration>,
    pub chain_requests: u64,
    /// Per stack: its wall time and its critical chain of resources.
    pub stacks: Vec<(String, Duration, Vec<String>)>,
}

/// Splits the wall time of the environment made of `runs`.
pub fn environment(
    recorder: &Recorder,
    runs: &[StackRun],
    costs: &HashMap<String, UrnCost>,
    latency: Duration,
) -> Breakdown {
    let spans = recorder.spans();
    let mut causes: BTreeMap<&'static str, Duration> =
        CAUSES.iter().map(|(c, _)| (*c, Duration::ZERO)).collect();
    let mut add = |cause: &'static str, d: Duration| {
        *causes.get_mut(cause).expect("a known cause") += d;
    };
    let mut stacks = Vec::new();
    let mut chain_requests = 0;
    let (mut first, mut last) = (Duration::MAX, Duration::ZERO);
    let mut previous_end: Option<Duration> = None;
    for run in runs {
        let of_stack = |phase: Phase| {
            spans
                .iter()
                .find(|s| s.stack == run.stack && s.resource.is_none() && s.phase == phase)
                .map(|s| (s.start, s.end))
                .unwrap_or_default()
        };
        let phase_time = |phase: Phase| {
            let (start, end) = of_stack(phase);
            end - start
        };
        let (stack_start, _) = of_stack(Phase::CreateStack);
        let (_, stack_end) = of_stack(Phase::LeaseRelease);
        first = first.min(stack_start);
        last = last.max(stack_end);
        if let Some(end) = previous_end {
            add("betweenStacks", stack_start.saturating_sub(end));
        }
        previous_end = Some(stack_end);
        add("createStack", phase_time(Phase::CreateStack));
        add(
            "lease",
            phase_time(Phase::LeaseAcquire) + phase_time(Phase::LeaseRelease),
        );
        add("stateRead", phase_time(Phase::Recover));
        add("stackRefs", phase_time(Phase::StackRefs));
        add(
            "planAndOutputs",
            phase_time(Phase::Plan) + phase_time(Phase::Outputs),
        );
        // What the stack's own phases do not cover (the gaps between them).
        let covered: Duration = [
            Phase::CreateStack,
            Phase::LeaseAcquire,
            Phase::Recover,
            Phase::StackRefs,
            Phase::Plan,
            Phase::Apply,
            Phase::Outputs,
            Phase::LeaseRelease,
        ]
        .into_iter()
        .map(phase_time)
        .sum();
        add(
            "planAndOutputs",
            (stack_end - stack_start).saturating_sub(covered),
        );

        // The apply, along its critical chain.
        let (apply_start, apply_end) = of_stack(Phase::Apply);
        let step = |name: &str, phase: Phase| {
            spans
                .iter()
                .filter(|s| {
                    s.stack == run.stack && s.resource.as_deref() == Some(name) && s.phase == phase
                })
                .fold(None, |acc: Option<(Duration, Duration)>, s| match acc {
                    None => Some((s.start, s.end)),
                    Some((a, b)) => Some((a.min(s.start), b.max(s.end))),
                })
        };
        let took =
            |name: &str, phase: Phase| step(name, phase).map_or(Duration::ZERO, |(a, b)| b - a);
        let names: Vec<&str> = run
            .graph
            .resources
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let deps = deps_of(&run.graph);
        let end_of = |i: usize| step(names[i], Phase::Step).map(|(_, e)| e);
        let mut chain = Vec::new();
        let mut at = (0..names.len())
            .filter(|&i| end_of(i).is_some())
            .max_by_key(|&i| end_of(i));
        let mut chain_end = at.and_then(end_of).unwrap_or(apply_start);
        while let Some(i) = at {
            chain.push(i);
            at = deps[i]
                .iter()
                .copied()
                .filter(|&d| end_of(d).is_some())
                .max_by_key(|&d| end_of(d));
        }
        chain.reverse();
        let mut cursor = apply_start;
        for &i in &chain {
            let name = names[i];
            let (start, end) = step(name, Phase::Step).expect("on the chain: it ran");
            add("scheduling", start.saturating_sub(cursor));
            let call = took(name, Phase::ProviderCall);
            let parts = [
                ("prepare", took(name, Phase::Prepare)),
                ("slotWait", took(name, Phase::SlotWait)),
                ("journalBegin", took(name, Phase::JournalBegin)),
                ("journalComplete", took(name, Phase::JournalComplete)),
            ];
            for (cause, d) in parts {
                add(cause, d);
            }
            let measured: Duration = parts.iter().map(|(_, d)| *d).sum::<Duration>() + call;
            add("scheduling", (end - start).saturating_sub(measured));
            let cost = costs
                .get(&urn(&run.stack, &run.graph.resources[i].ty, name))
                .copied()
                .unwrap_or_default();
            let r = cost.requests;
            chain_requests += r.requests;
            let injected = latency * r.requests as u32;
            add("latency", injected.min(r.wire));
            add("requestOverhead", r.wire.saturating_sub(injected));
            add("githubTurnWait", r.turn_wait);
            add("tokens", r.auth);
            add("retryBackoff", r.backoff);
            add(
                "providerOther",
                call.saturating_sub(r.wire + r.turn_wait + r.auth + r.backoff),
            );
            cursor = end;
        }
        chain_end = chain_end.max(cursor);
        // After the chain: the deletions, and the walk winding down.
        add("scheduling", apply_end.saturating_sub(chain_end));
        stacks.push((
            run.stack.clone(),
            stack_end - stack_start,
            chain.iter().map(|&i| names[i].to_owned()).collect(),
        ));
    }
    Breakdown {
        wall: last.saturating_sub(first),
        causes,
        chain_requests,
        stacks,
    }
}

/// Milliseconds, to a tenth.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

impl Breakdown {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "wallMs": ms(self.wall),
            "chainRequests": self.chain_requests,
            "byCauseMs": self.causes.iter().map(|(c, d)| (*c, ms(*d))).collect::<BTreeMap<_, _>>(),
            "stacks": self.stacks.iter().map(|(s, d, chain)| serde_json::json!({
                "stack": s, "wallMs": ms(*d), "criticalChain": chain,
            })).collect::<Vec<_>>(),
        })
    }

    /// A table for people: each cause, its time and its share of the wall time.
    pub fn table(&self) -> String {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let mut out = format!(
            "{:<18} {:>9} {:>6}  {}\n",
            "where the time went", "ms", "share", ""
        );
        for (cause, what) in CAUSES {
            let d = self.causes[cause];
            out.push_str(&format!(
                "{cause:<18} {:>9.1} {:>5.1}%  {what}\n",
                ms(d),
                d.as_secs_f64() / wall * 100.0
            ));
        }
        let sum: Duration = self.causes.values().sum();
        out.push_str(&format!(
            "{:<18} {:>9.1} {:>5.1}%  (wall {:.1} ms)\n",
            "sum",
            ms(sum),
            sum.as_secs_f64() / wall * 100.0,
            ms(self.wall)
        ));
        for (stack, d, chain) in &self.stacks {
            out.push_str(&format!(
                "  {stack}: {:.1} ms, chain {}\n",
                ms(*d),
                chain.join(" → ")
            ));
        }
        out
    }
}
