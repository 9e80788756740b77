//! Scenarios: the model of a scenario file, its parser, validator and writer.
//!
//! The file format is specified in `spec/scenario-format.md`. A scenario is
//! parsed with [`Scenario::parse`] or [`Scenario::from_file`]; every error is a
//! [`ScenarioError`] naming the file, line and column. A scenario built in code
//! is checked with [`Scenario::validate`] (the parser applies the same rules)
//! and written back with [`Scenario::to_toml`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use crate::storage::DiskFault;
use crate::system::System;

mod call;
mod duration;
mod error;
mod parse;
mod syntax;
mod validate;
mod write;

pub use call::{Call, True};
pub use duration::{format_duration, parse_duration};
pub use error::ScenarioError;
pub use syntax::{variants, Syntax};

/// The index of a node in a scenario: `0..nodes`.
pub type NodeIdx = u32;

/// The largest number of nodes a scenario may have.
pub const MAX_NODES: u32 = 64;
/// The run length when a scenario gives no `duration`.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// The most clients a node has.
pub const MAX_CLIENTS: u32 = 64;
/// The largest `stagger`.
pub const MAX_STAGGER: Duration = Duration::from_secs(1);

/// The longest duration a scenario file may write anywhere (30 days): every
/// time a run computes from it stays far from overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The quiet tail when a scenario gives no `settle`.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// A scenario: a cluster, its network, a timeline of steps and end checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Shown in reports; defaults to the file stem.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The number of nodes, `1..=`[`MAX_NODES`]; node indices are `0..nodes`.
    pub nodes: u32,
    /// The membership seed nodes every node starts with.
    pub seeds: Vec<NodeIdx>,
    /// The shortest run (simulated time in `run`, wall time in `confirm`).
    pub duration: Duration,
    /// The quiet tail at the end of the run; at most `duration`.
    pub settle: Duration,
    /// The default simulation seed (at most `i64::MAX`, the largest TOML integer).
    pub seed: u64,
    /// In the simulation, each node first boots at an offset drawn from the
    /// seed in `0..=stagger` (whole ticks), so that timers do not line up
    /// across nodes; zero (the default) boots every node at once.
    pub stagger: Duration,
    /// How many clients each node has, `1..=`[`MAX_CLIENTS`]: each carries
    /// out one operation at a time, so up to this many of a node's
    /// operations run at once (1, the default: one at a time, in order).
    pub clients: u32,
    /// Link defaults.
    pub network: Network,
    /// The timeline, in file order.
    pub steps: Vec<Step>,
    /// The conditions checked when the run ends (the `[[expect]]` tables).
    pub expects: Vec<Condition>,
    /// The final phase (the `[[final]]` tables): operations, `await`s and
    /// `expect`s run after the settle tail, with every fault healed, judged
    /// like the timeline's; no faults. They continue the timeline's step
    /// numbering: final step `i` is step `steps.len() + i` in the history
    /// and in validation messages.
    pub finals: Vec<Step>,
    /// The planted bug a reproducer was found with (one of the system's; the
    /// file's `mutation` key).
    pub planted_bug: Option<String>,
    /// The `[knobs]` table: values of the system's knobs, by name; the
    /// others keep their defaults.
    pub knobs: BTreeMap<String, i64>,
    /// The system it runs (`system = "NAME"`); `None` for the default one.
    pub system: Option<String>,
    /// The codes of the system's `always` and `eventually` properties that
    /// judge the run (`properties = ["L1"]`); empty, the default: all of
    /// them. Coverage goals (`sometimes`) are always tracked.
    pub properties: Vec<String>,
}

/// Link defaults: the `[network]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// One-way latency of every link.
    pub latency: LatencyRange,
    /// Probability of dropping a packet, `0.0..=1.0`.
    pub loss: f64,
}

/// A latency, drawn from `min..=max`; written `"MIN..MAX"`, or as one
/// duration when `min == max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyRange {
    /// The smallest latency.
    pub min: Duration,
    /// The largest latency; at least `min`.
    pub max: Duration,
}

/// When a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Right after the previous step (no `at` or `after` key).
    Immediately,
    /// At this time from the start of the run (`at`).
    At(Duration),
    /// This long after the previous step ended (`after`).
    After(Duration),
}

