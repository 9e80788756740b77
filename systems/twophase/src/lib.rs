//! # tandem-twophase
//!
//! A two-phase commit whose coordinator and participants keep their
//! protocol state in tandem's durable [`Storage`](tandem::Storage),
//! and its tandem adapter, written only against tandem's public API.
//!
//! - [`node`]: node 0 coordinates, every other node participates (static
//!   membership from `ctx.addrs`). Votes, decisions and applied decisions
//!   are written and synced before anyone is told of them; decisions are
//!   resent until acknowledged; a participant in doubt asks the coordinator,
//!   which presumes abort for a transaction it never decided.
//! - [`TwoPhase`]: the [`System`](tandem::System) adapter. Operations `commit = { node = 0,
//!   tx = 7 }` and `read = { node = 1 }`; condition `applied = [7]`;
//!   observations `decided`, `applied` and `in_doubt`.
//! - Properties: T1 agreement (always), T2 durability of committed
//!   transactions (eventually), X1 no transactional anomaly (Elle's
//!   checker over commits and reads: a read of an aborted tx is G1a), goals
//!   G1-G3 (sometimes).
//! - Planted bugs (feature `mutations`): `vote-unsynced`, `decision-in-memory`,
//!   `read-uncommitted`, `restart-trusts-log`, `log-without-checksums`.
//! - Tolerance: a lying sync and a corrupt read on the coordinator (a
//!   restarted coordinator asks the participants before it presumes abort,
//!   and takes a decision record that fails its checksum as lost).
//!
//! ```
//! use tandem::Scenario;
//! let text = "system = \"twophase\"\nnodes = 3\nduration = \"5s\"\n\n[[step]]\nwait = \"5s\"\ncommit = { node = 0, tx = 7 }\n\n[[step]]\nawait = { applied = [7], timeout = \"3s\" }\n";
//! let scenario = Scenario::parse(text, "commit.toml", &tandem_twophase::TwoPhase).unwrap();
//! assert_eq!(scenario.steps.len(), 2);
//! ```

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::consistency::txn::{Mop, Outcome};
use tandem::{
    Action, Adapter, Capabilities, DiskFault, Drawing, Event, EventKind, Failure, History, Invocation, NodeContext,
    NodeIdx, OpError, OpResult, Operation, Oracle, PlantedBug, Property, Scenario, SurvivedDiskFault, Tolerance,
    Transport, Workload,
};
use tokio::sync::oneshot;

pub mod node;

pub use node::TwoPhaseNode;
use node::{Bugs, Command, Timing};

/// The coordinator's index.
pub const COORDINATOR: NodeIdx = 0;

/// The planted bugs, in a build with the `mutations` feature.
pub const PLANTED_BUGS: [PlantedBug; 5] = [
    PlantedBug {
        name: "vote-unsynced",
        description: "a participant votes yes before its prepared record is synced: a crash loses it (breaks T2)",
    },
    PlantedBug {
        name: "decision-in-memory",
        description: "the coordinator keeps its decisions in memory only (not written, not handed to a participant before the answer): restarted, it presumes abort for a committed tx (breaks T1)",
    },
    PlantedBug {
        name: "read-uncommitted",
        description: "a participant's reads include transactions it has only prepared: one that then aborts was read (breaks X1, G1a)",
    },
    PlantedBug {
        name: "restart-trusts-log",
        description: "a restarted coordinator presumes abort without asking the participants: a commit its lying sync lost is aborted (breaks T1; only a lying sync finds it)",
    },
    PlantedBug {
        name: "log-without-checksums",
        description: "the coordinator logs its decisions as bare words without checksums and reads every record but `commit` as abort: a commit read back with a flipped bit is aborted (breaks T1; only a corrupt read finds it)",
    },
];

/// An operation: `commit = { node = 0, tx = 7 }` (only on the coordinator)
/// or `read = { node = 1 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TwoPhaseOp {
    /// The coordinator runs a two-phase commit of transaction `tx`.
    Commit {
        /// The coordinator, node 0.
        node: NodeIdx,
        /// The transaction id.
        tx: u64,
    },
    /// The transactions committed at `node` (decided on the coordinator,
    /// applied on a participant).
    Read {
        /// The node.
        node: NodeIdx,
    },
}

