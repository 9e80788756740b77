//! The reference pub/sub system over real MsQuic on loopback, faults through
//! the relays: scenarios run by `run_real`, a cluster driven by hand through
//! `Cluster`, and nodes started directly on MsQuic transports.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tandem::engine::cluster::Cluster;
use tandem::engine::execute::unmet;
use tandem::history::{EventKind, History};
use tandem::property::Judge;
use tandem::scenario::{NodeIdx, Scenario, True};
use tandem::transport::{Connection, MessageReceiver, MessageSender, PeerIdentity, Transport};
use tandem::Oracle;
use tandem_msquic::{run_real, MsQuicConfig, MsQuicTransport, RealCluster, RealOptions, TlsIdentity, TrustPolicy};
use tandem_pubsub::node::{Node, NodeConfig, NodeId};
use tandem_pubsub::{Condition, Observation, Op, PubSub};
use tokio::time::timeout;

const SECOND: Duration = Duration::from_secs(1);

/// Parses a scenario for the pub/sub system.
fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, "real.toml", &PubSub).unwrap_or_else(|e| panic!("{e}"))
}

/// The tags `node` delivered, in order, all incarnations.
fn tags(history: &History<PubSub>, node: NodeIdx) -> Vec<String> {
    history
        .events()
        .iter()
        .filter(|e| e.node == Some(node))
        .filter_map(|e| match &e.event {
            EventKind::Observe(Observation::Delivered { tag, .. }) => Some(tag.clone()),
            _ => None,
        })
        .collect()
}

/// Every address `node` listened at, in order: starts and rebinds.
fn addresses(history: &History<PubSub>, node: NodeIdx) -> Vec<SocketAddr> {
    history
        .events()
        .iter()
        .filter(|e| e.node == Some(node))
        .filter_map(|e| match e.event {
            EventKind::Started { addr, .. } | EventKind::Rebound { addr } => Some(addr),
            _ => None,
        })
        .collect()
}

#[test]
fn seed_test_with_a_rebind_over_msquic() {
    let scenario = scenario(
        r#"
nodes = 2
seeds = [0, 1]
duration = "1s"
settle = "500ms"

[network]
latency = "0ms"

[[step]]
await = { converged = true, timeout = "5s" }
[[step]]
broadcast = { from = 0, tag = "data-1", size = 32 }
[[step]]
await = { node = 1, received = 1, timeout = "5s" }
[[step]]
rebind = { node = 1 }
[[step]]
await = { converged = true, timeout = "5s" }
[[step]]
broadcast = { from = 0, tag = "data-2", size = 1024 }
[[step]]
direct = { from = 0, to = 1, tag = "to-1", size = 150000 }
[[step]]
direct = { from = 1, to = 0, tag = "to-0", size = 64 }
[[step]]
await = { node = 1, received = 3, timeout = "5s" }
[[step]]
await = { node = 0, received = 1, timeout = "5s" }

# After the settle tail, time for a duplicate or a self-delivery to show.
[[expect]]
node = 0
received = 1
[[expect]]
node = 1
received = 3
[[expect]]
converged = true
"#,
    );
    let run = run_real(Arc::new(PubSub), &scenario).expect("the cluster starts");
    let history = &run.history;
    assert!(run.outcome.passed(), "{:?}\n{}", run.outcome.failure, history.to_jsonl());
    assert_eq!(tags(history, 0), ["to-0"], "node 0 never delivers its own broadcasts");
    assert_eq!(tags(history, 1), ["data-1", "data-2", "to-1"], "node 1 delivers each exactly once");
    let moved = addresses(history, 1);
    assert_eq!(moved.len(), 2, "one start, one rebind: {moved:?}");
    assert_ne!(moved[0], moved[1], "node 1 moved its listener");
    assert_eq!(history.node(1).addr, moved[1]);
}

#[test]
fn a_partition_through_the_relays_delivers_after_heal_exactly_once() {
    let scenario = scenario(
        r#"
nodes = 3
duration = "3s"
settle = "500ms"

[network]
latency = "0ms"

[[step]]
await = { converged = true, timeout = "5s" }
[[step]]
partition = { a = [0], b = [1, 2] }
[[step]]
broadcast = { from = 0, tag = "during", size = 64 }
# Longer than the idle timeout: the connections break and are redialled.
[[step]]
after = "3s"
expect = { node = 1, not_received_tags = ["during"] }
[[step]]
expect = { node = 2, not_received_tags = ["during"] }
[[step]]
heal = {}
[[step]]
await = { node = 1, received = 1, timeout = "8s" }
[[step]]
await = { node = 2, received = 1, timeout = "8s" }

[[expect]]
node = 1
received_tags = ["during"]
[[expect]]
node = 2
received_tags = ["during"]
"#,
    );
    let run = run_real(Arc::new(PubSub), &scenario).expect("the cluster starts");
    let history = &run.history;
    assert!(run.outcome.passed(), "{:?}\n{}", run.outcome.failure, history.to_jsonl());
    assert_eq!(tags(history, 1), ["during"]);
    assert_eq!(tags(history, 2), ["during"]);
    assert!(tags(history, 0).is_empty());
}

