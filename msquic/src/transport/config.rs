//! What a transport is configured with, and the MsQuic settings derived from it.

use std::collections::BTreeSet;
use std::time::Duration;

use msquic::Settings;

use super::identity::TlsIdentity;
use super::limits::Limits;
use tandem::transport::{Framing, PeerIdentity};

/// The ALPN both sides must offer; a peer speaking anything else is refused
/// during the handshake.
pub const ALPN: &str = "tandem/1";

/// Which peer certificates a transport accepts. In every mode both sides
/// present a certificate, and a peer that presents none is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustPolicy {
    /// Any certificate (development): peers are still identified by it, and
    /// refused only when they present none.
    #[default]
    AcceptAny,
    /// Only certificates whose SHA-256 is in the set, on both sides of every
    /// connection: a listener refuses unknown clients and `connect` refuses
    /// unknown servers, before any message is exchanged.
    Pinned(BTreeSet<PeerIdentity>),
}

impl TrustPolicy {
    /// Whether a peer with this identity (`None`: it showed no certificate)
    /// may connect.
    ///
    /// ```
    /// use tandem_msquic::TrustPolicy;
    /// use tandem::transport::PeerIdentity;
    /// let any = PeerIdentity([7; 32]);
    /// assert!(TrustPolicy::AcceptAny.admits(Some(&any)));
    /// assert!(!TrustPolicy::AcceptAny.admits(None));
    /// ```
    pub fn admits(&self, peer: Option<&PeerIdentity>) -> bool {
        match (self, peer) {
            (_, None) => false,
            (TrustPolicy::AcceptAny, Some(_)) => true,
            (TrustPolicy::Pinned(set), Some(id)) => set.contains(id),
        }
    }
}

/// Configuration of an [`MsQuicTransport`](super::MsQuicTransport).
#[derive(Debug, Clone)]
pub struct MsQuicConfig {
    /// This transport's certificate and key; `None` generates a fresh
    /// self-signed one.
    pub identity: Option<TlsIdentity>,
    /// Which peers to accept.
    pub trust: TrustPolicy,
    /// Message framing and its size limit.
    pub framing: Framing,
    /// A connection that hears nothing for this long is closed (a dead peer
    /// is noticed within it).
    pub idle_timeout: Duration,
    /// Interval of keep-alive packets on an otherwise silent connection; must
    /// be well under `idle_timeout`.
    pub keep_alive: Duration,
    /// How long a handshake may take before `connect` fails.
    pub connect_timeout: Duration,
    /// What the transport holds for its peers, bounded.
    pub limits: Limits,
}

impl Default for MsQuicConfig {
    fn default() -> Self {
        MsQuicConfig {
            identity: None,
            trust: TrustPolicy::AcceptAny,
            framing: Framing::default(),
            // Matches `tandem_sim::QuicModel`, so both networks time out alike.
            idle_timeout: Duration::from_secs(2),
            keep_alive: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(3),
            limits: Limits::default(),
        }
    }
}

impl MsQuicConfig {
    /// Uses `identity` instead of a generated one.
    pub fn with_identity(mut self, identity: TlsIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Sets the trust policy.
    pub fn with_trust(mut self, trust: TrustPolicy) -> Self {
        self.trust = trust;
        self
    }

    /// Sets the framing. The connection buffer and the total buffer grow
    /// to fit one frame.
    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        let frame = tandem::transport::framing::HEADER_LEN + framing.max_frame();
        self.limits.connection_buffer = self.limits.connection_buffer.max(frame);
        self.limits.total_buffer = self.limits.total_buffer.max(frame);
        self
    }

    /// Sets the resource limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// MsQuic settings for one side. Only the client allows a peer-opened
    /// stream: the server opens the connection's single stream.
    pub fn settings(&self, server: bool) -> Settings {
        let millis = |d: Duration| d.as_millis().min(u32::MAX as u128) as u32;
        Settings::new()
            .set_IdleTimeoutMs(millis(self.idle_timeout) as u64)
            .set_KeepAliveIntervalMs(millis(self.keep_alive))
            .set_HandshakeIdleTimeoutMs(millis(self.connect_timeout) as u64)
            // Unacknowledged data also means a dead peer; don't wait the
            // default 16 s for it.
            .set_DisconnectTimeoutMs(millis(self.idle_timeout))
            .set_PeerBidiStreamCount(if server { 0 } else { 1 })
            .set_PeerUnidiStreamCount(0)
            // What a peer may send ahead of what this side takes in: with
            // the buffer budget, this bounds what a hostile peer makes us
            // hold. MsQuic doubles a fast-drained stream's window up to the
            // connection's, so both are the same.
            .set_StreamRecvWindowDefault(self.limits.stream_window)
            .set_ConnFlowControlWindow(self.limits.stream_window)
    }
}
