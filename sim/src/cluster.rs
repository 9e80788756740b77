//! [`SimCluster`]: a system's nodes as turmoil hosts, driven tick by tick.
//!
//! Each host runs the shared hosting layer ([`tandem::engine::host`]) on a
//! [`SimTransport`]; the cluster applies faults to turmoil's links and the
//! loss table between ticks, so a run is a pure function of the options and
//! the actions.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use tandem::engine::cluster::{Cluster, Setup};
use tandem::engine::host::{self, derive_seed, Boot, Command, Order, Recorder, Served};
use tandem::engine::links::LinkState;
use tandem::engine::profile::Profile;
use tandem::history::History;
use tandem::scenario::{LatencyRange, LinkChange, NodeChange, NodeIdx, Scope};
use tandem::storage::Storage;
use tandem::system::System;
use tandem::transport::{Framing, DEFAULT_MAX_FRAME};
use tokio::sync::{mpsc, oneshot};

use crate::determinism;
use crate::net::{LinkTable, QuicModel};
use crate::transport::SimTransport;

/// The port every node listens on at start.
pub const BASE_PORT: u16 = 7000;
/// Ports the runner picks for rebinds without a port start here.
pub const REBIND_PORT: u16 = 20000;
/// How long the runner waits for a node to rebind before the timeline goes
/// on (simulated time; a rebind waits for the node's operation in flight).
pub const REBIND_PATIENCE: Duration = Duration::from_secs(10);

/// How to build a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The nodes, the links and the seed (turmoil's RNG, the nodes' and the
    /// transports' derive from it).
    pub setup: Setup,
    /// turmoil's tick: the simulation's time resolution.
    pub tick: Duration,
    /// The QUIC model of connections.
    pub model: QuicModel,
    /// Each node first boots at an offset drawn from the seed in
    /// `0..=stagger`, in whole ticks (the scenario's `stagger`).
    pub stagger: Duration,
    /// Which simulator runs the cluster.
    pub backend: Backend,
    /// How long a sync of a node's disk takes, in simulated time (the
    /// calibration profile's, [`Profile::sync_latency`]).
    pub sync_latency: Duration,
    /// Whether node code may start OS threads: by default not (the run
    /// fails naming the call, see [`determinism`]); allowed, each thread is
    /// recorded and the run is not reproducible. Default:
    /// `TANDEM_ALLOW_THREADS=1`.
    pub allow_threads: bool,
}

/// The simulators a cluster can run on. Both model the same network (see
/// [`crate::net`]) and are deterministic; their histories differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Discrete events: time jumps to the next timer or delivery. The default.
    #[default]
    Events,
    /// turmoil 0.7: every host steps every 1 ms tick.
    Turmoil,
}

/// The process's backend: 0 until chosen, else 1 + the variant's index.
static BACKEND: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The backend of this process's runs: the one [`select_backend`] chose
/// last, else `TANDEM_BACKEND` (`events` or `turmoil`), else
/// [`Backend::Events`].
pub fn default_backend() -> Backend {
    match BACKEND.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Backend::Events,
        2 => Backend::Turmoil,
        _ => std::env::var("TANDEM_BACKEND").ok().and_then(|name| name.parse().ok()).unwrap_or_default(),
    }
}

/// Chooses the backend of this process's runs from now on (the CLI's
/// `--backend`; the benchmarks switch between the two).
pub fn select_backend(backend: Backend) {
    let code = match backend {
        Backend::Events => 1,
        Backend::Turmoil => 2,
    };
    BACKEND.store(code, std::sync::atomic::Ordering::Relaxed);
}

/// The calibration profile of this process's runs: the file `TANDEM_PROFILE`
/// names (read once; the CLI's `--profile` sets it), else the one compiled
/// into the build.
///
/// # Panics
///
/// When `TANDEM_PROFILE` names a file that is not a profile.
pub fn default_profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| match std::env::var_os("TANDEM_PROFILE") {
        Some(path) => Profile::from_file(Path::new(&path)).unwrap_or_else(|error| panic!("TANDEM_PROFILE: {error}")),
        None => Profile::default(),
    })
}

