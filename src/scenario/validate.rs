//! The semantic rules of a scenario, shared by the parser and
//! [`Scenario::validate`](super::Scenario::validate).
//!
//! A broken rule is reported at a [`Loc`]: the parser maps it to the span of
//! the offending key or value, `validate` to a field path like `step[2].to`.

use std::fmt;
use std::time::Duration;

use super::{
    Action, Aim, Call, Condition, LatencyRange, LinkChange, NodeIdx, Scenario, Scope, Syntax, Timing, MAX_CLIENTS,
    MAX_NODES, MAX_STAGGER,
};

/// Where in a scenario a rule is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Loc {
    /// `nodes`.
    Nodes,
    /// `seeds[i]`.
    Seeds(usize),
    /// `settle`, against `duration`.
    Settle,
    /// `seed`.
    Seed,
    /// `stagger`.
    Stagger,
    /// `clients`.
    Clients,
    /// `network.latency`.
    NetworkLatency,
    /// `network.loss`.
    NetworkLoss,
    /// `mutation`.
    Mutation,
    /// `properties[i]`.
    Property(usize),
    /// The `i`th entry of `[knobs]`, in name order.
    Knob(usize),
    /// A field of the action of `step[i]`.
    Step(usize, Field),
    /// A field of the end check `expect[i]`.
    Expect(usize, Field),
}

/// A field of an action or condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    /// The action's key.
    Action,
    /// `at` or `after`.
    Timing,
    /// The value of a system operation.
    Op,
    /// The value of a system condition.
    Check,
    /// `value` (of `latency`).
    Value,
    /// `rate` (of `loss`).
    Rate,
    /// A node change's own field, by its key (`for` of `pause`, `drift` of
    /// `clock`).
    Key(&'static str),
    /// `node` (of an action or a condition).
    Node,
    /// `role` (of an action aimed at a role).
    Role,
    /// Group `a` or `b`, whole (`None`) or one element.
    Group(Side, Option<usize>),
}

/// One of the two groups of a network action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    /// `a`.
    A,
    /// `b`.
    B,
}

/// A broken rule: where, and what was expected.
#[derive(Debug)]
pub(crate) struct Violation {
    /// Where.
    pub loc: Loc,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Checks every semantic rule, in file order; returns the first broken one.
pub(crate) fn check(scenario: &Scenario, syntax: &dyn Syntax) -> Result<(), Violation> {
    Checker { nodes: scenario.nodes, syntax }.scenario(scenario)
}

fn ensure(ok: bool, loc: Loc, message: impl FnOnce() -> String) -> Result<(), Violation> {
    if ok {
        Ok(())
    } else {
        Err(Violation { loc, message: message() })
    }
}

/// The largest integer TOML can hold.
const TOML_INT_MAX: u64 = i64::MAX as u64;

struct Checker<'a> {
    nodes: u32,
    syntax: &'a dyn Syntax,
}