#[test]
fn a_oneway_partition_drops_only_one_direction() {
    // The bundled `oneway_partition` scenario, shortened.
    let scenario = scenario(
        r#"
nodes = 3
duration = "3s"
settle = "500ms"

[network]
latency = "0ms"

[[step]]
await = { converged = true, timeout = "5s" }
[[step]]
partition = { a = [0], b = [1, 2], oneway = true }
[[step]]
broadcast = { from = 0, tag = "p0" }
[[step]]
broadcast = { from = 1, tag = "p1" }
[[step]]
await = { node = 2, received_tags = ["p1"], timeout = "3s" }
# Hold the partition past the 2s idle timeout.
[[step]]
after = "3s"
expect = { node = 1, received = 0 }
[[step]]
expect = { node = 2, not_received_tags = ["p0"] }
[[step]]
heal = {}
[[step]]
await = { node = 1, received_tags = ["p0"], timeout = "8s" }
[[step]]
await = { node = 2, received_tags = ["p0", "p1"], timeout = "8s" }
[[step]]
await = { node = 0, received_tags = ["p1"], timeout = "8s" }

[[expect]]
node = 0
received = 1
"#,
    );
    let run = run_real(Arc::new(PubSub), &scenario).expect("the cluster starts");
    assert!(run.outcome.passed(), "{:?}\n{}", run.outcome.failure, run.history.to_jsonl());
}

/// Lets the cluster run until `condition` holds for `node` (every live node
/// when `None`), failing the test after `limit`.
fn await_for(cluster: &mut RealCluster<PubSub>, limit: Duration, node: Option<NodeIdx>, condition: Condition) {
    let deadline = cluster.now() + limit;
    let held = cluster.run_until(deadline, |h| unmet(&PubSub, h, node, &condition).is_none());
    let why = cluster.recorder().read(|h| unmet(&PubSub, h, node, &condition));
    assert!(held, "timed out after {limit:?} waiting for {condition:?}: {why:?}");
}

#[test]
fn crash_and_restart_driven_through_the_cluster_api() {
    let mut cluster = RealCluster::new(Arc::new(PubSub), RealOptions::new(3)).expect("the cluster starts");
    let converged = Condition::Converged(True);
    await_for(&mut cluster, 5 * SECOND, None, converged.clone());
    let first = cluster.recorder().read(|h| h.node(2).addr);

    cluster.crash(2);
    cluster.invoke(0, Op::Broadcast { from: 0, tag: Some("missed".into()), size: None }, 0);
    await_for(&mut cluster, 5 * SECOND, Some(1), Condition::Received(1));
    cluster.restart(2);
    await_for(&mut cluster, 8 * SECOND, Some(2), Condition::Received(1));
    await_for(&mut cluster, 5 * SECOND, None, converged);

    // Every property holds on what the run observed.
    let mut judge = Judge::new(&PubSub.properties());
    let end = cluster.now();
    let verdict = cluster.recorder().read(|h| judge.advance(h).and_then(|()| judge.finish(h, end)));
    let history = cluster.into_history();
    assert_eq!(verdict, Ok(()), "{}", history.to_jsonl());

    let life = history.node(2);
    assert!(life.alive);
    assert_eq!((life.incarnation, life.crashes.len()), (1, 1));
    assert_eq!(life.addr, first, "a restart keeps the node's address");
    // The new incarnation delivered it: after its second start.
    let restarted = history
        .events()
        .iter()
        .position(|e| e.node == Some(2) && matches!(e.event, EventKind::Started { incarnation: 1, .. }))
        .expect("node 2 restarted");
    let delivered = history
        .events()
        .iter()
        .position(|e| {
            e.node == Some(2)
                && matches!(&e.event, EventKind::Observe(Observation::Delivered { tag, .. }) if tag == "missed")
        })
        .expect("node 2 delivered the message");
    assert!(delivered > restarted);
    assert_eq!(tags(&history, 2), ["missed"]);
}

