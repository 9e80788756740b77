//! What node code can do to its run. An OS thread it starts (`tokio::fs`,
//! `spawn_blocking`, `std::thread`) fails a simulated run with an error that
//! names the call and the node, whoever catches what the thread did;
//! allowed, the thread runs and the run records that it is not
//! reproducible. It reads a fixed process id. It can fail-stop, and a
//! restart follows. A stop that never ends is killed, and the run says so.

use std::net::SocketAddr;
use std::sync::Arc;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use tandem::history::{EventKind, History, CRASHED_FIRST};
use tandem::property::Property;
use tandem::scenario::{NodeIdx, Scenario};
use tandem::system::{
    Adapter, Drawing, FailStop, Invocation, NodeContext, OpError, Operation, Oracle, PlantedBug, Workload,
};
use tandem::transport::{Listener, Transport};
use tandem_sim::determinism::{OS_THREAD, SIMULATED_PID};
use tandem_sim::run::options_for;
use tandem_sim::{run_scenario, run_with, Backend, SimOptions};

/// A node that, as its planted bug says, starts an OS thread: in its boot
/// (`tokio-fs`), in a task it spawns (`spawn-blocking-in-task`), or in an
/// operation (`std-thread`); or whose stop never ends (`stuck-stop`). It
/// answers `pid` with its process id, and `halt` by stopping itself.
#[derive(Debug, Clone, Copy, Default)]
struct Threads;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ThreadsOp {
    Pid { node: NodeIdx },
    Halt { node: NodeIdx },
}

impl Operation for ThreadsOp {
    fn node(&self) -> NodeIdx {
        let (ThreadsOp::Pid { node } | ThreadsOp::Halt { node }) = self;
        *node
    }
    fn nodes_mut(&mut self) -> Vec<&mut NodeIdx> {
        let (ThreadsOp::Pid { node } | ThreadsOp::Halt { node }) = self;
        vec![node]
    }
}

struct ThreadsNode {
    addr: SocketAddr,
    bug: Option<&'static str>,
    fail_stop: FailStop,
    _listener: Box<dyn std::any::Any + Send + Sync>,
}

impl Adapter for Threads {
    type Op = ThreadsOp;
    type Output = u32;
    type Observation = ();
    type Node = ThreadsNode;

    fn name(&self) -> &'static str {
        "threads"
    }

    fn planted_bugs(&self) -> Vec<PlantedBug> {
        let mut bugs: Vec<PlantedBug> = ["tokio-fs", "spawn-blocking-in-task", "std-thread"]
            .map(|name| PlantedBug { name, description: "starts an OS thread" })
            .to_vec();
        bugs.push(PlantedBug { name: "stuck-stop", description: "never finishes its stop" });
        bugs
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<ThreadsNode, String> {
        let listener = ctx.transport.listen(ctx.listen).await.map_err(|e| e.to_string())?;
        match ctx.planted_bug {
            Some("tokio-fs") if ctx.index == 1 => {
                let file = std::env::temp_dir().join(format!("tandem-threads-{}", std::process::id()));
                tokio::fs::write(&file, b"state").await.map_err(|e| e.to_string())?;
            }
            Some("spawn-blocking-in-task") => {
                // The spawn's panic stays in this task's join handle: the run
                // fails all the same.
                tokio::spawn(async { tokio::task::spawn_blocking(|| 1).await });
            }
            _ => {}
        }
        Ok(ThreadsNode {
            addr: listener.local_addr(),
            bug: ctx.planted_bug,
            fail_stop: ctx.fail_stop,
            _listener: Box::new(listener),
        })
    }

    fn addr(&self, node: &ThreadsNode) -> SocketAddr {
        node.addr
    }

    async fn invoke(&self, node: &ThreadsNode, op: ThreadsOp, _: Invocation) -> Result<u32, OpError> {
        if let ThreadsOp::Halt { .. } = op {
            node.fail_stop.stop("asked to halt");
            // Never answers: the harness stops the node first.
            return std::future::pending().await;
        }
        if node.bug == Some("std-thread") {
            std::thread::spawn(|| ()).join().map_err(|_| OpError::Failed("the thread panicked".into()))?;
        }
        Ok(std::process::id())
    }

    async fn stop(&self, node: ThreadsNode) {
        if node.bug == Some("stuck-stop") {
            std::future::pending().await
        }
    }
}

