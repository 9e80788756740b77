//! The wire protocol: a version byte, then a postcard-encoded [`Wire`].
//!
//! A peer speaking another version, or sending bytes that do not decode, is a
//! protocol error and loses its connection; it never crashes the node.

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{MessageId, NodeId};
use tandem::TransportError;

/// Bumped on every incompatible change of [`Wire`].
pub const WIRE_VERSION: u8 = 2;

/// What a node knows of one member: enough to dial it and to order updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The member.
    pub id: NodeId,
    /// Bumped by the runner on every restart.
    pub incarnation: u64,
    /// Bumped by the member on every rebind.
    pub version: u64,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl MemberRecord {
    /// Newer records win: a restart beats any rebind of an older incarnation.
    pub fn is_newer_than(&self, other: &MemberRecord) -> bool {
        (self.incarnation, self.version) > (other.incarnation, other.version)
    }
}

/// A member record with its member's signature (empty when the node runs
/// without [credentials](super::roster::Credentials)), so that it can be
/// relayed and still checked against the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    /// The record.
    pub record: MemberRecord,
    /// Ed25519 over the record, by the member it describes.
    pub signature: Vec<u8>,
}

/// The length of a record signature (Ed25519); a record carries one or none.
pub const SIGNATURE_LEN: usize = 64;

impl SignedRecord {
    /// A record without a signature (nodes without credentials).
    pub fn unsigned(record: MemberRecord) -> Self {
        SignedRecord { record, signature: Vec::new() }
    }

    /// Whether its fields are of sizes the protocol uses: a signature is
    /// [`SIGNATURE_LEN`] bytes or absent. Checked before a record is
    /// stored or relayed, with or without a roster.
    pub fn is_well_formed(&self) -> bool {
        self.signature.is_empty() || self.signature.len() == SIGNATURE_LEN
    }
}

/// An application message on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// Unique per origin incarnation.
    pub id: MessageId,
    /// `None` for a broadcast, the addressee for a direct message.
    pub to: Option<NodeId>,
    /// The application's tag.
    pub tag: String,
    /// The application's bytes.
    pub payload: Bytes,
}

/// Every message two nodes exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// First message each way on a new connection.
    Hello(SignedRecord),
    /// The sender's whole membership view, itself included.
    Gossip(Vec<SignedRecord>),
    /// An application message.
    Data(Data),
    /// The receiver has the message; the sender may forget it.
    Ack(MessageId),
}

impl Wire {
    /// Encodes with the version byte in front.
    pub fn encode(&self) -> Bytes {
        let out = postcard::to_extend(self, vec![WIRE_VERSION]).expect("encoding into memory cannot fail");
        Bytes::from(out)
    }

    /// Decodes one message, rejecting other versions and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Wire, TransportError> {
        let (&version, body) = bytes.split_first().ok_or_else(|| TransportError::Protocol("empty message".into()))?;
        if version != WIRE_VERSION {
            return Err(TransportError::Protocol(format!("wire version {version}, expected {WIRE_VERSION}")));
        }
        let (wire, rest) = postcard::take_from_bytes(body)
            .map_err(|e| TransportError::Protocol(format!("undecodable message: {e}")))?;
        if !rest.is_empty() {
            return Err(TransportError::Protocol("trailing bytes after message".into()));
        }
        Ok(wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let data = Wire::Data(Data {
            id: MessageId { origin: NodeId(1), incarnation: 2, seq: 3 },
            to: Some(NodeId(4)),
            tag: "t".into(),
            payload: Bytes::from_static(b"payload"),
        });
        let bytes = data.encode();
        assert_eq!(Wire::decode(&bytes).unwrap(), data);
        let mut other_version = bytes.to_vec();
        other_version[0] = WIRE_VERSION + 1;
        assert!(Wire::decode(&other_version).is_err());
        assert!(Wire::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Wire::decode(&[]).is_err());
        assert!(Wire::decode(&[WIRE_VERSION, 0xff, 0xff, 0xff]).is_err());
    }
}
