//! [`Property::linearizable`]: a system's history judged by a
//! [`Model`](super::Model) with the linearizability checker.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{linear, Budget, Call, Model, Verdict};
use crate::history::{Event, EventKind, History, OpResult};
use crate::property::{Failure, Monitor, Property};
use crate::scenario::NodeIdx;
use crate::system::System;

/// Maps a system's operation (and, when it completed, its output) to the
/// model's input and output; `None` leaves the operation out.
type Translate<S, M> = dyn Fn(
        &<S as System>::Op,
        Option<&<S as System>::Output>,
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
            invoked: BTreeMap::new(),
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

/// Collects the operations as the run goes; checks them when it ends.
struct Linearizability<S: System, M: Model> {
    model: Arc<M>,
    call: Arc<Translate<S, M>>,
    budget: Budget,
    invoked: BTreeMap<u64, Seen<S>>,
}

impl<S: System, M: Model> Monitor<S> for Linearizability<S, M> {
    fn observe(&mut self, history: &History<S>, event: &Event<S>) -> Result<(), String> {
        let index = history.events().len() - 1;
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
        Ok(())
    }

    fn finish(&mut self, history: &History<S>) -> Result<(), Failure> {
        let events = history.events();
        let mut calls = Vec::new();
        for (&id, seen) in &self.invoked {
            let (returned, result) = match &seen.complete {
                Some((_, OpResult::Failed(_))) => continue,
                Some((at, OpResult::Ok(output))) => (Some(events[*at].t_us), Some(output)),
                Some((_, OpResult::Unknown(_))) | None => (None, None),
            };
            let Some((input, output)) = (self.call)(&seen.op, result) else { continue };
            let client = u64::from(seen.node) << 32 | u64::from(seen.client);
            let invoked = events[seen.invoke].t_us;
            calls.push(Call { id, client, input, invoked, returned, output: returned.and(output) });
        }
        match linear::check(&*self.model, &calls, self.budget) {
            Verdict::Consistent | Verdict::Unknown(_) => Ok(()),
            Verdict::Violated(counterexample) => {
                let mut failure = Failure::from(format!("not linearizable: {}", counterexample.detail));
                for id in &counterexample.calls {
                    let seen = &self.invoked[id];
                    failure.node = failure.node.or(Some(seen.node));
                    failure = failure.naming(seen.invoke);
                    if let Some((complete, _)) = seen.complete {
                        failure = failure.naming(complete);
                    }
                }
                Err(failure)
            }
        }
    }
}
