//! Ready sequential specifications for [`linear::check`](super::linear::check):
//! a register, a key-value map partitioned per key, a set, a counter, an
//! append-only list and a FIFO queue.
//!
//! Each model's output enum has an `Ok` for operations that only
//! acknowledge; an output of the wrong kind for its input (a write that
//! returns a value) is never explained.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::Model;

/// Whether an operation that returned `output` (`None`: unknown) could have
/// returned `expected`.
fn allows<T: PartialEq>(output: Option<&T>, expected: T) -> bool {
    output.is_none_or(|output| *output == expected)
}

/// A register holding a number or nothing, with compare-and-set (Jepsen's
/// register workload; Porcupine's etcd model).
///
/// Values are `u64`: registers under test hold small numbers, and a `Copy`
/// state keeps the search cheap; [`KvModel`] holds strings.
///
/// ```
/// use tandem::consistency::models::{Register, RegisterInput, RegisterOutput};
/// use tandem::consistency::Model;
/// let register = Register { initial: Some(3) };
/// let state = register.init();
/// assert_eq!(register.step(&state, &RegisterInput::Cas { from: 3, to: 4 }, Some(&RegisterOutput::Cas(true))), Some(Some(4)));
/// assert_eq!(register.step(&state, &RegisterInput::Read, Some(&RegisterOutput::Read(None))), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// The value before any write (`None`: empty).
    pub initial: Option<u64>,
}

/// An operation on a [`Register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterInput {
    /// Read the value; returns [`RegisterOutput::Read`].
    Read,
    /// Set the value; returns [`RegisterOutput::Ok`].
    Write(u64),
    /// Set the value to `to` if it is `from`; returns [`RegisterOutput::Cas`].
    Cas {
        /// The value expected.
        from: u64,
        /// The value set.
        to: u64,
    },
}

/// What a [`Register`] operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegisterOutput {
    /// The value read (`None`: empty).
    Read(Option<u64>),
    /// A write's acknowledgement.
    Ok,
    /// Whether a compare-and-set swapped.
    Cas(bool),
}

impl Model for Register {
    type State = Option<u64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;

    fn init(&self) -> Option<u64> {
        self.initial
    }

    fn step(&self, state: &Option<u64>, input: &RegisterInput, output: Option<&RegisterOutput>) -> Option<Option<u64>> {
        match *input {
            RegisterInput::Read => allows(output, RegisterOutput::Read(*state)).then_some(*state),
            RegisterInput::Write(value) => allows(output, RegisterOutput::Ok).then_some(Some(value)),
            RegisterInput::Cas { from, to } => {
                let swaps = *state == Some(from);
                allows(output, RegisterOutput::Cas(swaps)).then_some(if swaps { Some(to) } else { *state })
            }
        }
    }
}

/// A map from string keys to string values, checked one key at a time:
/// [`Model::partition`] is the key and the state is that key's value
/// (`None`: absent).
///
/// ```
/// use tandem::consistency::models::{KvInput, KvModel, KvOutput};
/// use tandem::consistency::{linear, Budget, Call, Verdict};
/// let call = |id, input, invoked, returned, output| Call { id, client: id, input, invoked, returned: Some(returned), output: Some(output) };
/// let calls = [
///     call(1, KvInput::Put("a".into(), "1".into()), 0, 10, KvOutput::Ok),
///     call(2, KvInput::Get("b".into()), 20, 30, KvOutput::Value(None)),
///     call(3, KvInput::Get("a".into()), 20, 30, KvOutput::Value(None)), // stale
/// ];
/// let Verdict::Violated(counterexample) = linear::check(&KvModel, &calls, Budget::default()) else { panic!() };
/// assert_eq!(counterexample.partition.as_deref(), Some("a"));
/// assert_eq!(counterexample.calls, vec![1, 3]);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvModel;

/// An operation on a [`KvModel`]: the key first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvInput {
    /// Read a key's value; returns [`KvOutput::Value`].
    Get(String),
    /// Set a key's value; returns [`KvOutput::Ok`].
    Put(String, String),
    /// Append to a key's value (an absent key counts as empty); returns
    /// [`KvOutput::Ok`].
    Append(String, String),
    /// Remove a key; returns [`KvOutput::Ok`].
    Delete(String),
}

impl KvInput {
    /// The key the operation concerns.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get(key) | KvInput::Put(key, _) | KvInput::Append(key, _) | KvInput::Delete(key) => key,
        }
    }
}

