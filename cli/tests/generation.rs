//! Where a new generic action must be handled, a test or the compiler says
//! so: the model's, the executor's and the backends' matches are exhaustive,
//! the parser and writer are checked over `Action::NAMES` (the pub/sub
//! scenario-format tests), and this test fails until the explorer draws a
//! new action.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use tandem::scenario::Action;
use tandem::System;
use tandem_sim::explore::strategy::{scenario, Space};

/// The generic actions in 300 drawn scenarios.
fn drawn<S: System>(system: S) -> BTreeSet<&'static str> {
    let (system, mut runner) = (Arc::new(system), TestRunner::deterministic());
    let strategy = scenario(&system, &Space::default());
    let steps = (0..300).flat_map(|_| strategy.new_tree(&mut runner).expect("a scenario").current().steps);
    steps.filter_map(|step| Action::NAMES.into_iter().find(|&name| name == step.action.name())).collect()
}

/// Every generic action but those named (and `expect`, which exploration
/// never draws: a case checks properties, not expectations).
fn every_but(without: &[&str]) -> BTreeSet<&'static str> {
    Action::NAMES.into_iter().filter(|name| !without.contains(name) && *name != "expect").collect()
}

#[test]
fn exploration_draws_every_generic_action_a_system_can_take() {
    // Pauses and clock changes only for a system that declares it survives them.
    let undeclared = ["pause", "clock"];
    assert_eq!(
        drawn(tandem_pubsub::PubSub),
        every_but(&["disk", undeclared[0], undeclared[1]]),
        "pub/sub can rebind, has no storage"
    );
    let twophase = every_but(&["rebind", "await", undeclared[0], undeclared[1]]);
    assert_eq!(
        drawn(tandem_twophase::TwoPhase),
        twophase,
        "two-phase has storage, cannot rebind, has no ready condition"
    );
}

#[test]
fn exploration_draws_pauses_and_clock_changes_for_a_system_that_survives_them() {
    let primary = drawn(tandem_primary::Primary);
    assert!(primary.contains("pause") && primary.contains("clock"), "{primary:?}");
}
