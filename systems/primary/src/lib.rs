//! # tandem-primary
//!
//! A primary-backup replicated key-value store with epochs and durable
//! logs, and its tandem adapter, written only against tandem's public API.
//! Its oracle is a linearizability checker: the planted bugs leave every
//! replica agreeing with every other, and only a judgement of what the
//! clients saw against a sequential model finds them.
//!
//! - [`node`]: the replica. The primary of an epoch replicates a log to the
//!   backups; a write is answered once a majority stores it durably; a new
//!   primary is elected by a majority on a higher epoch (voters sync their
//!   promise first) and must hold the most up-to-date log among them; reads
//!   are answered by the primary after a majority confirms it still leads,
//!   or at once while it holds a lease (knob `lease_ms`, on by default)
//!   that a majority's heartbeat acknowledgements granted it.
//!   Writes carry their client's request id into the log, so a retry is
//!   applied once.
//! - [`Primary`]: the [`System`](tandem::System) adapter. Operations `put = { node, key,
//!   value }`, `append = { node, key, value }` (non-idempotent: adds to the
//!   key's list) and `get = { node, key }` (returns the whole list); the node
//!   an operation is invoked on is the client's entry point, which forwards
//!   to the primary it knows. Conditions `serving = true`, `applied = N`.
//! - [`model::Lists`]: the sequential specification (one list per key).
//! - Properties: L1 linearizable (the model), S1 integrity, S2 replicas
//!   apply one request per log index, L2 every live node catches up, L3
//!   every final-phase operation completes ok (what clients observe once
//!   faults are healed); goals G1, G2.
//! - Exploration: workloads `mixed` (default) and `single-key`; a final
//!   phase reading each key through every node.
//! - Planted bugs (feature `mutations`): `stale-read`,
//!   `ack-before-replication`, `retry-applied-twice`,
//!   `lease-checked-at-publish` (found only with pauses),
//!   `lease-on-wall-clock` (found only with wall-clock jumps) and
//!   `sticky-forward` (found only by L3, on the final phase).
//! - Tolerance: pauses up to 3 s, wall-clock jumps up to 60 s, drift up
//!   to 10% (the lease's margin).
//!
//! ```
//! use tandem::Scenario;
//! let text = "system = \"primary\"\nnodes = 3\nduration = \"5s\"\n\n[[step]]\nawait = { serving = true, timeout = \"3s\" }\n\n[[step]]\nwait = \"3s\"\nappend = { node = 1, key = \"a\", value = \"x\" }\n";
//! let scenario = Scenario::parse(text, "append.toml", &tandem_primary::Primary).unwrap();
//! assert_eq!(scenario.steps.len(), 2);
//! ```

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::{
    Adapter, Capabilities, Drawing, Event, EventKind, Failure, History, Invocation, Knob, NodeContext, NodeIdx,
    OpError, OpResult, Operation, Oracle, PlantedBug, Property, Tolerance, Transport, True, Workload,
};

pub mod model;
pub mod node;
pub mod wire;

use model::{ListOutput, Lists};
pub use node::PrimaryNode;
use node::{Bugs, Timing};
use wire::{ClientOp, Reply};

/// The planted bugs, in a build with the `mutations` feature.
pub const PLANTED_BUGS: [PlantedBug; 6] = [
    PlantedBug {
        name: "stale-read",
        description: "the primary answers reads from its own state without confirming it still leads: a deposed primary cut off in a minority returns stale values (breaks L1)",
    },
    PlantedBug {
        name: "ack-before-replication",
        description: "the primary answers a write once its own log holds it, before a majority does: a failover loses an acknowledged write (breaks L1)",
    },
    PlantedBug {
        name: "retry-applied-twice",
        description: "the primary does not deduplicate request ids: a client's retried append is applied twice (breaks L1)",
    },
    PlantedBug {
        name: "lease-checked-at-publish",
        description: "a client's task answers a read under the primary's lease checked against the time the primary last published its state, not now: after a pause that time is stale, and a primary deposed during the pause answers a read queued during it from its stale state before it takes in the news (breaks L1; needs a pause)",
    },
    PlantedBug {
        name: "lease-on-wall-clock",
        description: "leases and promises are measured on the wall clock (SystemTime): after the primary's wall clock steps back, its lease holds that much longer, and cut off in a minority it answers stale reads (breaks L1); after a backup's steps back, its promise does, and no primary is elected (breaks L2). Needs a wall-clock step back",
    },
    PlantedBug {
        name: "sticky-forward",
        description: "a node forwards its clients' requests to the first primary it heard from: after a failover it keeps sending them to the deposed one, which refuses them, so every operation through it fails, though it replicates and applies like any backup and its answers are never wrong (breaks only L3, judged on the final phase's operations once every fault is healed)",
    },
];

