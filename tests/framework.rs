//! The framework on systems of its own (never a bundled one): the guide's
//! echo system, and a counter made to exercise every corner of the System
//! API: operations that fail or never answer, in-node assertions,
//! properties that fail or panic, capabilities, planted bugs, conditions.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::history::{Event, EventKind, Faults, History, OpResult};
use tandem::property::Property;
use tandem::scenario::{NodeIdx, Scenario};
use tandem::system::{
    Adapter, Drawing, Invocation, Knob, NodeContext, OpError, Operation, Oracle, PlantedBug, System, Workload,
};
use tandem::transport::{Listener, Transport};
use tandem_sim::run_scenario;

#[allow(dead_code)]
#[path = "../sim/examples/ping.rs"]
mod ping;
use ping::Echo;

/// How many bumps a counter takes: a knob.
const LIMIT: Knob = Knob { name: "limit", description: "bumps a node takes", default: 3, min: 1, max: 10 };

/// A node that counts: `bump` adds one (refused past 3, the `limit` knob), `flaky` is a bump
/// that a buggify point may refuse, `hang` never answers, `poke` reaches
/// code that must be unreachable, `maybe` answers that it may have bumped,
/// `explode` panics. Its fair rule refuses odd simulation seeds.
#[derive(Debug, Clone, Copy, Default)]
struct Counter;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum CounterOp {
    Bump { node: NodeIdx },
    Flaky { node: NodeIdx },
    Hang { node: NodeIdx },
    Poke { node: NodeIdx },
    Maybe { node: NodeIdx },
    Explode { node: NodeIdx },
}

impl Operation for CounterOp {
    fn node(&self) -> NodeIdx {
        match self {
            CounterOp::Bump { node }
            | CounterOp::Flaky { node }
            | CounterOp::Hang { node }
            | CounterOp::Poke { node }
            | CounterOp::Maybe { node }
            | CounterOp::Explode { node } => *node,
        }
    }
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            CounterOp::Bump { node }
            | CounterOp::Flaky { node }
            | CounterOp::Hang { node }
            | CounterOp::Poke { node }
            | CounterOp::Maybe { node }
            | CounterOp::Explode { node } => vec![node],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CounterCondition {
    Count(u64),
}

struct CounterNode {
    addr: SocketAddr,
    count: std::sync::atomic::AtomicU64,
    limit: u64,
    probe: tandem::probe::Probe,
    buggy: bool,
    _listener: Box<dyn std::any::Any + Send + Sync>,
}

impl Adapter for Counter {
    type Op = CounterOp;
    type Output = u64;
    type Observation = u64;
    type Node = CounterNode;

    fn name(&self) -> &'static str {
        "counter"
    }

    fn planted_bugs(&self) -> Vec<PlantedBug> {
        vec![
            PlantedBug { name: "count-twice", description: "bump adds two (breaks C1)" },
            PlantedBug { name: "no-start", description: "the node refuses to start" },
        ]
    }

    fn knobs(&self) -> Vec<Knob> {
        vec![LIMIT]
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<CounterNode, String> {
        if ctx.planted_bug == Some("no-start") {
            return Err("refuses to start".into());
        }
        let listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        Ok(CounterNode {
            addr: listener.local_addr(),
            count: Default::default(),
            limit: ctx.knobs.value(&LIMIT) as u64,
            probe: ctx.probe,
            buggy: ctx.planted_bug == Some("count-twice"),
            _listener: Box::new(listener),
        })
    }

    fn addr(&self, node: &CounterNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &CounterNode, op: CounterOp, _: Invocation) -> Result<u64, OpError> {
        match op {
            CounterOp::Flaky { .. } if tandem::buggify!(node.probe) => Err("buggified".into()),
            CounterOp::Bump { .. } | CounterOp::Flaky { .. } if node.count.load(SeqCst) >= node.limit => {
                Err("full".into())
            }
            CounterOp::Bump { .. } | CounterOp::Flaky { .. } => {
                let bump = if node.buggy { 2 } else { 1 };
                let count = node.count.fetch_add(bump, SeqCst) + bump;
                tandem::always!(node.probe, count <= node.limit, "at most limit bumps");
                tandem::sometimes!(node.probe, count == 2, "two bumps");
                tandem::reachable!(node.probe, "bumped");
                Ok(count)
            }
            CounterOp::Hang { .. } => std::future::pending().await,
            CounterOp::Maybe { .. } => Err(OpError::Indeterminate("no answer in time".into())),
            CounterOp::Explode { .. } => panic!("the node exploded"),
            CounterOp::Poke { .. } => {
                tandem::assert_unreachable!(node.probe, "poked");
                Ok(node.count.load(SeqCst))
            }
        }
    }

    async fn stop(&self, _: CounterNode) {}
}

impl Oracle for Counter {
    type Condition = CounterCondition;
    type Outcome = u64;
    type State = Vec<u64>;

