//! The timeline picture of a run: one self-contained HTML page (no network
//! access: its script and style are inline) that draws a run's history.
//!
//! - one lane per node, with its incarnations (crashes and restarts marked)
//!   and its addresses over time (rebinds marked);
//! - the scenario's steps on the time axis, and partitions, one-way
//!   partitions, loss and latency as bands over the lanes they affect;
//! - the node's events as dots, and arrows between events the system says
//!   belong together ([`Drawing::mark`](crate::system::Drawing::mark)), with duplicates and missing ends
//!   marked;
//! - the verdict, and the first violated property at its time and node.
//!
//! Hover or click a dot for its details, zoom with the wheel, pan by
//! dragging, filter by node and by kind of event.
//!
//! ```
//! # use tandem::engine::picture::Mark;
//! // What a messaging system says of a send and of its delivery.
//! let send = Mark::new("send", "send m1").cause("0/0/1").expect([1, 2]);
//! let deliver = Mark::new("deliver", "deliver m1").effect("0/0/1");
//! # let _ = (send, deliver);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::engine::execute::Outcome;
use crate::engine::links::{Link, LinkState};
use crate::history::{EventKind, History, OpResult, FINAL, SETTLE};
use crate::scenario::{format_duration, Action, LinkChange, Network, NodeIdx, Scenario, Scope};
use crate::system::System;

mod mark;
#[cfg(test)]
mod tests;

pub use mark::Mark;

/// One node's incarnation: from its start to its crash (or the end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Life {
    /// The incarnation.
    pub incarnation: u64,
    /// When it started.
    pub from_us: u64,
    /// When it crashed; `None` when it ran to the end.
    pub crashed_us: Option<u64>,
}

/// Where a node listened from a moment on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// Since when.
    pub from_us: u64,
    /// The address.
    pub addr: String,
    /// Whether a rebind moved it there (else a start).
    pub rebind: bool,
}

/// One node's lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lane {
    /// The node.
    pub node: NodeIdx,
    /// Its incarnations, in order.
    pub lives: Vec<Life>,
    /// Its addresses over time.
    pub addrs: Vec<Address>,
}

/// A scenario step (or a change the runner made, such as the settle tail)
/// on the time axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepMark {
    /// The step's index; `None` for the runner's own change.
    pub index: Option<usize>,
    /// When it began.
    pub t_us: u64,
    /// The action as written in a scenario file.
    pub action: String,
}

/// A network fault over time, drawn over the lanes it affects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    /// `partition`, `one-way`, `loss` or `latency`.
    pub kind: &'static str,
    /// What it is (`partition [0] | [1, 2]`).
    pub label: String,
    /// The nodes it affects.
    pub nodes: Vec<NodeIdx>,
    /// When it began.
    pub from_us: u64,
    /// When it ended (healed, replaced, or the end of the run).
    pub to_us: u64,
}

/// One event drawn as a dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dot {
    /// Its index in the history.
    pub event: usize,
    /// When.
    pub t_us: u64,
    /// On which node.
    pub node: NodeIdx,
    /// The node's incarnation then.
    pub incarnation: u64,
    /// How the system draws it (or the generic mark).
    #[serde(flatten)]
    pub mark: Mark,
    /// The event's canonical JSON.
    pub detail: String,
}

/// An arrow from a cause to an effect, by index into [`Picture::dots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arrow {
    /// The cause.
    pub from: usize,
    /// The effect.
    pub to: usize,
}

/// The first violated property, where the picture highlights it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Highlight {
    /// The property's code.
    pub code: String,
    /// `CODE name: detail`.
    pub text: String,
    /// When it was observed.
    pub t_us: u64,
    /// The node it concerns, when known.
    pub node: Option<NodeIdx>,
    /// The dots (indices into [`Picture::dots`]) of the events it names.
    pub dots: Vec<usize>,
}

