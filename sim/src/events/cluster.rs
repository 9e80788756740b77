//! [`EventCluster`]: a system's nodes as tasks of one paused tokio runtime,
//! on the discrete-event [`Network`].

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tandem::cluster::Cluster;
use tandem::history::History;
use tandem::host::{self, derive_seed, Command, Order, Recorder, Served};
use tandem::links::LinkState;
use tandem::scenario::{LatencyRange, LinkChange, NodeChange, NodeIdx, Scope};
use tandem::storage::Storage;
use tandem::system::System;
use tandem::transport::{Framing, DEFAULT_MAX_FRAME};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// A panic's payload.
type Panic = Box<dyn std::any::Any + Send>;
use tokio::time::Instant;

use super::network::{host_ip, Network};
use super::transport::EventTransport;
use crate::cluster::{next_boot, unordered, SimOptions, BASE_PORT, REBIND_PATIENCE, REBIND_PORT};
use crate::determinism;

/// What the runner and the hosts share (all on one thread).
struct Hosts<S: System> {
    options: SimOptions,
    network: Arc<Network>,
    /// Each running node's command channel.
    commands: Vec<Option<mpsc::UnboundedSender<Order<S>>>>,
    /// Each node incarnation's transport works while this holds.
    alive: Vec<Arc<AtomicBool>>,
    /// Each node's disk, kept in memory across its incarnations.
    disks: Vec<Storage>,
}

/// A simulated cluster whose time jumps from one event to the next: every
/// node is a set of tasks on one current-thread tokio runtime with a paused
/// clock, which advances to the next timer (a frame's arrival, a node's
/// sleep) whenever every task waits. Actions apply between two events, so a
/// run is a pure function of the options and the actions.
pub struct EventCluster<S: System> {
    runtime: Runtime,
    start: Instant,
    hosts: Arc<Mutex<Hosts<S>>>,
    /// How many times each node's host finished booting it (started or failed).
    boots: watch::Sender<Vec<u32>>,
    tasks: Vec<Option<AbortHandle>>,
    /// The panics of host tasks (a node's code panicked), to go on as the run's.
    panics: (mpsc::UnboundedSender<Panic>, mpsc::UnboundedReceiver<Panic>),
    ips: Vec<IpAddr>,
    recorder: Recorder<S>,
    /// What the timeline made of every link.
    link_state: LinkState,
    next_port: u16,
    /// Libc's clocks and randomness follow the run on this thread; dropped
    /// last, after the runtime.
    _determinism: determinism::Guard,
}

impl<S: System> Hosts<S> {
    /// A node has stopped (its host carried out `Stop` or `FailStop`): what
    /// is left of it loses its network and its disk's unsynced writes, and
    /// the history records the crash.
    fn crashed(&mut self, recorder: &Recorder<S>, node: NodeIdx, ip: IpAddr) {
        let incarnation = recorder.read(|h| h.node(node).incarnation);
        self.commands[node as usize] = None;
        self.alive[node as usize].store(false, Ordering::Relaxed);
        self.network.crash(ip);
        self.disks[node as usize].crash(derive_seed(self.options.setup.seed, node, incarnation, 3));
        recorder.crashed(determinism::elapsed(), node);
    }
}

