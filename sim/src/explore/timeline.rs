//! Timelines built from episodes: short runs of related actions (a fault,
//! the operations around it, its repair) that start at some time and are
//! merged into one scenario timeline of `at` steps.

use std::time::Duration;

use tandem::scenario::{Action, Call, Condition, Step, Timing};

/// How long the first step waits for the system to be ready (for the
/// reference system: membership convergence).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Related actions at offsets from a start time.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// When the episode starts, from the start of the run.
    pub start: Duration,
    /// The actions, with their offsets from `start`, in order.
    pub actions: Vec<(Duration, Action)>,
}

/// Merges episodes into a timeline: a first step that awaits `ready` on
/// every node (when given), then every action at its absolute time (`at`),
/// capped at `end` (the start of the settle tail), in time order. Actions at
/// the same time keep their episode's order.
pub fn lay_out(episodes: &[Episode], end: Duration, ready: Option<Call>) -> Vec<Step> {
    let mut timed: Vec<(Duration, Action)> = episodes
        .iter()
        .flat_map(|e| e.actions.iter().map(|(offset, action)| ((e.start + *offset).min(end), action.clone())))
        .collect();
    timed.sort_by_key(|(at, _)| *at);
    let first = ready.map(|check| {
        Step::new(
            Timing::Immediately,
            Action::Await { condition: Condition { node: None, check }, timeout: READY_TIMEOUT },
        )
    });
    let rest = timed.into_iter().map(|(at, action)| Step::new(Timing::At(at), action));
    first.into_iter().chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn episodes_interleave_in_time_and_cap_at_the_end() {
        let crash = |node| Action::Crash { node };
        let episodes = [
            Episode { start: ms(1000), actions: vec![(ms(0), crash(0)), (ms(5000), crash(1))] },
            Episode { start: ms(2000), actions: vec![(ms(0), crash(2))] },
        ];
        let ready = Call { key: "ready".into(), value: toml::Value::Boolean(true) };
        let steps = lay_out(&episodes, ms(4000), Some(ready));
        let at: Vec<Timing> = steps.iter().map(|s| s.timing).collect();
        assert_eq!(at, [Timing::Immediately, Timing::At(ms(1000)), Timing::At(ms(2000)), Timing::At(ms(4000))]);
        assert!(matches!(&steps[0].action, Action::Await { .. }));
        assert_eq!(steps[3].action, Action::Crash { node: 1 });
        assert_eq!(lay_out(&episodes, ms(4000), None).len(), 3);
    }
}
