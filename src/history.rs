//! The history of a run: every step, fault, node start and crash, operation
//! invocation and completion, observation and in-node assertion, in the
//! order they happened, with a canonical encoding and a digest.
//!
//! One [`Recorder`](crate::engine::recorder::Recorder) owns a run's history and appends
//! to it; properties and conditions read it. The canonical encoding is one
//! JSON object per event from serde, times in whole microseconds: the same
//! scenario, seed and build give the same lines and the same
//! [`History::digest`] in every process.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::engine::links::LinkState;
use crate::scenario::{Action, Network, NodeChange, NodeIdx, Scenario};
use crate::storage::DiskFault;
use crate::system::{Adapter, Oracle};

/// What one event says.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", bound = "")]
pub enum EventKind<S: Adapter> {
    /// A timeline step began.
    Step {
        /// Its index in the scenario.
        index: usize,
        /// The step's action (encoded as written in a scenario file).
        #[serde(serialize_with = "action_text")]
        action: Action,
    },
    /// The runner did not carry out a step's action (the event's node is
    /// the one it named, when it named one).
    Skipped {
        /// The step's index in the scenario.
        step: usize,
        /// Why.
        why: Skip,
    },
    /// A step aimed at a role hit the event's node, the role's holder: the
    /// step event before it carries the action as if it had named the node.
    Aimed {
        /// The step's index in the scenario.
        step: usize,
        /// The role.
        role: String,
    },
    /// A node's rebind failed; it listens where it did.
    RebindFailed {
        /// Where it was to listen.
        #[serde(serialize_with = "display")]
        addr: SocketAddr,
        /// The system's (or the backend's) error.
        error: String,
    },
    /// A node stopped itself, as a fail-stop process does
    /// ([`FailStop`](crate::system::FailStop)); its crash follows.
    FailStopped {
        /// The node's reason.
        why: String,
    },
    /// Node code started an OS thread that the run let through: the run is
    /// not reproducible (the event's node is the one whose code was polled,
    /// if known).
    ThreadStarted {
        /// The call that started it.
        call: String,
    },
    /// A crash did not stop the node in its own order (it did not answer
    /// the stop in time, its host was gone, or what was left of it did not
    /// end in time): it was killed as it was, and its crash follows.
    StopFailed {
        /// Why (the backend's words).
        error: String,
    },
    /// The settle tail began: every link healed, loss 0, the scenario's
    /// latency, every disk healthy ([`SETTLE`]).
    Settle,
    /// The final phase began: the settle tail is over, every fault still
    /// healed, and the scenario's `[[final]]` steps run ([`FINAL`]). Only
    /// in a run of a scenario that has them.
    Final,
    /// A node's start failed; it is down again.
    StartFailed {
        /// The system's error.
        error: String,
    },
    /// A node started (first start or restart).
    Started {
        /// Its incarnation.
        incarnation: u64,
        /// Where it listens.
        #[serde(serialize_with = "display")]
        addr: SocketAddr,
    },
    /// A node was killed.
    Crashed,
    /// A node finished a rebind.
    Rebound {
        /// The new address.
        #[serde(serialize_with = "display")]
        addr: SocketAddr,
    },
    /// The harness invoked an operation on the node.
    Invoke {
        /// The operation's id, unique in the run.
        id: u64,
        /// The index of the scenario step that invoked it.
        step: usize,
        /// Which of the node's clients runs it (`0..clients`; each runs
        /// one operation at a time). Left out of the encoding when 0.
        #[serde(skip_serializing_if = "is_first_client")]
        client: u32,
        /// The operation.
        op: S::Op,
    },
    /// An operation completed (or can no longer complete).
    Complete {
        /// The id of its invocation.
        id: u64,
        /// How it ended.
        result: OpResult<S::Output>,
    },
    /// The harness observed something of the node.
    Observe(S::Observation),
    /// An in-node assertion was evaluated (see [`crate::probe`]).
    Assert(crate::probe::Assertion),
    /// The run's verdict.
    Verdict {
        /// `pass` or the failure.
        outcome: String,
    },
}

