//! The node's single owner of state: the store, the peer table and every
//! connection, driven by one task. Connection tasks only move bytes and
//! report back, so every decision happens in one place, in a deterministic
//! order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem::transport::{accept_loop, write_loop, Outgoing};
use tandem::{Connection, FrameDecoder, Framing, Listener, MessageReceiver, Probe, Transport, TransportError};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{timeout, Instant};
use tracing::Instrument;

use super::{Change, ChangeFeed, Command, Config, Timing, ENTRIES_BUDGET, TOMBSTONE_GRACE};
use crate::mutation;
use crate::store::{Entry, Merged, Store, Version};
use crate::wire::{self, Body, Member, Message};

type ConnId = u64;

/// What the node's small tasks report to the core.
enum Input<T: Transport> {
    Accepted { generation: u64, connection: T::Connection },
    Dialed { peer: u32, attempt: u64, result: Result<T::Connection, TransportError> },
    Frame { conn: ConnId, message: Message },
    Closed { conn: ConnId, reason: String },
}

/// The state of the outbound link to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Idle { retry_at: Instant },
    Dialing { attempt: u64 },
    Up(ConnId),
}

struct Peer {
    record: Member,
    link: Link,
    backoff: Duration,
    attempts: u64,
}

/// What the `purge-tombstones` bug keeps of a key deleted and not purged
/// since: its tombstone now (`None` once the key is written again), the
/// peers that said they hold the key's tombstone, and when the tombstone
/// was stored or the last of them said so.
struct Purging {
    version: Option<Version>,
    acked: BTreeSet<u32>,
    since: Instant,
}

struct Conn {
    /// The peer: known for outbound connections, learned from the first
    /// message for inbound ones.
    peer: Option<u32>,
    outbound: bool,
    generation: u64,
    writer: mpsc::UnboundedSender<Outgoing>,
    reader: AbortHandle,
}

pub(super) struct Core<T: Transport> {
    transport: Arc<T>,
    me: Member,
    timing: Timing,
    framing: Framing,
    probe: Probe,
    on_change: Option<ChangeFeed>,
    store: Store,
    /// Tombstones to purge (only with the `purge-tombstones` bug).
    purging: BTreeMap<String, Purging>,
    rng: ChaCha8Rng,
    peers: BTreeMap<u32, Peer>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    next_sync: Instant,
    listener_generation: u64,
    listener_task: Option<AbortHandle>,
    tasks: JoinSet<()>,
    inputs_tx: mpsc::UnboundedSender<Input<T>>,
    inputs: mpsc::UnboundedReceiver<Input<T>>,
    commands: mpsc::UnboundedReceiver<Command>,
    addr: watch::Sender<SocketAddr>,
}

impl<T: Transport> Core<T> {
    pub(super) fn new(
        config: Config,
        transport: Arc<T>,
        addr: SocketAddr,
        commands: mpsc::UnboundedReceiver<Command>,
        addr_tx: watch::Sender<SocketAddr>,
    ) -> Self {
        let now = Instant::now();
        let me = Member { index: config.index, incarnation: config.incarnation, epoch: 0, addr };
        let peers = config
            .addrs
            .iter()
            .enumerate()
            .map(|(i, &addr)| (i as u32, addr))
            .filter(|&(i, _)| i != config.index)
            .map(|(index, addr)| {
                let record = Member { index, incarnation: 0, epoch: 0, addr };
                (
                    index,
                    Peer {
                        record,
                        link: Link::Idle { retry_at: now },
                        backoff: config.timing.backoff_min,
                        attempts: 0,
                    },
                )
            })
            .collect();
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        let mut rng = ChaCha8Rng::seed_from_u64(config.rng_seed);
        let first_sync = config.timing.sync_interval.mul_f64(rng.random_range(0.25..=1.0));
        Core {
            transport,
            me,
            framing: Framing::new(config.max_frame),
            probe: config.probe,
            on_change: config.on_change,
            store: Store::new(config.index, config.incarnation, mutation::rules(config.mutation)),
            purging: BTreeMap::new(),
            rng,
            peers,
            conns: BTreeMap::new(),
            next_conn: 0,
            next_sync: now + first_sync,
            listener_generation: 0,
            listener_task: None,
            tasks: JoinSet::new(),
            inputs_tx,
            inputs,
            commands,
            addr: addr_tx,
            timing: config.timing,
        }
    }