/// One `[[step]]` of the timeline.
///
/// Equality ignores [`Step::line`]: two steps are equal when they do the same
/// thing at the same time, wherever they were written.
#[derive(Debug, Clone)]
pub struct Step {
    /// When the step runs.
    pub timing: Timing,
    /// What it does.
    pub action: Action,
    /// For an operation: how long the timeline waits for it to complete
    /// (`wait = "5s"`) before the next step; `None`: not at all, the
    /// operation runs while the timeline moves on.
    pub wait: Option<Duration>,
    /// The 1-based line of the `[[step]]` header, for reports (0 for a step
    /// built in code).
    pub line: usize,
}

impl PartialEq for Step {
    fn eq(&self, other: &Step) -> bool {
        self.timing == other.timing && self.action == other.action && self.wait == other.wait
    }
}

impl Step {
    /// A step built in code: `action` at `timing`, waiting for nothing.
    pub fn new(timing: Timing, action: Action) -> Step {
        Step { timing, action, wait: None, line: 0 }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Change the links of a scope: `partition`, `heal`, `latency` or `loss`.
    Link {
        /// What changes on each link.
        change: LinkChange,
        /// Which links.
        scope: Scope,
    },
    /// Kill a node.
    Crash {
        /// The node.
        node: NodeIdx,
    },
    /// Start a crashed node again.
    Restart {
        /// The node.
        node: NodeIdx,
    },
    /// Set or clear a fault of a node's disk (see [`crate::storage`]).
    Disk {
        /// The node.
        node: NodeIdx,
        /// The fault; [`DiskFault::None`] clears it.
        fault: DiskFault,
    },
    /// Stop polling every task of a running node for `length` (a process
    /// pause: a GC, SIGSTOP, a stalled VM); its timers fire late, its peers
    /// hear nothing, then it resumes with its state.
    Pause {
        /// The node.
        node: NodeIdx,
        /// How long (`for`).
        length: Duration,
    },
    /// Change what a node's clocks read (see [`ClockChange`]).
    Clock {
        /// The node.
        node: NodeIdx,
        /// What changes.
        change: ClockChange,
    },
    /// Move a running node's listener to a new port (a capability).
    Rebind {
        /// The node.
        node: NodeIdx,
        /// The new port; chosen by the runner when `None`.
        port: Option<u16>,
    },
    /// Block the timeline until the condition holds; failing the timeout fails the run.
    Await {
        /// What to wait for.
        condition: Condition,
        /// How long to wait.
        timeout: Duration,
    },
    /// Check the condition now; failing it fails the run.
    Expect {
        /// What must hold.
        condition: Condition,
    },
    /// One of the system's own operations (`broadcast`, `put`, ...).
    Op(Call),
    /// A fault aimed at a role (`crash = { role = "primary" }`): it hits the
    /// node that holds the role when the step runs ([`Oracle::role`](crate::system::Oracle::role)), and
    /// the history records that node.
    Aimed {
        /// The role, one of the system's [`Oracle::roles`](crate::system::Oracle::roles).
        role: String,
        /// What it does to the role's holder.
        aim: Aim,
    },
}

impl Action {
    /// Every generic action key, in the order of the spec.
    pub const NAMES: [&'static str; 12] = [
        "partition",
        "heal",
        "latency",
        "loss",
        "crash",
        "restart",
        "rebind",
        "await",
        "expect",
        "disk",
        "pause",
        "clock",
    ];

    /// The key of this action in a step table.
    pub fn name(&self) -> &str {
        match self {
            Action::Link { change, .. } => change.name(),
            Action::Crash { .. } => "crash",
            Action::Restart { .. } => "restart",
            Action::Rebind { .. } => "rebind",
            Action::Disk { .. } => "disk",
            Action::Pause { .. } => "pause",
            Action::Clock { .. } => "clock",
            Action::Await { .. } => "await",
            Action::Expect { .. } => "expect",
            Action::Op(call) => &call.key,
            Action::Aimed { aim, .. } => aim.name(),
        }
    }

    /// Whether it is a fault the runner injects: anything but an operation
    /// or a wait.
    pub fn is_fault(&self) -> bool {
        match self {
            Action::Link { .. }
            | Action::Crash { .. }
            | Action::Restart { .. }
            | Action::Rebind { .. }
            | Action::Disk { .. }
            | Action::Pause { .. }
            | Action::Clock { .. }
            | Action::Aimed { .. } => true,
            Action::Op(_) | Action::Await { .. } | Action::Expect { .. } => false,
        }
    }