/// The workloads of exploration (`tandem explore --workload NAME`): `mixed`
/// (the default: reads, puts and appends of two keys) and `single-key`
/// (the same on key `a` alone, so every operation contends).
pub const WORKLOADS: [&str; 2] = ["mixed", "single-key"];

/// The lease knob: how long a majority's acknowledgements of a round let
/// the primary answer reads on its own.
pub const LEASE_MS: Knob = Knob {
    name: "lease_ms",
    description: "the primary's read lease in ms (0: every read waits for a majority to confirm a new round)",
    default: 200,
    min: 0,
    max: 1000,
};

/// The election timeout knob: a backup stands after hearing no primary
/// for between one and two of it.
pub const ELECTION_MS: Knob = Knob {
    name: "election_ms",
    description: "election timeout in ms (a backup stands after 1x to 2x of it without a primary)",
    default: 300,
    min: 150,
    max: 1000,
};

/// The heartbeat knob: how often the primary replicates.
pub const HEARTBEAT_MS: Knob = Knob {
    name: "heartbeat_ms",
    description: "the primary's replication interval in ms",
    default: 50,
    min: 10,
    max: 100,
};

/// The client's attempt timeout knob.
pub const ATTEMPT_MS: Knob = Knob {
    name: "attempt_ms",
    description: "how long a client waits for one attempt before it retries, in ms",
    default: 500,
    min: 200,
    max: 2000,
};

/// The client's deadline knob.
pub const DEADLINE_MS: Knob = Knob {
    name: "deadline_ms",
    description: "how long a client retries in all before it answers indeterminate (a write) or failed (a read), in ms",
    default: 3000,
    min: 1000,
    max: 10000,
};

/// An operation, invoked on the node the client talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PrimaryOp {
    /// `put = { node = 0, key = "a", value = "x" }`: set the key to `[value]`.
    Put {
        /// The client's node.
        node: NodeIdx,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// `get = { node = 0, key = "a" }`: read the key's list.
    Get {
        /// The client's node.
        node: NodeIdx,
        /// The key.
        key: String,
    },
    /// `append = { node = 0, key = "a", value = "x" }`: add the value to the
    /// key's list (not idempotent).
    Append {
        /// The client's node.
        node: NodeIdx,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

impl PrimaryOp {
    /// The key it concerns.
    pub fn key(&self) -> &str {
        match self {
            PrimaryOp::Put { key, .. } | PrimaryOp::Get { key, .. } | PrimaryOp::Append { key, .. } => key,
        }
    }

    fn client_op(&self) -> ClientOp {
        match self.clone() {
            PrimaryOp::Put { key, value, .. } => ClientOp::Put { key, value },
            PrimaryOp::Get { key, .. } => ClientOp::Get { key },
            PrimaryOp::Append { key, value, .. } => ClientOp::Append { key, value },
        }
    }

    /// The value it writes, if it writes.
    fn written(&self) -> Option<&str> {
        match self {
            PrimaryOp::Put { value, .. } | PrimaryOp::Append { value, .. } => Some(value),
            PrimaryOp::Get { .. } => None,
        }
    }
}

impl Operation for PrimaryOp {
    fn node(&self) -> NodeIdx {
        match self {
            PrimaryOp::Put { node, .. } | PrimaryOp::Get { node, .. } | PrimaryOp::Append { node, .. } => *node,
        }
    }

    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            PrimaryOp::Put { node, .. } | PrimaryOp::Get { node, .. } | PrimaryOp::Append { node, .. } => vec![node],
        }
    }

    fn validate(&self, _nodes: u32) -> Result<(), String> {
        if self.key().is_empty() || self.key().len() > 64 {
            return Err(format!("a key of 1 to 64 bytes, not {:?}", self.key()));
        }
        match self.written() {
            Some(value) if value.len() > 1024 => Err("a value of at most 1024 bytes".into()),
            _ => Ok(()),
        }
    }

    fn simpler(&self) -> Vec<Self> {
        match self {
            PrimaryOp::Append { node, key, value } => {
                vec![PrimaryOp::Put { node: *node, key: key.clone(), value: value.clone() }]
            }
            PrimaryOp::Put { node, key, .. } => vec![PrimaryOp::Get { node: *node, key: key.clone() }],
            PrimaryOp::Get { .. } => Vec::new(),
        }
    }
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryOutput {
    /// A write was applied.
    Done,
    /// A read's list; `None` for a key never written.
    Value(Option<Vec<String>>),
}

/// What the harness observes of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryObservation {
    /// The node became primary of `epoch` and serves (its no-op is applied).
    Serving {
        /// The epoch.
        epoch: u64,
    },
    /// The node applied the client request `id` at log index `index`.
    Applied {
        /// The log index.
        index: u64,
        /// The request id (the operation's id in the history).
        id: u64,
    },
}

