//! The node's single owner of state: membership, links, outboxes and the
//! de-duplication set, driven by one task. Connection tasks only move bytes
//! and report back, so every decision happens in one place, in a
//! deterministic order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{timeout, Instant};
use tracing::Instrument;

use super::dedup::SeenSet;
use super::outbox::Outbox;
use super::roster::Refusal;
use super::wire::{Data, MemberRecord, SignedRecord, Wire};
use super::{
    Command, Delivery, ListenStatus, MessageId, MessageKind, Mutation, NodeConfig, NodeEvent, NodeId, PeerInfo,
    PeerMap, SendError, Sent,
};
use tandem::transport::accept_loop;
use tandem::{Connection, Listener, MessageReceiver, MessageSender, PeerIdentity, Transport, TransportError};

type ConnId = u64;

/// What a connection's reader may have handed the core and the core not yet
/// handled, in units of [`BACKLOG_UNIT`] bytes (each frame at least one):
/// beyond it the reader stops reading and QUIC flow control holds the peer.
/// Room for a maximum-size frame, or 32,768 small ones.
const READ_BACKLOG: u32 = 32 * 1024;
const BACKLOG_UNIT: usize = 1024;
type Halves<T> =
    (<<T as Transport>::Connection as Connection>::Sender, <<T as Transport>::Connection as Connection>::Receiver);

/// Where a dial was aimed.
#[derive(Debug, Clone, Copy)]
enum DialTarget {
    Member(NodeId),
    Seed(SocketAddr),
}

/// A finished handshake: the peer's Hello, the identity its transport
/// proved, and the connection.
type Handshake<T> = (SignedRecord, Option<PeerIdentity>, Halves<T>);

/// What the node's tasks report to the core.
enum Input<T: Transport> {
    Accepted {
        generation: u64,
        connection: T::Connection,
    },
    Handshaken {
        outbound: Option<DialTarget>,
        generation: u64,
        result: Result<Handshake<T>, TransportError>,
    },
    /// A frame, with its share of the connection's read backlog: the
    /// reader waits while the core has not handled enough of its frames.
    Frame {
        conn: ConnId,
        wire: Wire,
        backlog: OwnedSemaphorePermit,
    },
    Refused {
        conn: ConnId,
        refusal: Refusal,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
}

enum LinkState {
    Idle { retry_at: Instant },
    Dialing,
    Up(ConnId),
}

struct Member {
    signed: SignedRecord,
    link: LinkState,
    backoff: Duration,
    outbox: Outbox,
    /// A handshake with it has succeeded; until then its dials are paced.
    answered: bool,
    /// Dials failed in a row.
    failures: u32,
}

impl Member {
    fn record(&self) -> MemberRecord {
        self.signed.record
    }
}

struct Seed {
    dialing: bool,
    retry_at: Instant,
    backoff: Duration,
}

struct Conn {
    peer: NodeId,
    outbound: bool,
    generation: u64,
    /// Frames for the writer task; it flushes them and ends when dropped.
    writer: mpsc::UnboundedSender<Bytes>,
    /// What `writer` holds that the transport has not taken yet.
    queue: Arc<Queue>,
    /// A close code here makes the writer close the connection with it at once.
    reject: watch::Sender<Option<u64>>,
    /// The reader; the writer ends by itself when `writer` is dropped.
    reader: AbortHandle,
}

/// Frames and bytes queued for a connection's writer task, shared with it:
/// the core adds what it queues, the writer subtracts what the transport took.
#[derive(Debug, Default)]
struct Queue {
    frames: AtomicUsize,
    bytes: AtomicUsize,
}

impl Queue {
    fn take(&self, len: usize) {
        self.frames.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(len, Ordering::AcqRel);
    }