/// What a [`KvModel`] operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOutput {
    /// The value read (`None`: absent).
    Value(Option<String>),
    /// A change's acknowledgement.
    Ok,
}

impl Model for KvModel {
    type State = Option<String>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Option<String> {
        None
    }

    fn step(&self, state: &Option<String>, input: &KvInput, output: Option<&KvOutput>) -> Option<Option<String>> {
        if let KvInput::Get(_) = input {
            return allows(output, KvOutput::Value(state.clone())).then(|| state.clone());
        }
        if !allows(output, KvOutput::Ok) {
            return None;
        }
        Some(match input {
            KvInput::Put(_, value) => Some(value.clone()),
            KvInput::Append(_, value) => Some(state.as_deref().unwrap_or_default().to_string() + value),
            KvInput::Get(_) | KvInput::Delete(_) => None,
        })
    }

    fn partition(&self, input: &KvInput) -> Option<String> {
        Some(input.key().to_string())
    }
}

/// A set of numbers, initially empty, read whole (Jepsen's set workload).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetModel;

/// An operation on a [`SetModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetInput {
    /// Add an element; returns [`SetOutput::Ok`].
    Add(u64),
    /// Read every element; returns [`SetOutput::Read`].
    Read,
}

/// What a [`SetModel`] operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetOutput {
    /// The elements read.
    Read(BTreeSet<u64>),
    /// An add's acknowledgement.
    Ok,
}

impl Model for SetModel {
    type State = BTreeSet<u64>;
    type Input = SetInput;
    type Output = SetOutput;

    fn init(&self) -> BTreeSet<u64> {
        BTreeSet::new()
    }

    fn step(&self, state: &BTreeSet<u64>, input: &SetInput, output: Option<&SetOutput>) -> Option<BTreeSet<u64>> {
        match *input {
            SetInput::Add(element) => allows(output, SetOutput::Ok).then(|| {
                let mut state = state.clone();
                state.insert(element);
                state
            }),
            SetInput::Read => allows(output, SetOutput::Read(state.clone())).then(|| state.clone()),
        }
    }
}

/// A counter, initially 0, that adds signed amounts (wrapping on overflow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter;

/// An operation on a [`Counter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterInput {
    /// Add an amount (negative to subtract); returns [`CounterOutput::Ok`].
    Add(i64),
    /// Read the count; returns [`CounterOutput::Read`].
    Read,
}

/// What a [`Counter`] operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterOutput {
    /// The count read.
    Read(i64),
    /// An add's acknowledgement.
    Ok,
}

impl Model for Counter {
    type State = i64;
    type Input = CounterInput;
    type Output = CounterOutput;

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, input: &CounterInput, output: Option<&CounterOutput>) -> Option<i64> {
        match *input {
            CounterInput::Add(amount) => allows(output, CounterOutput::Ok).then_some(state.wrapping_add(amount)),
            CounterInput::Read => allows(output, CounterOutput::Read(*state)).then_some(*state),
        }
    }
}

/// An append-only list of numbers, initially empty, read whole (the list
/// of Elle's list-append workload, as one object).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListAppend;

/// An operation on a [`ListAppend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListInput {
    /// Append an element; returns [`ListOutput::Ok`].
    Append(u64),
    /// Read the list; returns [`ListOutput::Read`].
    Read,
}

/// What a [`ListAppend`] operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListOutput {
    /// The list read, oldest first.
    Read(Vec<u64>),
    /// An append's acknowledgement.
    Ok,
}

impl Model for ListAppend {
    type State = Vec<u64>;
    type Input = ListInput;
    type Output = ListOutput;

    fn init(&self) -> Vec<u64> {
        Vec::new()
    }

    fn step(&self, state: &Vec<u64>, input: &ListInput, output: Option<&ListOutput>) -> Option<Vec<u64>> {
        match *input {
            ListInput::Append(element) => allows(output, ListOutput::Ok).then(|| {
                let mut state = state.clone();
                state.push(element);
                state
            }),
            ListInput::Read => match output {
                None => Some(state.clone()),
                Some(ListOutput::Read(read)) => (read == state).then(|| state.clone()),
                Some(ListOutput::Ok) => None,
            },
        }
    }
}

