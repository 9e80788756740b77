//! Properties: what a run of a system must (always), must eventually, and
//! should sometimes show, as user closures over the history (stateright's
//! `Property::always / eventually / sometimes`, moonpool's read-only
//! invariants).
//!
//! A property reads the history; it never changes it, and it judges only
//! what the harness observed. `always` properties are monitors fed every new
//! event once, as it arrives, so long runs stay linear and a violation stops
//! the run at the event that broke it, whatever step is running; `eventually`
//! properties are judged once, at the end of the settle tail; `sometimes`
//! properties are coverage goals, reported as hit or missed.
//!
//! ```
//! # use tandem::property::Property;
//! # fn demo<S: tandem::system::System>() -> Vec<Property<S>> {
//! use tandem::history::EventKind;
//! vec![
//!     // No operation fails, checked event by event.
//!     Property::always("ops", "operations succeed", || {
//!         |_: &tandem::history::History<S>, e: &tandem::history::Event<S>| match &e.event {
//!             EventKind::Complete { result: tandem::history::OpResult::Failed(why), .. } => Err(why.clone()),
//!             _ => Ok(()),
//!         }
//!     }),
//!     // At the end, every node runs.
//!     Property::eventually("up", "every node is up", |h| match h.nodes().iter().position(|n| !n.alive) {
//!         Some(n) => Err(format!("node {n} is down")),
//!         None => Ok(()),
//!     }),
//! ]
//! # }
//! ```

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::engine::coverage::Reached;
use crate::history::{Event, EventKind, History};
use crate::probe::AssertKind;
use crate::scenario::NodeIdx;
use crate::system::Oracle;

/// A failed property, expectation or await.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// A short code: the property's (`S1`, `L2`, ...), or `expect`, `await`, `assert`.
    pub code: String,
    /// What the code checks (`delivery`, `no self-delivery`, ...).
    pub name: String,
    /// The first offending fact.
    pub detail: String,
    /// When it was observed.
    #[serde(skip)]
    pub at: Duration,
    /// The node it concerns, when known.
    #[serde(skip)]
    pub node: Option<NodeIdx>,
    /// The history events it names (indices into [`History::events`]).
    #[serde(skip)]
    pub events: Vec<usize>,
}

impl Violation {
    /// A violation of `code` (`name`) at `at`.
    pub fn new(code: impl Into<String>, name: impl Into<String>, detail: impl Into<String>, at: Duration) -> Self {
        Violation { code: code.into(), name: name.into(), detail: detail.into(), at, node: None, events: Vec::new() }
    }

    /// The same violation, naming the history event at `index` (on `node`).
    pub fn naming(mut self, index: usize, node: Option<NodeIdx>) -> Self {
        self.events.push(index);
        self.node = self.node.or(node);
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.code, self.name, self.detail)
    }
}

/// Why an `eventually` property failed: what to say, and the node and the
/// history events it concerns, when the check can tell.
///
/// ```
/// use tandem::property::Failure;
/// let failure = Failure::from("node 2 never delivered \"b1\"").on(2).naming(17);
/// assert_eq!((failure.node, failure.events), (Some(2), vec![17]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The first offending fact.
    pub detail: String,
    /// The node it concerns.
    pub node: Option<NodeIdx>,
    /// The history events it names (indices into [`History::events`]).
    pub events: Vec<usize>,
}

impl Failure {
    /// The same failure, concerning `node`.
    pub fn on(mut self, node: NodeIdx) -> Self {
        self.node = Some(node);
        self
    }

    /// The same failure, naming the history event at `index`.
    pub fn naming(mut self, index: usize) -> Self {
        self.events.push(index);
        self
    }
}

impl From<String> for Failure {
    fn from(detail: String) -> Self {
        Failure { detail, node: None, events: Vec::new() }
    }
}

impl From<&str> for Failure {
    fn from(detail: &str) -> Self {
        detail.to_string().into()
    }
}

/// A safety monitor: sees every event once, in order, and says whether the
/// history so far is still fine. Any `FnMut(&History, &Event) -> Result<(),
/// String>` closure is one.
pub trait Monitor<S: Oracle>: Send {
    /// Judges `event`, the newest event of `history` it has not seen.
    fn observe(&mut self, history: &History<S>, event: &Event<S>) -> Result<(), String>;

    /// Judges the whole run once it has ended, for a check too dear to run
    /// at every event (a linearizability search). The failure is dated by
    /// the latest event it names.
    fn finish(&mut self, _history: &History<S>) -> Result<(), Failure> {
        Ok(())
    }
}

