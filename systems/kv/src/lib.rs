//! # tandem-kv
//!
//! A replicated key-value store, and its tandem adapter: the second system
//! tandem tests, written only against tandem's public API, as a user would.
//!
//! - [`node`]: the node. Last-writer-wins registers stamped by a Lamport
//!   clock with node-index and incarnation tie-breaks ([`store`]), tombstones for deletes,
//!   eager pushes of local writes and periodic anti-entropy (summary, digest,
//!   exchange of the registers that differ) over any
//!   `tandem::Transport`, redials with capped
//!   jittered backoff, and rebinds that peers learn from the sender record
//!   every message carries ([`wire`]). Nothing persists: a crashed node
//!   restarts empty and catches up by anti-entropy.
//! - [`Kv`]: the [`System`](tandem::System) adapter. Operations `put`, `delete`, `get`
//!   ([`KvOp`]); conditions `holds` and `converged` ([`KvCondition`]); the
//!   adapter observes every change of a node's store ([`KvObservation`]).
//! - [`oracle`]: the properties, judged on what the harness observed only:
//!   S1 reads return written values, S2 monotonic reads, L1 convergence, and
//!   the coverage goals G1-G7 (G4-G7 name the deep bugs' preconditions).
//! - [`mutation`]: planted bugs (feature `mutations`): `no-tiebreak`,
//!   `no-clock-merge`, `drop-tombstones`, `skip-missing-keys`,
//!   `restart-reuses-version`, `purge-tombstones`.
//! - [`workload`]: the operations exploration generates.
//!
//! A scenario (`scenarios/kv/*.toml`) names the system at the top:
//!
//! ```
//! use tandem::Scenario;
//! use tandem_kv::Kv;
//!
//! let text = r#"
//! system = "kv"
//! nodes = 3
//! duration = "10s"
//!
//! [[step]]
//! put = { node = 0, key = "colour", value = "blue" }
//!
//! [[step]]
//! partition = { a = [0], b = [1, 2] }
//!
//! [[step]]
//! put = { node = 1, key = "colour", value = "green" }
//!
//! [[step]]
//! after = "1s"
//! heal = {}
//!
//! [[step]]
//! await = { converged = true, timeout = "5s" }
//!
//! [[expect]]
//! holds = { key = "colour", value = "green" }
//! "#;
//! let scenario = Scenario::parse(text, "colour.toml", &Kv).unwrap();
//! assert_eq!(scenario.steps.len(), 5);
//! ```
//!
//! and runs in the simulation like any other, from a test:
//!
//! ```text
//! tandem_sim::testing::check_file(std::sync::Arc::new(tandem_kv::Kv), "scenarios/kv/partition_heal.toml");
//! ```
//!
//! The properties judge a history however it was made; here node 1 goes
//! back from a write to the one it overwrote:
//!
//! ```
//! use std::time::Duration;
//! use tandem::history::{EventKind, History, OpResult};
//! use tandem::System;
//! use tandem_kv::{Kv, KvObservation, KvOp, KvOutput};
//!
//! let addrs = vec!["10.0.0.1:7000".parse().unwrap(), "10.0.0.2:7000".parse().unwrap()];
//! let mut history = History::<Kv>::new(&addrs, &Default::default());
//! let at = |ms| Duration::from_millis(ms);
//! let stored = |value: &str| EventKind::Observe(KvObservation::Stored { key: "k".into(), value: Some(value.into()), version: None });
//! for node in 0..2 {
//!     history.push(&Kv, at(0), Some(node), EventKind::Started { incarnation: 0, addr: addrs[node as usize] });
//! }
//! history.push(&Kv, at(1), Some(1), EventKind::Invoke { id: 0, step: 0, client: 0, op: KvOp::Put { node: 1, key: "k".into(), value: "a".into() } });
//! history.push(&Kv, at(1), Some(1), stored("a"));
//! history.push(&Kv, at(1), Some(1), EventKind::Complete { id: 0, result: OpResult::Ok(KvOutput::Written { version: None }) });
//! history.push(&Kv, at(2), Some(1), EventKind::Invoke { id: 1, step: 1, client: 0, op: KvOp::Put { node: 1, key: "k".into(), value: "b".into() } });
//! history.push(&Kv, at(2), Some(1), stored("b"));
//! history.push(&Kv, at(2), Some(1), EventKind::Complete { id: 1, result: OpResult::Ok(KvOutput::Written { version: None }) });
//! assert!(history.state().s2.is_none());
//! history.push(&Kv, at(3), Some(1), stored("a")); // back to the older write
//! let (_, detail) = history.state().s2.clone().unwrap();
//! assert!(detail.contains("node 1 was seen holding k = \"a\""), "{detail}");
//! ```

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use proptest::strategy::BoxedStrategy;
use serde::{Deserialize, Serialize};
use tandem::{
    Action, Adapter, Capabilities, Drawing, Event, EventKind, Faults, History, Invocation, Mark, NodeContext, NodeIdx,
    OpError, OpResult, Operation, Oracle, PlantedBug, Property, Scenario, Transport, True, Workload,
};

