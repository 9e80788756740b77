//! The generic real backend with a tiny system defined here: an echo node.
//! Every node listens and echoes whatever a connection sends; `ping` opens a
//! connection from one node to another, sends a line and waits for it back.
//! The scenarios run over MsQuic on loopback through the fault relays.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::strategy::{BoxedStrategy, Just, Strategy};
use serde::{Deserialize, Serialize};
use tandem::history::{EventKind, History, OpResult, Skip};
use tandem::scenario::{NodeIdx, Scenario};
use tandem::system::{Adapter, Drawing, Invocation, NodeContext, Observer, OpError, Operation, Oracle, Workload};
use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
use tandem_msquic::run_real;
use tokio::task::{JoinHandle, JoinSet};

/// How long a ping waits for its echo before it fails.
const PING_PATIENCE: Duration = Duration::from_secs(2);

/// The echo system.
#[derive(Debug, Clone, Copy, Default)]
struct Echo;

/// `ping = { from = 0, to = 1 }`: node `from` sends a line to node `to` and
/// waits for it to come back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum EchoOp {
    Ping { from: NodeIdx, to: NodeIdx },
}

impl Operation for EchoOp {
    fn node(&self) -> NodeIdx {
        match self {
            EchoOp::Ping { from, .. } => *from,
        }
    }

    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            EchoOp::Ping { from, to } => vec![from, to],
        }
    }

    fn validate(&self, _nodes: u32) -> Result<(), String> {
        match self {
            EchoOp::Ping { from, to } if from == to => Err(format!("node {from} pings itself")),
            EchoOp::Ping { .. } => Ok(()),
        }
    }
}

/// `answered = N`: at least N of the node's pings came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum EchoCondition {
    Answered(u64),
}

/// What a node observes: it echoed a message of this many bytes.
#[derive(Debug, Clone, Serialize)]
struct Echoed(usize);

type Dial = Arc<dyn Fn(SocketAddr, Bytes) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>> + Send + Sync>;

/// A running echo node: its listener task and a way to dial its peers.
struct EchoNode {
    addr: SocketAddr,
    peers: Vec<SocketAddr>,
    dial: Dial,
    server: JoinHandle<()>,
}

impl Drop for EchoNode {
    fn drop(&mut self) {
        // The listener and every accepted connection live in this task.
        self.server.abort();
    }
}