impl Backend {
    /// Every backend, the default first.
    pub const ALL: [Backend; 2] = [Backend::Events, Backend::Turmoil];

    /// `events` or `turmoil`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Events => "events",
            Backend::Turmoil => "turmoil",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    /// `events` or `turmoil`.
    fn from_str(name: &str) -> Result<Backend, String> {
        Backend::ALL.into_iter().find(|b| b.name() == name).ok_or_else(|| format!("no backend {name:?}"))
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl SimOptions {
    /// `nodes` nodes seeded by node 0, 1-5 ms latency, no loss, 1 ms ticks.
    pub fn new(nodes: u32, seed: u64) -> Self {
        SimOptions::of(Setup::new(nodes, seed))
    }

    /// `setup` with 1 ms ticks, the default QUIC model, no stagger, the
    /// process's backend and the sync latency of the process's profile.
    pub fn of(setup: Setup) -> Self {
        SimOptions {
            setup,
            tick: Duration::from_millis(1),
            model: QuicModel::default(),
            stagger: Duration::ZERO,
            backend: default_backend(),
            sync_latency: default_profile().sync_latency(),
            allow_threads: determinism::threads_allowed_by_default(),
        }
    }

    /// An empty disk for each node, syncing in [`SimOptions::sync_latency`].
    pub(crate) fn disks(&self) -> Vec<Storage> {
        let seeded = |node| derive_seed(self.setup.seed, node, u64::MAX, 3);
        (0..self.setup.nodes)
            .map(|node| Storage::in_memory_with_sync_latency(self.sync_latency).seeded(seeded(node)))
            .collect()
    }

    /// The links every node starts with, as a tracker of their state.
    pub(crate) fn link_state(&self) -> LinkState {
        LinkState::new(&self.setup.network)
    }

    /// The default latency bounds of every link.
    pub(crate) fn latency(&self) -> (Duration, Duration) {
        (self.setup.network.latency.min, self.setup.network.latency.max)
    }

    /// When `node` first boots: an offset in `0..=stagger` drawn from the
    /// seed, in whole ticks.
    pub fn boot_offset(&self, node: NodeIdx) -> Duration {
        let ticks = (self.stagger.as_nanos() / self.tick.as_nanos().max(1)) as u64;
        self.tick * (derive_seed(self.setup.seed, node, 0, 7) % (ticks + 1)) as u32
    }

    /// An empty turmoil network with these options' tick, latency and seed
    /// (also the raw-turmoil baseline of `tandem bench`).
    pub fn network(&self) -> turmoil::Sim<'static> {
        turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(u32::MAX as u64))
            .tick_duration(self.tick)
            .min_message_latency(self.latency().0)
            .max_message_latency(self.latency().1)
            .epoch(UNIX_EPOCH)
            .rng_seed(self.setup.seed)
            .build()
    }
}

/// The unordered pairs of `links`, each once, in order: how both backends
/// apply partitions (a link and its reverse together).
pub(crate) fn unordered(pairs: &[(NodeIdx, NodeIdx)]) -> Vec<(NodeIdx, NodeIdx)> {
    let set: BTreeSet<(NodeIdx, NodeIdx)> = pairs.iter().map(|&(x, y)| (x.min(y), x.max(y))).collect();
    set.into_iter().collect()
}

/// The boot of `node`'s next incarnation in a simulated cluster, and how
/// long its host waits before it (the first boot's stagger).
pub(crate) fn next_boot<S: System>(
    options: &SimOptions,
    recorder: &Recorder<S>,
    disk: &Storage,
    node: NodeIdx,
) -> (Boot, Duration) {
    // Buggify points fire in the simulation only.
    let next = recorder.read(|h| Boot::next(h, node, &options.setup, disk));
    let boot = Boot { buggify: Some(options.setup.seed), ..next };
    let delay = if boot.incarnation == 0 { options.boot_offset(node) } else { Duration::ZERO };
    (boot, delay)
}

