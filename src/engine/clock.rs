//! A node's clocks, as `clock` steps set them ([`ClockChange`]): a pure
//! function of true time (the run's), shared by every backend.
//!
//! A node has a monotonic clock (`Instant`, `tokio::time`) and a wall clock
//! (`SystemTime`). Both run at the node's rate, `1 + drift`; the wall clock
//! also carries a signed offset that `offset` sets and `jump` moves. The
//! monotonic clock never jumps, so it never goes back.
//!
//! ```
//! use std::time::Duration;
//! use tandem::engine::clock::NodeClock;
//! use tandem::scenario::{ClockChange, Skew};
//!
//! let mut clock = NodeClock::default();
//! let second = Duration::from_secs(1);
//! clock.apply(second, &ClockChange::Drift(1.0)); // twice as fast from 1 s
//! assert_eq!(clock.monotonic(3 * second), 5 * second);
//! clock.apply(3 * second, &ClockChange::Jump(Skew::behind(10 * second)));
//! assert_eq!(clock.wall_shift(3 * second), -8_000_000_000); // 2 s ahead, then 10 s back
//! assert_eq!(clock.true_time(5 * second), 3 * second);
//! ```

use std::cell::Cell;
use std::time::Duration;

use serde::Serialize;

use crate::scenario::ClockChange;

/// What one node's clocks read at each true time. The default reads true time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NodeClock {
    /// How fast both clocks run: `1 + drift`.
    rate: f64,
    /// The true time of the last rate change.
    since: Duration,
    /// What the monotonic clock read then (as time since the run began).
    monotonic_then: Duration,
    /// The wall clock minus the monotonic clock, in nanoseconds.
    wall_minus_monotonic: i128,
}

impl Default for NodeClock {
    fn default() -> NodeClock {
        NodeClock { rate: 1.0, since: Duration::ZERO, monotonic_then: Duration::ZERO, wall_minus_monotonic: 0 }
    }
}

impl NodeClock {
    /// What the monotonic clock reads at true time `now`, as time since the
    /// run began (never less than at an earlier `now`).
    pub fn monotonic(&self, now: Duration) -> Duration {
        let run = now.saturating_sub(self.since);
        if self.rate == 1.0 {
            return self.monotonic_then + run;
        }
        self.monotonic_then + Duration::from_nanos((run.as_nanos() as f64 * self.rate) as u64)
    }

    /// How far the wall clock is ahead of true time at `now`, in
    /// nanoseconds (negative: behind).
    pub fn wall_shift(&self, now: Duration) -> i128 {
        self.monotonic(now).as_nanos() as i128 - now.as_nanos() as i128 + self.wall_minus_monotonic
    }

    /// The earliest true time (not before the last change) at which the
    /// monotonic clock reads at least `reading`: when a timer set on the
    /// node's clock fires.
    pub fn true_time(&self, reading: Duration) -> Duration {
        let ahead = reading.saturating_sub(self.monotonic_then);
        if self.rate == 1.0 {
            return self.since + ahead;
        }
        let mut at = self.since + Duration::from_nanos((ahead.as_nanos() as f64 / self.rate).ceil() as u64);
        // Float rounding: step forward until the reading is reached.
        while self.monotonic(at) < reading {
            at += Duration::from_nanos(1);
        }
        at
    }

    /// Carries out `change` at true time `now`.
    pub fn apply(&mut self, now: Duration, change: &ClockChange) {
        match change {
            ClockChange::Drift(drift) => {
                assert!(ClockChange::DRIFT.contains(drift), "drift {drift} out of range");
                self.monotonic_then = self.monotonic(now);
                self.since = now;
                self.rate = 1.0 + drift;
            }
            ClockChange::Jump(skew) => self.wall_minus_monotonic += skew.as_nanos(),
            ClockChange::Offset(skew) => {
                let monotonic = self.monotonic(now).as_nanos() as i128;
                self.wall_minus_monotonic = now.as_nanos() as i128 + skew.as_nanos() - monotonic;
            }
        }
    }
}

thread_local! {
    static THREAD_CLOCK: Cell<Option<ThreadClock>> = const { Cell::new(None) };
}

/// A real node's clock on the thread that runs it: the [`NodeClock`] and
/// the real monotonic reading at which its run began. The clock
/// interposer (in `tandem-sim`, linked into the `tandem` binary) reads it
/// outside a simulation, so that what the node's code reads on this
/// thread follows the node's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThreadClock {
    /// The node's clock.
    pub clock: NodeClock,
    /// The real `CLOCK_MONOTONIC` reading at true time zero.
    pub began: Duration,
}

/// Sets (or with `None` clears) the clock of the node running on this thread.
pub fn set_thread_clock(clock: Option<ThreadClock>) {
    THREAD_CLOCK.set(clock);
}

/// The clock of the node running on this thread, if one is set.
pub fn thread_clock() -> Option<ThreadClock> {
    THREAD_CLOCK.get()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Skew;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn drift_changes_the_rate_of_both_clocks_and_jumps_only_the_wall() {
        let mut clock = NodeClock::default();
        clock.apply(2 * S, &ClockChange::Drift(-0.5));
        assert_eq!(clock.monotonic(4 * S), 3 * S);
        assert_eq!(clock.wall_shift(4 * S), -1_000_000_000);
        clock.apply(4 * S, &ClockChange::Jump(Skew::ahead(5 * S)));
        assert_eq!(clock.monotonic(4 * S), 3 * S, "a jump leaves the monotonic clock");
        assert_eq!(clock.wall_shift(4 * S), 4_000_000_000);
        clock.apply(4 * S, &ClockChange::Offset(Skew::behind(S)));
        assert_eq!(clock.wall_shift(4 * S), -1_000_000_000, "an offset replaces what came before");
        assert_eq!(clock.true_time(4 * S), 6 * S);
        assert!(clock.monotonic(clock.true_time(3 * S + Duration::from_nanos(7))) >= 3 * S + Duration::from_nanos(7));
    }
}