impl Operation for TwoPhaseOp {
    fn node(&self) -> NodeIdx {
        match self {
            TwoPhaseOp::Commit { node, .. } | TwoPhaseOp::Read { node } => *node,
        }
    }

    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            TwoPhaseOp::Commit { node, .. } | TwoPhaseOp::Read { node } => vec![node],
        }
    }

    fn validate(&self, _nodes: u32) -> Result<(), String> {
        match self {
            TwoPhaseOp::Commit { node, .. } if *node != COORDINATOR => {
                Err(format!("only node {COORDINATOR} coordinates: a commit runs there, not on node {node}"))
            }
            _ => Ok(()),
        }
    }

    fn simpler(&self) -> Vec<Self> {
        match self {
            TwoPhaseOp::Commit { node, .. } => vec![TwoPhaseOp::Read { node: *node }],
            TwoPhaseOp::Read { .. } => Vec::new(),
        }
    }
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TwoPhaseOutput {
    /// The transaction committed (its decision is durable).
    Committed,
    /// The transaction aborted.
    Aborted,
    /// What a read returned.
    Txs(Vec<u64>),
}

/// What the harness observes of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TwoPhaseObservation {
    /// The coordinator's decision on `tx` is durable.
    Decided {
        /// The transaction.
        tx: u64,
        /// Commit or abort.
        commit: bool,
    },
    /// A participant applied the decision on `tx` durably.
    Applied {
        /// The transaction.
        tx: u64,
        /// Commit or abort.
        commit: bool,
    },
    /// A participant restarted with `tx` prepared and undecided.
    InDoubt {
        /// The transaction.
        tx: u64,
    },
}

/// A condition: `applied = [1, 2]`, the node was observed committing
/// exactly these transactions (deciding them, for the coordinator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TwoPhaseCondition {
    /// The set of transactions the node committed.
    Applied(Vec<u64>),
}

/// The two-phase commit system: the adapter tandem drives.
#[derive(Debug, Clone, Copy, Default)]
pub struct TwoPhase;

/// Every `(node, tx, commit)` the history observed decided or applied.
fn outcomes(history: &History<TwoPhase>) -> impl Iterator<Item = (NodeIdx, u64, bool)> + '_ {
    history.events().iter().filter_map(|e| match &e.event {
        EventKind::Observe(
            TwoPhaseObservation::Decided { tx, commit } | TwoPhaseObservation::Applied { tx, commit },
        ) => Some((e.node?, *tx, *commit)),
        _ => None,
    })
}

/// The transaction of a commit that completed `Committed`, if `event` is one.
fn committed(history: &History<TwoPhase>, event: &Event<TwoPhase>) -> Option<u64> {
    match &event.event {
        EventKind::Complete { id, result: OpResult::Ok(TwoPhaseOutput::Committed) } => match history.invocation(*id) {
            Some(TwoPhaseOp::Commit { tx, .. }) => Some(*tx),
            _ => None,
        },
        _ => None,
    }
}

impl Adapter for TwoPhase {
    type Op = TwoPhaseOp;
    type Output = TwoPhaseOutput;
    type Observation = TwoPhaseObservation;
    type Node = TwoPhaseNode;

