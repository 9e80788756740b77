//! The replicated state: a map of last-writer-wins registers stamped by a
//! Lamport clock, with tombstones for deletes, and the digest comparison
//! anti-entropy repairs divergent keys with.
//!
//! A [`Store`] is pure data: no I/O, no time, no randomness, so every rule
//! of the replication is unit-tested here.
//!
//! - A local write takes the next tick of the node's [clock](Store::clock);
//!   its [`Version`] is `(ts, node, incarnation)`: writes with the same
//!   timestamp are ordered by the writer's index, and no two writes share a
//!   version, even across a restart that lost the clock.
//! - A remote entry replaces the local one only when its version is newer
//!   (last writer wins), and the clock jumps past every timestamp it sees
//!   (Lamport's receive rule): a node's next write always beats every write
//!   it has seen.
//! - A delete writes a tombstone (an entry without a value): it replicates
//!   and wins like any write, so a deleted value cannot come back.
//!
//! ```
//! use tandem_kv::store::{Rules, Store};
//!
//! let mut a = Store::new(0, 0, Rules::default());
//! let mut b = Store::new(1, 0, Rules::default());
//! a.put("k", "from-a");
//! b.put("k", "from-b"); // the same timestamp: node 1 wins the tie
//! let (for_b, _) = a.diff(&b.digest());
//! for (key, entry) in for_b {
//!     b.merge(&key, entry);
//! }
//! let (for_a, _) = b.diff(&a.digest());
//! for (key, entry) in for_a {
//!     a.merge(&key, entry);
//! }
//! assert_eq!(a.get("k"), Some("from-b"));
//! assert_eq!(a.snapshot(), b.snapshot());
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of a write: a Lamport timestamp, then the writer's node
/// index as the tie-break, then the writer's incarnation. Versions are
/// totally ordered; the larger wins.
///
/// The incarnation makes versions unique: a restarted node has lost its
/// clock, and may stamp a new write with the timestamp of a write of its
/// previous life that it cannot hear of (its peers unreachable). Without the
/// incarnation the two writes would have one version, no replica could
/// order them, and the replicas would disagree for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// The writer's Lamport clock at the write.
    pub ts: u64,
    /// The writer's node index.
    pub node: u32,
    /// The writer's incarnation.
    pub incarnation: u64,
}

impl Version {
    /// The version `ts` of node `node` in its first incarnation.
    pub fn new(ts: u64, node: u32) -> Self {
        Version { ts, node, incarnation: 0 }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}.{}", self.ts, self.node, self.incarnation)
    }
}

/// One register: the newest write of a key the store knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Which write it is.
    pub version: Version,
    /// The value; `None` for a tombstone (the key was deleted).
    pub value: Option<String>,
}

/// The replication rules; every field is `true` in a correct store. A
/// `false` is a planted bug (see [`crate::mutation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Equal timestamps are ordered by node index. Without it, a tie keeps
    /// whichever write arrived first, and replicas may disagree for ever.
    pub tiebreak: bool,
    /// The clock jumps past every timestamp merged in. Without it, a node
    /// may write with a timestamp older than a value it has already seen.
    pub clock_merge: bool,
    /// A delete writes a tombstone. Without it, a delete removes the key
    /// locally and nothing replicates: the old value comes back.
    pub tombstones: bool,
    /// A digest comparison covers keys that one side lacks. Without it,
    /// only keys both sides hold are compared, and a key a replica never
    /// received is never repaired.
    pub repair_missing: bool,
    /// A version carries the writer's incarnation. Without it, a node
    /// restarted with its clock at 0 can give a new write the version of
    /// an older, different one.
    pub versioned_incarnation: bool,
    /// A tombstone is kept for ever. Without it, the node purges a tombstone
    /// once every peer has said it holds a tombstone *of that key* (see
    /// [`Store::purge`]), counting what a peer said of an earlier delete: a
    /// peer that took a newer value since, and was cut off before this
    /// delete, gives that value back after the heal.
    pub keep_tombstones: bool,
}

impl Default for Rules {
    /// The correct rules.
    fn default() -> Self {
        Rules {
            tiebreak: true,
            clock_merge: true,
            tombstones: true,
            repair_missing: true,
            versioned_incarnation: true,
            keep_tombstones: true,
        }
    }
}

