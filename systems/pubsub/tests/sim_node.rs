//! The reference node on the simulated network, driven through the
//! `Cluster` API.

mod common;

use std::time::Duration;

use common::{await_for, broadcast, cluster, converged, direct, holds, no_violation, received, tags, wait, SECOND};
use tandem::engine::cluster::{Cluster, Setup};
use tandem::scenario::{LinkChange, Network, Scope};
use tandem::EventKind;
use tandem_pubsub::node::NodeEvent;
use tandem_pubsub::{Condition, Observation, PubSub};
use tandem_sim::{SimOptions, TurmoilCluster};

fn settle_and_check_properties(cluster: &mut TurmoilCluster<PubSub>) {
    wait(cluster, 3 * SECOND);
    no_violation(cluster);
}

#[test]
fn seed_test_broadcast_rebind_and_direct() {
    let mut cluster = cluster(SimOptions::of(Setup { seeds: vec![0, 1], ..Setup::new(2, 42) }));
    let addrs = cluster.recorder().read(|h| (h.node(0).addr, h.node(1).addr));
    assert_ne!(addrs.0, addrs.1, "nodes have distinct addresses");
    await_for(&mut cluster, 5 * SECOND, "membership", holds(converged(), None));

    broadcast(&mut cluster, 0, "data-1", 32);
    await_for(&mut cluster, 5 * SECOND, "node 1 to receive", holds(Condition::Received(1), Some(1)));
    wait(&mut cluster, SECOND);
    assert_eq!(received(&cluster, 0), 0, "node 0 never receives its own broadcast");
    assert_eq!(tags(&cluster, 1), ["data-1"], "node 1 receives it exactly once");

    let before = cluster.recorder().read(|h| h.node(1).addr);
    cluster.rebind(1, None);
    let after = cluster.recorder().read(|h| h.node(1).addr);
    assert_ne!(before, after, "the rebind moved node 1");
    await_for(&mut cluster, 5 * SECOND, "node 0 to learn the new address", holds(converged(), Some(0)));
    let known = cluster.recorder().read(|h| h.state().node(0).view[&1]);
    assert_eq!(known, after);

    broadcast(&mut cluster, 0, "data-2", 32);
    direct(&mut cluster, 0, 1, "to-1", 100);
    direct(&mut cluster, 1, 0, "to-0", 100);
    await_for(&mut cluster, 5 * SECOND, "node 1's messages", holds(Condition::Received(3), Some(1)));
    await_for(&mut cluster, 5 * SECOND, "node 0's direct", holds(Condition::Received(1), Some(0)));
    assert_eq!(tags(&cluster, 1), ["data-1", "data-2", "to-1"]);
    assert_eq!(tags(&cluster, 0), ["to-0"]);
    settle_and_check_properties(&mut cluster);
}

fn partition_then_heal(length: Duration, oneway: bool, seed: u64, connections_break: bool) {
    let mut cluster = cluster(SimOptions::new(3, seed));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(converged(), None));
    cluster.set_links(&LinkChange::Partition { oneway }, &Scope::Between { a: vec![0], b: vec![1, 2] });
    let cut = cluster.recorder().read(|h| (h.links().link(0, 1).partitioned, h.links().link(1, 0).partitioned));
    assert_eq!(cut, (true, !oneway), "a partition made by hand is in the history");
    broadcast(&mut cluster, 0, "during", 64);
    wait(&mut cluster, length);
    assert_eq!(received(&cluster, 1) + received(&cluster, 2), 0, "nothing crosses a partition");
    cluster.set_links(&LinkChange::Heal, &Scope::Every);
    await_for(&mut cluster, 6 * SECOND, "delivery to 1 after heal", holds(Condition::Received(1), Some(1)));
    await_for(&mut cluster, 6 * SECOND, "delivery to 2 after heal", holds(Condition::Received(1), Some(2)));
    settle_and_check_properties(&mut cluster);
    assert_eq!(tags(&cluster, 1), ["during"], "exactly once");
    assert_eq!(tags(&cluster, 2), ["during"], "exactly once");
    let timeouts = cluster.recorder().read(|h| {
        h.events()
            .iter()
            .filter(|e| {
                matches!(&e.event, EventKind::Observe(Observation::Node(NodeEvent::ConnectionDown { reason, .. })) if reason.contains("idle"))
            })
            .count()
    });
    assert_eq!(timeouts > 0, connections_break, "idle timeouts: {timeouts}");
}

