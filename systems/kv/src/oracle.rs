//! What the harness derives from a run's history, and the properties it
//! judges the key-value store by. Everything here reads only what the
//! harness observed: invocations and completions of operations, what reads
//! returned, and the store changes the adapter observed
//! ([`KvObservation::Stored`]); never what a node claims it owes.
//!
//! # Writes and their order
//!
//! Every put and delete is a *write*, named by its operation id. The harness
//! identifies the write a read (or an observation) saw by its value, so
//! workloads write unique values; a value written by two puts identifies
//! neither, and the monotonic-read check then says nothing about it.
//!
//! A node *knows* a write once it was seen holding it (an observation), a
//! read of it returned, or its own put or delete of it completed: all in
//! the node's current incarnation (a crash forgets everything). A write
//! `A` *precedes* a write `B` of the same key when `B`'s node, when `B` was
//! invoked, knew `A` or a write that `A` precedes. This is the happened-
//! before order the harness can see: `B` was issued by someone who had
//! seen `A`. A correct last-writer-wins store orders such writes the same
//! way (the Lamport clock moves past everything a node has seen), so a node
//! never goes back from `B` to `A`.
//!
//! Why not plain real-time order (`A` completed before `B` was invoked)?
//! Two nodes cut off from each other cannot learn of each other's writes,
//! and no store without a shared clock can order their writes by wall time:
//! a correct Lamport store would fail. With a synchronised clock in
//! `NodeContext` (hybrid logical clocks), the order could be tightened to
//! real time.
//!
//! # Properties
//!
//! - **S1** (always) *reads return written values*: a read, and every value
//!   a node is seen holding, is a value some put of that key wrote (invoked
//!   before the read completed), or nothing.
//! - **S2** (always) *monotonic reads*: within one incarnation, a node never
//!   reads (or is seen holding) a write that precedes one it already knows;
//!   a read of nothing is fine only when some delete not preceding what it
//!   knows can explain it. This covers read-your-writes: a node's own
//!   completed put is known.
//! - **L1** (eventually) *convergence*: at the end of the settle tail every
//!   live node holds the same keys and values.
//! - **G1** (sometimes) a conflict between concurrent writes was resolved:
//!   two puts of a key on different nodes, neither preceding the other, were
//!   both held somewhere, and then every live node held one of them.
//! - **G2** (sometimes) anti-entropy repaired a lasting divergence: a node
//!   took the value another node held, after they had differed for at least
//!   [`REPAIR_LAG`] (longer than an eager push takes on a healthy link).
//! - **G3** (sometimes) a restarted node caught up: a node in a later
//!   incarnation held a value written before it restarted.
//!
//! The goals G4-G7 name the preconditions of the deep planted bugs, in the
//! order they must happen, so that exploration can aim at them. A node is
//! *cut off* when the steps partitioned every other node's link to it (it
//! can hear no one); two nodes are *apart* when their links are partitioned
//! both ways.
//!
//! - **G4** (sometimes) a node restarted while cut off.
//! - **G5** (sometimes) a node that restarted while cut off wrote, still cut
//!   off, a key whose value from its last life another node holds
//!   (`restart-reuses-version`).
//! - **G6** (sometimes) a key every node had once held deleted was deleted
//!   again while a live node that held a value of it was apart from the
//!   deleter and a third node was not.
//! - **G7** (sometimes) after such a delete, the two were reconnected at
//!   least [`TOMBSTONE_GRACE`] later (`purge-tombstones`).
//!
//! Goals are folded with the state, event by event, at a cost independent
//! of the history's length.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tandem::{Action, Event, EventKind, Failure, Faults, History, LinkState, NodeIdx, OpResult, Property};

pub use crate::node::TOMBSTONE_GRACE;
use crate::{Kv, KvCondition, KvObservation, KvOp, KvOutput};

/// How long two nodes must differ on a key for the repair to count for G2.
pub const REPAIR_LAG: Duration = Duration::from_secs(1);

/// A write's id: the id of the put or delete operation in the history.
pub type WriteId = u64;

/// A put or delete as the harness saw it invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The node it was invoked on.
    pub node: NodeIdx,
    /// That node's incarnation.
    pub incarnation: u64,
    /// The value; `None` for a delete.
    pub value: Option<String>,
    /// When it was invoked, in microseconds.
    pub invoked_us: u64,
    /// Every write of the key that precedes it.
    pub preds: BTreeSet<WriteId>,
}

impl Write {
    fn describe(&self, id: WriteId) -> String {
        match &self.value {
            Some(value) => format!("put #{id} {value:?} on node {}", self.node),
            None => format!("delete #{id} on node {}", self.node),
        }
    }
}

/// What one node knows of one key in its current incarnation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Knowledge {
    /// Writes it knows.
    floor: BTreeSet<WriteId>,
    /// Writes that precede one it knows: it must never go back to them.
    older: BTreeSet<WriteId>,
}

impl Knowledge {
    fn is_empty(&self) -> bool {
        self.floor.is_empty() && self.older.is_empty()
    }
}

/// A value a node was seen holding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    /// `None`: deleted.
    value: Option<String>,
    /// Since when, in microseconds.
    since_us: u64,
}

/// One node as the harness saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NodeView {
    alive: bool,
    incarnation: u64,
    started_us: u64,
    held: BTreeMap<String, Held>,
    known: BTreeMap<String, Knowledge>,
    /// It started this incarnation while cut off (G4).
    restarted_cut_off: bool,
    /// Changes a starting node reported before the harness recorded its
    /// start (possible on a multi-threaded runtime): they belong to the
    /// incarnation that is starting.
    early: Vec<(String, Option<String>)>,
}

