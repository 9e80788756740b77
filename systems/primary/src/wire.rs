//! What nodes say to each other and what they keep on disk.
//!
//! Messages are postcard-encoded, one per transport message; a message
//! longer than [`MAX_MESSAGE`] or one that does not decode is a protocol
//! violation ([`decode`] says so, the node closes the connection). The
//! durable state is one snapshot written to two slots in turn, each with
//! its sequence number and a checksum, so a torn write only ever damages
//! the older slot.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// A client's request id: the same on every retry of one operation.
pub type RequestId = u64;

/// The largest message a node accepts from a peer, in bytes.
pub const MAX_MESSAGE: usize = 1 << 20;

/// What a log entry does to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A new primary's first entry: committing it commits everything before it.
    Noop,
    /// Sets `key` to the list `[value]`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Appends `value` to `key`'s list.
    Append {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The epoch of the primary that created it.
    pub epoch: u64,
    /// The client request it carries (0 for a no-op): the primary applies
    /// one request id once.
    pub id: RequestId,
    /// What it does.
    pub command: Command,
}

/// A client operation as it travels to the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Append to a key.
    Append {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
}

impl ClientOp {
    /// The key the operation concerns.
    pub fn key(&self) -> &str {
        match self {
            ClientOp::Put { key, .. } | ClientOp::Append { key, .. } | ClientOp::Get { key } => key,
        }
    }

    /// Whether the operation changes the store.
    pub fn writes(&self) -> bool {
        !matches!(self, ClientOp::Get { .. })
    }
}

/// What a client operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A write was applied.
    Done,
    /// A read's value: the key's list, `None` when never written.
    Value(Option<Vec<String>>),
}

/// Why a node did not carry out a client operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The node knows no primary: nothing was done.
    NoPrimary,
    /// The node asked is not the primary: nothing was done.
    NotPrimary,
    /// The primary lost its epoch while the operation was under way: a
    /// write may still be applied.
    Deposed,
}

/// A node's answer to a client operation.
pub type Answer = Result<Reply, Refusal>;

/// A message between nodes; `from` is the sender's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A candidate asks for a vote in `epoch`.
    Vote {
        /// The candidate.
        from: u32,
        /// The epoch it stands in.
        epoch: u64,
        /// Its last log index.
        last_index: u64,
        /// The epoch of its last entry.
        last_epoch: u64,
    },
    /// A vote (or a refusal).
    VoteReply {
        /// The voter.
        from: u32,
        /// The voter's epoch.
        epoch: u64,
        /// Whether it voted for the candidate.
        granted: bool,
    },
    /// The primary's entries (none: a heartbeat), and its commit index.
    Replicate {
        /// The primary.
        from: u32,
        /// Its epoch.
        epoch: u64,
        /// The index just before `entries`.
        prev_index: u64,
        /// The epoch of the entry at `prev_index` (0 for none).
        prev_epoch: u64,
        /// Entries from `prev_index + 1` on.
        entries: Vec<Entry>,
        /// The primary's commit index.
        commit: u64,
        /// The round this message belongs to; echoed back, it proves the
        /// backup still followed this primary after the round began.
        round: u64,
    },
    /// A backup's answer to [`Message::Replicate`].
    ReplicateReply {
        /// The backup.
        from: u32,
        /// Its epoch.
        epoch: u64,
        /// Whether its log now matches the primary's up to `matched`.
        success: bool,
        /// On success its last matching index; on failure, a hint: the
        /// primary resends from after it.
        matched: u64,
        /// The round echoed.
        round: u64,
    },
    /// A client operation forwarded to the primary.
    Request {
        /// The forwarding node.
        from: u32,
        /// The request id.
        id: RequestId,
        /// The operation.
        op: ClientOp,
    },
    /// The primary's answer to a forwarded operation.
    Response {
        /// The request id.
        id: RequestId,
        /// The answer.
        answer: Answer,
    },
}

