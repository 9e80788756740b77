//! The twophase system in the simulation: the bundled scenarios for 20
//! seeds, each planted bug against its scenario, and exploration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tandem::Scenario;
use tandem_sim::run_scenario;
use tandem_twophase::TwoPhase;

fn file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../scenarios/twophase/{name}.toml"))
}

fn load(path: &Path) -> Scenario {
    Scenario::from_file(path, &TwoPhase).unwrap_or_else(|e| panic!("{e}"))
}

/// How many seeds each scenario runs with (`TWOPHASE_SEEDS`, default 20).
fn seed_count() -> u64 {
    std::env::var("TWOPHASE_SEEDS").ok().map_or(20, |s| s.parse().expect("TWOPHASE_SEEDS is a number"))
}

#[test]
fn bundled_scenarios_pass_for_every_seed() {
    let system = Arc::new(TwoPhase);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/twophase");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut failures = Vec::new();
    for path in files {
        let scenario = load(&path);
        assert_eq!(scenario.planted_bug, None, "{}", path.display());
        for seed in 0..seed_count() {
            let run = run_scenario(system.clone(), &scenario, seed);
            let goals: Vec<String> = run.outcome.coverage.iter().filter(|c| c.hit).map(|c| c.goal.clone()).collect();
            eprintln!(
                "{} seed={seed} {} digest={} goals={goals:?}",
                scenario.name,
                run.outcome.failure.as_ref().map_or("PASS".to_string(), |f| format!("FAIL {f}")),
                run.digest()
            );
            if let Some(failure) = run.outcome.failure {
                failures.push(format!("{} seed {seed}: {failure}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn same_seed_same_history() {
    let system = Arc::new(TwoPhase);
    let scenario = load(&file("coordinator_crash"));
    let (first, second) = (run_scenario(system.clone(), &scenario, 3), run_scenario(system.clone(), &scenario, 3));
    assert!(first.outcome.passed(), "{:?}", first.outcome.failure);
    assert_eq!(first.digest(), second.digest());
    assert_eq!(first.history.to_jsonl(), second.history.to_jsonl());
}

/// The planted bugs, the scenario each fails, and the property it breaks.
#[cfg(feature = "mutations")]
const BUGS: [(&str, &str, &str); 5] = [
    ("participant_crash", "vote-unsynced", "T2"),
    ("coordinator_crash", "decision-in-memory", "T1"),
    ("abort_read", "read-uncommitted", "X1"),
    ("coordinator_lying_sync", "restart-trusts-log", "T1"),
    ("coordinator_corrupt_read", "log-without-checksums", "T1"),
];

/// Every scenario passes for every seed with the planted bug `mutation`:
/// `scenarios` by file name, and `faulty`'s with its disk faults left out.
#[cfg(feature = "mutations")]
fn passes_with(mutation: &str, faulty: &str, scenarios: &[&str]) {
    let system = Arc::new(TwoPhase);
    let buggy = |name| Scenario { planted_bug: Some(mutation.to_string()), ..load(&file(name)) };
    let honest = buggy(faulty);
    let honest = Scenario {
        steps: honest
            .steps
            .into_iter()
            .filter(|s| !matches!(s.action, tandem::scenario::Action::Disk { .. }))
            .collect(),
        ..honest
    };
    for scenario in std::iter::once(honest).chain(scenarios.iter().map(|&name| buggy(name))) {
        for seed in 0..seed_count() {
            let run = run_scenario(system.clone(), &scenario, seed);
            assert!(run.outcome.passed(), "{mutation}: {} seed {seed}: {:?}", scenario.name, run.outcome.failure);
        }
    }
}

/// `restart-trusts-log` needs a lying sync: with an honest disk the
/// coordinator's log holds every decision it made, and the same crash
/// passes.
#[cfg(feature = "mutations")]
#[test]
fn only_a_lying_sync_finds_restart_trusts_log() {
    passes_with("restart-trusts-log", "coordinator_lying_sync", &["coordinator_crash"]);
}

/// `log-without-checksums` needs a corrupt read: an honest disk, a crash
/// and a lying sync (which loses a one-byte record whole, never tears it)
/// all read back every record as it was written.
#[cfg(feature = "mutations")]
#[test]
fn only_a_corrupt_read_finds_log_without_checksums() {
    passes_with("log-without-checksums", "coordinator_corrupt_read", &["coordinator_crash", "coordinator_lying_sync"]);
}

#[cfg(feature = "mutations")]
#[test]
fn each_planted_bug_fails_its_scenario() {
    let system = Arc::new(TwoPhase);
    for (name, mutation, code) in BUGS {
        let buggy = Scenario { planted_bug: Some(mutation.to_string()), ..load(&file(name)) };
        for seed in 0..seed_count() {
            let run = run_scenario(system.clone(), &buggy, seed);
            let failure = run.outcome.failure.unwrap_or_else(|| panic!("{mutation} passed {name} with seed {seed}"));
            assert_eq!(failure.code, code, "{mutation} seed {seed}: {failure}");
        }
    }
}

/// The other bug does not trip a scenario: each scenario tests the
/// durability of one write.
#[cfg(feature = "mutations")]
#[test]
fn the_commit_scenario_passes_with_either_bug() {
    let system = Arc::new(TwoPhase);
    for (_, mutation, _) in BUGS {
        let buggy = Scenario { planted_bug: Some(mutation.to_string()), ..load(&file("commit")) };
        for seed in 0..seed_count() {
            let run = run_scenario(system.clone(), &buggy, seed);
            assert!(run.outcome.passed(), "{mutation} seed {seed}: {:?}", run.outcome.failure);
        }
    }
}

/// Exploration finds each planted bug within 500 cases and shrinks it to at
/// most 6 steps (`TWOPHASE_EXPLORE_SEED` picks the exploration seed, 1 by
/// default). Ignored in a debug build: run it with `--release`.
#[cfg(feature = "mutations")]
#[test]
#[cfg_attr(debug_assertions, ignore = "minutes in a debug build: run with --release")]
fn exploration_finds_and_shrinks_every_planted_bug() {
    use tandem_sim::explore::runner::{explore, Plan};
    use tandem_sim::explore::shrink::{shrink, Options};
    use tandem_sim::explore::strategy::Space;

    let seed = std::env::var("TWOPHASE_EXPLORE_SEED")
        .ok()
        .map_or(1, |s| s.parse().expect("TWOPHASE_EXPLORE_SEED is a number"));
    let system = Arc::new(TwoPhase);
    let mut problems = Vec::new();
    for (_, mutation, code) in BUGS {
        let space = Space { planted_bug: Some(mutation.to_string()), ..Space::default() };
        let plan = Plan { jobs: 2, ..Plan::new(seed, 500, space) };
        let runs = explore(&system, &plan, |_| {}).runs;
        let failing = runs.last().filter(|r| r.failure.is_some());
        let Some(failing) = failing else {
            problems.push(format!("{mutation}: not found in 500 cases (seed {seed})"));
            continue;
        };
        let failure = failing.failure.clone().expect("failing");
        assert_eq!(failure.code, code, "{mutation}: {failure}");
        let shrunk = shrink(system.clone(), &failing.case.scenario, &failure, &Options::default());
        eprintln!(
            "{mutation}: found at case {} ({failure}); shrunk to {} steps, {} nodes:\n{}",
            failing.case.number(),
            shrunk.scenario.steps.len(),
            shrunk.scenario.nodes,
            shrunk.scenario.to_toml()
        );
        if shrunk.scenario.steps.len() > 6 {
            problems.push(format!("{mutation}: shrunk to {} steps only", shrunk.scenario.steps.len()));
        }
        // The reproducer replays: same failure, same digest.
        let replay = |s: &Scenario| run_scenario(system.clone(), s, s.seed);
        let (a, b) = (replay(&shrunk.scenario), replay(&shrunk.scenario));
        assert_eq!(a.outcome.failure.as_ref().map(|f| &f.code), Some(&shrunk.failure.code));
        assert_eq!(a.digest(), b.digest());
        // Without the bug, the shrunk scenario passes.
        let fixed = Scenario { planted_bug: None, ..shrunk.scenario.clone() };
        let run = replay(&fixed);
        assert!(run.outcome.passed(), "{mutation}: the correct node fails its reproducer: {:?}", run.outcome.failure);
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Exploration of the correct node finds nothing: every generated scenario
/// is fair to it (`TWOPHASE_CLEAN_CASES` cases, 500 by default).
#[test]
#[cfg_attr(debug_assertions, ignore = "minutes in a debug build: run with --release")]
fn exploration_of_the_correct_node_finds_nothing() {
    use tandem_sim::explore::runner::{explore, Plan};
    use tandem_sim::explore::strategy::Space;

    let cases = std::env::var("TWOPHASE_CLEAN_CASES")
        .ok()
        .map_or(500, |s| s.parse().expect("TWOPHASE_CLEAN_CASES is a number"));
    let seed = std::env::var("TWOPHASE_EXPLORE_SEED")
        .ok()
        .map_or(1, |s| s.parse().expect("TWOPHASE_EXPLORE_SEED is a number"));
    let system = Arc::new(TwoPhase);
    let plan = Plan { jobs: 2, ..Plan::new(seed, cases, Space::default()) };
    let runs = explore(&system, &plan, |_| {}).runs;
    let failing: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            r.failure.as_ref().map(|f| format!("case {}: {f}\n{}", r.case.number(), r.case.scenario.to_toml()))
        })
        .collect();
    eprintln!("{} cases, {} failures", runs.len(), failing.len());
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

#[test]
fn a_read_of_an_aborted_transaction_is_an_elle_anomaly() {
    use tandem::{EventKind, History, Judge, OpResult, Oracle};
    use tandem_twophase::{TwoPhaseOp, TwoPhaseOutput};
    let judge = |read: Vec<u64>| {
        let addrs: Vec<std::net::SocketAddr> = vec!["10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap()];
        let mut history = History::<TwoPhase>::new(&addrs, &Default::default());
        let at = |ms| std::time::Duration::from_millis(ms);
        for node in 0..2 {
            history.push(
                &TwoPhase,
                at(0),
                Some(node),
                EventKind::Started { incarnation: 0, addr: addrs[node as usize] },
            );
        }
        let ops = [(0, TwoPhaseOp::Commit { node: 0, tx: 3 }), (1, TwoPhaseOp::Read { node: 1 })];
        let outputs = [TwoPhaseOutput::Aborted, TwoPhaseOutput::Txs(read)];
        for (id, ((node, op), output)) in ops.into_iter().zip(outputs).enumerate() {
            let id = id as u64;
            history.push(&TwoPhase, at(10 * id + 1), Some(node), EventKind::Invoke { id, step: 0, client: 0, op });
            history.push(
                &TwoPhase,
                at(10 * id + 5),
                Some(node),
                EventKind::Complete { id, result: OpResult::Ok(output) },
            );
        }
        let x1: Vec<_> = TwoPhase.properties().into_iter().filter(|p| p.code == "X1").collect();
        Judge::new(&x1).finish(&history, at(100)).err()
    };
    assert_eq!(judge(vec![]), None, "the aborted tx was not seen");
    let failure = judge(vec![3]).expect("node 1 applied tx 3, which the coordinator answered aborted");
    assert!(failure.detail.starts_with("G1a"), "{failure}");
    assert_eq!(failure.events, vec![2, 3, 4, 5], "the commit and the read, invoked and completed");
}