    /// The one node a node action acts on: the crashed, restarted, rebound,
    /// disk-faulted, paused or clock-changed node (`None` for one aimed at a
    /// role: its node is known only when it runs).
    pub fn node(&self) -> Option<NodeIdx> {
        self.node_change().map(|(node, _)| node)
    }

    /// A node action as its node and what it does to it.
    pub fn node_change(&self) -> Option<(NodeIdx, NodeChange)> {
        match *self {
            Action::Crash { node } => Some((node, NodeChange::Crash)),
            Action::Restart { node } => Some((node, NodeChange::Restart)),
            Action::Rebind { node, port } => Some((node, NodeChange::Rebind { port })),
            Action::Disk { node, fault } => Some((node, NodeChange::Disk(fault))),
            Action::Pause { node, length } => Some((node, NodeChange::Pause(length))),
            Action::Clock { node, change } => Some((node, NodeChange::Clock(change))),
            Action::Link { .. }
            | Action::Op(_)
            | Action::Await { .. }
            | Action::Expect { .. }
            | Action::Aimed { .. } => None,
        }
    }

    /// The node a fault hits most directly: a node action's node, or the
    /// first of a link action's far group.
    pub fn target(&self) -> Option<NodeIdx> {
        match self {
            Action::Link { scope, .. } => scope.groups().and_then(|(_, b)| b.first().copied()),
            _ => self.node(),
        }
    }

    /// The action with every node it names renumbered by `node`, and its
    /// operation by `op`; `None` when a node it needs maps to `None` (a
    /// group may lose nodes but not all of them).
    pub fn renumbered(
        &self,
        node: impl Fn(NodeIdx) -> Option<NodeIdx>,
        op: impl Fn(&Call) -> Option<Call>,
    ) -> Option<Action> {
        Some(match self {
            Action::Link { change, scope } => Action::Link { change: *change, scope: scope.renumbered(&node)? },
            Action::Crash { node: n } => Action::Crash { node: node(*n)? },
            Action::Restart { node: n } => Action::Restart { node: node(*n)? },
            Action::Rebind { node: n, port } => Action::Rebind { node: node(*n)?, port: *port },
            Action::Disk { node: n, fault } => Action::Disk { node: node(*n)?, fault: *fault },
            Action::Pause { node: n, length } => Action::Pause { node: node(*n)?, length: *length },
            Action::Clock { node: n, change } => Action::Clock { node: node(*n)?, change: *change },
            Action::Await { condition, timeout } => {
                Action::Await { condition: condition.renumbered(&node)?, timeout: *timeout }
            }
            Action::Expect { condition } => Action::Expect { condition: condition.renumbered(&node)? },
            Action::Op(call) => Action::Op(op(call)?),
            Action::Aimed { .. } => self.clone(),
        })
    }
}

/// What a node action does to its node: what a backend carries out in
/// [`Cluster::set_node`](crate::engine::cluster::Cluster::set_node), its one entry
/// point for node faults, as [`LinkChange`] is for links.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NodeChange {
    /// `crash`: kill the running node.
    Crash,
    /// `restart`: start the crashed node again, as a new incarnation.
    Restart,
    /// `rebind`: move the running node's listener (to a fresh port when `None`).
    Rebind {
        /// The new port.
        port: Option<u16>,
    },
    /// `disk`: set or clear a fault of the node's disk, running or not.
    Disk(DiskFault),
    /// `pause`: poll none of the running node's tasks for this long.
    Pause(Duration),
    /// `clock`: change what the node's clocks read, running or not.
    Clock(ClockChange),
}

/// What a step aimed at a role does to the role's holder
/// ([`Action::Aimed`]).
///
/// ```
/// use tandem::scenario::{Action, Aim, NodeChange, Scope, LinkChange};
/// assert_eq!(Aim::Node(NodeChange::Crash).at(2, 3), Action::Crash { node: 2 });
/// let cut = Action::Link { change: LinkChange::Partition { oneway: false }, scope: Scope::Between { a: vec![1], b: vec![0, 2] } };
/// assert_eq!(Aim::Isolate { oneway: false }.at(1, 3), cut);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aim {
    /// A node fault on the holder: `crash`, `rebind`, `disk`, `pause` or
    /// `clock`. A `restart` aimed at a role starts again the node that the
    /// latest `crash` aimed at that role took down, of those still down
    /// (a role's holder runs).
    Node(NodeChange),
    /// `partition = { role = "NAME" }`: cut the holder off from every other
    /// node, the majority (only what it sends, when `oneway`).
    Isolate {
        /// Drop only what the holder sends.
        oneway: bool,
    },
}

