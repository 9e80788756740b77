//! The scenario format with the pub/sub system's operations and conditions:
//! parser, validator and writer.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use tandem::scenario::{Call, ClockChange, Condition, LatencyRange, LinkChange, Network, Scope, Skew, Step, Timing};
use tandem::{Action, DiskFault, NodeIdx, Operation, Scenario};
use tandem_pubsub::{Condition as Check, Op, PubSub, MAX_MESSAGE_SIZE};

const HOT_RELOAD: &str = r#"name = "hot_reload"
description = "Node 0 broadcasts: node 0 never receives it, node 1 receives it once; then node 1 rebinds and a second broadcast still arrives."
nodes = 2
seeds = [0, 1]
duration = "10s"

[[step]]
await = { converged = true, timeout = "5s" }

[[step]]
broadcast = { from = 0, tag = "data-1" }

[[step]]
after = "1s"
expect = { node = 0, received = 0 }

[[step]]
expect = { node = 1, received = 1 }

[[step]]
rebind = { node = 1 }

[[step]]
await = { converged = true, timeout = "5s" }

[[step]]
broadcast = { from = 0, tag = "data-2" }

[[expect]]
node = 1
received_tags = ["data-1", "data-2"]

[[expect]]
node = 0
received = 0
"#;

/// A scenario using every action and every check, with non-default values.
const EVERYTHING: &str = r#"name = "everything"
description = "every action"
nodes = 4
seeds = [0, 2]
duration = "1m"
settle = "2.5s"
seed = 42
mutation = "no-dedup"

[network]
latency = "2ms..20ms"
loss = 0.05

[[step]]
at = "250ms"
broadcast = { from = 1, size = 1024 }

[[step]]
after = "100us"
direct = { from = 0, to = 3, tag = "d" }

[[step]]
partition = { a = [0, 1], b = [2, 3], oneway = true }

[[step]]
heal = { a = [0], b = [2] }

[[step]]
heal = {}

[[step]]
latency = { value = "7ms" }

[[step]]
latency = { value = "1ms..3ms", a = [0], b = [1, 2] }

[[step]]
loss = { rate = 1, a = [3], b = [0] }

[[step]]
crash = { node = 2 }

[[step]]
restart = { node = 2 }

[[step]]
rebind = { node = 3, port = 7001 }

[[step]]
await = { node = 2, peers = 3, timeout = "1.5s" }

[[step]]
expect = { not_received_tags = ["x", "y"] }

[[step]]
disk = { node = 1, fault = "slow", delay = "10ms" }

[[step]]
pause = { node = 2, for = "300ms" }

[[step]]
clock = { node = 3, jump = "-2s" }

[[expect]]
received = 2

[[expect]]
node = 3
converged = true
"#;

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, "test.toml", &PubSub).unwrap_or_else(|e| panic!("{e}"))
}

fn step(timing: Timing, action: Action) -> Step {
    Step::new(timing, action)
}

fn op(op: Op) -> Action {
    Action::Op(Call::of(&op))
}

fn tags(tags: &[&str]) -> BTreeSet<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

fn on(node: NodeIdx, check: Check) -> Condition {
    Condition { node: Some(node), check: Call::of(&check) }
}

fn converged() -> Check {
    Check::Converged(tandem::True)
}

/// The typed operation of a step.
fn op_of(step: &Step) -> Op {
    match &step.action {
        Action::Op(call) => call.typed().unwrap_or_else(|e| panic!("{call:?}: {e}")),
        other => panic!("{other:?} is not an operation"),
    }
}

