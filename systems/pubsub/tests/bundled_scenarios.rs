//! Every scenario bundled in `scenarios/` passes in the simulation.
//!
//! `TANDEM_SEEDS=N` runs each scenario with seeds `0..N` (default 5);
//! `TANDEM_SCENARIO=STEM` runs only the scenarios whose file stem contains
//! `STEM`. Run with `-- --nocapture` to see the wall time per scenario.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scenario_dir;
use tandem::scenario::{Call, Condition};
use tandem::{Action, Scenario};
use tandem_pubsub::{Condition as Check, PubSub};

const DEFAULT_SEEDS: u64 = 5;

/// Every `*.toml` in `scenarios/`, sorted by path.
fn scenario_files() -> Vec<PathBuf> {
    let dir = scenario_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn seed_count() -> u64 {
    match std::env::var("TANDEM_SEEDS") {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TANDEM_SEEDS must be a non-negative integer, got {value:?}")),
        Err(_) => DEFAULT_SEEDS,
    }
}

fn stem(path: &Path) -> String {
    path.file_stem().expect("a file name").to_string_lossy().into_owned()
}

fn load(path: &Path) -> Scenario {
    Scenario::from_file(path, &PubSub).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

#[test]
fn every_bundled_scenario_passes() {
    let seeds = seed_count();
    let filter = std::env::var("TANDEM_SCENARIO").ok();
    let files = scenario_files();
    assert!(files.iter().any(|f| stem(f) == "hot_reload"), "scenarios/ holds the spec's hot_reload example");

    let system = Arc::new(PubSub);
    let mut failures = Vec::new();
    let mut ran = 0;
    let started = Instant::now();
    for path in &files {
        let name = stem(path);
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let scenario = load(path);
        assert_eq!(scenario.name, name, "{}: `name` must be the file stem", path.display());
        assert!(!scenario.description.trim().is_empty(), "{}: needs a `description`", path.display());
        assert!(scenario.is_for(&PubSub), "{}: names another system", path.display());
        let clock = Instant::now();
        let mut passed = 0;
        for seed in 0..seeds {
            let run = tandem_sim::run_scenario(system.clone(), &scenario, seed);
            match &run.outcome.failure {
                None => passed += 1,
                Some(violation) => {
                    let line = format!(
                        "scenario {name} ({}) seed {seed}: {violation} (at {:.3}s)",
                        path.display(),
                        violation.at.as_secs_f64()
                    );
                    eprintln!("FAIL {line}");
                    failures.push(line);
                }
            }
        }
        ran += 1;
        eprintln!("{name:<28} {passed}/{seeds} seeds passed in {:>8.2?}", clock.elapsed());
    }
    eprintln!("{ran} scenarios x {seeds} seeds in {:.2?}", started.elapsed());
    assert!(ran > 0, "no scenario matched TANDEM_SCENARIO={filter:?}");
    assert!(failures.is_empty(), "{} failing runs:\n{}", failures.len(), failures.join("\n"));
}

fn hot_reload() -> Scenario {
    load(&scenario_dir().join("hot_reload.toml"))
}

#[test]
fn wrong_step_expectation_fails_and_is_named() {
    let mut scenario = hot_reload();
    assert!(tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0).outcome.passed(), "hot_reload passes as written");

    // hot_reload checks `expect = { node = 1, received = 1 }` after the first
    // broadcast; claim 2 instead.
    let received_one = Call::of(&Check::Received(1));
    let (index, line) = scenario
        .steps
        .iter_mut()
        .enumerate()
        .find_map(|(index, step)| match &mut step.action {
            Action::Expect { condition: Condition { node: Some(1), check } } if *check == received_one => {
                *check = Call::of(&Check::Received(2));
                Some((index, step.line))
            }
            _ => None,
        })
        .expect("hot_reload has `expect = { node = 1, received = 1 }`");
    scenario.validate(&PubSub).expect("still a valid scenario");

    let run = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0);
    let failure = run.outcome.failure.expect("a wrong expectation fails the run");
    let text = failure.to_string();
    assert_eq!(failure.code, "expect", "{text}");
    assert!(text.contains(&format!("step {index} (line {line})")), "the report names the step: {text}");
    assert!(text.contains("node 1 delivered 1 messages, expected 2"), "the report names the check: {text}");
    assert!(failure.at < Duration::from_secs(10), "it fails when the step runs, not at the end: {text}");
}

#[test]
fn wrong_end_check_fails_and_is_named() {
    let mut scenario = hot_reload();
    scenario.expects.push(Condition { node: Some(1), check: Call::of(&Check::Received(1)) });
    scenario.validate(&PubSub).expect("still a valid scenario");

    let run = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0);
    let failure = run.outcome.failure.expect("a wrong end check fails the run");
    let text = failure.to_string();
    assert_eq!((failure.code.as_str(), failure.name.as_str()), ("expect", "end check"), "{text}");
    assert!(text.contains("node 1 delivered 2 messages, expected 1"), "the report names the check: {text}");
}

#[test]
fn the_coverage_goals_are_reached_by_the_scenarios_made_for_them() {
    for (file, goal) in [
        ("crash_restart_receiver.toml", "G1 delivered after a restart"),
        ("partition_heal.toml", "G2 delivered across a healed partition"),
        ("hot_reload.toml", "G3 delivered after a rebind"),
    ] {
        let run = tandem_sim::run_scenario(Arc::new(PubSub), &load(&scenario_dir().join(file)), 0);
        assert!(run.outcome.passed(), "{file}: {:?}", run.outcome.failure);
        let coverage = &run.outcome.coverage;
        assert!(coverage.iter().any(|c| c.goal == goal && c.hit), "{file} does not reach {goal}: {coverage:?}");
    }
}
