//! Timelines built from episodes: short runs of related actions (a fault,
//! the traffic around it, its repair) that start at some time and are merged
//! into one scenario timeline of `at` steps.

use std::time::Duration;

use tandem::scenario::{Action, Check, Condition, Step, Timing};

/// How long the first step waits for the cluster to converge, so that the
/// first messages go to known members.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Related actions at offsets from a start time.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// When the episode starts, from the start of the run.
    pub start: Duration,
    /// The actions, with their offsets from `start`, in order. Sends may
    /// leave their tag empty: [`lay_out`] numbers them.
    pub actions: Vec<(Duration, Action)>,
}

/// Merges episodes into a timeline: a first step that awaits convergence,
/// then every action at its absolute time (`at`), capped at `end` (the start
/// of the settle tail), in time order. Actions at the same time keep their
/// episode's order. Sends with an empty tag are tagged `m1`, `m2`, ... in
/// timeline order.
pub fn lay_out(episodes: &[Episode], end: Duration) -> Vec<Step> {
    let mut timed: Vec<(Duration, Action)> = episodes
        .iter()
        .flat_map(|e| e.actions.iter().map(|(offset, action)| ((e.start + *offset).min(end), action.clone())))
        .collect();
    timed.sort_by_key(|(at, _)| *at);
    let mut sends = 0;
    let converge =
        Action::Await { condition: Condition { node: None, check: Check::Converged }, timeout: CONVERGE_TIMEOUT };
    let first = Step { timing: Timing::Immediately, action: converge, line: 0 };
    let rest = timed.into_iter().map(|(at, mut action)| {
        if let Action::Broadcast { tag, .. } | Action::Direct { tag, .. } = &mut action {
            if tag.is_empty() {
                sends += 1;
                *tag = format!("m{sends}");
            }
        }
        Step { timing: Timing::At(at), action, line: 0 }
    });
    std::iter::once(first).chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn episodes_interleave_in_time_and_cap_at_the_end() {
        let send = |from| Action::Broadcast { from, tag: String::new(), size: 32 };
        let episodes = [
            Episode { start: ms(1000), actions: vec![(ms(0), send(0)), (ms(5000), Action::Crash { node: 1 })] },
            Episode { start: ms(2000), actions: vec![(ms(0), send(1))] },
        ];
        let steps = lay_out(&episodes, ms(4000));
        let at: Vec<Timing> = steps.iter().map(|s| s.timing).collect();
        assert_eq!(at, [Timing::Immediately, Timing::At(ms(1000)), Timing::At(ms(2000)), Timing::At(ms(4000))]);
        assert!(matches!(&steps[1].action, Action::Broadcast { from: 0, tag, .. } if tag == "m1"));
        assert!(matches!(&steps[2].action, Action::Broadcast { from: 1, tag, .. } if tag == "m2"));
        assert_eq!(steps[3].action, Action::Crash { node: 1 });
    }
}