impl Message {
    /// The sending node, for messages that name it.
    pub fn from(&self) -> Option<u32> {
        match self {
            Message::Vote { from, .. }
            | Message::VoteReply { from, .. }
            | Message::Replicate { from, .. }
            | Message::ReplicateReply { from, .. }
            | Message::Request { from, .. } => Some(*from),
            Message::Response { .. } => None,
        }
    }
}

/// Encodes a message.
pub fn encode(message: &Message) -> Bytes {
    Bytes::from(postcard::to_allocvec(message).expect("messages always encode"))
}

/// Decodes a message from a peer of a cluster of `nodes`, or says why it is
/// a protocol violation (too long, undecodable, trailing bytes, a sender
/// index out of range).
pub fn decode(bytes: &[u8], nodes: u32) -> Result<Message, String> {
    if bytes.len() > MAX_MESSAGE {
        return Err(format!("a message of {} bytes, more than {MAX_MESSAGE}", bytes.len()));
    }
    let (message, rest) = postcard::take_from_bytes::<Message>(bytes).map_err(|e| format!("undecodable: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    match message.from() {
        Some(from) if from >= nodes => Err(format!("from node {from} of {nodes}")),
        _ => Ok(message),
    }
}

/// A node's durable state: its epoch promise, its vote and its log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    /// The highest epoch the node has seen; it never acts in a lower one.
    pub epoch: u64,
    /// Whom it voted for in `epoch`.
    pub voted_for: Option<u32>,
    /// The log, index 1 first.
    pub log: Vec<Entry>,
}

/// The two slots the durable state alternates between.
pub const SLOTS: [&str; 2] = ["state-0", "state-1"];

/// The bytes of slot `SLOTS[seq % 2]` holding `state` as write number `seq`.
pub fn seal(seq: u64, state: &Durable) -> Vec<u8> {
    let payload = postcard::to_allocvec(state).expect("state always encodes");
    let mut bytes = Vec::with_capacity(payload.len() + 20);
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let sum = xxh3_64(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// The write number and state a slot holds, if it is whole.
pub fn unseal(bytes: &[u8]) -> Option<(u64, Durable)> {
    if bytes.len() < 20 {
        return None;
    }
    let seq = u64::from_le_bytes(bytes[..8].try_into().ok()?);
    let len = u32::from_le_bytes(bytes[8..12].try_into().ok()?) as usize;
    if bytes.len() != 20 + len {
        return None;
    }
    let sum = u64::from_le_bytes(bytes[12 + len..].try_into().ok()?);
    if xxh3_64(&bytes[..12 + len]) != sum {
        return None;
    }
    Some((seq, postcard::from_bytes(&bytes[12..12 + len]).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let message = Message::Request { from: 2, id: 9, op: ClientOp::Append { key: "a".into(), value: "v".into() } };
        assert_eq!(decode(&encode(&message), 3), Ok(message.clone()));
        assert!(decode(&encode(&message), 2).is_err(), "a sender out of range");
        let mut long = encode(&message).to_vec();
        long.push(0);
        assert!(decode(&long, 3).is_err(), "trailing bytes");
        assert!(decode(&[0xff; 7], 3).is_err());
        assert!(decode(&vec![0; MAX_MESSAGE + 1], 3).is_err());
    }

    #[test]
    fn a_torn_or_short_slot_is_not_whole() {
        let state =
            Durable { epoch: 3, voted_for: Some(1), log: vec![Entry { epoch: 3, id: 0, command: Command::Noop }] };
        let bytes = seal(7, &state);
        assert_eq!(unseal(&bytes), Some((7, state)));
        let mut torn = bytes.clone();
        torn[14] ^= 1;
        assert_eq!(unseal(&torn), None);
        assert_eq!(unseal(&bytes[..bytes.len() - 1]), None);
        assert_eq!(unseal(&[]), None);
    }
}
