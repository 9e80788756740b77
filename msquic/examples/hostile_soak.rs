//! Soak: what hostile peers make reference nodes hold, in heap and RSS.
//!
//! 1. 50 quinn connections each announce a maximum-size (16 MiB) frame and
//!    send all of it but one byte, five rounds in a row: the node grows by
//!    less than 64 MiB, every connection is closed at the frame deadline,
//!    what Rust code allocated is all given back, and what MsQuic keeps
//!    pooled (the rest of glibc's `mallinfo2` heap in use) stays under its
//!    pools' caps: 256 receive buffers of 64 KiB a core, and 16 MiB more.
//! 2. One gossip frame names 10,000 fake members (no roster): fewer than 10
//!    dials a second, less than 16 MiB growth.
//! 3. Eight honest nodes broadcast 10,000 messages in all while the hostile
//!    connections of 1 hold node 0: nothing lost or duplicated; peak RSS.
//!
//! `cargo run --release -p tandem-msquic --example hostile_soak`; exits 1 if
//! a bound is broken. The attacker runs in a child process, so the RSS
//! measured is the nodes' alone.

#[path = "../tests/common/attacker.rs"]
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

/// The system allocator, counting the bytes Rust code holds.
struct Counted;

static RUST_HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        RUST_HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        RUST_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        RUST_HEAP.fetch_add(new_size, Ordering::Relaxed);
        RUST_HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counted = Counted;

/// Bytes Rust code holds, in MiB.
fn rust_heap() -> f64 {
    RUST_HEAP.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

/// glibc's `struct mallinfo2`.
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

unsafe extern "C" {
    fn mallinfo2() -> MallInfo2;
    fn malloc_trim(pad: usize) -> i32;
}

/// Heap in use, in MiB: every live `malloc` of the process (Rust's and
/// MsQuic's, all arenas and mmapped chunks), whatever RSS the allocator
/// keeps around it.
fn heap() -> f64 {
    // SAFETY: mallinfo2 only reads glibc's counters (glibc >= 2.33).
    let info = unsafe { mallinfo2() };
    (info.uordblks + info.hblkhd) as f64 / (1024.0 * 1024.0)
}

/// RSS after asking glibc to give free memory back.
fn rss_trimmed() -> f64 {
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
    let began = Instant::now();
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
    let drops = udp_receive_drops();
    let (mut deadline, mut reset, mut other) = (0, 0, Vec::new());
    for writer in writers {
        let hostile = writer.await.unwrap();
        match hostile.closed_code(Duration::from_secs(15)).await {
            Some(close::FRAME_DEADLINE) => deadline += 1,
            // The node closed the connection, but its CONNECTION_CLOSE was
            // lost; later packets found no connection and got a reset.
            None if matches!(hostile.close_reason(), Some(quinn::ConnectionError::Reset)) => {
                eprintln!("attacker: reset {:?} into the attack; {:?}", began.elapsed(), hostile.connection().stats());
                reset += 1
            }
            code => other.push((code, hostile.close_reason())),
        }
    }
    if reset > 0 {
        eprintln!(
            "attacker: {reset} connection(s) reset after losing the node's close; {} UDP datagrams dropped on receive meanwhile",
            udp_receive_drops() - drops
        );
    }
    assert!(other.is_empty() && reset <= 5, "every partial frame is closed at its deadline: {deadline} with code 4, {reset} reset, others {other:?}");
}

/// Datagrams the kernel dropped for a full socket receive buffer, host-wide.
fn udp_receive_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap_or_default(), udp.next().unwrap_or_default());
    names.split_whitespace().zip(values.split_whitespace()).find(|(n, _)| *n == "RcvbufErrors").and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

/// What one round of attack 1 made the node hold, in MiB.
struct Round {
    peak_heap: f64,
    heap: f64,
    peak_rust: f64,
    rust: f64,
    peak_rss: f64,
    rss: f64,
    trimmed_rss: f64,
}

/// One round of attack 1 from a child process, whose buffers are then not
/// counted as the node's.
async fn partial_frames(addr: std::net::SocketAddr, deadline: Duration) -> Round {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["attack", &addr.to_string()])
        .spawn()
        .unwrap();
    let (mut peak_heap, mut peak_rust, mut peak_rss): (f64, f64, f64) = (0.0, 0.0, 0.0);
    let began = Instant::now();
    while began.elapsed() < deadline + Duration::from_secs(3) {
        peak_heap = peak_heap.max(heap());
        peak_rust = peak_rust.max(rust_heap());
        peak_rss = peak_rss.max(rss());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the attacker failed: {status}");
    // Connections closing finish their linger.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Round { peak_heap, heap: heap(), peak_rust, rust: rust_heap(), peak_rss, rss: rss(), trimmed_rss: rss_trimmed() }
}

/// Rounds of attack 1.
const ROUNDS: usize = 5;

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

    // 1. Partial maximum-size frames, round after round: each round's growth
    // is bounded, what Rust code holds returns to where it was once the
    // connections close, and what MsQuic pools levels off.
    let (base_heap, base_rust, base_rss) = (heap(), rust_heap(), rss());
    println!("partial frames: node heap {base_heap:.1} MiB (Rust {base_rust:.1}), RSS {base_rss:.1} MiB before");
    let mut start_rss = base_rss;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let pooled = cores * 256.0 * 64.0 / 1024.0 + 16.0;
    for round in 1..=ROUNDS {
        let r = partial_frames(addr, deadline).await;
        println!(
            "  round {round}: heap peak +{:.1} MiB (Rust +{:.1}), after the closes +{:.1} MiB (Rust +{:.1}); RSS peak +{:.1} MiB over the round's start, after +{:.1}, trimmed +{:.1} MiB",
            r.peak_heap - base_heap,
            r.peak_rust - base_rust,
            r.heap - base_heap,
            r.rust - base_rust,
            r.peak_rss - start_rss,
            r.rss - base_rss,
            r.trimmed_rss - base_rss,
        );
        if r.peak_rss - start_rss >= 64.0 {
            println!("  BOUND BROKEN: a round grows the node by less than 64 MiB");
            failed = true;
        }
        if r.rust - base_rust >= 1.0 {
            println!("  BOUND BROKEN: Rust code gives back what the connections held");
            failed = true;
        }
        // What stays is MsQuic's: its pools keep up to 256 freed buffers
        // each, per partition (one a core); 64 KiB receive buffers most.
        if r.heap - base_heap >= pooled {
            println!("  BOUND BROKEN: the heap kept after a round stays under MsQuic's pool caps (+{pooled:.0} MiB)");
            failed = true;
        }
        start_rss = r.trimmed_rss;
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
