//! Who wrote each value, which transactions committed, and the anomalies a
//! single read shows (G1a, G1b).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::graph::small;
use super::{Anomaly, Found, Mop, Outcome, Txn};

/// The transaction that appended or wrote a value: its position in the
/// history, and the micro-operation's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Writer {
    pub txn: usize,
    pub mop: u32,
}

/// A history with its writes indexed and its committed set known.
pub(super) struct Index<'a> {
    pub txns: &'a [Txn],
    /// Committed, or unknown with a write that a committed transaction read.
    pub committed: Vec<bool>,
    writers: HashMap<(&'a str, u64), Writer>,
}

impl<'a> Index<'a> {
    /// Indexes `txns`, or says why they are malformed.
    pub fn new(txns: &'a [Txn]) -> Result<Index<'a>, String> {
        let mut ids = HashSet::new();
        let mut lists: HashMap<&str, bool> = HashMap::new();
        let mut writers = HashMap::new();
        for (i, txn) in txns.iter().enumerate() {
            if !ids.insert(txn.id) {
                return Err(format!("two transactions have id {}", txn.id));
            }
            for (m, mop) in txn.ops.iter().enumerate() {
                let key = mop.key();
                let list = matches!(mop, Mop::Append { .. } | Mop::Read { .. });
                if *lists.entry(key).or_insert(list) != list {
                    return Err(format!("{key:?} is used both as a list and as a register (T{})", txn.id));
                }
                let (Mop::Append { value, .. } | Mop::Write { value, .. }) = mop else { continue };
                if writers.insert((key, *value), Writer { txn: i, mop: small(m) }).is_some() {
                    return Err(format!("{value} is written to {key:?} twice (T{}); values must be unique", txn.id));
                }
            }
        }
        let mut index = Index { txns, committed: Vec::new(), writers };
        index.committed = index.committed_set();
        Ok(index)
    }

    /// The committed transaction that wrote `value` to `key`, if any.
    pub fn committed_writer(&self, key: &str, value: u64) -> Option<Writer> {
        self.writers.get(&(key, value)).copied().filter(|w| self.committed[w.txn])
    }

    /// The writes of the transactions that ended with `outcome`.
    fn writes_of(&self, outcome: Outcome) -> HashMap<(&'a str, u64), usize> {
        let writes = self.writers.iter().filter(|(_, w)| self.txns[w.txn].outcome == outcome);
        writes.map(|(&written, w)| (written, w.txn)).collect()
    }

    /// The committed transactions and the unknown ones whose writes they
    /// (transitively) read.
    fn committed_set(&self) -> Vec<bool> {
        let mut committed: Vec<bool> = self.txns.iter().map(|t| t.outcome == Outcome::Committed).collect();
        let unknown = self.writes_of(Outcome::Unknown);
        if unknown.is_empty() {
            return committed;
        }
        let mut todo: Vec<usize> = (0..self.txns.len()).filter(|&i| committed[i]).collect();
        while let Some(i) = todo.pop() {
            for mop in &self.txns[i].ops {
                for value in observed(mop) {
                    let Some(&w) = unknown.get(&(mop.key(), value)) else { continue };
                    if !committed[w] {
                        committed[w] = true;
                        todo.push(w);
                    }
                }
            }
        }
        committed
    }

    /// G1a and G1b, once per reader and writer, in history order.
    pub fn g1a_g1b(&self) -> Vec<Found> {
        let aborted = self.writes_of(Outcome::Aborted);
        let mut found = Vec::new();
        let mut seen = BTreeSet::new();
        for (reader, txn) in self.txns.iter().enumerate().filter(|(i, _)| self.committed[*i]) {
            for mop in &txn.ops {
                let key = mop.key();
                if !aborted.is_empty() {
                    for value in observed(mop) {
                        if let Some(&w) = aborted.get(&(key, value)) {
                            if seen.insert((Anomaly::G1a, reader, w)) {
                                found.push(self.found(Anomaly::G1a, reader, mop, w, value));
                            }
                        }
                    }
                }
                let Some(last) = observed(mop).last() else { continue };
                let Some(&w) = self.writers.get(&(key, last)) else { continue };
                let intermediate = self.txns[w.txn].ops[w.mop as usize + 1..]
                    .iter()
                    .any(|m| matches!(m, Mop::Append { .. } | Mop::Write { .. }) && m.key() == key);
                let committed_elsewhere = w.txn != reader && self.txns[w.txn].outcome != Outcome::Aborted;
                if intermediate && committed_elsewhere && seen.insert((Anomaly::G1b, reader, w.txn)) {
                    found.push(self.found(Anomaly::G1b, reader, mop, w.txn, last));
                }
            }
        }
        found
    }

    /// G1a or G1b: `reader`'s `mop` saw `writer`'s `value`.
    fn found(&self, anomaly: Anomaly, reader: usize, mop: &Mop, writer: usize, value: u64) -> Found {
        let (reader, writer) = (&self.txns[reader], &self.txns[writer]);
        let verb = if matches!(mop, Mop::Read { .. }) { "appended" } else { "wrote" };
        let why = match anomaly {
            Anomaly::G1a => format!("T{}, which aborted, {verb} {value}", writer.id),
            _ => format!("T{} {verb} {value} and then more to {:?}", writer.id, mop.key()),
        };
        Found {
            anomaly,
            txns: vec![reader.id, writer.id],
            detail: format!("{anomaly} ({}): T{} read {}, but {why}", anomaly.meaning(), reader.id, show(mop)),
        }
    }
}

/// The values a read returned (none for the initial register value, or
/// for a write).
pub(super) fn observed(mop: &Mop) -> impl DoubleEndedIterator<Item = u64> + '_ {
    let values: &[u64] = match mop {
        Mop::Read { value, .. } => value,
        Mop::ReadRegister { value: Some(value), .. } => std::slice::from_ref(value),
        _ => &[],
    };
    values.iter().copied()
}

/// A micro-operation as reports show it: `"x" = [1, 2]`, `"y" = nil`.
pub(super) fn show(mop: &Mop) -> String {
    match mop {
        Mop::Append { key, value } | Mop::Write { key, value } => format!("{key:?} <- {value}"),
        Mop::Read { key, value } => format!("{key:?} = {value:?}"),
        Mop::ReadRegister { key, value: Some(value) } => format!("{key:?} = {value}"),
        Mop::ReadRegister { key, value: None } => format!("{key:?} = nil"),
    }
}
