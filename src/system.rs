//! The system under test: the one trait a user implements to let tandem drive
//! their node.
//!
//! A [`System`] is a small adapter around a real async node written against
//! [`Transport`]. tandem starts one node per scenario index (and again after
//! every crash), hands it a [`NodeContext`], invokes the system's own
//! [operations](System::Op) from scenario steps, records what the harness
//! observes into the run's [`History`], and judges the history with the
//! system's [`Property`]s. The same adapter runs in the simulation
//! (`tandem-sim`) and over real QUIC (`tandem-msquic`).
//!
//! The shapes follow the anchors: stateright's `Actor` (a system declares its
//! properties as closures), moonpool's `Process`/`Workload` (a factory that
//! boots a node from a context at every start, and a workload that drives
//! it), Jepsen's histories (each operation is an invocation and a
//! completion).
//!
//! A complete system, an echo node, is in the guide (`docs/guide.md`) and in
//! `examples/ping.rs`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::strategy::BoxedStrategy;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::history::{Event, History};
use crate::probe::Probe;
use crate::property::Property;
use crate::scenario::{NodeIdx, Scenario};
use crate::storage::Storage;
use crate::transport::{PeerIdentity, Transport};

/// A system's own operation, invoked on a node by a scenario step.
///
/// An operation type is a serde enum whose variants are the step keys
/// (`snake_case`), each carrying a table of fields, for example
/// `put = { node = 0, key = "a", value = "x" }`. The harness records its
/// invocation and completion.
pub trait Operation: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static {
    /// The node that carries the operation out.
    fn node(&self) -> NodeIdx;

    /// Every node index the operation names, the executing node included.
    /// tandem checks them against the scenario's node count and renumbers
    /// them when the shrinker drops a node.
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx>;

    /// Why the operation is invalid in a cluster of `nodes` nodes beyond its
    /// node indices (a size limit, a node sending to itself, ...).
    fn validate(&self, _nodes: u32) -> Result<(), String> {
        Ok(())
    }

    /// Simpler variants of the operation, tried by the shrinker.
    fn simpler(&self) -> Vec<Self> {
        Vec::new()
    }
}

/// A system's own condition, for `await` and `expect` steps and `[[expect]]`
/// end checks: a serde enum whose variants are the condition keys
/// (`snake_case`), for example `received = 2` or `converged = true`.
pub trait Condition: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static> Condition for T {}

/// What a system records: observations, operation results, outcomes.
pub trait Record: Serialize + Clone + Debug + Send + Sync + 'static {}

impl<T: Serialize + Clone + Debug + Send + Sync + 'static> Record for T {}

/// Optional abilities a scenario may use. A scenario that uses one the
/// system lacks is rejected before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Capabilities {
    /// A running node can move its listener (`rebind` steps): hot reload.
    pub rebind: bool,
    /// The node keeps durable state in its [`Storage`]: exploration also
    /// draws `disk` faults (any scenario may use them).
    pub storage: bool,
}

/// A deliberate defect a system can be built with, to prove that
/// exploration finds bugs. A scenario names it with `mutation = "NAME"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlantedBug {
    /// The name used in scenario files and on the command line.
    pub name: &'static str,
    /// What it breaks.
    pub description: &'static str,
}

/// A tunable of a system (FoundationDB's knobs): an integer setting with a
/// default and the range a correct node must work with. Exploration draws
/// knobs per case (usually the default, sometimes an extreme); a scenario
/// sets them in its `[knobs]` table, so a reproducer replays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Knob {
    /// The name used in `[knobs]`.
    pub name: &'static str,
    /// What it tunes, and its unit.
    pub description: &'static str,
    /// The value when nothing sets it.
    pub default: i64,
    /// The smallest value allowed.
    pub min: i64,
    /// The largest value allowed.
    pub max: i64,
}

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
    pub fault: crate::storage::DiskFault,
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
            settle: crate::scenario::DEFAULT_SETTLE,
            stagger: Duration::from_millis(20),
            clients: 1,
            disk_faults: &[],
            max_pause: Duration::ZERO,
            max_clock_jump: Duration::ZERO,
            max_drift_percent: 0,
        }
    }
}

/// The knob values of a run: the scenario's `[knobs]`; every other knob
/// keeps its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs(BTreeMap<String, i64>);

impl Knobs {
    /// The values set, by knob name.
    pub fn new(values: BTreeMap<String, i64>) -> Knobs {
        Knobs(values)
    }

