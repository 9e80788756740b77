//! Each real node incarnation runs on a thread and a runtime of its own: a
//! crash drops every task the node spawned, a pause blocks the thread, and
//! the node's clock is its thread's clock; a node that stops itself crashes,
//! and a crash whose stop never ends kills the node and says so. A tiny
//! system defined here: every node sends a beat to the next node every tick
//! from a task it spawns and never stops that task (only the end of its
//! runtime ends it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::strategy::{BoxedStrategy, Just, Strategy};
use serde::{Deserialize, Serialize};
use tandem::engine::clock::{thread_clock, NodeClock};
use tandem::engine::cluster::Cluster;
use tandem::history::{EventKind, History, OpResult, CRASHED_FIRST};
use tandem::scenario::{ClockChange, NodeChange, NodeIdx, Scenario, Skew};
use tandem::system::{Adapter, Drawing, FailStop, Invocation, NodeContext, OpError, Operation, Oracle, Workload};
use tandem::transport::{Connection, Listener, MessageReceiver, MessageSender, Transport};
use tandem_msquic::{run_real, RealCluster, RealOptions};

/// How often a node beats.
const TICK: Duration = Duration::from_millis(20);

/// The longest a test awaits anything.
const PATIENCE: Duration = Duration::from_secs(10);

/// The beat system; what its nodes' tasks do outside the history.
#[derive(Debug, Clone, Default)]
struct Beat {
    /// Ticks of every node's beat task, all incarnations.
    ticks: Arc<[AtomicU64; 2]>,
    /// A token held by each beat task.
    tokens: Arc<Mutex<Vec<Token>>>,
}

/// A beat task's node, and a token only the task holds.
type Token = (NodeIdx, Weak<()>);

impl Beat {
    fn ticks(&self, node: NodeIdx) -> u64 {
        self.ticks[node as usize].load(Ordering::SeqCst)
    }

    /// How many of `node`'s beat tasks still exist.
    fn beating(&self, node: NodeIdx) -> usize {
        let tokens = self.tokens.lock().unwrap();
        tokens.iter().filter(|(n, token)| *n == node && token.strong_count() > 0).count()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum BeatOp {
    /// Answers at once.
    Ping { node: NodeIdx },
    /// Reads the clocks of the node's thread.
    ReadClock { node: NodeIdx },
    /// The node stops itself, and never answers.
    Halt { node: NodeIdx },
    /// The node's stop will never end; answers at once.
    Stick { node: NodeIdx },
}

impl Operation for BeatOp {
    fn node(&self) -> NodeIdx {
        match self {
            BeatOp::Ping { node } | BeatOp::ReadClock { node } | BeatOp::Halt { node } | BeatOp::Stick { node } => {
                *node
            }
        }
    }

    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        match self {
            BeatOp::Ping { node } | BeatOp::ReadClock { node } | BeatOp::Halt { node } | BeatOp::Stick { node } => {
                vec![node]
            }
        }
    }
}

/// What an operation answers.
#[derive(Debug, Clone, Serialize)]
enum Answer {
    Pong,
    /// The thread clock of the node's thread, and what `SystemTime::now()`
    /// read there (since the epoch).
    Clock {
        clock: Option<NodeClock>,
        began: Option<Duration>,
        system_time: Duration,
    },
}

/// What a node observes: its beat task ticked, or it heard a beat of `from`.
#[derive(Debug, Clone, Serialize)]
enum Seen {
    Tick,
    Heard { from: NodeIdx },
}

/// A running node: its address, how it stops itself, and whether its stop
/// never ends. Its tasks live on.
struct BeatNode {
    addr: SocketAddr,
    fail_stop: FailStop,
    stuck: AtomicBool,
}

impl Adapter for Beat {
    type Op = BeatOp;
    type Output = Answer;
    type Observation = Seen;
    type Node = BeatNode;

