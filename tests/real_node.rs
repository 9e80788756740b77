//! The reference node over real MsQuic on loopback, faults through the relays.
#![cfg(feature = "msquic")]

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use common::{await_for, holds, no_violation, tags, wait, SECOND};
use tandem::cluster::Cluster;
use tandem::node::{Node, NodeConfig, NodeId};
use tandem::real::{RealCluster, RealOptions};
use tandem::scenario::Check;
use tandem::transport::msquic::{MsQuicConfig, MsQuicTransport, TlsIdentity, TrustPolicy};
use tandem::transport::{Connection, MessageReceiver, MessageSender, Transport};
use tokio::time::timeout;

#[test]
fn seed_test_over_msquic() {
    let mut cluster = RealCluster::new(RealOptions { seeds: vec![0, 1], ..RealOptions::new(2) }).expect("cluster starts");
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));
    cluster.broadcast(0, "data-1", 32);
    await_for(&mut cluster, 5 * SECOND, "node 1 to receive", holds(Check::Received(1), Some(1)));
    // Give a duplicate or a self-delivery the time to show up, then check none did.
    wait(&mut cluster, SECOND / 2);
    assert_eq!(tags(&cluster, 0), Vec::<String>::new(), "node 0 never receives its own broadcast");
    assert_eq!(tags(&cluster, 1), ["data-1"], "node 1 receives it exactly once");

    let before = cluster.with_record(|r| r.nodes[1].addr);
    cluster.rebind(1, None);
    let after = cluster.with_record(|r| r.nodes[1].addr);
    assert_ne!(before, after, "node 1 moved its listener");
    await_for(&mut cluster, 5 * SECOND, "the new address to spread", holds(Check::Converged, None));
    cluster.broadcast(0, "data-2", 1024);
    cluster.direct(0, 1, "to-1", 150_000);
    cluster.direct(1, 0, "to-0", 64);
    await_for(&mut cluster, 5 * SECOND, "node 1's messages", holds(Check::Received(3), Some(1)));
    await_for(&mut cluster, 5 * SECOND, "node 0's direct", holds(Check::Received(1), Some(0)));
    assert_eq!(tags(&cluster, 1), ["data-1", "data-2", "to-1"]);
    assert_eq!(tags(&cluster, 0), ["to-0"]);
    no_violation(&cluster);
    cluster.into_record();
}

#[test]
fn partition_through_the_relays_delivers_after_heal_exactly_once() {
    let mut cluster = RealCluster::new(RealOptions::new(3)).expect("cluster starts");
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));
    cluster.partition(&[0], &[1, 2], false);
    cluster.broadcast(0, "during", 64);
    // Longer than the idle timeout: the connections break and are redialled.
    wait(&mut cluster, 3 * SECOND);
    assert!(tags(&cluster, 1).is_empty() && tags(&cluster, 2).is_empty(), "nothing crosses the partition");
    cluster.heal(None);
    await_for(&mut cluster, 8 * SECOND, "node 1 after heal", holds(Check::Received(1), Some(1)));
    await_for(&mut cluster, 8 * SECOND, "node 2 after heal", holds(Check::Received(1), Some(2)));
    wait(&mut cluster, SECOND / 2);
    assert_eq!(tags(&cluster, 1), ["during"]);
    assert_eq!(tags(&cluster, 2), ["during"]);
    no_violation(&cluster);
    cluster.into_record();
}

#[test]
fn crash_and_restart_over_msquic() {
    let mut cluster = RealCluster::new(RealOptions::new(3)).expect("cluster starts");
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));
    cluster.crash(2);
    cluster.broadcast(0, "missed", 32);
    await_for(&mut cluster, 5 * SECOND, "node 1", holds(Check::Received(1), Some(1)));
    cluster.restart(2);
    await_for(&mut cluster, 8 * SECOND, "node 2 after restart", holds(Check::Received(1), Some(2)));
    let (incarnation, addr_kept) = cluster.with_record(|r| (r.nodes[2].deliveries[0].incarnation, r.nodes[2].alive));
    assert_eq!((incarnation, addr_kept), (1, true), "the new incarnation delivered it");
    await_for(&mut cluster, 5 * SECOND, "membership again", holds(Check::Converged, None));
    no_violation(&cluster);
    cluster.into_record();
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn pinned(identity: &TlsIdentity, trusted: &BTreeSet<tandem::transport::PeerIdentity>) -> MsQuicTransport {
    let config = MsQuicConfig::default().with_identity(identity.clone()).with_trust(TrustPolicy::Pinned(trusted.clone()));
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
    tokio::time::sleep(SECOND / 2).await;
    assert!(n1.incoming.try_recv().is_err(), "nothing from the rogue");
    assert!(!n0.peers.borrow().contains_key(&NodeId(9)), "the rogue never joined");
    assert!(!n1.peers.borrow().contains_key(&NodeId(9)), "the rogue never joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_disconnected_and_the_node_keeps_serving() {
    let mut n0 = Node::start(NodeConfig::new(NodeId(0), localhost()), MsQuicTransport::new(MsQuicConfig::default()).unwrap())
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
    let node = Node::start(NodeConfig::new(NodeId(0), localhost()), MsQuicTransport::new(MsQuicConfig::default()).unwrap())
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
