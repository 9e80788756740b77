//! Each node a unit of execution (events backend): every task its code
//! spawns is the node's. A crash drops them; a pause leaves them unpolled,
//! so their timers fire late; the node's clocks (`SystemTime`, `Instant`,
//! `tokio::time`) read what `clock` steps make of them. The turmoil backend
//! refuses both faults before the first step.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::history::{EventKind, History};
use tandem::property::Property;
use tandem::scenario::{NodeIdx, Scenario};
use tandem::system::{Adapter, Drawing, Invocation, NodeContext, OpError, Operation, Oracle, PlantedBug, Workload};
use tandem::transport::{Listener, Transport};
use tandem_sim::run::options_for;
use tandem_sim::{run_scenario, run_with, Backend, SimOptions};

/// A node whose spawned task observes, every 100 ms of its clock, what
/// its wall and monotonic clocks read. With `count-late-ticks`, node 1's
/// task also counts its ticks after 1 s in [`LATE_TICKS`], which no crash
/// can keep from the test.
#[derive(Debug, Clone, Copy, Default)]
struct Clocks;

/// Node 1's ticks after 1 s, under `count-late-ticks` (one test uses it).
static LATE_TICKS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ClocksOp {
    Ping { node: NodeIdx },
}

impl Operation for ClocksOp {
    fn node(&self) -> NodeIdx {
        let ClocksOp::Ping { node } = self;
        *node
    }
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        let ClocksOp::Ping { node } = self;
        vec![node]
    }
}

/// What a tick read: the wall clock (ms since the epoch), `std::time::Instant`
/// and `tokio::time::Instant` (ms since the node started).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Tick {
    wall_ms: u64,
    std_ms: u64,
    tokio_ms: u64,
}

struct ClocksNode {
    addr: SocketAddr,
    _listener: Box<dyn std::any::Any + Send + Sync>,
}

impl Adapter for Clocks {
    type Op = ClocksOp;
    type Output = ();
    type Observation = Tick;
    type Node = ClocksNode;

