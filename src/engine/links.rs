//! [`LinkState`]: what every link of a cluster is like, folded from the
//! timeline's link actions. The one place their meaning per link is kept;
//! a run's history keeps its links in one
//! ([`History::links`](crate::history::History::links)), which coverage,
//! the picture and the runner read.

use std::collections::BTreeMap;

use crate::scenario::{LatencyRange, LinkChange, Network, NodeIdx, Scope};

/// One ordered link `(x, y)`: what `x` sends to `y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Whether a partition drops everything on it.
    pub partitioned: bool,
    /// Its latency.
    pub latency: LatencyRange,
    /// Its probability of dropping a packet.
    pub loss: f64,
}

impl Link {
    /// Applies `change` to this link.
    pub fn set(&mut self, change: &LinkChange) {
        match *change {
            LinkChange::Partition { .. } => self.partitioned = true,
            LinkChange::Heal => self.partitioned = false,
            LinkChange::Latency(latency) => self.latency = latency,
            LinkChange::Loss(loss) => self.loss = loss,
        }
    }
}

/// The link changes the settle tail makes on every link: heal, no loss,
/// the scenario's latency.
pub fn settle(network: &Network) -> [LinkChange; 3] {
    [LinkChange::Heal, LinkChange::Loss(0.0), LinkChange::Latency(network.latency)]
}

/// Every link of a cluster of any size: one link that every link is like,
/// and the links that differ from it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    network: Network,
    every: Link,
    differ: BTreeMap<(NodeIdx, NodeIdx), Link>,
}

impl LinkState {
    /// Every link as `network` sets it, none partitioned.
    pub fn new(network: &Network) -> LinkState {
        let every = Link { partitioned: false, latency: network.latency, loss: network.loss };
        LinkState { network: network.clone(), every, differ: BTreeMap::new() }
    }

    /// Applies a link action: `change` on every link [`LinkChange::links`] names.
    pub fn apply(&mut self, change: &LinkChange, scope: &Scope) {
        match scope {
            Scope::Every => {
                self.every.set(change);
                self.differ.values_mut().for_each(|link| link.set(change));
            }
            Scope::Between { .. } => {
                // Links between groups are the same in a cluster of any size.
                for key in change.links(scope, 0) {
                    self.differ.entry(key).or_insert(self.every).set(change);
                }
            }
        }
        let every = self.every;
        self.differ.retain(|_, link| *link != every);
    }

    /// Applies the settle tail's changes ([`settle`]).
    pub fn settle(&mut self) {
        for change in settle(&self.network) {
            self.apply(&change, &Scope::Every);
        }
    }

    /// Link `(x, y)`.
    pub fn link(&self, x: NodeIdx, y: NodeIdx) -> Link {
        self.differ.get(&(x, y)).copied().unwrap_or(self.every)
    }

    /// The scenario's link defaults it started from.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Whether some link is partitioned both ways.
    pub fn partitioned(&self) -> bool {
        self.every.partitioned || self.differ.iter().any(|(&(x, y), l)| l.partitioned && self.link(y, x).partitioned)
    }

    /// Whether some link is partitioned one way only.
    pub fn oneway(&self) -> bool {
        self.differ.iter().any(|(&(x, y), l)| l.partitioned != self.link(y, x).partitioned)
    }

    /// Whether some link's loss differs from the scenario's.
    pub fn lossy(&self) -> bool {
        self.links().any(|l| l.loss != self.network.loss)
    }

    /// Whether some link's latency differs from the scenario's.
    pub fn slow(&self) -> bool {
        self.links().any(|l| l.latency != self.network.latency)
    }

    /// The link every link is like and those that differ from it.
    fn links(&self) -> impl Iterator<Item = &Link> {
        std::iter::once(&self.every).chain(self.differ.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn between(a: &[NodeIdx], b: &[NodeIdx]) -> Scope {
        Scope::Between { a: a.to_vec(), b: b.to_vec() }
    }

    #[test]
    fn a_heal_restores_its_links_both_ways_and_no_others() {
        let mut state = LinkState::new(&Network::default());
        state.apply(&LinkChange::Partition { oneway: false }, &between(&[0], &[1, 2]));
        state.apply(&LinkChange::Heal, &between(&[0], &[1]));
        let cut = |x, y| state.link(x, y).partitioned;
        assert!(!cut(0, 1) && !cut(1, 0), "healed both ways");
        assert!(cut(0, 2) && cut(2, 0), "0 <-> 2 is still partitioned");
        assert!(state.partitioned() && !state.oneway());
        state.apply(&LinkChange::Partition { oneway: true }, &between(&[1], &[2]));
        assert!(state.oneway());
        state.settle();
        assert_eq!(state, LinkState::new(&Network::default()));
    }

    #[test]
    fn a_change_on_every_link_replaces_the_changes_between_groups() {
        let mut state = LinkState::new(&Network::default());
        state.apply(&LinkChange::Loss(0.5), &between(&[0], &[1]));
        assert_eq!((state.link(1, 0).loss, state.link(0, 2).loss), (0.5, 0.0));
        assert!(state.lossy() && !state.slow());
        state.apply(&LinkChange::Loss(0.0), &Scope::Every);
        assert!(!state.lossy());
        assert_eq!(state, LinkState::new(&Network::default()));
    }
}
