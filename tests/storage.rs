//! Durable storage in the simulation: what a crash keeps, disk faults, the
//! run id, and exploration of a system that keeps durable state (the
//! guide's journal).

use std::sync::Arc;
use std::time::Duration;

use tandem::history::{EventKind, History, OpResult};
use tandem::scenario::{Action, Scenario};
use tandem_sim::run::options_for;
use tandem_sim::{run_scenario, run_with, Backend, SimOptions};

#[allow(dead_code)]
#[path = "../sim/examples/journal.rs"]
mod journal;
use journal::{Journal, JournalOp, SCENARIO};

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, "storage.toml", &Journal).unwrap_or_else(|e| panic!("{e}"))
}

/// The results of the node's operations, in order.
fn results(history: &History<Journal>) -> Vec<(JournalOp, OpResult<Vec<u64>>)> {
    let mut results = Vec::new();
    for event in history.events() {
        if let EventKind::Complete { id, result } = &event.event {
            results.push((history.invocation(*id).expect("invoked").clone(), result.clone()));
        }
    }
    results
}

#[test]
fn synced_entries_survive_a_crash_and_unsynced_ones_do_not() {
    let scenario = parse(SCENARIO);
    for seed in 0..8 {
        let run = run_scenario(Arc::new(Journal), &scenario, seed);
        assert!(run.outcome.passed(), "seed {seed}: {:?}", run.outcome.failure);
    }
}

#[test]
fn an_acknowledgement_before_the_sync_is_caught_after_a_crash() {
    let text = r#"
system = "journal"
nodes = 1
duration = "2s"
settle = "500ms"
[[step]]
wait = "1s"
append = { node = 0, entry = 5 }
[[step]]
crash = { node = 0 }
[[step]]
restart = { node = 0 }
[[step]]
wait = "1s"
read = { node = 0 }
"#;
    let mut scenario = parse(text);
    assert!(run_scenario(Arc::new(Journal), &scenario, 0).outcome.passed());
    scenario.planted_bug = Some("ack-unsynced".into());
    let failure = run_scenario(Arc::new(Journal), &scenario, 0).outcome.failure.expect("the planted bug is caught");
    assert_eq!(failure.code, "J1");
    assert!(failure.to_string().contains("lost acknowledged entry 5"), "{failure}");
}

#[test]
fn a_crash_during_a_sync_loses_the_entry_and_one_after_it_keeps_it() {
    let sync_latency = Duration::from_millis(10);
    for backend in Backend::ALL {
        for (crash_after, kept) in [("5ms", "[]"), ("15ms", "[5]")] {
            let text = format!(
                r#"
system = "journal"
nodes = 1
duration = "2s"
settle = "500ms"
[[step]]
at = "1s"
append = {{ node = 0, entry = 5 }}
[[step]]
after = "{crash_after}"
crash = {{ node = 0 }}
[[step]]
restart = {{ node = 0 }}
[[step]]
wait = "500ms"
read = {{ node = 0 }}
[[step]]
expect = {{ node = 0, journal = {kept} }}
"#
            );
            let scenario = parse(&text);
            let options = SimOptions { sync_latency, backend, ..options_for(&Journal, &scenario, 0) };
            let run = run_with(Arc::new(Journal), &scenario, options);
            assert!(run.outcome.passed(), "{backend}, crash after {crash_after}: {:?}", run.outcome.failure);
        }
    }
}

#[test]
fn disk_faults_fail_syncs_fill_the_disk_and_slow_it() {
    let text = r#"
system = "journal"
nodes = 1
duration = "3s"
settle = "500ms"
[[step]]
disk = { node = 0, fault = "fail-sync" }
[[step]]
wait = "1s"
append = { node = 0, entry = 1 }
[[step]]
disk = { node = 0, fault = "full" }
[[step]]
wait = "1s"
append = { node = 0, entry = 2, sync = false }
[[step]]
disk = { node = 0, fault = "slow", delay = "40ms" }
[[step]]
wait = "1s"
append = { node = 0, entry = 3 }
[[step]]
disk = { node = 0, fault = "none" }
[[step]]
wait = "1s"
read = { node = 0 }
"#;
    let run = run_scenario(Arc::new(Journal), &parse(text), 0);
    assert!(run.outcome.passed(), "{:?}", run.outcome.failure);
    let results = results(&run.history);
    assert!(matches!(&results[0].1, OpResult::Failed(why) if why.contains("sync")), "{:?}", results[0]);
    assert!(matches!(&results[1].1, OpResult::Failed(why) if why.contains("full")), "{:?}", results[1]);
    assert_eq!(results[2].1, OpResult::Ok(vec![3]), "the failed sync dropped entry 1");
    assert_eq!(results[3].1, OpResult::Ok(vec![3]));
    // The slow append took three disk operations of 40 ms each, and its sync's latency.
    let times: Vec<Duration> = run
        .history
        .events()
        .iter()
        .filter(|e| matches!(&e.event, EventKind::Invoke { step: 5, .. } | EventKind::Complete { id: 2, .. }))
        .map(|e| e.at())
        .collect();
    let sync_latency = tandem_sim::options::default_profile().sync_latency();
    assert_eq!(times[1] - times[0], Duration::from_millis(120) + sync_latency, "{times:?}");
}

