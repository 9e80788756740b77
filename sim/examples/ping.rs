//! The smallest complete tandem system: nodes that answer pings.
//!
//! Run it with `cargo run -p tandem-sim --example ping`; the guide
//! (docs/guide.md) walks through it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::history::{EventKind, History, OpResult};
use tandem::property::Property;
use tandem::scenario::{NodeIdx, Scenario};
use tandem::system::{Invocation, NodeContext, OpError, Operation, System};
use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
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
    fn node(&self) -> NodeIdx {
        let Ping::Ping { from, .. } = self;
        *from
    }
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

impl System for Echo {
    type Op = Ping;
    type Output = ();
    type Observation = NodeIdx; // "I answered a ping from this node"
    type Condition = Pinged;
    type Outcome = usize;
    type State = ();
    type Node = EchoNode;

    fn name(&self) -> &'static str {
        "echo"
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self, T>) -> Result<EchoNode, String> {
        let mut listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr();
        let observer = ctx.observer.clone();
        let server = tokio::spawn(async move {
            while let Ok(conn) = listener.accept().await {
                let (mut tx, mut rx) = conn.split();
                let observer = observer.clone();
                tokio::spawn(async move {
                    while let Ok(ping) = rx.recv().await {
                        observer.observe(NodeIdx::from(ping[0]));
                        if tx.send(ping).await.is_err() {
                            return;
                        }
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
        Ok(answered.await.map_err(|_| "stopped".to_string())??)
    }

    async fn stop(&self, node: EchoNode) {
        node.tasks.iter().for_each(|task| task.abort());
    }

    fn check(&self, history: &History<Self>, node: NodeIdx, Pinged::Pinged(want): &Pinged) -> Result<(), String> {
        let got = self.outcome(history, node);
        (got == *want).then_some(()).ok_or(format!("node {node} answered {got} pings, expected {want}"))
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> usize {
        history.events().iter().filter(|e| e.node == Some(node) && matches!(e.event, EventKind::Observe(_))).count()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        // A ping that got an answer was answered by the pinged node.
        vec![Property::always("E1", "answers come from the pinged node", || {
            |h: &History<Echo>, e: &tandem::history::Event<Echo>| match &e.event {
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
        })]
    }

    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Ping> {
        let to = focus.map_or((0..nodes).boxed(), |n| Just(n).boxed());
        (0..nodes, to).prop_map(|(from, to)| Ping::Ping { from, to }).boxed()
    }
}

fn main() -> std::process::ExitCode {
    let scenario = Scenario::parse(
        "system = \"echo\"\nnodes = 2\nduration = \"3s\"\nsettle = \"1s\"\n\n[[step]]\nping = { from = 0, to = 1 }\n\n[[expect]]\nnode = 1\npinged = 1\n",
        "ping.toml",
        &Echo,
    )
    .expect("a valid scenario");
    let run = tandem_sim::run_scenario(Arc::new(Echo), &scenario, 1);
    match &run.outcome.failure {
        None => println!("PASS ping trace={}", run.digest()),
        Some(failure) => println!("FAIL ping trace={} {failure}", run.digest()),
    }
    std::process::ExitCode::from(u8::from(!run.outcome.passed()))
}
