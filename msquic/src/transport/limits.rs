//! What a transport holds for its peers, bounded: buffered bytes, partial
//! frames, connections, handshakes and dials. Every limit is a setting of
//! [`Limits`] with a default that keeps a node within tens of MiB however
//! many hostile peers it meets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Inbound handshakes from one source address (IP and port) at once;
    /// more from it are refused before any cryptography, so a flood from
    /// one socket leaves the rest of `max_handshakes` to everyone else.
    pub max_handshakes_per_source: usize,
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
            max_handshakes_per_source: 4,
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
    /// Handshakes in progress by source address.
    sources: Mutex<BTreeMap<SocketAddr, usize>>,
    /// Inbound connections refused, and how many of them were logged about.
    refused: AtomicU64,
    logged: AtomicU64,
    /// When a refusal was last logged.
    last_log: Mutex<Option<Instant>>,
}

impl Counts {
    /// Takes a connection slot (and for an inbound one from `source`, a
    /// handshake slot and one of its source's), or none when a limit is
    /// reached.
    pub(super) fn admit(&self, limits: &Limits, inbound: Option<SocketAddr>) -> bool {
        if !take(&self.connections, limits.max_connections) {
            return false;
        }
        let Some(source) = inbound else { return true };
        {
            let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            let count = sources.entry(source).or_default();
            if *count >= limits.max_handshakes_per_source {
                if *count == 0 {
                    sources.remove(&source);
                }
                drop(sources);
                self.connections.fetch_sub(1, Ordering::AcqRel);
                return false;
            }
            *count += 1;
        }
        if !take(&self.handshakes, limits.max_handshakes) {
            self.source_done(source);
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    pub(super) fn handshake_done(&self, source: SocketAddr) {
        self.handshakes.fetch_sub(1, Ordering::AcqRel);
        self.source_done(source);
    }

    fn source_done(&self, source: SocketAddr) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = sources.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                sources.remove(&source);
            }
        }
    }

    /// Counts a refused inbound connection; returns the refusals not yet
    /// logged when it is time to log them (at most once a second), so a
    /// flood writes one line a second, not one per packet.
    pub(super) fn refused(&self) -> Option<u64> {
        let total = self.refused.fetch_add(1, Ordering::AcqRel) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return None;
        }
        *last = Some(now);
        Some(total - self.logged.swap(total, Ordering::AcqRel))
    }

    /// Inbound connections refused so far.
    pub(super) fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_admitted_per_source_and_refusals_logged_once_a_second() {
        let limits = Limits { max_handshakes: 6, max_handshakes_per_source: 2, ..Limits::default() };
        let counts = Counts::default();
        let [flood, other, third]: [SocketAddr; 3] =
            ["127.0.0.1:1000", "127.0.0.1:1001", "127.0.0.1:1002"].map(|a| a.parse().unwrap());
        assert!(counts.admit(&limits, Some(flood)) && counts.admit(&limits, Some(flood)));
        assert!(!counts.admit(&limits, Some(flood)), "a third handshake from one source");
        assert!(counts.admit(&limits, Some(other)) && counts.admit(&limits, Some(other)));
        assert!(counts.admit(&limits, Some(third)) && counts.admit(&limits, Some(third)));
        let fourth: SocketAddr = "127.0.0.1:1003".parse().unwrap();
        assert!(!counts.admit(&limits, Some(fourth)), "over max_handshakes");
        assert!(counts.admit(&limits, None), "outbound connections take no handshake slot");
        // A finished handshake frees its source's slot.
        counts.handshake_done(flood);
        assert!(counts.admit(&limits, Some(flood)));
        assert_eq!(counts.connections(), 8);
        // The first refusal is logged; the next ones within a second wait,
        // and the next log line counts them all.
        assert_eq!(counts.refused(), Some(1));
        assert_eq!((counts.refused(), counts.refused()), (None, None));
        *counts.last_log.lock().unwrap() = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(counts.refused(), Some(3));
        assert_eq!(counts.refusals(), 4);
    }
}
