//! Planted bugs: deliberate defects that exploration must find.
//!
//! | name | defect | caught by |
//! |---|---|---|
//! | `no-dedup` | the receiver skips de-duplication: a resent message is delivered again | S2 no duplicates |
//! | `self-delivery` | the origin delivers its own broadcast | S1 no self-delivery |
//! | `stale-rebind` | a rebind is advertised without a new address version | L1 membership convergence |
//! | `no-retransmit` | unacknowledged messages are not resent on a new connection | L2 delivery |
//! | `forget-on-restart` | an origin forgets what it owes a peer that restarted | L2 delivery |
//! | `rebind-drops-outbox` | a rebind drops the messages still unacknowledged | L2 delivery |
//! | `version-before-incarnation` | member records are ordered by address version before incarnation: a node that rebound twice, restarted and rebound again is ignored at its new address | L1 membership convergence |
//!
//! The last two are deep. `rebind-drops-outbox` needs a fault that holds
//! acknowledgements back and a rebind during it. `version-before-incarnation`
//! needs, all on one node and in this order, two rebinds, a crash and a
//! restart (which starts the address version at 0 again), then a rebind:
//! its record then has a higher incarnation but a lower version than the
//! one its peers hold, and they keep dialling its old address. Any one of
//! those alone is harmless.
//!
//! The names are always known (so scenario files naming a mutation parse in
//! every build), but a mutation only changes behaviour when the crate is built
//! with the `mutations` feature; [`Mutation::available`] tells which.

use std::fmt;
use std::str::FromStr;

/// A planted bug in the reference node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutation {
    /// The receiver skips de-duplication (breaks S2).
    NoDedup,
    /// The origin delivers its own broadcast (breaks S1).
    SelfDelivery,
    /// A rebind is not advertised with a new version (breaks L1).
    StaleRebind,
    /// Unacknowledged messages are not resent after a reconnect (breaks L2).
    NoRetransmit,
    /// A restarted node is not sent what it missed (breaks L2).
    ForgetOnRestart,
    /// A rebind drops the messages still unacknowledged (breaks L2); needs
    /// a fault that holds acknowledgements back and a rebind on top of it.
    RebindDropsOutbox,
    /// Member records are ordered by address version before incarnation
    /// (breaks L1); needs two rebinds, a restart, then a rebind, of one node.
    VersionBeforeIncarnation,
}

impl Mutation {
    /// Every mutation, in a fixed order.
    pub const ALL: [Mutation; 7] = [
        Mutation::NoDedup,
        Mutation::SelfDelivery,
        Mutation::StaleRebind,
        Mutation::NoRetransmit,
        Mutation::ForgetOnRestart,
        Mutation::RebindDropsOutbox,
        Mutation::VersionBeforeIncarnation,
    ];

    /// The name used on the command line and in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Mutation::NoDedup => "no-dedup",
            Mutation::SelfDelivery => "self-delivery",
            Mutation::StaleRebind => "stale-rebind",
            Mutation::NoRetransmit => "no-retransmit",
            Mutation::ForgetOnRestart => "forget-on-restart",
            Mutation::RebindDropsOutbox => "rebind-drops-outbox",
            Mutation::VersionBeforeIncarnation => "version-before-incarnation",
        }
    }

    /// What the bug breaks, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Mutation::NoDedup => "the receiver skips de-duplication, so a resent message is delivered again (breaks S2)",
            Mutation::SelfDelivery => "the origin delivers its own broadcast (breaks S1)",
            Mutation::StaleRebind => "a rebind is advertised without a new address version, so peers keep the old address (breaks L1)",
            Mutation::NoRetransmit => "unacknowledged messages are not resent on a new connection (breaks L2)",
            Mutation::ForgetOnRestart => "an origin forgets what it owes a peer that restarted (breaks L2)",
            Mutation::RebindDropsOutbox => {
                "a rebind drops the messages still unacknowledged, so a peer cut off at the time never gets them (breaks L2; needs a fault and a rebind during it)"
            }
            Mutation::VersionBeforeIncarnation => {
                "member records are ordered by address version before incarnation, so a node that rebound twice, restarted and rebound again stays known at its old address (breaks L1; needs two rebinds, a restart, then a rebind)"
            }
        }
    }

    /// Whether this build can plant mutations (the `mutations` feature).
    pub fn available() -> bool {
        cfg!(feature = "mutations")
    }
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown mutation name; the message lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutation `{0}`, expected one of: no-dedup, self-delivery, stale-rebind, no-retransmit, forget-on-restart, rebind-drops-outbox, version-before-incarnation")]
pub struct UnknownMutation(pub String);

impl FromStr for Mutation {
    type Err = UnknownMutation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mutation::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownMutation(s.to_string()))
    }
}