    /// The value of `knob` in this run.
    pub fn value(&self, knob: &Knob) -> i64 {
        self.0.get(knob.name).copied().unwrap_or(knob.default)
    }
}

/// Everything a node gets when it starts: its place in the run, its network
/// (`T`) and where its observations (`O`) go. Node code names only those,
/// never its test adapter.
///
/// In the simulation every field is a pure function of the run's seed and
/// the node; over MsQuic the same fields describe real sockets.
pub struct NodeContext<O, T> {
    /// The node's index in the scenario, `0..nodes`.
    pub index: NodeIdx,
    /// 0 at the first start, one more at every restart.
    pub incarnation: u64,
    /// Where the node listens.
    pub listen: SocketAddr,
    /// Every node's current address, by index (this node's is `listen`).
    pub addrs: Vec<SocketAddr>,
    /// The membership seed nodes of the scenario (a system may instead use
    /// `addrs` as a static peer list).
    pub seeds: Vec<NodeIdx>,
    /// A seed for the node's random choices: use it, never OS randomness.
    pub rng_seed: u64,
    /// The run's id: the same for every node and incarnation of one run, a
    /// function of the seed in the simulation, fresh for every real run.
    pub run_id: u64,
    /// The node's disk: what it synced survives its crashes and restarts
    /// (see [`crate::storage`]).
    pub storage: Storage,
    /// The network.
    pub transport: T,
    /// Where the node's observations go.
    pub observer: Observer<O>,
    /// In-node assertions ([`always!`](crate::always), [`sometimes!`](crate::sometimes), ...).
    pub probe: Probe,
    /// Stops the node for good, as a fail-stop process does when it finds
    /// its own state broken.
    pub fail_stop: FailStop,
    /// The planted bug the run asks for, one of [`System::planted_bugs`].
    pub planted_bug: Option<&'static str>,
    /// The run's values of the system's [knobs](System::knobs).
    pub knobs: Knobs,
    /// The identity each node's transport presents to its peers, by index
    /// ([`ConnectionInfo::peer_identity`](crate::transport::ConnectionInfo)),
    /// where the network authenticates them: the real network gives every
    /// node one certificate for the whole run; the simulation gives `None`.
    /// A system can bind its node ids to them (a roster).
    pub identities: Vec<Option<PeerIdentity>>,
    /// This node's signing secret for the run, where the network provisions
    /// one (the real network: fresh for every run, kept across restarts,
    /// given to this node only); `None` in simulation. It is the seed of an
    /// Ed25519 signing key.
    pub secret: Option<NodeSecret>,
    /// Every node's Ed25519 verifying key, by index: the public half of its
    /// [`secret`](NodeContext::secret) (`None` where there is none).
    pub verifying_keys: Vec<Option<[u8; 32]>>,
}

/// A node's signing secret (see [`NodeContext::secret`]); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSecret(pub [u8; 32]);

impl std::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSecret(..)")
    }
}

impl<O, T> NodeContext<O, T> {
    /// The current addresses of the seed nodes other than this one.
    pub fn seed_addrs(&self) -> Vec<SocketAddr> {
        self.seeds.iter().filter(|&&s| s != self.index).map(|&s| self.addrs[s as usize]).collect()
    }
}

/// Records a node's observations into the run's history, stamped with the
/// node and the time. Cheap to clone; hand it to the node's tasks.
pub struct Observer<O> {
    sink: Arc<dyn Fn(O) + Send + Sync>,
}

impl<O> Clone for Observer<O> {
    fn clone(&self) -> Self {
        Observer { sink: self.sink.clone() }
    }
}

impl<O> Observer<O> {
    /// An observer that hands every observation to `sink`.
    pub fn new(sink: impl Fn(O) + Send + Sync + 'static) -> Self {
        Observer { sink: Arc::new(sink) }
    }

    /// An observer that drops everything (a node running outside tandem).
    pub fn discard() -> Self {
        Observer::new(|_| {})
    }

    /// Records `observation`.
    pub fn observe(&self, observation: O) {
        (self.sink)(observation)
    }
}

/// A node's way to stop itself, as a fail-stop process does when it finds
/// its own state broken (a checksum that does not match, a sync that
/// failed): the harness records why, stops the node as a `crash` step would
/// (its pending operations end unknown, unsynced writes are lost), and a
/// later `restart` step starts it again. Cheap to clone; hand it to the
/// node's tasks. A node that fail-stops while it boots should also return
/// an error from [`System::start`].
///
/// ```
/// use tandem::system::FailStop;
/// let (tx, rx) = std::sync::mpsc::channel();
/// let fail_stop = FailStop::new(move |why| tx.send(why).unwrap());
/// fail_stop.stop("entry 7 fails its checksum");
/// assert_eq!(rx.recv().unwrap(), "entry 7 fails its checksum");
/// ```
#[derive(Clone)]
pub struct FailStop {
    stop: Arc<dyn Fn(String) + Send + Sync>,
}

