//! The node: coordinator (index 0) and participants (every other index) of
//! a two-phase commit, written against [`tandem::Transport`] and
//! [`tandem::Storage`] only.
//!
//! Every exchange is one request (or one batch of them) and its answer on
//! a fresh connection (`rpc`), bounded by a timeout, so a crashed or
//! cut-off peer costs a timeout and nothing else. Durable state is one small file per
//! transaction: `d-TX` on the coordinator (its decision), `p-TX` on a
//! participant (`P` prepared, then `C` or `A` once the decision is applied).
//!
//! - The coordinator sends `Prepare(tx)` to every participant and waits for
//!   every vote within [`Timing::vote_timeout`]. All yes: it writes and
//!   syncs its commit decision, hands it to one participant (in order, the
//!   next one each [`Timing::tick`] without an answer) and, once one has
//!   applied it (the decision is then durable on two disks), observes it and
//!   answers the client; a background task delivers the decision from the
//!   next tick on, every tick (one batch per participant, at most two under
//!   way), until each participant acknowledges it. Any no or silence: the
//!   same with abort.
//! - A participant syncs its prepared record before it votes yes, applies a
//!   decision durably before it acknowledges it (an abort too, with no
//!   prepared record), and asks the coordinator `Status(tx)` every tick
//!   about every prepared transaction older than [`Timing::in_doubt_after`]
//!   (at once after a restart). The coordinator answers from its log; a
//!   transaction it has no decision for and is not deciding is presumed
//!   aborted (durably, before the answer).
//! - A restarted coordinator does not trust its log to hold every decision
//!   it made (a disk whose sync lied loses them): before it presumes abort,
//!   or runs a transaction it has no decision for, it asks the participants
//!   for every decision they applied (`Decisions`, once from each), and
//!   takes a decision one of them holds; only once every participant has
//!   answered is a transaction none holds undecided.
//! - The coordinator's decision records carry their transaction and a
//!   checksum ([`decision_record`]): one a read returns with a flipped bit
//!   fails it, and the coordinator takes it as lost, as a lying sync would
//!   have lost it, and asks the participants. A participant's records are
//!   trusted (its disk is not corrupted in the faults twophase survives).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tandem::{
    Connection, Listener, MessageReceiver, MessageSender, NodeContext, Observer, OpError, Storage, Transport,
    APPLICATION_CLOSE_CODES,
};
use tokio::sync::{mpsc, oneshot, Mutex, MutexGuard};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::TwoPhaseObservation;

/// The node's timers (all on `tokio::time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long the coordinator waits for every vote.
    pub vote_timeout: Duration,
    /// How long one delivery or status inquiry may take.
    pub rpc_timeout: Duration,
    /// How often undelivered decisions are resent and in-doubt
    /// transactions inquired about.
    pub tick: Duration,
    /// How long a participant waits for a decision before it asks.
    pub in_doubt_after: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            vote_timeout: Duration::from_secs(1),
            rpc_timeout: Duration::from_millis(1500),
            tick: Duration::from_millis(150),
            in_doubt_after: Duration::from_millis(1500),
        }
    }
}

/// How many batches to one node may be under way at once.
const MAX_ATTEMPTS: usize = 2;

/// The planted bugs the node can run with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    /// `vote-unsynced`: a participant votes yes before its record is synced.
    pub vote_unsynced: bool,
    /// `decision-in-memory`: the coordinator never makes its decisions
    /// durable (neither writes them nor hands them to a participant first)
    /// and, restarted, trusts its log.
    pub decision_in_memory: bool,
    /// `read-uncommitted`: a participant's reads include prepared transactions.
    pub read_uncommitted: bool,
    /// `restart-trusts-log`: a restarted coordinator takes its log as every
    /// decision it made, and presumes abort without asking the participants.
    pub restart_trusts_log: bool,
    /// `log-without-checksums`: the coordinator logs a decision as a bare
    /// word, `commit` or `abort`, and reads back every record but `commit`
    /// as abort.
    pub log_without_checksums: bool,
}

impl Bugs {
    /// Whether a restarted coordinator takes its log as complete.
    fn trusts_own_log(&self) -> bool {
        self.restart_trusts_log || self.decision_in_memory
    }