/// Why the runner skipped a step's action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// It needs its node up (a crash, rebind, pause, operation) and the node is down.
    NodeDown,
    /// It needs its node down (a restart) and the node is up.
    NodeUp,
    /// It is an operation, and its node's host is gone (the node stopped
    /// itself just then, or its thread ended) though the node was up.
    HostGone,
    /// It is aimed at a role that no node holds.
    NoHolder {
        /// The role.
        role: String,
    },
    /// It is a restart aimed at a role, and no node a crash aimed at the
    /// role took down is down.
    NoneDown {
        /// The role.
        role: String,
    },
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NodeDown => f.write_str("node is down"),
            Skip::NodeUp => f.write_str("node is up"),
            Skip::HostGone => f.write_str("the node's host is gone"),
            Skip::NoHolder { role } => write!(f, "no node holds role `{role}`"),
            Skip::NoneDown { role } => write!(f, "no node a crash aimed at role `{role}` took down is down"),
        }
    }
}

impl<S: Adapter> EventKind<S> {
    /// What a fact of the runner or a backend says, in a line (`None` for
    /// the other events): a skip, an aimed step's node, a failed rebind, a
    /// fail-stop, an OS thread, a crash that did not stop its node cleanly.
    /// Pictures and logs show it.
    pub fn fact(&self, node: Option<NodeIdx>) -> Option<String> {
        let on = node.map_or_else(|| "a task a node spawned".to_string(), |node| format!("node {node}"));
        Some(match self {
            EventKind::Skipped { step, why } => format!("step {step} skipped: {why}"),
            EventKind::Aimed { step, role } => format!("step {step} aimed at role `{role}`: {on}"),
            EventKind::RebindFailed { addr, error } => format!("rebind to {addr} failed: {error}"),
            EventKind::FailStopped { why } => format!("fail-stop: {why}"),
            EventKind::ThreadStarted { call } => {
                format!("{on} started an OS thread ({call}): this run is not reproducible")
            }
            EventKind::StopFailed { error } => {
                format!("crash: the node did not stop cleanly ({error}); killed as it was")
            }
            _ => return None,
        })
    }
}

/// What the settle tail does, as pictures and logs show it.
pub const SETTLE: &str = "settle: heal every link, loss 0, default latency, every disk healthy";

/// What the final phase does, as pictures and logs show it.
pub const FINAL: &str = "final: the [[final]] steps, with every fault healed";

fn action_text<Z: Serializer>(action: &Action, serializer: Z) -> Result<Z::Ok, Z::Error> {
    serializer.collect_str(&Scenario::action_toml(action))
}

fn is_first_client(client: &u32) -> bool {
    *client == 0
}

fn display<T: fmt::Display, Z: Serializer>(value: &T, serializer: Z) -> Result<Z::Ok, Z::Error> {
    serializer.collect_str(value)
}

/// How an operation ended, Jepsen-style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpResult<O> {
    /// It took effect and returned this.
    Ok(O),
    /// It did not take effect.
    Failed(String),
    /// It may or may not have taken effect, and why: the node crashed
    /// before it answered ([`CRASHED_FIRST`]), or the system said so
    /// ([`OpError::Indeterminate`](crate::system::OpError::Indeterminate)).
    Unknown(String),
}

/// Why an operation of a node that crashed before it answered is unknown.
pub const CRASHED_FIRST: &str = "the node crashed before it answered";

/// One event of the history.
#[derive(Debug, Clone, Serialize)]
#[serde(bound = "")]
pub struct Event<S: Adapter> {
    /// Microseconds since the run began (simulated or wall). In the
    /// simulation they are whole milliseconds (tokio's timer resolution)
    /// while no node's clock drifts, so events often share a time: their
    /// position in the history orders them.
    pub t_us: u64,
    /// The node it happened on, if any.
    pub node: Option<NodeIdx>,
    /// What happened.
    pub event: EventKind<S>,
}

impl<S: Adapter> Event<S> {
    /// When it happened, since the run began.
    pub fn at(&self) -> Duration {
        Duration::from_micros(self.t_us)
    }

    /// The canonical one-line JSON encoding.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("history events always serialise")
    }
}

/// One node's life as the harness saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLife {
    /// Whether it runs now.
    pub alive: bool,
    /// Its current (or last) incarnation.
    pub incarnation: u64,
    /// Where it listens now (or listened last).
    pub addr: SocketAddr,
    /// When it was started, one entry per incarnation.
    pub starts: Vec<Duration>,
    /// When it was crashed.
    pub crashes: Vec<Duration>,
}

