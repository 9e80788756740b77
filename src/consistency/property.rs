//! [`Property::linearizable`] and [`Property::transactional`]: a system's
//! operations, as the harness saw them, judged by a checker once the run
//! ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::txn::{self, Mop, Outcome, Txn};
use super::{linear, Budget, Call, Model, Verdict};
use crate::history::{Event, EventKind, History, OpResult};
use crate::property::{Failure, Monitor, Property};
use crate::scenario::NodeIdx;
use crate::system::{Adapter, System};

/// Maps a system's operation (and, when it completed, its output) to the
/// model's input and output; `None` leaves the operation out.
type Translate<S, M> = dyn Fn(
        &<S as Adapter>::Op,
        Option<&<S as Adapter>::Output>,
    ) -> Option<(<M as Model>::Input, Option<<M as Model>::Output>)>
    + Send
    + Sync;

impl<S: System> Property<S> {
    /// A safety property: the operations the harness saw (invocations and
    /// completions, each node's clients apart) are linearizable with
    /// respect to `model`.
    ///
    /// `call` translates an operation into the model's input and output: it
    /// gets the output of an operation that completed `ok`, and `None` for
    /// one whose fate is unknown (a crash, a timeout, or still running when
    /// the run ended); an output of `None` is not checked. Failed
    /// operations (definitely not applied) are left out. The search runs
    /// once the run ends, within a deterministic [`Budget`] of steps; when
    /// the budget runs out the property holds (the checker could not tell).
    /// A failure names the smallest set of operations found that cannot be
    /// linearized, dated by the latest of their events.
    ///
    /// ```
    /// # use tandem::prelude::*;
    /// # use tandem::consistency::Model;
    /// /// A register of one number (`tandem::consistency::models` has ready ones).
    /// struct Register;
    /// #[derive(Debug, Clone)]
    /// enum Input { Write(u64), Read }
    /// impl Model for Register {
    ///     type State = u64;
    ///     type Input = Input;
    ///     type Output = u64;
    ///     fn init(&self) -> u64 { 0 }
    ///     fn step(&self, value: &u64, input: &Input, read: Option<&u64>) -> Option<u64> {
    ///         match input {
    ///             Input::Write(new) => Some(*new),
    ///             Input::Read => read.is_none_or(|read| read == value).then_some(*value),
    ///         }
    ///     }
    /// }
    /// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    /// # enum MyOp { Write { node: u32, value: u64 }, Read { node: u32 } }
    /// # fn demo<S: System<Op = MyOp, Output = u64>>() -> Property<S> {
    /// // The system's reads return the value; its writes return it too (not checked).
    /// Property::linearizable("L1", "linearizable register", Register, |op: &MyOp, output: Option<&u64>| match op {
    ///     MyOp::Write { value, .. } => Some((Input::Write(*value), None)),
    ///     MyOp::Read { .. } => Some((Input::Read, output.copied())),
    /// })
    /// # }
    /// ```
    pub fn linearizable<M: Model>(
        code: &'static str,
        name: &'static str,
        model: M,
        call: impl Fn(&S::Op, Option<&S::Output>) -> Option<(M::Input, Option<M::Output>)> + Send + Sync + 'static,
    ) -> Self {
        let model = Arc::new(model);
        let call: Arc<Translate<S, M>> = Arc::new(call);
        Property::always(code, name, move || Linearizability::<S, M> {
            model: model.clone(),
            call: call.clone(),
            budget: Budget::default(),
            observed: Observed::new(),
        })
    }
}

/// An invocation the harness saw, and its completion once it came.
struct Seen<S: System> {
    node: NodeIdx,
    client: u32,
    op: S::Op,
    invoke: usize,
    complete: Option<(usize, OpResult<S::Output>)>,
}

impl<S: System> Seen<S> {
    /// The client's id across the cluster (node and client).
    fn client(&self) -> u64 {
        u64::from(self.node) << 32 | u64::from(self.client)
    }
}

/// The operations of a run as the harness saw them, by id: what both
/// checking monitors collect as events arrive.
struct Observed<S: System> {
    invoked: BTreeMap<u64, Seen<S>>,
    /// How many events it has observed: the index of the next one.
    seen: usize,
}

impl<S: System> Observed<S> {
    fn new() -> Self {
        Observed { invoked: BTreeMap::new(), seen: 0 }
    }

    fn observe(&mut self, event: &Event<S>) {
        let index = self.seen;
        self.seen += 1;
        match &event.event {
            EventKind::Invoke { id, client, op, .. } => {
                let node = event.node.expect("an invocation names its node");
                let seen = Seen { node, client: *client, op: op.clone(), invoke: index, complete: None };
                self.invoked.insert(*id, seen);
            }
            EventKind::Complete { id, result } => {
                if let Some(seen) = self.invoked.get_mut(id) {
                    seen.complete = Some((index, result.clone()));
                }
            }
            _ => {}
        }
    }

    /// The failure of a check that named the operations `ids`: their
    /// invocations and completions, on the first one's node.
    fn failure(&self, detail: String, ids: &[u64]) -> Failure {
        let mut failure = Failure::from(detail);
        for id in ids {
            let seen = &self.invoked[id];
            failure.node = failure.node.or(Some(seen.node));
            failure = failure.naming(seen.invoke);
            if let Some((complete, _)) = seen.complete {
                failure = failure.naming(complete);
            }
        }
        failure
    }
}

/// Collects the operations as the run goes; checks them when it ends.
struct Linearizability<S: System, M: Model> {
    model: Arc<M>,
    call: Arc<Translate<S, M>>,
    budget: Budget,
    observed: Observed<S>,
}

