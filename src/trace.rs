//! The trace: every step, fault, connection event, send, delivery and
//! membership change of a run, with a canonical encoding and a digest.
//!
//! The canonical encoding is one JSON object per event, fields in a fixed
//! order, times in whole microseconds. Same scenario, seed and build in the
//! simulation => same lines => same [`Trace::digest`], in every process.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::node::{MessageId, MessageKind, NodeEvent, NodeId};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// A timeline step began.
    Step {
        /// Its index in the scenario.
        index: usize,
        /// A short description (`broadcast from=0 tag=x`).
        action: String,
    },
    /// A network fault changed (partition, heal, latency, loss).
    Fault {
        /// A short description.
        what: String,
    },
    /// A node started (first start or restart).
    Started {
        /// Its incarnation.
        incarnation: u64,
        /// Where it listens.
        addr: String,
    },
    /// A node was killed.
    Crashed,
    /// A node finished a rebind.
    Rebound {
        /// The new address.
        addr: String,
    },
    /// The application asked a node to send.
    Send {
        /// The message, when the node accepted it.
        id: Option<MessageId>,
        /// Broadcast or direct.
        message: MessageKind,
        /// The tag.
        tag: String,
        /// Payload bytes.
        size: usize,
        /// Who must receive it (empty when refused).
        recipients: Vec<NodeId>,
        /// Why the node refused it, if it did.
        refused: Option<String>,
    },
    /// A node delivered a message to the application.
    Deliver {
        /// The message.
        id: MessageId,
        /// Broadcast or direct.
        message: MessageKind,
        /// The tag.
        tag: String,
        /// Payload bytes.
        size: usize,
    },
    /// Something inside a node (connections, acks, membership).
    Node(NodeEvent),
    /// The run's verdict.
    Verdict {
        /// `pass` or the failure.
        outcome: String,
    },
}

/// One trace event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// Microseconds since the run began (simulated or wall).
    pub t_us: u64,
    /// The node it happened on, if any.
    pub node: Option<u32>,
    /// What happened.
    pub event: TraceKind,
}

impl TraceEvent {
    /// The canonical one-line JSON encoding.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("trace events always serialise")
    }
}

/// A 64-bit digest of a trace's canonical encoding, printed as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub u64);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The events of one run, in the order they happened.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    events: Vec<TraceEvent>,
}

impl Trace {
    /// Appends an event.
    pub fn push(&mut self, at: Duration, node: Option<u32>, event: TraceKind) {
        let t_us = u64::try_from(at.as_micros()).expect("runs are shorter than 584,000 years");
        self.events.push(TraceEvent { t_us, node, event });
    }

    /// The events so far.
    pub fn events(&self) -> &[TraceEvent] {
        &self.events
    }

    /// The digest of the canonical encoding (xxh3-64 over the lines, each
    /// ended by a newline): stable across processes and machines.
    pub fn digest(&self) -> Digest {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for event in &self.events {
            hasher.update(event.canonical().as_bytes());
            hasher.update(b"\n");
        }
        Digest(hasher.digest())
    }

    /// The whole trace as JSON lines.
    pub fn to_jsonl(&self) -> String {
        self.events.iter().map(|e| e.canonical() + "\n").collect()
    }
}

/// The first line where two JSON-lines traces differ: (line number from 1,
/// left line, right line); `None` when they are equal. A missing line is "".
pub fn first_difference<'a>(left: &'a str, right: &'a str) -> Option<(usize, &'a str, &'a str)> {
    let mut l = left.lines();
    let mut r = right.lines();
    for number in 1.. {
        match (l.next(), r.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => return Some((number, a.unwrap_or(""), b.unwrap_or(""))),
        }
    }
    unreachable!("the loop returns when both traces end")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_every_field_and_the_order() {
        let mut a = Trace::default();
        a.push(Duration::from_millis(1), Some(0), TraceKind::Crashed);
        a.push(Duration::from_millis(2), None, TraceKind::Fault { what: "heal".into() });
        let mut b = a.clone();
        assert_eq!(a.digest(), b.digest());
        b.push(Duration::from_millis(3), Some(1), TraceKind::Crashed);
        assert_ne!(a.digest(), b.digest());
        let mut c = Trace::default();
        c.push(Duration::from_millis(2), None, TraceKind::Fault { what: "heal".into() });
        c.push(Duration::from_millis(1), Some(0), TraceKind::Crashed);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(format!("{}", Digest(0xab)), "00000000000000ab");
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), Some((2, "b", "c")));
        assert_eq!(first_difference("a\n", "a\nc\n"), Some((2, "", "c")));
    }
}
