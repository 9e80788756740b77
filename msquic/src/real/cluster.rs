//! [`RealCluster`]: a system's nodes over MsQuic on loopback, with faults
//! injected by relays, behind the same [`Cluster`] API as the simulation.
//!
//! Nodes are kept in the core's node table ([`tandem::engine::nodes`]),
//! exactly as in the simulation: [`nodes::host`] boots each incarnation and
//! serves the runner's [`Order`](tandem::engine::host::Order)s, and
//! [`nodes::set_node`] carries out crashes, restarts, rebinds and disk
//! faults. This backend's [`Hosting`] runs each incarnation's host on a
//! thread and a runtime of its own (a `NodeUnit`): a crash drops every task
//! the node spawned, a pause blocks the thread, the node's clock is the
//! thread's clock, and every task of the node runs in the node's
//! [`host::span`]. The relays run on the cluster's own runtime, on which the
//! runner waits (wall-clock time). The one [`Recorder`] of the run owns the
//! history, stamped with true time (the machine's clock since the run began).
//!
//! Real runs use wall-clock time (this module never runs under simulation)
//! and make no determinism promise; their histories have the same events.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tandem::engine::clock::{NodeClock, ThreadClock};
use tandem::engine::cluster::{Cluster, Setup};
use tandem::engine::host::{self, Boot};
use tandem::engine::nodes::{self, Hosting, NodeTable, SharedTable};
use tandem::engine::recorder::Recorder;
use tandem::history::{EventKind, History};
use tandem::scenario::{ClockChange, LatencyRange, LinkChange, Network, NodeChange, NodeIdx, Scope};
use tandem::storage::Storage;
use tandem::system::NodeSecret;
use tandem::System;
use tokio::runtime::Runtime;

use super::faults::FaultTable;
use super::node::{in_true_time, NodeUnit, SharedClock};
use super::transport::{RelayNet, RelayedTransport};
use crate::transport::{MsQuicConfig, MsQuicTransport, TlsIdentity, TrustPolicy};

/// How long a start keeps trying to bind the node's port while the previous
/// incarnation's socket closes.
const BIND_PATIENCE: Duration = Duration::from_secs(3);

/// The least a real node gets for a stop, a boot (which may first wait up to
/// [`BIND_PATIENCE`] for its port) or a rebind, and its thread to end once
/// its runtime is dropped: a shared machine, and MsQuic closing
/// connections, take longer than a simulated node.
const PATIENCE: Duration = Duration::from_secs(5);

/// The longest `run_until` waits on the history in one go.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How to build a real cluster.
#[derive(Debug, Clone)]
pub struct RealOptions {
    /// The nodes, the links (latency is added one way per packet, drawn from
    /// `min..=max`) and the run seed the nodes' RNG seeds derive from.
    pub setup: Setup,
    /// The MsQuic transport of every node. Unless it names an identity,
    /// each node gets its own certificate, kept for the whole run (restarts
    /// and rebinds included) and given to every node as
    /// [`NodeContext::identities`](tandem::system::NodeContext::identities); unless
    /// it pins a set, the cluster pins its nodes' certificates, so nothing
    /// else on the machine can connect to them.
    pub transport: MsQuicConfig,
}

impl RealOptions {
    /// `nodes` nodes seeded by node 0, no added latency or loss, seed 0, no
    /// planted bug.
    pub fn new(nodes: u32) -> Self {
        let network = Network { latency: LatencyRange::fixed(Duration::ZERO), loss: 0.0 };
        RealOptions::of(Setup { network, ..Setup::new(nodes, 0) })
    }

    /// `setup` over the default MsQuic transport.
    pub fn of(setup: Setup) -> Self {
        RealOptions { setup, transport: MsQuicConfig::default() }
    }
}