impl Aim {
    /// The key of its action in a step table.
    pub fn name(&self) -> &'static str {
        match self {
            Aim::Node(change) => change.name(),
            Aim::Isolate { .. } => "partition",
        }
    }

    /// The action it is when `node` holds the role in a cluster of `size`
    /// nodes.
    pub fn at(&self, node: NodeIdx, size: u32) -> Action {
        match *self {
            Aim::Node(change) => change.on(node),
            Aim::Isolate { oneway } => Action::Link {
                change: LinkChange::Partition { oneway },
                scope: Scope::Between { a: vec![node], b: (0..size).filter(|&n| n != node).collect() },
            },
        }
    }
}

/// What a `clock` step does to a node's clocks. As on a real machine, the
/// wall clock (`SystemTime`, `CLOCK_REALTIME`) can be set and can jump,
/// either way; the monotonic clock (`Instant`, `tokio::time`) never jumps,
/// but both run at the node's rate, which `drift` sets.
///
/// ```
/// use std::time::Duration;
/// use tandem::scenario::{ClockChange, Skew};
/// let back = ClockChange::Jump(Skew::behind(Duration::from_secs(5)));
/// assert_eq!(back.to_string(), "jump = \"-5s\"");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClockChange {
    /// `offset`: from now the wall clock reads true time plus this (it
    /// replaces any earlier offset; a node starts at zero).
    Offset(Skew),
    /// `jump`: the wall clock moves by this, now (an NTP step).
    Jump(Skew),
    /// `drift`: from now both clocks run this much fast (`0.01`: 1% fast;
    /// negative: slow), in `-0.9..=1.0`; `0` runs true.
    Drift(f64),
}

impl ClockChange {
    /// The largest `drift` either way: 1.0 ahead (twice as fast), 0.9 behind.
    pub const DRIFT: std::ops::RangeInclusive<f64> = -0.9..=1.0;

    /// The key of its value in a `clock` table.
    pub fn name(&self) -> &'static str {
        match self {
            ClockChange::Offset(_) => "offset",
            ClockChange::Jump(_) => "jump",
            ClockChange::Drift(_) => "drift",
        }
    }
}

impl std::fmt::Display for ClockChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockChange::Offset(skew) | ClockChange::Jump(skew) => write!(f, "{} = \"{skew}\"", self.name()),
            ClockChange::Drift(rate) => write!(f, "drift = {rate:?}"),
        }
    }
}

/// A signed duration, written `"5s"`, `"+5s"` or `"-5s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skew {
    /// Backwards (written with `-`).
    pub behind: bool,
    /// How far.
    pub by: Duration,
}

impl Skew {
    /// `by` forwards.
    pub fn ahead(by: Duration) -> Skew {
        Skew { behind: false, by }
    }

    /// `by` backwards.
    pub fn behind(by: Duration) -> Skew {
        Skew { behind: true, by }
    }

    /// In nanoseconds, negative when behind.
    pub fn as_nanos(&self) -> i128 {
        let nanos = self.by.as_nanos() as i128;
        if self.behind {
            -nanos
        } else {
            nanos
        }
    }

    /// Reads `"5s"`, `"+5s"` or `"-5s"`.
    pub fn parse(text: &str) -> Result<Skew, String> {
        let (behind, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        Ok(Skew { behind, by: parse_duration(rest)? })
    }
}

impl std::fmt::Display for Skew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.behind && !self.by.is_zero() { "-" } else { "" };
        write!(f, "{sign}{}", format_duration(self.by))
    }
}