impl Checker<'_> {
    /// `name = value` in `[knobs]`: a knob of the system, within its range.
    fn knob(&self, i: usize, name: &str, value: i64) -> Result<(), Violation> {
        let knobs = self.syntax.tunables();
        let Some(knob) = knobs.iter().find(|k| k.name == name) else {
            let names: Vec<&str> = knobs.iter().map(|k| k.name).collect();
            return Err(Violation {
                loc: Loc::Knob(i),
                message: format!(
                    "unknown knob `{name}` of system `{}`, expected one of: {}",
                    self.syntax.system(),
                    if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
                ),
            });
        };
        ensure((knob.min..=knob.max).contains(&value), Loc::Knob(i), || {
            format!("knob `{name}` is {value}, expected {}..={}", knob.min, knob.max)
        })
    }

    fn scenario(&self, s: &Scenario) -> Result<(), Violation> {
        ensure((1..=MAX_NODES).contains(&s.nodes), Loc::Nodes, || {
            format!("`nodes` must be between 1 and {MAX_NODES}, found {}", s.nodes)
        })?;
        for (i, &seed) in s.seeds.iter().enumerate() {
            self.node(Loc::Seeds(i), seed)?;
        }
        ensure(s.stagger <= MAX_STAGGER, Loc::Stagger, || {
            format!(
                "`stagger` ({}) is too long, expected at most {}",
                super::format_duration(s.stagger),
                super::format_duration(MAX_STAGGER)
            )
        })?;
        ensure((1..=MAX_CLIENTS).contains(&s.clients), Loc::Clients, || {
            format!("`clients` must be between 1 and {MAX_CLIENTS}, found {}", s.clients)
        })?;
        ensure(s.settle <= s.duration, Loc::Settle, || {
            format!(
                "`settle` ({}) is longer than `duration` ({}), expected at most the duration",
                super::format_duration(s.settle),
                super::format_duration(s.duration)
            )
        })?;
        ensure(s.seed <= TOML_INT_MAX, Loc::Seed, || {
            format!("`seed` {} is too large, expected at most {TOML_INT_MAX}", s.seed)
        })?;
        if let Some(mutation) = &s.planted_bug {
            let bugs = self.syntax.bugs();
            ensure(bugs.iter().any(|b| b.name == mutation), Loc::Mutation, || {
                let names: Vec<&str> = bugs.iter().map(|b| b.name).collect();
                format!(
                    "unknown mutation `{mutation}` of system `{}`, expected one of: {}",
                    self.syntax.system(),
                    if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
                )
            })?;
        }
        if !s.properties.is_empty() {
            let codes = self.syntax.judging_properties();
            for (i, code) in s.properties.iter().enumerate() {
                ensure(codes.contains(&code.as_str()), Loc::Property(i), || {
                    format!(
                        "unknown property `{code}` of system `{}`, expected one of its `always` or `eventually` properties: {}",
                        self.syntax.system(),
                        codes.join(", ")
                    )
                })?;
            }
        }
        for (i, (name, &value)) in s.knobs.iter().enumerate() {
            self.knob(i, name, value)?;
        }
        range(Loc::NetworkLatency, &s.network.latency)?;
        probability(Loc::NetworkLoss, s.network.loss)?;
        let mut earliest = Duration::ZERO;
        for (i, step) in s.steps.iter().enumerate() {
            earliest = match step.timing {
                Timing::Immediately => earliest,
                Timing::At(at) => at.max(earliest),
                Timing::After(after) => earliest + after,
            };
            ensure(earliest <= s.duration, Loc::Step(i, Field::Timing), || {
                format!(
                    "this step starts at {} at the earliest, after the run ends (`duration` = {}), expected at most the duration",
                    super::format_duration(earliest),
                    super::format_duration(s.duration)
                )
            })?;
            self.action(i, &step.action)?;
        }
        for (i, condition) in s.expects.iter().enumerate() {
            self.condition(|field| Loc::Expect(i, field), condition)?;
        }
        // The final phase runs with every fault healed: only operations,
        // `await` and `expect`, timed after one another.
        for (i, step) in s.finals.iter().enumerate() {
            let index = s.steps.len() + i;
            ensure(!step.action.is_fault(), Loc::Step(index, Field::Action), || {
                format!(
                    "`{}` is a fault, and the final phase runs with every fault healed, expected an operation, `await` or `expect`",
                    step.action.name()
                )
            })?;
            ensure(!matches!(step.timing, Timing::At(_)), Loc::Step(index, Field::Timing), || {
                "a final step is timed from the one before it, expected `after` or no time, not `at`".to_string()
            })?;
            self.action(index, &step.action)?;
        }
        Ok(())
    }

    fn action(&self, step: usize, action: &Action) -> Result<(), Violation> {
        let at = |field| Loc::Step(step, field);
        match action {
            Action::Link { change, scope } => {
                let partition = match change {
                    LinkChange::Latency(value) => range(at(Field::Value), value).map(|()| false)?,
                    LinkChange::Loss(rate) => probability(at(Field::Rate), *rate).map(|()| false)?,
                    LinkChange::Partition { .. } => true,
                    LinkChange::Heal => false,
                };
                let Scope::Between { a, b } = scope else {
                    return ensure(!partition, at(Field::Action), || {
                        "`partition` has no groups, expected both `a` and `b`".to_string()
                    });
                };
                self.group(step, Side::A, a)?;
                self.group(step, Side::B, b)?;
                match b.iter().position(|n| a.contains(n)).filter(|_| partition) {
                    Some(j) => Err(Violation {
                        loc: at(Field::Group(Side::B, Some(j))),
                        message: format!("node {} is in both `a` and `b`, expected disjoint groups", b[j]),
                    }),
                    None => Ok(()),
                }
            }
            Action::Rebind { node, .. } => {
                ensure(self.syntax.abilities().rebind, at(Field::Action), || {
                    format!(
                        "system `{}` cannot rebind a running node (no rebind capability), expected one of {}",
                        self.syntax.system(),
                        Action::NAMES.iter().filter(|&&a| a != "rebind").copied().collect::<Vec<_>>().join(", ")
                    )
                })?;
                self.node(at(Field::Node), *node)
            }
            Action::Await { condition, .. } | Action::Expect { condition } => self.condition(at, condition),
            Action::Op(call) => {
                let message =
                    |(_, message): (Option<std::ops::Range<usize>>, String)| Violation { loc: at(Field::Op), message };
                self.syntax.check_op(&source(call), self.nodes).map(drop).map_err(message)
            }
            Action::Aimed { role, aim } => {
                let roles = self.syntax.role_names();
                ensure(roles.contains(&role.as_str()), at(Field::Role), || {
                    format!(
                        "unknown role `{role}` of system `{}`, expected one of: {}",
                        self.syntax.system(),
                        if roles.is_empty() { "(none)".to_string() } else { roles.join(", ") }
                    )
                })?;
                ensure(self.nodes >= 2 || !matches!(aim, Aim::Isolate { .. }), at(Field::Action), || {
                    "a partition of a role needs at least 2 nodes".into()
                })?;
                // The rest, as of the same action aimed at node 0.
                self.action(step, &aim.at(0, self.nodes))
            }
            // The other node actions: the change's own fields, then its node.
            _ => {
                let (node, change) = action.node_change().expect("every other action is a node action");
                if let Some((key, message)) = change.problem() {
                    return Err(Violation { loc: at(Field::Key(key)), message });
                }
                self.node(at(Field::Node), node)
            }
        }
    }

    fn condition(&self, at: impl Fn(Field) -> Loc, condition: &Condition) -> Result<(), Violation> {
        if let Some(node) = condition.node {
            self.node(at(Field::Node), node)?;
        }
        let message =
            |(_, message): (Option<std::ops::Range<usize>>, String)| Violation { loc: at(Field::Check), message };
        self.syntax.check_condition(&source(&condition.check)).map(drop).map_err(message)
    }

    fn group(&self, step: usize, side: Side, group: &[NodeIdx]) -> Result<(), Violation> {
        ensure(!group.is_empty(), Loc::Step(step, Field::Group(side, None)), || {
            format!("group `{side}` is empty, expected at least one node index")
        })?;
        for (j, &node) in group.iter().enumerate() {
            self.node(Loc::Step(step, Field::Group(side, Some(j))), node)?;
        }
        Ok(())
    }

    fn node(&self, loc: Loc, node: NodeIdx) -> Result<(), Violation> {
        ensure(node < self.nodes, loc, || {
            format!(
                "node index {node} is out of range, expected 0..={} (nodes = {})",
                self.nodes.saturating_sub(1),
                self.nodes
            )
        })
    }
}

