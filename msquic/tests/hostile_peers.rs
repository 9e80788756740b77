//! Hostile peers against reference pub/sub nodes on MsQuic, played by an
//! independent QUIC stack (quinn): impersonation, forged and relayed gossip,
//! fake members, partial frames on many connections and a connection flood.
//! Each test asserts that nothing forged is delivered or believed, that the
//! violation closes with its documented code, and that honest broadcasts
//! keep arriving within a second.

#[path = "common/attacker.rs"]
mod attacker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use attacker::{Attacker, Hostile};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use tandem_msquic::{close, Limits, MsQuicConfig, MsQuicTransport, TlsIdentity};
use tandem_pubsub::node::roster::{Credentials, Refusal, Roster};
use tandem_pubsub::node::wire::{Data, MemberRecord, SignedRecord, Wire};
use tandem_pubsub::node::{MessageId, Node, NodeConfig, NodeId};
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(10);
const SECOND: Duration = Duration::from_secs(1);

/// Honest nodes 0..n on loopback, and the credentials of roster member
/// `n` (the attacker's own, legitimate seat) when there is a roster.
struct Cluster {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    /// The attacker's TLS identity and, with a roster, its member key.
    attacker: (TlsIdentity, Option<Credentials>),
}

fn key(i: u32) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

async fn cluster(n: u32, with_roster: bool, limits: Limits) -> Cluster {
    let identities: Vec<TlsIdentity> = (0..=n).map(|_| TlsIdentity::generate().unwrap()).collect();
    let roster = with_roster.then(|| {
        let mut roster = Roster::default();
        for i in 0..=n {
            roster.insert(NodeId(i), identities[i as usize].id(), key(i).verifying_key());
        }
        Arc::new(roster)
    });
    let credentials = |i: u32| roster.clone().map(|r| Credentials::new(key(i), r));
    let mut nodes: Vec<Node> = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..n {
        let config = MsQuicConfig::default().with_identity(identities[i as usize].clone()).with_limits(limits.clone());
        let transport = MsQuicTransport::new(config).unwrap();
        let node_config = NodeConfig {
            seeds: addrs.first().copied().into_iter().collect(),
            credentials: credentials(i),
            ..NodeConfig::new(NodeId(i), "127.0.0.1:0".parse().unwrap())
        };
        let node = Node::start(node_config, transport).await.unwrap();
        addrs.push(node.handle.addr());
        nodes.push(node);
    }
    for node in &mut nodes {
        timeout(PATIENCE, node.peers.wait_for(|peers| peers.len() == n as usize - 1)).await.expect("joined").unwrap();
    }
    // Every link is up once a broadcast has gone around.
    nodes[0].broadcast.send("ready", Bytes::new()).await.unwrap();
    for node in &mut nodes[1..] {
        timeout(PATIENCE, node.incoming.recv()).await.expect("the first broadcast arrives").unwrap();
    }
    Cluster { nodes, addrs, attacker: (identities[n as usize].clone(), credentials(n)) }
}

impl Cluster {
    /// Node 0 broadcasts `tag`; every other node delivers it within a second.
    async fn broadcast_arrives(&mut self, tag: &str) {
        self.nodes[0].broadcast.send(tag, Bytes::new()).await.unwrap();
        for node in &mut self.nodes[1..] {
            let started = std::time::Instant::now();
            let delivery = timeout(PATIENCE, node.incoming.recv()).await.expect("an honest broadcast never arrived");
            assert!(started.elapsed() < SECOND, "an honest broadcast waited {:?}", started.elapsed());
            let delivery = delivery.unwrap();
            assert_eq!((delivery.tag.as_str(), delivery.id.origin), (tag, NodeId(0)), "delivered {delivery:?}");
        }
    }

    /// What node `i` believes of node `of`.
    fn view(&self, i: usize, of: u32) -> Option<(u64, SocketAddr)> {
        self.nodes[i].peers.borrow().get(&NodeId(of)).map(|p| (p.incarnation, p.addr))
    }
}

/// Connects to `addr` and exchanges Hellos, sending `hello`.
async fn join(attacker: &Attacker, addr: SocketAddr, hello: SignedRecord) -> Hostile {
    let mut hostile = attacker.connect(addr).await.expect("connect");
    hostile.send_frame(&Wire::Hello(hello).encode()).await.unwrap();
    hostile
}

fn record(id: u32, incarnation: u64) -> MemberRecord {
    MemberRecord { id: NodeId(id), incarnation, version: 0, addr: "127.0.0.1:9".parse().unwrap() }
}

