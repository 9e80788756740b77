//! What the harness observes of a running pub/sub node.

use serde::Serialize;

use crate::node::{Delivery, MessageId, MessageKind, NodeEvent, PeerMap};
use crate::payload::payload_digest;

/// One observation of a node, recorded in the run's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    /// The node handed a message to its application (read from
    /// [`Node::incoming`](crate::node::Node::incoming)).
    Delivered {
        /// The message.
        id: MessageId,
        /// Broadcast or direct, as the receiver saw it.
        kind: MessageKind,
        /// The tag, as received.
        tag: String,
        /// The payload's length.
        size: usize,
        /// The payload's digest (see [`payload_digest`]).
        digest: u64,
    },
    /// The node's membership view changed (read from
    /// [`Node::peers`](crate::node::Node::peers)): every other node it
    /// knows, with its address, incarnation and address version.
    View {
        /// The view.
        peers: PeerMap,
    },
    /// Something happened inside the node (a connection, an ack, ...),
    /// reported through its [`EventObserver`](crate::node::EventObserver).
    Node(NodeEvent),
}

impl Observation {
    /// The observation of `delivery`.
    pub fn delivered(delivery: &Delivery) -> Observation {
        Observation::Delivered {
            id: delivery.id,
            kind: delivery.kind,
            tag: delivery.tag.clone(),
            size: delivery.payload.len(),
            digest: payload_digest(&delivery.payload),
        }
    }
}