impl NodeView {
    fn value(&self, key: &str) -> Option<&str> {
        self.held.get(key)?.value.as_deref()
    }

    fn map(&self) -> BTreeMap<String, String> {
        self.held.iter().filter_map(|(k, h)| Some((k.clone(), h.value.clone()?))).collect()
    }
}

/// A read waiting for its completion, with what its node knew when it began.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingRead {
    node: NodeIdx,
    incarnation: u64,
    key: String,
    knowledge: Knowledge,
}

/// The coverage goals reached so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Goals {
    /// G1: a conflict between concurrent writes was resolved.
    pub conflict_resolved: bool,
    /// G2: anti-entropy repaired a lasting divergence.
    pub divergence_repaired: bool,
    /// G3: a restarted node caught up.
    pub restart_caught_up: bool,
    /// G4: a node restarted while cut off.
    pub restarted_cut_off: bool,
    /// G5: a node restarted while cut off wrote, still cut off, a key whose
    /// value from its last life another node holds.
    pub rewrote_after_cut_off_restart: bool,
    /// G6: a key every node had once held deleted was deleted again while
    /// a live node holding a value of it was apart from the deleter and a
    /// third node was not.
    pub deleted_apart: bool,
    /// G7: the two were reconnected at least [`TOMBSTONE_GRACE`] after
    /// the delete.
    pub rejoined_after_delete: bool,
}

/// A delete made while a node holding the key was apart from the deleter,
/// waiting for the two to reconnect (G7).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApartDelete {
    deleter: NodeIdx,
    holder: NodeIdx,
    at_us: u64,
}

/// The first violation of a safety property: the index of the event that
/// shows it, and what it shows.
pub type Found = Option<(usize, String)>;

/// What the harness derives from a kv run's history, event by event
/// ([`Oracle::fold`](tandem::system::Oracle::fold)): every node's observed
/// store, the writes and their order, the first violation of each safety
/// property, and the coverage goals reached.
#[derive(Debug, Clone, Default)]
pub struct KvState {
    events: usize,
    nodes: Vec<NodeView>,
    writes: BTreeMap<WriteId, Write>,
    by_value: BTreeMap<(String, String), Vec<WriteId>>,
    deletes: BTreeMap<String, Vec<WriteId>>,
    held_ever: BTreeMap<String, BTreeSet<WriteId>>,
    reads: BTreeMap<u64, PendingRead>,
    /// By node: the keys it wrote, with the incarnation and the value
    /// (`None`: a delete) of its last write of each.
    written: BTreeMap<NodeIdx, BTreeMap<String, (u64, Option<String>)>>,
    /// Deletes made apart from a holder, until the two reconnect (G7).
    apart_deletes: Vec<ApartDelete>,
    /// By key: the nodes seen holding a tombstone of it (G6).
    tombstoned: BTreeMap<String, BTreeSet<NodeIdx>>,
    /// The first S1 violation.
    pub s1: Found,
    /// The first S2 violation.
    pub s2: Found,
    /// The coverage goals reached.
    pub goals: Goals,
}

impl KvState {
    /// Every write invoked so far, by id.
    pub fn writes(&self) -> &BTreeMap<WriteId, Write> {
        &self.writes
    }

    /// Whether `a` precedes `b` (both writes of the same key).
    pub fn precedes(&self, a: WriteId, b: WriteId) -> bool {
        self.writes.get(&b).is_some_and(|w| w.preds.contains(&a))
    }

    /// The live keys and values `node` was last seen holding (its current or
    /// last incarnation); empty for a node never started.
    pub fn map(&self, node: NodeIdx) -> BTreeMap<String, String> {
        self.nodes.get(node as usize).map(NodeView::map).unwrap_or_default()
    }

    /// The value of `key` at `node` as last seen (`None`: absent or deleted).
    pub fn value(&self, node: NodeIdx, key: &str) -> Option<&str> {
        self.nodes.get(node as usize)?.value(key)
    }

    fn view(&mut self, node: NodeIdx) -> &mut NodeView {
        let i = node as usize;
        if self.nodes.len() <= i {
            self.nodes.resize_with(i + 1, NodeView::default);
        }
        &mut self.nodes[i]
    }

    /// The put that wrote `value` to `key`, when exactly one did.
    fn put_of(&self, key: &str, value: &str) -> Option<WriteId> {
        match self.by_value.get(&(key.to_string(), value.to_string()))?.as_slice() {
            [id] => Some(*id),
            _ => None,
        }
    }

    fn describe(&self, id: WriteId) -> String {
        self.writes.get(&id).map_or_else(|| format!("write #{id}"), |w| w.describe(id))
    }

