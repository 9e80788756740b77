//! The one error type every transport returns.

use std::io;

/// Why a transport operation failed.
///
/// The node reacts differently to each kind (redial after `Refused`, give up a
/// connection after `Closed`), so transports must map their native errors onto
/// these variants faithfully rather than lumping them into `Protocol`.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Nobody listens at the address, or the address cannot be reached.
    #[error("connection refused or unreachable: {0}")]
    Refused(String),
    /// The peer closed the connection, or it was closed locally.
    #[error("connection closed by peer")]
    Closed,
    /// A connect or an idle connection timed out.
    #[error("timed out: {0}")]
    TimedOut(String),
    /// A frame longer than the configured maximum was sent or announced.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The length that was announced or attempted.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The peer broke the protocol: truncated frame, bad handshake, bad TLS.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Binding a listener failed (address in use, bad address).
    #[error("cannot listen: {0}")]
    Listen(String),
}

impl TransportError {
    /// Maps an I/O error from a stream onto the transport's error kinds.
    pub fn from_io(err: io::Error) -> Self {
        use io::ErrorKind::*;
        match err.kind() {
            ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable => {
                TransportError::Refused(err.to_string())
            }
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => TransportError::Closed,
            TimedOut => TransportError::TimedOut(err.to_string()),
            AddrInUse => TransportError::Listen(err.to_string()),
            _ => TransportError::Protocol(err.to_string()),
        }
    }
}
