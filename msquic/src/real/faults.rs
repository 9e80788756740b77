//! The fault state of every directed link between real nodes, shared by the
//! runner (which sets it) and the relays (which apply it to each packet).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tandem::scenario::NodeIdx;

/// What happens to packets from one node to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Every packet is dropped.
    pub blocked: bool,
    /// Probability of dropping a packet.
    pub loss: f64,
    /// Added one-way delay, drawn uniformly from this range.
    pub latency: (Duration, Duration),
}

/// What a relay does with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Drop it.
    Drop,
    /// Forward it after this delay.
    Forward(Duration),
}

/// Faults per directed link `(from, to)`, with defaults for links not set.
#[derive(Debug, Clone)]
pub struct FaultTable {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug)]
struct Table {
    default: LinkFaults,
    links: BTreeMap<(NodeIdx, NodeIdx), LinkFaults>,
}

impl FaultTable {
    /// Every link starts with `default`.
    pub fn new(default: LinkFaults) -> Self {
        FaultTable { inner: Arc::new(Mutex::new(Table { default, links: BTreeMap::new() })) }
    }

    /// Changes the faults of the link `from -> to`.
    pub fn update(&self, from: NodeIdx, to: NodeIdx, change: impl FnOnce(&mut LinkFaults)) {
        let mut table = self.inner.lock().expect("fault table lock");
        let default = table.default;
        change(table.links.entry((from, to)).or_insert(default));
    }

    /// Decides the fate of one packet on `from -> to`.
    pub fn judge(&self, from: NodeIdx, to: NodeIdx, rng: &mut impl Rng) -> Verdict {
        let faults = {
            let table = self.inner.lock().expect("fault table lock");
            table.links.get(&(from, to)).copied().unwrap_or(table.default)
        };
        if faults.blocked || (faults.loss > 0.0 && rng.random_bool(faults.loss.min(1.0))) {
            return Verdict::Drop;
        }
        let (min, max) = faults.latency;
        Verdict::Forward(if max > min { rng.random_range(min..=max) } else { min })
    }
}