#[test]
fn hot_reload_example_parses() {
    let s = parse(HOT_RELOAD);
    let all_converged = Condition { node: None, check: Call::of(&converged()) };
    let secs = Duration::from_secs;
    let broadcast = |tag: &str| op(Op::Broadcast { from: 0, tag: Some(tag.to_string()), size: None });
    let expected = Scenario {
        description: "Node 0 broadcasts: node 0 never receives it, node 1 receives it once; then node 1 rebinds and a second broadcast still arrives.".to_string(),
        seeds: vec![0, 1],
        duration: secs(10),
        steps: vec![
            step(Timing::Immediately, Action::Await { condition: all_converged.clone(), timeout: secs(5) }),
            step(Timing::Immediately, broadcast("data-1")),
            step(Timing::After(secs(1)), Action::Expect { condition: on(0, Check::Received(0)) }),
            step(Timing::Immediately, Action::Expect { condition: on(1, Check::Received(1)) }),
            step(Timing::Immediately, Action::Rebind { node: 1, port: None }),
            step(Timing::Immediately, Action::Await { condition: all_converged, timeout: secs(5) }),
            step(Timing::Immediately, broadcast("data-2")),
        ],
        expects: vec![on(1, Check::ReceivedTags(tags(&["data-1", "data-2"]))), on(0, Check::Received(0))],
        ..Scenario::new("hot_reload", 2)
    };
    assert_eq!(s, expected);
    assert_eq!(s.settle, Duration::from_secs(5));
    assert_eq!(s.network, Network::default());
    let lines: Vec<usize> = s.steps.iter().map(|step| step.line).collect();
    assert_eq!(lines, [7, 10, 13, 17, 20, 23, 26]);
    assert_eq!(op_of(&s.steps[1]).size(), 32, "the default size");
}

#[test]
fn everything_parses() {
    let s = parse(EVERYTHING);
    assert_eq!(s.planted_bug.as_deref(), Some("no-dedup"));
    assert_eq!(s.settle, Duration::from_millis(2500));
    assert_eq!(s.network.latency, "2ms..20ms".parse().unwrap());
    assert_eq!(
        s.steps[0],
        step(Timing::At(Duration::from_millis(250)), op(Op::Broadcast { from: 1, tag: None, size: Some(1024) }))
    );
    assert_eq!(op_of(&s.steps[0]).tag(0), "b0", "the tag defaults to b<step index>");
    assert_eq!(
        s.steps[1],
        step(
            Timing::After(Duration::from_micros(100)),
            op(Op::Direct { from: 0, to: 3, tag: Some("d".into()), size: None })
        )
    );
    assert_eq!(op_of(&s.steps[1]).size(), 32);
    assert_eq!(s.steps[4].action, Action::Link { change: LinkChange::Heal, scope: Scope::Every });
    assert_eq!(
        s.steps[7].action,
        Action::Link { change: LinkChange::Loss(1.0), scope: Scope::Between { a: vec![3], b: vec![0] } }
    );
    assert_eq!(
        s.steps[11].action,
        Action::Await { condition: on(2, Check::Peers(3)), timeout: Duration::from_millis(1500) }
    );
    assert_eq!(
        s.steps[12].action,
        Action::Expect {
            condition: Condition { node: None, check: Call::of(&Check::NotReceivedTags(tags(&["x", "y"]))) }
        }
    );
    assert_eq!(s.steps[13].action, Action::Disk { node: 1, fault: DiskFault::Slow(Duration::from_millis(10)) });
    assert_eq!(s.steps[14].action, Action::Pause { node: 2, length: Duration::from_millis(300) });
    assert_eq!(
        s.steps[15].action,
        Action::Clock { node: 3, change: ClockChange::Jump(Skew::behind(Duration::from_secs(2))) }
    );
    assert_eq!(s.expects[0], Condition { node: None, check: Call::of(&Check::Received(2)) });
    assert_eq!(s.expects[1], on(3, converged()));
    let names: Vec<&str> = s.steps.iter().map(|step| step.action.name()).collect();
    for name in Action::NAMES.into_iter().chain(["broadcast", "direct"]) {
        assert!(names.contains(&name), "{name} is not used");
    }
}