/// What the runner and the hosts share (all on one thread).
struct Shared<S: System> {
    options: SimOptions,
    ips: Vec<IpAddr>,
    links: LinkTable,
    /// Each running node's command channel.
    commands: Vec<Option<mpsc::UnboundedSender<Order<S>>>>,
    /// How many times each node's host finished booting it (started or failed).
    boots: Vec<u32>,
    /// Each node's disk, kept in memory across its incarnations.
    disks: Vec<Storage>,
    /// Nodes that stopped themselves ([`FailStop`](tandem::system::FailStop))
    /// and whose hosts turmoil is yet to crash.
    fail_stopped: Vec<NodeIdx>,
}

impl<S: System> Shared<S> {
    /// A node has stopped (its host carried out `Stop` or `FailStop`): its
    /// disk loses its unsynced writes and the history records the crash, at `at`.
    fn crashed(&mut self, recorder: &Recorder<S>, node: NodeIdx, at: Duration) {
        let incarnation = recorder.read(|h| h.node(node).incarnation);
        self.commands[node as usize] = None;
        self.disks[node as usize].crash(derive_seed(self.options.setup.seed, node, incarnation, 3));
        recorder.crashed(at, node);
    }
}

/// A simulated cluster of a system's nodes. Every action is applied between
/// two ticks, so a run is a pure function of the options and the actions.
pub struct SimCluster<S: System> {
    sim: turmoil::Sim<'static>,
    shared: Arc<Mutex<Shared<S>>>,
    recorder: Recorder<S>,
    /// What the timeline made of every link.
    link_state: LinkState,
    next_port: u16,
    /// Libc's clocks and randomness follow the run on this thread; dropped
    /// last, after the simulation.
    _determinism: determinism::Guard,
}

fn host_name(node: NodeIdx) -> String {
    format!("n{node}")
}

