//! Who may be a member, and what proves it.
//!
//! A [`Roster`] binds each node id to the certificate identity its
//! transport proves ([`PeerIdentity`]) and to the key that signs its member
//! records. With a roster (see [`Credentials`]), a node:
//! - talks only to peers whose Hello comes from the identity the roster
//!   gives for the id it claims, in both directions;
//! - delivers Data only with the authenticated peer as its origin;
//! - changes its view only on member records signed by the member they
//!   describe, however many hops they were relayed.
//!
//! Without a roster (development), anyone can claim any id; membership is
//! then only bounded (see [`NodeConfig::max_members`](super::NodeConfig::max_members)).
//!
//! ```
//! use std::sync::Arc;
//! use ed25519_dalek::SigningKey;
//! use tandem::PeerIdentity;
//! use tandem_pubsub::node::roster::{Credentials, Roster};
//! use tandem_pubsub::node::NodeId;
//!
//! let keys: Vec<SigningKey> = (0..3u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
//! let mut roster = Roster::default();
//! for (i, key) in keys.iter().enumerate() {
//!     // In real use: each node's TLS certificate identity (`TlsIdentity::id`).
//!     roster.insert(NodeId(i as u32), PeerIdentity([i as u8; 32]), key.verifying_key());
//! }
//! let credentials = Credentials::new(keys[0].clone(), Arc::new(roster));
//! assert!(credentials.roster.entry(NodeId(2)).is_some());
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use tandem::{PeerIdentity, APPLICATION_CLOSE_CODES};

use super::wire::{MemberRecord, SignedRecord};
use super::NodeId;

/// Domain separation: a signature over a member record is never valid for anything else.
const RECORD_CONTEXT: &[u8] = b"tandem-pubsub member record v1";

/// What the roster says of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterEntry {
    /// The certificate identity its transport proves.
    pub identity: PeerIdentity,
    /// The key its member records are signed with.
    pub key: VerifyingKey,
}

/// Node id -> certificate identity and record key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    entries: BTreeMap<NodeId, RosterEntry>,
}

impl Roster {
    /// Adds (or replaces) a member.
    pub fn insert(&mut self, id: NodeId, identity: PeerIdentity, key: VerifyingKey) {
        self.entries.insert(id, RosterEntry { identity, key });
    }

    /// The entry of `id`, if it is on the roster.
    pub fn entry(&self, id: NodeId) -> Option<&RosterEntry> {
        self.entries.get(&id)
    }

    /// Whether a connection whose peer proved `identity` may speak for `id`.
    pub fn check_peer(&self, id: NodeId, identity: Option<PeerIdentity>) -> Result<(), Refusal> {
        let entry = self.entry(id).ok_or(Refusal::UnknownMember(id))?;
        if identity != Some(entry.identity) {
            return Err(Refusal::Impersonation { claimed: id, proven: identity });
        }
        Ok(())
    }

    /// Whether `signed` is signed by the member it describes.
    pub fn check_record(&self, signed: &SignedRecord) -> Result<(), Refusal> {
        let id = signed.record.id;
        let entry = self.entry(id).ok_or(Refusal::UnknownMember(id))?;
        let signature = <[u8; 64]>::try_from(signed.signature.as_slice())
            .map(|bytes| Signature::from_bytes(&bytes))
            .map_err(|_| Refusal::ForgedRecord(id))?;
        entry.key.verify(&signed_bytes(&signed.record), &signature).map_err(|_| Refusal::ForgedRecord(id))
    }
}

/// A node's own signing key and the roster it checks peers against.
#[derive(Clone)]
pub struct Credentials {
    /// Signs this node's member records; its public half is this node's
    /// roster key.
    pub key: SigningKey,
    /// Every member.
    pub roster: Arc<Roster>,
}

impl fmt::Debug for Credentials {
    // Never print the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("roster", &self.roster).finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials of a node that signs with `key` and checks peers against `roster`.
    pub fn new(key: SigningKey, roster: Arc<Roster>) -> Self {
        Credentials { key, roster }
    }

    /// `record`, signed.
    pub fn sign(&self, record: MemberRecord) -> SignedRecord {
        SignedRecord { record, signature: self.key.sign(&signed_bytes(&record)).to_bytes().to_vec() }
    }
}

fn signed_bytes(record: &MemberRecord) -> Vec<u8> {
    postcard::to_extend(record, RECORD_CONTEXT.to_vec()).expect("encoding into memory cannot fail")
}