#[test]
fn short_partition_holds_data_until_heal() {
    partition_then_heal(Duration::from_millis(800), false, 1, false);
}

#[test]
fn long_partition_breaks_connections_and_retransmits_after_heal() {
    partition_then_heal(10 * SECOND, false, 2, true);
}

#[test]
fn short_one_way_partition_holds_data_until_heal() {
    partition_then_heal(Duration::from_millis(800), true, 3, false);
}

#[test]
fn long_one_way_partition_breaks_connections_and_retransmits_after_heal() {
    partition_then_heal(10 * SECOND, true, 4, true);
}

#[test]
fn one_way_partition_heals_without_loss_or_duplicates() {
    let mut cluster = cluster(SimOptions::new(2, 5));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(converged(), None));
    cluster.set_links(&LinkChange::Partition { oneway: true }, &Scope::Between { a: vec![0], b: vec![1] });
    broadcast(&mut cluster, 0, "blocked", 32);
    broadcast(&mut cluster, 1, "open", 32);
    wait(&mut cluster, 5 * SECOND);
    assert_eq!(received(&cluster, 1), 0, "0 -> 1 is cut");
    cluster.set_links(&LinkChange::Heal, &Scope::Every);
    await_for(&mut cluster, 6 * SECOND, "delivery after heal", holds(Condition::Received(1), None));
    settle_and_check_properties(&mut cluster);
    assert_eq!(tags(&cluster, 0), ["open"]);
    assert_eq!(tags(&cluster, 1), ["blocked"]);
}

#[test]
fn crashed_node_receives_after_restart() {
    let mut cluster = cluster(SimOptions::new(3, 3));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(converged(), None));
    cluster.crash(2);
    assert_eq!(cluster.recorder().read(|h| h.state().node(2).view.len()), 0, "a crash clears the view");
    broadcast(&mut cluster, 0, "missed", 32);
    await_for(&mut cluster, 5 * SECOND, "node 1", holds(Condition::Received(1), Some(1)));
    wait(&mut cluster, 3 * SECOND);
    cluster.restart(2);
    await_for(&mut cluster, 8 * SECOND, "node 2 after restart", holds(Condition::Received(1), Some(2)));
    let (incarnation, goals) = cluster.recorder().read(|h| (h.node(2).incarnation, h.state().goals()));
    assert_eq!(incarnation, 1);
    assert!(goals.after_restart, "the restarted incarnation delivered it");
    settle_and_check_properties(&mut cluster);
}

#[test]
fn loss_delays_but_never_loses_messages() {
    let mut cluster =
        cluster(SimOptions::of(Setup { network: Network { loss: 0.2, ..Network::default() }, ..Setup::new(3, 9) }));
    await_for(&mut cluster, 10 * SECOND, "membership", holds(converged(), None));
    for i in 0..20 {
        broadcast(&mut cluster, i % 3, &format!("m{i}"), 256);
    }
    cluster.set_links(&LinkChange::Loss(0.0), &Scope::Every);
    settle_and_check_properties(&mut cluster);
    for node in 0..3 {
        assert_eq!(received(&cluster, node), 20 - (0..20).filter(|i| i % 3 == node).count() as u64);
    }
}

#[test]
fn the_node_events_are_in_the_history() {
    let mut cluster = cluster(SimOptions::new(2, 11));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(converged(), None));
    broadcast(&mut cluster, 0, "x", 32);
    await_for(&mut cluster, 5 * SECOND, "delivery", holds(Condition::Received(1), Some(1)));
    wait(&mut cluster, SECOND);
    let history = cluster.into_history();
    let node_events = |node| {
        history
            .events()
            .iter()
            .filter(move |e| e.node == Some(node))
            .filter_map(|e| match &e.event {
                EventKind::Observe(Observation::Node(event)) => Some(event.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let zero = node_events(0);
    assert!(zero.iter().any(|e| matches!(e, NodeEvent::Listening { .. })), "{zero:?}");
    assert!(zero.iter().any(|e| matches!(e, NodeEvent::MessageSent { to, .. } if to.0 == 1)), "{zero:?}");
    assert!(zero.iter().any(|e| matches!(e, NodeEvent::AckReceived { .. })), "{zero:?}");
    let one = node_events(1);
    assert!(one.iter().any(|e| matches!(e, NodeEvent::MessageReceived { duplicate: false, .. })), "{one:?}");
}