/// Everything the page draws of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Picture {
    /// What ran: `scenario seed=N`, and where.
    pub title: String,
    /// `PASS`, or `FAIL` and the failure.
    pub verdict: String,
    /// When the run ended.
    pub end_us: u64,
    /// One per node.
    pub lanes: Vec<Lane>,
    /// The steps on the time axis.
    pub steps: Vec<StepMark>,
    /// Network faults over time.
    pub bands: Vec<Band>,
    /// The nodes' events.
    pub dots: Vec<Dot>,
    /// Causes joined to their effects.
    pub arrows: Vec<Arrow>,
    /// The first violation, if the run failed.
    pub violation: Option<Highlight>,
}

fn micros(at: Duration) -> u64 {
    u64::try_from(at.as_micros()).unwrap_or(u64::MAX)
}

/// The names serde gives a value's variants, outer to inner (`node
/// connected` for `{"node": {"connected": {..}}}`), or `what` when it has none.
fn variant<T: Serialize>(value: &T, what: &str) -> String {
    let mut names = Vec::new();
    let mut value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    loop {
        match value {
            serde_json::Value::Object(map) if map.len() == 1 => {
                let (name, inner) = map.into_iter().next().expect("one entry");
                names.push(name);
                value = inner;
            }
            serde_json::Value::String(name) => {
                names.push(name);
                break;
            }
            _ => break,
        }
    }
    if names.is_empty() {
        what.to_string()
    } else {
        names.join(" ")
    }
}

/// The mark of an event of `node` the system says nothing about.
fn generic<S: System>(event: &EventKind<S>, node: NodeIdx) -> Mark {
    match event {
        EventKind::Invoke { op, .. } => Mark::new("invoke", variant(op, "operation")),
        EventKind::Complete { result, .. } => match result {
            OpResult::Ok(_) => Mark::new("complete", "ok"),
            OpResult::Failed(why) => Mark::new("complete", format!("failed: {why}")),
            OpResult::Unknown(_) => Mark::new("complete", "unknown"),
        },
        EventKind::Observe(observation) => Mark::new("observe", variant(observation, "observation")),
        EventKind::Assert(assertion) => {
            let mark = Mark::new("assert", assertion.name.clone());
            if assertion.fails() {
                mark.problem("assertion failed")
            } else {
                mark
            }
        }
        kind => match kind.fact(Some(node)) {
            Some(fact) => Mark::new("fault", fact),
            None => Mark::new("event", "event"),
        },
    }
}