impl<S: System> SimCluster<S> {
    /// Builds the network and starts every node at time 0. From here until
    /// the cluster is dropped, this thread's libc clocks and randomness
    /// follow the run ([`determinism`]): build it on a fresh thread (as
    /// [`run_with`](crate::run_with) does) for std's per-thread `HashMap`
    /// keys and `thread_rng` to be the run's too.
    pub fn new(system: Arc<S>, options: SimOptions) -> Self {
        assert!(options.setup.nodes >= 1, "a cluster needs a node");
        let guard = determinism::enter(derive_seed(options.setup.seed, NodeIdx::MAX, 0, 6));
        determinism::allow_threads(options.allow_threads);
        let mut sim = options.network();
        let names: Vec<String> = (0..options.setup.nodes).map(host_name).collect();
        // Hosts get their IPs in registration order; register them all first
        // so every node's address is known before any starts.
        let ips: Vec<IpAddr> = names.iter().map(|n| sim.lookup(n.as_str())).collect();
        let addrs: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, BASE_PORT)).collect();
        let recorder =
            // Outside the hosts (the runner reading the history), the time of the last step.
            Recorder::new(system, &addrs, || turmoil::sim_elapsed().unwrap_or_else(determinism::elapsed));
        let link_state = options.link_state();
        let shared = Arc::new(Mutex::new(Shared {
            links: LinkTable::new(options.setup.network.loss),
            commands: (0..options.setup.nodes).map(|_| None).collect(),
            boots: vec![0; options.setup.nodes as usize],
            disks: options.disks(),
            fail_stopped: Vec::new(),
            options,
            ips,
        }));
        for (node, name) in names.iter().enumerate() {
            let (shared, recorder) = (shared.clone(), recorder.clone());
            sim.host(name.as_str(), move || host_main(shared.clone(), recorder.clone(), node as NodeIdx));
        }
        let mut cluster = SimCluster { sim, shared, recorder, link_state, next_port: REBIND_PORT, _determinism: guard };
        // Hosts start on their first tick: run until every node has booted,
        // so the timeline begins with every node up (or known to have failed).
        cluster.boot(|boots| boots.iter().all(|&b| b >= 1));
        cluster
    }

    /// Runs the simulation until `booted` holds for the boot counts (at most
    /// a simulated second after the stagger: a boot that takes longer is the
    /// system's bug, and the executor reports a node that is not up).
    fn boot(&mut self, booted: impl Fn(&[u32]) -> bool) {
        let deadline = self.now() + self.lock().options.stagger + Duration::from_secs(1);
        while !booted(&self.lock().boots) && self.now() < deadline {
            self.step();
        }
    }

    /// Ends the run and hands back what it observed.
    pub fn into_history(self) -> History<S> {
        // Dropping the simulation first stops the hosts that share the recorder.
        let SimCluster { sim, recorder, .. } = self;
        drop(sim);
        recorder.read(History::clone)
    }

    fn lock(&self) -> MutexGuard<'_, Shared<S>> {
        self.shared.lock().expect("the simulation is single-threaded")
    }

    fn ip(&self, node: NodeIdx) -> IpAddr {
        self.lock().ips[node as usize]
    }

    /// One tick. A node's panic goes on as the same panic, without turmoil's
    /// wrapping (which names process-global task ids).
    fn step(&mut self) {
        determinism::set_elapsed(self.sim.elapsed());
        let stepped = self.sim.step();
        determinism::set_elapsed(self.sim.elapsed());
        determinism::judge_thread_starts(&self.recorder, self.sim.elapsed());
        let fail_stopped = std::mem::take(&mut self.lock().fail_stopped);
        for node in fail_stopped {
            self.sim.crash(host_name(node));
        }
        if let Err(error) = stepped {
            match error.downcast::<tokio::task::JoinError>() {
                Ok(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Ok(join) => panic!("a host's task ended: {join}"),
                Err(error) => panic!("a host failed: {error}"),
            }
        }
    }

    /// Hands a command to a running node's host, which carries it out from
    /// its next step on; the receiver says when it has.
    fn send(&self, node: NodeIdx, command: Command<S>) -> oneshot::Receiver<()> {
        let sender = self.lock().commands[node as usize].clone().expect("the executor only commands running nodes");
        let (done, carried_out) = oneshot::channel();
        sender.send((command, done)).unwrap_or_else(|_| panic!("node {node}'s host is gone"));
        carried_out
    }

    /// [`send`](Self::send)s a command and runs the simulation until the
    /// host has carried it out (or `patience` has passed), so the next step
    /// sees its effect.
    fn command(&mut self, node: NodeIdx, command: Command<S>, patience: Duration) {
        let mut carried_out = self.send(node, command);
        let deadline = self.now() + patience;
        while carried_out.try_recv() == Err(oneshot::error::TryRecvError::Empty) && self.now() < deadline {
            self.step();
        }
    }

    /// Applies the wanted partition state of the link between `x` and `y`:
    /// turmoil holds a link cut both ways; the connections hold what they
    /// send across a link cut one way.
    fn apply_link(&mut self, x: NodeIdx, y: NodeIdx) {
        let (ix, iy) = (self.ip(x), self.ip(y));
        let (xy, yx) = (self.link_state.link(x, y).partitioned, self.link_state.link(y, x).partitioned);
        if xy && yx {
            self.sim.hold(ix, iy);
        } else {
            self.sim.release(ix, iy);
        }
        let shared = self.lock();
        shared.links.set_held(ix, iy, xy && !yx);
        shared.links.set_held(iy, ix, yx && !xy);
    }
}

/// The node changes that take more than a line.
impl<S: System> SimCluster<S> {
    fn crash_node(&mut self, node: NodeIdx) {
        // tokio drops a runtime's remaining tasks in an order that depends on
        // process-global task ids, and every dropped stream sends a segment:
        // so the node is stopped first, in its own deterministic order.
        self.command(node, Command::Stop, Duration::from_secs(1));
        self.sim.crash(host_name(node));
        let now = self.now();
        self.shared.lock().expect("single-threaded").crashed(&self.recorder, node, now);
    }

    fn restart_node(&mut self, node: NodeIdx) {
        self.sim.bounce(host_name(node));
        // Like every action, a restart is done when its effect is visible:
        // the node has booted again (its host starts it on the next tick).
        let before = self.lock().boots[node as usize];
        self.boot(|boots| boots[node as usize] > before);
    }

    fn rebind_node(&mut self, node: NodeIdx, port: Option<u16>) {
        let port = port.unwrap_or_else(|| {
            self.next_port += 1;
            self.next_port
        });
        let addr = SocketAddr::new(self.ip(node), port);
        self.command(node, Command::Rebind(addr), REBIND_PATIENCE);
    }
}

