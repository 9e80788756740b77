//! The simulation's QUIC model, as MsQuic behaves on loopback (each rule
//! pinned against MsQuic in `msquic/tests/quic_model_pins.rs`; the turmoil
//! backend approximates it over turmoil's TCP, where noted).
//!
//! - **Retransmission**: each transmission of a frame is lost at the link's
//!   loss rate *of that moment*, and a cut link loses every one
//!   ([`Transmissions`]). A lost one goes out again after a probe timeout
//!   (the round trip plus [`QuicModel::probe_timeout`]) that doubles, so a
//!   frame held by a cut or by loss arrives at the first retransmission
//!   after the heal, and the stream behind it waits (head-of-line blocking).
//! - **Dead peers**: a connection closes when its oldest unacknowledged
//!   packet is [`QuicModel::idle_timeout`] old (MsQuic's
//!   `DisconnectTimeout`, checked punctually). A frame sent into a cut, or
//!   whose acknowledgement is cut, is unacknowledged from when it was sent;
//!   an idle connection's next keep-alive ping ([`QuicModel::keep_alive`])
//!   is, from when it goes out. So a cut, either way, breaks an idle
//!   connection 2.5 s after it began, and one that carried a frame 2 s
//!   after that frame; a shorter cut keeps it. (The turmoil backend closes
//!   a connection that hears nothing for the idle timeout plus a keep-alive
//!   interval.)
//! - **Dials**: a handshake's three flights (out, back, out) are lost like
//!   frames; a lost one goes out again at the dial's next keep-alive tick
//!   (MsQuic's keep-alive timer runs during the handshake), and a handshake
//!   that hears nothing for [`QuicModel::handshake_timeout`] fails. (The turmoil
//!   backend's dials wait for a one-way cut to heal.)
//! - **Latency**: each frame draws its link's latency between the range's
//!   bounds; a connection's frames arrive in order.

use std::time::Duration;

use rand::Rng;
use tandem::transport::TransportError;
use tokio::time::Instant;

/// QUIC's time constants, as the simulation models them (each pinned
/// against MsQuic in `msquic/tests/quic_model_pins.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuicModel {
    /// An idle connection pings this often. MsQuic's keep-alive timer also
    /// runs during the handshake: a lost handshake flight goes out again at
    /// its next tick.
    pub keep_alive: Duration,
    /// MsQuic's `DisconnectTimeout` (and idle timeout): a connection whose
    /// oldest unacknowledged packet is this old closes.
    pub idle_timeout: Duration,
    /// A first retransmission waits this long beyond the round trip
    /// (MsQuic's 25 ms maximum acknowledgement delay and its RTT variance:
    /// 29 ms on loopback); it doubles on each further loss.
    pub probe_timeout: Duration,
    /// A handshake that hears nothing for this long fails (MsQuic's
    /// handshake idle timeout, the transport's connect timeout).
    pub handshake_timeout: Duration,
}

impl Default for QuicModel {
    /// The same values the MsQuic transport is configured with.
    fn default() -> Self {
        QuicModel {
            keep_alive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(2),
            probe_timeout: Duration::from_millis(29),
            handshake_timeout: Duration::from_secs(3),
        }
    }
}

impl QuicModel {
    /// The transmissions of one frame on a connection whose round trip is
    /// `round_trip`.
    pub fn transmissions(&self, round_trip: Duration) -> Transmissions {
        Transmissions {
            model: *self,
            probe: round_trip + self.probe_timeout,
            next_probe: round_trip + self.probe_timeout,
            next_tick: self.keep_alive,
            now: Duration::ZERO,
        }
    }
}

/// Whether one packet is lost on a link that now loses `rate` of its
/// packets. A lossless link draws nothing from `rng`.
pub fn lost(rate: f64, rng: &mut impl Rng) -> bool {
    rate >= 1.0 || (rate > 0.0 && rng.random_bool(rate))
}

/// One frame's transmissions, as MsQuic makes them (measured on loopback):
/// at the probe timeouts, the round trip plus [`QuicModel::probe_timeout`]
/// doubling (30, 90, 210, 450, 930 ms after the send), and at the keep-alive
/// ticks after it (500, 1000, 1500 ms). Probes stop in the last keep-alive
/// interval before the connection gives up (MsQuic caps its loss timer
/// there: a frame cut until 1.6 s after its send is never delivered). Each
/// transmission is lost at the loss rate of its moment (a cut link loses
/// every one), so loss that ends stops costing at the next one. Whether the
/// connection gives up is a matter of time: [`QuicModel::idle_timeout`].
#[derive(Debug, Clone)]
pub struct Transmissions {
    model: QuicModel,
    probe: Duration,
    next_probe: Duration,
    next_tick: Duration,
    /// Since the send, when the transmission being made goes out.
    now: Duration,
}

