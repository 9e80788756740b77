//! [`RealCluster`]: reference nodes over MsQuic on loopback, with faults
//! injected by relays, behind the same [`Cluster`] API as the simulation.
//!
//! Real runs use wall-clock time (this module never runs under simulation)
//! and make no determinism promise; their traces have the same events.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::faults::{FaultTable, LinkFaults};
use super::transport::{RelayNet, RelayedTransport};
use crate::cluster::{links, Cluster};
use crate::node::{
    BroadcastSender, DirectSender, EventObserver, MessageKind, Mutation, Node, NodeConfig, NodeHandle, NodeId, Timing,
};
use crate::record::{payload_for, Record};
use crate::trace::TraceKind;
use crate::transport::msquic::{MsQuicConfig, MsQuicTransport};

/// How long a restart keeps trying to bind its old port while the previous
/// incarnation's socket closes.
const REBIND_PATIENCE: Duration = Duration::from_secs(3);

/// How to build a real cluster.
#[derive(Debug, Clone)]
pub struct RealOptions {
    /// Node count.
    pub nodes: u32,
    /// Indices of the nodes every node dials at start.
    pub seeds: Vec<u32>,
    /// Added one-way latency per packet.
    pub latency: (Duration, Duration),
    /// Default packet loss.
    pub loss: f64,
    /// The nodes' timers.
    pub timing: Timing,
    /// A planted bug in every node.
    pub mutation: Option<Mutation>,
    /// The MsQuic transport of every node.
    pub transport: MsQuicConfig,
}

impl RealOptions {
    /// `nodes` nodes seeded by node 0, no added latency or loss.
    pub fn new(nodes: u32) -> Self {
        RealOptions {
            nodes,
            seeds: vec![0],
            latency: (Duration::ZERO, Duration::ZERO),
            loss: 0.0,
            timing: Timing::default(),
            mutation: None,
            transport: MsQuicConfig::default(),
        }
    }
}

/// The record, and a signal for every change of it.
#[derive(Debug)]
struct Shared {
    record: Mutex<Record>,
    changed: Condvar,
    start: Instant,
}

impl Shared {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn update(&self, f: impl FnOnce(&mut Record, Duration)) {
        let now = self.now();
        f(&mut self.record.lock().expect("record lock"), now);
        self.changed.notify_all();
    }
}

struct Running {
    handle: NodeHandle,
    broadcast: BroadcastSender,
    direct: DirectSender,
    driver: JoinHandle<()>,
}

/// A cluster of reference nodes over real QUIC on 127.0.0.1.
pub struct RealCluster {
    runtime: Runtime,
    shared: Arc<Shared>,
    net: Arc<RelayNet>,
    options: RealOptions,
    nodes: Vec<Option<Running>>,
}

impl RealCluster {
    /// Starts every node (in index order, each seeded with the seed nodes
    /// already up) and waits until all listen.
    pub fn new(options: RealOptions) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let unbound = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let shared = Arc::new(Shared {
            record: Mutex::new(Record::new(&vec![unbound; options.nodes as usize])),
            changed: Condvar::new(),
            // Real runs keep wall-clock time; this module never runs simulated.
            start: Instant::now(),
        });
        let faults = FaultTable::new(LinkFaults { blocked: false, loss: options.loss, latency: options.latency });
        let mut cluster = RealCluster {
            runtime,
            shared,
            net: RelayNet::new(faults),
            nodes: (0..options.nodes).map(|_| None).collect(),
            options,
        };
        for node in 0..cluster.options.nodes {
            cluster.start(node)?;
        }
        Ok(cluster)
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.shared.record.lock().expect("record lock")
    }

    fn trace(&self, node: Option<u32>, event: TraceKind) {
        self.shared.update(|r, now| r.trace.push(now, node, event));
    }

    fn start(&mut self, node: u32) -> Result<(), String> {
        let (listen, incarnation, seeds) = {
            let r = self.record();
            let n = &r.nodes[node as usize];
            let incarnation = if n.crashes.is_empty() { 0 } else { n.incarnation + 1 };
            let seeds = self
                .options
                .seeds
                .iter()
                .filter(|&&s| s != node && r.nodes[s as usize].addr.port() != 0)
                .map(|&s| r.nodes[s as usize].addr)
                .collect();
            (n.addr, incarnation, seeds)
        };
        let shared = self.shared.clone();
        let observer = EventObserver::new(move |_, event| shared.update(|r, now| r.trace.push(now, Some(node), TraceKind::Node(event))));
        let config = NodeConfig {
            incarnation,
            seeds,
            timing: self.options.timing.clone(),
            mutation: self.options.mutation,
            observer: Some(observer),
            ..NodeConfig::new(NodeId(node), listen)
        };
        let started = Instant::now();
        let node_io = loop {
            let transport = MsQuicTransport::new(self.options.transport.clone()).map_err(|e| e.to_string())?;
            let transport = RelayedTransport::new(transport, node, self.net.clone());
            match self.runtime.block_on(Node::start(config.clone(), transport)) {
                Ok(node_io) => break node_io,
                Err(e) if started.elapsed() > REBIND_PATIENCE => return Err(format!("node {node}: {e}")),
                // The previous incarnation's socket is still closing: retry shortly (real network only).
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let addr = node_io.handle.addr();
        self.shared.update(|r, now| r.started(now, node, incarnation, addr));
        let Node { handle, direct, broadcast, mut peers, mut incoming } = node_io;
        let shared = self.shared.clone();
        let driver = self.runtime.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(delivery) = incoming.recv() => shared.update(|r, now| r.delivered(now, node, &delivery)),
                    Ok(()) = peers.changed() => {
                        let view = peers.borrow_and_update().clone();
                        shared.update(|r, _| r.viewed(node, view));
                    }
                    else => return,
                }
            }
        });
        self.nodes[node as usize] = Some(Running { handle, broadcast, direct, driver });
        Ok(())
    }

    fn send(&mut self, from: u32, to: Option<u32>, tag: &str, size: usize) {
        let Some(running) = &self.nodes[from as usize] else {
            return self.trace(Some(from), TraceKind::Fault { what: "send skipped: node is down".into() });
        };
        let payload = payload_for(from, tag, size);
        let (kind, result) = match to {
            None => (MessageKind::Broadcast, self.runtime.block_on(running.broadcast.send(tag, payload.clone()))),
            Some(to) => (MessageKind::Direct, self.runtime.block_on(running.direct.send(NodeId(to), tag, payload.clone()))),
        };
        let result = result.map_err(|e| e.to_string());
        self.shared.update(|r, now| r.sent(now, from, kind, tag, &payload, result));
    }

    fn each_link(&self, groups: Option<(&[u32], &[u32])>, change: impl Fn(&mut LinkFaults)) {
        for (x, y) in links(self.options.nodes, groups) {
            self.net.faults().update(x, y, &change);
            self.net.faults().update(y, x, &change);
        }
    }

    /// Ends the run: stops every node and hands back what it observed.
    pub fn into_record(mut self) -> Record {
        for running in self.nodes.iter_mut().filter_map(Option::take) {
            running.driver.abort();
            self.runtime.block_on(running.handle.shutdown());
        }
        let record = self.record().clone();
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        record
    }
}

