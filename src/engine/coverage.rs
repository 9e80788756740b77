//! A run's coverage signature: what its history saw, as a set of small
//! hashes, each with when and where the run first reached it, so that
//! exploration can tell a case that reached somewhere new, and when.
//!
//! Each element is one pair of consecutive events of one node (their
//! stable kind names, see [`kind_label`]) together with the fault kinds
//! active when the second happened (a partition, a one-way partition, loss
//! or latency other than the scenario's, as [`LinkState`] has the links; a
//! crashed node; a disk fault), and each abstract state the system names
//! ([`System::abstract_state`]). The hashes are xxh3 over a
//! canonical byte encoding of those names, never `Debug` output, so a
//! signature is the same in every process and build of the same code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::ser::{self, Impossible, Serialize, SerializeStruct};
use xxhash_rust::xxh3::xxh3_64;

use crate::engine::links::LinkState;
use crate::history::{EventKind, History, OpResult};
use crate::probe::AssertKind;
use crate::scenario::{Action, ClockChange, DiskFault, NodeIdx, Scenario};
use crate::system::System;

/// A coverage signature: hashes, each one thing a run reached, with when
/// and where it first reached it.
pub type Signature = BTreeMap<u64, Reached>;

/// When and where a run first reached something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reached {
    /// The time of the event that reached it.
    pub at: Duration,
    /// The node of that event, when it has one.
    pub node: Option<NodeIdx>,
}

/// The signature of a run of `scenario` that recorded `history`.
pub fn signature<S: System>(scenario: &Scenario, history: &History<S>) -> Signature {
    let mut faults = Faults::new(scenario);
    let mut previous: BTreeMap<NodeIdx, u64> = BTreeMap::new();
    let mut label = Vec::new();
    let mut signature = Signature::new();
    for event in history.events() {
        let reached = Reached { at: event.at(), node: event.node };
        faults.update(event.at(), event.node, &event.event);
        let Some(node) = event.node else { continue };
        label.clear();
        kind_label(&event.event, &mut label);
        let kind = xxh3_64(&label);
        let before = previous.insert(node, kind).unwrap_or(0);
        let mut pair = [0u8; 17];
        pair[..8].copy_from_slice(&before.to_le_bytes());
        pair[8..16].copy_from_slice(&kind.to_le_bytes());
        pair[16] = faults.active(event.at());
        signature.entry(xxh3_64(&pair)).or_insert(reached);
    }
    for (name, &index) in history.abstract_states() {
        let event = &history.events()[index];
        let hash = xxh3_64([b"abstract/", name.as_bytes()].concat().as_slice());
        signature.entry(hash).or_insert(Reached { at: event.at(), node: event.node });
    }
    signature
}

/// Appends the stable kind name of `event` to `out`: `started`, `crashed`,
/// `rebound`, `fault`, `settle`, `start_failed`, `step`, `verdict`, `invoke/OP`, `complete/ok` (or
/// `failed`, `unknown`), `observe/VARIANT[/INNER]`, `assert/KIND/NAME`.
/// `OP` and `VARIANT` are serde variant names of the system's operation and
/// observation; `INNER` is the variant of an enum an observation variant
/// wraps (externally tagged, or internally tagged with a `kind`, `type` or
/// `tag` field).
pub fn kind_label<S: System>(event: &EventKind<S>, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, name: &str| out.extend_from_slice(name.as_bytes());
    match event {
        EventKind::Step { .. } => simple(out, "step"),
        EventKind::Fault { .. } => simple(out, "fault"),
        EventKind::Settle => simple(out, "settle"),
        EventKind::Final => simple(out, "final"),
        EventKind::StartFailed { .. } => simple(out, "start_failed"),
        EventKind::Started { .. } => simple(out, "started"),
        EventKind::Crashed => simple(out, "crashed"),
        EventKind::Rebound { .. } => simple(out, "rebound"),
        EventKind::Verdict { .. } => simple(out, "verdict"),
        EventKind::Invoke { op, .. } => {
            simple(out, "invoke");
            variants(op, out);
        }
        EventKind::Complete { result, .. } => simple(
            out,
            match result {
                OpResult::Ok(_) => "complete/ok",
                OpResult::Failed(_) => "complete/failed",
                OpResult::Unknown(_) => "complete/unknown",
            },
        ),
        EventKind::Observe(observation) => {
            simple(out, "observe");
            variants(observation, out);
        }
        EventKind::Assert(a) => {
            let kind = match a.kind {
                AssertKind::Always => "always",
                AssertKind::Sometimes => "sometimes",
                AssertKind::Reachable => "reachable",
                AssertKind::Unreachable => "unreachable",
            };
            simple(out, &format!("assert/{kind}/{}/{}", a.holds, a.name));
        }
    }
}

/// Appends `/VARIANT[/INNER]` of a serde enum value to `out` (nothing for
/// other values).
fn variants<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    // `Stop` only ends the walk early; whatever was appended stays.
    let _ = value.serialize(Labeler { out, depth: 0 });
}

