//! The fault state of every directed link between real nodes, shared by the
//! runner (which sets it from the run's history) and the relays (which apply
//! it to each packet).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tandem::engine::links::{Link, LinkState};
use tandem::scenario::{LatencyRange, LinkChange, Network, NodeIdx, Scope};

/// What a relay does with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Drop it.
    Drop,
    /// Forward it after this delay.
    Forward(Duration),
}

/// The state of every directed link `(from, to)`, shared between the runner
/// and the relays.
#[derive(Debug, Clone)]
pub struct FaultTable {
    inner: Arc<Mutex<LinkState>>,
}

impl FaultTable {
    /// Every link starts as `network` sets it.
    pub fn new(network: &Network) -> Self {
        FaultTable { inner: Arc::new(Mutex::new(LinkState::new(network))) }
    }

    /// Sets every link as `links` has it: a real cluster's relays follow
    /// its history ([`History::links`](tandem::history::History::links)).
    pub fn set(&self, links: LinkState) {
        *self.inner.lock().expect("fault table lock") = links;
    }

    /// Applies a link action: for relays that run without a history (the
    /// QUIC model's pins, calibration).
    pub fn apply(&self, change: &LinkChange, scope: &Scope) {
        self.inner.lock().expect("fault table lock").apply(change, scope);
    }

    /// Whether a partition drops everything on `from -> to`.
    pub fn partitioned(&self, from: NodeIdx, to: NodeIdx) -> bool {
        self.inner.lock().expect("fault table lock").link(from, to).partitioned
    }

    /// Decides the fate of one packet on `from -> to`.
    pub fn judge(&self, from: NodeIdx, to: NodeIdx, rng: &mut impl Rng) -> Verdict {
        // Every field, named: a new kind of link fault does not compile
        // until the relays carry it out.
        let Link { partitioned, latency: LatencyRange { min, max }, loss } =
            self.inner.lock().expect("fault table lock").link(from, to);
        if partitioned || (loss > 0.0 && rng.random_bool(loss.min(1.0))) {
            return Verdict::Drop;
        }
        Verdict::Forward(if max > min { rng.random_range(min..=max) } else { min })
    }
}
