//! [`Syntax`]: what the parser needs to know of a system (its operation and
//! condition keys, capabilities and planted bugs) without knowing its type.
//! Every [`System`] is one.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::{Call, NodeIdx};
use crate::system::{Capabilities, Knob, Operation, PlantedBug, System};

/// A system's scenario vocabulary, type-erased for the parser and the CLI.
pub trait Syntax {
    /// The system's name.
    fn system(&self) -> &'static str;
    /// Its operation keys.
    fn operations(&self) -> &'static [&'static str];
    /// Its condition keys.
    fn conditions(&self) -> &'static [&'static str];
    /// Its optional abilities.
    fn abilities(&self) -> Capabilities;
    /// Its planted bugs.
    fn bugs(&self) -> Vec<PlantedBug>;
    /// Its knobs.
    fn tunables(&self) -> Vec<Knob>;
    /// The codes of the system's properties that judge a run (`always` and
    /// `eventually`).
    fn judging_properties(&self) -> Vec<&'static str>;
    /// The roles faults may aim at ([`Oracle::roles`](crate::system::Oracle::roles)).
    fn role_names(&self) -> Vec<&'static str>;
    /// Parses an operation from `source` (`key = value`, TOML), checks its
    /// node indices against `nodes` and its own rules. An error carries the
    /// byte range in `source` when it has one.
    fn check_op(&self, source: &str, nodes: u32) -> Result<Call, (Option<std::ops::Range<usize>>, String)>;
    /// Parses a condition from `source` (`key = value`, TOML).
    fn check_condition(&self, source: &str) -> Result<Call, (Option<std::ops::Range<usize>>, String)>;
}

impl<S: System> Syntax for S {
    fn system(&self) -> &'static str {
        self.name()
    }

    fn operations(&self) -> &'static [&'static str] {
        variants::<S::Op>()
    }

    fn conditions(&self) -> &'static [&'static str] {
        variants::<S::Condition>()
    }

    fn abilities(&self) -> Capabilities {
        self.capabilities()
    }

    fn bugs(&self) -> Vec<PlantedBug> {
        self.planted_bugs()
    }

    fn tunables(&self) -> Vec<Knob> {
        self.knobs()
    }

    fn judging_properties(&self) -> Vec<&'static str> {
        self.properties().iter().filter(|p| p.judges()).map(|p| p.code).collect()
    }

    fn role_names(&self) -> Vec<&'static str> {
        self.roles()
    }

    fn check_op(&self, source: &str, nodes: u32) -> Result<Call, (Option<std::ops::Range<usize>>, String)> {
        let mut op: S::Op = from_source(source)?;
        check_nodes(&mut op, nodes).map_err(|(node, message)| (number_in(source, node), message))?;
        op.validate(nodes).map_err(|message| (None, message))?;
        Ok(Call::of(&op))
    }

    fn check_condition(&self, source: &str) -> Result<Call, (Option<std::ops::Range<usize>>, String)> {
        let condition: S::Condition = from_source(source)?;
        Ok(Call::of(&condition))
    }
}

fn from_source<T: DeserializeOwned>(source: &str) -> Result<T, (Option<std::ops::Range<usize>>, String)> {
    toml::from_str(source).map_err(|e| (e.span(), e.message().trim().replace('\n', ": ")))
}

/// The first node index of `op` out of `0..nodes`, with the message.
pub(crate) fn check_nodes<O: Operation>(op: &mut O, nodes: u32) -> Result<(), (NodeIdx, String)> {
    match op.nodes_mut().into_iter().map(|n| *n).find(|&n| n >= nodes) {
        Some(node) => Err((
            node,
            format!("node index {node} is out of range, expected 0..={} (nodes = {nodes})", nodes.saturating_sub(1)),
        )),
        None => Ok(()),
    }
}

/// Where the integer `n` stands in `source` after a `=` (the field that
/// named an out-of-range node), if it does.
fn number_in(source: &str, n: NodeIdx) -> Option<std::ops::Range<usize>> {
    let digits = n.to_string();
    let bytes = source.as_bytes();
    let is_digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let value_start = source.find('=')? + 1;
    source[value_start..]
        .match_indices(&digits)
        .map(|(i, _)| value_start + i)
        .find(|&i| {
            !is_digit(i.wrapping_sub(1))
                && !is_digit(i + digits.len())
                && source[..i].trim_end().ends_with(['=', '[', ','])
        })
        .map(|i| i..i + digits.len())
}

/// The variant names of a serde enum: the keys of a system's operations or
/// conditions. Empty for a type that is not an enum.
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(rename_all = "snake_case")]
/// enum Op { Put { key: String }, GetAll { limit: u32 } }
/// assert_eq!(tandem::scenario::variants::<Op>(), ["put", "get_all"]);
/// ```
pub fn variants<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names = VariantNames(&[]);
    let _ = T::deserialize(&mut names);
    names.0
}

struct VariantNames(&'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("variant names read")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut VariantNames {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0 = variants;
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_found_after_an_equals_sign_or_in_arrays() {
        let source = "direct = { from = 10, to = 1 }";
        assert_eq!(number_in(source, 1).map(|r| &source[r]), Some("1"));
        assert_eq!(number_in(source, 1).unwrap().start, source.rfind('1').unwrap());
        assert_eq!(number_in(source, 10).unwrap().start, source.find("10").unwrap());
        assert_eq!(number_in("put = { node = 3, key = \"3\" }", 3).unwrap().start, 15);
        assert_eq!(number_in("x = { a = [0, 7] }", 7).unwrap().start, 14);
        assert_eq!(number_in("x = { a = 5 }", 7), None);
    }
}