impl<S: Oracle, F: FnMut(&History<S>, &Event<S>) -> Result<(), String> + Send> Monitor<S> for F {
    fn observe(&mut self, history: &History<S>, event: &Event<S>) -> Result<(), String> {
        self(history, event)
    }
}

type MonitorFactory<S> = Arc<dyn Fn() -> Box<dyn Monitor<S>> + Send + Sync>;
type EndCheck<S> = Arc<dyn Fn(&History<S>) -> Result<(), Failure> + Send + Sync>;
type Goal<S> = Arc<dyn Fn(&History<S>, &Event<S>) -> bool + Send + Sync>;

/// When a property is judged.
#[derive(Clone)]
pub enum Kind<S: Oracle> {
    /// After every step, on every new event (safety).
    Always(MonitorFactory<S>),
    /// At the end of the settle tail (liveness).
    Eventually(EndCheck<S>),
    /// A coverage goal: hit when some event satisfies it.
    Sometimes(Goal<S>),
}

/// A named property of a system.
#[derive(Clone)]
pub struct Property<S: Oracle> {
    /// A short code, like `S1`.
    pub code: &'static str,
    /// What it checks, like `no self-delivery`.
    pub name: &'static str,
    /// When and how it is judged.
    pub kind: Kind<S>,
}

impl<S: Oracle> fmt::Debug for Property<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.code, self.name, self.kind_name())
    }
}

impl<S: Oracle> Property<S> {
    /// Whether it judges a run (`always`, `eventually`), rather than track
    /// a coverage goal (`sometimes`).
    pub fn judges(&self) -> bool {
        !matches!(self.kind, Kind::Sometimes(_))
    }

    /// A safety property: `monitor` makes a fresh monitor for every run
    /// (state of its own, such as the messages seen so far).
    pub fn always<M: Monitor<S> + 'static>(
        code: &'static str,
        name: &'static str,
        monitor: impl Fn() -> M + Send + Sync + 'static,
    ) -> Self {
        let factory: MonitorFactory<S> = Arc::new(move || Box::new(monitor()));
        Property { code, name, kind: Kind::Always(factory) }
    }

    /// A liveness property, judged on the whole history at the end.
    pub fn eventually(
        code: &'static str,
        name: &'static str,
        check: impl Fn(&History<S>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self::eventually_naming(code, name, move |h| check(h).map_err(Failure::from))
    }

    /// A liveness property whose failures name the node and the history
    /// events they concern (the timeline picture marks them).
    ///
    /// ```
    /// # use tandem::property::{Failure, Property};
    /// # fn demo<S: tandem::system::System>() -> Property<S> {
    /// Property::eventually_naming("up", "every node is up", |h| match h.nodes().iter().position(|n| !n.alive) {
    ///     Some(n) => Err(Failure::from(format!("node {n} is down")).on(n as u32)),
    ///     None => Ok(()),
    /// })
    /// # }
    /// ```
    pub fn eventually_naming(
        code: &'static str,
        name: &'static str,
        check: impl Fn(&History<S>) -> Result<(), Failure> + Send + Sync + 'static,
    ) -> Self {
        Property { code, name, kind: Kind::Eventually(Arc::new(check)) }
    }

    /// A coverage goal: hit when `goal` holds for some event.
    pub fn sometimes(
        code: &'static str,
        name: &'static str,
        goal: impl Fn(&History<S>, &Event<S>) -> bool + Send + Sync + 'static,
    ) -> Self {
        Property { code, name, kind: Kind::Sometimes(Arc::new(goal)) }
    }

    /// `always`, `eventually` or `sometimes`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Always(_) => "always",
            Kind::Eventually(_) => "eventually",
            Kind::Sometimes(_) => "sometimes",
        }
    }
}

/// A coverage goal's result in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The goal: a `sometimes` property's code and name, or an in-node
    /// `sometimes!`/`reachable!` message.
    pub goal: String,
    /// Whether the run reached it.
    pub hit: bool,
    /// When and where the run first reached it.
    #[serde(skip)]
    pub first: Option<Reached>,
}

/// Judges one run's history: incrementally for `always` properties and
/// in-node assertions, once at the end for `eventually` properties.
pub struct Judge<S: Oracle> {
    monitors: Vec<(&'static str, &'static str, Box<dyn Monitor<S>>)>,
    ends: Vec<(&'static str, &'static str, EndCheck<S>)>,
    goals: Vec<(String, Goal<S>, Option<Reached>)>,
    assertions: Vec<(String, Option<Reached>)>,
    seen: usize,
    /// The first violation, once seen: a judge that found one stays failed.
    failed: Option<Violation>,
}

