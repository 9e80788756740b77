//! The `cargo test` API: scenarios from files or code, seeds from the environment.

use tandem::scenario::{Action, Check, Condition, Scenario, Step, Timing};

#[test]
fn a_file_passes() {
    tandem_sim::testing::check_file(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/hot_reload.toml"));
}

#[test]
fn a_scenario_built_in_code_passes() {
    let mut scenario = Scenario::new("built", 3);
    let step = |action| Step { timing: Timing::Immediately, action, line: 0 };
    scenario.steps = vec![
        step(Action::Await { condition: Condition { node: None, check: Check::Converged }, timeout: std::time::Duration::from_secs(5) }),
        step(Action::Broadcast { from: 2, tag: "hello".into(), size: 10 }),
    ];
    scenario.expects = vec![Condition { node: Some(0), check: Check::ReceivedTags(["hello".to_string()].into()) }];
    tandem_sim::testing::check(&scenario);
}

#[test]
fn a_failure_panics_with_the_replay_command() {
    let mut scenario = Scenario::parse(include_str!("../scenarios/hot_reload.toml"), "wrong.toml").unwrap();
    scenario.name = "testing_api_wrong".into();
    scenario.expects[0].check = Check::Received(7);
    let panic = std::panic::catch_unwind(|| tandem_sim::testing::check(&scenario)).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted panic");
    assert!(message.starts_with("FAIL testing_api_wrong seed=0"), "{message}");
    assert!(message.contains("reproduce: tandem replay target/tandem/failures/testing_api_wrong-seed0.toml"), "{message}");
}
