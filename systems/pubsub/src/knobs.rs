//! The reference node's knobs: its outbox capacity and timers, within the
//! ranges a correct node must work with. Their defaults are the node's own
//! ([`NodeConfig::new`](crate::node::NodeConfig::new), [`Timing::default`](crate::node::Timing::default)), so a scenario without
//! `[knobs]` runs the node as it always ran.

use std::time::Duration;

use tandem::{Knob, Knobs};

use crate::node::Timing;

/// Unacknowledged messages kept per peer before sends are refused.
pub const OUTBOX_CAPACITY: Knob = Knob {
    name: "outbox_capacity",
    description: "unacknowledged messages kept per peer",
    default: 4096,
    min: 64,
    max: 4096,
};

/// How often the membership view is pushed, in milliseconds.
pub const GOSSIP_INTERVAL_MS: Knob = Knob {
    name: "gossip_interval_ms",
    description: "membership gossip period (ms)",
    default: 500,
    min: 100,
    max: 1000,
};

/// How long a dial may take, in milliseconds.
pub const CONNECT_TIMEOUT_MS: Knob =
    Knob { name: "connect_timeout_ms", description: "dial timeout (ms)", default: 1000, min: 250, max: 2000 };

/// How long a peer may take to answer the hello, in milliseconds.
pub const HANDSHAKE_TIMEOUT_MS: Knob =
    Knob { name: "handshake_timeout_ms", description: "hello timeout (ms)", default: 1000, min: 250, max: 2000 };

/// The first redial delay, in milliseconds.
pub const BACKOFF_MIN_MS: Knob =
    Knob { name: "backoff_min_ms", description: "first redial delay (ms)", default: 50, min: 10, max: 200 };

/// The cap of the doubling redial delay, in milliseconds.
pub const BACKOFF_MAX_MS: Knob =
    Knob { name: "backoff_max_ms", description: "largest redial delay (ms)", default: 1000, min: 200, max: 2000 };

/// Every knob of the reference node.
pub fn all() -> Vec<Knob> {
    vec![OUTBOX_CAPACITY, GOSSIP_INTERVAL_MS, CONNECT_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS, BACKOFF_MIN_MS, BACKOFF_MAX_MS]
}

/// The outbox capacity a run's knobs set.
pub fn outbox_capacity(knobs: &Knobs) -> usize {
    knobs.value(&OUTBOX_CAPACITY) as usize
}

/// The timers a run's knobs set.
pub fn timing(knobs: &Knobs) -> Timing {
    let millis = |knob: &Knob| Duration::from_millis(knobs.value(knob) as u64);
    Timing {
        gossip_interval: millis(&GOSSIP_INTERVAL_MS),
        connect_timeout: millis(&CONNECT_TIMEOUT_MS),
        handshake_timeout: millis(&HANDSHAKE_TIMEOUT_MS),
        backoff_min: millis(&BACKOFF_MIN_MS),
        backoff_max: millis(&BACKOFF_MAX_MS),
        ..Timing::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{NodeConfig, NodeId};

    #[test]
    fn the_defaults_are_the_nodes_own() {
        let defaults = Knobs::default();
        let config = NodeConfig::new(NodeId(0), "127.0.0.1:1".parse().unwrap());
        assert_eq!(timing(&defaults), config.timing);
        assert_eq!(outbox_capacity(&defaults), config.outbox_capacity);
        assert!(all().iter().all(|k| (k.min..=k.max).contains(&k.default)));
        const { assert!(BACKOFF_MIN_MS.max <= BACKOFF_MAX_MS.min, "the redial delay never starts above its cap") };
    }
}