/// A condition of `await` and `expect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PrimaryCondition {
    /// `serving = true`: some node has served as primary.
    Serving(True),
    /// `applied = 3`: the node applied at least this many client requests
    /// since it last started.
    Applied(u64),
}

/// The primary-backup store: the adapter tandem drives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Primary;

/// The `Applied` observations of `node` since its last start: (index, id).
fn applied_now(history: &History<Primary>, node: NodeIdx) -> Vec<(u64, u64)> {
    let mut applied = Vec::new();
    for event in history.events().iter().filter(|e| e.node == Some(node)) {
        match &event.event {
            EventKind::Started { .. } => applied.clear(),
            EventKind::Observe(PrimaryObservation::Applied { index, id }) => applied.push((*index, *id)),
            _ => {}
        }
    }
    applied
}

/// The read a `Complete` event reports, with its key: `(key, list)`.
fn read<'h>(history: &'h History<Primary>, event: &'h Event<Primary>) -> Option<(&'h str, &'h [String])> {
    let EventKind::Complete { id, result: OpResult::Ok(PrimaryOutput::Value(value)) } = &event.event else {
        return None;
    };
    let key = history.invocation(*id)?.key();
    Some((key, value.as_deref().unwrap_or_default()))
}

impl Adapter for Primary {
    type Op = PrimaryOp;
    type Output = PrimaryOutput;
    type Observation = PrimaryObservation;
    type Node = PrimaryNode;

    fn name(&self) -> &'static str {
        "primary"
    }

    fn description(&self) -> &'static str {
        "a primary-backup key-value store with epochs and durable logs, judged linearizable"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { storage: true, ..Capabilities::default() }
    }

    fn planted_bugs(&self) -> Vec<PlantedBug> {
        if cfg!(feature = "mutations") {
            PLANTED_BUGS.to_vec()
        } else {
            Vec::new()
        }
    }

    fn knobs(&self) -> Vec<Knob> {
        vec![ELECTION_MS, HEARTBEAT_MS, ATTEMPT_MS, DEADLINE_MS, LEASE_MS]
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<PrimaryNode, String> {
        let bugs = match ctx.planted_bug {
            None => Bugs::default(),
            Some(name) if !self.planted_bugs().iter().any(|b| b.name == name) => {
                return Err(format!(
                    "primary has no planted bug `{name}` (or was built without the `mutations` feature)"
                ))
            }
            Some(name) => Bugs {
                stale_read: name == "stale-read",
                ack_before_replication: name == "ack-before-replication",
                retry_applied_twice: name == "retry-applied-twice",
                lease_checked_at_publish: name == "lease-checked-at-publish",
                lease_on_wall_clock: name == "lease-on-wall-clock",
                sticky_forward: name == "sticky-forward",
            },
        };
        let ms = |knob: &Knob| Duration::from_millis(ctx.knobs.value(knob) as u64);
        let timing = Timing {
            heartbeat: ms(&HEARTBEAT_MS),
            election: ms(&ELECTION_MS),
            attempt: ms(&ATTEMPT_MS),
            deadline: ms(&DEADLINE_MS),
            lease: ms(&LEASE_MS),
            ..Timing::default()
        };
        PrimaryNode::start(ctx, timing, bugs).await
    }

    fn addr(&self, node: &PrimaryNode) -> SocketAddr {
        node.addr()
    }

    /// The client: the request id is the operation's id in the history, the
    /// same on every retry.
    async fn invoke(
        &self,
        node: &PrimaryNode,
        op: PrimaryOp,
        invocation: Invocation,
    ) -> Result<PrimaryOutput, OpError> {
        match node.call(invocation.id, op.client_op()).await? {
            Reply::Done => Ok(PrimaryOutput::Done),
            Reply::Value(value) => Ok(PrimaryOutput::Value(value)),
        }
    }

    async fn stop(&self, node: PrimaryNode) {
        drop(node);
    }
}