#[test]
fn round_trips() {
    for text in [HOT_RELOAD, EVERYTHING] {
        let s = parse(text);
        let written = s.to_toml();
        assert_eq!(parse(&written), s, "{written}");
        assert_eq!(parse(&written).to_toml(), written);
    }
    // A scenario built in code, with strings that need escaping.
    let mut s = Scenario::new("we\"ird\\name", 3);
    s.description = "two\nlines, 'quotes' and \"more\" \u{e9}".to_string();
    s.seed = i64::MAX as u64;
    s.network.loss = 0.1;
    s.network.latency = LatencyRange::fixed(Duration::from_nanos(1_500));
    let tag = "a\tb\n\r\u{0}\u{7f}\u{85}\\";
    s.steps.push(step(
        Timing::Immediately,
        op(Op::Direct { from: 2, to: 0, tag: Some(tag.into()), size: Some(MAX_MESSAGE_SIZE) }),
    ));
    s.steps
        .push(step(Timing::At(Duration::ZERO), Action::Link { change: LinkChange::Loss(1e-7), scope: Scope::Every }));
    s.steps.push(step(Timing::Immediately, op(Op::Broadcast { from: 1, tag: None, size: None })));
    s.expects.push(on(2, Check::NotReceivedTags(tags(&["", "x y"]))));
    s.expects.push(on(1, converged()));
    s.validate(&PubSub).unwrap();
    let written = s.to_toml();
    assert!(written.contains("broadcast = { from = 1 }"), "omitted fields stay omitted: {written}");
    assert_eq!(parse(&written), s, "{written}");
    assert_eq!(op_of(&parse(&written).steps[0]).tag(0), tag);
}

#[test]
fn every_disk_fault_parses_and_round_trips() {
    for name in DiskFault::NAMES {
        let delay = if name == "slow" { ", delay = \"20ms\"" } else { "" };
        let s = parse(&format!("nodes = 2\n[[step]]\ndisk = {{ node = 1, fault = \"{name}\"{delay} }}\n"));
        let Action::Disk { node: 1, fault } = s.steps[0].action else { panic!("{name}: {:?}", s.steps[0]) };
        assert_eq!(fault.name(), name);
        assert_eq!(parse(&s.to_toml()), s, "{name}");
    }
    assert_error(
        "nodes = 2\n[[step]]\ndisk = { node = 1, fault = \"lying\" }\n",
        3,
        28,
        "unknown disk fault `lying`, expected one of none, fail-sync, full, slow, lying-sync, corrupt-read, misdirected-write",
    );
    assert_error(
        "nodes = 2\n[[step]]\ndisk = { node = 1, fault = \"corrupt-read\", delay = \"1ms\" }\n",
        3,
        52,
        "`delay` is only for a `slow` disk, not `corrupt-read`",
    );
}

#[test]
fn default_name_is_the_file_stem() {
    let text = "nodes = 1";
    assert_eq!(Scenario::parse(text, "dir/partition_heal.toml", &PubSub).unwrap().name, "partition_heal");
    assert_eq!(Scenario::parse(text, "", &PubSub).unwrap().name, "scenario");
}

/// Parses `text` (which must be invalid) and returns `(line, column, message)`.
fn error(text: &str) -> (usize, usize, String) {
    match Scenario::parse(text, "bad.toml", &PubSub) {
        Ok(s) => panic!("accepted {text:?} as {s:?}"),
        Err(e) => {
            assert_eq!(e.to_string(), format!("bad.toml:{}:{}: {}", e.line, e.column, e.message));
            (e.line, e.column, e.message)
        }
    }
}

#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, needle: &str) {
    let (l, c, message) = error(text);
    assert_eq!((l, c), (line, column), "{text:?}: {message}");
    assert!(message.contains(needle), "{text:?}: {message:?} lacks {needle:?}");
    assert!(!message.contains('\n'), "{message:?}");
}

#[test]
fn syntax_unknown_keys_and_types() {
    assert_error("nodes = 2\nbroadcast = { from = 0 \n", 2, 24, "expected `}`");
    assert_error("nodes = \n", 1, 9, "");
    assert_error("nodes = 2\nfoo = 1\n", 2, 1, "unknown field `foo`, expected one of");
    assert_error("nodes = 2\n[network]\nlatncy = \"1ms\"\n", 3, 1, "unknown field `latncy`");
    assert_error("nodes = 2\n[[step]]\nexpect = { nod = 1, received = 0 }\n", 3, 12, "unknown condition `nod`");
    assert_error("nodes = 2\n[[expect]]\nnode = 1\nrecieved = 0\n", 4, 1, "unknown condition `recieved`");
    assert_error("nodes = \"two\"\n", 1, 9, "expected u32");
    assert_error("nodes = 2\nseeds = 0\n", 2, 9, "invalid type");
    assert_error("nodes = 2\n[[step]]\ncrash = { node = \"1\" }\n", 3, 18, "invalid type");
    assert_error("nodes = 2\n[[step]]\ncrash = {}\n", 3, 9, "missing field `node`");
    assert_error("description = \"no nodes\"\n", 1, 1, "missing field `nodes`");
}