impl<S: System> EventCluster<S> {
    /// Builds the network and starts every node at time 0. Like
    /// [`SimCluster::new`](crate::SimCluster::new), build it on a fresh
    /// thread (as [`run_with`](crate::run_with) does).
    pub fn new(system: Arc<S>, options: SimOptions) -> Self {
        assert!(options.setup.nodes >= 1, "a cluster needs a node");
        let guard = determinism::enter(derive_seed(options.setup.seed, NodeIdx::MAX, 0, 6));
        determinism::allow_threads(options.allow_threads);
        // Time moves only while the runtime parks: each unpark tells the
        // thread's clocks (the recorder's, libc's) where it is.
        let began = Arc::new(std::sync::OnceLock::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .on_thread_unpark({
                let began = began.clone();
                move || determinism::set_elapsed(began.get().map(|&s| Instant::now() - s).unwrap_or_default())
            })
            .build()
            .expect("a current-thread runtime builds");
        let start = runtime.block_on(async { Instant::now() });
        began.set(start).expect("set once");
        let ips: Vec<IpAddr> = (0..options.setup.nodes).map(host_ip).collect();
        let addrs: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, BASE_PORT)).collect();
        let recorder = Recorder::new(system, &addrs, determinism::elapsed);
        let network = Network::new(
            options.model,
            options.latency(),
            options.setup.network.loss,
            derive_seed(options.setup.seed, NodeIdx::MAX, 0, 8),
        );
        let hosts = Hosts {
            network,
            commands: (0..options.setup.nodes).map(|_| None).collect(),
            alive: (0..options.setup.nodes).map(|_| Arc::new(AtomicBool::new(false))).collect(),
            disks: options.disks(),
            options,
        };
        let nodes = hosts.options.setup.nodes as usize;
        let link_state = hosts.options.link_state();
        let mut cluster = EventCluster {
            runtime,
            start,
            hosts: Arc::new(Mutex::new(hosts)),
            boots: watch::Sender::new(vec![0; nodes]),
            tasks: (0..nodes).map(|_| None).collect(),
            panics: mpsc::unbounded_channel(),
            ips,
            recorder,
            link_state,
            next_port: REBIND_PORT,
            _determinism: guard,
        };
        for node in 0..nodes as NodeIdx {
            cluster.spawn_host(node);
        }
        let deadline = cluster.lock().options.stagger + Duration::from_secs(1);
        cluster.boot(deadline, |boots| boots.iter().all(|&b| b >= 1));
        cluster
    }

    /// Ends the run and hands back what it observed.
    pub fn into_history(self) -> History<S> {
        // Read before the runtime drops the nodes' tasks, in an order of its own.
        let history = self.recorder.read(History::clone);
        drop(self);
        history
    }

    fn lock(&self) -> MutexGuard<'_, Hosts<S>> {
        self.hosts.lock().expect("the simulation is single-threaded")
    }

    /// Starts `node`'s host task, which boots its next incarnation. A panic
    /// of the node's code there goes on as the run's, in [`drive`](Self::drive).
    fn spawn_host(&mut self, node: NodeIdx) {
        let host =
            host_main(self.hosts.clone(), self.boots.clone(), self.recorder.clone(), node, self.ips[node as usize]);
        let task = self.runtime.spawn(host);
        self.tasks[node as usize] = Some(task.abort_handle());
        let panics = self.panics.0.clone();
        self.runtime.spawn(async move {
            if let Err(error) = task.await {
                if error.is_panic() {
                    let _ = panics.send(error.into_panic());
                }
            }
        });
    }

    /// Runs the simulation until `until` completes. A node's panic goes on
    /// as the same panic, here; an OS thread a node starts ends the run at
    /// once ([`determinism::judge_thread_starts`]).
    fn drive<T>(&mut self, until: impl std::future::Future<Output = T>) -> T {
        let panics = &mut self.panics.1;
        let driven = self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = determinism::refused_thread() => None,
                Some(panic) = panics.recv() => Some(Err(panic)),
                done = until => Some(Ok(done)),
            }
        });
        determinism::judge_thread_starts(&self.recorder, determinism::elapsed());
        match driven.expect("a refused thread ends the run") {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Runs until `booted` holds for the boot counts or `patience` has
    /// passed (a boot that takes longer is the system's bug, and the
    /// executor reports a node that is not up).
    fn boot(&mut self, patience: Duration, booted: impl Fn(&[u32]) -> bool) {
        let mut boots = self.boots.subscribe();
        self.drive(async {
            let _ = tokio::time::timeout(patience, boots.wait_for(|b| booted(b))).await;
        });
    }

    /// Hands a command to a running node's host; the receiver says when it
    /// has carried it out.
    fn send(&self, node: NodeIdx, command: Command<S>) -> oneshot::Receiver<()> {
        let sender = self.lock().commands[node as usize].clone().expect("the executor only commands running nodes");
        let (done, carried_out) = oneshot::channel();
        sender.send((command, done)).unwrap_or_else(|_| panic!("node {node}'s host is gone"));
        carried_out
    }

    /// [`send`](Self::send)s a command and runs until the host has carried
    /// it out (or `patience` has passed), so the next step sees its effect.
    fn command(&mut self, node: NodeIdx, command: Command<S>, patience: Duration) {
        let carried_out = self.send(node, command);
        self.drive(async {
            let _ = tokio::time::timeout(patience, carried_out).await;
        });
    }

    /// Sets the network's cut state of each unordered pair to the timeline's.
    fn apply_links(&mut self, pairs: &[(NodeIdx, NodeIdx)]) {
        let network = self.lock().network.clone();
        // A new cut arms its idle timer: a task on the runtime.
        let _runtime = self.runtime.enter();
        for &(x, y) in pairs {
            let (ix, iy) = (self.ips[x as usize], self.ips[y as usize]);
            network.set_cut(ix, iy, self.link_state.link(x, y).partitioned);
            network.set_cut(iy, ix, self.link_state.link(y, x).partitioned);
        }
    }
}