fn code(refusal: Refusal) -> Option<u64> {
    Some(refusal.close_code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_is_refused_and_nothing_it_sends_is_delivered() {
    let mut cluster = cluster(2, true, Limits::default()).await;
    let before = cluster.view(1, 0);
    let (identity, credentials) = cluster.attacker.clone();
    let credentials = credentials.unwrap();
    // A roster member (the attacker's own certificate) claims node 0, with a
    // newer incarnation, signed by itself and then unsigned.
    let attacker = Attacker::new(Some(&identity));
    for hello in [credentials.sign(record(0, 99)), SignedRecord::unsigned(record(0, 99))] {
        let mut hostile = join(&attacker, cluster.addrs[1], hello).await;
        let data = Data {
            id: MessageId { origin: NodeId(0), incarnation: 99, seq: 0 },
            to: None,
            tag: "forged".into(),
            payload: Bytes::new(),
        };
        let _ = hostile.send_frame(&Wire::Data(data).encode()).await;
        assert_eq!(
            hostile.closed_code(PATIENCE).await,
            code(Refusal::Impersonation { claimed: NodeId(0), proven: None })
        );
    }
    // A certificate that is on no roster fares the same.
    let stranger = TlsIdentity::generate().unwrap();
    let hostile = join(&Attacker::new(Some(&stranger)), cluster.addrs[1], credentials.sign(record(2, 0))).await;
    assert_eq!(hostile.closed_code(PATIENCE).await, code(Refusal::Impersonation { claimed: NodeId(2), proven: None }));
    assert_eq!(cluster.view(1, 0), before, "the impersonator changed node 1's view of node 0");
    assert!(cluster.nodes[1].incoming.try_recv().is_err(), "something forged was delivered");
    cluster.broadcast_arrives("honest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_gossip_is_refused_and_relayed_records_stay_verifiable() {
    let mut cluster = cluster(2, true, Limits::default()).await;
    let before = cluster.view(1, 0);
    let (identity, credentials) = cluster.attacker.clone();
    let credentials = credentials.unwrap();
    let attacker = Attacker::new(Some(&identity));
    let me = credentials.sign(record(2, 0));

    // The attacker, a legitimate member, relays node 0's genuine record
    // (node 0's own Hello to it) to node 1: believed, nothing is refused.
    let mut from_zero = join(&attacker, cluster.addrs[0], me.clone()).await;
    let genuine = match Wire::decode(&from_zero.recv_frame(PATIENCE).await.expect("node 0 answers")).unwrap() {
        Wire::Hello(signed) => signed,
        other => panic!("expected node 0's hello, got {other:?}"),
    };
    let mut hostile = join(&attacker, cluster.addrs[1], me.clone()).await;
    hostile.send_frame(&Wire::Gossip(vec![genuine.clone()]).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(Duration::from_millis(500)).await, None, "a genuine relayed record was refused");

    // The same record, altered to move node 0 away: refused, not believed.
    let mut moved = genuine;
    moved.record.incarnation += 1;
    moved.record.addr = "127.0.0.1:9".parse().unwrap();
    hostile.send_frame(&Wire::Gossip(vec![moved]).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(PATIENCE).await, code(Refusal::ForgedRecord(NodeId(0))));

    // Node 0's record signed with the attacker's own key: refused too.
    let mut hostile = join(&attacker, cluster.addrs[1], me.clone()).await;
    hostile.send_frame(&Wire::Gossip(vec![credentials.sign(record(0, 50))]).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(PATIENCE).await, code(Refusal::ForgedRecord(NodeId(0))));

    // 10,000 members that are on no roster: refused, none believed.
    let mut hostile = join(&attacker, cluster.addrs[1], me).await;
    let fakes = (0..10_000).map(|i| credentials.sign(record(1000 + i, 0))).collect();
    hostile.send_frame(&Wire::Gossip(fakes).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(PATIENCE).await, code(Refusal::UnknownMember(NodeId(1000))));

    assert_eq!(cluster.view(1, 0), before, "forged gossip changed node 1's view of node 0");
    assert!(cluster.nodes[1].peers.borrow().len() <= 2, "{:?}", cluster.nodes[1].peers.borrow());
    cluster.broadcast_arrives("honest").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_frames_on_many_connections_time_out_and_honest_traffic_flows() {
    let limits = Limits { frame_deadline: Duration::from_secs(2), ..Limits::default() };
    let mut cluster = cluster(2, false, limits).await;
    let attacker = Attacker::new(Some(&cluster.attacker.0));
    // 20 connections each announce a 16 MiB frame and send 2 MiB of it.
    let mut partial = (16u32 * 1024 * 1024 - 1).to_be_bytes().to_vec();
    partial.resize(4 + 2 * 1024 * 1024, 0x5a);
    let partial = Arc::new(partial);
    let mut hostiles = Vec::new();
    for i in 0..20 {
        let mut hostile = join(&attacker, cluster.addrs[1], SignedRecord::unsigned(record(500 + i, 0))).await;
        let partial = partial.clone();
        // Flow control may hold the writes back; they must not hold the test.
        let writer = tokio::spawn(async move {
            let _ = hostile.send_raw(&partial).await;
            hostile
        });
        hostiles.push(writer);
    }
    cluster.broadcast_arrives("during").await;
    for writer in hostiles {
        let hostile = timeout(PATIENCE, writer).await.expect("write finished or was cut off").unwrap();
        assert_eq!(hostile.closed_code(PATIENCE).await, Some(close::FRAME_DEADLINE));
    }
    cluster.broadcast_arrives("after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_refused_beyond_the_limits_and_honest_traffic_flows() {
    let limits = Limits { max_connections: 16, max_handshakes: 4, ..Limits::default() };
    let mut cluster = cluster(2, false, limits).await;
    let attacker = Arc::new(Attacker::new(Some(&cluster.attacker.0)));
    let addr = cluster.addrs[1];
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let attacker = attacker.clone();
        attempts.spawn(async move { timeout(PATIENCE, attacker.handshake(addr)).await });
    }
    let mut admitted = Vec::new();
    while let Some(attempt) = attempts.join_next().await {
        if let Ok(Ok(connection)) = attempt.expect("no panic") {
            admitted.push(connection);
        }
    }
    eprintln!("{} flood connections admitted", admitted.len());
    cluster.broadcast_arrives("during").await;
    // Held open, at most the connection limit got in (two are the honest node's).
    let mut open = 0;
    for connection in &admitted {
        if timeout(Duration::from_millis(50), connection.closed()).await.is_err() {
            open += 1;
        }
    }
    assert!(open <= 16, "{open} flood connections stayed open");
    drop(admitted);
    cluster.broadcast_arrives("after").await;
}