    /// The coordinator's record of its decision on `tx` ([`decision_record`],
    /// or a bare word with `log-without-checksums`).
    fn decision_record(&self, tx: u64, commit: bool) -> Vec<u8> {
        if self.log_without_checksums {
            return verb(commit).as_bytes().to_vec();
        }
        decision_record(tx, commit)
    }

    /// The decision a record of the coordinator's on `tx` holds; `None`
    /// when it fails its checksum ([`read_decision`]). With
    /// `log-without-checksums`, every record but `commit` reads as abort.
    fn read_decision(&self, tx: u64, record: &[u8]) -> Option<bool> {
        if self.log_without_checksums {
            return Some(record == verb(true).as_bytes());
        }
        read_decision(tx, record)
    }
}

/// The byte that spells a decision: `C` commit, `A` abort.
fn decision_tag(commit: bool) -> u8 {
    if commit {
        b'C'
    } else {
        b'A'
    }
}

/// The FNV-1a hash of `bytes`: it differs when any one byte does, so it
/// detects every flipped bit.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The coordinator's record of its decision on `tx`: the decision's tag
/// (`decision_tag`), the transaction (8 bytes, little-endian) and the
/// `checksum` of both (8 bytes, little-endian).
pub fn decision_record(tx: u64, commit: bool) -> Vec<u8> {
    let mut record = vec![decision_tag(commit)];
    record.extend(tx.to_le_bytes());
    record.extend(checksum(&record).to_le_bytes());
    record
}

