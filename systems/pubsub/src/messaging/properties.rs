//! The properties: S1-S4 as incremental monitors, L1-L2 at the end, and
//! coverage goals.

use std::collections::{BTreeMap, BTreeSet};

use tandem::{Event, EventKind, Failure, Faults, History, NodeIdx, Property};

use super::ledger::{Arrival, Fact, Ledger, Outgoing, SentMessage};
use super::{secs, Delivery, Kind, Messaging};

/// The messaging property set: S1 no self-delivery, S2 no duplicates, S3
/// integrity, S4 addressing (`always`), L1 membership convergence, L2
/// delivery (`eventually`), and the coverage goals G1 delivered after a
/// restart, G2 delivered across a healed partition, G3 delivered after a
/// rebind (`sometimes`; they need [`Messaging::ledger`]).
///
/// ```
/// # use tandem::System;
/// let properties = tandem_pubsub::messaging::properties::<tandem_pubsub::PubSub>();
/// assert_eq!(properties[5].code, "L2");
/// assert_eq!(properties[5].name, "delivery");
/// ```
pub fn properties<S: Messaging>() -> Vec<Property<S>> {
    vec![
        Property::always("S1", "no self-delivery", || {
            |_: &History<S>, event: &Event<S>| match delivered::<S>(event) {
                Some((node, d)) if d.origin == node => {
                    Err(format!("node {node} delivered its own message \"{}\" at {}", d.tag, secs(event.at())))
                }
                _ => Ok(()),
            }
        }),
        Property::always("S2", "no duplicates", || {
            // Per node: its incarnation, and what this incarnation delivered.
            let mut nodes: BTreeMap<NodeIdx, (u64, BTreeSet<S::Id>)> = BTreeMap::new();
            move |_: &History<S>, event: &Event<S>| {
                if let (EventKind::Started { incarnation, .. }, Some(node)) = (&event.event, event.node) {
                    nodes.insert(node, (*incarnation, BTreeSet::new()));
                }
                let Some((node, d)) = delivered::<S>(event) else { return Ok(()) };
                let (incarnation, seen) = nodes.entry(node).or_default();
                if seen.insert(d.id.clone()) {
                    return Ok(());
                }
                Err(format!(
                    "node {node} (incarnation {incarnation}) delivered \"{}\" from node {} twice, again at {}",
                    d.tag,
                    d.origin,
                    secs(event.at())
                ))
            }
        }),
        Property::always("S3", "integrity", || {
            let mut resolver = Resolver::<S::Id>::default();
            move |history: &History<S>, event: &Event<S>| resolver.feed(history, event, integrity)
        }),
        Property::always("S4", "addressing", || {
            let mut resolver = Resolver::<S::Id>::default();
            move |history: &History<S>, event: &Event<S>| resolver.feed(history, event, addressing)
        }),
        Property::eventually_naming("L1", "membership convergence", |history: &History<S>| {
            with_ledger(history, |ledger| {
                history
                    .live()
                    .try_for_each(|node| ledger.converged(history.nodes(), node).map_err(|e| Failure::from(e).on(node)))
            })
        }),
        Property::eventually_naming("L2", "delivery", |history: &History<S>| {
            with_ledger(history, |ledger| delivery(history, ledger))
        }),
        Property::sometimes("G1", "delivered after a restart", |history: &History<S>, _: &Event<S>| {
            S::ledger(history.state()).is_some_and(|l| l.goals().after_restart)
        }),
        Property::sometimes("G2", "delivered across a healed partition", |history: &History<S>, _: &Event<S>| {
            S::ledger(history.state()).is_some_and(|l| l.goals().across_partition)
        }),
        Property::sometimes("G3", "delivered after a rebind", |history: &History<S>, _: &Event<S>| {
            S::ledger(history.state()).is_some_and(|l| l.goals().after_rebind)
        }),
    ]
}

/// The node and the message of a delivery event.
fn delivered<S: Messaging>(event: &Event<S>) -> Option<(NodeIdx, Delivery<S::Id>)> {
    match &event.event {
        EventKind::Observe(observation) => Some((event.node?, S::delivery(observation)?)),
        _ => None,
    }
}

/// Runs `f` on the system's ledger when it has folded the whole history,
/// else on a ledger replayed from the history.
pub(crate) fn with_ledger<S: Messaging, R>(history: &History<S>, f: impl FnOnce(&Ledger<S::Id>) -> R) -> R {
    match S::ledger(history.state()) {
        Some(ledger) if ledger.folded() == history.events().len() => f(ledger),
        _ => f(&Ledger::of(history)),
    }
}

/// L2: every message whose origin stayed up (same incarnation, never
/// crashed) from sending to the end reached each addressee that is up.
/// The failure names the addressee and the send.
fn delivery<S: Messaging>(history: &History<S>, ledger: &Ledger<S::Id>) -> Result<(), Failure> {
    for sent in ledger.sends() {
        if let Some(&r) = undelivered(history, ledger, sent).first() {
            let o = &sent.outgoing;
            let detail = format!("node {r} never delivered \"{}\" from node {}", o.message.tag, o.origin);
            return Err(Failure::from(detail).on(r).naming(o.event));
        }
    }
    Ok(())
}

