//! Runs a scenario's timeline against any [`Cluster`] and judges it with the
//! system's properties: the one interpreter of the scenario format, shared
//! by the simulated and the real backend.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::cluster::Cluster;
use crate::engine::coverage::{signature, Signature};
use crate::engine::links::settle;
use crate::history::{EventKind, History, Skip};
use crate::property::{panic_message, Coverage, Judge, Violation};
use crate::scenario::{Action, Aim, Call, Condition, NodeChange, NodeIdx, Scenario, Scope, Step, Timing};
use crate::storage::DiskFault;
use crate::system::System;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The first violated property, expectation or await; `None` for a pass.
    pub failure: Option<Violation>,
    /// The run's time when it ended.
    pub end: Duration,
    /// Which coverage goals the run reached.
    pub coverage: Vec<Coverage>,
    /// What the history saw (see [`crate::engine::coverage`]).
    pub signature: Signature,
}

impl Outcome {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// A finished run of a scenario, on any backend.
#[derive(Debug, Clone)]
pub struct Run<S: System> {
    /// The seed it ran with.
    pub seed: u64,
    /// Pass, or the first failure, and the coverage reached.
    pub outcome: Outcome,
    /// Everything observed, the verdict last.
    pub history: History<S>,
}

impl<S: System> Run<S> {
    /// The digest of the run's canonical history.
    pub fn digest(&self) -> crate::history::Digest {
        self.history.digest()
    }
}

/// A system's typed operation or condition from a validated scenario.
fn typed<T: serde::de::DeserializeOwned>(call: &Call, system: &str) -> T {
    call.typed().unwrap_or_else(|e| {
        panic!("`{}` is not valid for system `{system}` ({e}): validate the scenario first", call.key)
    })
}

/// Why `condition` does not hold now, or `None`. A condition without a node
/// must hold for every live node.
pub fn unmet<S: System>(
    system: &S,
    history: &History<S>,
    node: Option<NodeIdx>,
    condition: &S::Condition,
) -> Option<String> {
    match node {
        Some(node) => system.check(history, node, condition).err(),
        None => history.live().find_map(|node| system.check(history, node, condition).err()),
    }
}

/// The code of the failure a panic inside a run becomes (in the system, the
/// backend or the harness): a run never panics its caller.
pub const PANIC: &str = "panic";

/// The failure of a run that panicked at `at`. A backend that must end a
/// run with a failure of its own unwinds with the [`Violation`] as the
/// payload (`std::panic::resume_unwind(Box::new(violation))`): that is the
/// failure, as it is.
pub fn panicked(panic: &(dyn std::any::Any + Send), at: Duration) -> Violation {
    match panic.downcast_ref::<Violation>() {
        Some(violation) => violation.clone(),
        None => Violation::new(PANIC, "the run panicked", panic_message(panic), at),
    }
}

/// Runs `scenario` on `cluster`: the timeline, then the settle tail, then the
/// final phase (its `[[final]]` steps, if any), then the end checks and
/// properties. Stops at the first failure; a panic anywhere
/// in the run (a node, the backend, the harness) is its failure
/// ([`PANIC`]), never the caller's.
pub fn execute<S: System, C: Cluster<S>>(scenario: &Scenario, cluster: &mut C) -> Outcome {
    let system = cluster.recorder().system().clone();
    let properties: Vec<_> = system
        .properties()
        .into_iter()
        .filter(|p| !p.judges() || scenario.properties.is_empty() || scenario.properties.iter().any(|c| c == p.code))
        .collect();
    let mut judge = Judge::new(&properties);
    let timeline = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Interpreter { system: &*system, cluster: &mut *cluster, judge: &mut judge, crashed: BTreeMap::new() }
            .timeline(scenario)
    }));
    let failure = match timeline {
        Ok(result) => result.err(),
        Err(panic) => Some(panicked(&*panic, cluster.now())),
    };
    let end = cluster.now();
    let verdict = failure.as_ref().map_or_else(|| "pass".to_string(), |v| v.to_string());
    cluster.recorder().push_at(end, None, EventKind::Verdict { outcome: verdict });
    let signature = cluster.recorder().read(signature);
    Outcome { failure, end, coverage: judge.coverage(), signature }
}

/// The one interpreter of a scenario's timeline, over a cluster.
struct Interpreter<'a, S: System, C> {
    system: &'a S,
    cluster: &'a mut C,
    judge: &'a mut Judge<S>,
    /// The nodes crashes aimed at each role hit, in order.
    crashed: BTreeMap<String, Vec<NodeIdx>>,
}

