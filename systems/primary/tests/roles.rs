//! Faults aimed at a role (`crash = { role = "primary" }`): parsed and
//! written back, checked at their position, resolved by the executor when
//! the step runs to the node the history shows serving, recorded as the node
//! they hit, replayed exactly from a written file, on both simulation
//! backends, and drawn by exploration.

use std::path::Path;
use std::sync::Arc;

use tandem::history::Skip;
use tandem::scenario::{Aim, LinkChange, NodeChange, Scope};
use tandem::{Action, EventKind, History, NodeIdx, Scenario, Workload};
use tandem_primary::{Primary, PrimaryObservation};
use tandem_sim::run::options_for;
use tandem_sim::{run_scenario, run_with, Backend, SimOptions};

fn bundled() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/primary/role_primary.toml");
    Scenario::from_file(&path, &Primary).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(steps: &str) -> Result<Scenario, tandem::scenario::ScenarioError> {
    let text = format!("system = \"primary\"\nnodes = 3\nduration = \"10s\"\n\n{steps}");
    Scenario::parse(&text, "roles.toml", &Primary)
}

/// `(line, column, message)` of the error of `steps` (which start on line 5).
fn error(steps: &str) -> (usize, usize, String) {
    let e = parse(steps).expect_err(steps);
    assert!(e.to_string().starts_with(&format!("roles.toml:{}:{}: ", e.line, e.column)), "{e}");
    (e.line, e.column, e.message)
}

#[test]
fn role_forms_parse_and_write_back() {
    let scenario = parse(
        "[[step]]\ncrash = { role = \"primary\" }\n\n[[step]]\nrestart = { role = \"primary\" }\n\n\
         [[step]]\npartition = { role = \"primary\" }\n\n[[step]]\npause = { role = \"primary\", for = \"1s\" }\n\n\
         [[step]]\nclock = { role = \"primary\", jump = \"-2s\" }\n\n[[step]]\ndisk = { role = \"primary\", fault = \"slow\", delay = \"5ms\" }\n",
    )
    .unwrap();
    let aimed = |aim| Action::Aimed { role: "primary".into(), aim };
    let actions: Vec<Action> = scenario.steps.iter().map(|s| s.action.clone()).collect();
    assert_eq!(actions[0], aimed(Aim::Node(NodeChange::Crash)));
    assert_eq!(actions[1], aimed(Aim::Node(NodeChange::Restart)));
    assert_eq!(actions[2], aimed(Aim::Isolate { oneway: false }));
    assert!(matches!(actions[3], Action::Aimed { aim: Aim::Node(NodeChange::Pause(_)), .. }));
    assert_eq!(actions[0].name(), "crash");
    assert_eq!(actions[2].name(), "partition");
    assert_eq!(actions[0].node(), None, "its node is known only when it runs");
    let text = scenario.to_toml();
    assert!(text.contains("crash = { role = \"primary\" }"), "{text}");
    assert!(text.contains("partition = { role = \"primary\", oneway = false }"), "{text}");
    assert!(text.contains("pause = { role = \"primary\", for = \"1s\" }"), "{text}");
    assert!(text.contains("disk = { role = \"primary\", fault = \"slow\", delay = \"5ms\" }"), "{text}");
    assert_eq!(Scenario::parse(&text, "again.toml", &Primary).unwrap(), Scenario { name: "roles".into(), ..scenario });
    assert_eq!(bundled().shape().split("; ").nth(2), Some("crash primary"));
}

#[test]
fn role_errors_name_their_position() {
    // An unknown role: at its value.
    let (line, column, message) = error("[[step]]\ncrash = { role = \"leader\" }\n");
    assert_eq!((line, column), (6, 18), "{message}");
    assert!(message.contains("unknown role `leader` of system `primary`, expected one of: primary"), "{message}");
    let (line, column, message) = error("[[step]]\npartition = { role = \"leader\" }\n");
    assert_eq!((line, column), (6, 22), "{message}");
    assert!(message.contains("unknown role `leader`"), "{message}");
    // Both a node and a role: at the role.
    let (line, column, message) = error("[[step]]\ncrash = { node = 1, role = \"primary\" }\n");
    assert_eq!((line, column), (6, 28), "{message}");
    assert!(message.contains("both `node` and `role`"), "{message}");
    // A role partition with groups: at the group.
    let (line, column, message) = error("[[step]]\npartition = { role = \"primary\", b = [1] }\n");
    assert_eq!((line, column), (6, 37), "{message}");
    assert!(message.contains("has no groups"), "{message}");
    // Neither: at the table, as before.
    let (line, column, message) = error("[[step]]\npause = { for = \"1s\" }\n");
    assert_eq!((line, column), (6, 9), "{message}");
    assert!(message.contains("missing field `node`"), "{message}");
    // The rest of the action is checked as with a node.
    let (line, column, message) = error("[[step]]\npause = { role = \"primary\", for = \"0s\" }\n");
    assert_eq!((line, column), (6, 35), "{message}");
    assert!(message.contains("a pause of 0s"), "{message}");
}