/// A FIFO queue of numbers, initially empty.
///
/// ```
/// use tandem::consistency::models::{Queue, QueueInput, QueueOutput};
/// use tandem::consistency::{linear, Budget, Call, Verdict};
/// let call = |id, input, invoked, returned, output| Call { id, client: id, input, invoked, returned: Some(returned), output: Some(output) };
/// // Two concurrent enqueues may land in either order, not a third value.
/// let calls = [
///     call(1, QueueInput::Enqueue(1), 0, 10, QueueOutput::Ok),
///     call(2, QueueInput::Enqueue(2), 0, 10, QueueOutput::Ok),
///     call(3, QueueInput::Dequeue, 20, 30, QueueOutput::Dequeued(Some(2))),
/// ];
/// assert_eq!(linear::check(&Queue, &calls, Budget::default()), Verdict::Consistent);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue;

/// An operation on a [`Queue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueInput {
    /// Add an element at the back; returns [`QueueOutput::Ok`].
    Enqueue(u64),
    /// Take the element at the front; returns [`QueueOutput::Dequeued`].
    Dequeue,
}

/// What a [`Queue`] operation returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueOutput {
    /// The element taken (`None`: the queue was empty).
    Dequeued(Option<u64>),
    /// An enqueue's acknowledgement.
    Ok,
}

impl Model for Queue {
    type State = VecDeque<u64>;
    type Input = QueueInput;
    type Output = QueueOutput;

    fn init(&self) -> VecDeque<u64> {
        VecDeque::new()
    }