/// The node changes that take more than a line.
impl<S: System> EventCluster<S> {
    fn crash_node(&mut self, node: NodeIdx) {
        // The node stops first, in its own deterministic order; then what
        // is left of it (tasks it spawned) loses its network and its disk.
        self.command(node, Command::Stop, Duration::from_secs(1));
        if let Some(task) = self.tasks[node as usize].take() {
            task.abort();
        }
        self.lock().crashed(&self.recorder, node, self.ips[node as usize]);
    }

    fn restart_node(&mut self, node: NodeIdx) {
        // Like every action, a restart is done when its effect is visible:
        // the node has booted again.
        let before = self.boots.borrow()[node as usize];
        self.spawn_host(node);
        self.boot(Duration::from_secs(1), |boots| boots[node as usize] > before);
    }

    fn rebind_node(&mut self, node: NodeIdx, port: Option<u16>) {
        let port = port.unwrap_or_else(|| {
            self.next_port += 1;
            self.next_port
        });
        let addr = SocketAddr::new(self.ips[node as usize], port);
        self.command(node, Command::Rebind(addr), REBIND_PATIENCE);
    }
}

impl<S: System> Cluster<S> for EventCluster<S> {
    fn size(&self) -> u32 {
        self.ips.len() as u32
    }

    fn now(&self) -> Duration {
        determinism::elapsed()
    }

    fn recorder(&self) -> &Recorder<S> {
        &self.recorder
    }

    fn invoke(&mut self, node: NodeIdx, op: S::Op, step: usize) {
        // In flight from the host's next turn on: the timeline moves on now.
        self.send(node, Command::Invoke { op, step });
    }

    fn set_links(&mut self, change: &LinkChange, scope: &Scope) {
        let links = change.links(scope, self.size());
        self.link_state.apply(change, scope);
        let network = self.lock().network.clone();
        let ip = |node: NodeIdx| self.ips[node as usize];
        match *change {
            LinkChange::Partition { .. } | LinkChange::Heal => self.apply_links(&unordered(&links)),
            LinkChange::Latency(LatencyRange { min, max }) => {
                assert!(min <= max, "latency range {min:?}..{max:?} is empty");
                for (x, y) in links {
                    network.set_latency(ip(x), ip(y), (min, max));
                }
            }
            LinkChange::Loss(rate) => {
                for (x, y) in links {
                    network.set_loss(ip(x), ip(y), rate);
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

    fn run_until(&mut self, deadline: Duration, done: impl FnMut(&History<S>) -> bool) -> bool {
        let (recorder, at) = (self.recorder.clone(), self.start + deadline);
        self.drive(async {
            tokio::select! {
                biased;
                () = recorder.until(done) => true,
                () = tokio::time::sleep_until(at) => false,
            }
        })
    }
}

/// A host's software: boot the node's next incarnation, then carry out the
/// runner's commands.
async fn host_main<S: System>(
    hosts: Arc<Mutex<Hosts<S>>>,
    boots: watch::Sender<Vec<u32>>,
    recorder: Recorder<S>,
    node: NodeIdx,
    ip: IpAddr,
) {
    let (boot, delay, transport, commands, clients) = {
        let mut h = hosts.lock().expect("single-threaded");
        let (boot, delay) = next_boot(&h.options, &recorder, &h.disks[node as usize], node);
        let alive = Arc::new(AtomicBool::new(true));
        h.alive[node as usize] = alive.clone();
        let transport = EventTransport::new(h.network.clone(), ip, Framing::new(DEFAULT_MAX_FRAME), alive);
        let (tx, rx) = mpsc::unbounded_channel();
        h.commands[node as usize] = Some(tx.clone());
        (boot, delay, transport, (tx, rx), h.options.setup.clients)
    };
    tokio::time::sleep(delay).await;
    let started = host::start(&boot, transport, &recorder, &commands.0).await;
    boots.send_modify(|b| b[node as usize] += 1);
    if let Ok(running) = started {
        if host::serve(running, node, clients, recorder.clone(), commands.1).await == Served::FailStopped {
            hosts.lock().expect("single-threaded").crashed(&recorder, node, ip);
        }
    }
}
const PAUSE_AND_CLOCK_REFUSED: &str = "not yet";
