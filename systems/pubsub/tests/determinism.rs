//! Same seed, same build => the same history digest, across processes.
//!
//! The parent test re-runs this test binary as child processes (filtered to
//! `child_prints_digest`), each of which runs the scenario once and prints
//! its digest, so no state can leak between the runs being compared.

use std::process::Command;
use std::sync::Arc;

use tandem::Scenario;
use tandem_pubsub::PubSub;

const CHILD_SEED: &str = "TANDEM_DETERMINISM_SEED";

/// Random latency, loss, a partition, a crash, a restart and a rebind: every
/// source of scheduling and randomness the simulation has.
const SCENARIO: &str = r#"
name = "determinism"
nodes = 4
duration = "12s"
settle = "4s"
[network]
latency = "1ms..30ms"
loss = 0.05
[[step]]
await = { converged = true, timeout = "5s" }
[[step]]
broadcast = { from = 0, tag = "a" }
[[step]]
partition = { a = [0, 1], b = [2, 3] }
[[step]]
direct = { from = 1, to = 3, tag = "d" }
[[step]]
after = "3s"
heal = {}
[[step]]
crash = { node = 2 }
[[step]]
broadcast = { from = 3, tag = "b", size = 5000 }
[[step]]
after = "1s"
restart = { node = 2 }
[[step]]
rebind = { node = 1 }
[[step]]
broadcast = { from = 1, tag = "c" }
"#;

fn digest(seed: u64) -> String {
    let scenario = Scenario::parse(SCENARIO, "determinism.toml", &PubSub).expect("valid scenario");
    let run = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, seed);
    assert!(run.outcome.passed(), "seed {seed}: {:?}", run.outcome.failure);
    run.digest().to_string()
}

/// Runs one seed in a fresh process and returns the digest it printed.
fn digest_in_child(seed: u64) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args(["--exact", "child_prints_digest", "--nocapture", "--test-threads=1"])
        .env(CHILD_SEED, seed.to_string())
        .output()
        .expect("spawn the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    // The digest may share a line with the test harness's own output.
    let start = stdout.find("DIGEST=").unwrap_or_else(|| panic!("child printed no digest: {stdout}")) + 7;
    stdout[start..start + 16].to_string()
}

#[test]
fn child_prints_digest() {
    // Only does work when spawned by the parent test below.
    if let Ok(seed) = std::env::var(CHILD_SEED) {
        println!("DIGEST={}", digest(seed.parse().expect("numeric seed")));
    }
}

#[test]
fn same_seed_same_digest_in_separate_processes() {
    for seed in [1, 7] {
        let first = digest_in_child(seed);
        let second = digest_in_child(seed);
        assert_eq!(first, second, "seed {seed} diverged between processes");
        assert_eq!(first, digest(seed), "seed {seed} diverged in-process");
    }
}

#[test]
fn different_seeds_give_different_digests() {
    assert_ne!(digest(1), digest(2));
}