#[test]
fn pubsub_fields_are_checked_by_serde() {
    // A wrong field of an operation: at the field.
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = 0, color = 1 }\n",
        3,
        25,
        "unexpected keys in table: color, available keys: from, tag, size",
    );
    // Not a table.
    assert_error("nodes = 2\n[[step]]\nbroadcast = 5\n", 3, 13, "invalid type");
    // Wrong types: at the value.
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = \"0\" }\n",
        3,
        22,
        "invalid type: string \"0\", expected u32",
    );
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = 0, tag = 5 }\n",
        3,
        31,
        "invalid type: integer `5`, expected a string",
    );
    assert_error("nodes = 2\n[[step]]\nbroadcast = { from = 0, size = -1 }\n", 3, 32, "expected usize");
    // Missing fields: at the table.
    assert_error("nodes = 2\n[[step]]\ndirect = { from = 0 }\n", 3, 10, "missing field `to`");
    assert_error("nodes = 2\n[[step]]\nbroadcast = {}\n", 3, 13, "missing field `from`");
    // Conditions.
    assert_error("nodes = 2\n[[expect]]\nreceived = -1\n", 3, 12, "expected u64");
    assert_error(
        "nodes = 2\n[[expect]]\nreceived_tags = \"a\"\n",
        3,
        17,
        "invalid type: string \"a\", expected a sequence",
    );
    assert_error("nodes = 2\n[[step]]\nexpect = { peers = true }\n", 3, 20, "expected u32");
}

#[test]
fn node_counts_and_indices() {
    assert_error("nodes = 0\n", 1, 9, "`nodes` must be between 1 and 64, found 0");
    assert_error("nodes = 65\n", 1, 9, "between 1 and 64");
    assert_error("nodes = -1\n", 1, 9, "expected u32");
    assert_error("nodes = 2\nseeds = [0, 2]\n", 2, 13, "node index 2 is out of range, expected 0..=1 (nodes = 2)");
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = 2 }\n",
        3,
        22,
        "node index 2 is out of range, expected 0..=1 (nodes = 2)",
    );
    assert_error("nodes = 2\n[[step]]\ndirect = { from = 0, to = 5 }\n", 3, 27, "node index 5");
    assert_error("nodes = 3\n[[step]]\npartition = { a = [0], b = [1, 3] }\n", 3, 32, "node index 3");
    assert_error("nodes = 3\n[[step]]\nheal = { a = [7], b = [1] }\n", 3, 15, "node index 7");
    assert_error("nodes = 2\n[[step]]\nrestart = { node = 2 }\n", 3, 20, "node index 2");
    assert_error(
        "nodes = 2\n[[step]]\nawait = { node = 9, converged = true, timeout = \"1s\" }\n",
        3,
        18,
        "node index 9",
    );
    assert_error("nodes = 2\n[[expect]]\nnode = 2\nconverged = true\n", 3, 8, "node index 2");
}

#[test]
fn actions_and_timing() {
    assert_error(
        "nodes = 2\n[[step]]\nexplode = { node = 0 }\n",
        3,
        1,
        "unknown action `explode`, expected one of partition, heal, latency, loss, crash, restart, rebind, await, expect, disk, pause, clock, or an operation of system `pubsub`: broadcast, direct",
    );
    assert_error("nodes = 2\n\n[[step]]\nat = \"1s\"\n", 3, 1, "step has no action, expected one of partition");
    assert_error(
        "nodes = 2\n[[step]]\ncrash = { node = 0 }\nrestart = { node = 0 }\n",
        4,
        1,
        "two actions, `crash` and `restart`",
    );
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = 0 }\ndirect = { from = 0, to = 1 }\n",
        4,
        1,
        "two actions, `broadcast` and `direct`",
    );
    assert_error(
        "nodes = 2\n[[step]]\nat = \"1s\"\nafter = \"2s\"\ncrash = { node = 0 }\n",
        4,
        9,
        "both `at` and `after`",
    );
    // The operation's own rules are reported at the operation.
    assert_error(
        "nodes = 2\n[[step]]\ndirect = { from = 1, to = 1 }\n",
        3,
        10,
        "`to` is the sender (node 1), expected another node",
    );
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = 0, size = 16777217 }\n",
        3,
        13,
        "size 16777217 is too large, expected at most 16777216 bytes (16 MiB)",
    );
    parse("nodes = 2\n[[step]]\nbroadcast = { from = 0, size = 16777216 }\n");
}

