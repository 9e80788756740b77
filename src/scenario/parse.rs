//! Parsing: serde structures that keep toml spans, converted to the model.
//!
//! Syntax, unknown keys and wrong types are rejected by `toml` and serde
//! (`deny_unknown_fields` everywhere); what serde cannot express (one action
//! per step, one check per condition, durations, ...) is rejected while
//! converting to the model, which records where every field was written;
//! the semantic rules of [`validate`] are then reported at those places.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::error::Located;
use super::validate::{self, Field, Loc, Side};
use super::{
    format_duration, parse_duration, Action, Aim, Call, ClockChange, Condition, DiskFault, LatencyRange, LinkChange,
    Network, NodeChange, NodeIdx, Scenario, ScenarioError, Scope, Skew, Step, Syntax, Timing, DEFAULT_DURATION,
    DEFAULT_SETTLE, MAX_NODES,
};

type Span = Range<usize>;

/// A group of node indices: `a` or `b`.
type RawGroup = Spanned<Vec<Spanned<NodeIdx>>>;

/// Parses and validates `text`, the contents of `file`, for the system it
/// names among `systems` (the first when it names none).
pub(crate) fn parse(text: &str, file: &str, systems: &[&dyn Syntax]) -> Result<Scenario, ScenarioError> {
    let locate = |error| ScenarioError::located(file, text, error);
    let raw: RawScenario = toml::from_str(text).map_err(|e| locate(toml_error(&e)))?;
    let syntax = pick(systems, raw.system.as_ref()).map_err(locate)?;
    let mut converter = Converter {
        text,
        syntax,
        // Node indices of operations are checked once `nodes` itself is valid.
        nodes: Some(*raw.nodes.get_ref()).filter(|n| (1..=MAX_NODES).contains(n)).unwrap_or(u32::MAX),
        line_starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect(),
        spans: HashMap::new(),
    };
    let scenario = converter.scenario(raw, default_name(file)).map_err(locate)?;
    validate::check(&scenario, syntax).map_err(|v| locate(Located::new(converter.span(v.loc), v.message)))?;
    Ok(scenario)
}

/// The system a scenario names, or the first.
fn pick<'a>(systems: &[&'a dyn Syntax], named: Option<&Spanned<String>>) -> Result<&'a dyn Syntax, Located> {
    let first = *systems.first().expect("at least one system to parse for");
    let Some(named) = named else { return Ok(first) };
    systems.iter().copied().find(|s| s.system() == named.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = systems.iter().map(|s| s.system()).collect();
        Located::new(
            named.span(),
            format!("unknown system `{}`, expected one of {}", named.get_ref(), known.join(", ")),
        )
    })
}

/// A toml or serde error, on one line.
fn toml_error(error: &toml::de::Error) -> Located {
    let message = error.message().trim().replace('\n', ": ");
    Located::new(error.span().unwrap_or(0..0), message)
}

