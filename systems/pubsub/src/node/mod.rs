//! The reference node: pub/sub over gossip membership, with acknowledged,
//! de-duplicated, retransmitted delivery and hot-reload rebinds.
//!
//! It is shaped like the node our first user runs in production and is the
//! framework's proof that it finds bugs (see [`mutation`]). Its guarantees are
//! the properties of [`crate::messaging`]:
//! - a broadcast goes to every member the origin knows, never to itself;
//! - a direct message goes to its addressee only;
//! - a node incarnation delivers each message at most once (receivers keep a
//!   [`dedup::SeenSet`]);
//! - unacknowledged messages wait in a bounded per-peer [`outbox::Outbox`]
//!   and are resent on every new connection, so a message sent while its
//!   origin stays up reaches every addressee that is up at the end;
//! - every node learns every member's newest address by gossip.
//!
//! ```no_run
//! # async fn demo<T: tandem::Transport>(transport: T) -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_pubsub::node::{Node, NodeConfig, NodeId};
//! let config = NodeConfig::new(NodeId(0), "10.0.0.1:7000".parse()?);
//! let mut node = Node::start(config, transport).await?;
//! node.broadcast.send("greeting", "hello".into()).await?;
//! while let Some(delivery) = node.incoming.recv().await {
//!     println!("{} from {}", delivery.tag, delivery.id.origin);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use tandem::{Listener, Transport, TransportError};

mod core;
pub mod dedup;
pub mod events;
pub mod mutation;
pub mod outbox;
pub mod roster;
pub mod wire;

pub use events::{EventObserver, NodeEvent};
pub use mutation::Mutation;

/// A node's identity, stable across restarts and rebinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies one application message: unique per origin incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId {
    /// The node that sent it.
    pub origin: NodeId,
    /// The origin's incarnation when it sent it.
    pub incarnation: u64,
    /// The origin's sequence number, from 0 in every incarnation.
    pub seq: u64,
}

impl fmt::Display for MessageId {
    /// `incarnation/seq`; the origin is printed separately where it matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.incarnation, self.seq)
    }
}

/// Whether a message went to every member or to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// To every member the origin knew, except itself.
    Broadcast,
    /// To one addressee.
    Direct,
}

/// An application message handed to the node's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Who sent it, and which message it is.
    pub id: MessageId,
    /// Broadcast or direct.
    pub kind: MessageKind,
    /// The application's tag.
    pub tag: String,
    /// The application's bytes.
    pub payload: Bytes,
}

/// What a node knows of another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// Where it listens, as far as this node knows.
    pub addr: SocketAddr,
    /// Its incarnation (bumped on restart).
    pub incarnation: u64,
    /// Its address version (bumped on rebind).
    pub version: u64,
}

/// Every other node this node knows, by id.
pub type PeerMap = BTreeMap<NodeId, PeerInfo>;

/// The node's timers. Every timer runs on `tokio::time`, so the simulation
/// controls them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// How often the membership view is pushed to connected peers.
    pub gossip_interval: Duration,
    /// How long a dial may take before it counts as failed.
    pub connect_timeout: Duration,
    /// How long the peer may take to answer the hello.
    pub handshake_timeout: Duration,
    /// First redial delay after a failure.
    pub backoff_min: Duration,
    /// Redial delays double up to this cap.
    pub backoff_max: Duration,
    /// A frame that waits this long for the transport to take it (the peer
    /// stopped granting flow control) closes the connection with
    /// [`Refusal::Overloaded`](roster::Refusal::Overloaded).
    pub send_stall: Duration,
    /// Dials to members that have never answered may start this many at once...
    pub probe_burst: u32,
    /// ...and then one per this interval: a gossiped address that never
    /// answers costs a low, capped dial rate.
    pub probe_interval: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            gossip_interval: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            send_stall: Duration::from_secs(10),
            probe_burst: 16,
            probe_interval: Duration::from_millis(250),
        }
    }
}

