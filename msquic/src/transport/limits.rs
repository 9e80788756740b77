//! What a transport holds for its peers, bounded: buffered bytes, partial
//! frames, connections, handshakes and dials. Every limit is a setting of
//! [`Limits`] with a default that keeps a node within tens of MiB however
//! many hostile peers it meets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
// Real network only: limits are wall-clock.
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use tandem::transport::framing::HEADER_LEN;
use tandem::transport::{TransportError, DEFAULT_MAX_FRAME};

/// Resource limits of an [`MsQuicTransport`](super::MsQuicTransport).
///
/// ```
/// use std::time::Duration;
/// use tandem_msquic::{Limits, MsQuicConfig};
///
/// let config = MsQuicConfig::default().with_limits(Limits {
///     frame_deadline: Duration::from_secs(2),
///     max_connections: 64,
///     ..Limits::default()
/// });
/// assert_eq!(config.limits.max_handshakes, Limits::default().max_handshakes);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes one connection may hold received and not yet read, its partial
    /// frame included. Beyond it the connection stops reading and QUIC flow
    /// control holds the peer back. Must fit one maximum-size frame.
    pub connection_buffer: usize,
    /// Bytes every connection may hold whatever the others hold, so small
    /// messages keep flowing while big or hostile frames wait.
    pub connection_reserve: usize,
    /// Bytes all connections together may hold beyond their reserves; a
    /// connection over its reserve stops reading while the total is over.
    /// At least one maximum-size frame, or such a frame could never arrive.
    pub total_buffer: usize,
    /// Once the first byte of a frame has arrived, the whole frame must
    /// arrive within this, or the connection closes with
    /// [`close::FRAME_DEADLINE`](super::close::FRAME_DEADLINE).
    pub frame_deadline: Duration,
    /// The QUIC receive window of a connection (its stream's and its own):
    /// what the peer may send ahead of what this side has taken in. MsQuic
    /// never tunes it higher.
    pub stream_window: u32,
    /// Connections open at once, inbound and outbound. Inbound connections
    /// beyond it are refused before their handshake; `connect` fails.
    pub max_connections: usize,
    /// Inbound connections still in their TLS handshake (not yet
    /// authenticated); more are refused before any cryptography.
    pub max_handshakes: usize,
    /// Outgoing connects in progress at once; more wait their turn.
    pub max_concurrent_dials: usize,
    /// Outgoing connects started per second; more wait their turn.
    pub max_dials_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connection_buffer: HEADER_LEN + DEFAULT_MAX_FRAME,
            connection_reserve: 64 * 1024,
            total_buffer: HEADER_LEN + DEFAULT_MAX_FRAME,
            frame_deadline: Duration::from_secs(10),
            stream_window: 128 * 1024,
            max_connections: 256,
            max_handshakes: 32,
            max_concurrent_dials: 32,
            max_dials_per_second: 100,
        }
    }
}

/// The bytes all of a transport's connections hold beyond their reserves.
#[derive(Debug, Default)]
pub(super) struct Budget {
    excess: AtomicUsize,
    /// Wakes connections waiting for the total to drop.
    pub(super) freed: Notify,
}

impl Budget {
    /// Moves a connection's excess from `before` to `after` bytes.
    pub(super) fn shift(&self, before: usize, after: usize) {
        if after > before {
            self.excess.fetch_add(after - before, Ordering::AcqRel);
        } else if before > after {
            let previous = self.excess.fetch_sub(before - after, Ordering::AcqRel);
            assert!(previous >= before - after, "buffer budget went negative");
            self.freed.notify_waiters();
        }
    }

    /// The bytes held beyond reserves.
    pub(super) fn excess(&self) -> usize {
        self.excess.load(Ordering::Acquire)
    }
}

/// Live connections and handshakes of a transport.
#[derive(Debug, Default)]
pub(super) struct Counts {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
}

impl Counts {
    /// Takes a connection slot (and a handshake slot for an inbound one), or
    /// none when either limit is reached.
    pub(super) fn admit(&self, limits: &Limits, inbound: bool) -> bool {
        if !take(&self.connections, limits.max_connections) {
            return false;
        }
        if inbound && !take(&self.handshakes, limits.max_handshakes) {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    pub(super) fn handshake_done(&self) {
        self.handshakes.fetch_sub(1, Ordering::AcqRel);
    }

    pub(super) fn connection_gone(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Open connections.
    #[cfg(test)]
    pub(super) fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

fn take(counter: &AtomicUsize, limit: usize) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
}

/// Paces outgoing connects: at most so many at once and so many a second.
#[derive(Debug)]
pub(super) struct DialGate {
    concurrent: Semaphore,
    interval: Duration,
    next: Mutex<Instant>,
}

impl DialGate {
    pub(super) fn new(limits: &Limits) -> Self {
        DialGate {
            concurrent: Semaphore::new(limits.max_concurrent_dials.max(1)),
            interval: Duration::from_secs(1) / limits.max_dials_per_second.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a turn to dial; the permit ends the dial's turn when dropped.
    pub(super) async fn turn(&self) -> Result<SemaphorePermit<'_>, TransportError> {
        let permit = self.concurrent.acquire().await.map_err(|_| TransportError::Closed)?;
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).max(Instant::now());
            *next = start + self.interval;
            start
        };
        tokio::time::sleep_until(start.into()).await;
        Ok(permit)
    }
}