/// Ends a [`Labeler`]'s walk.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("labelled")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// A serializer that only writes variant names, one level of nesting deep.
struct Labeler<'a> {
    out: &'a mut Vec<u8>,
    depth: u8,
}

impl Labeler<'_> {
    fn name(&mut self, variant: &str) {
        self.out.push(b'/');
        self.out.extend_from_slice(variant.as_bytes());
    }
}

/// Serializer methods a [`Labeler`] ignores.
macro_rules! stop {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, Stop> { Err(Stop) })*
    };
}

impl<'a> ser::Serializer for Labeler<'a> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Impossible<(), Stop>;
    type SerializeTuple = Impossible<(), Stop>;
    type SerializeTupleStruct = Impossible<(), Stop>;
    type SerializeTupleVariant = Impossible<(), Stop>;
    type SerializeMap = Impossible<(), Stop>;
    type SerializeStruct = TagField<'a>;
    type SerializeStructVariant = Impossible<(), Stop>;

    stop! {
        serialize_bool(bool) -> (); serialize_i8(i8) -> (); serialize_i16(i16) -> ();
        serialize_i32(i32) -> (); serialize_i64(i64) -> (); serialize_u8(u8) -> ();
        serialize_u16(u16) -> (); serialize_u32(u32) -> (); serialize_u64(u64) -> ();
        serialize_f32(f32) -> (); serialize_f64(f64) -> (); serialize_char(char) -> ();
        serialize_str(&str) -> (); serialize_bytes(&[u8]) -> (); serialize_none() -> ();
        serialize_unit() -> (); serialize_unit_struct(&'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_map(Option<usize>) -> Self::SerializeMap;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }

    fn serialize_unit_variant(mut self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Stop> {
        self.name(variant);
        Ok(())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.name(variant);
        if self.depth == 0 {
            let _ = value.serialize(Labeler { out: self.out, depth: 1 });
        }
        Ok(())
    }

    fn serialize_tuple_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        self.name(variant);
        Err(Stop)
    }

    fn serialize_struct_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        self.name(variant);
        Err(Stop)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<TagField<'a>, Stop> {
        Ok(TagField { out: self.out })
    }
}

/// The fields of a struct: an internally tagged enum's tag is a string field
/// named `kind`, `type` or `tag`.
struct TagField<'a> {
    out: &'a mut Vec<u8>,
}

impl SerializeStruct for TagField<'_> {
    type Ok = ();
    type Error = Stop;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Stop> {
        if !matches!(key, "kind" | "type" | "tag") {
            return Ok(());
        }
        let tag = serde_json::to_value(value).map_err(|_| Stop)?;
        if let Some(tag) = tag.as_str() {
            self.out.push(b'/');
            self.out.extend_from_slice(tag.as_bytes());
        }
        Err(Stop)
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

/// A fault kind active while an event happens, one bit each.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Active {
    Partition = 1,
    OneWay = 2,
    Loss = 4,
    Latency = 8,
    Crashed = 16,
    Disk = 32,
    Clock = 64,
    Paused = 128,
}

/// The faults in force, followed through the history's steps and events.
struct Faults {
    links: LinkState,
    /// The [`Active`] bits of `links`, as of the last link action.
    links_active: u8,
    crashed: BTreeSet<NodeIdx>,
    /// Nodes whose disk has a fault.
    faulty_disks: BTreeSet<NodeIdx>,
    /// Nodes whose clock a `clock` step set off true time.
    skewed_clocks: BTreeSet<NodeIdx>,
    /// Paused nodes, and when their pause ends.
    paused: BTreeMap<NodeIdx, Duration>,
}

impl Faults {
    fn new(scenario: &Scenario) -> Faults {
        Faults {
            links: LinkState::new(&scenario.network),
            links_active: 0,
            crashed: BTreeSet::new(),
            faulty_disks: BTreeSet::new(),
            skewed_clocks: BTreeSet::new(),
            paused: BTreeMap::new(),
        }
    }

    /// Follows one event of a run, which happened at `at`.
    fn update<S: System>(&mut self, at: Duration, node: Option<NodeIdx>, event: &EventKind<S>) {
        match (event, node) {
            (EventKind::Step { action, .. }, _) => self.apply(at, action),
            (EventKind::Settle, None) => {
                self.links.settle();
                self.links_changed();
                self.faulty_disks.clear();
            }
            (EventKind::Crashed, Some(node)) => {
                self.crashed.insert(node);
                self.paused.remove(&node);
            }
            (EventKind::Started { .. }, Some(node)) => {
                self.crashed.remove(&node);
            }
            _ => {}
        }
    }

