//! [`Ledger`]: an incremental index of a messaging history (sends,
//! deliveries, views, node lives), folded one event at a time with the
//! faults in force after it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tandem::{Event, EventKind, Faults, History, NodeIdx, NodeLife, OpResult};

use super::{Delivery, Message, Messaging, View};

/// A send the harness invoked, with what it obliges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The invocation's index in the history.
    pub event: usize,
    /// The node that sends it.
    pub origin: NodeIdx,
    /// The origin's incarnation when the operation was invoked.
    pub incarnation: u64,
    /// When the operation was invoked.
    pub at: Duration,
    /// What the harness asked it to send.
    pub message: Message,
    /// Who must receive it: for a broadcast, every member of the origin's
    /// last view observed before the invocation; for a direct message, its
    /// addressee.
    pub obligations: BTreeSet<NodeIdx>,
    /// The addressees a partition cut off from the origin at that time.
    pub cut_off: BTreeSet<NodeIdx>,
}

/// A send the origin accepted, with the id its answer named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage<I> {
    /// The message's id.
    pub id: I,
    /// The invoked send.
    pub outgoing: Outgoing,
}

/// A delivery, where and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival<I> {
    /// The node that delivered it.
    pub node: NodeIdx,
    /// That node's incarnation then.
    pub incarnation: u64,
    /// When.
    pub at: Duration,
    /// What was delivered.
    pub delivery: Delivery<I>,
    /// Whether this node incarnation had delivered the message before.
    pub duplicate: bool,
}

/// What one folded event meant for messaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact<I> {
    /// A node delivered a message.
    Delivered(Arrival<I>),
    /// A send operation on `origin` completed, in any way.
    Completed {
        /// Its node.
        origin: NodeIdx,
    },
}

/// The coverage goals a run has reached so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Goals {
    /// A node delivered a message after it had restarted.
    pub after_restart: bool,
    /// A message was delivered to an addressee that a partition cut off from
    /// the origin when it was sent.
    pub across_partition: bool,
    /// A node delivered a message after it had rebound.
    pub after_rebind: bool,
    /// A node restarted after rebinding at least twice in its previous
    /// incarnation (its address version starts again below the old one).
    pub restart_after_rebinds: bool,
    /// A node that restarted after rebinding at least twice rebound again,
    /// fewer times than before the restart (its new address comes with a
    /// lower version than the old one).
    pub rebind_after_restart: bool,
}

/// What the ledger knows of one node.
#[derive(Debug, Clone)]
pub struct NodeState<I> {
    /// Whether it runs.
    pub alive: bool,
    /// Its current (or last) incarnation.
    pub incarnation: u64,
    /// How many times it started.
    pub starts: u32,
    /// Whether it ever rebound.
    pub rebound: bool,
    /// How many times it rebound in its current incarnation.
    pub rebinds: u32,
    /// How many times it rebound in its previous incarnation.
    pub rebinds_before: u32,
    /// How many messages it delivered, all incarnations.
    pub delivered: u64,
    /// The tags it delivered, all incarnations.
    pub tags: BTreeSet<String>,
    /// Its latest observed membership view (empty after a crash).
    pub view: View,
    /// (message, incarnation) pairs it delivered.
    seen: BTreeSet<(I, u64)>,
}

impl<I> Default for NodeState<I> {
    fn default() -> Self {
        NodeState {
            alive: false,
            incarnation: 0,
            starts: 0,
            rebound: false,
            rebinds: 0,
            rebinds_before: 0,
            delivered: 0,
            tags: BTreeSet::new(),
            view: BTreeMap::new(),
            seen: BTreeSet::new(),
        }
    }
}

