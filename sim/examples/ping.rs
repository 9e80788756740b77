//! The smallest complete tandem system: nodes that answer pings.
//!
//! Run it with `cargo run -p tandem-sim --example ping`; the guide
//! (docs/guide.md) walks through it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::{
    Adapter, Connection, Drawing, Event, EventKind, Failure, History, Invocation, Listener, Mark, MessageReceiver,
    MessageSender, NodeContext, NodeIdx, OpError, OpResult, Operation, Oracle, Property, Scenario, Transport, Workload,
};
use tokio::sync::{mpsc, oneshot};

/// The system: a node that answers every ping, and can ping another node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// Its one operation: `ping = { from = 0, to = 1 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Ping {
    /// Node `from` pings node `to` and waits for the answer.
    Ping { from: NodeIdx, to: NodeIdx },
}

impl Operation for Ping {
    // Who carries it out.
    fn node(&self) -> NodeIdx {
        let Ping::Ping { from, .. } = self;
        *from
    }
    // Every node index it names (a shrunk reproducer renumbers them).
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        let Ping::Ping { from, to } = self;
        vec![from, to]
    }
}

/// Its condition: `pinged = N`, the node answered N pings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pinged {
    /// How many pings the node answered.
    Pinged(usize),
}

/// A running node: where it and its peers listen, and a line to its pinging task.
pub struct EchoNode {
    addr: SocketAddr,
    peers: Vec<SocketAddr>,
    pings: mpsc::UnboundedSender<(SocketAddr, oneshot::Sender<Result<(), String>>)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Adapter for Echo {
    type Op = Ping; // what scenario steps ask a node to do
    type Output = (); // what a successful operation returns
    type Observation = NodeIdx; // what the harness sees the node do: "I answered a ping from this node"
    type Node = EchoNode; // a running node

    fn name(&self) -> &'static str {
        "echo"
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<EchoNode, String> {
        let mut listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr();
        let (observer, probe) = (ctx.observer.clone(), ctx.probe.clone());
        let server = tokio::spawn(async move {
            while let Ok(conn) = listener.accept().await {
                let (mut tx, mut rx) = conn.split();
                let (observer, probe) = (observer.clone(), probe.clone());
                tokio::spawn(async move {
                    let mut answered = 0;
                    while let Ok(ping) = rx.recv().await {
                        tandem::always!(probe, ping.len() == 1, "a ping is one byte");
                        observer.observe(NodeIdx::from(ping[0]));
                        if tx.send(ping).await.is_err() {
                            tandem::reachable!(probe, "a pinger left before its answer");
                            return;
                        }
                        answered += 1;
                        tandem::sometimes!(probe, answered > 1, "two pings on one connection");
                    }
                });
            }
        });
        let (pings, mut requests) = mpsc::unbounded_channel::<(SocketAddr, oneshot::Sender<_>)>();
        let (transport, me) = (ctx.transport, ctx.index as u8);
        let peers = ctx.addrs;
        let client = tokio::spawn(async move {
            while let Some((to, answer)) = requests.recv().await {
                let result = async {
                    let (mut tx, mut rx) = transport.connect(to).await.map_err(|e| e.to_string())?.split();
                    tx.send(Bytes::from(vec![me])).await.map_err(|e| e.to_string())?;
                    rx.recv().await.map(drop).map_err(|e| e.to_string())
                };
                let _ = answer.send(result.await);
            }
        });
        Ok(EchoNode { addr, peers, pings, tasks: vec![server, client] })
    }

    fn addr(&self, node: &EchoNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &EchoNode, op: Ping, _: Invocation) -> Result<(), OpError> {
        let Ping::Ping { to, .. } = op;
        let (answer, answered) = oneshot::channel();
        node.pings.send((node.peers[to as usize], answer)).map_err(|_| "stopped".to_string())?;
        match tokio::time::timeout(Duration::from_secs(2), answered).await {
            Ok(result) => Ok(result.map_err(|_| "stopped".to_string())??), // String errors: Failed
            Err(_) => Err(OpError::Indeterminate("no answer in 2 s".into())),
        }
    }

    async fn stop(&self, node: EchoNode) {
        node.tasks.iter().for_each(|task| task.abort());
    }
}

impl Oracle for Echo {
    type Condition = Pinged; // what `await` / `expect` can ask
    type Outcome = usize; // a node's final state, for `tandem confirm`
    type State = (); // derived from the history as it grows

