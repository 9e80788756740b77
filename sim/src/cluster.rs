//! [`SimCluster`]: reference nodes as turmoil hosts, driven tick by tick.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use tandem::cluster::{links, Cluster};
use tandem::node::{EventObserver, MessageKind, Mutation, Node, NodeConfig, NodeId, Timing};
use tandem::record::{payload_for, Record};
use tandem::trace::TraceKind;
use tandem::transport::{Framing, DEFAULT_MAX_FRAME};
use tokio::sync::mpsc;

use crate::net::{LossTable, QuicModel};
use crate::transport::SimTransport;

/// The port every node listens on at start.
pub const BASE_PORT: u16 = 7000;
/// How long a crashing node's tasks get to wind down before its host dies.
const STOP_GRACE: Duration = Duration::from_millis(2);
/// Ports the runner picks for rebinds without a port start here.
pub const REBIND_PORT: u16 = 20000;

/// How to build a simulated cluster.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The run's seed: turmoil's RNG, the nodes' and the transports'.
    pub seed: u64,
    /// Node count.
    pub nodes: u32,
    /// Indices of the nodes every node dials at start.
    pub seeds: Vec<u32>,
    /// Default link latency bounds.
    pub latency: (Duration, Duration),
    /// Default loss probability.
    pub loss: f64,
    /// turmoil's tick: the simulation's time resolution.
    pub tick: Duration,
    /// The nodes' timers.
    pub timing: Timing,
    /// The QUIC model of connections.
    pub model: QuicModel,
    /// A planted bug in every node.
    pub mutation: Option<Mutation>,
}

impl SimOptions {
    /// `nodes` nodes seeded by node 0, 1-5 ms latency, no loss, 1 ms ticks.
    pub fn new(nodes: u32, seed: u64) -> Self {
        SimOptions {
            seed,
            nodes,
            seeds: vec![0],
            latency: (Duration::from_millis(1), Duration::from_millis(5)),
            loss: 0.0,
            tick: Duration::from_millis(1),
            timing: Timing::default(),
            model: QuicModel::default(),
            mutation: None,
        }
    }

    /// An empty turmoil network with these options' tick, latency and seed
    /// (also the raw-turmoil baseline of `tandem bench`).
    pub fn network(&self) -> turmoil::Sim<'static> {
        turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(u32::MAX as u64))
            .tick_duration(self.tick)
            .min_message_latency(self.latency.0)
            .max_message_latency(self.latency.1)
            .epoch(UNIX_EPOCH)
            .rng_seed(self.seed)
            .build()
    }
}

enum HostCommand {
    Send { to: Option<u32>, tag: String, size: usize },
    Rebind(SocketAddr),
    /// Stop the node before turmoil drops the host's runtime (see `crash`).
    Stop,
}

/// State shared by the runner and the hosts (all on one thread).
struct Shared {
    options: SimOptions,
    ips: Vec<IpAddr>,
    losses: LossTable,
    record: Record,
    commands: Vec<Option<mpsc::UnboundedSender<HostCommand>>>,
    /// Commands sent to hosts and not yet carried out.
    pending: usize,
}

/// A simulated cluster of reference nodes. Every action is applied between
/// two ticks, so a run is a pure function of the options and the actions.
pub struct SimCluster {
    sim: turmoil::Sim<'static>,
    shared: Arc<Mutex<Shared>>,
    blocked: BTreeSet<(u32, u32)>,
    next_port: u16,
}

fn host_name(node: u32) -> String {
    format!("n{node}")
}

fn now() -> Duration {
    turmoil::sim_elapsed().expect("called inside the simulation")
}

/// Mixes the run seed with a node and a purpose into an independent seed.
fn derive_seed(seed: u64, node: u32, incarnation: u64, purpose: u8) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&[&seed.to_le_bytes()[..], &node.to_le_bytes(), &incarnation.to_le_bytes(), &[purpose]].concat())
}