/// An incremental index of a messaging history. Fold every event into it,
/// in order, with [`Ledger::fold`] (or replay a history with [`Ledger::of`]);
/// it answers conditions and end checks without rescanning the history.
#[derive(Debug, Clone)]
pub struct Ledger<I> {
    folded: usize,
    nodes: Vec<NodeState<I>>,
    /// Send operations invoked and not completed, by operation id.
    in_flight: BTreeMap<u64, Outgoing>,
    /// Sends whose node crashed before answering: they may have been sent.
    uncertain: Vec<Outgoing>,
    sends: Vec<SentMessage<I>>,
    by_id: BTreeMap<I, usize>,
    goals: Goals,
    /// What [`Ledger::node`] answers for a node it knows nothing of.
    empty: NodeState<I>,
}

impl<I> Default for Ledger<I> {
    fn default() -> Self {
        Ledger {
            folded: 0,
            nodes: Vec::new(),
            in_flight: BTreeMap::new(),
            uncertain: Vec::new(),
            sends: Vec::new(),
            by_id: BTreeMap::new(),
            goals: Goals::default(),
            empty: NodeState::default(),
        }
    }
}

impl<I: Clone + Ord> Ledger<I> {
    /// A ledger of `history`'s events, folded in order.
    pub fn of<S: Messaging<Id = I>>(history: &History<S>) -> Self {
        let mut ledger = Ledger::default();
        history.walk(|_, event, faults| {
            ledger.fold(event, faults);
        });
        ledger
    }

    /// Folds the next event of the history, with `faults` the faults in
    /// force just after it (partitions matter here); what it meant, if
    /// anything.
    pub fn fold<S: Messaging<Id = I>>(&mut self, event: &Event<S>, faults: &Faults) -> Option<Fact<I>> {
        self.folded += 1;
        let at = event.at();
        let node = event.node;
        match &event.event {
            EventKind::Started { incarnation, .. } => {
                let n = self.node_mut(node?);
                n.alive = true;
                n.incarnation = *incarnation;
                if n.starts > 0 {
                    n.rebinds_before = n.rebinds;
                }
                let behind = n.starts > 0 && n.rebinds_before >= 2;
                n.rebinds = 0;
                n.starts += 1;
                n.view.clear();
                self.goals.restart_after_rebinds |= behind;
            }
            EventKind::Crashed => {
                let n = self.node_mut(node?);
                n.alive = false;
                n.view.clear();
            }
            EventKind::Rebound { .. } => {
                let n = self.node_mut(node?);
                n.rebound = true;
                n.rebinds += 1;
                let behind = n.starts > 1 && n.rebinds_before >= 2 && n.rebinds < n.rebinds_before;
                self.goals.rebind_after_restart |= behind;
            }
            EventKind::Invoke { id, step, op, .. } => {
                let origin = node?;
                let message = S::message(op, *step)?;
                let obligations: BTreeSet<NodeIdx> = match message.to {
                    Some(to) => BTreeSet::from([to]),
                    None => self.node(origin).view.keys().copied().filter(|&m| m != origin).collect(),
                };
                let cut_off =
                    obligations.iter().copied().filter(|&r| faults.links().link(origin, r).partitioned).collect();
                let incarnation = self.node(origin).incarnation;
                let event = self.folded - 1;
                self.in_flight.insert(*id, Outgoing { event, origin, incarnation, at, message, obligations, cut_off });
            }
            EventKind::Complete { id, result } => {
                let outgoing = self.in_flight.remove(id)?;
                let origin = outgoing.origin;
                match result {
                    OpResult::Ok(output) => {
                        let mut outgoing = outgoing;
                        for dropped in S::dropped(output) {
                            outgoing.obligations.remove(&dropped);
                            outgoing.cut_off.remove(&dropped);
                        }
                        if let Some(id) = S::sent(output) {
                            self.by_id.insert(id.clone(), self.sends.len());
                            self.sends.push(SentMessage { id, outgoing });
                        }
                    }
                    OpResult::Failed(_) => {}
                    OpResult::Unknown(_) => self.uncertain.push(outgoing),
                }
                return Some(Fact::Completed { origin });
            }
            EventKind::Observe(observation) => {
                let node = node?;
                if let Some(view) = S::view(observation) {
                    self.node_mut(node).view = view;
                }
                let delivery = S::delivery(observation)?;
                let across = self.sent(&delivery.id).is_some_and(|s| s.outgoing.cut_off.contains(&node));
                let n = self.node_mut(node);
                let incarnation = n.incarnation;
                let duplicate = !n.seen.insert((delivery.id.clone(), incarnation));
                n.delivered += 1;
                n.tags.insert(delivery.tag.clone());
                let (restarted, rebound) = (n.starts > 1, n.rebound);
                self.goals.after_restart |= restarted;
                self.goals.after_rebind |= rebound;
                self.goals.across_partition |= across;
                return Some(Fact::Delivered(Arrival { node, incarnation, at, delivery, duplicate }));
            }
            EventKind::Step { .. }
            | EventKind::Settle
            | EventKind::Assert(_)
            | EventKind::Verdict { .. }
            | EventKind::Final
            | EventKind::Skipped { .. }
            | EventKind::Aimed { .. }
            | EventKind::RebindFailed { .. }
            | EventKind::FailStopped { .. }
            | EventKind::ThreadStarted { .. }
            | EventKind::StopFailed { .. }
            | EventKind::StartFailed { .. } => {}
        }
        None
    }

