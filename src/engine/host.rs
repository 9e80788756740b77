//! Hosting a system's nodes: the one layer the simulated and the real
//! backend share. A backend decides where a node runs (a turmoil host, a
//! tokio runtime) and which transport it gets; this module boots the node,
//! records what happens to it, and carries out the runner's commands.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::engine::cluster::Setup;
use crate::engine::recorder::Recorder;
use crate::history::{EventKind, History, OpResult};
use crate::scenario::NodeIdx;
use crate::storage::Storage;
use crate::system::{Adapter, FailStop, Invocation, Knobs, NodeContext, NodeSecret, OpError, System};
use crate::transport::{PeerIdentity, Transport};

pub use crate::seed::derive_seed;

/// How long a stopped node's tasks get to wind down before its host goes.
const STOP_GRACE: Duration = Duration::from_millis(2);

/// What a backend knows of a node before it boots it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The node's index.
    pub index: NodeIdx,
    /// Its incarnation.
    pub incarnation: u64,
    /// Every node's current address; this node listens at its own.
    pub addrs: Vec<SocketAddr>,
    /// The scenario's membership seeds.
    pub seeds: Vec<NodeIdx>,
    /// The node's RNG seed.
    pub rng_seed: u64,
    /// The run's id (see [`NodeContext::run_id`]).
    pub run_id: u64,
    /// The node's disk, shared by its incarnations.
    pub storage: Storage,
    /// The planted bug of the run.
    pub planted_bug: Option<&'static str>,
    /// The run seed that decides the node's [`buggify!`](crate::buggify)
    /// points: set by the simulation only, so they never fire on a real
    /// network.
    pub buggify: Option<u64>,
    /// The run's knob values (see [`Knobs`]).
    pub knobs: BTreeMap<String, i64>,
    /// The identity each node's transport presents, by index, where the
    /// network authenticates peers (see [`NodeContext::identities`]).
    pub identities: Vec<Option<PeerIdentity>>,
    /// The node's signing secret, where the network provisions one (see
    /// [`NodeContext::secret`]).
    pub secret: Option<NodeSecret>,
    /// Every node's verifying key (see [`NodeContext::verifying_keys`]).
    pub verifying_keys: Vec<Option<[u8; 32]>>,
}

impl Boot {
    /// The boot of `node` for the next start, from the history: a restart is
    /// the next incarnation, at the node's last address, on its `storage`.
    /// The run id derives from the run seed.
    pub fn next<S: System>(history: &History<S>, node: NodeIdx, setup: &Setup, storage: &Storage) -> Boot {
        let run_seed = setup.seed;
        let incarnation = history.node(node).next_incarnation();
        Boot {
            index: node,
            incarnation,
            addrs: history.nodes().iter().map(|n| n.addr).collect(),
            seeds: setup.seeds.clone(),
            rng_seed: derive_seed(run_seed, node, incarnation, 0),
            run_id: derive_seed(run_seed, NodeIdx::MAX, 0, 5),
            storage: storage.restarted(),
            planted_bug: setup.planted_bug,
            buggify: None,
            knobs: setup.knobs.clone(),
            identities: vec![None; history.nodes().len()],
            secret: None,
            verifying_keys: vec![None; history.nodes().len()],
        }
    }
}

/// Boots a node on `transport`. Its start is recorded first, so that
/// whatever the node reports while it boots comes after it in the history;
/// a start that fails is recorded as such, and the node as down again. The
/// node's [`FailStop`] sends [`Command::FailStop`] to `orders`, the sender
/// of the commands [`serve`] will carry out.
pub async fn start<S: System, T: Transport>(
    boot: &Boot,
    transport: T,
    recorder: &Recorder<S>,
    orders: &mpsc::UnboundedSender<Order<S>>,
) -> Result<S::Node, String> {
    let node = boot.index;
    let listen = boot.addrs[node as usize];
    let ctx = NodeContext::<S::Observation, T> {
        index: node,
        incarnation: boot.incarnation,
        listen,
        addrs: boot.addrs.clone(),
        seeds: boot.seeds.clone(),
        rng_seed: boot.rng_seed,
        run_id: boot.run_id,
        storage: boot.storage.clone(),
        transport,
        observer: recorder.observer(node, boot.incarnation),
        probe: match boot.buggify {
            Some(run) => {
                recorder.probe(node, boot.incarnation).with_buggify(run, derive_seed(run, node, boot.incarnation, 2))
            }
            None => recorder.probe(node, boot.incarnation),
        },
        fail_stop: {
            let orders = orders.clone();
            // The serve loop may be gone (the node stopped already): nothing left to stop.
            FailStop::new(move |why| drop(orders.send((Command::FailStop(why), oneshot::channel().0))))
        },
        planted_bug: boot.planted_bug,
        knobs: Knobs::new(boot.knobs.clone()),
        identities: boot.identities.clone(),
        secret: boot.secret.clone(),
        verifying_keys: boot.verifying_keys.clone(),
    };
    let system = recorder.system().clone();
    recorder.push(Some(node), EventKind::Started { incarnation: boot.incarnation, addr: listen });
    match in_node(node, boot.incarnation, system.start(ctx)).await {
        Ok(running) => {
            let addr = system.addr(&running);
            if addr != listen {
                recorder.push(Some(node), EventKind::Rebound { addr });
            }
            Ok(running)
        }
        Err(error) => {
            recorder.push(Some(node), EventKind::StartFailed { error: error.clone() });
            recorder.crashed(recorder.now(), node);
            Err(error)
        }
    }
}