impl Picture {
    /// The picture of `history`, a run of `scenario` that ended with `outcome`.
    pub fn of<S: System>(
        system: &S,
        scenario: &Scenario,
        history: &History<S>,
        outcome: &Outcome,
        title: impl Into<String>,
    ) -> Self {
        let end_us = micros(outcome.end).max(history.events().last().map_or(0, |e| e.t_us));
        let mut lanes: Vec<Lane> = (0..history.nodes().len() as NodeIdx)
            .map(|node| Lane { node, lives: Vec::new(), addrs: Vec::new() })
            .collect();
        let mut bands = Bands::new(scenario.nodes, &scenario.network, end_us);
        let mut steps = Vec::new();
        let mut dots = Vec::new();
        let mut by_event = BTreeMap::new();
        history.walk(|index, event, faults| {
            let t_us = event.t_us;
            match (&event.event, event.node) {
                (EventKind::Started { incarnation, addr }, Some(node)) => {
                    let lane = &mut lanes[node as usize];
                    lane.lives.push(Life { incarnation: *incarnation, from_us: t_us, crashed_us: None });
                    lane.addrs.push(Address { from_us: t_us, addr: addr.to_string(), rebind: false });
                }
                (EventKind::Crashed, Some(node)) => {
                    if let Some(life) = lanes[node as usize].lives.last_mut() {
                        life.crashed_us = Some(t_us);
                    }
                }
                (EventKind::Rebound { addr }, Some(node)) => {
                    lanes[node as usize].addrs.push(Address { from_us: t_us, addr: addr.to_string(), rebind: true });
                }
                (EventKind::Step { index, action }, None) => {
                    steps.push(StepMark { index: Some(*index), t_us, action: Scenario::action_toml(action) });
                    if let Action::Link { change, scope } = action {
                        bands.apply(change, scope, faults.links(), t_us);
                    }
                }
                (EventKind::Settle, None) => {
                    steps.push(StepMark { index: None, t_us, action: SETTLE.into() });
                    bands.settle(faults.links(), t_us);
                }
                (EventKind::Final, None) => steps.push(StepMark { index: None, t_us, action: FINAL.into() }),
                (EventKind::Verdict { .. }, _) => {}
                (kind, None) => {
                    if let Some(fact) = kind.fact(None) {
                        steps.push(StepMark { index: None, t_us, action: fact });
                    }
                }
                (kind, Some(node)) => {
                    let mark = system.mark(history, event).unwrap_or_else(|| generic(kind, node));
                    let incarnation = lanes[node as usize].lives.last().map_or(0, |l| l.incarnation);
                    by_event.insert(index, dots.len());
                    dots.push(Dot { event: index, t_us, node, incarnation, mark, detail: event.canonical() });
                }
            }
        });
        let arrows = join(&mut dots);
        let violation = outcome.failure.as_ref().map(|failure| {
            let named: Vec<usize> = failure.events.iter().filter_map(|e| by_event.get(e).copied()).collect();
            let node = failure.node.or_else(|| named.first().map(|&d| dots[d].node));
            Highlight {
                code: failure.code.clone(),
                text: failure.to_string(),
                t_us: micros(failure.at),
                node,
                dots: named,
            }
        });
        let verdict = match &outcome.failure {
            Some(failure) => format!("FAIL {failure}"),
            None => "PASS".to_string(),
        };
        Picture { title: title.into(), verdict, end_us, lanes, steps, bands: bands.finish(), dots, arrows, violation }
    }

    /// The picture as one self-contained HTML page.
    pub fn html(&self) -> String {
        page(std::slice::from_ref(self))
    }
}

/// Joins causes to their effects by key, and marks the effects a node
/// incarnation saw more than once as duplicates.
fn join(dots: &mut [Dot]) -> Vec<Arrow> {
    let mut causes: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, dot) in dots.iter().enumerate() {
        if let (Some(key), true) = (&dot.mark.key, dot.mark.cause) {
            causes.entry(key.as_str()).or_insert(i);
        }
    }
    let mut arrows = Vec::new();
    let mut seen: BTreeMap<(String, NodeIdx, u64), usize> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (i, dot) in dots.iter().enumerate() {
        let Some(key) = dot.mark.key.as_deref().filter(|_| !dot.mark.cause) else { continue };
        if let Some(&from) = causes.get(key) {
            arrows.push(Arrow { from, to: i });
        }
        if seen.insert((key.to_string(), dot.node, dot.incarnation), i).is_some() && dot.mark.problem.is_none() {
            duplicates.push(i);
        }
    }
    for i in duplicates {
        dots[i].mark.problem = Some("duplicate".into());
    }
    arrows
}

/// An open band: what the link change set, and on which links.
struct Open {
    band: Band,
    change: LinkChange,
    links: Vec<(NodeIdx, NodeIdx)>,
}

/// Network faults, opened and closed as the steps change the links.
struct Bands {
    nodes: u32,
    open: Vec<Open>,
    closed: Vec<Band>,
    end_us: u64,
}

fn sorted(nodes: &[NodeIdx]) -> Vec<NodeIdx> {
    let mut nodes = nodes.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    nodes
}

/// Whether some link of `open` still is as its change set it.
fn still(links: &LinkState, open: &Open) -> bool {
    open.links.iter().any(|&(x, y)| holds(links.link(x, y), &open.change))
}

/// Whether `link` still is as `change` set it.
fn holds(link: Link, change: &LinkChange) -> bool {
    match *change {
        LinkChange::Partition { .. } => link.partitioned,
        LinkChange::Heal => !link.partitioned,
        LinkChange::Latency(latency) => link.latency == latency,
        LinkChange::Loss(loss) => link.loss == loss,
    }
}