#[test]
fn a_real_cluster_admits_only_its_own_nodes_each_with_one_certificate_for_the_run() {
    let mut cluster = RealCluster::new(Arc::new(PubSub), RealOptions::new(2)).expect("the cluster starts");
    let converged = Condition::Converged(True);
    await_for(&mut cluster, 5 * SECOND, None, converged.clone());

    // A stranger on the same machine: refused in the TLS handshake.
    let addr = cluster.recorder().read(|h| h.node(0).addr);
    let outside = tokio::runtime::Runtime::new().unwrap();
    let refused = outside.block_on(async {
        let stranger = MsQuicTransport::new(MsQuicConfig::default()).unwrap();
        timeout(5 * SECOND, stranger.connect(addr)).await.expect("an answer in time")
    });
    assert!(refused.is_err(), "the cluster pins its own certificates");

    // A restarted node presents its certificate again, so the roster that
    // binds node ids to certificates lets it back in.
    cluster.crash(1);
    cluster.restart(1);
    await_for(&mut cluster, 8 * SECOND, None, converged);
    cluster.invoke(1, Op::Broadcast { from: 1, tag: Some("back".into()), size: None }, 0);
    await_for(&mut cluster, 5 * SECOND, Some(0), Condition::Received(1));
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn pinned(identity: &TlsIdentity, trusted: &BTreeSet<PeerIdentity>) -> MsQuicTransport {
    let config =
        MsQuicConfig::default().with_identity(identity.clone()).with_trust(TrustPolicy::Pinned(trusted.clone()));
    MsQuicTransport::new(config).expect("transport")
}

/// Waits until each of two nodes has the other in its membership view.
async fn know_each_other(a: &Node, b: &Node) {
    for (node, other) in [(a, b.handle.id()), (b, a.handle.id())] {
        let mut peers = node.peers.clone();
        timeout(5 * SECOND, peers.wait_for(|p| p.contains_key(&other))).await.expect("membership in time").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_node_can_neither_join_nor_inject_into_a_pinned_cluster() {
    let ids: Vec<TlsIdentity> = (0..2).map(|_| TlsIdentity::generate().unwrap()).collect();
    let trusted: BTreeSet<_> = ids.iter().map(TlsIdentity::id).collect();
    let n0 = Node::start(NodeConfig::new(NodeId(0), localhost()), pinned(&ids[0], &trusted)).await.unwrap();
    let seed = n0.handle.addr();
    let n1_config = NodeConfig { seeds: vec![seed], ..NodeConfig::new(NodeId(1), localhost()) };
    let mut n1 = Node::start(n1_config, pinned(&ids[1], &trusted)).await.unwrap();

    // The rogue trusts everyone, but nobody trusts it.
    let rogue_transport = MsQuicTransport::new(MsQuicConfig::default()).unwrap();
    assert!(rogue_transport.connect(seed).await.is_err(), "a pinned node refuses an unknown certificate");
    let rogue_config = NodeConfig { seeds: vec![seed], ..NodeConfig::new(NodeId(9), localhost()) };
    let rogue = Node::start(rogue_config, MsQuicTransport::new(MsQuicConfig::default()).unwrap()).await.unwrap();
    let _ = rogue.broadcast.send("evil", Bytes::from_static(b"x")).await;

    // The cluster still works, and never hears of the rogue.
    know_each_other(&n0, &n1).await;
    n0.broadcast.send("good", Bytes::from_static(b"y")).await.unwrap();
    let delivery = timeout(5 * SECOND, n1.incoming.recv()).await.unwrap().unwrap();
    assert_eq!(delivery.tag, "good");
    let more = timeout(SECOND / 2, n1.incoming.recv()).await;
    assert!(more.is_err(), "nothing from the rogue: {more:?}");
    assert!(!n0.peers.borrow().contains_key(&NodeId(9)), "the rogue never joined");
    assert!(!n1.peers.borrow().contains_key(&NodeId(9)), "the rogue never joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_disconnected_and_the_node_keeps_serving() {
    let mut n0 =
        Node::start(NodeConfig::new(NodeId(0), localhost()), MsQuicTransport::new(MsQuicConfig::default()).unwrap())
            .await
            .unwrap();
    let addr = n0.handle.addr();
    let attacker = MsQuicTransport::new(MsQuicConfig::default()).unwrap();
    let (mut sender, mut receiver) = attacker.connect(addr).await.unwrap().split();
    sender.send(Bytes::from_static(b"\x01\xff\xff\xff garbage")).await.unwrap();
    let closed = timeout(5 * SECOND, receiver.recv()).await.expect("the node hangs up");
    assert!(closed.is_err(), "no reply to garbage: {closed:?}");

    let n1_config = NodeConfig { seeds: vec![addr], ..NodeConfig::new(NodeId(1), localhost()) };
    let n1 = Node::start(n1_config, MsQuicTransport::new(MsQuicConfig::default()).unwrap()).await.unwrap();
    know_each_other(&n0, &n1).await;
    n1.direct.send(NodeId(0), "still-serving", Bytes::from_static(b"ok")).await.unwrap();
    let delivery = timeout(5 * SECOND, n0.incoming.recv()).await.unwrap().unwrap();
    assert_eq!(delivery.tag, "still-serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_of_the_listen_address_rebinds() {
    let node =
        Node::start(NodeConfig::new(NodeId(0), localhost()), MsQuicTransport::new(MsQuicConfig::default()).unwrap())
            .await
            .unwrap();
    let before = node.handle.addr();
    // A port that was free a moment ago.
    let port = std::net::UdpSocket::bind(localhost()).unwrap().local_addr().unwrap().port();
    let mut status = node.handle.status();
    node.handle.reload(|config| config.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let status = timeout(5 * SECOND, status.wait_for(|s| s.reloads == 1)).await.unwrap().unwrap().clone();
    assert_eq!(status.error, None);
    assert_eq!(status.addr.port(), port);
    assert_ne!(status.addr, before);
    assert_eq!(status.version, 1, "a rebind bumps the address version");
}
