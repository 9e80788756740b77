//! List-append: each key's version order is its longest read.

use std::collections::HashMap;

use super::graph::{link, small, Dep, Edge, Why};
use super::index::{Index, Writer};
use super::{Anomaly, Found, Mop};

/// A committed transaction's read of a list: its position, the
/// micro-operation's, and what it returned.
type Read<'a> = (usize, u32, &'a [u64]);

/// The reads and appends of one list by committed transactions.
#[derive(Default)]
struct ListOps<'a> {
    reads: Vec<Read<'a>>,
    /// Who appended (as a [`Writer`]) what.
    appends: Vec<(Writer, u64)>,
}

/// Adds the dependencies the lists imply to `edges`, and incompatible
/// orders to `found`.
pub(super) fn infer(index: &Index, edges: &mut Vec<Edge>, found: &mut Vec<Found>) {
    for (key, ops) in lists(index) {
        let longest = ops.reads.iter().copied().reduce(|a, b| if b.2.len() > a.2.len() { b } else { a });
        let longest = longest.unwrap_or((0, 0, &[]));
        if let Some(bad) = ops.reads.iter().find(|r| !longest.2.starts_with(r.2)) {
            found.push(incompatible(index, key, *bad, longest));
        }
        let mut order = Vec::new();
        let mut position = HashMap::new();
        for &value in longest.2 {
            position.entry(value).or_insert_with(|| {
                order.push(value);
                order.len() - 1
            });
        }
        for pair in order.windows(2) {
            if let (Some(a), Some(b)) = (index.committed_writer(key, pair[0]), index.committed_writer(key, pair[1])) {
                link(edges, a.txn, b.txn, Dep::Ww, Why::Appended { mop: b.mop, before: pair[0], read: true });
            }
        }
        // Appends no read saw came after everything read.
        let unread: Vec<(Writer, u64)> = ops.appends.into_iter().filter(|(_, v)| !position.contains_key(v)).collect();
        let last_read = order.last().and_then(|&last| Some((last, index.committed_writer(key, last)?)));
        if let Some((last, a)) = last_read {
            for (b, _) in &unread {
                link(edges, a.txn, b.txn, Dep::Ww, Why::Appended { mop: b.mop, before: last, read: false });
            }
        }
        for &(reader, mop, value) in &ops.reads {
            if let Some(w) = value.last().and_then(|last| index.committed_writer(key, *last)) {
                link(edges, w.txn, reader, Dep::Wr, Why::Saw { mop });
            }
            let next = match value.last() {
                None => 0,
                Some(last) => match position.get(last) {
                    Some(p) => p + 1,
                    None => continue, // not in the order: incompatible, reported above
                },
            };
            match order.get(next) {
                Some(&v) => {
                    if let Some(w) = index.committed_writer(key, v) {
                        link(edges, reader, w.txn, Dep::Rw, Why::Missed { mop, value: v });
                    }
                }
                None => {
                    for &(w, v) in &unread {
                        link(edges, reader, w.txn, Dep::Rw, Why::Missed { mop, value: v });
                    }
                }
            }
        }
    }
}

/// The committed transactions' list operations, by key, keys in order.
fn lists<'a>(index: &Index<'a>) -> Vec<(&'a str, ListOps<'a>)> {
    let mut lists: HashMap<&str, ListOps> = HashMap::new();
    for (t, txn) in index.txns.iter().enumerate().filter(|(t, _)| index.committed[*t]) {
        for (m, mop) in txn.ops.iter().enumerate() {
            let m = small(m);
            match mop {
                Mop::Read { key, value } => lists.entry(key).or_default().reads.push((t, m, value)),
                Mop::Append { key, value } => {
                    lists.entry(key).or_default().appends.push((Writer { txn: t, mop: m }, *value));
                }
                Mop::Write { .. } | Mop::ReadRegister { .. } => {}
            }
        }
    }
    let mut lists: Vec<(&str, ListOps)> = lists.into_iter().collect();
    lists.sort_unstable_by_key(|(key, _)| *key);
    lists
}

fn incompatible(index: &Index, key: &str, bad: Read, longest: Read) -> Found {
    let (bad_txn, longest_txn) = (index.txns[bad.0].id, index.txns[longest.0].id);
    let mut txns = vec![bad_txn, longest_txn];
    txns.dedup();
    Found {
        anomaly: Anomaly::IncompatibleOrder,
        txns,
        detail: format!(
            "{} ({}): T{bad_txn} read {key:?} = {:?} and T{longest_txn} read {:?}; neither is a prefix of the other",
            Anomaly::IncompatibleOrder,
            Anomaly::IncompatibleOrder.meaning(),
            bad.2,
            longest.2,
        ),
    }
}
