//! The node: coordinator (index 0) and participants (every other index) of
//! a two-phase commit, written against [`tandem::transport::Transport`] and
//! [`tandem::storage::Storage`] only.
//!
//! Every exchange is one request (or one batch of them) and its answer on
//! a fresh connection ([`rpc`]), bounded by a timeout, so a crashed or
//! cut-off peer costs a timeout and nothing else. Durable state is one small file per
//! transaction: `d-TX` on the coordinator (its decision), `p-TX` on a
//! participant (`P` prepared, then `C` or `A` once the decision is applied).
//!
//! - The coordinator sends `Prepare(tx)` to every participant and waits for
//!   every vote within [`Timing::vote_timeout`]. All yes: it writes and
//!   syncs its commit decision, hands it to one participant, the first in
//!   order that applies it (so the decision is durable on two disks),
//!   answers the client, and a background task delivers the decision from
//!   the next [`Timing::tick`] on, every tick (one batch per participant, at
//!   most two under way), until each participant acknowledges it. Any no
//!   or silence: the same with abort.
//! - A participant syncs its prepared record before it votes yes, applies a
//!   decision durably before it acknowledges it (an abort too, with no
//!   prepared record), and asks the coordinator `Status(tx)` every tick
//!   about every prepared transaction older than [`Timing::in_doubt_after`]
//!   (at once after a restart). The coordinator answers from its log; a
//!   transaction it has no decision for and is not deciding is presumed
//!   aborted (durably, before the answer).
//! - A restarted coordinator does not trust its log to hold every decision
//!   it made (a disk whose sync lied loses them): before it presumes abort,
//!   or runs a transaction it has no decision for, it asks every participant
//!   (`Status(tx)`, which a participant answers from its records). One that
//!   applied a decision gives it back; only when every participant answered
//!   and none holds one is nothing decided.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tandem::prelude::*;
use tandem::transport::APPLICATION_CLOSE_CODES;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::{TwoPhase, TwoPhaseObservation};

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
}

impl Bugs {
    /// Whether a restarted coordinator takes its log as complete.
    fn trusts_own_log(&self) -> bool {
        self.restart_trusts_log || self.decision_in_memory
    }
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
    /// The coordinator's decision; `None` while it is still deciding. From a
    /// participant: the decision it applied, `None` when it has none.
    Decision(Option<bool>),
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
    /// Participant: its records.
    records: BTreeMap<u64, Record>,
}

