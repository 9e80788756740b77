//! Soak: what hostile peers make reference nodes hold, in RSS.
//!
//! 1. 50 quinn connections each announce a maximum-size (16 MiB) frame and
//!    send all of it but one byte, three rounds in a row: the node grows by
//!    less than 64 MiB, every connection is closed at the frame deadline,
//!    and later rounds reuse what earlier ones freed.
//! 2. One gossip frame names 10,000 fake members (no roster): fewer than 10
//!    dials a second, less than 16 MiB growth.
//! 3. Eight honest nodes broadcast 10,000 messages in all while the hostile
//!    connections of 1 hold node 0: nothing lost or duplicated; peak RSS.
//!
//! `cargo run --release -p tandem-msquic --example hostile_soak`; exits 1 if
//! a bound is broken. The attacker runs in a child process, so the RSS
//! measured is the nodes' alone.

#[path = "../tests/common/attacker.rs"]
#[allow(dead_code)]
mod attacker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attacker::Attacker;
use bytes::Bytes;
use tandem::transport::Transport;
use tandem_msquic::{close, Limits, MsQuicConfig, MsQuicTransport, TlsIdentity};
use tandem_pubsub::node::wire::{MemberRecord, SignedRecord, Wire};
use tandem_pubsub::node::{Node, NodeConfig, NodeId};

fn rss() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// RSS after asking glibc to give free memory back: what is still in use,
/// as opposed to what the allocator keeps.
fn rss_trimmed() -> f64 {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim only releases free memory.
    unsafe { malloc_trim(0) };
    rss()
}

/// Counts the node's dials.
struct Counting(MsQuicTransport, Arc<AtomicUsize>);

impl Transport for Counting {
    type Listener = <MsQuicTransport as Transport>::Listener;
    type Connection = <MsQuicTransport as Transport>::Connection;
    fn listen(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = Result<Self::Listener, tandem::transport::TransportError>> + Send {
        self.0.listen(addr)
    }
    fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = Result<Self::Connection, tandem::transport::TransportError>> + Send {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.connect(addr)
    }
}

/// The child: 50 connections, each with all but one byte of a 16 MiB frame.
async fn attack(addr: std::net::SocketAddr) {
    let attacker = Attacker::new(Some(&TlsIdentity::generate().unwrap()));
    let mut partial = (16u32 * 1024 * 1024).to_be_bytes().to_vec();
    partial.resize(4 + 16 * 1024 * 1024 - 1, 0x5a);
    let partial = Bytes::from(partial);
    let mut writers = Vec::new();
    for i in 0..50 {
        let mut hostile = attacker.connect(addr).await.unwrap();
        let hello = SignedRecord::unsigned(MemberRecord { id: NodeId(100 + i), incarnation: 0, version: 0, addr: "127.0.0.1:9".parse().unwrap() });
        hostile.send_frame(&Wire::Hello(hello).encode()).await.unwrap();
        let partial = partial.clone();
        writers.push(tokio::spawn(async move {
            let _ = hostile.send_raw(&partial).await;
            hostile
        }));
    }
    let mut codes = std::collections::BTreeMap::new();
    for writer in writers {
        let hostile = writer.await.unwrap();
        *codes.entry(hostile.closed_code(Duration::from_secs(15)).await).or_insert(0) += 1;
    }
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), [(Some(close::FRAME_DEADLINE), 50)], "every partial frame is closed at its deadline");
}