/// Why a node refused what a peer said; each closes the connection with its
/// own [code](Refusal::close_code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A message out of protocol order (a second Hello) or one that does not decode.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A Hello or record for an id not on the roster.
    #[error("node {0} is not on the roster")]
    UnknownMember(NodeId),
    /// A Hello for an id from a connection whose certificate is not that id's.
    #[error("a peer proving {proven:?} claimed to be node {claimed}")]
    Impersonation {
        /// The id claimed.
        claimed: NodeId,
        /// The identity the transport proved.
        proven: Option<PeerIdentity>,
    },
    /// A member record whose signature is not its member's.
    #[error("a record of node {0} is not signed by it")]
    ForgedRecord(NodeId),
    /// Data whose origin is not the authenticated peer, or addressed elsewhere.
    #[error("a message from node {peer} claimed origin {origin} or another addressee")]
    ForgedOrigin {
        /// The authenticated peer.
        peer: NodeId,
        /// The origin the message claimed.
        origin: NodeId,
    },
    /// The peer does not take what it is sent: the connection's queue went
    /// over [`NodeConfig::max_queued_frames`](super::NodeConfig::max_queued_frames)
    /// or [`max_queued_bytes`](super::NodeConfig::max_queued_bytes), or a
    /// frame waited [`Timing::send_stall`](super::Timing::send_stall) for
    /// flow control.
    #[error("the peer does not read: {0}")]
    Overloaded(String),
}

impl Refusal {
    /// The close code (an application code, so every transport that carries
    /// codes sends it):
    ///
    /// | code | refusal |
    /// |---|---|
    /// | 0x100 | [`Protocol`](Refusal::Protocol) |
    /// | 0x101 | [`UnknownMember`](Refusal::UnknownMember) |
    /// | 0x102 | [`Impersonation`](Refusal::Impersonation) |
    /// | 0x103 | [`ForgedRecord`](Refusal::ForgedRecord) |
    /// | 0x104 | [`ForgedOrigin`](Refusal::ForgedOrigin) |
    /// | 0x105 | [`Overloaded`](Refusal::Overloaded) |
    pub fn close_code(&self) -> u64 {
        APPLICATION_CLOSE_CODES
            + match self {
                Refusal::Protocol(_) => 0,
                Refusal::UnknownMember(_) => 1,
                Refusal::Impersonation { .. } => 2,
                Refusal::ForgedRecord(_) => 3,
                Refusal::ForgedOrigin { .. } => 4,
                Refusal::Overloaded(_) => 5,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u32, version: u64) -> MemberRecord {
        MemberRecord { id: NodeId(id), incarnation: 0, version, addr: "10.0.0.1:7000".parse().unwrap() }
    }

    #[test]
    fn records_verify_only_with_their_members_key() {
        let keys: Vec<SigningKey> = (0..2u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
        let mut roster = Roster::default();
        for (i, key) in keys.iter().enumerate() {
            roster.insert(NodeId(i as u32), PeerIdentity([i as u8; 32]), key.verifying_key());
        }
        let roster = Arc::new(roster);
        let zero = Credentials::new(keys[0].clone(), roster.clone());
        let one = Credentials::new(keys[1].clone(), roster.clone());
        assert_eq!(roster.check_record(&zero.sign(record(0, 3))), Ok(()));
        // Signed by another member, altered after signing, unsigned, or off the roster.
        assert_eq!(roster.check_record(&one.sign(record(0, 3))), Err(Refusal::ForgedRecord(NodeId(0))));
        let mut altered = zero.sign(record(0, 3));
        altered.record.version = 4;
        assert_eq!(roster.check_record(&altered), Err(Refusal::ForgedRecord(NodeId(0))));
        let unsigned = SignedRecord { record: record(0, 3), signature: Vec::new() };
        assert_eq!(roster.check_record(&unsigned), Err(Refusal::ForgedRecord(NodeId(0))));
        assert_eq!(roster.check_record(&zero.sign(record(7, 0))), Err(Refusal::UnknownMember(NodeId(7))));
        // Peers: only the roster's identity speaks for an id.
        assert_eq!(roster.check_peer(NodeId(1), Some(PeerIdentity([1; 32]))), Ok(()));
        assert!(matches!(
            roster.check_peer(NodeId(1), Some(PeerIdentity([0; 32]))),
            Err(Refusal::Impersonation { .. })
        ));
        assert!(matches!(roster.check_peer(NodeId(1), None), Err(Refusal::Impersonation { .. })));
        let codes: std::collections::BTreeSet<u64> = [
            Refusal::Protocol(String::new()),
            Refusal::UnknownMember(NodeId(0)),
            Refusal::Impersonation { claimed: NodeId(0), proven: None },
            Refusal::ForgedRecord(NodeId(0)),
            Refusal::ForgedOrigin { peer: NodeId(0), origin: NodeId(1) },
            Refusal::Overloaded(String::new()),
        ]
        .iter()
        .map(Refusal::close_code)
        .collect();
        assert_eq!(codes.len(), 6, "every refusal has its own code");
    }
}
