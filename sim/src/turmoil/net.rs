//! The turmoil backend's table of link loss and one-way holds, which its
//! transports read when they send.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What the runner sets per directed link and every simulated connection
/// reads when it sends: the loss rate, and whether the link is held (one
/// way of a one-way partition).
#[derive(Debug, Clone, Default)]
pub struct LinkTable {
    inner: Arc<Mutex<Links>>,
}

#[derive(Debug, Default)]
struct Links {
    default_loss: f64,
    losses: BTreeMap<(IpAddr, IpAddr), f64>,
    held: BTreeSet<(IpAddr, IpAddr)>,
}

impl LinkTable {
    /// A table where every link loses `rate` and none is held.
    pub fn new(rate: f64) -> Self {
        let table = LinkTable::default();
        table.lock().default_loss = rate;
        table
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Links> {
        self.inner.lock().expect("link table lock")
    }

    /// Sets the loss rate from `src` to `dst`.
    pub fn set_loss(&self, src: IpAddr, dst: IpAddr, rate: f64) {
        assert!((0.0..=1.0).contains(&rate), "loss rate {rate} outside 0..=1");
        self.lock().losses.insert((src, dst), rate);
    }

    /// The loss rate from `src` to `dst`.
    pub fn loss(&self, src: IpAddr, dst: IpAddr) -> f64 {
        let links = self.lock();
        links.losses.get(&(src, dst)).copied().unwrap_or(links.default_loss)
    }

    /// Holds (`true`) or releases what `src` sends to `dst`.
    pub fn set_held(&self, src: IpAddr, dst: IpAddr, held: bool) {
        let mut links = self.lock();
        if held {
            links.held.insert((src, dst));
        } else {
            links.held.remove(&(src, dst));
        }
    }

    /// Whether what `src` sends to `dst` is held.
    pub fn held(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.lock().held.contains(&(src, dst))
    }
}