#[test]
fn groups() {
    assert_error("nodes = 3\n[[step]]\npartition = { a = [], b = [1] }\n", 3, 19, "group `a` is empty");
    assert_error(
        "nodes = 3\n[[step]]\npartition = { a = [0, 1], b = [2, 1] }\n",
        3,
        35,
        "node 1 is in both `a` and `b`",
    );
    assert_error("nodes = 3\n[[step]]\nheal = { b = [1] }\n", 3, 14, "`heal` has no group `a`");
    assert_error("nodes = 3\n[[step]]\nloss = { rate = 0.5, a = [1] }\n", 3, 26, "`loss` has no group `b`");
    assert_error("nodes = 3\n[[step]]\npartition = { a = [0] }\n", 3, 13, "missing field `b`");
}

#[test]
fn durations_ranges_and_probabilities() {
    assert_error("nodes = 2\nduration = \"-5s\"\n", 2, 12, "negative duration `-5s`");
    assert_error("nodes = 2\nsettle = \"5\"\n", 2, 10, "invalid duration `5`, expected a number with a unit");
    assert_error("nodes = 2\n[[step]]\nafter = \"soon\"\ncrash = { node = 0 }\n", 3, 9, "invalid duration `soon`");
    assert_error("nodes = 2\n[network]\nlatency = \"5ms..x\"\n", 3, 11, "in range `5ms..x`");
    assert_error("nodes = 2\n[network]\nlatency = \"5ms..1ms\"\n", 3, 11, "MIN greater than MAX");
    assert_error("nodes = 2\n[[step]]\nlatency = { value = \"3ms..2ms\" }\n", 3, 21, "MIN greater than MAX");
    assert_error("nodes = 2\n[network]\nloss = 1.5\n", 3, 8, "probability 1.5 is out of range, expected 0.0..=1.0");
    assert_error("nodes = 2\n[[step]]\nloss = { rate = -0.1 }\n", 3, 17, "probability -0.1");
    assert_error(
        "nodes = 2\nduration = \"10s\"\nsettle = \"11s\"\n",
        3,
        10,
        "`settle` (11s) is longer than `duration` (10s)",
    );
    assert_error("nodes = 2\nduration = \"3s\"\n", 2, 12, "`settle` (5s) is longer");
    // Every duration is bounded, so nothing a run computes from one overflows.
    assert_error(
        "nodes = 2\n[[step]]\nawait = { converged = true, timeout = \"18446744073709551615s\" }\n",
        3,
        39,
        "duration `18446744073709551615s` is too long, expected at most 720h",
    );
    // A step no run reaches: its earliest start is past `duration`.
    assert_error(
        "nodes = 2\nduration = \"12s\"\n[[step]]\nafter = \"1000000000000s\"\ncrash = { node = 1 }\n",
        4,
        9,
        "too long",
    );
    assert_error(
        "nodes = 2\nduration = \"12s\"\n[[step]]\nafter = \"5s\"\ncrash = { node = 1 }\n[[step]]\nafter = \"8s\"\nrestart = { node = 1 }\n",
        7,
        9,
        "this step starts at 13s at the earliest, after the run ends (`duration` = 12s)",
    );
    assert_error(
        "nodes = 2\nduration = \"12s\"\n[[step]]\nat = \"13s\"\ncrash = { node = 1 }\n",
        4,
        6,
        "starts at 13s at the earliest",
    );
}