    fn name(&self) -> &'static str {
        "beat"
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<BeatNode, String> {
        let transport = ctx.transport;
        let mut listener = transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        let addr = listener.local_addr();
        let observer = ctx.observer.clone();
        tokio::spawn(async move {
            while let Ok(connection) = listener.accept().await {
                let observer = observer.clone();
                tokio::spawn(async move {
                    let (_sender, mut receiver) = connection.split();
                    while let Ok(beat) = receiver.recv().await {
                        observer.observe(Seen::Heard { from: NodeIdx::from(beat[0]) });
                    }
                });
            }
        });
        let token = Arc::new(());
        self.tokens.lock().unwrap().push((ctx.index, Arc::downgrade(&token)));
        let (ticks, observer, index) = (self.ticks.clone(), ctx.observer.clone(), ctx.index);
        let next = ctx.addrs[(ctx.index as usize + 1) % ctx.addrs.len()];
        tokio::spawn(async move {
            let _token = token;
            let mut sender = None;
            loop {
                tokio::time::sleep(TICK).await;
                ticks[index as usize].fetch_add(1, Ordering::SeqCst);
                observer.observe(Seen::Tick);
                if sender.is_none() {
                    sender = transport.connect(next).await.ok().map(|c| c.split().0);
                }
                if let Some(beats) = &mut sender {
                    if beats.send(Bytes::from(vec![index as u8])).await.is_err() {
                        sender = None;
                    }
                }
            }
        });
        Ok(BeatNode { addr, fail_stop: ctx.fail_stop, stuck: AtomicBool::new(false) })
    }

    fn addr(&self, node: &BeatNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &BeatNode, op: BeatOp, _invocation: Invocation) -> Result<Answer, OpError> {
        Ok(match op {
            BeatOp::Ping { .. } => Answer::Pong,
            BeatOp::Halt { .. } => {
                node.fail_stop.stop("asked to halt");
                return std::future::pending().await;
            }
            BeatOp::Stick { .. } => {
                node.stuck.store(true, Ordering::SeqCst);
                Answer::Pong
            }
            BeatOp::ReadClock { .. } => {
                let clock = thread_clock();
                let system_time = since_epoch();
                Answer::Clock { clock: clock.map(|c| c.clock), began: clock.map(|c| c.began), system_time }
            }
        })
    }

    async fn stop(&self, node: BeatNode) {
        if node.stuck.load(Ordering::SeqCst) {
            std::future::pending().await
        }
    }
}

impl Oracle for Beat {
    type Condition = ();
    type Outcome = ();
    type State = ();

    fn check(&self, _history: &History<Self>, _node: NodeIdx, _condition: &()) -> Result<(), String> {
        Ok(())
    }

