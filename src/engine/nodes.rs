//! The node table every simulated backend keeps, its host loop, and the one
//! place the basic node faults (crash, restart, rebind, disk) are carried
//! out. A backend supplies only what differs: how it runs a node's tasks and
//! its network ([`Hosting`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::cluster::{Cluster, Setup};
use crate::engine::host::{self, derive_seed, Boot, Command, Order, Recorder, Served};
use crate::scenario::{NodeChange, NodeIdx};
use crate::storage::{DiskFault, Storage};
use crate::system::System;
use crate::transport::Transport;

/// How long a crash waits for the node to stop in its own order.
pub const STOP_PATIENCE: Duration = Duration::from_secs(1);
/// How long a restart (or the first boot, after its stagger) waits for the
/// node to boot: a boot that takes longer is the system's bug, and the
/// executor reports a node that is not up.
pub const BOOT_PATIENCE: Duration = Duration::from_secs(1);
/// How long the runner waits for a node to rebind before the timeline goes
/// on (a rebind waits for the node's operation in flight).
pub const REBIND_PATIENCE: Duration = Duration::from_secs(10);

/// A node incarnation's command channel: the sender the runner (and the
/// node's [`FailStop`](crate::system::FailStop)) use, the receiver its host serves.
pub type Commands<S> = (mpsc::UnboundedSender<Order<S>>, mpsc::UnboundedReceiver<Order<S>>);

/// Every node of a cluster, alive or not: where to send it commands, its
/// disk, how often it booted, and which nodes stopped themselves.
pub struct NodeTable<S: System> {
    setup: Setup,
    /// Each running node's command channel.
    commands: Vec<Option<mpsc::UnboundedSender<Order<S>>>>,
    /// Each node's disk, kept across its incarnations.
    disks: Vec<Storage>,
    /// How many times each node's host finished booting it (started or failed).
    boots: watch::Sender<Vec<u32>>,
    /// Nodes that stopped themselves, whose remains the backend is yet to end.
    stopped: Vec<NodeIdx>,
    /// The last port a rebind without one was given.
    last_port: u16,
}

impl<S: System> NodeTable<S> {
    /// A table of `setup`'s nodes, none running, on `disks`; rebinds without
    /// a port get ports after `first_port`.
    pub fn new(setup: Setup, disks: Vec<Storage>, first_port: u16) -> Self {
        assert_eq!(disks.len(), setup.nodes as usize, "a disk per node");
        let nodes = setup.nodes as usize;
        NodeTable {
            setup,
            commands: (0..nodes).map(|_| None).collect(),
            disks,
            boots: watch::Sender::new(vec![0; nodes]),
            stopped: Vec::new(),
            last_port: first_port,
        }
    }

    /// What the cluster was built from.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The boot of `node`'s next incarnation ([`Boot::next`]), and the
    /// command channel its host serves.
    pub fn next_boot(&mut self, recorder: &Recorder<S>, node: NodeIdx) -> (Boot, Commands<S>) {
        let boot = recorder.read(|h| Boot::next(h, node, &self.setup, &self.disks[node as usize]));
        let (sender, receiver) = mpsc::unbounded_channel();
        self.commands[node as usize] = Some(sender.clone());
        (boot, (sender, receiver))
    }

    /// Hands a command to a running node's host; the receiver says when it
    /// has carried it out.
    pub fn send(&self, node: NodeIdx, command: Command<S>) -> oneshot::Receiver<()> {
        let sender = self.commands[node as usize].clone().expect("the executor only commands running nodes");
        let (done, carried_out) = oneshot::channel();
        sender.send((command, done)).unwrap_or_else(|_| panic!("node {node}'s host is gone"));
        carried_out
    }

    /// How many times `node` has booted (started or failed to).
    pub fn boots(&self, node: NodeIdx) -> u32 {
        self.boots.borrow()[node as usize]
    }

    /// Every node's boot count, as it changes.
    pub fn watch_boots(&self) -> watch::Receiver<Vec<u32>> {
        self.boots.subscribe()
    }

    /// A node has stopped: its disk loses its unsynced writes and the
    /// history records the crash, at `at`.
    pub fn crashed(&mut self, recorder: &Recorder<S>, node: NodeIdx, at: Duration) {
        let incarnation = recorder.read(|h| h.node(node).incarnation);
        self.commands[node as usize] = None;
        self.disks[node as usize].crash(derive_seed(self.setup.seed, node, incarnation, 3));
        recorder.crashed(at, node);
    }

    /// The nodes that stopped themselves since the last call.
    pub fn take_stopped(&mut self) -> Vec<NodeIdx> {
        std::mem::take(&mut self.stopped)
    }