impl Oracle for Primary {
    type Condition = PrimaryCondition;
    type Outcome = Vec<u64>;
    type State = ();

    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &PrimaryCondition) -> Result<(), String> {
        match condition {
            PrimaryCondition::Serving(_) => history
                .events()
                .iter()
                .any(|e| matches!(e.event, EventKind::Observe(PrimaryObservation::Serving { .. })))
                .then_some(())
                .ok_or_else(|| "no node has served as primary yet".to_string()),
            PrimaryCondition::Applied(want) => {
                let got = applied_now(history, node).len() as u64;
                (got >= *want).then_some(()).ok_or_else(|| format!("node {node} applied {got} requests, not {want}"))
            }
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::linearizable(
                "L1",
                "linearizable: every client saw one list per key",
                Lists,
                |op: &PrimaryOp, output| {
                    let done = |o: &PrimaryOutput| match o {
                        PrimaryOutput::Done => ListOutput::Done,
                        PrimaryOutput::Value(v) => ListOutput::Read(v.clone().unwrap_or_default()),
                    };
                    match op {
                        PrimaryOp::Put { key, value, .. } => {
                            Some((ClientOp::Put { key: key.clone(), value: value.clone() }, output.map(done)))
                        }
                        PrimaryOp::Append { key, value, .. } => {
                            Some((ClientOp::Append { key: key.clone(), value: value.clone() }, output.map(done)))
                        }
                        // A read of unknown fate changed nothing: leave it out.
                        PrimaryOp::Get { key, .. } => Some((ClientOp::Get { key: key.clone() }, Some(done(output?)))),
                    }
                },
            ),
            Property::always("S1", "integrity: a read returns only values written to its key", || {
                let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
                move |h: &History<Primary>, e: &Event<Primary>| {
                    if let EventKind::Invoke { op, .. } = &e.event {
                        if let Some(value) = op.written() {
                            written.entry(op.key().to_string()).or_default().insert(value.to_string());
                        }
                    }
                    let Some((key, list)) = read(h, e) else { return Ok(()) };
                    match list.iter().find(|v| !written.get(key).is_some_and(|w| w.contains(*v))) {
                        Some(v) => Err(format!("a read of {key:?} returned {v:?}, which no write of {key:?} wrote")),
                        None => Ok(()),
                    }
                }
            }),
            Property::always("S2", "replicas apply one request per log index", || {
                let mut at: BTreeMap<u64, (u64, NodeIdx)> = BTreeMap::new();
                move |_: &History<Primary>, e: &Event<Primary>| {
                    let (EventKind::Observe(PrimaryObservation::Applied { index, id }), Some(node)) =
                        (&e.event, e.node)
                    else {
                        return Ok(());
                    };
                    match at.get(index) {
                        Some((other, by)) if other != id => Err(format!(
                            "node {node} applied request {id} at index {index}, node {by} applied request {other}"
                        )),
                        Some(_) => Ok(()),
                        None => {
                            at.insert(*index, (*id, node));
                            Ok(())
                        }
                    }
                }
            }),
            Property::eventually_naming(
                "L2",
                "with a majority up, every live node applies what any node applied",
                |h| {
                    let live: Vec<NodeIdx> = h.live().collect();
                    if live.len() < h.nodes().len() / 2 + 1 {
                        return Ok(());
                    }
                    let target = h
                        .events()
                        .iter()
                        .filter_map(|e| match e.event {
                            EventKind::Observe(PrimaryObservation::Applied { index, .. }) => Some(index),
                            _ => None,
                        })
                        .max();
                    let Some(target) = target else { return Ok(()) };
                    for node in live {
                        let reached = applied_now(h, node).iter().map(|&(index, _)| index).max().unwrap_or(0);
                        if reached < target {
                            return Err(Failure::from(format!(
                                "live node {node} applied up to index {reached}, but index {target} was applied"
                            ))
                            .on(node));
                        }
                    }
                    Ok(())
                },
            ),
            Property::eventually_naming(
                "L3",
                "with a majority up, every operation of the final phase (faults healed) completes ok",
                |h| {
                    if h.live().count() < h.nodes().len() / 2 + 1 {
                        return Ok(());
                    }
                    for (id, node, op, result) in h.final_operations() {
                        let how = match result {
                            Some(OpResult::Ok(_)) => continue,
                            Some(OpResult::Failed(why)) => format!("failed: {why}"),
                            Some(OpResult::Unknown(why)) => format!("ended unknown: {why}"),
                            None => "never completed".to_string(),
                        };
                        let detail = format!("final operation {id} ({op:?}) through node {node} {how}");
                        return Err(Failure::from(detail).on(node));
                    }
                    Ok(())
                },
            ),
            Property::sometimes("G1", "a read saw two values appended", |h, e| {
                read(h, e).is_some_and(|(_, l)| l.len() >= 2)
            }),
            Property::sometimes("G2", "two nodes served as primary", |h, e| {
                let EventKind::Observe(PrimaryObservation::Serving { .. }) = e.event else { return false };
                h.events().iter().any(|d| {
                    matches!(d.event, EventKind::Observe(PrimaryObservation::Serving { .. })) && d.node != e.node
                })
            }),
        ]
    }

    /// The request ids the node applied since it last started, in order.
    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> Vec<u64> {
        applied_now(history, node).into_iter().map(|(_, id)| id).collect()
    }

    fn ready(&self) -> Option<PrimaryCondition> {
        Some(PrimaryCondition::Serving(True))
    }

    /// `primary`, which steps aim faults at (`crash = { role = "primary" }`).
    fn roles(&self) -> Vec<&'static str> {
        vec![ROLE]
    }

    /// The primary as the harness saw it: the node of the run's `Serving`
    /// observation of the highest epoch, while it still runs the
    /// incarnation that served (a crash or a restart since ends it). A
    /// primary deposed without a newer one serving yet still counts, as it
    /// may still answer.
    fn role(&self, history: &History<Self>, role: &str) -> Option<NodeIdx> {
        if role != ROLE {
            return None;
        }
        let events = history.events();
        let (_, node, at) = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match (&e.event, e.node) {
                (EventKind::Observe(PrimaryObservation::Serving { epoch }), Some(node)) => Some((*epoch, node, i)),
                _ => None,
            })
            .max_by_key(|&(epoch, _, i)| (epoch, i))?;
        let ended = events[at + 1..]
            .iter()
            .any(|e| e.node == Some(node) && matches!(e.event, EventKind::Crashed | EventKind::Started { .. }));
        (!ended && history.node(node).alive).then_some(node)
    }
}

