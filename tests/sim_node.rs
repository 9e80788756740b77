//! The reference node on the simulated network, driven through the Rust API.

mod common;

use std::time::Duration;

use common::{await_for, holds, no_violation, tags, wait, SECOND};
use tandem::cluster::Cluster;
use tandem::node::{NodeEvent, NodeId};
use tandem::scenario::Check;
use tandem::trace::TraceKind;
use tandem_sim::{SimCluster, SimOptions};

fn received(cluster: &SimCluster, node: u32) -> usize {
    cluster.with_record(|r| r.nodes[node as usize].deliveries.len())
}

fn settle_and_check_invariants(cluster: &mut SimCluster) {
    wait(cluster, 3 * SECOND);
    no_violation(cluster);
}

#[test]
fn seed_test_broadcast_rebind_and_direct() {
    let mut cluster = SimCluster::new(SimOptions { seeds: vec![0, 1], ..SimOptions::new(2, 42) });
    let addrs = cluster.with_record(|r| (r.nodes[0].addr, r.nodes[1].addr));
    assert_ne!(addrs.0, addrs.1, "nodes have distinct addresses");
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));

    cluster.broadcast(0, "data-1", 32);
    await_for(&mut cluster, 5 * SECOND, "node 1 to receive", holds(Check::Received(1), Some(1)));
    wait(&mut cluster, SECOND);
    assert_eq!(received(&cluster, 0), 0, "node 0 never receives its own broadcast");
    assert_eq!(tags(&cluster, 1), ["data-1"], "node 1 receives it exactly once");

    let before = cluster.with_record(|r| r.nodes[1].addr);
    cluster.rebind(1, None);
    let after = cluster.with_record(|r| r.nodes[1].addr);
    assert_ne!(before, after, "the rebind moved node 1");
    await_for(&mut cluster, 5 * SECOND, "node 0 to learn the new address", holds(Check::Converged, Some(0)));
    let known = cluster.with_record(|r| r.nodes[0].view[&NodeId(1)].addr);
    assert_eq!(known, after);

    cluster.broadcast(0, "data-2", 32);
    cluster.direct(0, 1, "to-1", 100);
    cluster.direct(1, 0, "to-0", 100);
    await_for(&mut cluster, 5 * SECOND, "node 1's messages", holds(Check::Received(3), Some(1)));
    await_for(&mut cluster, 5 * SECOND, "node 0's direct", holds(Check::Received(1), Some(0)));
    assert_eq!(tags(&cluster, 1), ["data-1", "data-2", "to-1"]);
    assert_eq!(tags(&cluster, 0), ["to-0"]);
    settle_and_check_invariants(&mut cluster);
}

fn partition_then_heal(length: Duration, seed: u64, connections_break: bool) {
    let mut cluster = SimCluster::new(SimOptions::new(3, seed));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));
    cluster.partition(&[0], &[1, 2], false);
    cluster.broadcast(0, "during", 64);
    wait(&mut cluster, length);
    assert_eq!(received(&cluster, 1) + received(&cluster, 2), 0, "nothing crosses a partition");
    cluster.heal(None);
    await_for(&mut cluster, 6 * SECOND, "delivery to 1 after heal", holds(Check::Received(1), Some(1)));
    await_for(&mut cluster, 6 * SECOND, "delivery to 2 after heal", holds(Check::Received(1), Some(2)));
    settle_and_check_invariants(&mut cluster);
    assert_eq!(tags(&cluster, 1), ["during"], "exactly once");
    assert_eq!(tags(&cluster, 2), ["during"], "exactly once");
    let timeouts = cluster.with_record(|r| {
        r.trace.events().iter().filter(|e| matches!(&e.event, TraceKind::Node(NodeEvent::ConnectionDown { reason, .. }) if reason.contains("idle"))).count()
    });
    assert_eq!(timeouts > 0, connections_break, "idle timeouts: {timeouts}");
}

#[test]
fn short_partition_holds_data_until_heal() {
    partition_then_heal(Duration::from_millis(800), 1, false);
}

#[test]
fn long_partition_breaks_connections_and_retransmits_after_heal() {
    partition_then_heal(10 * SECOND, 2, true);
}

#[test]
fn one_way_partition_heals_without_loss_or_duplicates() {
    let mut cluster = SimCluster::new(SimOptions::new(2, 5));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));
    cluster.partition(&[0], &[1], true);
    cluster.broadcast(0, "blocked", 32);
    cluster.broadcast(1, "open", 32);
    wait(&mut cluster, 5 * SECOND);
    assert_eq!(received(&cluster, 1), 0, "0 -> 1 is cut");
    cluster.heal(None);
    await_for(&mut cluster, 6 * SECOND, "delivery after heal", holds(Check::Received(1), None));
    settle_and_check_invariants(&mut cluster);
    assert_eq!(tags(&cluster, 0), ["open"]);
    assert_eq!(tags(&cluster, 1), ["blocked"]);
}

#[test]
fn crashed_node_receives_after_restart() {
    let mut cluster = SimCluster::new(SimOptions::new(3, 3));
    await_for(&mut cluster, 5 * SECOND, "membership", holds(Check::Converged, None));
    cluster.crash(2);
    cluster.broadcast(0, "missed", 32);
    await_for(&mut cluster, 5 * SECOND, "node 1", holds(Check::Received(1), Some(1)));
    wait(&mut cluster, 3 * SECOND);
    cluster.restart(2);
    await_for(&mut cluster, 8 * SECOND, "node 2 after restart", holds(Check::Received(1), Some(2)));
    let incarnation = cluster.with_record(|r| r.nodes[2].deliveries[0].incarnation);
    assert_eq!(incarnation, 1, "the restarted incarnation delivered it");
    settle_and_check_invariants(&mut cluster);
}

#[test]
fn loss_delays_but_never_loses_messages() {
    let mut cluster = SimCluster::new(SimOptions { loss: 0.2, ..SimOptions::new(3, 9) });
    await_for(&mut cluster, 10 * SECOND, "membership", holds(Check::Converged, None));
    for i in 0..20 {
        cluster.broadcast(i % 3, &format!("m{i}"), 256);
    }
    cluster.loss(0.0, None);
    settle_and_check_invariants(&mut cluster);
    for node in 0..3 {
        assert_eq!(received(&cluster, node), 20 - (0..20).filter(|i| i % 3 == node as usize).count());
    }
}