/// The addressees that L2 says should have delivered `sent` by now and did
/// not: none unless its origin stayed up (same incarnation, never crashed)
/// from sending to now; then each addressee that is up and has not.
pub fn undelivered<S: Messaging>(
    history: &History<S>,
    ledger: &Ledger<S::Id>,
    sent: &SentMessage<S::Id>,
) -> Vec<NodeIdx> {
    let o = &sent.outgoing;
    let origin = history.node(o.origin);
    if !origin.alive || origin.incarnation != o.incarnation {
        return Vec::new();
    }
    let up = |r: NodeIdx| (r as usize) < history.nodes().len() && history.node(r).alive;
    o.obligations.iter().copied().filter(|&r| up(r) && !ledger.delivered(r, &sent.id)).collect()
}

/// What a delivered message was, once the harness can tell.
enum Resolution<'a, I> {
    /// The origin accepted this send.
    Sent(&'a SentMessage<I>),
    /// The origin crashed while sending this; it may have gone out.
    Uncertain(&'a Outgoing),
    /// The origin never sent it.
    Never,
}

/// Matches deliveries with sends. A delivery observed before its send
/// completed (the origin's answer and the delivery race on a real network)
/// is judged once the origin's pending sends complete.
///
/// It looks sends up in the system's own ledger ([`Messaging::ledger`]),
/// which the recorder folds as the history grows (so it may already know
/// sends that complete after the delivery being judged: the verdict is the
/// one deferring would reach), and folds a ledger of its own only for a
/// system that keeps none (following the faults to fold it with).
struct Resolver<I> {
    own: Ledger<I>,
    /// The faults in force after the last event `own` folded, once it folds.
    faults: Option<Faults>,
    deferred: Vec<Arrival<I>>,
}

impl<I> Default for Resolver<I> {
    fn default() -> Self {
        Resolver { own: Ledger::default(), faults: None, deferred: Vec::new() }
    }
}

impl<I: Clone + Ord> Resolver<I> {
    fn feed<S: Messaging<Id = I>>(
        &mut self,
        history: &History<S>,
        event: &Event<S>,
        judge: fn(&Arrival<I>, Resolution<'_, I>) -> Result<(), String>,
    ) -> Result<(), String> {
        let shared = S::ledger(history.state()).filter(|l| l.folded() == history.events().len());
        let fact = match shared {
            Some(_) => match (&event.event, delivered::<S>(event)) {
                (_, Some((node, delivery))) => {
                    let incarnation = history.node(node).incarnation;
                    Some(Fact::Delivered(Arrival { node, incarnation, at: event.at(), delivery, duplicate: false }))
                }
                (EventKind::Complete { .. }, None) => Some(Fact::Completed { origin: event.node.unwrap_or_default() }),
                _ => None,
            },
            None => {
                let faults = self.faults.get_or_insert_with(|| Faults::new(history.links().network()));
                faults.follow(event);
                self.own.fold(event, faults)
            }
        };
        match fact {
            Some(Fact::Delivered(arrival)) => self.deferred.push(arrival),
            Some(Fact::Completed { .. }) if !self.deferred.is_empty() => {}
            _ => return Ok(()),
        }
        let ledger = shared.unwrap_or(&self.own);
        let mut i = 0;
        while i < self.deferred.len() {
            let d = &self.deferred[i].delivery;
            let resolution = match ledger.sent(&d.id) {
                Some(sent) => Resolution::Sent(sent),
                None if ledger.in_flight_from(d.origin) => {
                    i += 1;
                    continue;
                }
                None => ledger.uncertain(d).map_or(Resolution::Never, Resolution::Uncertain),
            };
            judge(&self.deferred[i], resolution)?;
            self.deferred.remove(i);
        }
        Ok(())
    }
}

/// S3: the delivery matches what the harness asked the origin to send.
fn integrity<I: std::fmt::Display>(a: &Arrival<I>, resolution: Resolution<'_, I>) -> Result<(), String> {
    let d = &a.delivery;
    match resolution {
        Resolution::Never => Err(format!(
            "node {} delivered \"{}\" from node {}, which node {} never sent, at {}",
            a.node,
            d.tag,
            d.origin,
            d.origin,
            secs(a.at)
        )),
        Resolution::Sent(sent) => {
            let m = &sent.outgoing.message;
            if sent.outgoing.origin != d.origin || m.tag != d.tag || m.digest != d.digest || m.kind() != d.kind {
                return Err(format!(
                    "node {} delivered message {} from node {} as \"{}\" but \"{}\" was sent (or its payload differs) at {}",
                    a.node,
                    d.id,
                    d.origin,
                    d.tag,
                    m.tag,
                    secs(a.at)
                ));
            }
            Ok(())
        }
        Resolution::Uncertain(_) => Ok(()),
    }
}

/// S4: a direct message reaches only its addressee.
fn addressing<I>(a: &Arrival<I>, resolution: Resolution<'_, I>) -> Result<(), String> {
    let outgoing = match resolution {
        Resolution::Sent(sent) => &sent.outgoing,
        Resolution::Uncertain(outgoing) => outgoing,
        Resolution::Never => return Ok(()),
    };
    match outgoing.message.to {
        Some(to) if to != a.node && outgoing.message.kind() == Kind::Direct => Err(format!(
            "node {} delivered direct message \"{}\" from node {} addressed to node {to} at {}",
            a.node,
            a.delivery.tag,
            a.delivery.origin,
            secs(a.at)
        )),
        _ => Ok(()),
    }
}
