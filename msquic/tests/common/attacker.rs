//! A hostile QUIC client for tests of the MsQuic transport, built on quinn:
//! an independent QUIC and TLS stack (rustls on ring), so what it sends is
//! not shaped by MsQuic's own client code and it can break the protocol on
//! purpose.
//!
//! It speaks just enough of tandem's protocol to get in: ALPN
//! [`tandem_msquic::ALPN`], an optional client certificate, and the single
//! bidirectional stream that the server opens once its handshake and trust
//! check are done. After that a test writes whatever bytes it likes
//! ([`Hostile::send_raw`]) or well-formed frames ([`Hostile::send_frame`]: a
//! 4-byte big-endian length, then the payload), reads the server's frames
//! ([`Hostile::recv_frame`]) and watches how the server closes the
//! connection ([`Hostile::closed_code`]).
//!
//! Nothing here creates a tokio runtime: [`Attacker::new`] and every async
//! method run inside the test's runtime (quinn's endpoint driver is spawned
//! on it). Every wait takes or has a timeout.
//!
//! The rustls configuration is built with an explicit ring
//! [`CryptoProvider`], so no process-wide default provider has to be
//! installed and tests in one binary cannot race to install one.
//!
//! Include it from a test file with
//! `#[path = "common/attacker.rs"] mod attacker;`.

#![allow(dead_code)] // Each test binary uses a different part of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ClientConfig, Connection, ConnectionError, Endpoint, RecvStream, SendStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tandem_msquic::{TlsIdentity, ALPN};
use tokio::time::{timeout, timeout_at, Instant};

/// The server name the attacker asks for (MsQuic's certificates are made
/// for "tandem"; the attacker does not check it anyway).
pub const SERVER_NAME: &str = "tandem";

/// How long [`Attacker::connect`] waits for the handshake and then for the
/// server's stream.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(3);

/// Length of a frame header: a big-endian `u32` payload length.
pub const HEADER_LEN: usize = 4;

/// A quinn client endpoint on `127.0.0.1:0` that connects to tandem
/// listeners with a fixed TLS identity (or none at all).
pub struct Attacker {
    endpoint: Endpoint,
}

impl Attacker {
    /// An attacker presenting `identity` as its client certificate, or no
    /// certificate at all with `None` (it then answers the server's
    /// certificate request with an empty certificate list). It accepts any
    /// server certificate but still checks the server's TLS 1.3 handshake
    /// signature. Must be called inside a tokio runtime.
    pub fn new(identity: Option<&TlsIdentity>) -> Attacker {
        Attacker::with_transport(identity, |_| {})
    }

    /// As [`Attacker::new`], granting the server at most `window` bytes of
    /// flow control (stream and connection): an attacker that never reads
    /// stops the server's sends after that.
    pub fn with_window(identity: Option<&TlsIdentity>, window: u32) -> Attacker {
        Attacker::with_transport(identity, |transport| {
            transport.stream_receive_window(window.into());
            transport.receive_window(window.into());
        })
    }

    /// As [`Attacker::new`], with quinn's transport settings changed by `tune`.
    pub fn with_transport(identity: Option<&TlsIdentity>, tune: impl FnOnce(&mut quinn::TransportConfig)) -> Attacker {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
        let mut tls = match identity {
            Some(identity) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(identity.cert_der.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone())),
                )
                .expect("a TlsIdentity is a usable client certificate"),
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![ALPN.as_bytes().to_vec()];
        let quic = QuicClientConfig::try_from(tls).expect("a TLS 1.3 config with ring suites");
        let mut transport = quinn::TransportConfig::default();
        // tandem's client never opens streams, and the server opens only one.
        transport.max_concurrent_uni_streams(0u8.into());
        transport.max_concurrent_bidi_streams(1u8.into());
        tune(&mut transport);
        let mut config = ClientConfig::new(Arc::new(quic));
        config.transport_config(Arc::new(transport));

