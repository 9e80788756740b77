//! [`Adapter`]: how tandem runs a node of a system (start it, invoke its
//! operations, move and stop it) and what the system declares about itself,
//! with everything a node gets from the harness. Node code and this file
//! know nothing of histories, properties or exploration.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::probe::Probe;
use crate::scenario::NodeIdx;
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
    /// The planted bug the run asks for, one of [`Adapter::planted_bugs`].
    pub planted_bug: Option<&'static str>,
    /// The run's values of the system's [knobs](Adapter::knobs).
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
/// an error from [`Adapter::start`].
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

/// Why an operation did not return a result (see [`Adapter::invoke`]).
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

/// How tandem runs a node of a system, and what the system declares about
/// itself (moonpool's `Process`): it starts a node from a [`NodeContext`],
/// carries out the system's operations on it, moves its listener and stops
/// it.
///
/// Only [`name`](Adapter::name), [`start`](Adapter::start),
/// [`addr`](Adapter::addr), [`invoke`](Adapter::invoke) and
/// [`stop`](Adapter::stop) are required.
pub trait Adapter: Clone + Debug + Send + Sync + Sized + 'static {
    /// The operations scenario steps invoke (a serde enum; see [`Operation`]).
    type Op: Operation;
    /// What a successful operation returns; recorded in the history.
    type Output: Record;
    /// What the harness observes of a node (deliveries, reads, views, ...).
    type Observation: Record;
    /// A running node. Shared by its clients' operations, which run at once
    /// (see [`invoke`](Adapter::invoke)).
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
}
