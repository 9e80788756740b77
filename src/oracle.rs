//! The oracle: invariants S1-S4 and L1-L2, and scenario conditions, evaluated
//! over a [`Record`]. The same code judges simulated and real runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::node::{MessageId, MessageKind, NodeId};
use crate::record::{DeliveryRecord, Record, SendRecord};
use crate::scenario::{Check, Condition};

/// A failed invariant, expectation or await.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `S1`..`S4`, `L1`, `L2`, `expect` or `await`.
    pub code: &'static str,
    /// What the code checks (`delivery`, `no self-delivery`, ...).
    pub name: &'static str,
    /// The first offending fact: node, tag, origin, time.
    pub detail: String,
    /// When it was observed.
    pub at: Duration,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.name, self.detail)
    }
}

fn secs(at: Duration) -> String {
    format!("{:.3}s", at.as_secs_f64())
}

/// The first violated safety invariant (S1-S4) among deliveries made up to
/// `until`, by time of delivery.
pub fn safety(record: &Record, until: Duration) -> Option<Violation> {
    SafetyChecker::default().check(record, until)
}

/// Checks S1-S4 incrementally: each call looks only at the deliveries and
/// sends recorded since the previous call, so checking after every step of a
/// long run stays linear. It reports what [`safety`] would.
#[derive(Debug, Default)]
pub struct SafetyChecker {
    sends: BTreeMap<MessageId, usize>,
    sends_seen: usize,
    /// Per node: deliveries already checked, and the (incarnation, id) pairs delivered.
    nodes: Vec<(usize, BTreeSet<(u64, MessageId)>)>,
}

impl SafetyChecker {
    /// The earliest violation among the deliveries up to `until` not checked yet.
    pub fn check(&mut self, record: &Record, until: Duration) -> Option<Violation> {
        for (index, send) in record.sends.iter().enumerate().skip(self.sends_seen) {
            self.sends.insert(send.id, index);
        }
        self.sends_seen = record.sends.len();
        self.nodes.resize_with(record.nodes.len(), Default::default);
        let mut first: Option<Violation> = None;
        for (node, n) in record.nodes.iter().enumerate() {
            let (checked, seen) = &mut self.nodes[node];
            let fresh = n.deliveries[*checked..].iter().take_while(|d| d.at <= until);
            let mut count = 0;
            for d in fresh {
                count += 1;
                let duplicate = !seen.insert((d.incarnation, d.id));
                let send = self.sends.get(&d.id).map(|&i| &record.sends[i]);
                if let Some(v) = judge(node as u32, d, duplicate, send) {
                    if first.as_ref().is_none_or(|f| v.at < f.at) {
                        first = Some(v);
                    }
                    break;
                }
            }
            *checked += count;
        }
        first
    }
}

/// The first invariant one delivery breaks, if any.
fn judge(node: u32, d: &DeliveryRecord, duplicate: bool, send: Option<&SendRecord>) -> Option<Violation> {
    let (origin, tag, at) = (d.id.origin, &d.tag, d.at);
    let violation = |code, name, detail| Some(Violation { code, name, detail, at });
    if origin == NodeId(node) {
        return violation("S1", "no self-delivery", format!("node {node} delivered its own message \"{tag}\" at {}", secs(at)));
    }
    if duplicate {
        let detail = format!(
            "node {node} (incarnation {}) delivered \"{tag}\" from node {origin} twice, again at {}",
            d.incarnation,
            secs(at)
        );
        return violation("S2", "no duplicates", detail);
    }
    match send {
        None => violation(
            "S3",
            "integrity",
            format!("node {node} delivered \"{tag}\" from node {origin}, which node {origin} never sent, at {}", secs(at)),
        ),
        Some(s) if s.tag != d.tag || s.payload_digest != d.payload_digest || s.kind != d.kind => violation(
            "S3",
            "integrity",
            format!(
                "node {node} delivered message {}/{} from node {origin} as \"{tag}\" but \"{}\" was sent (or its payload differs) at {}",
                d.id.incarnation,
                d.id.seq,
                s.tag,
                secs(at)
            ),
        ),
        Some(s) if s.kind == MessageKind::Direct && !s.recipients.contains(&NodeId(node)) => violation(
            "S4",
            "addressing",
            format!(
                "node {node} delivered direct message \"{tag}\" from node {origin} addressed to node {} at {}",
                s.recipients.first().map_or_else(|| "?".into(), |r| r.to_string()),
                secs(at)
            ),
        ),
        Some(_) => None,
    }
}