/// A node's configuration. Change it while the node runs through
/// [`NodeHandle::reload`]: a new `listen` address rebinds the node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's identity.
    pub id: NodeId,
    /// Bump on every restart so peers can tell a new life from an old one.
    pub incarnation: u64,
    /// Where to listen (port 0: the transport picks).
    pub listen: SocketAddr,
    /// Addresses to dial at start to join the cluster.
    pub seeds: Vec<SocketAddr>,
    /// Seed of the node's RNG (backoff jitter); the runner derives it.
    pub rng_seed: u64,
    /// Unacknowledged messages kept per peer. A member whose outbox is full
    /// is left out of broadcasts ([`Sent::dropped`]); a direct message to it
    /// is refused with [`SendError::Backpressure`].
    pub outbox_capacity: usize,
    /// Timers.
    pub timing: Timing,
    /// A planted bug (only with the `mutations` feature).
    pub mutation: Option<Mutation>,
    /// Receives the node's events (the adapter records them in the history).
    pub observer: Option<EventObserver>,
    /// The node's signing key and the roster of members; `None` (development)
    /// believes any peer's claims.
    pub credentials: Option<roster::Credentials>,
    /// Members kept at most; records of further members are ignored.
    pub max_members: usize,
    /// Frames one connection may have queued for its peer and not yet taken
    /// by the transport (messages, gossip and acknowledgements); one more
    /// closes the connection with [`Refusal::Overloaded`](roster::Refusal::Overloaded).
    pub max_queued_frames: usize,
    /// Bytes one connection may have queued, as `max_queued_frames`.
    pub max_queued_bytes: usize,
    /// How far a member record's incarnation may jump past the one this node
    /// knows; a record further ahead is ignored, so no single record can
    /// claim an incarnation that nothing later could outbid.
    pub max_incarnation_jump: u64,
}

impl NodeConfig {
    /// A configuration with defaults: no seeds, incarnation 0, 4096 pending
    /// messages per peer.
    pub fn new(id: NodeId, listen: SocketAddr) -> Self {
        NodeConfig {
            id,
            incarnation: 0,
            listen,
            seeds: Vec::new(),
            rng_seed: u64::from(id.0),
            outbox_capacity: 4096,
            timing: Timing::default(),
            mutation: None,
            observer: None,
            credentials: None,
            max_members: 1024,
            max_queued_frames: 16 * 1024,
            max_queued_bytes: 64 * 1024 * 1024,
            max_incarnation_jump: 1 << 20,
        }
    }

    /// Whether `mutation` is planted in this build.
    fn has(&self, mutation: Mutation) -> bool {
        Mutation::available() && self.mutation == Some(mutation)
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The transport's reason.
        source: TransportError,
    },
    /// A planted bug was asked for in a build without the `mutations` feature.
    #[error("mutation `{0}` needs a build with the `mutations` feature")]
    MutationUnavailable(Mutation),
}

/// Why a send was refused. A refused message is not sent at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A direct message to a node this node does not know.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// A direct message to itself.
    #[error("a node cannot send a direct message to itself")]
    ToSelf,
    /// The peer's outbox is full: it has not acknowledged enough messages.
    /// A broadcast is refused so only when every member's outbox is full.
    #[error("outbox for peer {0} is full")]
    Backpressure(NodeId),
}

/// A message the node accepted for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its id.
    pub id: MessageId,
    /// Every node it must reach (for a broadcast: the members known at send
    /// time whose outbox had room).
    pub recipients: Vec<NodeId>,
    /// Members a broadcast left out because their outbox was full (they
    /// have not acknowledged [`NodeConfig::outbox_capacity`] messages): a
    /// dead or hostile member degrades only its own delivery. Always empty
    /// for a direct message, which is refused with [`SendError::Backpressure`]
    /// instead.
    pub dropped: Vec<NodeId>,
}

/// The node's listen state after the latest reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenStatus {
    /// The bound address.
    pub addr: SocketAddr,
    /// The address version peers see.
    pub version: u64,
    /// How many config reloads the node has processed.
    pub reloads: u64,
    /// Why the latest rebind failed, if it did.
    pub error: Option<String>,
}

enum Command {
    Send { to: Option<NodeId>, tag: String, payload: Bytes, reply: oneshot::Sender<Result<Sent, SendError>> },
    Rebind { addr: SocketAddr, reply: oneshot::Sender<Result<SocketAddr, String>> },
}

/// Sends broadcasts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BroadcastSender(mpsc::UnboundedSender<Command>);

impl BroadcastSender {
    /// Broadcasts to every member the node knows now, except itself.
    pub async fn send(&self, tag: impl Into<String>, payload: Bytes) -> Result<Sent, SendError> {
        request(&self.0, None, tag.into(), payload).await
    }
}

