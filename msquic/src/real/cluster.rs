//! [`RealCluster`]: a system's nodes over MsQuic on loopback, with faults
//! injected by relays, behind the same [`Cluster`] API as the simulation.
//!
//! Nodes are hosted by [`tandem::engine::host`], exactly as in the simulation: each
//! incarnation boots with [`host::start`] and then runs [`host::serve`], fed
//! [`Order`]s through a channel, on a thread and a runtime of its own (a
//! `NodeUnit`): a crash drops every task the node spawned, a pause blocks
//! the thread, the node's clock is the thread's clock, and every task of
//! the node runs in the node's [`host::span`]. The relays run on
//! the cluster's own runtime. The one [`Recorder`] of the run owns the
//! history, stamped with true time (the machine's clock since the run began).
//!
//! Real runs use wall-clock time (this module never runs under simulation)
//! and make no determinism promise; their histories have the same events.

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem::engine::clock::{NodeClock, ThreadClock};
use tandem::engine::cluster::{Cluster, Setup};
use tandem::engine::host::{self, Boot, Command, Order, Recorder, Served};
use tandem::engine::nodes::REBIND_PATIENCE;
use tandem::history::{EventKind, History};
use tandem::scenario::{ClockChange, LatencyRange, LinkChange, Network, NodeChange, NodeIdx, Scope};
use tandem::storage::Storage;
use tandem::system::NodeSecret;
use tandem::System;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use super::faults::FaultTable;
use super::node::{in_true_time, NodeUnit, SharedClock};
use super::transport::{RelayNet, RelayedTransport};
use crate::transport::{MsQuicConfig, MsQuicTransport, TlsIdentity, TrustPolicy};

/// How long a start keeps trying to bind the node's port while the previous
/// incarnation's socket closes.
const BIND_PATIENCE: Duration = Duration::from_secs(3);

/// How long a crash or the end of a run waits for a node to stop before its
/// runtime is dropped, and then for its thread to end.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

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

