//! The `cargo test` API: scenarios from files or code, seeds from the environment.

use std::time::Duration;

use tandem::scenario::{Call, Condition, Step, Timing};
use tandem::{Action, Scenario, True};
use tandem_pubsub::{Condition as Check, Op, PubSub};

const HOT_RELOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/hot_reload.toml");

#[test]
fn a_file_passes() {
    tandem_sim::testing::check_file(PubSub, HOT_RELOAD);
}

#[test]
fn a_scenario_built_in_code_passes() {
    let mut scenario = Scenario::new("built", 3);
    let step = |action| Step::new(Timing::Immediately, action);
    let converged = Condition { node: None, check: Call::of(&Check::Converged(True)) };
    scenario.steps = vec![
        step(Action::Await { condition: converged, timeout: Duration::from_secs(5) }),
        step(Action::Op(Call::of(&Op::Broadcast { from: 2, tag: Some("hello".into()), size: Some(10) }))),
        step(Action::Op(Call::of(&Op::Direct { from: 0, to: 1, tag: None, size: None }))),
    ];
    scenario.expects = vec![
        Condition { node: Some(0), check: Call::of(&Check::ReceivedTags(["hello".to_string()].into())) },
        // The direct message of step 2 is tagged `b2`.
        Condition {
            node: Some(1),
            check: Call::of(&Check::ReceivedTags(["hello".to_string(), "b2".to_string()].into())),
        },
    ];
    tandem_sim::testing::check(PubSub, &scenario);
}

#[test]
fn a_failure_panics_with_the_replay_command() {
    let text = std::fs::read_to_string(HOT_RELOAD).unwrap();
    let mut scenario = Scenario::parse(&text, "wrong.toml", &PubSub).unwrap();
    scenario.name = "testing_api_wrong".into();
    scenario.expects[0].check = Call::of(&Check::Received(7));
    let panic = std::panic::catch_unwind(|| tandem_sim::testing::check(PubSub, &scenario)).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted panic");
    assert!(message.starts_with("FAIL testing_api_wrong seed=0"), "{message}");
    assert!(
        message.contains("reproduce: tandem replay target/tandem/failures/testing_api_wrong-seed0.toml"),
        "{message}"
    );
}