/// A cluster of a system's nodes over real QUIC on 127.0.0.1, every
/// node-to-node packet through a fault relay.
///
/// Its methods block the calling thread on the cluster's own runtime: call
/// them from outside any tokio runtime (a plain `#[test]`, not
/// `#[tokio::test]`). Each node runs on a thread of its own
/// (`tandem-node-<index>`); a `pause` returns at once, but a `rebind` of a
/// paused node waits for the pause to end (up to 10 s).
pub struct RealCluster<S: System> {
    /// The relays' runtime, on which the caller waits for the nodes.
    runtime: Runtime,
    recorder: Recorder<S>,
    net: Arc<RelayNet>,
    options: RealOptions,
    /// Each node's transport, with its certificate.
    transports: Vec<MsQuicConfig>,
    /// Every node's commands, boots and disk (real files in the run's
    /// directory); rebinds without a port ask the OS for one.
    table: SharedTable<S>,
    /// Each node's clock, across its incarnations.
    clocks: Vec<SharedClock>,
    /// The run's id; its directory goes with the cluster.
    run_id: u64,
    _run_dir: RunDir,
    /// The thread of each node's last incarnation.
    units: Vec<Option<NodeUnit>>,
}

impl<S: System> RealCluster<S> {
    /// Chooses every node's port, then starts the nodes in index order, each
    /// once the previous one serves.
    pub fn new(system: Arc<S>, options: RealOptions) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tandem-real")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        let addrs = (0..options.setup.nodes).map(|_| free_addr()).collect::<Result<Vec<_>, _>>()?;
        // Real runs keep wall-clock time; this module never runs simulated.
        let (began, began_monotonic) = (Instant::now(), monotonic_now());
        // True time even on a node's thread, whose clock may be the node's.
        let recorder = Recorder::new(system, &addrs, &options.setup.network, move || in_true_time(|| began.elapsed()));
        let clock = ThreadClock { clock: NodeClock::default(), began: began_monotonic };
        let net = RelayNet::new(FaultTable::new(&options.setup.network), &addrs, runtime.handle().clone());
        // A fresh id for every real run (real network only: wall clock and process id).
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let run_id = RandomState::new().hash_one((options.setup.seed, since_epoch.as_nanos(), std::process::id()));
        let run_dir = RunDir(std::env::temp_dir().join(format!("tandem-run-{run_id:016x}")));
        let disks = (0..options.setup.nodes)
            .map(|node| Storage::in_directory(&run_dir.0.join(format!("node-{node}"))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot make the run's storage in {}: {e}", run_dir.0.display()))?;
        let mut cluster = RealCluster {
            table: Arc::new(Mutex::new(NodeTable::new(options.setup.clone(), disks, None))),
            clocks: (0..options.setup.nodes).map(|_| Arc::new(Mutex::new(clock))).collect(),
            run_id,
            _run_dir: run_dir,
            runtime,
            recorder,
            net,
            units: (0..options.setup.nodes).map(|_| None).collect(),
            transports: node_transports(&options.transport, options.setup.nodes)
                .map_err(|e| format!("no certificates: {e}"))?,
            options,
        };
        for node in 0..cluster.options.setup.nodes {
            nodes::set_node(&mut cluster, node, &NodeChange::Restart);
            if !cluster.recorder.read(|h| h.node(node).alive) {
                let why = cluster.recorder.read(|h| {
                    h.events().iter().rev().find_map(|e| match &e.event {
                        EventKind::StartFailed { error } if e.node == Some(node) => Some(error.clone()),
                        _ => None,
                    })
                });
                return Err(format!("node {node} did not start: {}", why.unwrap_or_default()));
            }
        }
        Ok(cluster)
    }

    /// The options the cluster was built with.
    pub fn options(&self) -> &RealOptions {
        &self.options
    }

    /// Ends the run: stops every node (without recording crashes) and hands
    /// back the history.
    pub fn into_history(mut self) -> History<S> {
        for node in 0..self.options.setup.nodes {
            // What is left of a node that is down (it stopped itself, or did
            // not start) ends by itself: its thread is waited for.
            let stopped =
                if self.recorder.read(|h| h.node(node).alive) { nodes::stop(&mut self, node) } else { self.end(node) };
            if let Err(why) = stopped {
                tracing::warn!(node, "stopping at the end of the run: {why}");
            }
        }
        let history = self.recorder.read(History::clone);
        self.runtime.shutdown_timeout(PATIENCE);
        history
    }

    /// Changes the node's clock now, for this incarnation and the next ones.
    fn clock_node(&mut self, node: NodeIdx, change: &ClockChange) {
        let now = self.now();
        let clock = {
            let mut clock = self.clocks[node as usize].lock().expect("a node's clock");
            clock.clock.apply(now, change);
            *clock
        };
        if let Some(unit) = &self.units[node as usize] {
            unit.set_clock(clock);
        }
    }
}

/// Every node's transport: `config` with the node's own certificate (one
/// per node, unless `config` names one for all), pinned to the cluster's
/// certificates unless `config` pins its own set.
fn node_transports(config: &MsQuicConfig, nodes: u32) -> Result<Vec<MsQuicConfig>, tandem::transport::TransportError> {
    let identities = (0..nodes)
        .map(|_| config.identity.clone().map_or_else(TlsIdentity::generate, Ok))
        .collect::<Result<Vec<_>, _>>()?;
    let trust = match &config.trust {
        TrustPolicy::AcceptAny => TrustPolicy::Pinned(identities.iter().map(TlsIdentity::id).collect()),
        pinned => pinned.clone(),
    };
    Ok(identities
        .into_iter()
        .map(|identity| MsQuicConfig { trust: trust.clone(), ..config.clone().with_identity(identity) })
        .collect())
}

/// The signing secret a [`RealCluster`] gives the node with `identity`
/// ([`NodeContext::secret`](tandem::system::NodeContext::secret)), bound to
/// its TLS key: a hash of the key under a label of its own, so it is as
/// secret as the key, fresh whenever the certificate is, and derivable by
/// no other node.
pub fn node_secret(identity: &TlsIdentity) -> NodeSecret {
    use sha2::{Digest, Sha256};
    let digest =
        Sha256::new().chain_update(b"tandem node signing secret v1").chain_update(&identity.key_der).finalize();
    NodeSecret(digest.into())
}

/// The Ed25519 verifying key of `secret`
/// ([`NodeContext::verifying_keys`](tandem::system::NodeContext::verifying_keys)).
pub fn verifying_key(secret: &NodeSecret) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&secret.0).verifying_key().to_bytes()
}