    /// Updates the state with the next event of the history, with `faults`
    /// the faults in force just after it (partitions are all that matter).
    pub fn fold(&mut self, event: &Event<Kv>, faults: &Faults) {
        let index = self.events;
        self.events += 1;
        let t = event.t_us;
        let links = faults.links();
        if let EventKind::Step { action: Action::Link { .. }, .. } | EventKind::Settle = &event.event {
            return self.links_changed(t, links);
        }
        let Some(node) = event.node else { return };
        match &event.event {
            EventKind::Started { incarnation, .. } => {
                let early = std::mem::take(&mut self.view(node).early);
                let restarted_cut_off = *incarnation > 0 && self.cut_off(links, node);
                self.goals.restarted_cut_off |= restarted_cut_off;
                *self.view(node) = NodeView {
                    alive: true,
                    incarnation: *incarnation,
                    started_us: t,
                    restarted_cut_off,
                    ..NodeView::default()
                };
                for (key, value) in early {
                    self.observed(index, node, &key, &value, t);
                }
            }
            EventKind::Observe(KvObservation::Stored { key, value, .. }) if !self.view(node).alive => {
                self.view(node).early.push((key.clone(), value.clone()));
            }
            EventKind::Crashed => {
                self.view(node).alive = false;
                self.apart_deletes.retain(|d| d.deleter != node && d.holder != node);
            }
            EventKind::Invoke { id, op, .. } => self.invoked(node, *id, op, t, links),
            EventKind::Complete { id, result } => self.completed(index, node, *id, result),
            EventKind::Observe(KvObservation::Stored { key, value, .. }) => self.observed(index, node, key, value, t),
            _ => {}
        }
    }

    fn invoked(&mut self, node: NodeIdx, id: u64, op: &KvOp, t: u64, links: &LinkState) {
        let view = self.view(node);
        let incarnation = view.incarnation;
        let (key, value) = match op {
            KvOp::Put { key, value, .. } => (key, Some(value.clone())),
            KvOp::Delete { key, .. } => (key, None),
            KvOp::Get { key, .. } => {
                let knowledge = view.known.get(key).cloned().unwrap_or_default();
                self.reads.insert(id, PendingRead { node, incarnation, key: key.clone(), knowledge });
                return;
            }
        };
        let preds = view.known.get(key).map(|k| k.floor.union(&k.older).copied().collect()).unwrap_or_default();
        self.goal_deep_write(node, key, &value, t, links);
        match &value {
            Some(v) => self.by_value.entry((key.clone(), v.clone())).or_default().push(id),
            None => self.deletes.entry(key.clone()).or_default().push(id),
        }
        self.writes.insert(id, Write { key: key.clone(), node, incarnation, value, invoked_us: t, preds });
    }

    fn completed(&mut self, index: usize, node: NodeIdx, id: u64, result: &OpResult<KvOutput>) {
        let current = self.view(node).incarnation;
        if let Some(read) = self.reads.remove(&id) {
            if let OpResult::Ok(KvOutput::Read { value }) = result {
                let what = format!("node {node} read {} = {}", read.key, show(value.as_deref()));
                self.judge(index, &what, &read.key, value.as_deref(), &read.knowledge);
                if read.incarnation == current {
                    // What the node knew when the read began: a read of
                    // nothing says nothing about writes learnt since.
                    self.learn(node, &read.key, value.as_deref(), &read.knowledge, true);
                }
            }
            return;
        }
        let Some(write) = self.writes.get(&id) else { return };
        if matches!(result, OpResult::Ok(_)) && write.incarnation == current {
            let key = write.key.clone();
            self.know(node, &key, id);
        }
    }

    fn observed(&mut self, index: usize, node: NodeIdx, key: &str, value: &Option<String>, t: u64) {
        let knowledge = self.view(node).known.get(key).cloned().unwrap_or_default();
        let what = format!("node {node} was seen holding {key} = {}", show(value.as_deref()));
        self.judge(index, &what, key, value.as_deref(), &knowledge);
        self.learn(node, key, value.as_deref(), &knowledge, false);
        if value.is_none() {
            self.tombstoned.entry(key.to_string()).or_default().insert(node);
        }
        let id = value.as_deref().and_then(|v| self.put_of(key, v));
        if let Some(id) = id {
            self.held_ever.entry(key.to_string()).or_default().insert(id);
        }
        let view = &self.nodes[node as usize];
        let previous = view.held.get(key).map_or((None, view.started_us), |h| (h.value.clone(), h.since_us));
        let view = self.view(node);
        view.held.insert(key.to_string(), Held { value: value.clone(), since_us: t });
        if previous.0 != *value {
            self.goal_repair(node, key, value.as_deref(), previous.1, t);
        }
        if let Some(id) = id {
            self.goal_conflict(key, value.as_deref(), id);
            let view = &self.nodes[node as usize];
            if view.incarnation > 0 && self.writes[&id].invoked_us < view.started_us {
                self.goals.restart_caught_up = true;
            }
        }
    }

    /// S1 and S2 for a value `what` describes, read or held at `key` by a
    /// node that knew `knowledge`.
    fn judge(&mut self, index: usize, what: &str, key: &str, value: Option<&str>, knowledge: &Knowledge) {
        match value {
            Some(v) => {
                if !self.by_value.contains_key(&(key.to_string(), v.to_string())) {
                    record(&mut self.s1, index, format!("{what}, which no put of {key} wrote"));
                    return;
                }
                let Some(id) = self.put_of(key, v) else { return };
                if knowledge.older.contains(&id) {
                    let newer = knowledge.floor.iter().find(|&&w| self.precedes(id, w)).copied();
                    let newer = newer.map_or_else(|| "a later write".to_string(), |w| self.describe(w));
                    let detail = format!("{what} ({}) after it knew {newer}, which follows it", self.describe(id));
                    record(&mut self.s2, index, detail);
                }
            }
            None => {
                if knowledge.is_empty() {
                    return;
                }
                let deletes = self.deletes.get(key).map(Vec::as_slice).unwrap_or_default();
                if !deletes.iter().any(|d| !knowledge.older.contains(d)) {
                    let known =
                        knowledge.floor.iter().next_back().map_or_else(|| "a write".to_string(), |&w| self.describe(w));
                    let detail = format!("{what} after it knew {known}, and no delete can explain it");
                    record(&mut self.s2, index, detail);
                }
            }
        }
    }