pub mod mutation;
pub mod node;
pub mod oracle;
pub mod store;
pub mod wire;
pub mod workload;

pub use mutation::Mutation;
pub use node::KvNode;
use node::{ChangeFeed, Config};
pub use oracle::KvState;
use store::Version;

/// The longest key an operation may name, in bytes.
pub const MAX_KEY: usize = 256;
/// The longest value a put may write, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// An operation on a node, as a scenario step writes it:
/// `put = { node = 0, key = "k", value = "v" }`, `delete = { node = 0, key = "k" }`,
/// `get = { node = 1, key = "k" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KvOp {
    /// Writes `key = value` on `node`, which replicates it.
    Put {
        /// The node.
        node: NodeIdx,
        /// The key.
        key: String,
        /// The value; make it unique: the harness identifies writes by value.
        value: String,
    },
    /// Deletes `key` on `node` (a tombstone, which replicates).
    Delete {
        /// The node.
        node: NodeIdx,
        /// The key.
        key: String,
    },
    /// Reads `key` on `node`; the history records what it returned.
    Get {
        /// The node.
        node: NodeIdx,
        /// The key.
        key: String,
    },
}

impl KvOp {
    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Put { key, .. } | KvOp::Delete { key, .. } | KvOp::Get { key, .. } => key,
        }
    }
}

impl Operation for KvOp {
    fn node(&self) -> NodeIdx {
        match self {
            KvOp::Put { node, .. } | KvOp::Delete { node, .. } | KvOp::Get { node, .. } => *node,
        }
    }

    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            KvOp::Put { node, .. } | KvOp::Delete { node, .. } | KvOp::Get { node, .. } => vec![node],
        }
    }

    fn validate(&self, _nodes: u32) -> Result<(), String> {
        let key = self.key();
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(format!("a key has 1 to {MAX_KEY} bytes, this one has {}", key.len()));
        }
        match self {
            KvOp::Put { value, .. } if value.len() > MAX_VALUE => {
                Err(format!("a value has at most {MAX_VALUE} bytes, this one has {}", value.len()))
            }
            _ => Ok(()),
        }
    }

    /// A get in place of a put or delete: the same key, one write less.
    fn simpler(&self) -> Vec<Self> {
        match self {
            KvOp::Put { node, key, .. } | KvOp::Delete { node, key } => {
                vec![KvOp::Get { node: *node, key: key.clone() }]
            }
            KvOp::Get { .. } => Vec::new(),
        }
    }
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOutput {
    /// A put or delete took effect locally, with this version (`None`: a
    /// delete that removed the key without a tombstone, `drop-tombstones`).
    Written {
        /// The write's version.
        version: Option<Version>,
    },
    /// What a get read.
    Read {
        /// The value; `None` when the key was absent or deleted.
        value: Option<String>,
    },
}

/// What the harness observes of a node: every change of its store, in the
/// order the store changed (the node reports it from its own task before
/// serving anything else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvObservation {
    /// The node's store now holds `key = value`.
    Stored {
        /// The key.
        key: String,
        /// The value; `None` when deleted.
        value: Option<String>,
        /// The version the node stamped it with (for traces; properties do
        /// not use it).
        version: Option<Version>,
    },
}

/// A condition of `await`, `expect` and `[[expect]]`, about a node (or
/// every live node when the condition names none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KvCondition {
    /// `holds = { key = "k", value = "v" }`: the node holds `key = value`;
    /// without `value`, the key is absent (or deleted).
    Holds {
        /// The key.
        key: String,
        /// The value; absent for "no value".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// `converged = true`: every live node holds the same map as the node.
    Converged(True),
}

/// A node's final state for `tandem confirm`: its live keys and values, as
/// the harness observed them.
pub type KvOutcome = BTreeMap<String, String>;

/// The kv system: the adapter tandem drives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

