//! The node: a primary-backup replica with epochs (Raft's safety rules),
//! written against [`tandem::Transport`] and
//! [`tandem::Storage`] only.
//!
//! - **Durable state**: the highest epoch seen, the vote in it and the log
//!   ([`Durable`]), synced before the node answers anything that depends
//!   on it (a vote, a stored entry) and before a candidate asks for votes.
//! - **Election**: a backup that hears no primary for an election timeout
//!   (drawn from the node's seeded RNG) stands in the next epoch. A voter
//!   grants one vote per epoch, to a candidate whose log is at least as
//!   up to date as its own, so the winner holds every committed entry: it
//!   adopts the most up-to-date log of the majority.
//! - **Replication**: the primary appends client writes to its log and
//!   replicates it; an entry of its epoch is committed once a majority has
//!   it durably, and applied in log order. Only then is a write answered.
//!   A new primary first commits a no-op of its epoch, and serves reads only
//!   after that.
//! - **Reads**: the primary notes its commit index, starts a new round of
//!   heartbeats and answers once a majority has acknowledged that round in
//!   its epoch (it was still primary after the read arrived) and it has
//!   applied up to the noted index.
//! - **Lease reads** (when [`Timing::lease`] is not zero): a majority's
//!   acknowledgements of a round sent at `t` grant the primary a lease
//!   until `t + lease` on its monotonic clock; while it holds one, a read
//!   is answered at once, checking the lease right before the answer: by
//!   the client's task, from the state the actor publishes at the start of
//!   each turn ([`PrimaryNode::call`]), or by the actor once the noted
//!   index is applied. A backup that acknowledges a round
//!   promises, on its own monotonic clock, to vote for no other node and
//!   not to stand for [`promise`] (the lease with a margin for
//!   [`MAX_DRIFT_PERCENT`] of drift either way), and a restarted node
//!   keeps the promise it may have made before its crash.
//! - **Deduplication**: a write carries its client's request id into the
//!   log; the primary waits for a request already in its log instead of
//!   appending it again, and applying skips an id already applied. The
//!   table of applied ids is rebuilt from the log, so it is as durable as
//!   the log.
//!
//! One task owns the state (an actor); other tasks read connections into
//! its inbox and carry its messages to each peer over one connection per
//! peer, dropping what they cannot deliver (every message is repeated
//! until it is answered). Client operations reach the actor over a channel
//! ([`PrimaryNode::call`]), so any number of clients can share a node.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tandem::{
    Connection, Listener, MessageReceiver, MessageSender, NodeContext, Observer, OpError, Storage, Transport,
    APPLICATION_CLOSE_CODES,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::wire::{
    decode, encode, seal, unseal, Answer, ClientOp, Command, Durable, Entry, Message, Refusal, Reply, RequestId, SLOTS,
};
use crate::PrimaryObservation;

/// The node's timers (all on `tokio::time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often the primary replicates (heartbeats).
    pub heartbeat: Duration,
    /// A backup stands for election after hearing no primary for a time
    /// drawn from `election..2 * election`.
    pub election: Duration,
    /// How long a client waits for one attempt before it retries.
    pub attempt: Duration,
    /// How long a client tries in all before it gives up.
    pub deadline: Duration,
    /// How long a client pauses after a refusal.
    pub pause: Duration,
    /// How long a dial to a peer may take.
    pub connect: Duration,
    /// The primary's read lease; zero: every read waits for a round.
    pub lease: Duration,
}

/// The clock drift, in percent either way, that lease reads are safe
/// against: a backup's [`promise`] outlasts the primary's lease even when
/// the primary's clock runs this much slow and the backup's this much fast.
pub const MAX_DRIFT_PERCENT: u32 = 10;

/// How long a backup that acknowledged a round of a primary with lease
/// `lease` neither votes for another node nor stands, on its own clock:
/// `lease * (100 + d) / (100 - d)` for a drift of `d` percent, and 1 ms.
pub fn promise(lease: Duration) -> Duration {
    lease * (100 + MAX_DRIFT_PERCENT) / (100 - MAX_DRIFT_PERCENT) + Duration::from_millis(1)
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            heartbeat: Duration::from_millis(50),
            election: Duration::from_millis(300),
            attempt: Duration::from_millis(500),
            deadline: Duration::from_millis(3000),
            pause: Duration::from_millis(50),
            connect: Duration::from_millis(1000),
            lease: Duration::from_millis(200),
        }
    }
}

