//! Item 8: the consistency checkers' speed. A linearizable 10,000-call kv
//! history ([`generate::kv_history`]) checked by [`linear::check`] (goal:
//! under a second), and the same history with one stale read, whose
//! counterexample is found and shrunk.

use tandem::consistency::models::{KvModel, KvOutput};
use tandem::consistency::{generate, linear, Budget, Verdict};

use super::report::{Figure, Target};
use super::{best_of, Options};

/// The calls of the checked history (1,000 when quick), by 8 clients on 30 keys.
fn calls(quick: bool) -> u64 {
    if quick {
        1_000
    } else {
        10_000
    }
}

/// Checks the generated history, then the same with a stale read.
pub fn measure(options: &Options) -> Vec<Figure> {
    let n = calls(options.quick);
    let history = generate::kv_history(n, 8, 30, 0x5eed);
    let (secs, verdict) = best_of(options.reps, || linear::check(&KvModel, &history, Budget::default()));
    let linearizable = Figure::new(
        "checker.kv.linearizable",
        format!("linear::check of a linearizable {n}-call kv history (8 clients, 30 keys): {verdict:?}"),
        if verdict == Verdict::Consistent { secs * 1e3 } else { f64::NAN },
        "ms",
    )
    .target(Target::value_at_most(1_000.0));
    let mut stale = history;
    if let Some(read) = stale.iter().rposition(|c| matches!(c.output, Some(KvOutput::Value(Some(_))))) {
        stale[read].output = Some(KvOutput::Value(None));
    }
    let (secs, verdict) = best_of(options.reps, || linear::check(&KvModel, &stale, Budget::default()));
    let found = match &verdict {
        Verdict::Violated(counterexample) => {
            format!("violated, {} calls in the counterexample", counterexample.calls.len())
        }
        other => format!("{other:?} (expected a violation)"),
    };
    let violated = Figure::new(
        "checker.kv.stale_read",
        format!("the same history with its last non-empty get made stale: {found}"),
        if matches!(verdict, Verdict::Violated(_)) { secs * 1e3 } else { f64::NAN },
        "ms",
    )
    .target(Target::value_at_most(1_000.0));
    vec![linearizable, violated]
}