impl Adapter for Kv {
    type Op = KvOp;
    type Output = KvOutput;
    type Observation = KvObservation;
    type Node = KvNode;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn description(&self) -> &'static str {
        "a replicated last-writer-wins key-value store with anti-entropy"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rebind: true, ..Capabilities::default() }
    }

    fn planted_bugs(&self) -> Vec<PlantedBug> {
        if Mutation::available() {
            Mutation::ALL.iter().map(|m| m.bug()).collect()
        } else {
            Vec::new()
        }
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<KvNode, String> {
        let mutation = match ctx.planted_bug {
            Some(name) => Some(Mutation::from_name(name).ok_or_else(|| format!("kv has no planted bug `{name}`"))?),
            None => None,
        };
        let observer = ctx.observer;
        let on_change = ChangeFeed::new(move |change| {
            observer.observe(KvObservation::Stored {
                key: change.key.clone(),
                value: change.value.clone(),
                version: change.version,
            })
        });
        let config = Config {
            incarnation: ctx.incarnation,
            listen: ctx.listen,
            rng_seed: ctx.rng_seed,
            mutation,
            on_change: Some(on_change),
            probe: ctx.probe,
            ..Config::new(ctx.index, ctx.addrs)
        };
        KvNode::start(config, ctx.transport).await.map_err(|e| e.to_string())
    }

    fn addr(&self, node: &KvNode) -> SocketAddr {
        node.addr()
    }

    async fn invoke(&self, node: &KvNode, op: KvOp, _invocation: Invocation) -> Result<KvOutput, OpError> {
        let stopped = |e: node::Stopped| OpError::Failed(e.to_string());
        match op {
            KvOp::Put { key, value, .. } => {
                node.put(key, value).await.map(|v| KvOutput::Written { version: Some(v) }).map_err(stopped)
            }
            KvOp::Delete { key, .. } => {
                node.delete(key).await.map(|version| KvOutput::Written { version }).map_err(stopped)
            }
            KvOp::Get { key, .. } => node.get(key).await.map(|value| KvOutput::Read { value }).map_err(stopped),
        }
    }

    async fn rebind(&self, node: &mut KvNode, addr: SocketAddr) -> Result<SocketAddr, String> {
        node.rebind(addr).await
    }

    async fn stop(&self, node: KvNode) {
        node.shutdown().await
    }
}

impl Oracle for Kv {
    type Condition = KvCondition;
    type Outcome = KvOutcome;
    type State = KvState;

    fn fold(&self, state: &mut KvState, event: &Event<Self>, faults: &Faults) {
        state.fold(event, faults)
    }

    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &KvCondition) -> Result<(), String> {
        history.state().check(node, condition)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        oracle::properties()
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> KvOutcome {
        history.state().map(node)
    }
}

impl Workload for Kv {
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<KvOp> {
        workload::operations(nodes, focus)
    }

    /// Rebinds of two different nodes are unfair: if both move while they
    /// cannot reach each other and no third node relays their new
    /// addresses, each knows the other only at its old address for ever.
    fn fair(&self, scenario: &Scenario) -> Result<(), String> {
        let mut mover = None;
        for (i, step) in scenario.steps.iter().enumerate() {
            if let Action::Rebind { node, .. } = step.action {
                match mover {
                    Some(m) if m != node => {
                        return Err(format!("step[{i}]: node {node} rebinds, but node {m} already did"))
                    }
                    _ => mover = Some(node),
                }
            }
        }
        Ok(())
    }
}

impl Drawing for Kv {
    /// Writes joined to the replicas that stored them (by key and version),
    /// and reads with what they returned.
    fn mark(&self, history: &History<Self>, event: &Event<Self>) -> Option<Mark> {
        match &event.event {
            EventKind::Complete { id, result: OpResult::Ok(output) } => match (history.invocation(*id)?, output) {
                (KvOp::Put { key, value, .. }, KvOutput::Written { version: Some(v) }) => {
                    Some(Mark::new("write", format!("put {key}={value}")).cause(format!("{key}@{v}")))
                }
                (KvOp::Delete { key, .. }, KvOutput::Written { version }) => {
                    let mark = Mark::new("write", format!("delete {key}"));
                    Some(match version {
                        Some(v) => mark.cause(format!("{key}@{v}")),
                        None => mark,
                    })
                }
                (KvOp::Get { key, .. }, KvOutput::Read { value }) => {
                    Some(Mark::new("read", format!("get {key} -> {}", value.as_deref().unwrap_or("nothing"))))
                }
                _ => None,
            },
            EventKind::Observe(KvObservation::Stored { key, value, version }) => {
                let mark = Mark::new("store", format!("{key}={}", value.as_deref().unwrap_or("(deleted)")));
                // A replica's copy of another node's write; the writer's own store is its write.
                Some(match version {
                    Some(v) if Some(v.node) != event.node => mark.effect(format!("{key}@{v}")),
                    _ => mark,
                })
            }
            _ => None,
        }
    }
}