/// Why `node` is not converged (knows every other live node at its current
/// address), or `None` when it is.
fn unconverged(record: &Record, node: u32) -> Option<String> {
    let view = &record.nodes[node as usize].view;
    record.live().filter(|&m| m != node).find_map(|m| {
        let addr = record.nodes[m as usize].addr;
        match view.get(&NodeId(m)) {
            None => Some(format!("node {node} does not know node {m}")),
            Some(p) if p.addr != addr => Some(format!("node {node} knows node {m} at {} but it is at {addr}", p.addr)),
            Some(_) => None,
        }
    })
}

/// L1 membership convergence, at the end of a run.
pub fn convergence(record: &Record, at: Duration) -> Option<Violation> {
    record.live().find_map(|n| unconverged(record, n)).map(|detail| Violation {
        code: "L1",
        name: "membership convergence",
        detail,
        at,
    })
}

/// L2 delivery, at the end of a run: every message whose origin stayed up
/// from sending to the end reached each addressee that is up at the end.
pub fn delivery(record: &Record, at: Duration) -> Option<Violation> {
    let delivered: Vec<BTreeSet<MessageId>> =
        record.nodes.iter().map(|n| n.deliveries.iter().map(|d| d.id).collect()).collect();
    for s in &record.sends {
        let origin = &record.nodes[s.id.origin.0 as usize];
        let stayed_up = origin.alive && origin.incarnation == s.id.incarnation && origin.crashes.iter().all(|&c| c < s.at);
        if !stayed_up {
            continue;
        }
        let missing = s.recipients.iter().find(|r| record.nodes[r.0 as usize].alive && !delivered[r.0 as usize].contains(&s.id));
        if let Some(r) = missing {
            return Some(Violation {
                code: "L2",
                name: "delivery",
                detail: format!("node {r} never delivered \"{}\" from node {}", s.tag, s.id.origin),
                at,
            });
        }
    }
    None
}

/// Every invariant at the end of a run, safety first.
pub fn end_of_run(record: &Record, at: Duration) -> Option<Violation> {
    safety(record, at).or_else(|| convergence(record, at)).or_else(|| delivery(record, at))
}

/// Why `condition` does not hold now, or `None` when it holds. A condition
/// without a node must hold for every live node.
pub fn check(record: &Record, condition: &Condition) -> Option<String> {
    match condition.node {
        Some(node) => check_node(record, node, &condition.check),
        None => record.live().find_map(|node| check_node(record, node, &condition.check)),
    }
}

fn check_node(record: &Record, node: u32, check: &Check) -> Option<String> {
    let n = &record.nodes[node as usize];
    let tags = || n.deliveries.iter().map(|d| d.tag.clone()).collect::<BTreeSet<_>>();
    match check {
        Check::Received(want) => {
            let got = n.deliveries.len() as u64;
            (got != *want).then(|| format!("node {node} delivered {got} messages, expected {want}"))
        }
        Check::ReceivedTags(want) => {
            let got = tags();
            (got != *want).then(|| format!("node {node} delivered tags {got:?}, expected {want:?}"))
        }
        Check::NotReceivedTags(unwanted) => {
            let got: Vec<_> = tags().intersection(unwanted).cloned().collect();
            (!got.is_empty()).then(|| format!("node {node} delivered {got:?}"))
        }
        Check::Peers(want) => {
            let got = n.view.len() as u32;
            (got != *want).then(|| format!("node {node} knows {got} peers, expected {want}"))
        }
        Check::Converged => unconverged(record, node),
    }
}