impl<S: System> Cluster<S> for SimCluster<S> {
    fn size(&self) -> u32 {
        self.lock().options.setup.nodes
    }

    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn recorder(&self) -> &Recorder<S> {
        &self.recorder
    }

    fn invoke(&mut self, node: NodeIdx, op: S::Op, step: usize) {
        // In flight from the host's next step on: the timeline moves on now.
        self.send(node, Command::Invoke { op, step });
    }

    fn set_links(&mut self, change: &LinkChange, scope: &Scope) {
        let links = change.links(scope, self.size());
        self.link_state.apply(change, scope);
        match *change {
            LinkChange::Partition { .. } | LinkChange::Heal => {
                for (x, y) in unordered(&links) {
                    self.apply_link(x, y);
                }
            }
            LinkChange::Latency(LatencyRange { min, max }) => {
                assert!(min <= max, "latency range {min:?}..{max:?} is empty");
                for (x, y) in links {
                    let (ix, iy) = (self.ip(x), self.ip(y));
                    self.sim.set_link_latency(ix, iy, min);
                    self.sim.set_link_max_message_latency(ix, iy, max);
                }
            }
            LinkChange::Loss(rate) => {
                let shared = self.lock();
                for (x, y) in links {
                    shared.links.set_loss(shared.ips[x as usize], shared.ips[y as usize], rate);
                }
            }
        }
    }

    fn set_node(&mut self, node: NodeIdx, change: &NodeChange) {
        match *change {
            NodeChange::Crash => self.crash_node(node),
            NodeChange::Restart => self.restart_node(node),
            NodeChange::Rebind { port } => self.rebind_node(node, port),
            NodeChange::Disk(fault) => self.lock().disks[node as usize].set_fault(fault),
            NodeChange::Pause(_) | NodeChange::Clock(_) => unreachable!("refused before the run"),
        }
    }

    fn refuses(&self, change: &NodeChange) -> Option<String> {
        matches!(change, NodeChange::Pause(_) | NodeChange::Clock(_)).then(|| PAUSE_AND_CLOCK_REFUSED.into())
    }

    fn run_until(&mut self, deadline: Duration, mut done: impl FnMut(&History<S>) -> bool) -> bool {
        loop {
            if self.recorder.read(&mut done) {
                return true;
            }
            if self.now() >= deadline {
                return false;
            }
            self.step();
        }
    }
}

/// A host's software: boot the node (a restart boots the next incarnation),
/// then carry out the runner's commands.
async fn host_main<S: System>(shared: Arc<Mutex<Shared<S>>>, recorder: Recorder<S>, node: NodeIdx) -> turmoil::Result {
    let (boot, transport, commands, delay, clients) = {
        let mut s = shared.lock().expect("single-threaded");
        let o = &s.options;
        let (boot, delay) = next_boot(o, &recorder, &s.disks[node as usize], node);
        let transport = SimTransport::new(
            s.ips[node as usize],
            Framing::new(DEFAULT_MAX_FRAME),
            o.model,
            s.links.clone(),
            derive_seed(o.setup.seed, node, boot.incarnation, 1),
        );
        let clients = o.setup.clients;
        let (tx, rx) = mpsc::unbounded_channel();
        s.commands[node as usize] = Some(tx.clone());
        (boot, transport, (tx, rx), delay, clients)
    };
    tokio::time::sleep(delay).await;
    let started = host::start(&boot, transport, &recorder, &commands.0).await;
    shared.lock().expect("single-threaded").boots[node as usize] += 1;
    if let Ok(running) = started {
        if host::serve(running, node, clients, recorder.clone(), commands.1).await == Served::FailStopped {
            let mut shared = shared.lock().expect("single-threaded");
            shared.crashed(&recorder, node, recorder.now());
            shared.fail_stopped.push(node);
        }
    }
    // A stopped node's host idles until turmoil crashes it.
    std::future::pending().await
}

/// Why the turmoil backend refuses `pause` and `clock`.
const PAUSE_AND_CLOCK_REFUSED: &str =
    "the turmoil backend cannot pause a node or change its clock (turmoil 0.7 advances every host's clock together, in one step); use the events backend (--backend events)";
