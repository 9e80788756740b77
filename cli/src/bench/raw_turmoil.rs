//! The baseline of the simulation benchmarks: the same topology and
//! messages written directly on turmoil's TCP, without tandem's node,
//! transport or runner.
//!
//! Every host dials every other host once and sends its messages over that
//! connection as length-prefixed frames; a receiver answers each with an
//! acknowledgement frame. A connection that breaks (the peer rebound) is
//! redialled at the peer's current address after 50 ms. This is what a user
//! who wrote a pub/sub over turmoil by hand would have; it has none of
//! tandem's membership, de-duplication, retransmission, QUIC model or trace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tandem::scenario::{Action, LinkChange};
use tandem::transport::Framing;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use turmoil::net::{TcpListener, TcpStream};

use tandem_sim::options::{SimOptions, BASE_PORT, REBIND_PORT};

use super::workload::Subject;

/// How long a host waits before redialling a broken connection.
const REDIAL: Duration = Duration::from_millis(50);
/// The acknowledgement frame's payload.
const ACK: &[u8] = &[0; 8];

/// What a raw run observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRun {
    /// Messages received (acknowledgements not counted).
    pub delivered: u64,
}

/// State the runner shares with the hosts (all on one thread).
struct Net {
    addrs: Vec<SocketAddr>,
    delivered: u64,
}

type Shared = Arc<Mutex<Net>>;

enum Command {
    Send { to: Option<u32>, size: usize },
    Rebind(u16),
}

/// Runs `options.nodes` raw hosts on a turmoil network built like tandem's
/// (same tick, latency and seed), carries out `actions` at their times (a
/// system's operations as `S::traffic` says) and stops at `end`.
pub fn run<S: Subject>(options: &SimOptions, actions: &[(Duration, Action)], end: Duration) -> RawRun {
    let mut sim = tandem_sim::turmoil::network(options);
    let names: Vec<String> = (0..options.setup.nodes).map(|n| format!("n{n}")).collect();
    let ips: Vec<IpAddr> = names.iter().map(|n| sim.lookup(n.as_str())).collect();
    let shared = Arc::new(Mutex::new(Net {
        addrs: ips.iter().map(|&ip| SocketAddr::new(ip, BASE_PORT)).collect(),
        delivered: 0,
    }));
    let mut commands = Vec::new();
    for (node, name) in names.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        commands.push(tx);
        // turmoil calls the factory again only on a restart, which raw runs never do.
        let host = Mutex::new(Some((shared.clone(), rx)));
        sim.host(name.as_str(), move || {
            let (shared, rx) = host.lock().expect("single-threaded").take().expect("raw hosts never restart");
            host_main(shared, node as u32, rx)
        });
    }
    let mut next_port = REBIND_PORT;
    let size = options.setup.nodes;
    for (at, action) in actions {
        while sim.elapsed() < *at {
            sim.step().expect("raw hosts never fail");
        }
        let command = |node: u32, command: Command| {
            // A closed channel means the host is gone; raw runs never crash one.
            let _ = commands[node as usize].send(command);
        };
        match action {
            Action::Op(call) => {
                let (from, to, size) = S::traffic(&call.typed().expect("a valid operation"));
                command(from, Command::Send { to, size });
            }
            Action::Link { change: LinkChange::Partition { oneway }, scope } => {
                for (x, y) in scope.links(size) {
                    let (ix, iy) = (ips[x as usize], ips[y as usize]);
                    if *oneway {
                        sim.partition_oneway(ix, iy);
                    } else {
                        sim.hold(ix, iy);
                    }
                }
            }
            Action::Link { change: LinkChange::Heal, scope } => {
                for (x, y) in scope.links(size) {
                    sim.release(ips[x as usize], ips[y as usize]);
                }
            }
            Action::Rebind { node, port } => {
                let port = port.unwrap_or_else(|| {
                    next_port += 1;
                    next_port
                });
                command(*node, Command::Rebind(port));
            }
            _ => unreachable!("only replayed actions are planned or carried out: {action:?}"),
        }
    }
    while sim.elapsed() < end {
        sim.step().expect("raw hosts never fail");
    }
    let delivered = shared.lock().expect("single-threaded").delivered;
    RawRun { delivered }
}

async fn host_main(shared: Shared, node: u32, mut commands: mpsc::UnboundedReceiver<Command>) -> turmoil::Result {
    let peers = shared.lock().expect("single-threaded").addrs.len() as u32;
    let mut queues = Vec::new();
    for peer in (0..peers).filter(|&p| p != node) {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dial(shared.clone(), peer, rx));
        queues.push((peer, tx));
    }
    let mut listener = tokio::spawn(listen(shared.clone(), BASE_PORT));
    while let Some(command) = commands.recv().await {
        match command {
            Command::Send { to, size } => {
                let frame = Bytes::from(vec![0u8; size]);
                for (peer, queue) in &queues {
                    if to.is_none_or(|to| to == *peer) {
                        let _ = queue.send(frame.clone());
                    }
                }
            }
            Command::Rebind(port) => {
                // Aborting the listener drops its connections, so peers redial.
                listener.abort();
                shared.lock().expect("single-threaded").addrs[node as usize].set_port(port);
                listener = tokio::spawn(listen(shared.clone(), port));
            }
        }
    }
    Ok(())
}

/// Accepts connections and serves each until the task is aborted.
async fn listen(shared: Shared, port: u16) {
    let listener =
        TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await.expect("raw port is free");
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Ok((stream, _)) = listener.accept() => { connections.spawn(serve(shared.clone(), stream)); }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Counts each received frame and acknowledges it.
async fn serve(shared: Shared, stream: TcpStream) {
    let framing = Framing::default();
    let (mut read, mut write) = stream.into_split();
    while framing.read(&mut read).await.is_ok() {
        shared.lock().expect("single-threaded").delivered += 1;
        if framing.write(&mut write, ACK).await.is_err() {
            return;
        }
    }
}

/// Keeps one connection to `peer` and sends it the queued frames.
async fn dial(shared: Shared, peer: u32, mut queue: mpsc::UnboundedReceiver<Bytes>) {
    let framing = Framing::default();
    loop {
        let addr = shared.lock().expect("single-threaded").addrs[peer as usize];
        if let Ok(stream) = TcpStream::connect(addr).await {
            let (mut read, mut write) = stream.into_split();
            // Reads the acknowledgements; ends when the connection does.
            let mut acks = tokio::spawn(async move { while framing.read(&mut read).await.is_ok() {} });
            loop {
                tokio::select! {
                    biased;
                    _ = &mut acks => break,
                    frame = queue.recv() => match frame {
                        Some(frame) if framing.write(&mut write, &frame).await.is_ok() => {}
                        Some(_) => break,
                        None => return,
                    },
                }
            }
            acks.abort();
        }
        tokio::time::sleep(REDIAL).await;
    }
}
