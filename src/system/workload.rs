//! [`Workload`]: how exploration drives a system: the operations it draws,
//! the final phase, what is fair to a correct node and the faults and
//! timing it tolerates.

use std::time::Duration;

use proptest::strategy::BoxedStrategy;
use serde::Serialize;

use super::adapter::Adapter;
use crate::scenario::{NodeIdx, Scenario, DEFAULT_SETTLE};
use crate::storage::DiskFault;

/// The timing a system tolerates and the load it takes: exploration draws
/// no more latency than `max_latency`, gives every case a settle tail of
/// `settle` (`explore --settle` overrides it) and every node `clients`
/// clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tolerance {
    /// The largest one-way latency a correct node must cope with.
    pub max_latency: Duration,
    /// How long a correct node needs, once every fault is repaired, to
    /// deliver what it owes (liveness is judged after it).
    pub settle: Duration,
    /// Over how long explored nodes first boot, at offsets drawn from the
    /// seed (`explore --stagger`; at most
    /// [`MAX_STAGGER`](crate::scenario::MAX_STAGGER)): a protocol whose
    /// elections livelock when nodes boot together wants more.
    pub stagger: Duration,
    /// How many clients each explored node has (`explore --clients`; see
    /// the scenario's `clients`): more than one makes a node's operations
    /// overlap, which a linearizability check needs.
    pub clients: u32,
    /// The disk faults beyond `fail-sync`, `full` and `slow` (which every
    /// system with the storage capability is drawn) that a correct node
    /// survives, and where: exploration draws only these. None by default,
    /// so that a system that declares nothing is drawn what it always was.
    pub disk_faults: &'static [SurvivedDiskFault],
    /// The longest process pause (`pause` steps) a correct node survives:
    /// exploration draws pauses up to it. Zero (the default): none.
    pub max_pause: Duration,
    /// The largest jump or offset of a node's wall clock (`clock` steps)
    /// a correct node survives, either way: exploration draws wall-clock
    /// jumps up to it. Zero (the default): none.
    pub max_clock_jump: Duration,
    /// The largest clock drift a correct node survives, in percent either
    /// way (at most 90): exploration draws drifts up to it. Zero (the
    /// default): none.
    pub max_drift_percent: u32,
}

/// A disk fault a system survives ([`Tolerance::disk_faults`]): exploration
/// may set it on `node` (or on any node, for `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SurvivedDiskFault {
    /// The fault: [`DiskFault::LyingSync`](crate::storage::DiskFault::LyingSync),
    /// [`CorruptRead`](crate::storage::DiskFault::CorruptRead) or
    /// [`MisdirectedWrite`](crate::storage::DiskFault::MisdirectedWrite).
    pub fault: DiskFault,
    /// The one node it may hit; `None`: any node.
    pub node: Option<NodeIdx>,
}

impl Default for Tolerance {
    /// 250 ms of latency, a 5 s settle tail, boots staggered over 20 ms,
    /// one client per node, no disk corruption, pauses or clock changes: enough for protocols whose timeouts are in the
    /// hundreds of milliseconds to seconds.
    fn default() -> Tolerance {
        Tolerance {
            max_latency: Duration::from_millis(250),
            settle: DEFAULT_SETTLE,
            stagger: Duration::from_millis(20),
            clients: 1,
            disk_faults: &[],
            max_pause: Duration::ZERO,
            max_clock_jump: Duration::ZERO,
            max_drift_percent: 0,
        }
    }
}

/// How exploration drives a system (moonpool's `Workload`): the operations
/// it draws, by workload, the final phase, the system's own fairness rule
/// and the timing it tolerates.
///
/// Only [`operations`](Workload::operations) is required.
pub trait Workload: Adapter {
    /// The workload of exploration: one operation among `nodes` nodes. With
    /// `focus`, the operation should involve that node (it is the one a
    /// fault around the operation hits: for messaging, a message to it).
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Self::Op>;

    /// The workloads exploration can draw operations from, by name
    /// (`tandem explore --workload NAME`); the first is the default, the
    /// one [`operations`](Workload::operations) draws from. Empty (the
    /// default): one workload, unnamed.
    fn workloads(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The operations of workload `workload` (one of
    /// [`workloads`](Workload::workloads)), as
    /// [`operations`](Workload::operations) draws them; `None` is the
    /// default workload. The default draws from `operations` whatever the
    /// name.
    fn workload_operations(
        &self,
        workload: Option<&str>,
        nodes: u32,
        focus: Option<NodeIdx>,
    ) -> BoxedStrategy<Self::Op> {
        let _ = workload;
        self.operations(nodes, focus)
    }

    /// The final phase of an explored scenario among `nodes` nodes: the
    /// operations it issues after the settle tail, with every fault healed
    /// (its `[[final]]` steps, Jepsen's final reads), judged like the
    /// others: a property can then demand what clients observe once the
    /// faults are over, like every final read completing. Empty (the
    /// default): no final phase, and exploration draws exactly what it
    /// drew without one.
    fn final_operations(&self, nodes: u32) -> Vec<Self::Op> {
        let _ = nodes;
        Vec::new()
    }

    /// Why a generated scenario is unfair to a correct node of this system,
    /// beyond the generic rules; exploration never generates one.
    fn fair(&self, _scenario: &Scenario) -> Result<(), String> {
        Ok(())
    }

    /// The timing the system tolerates, for exploration.
    fn tolerance(&self) -> Tolerance {
        Tolerance::default()
    }
}