impl NodeLife {
    /// The incarnation its next start boots: 0 first, then one more each time.
    pub fn next_incarnation(&self) -> u64 {
        if self.starts.is_empty() {
            0
        } else {
            self.incarnation + 1
        }
    }
}

/// The faults in force after some events of a run: every link, and each
/// node's crash, disk, clock and pause, as the steps, the settle tail and
/// the nodes' crashes and starts left them. The history keeps it as the run
/// goes ([`History::faults`], [`History::links`]), updated as each event is
/// recorded (a step's before the runner carries the step out), hands it to
/// the system's [`Oracle::fold`] with each event, and replays it for readers
/// of a finished run ([`History::walk`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    links: LinkState,
    crashed: BTreeSet<NodeIdx>,
    disks: BTreeMap<NodeIdx, DiskFault>,
    skewed: BTreeSet<NodeIdx>,
    paused: BTreeMap<NodeIdx, Duration>,
}

impl Faults {
    /// No fault: every link as `network` sets it.
    pub fn new(network: &Network) -> Faults {
        Faults {
            links: LinkState::new(network),
            crashed: BTreeSet::new(),
            disks: BTreeMap::new(),
            skewed: BTreeSet::new(),
            paused: BTreeMap::new(),
        }
    }

    /// Follows the next event of a run: for a reader that folds events one
    /// at a time, with the faults in force after each.
    pub fn follow<S: Adapter>(&mut self, event: &Event<S>) {
        self.record(event.at(), event.node, &event.event);
    }

    /// Follows one event of a run, which happened at `at` on `node`.
    fn record<S: Adapter>(&mut self, at: Duration, node: Option<NodeIdx>, event: &EventKind<S>) {
        match (event, node) {
            (EventKind::Step { action, .. }, _) => self.act(at, action),
            (EventKind::Settle, _) => {
                self.links.settle();
                self.disks.clear();
            }
            (EventKind::Crashed, Some(node)) => {
                self.crashed.insert(node);
                self.paused.remove(&node);
            }
            (EventKind::Started { .. }, Some(node)) => {
                self.crashed.remove(&node);
            }
            _ => {}
        }
    }

    /// Follows a step's action, taken at `at`. Crashes and restarts are
    /// followed by the nodes' own events; a pause of a node that is down is
    /// skipped by the runner.
    pub(crate) fn act(&mut self, at: Duration, action: &Action) {
        if let Action::Link { change, scope } = action {
            self.links.apply(change, scope);
        }
        let Some((node, change)) = action.node_change() else { return };
        match change {
            NodeChange::Disk(DiskFault::None) => {
                self.disks.remove(&node);
            }
            NodeChange::Disk(fault) => {
                self.disks.insert(node, fault);
            }
            _ => {}
        }
        if let Some(length) = change.holds_for().filter(|_| !self.crashed.contains(&node)) {
            self.paused.insert(node, at + length);
        }
        match change.skews_clock() {
            Some(true) => {
                self.skewed.insert(node);
            }
            Some(false) => {
                self.skewed.remove(&node);
            }
            None => {}
        }
    }

    /// Every link.
    pub fn links(&self) -> &LinkState {
        &self.links
    }

    /// The nodes a crash took down that no start has brought back.
    pub fn crashed(&self) -> &BTreeSet<NodeIdx> {
        &self.crashed
    }

    /// The nodes whose disk has a fault, and the fault.
    pub fn disks(&self) -> &BTreeMap<NodeIdx, DiskFault> {
        &self.disks
    }

    /// The nodes whose clock a `clock` step set off true time.
    pub fn skewed(&self) -> &BTreeSet<NodeIdx> {
        &self.skewed
    }

    /// The nodes paused at `now`.
    pub fn paused(&self, now: Duration) -> impl Iterator<Item = NodeIdx> + '_ {
        self.paused.iter().filter(move |(_, &until)| until > now).map(|(&node, _)| node)
    }
}

/// Everything a run observed, append-only.
#[derive(Debug, Clone)]
pub struct History<S: Oracle> {
    events: Vec<Event<S>>,
    nodes: Vec<NodeLife>,
    /// Invocations not completed: operation id -> node.
    pending: BTreeMap<u64, NodeIdx>,
    invocations: BTreeMap<u64, usize>,
    /// The operation each scenario step invoked: step index -> id.
    step_ops: BTreeMap<usize, u64>,
    next_op: u64,
    state: S::State,
    /// Each abstract state the system named, and the first event after
    /// which it held.
    abstract_states: BTreeMap<String, usize>,
    /// The run's time at the last read through its recorder.
    read_at: Duration,
    /// The index of the [`EventKind::Final`] event, once the final phase began.
    final_from: Option<usize>,
    /// The faults in force after the last event.
    faults: Faults,
}