impl FailStop {
    /// A fail-stop that hands the reason to `stop` (a backend's; a node
    /// running outside tandem might exit the process).
    pub fn new(stop: impl Fn(String) + Send + Sync + 'static) -> Self {
        FailStop { stop: Arc::new(stop) }
    }

    /// Stops the node, for the reason `why`.
    pub fn stop(&self, why: impl Into<String>) {
        (self.stop)(why.into())
    }
}

/// Why an operation did not return a result (see [`System::invoke`]).
///
/// ```
/// use tandem::system::OpError;
/// let failed: OpError = "key too long".to_string().into();
/// assert_eq!(failed, OpError::Failed("key too long".into()));
/// let maybe = OpError::Indeterminate("no answer from the leader in 2 s".into());
/// assert!(maybe.to_string().starts_with("indeterminate"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// It did not take effect.
    Failed(String),
    /// It may or may not have taken effect (Jepsen's `:info`): recorded as
    /// [`OpResult::Unknown`](crate::history::OpResult::Unknown), and
    /// properties must allow either.
    Indeterminate(String),
}

impl From<String> for OpError {
    fn from(why: String) -> OpError {
        OpError::Failed(why)
    }
}

impl From<&str> for OpError {
    fn from(why: &str) -> OpError {
        OpError::Failed(why.to_string())
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Failed(why) => write!(f, "failed: {why}"),
            OpError::Indeterminate(why) => write!(f, "indeterminate: {why}"),
        }
    }
}

/// Where an invocation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation {
    /// The index of the scenario step that invoked it.
    pub step: usize,
    /// The operation's id in the history.
    pub id: u64,
}