#[test]
fn conditions() {
    assert_error("nodes = 2\n[[step]]\nawait = { converged = true }\n", 3, 9, "`await` has no `timeout`");
    assert_error(
        "nodes = 2\n[[step]]\nexpect = { node = 0 }\n",
        3,
        10,
        "condition has no check, expected exactly one of received, received_tags, not_received_tags, peers, converged",
    );
    assert_error("nodes = 2\n[[expect]]\nnode = 0\n", 2, 1, "condition has no check");
    assert_error("nodes = 2\n[[step]]\nexpect = { peers = 1, received = 0 }\n", 3, 23, "both `peers` and `received`");
    assert_error("nodes = 2\n[[expect]]\nconverged = false\n", 3, 13, "expected `true`, found `false`");
    assert_error(
        "nodes = 2\n[[step]]\nawait = { converged = false, timeout = \"1s\" }\n",
        3,
        23,
        "expected `true`, found `false`",
    );
    assert_error(
        "nodes = 2\n[[step]]\nexpect = { received = 0, timeout = \"1s\" }\n",
        3,
        36,
        "`timeout` is only allowed in an `await` step",
    );
    assert_error(
        "nodes = 2\nmutation = \"explode\"\n",
        2,
        12,
        "unknown mutation `explode` of system `pubsub`, expected one of: no-dedup, self-delivery, stale-rebind, no-retransmit, forget-on-restart",
    );
}

#[test]
fn columns_count_characters() {
    let text = "nodes = 2\n[[step]]\nexpect = { received_tags = [\"\u{e9}\u{e9}\u{e9}\"], peers = 1 }\n";
    assert_error(text, 3, 37, "both `received_tags` and `peers`");
    let text = "nodes = 2\n[[step]]\nbroadcast = { tag = \"\u{e9}\u{e9}\u{e9}\", from = 0, size = \"big\" }\n";
    assert_error(text, 3, 45, "expected usize");
}

#[test]
fn unreadable_file() {
    let e = Scenario::from_file(Path::new("/nonexistent/dir/x.toml"), &PubSub).unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.column), ("/nonexistent/dir/x.toml", 1, 1));
    assert!(e.to_string().starts_with("/nonexistent/dir/x.toml:1:1: cannot read the scenario file"));
}

#[test]
fn validate_names_the_field() {
    let mut s = Scenario::new("code", 3);
    s.validate(&PubSub).unwrap();
    s.steps.push(step(
        Timing::Immediately,
        Action::Link { change: LinkChange::Partition { oneway: false }, scope: Scope::Every },
    ));
    assert_eq!(
        s.validate(&PubSub).unwrap_err(),
        "step[0].action: `partition` has no groups, expected both `a` and `b`"
    );
    let scope = Scope::Between { a: vec![0], b: vec![1, 3] };
    s.steps[0].action = Action::Link { change: LinkChange::Partition { oneway: false }, scope };
    assert!(s.validate(&PubSub).unwrap_err().starts_with("step[0].b[1]: node index 3 is out of range"));
    // The system's operations: node indices, then their own rules.
    s.steps[0].action = op(Op::Direct { from: 0, to: 5, tag: None, size: None });
    assert_eq!(
        s.validate(&PubSub).unwrap_err(),
        "step[0].op: node index 5 is out of range, expected 0..=2 (nodes = 3)"
    );
    s.steps[0].action = op(Op::Direct { from: 1, to: 1, tag: None, size: None });
    assert_eq!(s.validate(&PubSub).unwrap_err(), "step[0].op: `to` is the sender (node 1), expected another node");
    s.steps[0].action = op(Op::Broadcast { from: 1, tag: None, size: Some(MAX_MESSAGE_SIZE + 1) });
    assert!(s.validate(&PubSub).unwrap_err().starts_with("step[0].op: size 16777217 is too large"));
    s.steps[0].action = Action::Op(Call { key: "explode".into(), value: toml::Value::Table(Default::default()) });
    assert!(s.validate(&PubSub).unwrap_err().starts_with("step[0].op: unknown variant `explode`, expected"));
    s.steps.clear();
    // The system's conditions.
    s.expects
        .push(Condition { node: Some(0), check: Call { key: "received".into(), value: toml::Value::Integer(-1) } });
    assert!(s.validate(&PubSub).unwrap_err().starts_with("expect[0].check: invalid value: integer `-1`, expected u64"));
    s.expects[0].check = Call { key: "converged".into(), value: toml::Value::Boolean(false) };
    assert_eq!(s.validate(&PubSub).unwrap_err(), "expect[0].check: expected `true`, found `false`");
    s.expects[0] = Condition { node: Some(3), check: Call::of(&converged()) };
    assert!(s.validate(&PubSub).unwrap_err().starts_with("expect[0].node: node index 3 is out of range"));
    s.expects.clear();
    s.seed = u64::MAX;
    assert!(s.validate(&PubSub).unwrap_err().starts_with("seed: `seed`"));
    s.seed = 0;
    s.network.loss = f64::NAN;
    assert!(s.validate(&PubSub).unwrap_err().starts_with("network.loss: probability NaN"));
    s.network.loss = 0.0;
    s.planted_bug = Some("no-such-bug".into());
    assert!(s
        .validate(&PubSub)
        .unwrap_err()
        .starts_with("mutation: unknown mutation `no-such-bug` of system `pubsub`"));
}

