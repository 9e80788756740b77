//! [`Mark`]: how a system asks the picture to draw one of its events. A
//! leaf, so that the `Drawing` trait can name it without importing the picture.

use serde::Serialize;

use crate::scenario::NodeIdx;

/// How the picture draws one of a system's events, returned by
/// [`Drawing::mark`](crate::system::Drawing::mark). Events with the same `key` are joined: an arrow goes
/// from the cause to each effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// The kind of event, for colour and the filter (`send`, `deliver`, ...).
    pub kind: String,
    /// A short label.
    pub label: String,
    /// What joins this event to others, if anything.
    pub key: Option<String>,
    /// Whether this event is the cause of its key (else an effect).
    pub cause: bool,
    /// For a cause: the nodes that should have seen an effect and did not.
    pub missing: Vec<NodeIdx>,
    /// What is wrong with the event, if the system can tell.
    pub problem: Option<String>,
}

impl Mark {
    /// A dot of `kind` labelled `label`.
    pub fn new(kind: impl Into<String>, label: impl Into<String>) -> Self {
        Mark { kind: kind.into(), label: label.into(), key: None, cause: false, missing: Vec::new(), problem: None }
    }

    /// This event causes the events with the effect `key`.
    pub fn cause(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self.cause = true;
        self
    }

    /// This event is an effect of the cause with `key`.
    pub fn effect(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self.cause = false;
        self
    }

    /// The nodes where an effect of this cause should have happened and did not.
    pub fn expect(mut self, missing: impl IntoIterator<Item = NodeIdx>) -> Self {
        self.missing = missing.into_iter().collect();
        self
    }

    /// Marks the event as wrong, saying why.
    pub fn problem(mut self, why: impl Into<String>) -> Self {
        self.problem = Some(why.into());
        self
    }
}