    /// `node`, which knew `knowledge`, now knows the write it was seen with
    /// for `key`, when that write is identified: the one put of `value`; for
    /// nothing, the one delete that could explain it. A read of nothing by a
    /// node that knew no write of the key (`maybe_never_written`) may just
    /// mean the key never reached it, and identifies nothing; a store change
    /// to nothing is always a delete.
    fn learn(
        &mut self,
        node: NodeIdx,
        key: &str,
        value: Option<&str>,
        knowledge: &Knowledge,
        maybe_never_written: bool,
    ) {
        let id = match value {
            Some(v) => self.put_of(key, v),
            None if maybe_never_written && knowledge.is_empty() => None,
            None => {
                let deletes = self.deletes.get(key).map(Vec::as_slice).unwrap_or_default();
                match deletes.iter().filter(|d| !knowledge.older.contains(d)).collect::<Vec<_>>()[..] {
                    [&id] => Some(id),
                    _ => None,
                }
            }
        };
        if let Some(id) = id {
            self.know(node, key, id);
        }
    }

    fn know(&mut self, node: NodeIdx, key: &str, id: WriteId) {
        let preds = self.writes.get(&id).map(|w| w.preds.clone()).unwrap_or_default();
        let knowledge = self.view(node).known.entry(key.to_string()).or_default();
        knowledge.floor.insert(id);
        knowledge.older.extend(preds);
    }

    fn goal_repair(&mut self, node: NodeIdx, key: &str, value: Option<&str>, differed_since: u64, t: u64) {
        if self.goals.divergence_repaired || value.is_none() {
            return;
        }
        let lag = REPAIR_LAG.as_micros() as u64;
        let repaired = self.nodes.iter().enumerate().any(|(m, view)| {
            m != node as usize
                && view.alive
                && view.held.get(key).is_some_and(|h| {
                    // They differed from when both held what they held until now.
                    h.value.as_deref() == value && t.saturating_sub(h.since_us.max(differed_since)) >= lag
                })
        });
        self.goals.divergence_repaired |= repaired;
    }

    /// Whether `node` can hear no other node (and there is another node).
    fn cut_off(&self, links: &LinkState, node: NodeIdx) -> bool {
        let others = (0..self.nodes.len() as NodeIdx).filter(|&m| m != node);
        let mut others = others.peekable();
        others.peek().is_some() && others.all(|m| links.link(m, node).partitioned)
    }

    /// G5, G6: a write of `key` by `node` at `t` (`value` `None`: a delete),
    /// with the links as they are then.
    fn goal_deep_write(&mut self, node: NodeIdx, key: &str, value: &Option<String>, t: u64, links: &LinkState) {
        let view = &self.nodes[node as usize];
        let incarnation = view.incarnation;
        let earlier = self.written.get(&node).and_then(|w| w.get(key)).filter(|(i, _)| *i < incarnation);
        let held_elsewhere = |last: &Option<String>| {
            self.nodes.iter().enumerate().any(|(other, view)| {
                other != node as usize && view.alive && last.is_some() && view.value(key) == last.as_deref()
            })
        };
        let rewrote = earlier.is_some_and(|(_, last)| held_elsewhere(last));
        if view.alive && view.restarted_cut_off && rewrote && self.cut_off(links, node) {
            self.goals.rewrote_after_cut_off_restart = true;
        }
        self.written.entry(node).or_default().insert(key.to_string(), (incarnation, value.clone()));
        let deleted_everywhere = self.tombstoned.get(key).is_some_and(|nodes| nodes.len() == self.nodes.len());
        if value.is_some() || !deleted_everywhere {
            return;
        }
        let alive = |n: NodeIdx| self.nodes[n as usize].alive;
        for holder in 0..self.nodes.len() as NodeIdx {
            let holds = alive(holder) && self.nodes[holder as usize].value(key).is_some();
            // A third node, with the deleter, to hand the tombstone on.
            let third = (0..self.nodes.len() as NodeIdx)
                .any(|other| other != node && other != holder && alive(other) && !apart(links, node, other));
            if holder != node && holds && third && apart(links, node, holder) {
                self.goals.deleted_apart = true;
                self.apart_deletes.push(ApartDelete { deleter: node, holder, at_us: t });
            }
        }
    }

    /// G7: the links changed at `t`, to `links`; deletes made apart whose
    /// nodes are together again are settled.
    fn links_changed(&mut self, t: u64, links: &LinkState) {
        if self.apart_deletes.is_empty() {
            return;
        }
        let grace = TOMBSTONE_GRACE.as_micros() as u64;
        let deletes = std::mem::take(&mut self.apart_deletes);
        for delete in deletes {
            if links.link(delete.deleter, delete.holder).partitioned
                || links.link(delete.holder, delete.deleter).partitioned
            {
                self.apart_deletes.push(delete);
            } else if t.saturating_sub(delete.at_us) >= grace {
                self.goals.rejoined_after_delete = true;
            }
        }
    }