async fn serve<L: Listener>(mut listener: L, observer: Observer<Echoed>) {
    let mut connections = JoinSet::new();
    while let Ok(connection) = listener.accept().await {
        while connections.try_join_next().is_some() {}
        let observer = observer.clone();
        connections.spawn(async move {
            let (mut sender, mut receiver) = connection.split();
            while let Ok(message) = receiver.recv().await {
                observer.observe(Echoed(message.len()));
                if sender.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn ping<T: Transport>(transport: &T, to: SocketAddr, line: Bytes) -> Result<Bytes, String> {
    let (mut sender, mut receiver) = transport.connect(to).await.map_err(|e| e.to_string())?.split();
    sender.send(line).await.map_err(|e| e.to_string())?;
    let echo = receiver.recv().await.map_err(|e| e.to_string())?;
    sender.close().await;
    Ok(echo)
}

impl Adapter for Echo {
    type Op = EchoOp;
    type Output = String;
    type Observation = Echoed;
    type Node = EchoNode;

    fn name(&self) -> &'static str {
        "echo"
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<EchoNode, String> {
        let listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr();
        let server = tokio::spawn(serve(listener, ctx.observer.clone()));
        let transport = Arc::new(ctx.transport);
        let dial: Dial = Arc::new(move |to, line| {
            let transport = transport.clone();
            Box::pin(async move { ping(&*transport, to, line).await })
        });
        // A static peer list: every node's address, chosen before any started.
        Ok(EchoNode { addr, peers: ctx.addrs, dial, server })
    }

    fn addr(&self, node: &EchoNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &EchoNode, op: EchoOp, invocation: Invocation) -> Result<String, OpError> {
        let EchoOp::Ping { to, .. } = op;
        let line = format!("ping-{}", invocation.id);
        let echo = tokio::time::timeout(PING_PATIENCE, (node.dial)(node.peers[to as usize], Bytes::from(line.clone())))
            .await
            .map_err(|_| format!("no echo within {PING_PATIENCE:?}"))??;
        if echo == line.as_bytes() {
            Ok(line)
        } else {
            Err(format!("sent {line:?}, got back {echo:?}").into())
        }
    }

    async fn stop(&self, node: EchoNode) {
        drop(node);
    }
}

impl Oracle for Echo {
    type Condition = EchoCondition;
    type Outcome = u64;
    type State = ();

    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &EchoCondition) -> Result<(), String> {
        let EchoCondition::Answered(want) = condition;
        let got = self.outcome(history, node);
        if got >= *want {
            Ok(())
        } else {
            Err(format!("node {node} got {got} echoes, expected at least {want}"))
        }
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> u64 {
        let answered = |e: &&tandem::history::Event<Self>| {
            e.node == Some(node) && matches!(e.event, EventKind::Complete { result: OpResult::Ok(_), .. })
        };
        history.events().iter().filter(answered).count() as u64
    }
}

impl Workload for Echo {
    fn operations(&self, _nodes: u32, _focus: Option<NodeIdx>) -> BoxedStrategy<EchoOp> {
        Just(EchoOp::Ping { from: 0, to: 1 }).boxed()
    }
}

impl Drawing for Echo {}

/// How each operation of `history` ended, by the step that invoked it.
fn results(history: &History<Echo>) -> Vec<(usize, OpResult<String>)> {
    let mut steps = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    for event in history.events() {
        match &event.event {
            EventKind::Invoke { id, step, .. } => {
                steps.insert(*id, *step);
            }
            EventKind::Complete { id, result } => out.push((steps[id], result.clone())),
            _ => {}
        }
    }
    out
}

const PARTITION_CRASH_RESTART: &str = r#"
nodes = 2
duration = "1s"
settle = "200ms"

[network]
latency = "0ms"

[[step]]
wait = "3s"
ping = { from = 0, to = 1 }
[[step]]
wait = "3s"
ping = { from = 1, to = 0 }
[[step]]
partition = { a = [0], b = [1] }
[[step]]
wait = "3s"
ping = { from = 0, to = 1 }
[[step]]
heal = {}
[[step]]
wait = "3s"
ping = { from = 0, to = 1 }
[[step]]
expect = { node = 0, answered = 2 }
[[step]]
crash = { node = 1 }
[[step]]
wait = "3s"
ping = { from = 0, to = 1 }
[[step]]
wait = "3s"
ping = { from = 1, to = 0 }
[[step]]
restart = { node = 1 }
[[step]]
wait = "3s"
ping = { from = 0, to = 1 }
[[step]]
wait = "3s"
ping = { from = 1, to = 0 }
[[step]]
await = { node = 0, answered = 3, timeout = "1s" }

[[expect]]
node = 1
answered = 2
"#;

#[test]
fn partition_heal_crash_restart_over_msquic() {
    let scenario = Scenario::parse(PARTITION_CRASH_RESTART, "echo.toml", &Echo).expect("the scenario parses");
    // Wall-clock time: a real run.
    let started = std::time::Instant::now();
    let run = run_real(Arc::new(Echo), &scenario).expect("the cluster starts");
    let wall = started.elapsed();
    let history = &run.history;
    assert!(run.outcome.passed(), "{:?}\n{}", run.outcome.failure, history.to_jsonl());

    // Every ping answered except across the partition and to the crashed node.
    let results = results(history);
    let steps: Vec<usize> = results.iter().map(|(step, _)| *step).collect();
    assert_eq!(steps, [0, 1, 3, 5, 8, 11, 12], "step 9 (a ping from the crashed node) is skipped");
    for (step, result) in &results {
        let failed = matches!(result, OpResult::Failed(_));
        assert_eq!(failed, [3, 8].contains(step), "step {step}: {result:?}");
    }
    let skipped = history
        .events()
        .iter()
        .any(|e| e.node == Some(1) && matches!(&e.event, EventKind::Skipped { step: 9, why: Skip::NodeDown }));
    assert!(skipped, "the executor says why step 9 did not run");

    // The restart is a new incarnation at the old address.
    let life = history.node(1);
    assert!(life.alive);
    assert_eq!((life.incarnation, life.starts.len(), life.crashes.len()), (1, 2, 1));
    let started: Vec<_> = history
        .events()
        .iter()
        .filter_map(|e| match e.event {
            EventKind::Started { incarnation, addr } if e.node == Some(1) => Some((incarnation, addr)),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 2);
    assert_eq!(started[0].1, started[1].1, "a restart keeps the node's address");
    assert_eq!(started[1].0, 1);

    // Both nodes echoed, and the run ended with its verdict.
    for node in [0, 1] {
        assert!(history.events().iter().any(|e| e.node == Some(node) && matches!(e.event, EventKind::Observe(_))));
    }
    let last = &history.events().last().expect("events").event;
    assert!(matches!(last, EventKind::Verdict { outcome } if outcome == "pass"), "{last:?}");
    assert!(wall < Duration::from_secs(20), "took {wall:?}");
}

#[test]
fn a_failed_expectation_fails_the_real_run() {
    let text = r#"
nodes = 2
duration = "300ms"
settle = "100ms"

[[step]]
wait = "3s"
ping = { from = 0, to = 1 }
[[step]]
expect = { node = 0, answered = 2 }
"#;
    let scenario = Scenario::parse(text, "short.toml", &Echo).expect("the scenario parses");
    let run = run_real(Arc::new(Echo), &scenario).expect("the cluster starts");
    let failure = run.outcome.failure.expect("the expectation fails");
    assert_eq!(failure.code, "expect");
    assert!(failure.detail.contains("got 1 echoes"), "{failure:?}");
    // The timeline stopped at the failure: node 1 never pinged.
    assert_eq!(Echo.outcome(&run.history, 0), 1);
}

#[test]
fn a_scenario_for_another_system_is_refused() {
    let mut scenario = Scenario::parse("nodes = 1\n", "other.toml", &Echo).expect("the scenario parses");
    scenario.system = Some("kv".into());
    let error = run_real(Arc::new(Echo), &scenario).expect_err("not for the echo system");
    assert!(error.contains("kv"), "{error}");
}