/// Sends direct messages. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirectSender(mpsc::UnboundedSender<Command>);

impl DirectSender {
    /// Sends to one node.
    pub async fn send(&self, to: NodeId, tag: impl Into<String>, payload: Bytes) -> Result<Sent, SendError> {
        request(&self.0, Some(to), tag.into(), payload).await
    }
}

async fn request(
    commands: &mpsc::UnboundedSender<Command>,
    to: Option<NodeId>,
    tag: String,
    payload: Bytes,
) -> Result<Sent, SendError> {
    let (reply, answer) = oneshot::channel();
    commands.send(Command::Send { to, tag, payload, reply }).map_err(|_| SendError::Stopped)?;
    answer.await.map_err(|_| SendError::Stopped)?
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Send { to, tag, payload, .. } => {
                write!(f, "Send {{ to: {to:?}, tag: {tag:?}, {} bytes }}", payload.len())
            }
            Command::Rebind { addr, .. } => write!(f, "Rebind {{ addr: {addr} }}"),
        }
    }
}

/// Controls a running node; dropping it stops the node.
#[derive(Debug)]
pub struct NodeHandle {
    id: NodeId,
    config: watch::Sender<NodeConfig>,
    status: watch::Receiver<ListenStatus>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl NodeHandle {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the node listens on now.
    pub fn addr(&self) -> SocketAddr {
        self.status.borrow().addr
    }

    /// A watch of the listen state.
    pub fn status(&self) -> watch::Receiver<ListenStatus> {
        self.status.clone()
    }

    /// Hot reload: changes the configuration while the node runs. Only the
    /// listen address takes effect at run time; the node rebinds when it
    /// changes, and reports the outcome in [`NodeHandle::status`].
    pub fn reload(&self, change: impl FnOnce(&mut NodeConfig)) {
        self.config.send_modify(change);
    }

    /// Moves the listener to `addr` (port 0: the transport picks a new one)
    /// and waits until the node has rebound and started advertising the new
    /// address, which it returns.
    pub async fn rebind(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        let stopped = || "the node has stopped".to_string();
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Rebind { addr, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stops the node: its tasks end and its connections close.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running node and its channels. Destructure it to move the senders and
/// receivers to different tasks; keep `handle` alive as long as the node runs.
#[derive(Debug)]
pub struct Node {
    /// Controls the node (rebind, shutdown); dropping it stops the node.
    pub handle: NodeHandle,
    /// Sends direct messages.
    pub direct: DirectSender,
    /// Sends broadcasts.
    pub broadcast: BroadcastSender,
    /// The node's view of the other members, updated on every change.
    pub peers: watch::Receiver<PeerMap>,
    /// Messages delivered to this node, each at most once per incarnation.
    pub incoming: mpsc::UnboundedReceiver<Delivery>,
}

impl Node {
    /// Binds the listener and starts the node's tasks on the current tokio
    /// runtime. It then dials its seeds and joins the cluster.
    pub async fn start<T: Transport>(config: NodeConfig, transport: T) -> Result<Node, NodeError> {
        if let Some(mutation) = config.mutation {
            if !Mutation::available() {
                return Err(NodeError::MutationUnavailable(mutation));
            }
        }
        let transport = Arc::new(transport);
        let listener = transport
            .listen(config.listen)
            .await
            .map_err(|source| NodeError::Listen { addr: config.listen, source })?;
        let status = ListenStatus { addr: listener.local_addr(), version: 0, reloads: 0, error: None };
        let (status_tx, status_rx) = watch::channel(status);
        let (config_tx, config_rx) = watch::channel(config.clone());
        let (peers_tx, peers_rx) = watch::channel(PeerMap::new());
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let core = core::Core::new(core::Channels {
            transport,
            config: config_rx,
            commands: commands_rx,
            incoming: incoming_tx,
            peers: peers_tx,
            status: status_tx,
        });
        let task = tokio::spawn(core.run(listener));
        Ok(Node {
            handle: NodeHandle {
                id: config.id,
                config: config_tx,
                status: status_rx,
                commands: commands_tx.clone(),
                task,
            },
            direct: DirectSender(commands_tx.clone()),
            broadcast: BroadcastSender(commands_tx),
            peers: peers_rx,
            incoming: incoming_rx,
        })
    }
}
