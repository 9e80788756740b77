//! Soak: what hostile peers make a reference node hold, in RSS.
//!
//! 1. 50 quinn connections each announce a maximum-size (16 MiB) frame and
//!    send as much of it as the node takes in; the node must grow by less
//!    than 64 MiB and give it back once the frame deadline closes them.
//! 2. One gossip frame names 10,000 fake members (no roster): fewer than 10
//!    dials a second, less than 16 MiB growth.
//!
//! `cargo run --release -p tandem-msquic --example hostile_soak`; exits 1 if
//! a bound is broken. The attacker runs in this process too, so the growth
//! measured includes quinn's send buffers: an upper bound on the node's.

#[path = "../tests/common/attacker.rs"]
#[allow(dead_code)]
mod attacker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attacker::Attacker;
use bytes::Bytes;
use tandem::transport::Transport;
use tandem_msquic::{Limits, MsQuicConfig, MsQuicTransport, TlsIdentity};
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
    for writer in writers {
        let hostile = writer.await.unwrap();
        let _ = hostile.closed_code(Duration::from_secs(15)).await;
    }
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

    // 1. Partial maximum-size frames, sent by a child process so that its
    // buffers are not counted as the node's.
    let base = rss();
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
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss();
    let growth = peak - base;
    println!("partial frames: 50 connections, node RSS {base:.1} MiB -> peak {peak:.1} MiB (+{growth:.1}) -> {after:.1} MiB after the deadline (attacker {status})");
    if growth >= 64.0 || after - base >= growth / 2.0 + 4.0 {
        println!("  BOUND BROKEN: growth must stay under 64 MiB and be reclaimed");
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
    std::process::exit(i32::from(failed));
}
