//! [`EventCluster`]: a system's nodes on the discrete-event [`Network`],
//! each node a unit of execution with its own runtime and clocks.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tandem::engine::clock::NodeClock;
use tandem::engine::cluster::Cluster;
use tandem::engine::host::{self, derive_seed};
use tandem::engine::nodes::{self, Hosting, NodeTable, SharedTable, BOOT_PATIENCE};
use tandem::engine::recorder::Recorder;
use tandem::history::History;
use tandem::scenario::{LinkChange, NodeChange, NodeIdx, Scope};
use tandem::system::System;
use tandem::transport::{Framing, DEFAULT_MAX_FRAME};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::network::{host_ip, Network, World};
use super::transport::EventTransport;
use crate::determinism::{self, Reading};
use crate::options::{SimOptions, BASE_PORT};

/// A panic's payload.
type Panic = Box<dyn std::any::Any + Send>;

/// Further than any run goes: every runtime keeps a timer this far ahead,
/// so that it never parks without a deadline.
const FAR: Duration = Duration::from_secs(365 * 86_400);

/// What the runner and the hosts share beside the node table (all on one thread).
struct Hosts {
    options: SimOptions,
    network: Arc<Network>,
    /// Each node incarnation's transport works while this holds.
    alive: Vec<Arc<AtomicBool>>,
}

/// One node as a unit of execution: the runtime of its running incarnation
/// (every task its code spawns, directly or through a library, runs there),
/// its clocks, and when the scheduler runs it next.
struct Unit {
    runtime: Option<Runtime>,
    /// The running incarnation's `node{id, inc}` span: its tasks run in it.
    span: tracing::Span,
    /// The true time of its next timer, or now when something woke it.
    next: Option<Duration>,
    /// None of its tasks is polled before this true time (a `pause`).
    paused_until: Duration,
    /// What its clocks read; it outlives incarnations.
    clock: NodeClock,
}

/// A simulated cluster whose time jumps from one event to the next. Each
/// node is a unit of execution: a current-thread tokio runtime of its own,
/// on this thread, whose clocks are the node's ([`NodeClock`]); the network
/// and the runner have a runtime of their own, the world's, on true time.
/// A discrete-event scheduler runs whichever runtime has the earliest work
/// (a woken task, a timer; the world first at a tie, then by node index),
/// learning each runtime's next timer by intercepting its park
/// ([`determinism::run_ready`]). A crash drops the node's runtime, so every
/// task it spawned is gone; a pause leaves it unpolled. Actions apply
/// between two events, so a run is a pure function of the options and the
/// actions.
pub struct EventCluster<S: System> {
    units: Vec<Unit>,
    world: Runtime,
    /// The true time of the world's next timer, or now when woken.
    world_next: Option<Duration>,
    /// Set when the runner's future is woken while the world is not driven.
    world_woken: Arc<AtomicBool>,
    start: Instant,
    hosts: Arc<Mutex<Hosts>>,
    table: SharedTable<S>,
    /// The panics of host tasks (a node's code panicked), to go on as the run's.
    panics: (mpsc::UnboundedSender<Panic>, mpsc::UnboundedReceiver<Panic>),
    ips: Vec<IpAddr>,
    recorder: Recorder<S>,
    /// Libc's clocks and randomness follow the run on this thread; dropped
    /// last, after the runtimes.
    _determinism: determinism::Guard,
}

impl Hosts {
    /// A node has stopped: what is left of it loses its network.
    fn cut_off(&self, node: NodeIdx, ip: IpAddr) {
        self.alive[node as usize].store(false, Ordering::Relaxed);
        self.network.crash(ip);
    }
}

/// A runtime [`determinism::run_ready`] drives, with its far timer.
fn unit_runtime() -> Runtime {
    let runtime = determinism::drivable_runtime();
    runtime.spawn(async {
        loop {
            tokio::time::sleep(FAR).await;
        }
    });
    runtime
}

/// Wakes the runner's future and records that it was woken.
struct Flagged {
    waker: Waker,
    woken: Arc<AtomicBool>,
}

impl Wake for Flagged {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
        self.waker.wake_by_ref();
    }
}

