//! The driving API shared by the simulated and the real runner.
//!
//! A scenario is executed against this trait only, so the same timeline,
//! conditions and oracle run on both backends.

use std::time::Duration;

use crate::record::Record;

/// A running cluster of reference nodes that a timeline can drive.
///
/// Node groups are slices of node indices; `None` means every node. Actions
/// take effect at once (the simulation applies them between two ticks).
pub trait Cluster {
    /// How many nodes the cluster has (alive or not).
    fn size(&self) -> u32;

    /// Time since the run began: simulated in the simulation, wall in real runs.
    fn now(&self) -> Duration;

    /// Reads or updates what the run observed so far.
    fn with_record<R>(&self, f: impl FnOnce(&mut Record) -> R) -> R;

    /// Node `from` broadcasts `size` bytes tagged `tag`.
    fn broadcast(&mut self, from: u32, tag: &str, size: usize);

    /// Node `from` sends `size` bytes tagged `tag` to node `to`.
    fn direct(&mut self, from: u32, to: u32, tag: &str, size: usize);

    /// Drops everything from `a` to `b`, and from `b` to `a` unless `oneway`.
    fn partition(&mut self, a: &[u32], b: &[u32], oneway: bool);

    /// Removes partitions between `a` and `b` (both directions), or all.
    fn heal(&mut self, groups: Option<(&[u32], &[u32])>);

    /// Sets the latency range between groups, or on every link.
    fn latency(&mut self, min: Duration, max: Duration, groups: Option<(&[u32], &[u32])>);

    /// Sets the packet loss probability between groups, or on every link.
    fn loss(&mut self, rate: f64, groups: Option<(&[u32], &[u32])>);

    /// Kills a running node.
    fn crash(&mut self, node: u32);

    /// Starts a crashed node again as a new incarnation.
    fn restart(&mut self, node: u32);

    /// Moves a running node's listener to `port` (a fresh one when `None`).
    fn rebind(&mut self, node: u32, port: Option<u16>);

    /// Lets time pass until `done` holds for the record or `deadline` (time
    /// since the run began) is reached; returns whether `done` held.
    fn run_until(&mut self, deadline: Duration, done: impl FnMut(&Record) -> bool) -> bool;
}

/// Every pair `(x, y)` with `x` in `a` and `y` in `b`, or every ordered pair
/// of distinct nodes when `groups` is `None`.
pub fn links(size: u32, groups: Option<(&[u32], &[u32])>) -> Vec<(u32, u32)> {
    match groups {
        Some((a, b)) => a.iter().flat_map(|&x| b.iter().filter(move |&&y| y != x).map(move |&y| (x, y))).collect(),
        None => (0..size).flat_map(|x| (0..size).filter(move |&y| y != x).map(move |y| (x, y))).collect(),
    }
}
