//! The key-value node: an async replica written against
//! [`tandem::Transport`] only, so it runs unchanged on the
//! simulated network and over QUIC.
//!
//! One task owns the [`Store`](crate::store::Store) and every connection;
//! small tasks only accept, dial, read and write, and report back. The node
//! dials every other node of its static peer list (`Config::addrs`), redials
//! with capped, jittered exponential backoff, and:
//! - pushes every local write to the peers it is connected to at once;
//! - every [`Timing::sync_interval`] sends each peer a summary (a hash of
//!   its digest and its address table); a peer whose hash differs answers
//!   with its digest, and the two exchange exactly the registers where they
//!   differ (anti-entropy). A restarted node, which lost everything, catches
//!   up this way as soon as it reaches one peer;
//! - stamps every message with its own record (index, incarnation, address
//!   version, listen address): after a rebind, peers learn the new address
//!   from the first message they get, and relay it in their summaries.
//!
//! Timers run on `tokio::time` and the only randomness (backoff jitter) is a
//! ChaCha RNG seeded with [`Config::rng_seed`], so a run in the simulation
//! is a pure function of its seed.
//!
//! ```no_run
//! # async fn demo<T: tandem::Transport>(transport: T) -> Result<(), Box<dyn std::error::Error>> {
//! use tandem_kv::node::{Config, KvNode};
//! let addrs = vec!["10.0.0.1:7000".parse()?, "10.0.0.2:7000".parse()?];
//! let node = KvNode::start(Config::new(0, addrs), transport).await?;
//! node.put("colour", "blue").await?;
//! assert_eq!(node.get("colour").await?, Some("blue".to_string()));
//! node.delete("colour").await?;
//! let moved = node.rebind("10.0.0.1:0".parse()?).await?; // peers learn it
//! # let _ = moved; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tandem::{Listener, Probe, Transport, TransportError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::mutation::Mutation;
use crate::store::Version;

mod core;

/// The node's timers (all on `tokio::time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// How often a node sends each peer its summary (jittered by ±25%).
    pub sync_interval: Duration,
    /// How long a dial may take before it counts as failed.
    pub connect_timeout: Duration,
    /// The first redial delay after a failure.
    pub backoff_min: Duration,
    /// Redial delays double up to this cap (each jittered down by up to half).
    pub backoff_max: Duration,
}

impl Default for Timing {
    /// A 250 ms sync interval, 1 s connect timeout, backoff from 50 ms to 1 s.
    fn default() -> Self {
        Timing {
            sync_interval: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// One change of a node's store, as the node reports it to its
/// [`ChangeFeed`] (synchronously, in the order the store changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: String,
    /// Its value now: `None` when it was deleted.
    pub value: Option<String>,
    /// The version it holds now (`None` when the key was removed outright,
    /// which only the `drop-tombstones` bug does).
    pub version: Option<Version>,
}

/// A callback told of every change of the store, from the node's own task,
/// before the change is visible to any later request.
#[derive(Clone)]
pub struct ChangeFeed(Arc<dyn Fn(&Change) + Send + Sync>);

impl ChangeFeed {
    /// A feed that calls `f`.
    pub fn new(f: impl Fn(&Change) + Send + Sync + 'static) -> Self {
        ChangeFeed(Arc::new(f))
    }

    fn send(&self, change: &Change) {
        (self.0)(change)
    }
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangeFeed")
    }
}

/// A node's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's index in the cluster, `0..addrs.len()`.
    pub index: u32,
    /// Bumped on every restart, so peers tell a new life from an old one.
    pub incarnation: u64,
    /// Where to listen (port 0: the transport picks).
    pub listen: SocketAddr,
    /// Every node's address, by index: the static peer list (this node's
    /// own entry is ignored).
    pub addrs: Vec<SocketAddr>,
    /// The seed of the node's RNG (backoff and sync jitter).
    pub rng_seed: u64,
    /// Timers.
    pub timing: Timing,
    /// The largest frame the node sends or accepts; a peer announcing a
    /// larger one loses its connection.
    pub max_frame: usize,
    /// A planted bug (only with the `mutations` feature).
    pub mutation: Option<Mutation>,
    /// Told of every store change.
    pub on_change: Option<ChangeFeed>,
    /// In-node assertions ([`tandem::always!`], [`tandem::sometimes!`]).
    pub probe: Probe,
}

/// How long the `purge-tombstones` bug waits, after the last peer said it
/// holds a tombstone, before purging it (a correct node keeps every
/// tombstone). Longer than any frame takes to arrive (a connection whose
/// frame goes unacknowledged for 2 s closes), so a value sent before the
/// last acknowledgement has arrived, or never will, by the purge.
pub const TOMBSTONE_GRACE: Duration = Duration::from_secs(3);

/// Bytes of entries per frame; larger anti-entropy answers are split.
pub(crate) const ENTRIES_BUDGET: usize = 256 * 1024;

