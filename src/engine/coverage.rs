//! A run's coverage signature: what its history saw, as a set of small
//! hashes, each with when and where the run first reached it, so that
//! exploration can tell a case that reached somewhere new, and when.
//!
//! Each element is one pair of consecutive events of one node (their
//! stable kind names, see [`kind_label`]) together with the fault kinds
//! active when the second happened (a partition, a one-way partition, loss
//! or latency other than the scenario's, as [`LinkState`] has the links; a
//! crashed node; a disk fault), and each abstract state the system names
//! ([`Oracle::abstract_state`](crate::system::Oracle::abstract_state)). The hashes are xxh3 over a
//! canonical byte encoding of those names, never `Debug` output, so a
//! signature is the same in every process and build of the same code.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::ser::{self, Impossible, Serialize, SerializeStruct};
use xxhash_rust::xxh3::xxh3_64;

use crate::engine::links::LinkState;
use crate::history::{EventKind, Faults, History, OpResult};
use crate::probe::AssertKind;
use crate::scenario::NodeIdx;
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

/// The signature of a run that recorded `history`.
pub fn signature<S: System>(history: &History<S>) -> Signature {
    let mut links = 0;
    let mut previous: BTreeMap<NodeIdx, u64> = BTreeMap::new();
    let mut label = Vec::new();
    let mut signature = Signature::new();
    history.walk(|_, event, faults| {
        if matches!(event.event, EventKind::Step { .. } | EventKind::Settle) {
            links = link_bits(faults.links());
        }
        let Some(node) = event.node else { return };
        label.clear();
        kind_label(&event.event, &mut label);
        let kind = xxh3_64(&label);
        let before = previous.insert(node, kind).unwrap_or(0);
        let mut pair = [0u8; 17];
        pair[..8].copy_from_slice(&before.to_le_bytes());
        pair[8..16].copy_from_slice(&kind.to_le_bytes());
        pair[16] = links | active(faults, event.at());
        signature.entry(xxh3_64(&pair)).or_insert(Reached { at: event.at(), node: event.node });
    });
    for (name, &index) in history.abstract_states() {
        let event = &history.events()[index];
        let hash = xxh3_64([b"abstract/", name.as_bytes()].concat().as_slice());
        signature.entry(hash).or_insert(Reached { at: event.at(), node: event.node });
    }
    signature
}

/// Appends the stable kind name of `event` to `out`: `started`, `crashed`,
/// `rebound`, `fault` (a fact of the runner or a backend: a skip, an aimed
/// step's node, a failed rebind, a fail-stop, an OS thread, a crash that did
/// not stop its node cleanly), `settle`,
/// `start_failed`, `step`, `verdict`, `invoke/OP`, `complete/ok` (or
/// `failed`, `unknown`), `observe/VARIANT[/INNER]`, `assert/KIND/NAME`.
/// `OP` and `VARIANT` are serde variant names of the system's operation and
/// observation; `INNER` is the variant of an enum an observation variant
/// wraps (externally tagged, or internally tagged with a `kind`, `type` or
/// `tag` field).
pub fn kind_label<S: System>(event: &EventKind<S>, out: &mut Vec<u8>) {
    let simple = |out: &mut Vec<u8>, name: &str| out.extend_from_slice(name.as_bytes());
    match event {
        EventKind::Step { .. } => simple(out, "step"),
        EventKind::Skipped { .. }
        | EventKind::Aimed { .. }
        | EventKind::RebindFailed { .. }
        | EventKind::FailStopped { .. }
        | EventKind::ThreadStarted { .. }
        | EventKind::StopFailed { .. } => simple(out, "fault"),
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

/// The [`Active`] bits of the links.
fn link_bits(links: &LinkState) -> u8 {
    bit(links.partitioned(), Active::Partition)
        | bit(links.oneway(), Active::OneWay)
        | bit(links.lossy(), Active::Loss)
        | bit(links.slow(), Active::Latency)
}

/// The [`Active`] bits of the node faults in force at `now`.
fn active(faults: &Faults, now: Duration) -> u8 {
    bit(!faults.crashed().is_empty(), Active::Crashed)
        | bit(!faults.disks().is_empty(), Active::Disk)
        | bit(!faults.skewed().is_empty(), Active::Clock)
        | bit(faults.paused(now).next().is_some(), Active::Paused)
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
    use crate::scenario::{Action, DiskFault, LinkChange, Network, Scope};
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

    /// The fault bits after `actions`, each taken at 0, read at `now`.
    fn bits(actions: &[Action], now: Duration) -> u8 {
        let mut faults = Faults::new(&Network::default());
        for action in actions {
            faults.act(Duration::ZERO, action);
        }
        link_bits(faults.links()) | active(&faults, now)
    }

    #[test]
    fn faults_follow_steps_heals_and_the_settle_tail() {
        let cut = [link(LinkChange::Partition { oneway: true }, &[0], &[1]), every(LinkChange::Loss(0.5))];
        assert_eq!(bits(&cut, Duration::ZERO), Active::OneWay as u8 | Active::Loss as u8);
        let healed = [&cut[..], &[link(LinkChange::Heal, &[1], &[0]), every(LinkChange::Loss(0.0))]].concat();
        assert_eq!(bits(&healed, Duration::ZERO), 0);
        let disk = [&healed[..], &[link(LinkChange::Partition { oneway: false }, &[0], &[2])]].concat();
        let disk = [&disk[..], &[Action::Disk { node: 2, fault: DiskFault::FailSync }]].concat();
        assert_eq!(bits(&disk, Duration::ZERO), Active::Partition as u8 | Active::Disk as u8);
    }

    #[test]
    fn a_pause_is_active_until_it_ends() {
        let ms = Duration::from_millis;
        let pause = [Action::Pause { node: 1, length: ms(400) }];
        assert_eq!(bits(&pause, ms(399)), Active::Paused as u8);
        assert_eq!(bits(&pause, ms(400)), 0, "resumed");
    }

    #[test]
    fn a_heal_between_groups_leaves_the_other_links_of_a_partition() {
        let partition =
            [link(LinkChange::Partition { oneway: false }, &[0], &[1, 2]), link(LinkChange::Heal, &[0], &[1])];
        assert_eq!(bits(&partition, Duration::ZERO), Active::Partition as u8, "0 <-> 2 is still partitioned");
        let healed = [&partition[..], &[link(LinkChange::Heal, &[2], &[0])]].concat();
        assert_eq!(bits(&healed, Duration::ZERO), 0);
    }
}