/// What the runner asks of a running node.
#[derive(Debug)]
pub enum Command<S: System> {
    /// Carry out an operation for scenario step `step`.
    Invoke {
        /// The operation.
        op: S::Op,
        /// The step that invoked it.
        step: usize,
    },
    /// Move the listener.
    Rebind(SocketAddr),
    /// Stop the node (a crash).
    Stop,
    /// The node stops itself ([`FailStop`]), for this reason.
    FailStop(String),
}

/// How [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The runner stopped the node, or went.
    Stopped,
    /// The node stopped itself ([`FailStop`]): its backend crashes it.
    FailStopped,
}

/// A command and where to say it was carried out (for `Invoke`: that the
/// operation has begun).
pub type Order<S> = (Command<S>, oneshot::Sender<()>);

/// Carries out `commands` on a running node until `Stop` or `FailStop` (or
/// until the runner goes), recording every invocation, completion and
/// rebind, and a fail-stop's reason.
///
/// An operation is acknowledged as soon as it is invoked: it runs while the
/// timeline moves on. The node has `clients` clients (Jepsen's processes):
/// each carries out one operation at a time, and an operation goes to the
/// lowest free one. Orders are taken in turn: one that finds every client
/// busy waits, and so does a rebind until no operation runs, except `Stop`
/// and `FailStop`, which abandon the operations in flight (the crash records
/// them as unknown).
pub async fn serve<S: System>(
    node: S::Node,
    index: NodeIdx,
    clients: u32,
    recorder: Recorder<S>,
    commands: mpsc::UnboundedReceiver<Order<S>>,
) -> Served {
    let incarnation = recorder.read(|h| h.node(index).incarnation);
    in_node(index, incarnation, carry_out(node, index, clients.max(1), recorder, commands)).await
}

/// The span of everything the framework runs for a node incarnation:
/// `node{id, inc}`. In the events backend every task the node spawns runs
/// in it; elsewhere they enter it with
/// [`tracing::Instrument::in_current_span`].
pub fn span(node: NodeIdx, incarnation: u64) -> tracing::Span {
    tracing::info_span!("node", id = node, inc = incarnation)
}

thread_local! {
    static RUNNING: std::cell::Cell<Option<NodeIdx>> = const { std::cell::Cell::new(None) };
}

/// The node whose code the framework is polling on this thread: its boot,
/// its operations, its rebinds and its stop. `None` elsewhere, and inside
/// tasks the node spawned itself. A simulation names it when node code does
/// what a simulation cannot reproduce (starts an OS thread).
pub fn running_node() -> Option<NodeIdx> {
    RUNNING.get()
}

/// Runs `future` as node `node`'s incarnation `incarnation`: in its
/// [`span`] (unless the backend polls it in one already, as a unit of
/// execution does with every task of the node), and as the
/// [`running_node`] while it is polled.
pub async fn in_node<F: Future>(node: NodeIdx, incarnation: u64, future: F) -> F::Output {
    let span = span(node, incarnation);
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let outer = RUNNING.replace(Some(node));
        let in_a_node = tracing::Span::current().metadata().is_some_and(|m| m.name() == "node");
        let _entered = (!in_a_node).then(|| span.enter());
        let polled = future.as_mut().poll(cx);
        RUNNING.set(outer);
        polled
    })
    .await
}

