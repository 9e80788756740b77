//! The primary-backup store in the simulation: the bundled scenarios for
//! several seeds, determinism, the planted bugs (each caught by the
//! linearizability property L1 and by none of the simple properties, or,
//! for `sticky-forward`, only by L3 on the final phase), and exploration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tandem::{Oracle, Scenario, Workload};
use tandem_primary::{Primary, PrimaryOutput};
use tandem_sim::run_scenario;

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/primary");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Scenario {
    Scenario::from_file(path, &Primary).unwrap_or_else(|e| panic!("{e}"))
}

fn bundled(name: &str) -> Scenario {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/primary/{name}.toml")))
}

/// How many seeds each scenario runs with (`PRIMARY_SEEDS`, default 4).
fn seed_count() -> u64 {
    std::env::var("PRIMARY_SEEDS").ok().map_or(4, |s| s.parse().expect("PRIMARY_SEEDS is a number"))
}

#[test]
fn bundled_scenarios_pass_for_several_seeds() {
    let files = scenario_files();
    assert!(files.len() >= 3, "{files:?}");
    let mut failures = Vec::new();
    for file in files {
        let scenario = load(&file);
        for seed in 0..seed_count() {
            let run = run_scenario(Arc::new(Primary), &scenario, seed);
            if let Some(failure) = run.outcome.failure {
                failures.push(format!("{} seed {seed}: {failure}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn same_seed_same_history() {
    for name in ["partition_primary", "primary_crash"] {
        let scenario = bundled(name);
        let first = run_scenario(Arc::new(Primary), &scenario, 7);
        let second = run_scenario(Arc::new(Primary), &scenario, 7);
        assert!(first.outcome.passed(), "{name}: {:?}", first.outcome.failure);
        assert_eq!(first.digest(), second.digest(), "{name}: same seed, different histories");
        assert_eq!(first.history.to_jsonl(), second.history.to_jsonl());
        let other = run_scenario(Arc::new(Primary), &scenario, 8);
        assert_ne!(first.digest(), other.digest(), "{name}: the seed changes the run");
    }
}

/// What the clients of a run saw: (operation id, output) of every
/// operation that completed ok, in completion order.
fn completed(run: &tandem::engine::execute::Run<Primary>) -> Vec<(u64, PrimaryOutput)> {
    use tandem::{EventKind, OpResult};
    run.history
        .events()
        .iter()
        .filter_map(|e| match &e.event {
            EventKind::Complete { id, result: OpResult::Ok(output) } => Some((*id, output.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cut_off_primary_answers_nothing_and_the_majority_serves() {
    let run = run_scenario(Arc::new(Primary), &bundled("partition_primary"), 1);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let seen = completed(&run);
    let list = |v: &[&str]| PrimaryOutput::Value(Some(v.iter().map(|s| s.to_string()).collect()));
    // The operations in step order: append before (0), get on node 2 (1),
    // append cut-off on node 0 (2), append majority on node 1 (3), get on
    // node 0 during the cut (4), get on node 2 (5), get on node 0 after
    // the heal (6).
    let output = |id: u64| seen.iter().find(|(i, _)| *i == id).map(|(_, o)| o.clone());
    assert_eq!(output(0), Some(PrimaryOutput::Done));
    assert_eq!(output(1), Some(list(&["before"])));
    assert_eq!(output(2), None, "the cut-off primary commits no write");
    assert_eq!(output(3), Some(PrimaryOutput::Done), "the majority serves writes");
    assert_eq!(output(4), None, "the deposed primary confirms no read");
    assert_eq!(output(5), Some(list(&["before", "majority"])));
    assert_eq!(output(6), Some(list(&["before", "majority"])), "after the heal node 0 has the majority's log");
    // Every node applied the same requests: the cut-off append is gone.
    let outcomes: Vec<Vec<u64>> = (0..3).map(|n| Primary.outcome(&run.history, n)).collect();
    assert_eq!(outcomes[0], vec![0, 3]);
    assert!(outcomes.iter().all(|o| *o == outcomes[0]), "{outcomes:?}");
}

/// The space `tandem explore --system primary` draws from: the settle
/// tail and boot stagger the store tolerates.
fn space() -> tandem_sim::explore::strategy::Space {
    let tolerance = Primary.tolerance();
    tandem_sim::explore::strategy::Space { settle: tolerance.settle, stagger: tolerance.stagger, ..Default::default() }
}

/// Exploration draws the pauses and clock changes the store declares it
/// survives, and only within its tolerance.
#[test]
fn exploration_draws_pauses_and_clock_changes_within_the_tolerance() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use std::time::Duration;
    use tandem::scenario::ClockChange;
    use tandem::Action;
    use tandem_sim::explore::rules::fair;
    use tandem_sim::explore::strategy::scenario;

    let tolerance = Primary.tolerance();
    let (system, mut runner) = (Arc::new(Primary), TestRunner::deterministic());
    let (mut pauses, mut jumps, mut drifts) = (0, 0, 0);
    for _ in 0..200 {
        let drawn = scenario(&system, &space()).new_tree(&mut runner).unwrap().current();
        drawn.validate(&Primary).unwrap();
        fair(&Primary, &drawn).unwrap();
        for step in &drawn.steps {
            match step.action {
                Action::Pause { length, .. } => {
                    assert!((Duration::from_millis(100)..=tolerance.max_pause).contains(&length), "{length:?}");
                    pauses += 1;
                }
                Action::Clock { change: ClockChange::Jump(skew) | ClockChange::Offset(skew), .. } => {
                    assert!(skew.by <= tolerance.max_clock_jump, "{skew}");
                    jumps += 1;
                }
                Action::Clock { change: ClockChange::Drift(drift), .. } => {
                    assert!(drift.abs() <= f64::from(tolerance.max_drift_percent) / 100.0, "{drift}");
                    drifts += 1;
                }
                _ => {}
            }
        }
    }
    assert!(pauses >= 20 && jumps >= 20 && drifts >= 10, "{pauses} pauses, {jumps} jumps, {drifts} drifts");
}

/// The hand-written reproducers of the planted bugs (`tests/bugs/`), and
/// the property each fails.
#[cfg(feature = "mutations")]
const BUGS: [(&str, &str, &str); 6] = [
    ("stale_read", "stale-read", "L1"),
    ("ack_before_replication", "ack-before-replication", "L1"),
    ("retry_applied_twice", "retry-applied-twice", "L1"),
    ("lease_checked_at_publish", "lease-checked-at-publish", "L1"),
    ("lease_on_wall_clock", "lease-on-wall-clock", "L1"),
    ("sticky_forward", "sticky-forward", "L3"),
];

/// The planted bugs exploration finds within 500 cases (the lease bugs need
/// a pause or a clock jump at the right moment: BENCHMARKS.md), and the
/// property each fails.
#[cfg(feature = "mutations")]
const EXPLORED: [(&str, &str); 4] =
    [("stale-read", "L1"), ("ack-before-replication", "L1"), ("retry-applied-twice", "L1"), ("sticky-forward", "L3")];

/// Each reproducer fails its property, and every other property (the
/// simple S1, S2, L2, and L1 or L3) passes the same history: L1 alone sees
/// the consistency bugs, and only L3, judging what clients observed in the
/// final phase, sees `sticky-forward`.
#[cfg(feature = "mutations")]
#[test]
fn each_planted_bug_fails_its_property_alone_which_a_correct_store_passes() {
    use tandem::Judge;

    for (file, mutation, code) in BUGS {
        let others: Vec<_> = Primary.properties().into_iter().filter(|p| p.code != code).collect();
        assert_eq!(others.iter().filter(|p| p.kind_name() != "sometimes").count(), 4, "S1, S2, L2 and L1 or L3");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/bugs/{file}.toml"));
        let correct = load(&path);
        assert_eq!(correct.planted_bug, None);
        let buggy = Scenario { planted_bug: Some(mutation.to_string()), ..correct.clone() };
        for seed in 0..seed_count() {
            let run = run_scenario(Arc::new(Primary), &correct, seed);
            assert!(run.outcome.passed(), "{file} seed {seed} without the bug: {:?}", run.outcome.failure);
            let run = run_scenario(Arc::new(Primary), &buggy, seed);
            let failure = run.outcome.failure.unwrap_or_else(|| panic!("{mutation} passed {file} with seed {seed}"));
            assert_eq!(failure.code, code, "{mutation} seed {seed}: {failure}");
            // The other properties see nothing wrong in the same history.
            let end = run.history.events().last().map_or_else(Default::default, |e| e.at());
            let verdict = Judge::new(&others).finish(&run.history, end);
            assert!(verdict.is_ok(), "{mutation} seed {seed}: another property caught it: {verdict:?}");
        }
    }
}

/// `sticky-forward` shows only in the final phase: with it left out,
/// exploration finds nothing where with it the bug comes up within a few
/// cases.
#[cfg(feature = "mutations")]
#[test]
#[cfg_attr(debug_assertions, ignore = "slow in a debug build: run with --release")]
fn only_the_final_phase_finds_sticky_forward() {
    use tandem_sim::explore::runner::{explore, Plan};
    use tandem_sim::explore::strategy::Space;

    let system = Arc::new(Primary);
    let space = Space { planted_bug: Some("sticky-forward".into()), ..space() };
    let without = Plan { jobs: 2, ..Plan::new(1, 150, Space { finals: false, ..space.clone() }) };
    let runs = explore(&system, &without, |_| {}).runs;
    assert_eq!(runs.len(), 150, "found without the final phase: {:?}", runs.last().and_then(|r| r.failure.clone()));
    assert!(runs.iter().all(|r| r.case.scenario.finals.is_empty()));
    let with = Plan { jobs: 2, ..Plan::new(1, 150, space) };
    let runs = explore(&system, &with, |_| {}).runs;
    let failure = runs.last().and_then(|r| r.failure.clone()).expect("found with the final phase");
    assert_eq!(failure.code, "L3", "{failure}");
}

/// Exploration finds every planted bug within 500 cases, its shrunk
/// reproducer replays, and the correct store passes it (seconds in
/// release; ignored in a debug build).
#[cfg(feature = "mutations")]
#[test]
#[cfg_attr(debug_assertions, ignore = "slow in a debug build: run with --release")]
fn exploration_finds_and_shrinks_every_planted_bug() {
    use tandem_sim::explore::runner::{explore, Plan};
    use tandem_sim::explore::shrink::{shrink, Options};
    use tandem_sim::explore::strategy::Space;

    let system = Arc::new(Primary);
    for (mutation, code) in EXPLORED {
        for seed in [2, 3] {
            let space = Space { planted_bug: Some(mutation.to_string()), ..space() };
            let plan = Plan { jobs: 2, ..Plan::new(seed, 500, space) };
            let runs = explore(&system, &plan, |_| {}).runs;
            let failing = runs.last().filter(|r| r.failure.is_some());
            let failing = failing.unwrap_or_else(|| panic!("{mutation}: not found in 500 cases (seed {seed})"));
            let failure = failing.failure.clone().expect("failing");
            assert_eq!(failure.code, code, "{mutation} seed {seed}: {failure}");
            if seed != 2 {
                continue;
            }
            let shrunk = shrink(system.clone(), &failing.case.scenario, &failure, &Options::default());
            eprintln!(
                "{mutation}: found at case {} ({failure}); shrunk to {} steps, {} nodes",
                failing.case.number(),
                shrunk.scenario.steps.len(),
                shrunk.scenario.nodes
            );
            let replay = |s: &Scenario| run_scenario(system.clone(), s, s.seed);
            let (a, b) = (replay(&shrunk.scenario), replay(&shrunk.scenario));
            assert_eq!(a.outcome.failure.as_ref().map(|f| f.code.as_str()), Some(code));
            assert_eq!(a.digest(), b.digest());
            let fixed = Scenario { planted_bug: None, ..shrunk.scenario.clone() };
            let run = replay(&fixed);
            assert!(
                run.outcome.passed(),
                "{mutation}: the correct store fails its reproducer: {:?}",
                run.outcome.failure
            );
        }
    }
}

/// The correct store passes a short exploration (the nightly size is
/// `tandem explore --system primary --cases 3000`).
#[test]
#[cfg_attr(debug_assertions, ignore = "slow in a debug build: run with --release")]
fn exploration_of_the_correct_store_finds_nothing() {
    use tandem_sim::explore::runner::{explore, Plan};

    let plan = Plan { jobs: 2, ..Plan::new(1, 200, space()) };
    let runs = explore(&Arc::new(Primary), &plan, |_| {}).runs;
    assert_eq!(runs.len(), 200);
    let failed: Vec<_> = runs.iter().filter_map(|r| r.failure.as_ref()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}