impl<S: System, M: Model> Monitor<S> for Linearizability<S, M> {
    fn observe(&mut self, _: &History<S>, event: &Event<S>) -> Result<(), String> {
        self.observed.observe(event);
        Ok(())
    }

    fn finish(&mut self, history: &History<S>) -> Result<(), Failure> {
        let events = history.events();
        let mut calls = Vec::new();
        for (&id, seen) in &self.observed.invoked {
            let (returned, result) = match &seen.complete {
                Some((_, OpResult::Failed(_))) => continue,
                Some((at, OpResult::Ok(output))) => (Some(events[*at].t_us), Some(output)),
                Some((_, OpResult::Unknown(_))) | None => (None, None),
            };
            let Some((input, output)) = (self.call)(&seen.op, result) else { continue };
            let invoked = events[seen.invoke].t_us;
            calls.push(Call { id, client: seen.client(), input, invoked, returned, output: returned.and(output) });
        }
        match linear::check(&*self.model, &calls, self.budget) {
            Verdict::Consistent | Verdict::Unknown(_) => Ok(()),
            Verdict::Violated(counterexample) => {
                // The checker names a client by its number; a person, by its node.
                let detail = counterexample.calls.iter().fold(counterexample.detail, |detail, id| {
                    let seen = &self.observed.invoked[id];
                    let named = format!("(node {}, client {})", seen.node, seen.client);
                    detail.replace(&format!("(client {})", seen.client()), &named)
                });
                Err(self.observed.failure(format!("not linearizable: {detail}"), &counterexample.calls))
            }
        }
    }
}

/// Maps a system's operation (and, when it completed, its output) to a
/// transaction's micro-operations and, for an `ok` one, its outcome.
type Transaction<S> =
    dyn Fn(&<S as Adapter>::Op, Option<&<S as Adapter>::Output>) -> Option<(Outcome, Vec<Mop>)> + Send + Sync;

impl<S: System> Property<S> {
    /// A safety property: the transactions the harness saw show none of
    /// Adya's anomalies (G0, G1a, G1b, G1c, G-single, G2; see
    /// [`txn`]), checked in the style of Elle once the run ends.
    ///
    /// `transaction` translates an operation into its micro-operations (list
    /// appends and reads, or register writes and reads; every written value
    /// unique per key) and its outcome. It gets the output of an operation
    /// that completed `ok`, and the outcome it gives then counts
    /// ([`Outcome::Aborted`] when the output says the transaction aborted);
    /// it gets `None` for a failed operation, which counts as aborted, and
    /// for one whose fate is unknown, which counts as unknown (committed
    /// once another transaction reads its write). A failure names the
    /// transactions of the anomaly.
    ///
    /// ```
    /// # use tandem::prelude::*;
    /// use tandem::consistency::txn::{Mop, Outcome};
    /// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    /// # enum MyOp { Append { node: u32, key: String, value: u64 }, Read { node: u32, key: String } }
    /// # fn demo<S: System<Op = MyOp, Output = Vec<u64>>>() -> Property<S> {
    /// // An append is a one-operation transaction; a read returns the key's list.
    /// Property::transactional("X1", "no transactional anomaly", |op: &MyOp, output: Option<&Vec<u64>>| match op {
    ///     MyOp::Append { key, value, .. } => Some((Outcome::Committed, vec![Mop::append(key, *value)])),
    ///     MyOp::Read { key, .. } => Some((Outcome::Committed, vec![Mop::read(key, output?.clone())])),
    /// })
    /// # }
    /// ```
    pub fn transactional(
        code: &'static str,
        name: &'static str,
        transaction: impl Fn(&S::Op, Option<&S::Output>) -> Option<(Outcome, Vec<Mop>)> + Send + Sync + 'static,
    ) -> Self {
        let transaction: Arc<Transaction<S>> = Arc::new(transaction);
        Property::always(code, name, move || Transactions::<S> {
            transaction: transaction.clone(),
            budget: Budget::default(),
            observed: Observed::new(),
        })
    }
}

/// Collects the transactions as the run goes; checks them when it ends.
struct Transactions<S: System> {
    transaction: Arc<Transaction<S>>,
    budget: Budget,
    observed: Observed<S>,
}

impl<S: System> Monitor<S> for Transactions<S> {
    fn observe(&mut self, _: &History<S>, event: &Event<S>) -> Result<(), String> {
        self.observed.observe(event);
        Ok(())
    }

    fn finish(&mut self, history: &History<S>) -> Result<(), Failure> {
        let events = history.events();
        let mut txns = Vec::new();
        for (&id, seen) in &self.observed.invoked {
            let (returned, output, forced) = match &seen.complete {
                Some((at, OpResult::Ok(output))) => (Some(events[*at].t_us), Some(output), None),
                Some((at, OpResult::Failed(_))) => (Some(events[*at].t_us), None, Some(Outcome::Aborted)),
                Some((_, OpResult::Unknown(_))) | None => (None, None, Some(Outcome::Unknown)),
            };
            let Some((outcome, ops)) = (self.transaction)(&seen.op, output) else { continue };
            let outcome = forced.unwrap_or(outcome);
            let invoked = events[seen.invoke].t_us;
            txns.push(Txn { id, client: seen.client(), invoked, returned, outcome, ops });
        }
        match txn::check(&txns, self.budget) {
            Verdict::Consistent | Verdict::Unknown(_) => Ok(()),
            Verdict::Violated(anomaly) => Err(self.observed.failure(anomaly.detail, &anomaly.calls)),
        }
    }
}