impl NodeChange {
    /// The key of its action in a step table.
    pub fn name(&self) -> &'static str {
        match self {
            NodeChange::Crash => "crash",
            NodeChange::Restart => "restart",
            NodeChange::Rebind { .. } => "rebind",
            NodeChange::Disk(_) => "disk",
            NodeChange::Pause(_) => "pause",
            NodeChange::Clock(_) => "clock",
        }
    }

    /// The node action that does this to `node` (the inverse of
    /// [`Action::node_change`]).
    pub fn on(self, node: NodeIdx) -> Action {
        match self {
            NodeChange::Crash => Action::Crash { node },
            NodeChange::Restart => Action::Restart { node },
            NodeChange::Rebind { port } => Action::Rebind { node, port },
            NodeChange::Disk(fault) => Action::Disk { node, fault },
            NodeChange::Pause(length) => Action::Pause { node, length },
            NodeChange::Clock(change) => Action::Clock { node, change },
        }
    }

    /// Whether the node must be up (`Some(true)`) or down (`Some(false)`)
    /// for the change to apply; the executor skips it otherwise, and says so.
    pub fn needs_up(&self) -> Option<bool> {
        match self {
            NodeChange::Crash | NodeChange::Rebind { .. } | NodeChange::Pause(_) => Some(true),
            NodeChange::Restart => Some(false),
            NodeChange::Disk(_) | NodeChange::Clock(_) => None,
        }
    }

    /// What is wrong with the change's own fields, beyond its node: the
    /// field's key and why (validation reports it at that field).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match self {
            NodeChange::Pause(length) if length.is_zero() => {
                Some(("for", "a pause of 0s does nothing, expected a duration like for = \"2s\"".into()))
            }
            NodeChange::Clock(ClockChange::Drift(rate)) if !ClockChange::DRIFT.contains(rate) => Some((
                "drift",
                format!(
                    "drift {rate} is out of range, expected {}..={} (0.01: 1% fast)",
                    ClockChange::DRIFT.start(),
                    ClockChange::DRIFT.end()
                ),
            )),
            _ => None,
        }
    }

    /// The change made half as strong (a pause half as long, a clock moved
    /// half as far), while it is at least `min`: what the shrinker tries.
    pub fn halved(&self, min: Duration) -> Option<NodeChange> {
        let half = |skew: &Skew| (skew.by >= min).then_some(Skew { by: skew.by / 2, ..*skew });
        match self {
            NodeChange::Pause(length) => (*length >= min).then_some(NodeChange::Pause(*length / 2)),
            NodeChange::Clock(ClockChange::Jump(skew)) => half(skew).map(|s| NodeChange::Clock(ClockChange::Jump(s))),
            NodeChange::Clock(ClockChange::Offset(skew)) => {
                half(skew).map(|s| NodeChange::Clock(ClockChange::Offset(s)))
            }
            _ => None,
        }
    }

    /// How long the change holds a running node before it ends by itself
    /// (a pause), if it does.
    pub fn holds_for(&self) -> Option<Duration> {
        match self {
            NodeChange::Pause(length) => Some(*length),
            _ => None,
        }
    }

    /// Whether the change leaves the node's clocks off true time
    /// (`Some(false)`: back on it); `None` for a change that leaves clocks
    /// alone.
    pub fn skews_clock(&self) -> Option<bool> {
        match self {
            NodeChange::Clock(ClockChange::Offset(skew) | ClockChange::Jump(skew)) => Some(!skew.by.is_zero()),
            NodeChange::Clock(ClockChange::Drift(drift)) => Some(*drift != 0.0),
            _ => None,
        }
    }

    /// Whether the change is one of the faults every backend carries out
    /// (crash, restart, rebind, disk); a backend may refuse the others
    /// ([`Cluster::refuses`](crate::engine::cluster::Cluster::refuses)).
    pub fn is_basic(&self) -> bool {
        matches!(self, NodeChange::Crash | NodeChange::Restart | NodeChange::Rebind { .. } | NodeChange::Disk(_))
    }
}

/// What a link action does to each link of its scope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkChange {
    /// `partition`: drop everything on the link (only from `a` to `b` when `oneway`).
    Partition {
        /// Drop only traffic from `a` to `b`.
        oneway: bool,
    },
    /// `heal`: remove the partitions of the link, both ways.
    Heal,
    /// `latency`: set the link's latency.
    Latency(LatencyRange),
    /// `loss`: set the link's probability of dropping a packet, `0.0..=1.0`.
    Loss(f64),
}

