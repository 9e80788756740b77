//! Helpers shared by the integration tests; they work on either backend.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use tandem::cluster::Cluster;
use tandem::oracle;
use tandem::record::Record;
use tandem::scenario::{Check, Condition};

/// One second.
pub const SECOND: Duration = Duration::from_secs(1);

/// A predicate for `run_until`: `check` holds for `node` (every live node when `None`).
pub fn holds(check: Check, node: Option<u32>) -> impl FnMut(&Record) -> bool {
    let condition = Condition { node, check };
    move |r| oracle::check(r, &condition).is_none()
}

/// Runs until `done`, failing the test after `limit` more time.
pub fn await_for<C: Cluster>(cluster: &mut C, limit: Duration, what: &str, done: impl FnMut(&Record) -> bool) {
    let deadline = cluster.now() + limit;
    assert!(cluster.run_until(deadline, done), "timed out after {limit:?} waiting for {what}");
}

/// Lets `time` pass.
pub fn wait<C: Cluster>(cluster: &mut C, time: Duration) {
    let deadline = cluster.now() + time;
    cluster.run_until(deadline, |_| false);
}

/// The tags `node` delivered, in order.
pub fn tags<C: Cluster>(cluster: &C, node: u32) -> Vec<String> {
    cluster.with_record(|r| r.nodes[node as usize].deliveries.iter().map(|d| d.tag.clone()).collect())
}

/// Asserts that no invariant is violated now.
pub fn no_violation<C: Cluster>(cluster: &C) {
    let now = cluster.now();
    assert_eq!(cluster.with_record(|r| oracle::end_of_run(r, now)), None, "invariants must hold");
}
