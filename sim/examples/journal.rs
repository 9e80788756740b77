//! A node with durable state: a journal of numbers kept in its
//! [`Storage`](tandem::Storage), which survives crashes and
//! restarts with a real disk's semantics (only what was synced is sure to
//! survive).
//!
//! Run it with `cargo run -p tandem-sim --example journal`; the guide's
//! "Storage" section (docs/guide.md) walks through it.

use std::net::SocketAddr;
use std::sync::Arc;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::{
    Adapter, Capabilities, Drawing, EventKind, History, Invocation, Listener, NodeContext, NodeIdx, OpError, OpResult,
    Operation, Oracle, PlantedBug, Property, Scenario, Storage, Transport, Workload,
};

/// The system: every node keeps its own journal on its disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct Journal;

/// `append = { node = 0, entry = 7 }` (durable before it answers, unless
/// `sync = false`) and `read = { node = 0 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JournalOp {
    /// Appends `entry`; with `sync` (the default) it is durable when the
    /// append succeeds.
    Append {
        node: NodeIdx,
        entry: u64,
        #[serde(default = "yes")]
        sync: bool,
    },
    /// Reads the journal.
    Read { node: NodeIdx },
}

fn yes() -> bool {
    true
}

impl Operation for JournalOp {
    fn node(&self) -> NodeIdx {
        match self {
            JournalOp::Append { node, .. } | JournalOp::Read { node } => *node,
        }
    }
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            JournalOp::Append { node, .. } | JournalOp::Read { node } => vec![node],
        }
    }
}

/// `journal = [1, 2]`: the node's last read returned these entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalCondition {
    /// What the node's last read returned.
    Journal(Vec<u64>),
}

/// A running node: its disk, and the listener that makes it reachable.
pub struct JournalNode {
    addr: SocketAddr,
    disk: Storage,
    /// The planted bug `ack-unsynced`: appends answer before they are durable.
    ack_unsynced: bool,
    _listener: Box<dyn std::any::Any + Send + Sync>,
}

const FILE: &str = "journal";

async fn entries(disk: &Storage) -> Result<Vec<u64>, String> {
    match disk.read(FILE).await {
        Ok(bytes) => Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

impl Adapter for Journal {
    type Op = JournalOp;
    type Output = Vec<u64>;
    type Observation = u64; // the run id a node started with
    type Node = JournalNode;

    fn name(&self) -> &'static str {
        "journal"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { storage: true, ..Capabilities::default() }
    }

    fn planted_bugs(&self) -> Vec<PlantedBug> {
        vec![PlantedBug { name: "ack-unsynced", description: "an append answers before it is synced (breaks J1)" }]
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<JournalNode, String> {
        let listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        ctx.observer.observe(ctx.run_id);
        Ok(JournalNode {
            addr: listener.local_addr(),
            disk: ctx.storage,
            ack_unsynced: ctx.planted_bug == Some("ack-unsynced"),
            _listener: Box::new(listener),
        })
    }

    fn addr(&self, node: &JournalNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &JournalNode, op: JournalOp, _: Invocation) -> Result<Vec<u64>, OpError> {
        match op {
            JournalOp::Append { entry, sync, .. } => {
                node.disk.append(FILE, &entry.to_le_bytes()).await.map_err(|e| e.to_string())?;
                if sync && !node.ack_unsynced {
                    node.disk.sync(FILE).await.map_err(|e| e.to_string())?;
                }
                Ok(entries(&node.disk).await?)
            }
            JournalOp::Read { .. } => Ok(entries(&node.disk).await?),
        }
    }

    async fn stop(&self, _node: JournalNode) {}
}

impl Oracle for Journal {
    type Condition = JournalCondition;
    type Outcome = Vec<u64>;
    type State = ();

    fn check(
        &self,
        history: &History<Self>,
        node: NodeIdx,
        JournalCondition::Journal(want): &JournalCondition,
    ) -> Result<(), String> {
        let got = self.outcome(history, node);
        (got == *want).then_some(()).ok_or(format!("node {node} last read {got:?}, expected {want:?}"))
    }

    /// What the node's last successful read returned.
    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> Vec<u64> {
        history
            .events()
            .iter()
            .rev()
            .find_map(|e| match &e.event {
                EventKind::Complete { id, result: OpResult::Ok(read) } if e.node == Some(node) => {
                    matches!(history.invocation(*id), Some(JournalOp::Read { .. })).then(|| read.clone())
                }
                _ => None,
            })
            .unwrap_or_default()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        // J1: an entry whose synced append succeeded is in every later read
        // of that node, crashes or not.
        vec![Property::always("J1", "acknowledged entries survive crashes", || {
            |h: &History<Journal>, e: &tandem::Event<Journal>| match &e.event {
                EventKind::Complete { id, result: OpResult::Ok(read) } => {
                    let Some(JournalOp::Read { node }) = h.invocation(*id) else { return Ok(()) };
                    let acknowledged =
                        h.events().iter().filter(|a| a.node == Some(*node)).filter_map(|a| match &a.event {
                            EventKind::Complete { id, result: OpResult::Ok(_) } => match h.invocation(*id) {
                                Some(JournalOp::Append { entry, sync: true, .. }) => Some(*entry),
                                _ => None,
                            },
                            _ => None,
                        });
                    for entry in acknowledged.collect::<Vec<_>>() {
                        if !read.contains(&entry) {
                            return Err(format!("node {node} lost acknowledged entry {entry}: it read {read:?}"));
                        }
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        })]
    }
}

impl Workload for Journal {
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<JournalOp> {
        let node = focus.map_or((0..nodes).boxed(), |n| Just(n).boxed());
        prop_oneof![
            (node.clone(), any::<u8>()).prop_map(|(node, entry)| JournalOp::Append {
                node,
                entry: entry.into(),
                sync: true
            }),
            node.prop_map(|node| JournalOp::Read { node }),
        ]
        .boxed()
    }
}

impl Drawing for Journal {}

/// The example's scenario: an entry appended and synced survives a crash;
/// one appended without a sync does not.
pub const SCENARIO: &str = r#"
system = "journal"
nodes = 1
duration = "2s"
settle = "500ms"

[[step]]
wait = "1s"
append = { node = 0, entry = 1 }
[[step]]
wait = "1s"
append = { node = 0, entry = 2, sync = false }
[[step]]
expect = { node = 0, journal = [] }
[[step]]
wait = "1s"
read = { node = 0 }
[[step]]
expect = { node = 0, journal = [1, 2] }
[[step]]
crash = { node = 0 }
[[step]]
restart = { node = 0 }
[[step]]
wait = "1s"
read = { node = 0 }
[[step]]
expect = { node = 0, journal = [1] }
"#;

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let scenario = Scenario::parse(SCENARIO, "journal.toml", &Journal).expect("a valid scenario");
    let run = tandem_sim::run_scenario(Arc::new(Journal), &scenario, 1);
    match &run.outcome.failure {
        None => println!("PASS journal trace={}", run.digest()),
        Some(failure) => println!("FAIL journal trace={} {failure}", run.digest()),
    }
    std::process::ExitCode::from(u8::from(!run.outcome.passed()))
}