    fn fold(&self, state: &mut Vec<u64>, event: &Event<Self>, _: &Faults) {
        if let (Some(node), EventKind::Complete { result: OpResult::Ok(count), .. }) = (event.node, &event.event) {
            state.resize(state.len().max(node as usize + 1), 0);
            state[node as usize] = *count;
        }
    }

    fn abstract_state(&self, state: &Vec<u64>) -> Option<String> {
        state.iter().max().map(|most| format!("counted to {most}"))
    }

    fn check(
        &self,
        history: &History<Self>,
        node: NodeIdx,
        CounterCondition::Count(want): &CounterCondition,
    ) -> Result<(), String> {
        let got = self.outcome(history, node);
        (got == *want).then_some(()).ok_or(format!("node {node} counted {got}, expected {want}"))
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> u64 {
        history.state().get(node as usize).copied().unwrap_or(0)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("C1", "counts go up by one", || {
                let mut last = std::collections::BTreeMap::new();
                move |_: &History<Counter>, e: &Event<Counter>| match (&e.event, e.node) {
                    (EventKind::Complete { result: OpResult::Ok(n), .. }, Some(node)) => {
                        let before = last.insert(node, *n).unwrap_or(0);
                        (*n == before + 1).then_some(()).ok_or(format!("node {node} went from {before} to {n}"))
                    }
                    _ => Ok(()),
                }
            }),
            Property::eventually("C2", "no count of four", |h: &History<Counter>| {
                assert!(!h.state().contains(&4), "a count of four");
                Ok(())
            }),
            Property::sometimes("G1", "a bump was refused", |_, e: &Event<Counter>| {
                matches!(e.event, EventKind::Complete { result: OpResult::Failed(_), .. })
            }),
        ]
    }
}

impl Workload for Counter {
    fn operations(&self, nodes: u32, _: Option<NodeIdx>) -> BoxedStrategy<CounterOp> {
        (0..nodes).prop_map(|node| CounterOp::Bump { node }).boxed()
    }

