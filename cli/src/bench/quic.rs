//! Item 3: tandem's real transport on loopback (two `MsQuicTransport`s
//! through the `Transport` trait, and reference nodes through the `Node`
//! API), against raw MsQuic streams and a raw UDP echo in the same run.

use std::net::{Ipv4Addr, SocketAddr};
// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
use tandem_msquic::{MsQuicConfig, MsQuicListener, MsQuicReceiver, MsQuicSender, MsQuicTransport};
use tandem_pubsub::node::{Node, NodeConfig, NodeId, SendError};
use tokio::sync::mpsc;

use super::raw_quic::RawQuic;
use super::report::{Figure, Target};
use super::udp::Echo;
use super::{fastest, Options};

/// How long membership may take to converge before a run gives up.
const CONVERGE: Duration = Duration::from_secs(30);
/// Fan-out and memory-probe broadcast size.
pub const BROADCAST_SIZE: usize = 1024;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// An MsQuic transport with the default configuration.
pub fn transport() -> Result<MsQuicTransport, String> {
    MsQuicTransport::new(MsQuicConfig::default()).map_err(|e| e.to_string())
}

/// A tokio runtime like a real deployment's: multi-threaded, every driver on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime")
}

/// Two transports, the first listening on loopback.
struct Pair {
    client: MsQuicTransport,
    listener: MsQuicListener,
    _server: MsQuicTransport,
}

/// A connection's client sending half and server receiving half, with the
/// other halves kept open.
struct Link {
    sender: MsQuicSender,
    receiver: MsQuicReceiver,
    _rest: (MsQuicReceiver, MsQuicSender),
}

impl Pair {
    async fn open() -> Result<Pair, String> {
        let server = transport()?;
        let listener = server.listen(loopback()).await.map_err(|e| e.to_string())?;
        Ok(Pair { client: transport()?, listener, _server: server })
    }

    async fn link(&mut self) -> Result<Link, String> {
        let addr = self.listener.local_addr();
        let (accepted, connected) = tokio::join!(self.listener.accept(), self.client.connect(addr));
        let (sender, client_rx) = connected.map_err(|e| e.to_string())?.split();
        let (server_tx, receiver) = accepted.map_err(|e| e.to_string())?.split();
        Ok(Link { sender, receiver, _rest: (client_rx, server_tx) })
    }

    /// Seconds from the first send of `count` messages of `size` bytes to
    /// the last message's arrival.
    async fn throughput(&mut self, size: usize, count: usize) -> Result<f64, String> {
        let Link { mut sender, mut receiver, _rest } = self.link().await?;
        let receiving = tokio::spawn(async move {
            for _ in 0..count {
                receiver.recv().await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(Instant::now())
        });
        let payload = Bytes::from(vec![7u8; size]);
        let start = Instant::now();
        for _ in 0..count {
            sender.send(payload.clone()).await.map_err(|e| e.to_string())?;
        }
        let end = receiving.await.map_err(|e| e.to_string())??;
        Ok(end.duration_since(start).as_secs_f64())
    }

    /// One-way latencies of `samples` messages of `size` bytes, each sent
    /// once the previous one arrived.
    async fn latencies(&mut self, size: usize, samples: usize) -> Result<Vec<Duration>, String> {
        let Link { mut sender, mut receiver, _rest } = self.link().await?;
        let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
        let receiving =
            tokio::spawn(
                async move { while receiver.recv().await.is_ok() && arrived_tx.send(Instant::now()).is_ok() {} },
            );
        let payload = Bytes::from(vec![7u8; size]);
        let mut latencies = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            sender.send(payload.clone()).await.map_err(|e| e.to_string())?;
            let at = arrived.recv().await.ok_or("the receiver stopped")?;
            latencies.push(at.duration_since(start));
        }
        receiving.abort();
        Ok(latencies)
    }
}

/// Starts `count` reference nodes over MsQuic on loopback, node 0 the seed
/// of the others, and waits until every node knows every other.
pub async fn start_nodes(count: u32) -> Result<Vec<Node>, String> {
    let mut nodes: Vec<Node> = Vec::new();
    for id in 0..count {
        let mut config = NodeConfig::new(NodeId(id), loopback());
        config.seeds = nodes.first().map(|seed| seed.handle.addr()).into_iter().collect();
        nodes.push(Node::start(config, transport()?).await.map_err(|e| e.to_string())?);
    }
    for node in &mut nodes {
        let others = count as usize - 1;
        tokio::time::timeout(CONVERGE, node.peers.wait_for(|peers| peers.len() == others))
            .await
            .map_err(|_| format!("membership did not converge in {CONVERGE:?}"))?
            .map_err(|e| e.to_string())?;
    }
    Ok(nodes)
}

