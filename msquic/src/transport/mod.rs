//! Real networking over QUIC with MsQuic.
//!
//! [`MsQuicTransport`] implements [`Transport`] with one MsQuic registration,
//! a server and a client configuration (ALPN [`ALPN`]) and a TLS identity.
//! Each connection carries one long-lived bidirectional stream of frames in
//! the shared [`Framing`](tandem::transport::Framing). The server opens it once
//! its handshake (and trust check) is done, and `connect` returns only when it
//! arrives: in TLS 1.3 the client finishes its handshake before the server has
//! judged the client's certificate, so this is what makes `connect` fail when
//! a pinned server refuses the client.
//!
//! Peers are named by the SHA-256 of their certificate ([`PeerIdentity`]).
//! Both sides always present a certificate; the [`TrustPolicy`] is enforced
//! in MsQuic's PEER_CERTIFICATE_RECEIVED event, so a refused peer (and one
//! that presents no certificate) fails the TLS handshake and is never
//! accepted.
//!
//! What peers can make a transport hold is bounded by [`Limits`]; a
//! connection closed for a violation carries that violation's [`close`] code.
//!
//! Nothing here blocks in a callback or when dropped: MsQuic handles are
//! closed on a dedicated thread, connections before the listeners and
//! configurations, and the registration last.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub mod close;
mod config;
mod connection;
mod identity;
mod limits;
mod listener;
mod runtime;
#[cfg(test)]
mod tests;

pub use config::{MsQuicConfig, TrustPolicy, ALPN};
pub use connection::{MsQuicConnection, MsQuicReceiver, MsQuicSender};
pub use identity::{identity_of, TlsIdentity};
pub use limits::Limits;
pub use listener::MsQuicListener;

use runtime::Runtime;
use tandem::transport::{PeerIdentity, Transport, TransportError};

/// A [`Transport`] over MsQuic.
pub struct MsQuicTransport {
    runtime: Arc<Runtime>,
    identity: PeerIdentity,
}

impl MsQuicTransport {
    /// Opens a transport: a registration, its configurations, and the TLS
    /// identity from `config` (a fresh self-signed one when it has none).
    pub fn new(config: MsQuicConfig) -> Result<Self, TransportError> {
        let identity = match &config.identity {
            Some(identity) => identity.clone(),
            None => TlsIdentity::generate()?,
        };
        let runtime = Runtime::open(config, &identity)?;
        Ok(MsQuicTransport { runtime: Arc::new(runtime), identity: identity.id() })
    }

    /// This transport's identity, as its peers see it.
    pub fn identity(&self) -> PeerIdentity {
        self.identity
    }

    /// Becomes true once this transport's registration has closed, which
    /// MsQuic allows only after every connection, listener and configuration.
    #[cfg(test)]
    fn closed_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.runtime.closed.clone()
    }
}

impl Transport for MsQuicTransport {
    type Listener = MsQuicListener;
    type Connection = MsQuicConnection;

    fn listen(&self, addr: SocketAddr) -> impl Future<Output = Result<MsQuicListener, TransportError>> + Send {
        let bound = MsQuicListener::bind(self.runtime.clone(), addr);
        async move { bound }
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = Result<MsQuicConnection, TransportError>> + Send {
        connection::connect(self.runtime.clone(), addr)
    }
}
