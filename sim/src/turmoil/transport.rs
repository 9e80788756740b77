//! [`TurmoilTransport`]: the `Transport` trait over turmoil's simulated TCP, with
//! the QUIC behaviour described in [`crate::quic`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tandem::transport::{
    Connection, ConnectionInfo, Framing, Listener, MessageReceiver, MessageSender, Transport, TransportError,
};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::{TcpListener, TcpStream};

use super::net::LinkTable;
use crate::quic::{QuicModel, Transmission, SEND_QUEUE};

/// How often a writer or a dial held by a one-way partition looks again.
const HOLD_POLL: Duration = Duration::from_millis(10);

/// A transport for one simulated host. Create it inside the host (it uses the
/// host's turmoil context) with the host's IP, which is what it advertises.
#[derive(Debug, Clone)]
pub struct TurmoilTransport {
    ip: IpAddr,
    framing: Framing,
    model: QuicModel,
    links: LinkTable,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl TurmoilTransport {
    /// A transport for the host at `ip`, following the losses and holds of
    /// `links`, with an RNG seeded by `seed`.
    pub fn new(ip: IpAddr, framing: Framing, model: QuicModel, links: LinkTable, seed: u64) -> Self {
        let rng = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)));
        TurmoilTransport { ip, framing, model, links, rng }
    }

    /// Whether either direction between this host and `peer` is held.
    fn cut_from(&self, peer: IpAddr) -> bool {
        self.links.held(self.ip, peer) || self.links.held(peer, self.ip)
    }

    fn open(&self, stream: TcpStream) -> Result<TurmoilConnection, TransportError> {
        let local = stream.local_addr().map_err(TransportError::from_io)?;
        let remote = stream.peer_addr().map_err(TransportError::from_io)?;
        let info = ConnectionInfo { local: SocketAddr::new(self.ip, local.port()), remote, peer_identity: None };
        Ok(TurmoilConnection { info, stream, transport: self.clone() })
    }
}

impl Transport for TurmoilTransport {
    type Listener = TurmoilListener;
    type Connection = TurmoilConnection;

    async fn listen(&self, addr: SocketAddr) -> Result<TurmoilListener, TransportError> {
        if !addr.ip().is_unspecified() && addr.ip() != self.ip {
            return Err(TransportError::Listen(format!("{addr} is not this host ({})", self.ip)));
        }
        // turmoil binds the unspecified address only; the host IP is what peers dial.
        let bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
        let listener = TcpListener::bind(bind).await.map_err(|e| TransportError::Listen(e.to_string()))?;
        let port = listener.local_addr().map_err(TransportError::from_io)?.port();
        Ok(TurmoilListener { listener, addr: SocketAddr::new(self.ip, port), transport: self.clone() })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<TurmoilConnection, TransportError> {
        // A handshake needs both directions; the caller's timeout bounds the wait.
        while self.cut_from(addr.ip()) {
            tokio::time::sleep(HOLD_POLL).await;
        }
        // Lost handshake flights go out again at the dial's keep-alive ticks.
        let (local, remote) = (self.ip, addr.ip());
        crate::quic::handshake(self.model, |outbound| {
            let loss = if outbound { self.links.loss(local, remote) } else { self.links.loss(remote, local) };
            !crate::quic::lost(loss, &mut *self.rng.lock().expect("rng lock"))
        })
        .await?;
        let stream = TcpStream::connect(addr).await.map_err(TransportError::from_io)?;
        self.open(stream)
    }
}

/// A bound simulated listener.
pub struct TurmoilListener {
    listener: TcpListener,
    addr: SocketAddr,
    transport: TurmoilTransport,
}

impl Listener for TurmoilListener {
    type Connection = TurmoilConnection;

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn accept(&mut self) -> Result<TurmoilConnection, TransportError> {
        let (stream, _) = self.listener.accept().await.map_err(TransportError::from_io)?;
        self.transport.open(stream)
    }
}

/// A simulated connection: framed TCP with keep-alives, an idle timeout and
/// modelled retransmission delays.
#[derive(Debug)]
pub struct TurmoilConnection {
    info: ConnectionInfo,
    stream: TcpStream,
    transport: TurmoilTransport,
}

impl Connection for TurmoilConnection {
    type Sender = TurmoilSender;
    type Receiver = TurmoilReceiver;