/// A node that runs: where to send it commands, and its thread.
struct Running<S: System> {
    commands: mpsc::UnboundedSender<Order<S>>,
    unit: NodeUnit,
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
    /// Each node's disk: real files in the run's directory.
    disks: Vec<Storage>,
    /// Each node's clock, across its incarnations.
    clocks: Vec<SharedClock>,
    /// The run's id; its directory goes with the cluster.
    run_id: u64,
    _run_dir: RunDir,
    nodes: Vec<Option<Running<S>>>,
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
            disks,
            clocks: (0..options.setup.nodes).map(|_| Arc::new(Mutex::new(clock))).collect(),
            run_id,
            _run_dir: run_dir,
            runtime,
            recorder,
            net,
            nodes: (0..options.setup.nodes).map(|_| None).collect(),
            transports: node_transports(&options.transport, options.setup.nodes)
                .map_err(|e| format!("no certificates: {e}"))?,
            options,
        };
        for node in 0..cluster.options.setup.nodes {
            cluster.start(node).map_err(|e| format!("node {node} did not start: {e}"))?;
        }
        Ok(cluster)
    }

    /// The options the cluster was built with.
    pub fn options(&self) -> &RealOptions {
        &self.options
    }

    /// Boots `node` at its last address (its next incarnation) on a thread
    /// and runtime of its own, which then serve it. `host::start` records
    /// the start, or why it failed.
    fn start(&mut self, node: NodeIdx) -> Result<(), String> {
        let boot = self.recorder.read(|h| Boot::next(h, node, &self.options.setup, &self.disks[node as usize]));
        let identities = self.transports.iter().map(|t| t.identity.as_ref().map(TlsIdentity::id)).collect();
        let secrets: Vec<Option<NodeSecret>> =
            self.transports.iter().map(|t| t.identity.as_ref().map(node_secret)).collect();
        let verifying_keys = secrets.iter().map(|s| s.as_ref().map(verifying_key)).collect();
        let secret = secrets[node as usize].clone();
        let boot = Boot { identities, secret, verifying_keys, run_id: self.run_id, ..boot };
        let transport = match MsQuicTransport::new(self.transports[node as usize].clone()) {
            Ok(transport) => transport,
            Err(error) => {
                self.recorder
                    .push(Some(node), EventKind::StartFailed { error: format!("no MsQuic transport: {error}") });
                return Err(error.to_string());
            }
        };
        let transport = RelayedTransport::new(transport, node, self.net.clone());
        let (commands, orders) = mpsc::unbounded_channel();
        let (recorder, clients, fail_stops) = (self.recorder.clone(), self.options.setup.clients, commands.clone());
        let crash_seed = host::derive_seed(self.options.setup.seed, node, boot.incarnation, 3);
        let (clock, span) = (self.clocks[node as usize].clone(), host::span(node, boot.incarnation));
        let unit = NodeUnit::start(node, clock, span, move || async move {
            // Real network only: the patience is wall-clock time (the node's).
            let transport = transport.patient_until(Instant::now() + BIND_PATIENCE);
            let running = host::start(&boot, transport, &recorder, &fail_stops).await?;
            Ok(async move {
                // A node that stops itself crashes here, as a `crash` step would crash it.
                if host::serve(running, node, clients, recorder.clone(), orders).await == Served::FailStopped {
                    boot.storage.crash(crash_seed);
                    recorder.crashed(recorder.now(), node);
                }
            })
        })?;
        self.nodes[node as usize] = Some(Running { commands, unit });
        Ok(())
    }

    /// Sends `command` to `node` and waits up to `patience` for it to be
    /// carried out; why not, if it was not.
    fn order(&self, node: NodeIdx, command: Command<S>, patience: Duration) -> Result<(), String> {
        let Some(running) = &self.nodes[node as usize] else {
            return Err("the node is down".into());
        };
        let (done, carried_out) = oneshot::channel();
        running.commands.send((command, done)).map_err(|_| "the node's task is gone".to_string())?;
        match self.runtime.block_on(async { tokio::time::timeout(patience, carried_out).await }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err("the node's task ended before answering".into()),
            Err(_) => Err(format!("no answer within {patience:?}")),
        }
    }

    /// Stops a running node: `Stop` (unless it is paused: a paused node
    /// runs nothing more, as a killed process), a bounded wait, then its
    /// runtime is dropped with every task the node spawned, and its thread
    /// ends, so nothing of it records after this returns. Whether it
    /// stopped in time.
    fn stop(&mut self, node: NodeIdx) -> Result<(), String> {
        let paused = self.nodes[node as usize].as_ref().is_some_and(|running| running.unit.paused());
        let stopped = if paused { Ok(()) } else { self.order(node, Command::Stop, STOP_PATIENCE) };
        let Some(running) = self.nodes[node as usize].take() else { return stopped };
        stopped.and(running.unit.end(STOP_PATIENCE))
    }

    fn note(&self, node: NodeIdx, what: String) {
        self.recorder.push(Some(node), EventKind::Note { what });
    }

    /// Ends the run: stops every node (without recording crashes) and hands
    /// back the history.
    pub fn into_history(mut self) -> History<S> {
        for node in 0..self.options.setup.nodes {
            if self.nodes[node as usize].is_some() {
                if let Err(why) = self.stop(node) {
                    tracing::warn!(node, "stopping at the end of the run: {why}");
                }
            }
        }
        let history = self.recorder.read(History::clone);
        self.runtime.shutdown_timeout(STOP_PATIENCE);
        history
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

/// The node changes that take more than a line.
impl<S: System> RealCluster<S> {
    fn crash_node(&mut self, node: NodeIdx) {
        if let Err(why) = self.stop(node) {
            self.note(node, format!("crash: the node did not stop cleanly ({why}); its runtime was dropped"));
        }
        let incarnation = self.recorder.read(|h| h.node(node).incarnation);
        self.disks[node as usize].crash(host::derive_seed(self.options.setup.seed, node, incarnation, 3));
        self.recorder.crashed(self.recorder.now(), node);
    }

    fn restart_node(&mut self, node: NodeIdx) {
        // A failure is in the history already: `host::start` records it.
        if let Err(why) = self.start(node) {
            tracing::warn!(node, "restart failed: {why}");
        }
    }

    fn rebind_node(&mut self, node: NodeIdx, port: Option<u16>) {
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
        if let Err(why) = self.order(node, Command::Rebind(target), REBIND_PATIENCE) {
            self.recorder
                .push(Some(node), EventKind::RebindFailed { addr: target, error: format!("unanswered: {why}") });
        }
    }

    /// Blocks the node's thread for `length`; returns at once.
    fn pause_node(&mut self, node: NodeIdx, length: Duration) {
        match &mut self.nodes[node as usize] {
            Some(running) => running.unit.pause(length),
            None => self.note(node, "pause: the node is down".into()),
        }
    }

    /// Changes the node's clock now, for this incarnation and the next ones.
    fn clock_node(&mut self, node: NodeIdx, change: &ClockChange) {
        let now = self.now();
        let clock = {
            let mut clock = self.clocks[node as usize].lock().expect("a node's clock");
            clock.clock.apply(now, change);
            *clock
        };
        if let Some(running) = &self.nodes[node as usize] {
            running.unit.set_clock(clock);
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
        let sent = self.nodes[node as usize]
            .as_ref()
            .map(|running| running.commands.send((Command::Invoke { op, step }, oneshot::channel().0)));
        if !matches!(sent, Some(Ok(()))) {
            self.note(node, format!("operation of step {step} not invoked: the node's task is gone"));
        }
    }

    fn apply_links(&mut self, change: &LinkChange, scope: &Scope) {
        self.net.faults().apply(change, scope);
    }

    fn set_node(&mut self, node: NodeIdx, change: &NodeChange) {
        match *change {
            NodeChange::Crash => self.crash_node(node),
            NodeChange::Restart => self.restart_node(node),
            NodeChange::Rebind { port } => self.rebind_node(node, port),
            NodeChange::Disk(fault) => self.disks[node as usize].set_fault(fault),
            NodeChange::Pause(length) => self.pause_node(node, length),
            NodeChange::Clock(change) => self.clock_node(node, &change),
        }
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
