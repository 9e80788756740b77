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
use ed25519_dalek::{Signer, SigningKey};
use tandem::system::NodeSecret;
use tandem_msquic::{close, node_secret, verifying_key, Limits, MsQuicConfig, MsQuicTransport, TlsIdentity};
use tandem_pubsub::cluster_credentials;
use tandem_pubsub::node::roster::{Credentials, Refusal};
use tandem_pubsub::node::wire::{Data, MemberRecord, SignedRecord, Wire};
use tandem_pubsub::node::{MessageId, Node, NodeConfig, NodeId};
use tokio::net::UdpSocket;
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

async fn cluster(n: u32, with_roster: bool, limits: Limits) -> Cluster {
    cluster_with(n, with_roster, limits, |_| {}).await
}

/// As [`cluster`], with every node's configuration changed by `tweak`.
async fn cluster_with(n: u32, with_roster: bool, limits: Limits, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
    let identities: Vec<TlsIdentity> = (0..=n).map(|_| TlsIdentity::generate().unwrap()).collect();
    // As `RealCluster` provisions them: every node signs with a secret bound
    // to its own TLS key, and the others get its verifying key only.
    let ids: Vec<_> = identities.iter().map(|i| Some(i.id())).collect();
    let secrets: Vec<NodeSecret> = identities.iter().map(node_secret).collect();
    let public: Vec<_> = secrets.iter().map(|s| Some(verifying_key(s))).collect();
    let credentials = |i: u32| {
        with_roster.then(|| cluster_credentials(&ids, &public, Some(&secrets[i as usize]), i).expect("a full roster"))
    };
    let mut nodes: Vec<Node> = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..n {
        let config = MsQuicConfig::default().with_identity(identities[i as usize].clone()).with_limits(limits.clone());
        let transport = MsQuicTransport::new(config).unwrap();
        let mut node_config = NodeConfig {
            seeds: addrs.first().copied().into_iter().collect(),
            credentials: credentials(i),
            ..NodeConfig::new(NodeId(i), "127.0.0.1:0".parse().unwrap())
        };
        tweak(&mut node_config);
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
    assert_eq!(
        hostile.closed_code(PATIENCE).await,
        code(Refusal::ForgedRecord(NodeId(0))),
        "closed: {:?}",
        hostile.close_reason()
    );

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

/// This process's resident set, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

const MIB: f64 = 1024.0 * 1024.0;

/// `count` Data frames (broadcasts of `origin`, from `seq` on, empty tag
/// and payload), framed and concatenated.
fn data_frames(origin: u32, seq: u64, count: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in seq..seq + count {
        let data = Data {
            id: MessageId { origin: NodeId(origin), incarnation: 0, seq },
            to: None,
            tag: String::new(),
            payload: Bytes::new(),
        };
        let frame = Wire::Data(data).encode();
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_reads_is_closed_as_overloaded_and_its_queue_released() {
    let mut cluster = cluster(2, false, Limits::default()).await;
    // Half a second of the nodes' own traffic first, so the baseline holds it.
    cluster.broadcast_arrives("warm").await;
    let before = rss();
    // Grants 1 KiB of flow control and never reads: every Ack node 1 owes
    // it for the Data frames below stays queued somewhere.
    let attacker = Attacker::with_transport(Some(&cluster.attacker.0), |transport| {
        transport.stream_receive_window(1024u32.into());
        transport.receive_window(1024u32.into());
        // What quinn buffers of the attacker's own writes is not the node's.
        transport.send_window(256 * 1024);
    });
    let mut hostile = join(&attacker, cluster.addrs[1], SignedRecord::unsigned(record(2, 0))).await;
    let batch = 10_000;
    let mut sent = 0u64;
    let mut peak = before;
    // Up to 1.5 million 14-byte frames, as the finding sent.
    while sent < 1_500_000 && hostile.close_reason().is_none() {
        let frames = data_frames(2, sent, batch);
        if timeout(PATIENCE, hostile.send_raw(&frames)).await.map_or(true, |r| r.is_err()) {
            break;
        }
        sent += batch;
        peak = peak.max(rss());
    }
    let code = hostile.closed_code(PATIENCE).await;
    peak = peak.max(rss());
    drop(hostile);
    // Node 1 delivered what it read; drain it so the delivery channel is not counted.
    let mut delivered = 0u64;
    while let Ok(delivery) = cluster.nodes[1].incoming.try_recv() {
        assert_eq!(delivery.id.origin, NodeId(2));
        delivered += 1;
    }
    let after = rss();
    eprintln!(
        "never-reading member: {sent} frames written, {delivered} delivered, closed with {code:?}; \
         RSS +{:.1} MiB at peak, +{:.1} MiB after",
        (peak - before) as f64 / MIB,
        after.saturating_sub(before) as f64 / MIB
    );
    assert_eq!(code, code_of(&Refusal::Overloaded(String::new())), "closed otherwise");
    assert!(sent < 1_500_000, "the member was never closed");
    assert!(((peak - before) as f64) < 64.0 * MIB, "grew {:.1} MiB", (peak - before) as f64 / MIB);
    cluster.broadcast_arrives("after").await;
}

fn code_of(refusal: &Refusal) -> Option<u64> {
    Some(refusal.close_code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_acknowledges_degrades_only_its_own_delivery() {
    let capacity = 64;
    let mut cluster = cluster_with(2, false, Limits::default(), |config| config.outbox_capacity = capacity).await;
    // A member that joins node 0 at an address where nobody listens, then
    // leaves: node 0 keeps it, and its outbox fills, unacknowledged.
    let attacker = Attacker::new(Some(&cluster.attacker.0));
    let hostile = join(&attacker, cluster.addrs[0], SignedRecord::unsigned(record(2, 0))).await;
    timeout(PATIENCE, cluster.nodes[0].peers.wait_for(|peers| peers.contains_key(&NodeId(2))))
        .await
        .expect("node 0 learns the member")
        .unwrap();
    drop(hostile);
    let count = 3 * capacity;
    let mut dropped = 0;
    // Each broadcast is delivered before the next, so the healthy member,
    // which acknowledges, never has a full outbox.
    for i in 0..count {
        let sent = cluster.nodes[0].broadcast.send(format!("m{i}"), Bytes::new()).await.expect("accepted");
        assert!(sent.recipients.contains(&NodeId(1)), "the healthy member was left out: {sent:?}");
        if sent.dropped == [NodeId(2)] {
            dropped += 1;
        }
        let delivery = timeout(SECOND, cluster.nodes[1].incoming.recv()).await.expect("delivered in time").unwrap();
        assert_eq!(delivery.tag, format!("m{i}"));
    }
    eprintln!("silent member: {dropped} of {count} broadcasts left it out; node 1 delivered all");
    assert_eq!(dropped, count - capacity, "left out once its outbox was full");
    cluster.broadcast_arrives("after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_signatures_are_refused_before_they_are_stored_or_relayed() {
    let mut cluster = cluster(2, false, Limits::default()).await;
    let attacker = Attacker::new(Some(&cluster.attacker.0));
    // An 8 MiB signature on a new member's record, in gossip and in a hello.
    let mut huge = SignedRecord::unsigned(record(3, 0));
    huge.signature = vec![7; 8 * 1024 * 1024];
    let mut hostile = join(&attacker, cluster.addrs[1], SignedRecord::unsigned(record(2, 0))).await;
    hostile.send_frame(&Wire::Gossip(vec![huge.clone()]).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(PATIENCE).await, code_of(&Refusal::Protocol(String::new())));
    let hostile = join(&attacker, cluster.addrs[1], huge.clone()).await;
    assert_eq!(hostile.closed_code(PATIENCE).await, code_of(&Refusal::Protocol(String::new())));
    // A signature of any length but Ed25519's is refused too.
    let mut odd = SignedRecord::unsigned(record(4, 0));
    odd.signature = vec![7; 65];
    let mut hostile = join(&attacker, cluster.addrs[1], SignedRecord::unsigned(record(2, 0))).await;
    hostile.send_frame(&Wire::Gossip(vec![odd]).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(PATIENCE).await, code_of(&Refusal::Protocol(String::new())));
    // 16 MiB still fits a frame (the limit is 16 MiB + 64 KiB): the node refuses it.
    huge.signature = vec![7; 16 * 1024 * 1024];
    let mut hostile = join(&attacker, cluster.addrs[1], SignedRecord::unsigned(record(2, 0))).await;
    let _ = hostile.send_frame(&Wire::Gossip(vec![huge]).encode()).await;
    assert_eq!(hostile.closed_code(PATIENCE).await, code_of(&Refusal::Protocol(String::new())));
    for node in 0..2 {
        let view = cluster.nodes[node].peers.borrow().clone();
        assert!(!view.contains_key(&NodeId(3)) && !view.contains_key(&NodeId(4)), "stored: {view:?}");
    }
    cluster.broadcast_arrives("after").await;
}

/// The record key `cluster_credentials` gave node `node` before issue 31:
/// derived from its index, so any member could compute it.
fn legacy_key(node: u32) -> SigningKey {
    let seed = |half: u8| {
        xxhash_rust::xxh3::xxh3_128(&[b"tandem-pubsub cluster key".as_slice(), &node.to_le_bytes(), &[half]].concat())
    };
    let bytes: Vec<u8> = [seed(0), seed(1)].iter().flat_map(|h| h.to_le_bytes()).collect();
    SigningKey::from_bytes(&bytes.try_into().expect("32 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_sign_another_members_record_nor_claim_an_unbeatable_incarnation() {
    let mut cluster = cluster(2, true, Limits::default()).await;
    let before = cluster.view(1, 0);
    let (identity, credentials) = cluster.attacker.clone();
    let credentials = credentials.unwrap();
    // Everything a member knows: the roster (identities, verifying keys) and its own key.
    let zero = *credentials.roster.entry(NodeId(0)).expect("node 0 is on the roster");
    assert_ne!(zero.key, legacy_key(0).verifying_key(), "node 0's key is still derivable from its index");
    let attacker = Attacker::new(Some(&identity));
    let me = credentials.sign(record(2, 0));

    // Node 0's record moved to a dead address, signed with the key the old
    // derivation gives node 0: with the largest incarnation, ignored (too
    // far ahead to be news); with the next one, refused as forged.
    let forge = |incarnation| {
        let poison = record(0, incarnation);
        SignedRecord { record: poison, signature: legacy_key(0).sign(&record_bytes(&poison)).to_bytes().to_vec() }
    };
    let next = before.expect("node 1 knows node 0").0 + 1;
    let mut hostile = join(&attacker, cluster.addrs[1], me.clone()).await;
    hostile.send_frame(&Wire::Gossip(vec![forge(u64::MAX)]).encode()).await.unwrap();
    hostile.send_frame(&Wire::Gossip(vec![forge(next)]).encode()).await.unwrap();
    assert_eq!(hostile.closed_code(PATIENCE).await, code(Refusal::ForgedRecord(NodeId(0))));
    assert_eq!(cluster.view(1, 0), before, "node 1 believed a forged record of node 0");

    // Its own record with an incarnation nothing could outbid: signed, but
    // ignored; a plausible next incarnation is still believed.
    let mut hostile = join(&attacker, cluster.addrs[1], me).await;
    hostile.send_frame(&Wire::Gossip(vec![credentials.sign(record(2, u64::MAX))]).encode()).await.unwrap();
    hostile.send_frame(&Wire::Gossip(vec![credentials.sign(record(2, 1))]).encode()).await.unwrap();
    timeout(PATIENCE, cluster.nodes[1].peers.wait_for(|p| p.get(&NodeId(2)).is_some_and(|m| m.incarnation == 1)))
        .await
        .expect("the next incarnation is believed")
        .unwrap();
    assert_eq!(hostile.closed_code(Duration::from_millis(200)).await, None);
    assert_eq!(cluster.view(1, 0), before);
    cluster.broadcast_arrives("honest").await;
}

/// What a member record signature covers (as `roster` signs it).
fn record_bytes(record: &MemberRecord) -> Vec<u8> {
    postcard::to_extend(record, b"tandem-pubsub member record v1".to_vec()).unwrap()
}

/// A UDP relay to `server` that forwards what one client sends and drops
/// every answer: each connection attempted through it stays a half-open
/// handshake on the server, all from the relay's one source address.
async fn black_hole(server: SocketAddr) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            if from != server {
                let _ = socket.send_to(&buf[..len], server).await;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_from_one_source_leaves_room_for_legitimate_peers() {
    // MsQuic keeps a half-open handshake for its handshake idle timeout.
    let limits = Limits {
        max_handshakes_per_source: std::env::var("FLOOD_PER_SOURCE")
            .map_or(Limits::default().max_handshakes_per_source, |v| v.parse().unwrap()),
        ..Limits::default()
    };
    let mut cluster = cluster(2, false, limits).await;
    let target = cluster.addrs[1];
    let relay = black_hole(target).await;
    let flood = Arc::new(Attacker::new(Some(&cluster.attacker.0)));
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (count, mut started) = tokio::sync::watch::channel(0u32);
    // A new half-open handshake every 5 ms, each given up after 3 s.
    let flooder = {
        let (flood, flooding) = (flood.clone(), flooding.clone());
        tokio::spawn(async move {
            let mut attempts = tokio::task::JoinSet::new();
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let flood = flood.clone();
                attempts.spawn(async move { flood.handshake(relay).await });
                count.send_modify(|n| *n += 1);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            attempts.abort_all();
            let started = *count.borrow();
            started
        })
    };
    // Enough to fill every handshake slot (32) twice over.
    timeout(PATIENCE, started.wait_for(|&n| n >= 64)).await.expect("the flood starts").unwrap();
    let legitimate = Attacker::new(Some(&cluster.attacker.0));
    let mut admitted = 0;
    for _ in 0..10 {
        if let Ok(hostile) = legitimate.connect(target).await {
            admitted += 1;
            hostile.connection().close(0u8.into(), b"done");
        }
    }
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let started = flooder.await.unwrap();
    eprintln!("handshake flood: {started} half-open handshakes started, legitimate client admitted {admitted} of 10");
    assert!(admitted >= 9, "a legitimate client was admitted {admitted} times of 10 under the flood");
    cluster.broadcast_arrives("after").await;
}
