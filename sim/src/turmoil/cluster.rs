//! [`TurmoilCluster`]: a system's nodes as turmoil hosts, driven tick by tick.
//!
//! Each host runs the shared hosting layer ([`tandem::engine::host`]) on a
//! [`TurmoilTransport`]; the cluster applies faults to turmoil's links and the
//! loss table between ticks, so a run is a pure function of the options and
//! the actions.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use tandem::engine::cluster::Cluster;
use tandem::engine::host::derive_seed;
use tandem::engine::links::LinkState;
use tandem::engine::nodes::{self, Hosting, NodeTable, SharedTable, BOOT_PATIENCE};
use tandem::engine::recorder::Recorder;
use tandem::history::History;
use tandem::scenario::{LinkChange, NodeChange, NodeIdx, Scope};
use tandem::system::System;
use tandem::transport::{Framing, DEFAULT_MAX_FRAME};

use super::net::LinkTable;
use super::transport::TurmoilTransport;
use crate::determinism;
use crate::options::{unordered, SimOptions, BASE_PORT};

/// An empty turmoil network with `options`' tick, latency and seed
/// (also the raw-turmoil baseline of `tandem bench`).
pub fn network(options: &SimOptions) -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(u32::MAX as u64))
        .tick_duration(options.tick)
        .min_message_latency(options.latency().0)
        .max_message_latency(options.latency().1)
        .epoch(UNIX_EPOCH)
        .rng_seed(options.setup.seed)
        .build()
}

/// What the runner and the hosts share beside the node table (all on one thread).
struct Shared {
    options: SimOptions,
    ips: Vec<IpAddr>,
    links: LinkTable,
}

/// A simulated cluster of a system's nodes. Every action is applied between
/// two ticks, so a run is a pure function of the options and the actions.
pub struct TurmoilCluster<S: System> {
    sim: turmoil::Sim<'static>,
    shared: Arc<Shared>,
    table: SharedTable<S>,
    recorder: Recorder<S>,
    /// Libc's clocks and randomness follow the run on this thread; dropped
    /// last, after the simulation.
    _determinism: determinism::Guard,
}

fn host_name(node: NodeIdx) -> String {
    format!("n{node}")
}

impl<S: System> TurmoilCluster<S> {
    /// Builds the network and starts every node at time 0. From here until
    /// the cluster is dropped, this thread's libc clocks and randomness
    /// follow the run ([`determinism`]): build it on a fresh thread (as
    /// [`run_with`](crate::run_with) does) for std's per-thread `HashMap`
    /// keys and `thread_rng` to be the run's too.
    pub fn new(system: Arc<S>, options: SimOptions) -> Self {
        assert!(options.setup.nodes >= 1, "a cluster needs a node");
        let guard = determinism::enter(derive_seed(options.setup.seed, NodeIdx::MAX, 0, 6));
        determinism::allow_threads(options.allow_threads);
        let mut sim = network(&options);
        let names: Vec<String> = (0..options.setup.nodes).map(host_name).collect();
        // Hosts get their IPs in registration order; register them all first
        // so every node's address is known before any starts.
        let ips: Vec<IpAddr> = names.iter().map(|n| sim.lookup(n.as_str())).collect();
        let addrs: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, BASE_PORT)).collect();
        let recorder =
            // Outside the hosts (the runner reading the history), the time of the last step.
            Recorder::new(system, &addrs, &options.setup.network, || turmoil::sim_elapsed().unwrap_or_else(determinism::elapsed));
        let table = Arc::new(Mutex::new(options.table()));
        let shared = Arc::new(Shared { links: LinkTable::new(options.setup.network.loss), options, ips });
        for (node, name) in names.iter().enumerate() {
            let (shared, table, recorder) = (shared.clone(), table.clone(), recorder.clone());
            sim.host(name.as_str(), move || {
                host_main(shared.clone(), table.clone(), recorder.clone(), node as NodeIdx)
            });
        }
        let mut cluster = TurmoilCluster { sim, shared, table, recorder, _determinism: guard };
        // Hosts start on their first tick: run until every node has booted,
        // so the timeline begins with every node up (or known to have failed).
        let boots = cluster.table().watch_boots();
        let patience = cluster.shared.options.stagger + BOOT_PATIENCE;
        cluster.run_while(patience, || boots.borrow().contains(&0));
        cluster
    }

    /// Runs the simulation while `busy` holds, for at most `patience`.
    fn run_while(&mut self, patience: Duration, mut busy: impl FnMut() -> bool) {
        let deadline = self.now() + patience;
        while busy() && self.now() < deadline {
            self.step();
        }
    }

    /// Ends the run and hands back what it observed.
    pub fn into_history(self) -> History<S> {
        // Dropping the simulation first stops the hosts that share the recorder.
        let TurmoilCluster { sim, recorder, .. } = self;
        drop(sim);
        recorder.read(History::clone)
    }

    fn ip(&self, node: NodeIdx) -> IpAddr {
        self.shared.ips[node as usize]
    }

    /// One tick. A node's panic goes on as the same panic, without turmoil's
    /// wrapping (which names process-global task ids).
    fn step(&mut self) {
        determinism::set_elapsed(self.sim.elapsed());
        let stepped = self.sim.step();
        determinism::set_elapsed(self.sim.elapsed());
        determinism::judge_thread_starts(&self.recorder, self.sim.elapsed());
        let stopped = self.table().take_stopped();
        for node in stopped {
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

    /// Gives the link between `x` and `y` its partition state in `links`:
    /// turmoil holds a link cut both ways; the connections hold what they
    /// send across a link cut one way.
    fn apply_link(&mut self, links: &LinkState, x: NodeIdx, y: NodeIdx) {
        let (ix, iy) = (self.ip(x), self.ip(y));
        let (xy, yx) = (links.link(x, y).partitioned, links.link(y, x).partitioned);
        if xy && yx {
            self.sim.hold(ix, iy);
        } else {
            self.sim.release(ix, iy);
        }
        self.shared.links.set_held(ix, iy, xy && !yx);
        self.shared.links.set_held(iy, ix, yx && !xy);
    }
}

/// Node faults: turmoil crashes and bounces hosts; the rest is the table's.
impl<S: System> Hosting<S> for TurmoilCluster<S> {
    fn table(&self) -> MutexGuard<'_, NodeTable<S>> {
        nodes::lock(&self.table)
    }

    fn wait_for<T>(&mut self, until: impl Future<Output = T>, patience: Duration) -> Option<T> {
        // Turmoil wakes nothing outside its hosts: `until` is polled after every tick.
        let mut until = pin!(until);
        let mut output = None;
        let mut cx = Context::from_waker(Waker::noop());
        self.run_while(patience, || match until.as_mut().poll(&mut cx) {
            Poll::Ready(done) => {
                output = Some(done);
                false
            }
            Poll::Pending => true,
        });
        output
    }

    fn end(&mut self, node: NodeIdx) -> Result<(), String> {
        self.sim.crash(host_name(node));
        Ok(())
    }

    fn spawn(&mut self, node: NodeIdx) -> Result<(), String> {
        // Its host boots the next incarnation on the next tick.
        self.sim.bounce(host_name(node));
        Ok(())
    }

    fn addr(&self, node: NodeIdx, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(node), port)
    }
}