/// A call written as TOML source: `key = value`.
fn source(call: &Call) -> String {
    format!("{} = {}", call.key, super::write::value(&call.value))
}

fn probability(loc: Loc, p: f64) -> Result<(), Violation> {
    ensure((0.0..=1.0).contains(&p), loc, || format!("probability {p} is out of range, expected 0.0..=1.0"))
}

fn range(loc: Loc, range: &LatencyRange) -> Result<(), Violation> {
    ensure(range.min <= range.max, loc, || format!("range {range} has MIN greater than MAX, expected MIN <= MAX"))
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "a",
            Side::B => "b",
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Action => f.write_str("action"),
            Field::Timing => f.write_str("at/after"),
            Field::Op => f.write_str("op"),
            Field::Check => f.write_str("check"),
            Field::Value => f.write_str("value"),
            Field::Rate => f.write_str("rate"),
            Field::Key(key) => f.write_str(key),
            Field::Node => f.write_str("node"),
            Field::Role => f.write_str("role"),
            Field::Group(side, None) => write!(f, "{side}"),
            Field::Group(side, Some(j)) => write!(f, "{side}[{j}]"),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Nodes => f.write_str("nodes"),
            Loc::Seeds(i) => write!(f, "seeds[{i}]"),
            Loc::Settle => f.write_str("settle"),
            Loc::Stagger => f.write_str("stagger"),
            Loc::Clients => f.write_str("clients"),
            Loc::Seed => f.write_str("seed"),
            Loc::NetworkLatency => f.write_str("network.latency"),
            Loc::NetworkLoss => f.write_str("network.loss"),
            Loc::Mutation => f.write_str("mutation"),
            Loc::Property(i) => write!(f, "properties[{i}]"),
            Loc::Knob(i) => write!(f, "knobs[{i}]"),
            Loc::Step(i, field) => write!(f, "step[{i}].{field}"),
            Loc::Expect(i, field) => write!(f, "expect[{i}].{field}"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}