impl<S: Oracle> History<S> {
    /// The history of a run whose nodes will listen at `addrs` (by index)
    /// and whose links start as `network` sets them.
    pub fn new(addrs: &[SocketAddr], network: &Network) -> Self {
        let nodes = addrs
            .iter()
            .map(|&addr| NodeLife { alive: false, incarnation: 0, addr, starts: Vec::new(), crashes: Vec::new() })
            .collect();
        History {
            events: Vec::new(),
            nodes,
            pending: BTreeMap::new(),
            invocations: BTreeMap::new(),
            step_ops: BTreeMap::new(),
            next_op: 0,
            state: S::State::default(),
            abstract_states: BTreeMap::new(),
            read_at: Duration::ZERO,
            final_from: None,
            faults: Faults::new(network),
        }
    }

    /// The run's time now: when the recorder handed this history to a
    /// check, a property or a condition (never before its last event). After a
    /// quiet spell it is later than the last event, so a check can judge
    /// how long something has been pending. A history built by hand reads
    /// its last event's time.
    pub fn now(&self) -> Duration {
        let last = self.events.last().map_or(Duration::ZERO, Event::at);
        self.read_at.max(last)
    }

    /// Sets the run's time [`now`](Self::now) reads (for a recorder).
    pub fn set_now(&mut self, now: Duration) {
        self.read_at = now;
    }

    /// Appends an event at `at`, updating the node lives, the faults in
    /// force and the system's derived state.
    ///
    /// # Panics
    ///
    /// When the event contradicts the history: a crash of a node that is
    /// down, a start of one that is up, a completion of an unknown
    /// operation. Those are harness bugs.
    pub fn push(&mut self, system: &S, at: Duration, node: Option<NodeIdx>, event: EventKind<S>) {
        let life = node.map(|n| n as usize);
        self.faults.record(at, node, &event);
        match &event {
            EventKind::Started { incarnation, addr } => {
                let n = &mut self.nodes[life.expect("a start names its node")];
                assert!(!n.alive, "node {node:?} started while up");
                n.alive = true;
                n.incarnation = *incarnation;
                n.addr = *addr;
                n.starts.push(at);
            }
            EventKind::Crashed => {
                let n = &mut self.nodes[life.expect("a crash names its node")];
                assert!(n.alive, "node {node:?} crashed while down");
                n.alive = false;
                n.crashes.push(at);
            }
            EventKind::Rebound { addr } => self.nodes[life.expect("a rebind names its node")].addr = *addr,
            EventKind::Invoke { id, step, .. } => {
                let node = node.expect("an invocation names its node");
                self.pending.insert(*id, node);
                self.invocations.insert(*id, self.events.len());
                self.step_ops.insert(*step, *id);
            }
            EventKind::Complete { id, .. } => {
                assert!(self.pending.remove(id).is_some(), "operation {id} completed twice or never began");
            }
            EventKind::Final => self.final_from = Some(self.events.len()),
            _ => {}
        }
        let t_us = u64::try_from(at.as_micros()).expect("runs are shorter than 584,000 years");
        self.events.push(Event { t_us, node, event });
        let last = self.events.last().expect("just pushed");
        system.fold(&mut self.state, last, &self.faults);
        if let Some(name) = system.abstract_state(&self.state) {
            self.abstract_states.entry(name).or_insert(self.events.len() - 1);
        }
    }

    /// A fresh operation id.
    pub fn next_op_id(&mut self) -> u64 {
        self.next_op += 1;
        self.next_op - 1
    }

    /// Every event so far.
    pub fn events(&self) -> &[Event<S>] {
        &self.events
    }

    /// What the system derived from the events so far.
    pub fn state(&self) -> &S::State {
        &self.state
    }

    /// Each abstract state the system named
    /// ([`Oracle::abstract_state`]), with the index of the first event
    /// after which it held.
    pub fn abstract_states(&self) -> &BTreeMap<String, usize> {
        &self.abstract_states
    }