    fn goal_conflict(&mut self, key: &str, value: Option<&str>, id: WriteId) {
        if self.goals.conflict_resolved {
            return;
        }
        let live: Vec<&NodeView> = self.nodes.iter().filter(|v| v.alive).collect();
        if live.len() < 2 || live.iter().any(|v| v.value(key) != value) {
            return;
        }
        let winner = &self.writes[&id];
        let rivals = self.held_ever.get(key).into_iter().flatten();
        let resolved = rivals.filter(|&&other| other != id).any(|&other| {
            let rival = &self.writes[&other];
            rival.node != winner.node && !winner.preds.contains(&other) && !rival.preds.contains(&id)
        });
        self.goals.conflict_resolved |= resolved;
    }

    /// Why `condition` does not hold at `node` now.
    pub fn check(&self, node: NodeIdx, condition: &KvCondition) -> Result<(), String> {
        let view = self.nodes.get(node as usize).filter(|v| v.alive).ok_or_else(|| format!("node {node} is down"))?;
        match condition {
            KvCondition::Holds { key, value } => {
                let held = view.value(key);
                if held == value.as_deref() {
                    Ok(())
                } else {
                    Err(format!("node {node} holds {key} = {}, expected {}", show(held), show(value.as_deref())))
                }
            }
            KvCondition::Converged(_) => {
                let mine = view.map();
                for (other, view) in self.nodes.iter().enumerate().filter(|(m, v)| *m != node as usize && v.alive) {
                    if let Some(difference) = difference(node, &mine, other as NodeIdx, &view.map()) {
                        return Err(difference);
                    }
                }
                Ok(())
            }
        }
    }

    /// L1: every live node holds the same map. A failure names the first
    /// node whose map differs from the first live node's.
    pub fn converged(&self) -> Result<(), Failure> {
        let mut live = self.nodes.iter().enumerate().filter(|(_, v)| v.alive);
        let Some((first, view)) = live.next() else { return Ok(()) };
        let map = view.map();
        for (other, view) in live {
            if let Some(difference) = difference(first as NodeIdx, &map, other as NodeIdx, &view.map()) {
                return Err(Failure::from(difference).on(other as NodeIdx));
            }
        }
        Ok(())
    }
}

/// Whether the links between `a` and `b` are partitioned both ways.
fn apart(links: &LinkState, a: NodeIdx, b: NodeIdx) -> bool {
    links.link(a, b).partitioned && links.link(b, a).partitioned
}

fn record(found: &mut Found, index: usize, detail: String) {
    if found.is_none() {
        *found = Some((index, detail));
    }
}

fn show(value: Option<&str>) -> String {
    value.map_or_else(|| "<absent>".to_string(), |v| format!("{v:?}"))
}

/// The first key on which two maps differ, said in words.
fn difference(
    a: NodeIdx,
    left: &BTreeMap<String, String>,
    b: NodeIdx,
    right: &BTreeMap<String, String>,
) -> Option<String> {
    let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    keys.into_iter().find_map(|key| {
        let (l, r) = (left.get(key).map(String::as_str), right.get(key).map(String::as_str));
        (l != r).then(|| format!("node {a} holds {key} = {}, node {b} holds {key} = {}", show(l), show(r)))
    })
}

/// A monitor reporting the first violation `found` picks from the state,
/// when the judge reaches the event that shows it.
fn monitor(found: fn(&KvState) -> &Found) -> impl FnMut(&History<Kv>, &Event<Kv>) -> Result<(), String> + Send {
    let mut seen = 0usize;
    move |history: &History<Kv>, _: &Event<Kv>| {
        let index = seen;
        seen += 1;
        match found(history.state()) {
            Some((at, detail)) if *at <= index => Err(detail.clone()),
            _ => Ok(()),
        }
    }
}

/// A coverage goal that holds once the state has reached it.
fn goal(reached: fn(&Goals) -> bool) -> impl Fn(&History<Kv>, &Event<Kv>) -> bool + Send + Sync + 'static {
    move |history, _| reached(&history.state().goals)
}