#[test]
fn operations_know_their_nodes_and_simplify_to_the_default_size() {
    let mut direct = Op::Direct { from: 1, to: 2, tag: Some("t".into()), size: Some(4096) };
    assert_eq!(direct.node(), 1);
    for node in direct.nodes_mut() {
        *node -= 1;
    }
    assert_eq!(direct, Op::Direct { from: 0, to: 1, tag: Some("t".into()), size: Some(4096) });
    assert_eq!(direct.simpler(), [Op::Direct { from: 0, to: 1, tag: Some("t".into()), size: None }]);
    assert!(direct.simpler()[0].simpler().is_empty());
    assert_eq!(tandem::scenario::variants::<Op>(), ["broadcast", "direct"]);
    assert_eq!(
        tandem::scenario::variants::<Check>(),
        ["received", "received_tags", "not_received_tags", "peers", "converged"]
    );
}

#[test]
fn shipped_scenarios_parse_and_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let s = Scenario::from_file(&path, &PubSub).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parse(&s.to_toml()), s, "{}", path.display());
            count += 1;
        }
    }
    assert!(count > 10, "only {count} bundled scenarios");
}

#[test]
fn final_steps_parse_round_trip_and_take_no_faults() {
    let text = "nodes = 2\n\n[[step]]\npartition = { a = [0], b = [1] }\n\n[[final]]\nbroadcast = { from = 0, tag = \"last\" }\nwait = \"2s\"\n\n[[final]]\nafter = \"1s\"\nexpect = { node = 1, received_tags = [\"last\"] }\n\n[[expect]]\nnode = 0\nreceived = 0\n";
    let s = parse(text);
    assert_eq!(s.steps.len(), 1);
    let mut last = step(Timing::Immediately, op(Op::Broadcast { from: 0, tag: Some("last".into()), size: None }));
    last.wait = Some(Duration::from_secs(2));
    let check = step(
        Timing::After(Duration::from_secs(1)),
        Action::Expect { condition: on(1, Check::ReceivedTags(tags(&["last"]))) },
    );
    assert_eq!(s.finals, [last, check]);
    assert_eq!(s.finals.iter().map(|step| step.line).collect::<Vec<_>>(), [6, 10]);
    assert_eq!(s.expects, [on(0, Check::Received(0))]);
    let written = s.to_toml();
    assert_eq!(parse(&written), s, "{written}");
    assert!(
        written.find("[[final]]") > written.find("[[step]]") && written.find("[[final]]") < written.find("[[expect]]")
    );
    // A fault in the final phase is an error at its key; so is `at`, and so
    // is what any step rejects.
    assert_error(
        "nodes = 2\n[[step]]\nbroadcast = { from = 0 }\n[[final]]\ncrash = { node = 1 }\n",
        5,
        1,
        "`crash` is a fault",
    );
    assert_error("nodes = 2\n[[final]]\nheal = {}\n", 3, 1, "the final phase runs with every fault healed");
    assert_error("nodes = 2\n[[final]]\nat = \"1s\"\nbroadcast = { from = 0 }\n", 3, 6, "not `at`");
    assert_error("nodes = 2\n[[final]]\nbroadcast = { from = 2 }\n", 3, 22, "out of range");
    assert_error("nodes = 2\n[[final]]\n", 2, 1, "step has no action");
    // In code, a final step is named after the timeline's steps.
    let mut s = Scenario::new("code", 2);
    s.steps.push(step(Timing::Immediately, op(Op::Broadcast { from: 0, tag: None, size: None })));
    s.finals.push(step(Timing::Immediately, Action::Crash { node: 1 }));
    assert!(
        s.validate(&PubSub).unwrap_err().starts_with("step[1].action: `crash` is a fault"),
        "{:?}",
        s.validate(&PubSub)
    );
}
