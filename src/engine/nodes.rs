//! The node table every backend keeps, its host loop, and the one place the
//! basic node faults (crash, restart, rebind, disk) are carried out. A
//! backend supplies only what differs: how it runs a node's tasks, how long
//! it waits, and its network ([`Hosting`]). What fails on the way is
//! recorded here, as typed events, for every backend.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::cluster::{Cluster, Setup};
use crate::engine::host::{self, derive_seed, Boot, Command, Order, Served};
use crate::engine::recorder::Recorder;
use crate::history::{EventKind, Skip};
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
    /// The last port a rebind without one was given; `None`: such a rebind
    /// asks for port 0, and the OS picks one.
    last_port: Option<u16>,
}

impl<S: System> NodeTable<S> {
    /// A table of `setup`'s nodes, none running, on `disks`; rebinds without
    /// a port get ports after `first_port` (with `None`, port 0: the OS
    /// picks).
    pub fn new(setup: Setup, disks: Vec<Storage>, first_port: Option<u16>) -> Self {
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
    /// has carried it out. `Err` when the host is gone (its node stopped
    /// itself just now, or its thread ended).
    pub fn send(&self, node: NodeIdx, command: Command<S>) -> Result<oneshot::Receiver<()>, String> {
        let (done, carried_out) = oneshot::channel();
        let sender = self.commands[node as usize].as_ref().ok_or(HOST_GONE)?;
        sender.send((command, done)).map_err(|_| HOST_GONE)?;
        Ok(carried_out)
    }

    /// The port of a rebind that names none.
    fn fresh_port(&mut self) -> u16 {
        self.last_port.as_mut().map_or(0, |port| {
            *port += 1;
            *port
        })
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

/// Why a command did not reach its node.
const HOST_GONE: &str = "the node's host is gone";

/// The table as the runner and the hosts share it (on one thread in the
/// simulation, on the nodes' own threads over MsQuic).
pub type SharedTable<S> = Arc<Mutex<NodeTable<S>>>;

/// Locks a shared table.
pub fn lock<S: System>(table: &SharedTable<S>) -> MutexGuard<'_, NodeTable<S>> {
    table.lock().expect("nothing panics holding the node table")
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
/// cluster, how it starts and ends a node's tasks, and its addresses. The
/// hooks that can fail say why; [`set_node`] records it.
pub trait Hosting<S: System>: Cluster<S> {
    /// The cluster's node table.
    fn table(&self) -> MutexGuard<'_, NodeTable<S>>;

    /// How long this backend waits for what a simulated node is given
    /// `simulated` to do (a stop, a boot, a rebind): a real one may need
    /// longer.
    fn patience(&self, simulated: Duration) -> Duration {
        simulated
    }

    /// Runs the cluster until `until` completes or `patience` has passed:
    /// its output, `None` if it did not complete.
    fn wait_for<T>(&mut self, until: impl Future<Output = T>, patience: Duration) -> Option<T>;

    /// Whether `node` is paused (a crash then kills it as it is).
    fn paused(&self, _node: NodeIdx) -> bool {
        false
    }

    /// Ends what is left of a stopped node: its tasks and its network; why
    /// not all of it, if not.
    fn end(&mut self, node: NodeIdx) -> Result<(), String>;

    /// Starts a host for `node`'s next incarnation; why not, if it cannot.
    fn spawn(&mut self, node: NodeIdx) -> Result<(), String>;

    /// Where `node` listens on `port`.
    fn addr(&self, node: NodeIdx, port: u16) -> SocketAddr;

    /// Carries out a node fault beyond the basic ones
    /// ([`NodeChange::is_basic`]); a backend that does not refuses it
    /// before the run ([`Cluster::refuses`]).
    fn other(&mut self, node: NodeIdx, change: &NodeChange) {
        unreachable!("{} is refused before the run (node {node})", change.name())
    }
}

/// Carries out `change` on `node`: the one implementation of
/// [`Cluster::set_node`]. A crash
/// that did not stop the node in its own order is recorded as
/// [`EventKind::StopFailed`], a restart that could not begin as
/// [`EventKind::StartFailed`], an unanswered rebind as
/// [`EventKind::RebindFailed`].
pub fn set_node<S: System, H: Hosting<S>>(hosting: &mut H, node: NodeIdx, change: &NodeChange) {
    match *change {
        NodeChange::Crash => {
            if let Err(error) = stop(hosting, node) {
                record(hosting, node, EventKind::StopFailed { error });
            }
            let now = hosting.now();
            hosting.table().crashed(hosting.recorder(), node, now);
        }
        NodeChange::Restart => {
            // Like every action, a restart is done when its effect is
            // visible: the node has booted again.
            let mut boots = hosting.table().watch_boots();
            let before = boots.borrow()[node as usize];
            match hosting.spawn(node) {
                Ok(()) => {
                    let booted = async move {
                        let _ = boots.wait_for(|boots| boots[node as usize] > before).await;
                    };
                    hosting.wait_for(booted, hosting.patience(BOOT_PATIENCE));
                }
                Err(error) => record(hosting, node, EventKind::StartFailed { error }),
            }
        }
        NodeChange::Rebind { port } => {
            let addr = hosting.addr(node, port.unwrap_or_else(|| hosting.table().fresh_port()));
            if let Err(why) = order(hosting, node, Command::Rebind(addr), REBIND_PATIENCE) {
                record(hosting, node, EventKind::RebindFailed { addr, error: format!("unanswered: {why}") });
            }
        }
        NodeChange::Disk(fault) => hosting.table().set_disk_fault(node, fault),
        _ => hosting.other(node, change),
    }
}

/// Stops a running node without recording its crash: in its own order
/// (unless it is paused: a stopped process is killed as it is), then ends
/// what is left of it. Why it did not stop cleanly, if it did not (it is
/// ended all the same).
pub fn stop<S: System, H: Hosting<S>>(hosting: &mut H, node: NodeIdx) -> Result<(), String> {
    // tokio drops a runtime's remaining tasks in an order that depends on
    // process-global task ids, and every dropped stream sends a segment:
    // so the node stops first, in its own deterministic order.
    let stopped = if hosting.paused(node) { Ok(()) } else { order(hosting, node, Command::Stop, STOP_PATIENCE) };
    let ended = hosting.end(node);
    stopped.and(ended)
}

/// Hands `op` (of step `step`) to `node` and returns at once; an operation
/// whose node's host is gone is [`Skip::HostGone`]. The one implementation
/// of [`Cluster::invoke`].
pub fn invoke<S: System, H: Hosting<S>>(hosting: &H, node: NodeIdx, op: S::Op, step: usize) {
    if hosting.table().send(node, Command::Invoke { op, step }).is_err() {
        record(hosting, node, EventKind::Skipped { step, why: Skip::HostGone });
    }
}

/// Hands `command` to `node` and waits up to the backend's
/// [`patience`](Hosting::patience) for `simulated` for it to be carried
/// out; why not, if it was not.
fn order<S: System, H: Hosting<S>>(
    hosting: &mut H,
    node: NodeIdx,
    command: Command<S>,
    simulated: Duration,
) -> Result<(), String> {
    let carried_out = hosting.table().send(node, command)?;
    let patience = hosting.patience(simulated);
    match hosting.wait_for(carried_out, patience) {
        Some(Ok(())) => Ok(()),
        Some(Err(_)) => Err("the node's host ended before answering".into()),
        None => Err(format!("no answer within {patience:?}")),
    }
}

/// Records `event` of `node` now.
fn record<S: System, H: Hosting<S>>(hosting: &H, node: NodeIdx, event: EventKind<S>) {
    hosting.recorder().push_at(hosting.now(), Some(node), event);
}