/// Every node in `origins` broadcasts `per_origin` messages of `size`
/// bytes; returns the seconds until every other node delivered each.
pub async fn broadcast_all(
    nodes: &mut [Node],
    origins: &[usize],
    per_origin: usize,
    size: usize,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut receivers = Vec::new();
    for (index, node) in nodes.iter_mut().enumerate() {
        let expected = origins.iter().filter(|&&o| o != index).count() * per_origin;
        // Borrowed by a task for the run, and given back after it.
        let (_, closed) = mpsc::unbounded_channel();
        let mut incoming = std::mem::replace(&mut node.incoming, closed);
        receivers.push(tokio::spawn(async move {
            for _ in 0..expected {
                incoming.recv().await.ok_or("a node stopped")?;
            }
            Ok::<_, String>(incoming)
        }));
    }
    let payload = Bytes::from(vec![7u8; size]);
    for _ in 0..per_origin {
        for &origin in origins {
            let sent = loop {
                match nodes[origin].broadcast.send("bench", payload.clone()).await {
                    Ok(sent) => break sent,
                    // Every outbox is full: let the acknowledgements catch up.
                    Err(SendError::Backpressure(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(e) => return Err(e.to_string()),
                }
            };
            // A member whose outbox was full was left out: it gets the
            // message directly once it has room.
            for &peer in &sent.dropped {
                loop {
                    match nodes[origin].direct.send(peer, "bench", payload.clone()).await {
                        Ok(_) => break,
                        Err(SendError::Backpressure(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        }
    }
    for (node, receiver) in nodes.iter_mut().zip(receivers) {
        node.incoming = receiver.await.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The value at percentile `p` (0-100) of `samples`, in microseconds.
fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// Measures throughput at three message sizes, broadcast fan-out and latency.
pub fn measure(options: &Options) -> Result<Vec<Figure>, String> {
    let runtime = runtime();
    let raw = RawQuic::open()?;
    let echo = Echo::start().map_err(|e| e.to_string())?;
    let mut pair = runtime.block_on(Pair::open())?;
    let mut figures = Vec::new();
    let sizes: [(&str, usize, usize, bool); 3] =
        [("64b", 64, 200_000, false), ("1k", 1024, 100_000, true), ("150k", 150_000, 2_000, true)];
    for (label, size, full_count, target) in sizes {
        let count = if options.quick { (full_count / 40).max(20) } else { full_count };
        let tandem = fastest(options.reps, || runtime.block_on(pair.throughput(size, count)))?;
        let baseline = fastest(options.reps, || raw.throughput(size, count, 1))?;
        let (udp_secs, udp_bytes) = echo.throughput(size, count).map_err(|e| e.to_string())?;
        let what = format!("{count} messages of {size} B over one connection, MsQuicTransport via the Transport trait");
        let msgs = Figure::new(format!("quic.{label}.msgs"), what.clone(), count as f64 / tandem, "msg/s")
            .against("raw msquic stream", count as f64 / baseline);
        figures.push(if target { msgs.target(Target::ratio_at_least(0.8)) } else { msgs });
        figures.push(
            Figure::new(format!("quic.{label}.mbps"), what, (count * size) as f64 / tandem / 1e6, "MB/s")
                .against("raw UDP echo on loopback", udp_bytes as f64 / udp_secs / 1e6),
        );
    }
    let count = if options.quick { 500 } else { 20_000 };
    let mut nodes = runtime.block_on(start_nodes(5))?;
    let tandem = fastest(options.reps, || runtime.block_on(broadcast_all(&mut nodes, &[0], count, BROADCAST_SIZE)))?;
    drop(nodes);
    let baseline = fastest(options.reps, || raw.throughput(BROADCAST_SIZE, count, 4))?;
    figures.push(
        Figure::new(
            "quic.fanout4.msgs",
            format!(
                "node 0 of 5 reference nodes broadcasts {count} x {BROADCAST_SIZE} B (Node API); deliveries per second"
            ),
            (4 * count) as f64 / tandem,
            "msg/s",
        )
        .against("raw msquic, 4 connections", (4 * count) as f64 / baseline),
    );
    let samples = if options.quick { 100 } else { 2_000 };
    let tandem = runtime.block_on(pair.latencies(64, samples))?;
    let baseline = raw.latencies(64, samples)?;
    let udp: Vec<Duration> =
        echo.round_trips(64, samples).map_err(|e| e.to_string())?.into_iter().map(|rtt| rtt / 2).collect();
    for p in [50.0, 99.0] {
        let what = format!("one-way latency of a 64 B message, one in flight, {samples} samples");
        figures.push(
            Figure::new(format!("quic.latency.p{p}"), what.clone(), percentile(&tandem, p), "us")
                .against("raw msquic stream", percentile(&baseline, p)),
        );
        figures.push(Figure::new(
            format!("udp.latency.p{p}"),
            format!("{what}: raw UDP echo, half the round trip"),
            percentile(&udp, p),
            "us",
        ));
    }
    Ok(figures)
}
