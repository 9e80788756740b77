//! The driving API both backends implement: the executor runs a scenario
//! against this trait only, so the same timeline and the same properties run
//! in the simulation and over MsQuic.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::recorder::Recorder;
use crate::history::{EventKind, History};
use crate::scenario::{Action, LinkChange, Network, NodeChange, NodeIdx, Scenario, Scope};
use crate::storage::DiskFault;
use crate::system::System;

/// What every backend builds a cluster from: the run's seed, the nodes and
/// their membership seeds, the links they start with, the planted bug and
/// the knobs. Each backend adds its own options around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// The run's seed: the nodes' RNGs and the network's derive from it.
    pub seed: u64,
    /// Node count.
    pub nodes: u32,
    /// The membership seed nodes every node starts with.
    pub seeds: Vec<NodeIdx>,
    /// Every link's latency and loss at the start.
    pub network: Network,
    /// The planted bug of every node, one of the system's.
    pub planted_bug: Option<&'static str>,
    /// The knob values of every node (the scenario's `[knobs]`).
    pub knobs: BTreeMap<String, i64>,
    /// How many clients each node has (the scenario's `clients`).
    pub clients: u32,
}

impl Setup {
    /// `nodes` nodes seeded by node 0, the default network (1-5 ms, no
    /// loss), no planted bug, no knobs, one client each.
    pub fn new(nodes: u32, seed: u64) -> Setup {
        Setup {
            seed,
            nodes,
            seeds: vec![0],
            network: Network::default(),
            planted_bug: None,
            knobs: BTreeMap::new(),
            clients: 1,
        }
    }

    /// The setup `scenario` asks for when `system` runs it with `seed`. The
    /// planted bug is spelled as the system spells it (`None` for one the
    /// system does not have: validation rejects those).
    pub fn of<S: System>(system: &S, scenario: &Scenario, seed: u64) -> Setup {
        let named = scenario.planted_bug.as_deref();
        let planted_bug = system.planted_bugs().into_iter().map(|bug| bug.name).find(|&bug| Some(bug) == named);
        Setup {
            seed,
            nodes: scenario.nodes,
            seeds: scenario.seeds.clone(),
            network: scenario.network.clone(),
            planted_bug,
            knobs: scenario.knobs.clone(),
            clients: scenario.clients,
        }
    }
}

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

    /// Makes the network match the history's links ([`History::links`]) on
    /// every link [`LinkChange::links`] names for `scope`: the history has
    /// recorded `change` already (as a step's event, or the settle), and a
    /// backend reads the links from it rather than keeping them twice.
    fn apply_links(&mut self, change: &LinkChange, scope: &Scope);

    /// Changes the links `scope` names, as a link step of a scenario would:
    /// records the step, then applies it. For code that drives a cluster by
    /// hand; the executor records its own steps and calls
    /// [`apply_links`](Cluster::apply_links).
    fn set_links(&mut self, change: &LinkChange, scope: &Scope) {
        let action = Action::Link { change: *change, scope: scope.clone() };
        let index =
            self.recorder().read(|h| h.events().iter().filter(|e| matches!(e.event, EventKind::Step { .. })).count());
        self.recorder().push(None, EventKind::Step { index, action });
        self.apply_links(change, scope);
    }

    /// Applies `change` to `node`: the one entry point of node faults, as
    /// [`set_links`](Cluster::set_links) is of link faults. The executor
    /// applies a change only to a node [`NodeChange::needs_up`] allows. A
    /// restart returns once the node runs.
    fn set_node(&mut self, node: NodeIdx, change: &NodeChange);

    /// Why this backend cannot carry out `change`, if it cannot: a scenario
    /// that asks for it fails before its first step, with this reason.
    fn refuses(&self, _change: &NodeChange) -> Option<String> {
        None
    }

    /// Sets (or, with [`DiskFault::None`], clears) a fault of `node`'s disk,
    /// whether the node runs or not.
    fn disk(&mut self, node: NodeIdx, fault: DiskFault) {
        self.set_node(node, &NodeChange::Disk(fault))
    }

    /// Kills a running node.
    fn crash(&mut self, node: NodeIdx) {
        self.set_node(node, &NodeChange::Crash)
    }

    /// Starts a crashed node again as a new incarnation; returns once it runs.
    fn restart(&mut self, node: NodeIdx) {
        self.set_node(node, &NodeChange::Restart)
    }

    /// Moves a running node's listener to `port` (a fresh one when `None`).
    fn rebind(&mut self, node: NodeIdx, port: Option<u16>) {
        self.set_node(node, &NodeChange::Rebind { port })
    }

    /// Lets time pass until `done` holds for the history or `deadline` (time
    /// since the run began) is reached; returns whether `done` held.
    fn run_until(&mut self, deadline: Duration, done: impl FnMut(&History<S>) -> bool) -> bool;
}