impl SimCluster {
    /// Builds the network and starts every node at time 0.
    pub fn new(options: SimOptions) -> Self {
        assert!(options.nodes >= 1, "a cluster needs a node");
        let mut sim = options.network();
        let names: Vec<String> = (0..options.nodes).map(host_name).collect();
        // Hosts get their IPs in registration order; register them all first
        // so every node's address is known before any starts.
        let ips: Vec<IpAddr> = names.iter().map(|n| sim.lookup(n.as_str())).collect();
        let addrs: Vec<SocketAddr> = ips.iter().map(|&ip| SocketAddr::new(ip, BASE_PORT)).collect();
        let shared = Arc::new(Mutex::new(Shared {
            losses: LossTable::new(options.loss),
            record: Record::new(&addrs),
            commands: (0..options.nodes).map(|_| None).collect(),
            pending: 0,
            options,
            ips,
        }));
        for (node, name) in names.iter().enumerate() {
            let shared = shared.clone();
            sim.host(name.as_str(), move || host_main(shared.clone(), node as u32));
        }
        let mut cluster = SimCluster { sim, shared, blocked: BTreeSet::new(), next_port: REBIND_PORT };
        // Hosts start on their first tick: run it so the timeline begins with every node up.
        let size = cluster.size() as usize;
        cluster.run_until(Duration::from_secs(1), |r| r.live().count() == size);
        cluster
    }

    /// Ends the run and hands back what it observed.
    pub fn into_record(self) -> Record {
        // Dropping the simulation first stops the hosts that share the record.
        let SimCluster { sim, shared, .. } = self;
        drop(sim);
        let record = shared.lock().expect("single-threaded").record.clone();
        record
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("the simulation is single-threaded")
    }

    fn ip(&self, node: u32) -> IpAddr {
        self.lock().ips[node as usize]
    }

    fn trace(&self, node: Option<u32>, event: TraceKind) {
        let at = self.now();
        self.lock().record.trace.push(at, node, event);
    }

    /// Hands a command to a node's host and runs the simulation until the
    /// host has carried it out, so the next step sees its effect.
    fn command(&mut self, node: u32, command: HostCommand, what: &str) {
        let sender = {
            let shared = self.lock();
            shared.commands[node as usize].clone().filter(|_| shared.record.nodes[node as usize].alive)
        };
        match sender {
            Some(sender) => {
                self.lock().pending += 1;
                sender.send(command).unwrap_or_else(|_| panic!("node {node} host is gone"));
                while self.lock().pending > 0 {
                    self.sim.step().expect("hosts never fail: start errors are traced");
                }
            }
            None => self.trace(Some(node), TraceKind::Fault { what: format!("{what} skipped: node is down") }),
        }
    }

    /// Applies the wanted partition state of the link between `x` and `y` to turmoil.
    fn apply_link(&mut self, x: u32, y: u32) {
        let (ix, iy) = (self.ip(x), self.ip(y));
        match (self.blocked.contains(&(x, y)), self.blocked.contains(&(y, x))) {
            (true, true) => self.sim.hold(ix, iy),
            (false, false) => self.sim.release(ix, iy),
            (true, false) => {
                self.sim.release(ix, iy);
                self.sim.partition_oneway(ix, iy);
            }
            (false, true) => {
                self.sim.release(ix, iy);
                self.sim.partition_oneway(iy, ix);
            }
        }
    }

    fn apply_links(&mut self, pairs: &[(u32, u32)]) {
        let unordered: BTreeSet<(u32, u32)> = pairs.iter().map(|&(x, y)| (x.min(y), x.max(y))).collect();
        for (x, y) in unordered {
            self.apply_link(x, y);
        }
    }
}

fn describe(groups: Option<(&[u32], &[u32])>) -> String {
    match groups {
        Some((a, b)) => format!(" a={a:?} b={b:?}"),
        None => String::new(),
    }
}

impl Cluster for SimCluster {
    fn size(&self) -> u32 {
        self.lock().options.nodes
    }

    fn now(&self) -> Duration {
        self.sim.elapsed()
    }

    fn with_record<R>(&self, f: impl FnOnce(&mut Record) -> R) -> R {
        f(&mut self.lock().record)
    }