    fn fair(&self, scenario: &Scenario) -> Result<(), String> {
        (scenario.seed % 2 == 0).then_some(()).ok_or_else(|| format!("odd seed {}", scenario.seed))
    }
}

impl Drawing for Counter {}

fn scenario<S: System>(system: &S, steps: &str) -> Scenario {
    let text = format!("nodes = 2\nduration = \"3s\"\nsettle = \"1s\"\n{steps}");
    Scenario::parse(&text, "test.toml", system).unwrap_or_else(|e| panic!("{e}"))
}

/// `n` bumps of `node`, each awaited before the next step.
fn bumps(node: u32, n: usize) -> String {
    format!("[[step]]\nwait = \"1s\"\nbump = {{ node = {node} }}\n").repeat(n)
}

#[test]
fn the_echo_system_runs_deterministically() {
    let s = scenario(
        &Echo,
        "[[step]]\nping = { from = 0, to = 1 }\n[[step]]\nping = { from = 1, to = 0 }\n[[expect]]\npinged = 1\n",
    );
    let run = run_scenario(Arc::new(Echo), &s, 3);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    assert_eq!(run.digest(), run_scenario(Arc::new(Echo), &s, 3).digest(), "same seed, same history");
    assert_ne!(run.digest(), run_scenario(Arc::new(Echo), &s, 4).digest(), "the seed drives latency");
    let jsonl = run.history.to_jsonl();
    assert!(jsonl.lines().any(|l| l.contains("\"invoke\"")) && jsonl.lines().any(|l| l.contains("\"complete\"")));
}

#[test]
fn operations_conditions_and_coverage() {
    let s = scenario(
        &Counter,
        &(bumps(0, 2) + "[[step]]\nexpect = { node = 0, count = 2 }\n[[expect]]\nnode = 1\ncount = 0\n"),
    );
    let run = run_scenario(Arc::new(Counter), &s, 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let hit: Vec<(String, bool)> = run.outcome.coverage.iter().map(|c| (c.goal.clone(), c.hit)).collect();
    assert!(hit.contains(&("G1 a bump was refused".into(), false)), "{hit:?}");
    assert!(hit.contains(&("two bumps".into(), true)), "{hit:?}");
    assert!(hit.contains(&("bumped".into(), true)), "{hit:?}");
    let failed = scenario(&Counter, &(bumps(0, 1) + "[[step]]\nexpect = { node = 0, count = 2 }\n"));
    let failure = run_scenario(Arc::new(Counter), &failed, 1).outcome.failure.expect("expect fails");
    assert_eq!(
        (failure.code.as_str(), failure.detail.as_str()),
        ("expect", "step 1 (line 7): node 0 counted 1, expected 2")
    );
}

#[test]
fn buggify_points_fire_in_the_simulation_as_the_run_seed_decides() {
    let s = scenario(&Counter, &"[[step]]\nflaky = { node = 0 }\n".repeat(20));
    let refused = |seed: u64| {
        let run = run_scenario(Arc::new(Counter), &s, seed);
        let buggified = |e: &&Event<Counter>| matches!(&e.event, EventKind::Complete { result: OpResult::Failed(why), .. } if why == "buggified");
        run.history.events().iter().filter(buggified).count()
    };
    let counts: Vec<usize> = (0..16).map(refused).collect();
    assert!(counts.contains(&0) && counts.iter().any(|&c| c > 0), "some runs enable the point, others not: {counts:?}");
    assert_eq!(counts, (0..16).map(refused).collect::<Vec<_>>(), "the seed decides");
}

#[test]
fn a_coverage_signature_is_stable_and_sees_the_faults_in_force() {
    let quiet = scenario(&Counter, &bumps(0, 2));
    let crashed = scenario(&Counter, &format!("[[step]]\ncrash = {{ node = 1 }}\n{}", bumps(0, 2)));
    let signature = |s: &Scenario| run_scenario(Arc::new(Counter), s, 1).outcome.signature;
    assert!(!signature(&quiet).is_empty());
    assert_eq!(signature(&quiet), signature(&quiet), "the same run, the same signature");
    let hashes = |s: &Scenario| signature(s).into_keys().collect::<std::collections::BTreeSet<u64>>();
    assert!(!hashes(&crashed).is_subset(&hashes(&quiet)), "bumps while a node is down are new");
}

#[test]
fn abstract_states_count_as_coverage_from_the_event_after_which_they_hold() {
    let run = |n| run_scenario(Arc::new(Counter), &scenario(&Counter, &bumps(0, n)), 1);
    let (one, two) = (run(1), run(2));
    let states: Vec<&str> = two.history.abstract_states().keys().map(String::as_str).collect();
    assert_eq!(states, ["counted to 1", "counted to 2"]);
    let second = &two.history.events()[two.history.abstract_states()["counted to 2"]];
    assert!(matches!(second.event, EventKind::Complete { .. }), "{second:?}");
    let new: Vec<_> = two.outcome.signature.iter().filter(|(h, _)| !one.outcome.signature.contains_key(h)).collect();
    assert!(
        new.iter().any(|(_, reached)| reached.at == second.at() && reached.node == Some(0)),
        "the new state is new coverage, reached at its event: {new:?}"
    );
}

#[test]
fn knobs_are_set_by_the_scenario_checked_and_written_back() {
    let s = scenario(
        &Counter,
        &format!("[knobs]\nlimit = 5\n{}[[step]]\nexpect = {{ node = 0, count = 5 }}\n", bumps(0, 6)),
    );
    assert_eq!(s.knobs, [("limit".to_string(), 5)].into());
    assert!(run_scenario(Arc::new(Counter), &s, 1).outcome.passed(), "the node takes five bumps");
    assert_eq!(Scenario::parse(&s.to_toml(), "test.toml", &Counter).unwrap(), s);
    let default = scenario(&Counter, &bumps(0, 1));
    assert!(default.knobs.is_empty() && !default.to_toml().contains("[knobs]"), "no table when nothing is set");
    let error = |knobs: &str| {
        let text = format!("nodes = 2\n[knobs]\n{knobs}\n");
        Scenario::parse(&text, "bad.toml", &Counter).unwrap_err().to_string()
    };
    assert_eq!(error("limit = 11"), "bad.toml:3:9: knob `limit` is 11, expected 1..=10");
    assert_eq!(error("nope = 1"), "bad.toml:3:8: unknown knob `nope` of system `counter`, expected one of: limit");
}

#[test]
fn in_node_assertions_and_properties_fail_the_run() {
    let poked = scenario(&Counter, &(bumps(1, 1) + "[[step]]\npoke = { node = 1 }\n"));
    let failure = run_scenario(Arc::new(Counter), &poked, 1).outcome.failure.unwrap();
    assert_eq!(failure.to_string(), "assert reached assert_unreachable!: poked (node 1)");
    let mut bug = scenario(&Counter, &bumps(0, 1));
    bug.planted_bug = Some("count-twice".into());
    let c1 = run_scenario(Arc::new(Counter), &bug, 1).outcome.failure.unwrap();
    assert_eq!(c1.to_string(), "C1 counts go up by one: node 0 went from 0 to 2");
    let clean = run_scenario(Arc::new(Counter), &scenario(&Counter, &bumps(0, 3)), 1).outcome;
    assert!(clean.passed(), "{:?}", clean.failure);
}

#[test]
fn a_node_that_cannot_start_fails_the_run() {
    let mut s = scenario(&Counter, &bumps(0, 1));
    s.planted_bug = Some("no-start".into());
    let failure = run_scenario(Arc::new(Counter), &s, 1).outcome.failure.expect("no pass without nodes");
    assert_eq!(
        failure.to_string(),
        "start a node did not start: node 0 is not running: start failed: refuses to start"
    );
}

/// A one-node history in which node 0 has started, at 1 ms.
fn started() -> (History<Counter>, std::time::Duration) {
    let mut history = History::<Counter>::new(&["10.0.0.1:7000".parse().unwrap()], &Default::default());
    let at = std::time::Duration::from_millis(1);
    let addr = history.node(0).addr;
    history.push(&Counter, at, Some(0), EventKind::Started { incarnation: 0, addr });
    (history, at)
}

#[test]
fn a_panicking_property_is_a_failed_property() {
    let (mut history, at) = started();
    history.push(
        &Counter,
        at,
        Some(0),
        EventKind::Invoke { id: 0, step: 0, client: 0, op: CounterOp::Bump { node: 0 } },
    );
    history.push(&Counter, at, Some(0), EventKind::Complete { id: 0, result: OpResult::Ok(4) });
    let mut judge = tandem::property::Judge::new(&Counter.properties()[1..2]);
    let failure = judge.finish(&history, at).unwrap_err();
    assert_eq!(failure.code, "C2");
    assert!(failure.detail.contains("the property panicked: a count of four"), "{failure}");
}

#[test]
fn an_eventually_failure_names_its_node_and_events_in_the_violation() {
    let (history, at) = started();
    let last = Property::eventually_naming("C3", "the last event", |h: &History<Counter>| {
        Err(tandem::property::Failure::from("it happened").on(0).naming(h.events().len() - 1))
    });
    let failure = tandem::property::Judge::new(&[last]).finish(&history, at).unwrap_err();
    assert_eq!(
        (failure.to_string(), failure.node, failure.events),
        ("C3 the last event: it happened".to_string(), Some(0), vec![0])
    );
}

#[test]
fn a_failed_operation_is_recorded_and_a_crash_leaves_pending_ones_unknown() {
    let steps = bumps(0, 4)
        + "[[step]]\nhang = { node = 1 }\n[[step]]\ncrash = { node = 1 }\n[[step]]\nrestart = { node = 1 }\n";
    let s = Scenario { duration: std::time::Duration::from_secs(20), ..scenario(&Counter, &steps) };
    let run = run_scenario(Arc::new(Counter), &s, 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let results = results(&run.history);
    assert_eq!(results[3], &OpResult::Failed("full".into()));
    assert_eq!(
        results[4],
        &OpResult::Unknown(tandem::history::CRASHED_FIRST.into()),
        "the hung operation ended with its node"
    );
    assert!(run.history.pending().is_empty());
    assert!(run.outcome.coverage.iter().any(|c| c.goal.starts_with("G1") && c.hit));
}

#[test]
fn bad_scenarios_are_rejected_with_file_line_and_column() {
    let error = |text: &str| Scenario::parse(text, "bad.toml", &Counter).unwrap_err().to_string();
    let e = error("nodes = 2\n[[step]]\nrebind = { node = 1 }\n");
    assert!(e.starts_with("bad.toml:3:1: system `counter` cannot rebind"), "{e}");
    let e = error("nodes = 2\n[[step]]\nping = { from = 0, to = 1 }\n");
    assert!(e.starts_with("bad.toml:3:1: unknown action `ping`, expected one of partition, heal"), "{e}");
    assert!(e.ends_with("or an operation of system `counter`: bump, flaky, hang, poke, maybe, explode"), "{e}");
    let e = error("nodes = 2\n[[step]]\nbump = { node = 1, extra = 2 }\n");
    assert!(e.starts_with("bad.toml:3:20: unexpected keys in table: extra"), "{e}");
    let e = error("nodes = 2\n[[step]]\nbump = { node = \"one\" }\n");
    assert!(e.starts_with("bad.toml:3:17: invalid type"), "{e}");
    let e = error("nodes = 2\n[[step]]\nbump = { node = 7 }\n");
    assert_eq!(e, "bad.toml:3:17: node index 7 is out of range, expected 0..=1 (nodes = 2)");
    let e = error("nodes = 2\n[[step]]\nexpect = { node = 1, count = -1 }\n");
    assert!(e.starts_with("bad.toml:3:30: "), "{e}");
    let e = error("nodes = 2\n[[step]]\nexpect = { node = 1, pinged = 1 }\n");
    assert!(e.starts_with("bad.toml:3:22: unknown condition `pinged`, expected `node` and one of count"), "{e}");
    let e = error("nodes = 2\nmutation = \"no-dedup\"\n");
    assert_eq!(
        e,
        "bad.toml:2:12: unknown mutation `no-dedup` of system `counter`, expected one of: count-twice, no-start"
    );
    let e =
        Scenario::parse_among("system = \"kv\"\nnodes = 1\n", "bad.toml", &[&Counter, &Echo]).unwrap_err().to_string();
    assert_eq!(e, "bad.toml:1:10: unknown system `kv`, expected one of counter, echo");
    let echo = Scenario::parse_among("system = \"echo\"\nnodes = 1\n", "ok.toml", &[&Counter, &Echo]).unwrap();
    assert_eq!(echo.system.as_deref(), Some("echo"));
    assert_eq!(Scenario::parse(&echo.to_toml(), "again.toml", &Echo).unwrap(), echo, "round trip");
    assert_eq!(error("nodes = 2\nclients = 0\n"), "bad.toml:2:11: `clients` must be between 1 and 64, found 0");
    let two = Scenario::parse("nodes = 2\nclients = 2\n", "ok.toml", &Counter).unwrap();
    assert_eq!((two.clients, Scenario::parse(&two.to_toml(), "again.toml", &Counter).unwrap()), (2, two.clone()));
}

#[test]
fn a_system_that_says_nothing_still_gets_lanes_steps_and_dots_and_a_violation_names_its_event() {
    use tandem::engine::picture::Picture;
    let poked = scenario(&Counter, &(bumps(1, 1) + "[[step]]\ncrash = { node = 0 }\n[[step]]\npoke = { node = 1 }\n"));
    let run = run_scenario(Arc::new(Counter), &poked, 1);
    let picture = Picture::of(&Counter, &poked, &run.history, &run.outcome, "poked");
    assert_eq!(picture.lanes.len(), 2);
    assert_eq!(picture.lanes[0].lives.len(), 1);
    assert!(picture.lanes[0].lives[0].crashed_us.is_some(), "node 0's crash ends its life");
    assert_eq!(picture.steps.iter().filter_map(|s| s.index).collect::<Vec<_>>(), [0, 1, 2]);
    let kinds: std::collections::BTreeSet<&str> = picture.dots.iter().map(|d| d.mark.kind.as_str()).collect();
    assert!(kinds.contains("invoke") && kinds.contains("complete") && kinds.contains("assert"), "{kinds:?}");
    assert!(picture.dots.iter().all(|d| d.mark.key.is_none()) && picture.arrows.is_empty(), "nothing is joined");
    let violation = picture.violation.expect("the run failed");
    assert_eq!((violation.code.as_str(), violation.node), ("assert", Some(1)));
    let named = &picture.dots[violation.dots[0]];
    assert_eq!((named.mark.kind.as_str(), named.mark.label.as_str()), ("assert", "poked"));
    assert_eq!(named.mark.problem.as_deref(), Some("assertion failed"));
    assert!(picture.verdict.starts_with("FAIL assert"), "{}", picture.verdict);
}

/// The results of every completed operation, in order.
fn results(history: &History<Counter>) -> Vec<&OpResult<u64>> {
    history
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::Complete { result, .. } => Some(result),
            _ => None,
        })
        .collect()
}

#[test]
fn operations_run_while_the_timeline_moves_on_unless_a_step_waits() {
    let steps = "[[step]]\nhang = { node = 0 }\n[[step]]\nafter = \"3ms\"\ncrash = { node = 0 }\n[[step]]\nhang = { node = 1 }\nwait = \"40ms\"\n[[step]]\nrestart = { node = 0 }\n";
    let run = run_scenario(Arc::new(Counter), &scenario(&Counter, steps), 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let at = |wanted: fn(&EventKind<Counter>) -> bool| {
        run.history.events().iter().find(|e| wanted(&e.event)).map(|e| e.at()).expect("the event happened")
    };
    let invoked = at(|e| matches!(e, EventKind::Invoke { step: 0, .. }));
    let crash = at(|e| matches!(e, EventKind::Step { index: 1, .. }));
    assert_eq!(crash - invoked, std::time::Duration::from_millis(3), "the crash came 3 ms after the hang began");
    let waited =
        at(|e| matches!(e, EventKind::Step { index: 3, .. })) - at(|e| matches!(e, EventKind::Step { index: 2, .. }));
    assert_eq!(waited, std::time::Duration::from_millis(40), "the step waited its `wait`, then moved on");
    assert_eq!(results(&run.history)[0], &OpResult::Unknown(tandem::history::CRASHED_FIRST.into()));
}

#[test]
fn an_indeterminate_result_is_recorded_as_unknown() {
    let run = run_scenario(Arc::new(Counter), &scenario(&Counter, "[[step]]\nmaybe = { node = 0 }\n"), 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    assert_eq!(results(&run.history), [&OpResult::Unknown("no answer in time".into())]);
}

#[test]
fn a_panic_in_a_node_fails_the_run_and_replays() {
    let s = scenario(&Counter, "[[step]]\nbump = { node = 0 }\n[[step]]\nafter = \"5ms\"\nexplode = { node = 1 }\n");
    let run = run_scenario(Arc::new(Counter), &s, 2);
    let failure = run.outcome.failure.clone().expect("the panic fails the run");
    assert_eq!(failure.code, tandem::engine::execute::PANIC);
    assert!(failure.detail.contains("the node exploded"), "{failure}");
    assert_eq!(run.digest(), run_scenario(Arc::new(Counter), &s, 2).digest());
}

#[test]
fn exploration_redraws_what_the_system_finds_unfair() {
    use tandem_sim::explore::case::Case;
    use tandem_sim::explore::strategy::Space;
    let (system, space) = (Arc::new(Counter), Space::default());
    let cases: Vec<Case> = (0..40).map(|index| Case::generate(&system, &space, 9, index)).collect();
    assert!(cases.iter().all(|c| c.scenario.seed % 2 == 0), "every case is fair to the system");
    assert!(cases.iter().any(|c| c.redrawn > 0), "some draws were unfair and drawn again");
    assert_eq!(cases[7], Case::generate(&system, &space, 9, 7), "a redrawn case is still a pure function of its index");
}

#[test]
fn each_client_runs_one_operation_and_a_nodes_clients_run_at_once() {
    let steps = "[[step]]\nhang = { node = 0 }\n[[step]]\nhang = { node = 0 }\n[[step]]\nbump = { node = 0 }\n";
    let invoked = |clients: u32| {
        let s = Scenario { clients, ..scenario(&Counter, steps) };
        let run = run_scenario(Arc::new(Counter), &s, 1);
        assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
        let invocations = run.history.events().iter().filter_map(|e| match &e.event {
            EventKind::Invoke { step, client, .. } => Some((*step, *client)),
            _ => None,
        });
        (invocations.collect::<Vec<_>>(), run.history.to_jsonl())
    };
    let (one, jsonl) = invoked(1);
    assert_eq!(one, vec![(0, 0)], "one client: the second hang waits for the first, forever");
    assert!(!jsonl.contains("\"client\""), "client 0 is left out of the encoding");
    let (two, jsonl) = invoked(2);
    assert_eq!(two, vec![(0, 0), (1, 1)], "two clients: both hangs run, the bump waits for a free client");
    assert!(jsonl.contains("\"client\":1"), "{jsonl}");
    let (three, _) = invoked(3);
    assert_eq!(three, vec![(0, 0), (1, 1), (2, 2)]);
}

#[test]
fn a_safety_violation_ends_the_run_at_its_event_whatever_step_runs() {
    let steps = "[[step]]\nbump = { node = 0 }\n[[step]]\nawait = { node = 1, count = 5, timeout = \"2s\" }\n";
    let mut bug = scenario(&Counter, steps);
    bug.planted_bug = Some("count-twice".into());
    let run = run_scenario(Arc::new(Counter), &bug, 1);
    let failure = run.outcome.failure.expect("count-twice breaks C1");
    assert_eq!(failure.code, "C1", "the property, not the await's timeout: {failure}");
    let completed = run
        .history
        .events()
        .iter()
        .find(|e| matches!(e.event, EventKind::Complete { .. }))
        .map(|e| e.at())
        .expect("the bump completed");
    assert_eq!(failure.at, completed, "dated by the completion that broke it");
    assert!(run.outcome.end < std::time::Duration::from_millis(100), "the run stopped there: {:?}", run.outcome.end);
}

/// A bump returns the node's count after it: a fetch-and-add per node.
struct Tally;

impl tandem::consistency::Model for Tally {
    type State = u64;
    type Input = NodeIdx;
    type Output = u64;
    fn init(&self) -> u64 {
        0
    }
    fn step(&self, count: &u64, _: &NodeIdx, output: Option<&u64>) -> Option<u64> {
        output.is_none_or(|&after| after == count + 1).then_some(count + 1)
    }
    fn partition(&self, node: &NodeIdx) -> Option<String> {
        Some(node.to_string())
    }
}

#[test]
fn a_linearizability_failure_names_the_operations_that_cannot_be_ordered() {
    let property =
        Property::linearizable("L1", "bumps are linearizable", Tally, |op: &CounterOp, count: Option<&u64>| {
            matches!(op, CounterOp::Bump { .. }).then(|| (op.node(), count.copied()))
        });
    let judge = |results: &[(u32, OpResult<u64>)]| {
        let (mut history, at) = started();
        for (id, (client, _)) in results.iter().enumerate() {
            let op = CounterOp::Bump { node: 0 };
            history.push(&Counter, at, Some(0), EventKind::Invoke { id: id as u64, step: id, client: *client, op });
        }
        for (id, (_, result)) in results.iter().enumerate() {
            let at = at + std::time::Duration::from_millis(id as u64 + 1);
            history.push(&Counter, at, Some(0), EventKind::Complete { id: id as u64, result: result.clone() });
        }
        tandem::property::Judge::new(std::slice::from_ref(&property)).finish(&history, at).err()
    };
    let unknown = OpResult::Unknown("timed out".into());
    assert_eq!(judge(&[(0, OpResult::Ok(2)), (1, OpResult::Ok(1))]), None, "overlapping bumps, either order");
    assert_eq!(judge(&[(0, OpResult::Ok(2)), (1, unknown.clone())]), None, "the unknown one took effect first");
    let failed = OpResult::Failed("full".into());
    let failure = judge(&[(0, OpResult::Ok(2)), (1, failed)]).expect("a failed bump never took effect: 2 is wrong");
    assert_eq!((failure.code.as_str(), failure.node), ("L1", Some(0)));
    assert!(failure.detail.starts_with("not linearizable: "), "{failure}");
    assert_eq!(failure.events, vec![1, 3], "the invocation and completion of the bump that returned 2");
    let failure = judge(&[(0, OpResult::Ok(1)), (1, OpResult::Ok(1)), (2, unknown)]).expect("two bumps returned 1");
    assert_eq!(failure.events, vec![1, 4, 2, 5], "both bumps that returned 1, not the unknown one");
    assert!(failure.detail.contains("(node 0, client 1) 0 -> 1"), "clients named by their node: {failure}");
    assert_eq!(failure.at.as_millis(), 3, "dated by the later completion, at 1 ms + 2 ms");
}

#[test]
fn checks_see_the_runs_time_not_only_its_last_event() {
    let addrs: Vec<SocketAddr> = vec!["10.0.0.1:7000".parse().unwrap()];
    let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000));
    let clock = now.clone();
    let recorder = tandem::engine::recorder::Recorder::new(Arc::new(Counter), &addrs, &Default::default(), move || {
        std::time::Duration::from_millis(clock.load(SeqCst))
    });
    recorder.push(None, EventKind::Settle);
    now.store(5_000, SeqCst);
    assert_eq!(
        recorder.read(|h| (h.events().last().map(Event::at), h.now())),
        (Some(std::time::Duration::from_secs(1)), std::time::Duration::from_secs(5))
    );
}

#[test]
fn the_history_carries_the_faults_in_force_from_each_step_event_on() {
    use std::time::Duration;
    use tandem::scenario::{Action, DiskFault, LinkChange, Network, Scope};
    let addrs: Vec<SocketAddr> = vec!["10.0.0.1:7000".parse().unwrap(), "10.0.0.2:7000".parse().unwrap()];
    let network = Network { loss: 0.1, ..Network::default() };
    let mut history = History::new(&addrs, &network);
    let at = Duration::from_millis;
    let step = |index, action| EventKind::Step { index, action };
    let between = Scope::Between { a: vec![0], b: vec![1] };
    let cut = Action::Link { change: LinkChange::Partition { oneway: true }, scope: between };
    for (n, &addr) in addrs.iter().enumerate() {
        history.push(&Counter, at(0), Some(n as NodeIdx), EventKind::Started { incarnation: 0, addr });
    }
    history.push(&Counter, at(10), None, step(0, cut));
    assert!(history.links().link(0, 1).partitioned && !history.links().link(1, 0).partitioned);
    assert_eq!(history.links().link(1, 0).loss, 0.1, "the scenario's network");
    history.push(&Counter, at(20), None, step(1, Action::Disk { node: 1, fault: DiskFault::FailSync }));
    history.push(&Counter, at(30), Some(0), EventKind::Crashed);
    history.push(&Counter, at(40), None, step(2, Action::Pause { node: 0, length: at(100) }));
    history.push(&Counter, at(40), Some(0), EventKind::Skipped { step: 2, why: tandem::history::Skip::NodeDown });
    history.push(&Counter, at(50), None, step(3, Action::Pause { node: 1, length: at(100) }));
    let faults = history.faults();
    assert_eq!(faults.disks().get(&1), Some(&DiskFault::FailSync));
    assert_eq!(faults.crashed().iter().copied().collect::<Vec<_>>(), [0]);
    assert_eq!(faults.paused(at(60)).collect::<Vec<_>>(), [1], "a pause of a node that is down is skipped");
    assert_eq!(faults.paused(at(150)).count(), 0, "over");
    history.push(&Counter, at(200), None, EventKind::Settle);
    let healed = history.links().link(0, 1);
    assert!(!healed.partitioned && healed.loss == 0.0 && history.faults().disks().is_empty(), "settled");
    let mut replayed = Vec::new();
    history.walk(|index, _, faults| replayed.push((index, faults.links().link(0, 1).partitioned)));
    assert_eq!(replayed.iter().filter(|(_, cut)| *cut).map(|(i, _)| *i).collect::<Vec<_>>(), [2, 3, 4, 5, 6, 7]);
    assert_eq!(replayed.len(), history.events().len());
}

#[test]
fn the_final_phase_runs_after_the_settle_tail_and_is_judged_like_the_timeline() {
    // A partition that is never healed by a step, then the final phase: two
    // bumps, the second awaited, and a hang that never answers.
    let steps = "[[step]]\nwait = \"1s\"\nbump = { node = 0 }\n[[step]]\npartition = { a = [0], b = [1] }\n\
                 [[final]]\nbump = { node = 1 }\n[[final]]\nafter = \"10ms\"\nwait = \"1s\"\nbump = { node = 0 }\n\
                 [[final]]\nhang = { node = 1 }\n";
    let s = scenario(&Counter, steps);
    assert_eq!((s.steps.len(), s.finals.len()), (2, 3));
    let run = run_scenario(Arc::new(Counter), &s, 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let events = run.history.events();
    let at = |wanted: &dyn Fn(&EventKind<Counter>) -> bool| {
        events.iter().position(|e| wanted(&e.event)).unwrap_or_else(|| panic!("no such event"))
    };
    let settle = at(&|e| matches!(e, EventKind::Settle));
    let final_phase = at(&|e| matches!(e, EventKind::Final));
    assert_eq!(run.history.final_phase(), Some(final_phase));
    // The final phase begins when the settle tail (1 s, every fault healed) has ended.
    assert!(settle < final_phase);
    assert_eq!(events[final_phase].at() - events[settle].at(), std::time::Duration::from_secs(1));
    assert_eq!(events[final_phase].at(), std::time::Duration::from_secs(3), "the settle ends at `duration`");
    // Its steps are numbered after the timeline's, and run after it begins.
    for index in 2..5 {
        assert!(at(&|e| matches!(e, EventKind::Step { index: i, .. } if *i == index)) > final_phase);
    }
    // Its operations are recorded like any other: the hang never answered,
    // and the run ended `settle` after the last final step, not before.
    let finals: Vec<(NodeIdx, Option<&OpResult<u64>>)> =
        run.history.final_operations().into_iter().map(|(_, node, _, result)| (node, result)).collect();
    assert_eq!(finals, [(1, Some(&OpResult::Ok(1))), (0, Some(&OpResult::Ok(2))), (1, None)]);
    assert_eq!(run.history.pending().len(), 1);
    let last_step = events.iter().rev().find(|e| matches!(e.event, EventKind::Step { .. })).unwrap().at();
    assert_eq!(run.outcome.end - last_step, std::time::Duration::from_secs(1));
    // A planted bug that only a final operation shows is judged there (C1).
    let buggy =
        Scenario { planted_bug: Some("count-twice".into()), ..scenario(&Counter, "[[final]]\nbump = { node = 0 }\n") };
    let failure = run_scenario(Arc::new(Counter), &buggy, 1).outcome.failure.expect("C1 judges the final bump");
    assert_eq!(failure.code, "C1");
    assert!(failure.at >= std::time::Duration::from_secs(3), "{failure:?}");
    // Without a final phase the history has no final event, and the run ends at `duration`.
    let plain = run_scenario(Arc::new(Counter), &scenario(&Counter, &bumps(0, 1)), 1);
    assert_eq!(plain.history.final_phase(), None);
    assert_eq!(plain.outcome.end, std::time::Duration::from_secs(3));
}

#[test]
fn a_reproducer_with_a_final_phase_round_trips_and_replays_identically() {
    let steps = "[[step]]\nbump = { node = 0 }\n[[final]]\nwait = \"1s\"\nbump = { node = 1 }\n[[final]]\nafter = \"5ms\"\nexpect = { node = 1, count = 1 }\n";
    let s = scenario(&Counter, steps);
    let written = s.to_toml();
    assert!(written.contains("\n[[final]]\nwait = \"1s\"\nbump = { node = 1 }\n"), "{written}");
    let back = Scenario::parse(&written, "back.toml", &Counter).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.to_toml(), written);
    let (a, b) = (run_scenario(Arc::new(Counter), &s, 5), run_scenario(Arc::new(Counter), &back, 5));
    assert!(a.outcome.passed(), "{:?}", a.outcome.failure);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.history.to_jsonl(), b.history.to_jsonl());
}