        let mut endpoint = Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("binding 127.0.0.1:0");
        endpoint.set_default_client_config(config);
        Attacker { endpoint }
    }

    /// The quinn endpoint, for tests that want to go around this module.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Completes the QUIC handshake with `addr` and nothing more (within
    /// [`CONNECT_PATIENCE`]). In TLS 1.3 the client's handshake completes
    /// before the server has judged the client's certificate, so success
    /// here does not mean the server admitted us: see [`Attacker::connect`].
    pub async fn handshake(&self, addr: SocketAddr) -> Result<Connection, String> {
        let connecting =
            self.endpoint.connect(addr, SERVER_NAME).map_err(|e| format!("starting a connection to {addr}: {e}"))?;
        match timeout(CONNECT_PATIENCE, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("handshake with {addr}: {e}")),
            Err(_) => Err(format!("handshake with {addr}: no answer in {CONNECT_PATIENCE:?}")),
        }
    }

    /// Connects to `addr` as a tandem client would: the handshake, then the
    /// server's bidirectional stream (within [`CONNECT_PATIENCE`] more).
    /// MsQuic opens that stream with the IMMEDIATE flag, so it reaches quinn
    /// as an empty STREAM frame and `accept_bi` yields before any data. Fails
    /// if the server refuses us (it closes the connection instead of opening
    /// the stream) or opens no stream in time.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Hostile, String> {
        let conn = self.handshake(addr).await?;
        let (send, recv) = match timeout(CONNECT_PATIENCE, conn.accept_bi()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("waiting for the stream from {addr}: {e}")),
            Err(_) => {
                conn.close(0u8.into(), b"no stream");
                return Err(format!("{addr} opened no stream within {CONNECT_PATIENCE:?}"));
            }
        };
        Ok(Hostile { conn, send, recv, buffer: Vec::new() })
    }
}

/// A connection to a tandem server with its stream accepted: a test's
/// handle for misbehaving on it.
pub struct Hostile {
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    /// Received bytes not yet returned as a frame.
    buffer: Vec<u8>,
}

impl Hostile {
    /// The raw quinn connection (close reason, stats, opening streams the
    /// server must refuse, ...).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The sending half of the server's stream.
    pub fn send_stream(&mut self) -> &mut SendStream {
        &mut self.send
    }

    /// Writes `bytes` on the stream as they are: no framing. Returns once
    /// quinn has buffered them (not when the server has read them).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.send.write_all(bytes).await.map_err(|e| format!("writing {} bytes: {e}", bytes.len()))
    }

    /// Writes one well-formed frame: `payload`'s length as a big-endian
    /// `u32`, then `payload`.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), String> {
        let len = u32::try_from(payload.len()).map_err(|_| "payload over 4 GiB".to_string())?;
        let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        self.send_raw(&frame).await
    }

    /// Ends our side of the stream (FIN) after what was written.
    pub fn finish(&mut self) -> Result<(), String> {
        self.send.finish().map_err(|e| format!("finishing the stream: {e}"))
    }

    /// The next frame's payload from the server, or `None` if none is
    /// complete within `within` (or the stream ended or the connection
    /// closed first). A frame cut short by the timeout stays buffered for
    /// the next call.
    pub async fn recv_frame(&mut self, within: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            // `read_chunk` is cancel-safe, so a timeout loses no bytes.
            match timeout_at(deadline, self.recv.read_chunk(usize::MAX, true)).await {
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk.bytes),
                // The stream ended, was reset, or the connection closed.
                Ok(Ok(None)) | Ok(Err(_)) => return None,
                Err(_) => return None,
            }
        }
    }

    /// Splits one complete frame off the front of the buffer.
    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let header: [u8; HEADER_LEN] = self.buffer.get(..HEADER_LEN)?.try_into().ok()?;
        let len = u32::from_be_bytes(header) as usize;
        if self.buffer.len() < HEADER_LEN + len {
            return None;
        }
        let frame = self.buffer[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buffer.drain(..HEADER_LEN + len);
        Some(frame)
    }

    /// Waits up to `within` for the connection to close and returns the
    /// application error code the server closed it with; `None` if it is
    /// still open then, or closed some other way (idle timeout, a transport
    /// error, a TLS alert, or closed by us): see [`Hostile::close_reason`].
    pub async fn closed_code(&self, within: Duration) -> Option<u64> {
        match timeout(within, self.conn.closed()).await {
            Ok(ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
            _ => None,
        }
    }

    /// Why the connection closed, if it has.
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.conn.close_reason()
    }
}

/// Accepts any server certificate (the attacker does not care who it talks
/// to) but still verifies the handshake signatures with the provider's
/// algorithms, so the TLS exchange itself stays genuine.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