    fn broadcast(&mut self, from: u32, tag: &str, size: usize) {
        self.command(from, HostCommand::Send { to: None, tag: tag.to_string(), size }, "broadcast");
    }

    fn direct(&mut self, from: u32, to: u32, tag: &str, size: usize) {
        self.command(from, HostCommand::Send { to: Some(to), tag: tag.to_string(), size }, "direct");
    }

    fn partition(&mut self, a: &[u32], b: &[u32], oneway: bool) {
        let pairs = links(self.size(), Some((a, b)));
        for &(x, y) in &pairs {
            self.blocked.insert((x, y));
            if !oneway {
                self.blocked.insert((y, x));
            }
        }
        self.apply_links(&pairs);
        self.trace(None, TraceKind::Fault { what: format!("partition a={a:?} b={b:?} oneway={oneway}") });
    }

    fn heal(&mut self, groups: Option<(&[u32], &[u32])>) {
        let pairs = links(self.size(), groups);
        for &(x, y) in &pairs {
            self.blocked.remove(&(x, y));
            self.blocked.remove(&(y, x));
        }
        self.apply_links(&pairs);
        self.trace(None, TraceKind::Fault { what: format!("heal{}", describe(groups)) });
    }

    fn latency(&mut self, min: Duration, max: Duration, groups: Option<(&[u32], &[u32])>) {
        assert!(min <= max, "latency range {min:?}..{max:?} is empty");
        for (x, y) in links(self.size(), groups) {
            let (ix, iy) = (self.ip(x), self.ip(y));
            self.sim.set_link_latency(ix, iy, min);
            self.sim.set_link_max_message_latency(ix, iy, max);
        }
        self.trace(None, TraceKind::Fault { what: format!("latency {min:?}..{max:?}{}", describe(groups)) });
    }

    fn loss(&mut self, rate: f64, groups: Option<(&[u32], &[u32])>) {
        for (x, y) in links(self.size(), groups) {
            let shared = self.lock();
            shared.losses.set(shared.ips[x as usize], shared.ips[y as usize], rate);
            shared.losses.set(shared.ips[y as usize], shared.ips[x as usize], rate);
        }
        self.trace(None, TraceKind::Fault { what: format!("loss {rate}{}", describe(groups)) });
    }

    fn crash(&mut self, node: u32) {
        if !self.lock().record.nodes[node as usize].alive {
            return self.trace(Some(node), TraceKind::Fault { what: "crash skipped: node is down".into() });
        }
        // tokio drops a runtime's remaining tasks in an order that depends on
        // process-global task ids, and every dropped stream sends a segment:
        // so the node is stopped first, in its own deterministic order.
        self.command(node, HostCommand::Stop, "crash");
        self.sim.crash(host_name(node));
        let at = self.now();
        let mut shared = self.lock();
        shared.commands[node as usize] = None;
        shared.record.crashed(at, node);
    }

    fn restart(&mut self, node: u32) {
        if self.lock().record.nodes[node as usize].alive {
            return self.trace(Some(node), TraceKind::Fault { what: "restart skipped: node is up".into() });
        }
        self.sim.bounce(host_name(node));
        // Like every action, a restart is done when its effect is visible:
        // the node runs again (its host starts it on the next tick).
        let deadline = self.now() + Duration::from_secs(1);
        self.run_until(deadline, |r| r.nodes[node as usize].alive);
    }

    fn rebind(&mut self, node: u32, port: Option<u16>) {
        let port = port.unwrap_or_else(|| {
            self.next_port += 1;
            self.next_port
        });
        let addr = SocketAddr::new(self.ip(node), port);
        self.command(node, HostCommand::Rebind(addr), "rebind");
    }

    fn run_until(&mut self, deadline: Duration, mut done: impl FnMut(&Record) -> bool) -> bool {
        loop {
            if done(&self.lock().record) {
                return true;
            }
            if self.now() >= deadline {
                return false;
            }
            self.sim.step().expect("hosts never fail: start errors are traced");
        }
    }
}

