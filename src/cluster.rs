//! The driving API both backends implement: the executor runs a scenario
//! against this trait only, so the same timeline and the same properties run
//! in the simulation and over MsQuic.

use std::time::Duration;

use crate::history::History;
use crate::host::Recorder;
use crate::scenario::{LinkChange, NodeIdx, Scope};
use crate::storage::DiskFault;
use crate::system::System;

/// A running cluster of a system's nodes that a timeline can drive.
///
/// Actions take effect at once (the simulation applies them between two
/// ticks). The executor only asks a node that runs to carry out an
/// operation, crash or rebind, and only restarts one that is down.
pub trait Cluster<S: System> {
    /// How many nodes the cluster has (alive or not).
    fn size(&self) -> u32;

    /// Time since the run began: simulated in the simulation, wall in real runs.
    fn now(&self) -> Duration;

    /// The run's recorder, owner of the history.
    fn recorder(&self) -> &Recorder<S>;

    /// Hands `op` (of step `step`) to node `node` and returns at once: the
    /// node invokes it at this time and it runs while the timeline moves on
    /// (its completion is recorded when it comes).
    fn invoke(&mut self, node: NodeIdx, op: S::Op, step: usize);

    /// Applies `change` to every link [`LinkChange::links`] names for `scope`.
    fn set_links(&mut self, change: &LinkChange, scope: &Scope);

    /// Sets (or, with [`DiskFault::None`], clears) a fault of `node`'s disk,
    /// whether the node runs or not.
    fn disk(&mut self, node: NodeIdx, fault: DiskFault);

    /// Kills a running node.
    fn crash(&mut self, node: NodeIdx);

    /// Starts a crashed node again as a new incarnation; returns once it runs.
    fn restart(&mut self, node: NodeIdx);

    /// Moves a running node's listener to `port` (a fresh one when `None`).
    fn rebind(&mut self, node: NodeIdx, port: Option<u16>);

    /// Lets time pass until `done` holds for the history or `deadline` (time
    /// since the run began) is reached; returns whether `done` held.
    fn run_until(&mut self, deadline: Duration, done: impl FnMut(&History<S>) -> bool) -> bool;
}