    fn check(&self, history: &History<Self>, node: NodeIdx, Pinged::Pinged(want): &Pinged) -> Result<(), String> {
        let got = self.outcome(history, node);
        (got == *want).then_some(()).ok_or(format!("node {node} answered {got} pings, expected {want}"))
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> usize {
        answers(history, node)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            // Safety: a monitor sees every new event once, as it arrives; a
            // violation ends the run at that event.
            Property::always("E1", "answers come from the pinged node", || {
                |h: &History<Echo>, e: &Event<Echo>| match &e.event {
                    EventKind::Complete { id, result: OpResult::Ok(()) } => {
                        let Some(Ping::Ping { from, to }) = h.invocation(*id) else { return Ok(()) };
                        let answered = h
                            .events()
                            .iter()
                            .any(|a| a.node == Some(*to) && matches!(a.event, EventKind::Observe(by) if by == *from));
                        answered.then_some(()).ok_or(format!("node {to} never answered node {from}"))
                    }
                    _ => Ok(()),
                }
            }),
            // Liveness: judged once, at the end of the settle tail; the
            // failure names the ping that never ended, and its node.
            Property::eventually_naming("E2", "every ping ends", |h: &History<Echo>| match unanswered(h) {
                Some((index, node)) => Err(Failure::from("a ping never ended").on(node).naming(index)),
                None => Ok(()),
            }),
            // Coverage: reported as hit or missed.
            Property::sometimes("G1", "a node answered two pings", |h: &History<Echo>, e: &Event<Echo>| {
                e.node.is_some_and(|node| matches!(e.event, EventKind::Observe(_)) && answers(h, node) >= 2)
            }),
        ]
    }
}

impl Workload for Echo {
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Ping> {
        let to = focus.map_or((0..nodes).boxed(), |n| Just(n).boxed());
        (0..nodes, to).prop_map(|(from, to)| Ping::Ping { from, to }).boxed()
    }
}

impl Drawing for Echo {
    fn mark(&self, _history: &History<Self>, event: &Event<Self>) -> Option<Mark> {
        match &event.event {
            EventKind::Invoke { id, .. } => Some(Mark::new("ping", format!("ping {id}")).cause(id.to_string())),
            EventKind::Complete { id, .. } => Some(Mark::new("pong", format!("pong {id}")).effect(id.to_string())),
            _ => None,
        }
    }
}

/// The position and node of a ping's invocation that never completed.
fn unanswered(h: &History<Echo>) -> Option<(usize, NodeIdx)> {
    h.events().iter().enumerate().find_map(|(index, e)| match (&e.event, e.node) {
        (EventKind::Invoke { id, .. }, Some(node)) => {
            let ended =
                h.events().iter().any(|c| matches!(c.event, EventKind::Complete { id: done, .. } if done == *id));
            (!ended).then_some((index, node))
        }
        _ => None,
    })
}

/// How many pings `node` answered so far.
fn answers(h: &History<Echo>, node: NodeIdx) -> usize {
    h.events().iter().filter(|e| e.node == Some(node) && matches!(e.event, EventKind::Observe(_))).count()
}

fn main() -> std::process::ExitCode {
    let scenario = Scenario::parse(include_str!("ping.toml"), "ping.toml", &Echo).expect("a valid scenario");
    let run = tandem_sim::run_scenario(Arc::new(Echo), &scenario, 1);
    match &run.outcome.failure {
        None => println!("PASS ping trace={}", run.digest()),
        Some(failure) => println!("FAIL ping trace={} {failure}", run.digest()),
    }
    std::process::ExitCode::from(u8::from(!run.outcome.passed()))
}