/// The decision `record` holds, if it is a whole [`decision_record`] of
/// `tx` whose checksum matches; `None` for a record with a flipped bit, or
/// of another transaction, or cut short or grown.
pub fn read_decision(tx: u64, record: &[u8]) -> Option<bool> {
    let (body, sum) = record.split_at_checked(9)?;
    let (&tag, logged) = body.split_first()?;
    let intact = checksum(body).to_le_bytes() == sum && logged == tx.to_le_bytes();
    let commit = [true, false].into_iter().find(|&commit| decision_tag(commit) == tag)?;
    intact.then_some(commit)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Request {
    Prepare {
        tx: u64,
    },
    Decide {
        tx: u64,
        commit: bool,
    },
    Status {
        tx: u64,
    },
    /// A restarted coordinator asks a participant for every decision it applied.
    Decisions,
    /// Several requests on one connection, answered in order.
    Batch(Vec<Request>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Answer {
    /// A participant's vote.
    Vote(bool),
    /// A participant has the decision (or, for an abort, nothing to undo).
    Done,
    /// A commit for a transaction the participant has no prepared record of.
    Unknown,
    /// The decision could not be made durable now: ask again.
    Later,
    /// The coordinator's decision; `None` while it is still deciding.
    Decision(Option<bool>),
    /// A participant's applied decisions, by transaction.
    Decisions(Vec<(u64, bool)>),
    /// The answers to a batch, in order.
    Batch(Vec<Answer>),
}

/// A participant's record of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// Prepared and undecided: in doubt from this instant on (at once for a
    /// record found at start).
    Prepared(Instant),
    /// The decision, applied.
    Decided(bool),
}

#[derive(Default)]
struct State {
    /// Coordinator: decisions, durable (in memory only with `decision-in-memory`).
    decisions: BTreeMap<u64, bool>,
    /// Coordinator: transactions being voted on.
    deciding: BTreeSet<u64>,
    /// Coordinator: decisions not yet acknowledged, by transaction, with the
    /// participants still owed them.
    undelivered: BTreeMap<u64, (bool, BTreeSet<u32>)>,
    /// Coordinator: decisions no participant has applied yet (neither
    /// observed nor answered: a lying disk could lose them).
    unheld: BTreeSet<u64>,
    /// Coordinator: decisions being handed off, which the background
    /// delivery leaves alone meanwhile.
    handing_off: BTreeSet<u64>,
    /// Restarted coordinator: the decisions the participants reported.
    recalled: BTreeMap<u64, bool>,
    /// Restarted coordinator: the participants that have not reported theirs
    /// yet (none, for a first incarnation or one that trusts its log).
    unrecalled: BTreeSet<u32>,
    /// Participant: its records.
    records: BTreeMap<u64, Record>,
}

impl State {
    /// Coordinator: what it knows of `tx` without asking; `None` when a
    /// participant that has not reported may hold a decision.
    fn known(&self, tx: u64) -> Option<Known> {
        if let Some(&commit) = self.decisions.get(&tx) {
            return Some(Known::Learned(Learned::Decided(commit)));
        }
        if self.deciding.contains(&tx) {
            return Some(Known::Learned(Learned::Deciding));
        }
        if let Some(&commit) = self.recalled.get(&tx) {
            return Some(Known::Recalled(commit));
        }
        self.unrecalled.is_empty().then_some(Known::Learned(Learned::Undecided))
    }
}

struct Shared<T> {
    index: u32,
    addrs: Vec<SocketAddr>,
    transport: T,
    disk: Storage,
    observer: Observer<TwoPhaseObservation>,
    timing: Timing,
    bugs: Bugs,
    state: Mutex<State>,
}

/// What the adapter asks the node.
pub enum Command {
    /// Coordinate transaction `tx`: `Ok(true)` committed, `Ok(false)` aborted.
    Commit {
        /// The transaction.
        tx: u64,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<bool, OpError>>,
    },
    /// The transactions committed here (decided on the coordinator, applied on a participant).
    Read {
        /// Where they go.
        reply: oneshot::Sender<Vec<u64>>,
    },
}

/// A running node. Dropping it stops it.
pub struct TwoPhaseNode {
    addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for TwoPhaseNode {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

fn encode<M: Serialize>(message: &M) -> Bytes {
    Bytes::from(postcard::to_allocvec(message).expect("messages always encode"))
}

fn file(coordinator: bool, tx: u64) -> String {
    format!("{}-{tx}", if coordinator { "d" } else { "p" })
}

/// One request and its answer on a fresh connection, within `timeout`.
async fn rpc<T: Transport>(transport: &T, to: SocketAddr, request: Request, timeout: Duration) -> Option<Answer> {
    tokio::time::timeout(timeout, async {
        let (mut tx, mut rx) = transport.connect(to).await.ok()?.split();
        tx.send(encode(&request)).await.ok()?;
        let answer = postcard::from_bytes(&rx.recv().await.ok()?).ok();
        tx.close().await;
        answer
    })
    .await
    .ok()
    .flatten()
}

impl TwoPhaseNode {
    /// Loads the node's records from its disk, binds its address and starts serving.
    pub async fn start<T: Transport>(
        ctx: NodeContext<TwoPhaseObservation, T>,
        timing: Timing,
        bugs: Bugs,
    ) -> Result<TwoPhaseNode, String> {
        let NodeContext { index, incarnation, listen, addrs, transport, storage: disk, observer, .. } = ctx;
        let mut state = State::default();
        let coordinator = index == 0;
        for name in disk.list().await.map_err(|e| format!("listing the disk: {e}"))? {
            let Some((kind, tx)) = name.split_once('-') else { continue };
            let (Ok(tx), Ok(contents)) = (tx.parse::<u64>(), disk.read(&name).await) else { continue };
            match (kind, contents.as_slice(), coordinator) {
                // A record that fails its checksum is lost, as a lying
                // sync loses one: the restarted coordinator asks the
                // participants for the decision.
                ("d", record, true) => {
                    if let Some(commit) = bugs.read_decision(tx, record) {
                        state.decisions.insert(tx, commit);
                    }
                }
                ("p", b"C" | b"A", false) => {
                    state.records.insert(tx, Record::Decided(contents == b"C"));
                }
                ("p", b"P", false) => {
                    observer.observe(TwoPhaseObservation::InDoubt { tx });
                    state.records.insert(tx, Record::Prepared(Instant::now()));
                }
                _ => {}
            }
        }
        let mut listener = transport.listen(listen).await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr();
        if coordinator && incarnation > 0 && !bugs.trusts_own_log() {
            // Its log may lack decisions a lying disk lost: it asks first.
            state.unrecalled = (1..addrs.len() as u32).collect();
        }
        let state = Mutex::new(state);
        let shared = Arc::new(Shared { index, addrs, transport, disk, observer, timing, bugs, state });
        let (commands, mut requests) = mpsc::unbounded_channel();
        let server = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        biased;
                        Some(_) = connections.join_next(), if !connections.is_empty() => {}
                        accepted = listener.accept() => match accepted {
                            Ok(connection) => {
                                connections.spawn(serve(shared.clone(), connection));
                            }
                            Err(_) => return,
                        },
                    }
                }
            })
        };
        let client = {
            let shared = shared.clone();
            tokio::spawn(async move {
                while let Some(command) = requests.recv().await {
                    match command {
                        Command::Commit { tx, reply } => {
                            let _ = reply.send(shared.coordinate(tx).await);
                        }
                        Command::Read { reply } => {
                            let _ = reply.send(shared.committed().await);
                        }
                    }
                }
            })
        };
        // Every tick, one more attempt at everything owed to a node (a
        // decision not yet acknowledged, a transaction in doubt), in one
        // batch, unless `MAX_ATTEMPTS` to it are still under way: a lost
        // packet delays one attempt only.
        let background = tokio::spawn(async move {
            let mut attempts: JoinSet<(u32, Vec<u64>, Option<Answer>)> = JoinSet::new();
            let mut under_way: BTreeMap<u32, usize> = BTreeMap::new();
            let mut next = Instant::now() + shared.timing.tick;
            loop {
                tokio::select! {
                    biased;
                    Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                        let Ok((to, txs, answer)) = done else { continue };
                        *under_way.entry(to).or_default() -= 1;
                        if let Some(Answer::Batch(answers)) = answer {
                            for (tx, answer) in txs.into_iter().zip(answers) {
                                shared.answered(tx, to, answer).await;
                            }
                        }
                    }
                    _ = tokio::time::sleep_until(next) => {
                        next += shared.timing.tick;
                        for (to, owed) in shared.owed().await {
                            let busy = under_way.entry(to).or_default();
                            if *busy >= MAX_ATTEMPTS {
                                continue;
                            }
                            *busy += 1;
                            let (txs, requests): (Vec<u64>, Vec<Request>) = owed.into_iter().unzip();
                            let (me, addr, timeout) = (shared.clone(), shared.addrs[to as usize], shared.timing.rpc_timeout);
                            attempts.spawn(async move { (to, txs, rpc(&me.transport, addr, Request::Batch(requests), timeout).await) });
                        }
                    }
                }
            }
        });
        Ok(TwoPhaseNode { addr, commands, tasks: vec![server, client, background] })
    }

    /// Where the node listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Hands `command` to the node.
    pub fn send(&self, command: Command) -> Result<(), String> {
        self.commands.send(command).map_err(|_| "the node has stopped".to_string())
    }
}