impl Workload for Primary {
    fn tolerance(&self) -> Tolerance {
        // After the heal, connections broken by a cut take up to 3 s to be
        // dialled again and an election up to 2 s more. Two clients per
        // node: a node's operations overlap, as a store's clients' do.
        // Leases are on the monotonic clock, with a margin for the drift
        // declared; a pause counts as a cut, its tail within the settle.
        Tolerance {
            settle: Duration::from_secs(8),
            clients: 2,
            max_pause: Duration::from_secs(3),
            max_clock_jump: Duration::from_secs(60),
            max_drift_percent: node::MAX_DRIFT_PERCENT,
            ..Tolerance::default()
        }
    }

    /// Reads and writes of two keys, appends first: every bug shows as a
    /// read that no order of the operations explains.
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<PrimaryOp> {
        let node = match focus {
            Some(node) => Just(node).boxed(),
            None => (0..nodes).boxed(),
        };
        let key = prop_oneof![3 => Just("a".to_string()), 1 => Just("b".to_string())];
        let value = (0u32..10_000).prop_map(|n| format!("v{n}"));
        prop_oneof![
            4 => (node.clone(), key.clone()).prop_map(|(node, key)| PrimaryOp::Get { node, key }),
            2 => (node.clone(), key.clone(), value.clone()).prop_map(|(node, key, value)| PrimaryOp::Put { node, key, value }),
            4 => (node, key, value).prop_map(|(node, key, value)| PrimaryOp::Append { node, key, value }),
        ]
        .boxed()
    }

    fn workloads(&self) -> Vec<&'static str> {
        WORKLOADS.to_vec()
    }

    /// `mixed` is [`operations`](Workload::operations); `single-key` draws
    /// the same operations on key `a` only.
    fn workload_operations(
        &self,
        workload: Option<&str>,
        nodes: u32,
        focus: Option<NodeIdx>,
    ) -> BoxedStrategy<PrimaryOp> {
        match workload {
            Some("single-key") => self
                .operations(nodes, focus)
                .prop_map(|mut op| {
                    match &mut op {
                        PrimaryOp::Put { key, .. } | PrimaryOp::Get { key, .. } | PrimaryOp::Append { key, .. } => {
                            *key = "a".to_string()
                        }
                    }
                    op
                })
                .boxed(),
            _ => self.operations(nodes, focus),
        }
    }

    /// Jepsen's final reads: a read of each key through every node, once
    /// every fault is healed; L3 demands that each completes ok.
    fn final_operations(&self, nodes: u32) -> Vec<PrimaryOp> {
        (0..nodes).flat_map(|node| ["a", "b"].map(|key| PrimaryOp::Get { node, key: key.to_string() })).collect()
    }
}

impl Drawing for Primary {}

/// The role of the node that serves as primary.
pub const ROLE: &str = "primary";