impl Oracle for Threads {
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

impl Workload for Threads {
    fn operations(&self, nodes: u32, _: Option<NodeIdx>) -> BoxedStrategy<ThreadsOp> {
        (0..nodes).prop_map(|node| ThreadsOp::Pid { node }).boxed()
    }
}

impl Drawing for Threads {}

fn scenario(bug: Option<&str>) -> Scenario {
    let mutation = bug.map(|bug| format!("mutation = \"{bug}\"")).unwrap_or_default();
    let text = format!(
        r#"
system = "threads"
nodes = 2
duration = "2s"
settle = "500ms"
{mutation}
[[step]]
at = "1s"
pid = {{ node = 0 }}
"#
    );
    Scenario::parse(&text, "threads.toml", &Threads).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tokio_fs_in_a_nodes_boot_fails_the_run_naming_the_call_and_the_node() {
    for backend in Backend::ALL {
        let scenario = scenario(Some("tokio-fs"));
        let options = SimOptions { backend, ..options_for(&Threads, &scenario, 1) };
        let failure = run_with(Arc::new(Threads), &scenario, options).outcome.failure.expect("the run fails");
        assert_eq!(failure.code, OS_THREAD, "{backend:?}: {failure}");
        assert_eq!(failure.node, Some(1), "{backend:?}: {failure}");
        let detail = failure.to_string();
        for named in ["node 1 started an OS thread", "tokio::fs::write", "NodeContext::storage", "TANDEM_ALLOW_THREADS"]
        {
            assert!(detail.contains(named), "{backend:?}: `{named}` is not in: {detail}");
        }
    }
}

#[test]
fn a_thread_started_in_a_task_the_node_spawned_fails_the_run_too() {
    let failure = run_scenario(Arc::new(Threads), &scenario(Some("spawn-blocking-in-task")), 1).outcome.failure;
    let failure = failure.expect("the run fails although the task's panic went nowhere");
    assert_eq!(failure.code, OS_THREAD, "{failure}");
    assert!(failure.to_string().contains("spawn_blocking"), "{failure}");
}

#[test]
fn std_thread_in_an_operation_fails_the_run_naming_it() {
    let failure = run_scenario(Arc::new(Threads), &scenario(Some("std-thread")), 1).outcome.failure.expect("it fails");
    assert_eq!((failure.code.as_str(), failure.node), (OS_THREAD, Some(0)), "{failure}");
    assert!(failure.to_string().contains("std::thread::spawn"), "{failure}");
}

#[test]
fn allowed_threads_run_and_the_run_says_it_is_not_reproducible() {
    let scenario = scenario(Some("std-thread"));
    let options = SimOptions { allow_threads: true, ..options_for(&Threads, &scenario, 1) };
    let run = run_with(Arc::new(Threads), &scenario, options);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let noted = run
        .history
        .events()
        .iter()
        .any(|e| matches!(&e.event, EventKind::ThreadStarted { call } if call.contains("std::thread::spawn")));
    assert!(noted, "the run records the thread");
}

#[test]
fn a_node_reads_the_simulated_process_id() {
    let run = run_scenario(Arc::new(Threads), &scenario(None), 1);
    let pids: Vec<u32> = run
        .history
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::Complete { result: tandem::history::OpResult::Ok(pid), .. } => Some(*pid),
            _ => None,
        })
        .collect();
    assert_eq!(pids, vec![SIMULATED_PID as u32]);
}