impl LinkChange {
    /// The key of the action in a step table.
    pub fn name(&self) -> &'static str {
        match self {
            LinkChange::Partition { .. } => "partition",
            LinkChange::Heal => "heal",
            LinkChange::Latency(_) => "latency",
            LinkChange::Loss(_) => "loss",
        }
    }

    /// The ordered links `(x, y)` (what `x` sends to `y`) it sets on `scope`
    /// in a cluster of `size` nodes: the scope's links and their reverses,
    /// except for a one-way partition. Sorted, without repeats.
    pub fn links(&self, scope: &Scope, size: u32) -> Vec<(NodeIdx, NodeIdx)> {
        let forward = scope.links(size);
        let back = match self {
            LinkChange::Partition { oneway: true } => Vec::new(),
            LinkChange::Partition { oneway: false }
            | LinkChange::Heal
            | LinkChange::Latency(_)
            | LinkChange::Loss(_) => forward.iter().map(|&(x, y)| (y, x)).collect(),
        };
        let all: std::collections::BTreeSet<_> = forward.into_iter().chain(back).collect();
        all.into_iter().collect()
    }
}

/// Which links a link action changes: `a` and `b` in a step, both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every link (no groups).
    Every,
    /// The links between two groups of nodes.
    Between {
        /// One side: non-empty.
        a: Vec<NodeIdx>,
        /// The other side: non-empty (disjoint from `a` for a partition).
        b: Vec<NodeIdx>,
    },
}

impl Scope {
    /// The ordered links `(x, y)` it names in a cluster of `size` nodes:
    /// every `x` in `a` to every other `y` in `b`, or every ordered pair of
    /// distinct nodes.
    pub fn links(&self, size: u32) -> Vec<(NodeIdx, NodeIdx)> {
        match self {
            Scope::Between { a, b } => {
                a.iter().flat_map(|&x| b.iter().filter(move |&&y| y != x).map(move |&y| (x, y))).collect()
            }
            Scope::Every => (0..size).flat_map(|x| (0..size).filter(move |&y| y != x).map(move |y| (x, y))).collect(),
        }
    }

    /// The two groups, or `None` for every link.
    pub fn groups(&self) -> Option<(&[NodeIdx], &[NodeIdx])> {
        match self {
            Scope::Every => None,
            Scope::Between { a, b } => Some((a, b)),
        }
    }

    /// The scope with its nodes renumbered by `node` (`None` drops a node);
    /// `None` when a group is left empty.
    pub fn renumbered(&self, node: impl Fn(NodeIdx) -> Option<NodeIdx>) -> Option<Scope> {
        let group = |group: &[NodeIdx]| {
            let left: Vec<NodeIdx> = group.iter().filter_map(|&n| node(n)).collect();
            (!left.is_empty()).then_some(left)
        };
        match self {
            Scope::Every => Some(Scope::Every),
            Scope::Between { a, b } => Some(Scope::Between { a: group(a)?, b: group(b)? }),
        }
    }
}

/// A condition of `await`, `expect` and `[[expect]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The node it is about, or `None` for every live node.
    pub node: Option<NodeIdx>,
    /// What must hold: one of the system's conditions.
    pub check: Call,
}

impl Condition {
    /// The condition with its node renumbered by `node`; `None` when its
    /// node maps to `None`.
    pub fn renumbered(&self, node: impl Fn(NodeIdx) -> Option<NodeIdx>) -> Option<Condition> {
        let renumbered = match self.node {
            Some(n) => Some(node(n)?),
            None => None,
        };
        Some(Condition { node: renumbered, check: self.check.clone() })
    }
}

impl LatencyRange {
    /// A latency that is always `d`.
    pub fn fixed(d: Duration) -> LatencyRange {
        LatencyRange { min: d, max: d }
    }
}

impl Default for Network {
    /// Latency `1ms..5ms`, no loss.
    fn default() -> Network {
        Network { latency: LatencyRange { min: Duration::from_millis(1), max: Duration::from_millis(5) }, loss: 0.0 }
    }
}

