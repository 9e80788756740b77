//! Unacknowledged messages for one peer.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::MessageId;

/// Messages sent (or to be sent) to one peer and not yet acknowledged, in
/// send order, with a bound: a full outbox refuses new messages rather than
/// dropping old ones.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    /// Keyed by id: one origin's ids sort in send order.
    pending: BTreeMap<MessageId, Bytes>,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "an outbox must hold at least one message");
        Outbox { capacity, pending: BTreeMap::new() }
    }

    /// Whether another message fits.
    pub fn has_room(&self) -> bool {
        self.pending.len() < self.capacity
    }

    /// Queues an encoded message. The caller checked [`Outbox::has_room`].
    pub fn push(&mut self, id: MessageId, frame: Bytes) {
        assert!(self.has_room(), "outbox overflow: the caller must check has_room");
        self.pending.insert(id, frame);
    }

    /// Forgets an acknowledged message; returns whether it was pending.
    pub fn ack(&mut self, id: MessageId) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// Drops everything (a peer restarted and the node chose to forget it).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Pending messages in send order, for a retransmission.
    pub fn frames(&self) -> impl Iterator<Item = &Bytes> {
        self.pending.values()
    }

    /// How many messages wait for an acknowledgement.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
