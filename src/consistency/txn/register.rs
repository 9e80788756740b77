//! Read-write registers: the version order is only partly known, from the
//! initial value and from transactions that read a key and then wrote it.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::graph::{link, small, Dep, Edge, Why};
use super::index::Index;
use super::Mop;

/// The external reads and final writes of one register by committed
/// transactions.
#[derive(Default)]
struct RegisterOps {
    /// The reading transaction, the micro-operation, and the value read
    /// (`None`: the initial value). Only a transaction's first read of a
    /// key, before it writes the key, is external.
    reads: Vec<(usize, u32, Option<u64>)>,
    /// Each writing transaction's last write to the key: the
    /// micro-operation and the value.
    writes: BTreeMap<usize, (u32, u64)>,
}

/// Adds the dependencies the registers imply to `edges`.
pub(super) fn infer(index: &Index, edges: &mut Vec<Edge>) {
    for (key, ops) in registers(index) {
        let mut readers: HashMap<Option<u64>, Vec<(usize, u32)>> = HashMap::new();
        for &(reader, mop, value) in &ops.reads {
            readers.entry(value).or_default().push((reader, mop));
            if let Some(w) = value.and_then(|v| index.committed_writer(key, v)) {
                link(edges, w.txn, reader, Dep::Wr, Why::Saw { mop });
            }
        }
        // The initial value precedes every write.
        for &(reader, mop) in readers.get(&None).into_iter().flatten() {
            for (&w, &(_, value)) in &ops.writes {
                link(edges, reader, w, Dep::Rw, Why::Missed { mop, value });
            }
        }
        // What a transaction read of a key precedes what it then wrote.
        for &(t, _, read) in &ops.reads {
            let (Some(before), Some(&(write, after))) = (read, ops.writes.get(&t)) else { continue };
            if let Some(w) = index.committed_writer(key, before) {
                link(edges, w.txn, t, Dep::Ww, Why::Overwrote { mop: write, before });
            }
            for &(reader, mop) in &readers[&read] {
                link(edges, reader, t, Dep::Rw, Why::Missed { mop, value: after });
            }
        }
    }
}

/// The committed transactions' register operations, by key, keys in order.
fn registers<'a>(index: &Index<'a>) -> Vec<(&'a str, RegisterOps)> {
    let mut registers: HashMap<&str, RegisterOps> = HashMap::new();
    for (t, txn) in index.txns.iter().enumerate().filter(|(t, _)| index.committed[*t]) {
        let mut touched = HashSet::new();
        for (m, mop) in txn.ops.iter().enumerate() {
            let m = small(m);
            match mop {
                Mop::ReadRegister { key, value } if touched.insert(key) => {
                    registers.entry(key).or_default().reads.push((t, m, *value));
                }
                Mop::Write { key, value } => {
                    touched.insert(key);
                    registers.entry(key).or_default().writes.insert(t, (m, *value));
                }
                Mop::ReadRegister { .. } | Mop::Append { .. } | Mop::Read { .. } => {}
            }
        }
    }
    let mut registers: Vec<(&str, RegisterOps)> = registers.into_iter().collect();
    registers.sort_unstable_by_key(|(key, _)| *key);
    registers
}