    fn step(&self, state: &VecDeque<u64>, input: &QueueInput, output: Option<&QueueOutput>) -> Option<VecDeque<u64>> {
        let mut state = state.clone();
        match *input {
            QueueInput::Enqueue(element) => {
                state.push_back(element);
                allows(output, QueueOutput::Ok).then_some(state)
            }
            QueueInput::Dequeue => {
                let front = state.pop_front();
                allows(output, QueueOutput::Dequeued(front)).then_some(state)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consistency::linear::check;
    use crate::consistency::{Budget, Call, Verdict};

    /// Calls from (input, [invoked, returned], output) in id order; each
    /// call its own client.
    fn history<I, O>(ops: Vec<(I, u64, u64, O)>) -> Vec<Call<I, O>> {
        ops.into_iter()
            .zip(1..)
            .map(|((input, invoked, returned, output), id)| Call {
                id,
                client: id,
                input,
                invoked,
                returned: Some(returned),
                output: Some(output),
            })
            .collect()
    }

    fn consistent<M: Model>(model: &M, calls: &[Call<M::Input, M::Output>]) -> bool {
        match check(model, calls, Budget::default()) {
            Verdict::Consistent => true,
            Verdict::Violated(_) => false,
            Verdict::Unknown(why) => panic!("unknown: {why}"),
        }
    }

    #[test]
    fn register() {
        use RegisterInput::*;
        use RegisterOutput::{Cas as Swapped, Ok, Read as Value};
        let register = Register::default();
        let good = history(vec![
            (Write(1), 0, 10, Ok),
            (Cas { from: 1, to: 2 }, 5, 20, Swapped(true)),
            (Read, 15, 25, Value(Some(1))),
            (Cas { from: 1, to: 3 }, 30, 40, Swapped(false)),
            (Read, 50, 60, Value(Some(2))),
        ]);
        assert!(consistent(&register, &good));
        // The swap returned before the read began.
        let bad = history(vec![
            (Write(1), 0, 10, Ok),
            (Cas { from: 1, to: 2 }, 20, 30, Swapped(true)),
            (Read, 40, 50, Value(Some(1))),
        ]);
        assert!(!consistent(&register, &bad));
        assert!(!consistent(&register, &history(vec![(Read, 0, 10, Value(Some(7)))])));
        assert!(consistent(&Register { initial: Some(7) }, &history(vec![(Read, 0, 10, Value(Some(7)))])));
        // A write that returns a value is not a register's.
        assert!(!consistent(&register, &history(vec![(Write(1), 0, 10, Value(None))])));
    }

    #[test]
    fn kv_partitions_per_key() {
        let put = |key: &str, value: &str| KvInput::Put(key.into(), value.into());
        let get = |key: &str| KvInput::Get(key.into());
        let value = |value: &str| KvOutput::Value(Some(value.into()));
        let good = history(vec![
            (put("a", "1"), 0, 10, KvOutput::Ok),
            (KvInput::Append("a".into(), "2".into()), 20, 30, KvOutput::Ok),
            (KvInput::Append("b".into(), "x".into()), 20, 30, KvOutput::Ok),
            (get("a"), 40, 50, value("12")),
            (get("b"), 40, 50, value("x")),
            (KvInput::Delete("a".into()), 60, 70, KvOutput::Ok),
            (get("a"), 65, 80, value("12")),
            (get("a"), 90, 100, KvOutput::Value(None)),
        ]);
        assert!(consistent(&KvModel, &good));
        let bad = history(vec![
            (KvInput::Delete("a".into()), 0, 10, KvOutput::Ok),
            (put("a", "1"), 20, 30, KvOutput::Ok),
            (get("a"), 40, 50, KvOutput::Value(None)),
        ]);
        assert!(!consistent(&KvModel, &bad));
    }

    #[test]
    fn set() {
        let read = |elements: &[u64]| SetOutput::Read(elements.iter().copied().collect());
        let good = history(vec![
            (SetInput::Add(1), 0, 10, SetOutput::Ok),
            (SetInput::Add(2), 0, 30, SetOutput::Ok),
            (SetInput::Read, 15, 20, read(&[1])),
            (SetInput::Read, 40, 50, read(&[1, 2])),
        ]);
        assert!(consistent(&SetModel, &good));
        // An element lost after it was read.
        let bad = history(vec![
            (SetInput::Add(1), 0, 10, SetOutput::Ok),
            (SetInput::Read, 20, 30, read(&[1])),
            (SetInput::Read, 40, 50, read(&[])),
        ]);
        assert!(!consistent(&SetModel, &bad));
    }

    #[test]
    fn counter() {
        let good = history(vec![
            (CounterInput::Add(5), 0, 10, CounterOutput::Ok),
            (CounterInput::Add(-2), 5, 30, CounterOutput::Ok),
            (CounterInput::Read, 15, 20, CounterOutput::Read(5)),
            (CounterInput::Read, 40, 50, CounterOutput::Read(3)),
        ]);
        assert!(consistent(&Counter, &good));
        let bad = history(vec![
            (CounterInput::Add(5), 0, 10, CounterOutput::Ok),
            (CounterInput::Read, 20, 30, CounterOutput::Read(10)),
        ]);
        assert!(!consistent(&Counter, &bad));
        assert_eq!(Counter.step(&i64::MAX, &CounterInput::Add(1), None), Some(i64::MIN));
    }

    #[test]
    fn list_append() {
        let good = history(vec![
            (ListInput::Append(1), 0, 10, ListOutput::Ok),
            (ListInput::Append(2), 0, 10, ListOutput::Ok),
            (ListInput::Read, 20, 30, ListOutput::Read(vec![2, 1])),
        ]);
        assert!(consistent(&ListAppend, &good));
        // Two reads disagree on the order of the same appends.
        let bad = history(vec![
            (ListInput::Append(1), 0, 10, ListOutput::Ok),
            (ListInput::Append(2), 0, 10, ListOutput::Ok),
            (ListInput::Read, 20, 30, ListOutput::Read(vec![2, 1])),
            (ListInput::Read, 20, 30, ListOutput::Read(vec![1, 2])),
        ]);
        assert!(!consistent(&ListAppend, &bad));
    }

    #[test]
    fn queue() {
        let good = history(vec![
            (QueueInput::Enqueue(1), 0, 10, QueueOutput::Ok),
            (QueueInput::Enqueue(2), 20, 30, QueueOutput::Ok),
            (QueueInput::Dequeue, 40, 50, QueueOutput::Dequeued(Some(1))),
            (QueueInput::Dequeue, 40, 50, QueueOutput::Dequeued(Some(2))),
            (QueueInput::Dequeue, 60, 70, QueueOutput::Dequeued(None)),
        ]);
        assert!(consistent(&Queue, &good));
        // Out of order: 2 came out while 1, enqueued first, stayed in.
        let bad = history(vec![
            (QueueInput::Enqueue(1), 0, 10, QueueOutput::Ok),
            (QueueInput::Enqueue(2), 20, 30, QueueOutput::Ok),
            (QueueInput::Dequeue, 40, 50, QueueOutput::Dequeued(Some(2))),
        ]);
        assert!(!consistent(&Queue, &bad));
    }
}
