//! A calibration profile: timings of a real machine's stack, measured by
//! `tandem calibrate` on loopback and the local disk, that the simulation
//! takes its disk latency from.
//!
//! The simulation reads one profile per run: the default one compiled into
//! the build ([`Profile::default`], `profiles/default.toml`), so that the same
//! seed and build give the same trace anywhere, or one the run names
//! (`--profile FILE`, `TANDEM_PROFILE`). What it takes from it: every
//! simulated disk's sync latency ([`Profile::sync_latency`]). The QUIC
//! timings are recorded beside the simulation's own (BENCHMARKS.md); the
//! QUIC model keeps its constants.
//!
//! ```
//! use tandem::engine::profile::Profile;
//!
//! let profile = Profile::default();
//! assert!(profile.sync_latency() > std::time::Duration::ZERO);
//! assert_eq!(Profile::parse(&profile.to_toml()).unwrap(), profile);
//! ```

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The profile checked in as `profiles/default.toml`.
const DEFAULT: &str = include_str!("../../profiles/default.toml");

/// One measured quantity: percentiles of its samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many samples were taken.
    pub samples: usize,
    /// How many of them failed (a dial that timed out, a dead peer never
    /// noticed); they count in the percentiles at the time they failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: usize,
    /// The median.
    pub p50_us: f64,
    /// The 90th percentile.
    pub p90_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

impl Percentiles {
    /// The percentiles of `samples` (nearest rank), `failures` of which failed.
    ///
    /// # Panics
    ///
    /// When `samples` is empty.
    pub fn of(samples: &[Duration], failures: usize) -> Percentiles {
        assert!(!samples.is_empty(), "percentiles of no samples");
        let mut sorted = samples.to_vec();
        sorted.sort();
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            // Tenths of a microsecond: finer is noise.
            (sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e7).round() / 10.0
        };
        Percentiles { samples: samples.len(), failures, p50_us: at(50.0), p90_us: at(90.0), p99_us: at(99.0) }
    }

    /// The median as a duration, in whole microseconds.
    pub fn median(&self) -> Duration {
        Duration::from_micros(self.p50_us.max(0.0).round() as u64)
    }
}

/// The local disk, as the real backend's [`Storage`](crate::storage::Storage)
/// uses it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiskTimings {
    /// A write: the real storage keeps it in memory until a sync.
    pub write: Percentiles,
    /// A sync: write beside, fsync, rename over, fsync the directory.
    pub sync: Percentiles,
}

/// MsQuic on loopback, as the real backend uses it (`MsQuicTransport`, the
/// fault relays).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuicTimings {
    /// An 8-byte message there and back over one connection.
    pub round_trip: Percentiles,
    /// A dial through a relay that loses nothing, from `connect` to connected.
    pub handshake: Percentiles,
    /// A dial through a relay losing 10% of packets each way.
    pub dial_loss_10: Percentiles,
    /// A dial through a relay losing 30% of packets each way.
    pub dial_loss_30: Percentiles,
    /// A dial through a relay losing 50% of packets each way.
    pub dial_loss_50: Percentiles,
    /// From a two-way cut of an idle connection until the dialler's side
    /// reports it closed.
    pub dead_peer_idle: Percentiles,
    /// The same, when the dialler sends a frame into the cut.
    pub dead_peer_sending: Percentiles,
}

/// A calibration profile (see the [module](self)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Where and when it was measured.
    pub machine: String,
    /// The local disk.
    pub disk: DiskTimings,
    /// MsQuic on loopback; absent when calibrated without MsQuic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic: Option<QuicTimings>,
}

impl Default for Profile {
    /// The profile compiled into this build (`profiles/default.toml`).
    fn default() -> Profile {
        Profile::parse(DEFAULT).expect("profiles/default.toml is a valid profile")
    }
}

impl Profile {
    /// Parses a profile file's text.
    pub fn parse(text: &str) -> Result<Profile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads and parses a profile file.
    pub fn from_file(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Profile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The profile as a file's text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("profiles serialise")
    }

    /// How long a simulated disk's sync takes: the measured median, a
    /// constant so that a run stays a function of its seed, rounded up to
    /// whole milliseconds, the resolution of tokio's timers (a shorter
    /// sleep takes a millisecond anyway).
    pub fn sync_latency(&self) -> Duration {
        let millis = self.disk.sync.median().as_micros().div_ceil(1000);
        Duration::from_millis(millis as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = Percentiles::of(&samples, 2);
        assert_eq!((p.samples, p.failures, p.p50_us, p.p90_us, p.p99_us), (100, 2, 50.0, 90.0, 99.0));
        let one = Percentiles::of(&[Duration::from_millis(3)], 0);
        assert_eq!((one.p50_us, one.p99_us), (3000.0, 3000.0));
        assert_eq!(one.median(), Duration::from_millis(3));
    }

    #[test]
    fn the_default_profile_round_trips_and_gives_a_sync_latency() {
        let profile = Profile::default();
        assert_eq!(Profile::parse(&profile.to_toml()).unwrap(), profile);
        assert!(profile.sync_latency() > Duration::ZERO);
        assert_eq!(profile.sync_latency().subsec_micros() % 1000, 0, "whole milliseconds");
        assert!(Profile::parse("machine = 1").is_err());
    }
}