    fn name(&self) -> &'static str {
        "clocks"
    }

    fn planted_bugs(&self) -> Vec<PlantedBug> {
        vec![PlantedBug { name: "count-late-ticks", description: "counts node 1's ticks after 1 s" }]
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<ClocksNode, String> {
        let listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        let observer = ctx.observer;
        let count = ctx.planted_bug == Some("count-late-ticks") && ctx.index == 1;
        tokio::spawn(async move {
            let (std_start, tokio_start) = (Instant::now(), tokio::time::Instant::now());
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            loop {
                ticks.tick().await;
                let wall = SystemTime::now().duration_since(UNIX_EPOCH).expect("after the epoch");
                observer.observe(Tick {
                    wall_ms: wall.as_millis() as u64,
                    std_ms: std_start.elapsed().as_millis() as u64,
                    tokio_ms: tokio_start.elapsed().as_millis() as u64,
                });
                if count && tokio_start.elapsed() > Duration::from_secs(1) {
                    LATE_TICKS.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Ok(ClocksNode { addr: listener.local_addr(), _listener: Box::new(listener) })
    }

    fn addr(&self, node: &ClocksNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, _: &ClocksNode, _: ClocksOp, _: Invocation) -> Result<(), OpError> {
        Ok(())
    }

    async fn stop(&self, _node: ClocksNode) {}
}

impl Oracle for Clocks {
    type Condition = ();
    type Outcome = ();
    type State = ();

    fn check(&self, _: &History<Self>, _: NodeIdx, _: &()) -> Result<(), String> {
        Ok(())
    }

    fn outcome(&self, _: &History<Self>, _: NodeIdx) {}

    fn properties(&self) -> Vec<Property<Self>> {
        Vec::new()
    }
}

impl Workload for Clocks {
    fn operations(&self, nodes: u32, _: Option<NodeIdx>) -> BoxedStrategy<ClocksOp> {
        (0..nodes).prop_map(|node| ClocksOp::Ping { node }).boxed()
    }
}

impl Drawing for Clocks {}

fn scenario(steps: &str) -> Scenario {
    let text = format!("system = \"clocks\"\nnodes = 2\nduration = \"5s\"\nsettle = \"500ms\"\n{steps}");
    Scenario::parse(&text, "clocks.toml", &Clocks).unwrap_or_else(|e| panic!("{e}"))
}

/// Node `node`'s ticks: (true ms, what it read).
fn ticks(history: &History<Clocks>, node: NodeIdx) -> Vec<(u64, Tick)> {
    let ticks = history.events().iter().filter(|e| e.node == Some(node));
    ticks.filter_map(|e| if let EventKind::Observe(t) = e.event { Some((e.t_us / 1000, t)) } else { None }).collect()
}

fn run(steps: &str) -> History<Clocks> {
    let run = run_scenario(Arc::new(Clocks), &scenario(steps), 3);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    run.history
}

#[test]
fn a_crash_drops_every_task_the_node_spawned() {
    // Node 1 boots at 0 and crashes at 950 ms: any tick after 1 s of its
    // clock is a task that outlived the crash.
    let steps = "mutation = \"count-late-ticks\"\n[[step]]\nat = \"950ms\"\ncrash = { node = 1 }\n";
    run(steps);
    assert_eq!(LATE_TICKS.load(Ordering::Relaxed), 0, "node 1's spawned task ran on after its crash");
}

#[test]
fn a_paused_node_runs_nothing_then_resumes_with_late_timers() {
    let history = run("[[step]]\nat = \"1050ms\"\npause = { node = 1, for = \"2s\" }\n");
    let node1 = ticks(&history, 1);
    assert!(node1.iter().all(|&(at, _)| !(1051..3050).contains(&at)), "node 1 ticked while paused: {node1:?}");
    let resumed = node1.iter().find(|&&(at, _)| at >= 3050).expect("node 1 resumes");
    assert_eq!(resumed.0, 3050, "the overdue timer fires as the pause ends");
    let before = node1.iter().rev().find(|&&(at, _)| at < 1050).expect("a tick before the pause");
    assert!(
        resumed.1.tokio_ms - before.1.tokio_ms >= 2000,
        "its clock ran on through the pause: {before:?} {resumed:?}"
    );
    let node0 = ticks(&history, 0);
    assert!(node0.iter().filter(|&&(at, _)| (1100..3000).contains(&at)).count() >= 18, "node 0 runs on");
}

#[test]
fn a_wall_clock_jump_moves_system_time_only() {
    let history = run("[[step]]\nat = \"1s\"\nclock = { node = 1, jump = \"-1h\" }\n");
    let (node0, node1) = (ticks(&history, 0), ticks(&history, 1));
    let at = |ticks: &[(u64, Tick)], t: u64| ticks.iter().find(|&&(at, _)| at >= t).expect("a tick").1;
    let (a, b) = (at(&node0, 2000), at(&node1, 2000));
    let skew = a.wall_ms as i64 - b.wall_ms as i64;
    assert!((3_599_800..=3_600_200).contains(&skew), "node 1's wall clock is an hour behind: {skew} ms");
    assert!(b.std_ms.abs_diff(b.tokio_ms) <= 1 && b.tokio_ms >= 1900, "monotonic clocks do not jump: {b:?}");
}

#[test]
fn drift_makes_every_clock_of_the_node_run_fast() {
    let history = run("[[step]]\nat = \"1s\"\nclock = { node = 1, drift = 1.0 }\n");
    let node1 = ticks(&history, 1);
    let late: Vec<_> = node1.iter().filter(|&&(at, _)| (2000..3000).contains(&at)).collect();
    assert!((19..=21).contains(&late.len()), "100 ms of a clock twice as fast is 50 ms: {} ticks in 1 s", late.len());
    let (first, last) = (late[0].1, late[late.len() - 1].1);
    let true_ms = late[late.len() - 1].0 - late[0].0;
    assert!((last.tokio_ms - first.tokio_ms).abs_diff(2 * true_ms) <= 2, "tokio::time runs at twice the rate");
    assert!((last.std_ms - first.std_ms).abs_diff(2 * true_ms) <= 2, "Instant runs at twice the rate");
    assert!((last.wall_ms - first.wall_ms).abs_diff(2 * true_ms) <= 2, "SystemTime runs at twice the rate");
}

#[test]
fn pauses_and_clocks_replay_exactly() {
    let steps = "[[step]]\nat = \"700ms\"\nclock = { node = 0, drift = -0.3 }\n[[step]]\nat = \"1s\"\npause = { node = 1, for = \"1500ms\" }\n[[step]]\nat = \"2s\"\nclock = { node = 1, offset = \"+30s\" }\n[[step]]\nat = \"2500ms\"\nping = { node = 1 }\n";
    let trace = |seed| run_scenario(Arc::new(Clocks), &scenario(steps), seed).history.digest();
    assert_eq!(trace(5), trace(5));
}

#[test]
fn the_turmoil_backend_refuses_pause_and_clock_before_the_first_step() {
    let scenario = scenario("[[step]]\nat = \"1s\"\npause = { node = 1, for = \"1s\" }\n");
    let options = SimOptions { backend: Backend::Turmoil, ..options_for(&Clocks, &scenario, 1) };
    let failure = run_with(Arc::new(Clocks), &scenario, options).outcome.failure.expect("refused");
    assert_eq!(failure.code, "backend", "{failure}");
    assert!(failure.to_string().contains("use the events backend"), "{failure}");
    assert!(failure.at < Duration::from_millis(100), "before the first step: {failure}");
}
