//! Consistency checkers: is a concurrent history explained by a sequential
//! specification? The oracle a replicated system needs, usable by any
//! system (Jepsen's Knossos and Elle, Porcupine).
//!
//! - [`Model`]: a sequential specification (an initial state and a step);
//!   [`models`] has ready ones.
//! - [`linear::check`]: linearizability, Wing-Gong-Lowe search with
//!   Porcupine's memoization and per-key partitions.
//! - [`txn::check`]: transactional anomalies (G0 ... G2) over list-append
//!   and read-write register transactions, in the style of Elle.
//!
//! A system declares its checked model with
//! [`Property::linearizable`](crate::property::Property::linearizable); the
//! checkers also work on any history built by hand.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

pub mod generate;
pub mod linear;
pub mod models;
mod property;
pub mod txn;

/// A sequential specification: what one object does when operations reach
/// it one at a time.
///
/// ```
/// use tandem::consistency::Model;
/// /// A counter that only grows; reads return its value.
/// struct Counter;
/// #[derive(Debug, Clone)]
/// enum Input { Add(u64), Read }
/// impl Model for Counter {
///     type State = u64;
///     type Input = Input;
///     type Output = u64;
///     fn init(&self) -> u64 { 0 }
///     fn step(&self, state: &u64, input: &Input, output: Option<&u64>) -> Option<u64> {
///         match input {
///             Input::Add(n) => Some(state + n),
///             Input::Read => (output.is_none() || output == Some(state)).then_some(*state),
///         }
///     }
/// }
/// assert_eq!(Counter.step(&3, &Input::Read, Some(&3)), Some(3));
/// assert_eq!(Counter.step(&3, &Input::Read, Some(&4)), None);
/// ```
pub trait Model: Send + Sync + 'static {
    /// The object's state.
    type State: Clone + Eq + Hash + Debug + Send;
    /// What an operation asks.
    type Input: Clone + Debug + Send + Sync;
    /// What an operation returns.
    type Output: Clone + Debug + PartialEq + Send + Sync;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` takes effect in `state` and returns
    /// `output`, or `None` when a sequential object could not have returned
    /// it. `output` is `None` for an operation whose result is unknown: any
    /// output goes.
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self::State>;

    /// The partition `input` belongs to: operations of different partitions
    /// never affect each other and are checked apart (P-compositionality,
    /// for example one partition per key). `None`: one partition for all.
    fn partition(&self, _input: &Self::Input) -> Option<String> {
        None
    }
}

/// One operation of a concurrent history, as a checker sees it. Times are
/// in any one unit (tandem uses microseconds since the run began).
#[derive(Debug, Clone, PartialEq)]
pub struct Call<I, O> {
    /// The caller's name for it (tandem: the operation id), used in
    /// counterexamples.
    pub id: u64,
    /// Who invoked it; a client runs one operation at a time.
    pub client: u64,
    /// What it asked.
    pub input: I,
    /// When it was invoked.
    pub invoked: u64,
    /// When it returned; `None` when its fate is unknown (Jepsen's `info`:
    /// it may take effect at any time after `invoked`, or never). An
    /// operation that definitely did not take effect is left out.
    pub returned: Option<u64>,
    /// What it returned; `None` when unknown or not checked (any output
    /// goes).
    pub output: Option<O>,
}

/// How much search a check may spend before it answers [`Verdict::Unknown`].
///
/// A budget in search steps gives the same verdict on every machine (what a
/// simulated run needs to stay deterministic); a time limit is for real
/// runs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most search steps (states tried).
    pub steps: u64,
    /// The most wall time, if any.
    pub time: Option<Duration>,
}

impl Budget {
    /// When the time limit runs out, if there is one (never, past what an
    /// `Instant` can hold). The wall clock is for real runs and benchmarks
    /// only: a simulated run sets no time, so its verdict depends on the
    /// step count alone.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.time.and_then(|time| std::time::Instant::now().checked_add(time))
    }
}

impl Default for Budget {
    /// Ten million steps and no time limit: deterministic.
    fn default() -> Budget {
        Budget { steps: 10_000_000, time: None }
    }
}

/// A checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The history is explained by the specification.
    Consistent,
    /// It is not, and why.
    Violated(Counterexample),
    /// The checker could not decide (the budget ran out first, or the
    /// history is malformed); why.
    Unknown(String),
}

/// Why a history is not consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The partition it concerns, if the model partitions.
    pub partition: Option<String>,
    /// The ids of the operations of the smallest set found that cannot be
    /// explained on its own, in invocation order.
    pub calls: Vec<u64>,
    /// What went wrong, for a person.
    pub detail: String,
}
