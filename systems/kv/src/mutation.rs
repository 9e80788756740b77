//! Planted bugs: deliberate defects that prove tandem finds what breaks a
//! replicated store. They change behaviour only in a build with the crate
//! feature `mutations`; a run picks one with `mutation = "NAME"` (the
//! harness hands it to the node as [`NodeContext::planted_bug`](tandem::NodeContext)).
//!
//! | name | defect | caught by |
//! |---|---|---|
//! | `no-tiebreak` | equal timestamps are not ordered by node: each replica keeps the write it got first | L1 convergence |
//! | `no-clock-merge` | the clock ignores merged timestamps: a write can lose to an older one the node has seen | in-node `always!`, S2 |
//! | `drop-tombstones` | a delete removes the key instead of writing a tombstone: the value comes back | S2 monotonic reads |
//! | `skip-missing-keys` | anti-entropy compares only keys both sides hold: a restarted or cut-off replica never gets keys it lacks | L1 convergence |
//! | `restart-reuses-version` | versions leave out the writer's incarnation: a node restarted while cut off writes again with the version of its last write before the crash | L1 convergence, S2 |
//! | `purge-tombstones` | a tombstone is purged once every peer has said it holds a tombstone of the key, counting what a peer said of an earlier delete of it not purged yet: a peer cut off since keeps the value this delete deleted, and after the heal it comes back | S2 monotonic reads |
//!
//! The last two are deep: each needs several conditions, in order, and
//! each condition alone is harmless. `restart-reuses-version` needs a
//! writer that crashes and restarts while it cannot hear the others (a
//! fault), and writes of the same key before and after (an ordering).
//! `purge-tombstones` needs, of one key: a delete every replica hears of,
//! then a new value every replica takes before that tombstone is purged
//! (within [`TOMBSTONE_GRACE`](crate::node::TOMBSTONE_GRACE)), then a
//! partition (or a loss that breaks connections), a delete on one side
//! during it, and the heal at least the grace later.

use tandem::PlantedBug;

use crate::store::Rules;

/// A planted bug of the key-value node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mutation {
    /// Equal timestamps are resolved by arrival order, not by node index.
    NoTiebreak,
    /// The Lamport clock does not move past merged timestamps.
    NoClockMerge,
    /// Deletes remove the key locally and are not replicated.
    DropTombstones,
    /// Digest comparisons skip keys that one side lacks.
    SkipMissingKeys,
    /// Versions leave out the writer's incarnation.
    RestartReusesVersion,
    /// Tombstones are purged once every connected peer holds them.
    PurgeTombstones,
}

impl Mutation {
    /// Every planted bug.
    pub const ALL: [Mutation; 6] = [
        Mutation::NoTiebreak,
        Mutation::NoClockMerge,
        Mutation::DropTombstones,
        Mutation::SkipMissingKeys,
        Mutation::RestartReusesVersion,
        Mutation::PurgeTombstones,
    ];

    /// Whether planted bugs are compiled in (the `mutations` feature).
    pub const fn available() -> bool {
        cfg!(feature = "mutations")
    }

    /// The name used in scenario files and on the command line.
    pub fn name(self) -> &'static str {
        self.bug().name
    }

    /// The mutation called `name`.
    pub fn from_name(name: &str) -> Option<Mutation> {
        Mutation::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its name and what it breaks.
    pub fn bug(self) -> PlantedBug {
        let (name, description) = match self {
            Mutation::NoTiebreak => (
                "no-tiebreak",
                "equal Lamport timestamps are resolved by arrival order instead of node index, so replicas diverge",
            ),
            Mutation::NoClockMerge => (
                "no-clock-merge",
                "the clock ignores merged timestamps, so a node's new write can lose to an older one it has seen",
            ),
            Mutation::DropTombstones => (
                "drop-tombstones",
                "deletes remove the key instead of writing a tombstone, so anti-entropy resurrects deleted values",
            ),
            Mutation::SkipMissingKeys => (
                "skip-missing-keys",
                "anti-entropy compares only keys both replicas hold, so a replica that missed a key never gets it",
            ),
            Mutation::RestartReusesVersion => (
                "restart-reuses-version",
                "versions leave out the writer's incarnation, so a node restarted while cut off reuses its last version for a different value (needs a fault and an ordering)",
            ),
            Mutation::PurgeTombstones => (
                "purge-tombstones",
                "a tombstone is purged once every peer has said it holds a tombstone of the key, even of an earlier delete, so a replica cut off since brings the deleted value back (needs a delete, a new value, a partition, a second delete during it, then the heal)",
            ),
        };
        PlantedBug { name, description }
    }

    /// The store rules with this bug planted.
    pub fn rules(self) -> Rules {
        let correct = Rules::default();
        match self {
            Mutation::NoTiebreak => Rules { tiebreak: false, ..correct },
            Mutation::NoClockMerge => Rules { clock_merge: false, ..correct },
            Mutation::DropTombstones => Rules { tombstones: false, ..correct },
            Mutation::SkipMissingKeys => Rules { repair_missing: false, ..correct },
            Mutation::RestartReusesVersion => Rules { versioned_incarnation: false, ..correct },
            Mutation::PurgeTombstones => Rules { keep_tombstones: false, ..correct },
        }
    }
}

impl std::fmt::Display for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The store rules for an optional mutation (correct rules for `None`).
pub fn rules(mutation: Option<Mutation>) -> Rules {
    mutation.map_or_else(Rules::default, Mutation::rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_each_breaks_one_rule() {
        for m in Mutation::ALL {
            assert_eq!(Mutation::from_name(m.name()), Some(m));
            assert_ne!(m.rules(), Rules::default());
            assert!(!m.bug().description.is_empty());
        }
        assert_eq!(Mutation::from_name("nope"), None);
        assert_eq!(rules(None), Rules::default());
    }
}