/// The properties every kv run is judged by (see the [module docs](self)).
pub fn properties() -> Vec<Property<Kv>> {
    vec![
        Property::always("S1", "reads return written values", || monitor(|s| &s.s1)),
        Property::always("S2", "monotonic reads", || monitor(|s| &s.s2)),
        Property::eventually_naming("L1", "convergence", |h: &History<Kv>| h.state().converged()),
        Property::sometimes("G1", "a conflict between concurrent writes was resolved", goal(|g| g.conflict_resolved)),
        Property::sometimes("G2", "anti-entropy repaired a lasting divergence", goal(|g| g.divergence_repaired)),
        Property::sometimes("G3", "a restarted node caught up", goal(|g| g.restart_caught_up)),
        Property::sometimes(
            "G4",
            "a node restarted while cut off from every other node",
            goal(|g| g.restarted_cut_off),
        ),
        Property::sometimes(
            "G5",
            "a node restarted while cut off wrote, still cut off, a key whose value from its last life another node holds",
            goal(|g| g.rewrote_after_cut_off_restart),
        ),
        Property::sometimes(
            "G6",
            "a key every node had held deleted was deleted again while a node holding it was partitioned from the deleter, and a third node was not",
            goal(|g| g.deleted_apart),
        ),
        Property::sometimes(
            "G7",
            "a node partitioned from a delete of a key it held rejoined the deleter at least the tombstone grace later",
            goal(|g| g.rejoined_after_delete),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tandem::{History, Judge, Operation, True};

    use super::*;

    /// Builds histories event by event, at increasing times (1 ms apart).
    struct H {
        history: History<Kv>,
        ms: u64,
        next_id: u64,
    }

    impl H {
        fn new(nodes: u32) -> H {
            let addrs: Vec<SocketAddr> =
                (0..nodes).map(|i| format!("10.0.0.{}:7000", i + 1).parse().unwrap()).collect();
            let mut h = H { history: History::new(&addrs, &Default::default()), ms: 0, next_id: 0 };
            for n in 0..nodes {
                h.push(n, EventKind::Started { incarnation: 0, addr: addrs[n as usize] });
            }
            h
        }

        fn push(&mut self, node: NodeIdx, event: EventKind<Kv>) {
            self.history.push(&Kv, Duration::from_millis(self.ms), Some(node), event);
        }

        fn tick(&mut self, ms: u64) -> &mut Self {
            self.ms += ms;
            self
        }

        fn invoke(&mut self, op: KvOp) -> u64 {
            let id = self.next_id;
            self.next_id += 1;
            let node = op.node();
            self.push(node, EventKind::Invoke { id, step: 0, client: 0, op });
            id
        }

        fn complete(&mut self, node: NodeIdx, id: u64, output: KvOutput) {
            self.push(node, EventKind::Complete { id, result: OpResult::Ok(output) });
        }

        /// A put the node applies at once (and is seen holding).
        fn put(&mut self, node: NodeIdx, key: &str, value: &str) -> u64 {
            let id = self.invoke(KvOp::Put { node, key: key.into(), value: value.into() });
            self.stored(node, key, Some(value));
            self.complete(node, id, KvOutput::Written { version: None });
            id
        }

        fn delete(&mut self, node: NodeIdx, key: &str) -> u64 {
            let id = self.invoke(KvOp::Delete { node, key: key.into() });
            self.stored(node, key, None);
            self.complete(node, id, KvOutput::Written { version: None });
            id
        }

        fn get(&mut self, node: NodeIdx, key: &str, value: Option<&str>) {
            let id = self.invoke(KvOp::Get { node, key: key.into() });
            self.complete(node, id, KvOutput::Read { value: value.map(str::to_string) });
        }

        fn stored(&mut self, node: NodeIdx, key: &str, value: Option<&str>) {
            let observation =
                KvObservation::Stored { key: key.into(), value: value.map(str::to_string), version: None };
            self.push(node, EventKind::Observe(observation));
        }

        fn state(&self) -> &KvState {
            self.history.state()
        }

        fn settle(&mut self) {
            self.history.push(&Kv, Duration::from_millis(self.ms), None, EventKind::Settle);
        }

        fn step(&mut self, action: tandem::Action) {
            self.history.push(&Kv, Duration::from_millis(self.ms), None, EventKind::Step { index: 0, action });
        }

        fn s2(&self) -> String {
            self.state().s2.clone().map(|(_, d)| d).unwrap_or_default()
        }
    }

    #[test]
    fn reads_of_unwritten_values_break_s1() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.get(1, "k", None);
        h.get(1, "k", Some("a"));
        assert_eq!(h.state().s1, None);
        h.get(1, "k", Some("never-written"));
        let (_, detail) = h.state().s1.clone().unwrap();
        assert!(detail.contains("node 1 read k = \"never-written\", which no put of k wrote"), "{detail}");
        // A value of another key is not a value of this key.
        let mut h = H::new(1);
        h.put(0, "a", "x");
        h.stored(0, "b", Some("x"));
        assert!(h.state().s1.is_some());
    }

    #[test]
    fn going_back_to_an_overwritten_value_breaks_s2() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.tick(5).stored(1, "k", Some("a"));
        h.tick(5).put(1, "k", "b"); // node 1 knew a: a precedes b
        assert!(h.state().precedes(0, 1));
        h.tick(5).stored(0, "k", Some("b"));
        h.get(0, "k", Some("b"));
        assert_eq!(h.state().s2, None);
        h.tick(5).get(0, "k", Some("a"));
        let detail = h.s2();
        assert!(
            detail.contains("node 0 read k = \"a\" (put #0 \"a\" on node 0) after it knew put #1 \"b\" on node 1"),
            "{detail}"
        );
    }

    #[test]
    fn concurrent_writes_may_resolve_either_way() {
        // Node 0 and node 1 write k without knowing each other's write: the
        // store may settle on either, and a node may move from its own to
        // the other.
        let mut h = H::new(3);
        h.put(0, "k", "a");
        h.put(1, "k", "b");
        assert!(!h.state().precedes(0, 1) && !h.state().precedes(1, 0));
        h.tick(5).stored(0, "k", Some("b"));
        h.stored(2, "k", Some("b"));
        assert_eq!(h.state().s2, None);
        assert!(h.state().goals.conflict_resolved, "every live node holds b, and a was held");
        assert_eq!(h.state().converged(), Ok(()));
    }

    #[test]
    fn read_your_writes_is_monotonic_reads() {
        // Node 1 had seen a, then wrote b; its store going back to a breaks S2.
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        let id = h.invoke(KvOp::Put { node: 1, key: "k".into(), value: "b".into() });
        h.complete(1, id, KvOutput::Written { version: None }); // not even seen holding b
        h.get(1, "k", Some("a"));
        assert!(h.s2().contains("after it knew put #1 \"b\" on node 1"), "{}", h.s2());
    }

    #[test]
    fn a_read_is_judged_by_what_its_node_knew_when_it_began() {
        // The read began before node 1 was seen taking b, and completes after:
        // it may have read a.
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.put(1, "k", "b");
        h.stored(0, "k", Some("b"));
        h.put(0, "k", "c"); // b precedes c
        let read = h.invoke(KvOp::Get { node: 1, key: "k".into() });
        h.stored(1, "k", Some("c"));
        h.complete(1, read, KvOutput::Read { value: Some("b".into()) });
        assert_eq!(h.state().s2, None);
        // The next read began after c was seen: b is now too old.
        h.get(1, "k", Some("b"));
        assert!(h.s2().contains("node 1 read k = \"b\""), "{}", h.s2());
    }

    #[test]
    fn a_crash_forgets_what_the_node_knew() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.put(1, "k", "b");
        h.tick(10).push(1, EventKind::Crashed);
        h.push(1, EventKind::Started { incarnation: 1, addr: "10.0.0.2:7000".parse().unwrap() });
        h.get(1, "k", None);
        h.stored(1, "k", Some("a"));
        h.get(1, "k", Some("a"));
        assert_eq!(h.state().s2, None, "a new incarnation starts from nothing");
        assert!(h.state().goals.restart_caught_up);
        // But writes keep the order their invokers saw.
        h.stored(1, "k", Some("b"));
        h.get(1, "k", Some("a"));
        assert!(h.s2().contains("node 1 read k = \"a\""), "{}", h.s2());
    }

    #[test]
    fn deletes_order_like_writes_and_resurrection_breaks_s2() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.delete(0, "k");
        h.get(0, "k", None);
        h.stored(1, "k", None);
        assert_eq!(h.state().s2, None);
        // drop-tombstones: anti-entropy brings the deleted value back.
        h.tick(300).stored(0, "k", Some("a"));
        assert!(h.s2().contains("node 0 was seen holding k = \"a\""), "{}", h.s2());
    }

    #[test]
    fn reading_nothing_after_a_value_needs_a_delete() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.get(0, "k", None);
        assert!(h.s2().contains("node 0 read k = <absent> after it knew put #0"), "{}", h.s2());
        // A concurrent delete explains it.
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.delete(1, "k");
        h.get(0, "k", None);
        assert_eq!(h.state().s2, None);
        // A delete that precedes what the node knows does not.
        let mut h = H::new(2);
        h.delete(1, "k");
        h.stored(0, "k", None);
        h.put(0, "k", "a");
        h.get(0, "k", None);
        assert!(h.state().s2.is_some());
    }

    #[test]
    fn reading_nothing_identifies_a_delete_only_after_knowing_a_write() {
        // Found by exploration: node 2 never got k, read nothing while the
        // only delete of k existed elsewhere, then got the put that delete
        // follows. It never knew the delete: no violation.
        let mut h = H::new(3);
        h.put(1, "k", "a");
        h.delete(1, "k");
        h.get(2, "k", None);
        h.stored(2, "k", Some("a"));
        assert_eq!(h.state().s2, None);
        // Same when the node learnt a write while the read was in flight.
        let mut h = H::new(3);
        h.put(1, "k", "a");
        h.delete(1, "k");
        h.put(0, "k", "b");
        let read = h.invoke(KvOp::Get { node: 2, key: "k".into() });
        h.stored(2, "k", Some("b"));
        h.complete(2, read, KvOutput::Read { value: None });
        h.stored(2, "k", Some("a"));
        assert_eq!(h.state().s2, None);
        // A node that knew a write and then holds nothing knows the one
        // delete that can explain it.
        let mut h = H::new(3);
        h.put(1, "k", "a");
        h.stored(2, "k", Some("a"));
        h.delete(1, "k");
        h.stored(2, "k", None);
        h.put(0, "k", "b"); // concurrent with the delete
        h.stored(2, "k", Some("b"));
        h.stored(2, "k", Some("a"));
        assert!(h.s2().contains("node 2 was seen holding k = \"a\""), "{}", h.s2());
    }

    #[test]
    fn duplicate_values_identify_no_write() {
        let mut h = H::new(3);
        h.put(0, "k", "same");
        h.put(0, "k", "other"); // follows the first "same"
        h.put(2, "k", "same"); // concurrent with both
        h.get(1, "k", Some("other"));
        h.get(1, "k", Some("same"));
        assert_eq!(h.state().s1, None);
        // Going back to the first "same", or on to the concurrent one? The
        // read cannot say, so S2 says nothing.
        assert_eq!(h.state().s2, None);
    }

    #[test]
    fn convergence_and_conditions() {
        let mut h = H::new(3);
        h.put(0, "k", "a");
        h.put(0, "gone", "x");
        h.delete(0, "gone");
        let holds =
            |key: &str, value: Option<&str>| KvCondition::Holds { key: key.into(), value: value.map(str::to_string) };
        let state = h.state();
        assert_eq!(state.check(0, &holds("k", Some("a"))), Ok(()));
        assert_eq!(state.check(0, &holds("gone", None)), Ok(()));
        assert_eq!(state.check(0, &holds("never", None)), Ok(()));
        assert_eq!(state.check(1, &holds("k", Some("a"))), Err("node 1 holds k = <absent>, expected \"a\"".into()));
        assert_eq!(
            state.check(0, &KvCondition::Converged(True)),
            Err("node 0 holds k = \"a\", node 1 holds k = <absent>".into())
        );
        assert!(state.converged().is_err());
        h.stored(1, "k", Some("a"));
        h.stored(2, "k", Some("a"));
        h.stored(2, "gone", None); // a tombstone is no value
        assert_eq!(h.state().check(2, &KvCondition::Converged(True)), Ok(()));
        assert_eq!(h.state().converged(), Ok(()));
        assert_eq!(h.state().map(0), BTreeMap::from([("k".to_string(), "a".to_string())]));
        // A down node is not live: it does not count, and conditions on it fail.
        h.stored(2, "k2", Some("stray"));
        h.push(2, EventKind::Crashed);
        assert_eq!(h.state().converged(), Ok(()));
        assert_eq!(h.state().check(2, &holds("k", Some("a"))), Err("node 2 is down".into()));
    }

    #[test]
    fn changes_reported_before_the_start_belong_to_the_new_incarnation() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.tick(10).push(1, EventKind::Crashed);
        h.tick(10).stored(1, "k", Some("a")); // the restarting node, already catching up
        assert_eq!(h.state().map(1), BTreeMap::from([("k".to_string(), "a".to_string())]), "the last incarnation's");
        h.push(1, EventKind::Started { incarnation: 1, addr: "10.0.0.2:7000".parse().unwrap() });
        assert_eq!(h.state().check(1, &KvCondition::Holds { key: "k".into(), value: Some("a".into()) }), Ok(()));
        assert!(h.state().goals.restart_caught_up);
        assert_eq!((h.state().s1.clone(), h.state().s2.clone()), (None, None));
    }

    #[test]
    fn repairs_after_a_lasting_divergence_reach_g2() {
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.tick(5).stored(1, "k", Some("a")); // an eager push: no lasting divergence
        assert!(!h.state().goals.divergence_repaired);
        h.put(0, "k", "b");
        h.tick(1500).stored(1, "k", Some("b"));
        assert!(h.state().goals.divergence_repaired);
    }

    #[test]
    fn the_deep_bugs_preconditions_are_goals_in_order() {
        use tandem::scenario::{LinkChange, Scope};
        let link = |change, a: &[NodeIdx], b: &[NodeIdx]| Action::Link {
            change,
            scope: Scope::Between { a: a.to_vec(), b: b.to_vec() },
        };
        let goals = |h: &H| h.state().goals;
        // restart-reuses-version: node 0 wrote k, node 1 stored it, then
        // node 0 cannot hear node 1, restarts and writes k again.
        let mut h = H::new(2);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.push(0, EventKind::Crashed);
        h.push(0, EventKind::Started { incarnation: 1, addr: "10.0.0.1:7000".parse().unwrap() });
        assert!(!goals(&h).restarted_cut_off, "it can hear node 1");
        h.step(link(LinkChange::Partition { oneway: true }, &[1], &[0]));
        h.push(0, EventKind::Crashed);
        h.push(0, EventKind::Started { incarnation: 2, addr: "10.0.0.1:7000".parse().unwrap() });
        assert!(goals(&h).restarted_cut_off);
        h.put(0, "j", "x");
        assert!(!goals(&h).rewrote_after_cut_off_restart, "j is new");
        h.put(0, "k", "b");
        assert!(goals(&h).rewrote_after_cut_off_restart);

        // purge-tombstones: every node held k deleted, then node 1 holds a
        // new value when node 0, apart from it, deletes k; they rejoin too
        // soon, then late enough.
        let mut h = H::new(3);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.step(link(LinkChange::Partition { oneway: false }, &[0], &[1]));
        h.delete(0, "k");
        assert!(!goals(&h).deleted_apart, "no delete of k reached every node before");
        h.step(link(LinkChange::Heal, &[0], &[1]));
        h.stored(0, "k", None);
        h.stored(1, "k", None);
        h.stored(2, "k", None);
        h.put(0, "k", "a2");
        h.stored(1, "k", Some("a2"));
        h.delete(0, "k");
        assert!(!goals(&h).deleted_apart, "not apart");
        h.step(link(LinkChange::Partition { oneway: false }, &[0], &[1]));
        h.delete(0, "k");
        assert!(goals(&h).deleted_apart);
        h.tick(500).step(link(LinkChange::Heal, &[0], &[1]));
        assert!(!goals(&h).rejoined_after_delete, "within the grace");
        h.step(link(LinkChange::Partition { oneway: false }, &[0], &[1]));
        h.delete(0, "k");
        h.tick(3500).push(1, EventKind::Crashed);
        h.settle();
        assert!(!goals(&h).rejoined_after_delete, "the holder crashed");
        h.push(1, EventKind::Started { incarnation: 1, addr: "10.0.0.2:7000".parse().unwrap() });
        h.stored(1, "k", Some("a2"));
        h.step(link(LinkChange::Partition { oneway: false }, &[0], &[1]));
        h.delete(0, "k");
        h.tick(3500).settle();
        assert!(goals(&h).rejoined_after_delete);
        assert_eq!((h.state().s1.clone(), h.state().s2.clone()), (None, None));
    }

    #[test]
    fn the_judge_reports_each_property_at_its_event() {
        let mut h = H::new(2);
        let properties = properties();
        let mut judge = Judge::new(&properties);
        h.put(0, "k", "a");
        h.stored(1, "k", Some("a"));
        h.put(1, "k", "b");
        assert!(judge.advance(&h.history).is_ok());
        h.stored(1, "k", Some("a"));
        h.stored(1, "k", Some("never"));
        let violation = judge.advance(&h.history).unwrap_err();
        assert_eq!(violation.code, "S2", "{violation}");
        // L1 at the end: node 0 holds a, node 1 holds "never".
        let mut judge = Judge::new(&properties);
        let end = judge.finish(&H::new(2).history, Duration::ZERO);
        assert!(end.is_ok());
        let coverage = judge.coverage();
        assert_eq!(coverage.len(), 7);
        assert!(coverage.iter().all(|c| !c.hit));
    }
}
