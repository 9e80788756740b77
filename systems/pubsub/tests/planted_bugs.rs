//! Each planted bug is caught by the property it breaks, in a scenario a
//! correct node passes. Needs the `mutations` feature
//! (`cargo test -p tandem-pubsub --features mutations`).

#![cfg(feature = "mutations")]

use std::sync::Arc;

use tandem::Scenario;
use tandem_pubsub::PubSub;

/// Runs `text` as written (it must pass), then with `mutation` planted (it
/// must fail with `expected`, the violation's text).
#[track_caller]
fn caught(text: &str, mutation: &str, expected: &str) {
    let mut scenario = Scenario::parse(text, &format!("{mutation}.toml"), &PubSub).unwrap_or_else(|e| panic!("{e}"));
    let clean = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0);
    assert!(clean.outcome.passed(), "a correct node passes: {:?}", clean.outcome.failure);
    scenario.planted_bug = Some(mutation.into());
    scenario.validate(&PubSub).unwrap();
    let failure = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0).outcome.failure;
    let failure = failure.unwrap_or_else(|| panic!("{mutation} is not caught"));
    assert_eq!(failure.to_string(), expected, "{mutation}");
}

#[test]
fn self_delivery_breaks_s1() {
    let text = r#"
nodes = 2
seeds = [0, 1]
duration = "3s"
settle = "1s"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
broadcast = { from = 0 }
"#;
    caught(text, "self-delivery", "S1 no self-delivery: node 0 delivered its own message \"b1\" at 0.008s");
}

#[test]
fn no_dedup_breaks_s2() {
    // The message arrives, then a partition holds its acknowledgement past
    // the idle timeout; after the heal the origin resends it.
    let text = r#"
nodes = 2
seeds = [0, 1]
duration = "10s"
settle = "3s"
[network]
latency = "3ms"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
after = "1s"
broadcast = { from = 0 }
[[step]]
after = "4ms"
partition = { a = [0], b = [1] }
[[step]]
after = "4s"
heal = {}
"#;
    caught(
        text,
        "no-dedup",
        "S2 no duplicates: node 1 (incarnation 0) delivered \"b1\" from node 0 twice, again at 5.182s",
    );
}

#[test]
fn stale_rebind_breaks_l1() {
    let text = r#"
nodes = 2
seeds = [0, 1]
duration = "5s"
settle = "2s"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
rebind = { node = 1 }
"#;
    caught(
        text,
        "stale-rebind",
        "L1 membership convergence: node 0 knows node 1 at 192.168.0.2:7000 but it is at 192.168.0.2:20001",
    );
}

#[test]
fn no_retransmit_breaks_l2() {
    // Sent while a partition holds, past the idle timeout: the message waits
    // in the outbox for the next connection.
    let text = r#"
nodes = 2
seeds = [0, 1]
duration = "10s"
settle = "3s"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
partition = { a = [0], b = [1] }
[[step]]
broadcast = { from = 0 }
[[step]]
after = "4s"
heal = {}
"#;
    caught(text, "no-retransmit", "L2 delivery: node 1 never delivered \"b2\" from node 0");
}

#[test]
fn forget_on_restart_breaks_l2() {
    // Node 2 is down when node 0 broadcasts; node 0 owes it the message
    // after its restart.
    let text = r#"
nodes = 3
duration = "8s"
settle = "3s"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
crash = { node = 2 }
[[step]]
broadcast = { from = 0 }
[[step]]
after = "1s"
restart = { node = 2 }
"#;
    caught(text, "forget-on-restart", "L2 delivery: node 2 never delivered \"b2\" from node 0");
}

#[test]
fn rebind_drops_outbox_breaks_l2_only_with_a_fault_and_a_rebind_on_top() {
    // Node 1 is cut off when node 0 broadcasts; node 0 rebinds before the
    // partition heals, and owes node 1 the message after it.
    let fault_and_rebind = r#"
nodes = 2
duration = "10s"
settle = "3s"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
partition = { a = [0], b = [1] }
[[step]]
broadcast = { from = 0 }
[[step]]
after = "500ms"
rebind = { node = 0 }
[[step]]
after = "3s"
heal = {}
"#;
    caught(fault_and_rebind, "rebind-drops-outbox", "L2 delivery: node 1 never delivered \"b2\" from node 0");
    // Either condition alone is harmless.
    let rebind_only = fault_and_rebind.replace("partition = { a = [0], b = [1] }", "heal = {}");
    let fault_only = fault_and_rebind.replace("rebind = { node = 0 }", "heal = { a = [0], b = [1] }");
    for text in [rebind_only, fault_only] {
        let mut scenario = Scenario::parse(&text, "one.toml", &PubSub).unwrap();
        scenario.planted_bug = Some("rebind-drops-outbox".into());
        let run = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0);
        assert!(run.outcome.passed(), "{text}: {:?}", run.outcome.failure);
    }
}

#[test]
fn version_before_incarnation_breaks_l1_only_after_two_rebinds_a_restart_and_a_rebind() {
    // Node 1 rebinds twice (address version 2), crashes and restarts
    // (incarnation 1, version 0 again), then rebinds (version 1): node 0
    // orders records by version first and keeps the old address.
    let text = r#"
nodes = 2
duration = "12s"
settle = "3s"
[[step]]
await = { converged = true, timeout = "2s" }
[[step]]
rebind = { node = 1 }
[[step]]
after = "500ms"
rebind = { node = 1 }
[[step]]
after = "500ms"
crash = { node = 1 }
[[step]]
after = "500ms"
restart = { node = 1 }
[[step]]
after = "1s"
rebind = { node = 1 }
"#;
    caught(
        text,
        "version-before-incarnation",
        "L1 membership convergence: node 0 knows node 1 at 192.168.0.2:20002 but it is at 192.168.0.2:20003",
    );
    let mut scenario = Scenario::parse(text, "seeds.toml", &PubSub).unwrap();
    for seed in 1..20 {
        let clean = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, seed);
        assert!(clean.outcome.passed(), "seed {seed}: {:?}", clean.outcome.failure);
    }
    scenario.planted_bug = Some("version-before-incarnation".into());
    for seed in 1..20 {
        let failure = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, seed).outcome.failure;
        assert_eq!(failure.map(|f| f.code), Some("L1".to_string()), "seed {seed}");
    }
    // Any condition left out is harmless: one rebind before the crash, no
    // crash, or no rebind after the restart.
    let one_rebind_before = text.replacen("rebind = { node = 1 }", "broadcast = { from = 0 }", 1);
    let no_restart = text
        .replace("crash = { node = 1 }", "broadcast = { from = 0 }")
        .replace("restart = { node = 1 }", "broadcast = { from = 1 }");
    let no_rebind_after = {
        let at = text.rfind("rebind = { node = 1 }").unwrap();
        format!("{}broadcast = {{ from = 0 }}\n", &text[..at])
    };
    for text in [one_rebind_before, no_restart, no_rebind_after] {
        let mut scenario = Scenario::parse(&text, "one.toml", &PubSub).unwrap();
        scenario.planted_bug = Some("version-before-incarnation".into());
        let run = tandem_sim::run_scenario(Arc::new(PubSub), &scenario, 0);
        assert!(run.outcome.passed(), "{text}: {:?}", run.outcome.failure);
    }
}