/// What became of one transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmission {
    /// It got through.
    Delivered,
    /// It was lost; the next one goes out after this long.
    RetryAfter(Duration),
}

impl Transmissions {
    /// Makes the next transmission on a link that now loses `rate` of its
    /// packets.
    pub fn attempt(&mut self, rate: f64, rng: &mut impl Rng) -> Transmission {
        if !lost(rate, rng) {
            return Transmission::Delivered;
        }
        let last_probe = self.model.idle_timeout.saturating_sub(self.model.keep_alive);
        let probe = Some(self.next_probe).filter(|&at| at <= last_probe);
        let next = probe.map_or(self.next_tick, |probe| probe.min(self.next_tick));
        if probe == Some(next) {
            self.probe *= 2;
            self.next_probe += self.probe;
        }
        if self.next_tick == next {
            self.next_tick += self.model.keep_alive;
        }
        let wait = next - self.now;
        self.now = next;
        Transmission::RetryAfter(wait)
    }
}

/// A dial's handshake: three flights (out, back, out). `through` says
/// whether a flight gets through now (`true`: outbound), at the loss of its
/// moment; a lost one goes out again at the dial's next keep-alive tick, as
/// MsQuic's keep-alive timer runs during the handshake. Fails when a flight
/// is lost for the handshake timeout (an idle timer, restarted by every
/// flight that gets through).
pub(crate) async fn handshake(model: QuicModel, mut through: impl FnMut(bool) -> bool) -> Result<(), TransportError> {
    let began = Instant::now();
    let mut give_up = began + model.handshake_timeout;
    let mut ticks = 0;
    for outbound in [true, false, true] {
        while !through(outbound) {
            ticks += 1;
            let tick = began + model.keep_alive * ticks;
            if tick >= give_up {
                tokio::time::sleep_until(give_up).await;
                return Err(TransportError::TimedOut("handshake lost".into()));
            }
            tokio::time::sleep_until(tick).await;
        }
        // Hearing from the peer restarts MsQuic's handshake idle timer.
        give_up = Instant::now() + model.handshake_timeout;
    }
    Ok(())
}

/// Frames queued per connection before `send` waits (both backends).
pub(crate) const SEND_QUEUE: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const RTT: Duration = Duration::from_millis(2);

    /// Transmissions of one packet at a steady `rate` until delivered: its
    /// total delay.
    fn steady(rate: f64, rng: &mut impl Rng) -> Duration {
        let mut packet = QuicModel::default().transmissions(RTT);
        let mut waited = Duration::ZERO;
        while let Transmission::RetryAfter(wait) = packet.attempt(rate, rng) {
            waited += wait;
        }
        waited
    }

    #[test]
    fn loss_costs_time() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        assert_eq!(steady(0.0, &mut rng), Duration::ZERO);
        let delays: Vec<_> = (0..1000).map(|_| steady(0.2, &mut rng)).collect();
        let delayed = delays.iter().filter(|d| !d.is_zero()).count();
        assert!((100..300).contains(&delayed), "about a fifth of frames wait: {delayed}");
    }

    #[test]
    fn each_transmission_sees_the_loss_of_its_moment() {
        let model = QuicModel::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut packet = model.transmissions(RTT);
        let probe = RTT + model.probe_timeout;
        assert_eq!(packet.attempt(1.0, &mut rng), Transmission::RetryAfter(probe));
        assert_eq!(packet.attempt(1.0, &mut rng), Transmission::RetryAfter(probe * 2));
        // The loss ended: the next transmission gets through.
        assert_eq!(packet.attempt(0.0, &mut rng), Transmission::Delivered);
    }

    #[test]
    fn a_lost_frame_goes_out_at_the_probe_timeouts_and_the_keep_alive_ticks() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut packet = QuicModel::default().transmissions(RTT);
        let mut at = Duration::ZERO;
        let mut schedule = Vec::new();
        while at < Duration::from_secs(2) {
            let Transmission::RetryAfter(wait) = packet.attempt(1.0, &mut rng) else { unreachable!() };
            at += wait;
            schedule.push(at.as_millis());
        }
        // MsQuic, a frame cut from its send: about 30, 90, 210, 450, 930 ms and
        // the ticks at 500, 1000, 1500 ms; nothing in the last 500 ms.
        assert_eq!(schedule, [31, 93, 217, 465, 500, 961, 1000, 1500, 2000]);
    }
}