    /// Sets (or clears) a fault of `node`'s disk.
    pub fn set_disk_fault(&mut self, node: NodeIdx, fault: DiskFault) {
        self.disks[node as usize].set_fault(fault);
    }
}

/// The table as the runner and the hosts share it (all on one thread).
pub type SharedTable<S> = Arc<Mutex<NodeTable<S>>>;

/// Locks a shared table.
pub fn lock<S: System>(table: &SharedTable<S>) -> MutexGuard<'_, NodeTable<S>> {
    table.lock().expect("the simulation is single-threaded")
}

/// A host's software: after `delay`, boot the node on `transport`, then
/// carry out the runner's commands until it stops. A node that stops itself
/// loses its network at once (`cut_off`), is recorded as crashed, and is
/// left for its backend to end ([`NodeTable::take_stopped`]).
pub async fn host<S: System, T: Transport>(
    table: SharedTable<S>,
    recorder: Recorder<S>,
    (boot, commands): (Boot, Commands<S>),
    transport: T,
    delay: Duration,
    cut_off: impl FnOnce(),
) {
    let node = boot.index;
    tokio::time::sleep(delay).await;
    let started = host::start(&boot, transport, &recorder, &commands.0).await;
    let clients = {
        let table = lock(&table);
        table.boots.send_modify(|boots| boots[node as usize] += 1);
        table.setup.clients
    };
    if let Ok(running) = started {
        if host::serve(running, node, clients, recorder.clone(), commands.1).await == Served::FailStopped {
            cut_off();
            let mut table = lock(&table);
            table.crashed(&recorder, node, recorder.now());
            table.stopped.push(node);
        }
    }
}

/// What a backend supplies to carry out node faults: how it runs the
/// cluster, how it starts and ends a node's tasks, and its addresses.
pub trait Hosting<S: System>: Cluster<S> {
    /// The cluster's node table.
    fn table(&self) -> MutexGuard<'_, NodeTable<S>>;

    /// Runs the cluster until `carried_out` resolves or `patience` has passed.
    fn wait_for(&mut self, carried_out: oneshot::Receiver<()>, patience: Duration);

    /// Runs the cluster until `node` has booted more than `before` times or
    /// `patience` has passed.
    fn wait_for_boot(&mut self, node: NodeIdx, before: u32, patience: Duration);

    /// Whether `node` is paused (a crash then kills it as it is).
    fn paused(&self, _node: NodeIdx) -> bool {
        false
    }

    /// Ends what is left of a stopped node: its tasks and its network.
    fn end(&mut self, node: NodeIdx);

    /// Starts a host for `node`'s next incarnation.
    fn spawn(&mut self, node: NodeIdx);

    /// Where `node` listens on `port`.
    fn addr(&self, node: NodeIdx, port: u16) -> SocketAddr;

    /// Carries out a node fault beyond the basic ones
    /// ([`NodeChange::is_basic`]); a backend that does not refuses it
    /// before the run ([`Cluster::refuses`](crate::engine::cluster::Cluster::refuses)).
    fn other(&mut self, node: NodeIdx, change: &NodeChange) {
        unreachable!("{} is refused before the run (node {node})", change.name())
    }
}

/// Carries out `change` on `node`: the one implementation of
/// [`Cluster::set_node`](crate::engine::cluster::Cluster::set_node) for the
/// simulated backends.
pub fn set_node<S: System, H: Hosting<S>>(hosting: &mut H, node: NodeIdx, change: &NodeChange) {
    match *change {
        NodeChange::Crash => {
            // tokio drops a runtime's remaining tasks in an order that
            // depends on process-global task ids, and every dropped stream
            // sends a segment: so the node stops first, in its own
            // deterministic order (unless it is paused: a stopped process
            // is killed as it is).
            if !hosting.paused(node) {
                let carried_out = hosting.table().send(node, Command::Stop);
                hosting.wait_for(carried_out, STOP_PATIENCE);
            }
            hosting.end(node);
            let now = hosting.now();
            hosting.table().crashed(hosting.recorder(), node, now);
        }
        NodeChange::Restart => {
            // Like every action, a restart is done when its effect is
            // visible: the node has booted again.
            let before = hosting.table().boots(node);
            hosting.spawn(node);
            hosting.wait_for_boot(node, before, BOOT_PATIENCE);
        }
        NodeChange::Rebind { port } => {
            let port = port.unwrap_or_else(|| {
                let mut table = hosting.table();
                table.last_port += 1;
                table.last_port
            });
            let carried_out = hosting.table().send(node, Command::Rebind(hosting.addr(node, port)));
            hosting.wait_for(carried_out, REBIND_PATIENCE);
        }
        NodeChange::Disk(fault) => hosting.table().set_disk_fault(node, fault),
        _ => hosting.other(node, change),
    }
}
