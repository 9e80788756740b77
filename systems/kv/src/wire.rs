//! The wire protocol: length-prefixed frames ([`tandem::Framing`])
//! holding a version byte and a postcard-encoded [`Message`].
//!
//! Every message carries its sender's [`Member`] record (index, incarnation,
//! address version, listen address), so a receiver always learns where its
//! peer listens now. A receiver feeds each connection's bytes to a
//! [`FrameDecoder`](tandem::FrameDecoder) and decodes whole frames
//! with [`decode`]; an oversized frame, another protocol version, bytes that
//! do not decode or trailing bytes are errors, on which the node closes the
//! connection. Nothing a peer sends can panic the node.
//!
//! ```
//! use tandem_kv::wire::{decode, encode, Body, Member, Message};
//! use tandem::transport::{FrameDecoder, Framing};
//!
//! let framing = Framing::new(1 << 20);
//! let from = Member { index: 1, incarnation: 0, epoch: 0, addr: "10.0.0.2:7000".parse().unwrap() };
//! let message = Message { from, body: Body::Summary { hash: 7, members: vec![] } };
//! let frame = encode(&framing, &message).unwrap();
//! let mut decoder = FrameDecoder::new(framing);
//! decoder.push(&frame);
//! let payload = decoder.next_frame().unwrap().unwrap();
//! assert_eq!(decode(&payload).unwrap(), message);
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tandem::{Framing, TransportError};

use crate::store::{Entry, Version};

/// Bumped on every incompatible change of [`Message`].
pub const WIRE_VERSION: u8 = 1;

/// What a node says about itself (or relays about another node): enough to
/// dial it, and to tell a newer record from an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node's index in the cluster.
    pub index: u32,
    /// Its incarnation: bumped on every restart.
    pub incarnation: u64,
    /// Its address version within the incarnation: bumped on every rebind.
    pub epoch: u64,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Member {
    /// Whether this record is newer than `other` (a restart beats any rebind
    /// of an older incarnation).
    pub fn is_newer_than(&self, other: &Member) -> bool {
        (self.incarnation, self.epoch) > (other.incarnation, other.epoch)
    }
}

/// What a message asks or tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// The periodic anti-entropy probe: a hash of the sender's digest and its
    /// address table. A receiver whose hash differs answers with its
    /// [`Body::Digest`].
    Summary {
        /// [`Store::digest_hash`](crate::store::Store::digest_hash) of the sender.
        hash: u64,
        /// Every node the sender knows, itself included.
        members: Vec<Member>,
    },
    /// Every key the sender holds, with its version. The receiver answers
    /// with [`Body::Entries`]: what the sender lacks, and what it wants.
    Digest {
        /// Keys and versions, tombstones included.
        versions: Vec<(String, Version)>,
    },
    /// Registers to merge, and keys whose registers the sender wants back.
    Entries {
        /// The registers.
        entries: Vec<(String, Entry)>,
        /// Keys the receiver should send back with [`Body::Entries`].
        want: Vec<String>,
        /// `true` for anti-entropy repairs, `false` for an eager push of a
        /// fresh local write.
        repair: bool,
    },
}

/// One message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender, as it is now.
    pub from: Member,
    /// What it says.
    pub body: Body,
}

/// Encodes `message` as one frame: the length prefix of `framing`, the
/// version byte, then postcard. Fails when the frame exceeds the limit.
pub fn encode(framing: &Framing, message: &Message) -> Result<Bytes, TransportError> {
    let payload = postcard::to_extend(message, vec![WIRE_VERSION])
        .map_err(|e| TransportError::Protocol(format!("cannot encode: {e}")))?;
    framing.encode(&payload)
}

/// Decodes the payload of one frame (what follows the length prefix),
/// rejecting other versions and trailing bytes.
pub fn decode(payload: &[u8]) -> Result<Message, TransportError> {
    let (&version, body) = payload.split_first().ok_or_else(|| TransportError::Protocol("empty frame".into()))?;
    if version != WIRE_VERSION {
        return Err(TransportError::Protocol(format!("wire version {version}, expected {WIRE_VERSION}")));
    }
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| TransportError::Protocol(format!("undecodable message: {e}")))?;
    if !rest.is_empty() {
        return Err(TransportError::Protocol(format!("{} trailing bytes after a message", rest.len())));
    }
    Ok(message)
}