/// What happened to node 1 in `scenario`'s run on each simulated backend:
/// its starts, crashes, completions and facts, in order.
fn node_1_story(scenario: &str) -> Vec<(Backend, Vec<String>)> {
    let scenario = Scenario::parse(scenario, "story.toml", &Threads).unwrap_or_else(|e| panic!("{e}"));
    Backend::ALL
        .into_iter()
        .map(|backend| {
            let options = SimOptions { backend, ..options_for(&Threads, &scenario, 1) };
            let run = run_with(Arc::new(Threads), &scenario, options);
            assert!(run.outcome.passed(), "{backend:?}: {:?}", run.outcome.failure);
            let story = run
                .history
                .events()
                .iter()
                .filter(|e| e.node == Some(1))
                .filter_map(|e| match &e.event {
                    EventKind::FailStopped { .. } | EventKind::Skipped { .. } | EventKind::StopFailed { .. } => {
                        e.event.fact(e.node)
                    }
                    EventKind::Crashed => Some("crashed".into()),
                    EventKind::Started { incarnation, .. } => Some(format!("started {incarnation}")),
                    EventKind::Complete { result, .. } => Some(format!("{result:?}")),
                    _ => None,
                })
                .collect();
            (backend, story)
        })
        .collect()
}

#[test]
fn a_node_that_fail_stops_is_crashed_and_a_restart_brings_it_back() {
    let text = r#"
system = "threads"
nodes = 2
duration = "4s"
settle = "500ms"
[[step]]
at = "1s"
halt = { node = 1 }
[[step]]
at = "1500ms"
pid = { node = 1 }
[[step]]
at = "2s"
restart = { node = 1 }
[[step]]
at = "2500ms"
pid = { node = 1 }
"#;
    for (backend, node1) in node_1_story(text) {
        let pid = SIMULATED_PID;
        let want = [
            "started 0",
            "fail-stop: asked to halt",
            &format!("Unknown({CRASHED_FIRST:?})"),
            "crashed",
            "step 1 skipped: node is down",
            "started 1",
            &format!("Ok({pid})"),
        ];
        assert_eq!(node1, want, "{backend:?}");
    }
}

#[test]
fn a_crash_whose_stop_never_ends_kills_the_node_and_says_so() {
    let text = r#"
system = "threads"
nodes = 2
duration = "5s"
settle = "500ms"
mutation = "stuck-stop"
[[step]]
at = "1s"
crash = { node = 1 }
[[step]]
at = "3s"
restart = { node = 1 }
[[step]]
at = "3500ms"
pid = { node = 1 }
"#;
    for (backend, node1) in node_1_story(text) {
        let want = [
            "started 0",
            "crash: the node did not stop cleanly (no answer within 1s); killed as it was",
            "crashed",
            "started 1",
            &format!("Ok({})", SIMULATED_PID),
        ];
        assert_eq!(node1, want, "{backend:?}");
    }
}

#[test]
fn pause_and_clock_steps_round_trip_and_bad_ones_are_located() {
    let text = "system = \"threads\"\nnodes = 2\n[[step]]\npause = { node = 1, for = \"2s\" }\n[[step]]\nclock = { node = 0, jump = \"-5s\" }\n[[step]]\nclock = { node = 1, offset = \"+250ms\" }\n[[step]]\nclock = { node = 1, drift = 0.05 }\n";
    let scenario = Scenario::parse(text, "clocks.toml", &Threads).unwrap();
    assert_eq!(Scenario::parse(&scenario.to_toml(), "again.toml", &Threads).unwrap(), scenario);
    assert!(scenario.to_toml().contains("clock = { node = 0, jump = \"-5s\" }"), "{}", scenario.to_toml());
    let error = |step: &str| {
        let text = format!("system = \"threads\"\nnodes = 2\n[[step]]\n{step}\n");
        Scenario::parse(&text, "bad.toml", &Threads).unwrap_err().to_string()
    };
    let cases = [
        ("pause = { node = 1, for = \"0s\" }", "bad.toml:4:27", "does nothing"),
        ("pause = { node = 2, for = \"1s\" }", "bad.toml:4:18", "node"),
        ("pause = { node = 1 }", "bad.toml:4:", "for"),
        ("clock = { node = 1, drift = 3.0 }", "bad.toml:4:29", "out of range"),
        ("clock = { node = 1, jump = \"5 parsecs\" }", "bad.toml:4:28", "5 parsecs"),
        ("clock = { node = 1, jump = \"1s\", drift = 0.1 }", "bad.toml:4:9", "one of `offset`, `jump` or `drift`"),
        ("clock = { node = 1 }", "bad.toml:4:9", "one of"),
    ];
    for (step, at, says) in cases {
        let message = error(step);
        assert!(message.starts_with(at) && message.contains(says), "{step}: {message}");
    }
}