/// Runs a property's code; a panic becomes its failure message.
fn guarded<R, E: From<String>>(f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(format!("the property panicked: {}", panic_message(&*panic)).into()))
}

impl<S: Oracle> Judge<S> {
    /// A judge of `properties`, with fresh monitors.
    pub fn new(properties: &[Property<S>]) -> Self {
        let mut judge = Judge {
            monitors: Vec::new(),
            ends: Vec::new(),
            goals: Vec::new(),
            assertions: Vec::new(),
            seen: 0,
            failed: None,
        };
        for p in properties {
            match &p.kind {
                Kind::Always(factory) => judge.monitors.push((p.code, p.name, factory())),
                Kind::Eventually(check) => judge.ends.push((p.code, p.name, check.clone())),
                Kind::Sometimes(goal) => judge.goals.push((format!("{} {}", p.code, p.name), goal.clone(), None)),
            }
        }
        judge
    }

    /// Feeds the events not seen yet to the monitors and goals; the first
    /// violation, if any (the same one at every later call).
    pub fn advance(&mut self, history: &History<S>) -> Result<(), Violation> {
        if self.failed.is_none() {
            self.failed = self.judge_new_events(history).err();
        }
        self.failed.clone().map_or(Ok(()), Err)
    }

    fn judge_new_events(&mut self, history: &History<S>) -> Result<(), Violation> {
        let events = history.events();
        while self.seen < events.len() {
            let event = &events[self.seen];
            self.seen += 1;
            let reached = Reached { at: event.at(), node: event.node };
            if let EventKind::Assert(a) = &event.event {
                if a.fails() {
                    let name = if a.kind == AssertKind::Always {
                        "always! in node code"
                    } else {
                        "reached assert_unreachable!"
                    };
                    let detail = format!("{} (node {})", a.name, event.node.map_or("?".into(), |n| n.to_string()));
                    return Err(Violation::new("assert", name, detail, event.at()).naming(self.seen - 1, event.node));
                }
                if matches!(a.kind, AssertKind::Sometimes | AssertKind::Reachable) {
                    let now = a.holds.then_some(reached);
                    match self.assertions.iter_mut().find(|(name, _)| *name == a.name) {
                        Some((_, first)) => *first = first.or(now),
                        None => self.assertions.push((a.name.clone(), now)),
                    }
                }
            }
            for (code, name, monitor) in &mut self.monitors {
                if let Err(detail) = guarded(|| monitor.observe(history, event)) {
                    return Err(Violation::new(*code, *name, detail, event.at()).naming(self.seen - 1, event.node));
                }
            }
            for (_, goal, first) in self.goals.iter_mut().filter(|(_, _, first)| first.is_none()) {
                if guarded(|| Ok::<_, String>(goal(history, event))).unwrap_or(false) {
                    *first = Some(reached);
                }
            }
        }
        Ok(())
    }

    /// The monitors' end checks, then the liveness properties, judged on
    /// the whole history at `at`.
    pub fn finish(&mut self, history: &History<S>, at: Duration) -> Result<(), Violation> {
        self.advance(history)?;
        for (code, name, monitor) in &mut self.monitors {
            guarded(|| monitor.finish(history)).map_err(|f| {
                let at = f.events.iter().map(|&e| history.events()[e].at()).max().unwrap_or(at);
                Violation { events: f.events, node: f.node, ..Violation::new(*code, *name, f.detail, at) }
            })?;
        }
        for (code, name, check) in &self.ends {
            guarded(|| check(history)).map_err(|f| Violation {
                events: f.events,
                node: f.node,
                ..Violation::new(*code, *name, f.detail, at)
            })?;
        }
        Ok(())
    }

    /// The coverage goals: `sometimes` properties, then in-node goals in the
    /// order they were first evaluated.
    pub fn coverage(&self) -> Vec<Coverage> {
        let coverage = |goal: &String, first: &Option<Reached>| Coverage {
            goal: goal.clone(),
            hit: first.is_some(),
            first: *first,
        };
        let declared = self.goals.iter().map(|(goal, _, first)| coverage(goal, first));
        let in_node = self.assertions.iter().map(|(goal, first)| coverage(goal, first));
        declared.chain(in_node).collect()
    }
}

/// A panic's message.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