    fn outcome(&self, _history: &History<Self>, _node: NodeIdx) {}
}

impl Workload for Beat {
    fn operations(&self, _nodes: u32, _focus: Option<NodeIdx>) -> BoxedStrategy<BeatOp> {
        Just(BeatOp::Ping { node: 0 }).boxed()
    }
}

impl Drawing for Beat {}

/// When `node` observed `seen` (by the run's clock).
fn seen(history: &History<Beat>, node: NodeIdx, seen: impl Fn(&Seen) -> bool) -> Vec<Duration> {
    let events = history.events().iter().filter(|e| e.node == Some(node));
    events.filter(|e| matches!(&e.event, EventKind::Observe(s) if seen(s))).map(|e| e.at()).collect()
}

fn heard(history: &History<Beat>, node: NodeIdx, from: NodeIdx) -> Vec<Duration> {
    seen(history, node, |s| matches!(s, Seen::Heard { from: f } if *f == from))
}

/// When the operation of `step` was invoked and when it completed, with its answer.
fn operation(history: &History<Beat>, step: usize) -> Option<(Duration, Duration, Answer)> {
    let (id, invoked) = history.events().iter().find_map(|e| match &e.event {
        EventKind::Invoke { id, step: s, .. } if *s == step => Some((*id, e.at())),
        _ => None,
    })?;
    history.events().iter().find_map(|e| match &e.event {
        EventKind::Complete { id: i, result: OpResult::Ok(answer) } if *i == id => {
            Some((invoked, e.at(), answer.clone()))
        }
        _ => None,
    })
}

/// Invokes `op` as step `step` and awaits its answer.
fn ask(cluster: &mut RealCluster<Beat>, op: BeatOp, step: usize) -> (Duration, Duration, Answer) {
    cluster.invoke(op.node(), op, step);
    let deadline = cluster.now() + PATIENCE;
    assert!(cluster.run_until(deadline, |h| operation(h, step).is_some()), "step {step} unanswered");
    cluster.recorder().read(|h| operation(h, step)).unwrap()
}

/// Awaits `node` hearing `more` beats of `from` beyond those it heard so far.
fn await_beats(cluster: &mut RealCluster<Beat>, node: NodeIdx, from: NodeIdx, more: usize) {
    let so_far = cluster.recorder().read(|h| heard(h, node, from).len());
    let deadline = cluster.now() + PATIENCE;
    let heard_more = cluster.run_until(deadline, |h| heard(h, node, from).len() >= so_far + more);
    assert!(heard_more, "node {node} did not hear {more} beats of node {from}");
}

fn cluster(beat: &Beat) -> RealCluster<Beat> {
    RealCluster::new(Arc::new(beat.clone()), RealOptions::new(2)).expect("the cluster starts")
}

#[test]
fn a_crash_drops_every_task_the_node_spawned() {
    let beat = Beat::default();
    let mut cluster = cluster(&beat);
    await_beats(&mut cluster, 1, 0, 3);
    assert_eq!(beat.beating(0), 1);

    // The node's stop left its beat task running: the crash drops its runtime.
    cluster.crash(0);
    assert_eq!(beat.beating(0), 0, "the beat task of the crashed node is gone");
    let ticks = beat.ticks(0);
    let quiet_until = cluster.now() + 10 * TICK;
    cluster.run_until(quiet_until, |_| false);
    assert_eq!(beat.ticks(0), ticks, "the crashed node still ticks");

    // A restart is a new runtime, whose beats are heard again.
    cluster.restart(0);
    await_beats(&mut cluster, 1, 0, 3);
    assert_eq!(beat.beating(0), 1);
    let history = cluster.into_history();
    assert_eq!(beat.beating(0), 0, "the end of the run drops the node's tasks");
    assert_eq!(history.node(0).incarnation, 1);
}

#[test]
fn a_paused_node_polls_nothing_and_then_resumes() {
    let pause = Duration::from_secs(2);
    let beat = Beat::default();
    let mut cluster = cluster(&beat);
    assert!(cluster.refuses(&NodeChange::Pause(pause)).is_none());
    await_beats(&mut cluster, 1, 0, 3);

    let paused_at = cluster.now();
    let asked = Instant::now();
    cluster.set_node(0, &NodeChange::Pause(pause));
    assert!(asked.elapsed() < Duration::from_millis(100), "set_node waited {:?}", asked.elapsed());
    // Node 0 is asked at once and answers only after the pause; node 1 runs on.
    cluster.invoke(0, BeatOp::Ping { node: 0 }, 0);
    let (_, during, _) = ask(&mut cluster, BeatOp::Ping { node: 1 }, 1);
    assert!(during < paused_at + pause, "node 1 answered at {during:?}, after node 0's pause");
    let deadline = cluster.now() + PATIENCE;
    assert!(cluster.run_until(deadline, |h| operation(h, 0).is_some()), "node 0 never answered");
    let (invoked, answered, _) = cluster.recorder().read(|h| operation(h, 0)).unwrap();
    assert!(invoked >= paused_at + pause, "invoked {invoked:?} during the pause from {paused_at:?}");
    assert!(answered < paused_at + pause + Duration::from_millis(500), "answered at {answered:?}");

    // Node 0 heard none of its timers during the pause, and node 1 heard
    // nothing from it (beats in flight when it began aside), then both again.
    await_beats(&mut cluster, 1, 0, 3);
    let history = cluster.into_history();
    let slack = Duration::from_millis(100);
    let in_pause = |at: &&Duration| **at > paused_at + slack && **at < paused_at + pause;
    assert_eq!(heard(&history, 1, 0).iter().filter(in_pause).count(), 0, "node 1 heard node 0 during its pause");
    let ticks = seen(&history, 0, |s| matches!(s, Seen::Tick));
    assert_eq!(ticks.iter().filter(in_pause).count(), 0, "node 0 ticked during its pause");
    let before = ticks.iter().rfind(|at| **at <= paused_at + slack).expect("a tick before the pause");
    let after = ticks.iter().find(|at| **at >= paused_at + pause).expect("a tick after the pause");
    let late = *after - (*before + TICK);
    let due = *before + TICK;
    eprintln!("a {pause:?} pause from {paused_at:?}: the timer due at {due:?} fired at {after:?}, {late:?} late");
    assert!(late >= pause - TICK - slack && late < pause + Duration::from_millis(500), "{late:?} late");
    assert!(heard(&history, 0, 1).iter().any(|at| *at > paused_at + pause), "node 0 hears node 1 again");
}

#[test]
fn a_crash_kills_a_paused_node_at_once() {
    let beat = Beat::default();
    let mut cluster = cluster(&beat);
    await_beats(&mut cluster, 1, 0, 3);
    cluster.set_node(0, &NodeChange::Pause(Duration::from_secs(60)));
    let asked = Instant::now();
    cluster.crash(0);
    // No stop, which would wait for the pause to end: the runtime goes as it is.
    assert!(asked.elapsed() < Duration::from_secs(1), "the crash took {:?}", asked.elapsed());
    assert_eq!(beat.beating(0), 0);
    cluster.restart(0);
    await_beats(&mut cluster, 1, 0, 3);
    let history = cluster.into_history();
    let faults = history.events().iter().filter(|e| e.event.fact(e.node).is_some()).count();
    assert_eq!(faults, 0, "{}", history.to_jsonl());
}

/// Node 0's crashes, starts, fail-stops, failed stops and completions, as lines.
fn lives(history: &History<Beat>) -> Vec<String> {
    let node0 = history.events().iter().filter(|e| e.node == Some(0));
    node0
        .filter_map(|e| match &e.event {
            EventKind::FailStopped { .. } | EventKind::StopFailed { .. } => e.event.fact(e.node),
            EventKind::Crashed => Some("crashed".into()),
            EventKind::Started { incarnation, .. } => Some(format!("started {incarnation}")),
            EventKind::Complete { result: OpResult::Unknown(why), .. } => Some(format!("unknown: {why}")),
            _ => None,
        })
        .collect()
}

#[test]
fn a_node_that_stops_itself_crashes_and_a_restart_brings_it_back() {
    let beat = Beat::default();
    let mut cluster = cluster(&beat);
    await_beats(&mut cluster, 1, 0, 3);
    cluster.invoke(0, BeatOp::Halt { node: 0 }, 0);
    let deadline = cluster.now() + PATIENCE;
    assert!(cluster.run_until(deadline, |h| !h.node(0).alive), "node 0 did not crash");
    cluster.restart(0);
    await_beats(&mut cluster, 1, 0, 3);
    assert_eq!(beat.beating(0), 1, "the tasks of the incarnation that stopped itself are gone");
    let history = cluster.into_history();
    let unknown = format!("unknown: {CRASHED_FIRST}");
    assert_eq!(lives(&history), ["started 0", "fail-stop: asked to halt", &unknown, "crashed", "started 1"]);
}

#[test]
fn a_crash_whose_stop_never_ends_kills_the_node_and_says_so() {
    let beat = Beat::default();
    let mut cluster = cluster(&beat);
    await_beats(&mut cluster, 1, 0, 3);
    ask(&mut cluster, BeatOp::Stick { node: 0 }, 0);
    cluster.crash(0);
    assert_eq!(beat.beating(0), 0, "the crash dropped the node's runtime all the same");
    cluster.restart(0);
    await_beats(&mut cluster, 1, 0, 3);
    let history = cluster.into_history();
    let failed = "crash: the node did not stop cleanly (no answer within 5s); killed as it was";
    assert_eq!(lives(&history), ["started 0", failed, "crashed", "started 1"]);
}

#[test]
fn a_node_thread_carries_the_node_clock_across_restarts() {
    let beat = Beat::default();
    let mut cluster = cluster(&beat);
    let hour = Duration::from_secs(3600);
    let jump = NodeChange::Clock(ClockChange::Jump(Skew::ahead(hour)));
    assert!(cluster.refuses(&jump).is_none());
    let true_now = cluster.now();
    let monotonic = real_monotonic();
    cluster.set_node(0, &jump);

    let Answer::Clock { clock: Some(clock), began: Some(began), system_time } =
        ask(&mut cluster, BeatOp::ReadClock { node: 0 }, 0).2
    else {
        panic!("node 0's thread has no clock")
    };
    // The interposer of tandem-sim, linked in, shows the node its clock.
    assert!(tandem_sim::determinism::available());
    let off = system_time.abs_diff(since_epoch() + hour);
    assert!(off < Duration::from_secs(1), "node 0 read {system_time:?}, {off:?} from an hour ahead");
    assert_eq!(clock.wall_shift(true_now), hour.as_nanos() as i128, "{clock:?}");
    assert_eq!(clock.monotonic(true_now), true_now, "a jump leaves the monotonic clock");
    // The run's time zero, on the machine's monotonic clock.
    let zero = monotonic - true_now;
    assert!(began.abs_diff(zero) < Duration::from_millis(50), "began {began:?}, time zero at {zero:?}");
    let Answer::Clock { clock: Some(other), began: Some(other_began), system_time } =
        ask(&mut cluster, BeatOp::ReadClock { node: 1 }, 1).2
    else {
        panic!("node 1's thread has no clock")
    };
    assert_eq!((other, other_began), (NodeClock::default(), began), "node 1's clock is true time");
    assert!(since_epoch().abs_diff(system_time) < Duration::from_secs(1), "node 1 read {system_time:?}");

    // Changes reach a running node's thread, and a down node's next incarnation.
    cluster.set_node(0, &NodeChange::Clock(ClockChange::Drift(0.5)));
    cluster.crash(0);
    cluster.set_node(0, &NodeChange::Clock(ClockChange::Offset(Skew::behind(Duration::from_secs(5)))));
    let offset_at = cluster.now();
    cluster.restart(0);
    let Answer::Clock { clock: Some(clock), .. } = ask(&mut cluster, BeatOp::ReadClock { node: 0 }, 2).2 else {
        panic!("node 0's new thread has no clock")
    };
    let second = Duration::from_secs(1);
    let rate = clock.monotonic(offset_at + second) - clock.monotonic(offset_at);
    assert!(rate.abs_diff(second * 3 / 2) < Duration::from_micros(1), "{clock:?}");
    let shift = clock.wall_shift(offset_at);
    assert!((shift + 5_000_000_000).abs() < 1_000_000, "wall {shift} ns from true time at the offset");
    cluster.into_history();
}

/// How many ticks each of the two nodes made in `window` of true time from now.
fn ticks_in(cluster: &mut RealCluster<Beat>, window: Duration) -> [usize; 2] {
    let from = cluster.now();
    cluster.run_until(from + window, |_| false);
    let ticks = |node| cluster.recorder().read(|h| seen(h, node, |s| matches!(s, Seen::Tick)));
    [0, 1].map(|node| ticks(node).iter().filter(|at| **at >= from && **at < from + window).count())
}

#[test]
fn a_slow_clock_slows_the_node_timers_and_a_fast_one_speeds_them_up() {
    let mut cluster = cluster(&Beat::default());
    await_beats(&mut cluster, 1, 0, 3);
    let mut rate_at = |drift| {
        cluster.set_node(0, &NodeChange::Clock(ClockChange::Drift(drift)));
        let [drifted, true_time] = ticks_in(&mut cluster, Duration::from_secs(1));
        eprintln!("drift {drift}: {drifted} ticks to node 1's {true_time}");
        drifted as f64 / true_time as f64
    };
    let slow = rate_at(-0.5);
    assert!((0.35..0.65).contains(&slow), "at half speed, node 0 ticked at {slow} of node 1's rate");
    // The interposed epoll_wait turns the runtime's sleep, computed on the
    // node's clock, into real time.
    let fast = rate_at(1.0);
    assert!((1.6..2.4).contains(&fast), "at double speed, node 0 ticked at {fast} of node 1's rate");
    cluster.into_history();
}

#[test]
fn a_scenario_pauses_and_sets_clocks_on_the_real_backend() {
    let text = r#"
nodes = 2
duration = "100ms"
settle = "100ms"

[[step]]
pause = { node = 1, for = "1s" }
[[step]]
clock = { node = 1, jump = "-5s" }
[[step]]
wait = "5s"
ping = { node = 1 }
[[step]]
wait = "5s"
read_clock = { node = 1 }
"#;
    let scenario = Scenario::parse(text, "pause.toml", &Beat::default()).expect("the scenario parses");
    let run = run_real(Arc::new(Beat::default()), &scenario).expect("the cluster starts");
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let (invoked, _, _) = operation(&run.history, 2).expect("the ping answered");
    assert!(invoked >= Duration::from_secs(1), "node 1 took the ping at {invoked:?}, during its pause");
    let Some((_, _, Answer::Clock { clock: Some(clock), .. })) = operation(&run.history, 3) else {
        panic!("node 1 read no clock")
    };
    assert_eq!(clock.wall_shift(invoked), -5_000_000_000, "{clock:?}");
}

/// What the machine's wall clock reads now, since the epoch.
fn since_epoch() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap()
}

/// What the machine's `CLOCK_MONOTONIC` reads now.
fn real_monotonic() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to fill.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) }, 0);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}