async fn carry_out<S: System>(
    mut node: S::Node,
    index: NodeIdx,
    clients: u32,
    recorder: Recorder<S>,
    mut commands: mpsc::UnboundedReceiver<Order<S>>,
) -> Served {
    let system = recorder.system().clone();
    let mut waiting: VecDeque<Order<S>> = VecDeque::new();
    let clients = Clients { system: &*system, index, clients, recorder: &recorder };
    while let Some((command, done)) = clients.operate(&node, &mut waiting, &mut commands).await {
        match command {
            Command::Rebind(addr) => {
                match system.rebind(&mut node, addr).await {
                    Ok(addr) => recorder.push(Some(index), EventKind::Rebound { addr }),
                    Err(error) => recorder.push(Some(index), EventKind::RebindFailed { addr, error }),
                }
                let _ = done.send(());
            }
            Command::Stop | Command::FailStop(_) => {
                let served = match command {
                    Command::FailStop(why) => {
                        recorder.push(Some(index), EventKind::FailStopped { why });
                        Served::FailStopped
                    }
                    _ => Served::Stopped,
                };
                system.stop(node).await;
                // Let the stopped tasks and the connections' writers wind down.
                tokio::time::sleep(STOP_GRACE).await;
                let _ = done.send(());
                return served;
            }
            Command::Invoke { .. } => unreachable!("operations are carried out by the clients"),
        }
    }
    system.stop(node).await;
    Served::Stopped
}

/// An operation in flight: its client, its id, and the system's future.
type InFlight<'a, S> = (u32, u64, Pin<Box<dyn Future<Output = Result<<S as Adapter>::Output, OpError>> + Send + 'a>>);

/// A node's clients.
struct Clients<'a, S: System> {
    system: &'a S,
    index: NodeIdx,
    clients: u32,
    recorder: &'a Recorder<S>,
}

impl<'a, S: System> Clients<'a, S> {
    /// Carries out operations until the next order that needs the node to
    /// itself (a rebind, once no operation runs; a stop, at once) and
    /// returns it; `None` when the runner has gone.
    async fn operate<'n>(
        &self,
        node: &'n S::Node,
        waiting: &mut VecDeque<Order<S>>,
        commands: &mut mpsc::UnboundedReceiver<Order<S>>,
    ) -> Option<Order<S>>
    where
        'a: 'n,
    {
        let mut running: Vec<InFlight<'n, S>> = Vec::new();
        loop {
            while let Some((command, _)) = waiting.front() {
                match command {
                    Command::Invoke { .. } if (running.len() as u32) < self.clients => {
                        let Some((Command::Invoke { op, step }, done)) = waiting.pop_front() else { unreachable!() };
                        let client =
                            (0..self.clients).find(|c| running.iter().all(|r| r.0 != *c)).expect("one is free");
                        let id = self.recorder.lock().next_op_id();
                        self.recorder.push(Some(self.index), EventKind::Invoke { id, step, client, op: op.clone() });
                        // The runner may have stopped waiting; nothing else needs the answer.
                        let _ = done.send(());
                        running.push((client, id, Box::pin(self.system.invoke(node, op, Invocation { step, id }))));
                    }
                    Command::Rebind(_) if running.is_empty() => return waiting.pop_front(),
                    Command::Stop | Command::FailStop(_) => return waiting.pop_front(),
                    _ => break,
                }
            }
            // Completions first, in client order, then orders: the same order every run.
            let next = std::future::poll_fn(|cx| {
                for (at, (_, _, invoke)) in running.iter_mut().enumerate() {
                    if let Poll::Ready(result) = invoke.as_mut().poll(cx) {
                        return Poll::Ready(Err((at, result)));
                    }
                }
                commands.poll_recv(cx).map(Ok)
            })
            .await;
            match next {
                Err((at, result)) => {
                    let (_, id, _) = running.remove(at);
                    let result = match result {
                        Ok(output) => OpResult::Ok(output),
                        Err(OpError::Failed(why)) => OpResult::Failed(why),
                        Err(OpError::Indeterminate(why)) => OpResult::Unknown(why),
                    };
                    self.recorder.push(Some(self.index), EventKind::Complete { id, result });
                }
                Ok(Some(order @ (Command::Stop | Command::FailStop(_), _))) => return Some(order),
                Ok(Some(order)) => waiting.push_back(order),
                Ok(None) => return None,
            }
        }
    }
}
