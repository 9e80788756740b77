//! The kv system in the simulation: every bundled scenario for several
//! seeds, determinism, and the planted bugs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tandem::Scenario;
use tandem_kv::Kv;
use tandem_sim::run_scenario;

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/kv");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Scenario {
    Scenario::from_file(path, &Kv).unwrap_or_else(|e| panic!("{e}"))
}

/// How many seeds each scenario runs with (`KV_SEEDS`, default 4).
fn seed_count() -> u64 {
    std::env::var("KV_SEEDS").ok().map_or(4, |s| s.parse().expect("KV_SEEDS is a number"))
}

#[test]
fn bundled_scenarios_pass_for_several_seeds() {
    let system = Arc::new(Kv);
    let mut failures = Vec::new();
    for file in scenario_files() {
        let scenario = load(&file);
        for seed in 0..seed_count() {
            let started = Instant::now();
            let run = run_scenario(system.clone(), &scenario, seed);
            let goals: Vec<String> = run.outcome.coverage.iter().filter(|c| c.hit).map(|c| c.goal.clone()).collect();
            eprintln!(
                "{} seed={seed} {} wall={:?} digest={} goals={goals:?}",
                scenario.name,
                run.outcome.failure.as_ref().map_or("PASS".to_string(), |f| format!("FAIL {f}")),
                started.elapsed(),
                run.digest()
            );
            if let Some(failure) = run.outcome.failure {
                failures.push(format!("{} seed {seed}: {failure}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The reproducers of the deep bugs reach the goals that name their
/// preconditions, on a correct kv too (the goals judge the history only).
#[test]
fn the_deep_bugs_reproducers_reach_their_goals() {
    for (file, codes) in [("restart_reuses_version", ["G4", "G5"]), ("purge_tombstones", ["G6", "G7"])] {
        let scenario = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/bugs/{file}.toml")));
        for seed in 0..seed_count() {
            let run = run_scenario(Arc::new(Kv), &scenario, seed);
            let hit: Vec<&str> = run.outcome.coverage.iter().filter(|c| c.hit).map(|c| c.goal.as_str()).collect();
            for code in codes {
                assert!(hit.iter().any(|g| g.starts_with(&format!("{code} "))), "{file} seed {seed}: {hit:?}");
            }
        }
    }
}

#[test]
fn check_file_runs_every_bundled_scenario() {
    // The helper a user calls from `cargo test` (seeds from TANDEM_SEED / TANDEM_SEEDS).
    for file in scenario_files() {
        tandem_sim::testing::check_file(Kv, &file);
    }
}

#[test]
fn same_seed_same_history() {
    let system = Arc::new(Kv);
    for name in ["partition_heal", "crash_restart", "rebind_partitioned", "lossy_conflicts"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/kv/{name}.toml"));
        let scenario = load(&file);
        let first = run_scenario(system.clone(), &scenario, 7);
        let second = run_scenario(system.clone(), &scenario, 7);
        assert!(first.outcome.passed(), "{name}: {:?}", first.outcome.failure);
        assert_eq!(first.digest(), second.digest(), "{name}: same seed, different histories");
        assert_eq!(first.history.to_jsonl(), second.history.to_jsonl());
        assert_eq!(first.outcome, second.outcome);
        let other = run_scenario(system.clone(), &scenario, 8);
        assert_ne!(first.digest(), other.digest(), "{name}: the seed changes the run");
    }
}

#[test]
fn outcomes_are_the_final_maps() {
    use tandem::Oracle;
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/kv/partition_heal.toml");
    let run = run_scenario(Arc::new(Kv), &load(&file), 1);
    assert!(run.outcome.passed());
    let expected: std::collections::BTreeMap<String, String> =
        [("colour", "green"), ("left", "written-by-0"), ("right", "written-by-1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    for node in 0..3 {
        assert_eq!(Kv.outcome(&run.history, node), expected, "node {node}");
    }
}

/// The hand-written reproducers of the planted bugs (`tests/bugs/`), with
/// the property each one breaks.
#[cfg(feature = "mutations")]
const BUGS: [(&str, &str, &str); 6] = [
    ("no_tiebreak", "no-tiebreak", "L1"),
    ("no_clock_merge", "no-clock-merge", "assert"),
    ("drop_tombstones", "drop-tombstones", "S2"),
    ("skip_missing_keys", "skip-missing-keys", "L1"),
    ("restart_reuses_version", "restart-reuses-version", "L1"),
    ("purge_tombstones", "purge-tombstones", "S2"),
];

#[cfg(feature = "mutations")]
#[test]
fn each_planted_bug_fails_its_scenario_which_a_correct_kv_passes() {
    let system = Arc::new(Kv);
    for (file, mutation, code) in BUGS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/bugs/{file}.toml"));
        let correct = load(&path);
        assert_eq!(correct.planted_bug, None);
        let buggy = Scenario { planted_bug: Some(mutation.to_string()), ..correct.clone() };
        for seed in 0..seed_count() {
            let run = run_scenario(system.clone(), &correct, seed);
            assert!(run.outcome.passed(), "{file} seed {seed} without the bug: {:?}", run.outcome.failure);
            let run = run_scenario(system.clone(), &buggy, seed);
            let failure = run.outcome.failure.unwrap_or_else(|| panic!("{mutation} passed {file} with seed {seed}"));
            assert_eq!(failure.code, code, "{mutation} seed {seed}: {failure}");
        }
    }
}

/// `purge-tombstones` needs each of its conditions: without the first
/// delete, or without the partition, its reproducer passes with the bug.
#[cfg(feature = "mutations")]
#[test]
fn purge_tombstones_needs_each_of_its_conditions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bugs/purge_tombstones.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let first_delete = "after = \"500ms\"\ndelete = { node = 0, key = \"k\" }";
    assert_eq!(text.matches(first_delete).count(), 2);
    let no_first_delete = text.replacen(first_delete, "after = \"500ms\"\nget = { node = 0, key = \"k\" }", 1);
    let no_partition = text.replace("partition = { a = [0, 1], b = [2] }", "get = { node = 1, key = \"k\" }");
    for variant in [no_first_delete, no_partition] {
        let scenario = Scenario::parse(&variant, "variant.toml", &Kv).unwrap();
        let buggy = Scenario { planted_bug: Some("purge-tombstones".into()), ..scenario };
        for seed in 0..seed_count() {
            let run = run_scenario(Arc::new(Kv), &buggy, seed);
            assert!(run.outcome.passed(), "seed {seed}: {:?}\n{variant}", run.outcome.failure);
        }
    }
}

/// Exploration finds every shallow planted bug within 500 cases and shrinks it to
/// at most 6 steps (`KV_EXPLORE_SEED` picks the exploration seed, 1 by
/// default). Seconds in release; minutes in a debug build, where it is
/// ignored (run it with `--release`, or with `--ignored`).
#[cfg(feature = "mutations")]
#[test]
#[cfg_attr(debug_assertions, ignore = "minutes in a debug build: run with --release")]
fn exploration_finds_and_shrinks_every_planted_bug() {
    use tandem_sim::explore::runner::{explore, Plan};
    use tandem_sim::explore::shrink::{shrink, Options};
    use tandem_sim::explore::strategy::Space;

    let seed = std::env::var("KV_EXPLORE_SEED").ok().map_or(1, |s| s.parse().expect("KV_EXPLORE_SEED is a number"));
    let system = Arc::new(Kv);
    // The deep bugs need several conditions in order: swarm exploration
    // needs thousands of cases for them (`tandem bench --section bugs`).
    let deep = ["restart-reuses-version", "purge-tombstones"];
    for (_, mutation, _) in BUGS.into_iter().filter(|(_, mutation, _)| !deep.contains(mutation)) {
        let space = Space { planted_bug: Some(mutation.to_string()), ..Space::default() };
        let plan = Plan { jobs: 2, ..Plan::new(seed, 500, space) };
        let runs = explore(&system, &plan, |_| {}).runs;
        let failing = runs.last().filter(|r| r.failure.is_some());
        let failing = failing.unwrap_or_else(|| panic!("{mutation}: not found in 500 cases (seed {seed})"));
        let failure = failing.failure.clone().expect("failing");
        let shrunk = shrink(system.clone(), &failing.case.scenario, &failure, &Options::default());
        eprintln!(
            "{mutation}: found at case {} ({failure}); shrunk to {} steps, {} nodes",
            failing.case.number(),
            shrunk.scenario.steps.len(),
            shrunk.scenario.nodes
        );
        assert!(shrunk.scenario.steps.len() <= 6, "{mutation}: shrunk to\n{}", shrunk.scenario.to_toml());
        // The reproducer replays: same failure, same digest.
        let replay = |s: &Scenario| run_scenario(system.clone(), s, s.seed);
        let (a, b) = (replay(&shrunk.scenario), replay(&shrunk.scenario));
        assert_eq!(a.outcome.failure.as_ref().map(|f| &f.code), Some(&shrunk.failure.code));
        assert_eq!(a.digest(), b.digest());
        // Without the bug, the shrunk scenario passes.
        let fixed = Scenario { planted_bug: None, ..shrunk.scenario.clone() };
        let run = replay(&fixed);
        assert!(run.outcome.passed(), "{mutation}: the correct kv fails its reproducer: {:?}", run.outcome.failure);
    }
}
