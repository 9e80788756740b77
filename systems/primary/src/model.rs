//! The sequential specification the linearizability property checks the
//! store against: one list per key, with put, append and get.

use serde::{Deserialize, Serialize};
use tandem::consistency::Model;

/// A key-value store of lists, partitioned per key (each key is checked on
/// its own): `put` sets a key to `[value]`, `append` adds `value` at the
/// end, `get` returns the list (empty for a key never written).
///
/// ```
/// use tandem::consistency::Model;
/// use tandem_primary::model::{ListInput, ListOutput, Lists};
/// let state = Lists.step(&vec![], &ListInput::Append { key: "a".into(), value: "x".into() }, None).unwrap();
/// let read = ListInput::Get { key: "a".into() };
/// assert!(Lists.step(&state, &read, Some(&ListOutput::Read(vec!["x".into()]))).is_some());
/// assert!(Lists.step(&state, &read, Some(&ListOutput::Read(vec![]))).is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Lists;

/// What an operation asks of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListInput {
    /// Set the key to `[value]`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Add `value` to the key's list.
    Append {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read the key's list.
    Get {
        /// The key.
        key: String,
    },
}

impl ListInput {
    /// The key the input concerns.
    pub fn key(&self) -> &str {
        match self {
            ListInput::Put { key, .. } | ListInput::Append { key, .. } | ListInput::Get { key } => key,
        }
    }
}

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
    type Input = ListInput;
    type Output = ListOutput;

    fn init(&self) -> Vec<String> {
        Vec::new()
    }

    fn step(&self, state: &Vec<String>, input: &ListInput, output: Option<&ListOutput>) -> Option<Vec<String>> {
        match input {
            ListInput::Put { value, .. } => {
                matches!(output, None | Some(ListOutput::Done)).then(|| vec![value.clone()])
            }
            ListInput::Append { value, .. } => matches!(output, None | Some(ListOutput::Done)).then(|| {
                let mut next = state.clone();
                next.push(value.clone());
                next
            }),
            ListInput::Get { .. } => match output {
                None => Some(state.clone()),
                Some(ListOutput::Read(seen)) if seen == state => Some(state.clone()),
                Some(_) => None,
            },
        }
    }

    fn partition(&self, input: &ListInput) -> Option<String> {
        Some(input.key().to_string())
    }
}