/// Encodes `entries` as one or more [`Body::Entries`] frames, each at most
/// `budget` bytes of entries (a single larger entry goes alone); `want` goes
/// in the first. Entries that cannot be framed at all are skipped.
pub fn entries_frames(
    framing: &Framing,
    from: Member,
    entries: Vec<(String, Entry)>,
    want: Vec<String>,
    repair: bool,
    budget: usize,
) -> Vec<Bytes> {
    let mut chunks: Vec<Vec<(String, Entry)>> = vec![Vec::new()];
    let mut size = 0;
    for (key, entry) in entries {
        let len = key.len() + entry.value.as_ref().map_or(0, String::len) + 24;
        if size + len > budget && !chunks.last().expect("one chunk at least").is_empty() {
            chunks.push(Vec::new());
            size = 0;
        }
        size += len;
        chunks.last_mut().expect("one chunk at least").push((key, entry));
    }
    let mut want = Some(want);
    chunks
        .into_iter()
        .filter_map(|entries| {
            let want = want.take().unwrap_or_default();
            let message = Message { from, body: Body::Entries { entries, want, repair } };
            match encode(framing, &message) {
                Ok(frame) => Some(frame),
                Err(error) => {
                    tracing::warn!(%error, "entries dropped: they do not fit a frame");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tandem::FrameDecoder;

    use super::*;

    fn member() -> Member {
        Member { index: 3, incarnation: 1, epoch: 2, addr: "10.0.0.4:9000".parse().unwrap() }
    }

    fn entry(ts: u64, value: Option<&str>) -> Entry {
        Entry { version: Version::new(ts, 1), value: value.map(str::to_string) }
    }

    #[test]
    fn round_trip_every_body() {
        let framing = Framing::new(4096);
        let bodies = [
            Body::Summary { hash: u64::MAX, members: vec![member()] },
            Body::Digest { versions: vec![("k".into(), Version::new(9, 2))] },
            Body::Entries {
                entries: vec![("k".into(), entry(1, Some("v"))), ("d".into(), entry(2, None))],
                want: vec!["x".into()],
                repair: true,
            },
        ];
        let mut decoder = FrameDecoder::new(framing);
        for body in bodies {
            let message = Message { from: member(), body };
            let frame = encode(&framing, &message).unwrap();
            // Split delivery reassembles.
            decoder.push(&frame[..3]);
            assert!(decoder.next_frame().unwrap().is_none());
            decoder.push(&frame[3..]);
            assert_eq!(decode(&decoder.next_frame().unwrap().unwrap()).unwrap(), message);
        }
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let framing = Framing::new(4096);
        let frame = encode(&framing, &Message { from: member(), body: Body::Digest { versions: vec![] } }).unwrap();
        let payload = &frame[4..];
        assert!(decode(payload).is_ok());
        assert!(decode(&[]).is_err());
        let mut other = payload.to_vec();
        other[0] = WIRE_VERSION + 1;
        assert!(decode(&other).is_err());
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        let mut trailing = payload.to_vec();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        assert!(decode(&[WIRE_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Every prefix and every single-byte corruption decodes or fails cleanly.
        for cut in 0..payload.len() {
            let _ = decode(&payload[..cut]);
            let mut bad = payload.to_vec();
            bad[cut] ^= 0xa5;
            let _ = decode(&bad);
        }
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let framing = Framing::new(64);
        let big = Message {
            from: member(),
            body: Body::Entries {
                entries: vec![("k".into(), entry(1, Some(&"x".repeat(100))))],
                want: vec![],
                repair: false,
            },
        };
        assert!(matches!(encode(&framing, &big), Err(TransportError::FrameTooLarge { .. })));
        let mut decoder = FrameDecoder::new(framing);
        decoder.push(&[0, 0, 1, 0, 1, 2]);
        assert!(matches!(decoder.next_frame(), Err(TransportError::FrameTooLarge { len: 256, max: 64 })));
    }

    #[test]
    fn entries_are_chunked_under_the_budget() {
        let framing = Framing::new(1 << 16);
        let entries: Vec<_> = (0..10).map(|i| (format!("k{i}"), entry(i, Some(&"v".repeat(100))))).collect();
        let frames = entries_frames(&framing, member(), entries.clone(), vec!["w".into()], true, 300);
        assert!(frames.len() >= 4, "{} frames", frames.len());
        let mut got = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            match decode(&frame[4..]).unwrap().body {
                Body::Entries { entries, want, repair } => {
                    assert!(repair);
                    assert_eq!(want.is_empty(), i > 0, "want goes in the first frame only");
                    got.extend(entries);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, entries);
        // Nothing to send still carries the wanted keys.
        assert_eq!(entries_frames(&framing, member(), vec![], vec!["w".into()], true, 300).len(), 1);
    }

    #[test]
    fn newer_member_records() {
        let a = member();
        assert!(Member { epoch: 3, ..a }.is_newer_than(&a));
        assert!(Member { incarnation: 2, epoch: 0, ..a }.is_newer_than(&a));
        assert!(!a.is_newer_than(&a));
    }
}