struct Shared<T> {
    index: u32,
    /// Whether this is a restarted incarnation, whose log may lack decisions.
    restarted: bool,
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
        ctx: NodeContext<TwoPhase, T>,
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
                ("d", b"C" | b"A", true) => {
                    state.decisions.insert(tx, contents == b"C");
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
        let restarted = incarnation > 0;
        let state = Mutex::new(state);
        let shared = Arc::new(Shared { index, restarted, addrs, transport, disk, observer, timing, bugs, state });
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
            Request::Status { tx } => self.record(tx).await,
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

    /// Coordinator: runs both phases for `tx`.
    async fn coordinate(self: &Arc<Self>, tx: u64) -> Result<bool, OpError> {
        {
            let mut state = self.state.lock().await;
            if let Some(&commit) = state.decisions.get(&tx) {
                return Ok(commit);
            }
            match self.recall(tx).await {
                Recalled::Nothing => {}
                Recalled::Decided(commit) => {
                    return self
                        .decide(&mut state, tx, commit)
                        .await
                        .map(|()| commit)
                        .map_err(|why| OpError::Indeterminate(format!("tx {tx} was decided before a restart: {why}")));
                }
                Recalled::Unknown => {
                    return Err(OpError::Indeterminate(format!(
                        "restarted, the coordinator cannot learn from every participant whether tx {tx} was decided"
                    )))
                }
            }
            state.deciding.insert(tx);
        }
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
        self.decide(&mut state, tx, all_yes).await.map_err(|why| {
            OpError::Indeterminate(format!("the decision to {} tx {tx} is not durable: {why}", verb(all_yes)))
        })?;
        Ok(all_yes)
    }

    /// Coordinator: makes the decision durable, owes it to every
    /// participant, and hands it to one (its witness: the first, in order,
    /// that applies it): only then is it observed and answered, so that a
    /// lying disk cannot lose it alone. The background task delivers it to
    /// the rest.
    async fn decide(&self, state: &mut State, tx: u64, commit: bool) -> Result<(), String> {
        if !self.bugs.decision_in_memory {
            self.persist(&file(true, tx), if commit { b"C" } else { b"A" }, true).await?;
        }
        state.decisions.insert(tx, commit);
        let participants: BTreeSet<u32> = (1..self.addrs.len() as u32).collect();
        state.undelivered.insert(tx, (commit, participants.clone()));
        state.unheld.insert(tx);
        if participants.is_empty() || self.bugs.decision_in_memory {
            self.held(state, tx);
            return Ok(());
        }
        for p in participants {
            let request = Request::Decide { tx, commit };
            let Some(answer) = rpc(&self.transport, self.addrs[p as usize], request, self.timing.rpc_timeout).await
            else {
                continue;
            };
            self.delivered(state, tx, p, &answer);
            if !state.unheld.contains(&tx) {
                return Ok(());
            }
        }
        Err(format!("no participant applied the decision to {} tx {tx} yet", verb(commit)))
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

    /// Coordinator: what the participants hold of `tx`, which this
    /// incarnation has no decision for. A first incarnation, or one that
    /// trusts its log, knows every decision it made: nothing.
    async fn recall(self: &Arc<Self>, tx: u64) -> Recalled {
        if !self.restarted || self.bugs.trusts_own_log() {
            return Recalled::Nothing;
        }
        let mut asked = JoinSet::new();
        for &to in &self.addrs[1..] {
            let (me, timeout) = (self.clone(), self.timing.rpc_timeout);
            asked.spawn(async move { rpc(&me.transport, to, Request::Status { tx }, timeout).await });
        }
        let mut recalled = Recalled::Nothing;
        while let Some(answer) = asked.join_next().await {
            match answer {
                Ok(Some(Answer::Decision(Some(commit)))) => return Recalled::Decided(commit),
                Ok(Some(Answer::Decision(None))) => {}
                _ => recalled = Recalled::Unknown,
            }
        }
        recalled
    }

    /// Coordinator: answers a participant's inquiry; presumes abort when it
    /// has no decision and is not deciding.
    async fn status(self: &Arc<Self>, tx: u64) -> Answer {
        if self.index != 0 {
            return Answer::Decision(None);
        }
        let mut state = self.state.lock().await;
        if let Some(&commit) = state.decisions.get(&tx) {
            return Answer::Decision(Some(commit));
        }
        if state.deciding.contains(&tx) {
            return Answer::Decision(None);
        }
        let commit = match self.recall(tx).await {
            Recalled::Nothing => false,
            Recalled::Decided(commit) => commit,
            Recalled::Unknown => return Answer::Decision(None),
        };
        match self.decide(&mut state, tx, commit).await {
            Ok(()) => Answer::Decision(Some(commit)),
            Err(_) => Answer::Decision(None),
        }
    }

    /// Participant: the decision on `tx` it applied, for a coordinator that
    /// restarted.
    async fn record(&self, tx: u64) -> Answer {
        match self.state.lock().await.records.get(&tx) {
            Some(Record::Decided(commit)) => Answer::Decision(Some(*commit)),
            Some(Record::Prepared(_)) | None => Answer::Decision(None),
        }
    }

    /// What the node owes now, by node: every decision a participant has
    /// not acknowledged (coordinator), a status inquiry for every
    /// transaction in doubt (participant).
    async fn owed(&self) -> BTreeMap<u32, Vec<(u64, Request)>> {
        let state = self.state.lock().await;
        let mut owed: BTreeMap<u32, Vec<(u64, Request)>> = BTreeMap::new();
        if self.index == 0 {
            for (&tx, (commit, to)) in &state.undelivered {
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
            Answer::Vote(_) | Answer::Later | Answer::Decision(None) | Answer::Batch(_) => {}
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

/// What a restarted coordinator learned of a transaction from the participants.
enum Recalled {
    /// Nothing was decided (or this incarnation knows all it decided).
    Nothing,
    /// A participant applied this decision.
    Decided(bool),
    /// Some participant did not answer: a decision may be out there.
    Unknown,
}

fn verb(commit: bool) -> &'static str {
    if commit {
        "commit"
    } else {
        "abort"
    }
}