impl<S: System, C: Cluster<S>> Interpreter<'_, S, C> {
    fn note(&self, node: Option<NodeIdx>, event: EventKind<S>) {
        self.cluster.recorder().push_at(self.cluster.now(), node, event);
    }

    fn alive(&self, node: NodeIdx) -> bool {
        self.cluster.recorder().read(|h| h.node(node).alive)
    }

    fn safety(&mut self) -> Result<(), Violation> {
        let judge = &mut *self.judge;
        self.cluster.recorder().read(|h| judge.advance(h))
    }

    /// Lets time pass until `done` holds or `deadline` is reached (whether
    /// `done` held), judging safety at every event: a violation ends the
    /// wait at once and is the run's failure, whatever step is running.
    fn run_until(&mut self, deadline: Duration, mut done: impl FnMut(&History<S>) -> bool) -> Result<bool, Violation> {
        let judge = &mut *self.judge;
        let held = self.cluster.run_until(deadline, |h| judge.advance(h).is_err() || done(h));
        self.safety()?;
        Ok(held)
    }

    /// A node that should run and does not fails the run: a system that
    /// cannot start must not pass by doing nothing.
    fn started(&self, node: NodeIdx) -> Result<(), Violation> {
        if self.alive(node) {
            return Ok(());
        }
        let why = self.cluster.recorder().read(|h| {
            h.events().iter().rev().find_map(|e| match &e.event {
                EventKind::StartFailed { error } if e.node == Some(node) => Some(format!("start failed: {error}")),
                _ => None,
            })
        });
        let detail = format!("node {node} is not running: {}", why.unwrap_or_else(|| "it never started".into()));
        Err(Violation::new("start", "a node did not start", detail, self.cluster.now()))
    }

    fn timeline(mut self, scenario: &Scenario) -> Result<(), Violation> {
        let refused = scenario.steps.iter().find_map(|step| {
            let change = match &step.action {
                Action::Aimed { aim: Aim::Node(change), .. } => *change,
                action => action.node_change()?.1,
            };
            let why = self.cluster.refuses(&change)?;
            Some(format!("step at line {} ({}): {why}", step.line, step.action.name()))
        });
        if let Some(detail) = refused {
            return Err(Violation::new("backend", "a fault this backend cannot inject", detail, self.cluster.now()));
        }
        for node in 0..self.cluster.size() {
            self.started(node)?;
        }
        let mut previous_end = Duration::ZERO;
        for (index, step) in scenario.steps.iter().enumerate() {
            previous_end = self.step(index, step, previous_end)?;
        }
        let settle_start = scenario.duration.saturating_sub(scenario.settle).max(previous_end);
        self.run_until(settle_start, |_| false)?;
        self.note(None, EventKind::Settle);
        for change in settle(&scenario.network) {
            self.cluster.apply_links(&change, &Scope::Every);
        }
        for node in 0..self.cluster.size() {
            self.cluster.disk(node, DiskFault::None);
        }
        self.run_until(settle_start + scenario.settle, |_| false)?;
        if !scenario.finals.is_empty() {
            self.final_phase(scenario)?;
        }
        let end = self.cluster.now();
        self.safety()?;
        for condition in &scenario.expects {
            if let Some(detail) = self.unmet(condition) {
                return Err(Violation::new("expect", "end check", detail, end));
            }
        }
        let judge = &mut *self.judge;
        self.cluster.recorder().read(|h| judge.finish(h, end))
    }

    /// Runs one step (`index` in the history) once its time has come,
    /// `previous_end` being when the step before it finished; returns when
    /// this one finished.
    fn step(&mut self, index: usize, step: &Step, previous_end: Duration) -> Result<Duration, Violation> {
        let start = match step.timing {
            Timing::Immediately => previous_end,
            Timing::At(at) => at,
            Timing::After(delay) => previous_end + delay,
        };
        self.run_until(start, |_| false)?;
        match &step.action {
            // Resolved now, and recorded as the node it hit: the step
            // event carries the fault as if it had named the node (what
            // every reader of the history folds), the fact after it the
            // role. A file keeps the role: its replay resolves the same.
            Action::Aimed { role, aim } => match self.holder(role, aim) {
                Ok(node) => {
                    let action = aim.at(node, self.cluster.size());
                    self.note(None, EventKind::Step { index, action: action.clone() });
                    self.note(Some(node), EventKind::Aimed { step: index, role: role.clone() });
                    self.apply(&action, index, step.line)?;
                }
                Err(why) => {
                    self.note(None, EventKind::Step { index, action: step.action.clone() });
                    self.note(None, EventKind::Skipped { step: index, why });
                }
            },
            action => {
                self.note(None, EventKind::Step { index, action: action.clone() });
                self.apply(action, index, step.line)?;
            }
        }
        if let Some(wait) = step.wait {
            let deadline = self.cluster.now() + wait;
            self.run_until(deadline, |h| h.step_completed(index))?;
        }
        self.safety()?;
        Ok(self.cluster.now())
    }

    /// The final phase, after the settle tail: with every fault still
    /// healed (crashed nodes stay down), the `[[final]]` steps run like the
    /// timeline's, numbered after it; then the run waits until each final
    /// operation has completed, at most `settle` longer. One that has not
    /// is still pending when the run ends, and the properties judge it so.
    fn final_phase(&mut self, scenario: &Scenario) -> Result<(), Violation> {
        self.note(None, EventKind::Final);
        let first = scenario.steps.len();
        let mut previous_end = self.cluster.now();
        for (i, step) in scenario.finals.iter().enumerate() {
            previous_end = self.step(first + i, step, previous_end)?;
        }
        // The operations handed to a running node (with no faults, one
        // down now was down when its step came, and the step was skipped).
        let invoked: Vec<usize> = (first..first + scenario.finals.len())
            .filter(|&index| match &scenario.finals[index - first].action {
                Action::Op(call) => {
                    self.alive(crate::system::Operation::node(&typed::<S::Op>(call, self.system.name())))
                }
                _ => false,
            })
            .collect();
        let deadline = self.cluster.now() + scenario.settle;
        self.run_until(deadline, |h| invoked.iter().all(|&index| h.step_completed(index)))?;
        Ok(())
    }

    fn unmet(&self, condition: &Condition) -> Option<String> {
        let check: S::Condition = typed(&condition.check, self.system.name());
        self.cluster.recorder().read(|h| unmet(self.system, h, condition.node, &check))
    }

    /// The node a step aimed at `role` hits now: the system's holder of the
    /// role, judged from the history; for a `restart`, the node the latest
    /// crash aimed at the role took down that is still down. `Err` says why
    /// there is none.
    fn holder(&mut self, role: &str, aim: &Aim) -> Result<NodeIdx, Skip> {
        if *aim == Aim::Node(NodeChange::Restart) {
            let crashed = self.crashed.entry(role.to_string()).or_default();
            let alive = |node| self.cluster.recorder().read(|h| h.node(node).alive);
            let down = crashed.iter().rposition(|&node| !alive(node));
            return down.map(|i| crashed.remove(i)).ok_or_else(|| Skip::NoneDown { role: role.to_string() });
        }
        let system = self.system;
        let node = self.cluster.recorder().read(|h| system.role(h, role));
        let node =
            node.filter(|&n| n < self.cluster.size()).ok_or_else(|| Skip::NoHolder { role: role.to_string() })?;
        if *aim == Aim::Node(NodeChange::Crash) && self.alive(node) {
            self.crashed.entry(role.to_string()).or_default().push(node);
        }
        Ok(node)
    }

    /// Whether `node` runs (`want`) or is down (`!want`); otherwise step
    /// `index` is skipped and the history says so.
    fn up(&self, index: usize, node: NodeIdx, want: bool) -> bool {
        let ok = self.alive(node) == want;
        if !ok {
            let why = if want { Skip::NodeDown } else { Skip::NodeUp };
            self.note(Some(node), EventKind::Skipped { step: index, why });
        }
        ok
    }

    fn apply(&mut self, action: &Action, index: usize, line: usize) -> Result<(), Violation> {
        if let Some((node, change)) = action.node_change() {
            if change.needs_up().is_none_or(|up| self.up(index, node, up)) {
                self.cluster.set_node(node, &change);
                if change == NodeChange::Restart {
                    self.started(node)?;
                }
            }
            return Ok(());
        }
        match action {
            Action::Link { change, scope } => self.cluster.apply_links(change, scope),
            Action::Aimed { .. } => unreachable!("the timeline resolves an aimed action first"),
            Action::Op(call) => {
                let op: S::Op = typed(call, self.system.name());
                let node = crate::system::Operation::node(&op);
                if self.up(index, node, true) {
                    self.cluster.invoke(node, op, index);
                }
            }
            Action::Await { condition, timeout } => {
                let check: S::Condition = typed(&condition.check, self.system.name());
                let deadline = self.cluster.now() + *timeout;
                let system = self.system;
                if !self.run_until(deadline, |h| unmet(system, h, condition.node, &check).is_none())? {
                    let detail = self.unmet(condition).unwrap_or_default();
                    let detail = format!("step {index} (line {line}) waited {timeout:?}: {detail}");
                    let violation = Violation::new("await", "timed out", detail, self.cluster.now());
                    return Err(Violation { node: condition.node, ..violation });
                }
            }
            Action::Expect { condition } => {
                if let Some(detail) = self.unmet(condition) {
                    let detail = format!("step {index} (line {line}): {detail}");
                    let violation = Violation::new("expect", "failed", detail, self.cluster.now());
                    return Err(Violation { node: condition.node, ..violation });
                }
            }
            _ => unreachable!("node actions are applied above"),
        }
        Ok(())
    }
}