impl Scenario {
    /// What the scenario does, without its values: the node count and each
    /// step's action with the nodes it names (a link action's groups, a
    /// node action's node, an operation's `node`, `from` and `to` fields),
    /// never keys, payloads or times. Two reproducers of one bug that
    /// differ only in those have the same shape:
    ///
    /// ```
    /// # use tandem::scenario::{Action, Scenario, Step, Timing};
    /// let mut scenario = Scenario::new("s", 3);
    /// scenario.steps.push(Step::new(Timing::Immediately, Action::Crash { node: 1 }));
    /// assert_eq!(scenario.shape(), "3 nodes: crash 1");
    /// ```
    pub fn shape(&self) -> String {
        let steps: Vec<String> = self.steps.iter().map(|step| step_shape(&step.action)).collect();
        format!("{} nodes: {}", self.nodes, steps.join("; "))
    }

    /// A scenario named `name` with `nodes` nodes, every other field at its
    /// default, and no steps or end checks.
    pub fn new(name: impl Into<String>, nodes: u32) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            nodes,
            seeds: vec![0],
            duration: DEFAULT_DURATION,
            settle: DEFAULT_SETTLE,
            seed: 0,
            stagger: Duration::ZERO,
            clients: 1,
            network: Network::default(),
            steps: Vec::new(),
            expects: Vec::new(),
            finals: Vec::new(),
            planted_bug: None,
            knobs: BTreeMap::new(),
            system: None,
            properties: Vec::new(),
        }
    }

    /// Reads and parses a scenario file for `system`; the name defaults to
    /// the file stem.
    pub fn from_file(path: &Path, system: &dyn Syntax) -> Result<Scenario, ScenarioError> {
        Scenario::from_file_among(path, &[system])
    }

    /// Reads and parses a scenario file for the system it names among
    /// `systems` (the first one when it names none).
    pub fn from_file_among(path: &Path, systems: &[&dyn Syntax]) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::unreadable(&file, &e))?;
        Scenario::parse_among(&text, &file, systems)
    }

    /// Parses scenario text for `system`. `file` names the source in error
    /// messages, and its stem is the default name (`"scenario"` when it has
    /// none).
    pub fn parse(text: &str, file: &str, system: &dyn Syntax) -> Result<Scenario, ScenarioError> {
        Scenario::parse_among(text, file, &[system])
    }

    /// Parses scenario text for the system it names with `system = "NAME"`
    /// among `systems` (the first one when it names none).
    ///
    /// # Panics
    ///
    /// When `systems` is empty.
    pub fn parse_among(text: &str, file: &str, systems: &[&dyn Syntax]) -> Result<Scenario, ScenarioError> {
        parse::parse(text, file, systems)
    }

    /// Checks the rules the parser enforces beyond syntax (node indices in
    /// range, probabilities, groups, `settle <= duration`, the system's
    /// operations and conditions, ...), for a scenario built in code. The
    /// error names the offending field, like `step[2].a[0]: ...`.
    pub fn validate(&self, system: &dyn Syntax) -> Result<(), String> {
        validate::check(self, system).map_err(|v| v.to_string())
    }

    /// Writes the scenario in the file format; parsing the result gives back
    /// an equal scenario (for a valid one).
    pub fn to_toml(&self) -> String {
        write::to_toml(self)
    }

    /// The step's action as written in a scenario file: `key = { ... }`.
    pub fn action_toml(action: &Action) -> String {
        write::action(action)
    }

    /// Whether the scenario is for `system` (a scenario naming no system is
    /// for whichever system runs it).
    pub fn is_for<S: System>(&self, system: &S) -> bool {
        self.system.as_deref().is_none_or(|name| name == system.name())
    }
}

/// One step of [`Scenario::shape`].
fn step_shape(action: &Action) -> String {
    let list = |nodes: &[NodeIdx]| nodes.iter().map(NodeIdx::to_string).collect::<Vec<_>>().join(",");
    let nodes = match action {
        Action::Link { scope: Scope::Every, .. } => "*".to_string(),
        Action::Link { scope: Scope::Between { a, b }, .. } => format!("{}|{}", list(a), list(b)),
        Action::Op(call) => {
            let named = ["node", "from", "to"].map(|field| call.value.get(field).and_then(toml::Value::as_integer));
            named.iter().flatten().map(i64::to_string).collect::<Vec<_>>().join(",")
        }
        Action::Aimed { role, .. } => role.clone(),
        _ => action.node().map(|node| node.to_string()).unwrap_or_default(),
    };
    match nodes.is_empty() {
        true => action.name().to_string(),
        false => format!("{} {nodes}", action.name()),
    }
}