/// The band a link change opens: its kind and label, or `None` when it
/// ends faults rather than starting one.
fn band(change: &LinkChange, scope: &Scope, network: &Network) -> Option<(&'static str, String)> {
    match *change {
        LinkChange::Partition { oneway } => {
            let Scope::Between { a, b } = scope else { return None };
            Some(match oneway {
                true => ("one-way", format!("one-way {a:?} -> {b:?}")),
                false => ("partition", format!("partition {a:?} | {b:?}")),
            })
        }
        LinkChange::Heal => None,
        LinkChange::Latency(latency) => (latency != network.latency).then(|| {
            ("latency", format!("latency {}..{}", format_duration(latency.min), format_duration(latency.max)))
        }),
        LinkChange::Loss(loss) => (loss > 0.0).then(|| ("loss", format!("loss {}%", loss * 100.0))),
    }
}

impl Bands {
    /// The bands of a run of `nodes` nodes on `network` that ends at `end_us`.
    fn new(nodes: u32, network: &Network, end_us: u64) -> Self {
        let mut bands = Bands { nodes, open: Vec::new(), closed: Vec::new(), end_us };
        bands.open_band(&LinkChange::Loss(network.loss), &Scope::Every, network, 0);
        bands
    }

    fn open_band(&mut self, change: &LinkChange, scope: &Scope, network: &Network, t_us: u64) {
        let Some((kind, label)) = band(change, scope, network) else { return };
        let nodes = match scope {
            Scope::Between { a, b } => sorted(&[a.as_slice(), b.as_slice()].concat()),
            Scope::Every => (0..self.nodes).collect(),
        };
        let band = Band { kind, label, nodes, from_us: t_us, to_us: self.end_us };
        self.open.push(Open { band, change: *change, links: change.links(scope, self.nodes) });
    }

    /// Closes the open bands that `closes` selects.
    fn close(&mut self, t_us: u64, closes: impl Fn(&Open) -> bool) {
        let (ended, open): (Vec<_>, Vec<_>) = self.open.drain(..).partition(closes);
        self.open = open;
        self.closed.extend(ended.into_iter().map(|open| Band { to_us: t_us, ..open.band }));
    }

    /// A link action, which left the links as `links`: a band ends when
    /// none of its links is as it set them any more, or when a change of its
    /// kind sets all of them again.
    fn apply(&mut self, change: &LinkChange, scope: &Scope, links: &LinkState, t_us: u64) {
        let changed = change.links(scope, self.nodes);
        self.close(t_us, |open| {
            let replaced = std::mem::discriminant(&open.change) == std::mem::discriminant(change)
                && open.links.iter().all(|link| changed.binary_search(link).is_ok());
            replaced || !still(links, open)
        });
        self.open_band(change, scope, links.network(), t_us);
    }

    /// The settle tail, which left the links as `links`: it ends every band
    /// (its own changes open none).
    fn settle(&mut self, links: &LinkState, t_us: u64) {
        self.close(t_us, |open| !still(links, open));
    }

    fn finish(mut self) -> Vec<Band> {
        let end = self.end_us;
        self.close(end, |_| true);
        self.closed.sort_by_key(|band| band.from_us);
        self.closed
    }
}

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// One self-contained HTML page showing `pictures` one above the other
/// (`tandem confirm` shows the simulated and the real run side by side).
pub fn page(pictures: &[Picture]) -> String {
    // JSON inside <script>: no `<` may end the element early.
    let data = serde_json::to_string(pictures).expect("pictures serialise").replace('<', "\\u003c");
    let title = pictures.first().map_or("tandem".into(), |p| p.title.clone());
    let title = title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} - tandem</title>\n\
         <style>\n{STYLE}</style>\n</head>\n<body>\n<div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"tandem-data\">{data}</script>\n<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
    )
}

/// Writes `pictures` as one page to `path`.
pub fn write(path: &std::path::Path, pictures: &[Picture]) -> std::io::Result<()> {
    std::fs::write(path, page(pictures))
}