async fn serve<T: Transport>(shared: Arc<Shared<T>>, connection: T::Connection) {
    let (mut tx, mut rx) = connection.split();
    while let Ok(bytes) = rx.recv().await {
        let Ok(request) = postcard::from_bytes::<Request>(&bytes) else {
            tx.reject(APPLICATION_CLOSE_CODES).await;
            return;
        };
        let answer = match request {
            Request::Batch(requests) => {
                let mut answers = Vec::with_capacity(requests.len());
                for request in requests {
                    answers.push(shared.handle(request).await);
                }
                Answer::Batch(answers)
            }
            request => shared.handle(request).await,
        };
        if tx.send(encode(&answer)).await.is_err() {
            return;
        }
    }
}

impl<T: Transport> Shared<T> {
    async fn handle(self: &Arc<Self>, request: Request) -> Answer {
        match request {
            Request::Prepare { tx } => self.prepare(tx).await,
            Request::Decide { tx, commit } => self.apply(tx, commit).await,
            Request::Status { tx } if self.index == 0 => self.status(tx).await,
            Request::Status { .. } => Answer::Decision(None),
            Request::Decisions => self.decisions().await,
            Request::Batch(_) => Answer::Later,
        }
    }

    /// Writes `contents` to `name` and syncs it (unless `sync` is false).
    async fn persist(&self, name: &str, contents: &[u8], sync: bool) -> Result<(), String> {
        self.disk.write(name, contents).await.map_err(|e| e.to_string())?;
        if sync {
            self.disk.sync(name).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Coordinator: runs both phases for `tx`, or answers the decision it
    /// already has, once a participant holds it.
    async fn coordinate(self: &Arc<Self>, tx: u64) -> Result<bool, OpError> {
        let known = {
            let (mut state, learned) = self.learn(tx).await;
            match learned {
                Learned::Decided(commit) => Some(commit),
                Learned::Undecided => {
                    state.deciding.insert(tx);
                    None
                }
                Learned::Deciding => return Err(OpError::Indeterminate(format!("tx {tx} is being decided"))),
                Learned::Unknown => {
                    return Err(OpError::Indeterminate(format!(
                        "restarted, the coordinator cannot learn from every participant whether tx {tx} was decided"
                    )))
                }
            }
        };
        let commit = match known {
            Some(commit) => commit,
            None => {
                let mut votes = JoinSet::new();
                for &to in &self.addrs[1..] {
                    let (me, timeout) = (self.clone(), self.timing.vote_timeout);
                    votes.spawn(async move { rpc(&me.transport, to, Request::Prepare { tx }, timeout).await });
                }
                let mut all_yes = true;
                while let Some(vote) = votes.join_next().await {
                    all_yes &= matches!(vote, Ok(Some(Answer::Vote(true))));
                }
                let mut state = self.state.lock().await;
                state.deciding.remove(&tx);
                self.record(&mut state, tx, all_yes).await.map_err(|why| {
                    OpError::Indeterminate(format!("the decision to {} tx {tx} is not durable: {why}", verb(all_yes)))
                })?;
                all_yes
            }
        };
        self.hand_off(tx, commit).await.map_err(OpError::Indeterminate)?;
        Ok(commit)
    }

    /// Coordinator: the state, locked, and what it knows of `tx`. A
    /// restarted coordinator does not take its log as every decision it
    /// made: until every participant has reported the decisions it applied,
    /// it asks those that have not (without the lock).
    async fn learn(self: &Arc<Self>, tx: u64) -> (MutexGuard<'_, State>, Learned) {
        let state = self.state.lock().await;
        if let Some(known) = state.known(tx) {
            return self.adopt(state, tx, known).await;
        }
        drop(state);
        self.recall().await;
        let state = self.state.lock().await;
        let known = state.known(tx).unwrap_or(Known::Learned(Learned::Unknown));
        self.adopt(state, tx, known).await
    }

    /// Coordinator: records a decision a participant reported, if that is
    /// what was learned.
    async fn adopt<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        tx: u64,
        known: Known,
    ) -> (MutexGuard<'a, State>, Learned) {
        match known {
            Known::Learned(learned) => (state, learned),
            Known::Recalled(commit) => match self.record(&mut state, tx, commit).await {
                Ok(()) => (state, Learned::Decided(commit)),
                Err(_) => (state, Learned::Unknown),
            },
        }
    }

    /// Restarted coordinator: asks every participant that has not reported
    /// its decisions yet.
    async fn recall(self: &Arc<Self>) {
        let unrecalled = self.state.lock().await.unrecalled.clone();
        let mut asked = JoinSet::new();
        for p in unrecalled {
            // No longer than a vote: a participant that does not answer
            // leaves the transaction unknown as fast as it would abort it.
            let (me, to, timeout) = (self.clone(), self.addrs[p as usize], self.timing.vote_timeout);
            asked.spawn(async move { (p, rpc(&me.transport, to, Request::Decisions, timeout).await) });
        }
        while let Some(answer) = asked.join_next().await {
            if let Ok((p, Some(Answer::Decisions(decisions)))) = answer {
                let mut state = self.state.lock().await;
                state.recalled.extend(decisions);
                state.unrecalled.remove(&p);
            }
        }
    }

    /// Coordinator: makes the decision durable here and owes it to every
    /// participant. It is observed once a participant holds it too
    /// ([`Shared::hand_off`], or the background delivery).
    async fn record(&self, state: &mut State, tx: u64, commit: bool) -> Result<(), String> {
        if !self.bugs.decision_in_memory {
            self.persist(&file(true, tx), &self.bugs.decision_record(tx, commit), true).await?;
        }
        state.decisions.insert(tx, commit);
        let participants: BTreeSet<u32> = (1..self.addrs.len() as u32).collect();
        let nobody = participants.is_empty();
        state.undelivered.insert(tx, (commit, participants));
        state.unheld.insert(tx);
        if nobody || self.bugs.decision_in_memory {
            self.held(state, tx);
        }
        Ok(())
    }

    /// Coordinator: hands the decision on `tx` to one participant (its
    /// witness: the first to apply it), so that a lying disk cannot lose it
    /// alone, before it is answered. Participants are asked in order, the
    /// next one each [`Timing::tick`] without an answer; the background
    /// delivery brings it to the rest.
    async fn hand_off(self: &Arc<Self>, tx: u64, commit: bool) -> Result<(), String> {
        self.state.lock().await.handing_off.insert(tx);
        let handed = self.witness(tx, commit).await;
        self.state.lock().await.handing_off.remove(&tx);
        handed
    }

    /// Coordinator: the attempts of [`Shared::hand_off`].
    async fn witness(self: &Arc<Self>, tx: u64, commit: bool) -> Result<(), String> {
        let mut attempts = JoinSet::new();
        let mut waiting = (1..self.addrs.len() as u32).peekable();
        let mut next = Instant::now();
        while self.state.lock().await.unheld.contains(&tx) {
            if waiting.peek().is_none() && attempts.is_empty() {
                return Err(format!("no participant applied the decision to {} tx {tx} yet", verb(commit)));
            }
            tokio::select! {
                biased;
                Some(done) = attempts.join_next(), if !attempts.is_empty() => {
                    if let Ok((p, Some(answer))) = done {
                        self.delivered(&mut *self.state.lock().await, tx, p, &answer);
                    }
                }
                _ = tokio::time::sleep_until(next), if waiting.peek().is_some() => {
                    let p = waiting.next().expect("peeked");
                    let (me, request) = (self.clone(), Request::Decide { tx, commit });
                    attempts.spawn(async move {
                        (p, rpc(&me.transport, me.addrs[p as usize], request, me.timing.rpc_timeout).await)
                    });
                    next += self.timing.tick;
                }
            }
        }
        Ok(())
    }

    /// Coordinator: participant `p` answered the delivery of the decision on `tx`.
    fn delivered(&self, state: &mut State, tx: u64, p: u32, answer: &Answer) {
        if !matches!(answer, Answer::Done | Answer::Unknown) {
            return;
        }
        if let Some((_, to)) = state.undelivered.get_mut(&tx) {
            to.remove(&p);
            if to.is_empty() {
                state.undelivered.remove(&tx);
            }
        }
        if *answer == Answer::Done {
            self.held(state, tx);
        }
    }

    /// Coordinator: a participant holds the decision on `tx`: it is made.
    fn held(&self, state: &mut State, tx: u64) {
        if state.unheld.remove(&tx) {
            let commit = state.decisions[&tx];
            self.observer.observe(TwoPhaseObservation::Decided { tx, commit });
        }
    }

    /// Coordinator: answers a participant's inquiry; presumes abort when
    /// nothing was decided and nothing is being decided.
    async fn status(self: &Arc<Self>, tx: u64) -> Answer {
        let (mut state, learned) = self.learn(tx).await;
        match learned {
            Learned::Decided(commit) => Answer::Decision(Some(commit)),
            Learned::Deciding | Learned::Unknown => Answer::Decision(None),
            Learned::Undecided => match self.record(&mut state, tx, false).await {
                Ok(()) => Answer::Decision(Some(false)),
                Err(_) => Answer::Decision(None),
            },
        }
    }

    /// Participant: every decision it applied, for a restarted coordinator.
    async fn decisions(&self) -> Answer {
        let state = self.state.lock().await;
        let decided = state.records.iter().filter_map(|(&tx, record)| match record {
            Record::Decided(commit) => Some((tx, *commit)),
            Record::Prepared(_) => None,
        });
        Answer::Decisions(decided.collect())
    }

    /// What the node owes now, by node: every decision a participant has
    /// not acknowledged (coordinator), a status inquiry for every
    /// transaction in doubt (participant).
    async fn owed(&self) -> BTreeMap<u32, Vec<(u64, Request)>> {
        let state = self.state.lock().await;
        let mut owed: BTreeMap<u32, Vec<(u64, Request)>> = BTreeMap::new();
        if self.index == 0 {
            for (&tx, (commit, to)) in state.undelivered.iter().filter(|(tx, _)| !state.handing_off.contains(tx)) {
                for &p in to {
                    owed.entry(p).or_default().push((tx, Request::Decide { tx, commit: *commit }));
                }
            }
        } else {
            let now = Instant::now();
            for (&tx, record) in &state.records {
                if matches!(record, Record::Prepared(doubt) if now >= *doubt) {
                    owed.entry(0).or_default().push((tx, Request::Status { tx }));
                }
            }
        }
        owed
    }

    /// `node` answered a delivery or an inquiry about `tx`.
    async fn answered(&self, tx: u64, node: u32, answer: Answer) {
        match answer {
            Answer::Done | Answer::Unknown => {
                let mut state = self.state.lock().await;
                self.delivered(&mut state, tx, node, &answer);
            }
            Answer::Decision(Some(commit)) => {
                self.apply(tx, commit).await;
            }
            Answer::Vote(_) | Answer::Later | Answer::Decision(None) | Answer::Decisions(_) | Answer::Batch(_) => {}
        }
    }

    /// Participant: votes on `tx`.
    async fn prepare(&self, tx: u64) -> Answer {
        if self.index == 0 {
            return Answer::Vote(false);
        }
        let mut state = self.state.lock().await;
        match state.records.get(&tx) {
            Some(Record::Decided(commit)) => Answer::Vote(*commit),
            Some(Record::Prepared(_)) => Answer::Vote(true),
            None => match self.persist(&file(false, tx), b"P", !self.bugs.vote_unsynced).await {
                Ok(()) => {
                    state.records.insert(tx, Record::Prepared(Instant::now() + self.timing.in_doubt_after));
                    Answer::Vote(true)
                }
                Err(_) => Answer::Vote(false),
            },
        }
    }

    /// Participant: applies the decision on `tx` durably.
    async fn apply(&self, tx: u64, commit: bool) -> Answer {
        if self.index == 0 {
            return Answer::Later;
        }
        let mut state = self.state.lock().await;
        match state.records.get(&tx) {
            Some(Record::Decided(_)) => Answer::Done,
            None if commit => Answer::Unknown,
            // An abort is recorded even unprepared: a restarted coordinator
            // that lost it learns it here, and a late prepare is voted down.
            Some(Record::Prepared(_)) | None => {
                match self.persist(&file(false, tx), if commit { b"C" } else { b"A" }, true).await {
                    Ok(()) => {
                        state.records.insert(tx, Record::Decided(commit));
                        self.observer.observe(TwoPhaseObservation::Applied { tx, commit });
                        Answer::Done
                    }
                    Err(_) => Answer::Later,
                }
            }
        }
    }

    /// The transactions committed here.
    async fn committed(&self) -> Vec<u64> {
        let state = self.state.lock().await;
        if self.index == 0 {
            state.decisions.iter().filter(|(_, &c)| c).map(|(&tx, _)| tx).collect()
        } else {
            let prepared = |r: &Record| self.bugs.read_uncommitted && matches!(r, Record::Prepared(_));
            state
                .records
                .iter()
                .filter(|(_, r)| **r == Record::Decided(true) || prepared(r))
                .map(|(&tx, _)| tx)
                .collect()
        }
    }
}

/// What the coordinator's state says of a transaction.
enum Known {
    /// What it knows.
    Learned(Learned),
    /// A participant reported it decided so; not recorded here yet.
    Recalled(bool),
}

/// What the coordinator knows of a transaction.
enum Learned {
    /// It was decided so (and the decision is recorded here).
    Decided(bool),
    /// It is being voted on.
    Deciding,
    /// Nothing was decided.
    Undecided,
    /// A participant that may hold a decision has not reported.
    Unknown,
}

fn verb(commit: bool) -> &'static str {
    if commit {
        "commit"
    } else {
        "abort"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_record_reads_back_only_whole_and_in_place() {
        for commit in [true, false] {
            let record = decision_record(7, commit);
            assert_eq!(read_decision(7, &record), Some(commit));
            assert_eq!(read_decision(8, &record), None, "the record of another transaction");
            for bit in 0..record.len() * 8 {
                let mut flipped = record.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(read_decision(7, &flipped), None, "bit {bit} flipped");
            }
            let strayed = [vec![0; tandem::storage::SECTOR], record.clone()].concat();
            assert_eq!(read_decision(7, &strayed), None, "a sector off");
            assert_eq!(read_decision(7, &record[..record.len() - 1]), None, "cut short");
        }
    }

    #[test]
    fn without_checksums_a_flipped_commit_reads_as_abort() {
        let unchecked = Bugs { log_without_checksums: true, ..Bugs::default() };
        let record = unchecked.decision_record(7, true);
        assert_eq!(record, b"commit");
        assert_eq!(unchecked.read_decision(7, &record), Some(true));
        assert_eq!(unchecked.read_decision(7, &unchecked.decision_record(7, false)), Some(false));
        for bit in 0..record.len() * 8 {
            let mut flipped = record.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(unchecked.read_decision(7, &flipped), Some(false), "bit {bit} flipped");
        }
    }
}
