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
//!
//! ```
//! use tandem::probe::Probe;
//! let probe = Probe::disabled(); // from NodeContext::probe in a run
//! let (acked, sent) = (3, 5);
//! tandem::always!(probe, acked <= sent, "acks never exceed sends");
//! tandem::sometimes!(probe, acked < sent, "a message is in flight");
//! ```

use std::collections::BTreeSet;
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

/// A node's handle for assertions. Only the first evaluation of each
/// (assertion, outcome) pair is recorded, so a hot path costs a set lookup.
#[derive(Clone)]
pub struct Probe {
    sink: Option<Arc<dyn Fn(Assertion) + Send + Sync>>,
    seen: Arc<Mutex<BTreeSet<(AssertKind, String, bool)>>>,
}

impl Probe {
    /// A probe that records into `sink` (the harness makes these).
    pub fn new(sink: impl Fn(Assertion) + Send + Sync + 'static) -> Probe {
        Probe { sink: Some(Arc::new(sink)), seen: Arc::default() }
    }

    /// A probe that records nothing: a node running outside tandem.
    pub fn disabled() -> Probe {
        Probe { sink: None, seen: Arc::default() }
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
        f.debug_struct("Probe").field("enabled", &self.sink.is_some()).finish()
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
}