impl Rules {
    /// Whether `a` beats `b` under these rules.
    pub fn newer(&self, a: Version, b: Version) -> bool {
        if self.tiebreak {
            a > b
        } else {
            a.ts > b.ts
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The remote entry replaced the local one (`None`: the key was new).
    Applied {
        /// The entry it replaced.
        previous: Option<Entry>,
    },
    /// The local entry is as new or newer: nothing changed.
    Kept,
}

/// A replica: last-writer-wins registers and the node's Lamport clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    node: u32,
    incarnation: u64,
    clock: u64,
    entries: BTreeMap<String, Entry>,
    rules: Rules,
}

/// A digest: every key the store holds (tombstones included) with its version.
pub type Digest = Vec<(String, Version)>;

impl Store {
    /// An empty replica of node `node` in its incarnation `incarnation`, its
    /// clock at 0.
    pub fn new(node: u32, incarnation: u64, rules: Rules) -> Self {
        Store { node, incarnation, clock: 0, entries: BTreeMap::new(), rules }
    }

    /// The node's Lamport clock: at least every timestamp it wrote or merged.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The rules it follows.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// The value of `key`; `None` when it is absent or deleted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key)?.value.as_deref()
    }

    /// The register of `key`, tombstones included.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every register, in key order, tombstones included.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// How many registers it holds, tombstones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no register at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live keys and values (tombstones left out).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.entries.iter().filter_map(|(k, e)| Some((k.clone(), e.value.clone()?))).collect()
    }

    fn tick(&mut self) -> Version {
        self.clock += 1;
        let incarnation = if self.rules.versioned_incarnation { self.incarnation } else { 0 };
        Version { ts: self.clock, node: self.node, incarnation }
    }

    /// A local write of `key`: the next clock tick, replacing whatever the
    /// key held. Returns the new entry and the one it replaced.
    pub fn put(&mut self, key: &str, value: &str) -> (Entry, Option<Entry>) {
        let entry = Entry { version: self.tick(), value: Some(value.to_string()) };
        let previous = self.entries.insert(key.to_string(), entry.clone());
        (entry, previous)
    }

    /// A local delete of `key`: a tombstone at the next clock tick. Returns
    /// the tombstone (`None` when the rules drop tombstones and the key was
    /// just removed) and the entry it replaced.
    pub fn delete(&mut self, key: &str) -> (Option<Entry>, Option<Entry>) {
        if !self.rules.tombstones {
            return (None, self.entries.remove(key));
        }
        let entry = Entry { version: self.tick(), value: None };
        let previous = self.entries.insert(key.to_string(), entry.clone());
        (Some(entry), previous)
    }

    /// Merges a remote entry of `key`: it replaces the local one when newer.
    /// The clock moves past its timestamp either way.
    pub fn merge(&mut self, key: &str, entry: Entry) -> Merged {
        if self.rules.clock_merge {
            self.clock = self.clock.max(entry.version.ts);
        }
        match self.entries.get(key) {
            Some(local) if !self.rules.newer(entry.version, local.version) => Merged::Kept,
            _ => Merged::Applied { previous: self.entries.insert(key.to_string(), entry) },
        }
    }

    /// Drops the register of `key` when it is still the tombstone `version`
    /// (the clock keeps its value). Returns whether it did. A correct node
    /// never calls it ([`Rules::keep_tombstones`]): a purged tombstone no
    /// longer beats the older value it deleted.
    pub fn purge(&mut self, key: &str, version: Version) -> bool {
        match self.entries.get(key) {
            Some(entry) if entry.value.is_none() && entry.version == version => {
                self.entries.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Every key with its version, in key order.
    pub fn digest(&self) -> Digest {
        self.entries.iter().map(|(k, e)| (k.clone(), e.version)).collect()
    }

    /// A 64-bit summary of the digest: equal stores have equal hashes.
    pub fn digest_hash(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for (key, entry) in &self.entries {
            hasher.update(&(key.len() as u64).to_le_bytes());
            hasher.update(key.as_bytes());
            hasher.update(&entry.version.ts.to_le_bytes());
            hasher.update(&entry.version.node.to_le_bytes());
            hasher.update(&entry.version.incarnation.to_le_bytes());
        }
        hasher.digest()
    }

    /// Compares the store with a peer's digest: the entries the peer should
    /// take (newer here, or missing there) and the keys this store should
    /// ask for (newer there, or missing here).
    pub fn diff(&self, theirs: &[(String, Version)]) -> (Vec<(String, Entry)>, Vec<String>) {
        let theirs: BTreeMap<&str, Version> = theirs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut give = Vec::new();
        for (key, entry) in &self.entries {
            let send = match theirs.get(key.as_str()) {
                Some(&version) => self.rules.newer(entry.version, version),
                // A store that purges tombstones sends none to a peer that
                // lacks the key: it may have purged it.
                None => self.rules.repair_missing && (self.rules.keep_tombstones || entry.value.is_some()),
            };
            if send {
                give.push((key.clone(), entry.clone()));
            }
        }
        let want = theirs
            .iter()
            .filter(|&(key, &version)| match self.entries.get(*key) {
                Some(local) => self.rules.newer(version, local.version),
                None => self.rules.repair_missing,
            })
            .map(|(key, _)| key.to_string())
            .collect();
        (give, want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(a: &mut Store, b: &mut Store) {
        let (for_b, want) = a.diff(&b.digest());
        for (k, e) in for_b {
            b.merge(&k, e);
        }
        for k in want {
            let e = b.entry(&k).expect("wanted keys exist there").clone();
            a.merge(&k, e);
        }
    }

    #[test]
    fn versions_order_by_timestamp_then_node() {
        let v = Version::new;
        assert!(v(2, 0) > v(1, 5));
        assert!(v(1, 1) > v(1, 0));
        let rules = Rules::default();
        assert!(rules.newer(v(1, 1), v(1, 0)));
        assert!(!rules.newer(v(1, 0), v(1, 0)));
        let no_tiebreak = Rules { tiebreak: false, ..rules };
        assert!(!no_tiebreak.newer(v(1, 1), v(1, 0)));
        assert_eq!(v(3, 2).to_string(), "3@2.0");
    }

    #[test]
    fn a_restarted_node_never_reuses_a_version() {
        // Its first life wrote at ts 1; restarted and cut off, it writes at
        // ts 1 again: the later life wins everywhere, and a peer that held
        // the first write repairs.
        let mut first = Store::new(0, 0, Rules::default());
        let mut peer = Store::new(1, 0, Rules::default());
        let (old, _) = first.put("k", "old");
        peer.merge("k", old.clone());
        let mut second = Store::new(0, 1, Rules::default());
        let (new, _) = second.put("k", "new");
        assert_eq!((new.version.ts, new.version.node), (old.version.ts, old.version.node));
        assert!(new.version > old.version);
        sync(&mut second, &mut peer);
        assert_eq!(peer.get("k"), Some("new"));
        assert_eq!(second.digest(), peer.digest());
    }

    #[test]
    fn local_writes_tick_and_replace() {
        let mut s = Store::new(2, 0, Rules::default());
        let (e1, prev) = s.put("a", "x");
        assert_eq!((e1.version, prev), (Version::new(1, 2), None));
        let (e2, prev) = s.put("a", "y");
        assert_eq!(e2.version.ts, 2);
        assert_eq!(prev, Some(e1));
        assert_eq!(s.get("a"), Some("y"));
        let (tomb, _) = s.delete("a");
        assert_eq!(tomb.unwrap().value, None);
        assert_eq!(s.get("a"), None);
        assert_eq!(s.len(), 1, "the tombstone stays");
        assert!(s.snapshot().is_empty());
    }

    #[test]
    fn merge_keeps_the_newer_and_moves_the_clock() {
        let mut s = Store::new(0, 0, Rules::default());
        s.put("a", "mine");
        let old = Entry { version: Version::new(1, 0), value: Some("old".into()) };
        assert_eq!(s.merge("a", old), Merged::Kept);
        let newer = Entry { version: Version::new(7, 3), value: Some("theirs".into()) };
        assert!(matches!(s.merge("a", newer), Merged::Applied { previous: Some(_) }));
        assert_eq!(s.get("a"), Some("theirs"));
        assert_eq!(s.clock(), 7);
        let (next, _) = s.put("a", "after");
        assert!(next.version > Version::new(7, 3), "a write beats what the node has seen");
        // A stale entry of another key still moves the clock.
        s.merge("b", Entry { version: Version::new(20, 1), value: None });
        assert_eq!(s.clock(), 20);
    }

    #[test]
    fn merge_is_commutative_idempotent_and_converges() {
        let entries = [
            ("k", Entry { version: Version::new(1, 0), value: Some("a".into()) }),
            ("k", Entry { version: Version::new(1, 1), value: Some("b".into()) }),
            ("k", Entry { version: Version::new(2, 0), value: None }),
            ("j", Entry { version: Version::new(1, 2), value: Some("c".into()) }),
        ];
        let mut forward = Store::new(9, 0, Rules::default());
        let mut backward = Store::new(9, 0, Rules::default());
        for (k, e) in entries.iter().cloned() {
            forward.merge(k, e.clone());
            forward.merge(k, e);
        }
        for (k, e) in entries.iter().rev().cloned() {
            backward.merge(k, e);
        }
        assert_eq!(forward, backward);
        assert_eq!(forward.get("k"), None);
        assert_eq!(forward.get("j"), Some("c"));
    }

    #[test]
    fn diff_repairs_both_ways() {
        let mut a = Store::new(0, 0, Rules::default());
        let mut b = Store::new(1, 0, Rules::default());
        a.put("only-a", "1");
        b.put("only-b", "2");
        a.put("both", "a");
        b.put("both", "b");
        b.delete("only-b");
        sync(&mut a, &mut b);
        assert_eq!(a, Store { node: 0, clock: a.clock(), ..b.clone() });
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest_hash(), b.digest_hash());
        assert_eq!(a.get("both"), Some("b"), "node 1 wins the tie at ts 2");
        assert_eq!(a.diff(&b.digest()), (vec![], vec![]));
    }

    #[test]
    fn planted_rules_break_what_they_say() {
        // no tie-break: equal timestamps never repair.
        let rules = Rules { tiebreak: false, ..Rules::default() };
        let (mut a, mut b) = (Store::new(0, 0, rules), Store::new(1, 0, rules));
        a.put("k", "a");
        b.put("k", "b");
        sync(&mut a, &mut b);
        assert_ne!(a.snapshot(), b.snapshot());
        // no clock merge: a write after seeing a newer value loses to it.
        let rules = Rules { clock_merge: false, ..Rules::default() };
        let mut s = Store::new(0, 0, rules);
        s.merge("k", Entry { version: Version::new(5, 1), value: Some("seen".into()) });
        let (mine, previous) = s.put("k", "mine");
        assert!(mine.version < previous.unwrap().version);
        // no tombstones: the deleted value comes back.
        let rules = Rules { tombstones: false, ..Rules::default() };
        let (mut a, mut b) = (Store::new(0, 0, rules), Store::new(1, 0, rules));
        a.put("k", "v");
        sync(&mut a, &mut b);
        assert_eq!(a.delete("k").0, None);
        sync(&mut a, &mut b);
        assert_eq!(a.get("k"), Some("v"));
        // purged tombstones: the older value comes back from a replica that
        // missed the delete.
        let mut s = Store::new(0, 0, Rules::default());
        let mut cut_off = Store::new(1, 0, Rules::default());
        s.put("k", "v");
        sync(&mut s, &mut cut_off);
        let (tomb, _) = s.delete("k");
        let tomb = tomb.unwrap();
        assert!(!s.purge("k", Version::new(1, 0)), "only the tombstone itself");
        assert!(s.purge("k", tomb.version) && s.is_empty());
        sync(&mut s, &mut cut_off);
        assert_eq!(s.get("k"), Some("v"));
        // no repair of missing keys: a fresh replica stays empty.
        let rules = Rules { repair_missing: false, ..Rules::default() };
        let (mut a, mut b) = (Store::new(0, 0, rules), Store::new(1, 0, rules));
        a.put("k", "v");
        sync(&mut a, &mut b);
        assert!(b.is_empty());
    }
}
