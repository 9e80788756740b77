//! Swarm testing: before its timeline, each case draws which kinds of fault
//! it uses and how often (as TigerBeetle's VOPR does). A case that never
//! crashes explores partitions harder, and the other way round, so the space
//! of timelines is covered by many different mixes rather than one average.

use std::collections::BTreeMap;
use std::fmt;

/// A kind of fault episode the generator can put in a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A symmetric partition between two groups, held for a while, then
    /// (usually) healed.
    Partition,
    /// A one-way partition (only `a -> b` is cut), then (usually) healed.
    OneWayPartition,
    /// A heal of every partition.
    Heal,
    /// A change of link latency, then (usually) back to the default.
    Latency,
    /// Packet loss, light or heavy enough to break connections, then
    /// (usually) back to the default.
    Loss,
    /// A crash, with messages sent to the node while it is down, then
    /// (usually; always for a membership seed) a restart.
    Crash,
    /// A hot-reload rebind to a new port.
    Rebind,
    /// A fault of a node's disk (failing syncs, full, slow), usually
    /// cleared later; only for systems with the storage capability.
    Disk,
    /// A process pause of one node, with operations aimed at it before and
    /// during it; only for systems that survive pauses
    /// ([`Tolerance::max_pause`](tandem::system::Tolerance::max_pause)).
    Pause,
    /// A wall-clock jump or offset, or a drift, of each of some nodes, with
    /// operations around them, usually reset later; only for systems that
    /// survive them ([`Tolerance::max_clock_jump`](tandem::system::Tolerance::max_clock_jump),
    /// [`Tolerance::max_drift_percent`](tandem::system::Tolerance::max_drift_percent)).
    Clock,
}

impl FaultKind {
    /// Every fault kind but [`FaultKind::Disk`], [`FaultKind::Pause`] and
    /// [`FaultKind::Clock`], in a fixed order: the kinds every system's
    /// swarm draws.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Partition,
        FaultKind::OneWayPartition,
        FaultKind::Heal,
        FaultKind::Latency,
        FaultKind::Loss,
        FaultKind::Crash,
        FaultKind::Rebind,
    ];

    /// A short name, for scenario descriptions.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWayPartition => "oneway",
            FaultKind::Heal => "heal",
            FaultKind::Latency => "latency",
            FaultKind::Loss => "loss",
            FaultKind::Crash => "crash",
            FaultKind::Rebind => "rebind",
            FaultKind::Disk => "disk",
            FaultKind::Pause => "pause",
            FaultKind::Clock => "clock",
        }
    }
}

/// One case's mix: the weight of plain traffic and of each enabled fault
/// kind. An episode of the timeline is traffic or an enabled fault, with
/// probability proportional to its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swarm {
    /// The weight of traffic episodes (broadcasts and direct messages); at
    /// least 1, so every timeline can send.
    pub traffic: u32,
    /// The enabled fault kinds and their weights (each at least 1); kinds
    /// missing here never occur.
    pub faults: BTreeMap<FaultKind, u32>,
}

impl fmt::Display for Swarm {
    /// `traffic×3 crash×5 rebind×1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "traffic×{}", self.traffic)?;
        for (kind, weight) in &self.faults {
            write!(f, " {}×{weight}", kind.name())?;
        }
        Ok(())
    }
}