/// The node the history shows as primary at event `before`: the latest
/// `Serving` of the highest epoch (the test's own reading of the rule).
fn serving_before(history: &History<Primary>, before: usize) -> NodeIdx {
    let served = history.events()[..before].iter().filter_map(|e| match (&e.event, e.node) {
        (EventKind::Observe(PrimaryObservation::Serving { epoch }), Some(node)) => Some((*epoch, node)),
        _ => None,
    });
    served.max_by_key(|&(epoch, _)| epoch).expect("a primary served").1
}

/// The event index of step `index`, its action as it ran, and the fact after it.
fn step(history: &History<Primary>, index: usize) -> (usize, Action, EventKind<Primary>, Option<NodeIdx>) {
    let events = history.events();
    let at = events
        .iter()
        .position(|e| matches!(&e.event, EventKind::Step { index: i, .. } if *i == index))
        .expect("the step ran");
    let EventKind::Step { action, .. } = &events[at].event else { unreachable!() };
    let fact = &events[at + 1];
    assert!(fact.event.fact(fact.node).is_some(), "no fact after step {index}");
    (at, action.clone(), fact.event.clone(), fact.node)
}

#[test]
fn a_crash_aimed_at_the_primary_hits_the_node_that_served_and_the_history_records_it() {
    let scenario = bundled();
    for seed in [1, 2, 3] {
        let run = run_scenario(Arc::new(Primary), &scenario, seed);
        assert!(run.outcome.passed(), "seed {seed}: {:?}", run.outcome.failure);
        let h = &run.history;
        // Step 2: crash = { role = "primary" }.
        let (at, action, fact, node) = step(h, 2);
        let primary = serving_before(h, at);
        assert_eq!(action, Action::Crash { node: primary }, "seed {seed}");
        assert!(matches!(&fact, EventKind::Aimed { step: 2, role } if role == "primary"), "{fact:?}");
        assert_eq!(node, Some(primary));
        let crashed = h.events()[at..].iter().find(|e| matches!(e.event, EventKind::Crashed)).unwrap();
        assert_eq!(crashed.node, Some(primary), "the crash hit the primary");
        // Step 6: restart = { role = "primary" } starts the same node.
        let (_, action, _, _) = step(h, 6);
        assert_eq!(action, Action::Restart { node: primary });
        // Step 7: partition = { role = "primary" } cuts off the new primary.
        let (at, action, _, node) = step(h, 7);
        let second = serving_before(h, at);
        assert_ne!(second, primary, "a new primary was elected");
        let rest: Vec<NodeIdx> = (0..5).filter(|&n| n != second).collect();
        let cut = Scope::Between { a: vec![second], b: rest };
        assert_eq!(action, Action::Link { change: LinkChange::Partition { oneway: false }, scope: cut });
        assert_eq!(node, Some(second));
    }
}