/// A host's software: start the node, then relay the runner's commands and
/// record what the node delivers and sees.
async fn host_main(shared: Arc<Mutex<Shared>>, node: u32) -> turmoil::Result {
    let (config, transport, mut commands) = {
        let mut s = shared.lock().expect("single-threaded");
        let n = &s.record.nodes[node as usize];
        // A restart is a new incarnation; the first start is incarnation 0.
        let incarnation = if n.crashes.is_empty() { 0 } else { n.incarnation + 1 };
        let listen = n.addr;
        let seeds = s.options.seeds.iter().filter(|&&i| i != node).map(|&i| s.record.nodes[i as usize].addr).collect();
        let observed = shared.clone();
        let observer = EventObserver::new(move |_, event| {
            observed.lock().expect("single-threaded").record.trace.push(now(), Some(node), TraceKind::Node(event));
        });
        let config = NodeConfig {
            incarnation,
            seeds,
            rng_seed: derive_seed(s.options.seed, node, incarnation, 0),
            timing: s.options.timing.clone(),
            mutation: s.options.mutation,
            observer: Some(observer),
            ..NodeConfig::new(NodeId(node), listen)
        };
        let transport = SimTransport::new(
            s.ips[node as usize],
            Framing::new(DEFAULT_MAX_FRAME),
            s.options.model,
            s.losses.clone(),
            derive_seed(s.options.seed, node, incarnation, 1),
        );
        let (tx, rx) = mpsc::unbounded_channel();
        s.commands[node as usize] = Some(tx);
        (config, transport, rx)
    };
    let incarnation = config.incarnation;
    let mut node_io = match Node::start(config, transport).await {
        Ok(started) => started,
        Err(error) => {
            let what = format!("start failed: {error}");
            shared.lock().expect("single-threaded").record.trace.push(now(), Some(node), TraceKind::Fault { what });
            return Ok(());
        }
    };
    let addr = node_io.handle.addr();
    shared.lock().expect("single-threaded").record.started(now(), node, incarnation, addr);
    let record = |f: &mut dyn FnMut(&mut Record)| f(&mut shared.lock().expect("single-threaded").record);
    loop {
        tokio::select! {
            biased;
            Some(delivery) = node_io.incoming.recv() => record(&mut |r| r.delivered(now(), node, &delivery)),
            Ok(()) = node_io.peers.changed() => {
                let view = node_io.peers.borrow_and_update().clone();
                record(&mut |r| r.viewed(node, view.clone()));
            }
            Some(command) = commands.recv() => {
                if matches!(command, HostCommand::Stop) {
                    break;
                }
                carry_out(&mut node_io, node, command, &record).await;
                shared.lock().expect("single-threaded").pending -= 1;
            }
        }
    }
    drop(node_io);
    // Let the aborted tasks and the connections' writers wind down.
    tokio::time::sleep(STOP_GRACE).await;
    shared.lock().expect("single-threaded").pending -= 1;
    std::future::pending().await
}

/// Carries out one runner command on a node and records the result.
async fn carry_out(node_io: &mut Node, node: u32, command: HostCommand, record: &impl Fn(&mut dyn FnMut(&mut Record))) {
    match command {
        HostCommand::Send { to, tag, size } => {
            let payload = payload_for(node, &tag, size);
            let (kind, result) = match to {
                None => (MessageKind::Broadcast, node_io.broadcast.send(tag.clone(), payload.clone()).await),
                Some(to) => (MessageKind::Direct, node_io.direct.send(NodeId(to), tag.clone(), payload.clone()).await),
            };
            let result = result.map_err(|e| e.to_string());
            record(&mut |r| r.sent(now(), node, kind, &tag, &payload, result.clone()));
        }
        HostCommand::Stop => unreachable!("the host loop handles Stop itself"),
        HostCommand::Rebind(addr) => match node_io.handle.rebind(addr).await {
            Ok(addr) => record(&mut |r| r.rebound(now(), node, addr)),
            Err(error) => record(&mut |r| {
                r.trace.push(now(), Some(node), TraceKind::Fault { what: format!("rebind to {addr} failed: {error}") })
            }),
        },
    }
}
