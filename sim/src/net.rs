//! The simulated network's QUIC model, on top of turmoil's TCP.
//!
//! turmoil's TCP never retransmits: a segment it drops stalls the stream for
//! ever (turmoil issues #185 and #39). QUIC, which the real backend runs,
//! retransmits, keeps connections alive with pings, and gives up on a silent
//! peer after an idle timeout. The simulation models that instead of
//! using turmoil's packet loss:
//!
//! - **Partition** (both ways): turmoil *holds* the link's segments and
//!   releases them on heal, so data sent across a short partition arrives
//!   after it. Every connection sends a keep-alive ping each
//!   [`QuicModel::keep_alive`]; a connection that hears nothing for
//!   [`QuicModel::idle_timeout`] is closed (its next send fails, whether the
//!   node reads from it or only writes), so a partition that outlasts the
//!   idle timeout breaks connections, exactly as in QUIC.
//!   Connection attempts across a partition hang until the node's connect
//!   timeout.
//! - **One-way partition**: what one side sends is held (the connection's
//!   writer waits, [`LinkTable::held`]) and goes out on heal, as QUIC
//!   retransmits it; the other direction flows. Keep-alives are held too, so
//!   a partition that outlasts the idle timeout breaks connections, and a
//!   dial either way waits for the heal, as a QUIC handshake cannot complete
//!   with one direction cut.
//! - **Loss**: a lost packet is retransmitted, so loss costs time, not data.
//!   Each frame draws, from the seeded RNG, how many transmissions fail in a
//!   row; each failure delays the frame by a probe timeout that doubles
//!   ([`QuicModel::probe_timeout`]), and the stream behind it waits (head-of-
//!   line blocking). When the delays add up to the idle timeout the
//!   connection breaks, as a QUIC connection does under heavy loss. A dial
//!   pays the same way for its handshake's three flights, from the initial
//!   probe timeout ([`QuicModel::initial_probe_timeout`]): loss slows dials,
//!   and a handshake whose losses outlast the idle timeout fails.
//! - **Latency**: turmoil's per-link latency, between the range's bounds.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

/// QUIC's time constants, as the simulation models them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuicModel {
    /// A connection pings this often when it has nothing else to send.
    pub keep_alive: Duration,
    /// A connection that hears nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The delay of a first retransmission; it doubles on each further loss.
    pub probe_timeout: Duration,
    /// The first probe timeout of a handshake, before any RTT is measured
    /// (MsQuic's initial RTT estimate); it doubles on each further loss.
    pub initial_probe_timeout: Duration,
}

impl Default for QuicModel {
    /// The same values the MsQuic transport is configured with.
    fn default() -> Self {
        QuicModel {
            keep_alive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(2),
            probe_timeout: Duration::from_millis(50),
            initial_probe_timeout: Duration::from_millis(333),
        }
    }
}

impl QuicModel {
    /// The retransmission delay of one frame on a link losing `rate` of its
    /// packets, or `None` when the losses outlast the idle timeout.
    pub fn retransmission_delay(&self, rate: f64, rng: &mut impl Rng) -> Option<Duration> {
        self.backoff(rate, self.probe_timeout, rng)
    }

    /// How long a handshake takes longer on a link losing `out` of what the
    /// dialler sends and `back` of what it receives: its three flights
    /// (out, back, out) each retransmitted from the initial probe timeout;
    /// `None` when the losses outlast the idle timeout.
    pub fn handshake_delay(&self, out: f64, back: f64, rng: &mut impl Rng) -> Option<Duration> {
        let mut delay = Duration::ZERO;
        for rate in [out, back, out] {
            delay += self.backoff(rate, self.initial_probe_timeout, rng)?;
        }
        (delay < self.idle_timeout).then_some(delay)
    }

    /// The delay of a packet lost at `rate`, retransmitted from `probe` on,
    /// doubling; `None` when it reaches the idle timeout.
    fn backoff(&self, rate: f64, mut probe: Duration, rng: &mut impl Rng) -> Option<Duration> {
        let mut delay = Duration::ZERO;
        while rate > 0.0 && rng.random_bool(rate.min(1.0)) {
            delay += probe;
            probe *= 2;
            if delay >= self.idle_timeout {
                return None;
            }
        }
        Some(delay)
    }
}

/// What the runner sets per directed link and every simulated connection
/// reads when it sends: the loss rate, and whether the link is held (one
/// way of a one-way partition).
#[derive(Debug, Clone, Default)]
pub struct LinkTable {
    inner: Arc<Mutex<Links>>,
}

#[derive(Debug, Default)]
struct Links {
    default_loss: f64,
    losses: BTreeMap<(IpAddr, IpAddr), f64>,
    held: BTreeSet<(IpAddr, IpAddr)>,
}

impl LinkTable {
    /// A table where every link loses `rate` and none is held.
    pub fn new(rate: f64) -> Self {
        let table = LinkTable::default();
        table.lock().default_loss = rate;
        table
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Links> {
        self.inner.lock().expect("link table lock")
    }

    /// Sets the loss rate from `src` to `dst`.
    pub fn set_loss(&self, src: IpAddr, dst: IpAddr, rate: f64) {
        assert!((0.0..=1.0).contains(&rate), "loss rate {rate} outside 0..=1");
        self.lock().losses.insert((src, dst), rate);
    }

    /// The loss rate from `src` to `dst`.
    pub fn loss(&self, src: IpAddr, dst: IpAddr) -> f64 {
        let links = self.lock();
        links.losses.get(&(src, dst)).copied().unwrap_or(links.default_loss)
    }

    /// Holds (`true`) or releases what `src` sends to `dst`.
    pub fn set_held(&self, src: IpAddr, dst: IpAddr, held: bool) {
        let mut links = self.lock();
        if held {
            links.held.insert((src, dst));
        } else {
            links.held.remove(&(src, dst));
        }
    }

    /// Whether what `src` sends to `dst` is held.
    pub fn held(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.lock().held.contains(&(src, dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn loss_costs_time_and_heavy_loss_breaks() {
        let model = QuicModel::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        assert_eq!(model.retransmission_delay(0.0, &mut rng), Some(Duration::ZERO));
        assert_eq!(model.retransmission_delay(1.0, &mut rng), None);
        let delays: Vec<_> = (0..1000).map(|_| model.retransmission_delay(0.2, &mut rng)).collect();
        assert!(delays.iter().all(Option::is_some), "20% loss must not break a connection in 1000 frames");
        let delayed = delays.iter().filter(|d| d.unwrap() > Duration::ZERO).count();
        assert!((100..300).contains(&delayed), "about a fifth of frames wait: {delayed}");
    }

    #[test]
    fn loss_slows_handshakes_and_heavy_loss_fails_them() {
        let model = QuicModel::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        assert_eq!(model.handshake_delay(0.0, 0.0, &mut rng), Some(Duration::ZERO));
        let dials: Vec<_> = (0..1000).map(|_| model.handshake_delay(0.3, 0.3, &mut rng)).collect();
        let slow = dials.iter().filter(|d| d.is_none_or(|d| d >= Duration::from_secs(1))).count();
        assert!((50..400).contains(&slow), "at 30% loss some dials take a second or fail: {slow} of 1000");
        assert!(dials.iter().flatten().all(|d| d.as_millis() % 333 == 0), "each loss costs a probe timeout");
    }
}