    fn info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    fn split(self) -> (TurmoilSender, TurmoilReceiver) {
        let (read, write) = self.stream.into_split();
        let (frames_tx, frames) = mpsc::channel(SEND_QUEUE);
        let (received_tx, received) = mpsc::channel(SEND_QUEUE);
        let (dead_tx, dead) = watch::channel(false);
        let t = self.transport;
        let link = (self.info.local.ip(), self.info.remote.ip());
        let writer = Writer { write, frames, dead, framing: t.framing, model: t.model, rng: t.rng.clone() };
        tokio::spawn(writer.run(t.links.clone(), link));
        let reader = Reader { read, framing: t.framing, model: t.model, received: received_tx, dead: dead_tx };
        tokio::spawn(reader.run());
        (TurmoilSender { frames: frames_tx, framing: t.framing }, TurmoilReceiver { received })
    }
}

/// The sending half; frames go through the connection's writer task.
#[derive(Debug)]
pub struct TurmoilSender {
    frames: mpsc::Sender<Bytes>,
    framing: Framing,
}

impl MessageSender for TurmoilSender {
    async fn send(&mut self, message: Bytes) -> Result<(), TransportError> {
        if message.len() > self.framing.max_frame() {
            return Err(TransportError::FrameTooLarge {
                len: message.len() as u64,
                max: self.framing.max_frame() as u64,
            });
        }
        self.frames.send(message).await.map_err(|_| TransportError::Closed)
    }

    async fn close(&mut self) {
        // The writer finishes the queued frames, then closes the stream.
        let (closed, _) = mpsc::channel(1);
        self.frames = closed;
    }
}

/// Writes frames and keep-alives, delaying each frame by its modelled
/// retransmissions.
struct Writer {
    write: OwnedWriteHalf,
    frames: mpsc::Receiver<Bytes>,
    dead: watch::Receiver<bool>,
    framing: Framing,
    model: QuicModel,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Writer {
    /// Waits `delay`; `false` if the connection died first. A dead
    /// connection stops waiting at once: a writer still sleeping when its
    /// node crashes would be dropped with the host's runtime, in an order
    /// that depends on process-global task ids, and its stream's close would
    /// make runs depend on what ran before them in the same process.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.dead.changed() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    /// Writes until the connection dies, over `link` (local, remote) as
    /// `links` says it is.
    async fn run(mut self, links: LinkTable, (local, remote): (IpAddr, IpAddr)) {
        let mut keep_alive = tokio::time::interval(self.model.keep_alive);
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.dead.changed() => return,
                frame = self.frames.recv() => match frame {
                    Some(frame) => frame,
                    None => return,
                },
                _ = keep_alive.tick() => Bytes::new(),
            };
            // A held link sends nothing, keep-alives included; a frame waits
            // for the heal (QUIC retransmits it then).
            if links.held(local, remote) {
                if frame.is_empty() {
                    continue;
                }
                while links.held(local, remote) {
                    if !self.pause(HOLD_POLL).await {
                        return;
                    }
                }
            }
            // Each transmission sees the loss of its moment; the connection
            // gives up when the frame has gone unacknowledged for the idle timeout.
            let give_up = tokio::time::Instant::now() + self.model.idle_timeout;
            let mut packet = self.model.transmissions(Duration::ZERO);
            loop {
                let transmission = packet.attempt(links.loss(local, remote), &mut *self.rng.lock().expect("rng lock"));
                let Transmission::RetryAfter(wait) = transmission else { break };
                let retry = tokio::time::Instant::now() + wait;
                if retry >= give_up {
                    tracing::debug!("connection broken by loss");
                    self.pause(give_up - tokio::time::Instant::now()).await;
                    return;
                }
                if !self.pause(wait).await {
                    return;
                }
            }
            if self.framing.write(&mut self.write, &frame).await.is_err() {
                return;
            }
            keep_alive.reset();
        }
    }
}

/// Reads frames as they come, whether the node reads or not, so that the
/// idle timeout holds for a node that only sends: when it strikes, the
/// whole connection dies and the next `send` fails, as in QUIC.
struct Reader {
    read: OwnedReadHalf,
    framing: Framing,
    model: QuicModel,
    received: mpsc::Sender<Result<Bytes, TransportError>>,
    dead: watch::Sender<bool>,
}

impl Reader {
    async fn run(mut self) {
        let error = loop {
            let read = tokio::select! {
                biased;
                // The node dropped its receiver: stop now, in the node's own
                // order (see `Writer::pause`).
                () = self.received.closed() => return,
                read = timeout(self.model.idle_timeout + self.model.keep_alive, self.framing.read(&mut self.read)) => read,
            };
            match read {
                Err(_) => break TransportError::TimedOut("idle timeout".into()),
                Ok(Ok(frame)) if frame.is_empty() => continue,
                // Waits while the node lets frames pile up (flow control).
                Ok(Ok(frame)) => {
                    if self.received.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(Err(error)) => break error,
            }
        };
        // Stop the writer too: the whole connection is gone.
        self.dead.send_replace(true);
        let _ = self.received.send(Err(error)).await;
    }
}

/// The receiving half: what the connection's reader received.
#[derive(Debug)]
pub struct TurmoilReceiver {
    received: mpsc::Receiver<Result<Bytes, TransportError>>,
}

impl MessageReceiver for TurmoilReceiver {
    async fn recv(&mut self) -> Result<Bytes, TransportError> {
        self.received.recv().await.unwrap_or(Err(TransportError::Closed))
    }
}
