//! Assertions from inside node code, in the style of Antithesis and
//! moonpool: they land in the run's history with the node and the time,
//! never panic the node, and cost a branch outside a run.
//!
//! - [`always!`](crate::always): must hold every time it is evaluated; a
//!   false one fails the run.
//! - [`sometimes!`](crate::sometimes): a coverage goal, reported as hit
//!   (it held at least once) or missed.
//! - [`reachable!`](crate::reachable): a coverage goal hit when reached.
//! - [`assert_unreachable!`](crate::assert_unreachable): reaching it fails the run.
//! - [`buggify!`](crate::buggify): a deterministic fault-injection point,
//!   true now and then in the simulation (FoundationDB's BUGGIFY), never
//!   over a real network.
//!
//! ```
//! use tandem::probe::Probe;
//! let probe = Probe::disabled(); // from NodeContext::probe in a run
//! let (acked, sent) = (3, 5);
//! tandem::always!(probe, acked <= sent, "acks never exceed sends");
//! tandem::sometimes!(probe, acked < sent, "a message is in flight");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The kind of an in-node assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertKind {
    /// Must always hold.
    Always,
    /// Should hold at least once in a run.
    Sometimes,
    /// Should be reached at least once.
    Reachable,
    /// Must never be reached.
    Unreachable,
}

/// One evaluation of an in-node assertion, as recorded in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assertion {
    /// Which macro.
    pub kind: AssertKind,
    /// Its message: the assertion's identity.
    pub name: String,
    /// Whether it held (reached, for `reachable!`; `false` for `assert_unreachable!`).
    pub holds: bool,
}

impl Assertion {
    /// Whether this evaluation fails the run.
    pub fn fails(&self) -> bool {
        matches!(self.kind, AssertKind::Always | AssertKind::Unreachable) && !self.holds
    }
}

/// A node's handle for assertions and buggify points. Only the first
/// evaluation of each (assertion, outcome) pair is recorded, so a hot path
/// costs a set lookup.
#[derive(Clone)]
pub struct Probe {
    sink: Option<Arc<dyn Fn(Assertion) + Send + Sync>>,
    seen: Arc<Mutex<BTreeSet<(AssertKind, String, bool)>>>,
    buggify: Option<Arc<Buggify>>,
}

/// The buggify decisions of one node incarnation in a simulated run.
struct Buggify {
    /// The run's seed: which points are enabled for the whole run.
    run: u64,
    /// The node's seed: when an enabled point fires.
    node: u64,
    /// How many times each point was evaluated.
    evaluations: Mutex<BTreeMap<&'static str, u64>>,
}

/// One in this many buggify points is enabled in a run, and an enabled
/// point fires at one in this many evaluations (FoundationDB's odds).
const BUGGIFY_ODDS: u64 = 4;

/// Whether a hash of `parts` falls in the one-in-[`BUGGIFY_ODDS`] case.
fn one_in_odds(parts: &[&[u8]]) -> bool {
    xxhash_rust::xxh3::xxh3_64(&parts.concat()) % BUGGIFY_ODDS == 0
}

impl Probe {
    /// A probe that records into `sink` (the harness makes these).
    pub fn new(sink: impl Fn(Assertion) + Send + Sync + 'static) -> Probe {
        Probe { sink: Some(Arc::new(sink)), seen: Arc::default(), buggify: None }
    }

    /// A probe that records nothing: a node running outside tandem.
    pub fn disabled() -> Probe {
        Probe { sink: None, seen: Arc::default(), buggify: None }
    }

    /// This probe with its buggify points live, decided by the run's seed
    /// `run` and the node incarnation's seed `node`. Only the simulation
    /// makes these; without it [`buggify`](Probe::buggify) is always false.
    pub fn with_buggify(self, run: u64, node: u64) -> Probe {
        Probe { buggify: Some(Arc::new(Buggify { run, node, evaluations: Mutex::default() })), ..self }
    }