    fn give(&self, len: usize) {
        self.frames.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// What [`super::Node::start`] hands the core.
pub(super) struct Channels<T: Transport> {
    pub transport: Arc<T>,
    pub config: watch::Receiver<NodeConfig>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub incoming: mpsc::UnboundedSender<Delivery>,
    pub peers: watch::Sender<PeerMap>,
    pub status: watch::Sender<ListenStatus>,
}

pub(super) struct Core<T: Transport> {
    io: Channels<T>,
    config: NodeConfig,
    /// This node's record, signed when the node has credentials.
    me: SignedRecord,
    rng: ChaCha8Rng,
    /// Dials to never-answered members that may start now.
    probe_tokens: u32,
    /// When the next probe token comes.
    next_probe_token: Instant,
    members: BTreeMap<NodeId, Member>,
    seeds: BTreeMap<SocketAddr, Seed>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    next_seq: u64,
    seen: SeenSet,
    next_gossip: Instant,
    listener_generation: u64,
    listener_task: Option<AbortHandle>,
    tasks: JoinSet<()>,
    inputs_tx: mpsc::UnboundedSender<Input<T>>,
    inputs: mpsc::UnboundedReceiver<Input<T>>,
}

impl<T: Transport> Core<T> {
    pub fn new(io: Channels<T>) -> Self {
        let config = io.config.borrow().clone();
        let status = io.status.borrow().clone();
        let me =
            MemberRecord { id: config.id, incarnation: config.incarnation, version: status.version, addr: status.addr };
        let now = Instant::now();
        let seeds = config
            .seeds
            .iter()
            .filter(|&&addr| addr != me.addr)
            .map(|&addr| (addr, Seed { dialing: false, retry_at: now, backoff: config.timing.backoff_min }))
            .collect();
        let (inputs_tx, inputs) = mpsc::unbounded_channel();
        Core {
            rng: ChaCha8Rng::seed_from_u64(config.rng_seed),
            me: seal(&config, me),
            probe_tokens: config.timing.probe_burst,
            next_probe_token: now + config.timing.probe_interval,
            next_gossip: now + config.timing.gossip_interval,
            io,
            config,
            members: BTreeMap::new(),
            seeds,
            conns: BTreeMap::new(),
            next_conn: 0,
            next_seq: 0,
            seen: SeenSet::default(),
            listener_generation: 0,
            listener_task: None,
            tasks: JoinSet::new(),
            inputs_tx,
            inputs,
        }
    }

    pub async fn run(mut self, listener: T::Listener) {
        let span = tracing::info_span!("node", id = self.me.record.id.0, inc = self.me.record.incarnation);
        async move {
            self.start_listener(listener);
            self.emit(NodeEvent::Listening { addr: self.me.record.addr, version: self.me.record.version });
            loop {
                self.maintain();
                let wake = self.next_wake();
                tokio::select! {
                    biased;
                    Some(input) = self.inputs.recv() => self.on_input(input),
                    Some(command) = self.io.commands.recv() => self.on_command(command).await,
                    Ok(()) = self.io.config.changed() => self.on_reload().await,
                    Some(_) = self.tasks.join_next() => {}
                    () = tokio::time::sleep_until(wake) => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    fn emit(&self, event: NodeEvent) {
        tracing::debug!(?event);
        if let Some(observer) = &self.config.observer {
            observer.emit(self.me.record.id, event);
        }
    }

    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) -> AbortHandle {
        self.tasks.spawn(task.in_current_span())
    }

    fn jittered(&mut self, backoff: Duration) -> Duration {
        backoff.mul_f64(self.rng.random_range(0.5..=1.0))
    }

    // ----- timers -----------------------------------------------------------

    /// Starts due dials and gossip rounds.
    fn maintain(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(bool, u32, NodeId)> = self
            .members
            .iter()
            .filter(|(_, m)| matches!(m.link, LinkState::Idle { retry_at } if retry_at <= now))
            .map(|(&id, m)| (!m.answered, m.failures, id))
            .collect();
        // Answered members first; then those that failed least.
        due.sort_unstable();
        self.refill_probes(now);
        for (unanswered, _, id) in due {
            if unanswered {
                if self.probe_tokens == 0 {
                    let wait = self.next_probe_token;
                    self.members.get_mut(&id).expect("due member exists").link = LinkState::Idle { retry_at: wait };
                    continue;
                }
                self.probe_tokens -= 1;
            }
            let member = self.members.get_mut(&id).expect("due member exists");
            member.link = LinkState::Dialing;
            let addr = member.record().addr;
            self.dial(DialTarget::Member(id), addr);
        }
        let known: Vec<SocketAddr> = self.members.values().map(|m| m.record().addr).collect();
        self.seeds.retain(|addr, _| !known.contains(addr));
        let due: Vec<SocketAddr> =
            self.seeds.iter().filter(|(_, s)| !s.dialing && s.retry_at <= now).map(|(&a, _)| a).collect();
        for addr in due {
            self.seeds.get_mut(&addr).expect("due seed exists").dialing = true;
            self.dial(DialTarget::Seed(addr), addr);
        }
        if now >= self.next_gossip {
            self.next_gossip = now + self.config.timing.gossip_interval;
            self.gossip();
        }
    }

    /// Adds the probe tokens due by `now`, up to the burst.
    fn refill_probes(&mut self, now: Instant) {
        let timing = &self.config.timing;
        while now >= self.next_probe_token && self.probe_tokens < timing.probe_burst {
            self.probe_tokens += 1;
            self.next_probe_token += timing.probe_interval;
        }
        if self.probe_tokens == timing.probe_burst && self.next_probe_token < now {
            self.next_probe_token = now + timing.probe_interval;
        }
    }

    fn next_wake(&self) -> Instant {
        let links = self.members.values().filter_map(|m| match m.link {
            LinkState::Idle { retry_at } => Some(retry_at),
            _ => None,
        });
        let seeds = self.seeds.values().filter(|s| !s.dialing).map(|s| s.retry_at);
        links.chain(seeds).fold(self.next_gossip, Instant::min)
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

    fn dial(&mut self, target: DialTarget, addr: SocketAddr) {
        let transport = self.io.transport.clone();
        let hello = Wire::Hello(self.me.clone()).encode();
        let timing = self.config.timing.clone();
        let inputs = self.inputs_tx.clone();
        let generation = self.listener_generation;
        self.spawn(async move {
            let result = async {
                let connection = timeout(timing.connect_timeout, transport.connect(addr))
                    .await
                    .map_err(|_| TransportError::TimedOut(format!("connect to {addr}")))??;
                let identity = connection.info().peer_identity;
                let (mut sender, mut receiver) = connection.split();
                sender.send(hello).await?;
                let record = read_hello(&mut receiver, timing.handshake_timeout).await?;
                Ok((record, identity, (sender, receiver)))
            }
            .await;
            let _ = inputs.send(Input::Handshaken { outbound: Some(target), generation, result });
        });
    }

    fn answer(&mut self, generation: u64, connection: T::Connection) {
        let hello = Wire::Hello(self.me.clone()).encode();
        let handshake_timeout = self.config.timing.handshake_timeout;
        let inputs = self.inputs_tx.clone();
        self.spawn(async move {
            let result = async {
                let identity = connection.info().peer_identity;
                let (mut sender, mut receiver) = connection.split();
                let record = read_hello(&mut receiver, handshake_timeout).await?;
                sender.send(hello).await?;
                Ok((record, identity, (sender, receiver)))
            }
            .await;
            let _ = inputs.send(Input::Handshaken { outbound: None, generation, result });
        });
    }

    /// Starts the reader and writer tasks of a handshaken connection.
    fn install(&mut self, peer: NodeId, outbound: bool, generation: u64, (sender, mut receiver): Halves<T>) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        let inputs = self.inputs_tx.clone();
        let backlog = Arc::new(Semaphore::new(READ_BACKLOG as usize));
        let reader = self.spawn(async move {
            let ended = loop {
                let bytes = match receiver.recv().await {
                    Ok(bytes) => bytes,
                    Err(error) => break Input::Closed { conn, reason: error.to_string() },
                };
                let units = (1 + bytes.len() / BACKLOG_UNIT).min(READ_BACKLOG as usize) as u32;
                let Ok(backlog) = backlog.clone().acquire_many_owned(units).await else { return };
                match Wire::decode(&bytes) {
                    Ok(wire) => {
                        let _ = inputs.send(Input::Frame { conn, wire, backlog });
                    }
                    Err(error) => break Input::Refused { conn, refusal: Refusal::Protocol(error.to_string()) },
                }
            };
            let _ = inputs.send(ended);
        });
        let (writer, outgoing) = mpsc::unbounded_channel::<Bytes>();
        let (reject, rejected) = watch::channel(None);
        let queue = Arc::new(Queue::default());
        let inputs = self.inputs_tx.clone();
        let stall = self.config.timing.send_stall;
        let shared = queue.clone();
        self.spawn(async move {
            match write_frames(sender, outgoing, shared, rejected, stall).await {
                Ok(()) => {}
                Err(WriteEnd::Failed(error)) => {
                    let _ = inputs.send(Input::Closed { conn, reason: error.to_string() });
                }
                Err(WriteEnd::Stalled) => {
                    let refusal = Refusal::Overloaded(format!("a frame waited {stall:?} for flow control"));
                    let _ = inputs.send(Input::Refused { conn, refusal });
                }
            }
        });
        self.conns.insert(conn, Conn { peer, outbound, generation, writer, queue, reject, reader });
        self.emit(NodeEvent::ConnectionUp { peer, outbound });
        conn
    }

    /// Closes a connection whose peer broke the protocol, with the refusal's code.
    fn refuse(&mut self, conn: ConnId, refusal: Refusal) {
        tracing::warn!(%refusal, "refusing a peer");
        if let Some(c) = self.conns.get(&conn) {
            c.reject.send_replace(Some(refusal.close_code()));
        }
        self.close(conn, &refusal.to_string());
    }

    fn close(&mut self, conn: ConnId, reason: &str) {
        let Some(c) = self.conns.remove(&conn) else { return };
        // Dropping `writer` lets the writer task flush and close the sender.
        c.reader.abort();
        self.emit(NodeEvent::ConnectionDown { peer: c.peer, outbound: c.outbound, reason: reason.to_string() });
        if !c.outbound {
            return;
        }
        let member = &self.members[&c.peer];
        if matches!(member.link, LinkState::Up(up) if up == conn) {
            let delay = self.jittered(member.backoff);
            let member = self.members.get_mut(&c.peer).expect("outbound connections belong to members");
            member.link = LinkState::Idle { retry_at: Instant::now() + delay };
        }
    }

    /// Queues `frame` for `conn`, or closes `conn` with
    /// [`Refusal::Overloaded`] when its queue is full: a peer that does not
    /// read holds at most [`NodeConfig::max_queued_frames`] frames and
    /// [`NodeConfig::max_queued_bytes`] bytes of this node's memory.
    fn write(&mut self, conn: ConnId, frame: Bytes) {
        let Some(c) = self.conns.get(&conn) else { return };
        let frames = c.queue.frames.load(Ordering::Acquire);
        let bytes = c.queue.bytes.load(Ordering::Acquire);
        // A frame larger than the byte bound still goes alone.
        if frames >= self.config.max_queued_frames || (bytes > 0 && bytes + frame.len() > self.config.max_queued_bytes)
        {
            let refusal = Refusal::Overloaded(format!("{frames} frames, {bytes} bytes queued and not taken"));
            return self.refuse(conn, refusal);
        }
        c.queue.take(frame.len());
        // A failed send means the connection is closing; the core learns it from `Closed`.
        let _ = c.writer.send(frame);
    }

    /// The whole view, this node included, as a Gossip frame.
    fn view(&self) -> Bytes {
        let view = self.members.values().map(|m| m.signed.clone()).chain([self.me.clone()]).collect();
        Wire::Gossip(view).encode()
    }

    fn gossip(&mut self) {
        let frame = self.view();
        let conns: Vec<ConnId> = self
            .members
            .values()
            .filter_map(|member| match member.link {
                LinkState::Up(conn) => Some(conn),
                _ => None,
            })
            .collect();
        for conn in conns {
            self.write(conn, frame.clone());
        }
    }

    // ----- inputs -------------------------------------------------------------

    fn on_input(&mut self, input: Input<T>) {
        match input {
            Input::Accepted { generation, connection } if generation == self.listener_generation => {
                self.answer(generation, connection);
            }
            Input::Accepted { .. } => {}
            Input::Handshaken { outbound, generation, result } => self.on_handshake(outbound, generation, result),
            // The frame's backlog permit goes once it is handled.
            Input::Frame { conn, wire, backlog: _handled } => self.on_frame(conn, wire),
            Input::Refused { conn, refusal } => self.refuse(conn, refusal),
            Input::Closed { conn, reason } => self.close(conn, &reason),
        }
    }

    /// With a roster: whether the peer's Hello comes from the identity the
    /// roster gives its id, signed by that member.
    fn check_hello(&self, signed: &SignedRecord, identity: Option<PeerIdentity>) -> Result<(), Refusal> {
        if !signed.is_well_formed() {
            return Err(Refusal::Protocol(format!("a hello signature of {} bytes", signed.signature.len())));
        }
        if let Some(credentials) = &self.config.credentials {
            credentials.roster.check_peer(signed.record.id, identity)?;
        }
        self.check_record(signed)
    }

    /// With a roster: whether `signed` is signed by the member it describes.
    fn check_record(&self, signed: &SignedRecord) -> Result<(), Refusal> {
        self.config.credentials.as_ref().map_or(Ok(()), |credentials| credentials.roster.check_record(signed))
    }

    /// Closes a handshaken connection that is refused before it is installed.
    fn reject_halves(&mut self, (mut sender, _receiver): Halves<T>, refusal: &Refusal) {
        tracing::warn!(%refusal, "refusing a peer's hello");
        let code = refusal.close_code();
        self.spawn(async move { sender.reject(code).await });
    }

    fn on_handshake(
        &mut self,
        outbound: Option<DialTarget>,
        generation: u64,
        result: Result<Handshake<T>, TransportError>,
    ) {
        let Some(target) = outbound else {
            // Inbound: accepted unless the listener moved meanwhile.
            match result {
                Ok((signed, identity, halves))
                    if generation == self.listener_generation && signed.record.id != self.me.record.id =>
                {
                    if let Err(refusal) = self.check_hello(&signed, identity) {
                        return self.reject_halves(halves, &refusal);
                    }
                    let id = signed.record.id;
                    if self.learn(signed) {
                        self.install(id, false, generation, halves);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "inbound handshake failed"),
            }
            return;
        };
        let result = result.and_then(|(signed, identity, halves)| match target {
            DialTarget::Member(id) if signed.record.id != id => {
                Err(TransportError::Protocol(format!("expected node {id}, found node {}", signed.record.id)))
            }
            _ if signed.record.id == self.me.record.id => Err(TransportError::Protocol("dialled itself".into())),
            _ => Ok((signed, identity, halves)),
        });
        let (signed, halves) = match result {
            Ok((signed, identity, halves)) => match self.check_hello(&signed, identity) {
                Ok(()) => (signed, halves),
                Err(refusal) => {
                    let error = TransportError::Protocol(refusal.to_string());
                    self.reject_halves(halves, &refusal);
                    return self.dial_failed(target, error);
                }
            },
            Err(error) => return self.dial_failed(target, error),
        };
        let record = signed.record;
        if let DialTarget::Seed(addr) = target {
            self.seeds.remove(&addr);
        }
        if !self.learn(signed) {
            return; // No room for another member.
        }
        let member = self.members.get_mut(&record.id).expect("learn inserts the member");
        member.answered = true;
        member.failures = 0;
        if matches!(member.link, LinkState::Up(_)) {
            return; // Another dial won; this connection just closes.
        }
        member.backoff = self.config.timing.backoff_min;
        let conn = self.install(record.id, true, generation, halves);
        let member = self.members.get_mut(&record.id).expect("member exists");
        member.link = LinkState::Up(conn);
        if !self.config.has(Mutation::NoRetransmit) && !member.outbox.is_empty() {
            let count = member.outbox.len();
            let frames: Vec<Bytes> = member.outbox.frames().cloned().collect();
            for frame in frames {
                self.write(conn, frame);
            }
            self.emit(NodeEvent::Retransmitted { to: record.id, count });
        }
        let view = self.view();
        self.write(conn, view);
    }

    fn dial_failed(&mut self, target: DialTarget, error: TransportError) {
        let backoff_max = self.config.timing.backoff_max;
        let (addr, backoff) = match target {
            DialTarget::Member(id) => {
                let member = self.members.get_mut(&id).expect("dialled members exist");
                if !matches!(member.link, LinkState::Dialing) {
                    return;
                }
                let backoff = member.backoff;
                member.backoff = (backoff * 2).min(backoff_max);
                member.failures = member.failures.saturating_add(1);
                (member.record().addr, backoff)
            }
            DialTarget::Seed(addr) => {
                let Some(seed) = self.seeds.get_mut(&addr) else { return };
                let backoff = seed.backoff;
                seed.backoff = (backoff * 2).min(backoff_max);
                (addr, backoff)
            }
        };
        let retry_at = Instant::now() + self.jittered(backoff);
        match target {
            DialTarget::Member(id) => {
                self.members.get_mut(&id).expect("member exists").link = LinkState::Idle { retry_at };
            }
            DialTarget::Seed(addr) => {
                let seed = self.seeds.get_mut(&addr).expect("seed exists");
                seed.dialing = false;
                seed.retry_at = retry_at;
            }
        }
        self.emit(NodeEvent::DialFailed { addr, reason: error.to_string() });
    }

    fn on_frame(&mut self, conn: ConnId, wire: Wire) {
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer) else { return };
        match wire {
            Wire::Hello(_) => self.refuse(conn, Refusal::Protocol("a second hello".into())),
            Wire::Gossip(view) => {
                // Checked before anything is stored or relayed.
                if let Some(bad) = view.iter().find(|signed| !signed.is_well_formed()) {
                    let len = bad.signature.len();
                    return self.refuse(conn, Refusal::Protocol(format!("a record signature of {len} bytes")));
                }
                for signed in view {
                    if !self.is_news(&signed.record) {
                        continue;
                    }
                    if let Err(refusal) = self.check_record(&signed) {
                        return self.refuse(conn, refusal);
                    }
                    self.learn(signed);
                }
            }
            Wire::Data(data) => self.on_data(conn, peer, data),
            Wire::Ack(id) => {
                if let Some(member) = self.members.get_mut(&peer) {
                    if member.outbox.ack(id) {
                        self.emit(NodeEvent::AckReceived { id, from: peer });
                    }
                }
            }
        }
    }

    fn on_data(&mut self, conn: ConnId, peer: NodeId, data: Data) {
        if data.to.is_some_and(|to| to != self.me.record.id) || data.id.origin != peer {
            return self.refuse(conn, Refusal::ForgedOrigin { peer, origin: data.id.origin });
        }
        let new = self.seen.insert(data.id);
        self.emit(NodeEvent::MessageReceived { id: data.id, from: peer, duplicate: !new });
        if new || self.config.has(Mutation::NoDedup) {
            let kind = if data.to.is_some() { MessageKind::Direct } else { MessageKind::Broadcast };
            self.deliver(Delivery { id: data.id, kind, tag: data.tag, payload: data.payload });
        }
        self.write(conn, Wire::Ack(data.id).encode());
    }

    fn deliver(&self, delivery: Delivery) {
        // The owner may have dropped the receiver; deliveries then go nowhere.
        let _ = self.io.incoming.send(delivery);
    }

    /// Whether `record` would change the view: another member, unknown or newer.
    fn is_news(&self, record: &MemberRecord) -> bool {
        record.id != self.me.record.id
            && self.members.get(&record.id).is_none_or(|m| self.supersedes(record, &m.signed.record))
    }

    /// Whether `record` supersedes `known`, a record of the same member: a
    /// later incarnation, then a later address version.
    fn supersedes(&self, record: &MemberRecord, known: &MemberRecord) -> bool {
        if record.incarnation > known.incarnation.saturating_add(self.config.max_incarnation_jump) {
            // No record may claim an incarnation nothing later could outbid.
            tracing::debug!(peer = %record.id, incarnation = record.incarnation, "ignoring an incarnation jump");
            return false;
        }
        if self.config.has(Mutation::VersionBeforeIncarnation) {
            // The planted bug: a restart starts the version at 0 again, so
            // the record of a node that rebound before its crash loses.
            return (record.version, record.incarnation) > (known.version, known.incarnation);
        }
        record.is_newer_than(known)
    }

    /// Merges what a peer says about a member (already checked against the
    /// roster, if any): the newest record wins. Whether the member is known
    /// now: a new one is ignored once the view holds `max_members`.
    fn learn(&mut self, signed: SignedRecord) -> bool {
        let record = signed.record;
        if record.id == self.me.record.id {
            return false;
        }
        let now = Instant::now();
        let full = self.members.len() >= self.config.max_members;
        let newer = self.members.get(&record.id).is_some_and(|m| self.supersedes(&record, &m.signed.record));
        match self.members.get_mut(&record.id) {
            None if full => {
                tracing::debug!(peer = %record.id, "membership full; ignoring a new member");
                return false;
            }
            None => {
                let timing = &self.config.timing;
                self.members.insert(
                    record.id,
                    Member {
                        signed,
                        link: LinkState::Idle { retry_at: now },
                        backoff: timing.backoff_min,
                        outbox: Outbox::new(self.config.outbox_capacity),
                        answered: false,
                        failures: 0,
                    },
                );
            }
            Some(member) if newer => {
                let restarted = record.incarnation != member.signed.record.incarnation;
                let moved = record.addr != member.signed.record.addr;
                member.signed = signed;
                if restarted && self.config.has(Mutation::ForgetOnRestart) {
                    member.outbox.clear();
                }
                if restarted || moved {
                    member.backoff = self.config.timing.backoff_min;
                    if let LinkState::Up(conn) = member.link {
                        member.link = LinkState::Idle { retry_at: now };
                        self.close(conn, "peer restarted or moved");
                    }
                }
            }
            Some(_) => return true,
        }
        self.emit(NodeEvent::MemberUpdated {
            peer: record.id,
            addr: record.addr,
            incarnation: record.incarnation,
            version: record.version,
        });
        self.publish_peers();
        true
    }

    fn publish_peers(&self) {
        let peers = self
            .members
            .iter()
            .map(|(&id, m)| {
                let r = m.record();
                (id, PeerInfo { addr: r.addr, incarnation: r.incarnation, version: r.version })
            })
            .collect();
        self.io.peers.send_replace(peers);
    }

    // ----- the owner's requests ---------------------------------------------

    async fn on_command(&mut self, command: Command) {
        // A requester that stopped waiting does not need the answer.
        match command {
            Command::Send { to, tag, payload, reply } => {
                let _ = reply.send(self.send(to, tag, payload));
            }
            Command::Rebind { addr, reply } => {
                let result = self.rebind(addr).await;
                self.publish_status(result.as_ref().err().cloned(), 0);
                let _ = reply.send(result);
            }
        }
    }

    fn send(&mut self, to: Option<NodeId>, tag: String, payload: Bytes) -> Result<Sent, SendError> {
        let recipients: Vec<NodeId> = match to {
            None => self.members.keys().copied().collect(),
            Some(to) if to == self.me.record.id => return Err(SendError::ToSelf),
            Some(to) if !self.members.contains_key(&to) => return Err(SendError::UnknownPeer(to)),
            Some(to) => vec![to],
        };
        // A member whose outbox is full (it acknowledges nothing) is left out
        // of a broadcast, so it degrades only its own delivery; a send none
        // of its addressees has room for is refused.
        let (recipients, dropped): (Vec<NodeId>, Vec<NodeId>) =
            recipients.into_iter().partition(|p| self.members[p].outbox.has_room());
        if let (None, Some(&full)) = (recipients.first(), dropped.first()) {
            return Err(SendError::Backpressure(full));
        }
        let id = MessageId { origin: self.me.record.id, incarnation: self.me.record.incarnation, seq: self.next_seq };
        self.next_seq += 1;
        let data = Data { id, to, tag, payload };
        let frame = Wire::Data(data.clone()).encode();
        for &peer in &recipients {
            let member = self.members.get_mut(&peer).expect("recipients are members");
            member.outbox.push(id, frame.clone());
            if let LinkState::Up(conn) = member.link {
                self.write(conn, frame.clone());
            }
            self.emit(NodeEvent::MessageSent { id, to: peer });
        }
        for &peer in &dropped {
            self.emit(NodeEvent::MessageDropped { id, to: peer });
        }
        if to.is_none() && self.config.has(Mutation::SelfDelivery) {
            self.deliver(Delivery { id, kind: MessageKind::Broadcast, tag: data.tag, payload: data.payload });
        }
        Ok(Sent { id, recipients, dropped })
    }

    async fn on_reload(&mut self) {
        let config = self.io.config.borrow_and_update().clone();
        let observer = self.config.observer.clone();
        let old_listen = std::mem::replace(&mut self.config, config).listen;
        self.config.observer = observer;
        let mut error = None;
        if self.config.listen != old_listen {
            error = self.rebind(self.config.listen).await.err();
        }
        self.publish_status(error, 1);
    }

    fn publish_status(&self, error: Option<String>, reloads: u64) {
        self.io.status.send_modify(|status| {
            status.addr = self.me.record.addr;
            status.version = self.me.record.version;
            status.reloads += reloads;
            status.error = error;
        });
    }

    /// Moves the listener: a new one first, so a failure leaves the node as it
    /// was; then the old one and its connections go, and peers are told.
    async fn rebind(&mut self, target: SocketAddr) -> Result<SocketAddr, String> {
        let listener = match self.io.transport.listen(target).await {
            Ok(listener) => listener,
            Err(e) => {
                self.emit(NodeEvent::RebindFailed { addr: target, reason: e.to_string() });
                return Err(e.to_string());
            }
        };
        let generation = self.listener_generation;
        let addr = listener.local_addr();
        self.start_listener(listener);
        let inbound: Vec<ConnId> =
            self.conns.iter().filter(|(_, c)| !c.outbound && c.generation == generation).map(|(&id, _)| id).collect();
        for conn in inbound {
            self.close(conn, "listener moved");
        }
        let mut me = self.me.record;
        me.addr = addr;
        if self.config.has(Mutation::RebindDropsOutbox) {
            self.members.values_mut().for_each(|member| member.outbox.clear());
        }
        if !self.config.has(Mutation::StaleRebind) {
            me.version += 1;
        }
        self.me = seal(&self.config, me);
        self.emit(NodeEvent::Listening { addr, version: self.me.record.version });
        self.gossip();
        Ok(addr)
    }
}

/// Why a connection's writer stopped on its own.
enum WriteEnd {
    /// The transport failed a send.
    Failed(TransportError),
    /// A frame waited longer than [`Timing::send_stall`](super::Timing::send_stall).
    Stalled,
}

/// Sends what `outgoing` brings, in order, each within `stall`, subtracting
/// each frame from `queue` once the transport took it. Ends when `outgoing`
/// closes (then it closes the connection after the queued frames), when
/// `reject` names a close code (then it closes with it at once, dropping
/// the queue), or when a send fails or stalls (then it closes with
/// [`Refusal::Overloaded`]'s code).
async fn write_frames<S: MessageSender>(
    mut sender: S,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    queue: Arc<Queue>,
    mut reject: watch::Receiver<Option<u64>>,
    stall: Duration,
) -> Result<(), WriteEnd> {
    loop {
        let frame = tokio::select! {
            biased;
            Ok(()) = reject.changed() => break,
            next = outgoing.recv() => match next {
                Some(frame) => frame,
                None => {
                    sender.close().await;
                    return Ok(());
                }
            },
        };
        let len = frame.len();
        let sent = tokio::select! {
            biased;
            Ok(()) = reject.changed() => break,
            sent = timeout(stall, sender.send(frame)) => sent,
        };
        queue.give(len);
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                sender.close().await;
                return Err(WriteEnd::Failed(error));
            }
            Err(_) => {
                sender.reject(Refusal::Overloaded(String::new()).close_code()).await;
                return Err(WriteEnd::Stalled);
            }
        }
    }
    let code = reject.borrow().unwrap_or(Refusal::Overloaded(String::new()).close_code());
    sender.reject(code).await;
    Ok(())
}

/// `record`, signed with the node's credentials (unsigned without).
fn seal(config: &NodeConfig, record: MemberRecord) -> SignedRecord {
    match &config.credentials {
        Some(credentials) => credentials.sign(record),
        None => SignedRecord::unsigned(record),
    }
}

async fn read_hello<R: MessageReceiver>(receiver: &mut R, limit: Duration) -> Result<SignedRecord, TransportError> {
    let bytes =
        timeout(limit, receiver.recv()).await.map_err(|_| TransportError::TimedOut("waiting for hello".into()))??;
    match Wire::decode(&bytes)? {
        Wire::Hello(signed) => Ok(signed),
        other => Err(TransportError::Protocol(format!("expected hello, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A sender whose peer grants no flow control after `room` frames.
    struct Stuck {
        room: usize,
        closed_with: Arc<Mutex<Option<u64>>>,
    }

    impl MessageSender for Stuck {
        async fn send(&mut self, _message: Bytes) -> Result<(), TransportError> {
            if self.room == 0 {
                std::future::pending::<()>().await;
            }
            self.room -= 1;
            Ok(())
        }

        async fn close(&mut self) {
            *self.closed_with.lock().unwrap() = Some(0);
        }

        async fn reject(&mut self, code: u64) {
            *self.closed_with.lock().unwrap() = Some(code);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_that_stalls_closes_as_overloaded_and_a_rejection_drops_the_queue() {
        let overloaded = Refusal::Overloaded(String::new()).close_code();
        let stall = Duration::from_secs(10);
        // Stalled: the third frame waits out `stall`; the queue is handed back.
        let closed_with = Arc::new(Mutex::new(None));
        let (writer, outgoing) = mpsc::unbounded_channel();
        let (_reject, rejected) = watch::channel(None);
        let queue = Arc::new(Queue::default());
        for _ in 0..5 {
            queue.take(3);
            writer.send(Bytes::from_static(b"abc")).unwrap();
        }
        let sender = Stuck { room: 2, closed_with: closed_with.clone() };
        let started = Instant::now();
        let ended = write_frames(sender, outgoing, queue.clone(), rejected, stall).await;
        assert!(matches!(ended, Err(WriteEnd::Stalled)));
        assert_eq!(started.elapsed(), stall);
        assert_eq!(*closed_with.lock().unwrap(), Some(overloaded));
        assert_eq!(queue.frames.load(Ordering::Acquire), 2, "the frames never taken stay counted until dropped");

        // Rejected while stuck: closes with the code at once.
        let closed_with = Arc::new(Mutex::new(None));
        let (writer, outgoing) = mpsc::unbounded_channel();
        let (reject, rejected) = watch::channel(None);
        writer.send(Bytes::from_static(b"abc")).unwrap();
        let sender = Stuck { room: 0, closed_with: closed_with.clone() };
        let task = tokio::spawn(write_frames(sender, outgoing, Arc::new(Queue::default()), rejected, stall));
        tokio::task::yield_now().await;
        reject.send_replace(Some(0x104));
        assert!(matches!(task.await.unwrap(), Ok(())));
        assert_eq!(*closed_with.lock().unwrap(), Some(0x104));
        drop(writer);
    }
}