    fn name(&self) -> &'static str {
        "twophase"
    }

    fn description(&self) -> &'static str {
        "a two-phase commit with durable coordinator and participant logs"
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

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<TwoPhaseNode, String> {
        let bugs = match ctx.planted_bug {
            None => Bugs::default(),
            Some(name) if !self.planted_bugs().iter().any(|b| b.name == name) => {
                return Err(format!(
                    "twophase has no planted bug `{name}` (or was built without the `mutations` feature)"
                ))
            }
            Some(name) => Bugs {
                vote_unsynced: name == "vote-unsynced",
                decision_in_memory: name == "decision-in-memory",
                read_uncommitted: name == "read-uncommitted",
                restart_trusts_log: name == "restart-trusts-log",
                log_without_checksums: name == "log-without-checksums",
            },
        };
        TwoPhaseNode::start(ctx, Timing::default(), bugs).await
    }

    fn addr(&self, node: &TwoPhaseNode) -> SocketAddr {
        node.addr()
    }

    async fn invoke(&self, node: &TwoPhaseNode, op: TwoPhaseOp, _: Invocation) -> Result<TwoPhaseOutput, OpError> {
        let stopped = |_| OpError::Failed("the node has stopped".into());
        match op {
            TwoPhaseOp::Commit { node: at, .. } if at != COORDINATOR => {
                Err(format!("node {at} does not coordinate").into())
            }
            TwoPhaseOp::Commit { tx, .. } => {
                let (reply, answer) = oneshot::channel();
                node.send(Command::Commit { tx, reply })?;
                let commit = answer.await.map_err(stopped)??;
                Ok(if commit { TwoPhaseOutput::Committed } else { TwoPhaseOutput::Aborted })
            }
            TwoPhaseOp::Read { .. } => {
                let (reply, answer) = oneshot::channel();
                node.send(Command::Read { reply })?;
                Ok(TwoPhaseOutput::Txs(answer.await.map_err(stopped)?))
            }
        }
    }

    async fn stop(&self, node: TwoPhaseNode) {
        drop(node);
    }
}

impl Oracle for TwoPhase {
    type Condition = TwoPhaseCondition;
    type Outcome = Vec<u64>;
    type State = ();

