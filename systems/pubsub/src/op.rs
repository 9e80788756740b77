//! The operations scenario steps invoke: `broadcast` and `direct`.

use serde::{Deserialize, Serialize};
use tandem::{NodeIdx, Operation};

use crate::node::MessageId;

/// The largest message a step may send, in bytes (16 MiB).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// The message size when a step gives none, in bytes.
pub const DEFAULT_MESSAGE_SIZE: usize = 32;

/// An operation of the pub/sub system, as written in a step:
/// `broadcast = { from = 0, tag = "data-1" }` or
/// `direct = { from = 0, to = 2, size = 100 }`.
///
/// ```
/// use tandem_pubsub::Op;
/// let op: Op = toml::from_str(r#"broadcast = { from = 0, tag = "data-1" }"#).unwrap();
/// assert_eq!(op, Op::Broadcast { from: 0, tag: Some("data-1".into()), size: None });
/// assert_eq!(op.tag(7), "data-1");
/// assert_eq!(Op::Broadcast { from: 0, tag: None, size: None }.tag(7), "b7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Node `from` broadcasts a message to every member it knows.
    Broadcast {
        /// The sender.
        from: NodeIdx,
        /// The tag; `"b<k>"` when omitted, k the index of the step.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// The payload size in bytes, at most [`MAX_MESSAGE_SIZE`];
        /// [`DEFAULT_MESSAGE_SIZE`] when omitted.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<usize>,
    },
    /// Node `from` sends a message to node `to`.
    Direct {
        /// The sender.
        from: NodeIdx,
        /// The addressee: another node.
        to: NodeIdx,
        /// The tag; `"b<k>"` when omitted, k the index of the step.
        #[serde(skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
        /// The payload size in bytes, at most [`MAX_MESSAGE_SIZE`];
        /// [`DEFAULT_MESSAGE_SIZE`] when omitted.
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<usize>,
    },
}

impl Op {
    /// The sender.
    pub fn from(&self) -> NodeIdx {
        match self {
            Op::Broadcast { from, .. } | Op::Direct { from, .. } => *from,
        }
    }

    /// The addressee of a direct message.
    pub fn to(&self) -> Option<NodeIdx> {
        match self {
            Op::Broadcast { .. } => None,
            Op::Direct { to, .. } => Some(*to),
        }
    }

    /// The tag, for an operation invoked by step `step`.
    pub fn tag(&self, step: usize) -> String {
        let (Op::Broadcast { tag, .. } | Op::Direct { tag, .. }) = self;
        tag.clone().unwrap_or_else(|| format!("b{step}"))
    }

    /// The payload size in bytes.
    pub fn size(&self) -> usize {
        let (Op::Broadcast { size, .. } | Op::Direct { size, .. }) = self;
        size.unwrap_or(DEFAULT_MESSAGE_SIZE)
    }
}

impl Operation for Op {
    fn node(&self) -> NodeIdx {
        self.from()
    }

    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            Op::Broadcast { from, .. } => vec![from],
            Op::Direct { from, to, .. } => vec![from, to],
        }
    }

    fn validate(&self, _nodes: u32) -> Result<(), String> {
        if let Op::Direct { from, to, .. } = self {
            if from == to {
                return Err(format!("`to` is the sender (node {to}), expected another node"));
            }
        }
        let size = self.size();
        if size > MAX_MESSAGE_SIZE {
            return Err(format!("size {size} is too large, expected at most {MAX_MESSAGE_SIZE} bytes (16 MiB)"));
        }
        Ok(())
    }

    /// The same message at the default size.
    fn simpler(&self) -> Vec<Op> {
        let mut simpler = self.clone();
        let (Op::Broadcast { size, .. } | Op::Direct { size, .. }) = &mut simpler;
        match size.take() {
            Some(_) => vec![simpler],
            None => Vec::new(),
        }
    }
}

/// What a successful operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// The node accepted the message under this id. The node's list of
    /// recipients is deliberately not kept: properties judge what the
    /// harness observed, not what the node claims.
    Sent {
        /// The message's id.
        id: MessageId,
        /// The members a broadcast left out because their outbox was full
        /// ([`Sent::dropped`](crate::node::Sent::dropped)): the node's
        /// documented degradation, which frees them of the delivery
        /// obligation. Empty in every run where no outbox fills.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        dropped: Vec<u32>,
    },
}