    /// Follows an action taken at `at`.
    fn apply(&mut self, at: Duration, action: &Action) {
        match action {
            Action::Pause { node, length } => {
                self.paused.insert(*node, at + *length);
            }
            Action::Link { change, scope } => {
                self.links.apply(change, scope);
                self.links_changed();
            }
            Action::Disk { node, fault: DiskFault::None } => {
                self.faulty_disks.remove(node);
            }
            Action::Disk { node, .. } => {
                self.faulty_disks.insert(*node);
            }
            Action::Clock { node, change } => {
                let back_to_true = match change {
                    ClockChange::Offset(skew) | ClockChange::Jump(skew) => skew.by.is_zero(),
                    ClockChange::Drift(drift) => *drift == 0.0,
                };
                if back_to_true {
                    self.skewed_clocks.remove(node);
                } else {
                    self.skewed_clocks.insert(*node);
                }
            }
            // Crashes and restarts are read from the history's own events.
            _ => {}
        }
    }

    fn links_changed(&mut self) {
        let links = &self.links;
        self.links_active = bit(links.partitioned(), Active::Partition)
            | bit(links.oneway(), Active::OneWay)
            | bit(links.lossy(), Active::Loss)
            | bit(links.slow(), Active::Latency);
    }

    /// The fault kinds active at `now`, as bits of [`Active`].
    fn active(&self, now: Duration) -> u8 {
        self.links_active
            | bit(!self.crashed.is_empty(), Active::Crashed)
            | bit(!self.faulty_disks.is_empty(), Active::Disk)
            | bit(!self.skewed_clocks.is_empty(), Active::Clock)
            | bit(self.paused.values().any(|&until| until > now), Active::Paused)
    }
}

fn bit(on: bool, kind: Active) -> u8 {
    if on {
        kind as u8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{LinkChange, Scope};
    use serde::Serialize;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Outer {
        Plain,
        Wrapped(Inner),
        Fields { _x: u32 },
        Tagged(Tagged),
    }

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Inner {
        Deep(u32),
    }

    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        Acked { _id: u32 },
    }

    fn label(value: &impl Serialize) -> String {
        let mut out = Vec::new();
        variants(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn labels_are_serde_variant_names_one_level_deep() {
        assert_eq!(label(&Outer::Plain), "/plain");
        assert_eq!(label(&Outer::Wrapped(Inner::Deep(3))), "/wrapped/deep");
        assert_eq!(label(&Outer::Fields { _x: 1 }), "/fields");
        assert_eq!(label(&Outer::Tagged(Tagged::Acked { _id: 9 })), "/tagged/acked");
        assert_eq!(label(&"a string carries no label"), "");
    }

    fn link(change: LinkChange, a: &[NodeIdx], b: &[NodeIdx]) -> Action {
        Action::Link { change, scope: Scope::Between { a: a.to_vec(), b: b.to_vec() } }
    }

    fn every(change: LinkChange) -> Action {
        Action::Link { change, scope: Scope::Every }
    }

    #[test]
    fn faults_follow_steps_heals_and_the_settle_tail() {
        let mut faults = Faults::new(&Scenario::new("t", 3));
        faults.apply(Duration::ZERO, &link(LinkChange::Partition { oneway: true }, &[0], &[1]));
        faults.apply(Duration::ZERO, &every(LinkChange::Loss(0.5)));
        assert_eq!(faults.active(Duration::ZERO), Active::OneWay as u8 | Active::Loss as u8);
        faults.apply(Duration::ZERO, &link(LinkChange::Heal, &[1], &[0]));
        faults.apply(Duration::ZERO, &every(LinkChange::Loss(0.0)));
        assert_eq!(faults.active(Duration::ZERO), 0);
        faults.crashed.insert(2);
        faults.apply(Duration::ZERO, &link(LinkChange::Partition { oneway: false }, &[0], &[2]));
        assert_eq!(faults.active(Duration::ZERO), Active::Partition as u8 | Active::Crashed as u8);
    }

    #[test]
    fn a_pause_is_active_until_it_ends() {
        let mut faults = Faults::new(&Scenario::new("t", 2));
        let ms = Duration::from_millis;
        faults.apply(ms(100), &Action::Pause { node: 1, length: ms(300) });
        assert_eq!(faults.active(ms(399)), Active::Paused as u8);
        assert_eq!(faults.active(ms(400)), 0, "resumed");
    }

    #[test]
    fn a_heal_between_groups_leaves_the_other_links_of_a_partition() {
        let mut faults = Faults::new(&Scenario::new("t", 3));
        faults.apply(Duration::ZERO, &link(LinkChange::Partition { oneway: false }, &[0], &[1, 2]));
        faults.apply(Duration::ZERO, &link(LinkChange::Heal, &[0], &[1]));
        assert_eq!(faults.active(Duration::ZERO), Active::Partition as u8, "0 <-> 2 is still partitioned");
        faults.apply(Duration::ZERO, &link(LinkChange::Heal, &[2], &[0]));
        assert_eq!(faults.active(Duration::ZERO), 0);
    }
}
