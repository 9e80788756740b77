//! Runs a scenario's timeline against any [`Cluster`] and judges it with the
//! [`crate::oracle`]: the one interpretation of the scenario format,
//! shared by the simulated and the real backend.

use std::time::Duration;

use crate::cluster::Cluster;
use crate::oracle::{self, Violation};
use crate::scenario::{Action, Scenario, Timing};
use crate::trace::TraceKind;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The first violated invariant, expectation or await; `None` for a pass.
    pub failure: Option<Violation>,
    /// The run's time when it ended.
    pub end: Duration,
}

impl Outcome {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

fn groups<'a>(a: &'a Option<Vec<u32>>, b: &'a Option<Vec<u32>>) -> Option<(&'a [u32], &'a [u32])> {
    Some((a.as_deref()?, b.as_deref()?))
}

/// Runs `scenario` on `cluster`: the timeline, then the settle tail, then the
/// end checks and invariants. Stops at the first failure.
pub fn execute<C: Cluster>(scenario: &Scenario, cluster: &mut C) -> Outcome {
    let failure = run_timeline(scenario, cluster).err();
    let end = cluster.now();
    let verdict = failure.as_ref().map_or_else(|| "pass".to_string(), |v| v.to_string());
    cluster.with_record(|r| r.trace.push(end, None, TraceKind::Verdict { outcome: verdict }));
    Outcome { failure, end }
}

fn run_timeline<C: Cluster>(scenario: &Scenario, cluster: &mut C) -> Result<(), Violation> {
    let mut previous_end = Duration::ZERO;
    let mut safety = oracle::SafetyChecker::default();
    for (index, step) in scenario.steps.iter().enumerate() {
        let start = match step.timing {
            Timing::Immediately => previous_end,
            Timing::At(at) => at,
            Timing::After(delay) => previous_end + delay,
        };
        cluster.run_until(start, |_| false);
        let now = cluster.now();
        cluster.with_record(|r| r.trace.push(now, None, TraceKind::Step { index, action: format!("{:?}", step.action) }));
        apply(cluster, &step.action, index, step.line)?;
        previous_end = cluster.now();
        if let Some(v) = cluster.with_record(|r| safety.check(r, previous_end)) {
            return Err(v);
        }
    }
    let settle_start = scenario.duration.saturating_sub(scenario.settle).max(previous_end);
    cluster.run_until(settle_start, |_| false);
    cluster.heal(None);
    cluster.loss(0.0, None);
    cluster.run_until(settle_start + scenario.settle, |_| false);
    let end = cluster.now();
    cluster.with_record(|r| {
        if let Some(v) = safety.check(r, end) {
            return Err(v);
        }
        for condition in &scenario.expects {
            if let Some(detail) = oracle::check(r, condition) {
                return Err(Violation { code: "expect", name: "end check", detail, at: end });
            }
        }
        // Safety was just checked incrementally; the liveness invariants remain.
        oracle::convergence(r, end).or_else(|| oracle::delivery(r, end)).map_or(Ok(()), Err)
    })
}

fn apply<C: Cluster>(cluster: &mut C, action: &Action, index: usize, line: usize) -> Result<(), Violation> {
    match action {
        Action::Broadcast { from, tag, size } => cluster.broadcast(*from, tag, *size),
        Action::Direct { from, to, tag, size } => cluster.direct(*from, *to, tag, *size),
        Action::Partition { a, b, oneway } => cluster.partition(a, b, *oneway),
        Action::Heal { a, b } => cluster.heal(groups(a, b)),
        Action::Latency { value, a, b } => cluster.latency(value.min, value.max, groups(a, b)),
        Action::Loss { rate, a, b } => cluster.loss(*rate, groups(a, b)),
        Action::Crash { node } => cluster.crash(*node),
        Action::Restart { node } => cluster.restart(*node),
        Action::Rebind { node, port } => cluster.rebind(*node, *port),
        Action::Await { condition, timeout } => {
            let deadline = cluster.now() + *timeout;
            if !cluster.run_until(deadline, |r| oracle::check(r, condition).is_none()) {
                let detail = cluster.with_record(|r| oracle::check(r, condition)).unwrap_or_default();
                return Err(Violation {
                    code: "await",
                    name: "timed out",
                    detail: format!("step {index} (line {line}) waited {timeout:?}: {detail}"),
                    at: cluster.now(),
                });
            }
        }
        Action::Expect { condition } => {
            if let Some(detail) = cluster.with_record(|r| oracle::check(r, condition)) {
                return Err(Violation {
                    code: "expect",
                    name: "failed",
                    detail: format!("step {index} (line {line}): {detail}"),
                    at: cluster.now(),
                });
            }
        }
    }
    Ok(())
}