/// The planted bugs the node can run with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// `stale-read`: the primary answers reads from its own state at once.
    pub stale_read: bool,
    /// `ack-before-replication`: the primary answers a write once it is in
    /// its own durable log.
    pub ack_before_replication: bool,
    /// `retry-applied-twice`: no deduplication of request ids.
    pub retry_applied_twice: bool,
    /// `lease-checked-at-publish`: a client's task checks the lease of a
    /// read against the time the primary published its state, not now.
    pub lease_checked_at_publish: bool,
    /// `lease-on-wall-clock`: leases and promises are measured on the
    /// wall clock (`SystemTime`), which can jump.
    pub lease_on_wall_clock: bool,
    /// `sticky-forward`: a node forwards its clients' requests to the first
    /// primary it heard from, even after another was elected.
    pub sticky_forward: bool,
}

/// The applied state: each key's list.
type Store = BTreeMap<String, Vec<String>>;

/// The clock leases and promises are measured on: the monotonic clock
/// (with `lease-on-wall-clock`, the wall clock), as time since an origin.
#[derive(Debug, Clone, Copy)]
struct LeaseClock {
    origin: Instant,
    wall: bool,
}

impl LeaseClock {
    fn now(&self) -> Duration {
        if self.wall {
            // The planted bug: the wall clock can jump either way. In a
            // simulation the clock interposer answers it from the node's
            // simulated clock (deterministic); over MsQuic, from the node's
            // thread clock.
            let wall = std::time::SystemTime::now();
            wall.duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
        } else {
            Instant::now().saturating_duration_since(self.origin)
        }
    }
}

/// What the actor publishes at the start of each turn, for clients' tasks
/// to answer reads under its lease without waiting for it.
#[derive(Default)]
struct Published {
    /// Whether it is primary and serves reads.
    serving: bool,
    /// The end of its lease, on the lease clock.
    lease_until: Duration,
    /// When it published this, on the lease clock.
    at: Duration,
    /// The applied state.
    store: Arc<Store>,
}

/// Messages a peer link holds before it drops new ones.
const LINK_QUEUE: usize = 256;
/// The most entries one replication message carries.
const BATCH: usize = 64;

/// An operation from a client of this node.
struct Call {
    id: RequestId,
    op: ClientOp,
    reply: oneshot::Sender<Answer>,
}

