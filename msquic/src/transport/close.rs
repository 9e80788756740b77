//! The application error codes a connection closes with: one per kind of
//! violation, always the same for the same violation.
//!
//! Codes below [`APPLICATION`] belong to the transport; a node closes with
//! its own codes, from [`APPLICATION`] up, through
//! [`MessageSender::reject`](tandem::transport::MessageSender::reject).
//!
//! | code | name | why |
//! |---|---|---|
//! | 0 | [`NORMAL`] | an orderly close |
//! | 1 | [`FRAMING`] | a malformed or oversized frame, or a stream ended inside a frame |
//! | 2 | [`INTERNAL`] | this side could not set the connection up |
//! | 3 | [`STREAM`] | the peer opened a stream (only the server opens the one stream) |
//! | 4 | [`FRAME_DEADLINE`] | a frame did not complete within [`Limits::frame_deadline`](super::Limits::frame_deadline) |
//!
//! Refusals before a handshake completes cannot carry an application code
//! (QUIC replaces it during the handshake): an untrusted certificate fails
//! the TLS handshake with a certificate alert, and a connection over
//! [`Limits::max_connections`](super::Limits::max_connections),
//! [`Limits::max_handshakes`](super::Limits::max_handshakes) or
//! [`Limits::max_handshakes_per_source`](super::Limits::max_handshakes_per_source)
//! is refused with QUIC's `CONNECTION_REFUSED` (counted, and logged at most
//! once a second).

/// An orderly close.
pub const NORMAL: u64 = 0;
/// The peer broke the framing: a malformed or oversized length, or a stream
/// that ended inside a frame.
pub const FRAMING: u64 = 1;
/// This side could not set the connection up.
pub const INTERNAL: u64 = 2;
/// The peer opened a stream; only the server opens the connection's one stream.
pub const STREAM: u64 = 3;
/// A frame began and did not complete within the frame deadline.
pub const FRAME_DEADLINE: u64 = 4;
/// The first code a node may use for its own violations.
pub const APPLICATION: u64 = tandem::transport::APPLICATION_CLOSE_CODES;