    /// Whether the buggify point `site` fires at this evaluation: never
    /// outside the simulation; else the point is enabled for the whole run
    /// with odds 1 in 4 (from the run's seed), and an enabled point fires at
    /// 1 in 4 of its evaluations (from the node's seed and how many times
    /// it was evaluated). Use the [`buggify!`](crate::buggify) macro.
    pub fn buggify(&self, site: &'static str) -> bool {
        let Some(b) = &self.buggify else { return false };
        if !one_in_odds(&[&b.run.to_le_bytes(), site.as_bytes()]) {
            return false;
        }
        let evaluation = {
            let mut evaluations = b.evaluations.lock().expect("probe lock");
            let count = evaluations.entry(site).or_insert(0);
            *count += 1;
            *count
        };
        one_in_odds(&[&b.node.to_le_bytes(), &evaluation.to_le_bytes(), site.as_bytes()])
    }

    /// Records an evaluation (first time per outcome). Use the macros.
    pub fn record(&self, kind: AssertKind, holds: bool, name: &str) {
        let Some(sink) = &self.sink else { return };
        let fresh = self.seen.lock().expect("probe lock").insert((kind, name.to_string(), holds));
        if fresh {
            sink(Assertion { kind, name: name.to_string(), holds });
        }
    }
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("enabled", &self.sink.is_some())
            .field("buggify", &self.buggify.is_some())
            .finish()
    }
}

/// Asserts from node code that `cond` always holds; a false one fails the
/// run (never the node). `always!(probe, cond, "name")`.
#[macro_export]
macro_rules! always {
    ($probe:expr, $cond:expr, $name:expr) => {
        $probe.record($crate::probe::AssertKind::Always, $cond, $name)
    };
}

/// A coverage goal from node code: hit when `cond` holds at least once.
/// `sometimes!(probe, cond, "name")`.
#[macro_export]
macro_rules! sometimes {
    ($probe:expr, $cond:expr, $name:expr) => {
        $probe.record($crate::probe::AssertKind::Sometimes, $cond, $name)
    };
}

/// A coverage goal from node code: hit when reached. `reachable!(probe, "name")`.
#[macro_export]
macro_rules! reachable {
    ($probe:expr, $name:expr) => {
        $probe.record($crate::probe::AssertKind::Reachable, true, $name)
    };
}

/// Marks node code that must never run: reaching it fails the run.
/// `assert_unreachable!(probe, "name")`.
#[macro_export]
macro_rules! assert_unreachable {
    ($probe:expr, $name:expr) => {
        $probe.record($crate::probe::AssertKind::Unreachable, false, $name)
    };
}

/// A fault-injection point in node code: true now and then in the
/// simulation, decided by the run's seed (so a reproducer replays it),
/// never over a real network or outside tandem. `if buggify!(probe) {
/// /* take the rare path: drop, delay, shrink a buffer */ }`.
#[macro_export]
macro_rules! buggify {
    ($probe:expr) => {
        $probe.buggify(concat!(file!(), ":", line!(), ":", column!()))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_is_recorded_once_and_disabled_probes_record_nothing() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let probe = Probe::new(move |a| sink.lock().unwrap().push(a));
        for i in 0..3 {
            crate::always!(probe, i < 2, "small");
        }
        crate::reachable!(probe, "here");
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 3);
        assert!(!got[0].fails() && got[1].fails() && !got[2].fails());
        crate::always!(Probe::disabled(), false, "never recorded");
    }

    #[test]
    fn buggify_is_a_pure_function_of_the_seeds_and_never_fires_without_them() {
        let fired = |probe: &Probe| -> Vec<bool> {
            (0..200).map(|i| probe.buggify(if i % 2 == 0 { "site a" } else { "site b" })).collect()
        };
        assert!(fired(&Probe::disabled()).iter().all(|f| !f));
        assert!(fired(&Probe::new(|_| {})).iter().all(|f| !f), "a probe outside the simulation never fires");
        let enabled = (0..64u64).find(|&run| fired(&Probe::disabled().with_buggify(run, 0)).contains(&true)).unwrap();
        let (one, two) = (Probe::disabled().with_buggify(enabled, 7), Probe::disabled().with_buggify(enabled, 7));
        let first = fired(&one);
        assert_eq!(first, fired(&two), "the same seeds, the same decisions");
        let count = first.iter().filter(|f| **f).count();
        assert!((5..=60).contains(&count), "an enabled point fires now and then: {count} of 200");
        let runs_enabled =
            (0..400u64).filter(|&run| fired(&Probe::disabled().with_buggify(run, 1)).contains(&true)).count();
        assert!((100..=300).contains(&runs_enabled), "{runs_enabled} of 400 runs enable a point");
    }
}