#[test]
fn every_node_gets_the_same_run_id_a_function_of_the_seed() {
    let text = "system = \"journal\"\nnodes = 3\nduration = \"1s\"\nsettle = \"100ms\"\n[[step]]\ncrash = { node = 1 }\n[[step]]\nrestart = { node = 1 }\n";
    let ids = |seed| {
        let run = run_scenario(Arc::new(Journal), &parse(text), seed);
        let ids: Vec<u64> = run
            .history
            .events()
            .iter()
            .filter_map(|e| if let EventKind::Observe(id) = e.event { Some(id) } else { None })
            .collect();
        assert_eq!(ids.len(), 4, "three starts and a restart");
        assert!(ids.iter().all(|&id| id == ids[0]), "{ids:?}");
        ids[0]
    };
    assert_eq!(ids(3), ids(3));
    assert_ne!(ids(3), ids(4));
}

#[test]
fn a_disk_step_round_trips_and_bad_ones_are_located() {
    let text = "system = \"journal\"\nnodes = 2\n[[step]]\ndisk = { node = 1, fault = \"slow\", delay = \"5ms\" }\n";
    let scenario = parse(text);
    assert_eq!(Scenario::parse(&scenario.to_toml(), "again.toml", &Journal).unwrap(), scenario);
    let error = |step: &str| {
        let text = format!("system = \"journal\"\nnodes = 2\n[[step]]\n{step}\n");
        Scenario::parse(&text, "bad.toml", &Journal).unwrap_err().to_string()
    };
    assert!(
        error("disk = { node = 0, fault = \"melted\" }").starts_with("bad.toml:4:"),
        "{}",
        error("disk = { node = 0, fault = \"melted\" }")
    );
    assert!(error("disk = { node = 0, fault = \"melted\" }").contains("fail-sync"));
    assert!(error("disk = { node = 0, fault = \"slow\" }").contains("needs a `delay`"));
    assert!(error("disk = { node = 0, fault = \"full\", delay = \"1ms\" }").contains("only for a `slow` disk"));
    assert!(error("disk = { node = 2, fault = \"full\" }").contains("node"));
}

/// Exploration draws disk faults for a system with the storage capability,
/// and finds the journal's planted bug with crashes.
#[test]
#[cfg_attr(debug_assertions, ignore = "a minute in a debug build: run with --release")]
fn exploration_draws_disk_faults_and_finds_an_unsynced_acknowledgement() {
    use tandem_sim::explore::runner::{explore, Plan};
    use tandem_sim::explore::shrink::{shrink, Options};
    use tandem_sim::explore::strategy::Space;

    let system = Arc::new(Journal);
    let space = Space { nodes: 1..=3, planted_bug: Some("ack-unsynced".into()), ..Space::default() };
    let plan = Plan { jobs: 2, ..Plan::new(1, 300, space) };
    let runs = explore(&system, &plan, |_| {}).runs;
    assert!(
        runs.iter().any(|r| r.case.scenario.steps.iter().any(|s| matches!(s.action, Action::Disk { .. }))),
        "no case drew a disk fault"
    );
    let failing = runs.last().filter(|r| r.failure.is_some()).expect("ack-unsynced found in 300 cases");
    let failure = failing.failure.clone().expect("failing");
    assert_eq!(failure.code, "J1");
    let shrunk = shrink(system.clone(), &failing.case.scenario, &failure, &Options::default());
    assert!(shrunk.scenario.steps.len() <= 6, "shrunk to\n{}", shrunk.scenario.to_toml());
}