impl<S: System> EventCluster<S> {
    /// Builds the network and starts every node at time 0. Like
    /// [`TurmoilCluster::new`](crate::TurmoilCluster::new), build it on a fresh
    /// thread (as [`run_with`](crate::run_with) does).
    pub fn new(system: Arc<S>, options: SimOptions) -> Self {
        assert!(options.setup.nodes >= 1, "a cluster needs a node");
        let guard = determinism::enter(derive_seed(options.setup.seed, NodeIdx::MAX, 0, 6));
        determinism::allow_threads(options.allow_threads);
        let world = unit_runtime();
        let start = Instant::now();
        let ips: Vec<IpAddr> = (0..options.setup.nodes).map(host_ip).collect();
        let addrs: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, BASE_PORT)).collect();
        let recorder = Recorder::new(system, &addrs, &options.setup.network, determinism::elapsed);
        let network = Network::new(
            options.model,
            options.latency(),
            options.setup.network.loss,
            derive_seed(options.setup.seed, NodeIdx::MAX, 0, 8),
            Some(World { handle: world.handle().clone(), origin: start }),
        );
        let nodes = options.setup.nodes as usize;
        let table = Arc::new(Mutex::new(options.table()));
        let hosts = Hosts { network, alive: (0..nodes).map(|_| Arc::new(AtomicBool::new(false))).collect(), options };
        let mut cluster = EventCluster {
            units: (0..nodes)
                .map(|_| Unit {
                    runtime: None,
                    span: tracing::Span::none(),
                    next: None,
                    paused_until: Duration::ZERO,
                    clock: NodeClock::default(),
                })
                .collect(),
            world,
            world_next: Some(Duration::ZERO),
            world_woken: Arc::new(AtomicBool::new(false)),
            start,
            hosts: Arc::new(Mutex::new(hosts)),
            table,
            panics: mpsc::unbounded_channel(),
            ips,
            recorder,
            _determinism: guard,
        };
        for node in 0..nodes as NodeIdx {
            cluster.spawn_host(node);
        }
        let patience = cluster.lock().options.stagger + BOOT_PATIENCE;
        // A boot that takes longer is the system's bug: the executor reports a node that is not up.
        let mut boots = cluster.table().watch_boots();
        cluster.wait_for(async move { boots.wait_for(|boots| boots.iter().all(|&b| b >= 1)).await.is_ok() }, patience);
        cluster
    }

    /// Ends the run and hands back what it observed.
    pub fn into_history(self) -> History<S> {
        // Read before the runtimes drop the nodes' tasks, in an order of their own.
        let history = self.recorder.read(History::clone);
        drop(self);
        history
    }

    fn lock(&self) -> MutexGuard<'_, Hosts> {
        self.hosts.lock().expect("the simulation is single-threaded")
    }

    /// What `node`'s clocks read at true time `now`.
    fn reading(&self, node: usize, now: Duration) -> Reading {
        let clock = &self.units[node].clock;
        Reading { node: node as NodeIdx, monotonic: clock.monotonic(now), wall_shift: clock.wall_shift(now) }
    }

    /// Starts `node`'s next incarnation in a runtime of its own, counting
    /// time from the node's clock. A panic of the node's code in its host
    /// goes on as the run's, in [`drive`](Self::drive).
    fn spawn_host(&mut self, node: NodeIdx) {
        let now = determinism::elapsed();
        let runtime = determinism::with_reading(self.reading(node as usize, now), unit_runtime);
        let host =
            host_main(self.hosts.clone(), self.table.clone(), self.recorder.clone(), node, self.ips[node as usize]);
        let task = runtime.spawn(host);
        let panics = self.panics.0.clone();
        self.world.spawn(async move {
            if let Err(error) = task.await {
                if error.is_panic() {
                    let _ = panics.send(error.into_panic());
                }
            }
        });
        let incarnation = self.recorder.read(|h| h.node(node).next_incarnation());
        let unit = &mut self.units[node as usize];
        (unit.runtime, unit.next, unit.paused_until) = (Some(runtime), Some(now), Duration::ZERO);
        unit.span = host::span(node, incarnation);
    }

    /// Drops the runtime of a node that has stopped: every task it spawned goes.
    fn drop_unit(&mut self, node: NodeIdx) {
        let unit = &mut self.units[node as usize];
        (unit.next, unit.paused_until) = (None, Duration::ZERO);
        drop(unit.runtime.take());
    }

    /// Notes the runtimes something woke from outside (another runtime, or
    /// the runner between two drives): they run at `now`.
    fn look_for_wakes(&mut self, now: Duration) {
        if self.world_woken.swap(false, Ordering::Relaxed) || self.world.metrics().global_queue_depth() > 0 {
            self.world_next = Some(now);
        }
        for unit in &mut self.units {
            if unit.runtime.as_ref().is_some_and(|r| r.metrics().global_queue_depth() > 0) {
                unit.next = Some(now);
            }
        }
    }

    /// The earliest work: its true time and its runtime (`None`: the world's).
    fn next_event(&self) -> (Duration, Option<usize>) {
        let nodes = self.units.iter().enumerate().filter_map(|(i, unit)| {
            unit.runtime.as_ref()?;
            Some((unit.next?.max(unit.paused_until), Some(i)))
        });
        let world = self.world_next.map(|at| (at, None));
        world
            .into_iter()
            .chain(nodes)
            .min_by_key(|&(at, who)| (at, who.map_or(0, |i| i + 1)))
            .expect("the world always has a timer")
    }

    /// Runs the simulation until `until` completes. A node's panic goes on
    /// as the same panic, here; an OS thread a node starts ends the run at
    /// once ([`determinism::judge_thread_starts`]).
    fn drive<T>(&mut self, until: impl Future<Output = T>) -> T {
        let mut until = pin!(until);
        let mut refused = pin!(determinism::refused_thread());
        let driven = loop {
            let now = determinism::elapsed();
            self.look_for_wakes(now);
            let (at, who) = self.next_event();
            assert!(at < FAR / 2, "the simulation has nothing left to do at {now:?}");
            determinism::set_elapsed(at.max(now));
            match who {
                None => {
                    let (panics, woken) = (&mut self.panics.1, self.world_woken.clone());
                    let step = determinism::run_ready(&self.world, None, |cx| {
                        let waker = Waker::from(Arc::new(Flagged { waker: cx.waker().clone(), woken: woken.clone() }));
                        let mut cx = Context::from_waker(&waker);
                        if refused.as_mut().poll(&mut cx).is_ready() {
                            return Poll::Ready(None);
                        }
                        if let Poll::Ready(Some(panic)) = panics.poll_recv(&mut cx) {
                            return Poll::Ready(Some(Err(panic)));
                        }
                        until.as_mut().poll(&mut cx).map(|done| Some(Ok(done)))
                    });
                    self.world_woken.store(false, Ordering::Relaxed);
                    match step {
                        Ok(done) => break done,
                        Err(deadline) => self.world_next = deadline,
                    }
                }
                Some(node) => {
                    let reading = self.reading(node, at);
                    let unit = &mut self.units[node];
                    let runtime = unit.runtime.as_ref().expect("a scheduled node runs");
                    let _in_node = unit.span.enter();
                    let Err(deadline) =
                        determinism::run_ready(runtime, Some(reading), |_| Poll::<std::convert::Infallible>::Pending);
                    unit.next = deadline.map(|reading| unit.clock.true_time(reading).max(at));
                }
            }
            let stopped = self.table().take_stopped();
            for node in stopped {
                self.drop_unit(node);
            }
        };
        determinism::judge_thread_starts(&self.recorder, determinism::elapsed());
        match driven.expect("a refused thread ends the run") {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Node faults: a node's runtime goes with every task it spawned; pauses
/// and clocks are the node's unit's; the rest is the table's.
impl<S: System> Hosting<S> for EventCluster<S> {
    fn table(&self) -> MutexGuard<'_, NodeTable<S>> {
        nodes::lock(&self.table)
    }

    fn wait_for<T>(&mut self, until: impl Future<Output = T>, patience: Duration) -> Option<T> {
        self.drive(async { tokio::time::timeout(patience, until).await.ok() })
    }

    fn paused(&self, node: NodeIdx) -> bool {
        self.units[node as usize].paused_until > determinism::elapsed()
    }

    fn end(&mut self, node: NodeIdx) -> Result<(), String> {
        self.lock().cut_off(node, self.ips[node as usize]);
        self.drop_unit(node);
        Ok(())
    }

    fn spawn(&mut self, node: NodeIdx) -> Result<(), String> {
        self.spawn_host(node);
        Ok(())
    }

    fn addr(&self, node: NodeIdx, port: u16) -> SocketAddr {
        SocketAddr::new(self.ips[node as usize], port)
    }

    fn other(&mut self, node: NodeIdx, change: &NodeChange) {
        let now = determinism::elapsed();
        let unit = &mut self.units[node as usize];
        match *change {
            NodeChange::Pause(length) => unit.paused_until = now + length,
            NodeChange::Clock(change) => {
                unit.clock.apply(now, &change);
                // Its timers fall due at other true times: it looks again.
                unit.next = unit.runtime.as_ref().map(|_| now);
            }
            _ => unreachable!("a basic node fault is the table's"),
        }
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
        nodes::invoke(self, node, op, step);
    }

    fn apply_links(&mut self, change: &LinkChange, scope: &Scope) {
        let links = self.recorder.read(|h| h.links().clone());
        let network = self.lock().network.clone();
        let ip = |node: NodeIdx| self.ips[node as usize];
        // A new cut arms its idle timer: a task on the runtime.
        let _world = self.world.enter();
        for (x, y) in change.links(scope, self.size()) {
            let link = links.link(x, y);
            match change {
                LinkChange::Partition { .. } | LinkChange::Heal => network.set_cut(ip(x), ip(y), link.partitioned),
                LinkChange::Latency(_) => network.set_latency(ip(x), ip(y), (link.latency.min, link.latency.max)),
                LinkChange::Loss(_) => network.set_loss(ip(x), ip(y), link.loss),
            }
        }
    }

    fn set_node(&mut self, node: NodeIdx, change: &NodeChange) {
        nodes::set_node(self, node, change);
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
    hosts: Arc<Mutex<Hosts>>,
    table: SharedTable<S>,
    recorder: Recorder<S>,
    node: NodeIdx,
    ip: IpAddr,
) {
    let next = nodes::lock(&table).next_boot(&recorder, node);
    let (boot, delay, transport) = {
        let mut h = hosts.lock().expect("single-threaded");
        let (boot, delay) = h.options.simulated(next.0);
        let alive = Arc::new(AtomicBool::new(true));
        h.alive[node as usize] = alive.clone();
        let transport = EventTransport::new(h.network.clone(), ip, Framing::new(DEFAULT_MAX_FRAME), alive);
        (boot, delay, transport)
    };
    let cut_off = || hosts.lock().expect("single-threaded").cut_off(node, ip);
    nodes::host(table, recorder, (boot, next.1), transport, delay, cut_off).await;
}