/// A system under test: an adapter that starts a node, carries out the
/// system's operations on it, and says what to check.
///
/// Only [`start`](System::start), [`invoke`](System::invoke),
/// [`stop`](System::stop), [`addr`](System::addr), [`check`](System::check),
/// [`outcome`](System::outcome) and [`operations`](System::operations) are
/// required; everything else has a default.
pub trait System: Clone + Debug + Send + Sync + Sized + 'static {
    /// The operations scenario steps invoke (a serde enum; see [`Operation`]).
    type Op: Operation;
    /// What a successful operation returns; recorded in the history.
    type Output: Record;
    /// What the harness observes of a node (deliveries, reads, views, ...).
    type Observation: Record;
    /// The conditions of `await` and `expect` (a serde enum).
    type Condition: Condition;
    /// A node's final state as the harness saw it; `tandem confirm` compares
    /// it between the simulation and MsQuic.
    type Outcome: Record + Eq;
    /// What the harness derives from the history as it grows (see
    /// [`fold`](System::fold)); `()` when nothing.
    type State: Default + Clone + Debug + Send + 'static;
    /// A running node. Shared by its clients' operations, which run at once
    /// (see [`invoke`](System::invoke)).
    type Node: Send + Sync + 'static;

    /// The system's name, as in `system = "NAME"`.
    fn name(&self) -> &'static str;

    /// One line about the system, for `tandem systems`.
    fn description(&self) -> &'static str {
        ""
    }

    /// Which optional steps the system supports.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// The planted bugs the system can be built with.
    fn planted_bugs(&self) -> Vec<PlantedBug> {
        Vec::new()
    }

    /// The timing the system tolerates, for exploration.
    fn tolerance(&self) -> Tolerance {
        Tolerance::default()
    }

    /// The system's tunables; a node reads their values in a run from
    /// [`NodeContext::knobs`].
    fn knobs(&self) -> Vec<Knob> {
        Vec::new()
    }

    /// Starts one node: binds `ctx.listen` on `ctx.transport` and returns
    /// once the node serves.
    fn start<T: Transport>(
        &self,
        ctx: NodeContext<Self::Observation, T>,
    ) -> impl Future<Output = Result<Self::Node, String>> + Send;

    /// Where a running node listens now.
    fn addr(&self, node: &Self::Node) -> SocketAddr;

    /// Carries out `op` on `node`. An [`OpError::Failed`] is recorded as a
    /// failed operation (it did not take effect), an
    /// [`OpError::Indeterminate`] as an unknown one (it may have: a timed-out
    /// write that may still commit). A `String` error converts to `Failed`:
    /// `Err(why.into())`, or `?` on a `Result<_, String>`.
    ///
    /// A node has as many clients as the scenario's `clients` (1 unless it
    /// says more): each carries out one operation at a time, and the
    /// clients' operations on one node run concurrently, so `invoke` takes
    /// the node shared.
    fn invoke(
        &self,
        node: &Self::Node,
        op: Self::Op,
        invocation: Invocation,
    ) -> impl Future<Output = Result<Self::Output, OpError>> + Send;

    /// Moves a running node's listener to `addr` (port 0: any free port) and
    /// returns the new address; only with [`Capabilities::rebind`].
    fn rebind(
        &self,
        _node: &mut Self::Node,
        addr: SocketAddr,
    ) -> impl Future<Output = Result<SocketAddr, String>> + Send {
        async move { Err(format!("system `{}` cannot rebind (to {addr})", self.name())) }
    }

    /// Stops a node for good (a crash, or the end of a run): its tasks end
    /// and its connections drop. Dropping the node must do the same.
    fn stop(&self, node: Self::Node) -> impl Future<Output = ()> + Send;

    /// Updates the harness's derived state with one new event. Conditions
    /// that run at every simulation step read it instead of rescanning.
    fn fold(&self, _state: &mut Self::State, _event: &Event<Self>) {}

    /// An abstract state of the run, from what the harness derived so far
    /// (see [`fold`](System::fold)), for exploration: each distinct state a
    /// run reaches counts as coverage, as new as a new pair of events, and
    /// a run that reaches a rare one is worth exploring further from. Called
    /// after every event; `None` (the default) names none.
    ///
    /// Keep it coarse: "a node restarted while cut off, holding a key
    /// others hold" says more than the whole state would.
    fn abstract_state(&self, _state: &Self::State) -> Option<String> {
        None
    }

    /// Why `condition` does not hold for `node` now, or `Ok`.
    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &Self::Condition) -> Result<(), String>;

    /// The properties every run is judged by.
    fn properties(&self) -> Vec<Property<Self>> {
        Vec::new()
    }

    /// What `node` ended with, as the harness observed it.
    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> Self::Outcome;

    /// The workload of exploration: one operation among `nodes` nodes. With
    /// `focus`, the operation should involve that node (it is the one a
    /// fault around the operation hits: for messaging, a message to it).
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Self::Op>;

    /// The workloads exploration can draw operations from, by name
    /// (`tandem explore --workload NAME`); the first is the default, the
    /// one [`operations`](System::operations) draws from. Empty (the
    /// default): one workload, unnamed.
    fn workloads(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The operations of workload `workload` (one of
    /// [`workloads`](System::workloads)), as [`operations`](System::operations)
    /// draws them; `None` is the default workload. The default draws from
    /// `operations` whatever the name.
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

    /// A condition explored timelines await before their first episode (for
    /// example membership convergence).
    fn ready(&self) -> Option<Self::Condition> {
        None
    }

    /// How the timeline picture (`--html`) draws one of the node's events
    /// (an invocation, completion, observation or assertion), given the
    /// whole history: its kind, label, and the key that joins it to the
    /// events it causes or was caused by. `None` draws a generic dot.
    ///
    /// ```
    /// # use tandem::engine::picture::Mark;
    /// // A delivery, joined to the send of message 7 by the key "7".
    /// let mark = Mark::new("deliver", "deliver m7").effect("7");
    /// assert!(!mark.cause);
    /// ```
    fn mark(&self, _history: &History<Self>, _event: &Event<Self>) -> Option<crate::engine::picture::Mark> {
        None
    }

    /// Why a generated scenario is unfair to a correct node of this system,
    /// beyond the generic rules; exploration never generates one.
    fn fair(&self, _scenario: &Scenario) -> Result<(), String> {
        Ok(())
    }

    /// The roles a node of the system can hold (`"leader"`, `"primary"`):
    /// scenario steps aim faults at them (`crash = { role = "primary" }`),
    /// and exploration sometimes does. None by default; a role a scenario
    /// names must be one of these.
    fn roles(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The node that holds `role` now, judged from what the harness
    /// observed (the history, never the node's own word), or `None` when no
    /// live node does: the executor then skips the step and records why.
    /// Called when a step aimed at the role runs, with `role` one of
    /// [`roles`](System::roles).
    fn role(&self, _history: &History<Self>, _role: &str) -> Option<NodeIdx> {
        None
    }
}
