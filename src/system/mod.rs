//! The system under test: what a user implements to let tandem drive their
//! node, in four traits by concern.
//!
//! A [`System`] is a small adapter around a real async node written against
//! [`Transport`](crate::transport::Transport). tandem starts one node per
//! scenario index (and again after every crash), hands it a
//! [`NodeContext`], invokes the system's own [operations](Adapter::Op) from
//! scenario steps, records what the harness observes into the run's
//! [`History`](crate::history::History), and judges the history with the
//! system's [`Property`](crate::property::Property)s. The same adapter runs
//! in the simulation (`tandem-sim`) and over real QUIC (`tandem-msquic`).
//!
//! A system implements each concern on its own:
//!
//! - [`Adapter`]: how to run a node (start, invoke, rebind, stop) and what
//!   the system declares (name, capabilities, planted bugs, knobs);
//! - [`Oracle`]: what it checks (derived state, conditions, properties,
//!   outcomes, roles);
//! - [`Workload`]: how exploration drives it (operations, workloads, final
//!   phase, fairness, tolerance);
//! - [`Drawing`]: how the timeline picture draws its events (all defaulted).
//!
//! [`System`] is all four, implemented for every type that has them.
//!
//! The shapes follow the anchors: stateright's `Actor` (a system declares its
//! properties as closures), moonpool's `Process`/`Workload`/invariants (a
//! factory that boots a node from a context at every start, a workload that
//! drives it, checks apart from both), Jepsen's histories (each operation is
//! an invocation and a completion).
//!
//! A complete system, an echo node, is in the guide (`docs/guide.md`) and in
//! `examples/ping.rs`.

mod adapter;
mod drawing;
mod oracle;
mod workload;

pub use adapter::{
    Adapter, Capabilities, FailStop, Invocation, Knob, Knobs, NodeContext, NodeSecret, Observer, OpError, Operation,
    PlantedBug, Record,
};
pub use drawing::Drawing;
pub use oracle::{Condition, Oracle};
pub use workload::{SurvivedDiskFault, Tolerance, Workload};

/// A system under test: an [`Adapter`] that runs its nodes, an [`Oracle`]
/// that checks them, a [`Workload`] that drives them and a [`Drawing`] of
/// its events. Implemented for every type that implements the four; the
/// engine asks for it.
pub trait System: Adapter + Oracle + Workload + Drawing {}

impl<T: Adapter + Oracle + Workload + Drawing> System for T {}