    /// The faults in force after the last event: a step's are in force as
    /// soon as its event is recorded, before the runner carries it out.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every link after the last event ([`Faults::links`]): what a backend
    /// makes of its network.
    pub fn links(&self) -> &LinkState {
        self.faults.links()
    }

    /// Visits every event, in order, with its index and the faults in force
    /// just after it: for readers of a finished run.
    pub fn walk(&self, mut visit: impl FnMut(usize, &Event<S>, &Faults)) {
        let mut faults = Faults::new(self.faults.links().network());
        for (index, event) in self.events.iter().enumerate() {
            faults.follow(event);
            visit(index, event, &faults);
        }
    }

    /// Every node's life, by index.
    pub fn nodes(&self) -> &[NodeLife] {
        &self.nodes
    }

    /// One node's life.
    pub fn node(&self, node: NodeIdx) -> &NodeLife {
        &self.nodes[node as usize]
    }

    /// Indices of the nodes that run now.
    pub fn live(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        (0..self.nodes.len() as NodeIdx).filter(|&i| self.nodes[i as usize].alive)
    }

    /// The operations invoked and not completed: id -> the node running it.
    pub fn pending(&self) -> &BTreeMap<u64, NodeIdx> {
        &self.pending
    }

    /// Whether the operation scenario step `step` invoked has completed
    /// (ok, failed or unknown); `false` until it is invoked.
    pub fn step_completed(&self, step: usize) -> bool {
        self.step_ops.get(&step).is_some_and(|id| !self.pending.contains_key(id))
    }

    /// The index in [`events`](Self::events) of the [`EventKind::Final`]
    /// event: the operations invoked after it are the final phase's, issued
    /// with every fault healed. `None` before the final phase, and in a
    /// run without one.
    pub fn final_phase(&self) -> Option<usize> {
        self.final_from
    }

    /// The operations the final phase invoked, in order: each one's id, its
    /// node, the operation and how it ended (`None`: it has not completed).
    /// Empty before the final phase and in a run without one.
    #[allow(clippy::type_complexity)]
    pub fn final_operations(&self) -> Vec<(u64, NodeIdx, &S::Op, Option<&OpResult<S::Output>>)> {
        let Some(from) = self.final_from else { return Vec::new() };
        let mut ended: BTreeMap<u64, &OpResult<S::Output>> = BTreeMap::new();
        for event in &self.events[from..] {
            if let EventKind::Complete { id, result } = &event.event {
                ended.insert(*id, result);
            }
        }
        self.events[from..]
            .iter()
            .filter_map(|event| match (&event.event, event.node) {
                (EventKind::Invoke { id, op, .. }, Some(node)) => Some((*id, node, op, ended.get(id).copied())),
                _ => None,
            })
            .collect()
    }

    /// The operation invoked with `id`, if any.
    pub fn invocation(&self, id: u64) -> Option<&S::Op> {
        match &self.events[*self.invocations.get(&id)?].event {
            EventKind::Invoke { op, .. } => Some(op),
            _ => unreachable!("invocations index Invoke events"),
        }
    }

    /// The events as JSON lines.
    pub fn to_jsonl(&self) -> String {
        self.events.iter().map(|e| e.canonical() + "\n").collect()
    }

    /// The digest of the canonical encoding (xxh3-64 over the lines, each
    /// ended by a newline): stable across processes and machines.
    pub fn digest(&self) -> Digest {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for event in &self.events {
            hasher.update(event.canonical().as_bytes());
            hasher.update(b"\n");
        }
        Digest(hasher.digest())
    }
}

/// A 64-bit digest of a history's canonical encoding, printed as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub u64);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The first line where two JSON-lines histories differ: (line number from
/// 1, left line, right line); `None` when they are equal. A missing line is "".
pub fn first_difference<'a>(left: &'a str, right: &'a str) -> Option<(usize, &'a str, &'a str)> {
    let mut l = left.lines();
    let mut r = right.lines();
    for number in 1.. {
        match (l.next(), r.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => return Some((number, a.unwrap_or(""), b.unwrap_or(""))),
        }
    }
    unreachable!("the loop returns when both histories end")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), Some((2, "b", "c")));
        assert_eq!(first_difference("a\n", "a\nc\n"), Some((2, "", "c")));
        assert_eq!(format!("{}", Digest(0xab)), "00000000000000ab");
    }
}
