//! The sequential specification the linearizability property checks the
//! store against: one list per key, with put, append and get.

use serde::{Deserialize, Serialize};
use tandem::consistency::Model;

use crate::wire::ClientOp;

/// A key-value store of lists, partitioned per key (each key is checked on
/// its own): `put` sets a key to `[value]`, `append` adds `value` at the
/// end, `get` returns the list (empty for a key never written). Its inputs
/// are the operations clients send ([`ClientOp`]).
///
/// ```
/// use tandem::consistency::Model;
/// use tandem_primary::model::{ListOutput, Lists};
/// use tandem_primary::wire::ClientOp;
/// let state = Lists.step(&vec![], &ClientOp::Append { key: "a".into(), value: "x".into() }, None).unwrap();
/// let read = ClientOp::Get { key: "a".into() };
/// assert!(Lists.step(&state, &read, Some(&ListOutput::Read(vec!["x".into()]))).is_some());
/// assert!(Lists.step(&state, &read, Some(&ListOutput::Read(vec![]))).is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Lists;

/// What an operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListOutput {
    /// A write took effect.
    Done,
    /// What a read returned (empty: never written).
    Read(Vec<String>),
}

impl Model for Lists {
    type State = Vec<String>;
    type Input = ClientOp;
    type Output = ListOutput;

    fn init(&self) -> Vec<String> {
        Vec::new()
    }

    fn step(&self, state: &Vec<String>, input: &ClientOp, output: Option<&ListOutput>) -> Option<Vec<String>> {
        match input {
            ClientOp::Put { value, .. } => matches!(output, None | Some(ListOutput::Done)).then(|| vec![value.clone()]),
            ClientOp::Append { value, .. } => matches!(output, None | Some(ListOutput::Done)).then(|| {
                let mut next = state.clone();
                next.push(value.clone());
                next
            }),
            ClientOp::Get { .. } => match output {
                None => Some(state.clone()),
                Some(ListOutput::Read(seen)) if seen == state => Some(state.clone()),
                Some(_) => None,
            },
        }
    }

    fn partition(&self, input: &ClientOp) -> Option<String> {
        Some(input.key().to_string())
    }
}