impl<S: System> Cluster<S> for TurmoilCluster<S> {
    fn size(&self) -> u32 {
        self.shared.options.setup.nodes
    }

    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn recorder(&self) -> &Recorder<S> {
        &self.recorder
    }

    fn invoke(&mut self, node: NodeIdx, op: S::Op, step: usize) {
        // In flight from the host's next step on: the timeline moves on now.
        nodes::invoke(self, node, op, step);
    }

    fn apply_links(&mut self, change: &LinkChange, scope: &Scope) {
        let links = self.recorder.read(|h| h.links().clone());
        let touched = change.links(scope, self.size());
        match change {
            LinkChange::Partition { .. } | LinkChange::Heal => {
                for (x, y) in unordered(&touched) {
                    self.apply_link(&links, x, y);
                }
            }
            LinkChange::Latency(_) => {
                for (x, y) in touched {
                    let (ix, iy, latency) = (self.ip(x), self.ip(y), links.link(x, y).latency);
                    self.sim.set_link_latency(ix, iy, latency.min);
                    self.sim.set_link_max_message_latency(ix, iy, latency.max);
                }
            }
            LinkChange::Loss(_) => {
                for (x, y) in touched {
                    self.shared.links.set_loss(self.ip(x), self.ip(y), links.link(x, y).loss);
                }
            }
        }
    }

    fn set_node(&mut self, node: NodeIdx, change: &NodeChange) {
        nodes::set_node(self, node, change);
    }

    fn refuses(&self, change: &NodeChange) -> Option<String> {
        (!change.is_basic()).then(|| format!("the turmoil backend cannot {}: {TURMOIL_REFUSES}", change.name()))
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

/// A host's software: boot the node's next incarnation, serve it, then idle
/// until turmoil crashes the host.
async fn host_main<S: System>(
    shared: Arc<Shared>,
    table: SharedTable<S>,
    recorder: Recorder<S>,
    node: NodeIdx,
) -> turmoil::Result {
    let (boot, commands) = nodes::lock(&table).next_boot(&recorder, node);
    let (boot, delay) = shared.options.simulated(boot);
    let o = &shared.options;
    let transport = TurmoilTransport::new(
        shared.ips[node as usize],
        Framing::new(DEFAULT_MAX_FRAME),
        o.model,
        shared.links.clone(),
        derive_seed(o.setup.seed, node, boot.incarnation, 1),
    );
    nodes::host(table, recorder, (boot, commands), transport, delay, || ()).await;
    std::future::pending().await
}

/// Why the turmoil backend refuses every node fault beyond the basic ones
/// (`pause`, `clock`).
const TURMOIL_REFUSES: &str =
    "turmoil 0.7 advances every host's clock together, in one step; use the events backend (--backend events)";