/// The stem of `file`, or `"scenario"`.
fn default_name(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.is_empty())
        .unwrap_or_else(|| "scenario".to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a scenario table")]
struct RawScenario {
    name: Option<String>,
    description: Option<String>,
    nodes: Spanned<u32>,
    seeds: Option<Vec<Spanned<NodeIdx>>>,
    duration: Option<Spanned<String>>,
    settle: Option<Spanned<String>>,
    seed: Option<Spanned<u64>>,
    stagger: Option<Spanned<String>>,
    clients: Option<Spanned<u32>>,
    mutation: Option<Spanned<String>>,
    system: Option<Spanned<String>>,
    properties: Option<Vec<Spanned<String>>>,
    network: Option<RawNetwork>,
    #[serde(default)]
    knobs: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
    #[serde(default)]
    expect: Vec<Spanned<RawCondition>>,
    /// The `[[final]]` steps.
    #[serde(default, rename = "final")]
    finals: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a [network] table with `latency` and `loss`")]
struct RawNetwork {
    latency: Option<Spanned<String>>,
    loss: Option<Spanned<f64>>,
}

/// One `[[step]]` table: its timing keys and every other key, read by hand
/// so that a step with an unknown, missing or second action is reported
/// as such.
struct RawStep {
    at: Option<Spanned<String>>,
    after: Option<Spanned<String>>,
    wait: Option<Spanned<String>>,
    /// The action keys, in file order, with their values.
    actions: Vec<(Spanned<String>, RawAction)>,
}

enum RawAction {
    Partition(Spanned<RawPartition>),
    Heal(RawGroups),
    Latency(RawLatency),
    Loss(RawLoss),
    Crash(Spanned<RawNode>),
    Restart(Spanned<RawNode>),
    Rebind(Spanned<RawRebind>),
    Disk(Spanned<RawDisk>),
    Pause(Spanned<RawPause>),
    Clock(Spanned<RawClock>),
    Await(Spanned<RawCondition>),
    Expect(Spanned<RawCondition>),
    /// Any other key: one of the system's operations, or unknown.
    Other(Spanned<toml::Value>),
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an inline table like { a = [0], b = [1, 2], oneway = false } or { role = \"primary\" }"
)]
struct RawPartition {
    a: Option<RawGroup>,
    b: Option<RawGroup>,
    #[serde(default)]
    oneway: bool,
    /// Cut the role's holder off from every other node, instead of `a` and `b`.
    role: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inline table like { a = [0], b = [1, 2] }, or {} for every link")]
struct RawGroups {
    a: Option<RawGroup>,
    b: Option<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inline table like { value = \"1ms..20ms\", a = [0], b = [1] }")]
struct RawLatency {
    value: Spanned<String>,
    a: Option<RawGroup>,
    b: Option<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inline table like { rate = 0.1, a = [0], b = [1] }")]
struct RawLoss {
    rate: Spanned<f64>,
    a: Option<RawGroup>,
    b: Option<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inline table like { node = 1 } or { role = \"primary\" }")]
struct RawNode {
    node: Option<Spanned<NodeIdx>>,
    role: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inline table like { node = 1, port = 7001 }")]
struct RawRebind {
    node: Option<Spanned<NodeIdx>>,
    role: Option<Spanned<String>>,
    port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an inline table like { node = 1, fault = \"fail-sync\" } or { node = 1, fault = \"slow\", delay = \"20ms\" }"
)]
struct RawDisk {
    node: Option<Spanned<NodeIdx>>,
    role: Option<Spanned<String>>,
    fault: Spanned<String>,
    delay: Option<Spanned<String>>,
}

impl RawDisk {
    /// The fault it names: `slow` with its `delay`, the others without one.
    fn fault(&self, whole: Span) -> Result<DiskFault, Located> {
        let name = self.fault.get_ref().as_str();
        let fault = match DiskFault::without_parameters(name) {
            Some(fault) => fault,
            None if name == "slow" => {
                let delay = self
                    .delay
                    .as_ref()
                    .ok_or_else(|| Located::new(whole, "a `slow` disk needs a `delay`, like delay = \"20ms\""))?;
                return Ok(DiskFault::Slow(duration(delay)?));
            }
            None => {
                return Err(Located::new(
                    self.fault.span(),
                    format!("unknown disk fault `{name}`, expected one of {}", DiskFault::NAMES.join(", ")),
                ))
            }
        };
        match &self.delay {
            Some(delay) => {
                Err(Located::new(delay.span(), format!("`delay` is only for a `slow` disk, not `{}`", fault.name())))
            }
            None => Ok(fault),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an inline table like { node = 1, for = \"2s\" }")]
struct RawPause {
    node: Option<Spanned<NodeIdx>>,
    role: Option<Spanned<String>>,
    #[serde(rename = "for")]
    length: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an inline table like { node = 1, jump = \"-5s\" }, { node = 1, offset = \"2s\" } or { node = 1, drift = 0.05 }"
)]
struct RawClock {
    node: Option<Spanned<NodeIdx>>,
    role: Option<Spanned<String>>,
    offset: Option<Spanned<String>>,
    jump: Option<Spanned<String>>,
    drift: Option<Spanned<f64>>,
}

impl RawClock {
    /// The one change it names.
    fn change(&self, whole: Span) -> Result<ClockChange, Located> {
        let skew = |value: &Spanned<String>| {
            text(value, |text| {
                let skew = Skew::parse(text)?;
                if skew.by > super::MAX_DURATION {
                    return Err(format!(
                        "`{text}` is too far, expected at most {}",
                        format_duration(super::MAX_DURATION)
                    ));
                }
                Ok(skew)
            })
        };
        match (&self.offset, &self.jump, &self.drift) {
            (Some(offset), None, None) => Ok(ClockChange::Offset(skew(offset)?)),
            (None, Some(jump), None) => Ok(ClockChange::Jump(skew(jump)?)),
            (None, None, Some(drift)) => Ok(ClockChange::Drift(*drift.get_ref())),
            _ => Err(Located::new(
                whole,
                "a `clock` step sets one of `offset`, `jump` or `drift`, like { node = 1, jump = \"-5s\" }",
            )),
        }
    }
}

/// A condition: `node`, `timeout` (only in `await`), and the system's
/// condition keys, read by hand so that each keeps its span.
struct RawCondition {
    node: Option<Spanned<NodeIdx>>,
    timeout: Option<Spanned<String>>,
    checks: Vec<(Spanned<String>, Spanned<toml::Value>)>,
}

impl<'de> Deserialize<'de> for RawCondition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawCondition, D::Error> {
        deserializer.deserialize_map(ConditionVisitor)
    }
}

struct ConditionVisitor;

impl<'de> Visitor<'de> for ConditionVisitor {
    type Value = RawCondition;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a condition like { node = 1, received = 2 }")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawCondition, M::Error> {
        let mut condition = RawCondition { node: None, timeout: None, checks: Vec::new() };
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            match key.get_ref().as_str() {
                "node" => condition.node = Some(map.next_value()?),
                "timeout" => condition.timeout = Some(map.next_value()?),
                _ => condition.checks.push((key, map.next_value()?)),
            }
        }
        Ok(condition)
    }
}

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawStep, D::Error> {
        deserializer.deserialize_map(StepVisitor)
    }
}

struct StepVisitor;

impl<'de> Visitor<'de> for StepVisitor {
    type Value = RawStep;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step table with one action, like broadcast = { from = 0 }")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawStep, M::Error> {
        let mut step = RawStep { at: None, after: None, wait: None, actions: Vec::new() };
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            match key.get_ref().as_str() {
                "at" => step.at = Some(map.next_value()?),
                "after" => step.after = Some(map.next_value()?),
                "wait" => step.wait = Some(map.next_value()?),
                name => {
                    let action = RawAction::next_value(name, &mut map)?;
                    step.actions.push((key, action));
                }
            }
        }
        Ok(step)
    }
}

impl RawAction {
    /// Reads the value of action key `name`.
    fn next_value<'de, M: MapAccess<'de>>(name: &str, map: &mut M) -> Result<RawAction, M::Error> {
        Ok(match name {
            "partition" => RawAction::Partition(map.next_value()?),
            "heal" => RawAction::Heal(map.next_value()?),
            "latency" => RawAction::Latency(map.next_value()?),
            "loss" => RawAction::Loss(map.next_value()?),
            "crash" => RawAction::Crash(map.next_value()?),
            "restart" => RawAction::Restart(map.next_value()?),
            "rebind" => RawAction::Rebind(map.next_value()?),
            "disk" => RawAction::Disk(map.next_value()?),
            "pause" => RawAction::Pause(map.next_value()?),
            "clock" => RawAction::Clock(map.next_value()?),
            "await" => RawAction::Await(map.next_value()?),
            "expect" => RawAction::Expect(map.next_value()?),
            _ => RawAction::Other(map.next_value()?),
        })
    }
}

/// Parses a string value with `parse`, reporting errors at the value.
fn text<T>(value: &Spanned<String>, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, Located> {
    parse(value.get_ref()).map_err(|message| Located::new(value.span(), message))
}

fn duration(value: &Spanned<String>) -> Result<Duration, Located> {
    text(value, |text| {
        let parsed = parse_duration(text)?;
        if parsed > super::MAX_DURATION {
            return Err(format!(
                "duration `{text}` is too long, expected at most {}",
                super::format_duration(super::MAX_DURATION)
            ));
        }
        Ok(parsed)
    })
}

fn optional_duration(value: &Option<Spanned<String>>, default: Duration) -> Result<Duration, Located> {
    value.as_ref().map_or(Ok(default), duration)
}

/// Converts raw structures to the model, recording where each field that a
/// semantic rule checks was written.
struct Converter<'a> {
    text: &'a str,
    syntax: &'a dyn Syntax,
    /// The scenario's `nodes`, for the system's operations.
    nodes: u32,
    /// Where each line of the text starts.
    line_starts: Vec<usize>,
    spans: HashMap<Loc, Span>,
}

impl Converter<'_> {
    /// The 1-based line of byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The span recorded for `loc` (the start of the file when the field was
    /// not written).
    fn span(&self, loc: Loc) -> Span {
        self.spans.get(&loc).cloned().unwrap_or(0..0)
    }

    /// Records where `loc` was written and returns its value.
    fn value<T: Clone>(&mut self, loc: Loc, value: &Spanned<T>) -> T {
        self.spans.insert(loc, value.span());
        value.get_ref().clone()
    }

    fn optional<T: Clone>(&mut self, loc: Loc, value: &Option<Spanned<T>>) -> Option<T> {
        value.as_ref().map(|v| self.value(loc, v))
    }

    fn range(&mut self, loc: Loc, value: &Spanned<String>) -> Result<LatencyRange, Located> {
        self.spans.insert(loc, value.span());
        text(value, str::parse)
    }

    fn scenario(&mut self, raw: RawScenario, default_name: String) -> Result<Scenario, Located> {
        // `settle` is checked against `duration`: report it at whichever was written.
        if let Some(written) = raw.settle.as_ref().or(raw.duration.as_ref()) {
            self.spans.insert(Loc::Settle, written.span());
        }
        let network = raw.network.unwrap_or_default();
        let defaults = Network::default();
        Ok(Scenario {
            name: raw.name.unwrap_or(default_name),
            description: raw.description.unwrap_or_default(),
            nodes: self.value(Loc::Nodes, &raw.nodes),
            seeds: match &raw.seeds {
                Some(seeds) => seeds.iter().enumerate().map(|(i, seed)| self.value(Loc::Seeds(i), seed)).collect(),
                None => vec![0],
            },
            duration: optional_duration(&raw.duration, DEFAULT_DURATION)?,
            settle: optional_duration(&raw.settle, DEFAULT_SETTLE)?,
            seed: self.optional(Loc::Seed, &raw.seed).unwrap_or(0),
            stagger: match &raw.stagger {
                Some(stagger) => {
                    self.spans.insert(Loc::Stagger, stagger.span());
                    duration(stagger)?
                }
                None => Duration::ZERO,
            },
            clients: self.optional(Loc::Clients, &raw.clients).unwrap_or(1),
            network: Network {
                latency: match &network.latency {
                    Some(latency) => self.range(Loc::NetworkLatency, latency)?,
                    None => defaults.latency,
                },
                loss: self.optional(Loc::NetworkLoss, &network.loss).unwrap_or(defaults.loss),
            },
            steps: raw.step.iter().enumerate().map(|(i, step)| self.step(i, step)).collect::<Result<_, _>>()?,
            expects: raw
                .expect
                .iter()
                .enumerate()
                .map(|(i, condition)| self.condition(|f| Loc::Expect(i, f), no_timeout(condition, self.syntax)?))
                .collect::<Result<_, _>>()?,
            finals: raw
                .finals
                .iter()
                .enumerate()
                .map(|(i, step)| self.step(raw.step.len() + i, step))
                .collect::<Result<_, _>>()?,
            planted_bug: raw.mutation.as_ref().map(|m| self.value(Loc::Mutation, m)),
            knobs: raw
                .knobs
                .iter()
                .enumerate()
                .map(|(i, (name, value))| (name.clone(), self.value(Loc::Knob(i), value)))
                .collect(),
            system: raw.system.map(|s| s.into_inner()),
            properties: match &raw.properties {
                Some(codes) => codes.iter().enumerate().map(|(i, code)| self.value(Loc::Property(i), code)).collect(),
                None => Vec::new(),
            },
        })
    }

    /// Every action key this scenario's system accepts, for messages.
    fn action_names(&self) -> String {
        format!(
            "{}, or an operation of system `{}`: {}",
            Action::NAMES.join(", "),
            self.syntax.system(),
            self.syntax.operations().join(", ")
        )
    }

    /// Parses a system's operation or condition written at `key = value`,
    /// reporting its errors where they are in the file.
    fn call(
        &self,
        key: &Spanned<String>,
        value: &Spanned<toml::Value>,
        check: impl FnOnce(&str) -> Result<Call, (Option<Span>, String)>,
    ) -> Result<Call, Located> {
        let prefix = format!("{} = ", key.get_ref());
        let source = format!("{prefix}{}", &self.text[value.span()]);
        check(&source).map_err(|(span, message)| {
            let span = span
                .filter(|s| s.start >= prefix.len())
                .map(|s| s.start - prefix.len() + value.span().start..s.end - prefix.len() + value.span().start)
                .unwrap_or(value.span());
            Located::new(span, message)
        })
    }

    fn step(&mut self, index: usize, raw: &Spanned<RawStep>) -> Result<Step, Located> {
        let step = raw.get_ref();
        let timing = match (&step.at, &step.after) {
            (Some(at), Some(after)) => {
                let later = if at.span().start > after.span().start { at } else { after };
                return Err(Located::new(
                    later.span(),
                    "a step has both `at` and `after`, expected at most one of them",
                ));
            }
            (Some(at), None) => Timing::At(duration(at)?),
            (None, Some(after)) => Timing::After(duration(after)?),
            (None, None) => Timing::Immediately,
        };
        if let Some(when) = step.at.as_ref().or(step.after.as_ref()) {
            self.spans.insert(Loc::Step(index, Field::Timing), when.span());
        }
        let action = match step.actions.as_slice() {
            [(key, action)] => self.action(index, key, action)?,
            [] => {
                return Err(Located::new(
                    raw.span(),
                    format!("step has no action, expected one of {}", self.action_names()),
                ))
            }
            [(first, _), (second, _), ..] => {
                return Err(Located::new(
                    second.span(),
                    format!(
                        "step has two actions, `{}` and `{}`, expected exactly one",
                        first.get_ref(),
                        second.get_ref()
                    ),
                ))
            }
        };
        let wait = match (&step.wait, &action) {
            (None, _) => None,
            (Some(wait), Action::Op(_)) => Some(duration(wait)?),
            (Some(wait), _) => {
                return Err(Located::new(
                    wait.span(),
                    format!("`wait` is for a step that invokes an operation, not `{}`", action.name()),
                ))
            }
        };
        Ok(Step { timing, action, wait, line: self.line_of(raw.span().start) })
    }

    fn action(&mut self, step: usize, key: &Spanned<String>, raw: &RawAction) -> Result<Action, Located> {
        let at = |field| Loc::Step(step, field);
        self.spans.insert(at(Field::Action), key.span());
        Ok(match raw {
            RawAction::Partition(whole) => {
                let r = whole.get_ref();
                let missing = |field: &str| Located::new(whole.span(), format!("missing field `{field}`"));
                match (&r.role, &r.a, &r.b) {
                    (Some(role), None, None) => Action::Aimed {
                        role: self.value(at(Field::Role), role),
                        aim: Aim::Isolate { oneway: r.oneway },
                    },
                    (Some(_), Some(group), _) | (Some(_), None, Some(group)) => {
                        return Err(Located::new(
                            group.span(),
                            "a `partition` aimed at a `role` has no groups: it cuts the role's holder off from every other node",
                        ))
                    }
                    (None, None, _) => return Err(missing("a")),
                    (None, Some(_), None) => return Err(missing("b")),
                    (None, Some(a), Some(b)) => Action::Link {
                        change: LinkChange::Partition { oneway: r.oneway },
                        scope: Scope::Between { a: self.group(step, Side::A, a), b: self.group(step, Side::B, b) },
                    },
                }
            }
            RawAction::Heal(r) => Action::Link { change: LinkChange::Heal, scope: self.scope(step, key, &r.a, &r.b)? },
            RawAction::Latency(r) => Action::Link {
                change: LinkChange::Latency(self.range(at(Field::Value), &r.value)?),
                scope: self.scope(step, key, &r.a, &r.b)?,
            },
            RawAction::Loss(r) => Action::Link {
                change: LinkChange::Loss(self.value(at(Field::Rate), &r.rate)),
                scope: self.scope(step, key, &r.a, &r.b)?,
            },
            RawAction::Crash(r) => self.aimed(step, r, &r.get_ref().node, &r.get_ref().role, NodeChange::Crash)?,
            RawAction::Restart(r) => self.aimed(step, r, &r.get_ref().node, &r.get_ref().role, NodeChange::Restart)?,
            RawAction::Rebind(r) => {
                let raw = r.get_ref();
                self.aimed(step, r, &raw.node, &raw.role, NodeChange::Rebind { port: raw.port })?
            }
            RawAction::Disk(r) => {
                let raw = r.get_ref();
                self.aimed(step, r, &raw.node, &raw.role, NodeChange::Disk(raw.fault(r.span())?))?
            }
            RawAction::Pause(r) => {
                let raw = r.get_ref();
                self.spans.insert(at(Field::Key("for")), raw.length.span());
                self.aimed(step, r, &raw.node, &raw.role, NodeChange::Pause(duration(&raw.length)?))?
            }
            RawAction::Clock(r) => {
                let raw = r.get_ref();
                if let Some(drift) = &raw.drift {
                    self.spans.insert(at(Field::Key("drift")), drift.span());
                }
                self.aimed(step, r, &raw.node, &raw.role, NodeChange::Clock(raw.change(r.span())?))?
            }
            RawAction::Await(r) => {
                let timeout = r.get_ref().timeout.as_ref().ok_or_else(|| {
                    Located::new(r.span(), "`await` has no `timeout`, expected a duration like timeout = \"5s\"")
                })?;
                Action::Await { timeout: duration(timeout)?, condition: self.condition(at, r)? }
            }
            RawAction::Expect(r) => Action::Expect { condition: self.condition(at, no_timeout(r, self.syntax)?)? },
            RawAction::Other(value) => {
                if !self.syntax.operations().contains(&key.get_ref().as_str()) {
                    return Err(Located::new(
                        key.span(),
                        format!("unknown action `{}`, expected one of {}", key.get_ref(), self.action_names()),
                    ));
                }
                self.spans.insert(at(Field::Op), value.span());
                let nodes = self.nodes;
                Action::Op(self.call(key, value, |source| self.syntax.check_op(source, nodes))?)
            }
        })
    }

    /// A node action: `change` on its `node`, or aimed at its `role`
    /// ([`Action::Aimed`]); exactly one of them, in the table `whole`.
    fn aimed<T>(
        &mut self,
        step: usize,
        whole: &Spanned<T>,
        node: &Option<Spanned<NodeIdx>>,
        role: &Option<Spanned<String>>,
        change: NodeChange,
    ) -> Result<Action, Located> {
        let at = |field| Loc::Step(step, field);
        match (node, role) {
            (Some(node), None) => Ok(change.on(self.value(at(Field::Node), node))),
            (None, Some(role)) => Ok(Action::Aimed { role: self.value(at(Field::Role), role), aim: Aim::Node(change) }),
            (Some(_), Some(role)) => Err(Located::new(
                role.span(),
                format!("`{}` has both `node` and `role`, expected one of them", change.name()),
            )),
            (None, None) => Err(Located::new(
                whole.span(),
                "missing field `node`, expected a node index like node = 1, or a role like role = \"primary\"",
            )),
        }
    }

    /// A group, recording where it and each of its elements were written.
    fn group(&mut self, step: usize, side: Side, raw: &RawGroup) -> Vec<NodeIdx> {
        self.spans.insert(Loc::Step(step, Field::Group(side, None)), raw.span());
        raw.get_ref()
            .iter()
            .enumerate()
            .map(|(j, node)| self.value(Loc::Step(step, Field::Group(side, Some(j))), node))
            .collect()
    }

    /// The scope of `heal`, `latency` or `loss` (action `key`): both groups, or neither for every link.
    fn scope(
        &mut self,
        step: usize,
        key: &Spanned<String>,
        a: &Option<RawGroup>,
        b: &Option<RawGroup>,
    ) -> Result<Scope, Located> {
        match (a, b) {
            (Some(a), Some(b)) => {
                Ok(Scope::Between { a: self.group(step, Side::A, a), b: self.group(step, Side::B, b) })
            }
            (None, None) => Ok(Scope::Every),
            (Some(given), None) | (None, Some(given)) => {
                let missing = if a.is_some() { "b" } else { "a" };
                Err(Located::new(
                    given.span(),
                    format!(
                        "`{}` has no group `{missing}`, expected both `a` and `b`, or neither for every link",
                        key.get_ref()
                    ),
                ))
            }
        }
    }

    fn condition(&mut self, at: impl Fn(Field) -> Loc, raw: &Spanned<RawCondition>) -> Result<Condition, Located> {
        let r = raw.get_ref();
        let expected = format!("expected exactly one of {}", self.syntax.conditions().join(", "));
        let (key, value) = match r.checks.as_slice() {
            [] => return Err(Located::new(raw.span(), format!("condition has no check, {expected}"))),
            [(key, _), ..] if !self.syntax.conditions().contains(&key.get_ref().as_str()) => {
                return Err(Located::new(
                    key.span(),
                    format!(
                        "unknown condition `{}`, expected `node` and one of {}",
                        key.get_ref(),
                        self.syntax.conditions().join(", ")
                    ),
                ))
            }
            [(first, _), (second, _), ..] => {
                return Err(Located::new(
                    second.span(),
                    format!("condition has both `{}` and `{}`, {expected}", first.get_ref(), second.get_ref()),
                ))
            }
            [(key, value)] => (key, value),
        };
        self.spans.insert(at(Field::Check), value.span());
        let check = self.call(key, value, |source| self.syntax.check_condition(source))?;
        Ok(Condition { node: self.optional(at(Field::Node), &r.node), check })
    }
}

/// Rejects a `timeout` outside `await`.
fn no_timeout<'a>(raw: &'a Spanned<RawCondition>, syntax: &dyn Syntax) -> Result<&'a Spanned<RawCondition>, Located> {
    match &raw.get_ref().timeout {
        Some(timeout) => Err(Located::new(
            timeout.span(),
            format!(
                "`timeout` is only allowed in an `await` step, expected `node` and one of {}",
                syntax.conditions().join(", ")
            ),
        )),
        None => Ok(raw),
    }
}