    pub(super) async fn run(mut self, listener: T::Listener) {
        let span = tracing::info_span!("kv", node = self.me.index, inc = self.me.incarnation);
        async move {
            self.start_listener(listener);
            loop {
                self.maintain();
                let wake = self.next_wake();
                tokio::select! {
                    biased;
                    Some(input) = self.inputs.recv() => self.on_input(input),
                    command = self.commands.recv() => match command {
                        Some(command) => self.on_command(command).await,
                        None => return, // The handle is gone.
                    },
                    Some(_) = self.tasks.join_next() => {}
                    () = tokio::time::sleep_until(wake) => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) -> AbortHandle {
        self.tasks.spawn(task.in_current_span())
    }

    fn jittered(&mut self, delay: Duration, low: f64, high: f64) -> Duration {
        delay.mul_f64(self.rng.random_range(low..=high))
    }

    // ----- timers -----------------------------------------------------------

    /// Starts due dials and the due anti-entropy round.
    fn maintain(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| matches!(p.link, Link::Idle { retry_at } if retry_at <= now))
            .map(|(&i, _)| i)
            .collect();
        for peer in due {
            self.dial(peer);
        }
        if now >= self.next_sync {
            let interval = self.timing.sync_interval;
            self.next_sync = now + self.jittered(interval, 0.75, 1.25);
            self.summarize();
        }
    }

    fn next_wake(&self) -> Instant {
        self.peers
            .values()
            .filter_map(|p| match p.link {
                Link::Idle { retry_at } => Some(retry_at),
                _ => None,
            })
            .fold(self.next_sync, Instant::min)
    }

    /// Sends every connected peer a summary: the digest's hash and the
    /// address table.
    fn summarize(&mut self) {
        self.purge_tombstones();
        let members: Vec<Member> = self.peers.values().map(|p| p.record).chain([self.me]).collect();
        let body = Body::Summary { hash: self.store.digest_hash(), members };
        let Some(frame) = self.frame(body) else { return };
        let links: Vec<ConnId> = self.peers.keys().filter_map(|&p| self.route(p)).collect();
        for conn in links {
            self.write(conn, frame.clone());
        }
    }

    // ----- connections ------------------------------------------------------

    fn start_listener(&mut self, listener: T::Listener) {
        self.listener_generation += 1;
        let generation = self.listener_generation;
        let inputs = self.inputs_tx.clone();
        let accepted = move |connection| inputs.send(Input::Accepted { generation, connection }).is_ok();
        let task = self.spawn(async move {
            if let Some(error) = accept_loop(listener, accepted).await {
                tracing::warn!(%error, "listener stopped");
            }
        });
        if let Some(old) = self.listener_task.replace(task) {
            old.abort();
        }
    }

    fn dial(&mut self, index: u32) {
        let peer = self.peers.get_mut(&index).expect("dialled peers exist");
        peer.attempts += 1;
        let attempt = peer.attempts;
        peer.link = Link::Dialing { attempt };
        let addr = peer.record.addr;
        let transport = self.transport.clone();
        let limit = self.timing.connect_timeout;
        let inputs = self.inputs_tx.clone();
        self.spawn(async move {
            let result = match timeout(limit, transport.connect(addr)).await {
                Ok(result) => result,
                Err(_) => Err(TransportError::TimedOut(format!("connect to {addr}"))),
            };
            let _ = inputs.send(Input::Dialed { peer: index, attempt, result });
        });
    }

    /// Starts the reader and writer tasks of a connection.
    fn install(&mut self, connection: T::Connection, peer: Option<u32>, outbound: bool) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        let (sender, mut receiver) = connection.split();
        let inputs = self.inputs_tx.clone();
        let framing = self.framing;
        let reader = self.spawn(async move {
            let mut decoder = FrameDecoder::new(framing);
            let reason = 'connection: loop {
                let bytes = match receiver.recv().await {
                    Ok(bytes) => bytes,
                    Err(error) => break error.to_string(),
                };
                decoder.push(&bytes);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(payload)) => match wire::decode(&payload) {
                            Ok(message) => {
                                let _ = inputs.send(Input::Frame { conn, message });
                            }
                            Err(error) => break 'connection error.to_string(),
                        },
                        Ok(None) => break,
                        Err(error) => break 'connection error.to_string(),
                    }
                }
            };
            let _ = inputs.send(Input::Closed { conn, reason });
        });
        let (writer, outgoing) = mpsc::unbounded_channel::<Outgoing>();
        let inputs = self.inputs_tx.clone();
        self.spawn(async move {
            if let Err(error) = write_loop(sender, outgoing).await {
                let _ = inputs.send(Input::Closed { conn, reason: error.to_string() });
            }
        });
        let generation = self.listener_generation;
        self.conns.insert(conn, Conn { peer, outbound, generation, writer, reader });
        tracing::debug!(conn, ?peer, outbound, "connection up");
        conn
    }

    fn close(&mut self, conn: ConnId, reason: &str) {
        let Some(c) = self.conns.remove(&conn) else { return };
        // Dropping `writer` lets the writer task flush and close the sender.
        c.reader.abort();
        tracing::debug!(conn, peer = ?c.peer, outbound = c.outbound, reason, "connection down");
        let Some(index) = c.peer.filter(|_| c.outbound) else { return };
        let backoff = self.peers[&index].backoff;
        if self.peers[&index].link == Link::Up(conn) {
            let delay = self.jittered(backoff, 0.5, 1.0);
            let max = self.timing.backoff_max;
            let peer = self.peers.get_mut(&index).expect("outbound connections belong to peers");
            peer.link = Link::Idle { retry_at: Instant::now() + delay };
            peer.backoff = (backoff * 2).min(max);
        }
    }

    fn write(&self, conn: ConnId, frame: Bytes) {
        if let Some(c) = self.conns.get(&conn) {
            // A failed send means the connection is closing; the core learns it from `Closed`.
            let _ = c.writer.send(Outgoing::Frame(frame));
        }
    }

    /// The connection to reach `peer` on: the outbound link when it is up,
    /// else the newest inbound connection from it.
    fn route(&self, peer: u32) -> Option<ConnId> {
        if let Some(Link::Up(conn)) = self.peers.get(&peer).map(|p| p.link) {
            return Some(conn);
        }
        self.conns.iter().rev().find(|(_, c)| !c.outbound && c.peer == Some(peer)).map(|(&id, _)| id)
    }

    fn frame(&self, body: Body) -> Option<Bytes> {
        match wire::encode(&self.framing, &Message { from: self.me, body }) {
            Ok(frame) => Some(frame),
            Err(error) => {
                tracing::warn!(%error, "message not sent");
                None
            }
        }
    }

    fn send(&self, conn: ConnId, body: Body) {
        if let Some(frame) = self.frame(body) {
            self.write(conn, frame);
        }
    }

    fn send_entries(&self, conn: ConnId, entries: Vec<(String, Entry)>, want: Vec<String>, repair: bool) {
        let budget = ENTRIES_BUDGET.min(self.framing.max_frame() / 2);
        for frame in wire::entries_frames(&self.framing, self.me, entries, want, repair, budget) {
            self.write(conn, frame);
        }
    }

    // ----- inputs -------------------------------------------------------------

    fn on_input(&mut self, input: Input<T>) {
        match input {
            Input::Accepted { generation, connection } if generation == self.listener_generation => {
                self.install(connection, None, false);
            }
            Input::Accepted { .. } => {} // Accepted by a listener that has moved since: dropped.
            Input::Dialed { peer, attempt, result } => self.on_dialed(peer, attempt, result),
            Input::Frame { conn, message } => self.on_message(conn, message),
            Input::Closed { conn, reason } => self.close(conn, &reason),
        }
    }

    fn on_dialed(&mut self, index: u32, attempt: u64, result: Result<T::Connection, TransportError>) {
        let Some(peer) = self.peers.get(&index) else { return };
        if peer.link != (Link::Dialing { attempt }) {
            return; // A stale dial (the peer moved meanwhile): the connection just drops.
        }
        match result {
            Ok(connection) => {
                let conn = self.install(connection, Some(index), true);
                self.peers.get_mut(&index).expect("peer exists").link = Link::Up(conn);
                // Start anti-entropy at once: a restarted node catches up now.
                self.send(conn, Body::Digest { versions: self.store.digest() });
            }
            Err(error) => {
                let backoff = peer.backoff;
                let delay = self.jittered(backoff, 0.5, 1.0);
                let max = self.timing.backoff_max;
                let peer = self.peers.get_mut(&index).expect("peer exists");
                peer.link = Link::Idle { retry_at: Instant::now() + delay };
                peer.backoff = (backoff * 2).min(max);
                tandem::reachable!(self.probe, "a dial failed and is retried after a backoff");
                tracing::debug!(peer = index, %error, ?delay, "dial failed");
            }
        }
    }

    fn on_message(&mut self, conn: ConnId, message: Message) {
        let from = message.from;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if from.index == self.me.index || !self.peers.contains_key(&from.index) {
            return self.close(conn, "a message from an unknown node");
        }
        match c.peer {
            None => c.peer = Some(from.index),
            Some(peer) if peer != from.index => return self.close(conn, "the peer changed its identity"),
            Some(_) => {}
        }
        if c.outbound {
            // A healthy link: the next failure starts from the shortest backoff.
            let min = self.timing.backoff_min;
            self.peers.get_mut(&from.index).expect("checked above").backoff = min;
        }
        self.learn(from);
        match message.body {
            Body::Summary { hash, members } => {
                for member in members {
                    self.learn(member);
                }
                if hash != self.store.digest_hash() {
                    self.send(conn, Body::Digest { versions: self.store.digest() });
                } else {
                    self.acked_all(from.index);
                }
            }
            Body::Digest { versions } => {
                self.acked(from.index, &versions);
                let (give, want) = self.store.diff(&versions);
                let divergent = !give.is_empty() || !want.is_empty();
                tandem::sometimes!(self.probe, divergent, "a digest exchange found divergent keys");
                if divergent {
                    self.send_entries(conn, give, want, true);
                }
            }
            Body::Entries { entries, want, repair } => {
                for (key, entry) in entries {
                    self.merge(key, entry, repair);
                }
                if !want.is_empty() {
                    // A node that purges tombstones gives none back (the
                    // asker may have purged it).
                    let keep = self.store.rules().keep_tombstones;
                    let give: Vec<(String, Entry)> = want
                        .into_iter()
                        .filter_map(|k| Some((k.clone(), self.store.entry(&k)?.clone())))
                        .filter(|(_, e)| keep || e.value.is_some())
                        .collect();
                    self.send_entries(conn, give, Vec::new(), true);
                }
            }
        }
    }

    /// Takes a newer record of a peer; a new address makes the node redial.
    fn learn(&mut self, record: Member) {
        let Some(peer) = self.peers.get_mut(&record.index) else { return };
        if !record.is_newer_than(&peer.record) {
            return;
        }
        let moved = record.addr != peer.record.addr;
        peer.record = record;
        if !moved {
            return;
        }
        tandem::reachable!(self.probe, "a peer's new address was learned");
        tracing::debug!(peer = record.index, addr = %record.addr, "peer moved");
        peer.backoff = self.timing.backoff_min;
        let old = std::mem::replace(&mut peer.link, Link::Idle { retry_at: Instant::now() });
        if let Link::Up(conn) = old {
            self.close(conn, "the peer moved");
        }
    }

    fn merge(&mut self, key: String, entry: Entry, repair: bool) {
        let incoming = entry.version;
        match self.store.merge(&key, entry.clone()) {
            Merged::Applied { previous } => {
                if repair {
                    tandem::reachable!(self.probe, "anti-entropy repaired a key");
                }
                if previous.is_some_and(|p| p.version.ts == incoming.ts) {
                    tandem::reachable!(self.probe, "equal timestamps were ordered by node and incarnation");
                }
                self.changed(&key, entry.value, Some(incoming));
            }
            Merged::Kept => {
                if self.store.entry(&key).is_some_and(|e| e.version.ts == incoming.ts && e.version != incoming) {
                    tandem::reachable!(self.probe, "equal timestamps were ordered by node and incarnation");
                }
            }
        }
    }

    fn changed(&mut self, key: &str, value: Option<String>, version: Option<Version>) {
        if !self.store.rules().keep_tombstones {
            // The planted defect: the acknowledgements are kept per key; a
            // local delete forgets them, but a merged tombstone does not.
            let tombstone = version.filter(|_| value.is_none());
            let since = Instant::now();
            match self.purging.get_mut(key) {
                Some(purging) => {
                    purging.version = tombstone;
                    purging.since = since;
                }
                None if tombstone.is_some() => {
                    let purging = Purging { version: tombstone, acked: BTreeSet::new(), since };
                    self.purging.insert(key.to_string(), purging);
                }
                None => {}
            }
        }
        if let Some(feed) = &self.on_change {
            feed.send(&Change { key: key.to_string(), value, version });
        }
    }

    // ----- tombstone purging (the `purge-tombstones` bug) ---------------------

    /// `peer` sent its digest: it holds the tombstones it has at least as new.
    fn acked(&mut self, peer: u32, theirs: &[(String, Version)]) {
        if self.purging.is_empty() {
            return;
        }
        let now = Instant::now();
        for (key, version) in theirs {
            if let Some(purging) = self.purging.get_mut(key) {
                if purging.version.is_some_and(|t| *version >= t) && purging.acked.insert(peer) {
                    purging.since = now;
                }
            }
        }
    }

    /// `peer`'s digest hash is this node's: it holds every tombstone.
    fn acked_all(&mut self, peer: u32) {
        let now = Instant::now();
        for purging in self.purging.values_mut().filter(|p| p.version.is_some()) {
            if purging.acked.insert(peer) {
                purging.since = now;
            }
        }
    }

    /// Purges every tombstone that each peer has said it holds,
    /// [`TOMBSTONE_GRACE`] after the last of them said so. The planted
    /// defect: for a tombstone merged from another node, a peer that said so
    /// of an *earlier* tombstone of the key (one written over before it was
    /// purged) still counts, though it may since have taken the newer value
    /// that this tombstone deleted, and been cut off before it could hear of
    /// the delete: that value comes back after the heal.
    fn purge_tombstones(&mut self) {
        if self.purging.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<(String, Version)> = self
            .purging
            .iter()
            .filter(|(_, p)| now >= p.since + TOMBSTONE_GRACE && self.peers.keys().all(|i| p.acked.contains(i)))
            .filter_map(|(key, p)| Some((key.clone(), p.version?)))
            .collect();
        for (key, version) in due {
            self.purging.remove(&key);
            if self.store.purge(&key, version) {
                tracing::debug!(key, %version, "tombstone purged");
            }
        }
    }

    /// Pushes a fresh local write to every peer the node can reach now.
    fn push(&self, key: &str, entry: &Entry) {
        let links: Vec<ConnId> = self.peers.keys().filter_map(|&p| self.route(p)).collect();
        for conn in links {
            self.send_entries(conn, vec![(key.to_string(), entry.clone())], Vec::new(), false);
        }
    }

    // ----- the owner's requests ---------------------------------------------

    async fn on_command(&mut self, command: Command) {
        // A requester that stopped waiting does not need the answer.
        match command {
            Command::Put { key, value, reply } => {
                let (entry, previous) = self.store.put(&key, &value);
                tandem::always!(
                    self.probe,
                    previous.as_ref().is_none_or(|p| entry.version > p.version),
                    "a local write is newer than the value it replaces"
                );
                self.changed(&key, entry.value.clone(), Some(entry.version));
                self.push(&key, &entry);
                let _ = reply.send(entry.version);
            }
            Command::Delete { key, reply } => {
                let (tombstone, previous) = self.store.delete(&key);
                match &tombstone {
                    Some(entry) => {
                        tandem::always!(
                            self.probe,
                            previous.as_ref().is_none_or(|p| entry.version > p.version),
                            "a local write is newer than the value it replaces"
                        );
                        self.changed(&key, None, Some(entry.version));
                        if let Some(purging) = self.purging.get_mut(&key) {
                            // A new local tombstone: no peer holds it yet.
                            purging.acked.clear();
                        }
                        self.push(&key, entry);
                    }
                    None if previous.is_some() => self.changed(&key, None, None),
                    None => {}
                }
                let _ = reply.send(tombstone.map(|t| t.version));
            }
            Command::Get { key, reply } => {
                let _ = reply.send(self.store.get(&key).map(str::to_string));
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.store.snapshot());
            }
            Command::Rebind { addr, reply } => {
                let _ = reply.send(self.rebind(addr).await);
            }
        }
    }

    /// Moves the listener: the new one first, so a failure leaves the node as
    /// it was; then the old one and its connections go, and peers are told.
    async fn rebind(&mut self, target: SocketAddr) -> Result<SocketAddr, String> {
        let listener = self.transport.listen(target).await.map_err(|e| e.to_string())?;
        let old_generation = self.listener_generation;
        let addr = listener.local_addr();
        self.start_listener(listener);
        let inbound: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.outbound && c.generation == old_generation)
            .map(|(&id, _)| id)
            .collect();
        for conn in inbound {
            self.close(conn, "the listener moved");
        }
        self.me.addr = addr;
        self.me.epoch += 1;
        self.addr.send_replace(addr);
        tandem::reachable!(self.probe, "the node moved its listener");
        self.summarize();
        Ok(addr)
    }
}
