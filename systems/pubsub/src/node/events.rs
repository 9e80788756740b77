//! What a node reports to an observer: the adapter records these in the history.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::{MessageId, NodeId};

/// Something that happened inside a node: a connection, a message, a
/// membership change. Deliveries are not events: they go to the node's
/// incoming channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeEvent {
    /// The listener is bound (at start and after each rebind).
    Listening {
        /// The bound address.
        addr: SocketAddr,
        /// The node's address version.
        version: u64,
    },
    /// A rebind failed; the old listener stays.
    RebindFailed {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A connection finished its handshake.
    ConnectionUp {
        /// The peer.
        peer: NodeId,
        /// Whether this node dialled it.
        outbound: bool,
    },
    /// A connection closed.
    ConnectionDown {
        /// The peer.
        peer: NodeId,
        /// Whether this node dialled it.
        outbound: bool,
        /// Why.
        reason: String,
    },
    /// Dialling a peer (or a seed address) failed.
    DialFailed {
        /// The address dialled.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A message was queued for a peer (sent at once when connected).
    MessageSent {
        /// The message.
        id: MessageId,
        /// The peer.
        to: NodeId,
    },
    /// A broadcast left a member out: its outbox was full.
    MessageDropped {
        /// The message.
        id: MessageId,
        /// The member left out.
        to: NodeId,
    },
    /// Pending messages were written again on a new connection.
    Retransmitted {
        /// The peer.
        to: NodeId,
        /// How many.
        count: usize,
    },
    /// A message arrived from a peer, new or duplicate.
    MessageReceived {
        /// The message.
        id: MessageId,
        /// The connection's peer.
        from: NodeId,
        /// Whether it was already delivered (and so is dropped).
        duplicate: bool,
    },
    /// A peer acknowledged a message.
    AckReceived {
        /// The message.
        id: MessageId,
        /// The peer.
        from: NodeId,
    },
    /// The node learned a member or a newer address of one.
    MemberUpdated {
        /// The member.
        peer: NodeId,
        /// Its address.
        addr: SocketAddr,
        /// Its incarnation.
        incarnation: u64,
        /// Its address version.
        version: u64,
    },
}

/// Receives a node's events. Called inline on the node's task: keep it cheap
/// and never block.
#[derive(Clone)]
pub struct EventObserver(Arc<dyn Fn(NodeId, NodeEvent) + Send + Sync>);

impl EventObserver {
    /// Wraps a callback.
    pub fn new(f: impl Fn(NodeId, NodeEvent) + Send + Sync + 'static) -> Self {
        EventObserver(Arc::new(f))
    }

    /// Reports one event.
    pub fn emit(&self, node: NodeId, event: NodeEvent) {
        (self.0)(node, event)
    }
}

impl fmt::Debug for EventObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventObserver")
    }
}
