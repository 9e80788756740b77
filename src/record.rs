//! What a run observed, backend-agnostic: the oracle reads only this.
//!
//! Both runners (simulated and real) fill a [`Record`] the same way: the
//! runner records sends and deliveries as the application sees them, nodes'
//! latest membership views, and when each node lived.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::node::{Delivery, MessageId, MessageKind, NodeId, PeerMap, Sent};
use crate::trace::{Trace, TraceKind};

/// An application send, as accepted by the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// When.
    pub at: Duration,
    /// The message.
    pub id: MessageId,
    /// Broadcast or direct.
    pub kind: MessageKind,
    /// The tag.
    pub tag: String,
    /// Digest of the payload, for the integrity check.
    pub payload_digest: u64,
    /// Who must receive it.
    pub recipients: Vec<NodeId>,
}

/// A delivery to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// When.
    pub at: Duration,
    /// The incarnation of the receiving node.
    pub incarnation: u64,
    /// The message.
    pub id: MessageId,
    /// Broadcast or direct, as the receiver saw it.
    pub kind: MessageKind,
    /// The tag, as received.
    pub tag: String,
    /// Digest of the payload, as received.
    pub payload_digest: u64,
}

/// One node's life and observations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Whether it runs now.
    pub alive: bool,
    /// Its current (or last) incarnation.
    pub incarnation: u64,
    /// Where it listens now (or listened last).
    pub addr: SocketAddr,
    /// Times it was crashed.
    pub crashes: Vec<Duration>,
    /// Its latest membership view (empty after a crash until it learns again).
    pub view: PeerMap,
    /// Everything it delivered, all incarnations.
    pub deliveries: Vec<DeliveryRecord>,
}

/// Everything a run observed.
#[derive(Debug, Clone)]
pub struct Record {
    /// Per node index.
    pub nodes: Vec<NodeRecord>,
    /// Every accepted send.
    pub sends: Vec<SendRecord>,
    /// The full trace.
    pub trace: Trace,
}

impl Record {
    /// A record of `addrs.len()` nodes that have not started yet.
    pub fn new(addrs: &[SocketAddr]) -> Self {
        let nodes = addrs
            .iter()
            .map(|&addr| NodeRecord {
                alive: false,
                incarnation: 0,
                addr,
                crashes: Vec::new(),
                view: PeerMap::new(),
                deliveries: Vec::new(),
            })
            .collect();
        Record { nodes, sends: Vec::new(), trace: Trace::default() }
    }

    /// A node (re)started.
    pub fn started(&mut self, at: Duration, node: u32, incarnation: u64, addr: SocketAddr) {
        let n = &mut self.nodes[node as usize];
        n.alive = true;
        n.incarnation = incarnation;
        n.addr = addr;
        self.trace.push(at, Some(node), TraceKind::Started { incarnation, addr: addr.to_string() });
    }

    /// A node was killed.
    pub fn crashed(&mut self, at: Duration, node: u32) {
        let n = &mut self.nodes[node as usize];
        assert!(n.alive, "node {node} crashed while down");
        n.alive = false;
        n.crashes.push(at);
        n.view.clear();
        self.trace.push(at, Some(node), TraceKind::Crashed);
    }

    /// A node's rebind completed.
    pub fn rebound(&mut self, at: Duration, node: u32, addr: SocketAddr) {
        self.nodes[node as usize].addr = addr;
        self.trace.push(at, Some(node), TraceKind::Rebound { addr: addr.to_string() });
    }

    /// The application asked `node` to send; `result` is the node's answer.
    pub fn sent(
        &mut self,
        at: Duration,
        node: u32,
        kind: MessageKind,
        tag: &str,
        payload: &[u8],
        result: Result<Sent, String>,
    ) {
        let (id, recipients, refused) = match result {
            Ok(sent) => {
                self.sends.push(SendRecord {
                    at,
                    id: sent.id,
                    kind,
                    tag: tag.to_string(),
                    payload_digest: payload_digest(payload),
                    recipients: sent.recipients.clone(),
                });
                (Some(sent.id), sent.recipients, None)
            }
            Err(reason) => (None, Vec::new(), Some(reason)),
        };
        let event = TraceKind::Send { id, message: kind, tag: tag.to_string(), size: payload.len(), recipients, refused };
        self.trace.push(at, Some(node), event);
    }

    /// A node delivered a message.
    pub fn delivered(&mut self, at: Duration, node: u32, delivery: &Delivery) {
        let n = &mut self.nodes[node as usize];
        n.deliveries.push(DeliveryRecord {
            at,
            incarnation: n.incarnation,
            id: delivery.id,
            kind: delivery.kind,
            tag: delivery.tag.clone(),
            payload_digest: payload_digest(&delivery.payload),
        });
        let event = TraceKind::Deliver {
            id: delivery.id,
            message: delivery.kind,
            tag: delivery.tag.clone(),
            size: delivery.payload.len(),
        };
        self.trace.push(at, Some(node), event);
    }

    /// A node's membership view changed.
    pub fn viewed(&mut self, node: u32, view: PeerMap) {
        self.nodes[node as usize].view = view;
    }

    /// Indices of the nodes that run now.
    pub fn live(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.nodes.len() as u32).filter(|&i| self.nodes[i as usize].alive)
    }
}

/// The payload the runners send for a message: deterministic, so the
/// receiver's copy can be checked byte for byte (invariant S3).
pub fn payload_for(origin: u32, tag: &str, size: usize) -> Bytes {
    let seed = xxhash_rust::xxh3::xxh3_64(format!("{origin}/{tag}").as_bytes()).to_le_bytes();
    seed.iter().copied().cycle().take(size).collect()
}

/// The digest used to compare payloads.
pub fn payload_digest(payload: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(payload)
}