/// The default [`Config::max_frame`]: 4 MiB.
pub const DEFAULT_MAX_FRAME: usize = 4 * 1024 * 1024;

impl Config {
    /// Node `index` of a cluster listening at `addrs`, with defaults: it
    /// listens at `addrs[index]` (port 0 of `0.0.0.0` when there is no such
    /// entry: [`KvNode::start`] then refuses the configuration), incarnation
    /// 0, the RNG seeded with the index, no change feed.
    pub fn new(index: u32, addrs: Vec<SocketAddr>) -> Self {
        Config {
            index,
            incarnation: 0,
            listen: addrs.get(index as usize).copied().unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            addrs,
            rng_seed: u64::from(index),
            timing: Timing::default(),
            max_frame: DEFAULT_MAX_FRAME,
            mutation: None,
            on_change: None,
            probe: Probe::disabled(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The listener could not be bound.
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The transport's reason.
        source: TransportError,
    },
    /// A planted bug was asked for in a build without the `mutations` feature.
    MutationUnavailable(Mutation),
    /// `index` is not an index of `addrs`.
    BadIndex {
        /// The index.
        index: u32,
        /// The cluster size.
        nodes: usize,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::MutationUnavailable(m) => {
                write!(f, "mutation `{m}` needs a build with the `mutations` feature")
            }
            StartError::BadIndex { index, nodes } => {
                write!(f, "node index {index} is not below the cluster size {nodes}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// The node has stopped: a request could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the node has stopped")
    }
}

impl std::error::Error for Stopped {}

enum Command {
    Put { key: String, value: String, reply: oneshot::Sender<Version> },
    Delete { key: String, reply: oneshot::Sender<Option<Version>> },
    Get { key: String, reply: oneshot::Sender<Option<String>> },
    Snapshot { reply: oneshot::Sender<BTreeMap<String, String>> },
    Rebind { addr: SocketAddr, reply: oneshot::Sender<Result<SocketAddr, String>> },
}

/// A running node. Dropping it stops the node: its tasks end and its
/// connections close.
#[derive(Debug)]
pub struct KvNode {
    index: u32,
    commands: mpsc::UnboundedSender<Command>,
    addr: watch::Receiver<SocketAddr>,
    task: JoinHandle<()>,
}

impl KvNode {
    /// Binds the listener and starts the node on the current tokio runtime;
    /// it then dials every peer.
    pub async fn start<T: Transport>(config: Config, transport: T) -> Result<KvNode, StartError> {
        if let Some(mutation) = config.mutation {
            if !Mutation::available() {
                return Err(StartError::MutationUnavailable(mutation));
            }
        }
        if config.index as usize >= config.addrs.len() {
            return Err(StartError::BadIndex { index: config.index, nodes: config.addrs.len() });
        }
        let listener = transport
            .listen(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr();
        let (addr_tx, addr_rx) = watch::channel(addr);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let index = config.index;
        let core = core::Core::new(config, Arc::new(transport), addr, commands_rx, addr_tx);
        let task = tokio::spawn(core.run(listener));
        Ok(KvNode { index, commands: commands_tx, addr: addr_rx, task })
    }

    /// The node's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Where the node listens now.
    pub fn addr(&self) -> SocketAddr {
        *self.addr.borrow()
    }

    async fn ask<R>(&self, command: impl FnOnce(oneshot::Sender<R>) -> Command) -> Result<R, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Writes `key = value` locally and replicates it; returns its version.
    pub async fn put(&self, key: impl Into<String>, value: impl Into<String>) -> Result<Version, Stopped> {
        let (key, value) = (key.into(), value.into());
        self.ask(|reply| Command::Put { key, value, reply }).await
    }

    /// Deletes `key` (a tombstone that replicates); returns its version.
    pub async fn delete(&self, key: impl Into<String>) -> Result<Option<Version>, Stopped> {
        let key = key.into();
        self.ask(|reply| Command::Delete { key, reply }).await
    }

    /// The local value of `key`; `None` when absent or deleted.
    pub async fn get(&self, key: impl Into<String>) -> Result<Option<String>, Stopped> {
        let key = key.into();
        self.ask(|reply| Command::Get { key, reply }).await
    }

    /// Every live key and value of the local replica.
    pub async fn snapshot(&self) -> Result<BTreeMap<String, String>, Stopped> {
        self.ask(|reply| Command::Snapshot { reply }).await
    }

    /// Moves the listener to `addr` (port 0: the transport picks) and
    /// returns the new address once the node has started telling its peers.
    pub async fn rebind(&self, addr: SocketAddr) -> Result<SocketAddr, String> {
        self.ask(|reply| Command::Rebind { addr, reply }).await.map_err(|e| e.to_string())?
    }

    /// Stops the node and waits until its task has ended.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for KvNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