    fn check(
        &self,
        history: &History<Self>,
        node: NodeIdx,
        TwoPhaseCondition::Applied(want): &TwoPhaseCondition,
    ) -> Result<(), String> {
        let got = self.outcome(history, node);
        let want: Vec<u64> = want.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
        (got == want).then_some(()).ok_or(format!("node {node} committed {got:?}, expected {want:?}"))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("T1", "agreement: no tx both commits and aborts, and no committed tx aborts", || {
                let mut decided: BTreeMap<u64, (bool, NodeIdx)> = BTreeMap::new();
                let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
                move |h: &History<TwoPhase>, e: &Event<TwoPhase>| {
                    if let Some(tx) = committed(h, e) {
                        if let Some((false, at)) = decided.get(&tx) {
                            return Err(format!("tx {tx} was answered committed, but node {at} was seen aborting it"));
                        }
                        acknowledged.insert(tx);
                    }
                    let (
                        EventKind::Observe(
                            TwoPhaseObservation::Decided { tx, commit } | TwoPhaseObservation::Applied { tx, commit },
                        ),
                        Some(node),
                    ) = (&e.event, e.node)
                    else {
                        return Ok(());
                    };
                    if !commit && acknowledged.contains(tx) {
                        return Err(format!("node {node} aborted tx {tx}, which the coordinator answered committed"));
                    }
                    match decided.get(tx) {
                        Some((other, at)) if other != commit => {
                            Err(format!("node {node} {} tx {tx}, node {at} {} it", verb(*commit), verb(*other)))
                        }
                        Some(_) => Ok(()),
                        None => {
                            decided.insert(*tx, (*commit, node));
                            Ok(())
                        }
                    }
                }
            }),
            Property::eventually_naming("T2", "durability: every live participant applies every committed tx", |h| {
                // With the coordinator down at the end, in-doubt participants
                // cannot learn anything: two-phase commit blocks.
                if !h.node(COORDINATOR).alive {
                    return Ok(());
                }
                let owed: BTreeSet<u64> = h.events().iter().filter_map(|e| committed(h, e)).collect();
                let applied: BTreeSet<(NodeIdx, u64)> =
                    outcomes(h).filter(|&(_, _, commit)| commit).map(|(node, tx, _)| (node, tx)).collect();
                for participant in 1..h.nodes().len() as NodeIdx {
                    if !h.node(participant).alive {
                        continue;
                    }
                    if let Some(tx) = owed.iter().find(|&&tx| !applied.contains(&(participant, tx))) {
                        return Err(Failure::from(format!(
                            "tx {tx} was answered committed, but live participant {participant} never applied it"
                        ))
                        .on(participant));
                    }
                }
                Ok(())
            }),
            // Each commit writes its tx once (a register per tx); a read at
            // any node reads the register of each tx it returns.
            Property::transactional("X1", "no transactional anomaly (Elle): no read of an aborted tx", |op, output| {
                match (op, output) {
                    (TwoPhaseOp::Commit { tx, .. }, output) => {
                        let outcome = match output {
                            Some(TwoPhaseOutput::Aborted) => Outcome::Aborted,
                            _ => Outcome::Committed,
                        };
                        Some((outcome, vec![Mop::write(format!("tx{tx}"), *tx)]))
                    }
                    (TwoPhaseOp::Read { .. }, Some(TwoPhaseOutput::Txs(txs))) => Some((
                        Outcome::Committed,
                        txs.iter().map(|tx| Mop::read_register(format!("tx{tx}"), Some(*tx))).collect(),
                    )),
                    (TwoPhaseOp::Read { .. }, _) => None,
                }
            }),
            Property::sometimes("G1", "a tx committed", |h, e| committed(h, e).is_some()),
            Property::sometimes("G2", "a tx aborted", |_, e| {
                matches!(e.event, EventKind::Observe(TwoPhaseObservation::Decided { commit: false, .. }))
            }),
            Property::sometimes("G3", "a participant restarted in doubt and applied the decision", |h, e| {
                let EventKind::Observe(TwoPhaseObservation::Applied { tx, .. }) = e.event else { return false };
                h.events().iter().any(|d| {
                    d.node == e.node
                        && d.t_us <= e.t_us
                        && matches!(d.event, EventKind::Observe(TwoPhaseObservation::InDoubt { tx: t }) if t == tx)
                })
            }),
        ]
    }

    /// The transactions the node was observed committing, in order.
    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> Vec<u64> {
        outcomes(history)
            .filter(|&(at, _, commit)| at == node && commit)
            .map(|(_, tx, _)| tx)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

impl Workload for TwoPhase {
    fn tolerance(&self) -> Tolerance {
        // Votes time out after 1 s: slower links only make commits abort. A
        // restarted coordinator asks the participants what its log may have
        // lost (to a lying sync, or to a corrupt read its checksums catch); a
        // participant's own log is trusted. A commit takes two round
        // trips (the vote, then the hand-off of the decision to a
        // participant) and a node's operations queue behind each other: the
        // settle tail leaves the last ones 10 s to be answered and delivered.
        const ON_COORDINATOR: [SurvivedDiskFault; 2] = [
            SurvivedDiskFault { fault: DiskFault::LyingSync, node: Some(COORDINATOR) },
            SurvivedDiskFault { fault: DiskFault::CorruptRead, node: Some(COORDINATOR) },
        ];
        Tolerance { settle: Duration::from_secs(10), disk_faults: &ON_COORDINATOR, ..Tolerance::default() }
    }

    fn operations(&self, nodes: u32, _focus: Option<NodeIdx>) -> BoxedStrategy<TwoPhaseOp> {
        prop_oneof![
            9 => any::<u16>().prop_map(|tx| TwoPhaseOp::Commit { node: COORDINATOR, tx: tx.into() }),
            1 => (0..nodes).prop_map(|node| TwoPhaseOp::Read { node }),
        ]
        .boxed()
    }

    /// The coordinator must be up at the end: participants in doubt can
    /// learn a decision only from it. After a lying sync or a corrupt read
    /// on the coordinator, every participant must be up too: a decision the
    /// coordinator's disk lost may be held by one participant only.
    fn fair(&self, scenario: &Scenario) -> Result<(), String> {
        let mut down = BTreeSet::new();
        let mut lied = false;
        for step in &scenario.steps {
            match step.action {
                Action::Crash { node } => {
                    down.insert(node);
                }
                Action::Restart { node } => {
                    down.remove(&node);
                }
                Action::Disk { node: COORDINATOR, fault: DiskFault::LyingSync | DiskFault::CorruptRead } => lied = true,
                _ => {}
            }
        }
        if down.contains(&COORDINATOR) {
            return Err(format!("the coordinator, node {COORDINATOR}, is down at the end"));
        }
        match down.first() {
            Some(node) if lied => {
                Err(format!("node {node} is down at the end, after a lying sync or a corrupt read on the coordinator"))
            }
            _ => Ok(()),
        }
    }
}

impl Drawing for TwoPhase {}

fn verb(commit: bool) -> &'static str {
    if commit {
        "committed"
    } else {
        "aborted"
    }
}