impl Cluster for RealCluster {
    fn size(&self) -> u32 {
        self.options.nodes
    }

    fn now(&self) -> Duration {
        self.shared.now()
    }

    fn with_record<R>(&self, f: impl FnOnce(&mut Record) -> R) -> R {
        f(&mut self.record())
    }

    fn broadcast(&mut self, from: u32, tag: &str, size: usize) {
        self.send(from, None, tag, size);
    }

    fn direct(&mut self, from: u32, to: u32, tag: &str, size: usize) {
        self.send(from, Some(to), tag, size);
    }

    fn partition(&mut self, a: &[u32], b: &[u32], oneway: bool) {
        for (x, y) in links(self.options.nodes, Some((a, b))) {
            self.net.faults().update(x, y, |f| f.blocked = true);
            if !oneway {
                self.net.faults().update(y, x, |f| f.blocked = true);
            }
        }
        self.trace(None, TraceKind::Fault { what: format!("partition a={a:?} b={b:?} oneway={oneway}") });
    }

    fn heal(&mut self, groups: Option<(&[u32], &[u32])>) {
        self.each_link(groups, |f| f.blocked = false);
        self.trace(None, TraceKind::Fault { what: "heal".into() });
    }

    fn latency(&mut self, min: Duration, max: Duration, groups: Option<(&[u32], &[u32])>) {
        self.each_link(groups, |f| f.latency = (min, max));
        self.trace(None, TraceKind::Fault { what: format!("latency {min:?}..{max:?}") });
    }

    fn loss(&mut self, rate: f64, groups: Option<(&[u32], &[u32])>) {
        self.each_link(groups, |f| f.loss = rate);
        self.trace(None, TraceKind::Fault { what: format!("loss {rate}") });
    }

    fn crash(&mut self, node: u32) {
        let Some(running) = self.nodes[node as usize].take() else {
            return self.trace(Some(node), TraceKind::Fault { what: "crash skipped: node is down".into() });
        };
        running.driver.abort();
        self.runtime.block_on(running.handle.shutdown());
        self.shared.update(|r, now| r.crashed(now, node));
    }

    fn restart(&mut self, node: u32) {
        if self.nodes[node as usize].is_some() {
            return self.trace(Some(node), TraceKind::Fault { what: "restart skipped: node is up".into() });
        }
        if let Err(error) = self.start(node) {
            self.trace(Some(node), TraceKind::Fault { what: format!("restart failed: {error}") });
        }
    }

    fn rebind(&mut self, node: u32, port: Option<u16>) {
        let Some(running) = &self.nodes[node as usize] else {
            return self.trace(Some(node), TraceKind::Fault { what: "rebind skipped: node is down".into() });
        };
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0)));
        match self.runtime.block_on(running.handle.rebind(target)) {
            Ok(addr) => self.shared.update(|r, now| r.rebound(now, node, addr)),
            Err(error) => self.trace(Some(node), TraceKind::Fault { what: format!("rebind to {target} failed: {error}") }),
        }
    }

    fn run_until(&mut self, deadline: Duration, mut done: impl FnMut(&Record) -> bool) -> bool {
        let mut record = self.record();
        loop {
            if done(&record) {
                return true;
            }
            let now = self.shared.now();
            if now >= deadline {
                return false;
            }
            // Wake on every change, and at least every 50 ms for time itself.
            let wait = (deadline - now).min(Duration::from_millis(50));
            record = self.shared.changed.wait_timeout(record, wait).expect("record lock").0;
        }
    }
}