/// One round of attack 1 from a child process, whose buffers are then not
/// counted as the node's: the node's peak RSS during it, its RSS after, and
/// its RSS after a `malloc_trim`.
async fn partial_frames(addr: std::net::SocketAddr, deadline: Duration) -> (f64, f64, f64) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["attack", &addr.to_string()])
        .spawn()
        .unwrap();
    let mut peak: f64 = 0.0;
    let began = Instant::now();
    while began.elapsed() < deadline + Duration::from_secs(3) {
        peak = peak.max(rss());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the attacker failed: {status}");
    // Connections closing finish their linger.
    tokio::time::sleep(Duration::from_secs(2)).await;
    (peak, rss(), rss_trimmed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("attack") {
        return attack(args[2].parse().unwrap()).await;
    }
    let deadline = Duration::from_secs(4);
    let limits = Limits { frame_deadline: deadline, ..Limits::default() };
    let dials = Arc::new(AtomicUsize::new(0));
    let transport = MsQuicTransport::new(MsQuicConfig::default().with_limits(limits)).unwrap();
    let node = Node::start(NodeConfig::new(NodeId(0), "127.0.0.1:0".parse().unwrap()), Counting(transport, dials.clone()))
        .await
        .unwrap();
    let addr = node.handle.addr();
    let attacker = Attacker::new(Some(&TlsIdentity::generate().unwrap()));
    let mut failed = false;

    // 1. Partial maximum-size frames, three rounds: the first round's
    // growth is bounded, and later rounds reuse what it freed.
    let base = rss();
    let mut afters = Vec::new();
    for round in 1..=3 {
        let (peak, after, trimmed) = partial_frames(addr, deadline).await;
        println!(
            "partial frames, round {round}: 50 connections, node RSS {base:.1} MiB -> peak {peak:.1} MiB (+{:.1}) -> {after:.1} MiB after the deadline closed them, {trimmed:.1} MiB once trimmed",
            peak - base
        );
        if round == 1 && peak - base >= 64.0 {
            println!("  BOUND BROKEN: growth must stay under 64 MiB");
            failed = true;
        }
        afters.push(trimmed);
    }
    if afters[2] - afters[1] >= 8.0 {
        println!("  BOUND BROKEN: memory in use accumulates across rounds");
        failed = true;
    }

    // 2. 10,000 fake members.
    let base = rss();
    let mut hostile = attacker.connect(addr).await.unwrap();
    let hello = SignedRecord::unsigned(MemberRecord { id: NodeId(99), incarnation: 0, version: 0, addr: "127.0.0.1:9".parse().unwrap() });
    hostile.send_frame(&Wire::Hello(hello).encode()).await.unwrap();
    let fakes = (0..10_000u32)
        .map(|i| {
            let addr = format!("127.0.{}.{}:9", 1 + i / 250, 1 + i % 250).parse().unwrap();
            SignedRecord::unsigned(MemberRecord { id: NodeId(1000 + i), incarnation: 0, version: 0, addr })
        })
        .collect();
    hostile.send_frame(&Wire::Gossip(fakes).encode()).await.unwrap();
    let before = dials.load(Ordering::SeqCst);
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let rate = (dials.load(Ordering::SeqCst) - before) as f64 / window.as_secs_f64();
    let growth = rss() - base;
    let members = node.peers.borrow().len();
    println!("fake members: 10,000 gossiped, {members} kept, {rate:.1} dials/s, RSS +{growth:.1} MiB");
    if rate >= 10.0 || growth >= 16.0 {
        println!("  BOUND BROKEN: under 10 dials/s and 16 MiB");
        failed = true;
    }

    // 3. Eight honest nodes, 10,000 broadcasts, the hostile peer on node 0.
    failed |= !broadcasts(deadline).await;
    std::process::exit(i32::from(failed));
}

/// Part 3; whether every broadcast arrived exactly once.
async fn broadcasts(deadline: Duration) -> bool {
    const NODES: u32 = 8;
    const EACH: usize = 10_000 / NODES as usize;
    let base = rss();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let limits = Limits { frame_deadline: deadline, ..Limits::default() };
        let transport = MsQuicTransport::new(MsQuicConfig::default().with_limits(limits)).unwrap();
        let config = NodeConfig {
            seeds: nodes.first().map(|n| n.handle.addr()).into_iter().collect(),
            ..NodeConfig::new(NodeId(i), "127.0.0.1:0".parse().unwrap())
        };
        nodes.push(Node::start(config, transport).await.unwrap());
    }
    for node in &mut nodes {
        tokio::time::timeout(Duration::from_secs(30), node.peers.wait_for(|p| p.len() == NODES as usize - 1))
            .await
            .expect("the cluster forms")
            .unwrap();
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["attack", &nodes[0].handle.addr().to_string()])
        .spawn()
        .unwrap();
    let began = Instant::now();
    let mut receivers = Vec::new();
    for node in &mut nodes {
        let broadcast = node.broadcast.clone();
        // Each node's broadcasts stay under its outbox capacity (4,096 a peer).
        tokio::spawn(async move {
            for k in 0..EACH {
                broadcast.send(format!("m{k}"), Bytes::from_static(&[0x42; 64])).await.unwrap();
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut incoming = std::mem::replace(&mut node.incoming, tokio::sync::mpsc::unbounded_channel().1);
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            let mut duplicates = 0;
            let expected = EACH * (NODES as usize - 1);
            while seen.len() < expected {
                match tokio::time::timeout(Duration::from_secs(60), incoming.recv()).await {
                    Ok(Some(delivery)) => duplicates += usize::from(!seen.insert(delivery.id)),
                    _ => break,
                }
            }
            let _ = tx.send((seen.len(), duplicates));
        });
        receivers.push(rx);
    }
    let mut peak: f64 = 0.0;
    let mut results = Vec::new();
    for mut rx in receivers {
        loop {
            peak = peak.max(rss());
            match tokio::time::timeout(Duration::from_millis(100), &mut rx).await {
                Ok(result) => break results.push(result.unwrap()),
                Err(_) => continue,
            }
        }
    }
    let took = began.elapsed();
    let status = child.wait().unwrap();
    let expected = EACH * (NODES as usize - 1);
    let complete = results.iter().all(|&(got, duplicates)| got == expected && duplicates == 0);
    println!(
        "broadcasts: 8 nodes x {EACH} = 10,000 broadcasts, {expected} deliveries a node, hostile peer on node 0 ({status}): {} in {took:.1?}, RSS {base:.1} MiB -> peak {peak:.1} MiB (+{:.1})",
        if complete { "none lost or duplicated".to_string() } else { format!("INCOMPLETE {results:?}") },
        peak - base
    );
    complete
}