/// A run's storage directory, removed with the cluster.
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!("cannot remove the run's storage {}: {error}", self.0.display());
        }
    }
}

/// What the machine's `CLOCK_MONOTONIC` reads (on a thread that runs no
/// node), as [`ThreadClock::began`] wants it.
fn monotonic_now() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to fill; CLOCK_MONOTONIC always exists on Linux.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(read, 0, "CLOCK_MONOTONIC unreadable");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// A free UDP port on 127.0.0.1, chosen by the OS: bound, read, let go.
fn free_addr() -> Result<SocketAddr, String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("cannot pick a port: {e}"))?;
    socket.local_addr().map_err(|e| format!("cannot pick a port: {e}"))
}

/// Node faults: each incarnation's host runs on a thread of its own; the
/// runner waits on the relays' runtime, in wall-clock time.
impl<S: System> Hosting<S> for RealCluster<S> {
    fn table(&self) -> MutexGuard<'_, NodeTable<S>> {
        nodes::lock(&self.table)
    }

    fn patience(&self, simulated: Duration) -> Duration {
        simulated.max(PATIENCE)
    }

    fn wait_for<T>(&mut self, until: impl Future<Output = T>, patience: Duration) -> Option<T> {
        self.runtime.block_on(async { tokio::time::timeout(patience, until).await.ok() })
    }

    fn paused(&self, node: NodeIdx) -> bool {
        self.units[node as usize].as_ref().is_some_and(NodeUnit::paused)
    }

    /// Kills what is left of the node (its runtime goes with every task the
    /// node spawned) and waits for its thread to end, so nothing of it
    /// records after this returns.
    fn end(&mut self, node: NodeIdx) -> Result<(), String> {
        self.units[node as usize].take().map_or(Ok(()), |unit| unit.end(PATIENCE))
    }

    /// Boots `node` at its last address (its next incarnation) on a thread
    /// and runtime of its own, which then serve it; returns once the
    /// thread runs.
    fn spawn(&mut self, node: NodeIdx) -> Result<(), String> {
        // The remains of nodes that stopped themselves end by themselves.
        let stopped = self.table().take_stopped();
        for stopped in stopped {
            if let Err(why) = self.end(stopped) {
                tracing::warn!(node = stopped, "a node that stopped itself: {why}");
            }
        }
        let transport = MsQuicTransport::new(self.transports[node as usize].clone())
            .map_err(|error| format!("no MsQuic transport: {error}"))?;
        let transport = RelayedTransport::new(transport, node, self.net.clone());
        let (boot, commands) = self.table().next_boot(&self.recorder, node);
        let identities = self.transports.iter().map(|t| t.identity.as_ref().map(TlsIdentity::id)).collect();
        let secrets: Vec<Option<NodeSecret>> =
            self.transports.iter().map(|t| t.identity.as_ref().map(node_secret)).collect();
        let verifying_keys = secrets.iter().map(|s| s.as_ref().map(verifying_key)).collect();
        let secret = secrets[node as usize].clone();
        let boot = Boot { identities, secret, verifying_keys, run_id: self.run_id, ..boot };
        let (table, recorder) = (self.table.clone(), self.recorder.clone());
        let (clock, span) = (self.clocks[node as usize].clone(), host::span(node, boot.incarnation));
        let unit = NodeUnit::start(node, clock, span, move || async move {
            // Real network only: the patience is wall-clock time (the node's).
            let transport = transport.patient_until(Instant::now() + BIND_PATIENCE);
            // A node that stops itself crashes here, as a `crash` step would crash it.
            nodes::host(table, recorder, (boot, commands), transport, Duration::ZERO, || ()).await;
        })?;
        self.units[node as usize] = Some(unit);
        Ok(())
    }

    fn addr(&self, _node: NodeIdx, port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// A pause blocks the node's thread for its length and returns at once;
    /// a clock change is the node's, across its incarnations.
    fn other(&mut self, node: NodeIdx, change: &NodeChange) {
        match *change {
            NodeChange::Pause(length) => {
                self.units[node as usize].as_mut().expect("the executor pauses only a node that runs").pause(length)
            }
            NodeChange::Clock(change) => self.clock_node(node, &change),
            _ => unreachable!("a basic node fault is the table's"),
        }
    }
}

impl<S: System> Cluster<S> for RealCluster<S> {
    fn size(&self) -> u32 {
        self.options.setup.nodes
    }

    fn now(&self) -> Duration {
        self.recorder.now()
    }

    fn recorder(&self) -> &Recorder<S> {
        &self.recorder
    }

    fn invoke(&mut self, node: NodeIdx, op: S::Op, step: usize) {
        // In flight: the timeline moves on at once.
        nodes::invoke(self, node, op, step);
    }

    /// The relays take every link as the history has it: the executor
    /// records the step (or the settle tail) before it calls this.
    fn apply_links(&mut self, _change: &LinkChange, _scope: &Scope) {
        self.net.faults().set(self.recorder.read(|h| h.links().clone()));
    }

    fn set_node(&mut self, node: NodeIdx, change: &NodeChange) {
        nodes::set_node(self, node, change);
    }

    fn run_until(&mut self, deadline: Duration, mut done: impl FnMut(&History<S>) -> bool) -> bool {
        loop {
            let now = self.now();
            if now >= deadline {
                return self.recorder.read(&mut done);
            }
            if self.recorder.wait((deadline - now).min(WAIT_SLICE), &mut done) {
                return true;
            }
        }
    }
}
