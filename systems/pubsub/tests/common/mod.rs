//! Helpers shared by the simulated integration tests.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tandem::engine::cluster::Cluster;
use tandem::engine::execute::unmet;
use tandem::{EventKind, History, Judge, NodeIdx, Oracle, True};
use tandem_pubsub::{Condition, Observation, Op, PubSub};
use tandem_sim::{SimOptions, TurmoilCluster};

/// One second.
pub const SECOND: Duration = Duration::from_secs(1);

/// A simulated cluster of pub/sub nodes.
pub fn cluster(options: SimOptions) -> TurmoilCluster<PubSub> {
    TurmoilCluster::new(Arc::new(PubSub), options)
}

/// The bundled scenarios' directory.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

/// `converged = true`.
pub fn converged() -> Condition {
    Condition::Converged(True)
}

/// A predicate for `run_until`: `condition` holds for `node` (every live
/// node when `None`).
pub fn holds(condition: Condition, node: Option<NodeIdx>) -> impl FnMut(&History<PubSub>) -> bool {
    move |h| unmet(&PubSub, h, node, &condition).is_none()
}

/// Runs until `done`, failing the test after `limit` more time.
pub fn await_for<C: Cluster<PubSub>>(
    cluster: &mut C,
    limit: Duration,
    what: &str,
    done: impl FnMut(&History<PubSub>) -> bool,
) {
    let deadline = cluster.now() + limit;
    assert!(cluster.run_until(deadline, done), "timed out after {limit:?} waiting for {what}");
}

/// Lets `time` pass.
pub fn wait<C: Cluster<PubSub>>(cluster: &mut C, time: Duration) {
    let deadline = cluster.now() + time;
    cluster.run_until(deadline, |_| false);
}

/// Node `from` broadcasts a `size`-byte message tagged `tag`.
pub fn broadcast<C: Cluster<PubSub>>(cluster: &mut C, from: NodeIdx, tag: &str, size: usize) {
    cluster.invoke(from, Op::Broadcast { from, tag: Some(tag.into()), size: Some(size) }, 0);
}

/// Node `from` sends a `size`-byte message tagged `tag` to node `to`.
pub fn direct<C: Cluster<PubSub>>(cluster: &mut C, from: NodeIdx, to: NodeIdx, tag: &str, size: usize) {
    cluster.invoke(from, Op::Direct { from, to, tag: Some(tag.into()), size: Some(size) }, 0);
}

/// The tags `node` delivered, in order.
pub fn tags<C: Cluster<PubSub>>(cluster: &C, node: NodeIdx) -> Vec<String> {
    cluster.recorder().read(|h| {
        h.events()
            .iter()
            .filter(|e| e.node == Some(node))
            .filter_map(|e| match &e.event {
                EventKind::Observe(Observation::Delivered { tag, .. }) => Some(tag.clone()),
                _ => None,
            })
            .collect()
    })
}

/// How many messages `node` delivered.
pub fn received<C: Cluster<PubSub>>(cluster: &C, node: NodeIdx) -> u64 {
    cluster.recorder().read(|h| h.state().node(node).delivered)
}

/// Asserts that every property holds now, as if the run ended.
pub fn no_violation<C: Cluster<PubSub>>(cluster: &C) {
    let now = cluster.now();
    let verdict = cluster.recorder().read(|h| Judge::new(&PubSub.properties()).finish(h, now));
    if let Err(violation) = verdict {
        panic!("properties must hold: {violation}");
    }
}