#[test]
fn a_step_aimed_at_a_role_nobody_holds_is_skipped_and_says_so() {
    // At the start no node has served yet.
    let scenario =
        parse("[[step]]\ncrash = { role = \"primary\" }\n\n[[step]]\nrestart = { role = \"primary\" }\n").unwrap();
    let run = run_scenario(Arc::new(Primary), &scenario, 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let (_, action, fact, node) = step(&run.history, 0);
    assert_eq!(action, scenario.steps[0].action, "recorded as written");
    let nobody = Skip::NoHolder { role: "primary".into() };
    assert!(matches!(&fact, EventKind::Skipped { step: 0, why } if *why == nobody), "{fact:?}");
    assert_eq!(node, None);
    let (_, _, fact, _) = step(&run.history, 1);
    let none_down = Skip::NoneDown { role: "primary".into() };
    assert!(matches!(&fact, EventKind::Skipped { step: 1, why } if *why == none_down), "{fact:?}");
    assert!(run.history.events().iter().all(|e| !matches!(e.event, EventKind::Crashed)));
}

#[test]
fn a_written_reproducer_keeps_the_role_and_replays_to_the_same_digest() {
    let scenario = Scenario { seed: 5, ..bundled() };
    let first = run_scenario(Arc::new(Primary), &scenario, scenario.seed);
    let text = scenario.to_toml();
    assert!(text.contains("crash = { role = \"primary\" }"), "{text}");
    let replayed = Scenario::parse(&text, "reproducer.toml", &Primary).unwrap();
    let again = run_scenario(Arc::new(Primary), &replayed, replayed.seed);
    assert_eq!(first.digest(), again.digest());
    assert!(again.outcome.passed(), "{:?}", again.outcome.failure);
}

#[test]
fn the_turmoil_backend_resolves_roles_too() {
    let scenario = bundled();
    let options = SimOptions { backend: Backend::Turmoil, ..options_for(&Primary, &scenario, 1) };
    let run = run_with(Arc::new(Primary), &scenario, options);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let (at, action, _, _) = step(&run.history, 2);
    assert_eq!(action, Action::Crash { node: serving_before(&run.history, at) });
}

#[test]
fn exploration_aims_crashes_partitions_and_pauses_at_the_primary() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use tandem_sim::explore::rules::fair;
    use tandem_sim::explore::strategy::{scenario, Space};

    let tolerance = Primary.tolerance();
    let space = Space { settle: tolerance.settle, stagger: tolerance.stagger, ..Default::default() };
    let (system, mut runner) = (Arc::new(Primary), TestRunner::deterministic());
    let (mut crashes, mut restarts, mut partitions, mut pauses) = (0, 0, 0, 0);
    for _ in 0..200 {
        let drawn = scenario(&system, &space).new_tree(&mut runner).unwrap().current();
        drawn.validate(&Primary).unwrap();
        fair(&Primary, &drawn).unwrap();
        for step in &drawn.steps {
            if let Action::Aimed { role, aim } = &step.action {
                assert_eq!(role, "primary");
                match aim {
                    Aim::Node(NodeChange::Crash) => crashes += 1,
                    Aim::Node(NodeChange::Restart) => restarts += 1,
                    Aim::Node(NodeChange::Pause(_)) => pauses += 1,
                    Aim::Isolate { .. } => partitions += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
    }
    assert!(
        crashes >= 10 && partitions >= 10 && pauses >= 5,
        "{crashes} crashes, {partitions} partitions, {pauses} pauses"
    );
    assert_eq!(crashes, restarts, "every crash aimed at the role is followed by a restart aimed at it");
}

/// In explored cases the role-aimed steps mostly hit a node (a primary
/// serves after the initial `await`); the correct store passes them.
#[test]
fn explored_role_aimed_steps_mostly_hit_the_primary() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use tandem_sim::explore::strategy::{scenario, Space};

    let tolerance = Primary.tolerance();
    let space = Space { settle: tolerance.settle, stagger: tolerance.stagger, clients: 2, ..Default::default() };
    let (system, mut runner) = (Arc::new(Primary), TestRunner::deterministic());
    let (mut hit, mut skipped, mut cases) = (0, 0, 0);
    while cases < 30 {
        let drawn = scenario(&system, &space).new_tree(&mut runner).unwrap().current();
        if !drawn.steps.iter().any(|s| matches!(s.action, Action::Aimed { .. })) {
            continue;
        }
        cases += 1;
        let run = run_scenario(system.clone(), &drawn, drawn.seed);
        assert!(run.outcome.passed(), "{:?}\n{}", run.outcome.failure, drawn.to_toml());
        for event in run.history.events() {
            match &event.event {
                EventKind::Aimed { .. } => hit += 1,
                EventKind::Skipped { why: Skip::NoHolder { .. } | Skip::NoneDown { .. }, .. } => skipped += 1,
                _ => {}
            }
        }
    }
    eprintln!("{hit} role-aimed steps hit a node, {skipped} skipped, in {cases} cases");
    assert!(hit >= 3 * skipped && hit >= 30, "{hit} hit, {skipped} skipped");
}