    fn node_mut(&mut self, node: NodeIdx) -> &mut NodeState<I> {
        let index = node as usize;
        if self.nodes.len() <= index {
            self.nodes.resize_with(index + 1, NodeState::default);
        }
        &mut self.nodes[index]
    }

    /// What the ledger knows of `node` (nothing yet: an empty state).
    pub fn node(&self, node: NodeIdx) -> &NodeState<I> {
        self.nodes.get(node as usize).unwrap_or(&self.empty)
    }

    /// How many events it has folded.
    pub fn folded(&self) -> usize {
        self.folded
    }

    /// Every accepted send, in the order the sends completed.
    pub fn sends(&self) -> &[SentMessage<I>] {
        &self.sends
    }

    /// The accepted send of message `id`.
    pub fn sent(&self, id: &I) -> Option<&SentMessage<I>> {
        self.by_id.get(id).map(|&i| &self.sends[i])
    }

    /// Whether a send operation of `origin` is invoked and not completed.
    pub fn in_flight_from(&self, origin: NodeIdx) -> bool {
        self.in_flight.values().any(|o| o.origin == origin)
    }

    /// A send of `delivery`'s origin that may or may not have happened (its
    /// node crashed before answering) and that matches the delivery.
    pub fn uncertain(&self, delivery: &Delivery<I>) -> Option<&Outgoing> {
        self.uncertain.iter().find(|o| {
            o.origin == delivery.origin
                && o.message.tag == delivery.tag
                && o.message.digest == delivery.digest
                && o.message.kind() == delivery.kind
        })
    }

    /// Whether `node` delivered message `id`, in any incarnation.
    pub fn delivered(&self, node: NodeIdx, id: &I) -> bool {
        let seen = &self.node(node).seen;
        seen.range((id.clone(), 0)..=(id.clone(), u64::MAX)).next().is_some()
    }

    /// The coverage goals reached so far.
    pub fn goals(&self) -> Goals {
        self.goals
    }

    /// Why `node` does not know every other live node at its current
    /// address; `lives` are the history's node lives.
    pub fn converged(&self, lives: &[NodeLife], node: NodeIdx) -> Result<(), String> {
        let view = &self.node(node).view;
        let live = (0..lives.len() as NodeIdx).filter(|&m| m != node && lives[m as usize].alive);
        for m in live {
            let addr = lives[m as usize].addr;
            match view.get(&m) {
                None => return Err(format!("node {node} does not know node {m}")),
                Some(known) if *known != addr => {
                    return Err(format!("node {node} knows node {m} at {known} but it is at {addr}"))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
