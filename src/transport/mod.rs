//! The `Transport` trait: what the node needs from a network.
//!
//! Node logic is written once against these traits and runs unchanged on the
//! simulated networks (`tandem-sim`'s `EventTransport`, the default, and
//! `TurmoilTransport`) and on real QUIC
//! (`tandem-msquic`'s `MsQuicTransport`). A transport moves whole messages over
//! connections; it never splits or merges them.
//!
//! The traits use `impl Future + Send` returns so that node tasks can be
//! spawned on a multi-threaded runtime in real mode.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;

mod error;
pub mod framing;
pub mod tasks;

pub use error::TransportError;
pub use framing::{FrameDecoder, Framing, DEFAULT_MAX_FRAME};
pub use tasks::{accept_loop, write_loop, Outgoing};

/// The first close code a node may give [`MessageSender::reject`]; codes
/// below it belong to transports (orderly close, framing, limits).
pub const APPLICATION_CLOSE_CODES: u64 = 0x100;

/// A peer's identity as proven by the transport (for TLS: SHA-256 of the
/// certificate DER). Transports without authentication have none.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerIdentity(pub [u8; 32]);

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Addresses and identity of an established connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// This side's address.
    pub local: SocketAddr,
    /// The other side's address.
    pub remote: SocketAddr,
    /// The other side's proven identity, when the transport authenticates.
    pub peer_identity: Option<PeerIdentity>,
}

/// A factory of listeners and outgoing connections.
pub trait Transport: Send + Sync + 'static {
    /// A bound listener.
    type Listener: Listener<Connection = Self::Connection>;
    /// An established connection.
    type Connection: Connection;

    /// Binds a listener on `addr`; port 0 picks a free port, readable with
    /// [`Listener::local_addr`].
    fn listen(&self, addr: SocketAddr) -> impl Future<Output = Result<Self::Listener, TransportError>> + Send;

    /// Opens a connection to `addr` (an IP literal and port).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;
}

/// Accepts incoming connections. Dropping it closes the listener; connections
/// it already accepted live on.
pub trait Listener: Send + Sync + 'static {
    /// The connections it yields.
    type Connection: Connection;

    /// The bound address (with the real port when bound to port 0).
    fn local_addr(&self) -> SocketAddr;

    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = Result<Self::Connection, TransportError>> + Send;
}

/// A bidirectional, ordered, reliable message connection.
///
/// Split it to send and receive from different tasks. The connection closes
/// when both halves are dropped, or at once with [`MessageSender::close`].
pub trait Connection: Send + 'static {
    /// The sending half.
    type Sender: MessageSender;
    /// The receiving half.
    type Receiver: MessageReceiver;

    /// Addresses and peer identity.
    fn info(&self) -> ConnectionInfo;

    /// Splits into halves that can move to separate tasks.
    fn split(self) -> (Self::Sender, Self::Receiver);
}

/// Sends whole messages.
pub trait MessageSender: Send + 'static {
    /// Sends one message; it arrives whole or the connection fails. Waits
    /// while the transport's send buffer is full (backpressure).
    fn send(&mut self, message: Bytes) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Closes the connection; the peer's receiver then returns `Closed`.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Closes the connection at once because the peer broke the node's
    /// protocol; `code` (one per kind of violation) tells the peer which
    /// rule. Transports that carry close codes send it (MsQuic: as the QUIC
    /// application error code; use codes from [`APPLICATION_CLOSE_CODES`] up);
    /// the others just close.
    fn reject(&mut self, code: u64) -> impl Future<Output = ()> + Send {
        let _ = code;
        self.close()
    }
}

/// Receives whole messages.
pub trait MessageReceiver: Send + 'static {
    /// The next message. `Err(Closed)` once the connection has closed: this is
    /// how the node learns that a connection is gone.
    fn recv(&mut self) -> impl Future<Output = Result<Bytes, TransportError>> + Send;
}
