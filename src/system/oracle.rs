//! [`Oracle`]: what a system checks. It derives state from the history as
//! it grows, answers the conditions of scenario steps, names the properties
//! that judge a run, each node's outcome and who holds a role.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::adapter::{Adapter, Record};
use crate::history::{Event, Faults, History};
use crate::property::Property;
use crate::scenario::NodeIdx;

/// A system's own condition, for `await` and `expect` steps and `[[expect]]`
/// end checks: a serde enum whose variants are the condition keys
/// (`snake_case`), for example `received = 2` or `converged = true`.
pub trait Condition: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static> Condition for T {}

/// What a system checks (moonpool's invariants): it folds the history into
/// state of its own, answers the conditions of `await` and `expect` steps,
/// and names the properties every run is judged by.
///
/// Only [`check`](Oracle::check) and [`outcome`](Oracle::outcome) are
/// required.
pub trait Oracle: Adapter {
    /// The conditions of `await` and `expect` (a serde enum).
    type Condition: Condition;
    /// A node's final state as the harness saw it; `tandem confirm` compares
    /// it between the simulation and MsQuic.
    type Outcome: Record + Eq;
    /// What the harness derives from the history as it grows (see
    /// [`fold`](Oracle::fold)); `()` when nothing.
    type State: Default + Clone + Debug + Send + 'static;

    /// Updates the harness's derived state with one new event; `faults` are
    /// the faults in force just after it (every link, crashed nodes, disks,
    /// ...). Conditions that run at every simulation step read the state
    /// instead of rescanning.
    fn fold(&self, _state: &mut Self::State, _event: &Event<Self>, _faults: &Faults) {}

    /// An abstract state of the run, from what the harness derived so far
    /// (see [`fold`](Oracle::fold)), for exploration: each distinct state a
    /// run reaches counts as coverage, as new as a new pair of events, and
    /// a run that reaches a rare one is worth exploring further from. Called
    /// after every event; `None` (the default) names none.
    ///
    /// Keep it coarse: "a node restarted while cut off, holding a key
    /// others hold" says more than the whole state would.
    fn abstract_state(&self, _state: &Self::State) -> Option<String> {
        None
    }

    /// Why `condition` does not hold for `node` now, or `Ok`.
    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &Self::Condition) -> Result<(), String>;

    /// The properties every run is judged by.
    fn properties(&self) -> Vec<Property<Self>> {
        Vec::new()
    }

    /// What `node` ended with, as the harness observed it.
    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> Self::Outcome;

    /// A condition explored timelines await before their first episode (for
    /// example membership convergence).
    fn ready(&self) -> Option<Self::Condition> {
        None
    }

    /// The roles a node of the system can hold (`"leader"`, `"primary"`):
    /// scenario steps aim faults at them (`crash = { role = "primary" }`),
    /// and exploration sometimes does. None by default; a role a scenario
    /// names must be one of these.
    fn roles(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The node that holds `role` now, judged from what the harness
    /// observed (the history, never the node's own word), or `None` when no
    /// live node does: the executor then skips the step and records why.
    /// Called when a step aimed at the role runs, with `role` one of
    /// [`roles`](Oracle::roles).
    fn role(&self, _history: &History<Self>, _role: &str) -> Option<NodeIdx> {
        None
    }
}