/// A running node: cheap to share; every client operation needs only `&self`.
pub struct PrimaryNode {
    addr: SocketAddr,
    timing: Timing,
    bugs: Bugs,
    clock: LeaseClock,
    published: Arc<Mutex<Published>>,
    calls: mpsc::UnboundedSender<Call>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PrimaryNode {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// Who waits for an answer at the primary.
enum Waiter {
    /// A client of the primary itself.
    Local(oneshot::Sender<Answer>),
    /// A client of another node, which forwarded the request.
    Remote { node: u32, id: RequestId },
}

/// A read waiting for its round (or a lease) and its index.
struct Read {
    key: String,
    index: u64,
    round: u64,
    waiter: Waiter,
}

/// What the primary keeps about its backups.
#[derive(Default)]
struct Leading {
    /// The next index to send each backup.
    next: BTreeMap<u32, u64>,
    /// The highest index each backup is known to store.
    matched: BTreeMap<u32, u64>,
    /// The latest round each backup acknowledged in this epoch.
    acked: BTreeMap<u32, u64>,
    /// The index of this epoch's no-op.
    noop: u64,
    /// Whether the no-op is applied (the primary serves reads).
    serving: bool,
    /// Clients waiting for a write to be applied, by request id.
    writes: BTreeMap<RequestId, Vec<Waiter>>,
    /// Reads waiting for a round.
    reads: Vec<Read>,
    /// When each recent round was sent, on the lease clock.
    sent: BTreeMap<u64, Duration>,
    /// The end of the lease, on the lease clock (zero: none yet).
    lease_until: Duration,
}

/// Rounds whose send time the primary keeps: an older round's
/// acknowledgement could only grant a lease long expired.
const SENT_KEPT: usize = 64;

enum Role {
    Backup,
    Candidate(BTreeSet<u32>),
    Primary(Leading),
}

/// Something to do once the state is durable.
enum Out {
    Send(u32, Message),
    Answer(Waiter, Answer),
}

struct Actor {
    me: u32,
    nodes: u32,
    timing: Timing,
    bugs: Bugs,
    disk: Storage,
    observer: Observer<PrimaryObservation>,
    rng: ChaCha8Rng,
    links: BTreeMap<u32, mpsc::Sender<Bytes>>,
    state: Durable,
    /// The write number of the last durable snapshot.
    seq: u64,
    /// The log length as of the last durable snapshot.
    stored: u64,
    /// Whether memory holds changes the disk does not.
    dirty: bool,
    role: Role,
    /// The primary of the current epoch, when known.
    primary: Option<u32>,
    /// The first primary this incarnation heard from (what
    /// `sticky-forward` forwards to).
    first_primary: Option<u32>,
    commit: u64,
    applied: u64,
    store: Arc<Store>,
    /// Request ids applied (deduplication).
    done: BTreeSet<RequestId>,
    /// The round counter of this node as primary.
    round: u64,
    election_at: Instant,
    heartbeat_at: Instant,
    /// Client operations forwarded to the primary, by request id.
    forwarded: BTreeMap<RequestId, oneshot::Sender<Answer>>,
    out: Vec<Out>,
    /// The clock of leases and promises.
    clock: LeaseClock,
    /// Until when (lease clock) this node neither votes for another node
    /// than `promised_to` nor stands.
    promised_until: Duration,
    /// The primary the promise was made to (`None`: made before a crash).
    promised_to: Option<u32>,
    /// What clients' tasks read to answer lease reads themselves.
    published: Arc<Mutex<Published>>,
}

impl PrimaryNode {
    /// Loads the node's durable state, binds its address and starts serving.
    pub async fn start<T: Transport>(
        ctx: NodeContext<PrimaryObservation, T>,
        timing: Timing,
        bugs: Bugs,
    ) -> Result<PrimaryNode, String> {
        let NodeContext { index, incarnation, listen, addrs, transport, storage: disk, observer, rng_seed, .. } = ctx;
        let nodes = addrs.len() as u32;
        let (state, seq) = load(&disk).await?;
        let transport = Arc::new(transport);
        let mut listener = transport.listen(listen).await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr();
        let mut tasks = Vec::new();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(async move {
            let mut readers = JoinSet::new();
            loop {
                tokio::select! {
                    biased;
                    Some(_) = readers.join_next(), if !readers.is_empty() => {}
                    accepted = listener.accept() => match accepted {
                        Ok(connection) => {
                            readers.spawn(read_peer::<T>(connection, nodes, inbox_tx.clone()));
                        }
                        Err(_) => return,
                    },
                }
            }
        }));
        let mut links = BTreeMap::new();
        for peer in (0..nodes).filter(|&p| p != index) {
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            links.insert(peer, tx);
            tasks.push(tokio::spawn(link(transport.clone(), addrs[peer as usize], rx, timing.connect)));
        }
        let (calls, requests) = mpsc::unbounded_channel();
        let now = Instant::now();
        let clock = LeaseClock { origin: now, wall: bugs.lease_on_wall_clock };
        let published = Arc::new(Mutex::new(Published::default()));
        let stored = state.log.len() as u64;
        let mut actor = Actor {
            me: index,
            nodes,
            timing,
            bugs,
            disk,
            observer,
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            links,
            state,
            seq,
            stored,
            dirty: false,
            role: Role::Backup,
            primary: None,
            first_primary: None,
            commit: 0,
            applied: 0,
            store: Arc::default(),
            done: BTreeSet::new(),
            round: 0,
            election_at: now,
            heartbeat_at: now,
            forwarded: BTreeMap::new(),
            out: Vec::new(),
            clock,
            promised_until: Duration::ZERO,
            promised_to: None,
            published: published.clone(),
        };
        if incarnation > 0 && !timing.lease.is_zero() {
            // It may have promised a primary a lease before its crash.
            actor.promised_until = actor.lease_clock() + promise(timing.lease);
        }
        actor.reset_election();
        if incarnation == 0 {
            // At first boot, lower indices stand first: node 0 is usually
            // the first primary, which scenarios can count on.
            actor.election_at = now + timing.election / 2 * (index + 1);
        }
        tasks.push(tokio::spawn(actor.run(inbox, requests)));
        Ok(PrimaryNode { addr, timing, bugs, clock, published, calls, tasks })
    }

    /// Where the node listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client: carries out `op` as request `id`, retrying with the same
    /// id until the deadline. A write that may have been applied and got no
    /// answer is `Indeterminate`; a read that got none, or a write refused
    /// every time before anyone could apply it, is `Failed`.
    pub async fn call(&self, id: RequestId, op: ClientOp) -> Result<Reply, OpError> {
        if let ClientOp::Get { key } = &op {
            if let Some(value) = self.leased_read(key) {
                return Ok(Reply::Value(value));
            }
        }
        let deadline = Instant::now() + self.timing.deadline;
        let mut maybe_applied = false;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let (reply, answer) = oneshot::channel();
            if self.calls.send(Call { id, op: op.clone(), reply }).is_err() {
                last = "the node has stopped".into();
                break;
            }
            let wait = self.timing.attempt.min(deadline - Instant::now());
            match tokio::time::timeout(wait, answer).await {
                Ok(Ok(Ok(reply))) => return Ok(reply),
                Ok(Ok(Err(refusal))) => {
                    maybe_applied |= refusal == Refusal::Deposed;
                    last = format!("{refusal:?}");
                    tokio::time::sleep(self.timing.pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                Ok(Err(_)) => {
                    maybe_applied = true;
                    last = "the attempt was dropped".into();
                    tokio::time::sleep(self.timing.pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                Err(_) => {
                    maybe_applied = true;
                    last = "no answer".into();
                }
            }
        }
        let why = format!("no answer within {:?} (last attempt: {last})", self.timing.deadline);
        if op.writes() && maybe_applied {
            Err(OpError::Indeterminate(why))
        } else {
            Err(OpError::Failed(why))
        }
    }
}

impl PrimaryNode {
    /// A read this node answers at once, as primary under its lease: the
    /// lease is checked now, right before the answer (with
    /// `lease-checked-at-publish`: at the time the state was published).
    fn leased_read(&self, key: &str) -> Option<Option<Vec<String>>> {
        let published = self.published.lock().expect("never poisoned");
        let at = if self.bugs.lease_checked_at_publish { published.at } else { self.clock.now() };
        (published.serving && at < published.lease_until).then(|| published.store.get(key).cloned())
    }
}

/// Reads the newest whole snapshot of the two slots.
async fn load(disk: &Storage) -> Result<(Durable, u64), String> {
    let names = disk.list().await.map_err(|e| format!("listing the disk: {e}"))?;
    let mut best: Option<(u64, Durable)> = None;
    for slot in SLOTS {
        if !names.iter().any(|n| n == slot) {
            continue;
        }
        let bytes = disk.read(slot).await.map_err(|e| format!("reading {slot}: {e}"))?;
        if let Some((seq, state)) = unseal(&bytes) {
            if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                best = Some((seq, state));
            }
        }
    }
    Ok(best.map_or((Durable::default(), 0), |(seq, state)| (state, seq)))
}

/// Reads one peer connection into the inbox; a malformed message closes it.
async fn read_peer<T: Transport>(connection: T::Connection, nodes: u32, inbox: mpsc::UnboundedSender<Message>) {
    let (mut tx, mut rx) = connection.split();
    while let Ok(bytes) = rx.recv().await {
        match decode(&bytes, nodes) {
            Ok(message) => {
                if inbox.send(message).is_err() {
                    return;
                }
            }
            Err(why) => {
                tracing::warn!("closing a connection: {why}");
                tx.reject(APPLICATION_CLOSE_CODES).await;
                return;
            }
        }
    }
}

/// A connection's two halves.
type Halves<C> = (<C as Connection>::Sender, <C as Connection>::Receiver);

/// Carries messages to one peer over one connection, dialled when needed;
/// what cannot be delivered is dropped (the protocol repeats itself).
async fn link<T: Transport>(transport: Arc<T>, to: SocketAddr, mut queue: mpsc::Receiver<Bytes>, connect: Duration) {
    // Both halves: the connection lives while either does.
    let mut connection: Option<Halves<T::Connection>> = None;
    while let Some(bytes) = queue.recv().await {
        if connection.is_none() {
            match tokio::time::timeout(connect, transport.connect(to)).await {
                Ok(Ok(c)) => connection = Some(c.split()),
                _ => {
                    // Whatever queued meanwhile is stale: drop it.
                    while queue.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        if let Some((tx, _)) = connection.as_mut() {
            if tx.send(bytes).await.is_err() {
                connection = None;
            }
        }
    }
}

fn majority(nodes: u32) -> usize {
    nodes as usize / 2 + 1
}

/// The latest round a majority (the primary with its backups' `acked`)
/// acknowledged.
fn confirmed(acked: &BTreeMap<u32, u64>, majority: usize) -> u64 {
    let mut rounds: Vec<u64> = acked.values().copied().collect();
    rounds.push(u64::MAX);
    rounds.sort_unstable_by(|a, b| b.cmp(a));
    rounds[majority - 1]
}

impl Actor {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Message>, mut calls: mpsc::UnboundedReceiver<Call>) {
        loop {
            let wake = match self.role {
                Role::Primary(_) => self.heartbeat_at,
                _ => self.election_at,
            };
            self.publish();
            tokio::select! {
                biased;
                Some(message) = inbox.recv() => self.on_message(message),
                Some(call) = calls.recv() => self.on_call(call),
                _ = tokio::time::sleep_until(wake) => self.on_timer(),
            }
            // Handle what else arrived before one sync covers it all.
            for _ in 0..32 {
                match inbox.try_recv() {
                    Ok(message) => self.on_message(message),
                    Err(_) => break,
                }
            }
            for _ in 0..32 {
                match calls.try_recv() {
                    Ok(call) => self.on_call(call),
                    Err(_) => break,
                }
            }
            self.flush().await;
        }
    }

    fn lease_clock(&self) -> Duration {
        self.clock.now()
    }

    /// Publishes what a client's task needs to answer a read under the lease.
    fn publish(&mut self) {
        let serving = matches!(&self.role, Role::Primary(leading) if leading.serving);
        let lease_until = match &self.role {
            Role::Primary(leading) => leading.lease_until,
            _ => Duration::ZERO,
        };
        let at = self.lease_clock();
        let store = self.store.clone();
        *self.published.lock().expect("never poisoned") = Published { serving, lease_until, at, store };
    }

    /// Whether this node promised a lease to a primary other than `to`
    /// that may still hold.
    fn promised_to_other(&self, to: u32) -> bool {
        self.promised_to != Some(to) && self.lease_clock() < self.promised_until
    }

    fn reset_election(&mut self) {
        let base = self.timing.election.as_millis() as u64;
        let wait = self.rng.random_range(base..=2 * base);
        self.election_at = Instant::now() + Duration::from_millis(wait);
    }

    fn last(&self) -> (u64, u64) {
        (self.state.log.len() as u64, self.state.log.last().map_or(0, |e| e.epoch))
    }

    fn epoch_of(&self, index: u64) -> u64 {
        if index == 0 {
            0
        } else {
            self.state.log.get(index as usize - 1).map_or(0, |e| e.epoch)
        }
    }

    fn send(&mut self, to: u32, message: Message) {
        self.out.push(Out::Send(to, message));
    }

    fn answer(&mut self, waiter: Waiter, answer: Answer) {
        self.out.push(Out::Answer(waiter, answer));
    }

    /// Makes memory durable if it changed, then lets out what waited for it.
    /// A failed sync keeps everything in: nothing that depends on it is said.
    async fn flush(&mut self) {
        if self.dirty {
            let seq = self.seq + 1;
            let bytes = seal(seq, &self.state);
            let slot = SLOTS[(seq % 2) as usize];
            let result = match self.disk.write(slot, &bytes).await {
                Ok(()) => self.disk.sync(slot).await,
                Err(e) => Err(e),
            };
            if let Err(error) = result {
                tracing::debug!("persisting the state failed: {error}");
                self.out.clear();
                return;
            }
            self.seq = seq;
            self.dirty = false;
            self.stored = self.state.log.len() as u64;
            if matches!(self.role, Role::Primary(_)) {
                self.advance_commit();
            }
        }
        for out in std::mem::take(&mut self.out) {
            match out {
                Out::Send(to, message) => {
                    if let Some(link) = self.links.get(&to) {
                        let _ = link.try_send(encode(&message));
                    }
                }
                Out::Answer(Waiter::Local(reply), answer) => {
                    let _ = reply.send(answer);
                }
                Out::Answer(Waiter::Remote { node, id }, answer) => {
                    if let Some(link) = self.links.get(&node) {
                        let _ = link.try_send(encode(&Message::Response { id, answer }));
                    }
                }
            }
        }
    }

    /// Moves to `epoch` (higher than the current one) as a backup.
    fn adopt_epoch(&mut self, epoch: u64) {
        self.state.epoch = epoch;
        self.state.voted_for = None;
        self.dirty = true;
        self.primary = None;
        self.step_down();
    }

    /// Stops leading or standing; waiting clients hear that the write may
    /// still be applied.
    fn step_down(&mut self) {
        if let Role::Primary(leading) = std::mem::replace(&mut self.role, Role::Backup) {
            for waiter in leading.writes.into_values().flatten() {
                self.answer(waiter, Err(Refusal::Deposed));
            }
            for read in leading.reads {
                self.answer(read.waiter, Err(Refusal::NotPrimary));
            }
            self.reset_election();
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        match self.role {
            Role::Primary(_) => {
                if now >= self.heartbeat_at {
                    self.broadcast();
                }
            }
            _ if now < self.election_at => {}
            // Not while a lease it granted may hold: look again soon.
            _ if self.promised_to_other(self.me) => self.election_at = now + self.timing.heartbeat,
            _ => self.stand(),
        }
    }

    /// Stands for election in the next epoch.
    fn stand(&mut self) {
        self.state.epoch += 1;
        self.state.voted_for = Some(self.me);
        self.dirty = true;
        self.primary = None;
        self.role = Role::Candidate(BTreeSet::from([self.me]));
        self.reset_election();
        let (last_index, last_epoch) = self.last();
        let (epoch, me) = (self.state.epoch, self.me);
        for peer in (0..self.nodes).filter(|&p| p != me) {
            self.send(peer, Message::Vote { from: me, epoch, last_index, last_epoch });
        }
        self.won_votes();
    }

    fn won_votes(&mut self) {
        let Role::Candidate(votes) = &self.role else { return };
        if votes.len() < majority(self.nodes) {
            return;
        }
        let epoch = self.state.epoch;
        self.state.log.push(Entry { epoch, id: 0, command: Command::Noop });
        self.dirty = true;
        let last = self.state.log.len() as u64;
        let peers = (0..self.nodes).filter(|&p| p != self.me);
        let leading = Leading {
            sent: BTreeMap::new(),
            lease_until: Duration::ZERO,
            next: peers.clone().map(|p| (p, last)).collect(),
            matched: peers.clone().map(|p| (p, 0)).collect(),
            acked: peers.map(|p| (p, 0)).collect(),
            noop: last,
            ..Leading::default()
        };
        self.role = Role::Primary(leading);
        self.primary = Some(self.me);
        tracing::debug!(epoch, "primary");
        self.broadcast();
    }

    /// Starts a new round: replicates to every backup what it lacks.
    fn broadcast(&mut self) {
        self.heartbeat_at = Instant::now() + self.timing.heartbeat;
        self.round += 1;
        let sent = self.lease_clock();
        let Role::Primary(leading) = &mut self.role else { return };
        leading.sent.insert(self.round, sent);
        while leading.sent.len() > SENT_KEPT {
            leading.sent.pop_first();
        }
        let Role::Primary(leading) = &self.role else { return };
        let mut messages = Vec::new();
        for (&peer, &next) in &leading.next {
            let prev_index = next.saturating_sub(1).min(self.state.log.len() as u64);
            let entries: Vec<Entry> = self.state.log.iter().skip(prev_index as usize).take(BATCH).cloned().collect();
            messages.push((
                peer,
                Message::Replicate {
                    from: self.me,
                    epoch: self.state.epoch,
                    prev_index,
                    prev_epoch: self.epoch_of(prev_index),
                    entries,
                    commit: self.commit,
                    round: self.round,
                },
            ));
        }
        for (peer, message) in messages {
            self.send(peer, message);
        }
    }

    fn on_message(&mut self, message: Message) {
        match message {
            Message::Vote { from, epoch, last_index, last_epoch } => {
                if epoch > self.state.epoch {
                    self.adopt_epoch(epoch);
                }
                let (my_index, my_epoch) = self.last();
                let up_to_date = (last_epoch, last_index) >= (my_epoch, my_index);
                let free = self.state.voted_for.is_none_or(|v| v == from) && !self.promised_to_other(from);
                let granted = epoch == self.state.epoch && free && up_to_date && matches!(self.role, Role::Backup);
                if granted && self.state.voted_for.is_none() {
                    self.state.voted_for = Some(from);
                    self.dirty = true;
                }
                if granted {
                    self.reset_election();
                }
                let reply = Message::VoteReply { from: self.me, epoch: self.state.epoch, granted };
                self.send(from, reply);
            }
            Message::VoteReply { from, epoch, granted } => {
                if epoch > self.state.epoch {
                    self.adopt_epoch(epoch);
                } else if let Role::Candidate(votes) = &mut self.role {
                    if granted && epoch == self.state.epoch {
                        votes.insert(from);
                        self.won_votes();
                    }
                }
            }
            Message::Replicate { from, epoch, prev_index, prev_epoch, entries, commit, round } => {
                self.on_replicate(from, epoch, prev_index, prev_epoch, entries, commit, round);
            }
            Message::ReplicateReply { from, epoch, success, matched, round } => {
                if epoch > self.state.epoch {
                    self.adopt_epoch(epoch);
                    return;
                }
                if epoch < self.state.epoch {
                    return;
                }
                let log_len = self.state.log.len() as u64;
                let (majority, lease) = (majority(self.nodes), self.timing.lease);
                let Role::Primary(leading) = &mut self.role else { return };
                let acked = leading.acked.entry(from).or_default();
                *acked = (*acked).max(round);
                // A majority acknowledged the round sent at `sent`: the
                // lease holds until `sent + lease`; it is never shortened.
                if let Some(&sent) = leading.sent.get(&confirmed(&leading.acked, majority)).filter(|_| !lease.is_zero())
                {
                    leading.lease_until = leading.lease_until.max(sent + lease);
                }
                if success {
                    let m = leading.matched.entry(from).or_default();
                    *m = (*m).max(matched.min(log_len));
                    let m = *m;
                    leading.next.insert(from, m + 1);
                    self.advance_commit();
                } else {
                    let next = leading.next.entry(from).or_insert(1);
                    *next = (*next).saturating_sub(1).min(matched + 1).max(1);
                }
                self.serve_reads();
            }
            Message::Request { from, id, op } => {
                if matches!(self.role, Role::Primary(_)) {
                    self.serve(id, op, Waiter::Remote { node: from, id });
                } else {
                    self.send(from, Message::Response { id, answer: Err(Refusal::NotPrimary) });
                }
            }
            Message::Response { id, answer } => {
                if let Some(reply) = self.forwarded.remove(&id) {
                    let _ = reply.send(answer);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_replicate(
        &mut self,
        from: u32,
        epoch: u64,
        prev_index: u64,
        prev_epoch: u64,
        entries: Vec<Entry>,
        commit: u64,
        round: u64,
    ) {
        if epoch < self.state.epoch {
            let reply =
                Message::ReplicateReply { from: self.me, epoch: self.state.epoch, success: false, matched: 0, round };
            self.send(from, reply);
            return;
        }
        if epoch > self.state.epoch {
            self.adopt_epoch(epoch);
        } else if !matches!(self.role, Role::Backup) {
            // Another node won this epoch.
            self.step_down();
            self.role = Role::Backup;
        }
        self.primary = Some(from);
        self.first_primary.get_or_insert(from);
        self.reset_election();
        if !self.timing.lease.is_zero() {
            // Its acknowledgement may complete the primary's lease.
            self.promised_until = self.promised_until.max(self.lease_clock() + promise(self.timing.lease));
            self.promised_to = Some(from);
        }
        let len = self.state.log.len() as u64;
        if prev_index > len || self.epoch_of(prev_index) != prev_epoch {
            let hint = len.min(prev_index.saturating_sub(1));
            let reply = Message::ReplicateReply { from: self.me, epoch, success: false, matched: hint, round };
            self.send(from, reply);
            return;
        }
        let count = entries.len() as u64;
        for (k, entry) in entries.into_iter().enumerate() {
            let index = prev_index + 1 + k as u64;
            let at = index as usize - 1;
            match self.state.log.get(at) {
                Some(existing) if existing.epoch == entry.epoch => {}
                Some(_) => {
                    self.state.log.truncate(at);
                    self.state.log.push(entry);
                    self.dirty = true;
                }
                None => {
                    self.state.log.push(entry);
                    self.dirty = true;
                }
            }
        }
        let last_new = prev_index + count;
        if commit > self.commit {
            self.commit = commit.min(last_new).max(self.commit);
            self.apply();
        }
        let reply = Message::ReplicateReply { from: self.me, epoch, success: true, matched: last_new, round };
        self.send(from, reply);
    }

    /// Commits the newest entry of this epoch a majority stores durably.
    fn advance_commit(&mut self) {
        let Role::Primary(leading) = &self.role else { return };
        let mut stores: Vec<u64> = leading.matched.values().copied().collect();
        stores.push(self.stored);
        stores.sort_unstable_by(|a, b| b.cmp(a));
        let held = stores[majority(self.nodes) - 1];
        if held > self.commit && self.epoch_of(held) == self.state.epoch {
            self.commit = held;
            self.apply();
        }
    }

    /// Applies committed entries in order and answers the writes waiting for them.
    fn apply(&mut self) {
        while self.applied < self.commit {
            self.applied += 1;
            let entry = self.state.log[self.applied as usize - 1].clone();
            let fresh = self.bugs.retry_applied_twice || !self.done.contains(&entry.id);
            match &entry.command {
                Command::Noop => {}
                Command::Put { key, value } if fresh => {
                    Arc::make_mut(&mut self.store).insert(key.clone(), vec![value.clone()]);
                }
                Command::Append { key, value } if fresh => {
                    Arc::make_mut(&mut self.store).entry(key.clone()).or_default().push(value.clone());
                }
                _ => {}
            }
            if entry.command != Command::Noop {
                self.done.insert(entry.id);
                self.observer.observe(PrimaryObservation::Applied { index: self.applied, id: entry.id });
            }
            let applied = self.applied;
            let epoch = self.state.epoch;
            let mut answers = Vec::new();
            if let Role::Primary(leading) = &mut self.role {
                if entry.command != Command::Noop {
                    answers.extend(leading.writes.remove(&entry.id).unwrap_or_default());
                }
                if applied == leading.noop && !leading.serving {
                    leading.serving = true;
                    self.observer.observe(PrimaryObservation::Serving { epoch });
                }
            }
            for waiter in answers {
                self.answer(waiter, Ok(Reply::Done));
            }
        }
        self.serve_reads();
    }

    /// Answers the reads whose index is applied and whose round a majority
    /// acknowledged, or which the lease covers (checked right here, with no
    /// wait before the answer).
    fn serve_reads(&mut self) {
        let applied = self.applied;
        let majority = majority(self.nodes);
        let now = self.lease_clock();
        let Role::Primary(leading) = &mut self.role else { return };
        if leading.reads.is_empty() {
            return;
        }
        let confirmed = confirmed(&leading.acked, majority);
        let lease_until = leading.lease_until;
        let (ready, waiting): (Vec<Read>, Vec<Read>) = std::mem::take(&mut leading.reads)
            .into_iter()
            .partition(|r| r.index <= applied && (r.round <= confirmed || now < lease_until));
        leading.reads = waiting;
        for read in ready {
            let value = self.store.get(&read.key).cloned();
            self.answer(read.waiter, Ok(Reply::Value(value)));
        }
    }

    fn on_call(&mut self, Call { id, op, reply }: Call) {
        // With `sticky-forward`, the first primary heard from, whoever leads now.
        let primary = if self.bugs.sticky_forward { self.first_primary.or(self.primary) } else { self.primary };
        match (&self.role, primary) {
            (Role::Primary(_), _) => self.serve(id, op, Waiter::Local(reply)),
            (_, Some(primary)) if primary != self.me => {
                self.forwarded.retain(|_, r| !r.is_closed());
                self.forwarded.insert(id, reply);
                self.send(primary, Message::Request { from: self.me, id, op });
            }
            _ => {
                let _ = reply.send(Err(Refusal::NoPrimary));
            }
        }
    }

    /// The primary carries out a client operation.
    fn serve(&mut self, id: RequestId, op: ClientOp, waiter: Waiter) {
        if !matches!(self.role, Role::Primary(_)) {
            return;
        }
        let command = match op {
            ClientOp::Get { key } => {
                if self.bugs.stale_read {
                    let value = self.store.get(&key).cloned();
                    self.answer(waiter, Ok(Reply::Value(value)));
                    return;
                }
                // The read waits for a new round, which confirms that this
                // node is still primary after the read arrived, unless the
                // lease covers it.
                let (round, commit) = (self.round + 1, self.commit);
                let now = self.lease_clock();
                let mut leased = false;
                if let Role::Primary(leading) = &mut self.role {
                    let index = commit.max(leading.noop);
                    leading.reads.push(Read { key, index, round, waiter });
                    leased = now < leading.lease_until;
                }
                if !leased {
                    self.broadcast();
                }
                // A cluster of one is its own majority.
                self.serve_reads();
                return;
            }
            ClientOp::Put { key, value } => Command::Put { key, value },
            ClientOp::Append { key, value } => Command::Append { key, value },
        };
        if !self.bugs.retry_applied_twice {
            if self.done.contains(&id) {
                self.answer(waiter, Ok(Reply::Done));
                return;
            }
            let unapplied = &self.state.log[self.applied as usize..];
            if unapplied.iter().any(|e| e.id == id && e.command != Command::Noop) {
                self.wait_for(id, waiter);
                return;
            }
        }
        self.state.log.push(Entry { epoch: self.state.epoch, id, command });
        self.dirty = true;
        self.wait_for(id, waiter);
        self.broadcast();
    }

    /// A client waits for request `id` to be applied (with
    /// `ack-before-replication`: only for the primary's own log to be durable).
    fn wait_for(&mut self, id: RequestId, waiter: Waiter) {
        if self.bugs.ack_before_replication {
            self.answer(waiter, Ok(Reply::Done));
        } else if let Role::Primary(leading) = &mut self.role {
            leading.writes.entry(id).or_default().push(waiter);
        }
    }
}
