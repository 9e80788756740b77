//! [`EventTransport`]: the `Transport` trait over the discrete-event
//! [`Network`].

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tandem::transport::{
    Connection, ConnectionInfo, Framing, Listener, MessageReceiver, MessageSender, Transport, TransportError,
};
use tokio::sync::mpsc;

use super::network::{deliver, watch_for_dead_peers, Connection as Shared, Frame, Incoming, Network, SEND_QUEUE};

/// The first port a transport gives its outgoing connections and its
/// listeners bound to port 0.
const EPHEMERAL_PORTS: u16 = 49152;

/// One node incarnation's transport on a simulated network. It stops
/// working when the node crashes.
#[derive(Debug, Clone)]
pub struct EventTransport {
    network: Arc<Network>,
    ip: IpAddr,
    framing: Framing,
    alive: Arc<AtomicBool>,
    next_port: Arc<AtomicU16>,
}

impl EventTransport {
    /// The transport of the host at `ip`, alive while `alive` holds.
    pub fn new(network: Arc<Network>, ip: IpAddr, framing: Framing, alive: Arc<AtomicBool>) -> Self {
        EventTransport { network, ip, framing, alive, next_port: Arc::new(AtomicU16::new(EPHEMERAL_PORTS)) }
    }

    fn check_alive(&self) -> Result<(), TransportError> {
        match self.alive.load(Ordering::Relaxed) {
            true => Ok(()),
            false => Err(TransportError::Closed),
        }
    }

    /// A port no listener of this host uses.
    fn ephemeral(&self) -> u16 {
        loop {
            let port = self.next_port.fetch_add(1, Ordering::Relaxed).max(EPHEMERAL_PORTS);
            if !self.network.in_use(SocketAddr::new(self.ip, port)) {
                return port;
            }
        }
    }
}

impl Transport for EventTransport {
    type Listener = EventListener;
    type Connection = EventConnection;

    async fn listen(&self, addr: SocketAddr) -> Result<EventListener, TransportError> {
        self.check_alive()?;
        if !addr.ip().is_unspecified() && addr.ip() != self.ip {
            return Err(TransportError::Listen(format!("{addr} is not this host ({})", self.ip)));
        }
        let port = if addr.port() == 0 { self.ephemeral() } else { addr.port() };
        let addr = SocketAddr::new(self.ip, port);
        let incoming = self.network.listen(addr)?;
        Ok(EventListener { addr, incoming })
    }

    async fn connect(&self, addr: SocketAddr) -> Result<EventConnection, TransportError> {
        self.check_alive()?;
        let (src, dst) = (self.ip, addr.ip());
        // The handshake runs on the network's time, whatever the node's clock.
        let network = self.network.clone();
        self.network.spawn(async move { network.dial(src, dst).await }).await.map_err(|_| TransportError::Closed)??;
        self.check_alive()?;
        let Some(listener) = self.network.listener(addr) else {
            return Err(TransportError::Refused(format!("nobody listens at {addr}")));
        };
        let local = SocketAddr::new(src, self.ephemeral());
        let (shared, [to_server, to_client]) = self.network.connect([src, dst]);
        let (client_rx, server_rx) = (mpsc::channel(SEND_QUEUE), mpsc::channel(SEND_QUEUE));
        let network = &self.network;
        network.spawn(deliver(network.clone(), shared.clone(), 0, [src, dst], to_server, server_rx.0));
        network.spawn(deliver(network.clone(), shared.clone(), 1, [dst, src], to_client, client_rx.0));
        network.spawn(watch_for_dead_peers(network.clone(), shared.clone(), [src, dst]));
        let end = |side, local, remote, received| EventConnection {
            info: ConnectionInfo { local, remote, peer_identity: None },
            end: End { shared: shared.clone(), side },
            network: network.clone(),
            framing: self.framing,
            received,
        };
        let server = end(1, addr, local, server_rx.1);
        if listener.send(server).is_err() {
            shared.close(0);
            shared.close(1);
            return Err(TransportError::Refused(format!("{addr} stopped listening")));
        }
        Ok(end(0, local, addr, client_rx.1))
    }
}

/// A bound listener; dropping it frees its address.
#[derive(Debug)]
pub struct EventListener {
    addr: SocketAddr,
    incoming: mpsc::UnboundedReceiver<Incoming>,
}

impl Listener for EventListener {
    type Connection = EventConnection;

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    async fn accept(&mut self) -> Result<EventConnection, TransportError> {
        // The network drops the listener when its node crashes.
        self.incoming.recv().await.ok_or(TransportError::Closed)
    }
}

/// One end of a connection: dropping it closes the end's direction.
#[derive(Debug)]
struct End {
    shared: Arc<Shared>,
    side: usize,
}

impl Drop for End {
    fn drop(&mut self) {
        self.shared.close(self.side);
    }
}

/// One end of a simulated connection.
#[derive(Debug)]
pub struct EventConnection {
    info: ConnectionInfo,
    end: End,
    network: Arc<Network>,
    framing: Framing,
    received: mpsc::Receiver<Result<Bytes, TransportError>>,
}

impl Connection for EventConnection {
    type Sender = EventSender;
    type Receiver = EventReceiver;

    fn info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    fn split(self) -> (EventSender, EventReceiver) {
        let link = [self.info.local.ip(), self.info.remote.ip()];
        let sender = EventSender { end: self.end, network: self.network, framing: self.framing, link };
        (sender, EventReceiver { received: self.received })
    }
}

/// The sending half. Dropping it closes the connection, like
/// [`MessageSender::close`].
#[derive(Debug)]
pub struct EventSender {
    end: End,
    network: Arc<Network>,
    framing: Framing,
    link: [IpAddr; 2],
}

impl MessageSender for EventSender {
    async fn send(&mut self, message: Bytes) -> Result<(), TransportError> {
        if message.len() > self.framing.max_frame() {
            return Err(TransportError::FrameTooLarge {
                len: message.len() as u64,
                max: self.framing.max_frame() as u64,
            });
        }
        let End { shared, side } = &self.end;
        if let Some(why) = shared.ended() {
            return Err(why);
        }
        let frames = shared.sender(*side).ok_or(TransportError::Closed)?;
        let [src, dst] = self.link;
        let frame = Frame { sent: self.network.now(), latency: self.network.latency(src, dst), bytes: message };
        frames.send(frame).await.map_err(|_| TransportError::Closed)
    }

    async fn close(&mut self) {
        self.end.shared.close(self.end.side);
    }
}

/// The receiving half.
#[derive(Debug)]
pub struct EventReceiver {
    received: mpsc::Receiver<Result<Bytes, TransportError>>,
}

impl MessageReceiver for EventReceiver {
    async fn recv(&mut self) -> Result<Bytes, TransportError> {
        self.received.recv().await.unwrap_or(Err(TransportError::Closed))
    }
}
