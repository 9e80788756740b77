//! The messaging property set and the pub/sub conditions, judged on
//! hand-built histories.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tandem::scenario::{LinkChange, Scope};
use tandem::{Action, EventKind, History, Judge, NodeIdx, OpResult, Oracle, True, Violation};
use tandem_pubsub::node::{MessageId, MessageKind, NodeEvent, NodeId, PeerInfo, PeerMap};
use tandem_pubsub::payload::digest_for;
use tandem_pubsub::{Condition, NodeOutcome, Observation, Op, Output, PubSub};

fn addr(node: NodeIdx, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, node as u8 + 1], port))
}

fn id(origin: NodeIdx, incarnation: u64, seq: u64) -> MessageId {
    MessageId { origin: NodeId(origin), incarnation, seq }
}

/// A history under construction, one millisecond per event.
struct Run {
    history: History<PubSub>,
    ms: u64,
}

impl Run {
    /// `nodes` nodes, all started (incarnation 0) at port 7000.
    fn new(nodes: u32) -> Run {
        let addrs: Vec<SocketAddr> = (0..nodes).map(|n| addr(n, 7000)).collect();
        let mut run = Run { history: History::new(&addrs, &Default::default()), ms: 0 };
        for n in 0..nodes {
            run.push(Some(n), EventKind::Started { incarnation: 0, addr: addrs[n as usize] });
        }
        run
    }

    fn push(&mut self, node: Option<NodeIdx>, event: EventKind<PubSub>) {
        self.ms += 1;
        self.history.push(&PubSub, Duration::from_millis(self.ms), node, event);
    }

    /// `node` now knows `members`, each at its current address.
    fn view(&mut self, node: NodeIdx, members: &[NodeIdx]) {
        let peers: PeerMap = members
            .iter()
            .map(|&m| {
                (
                    NodeId(m),
                    PeerInfo {
                        addr: self.history.node(m).addr,
                        incarnation: self.history.node(m).incarnation,
                        version: 0,
                    },
                )
            })
            .collect();
        self.push(Some(node), EventKind::Observe(Observation::View { peers }));
    }

    /// Every node knows every other one.
    fn converge(&mut self) {
        let nodes = self.history.nodes().len() as NodeIdx;
        for n in 0..nodes {
            let others: Vec<NodeIdx> = (0..nodes).filter(|&m| m != n).collect();
            self.view(n, &others);
        }
    }

    /// The harness invokes `op` for step `step` and the node answers.
    fn send(&mut self, step: usize, op: Op, answer: OpResult<Output>) -> u64 {
        let node = op.from();
        let op_id = self.history.next_op_id();
        self.push(Some(node), EventKind::Invoke { id: op_id, step, client: 0, op });
        self.push(Some(node), EventKind::Complete { id: op_id, result: answer });
        op_id
    }

    /// A broadcast with default size and tag `b<step>`, accepted as `message`.
    fn broadcast(&mut self, step: usize, from: NodeIdx, message: MessageId) {
        let op = Op::Broadcast { from, tag: None, size: None };
        self.send(step, op, OpResult::Ok(Output::Sent { id: message, dropped: Vec::new() }));
    }

    fn direct(&mut self, step: usize, from: NodeIdx, to: NodeIdx, message: MessageId) {
        let op = Op::Direct { from, to, tag: None, size: None };
        self.send(step, op, OpResult::Ok(Output::Sent { id: message, dropped: Vec::new() }));
    }

    /// `node` delivers exactly what was sent for a step-`step` message of
    /// default size.
    fn deliver(&mut self, node: NodeIdx, message: MessageId, kind: MessageKind, step: usize) {
        let tag = format!("b{step}");
        let digest = digest_for(message.origin.0, &tag, 32);
        self.deliver_as(node, message, kind, &tag, digest);
    }

    fn deliver_as(&mut self, node: NodeIdx, message: MessageId, kind: MessageKind, tag: &str, digest: u64) {
        let observation = Observation::Delivered { id: message, kind, tag: tag.into(), size: 32, digest };
        self.push(Some(node), EventKind::Observe(observation));
    }

    fn crash(&mut self, node: NodeIdx) {
        self.push(Some(node), EventKind::Crashed);
    }

    fn restart(&mut self, node: NodeIdx) {
        let life = self.history.node(node).clone();
        self.push(Some(node), EventKind::Started { incarnation: life.incarnation + 1, addr: life.addr });
    }

    fn step(&mut self, index: usize, action: Action) {
        self.push(None, EventKind::Step { index, action });
    }

    /// The first violation of every property, safety then liveness.
    fn judge(&self) -> Result<Judge<PubSub>, Violation> {
        let mut judge = Judge::new(&PubSub.properties());
        judge.finish(&self.history, Duration::from_millis(self.ms))?;
        Ok(judge)
    }

    #[track_caller]
    fn fails(&self, expected: &str) {
        match self.judge() {
            Ok(_) => panic!("passed, expected {expected}"),
            Err(violation) => assert_eq!(violation.to_string(), expected),
        }
    }

    #[track_caller]
    fn passes(&self) -> Judge<PubSub> {
        self.judge().unwrap_or_else(|v| panic!("{v}"))
    }

    /// Which coverage goals were hit.
    fn hits(&self) -> Vec<String> {
        self.passes().coverage().into_iter().filter(|c| c.hit).map(|c| c.goal).collect()
    }

    fn check(&self, node: NodeIdx, condition: Condition) -> Result<(), String> {
        PubSub.check(&self.history, node, &condition)
    }
}

#[test]
fn the_property_set_has_the_codes_and_names_of_the_spec() {
    let names: Vec<String> =
        PubSub.properties().iter().map(|p| format!("{} {} ({})", p.code, p.name, p.kind_name())).collect();
    assert_eq!(
        names,
        [
            "S1 no self-delivery (always)",
            "S2 no duplicates (always)",
            "S3 integrity (always)",
            "S4 addressing (always)",
            "L1 membership convergence (eventually)",
            "L2 delivery (eventually)",
            "G1 delivered after a restart (sometimes)",
            "G2 delivered across a healed partition (sometimes)",
            "G3 delivered after a rebind (sometimes)",
            "G4 a node restarted after rebinding twice (sometimes)",
            "G5 a node that restarted after rebinding twice rebound again (sometimes)",
        ]
    );
}

#[test]
fn a_correct_run_passes_and_reaches_no_goal() {
    let mut run = Run::new(3);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.direct(2, 1, 2, id(1, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.deliver(2, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.deliver(2, id(1, 0, 0), MessageKind::Direct, 2);
    let judge = run.passes();
    let coverage = judge.coverage();
    assert_eq!(coverage.len(), 5);
    assert!(coverage.iter().all(|c| !c.hit), "{coverage:?}");
}

#[test]
fn s1_self_delivery() {
    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(0, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.fails("S1 no self-delivery: node 0 delivered its own message \"b1\" at 0.007s");
}

#[test]
fn s2_duplicates_count_per_incarnation() {
    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.crash(1);
    run.restart(1);
    run.view(1, &[0]);
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    assert_eq!(run.hits(), ["G1 delivered after a restart"], "a new incarnation may deliver it again");
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.fails("S2 no duplicates: node 1 (incarnation 1) delivered \"b1\" from node 0 twice, again at 0.012s");
}

#[test]
fn s3_a_message_never_sent() {
    let mut run = Run::new(2);
    run.converge();
    run.deliver(1, id(0, 0, 5), MessageKind::Broadcast, 1);
    run.fails("S3 integrity: node 1 delivered \"b1\" from node 0, which node 0 never sent, at 0.005s");
}

#[test]
fn s3_tag_payload_and_kind_come_from_the_harness() {
    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    let right = digest_for(0, "b1", 32);
    run.deliver_as(1, id(0, 0, 0), MessageKind::Broadcast, "b2", right);
    run.fails("S3 integrity: node 1 delivered message 0/0 from node 0 as \"b2\" but \"b1\" was sent (or its payload differs) at 0.007s");

    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver_as(1, id(0, 0, 0), MessageKind::Broadcast, "b1", digest_for(0, "b1", 31));
    run.fails("S3 integrity: node 1 delivered message 0/0 from node 0 as \"b1\" but \"b1\" was sent (or its payload differs) at 0.007s");

    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Direct, 1);
    run.fails("S3 integrity: node 1 delivered message 0/0 from node 0 as \"b1\" but \"b1\" was sent (or its payload differs) at 0.007s");
}

#[test]
fn s3_a_delivery_observed_before_the_send_completed_is_judged_after() {
    // On a real network the origin's answer and a delivery can race.
    let mut run = Run::new(2);
    run.converge();
    let op = run.history.next_op_id();
    run.push(
        Some(0),
        EventKind::Invoke { id: op, step: 1, client: 0, op: Op::Broadcast { from: 0, tag: None, size: None } },
    );
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.push(
        Some(0),
        EventKind::Complete { id: op, result: OpResult::Ok(Output::Sent { id: id(0, 0, 0), dropped: Vec::new() }) },
    );
    run.passes();
    // Judged after the completion: a different message is still caught.
    let op = run.history.next_op_id();
    run.push(
        Some(0),
        EventKind::Invoke { id: op, step: 2, client: 0, op: Op::Broadcast { from: 0, tag: None, size: None } },
    );
    run.deliver(1, id(0, 0, 7), MessageKind::Broadcast, 2);
    run.push(
        Some(0),
        EventKind::Complete { id: op, result: OpResult::Ok(Output::Sent { id: id(0, 0, 1), dropped: Vec::new() }) },
    );
    run.fails("S3 integrity: node 1 delivered \"b2\" from node 0, which node 0 never sent, at 0.009s");
}

#[test]
fn s3_a_send_cut_short_by_a_crash_may_have_gone_out() {
    let mut run = Run::new(2);
    run.converge();
    let op = run.history.next_op_id();
    run.push(
        Some(0),
        EventKind::Invoke { id: op, step: 1, client: 0, op: Op::Broadcast { from: 0, tag: None, size: None } },
    );
    run.push(Some(0), EventKind::Complete { id: op, result: OpResult::Unknown("crashed".into()) });
    run.crash(0);
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.passes();
    run.deliver(1, id(0, 0, 1), MessageKind::Broadcast, 2);
    run.fails("S3 integrity: node 1 delivered \"b2\" from node 0, which node 0 never sent, at 0.009s");
}

#[test]
fn s4_addressing_uses_the_invoked_addressee() {
    let mut run = Run::new(3);
    run.converge();
    run.direct(1, 0, 2, id(0, 0, 0));
    run.deliver(2, id(0, 0, 0), MessageKind::Direct, 1);
    run.passes();
    run.deliver(1, id(0, 0, 0), MessageKind::Direct, 1);
    run.fails("S4 addressing: node 1 delivered direct message \"b1\" from node 0 addressed to node 2 at 0.010s");
}

#[test]
fn l2_holds_a_broadcast_to_the_view_observed_when_it_was_sent() {
    let mut run = Run::new(4);
    run.view(1, &[0, 2, 3]);
    run.view(2, &[0, 1, 3]);
    run.view(3, &[0, 1, 2]);
    // Node 0's view observed before the send: nodes 1 and 2 (not 3).
    run.view(0, &[1, 2]);
    run.broadcast(1, 0, id(0, 0, 0));
    // The node claims (in its own events) that it sent only to node 1.
    run.push(Some(0), EventKind::Observe(Observation::Node(NodeEvent::MessageSent { id: id(0, 0, 0), to: NodeId(1) })));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.view(0, &[1, 2, 3]);
    run.fails("L2 delivery: node 2 never delivered \"b1\" from node 0");
    run.deliver(2, id(0, 0, 0), MessageKind::Broadcast, 1);
    // Node 3 was not in the observed view: no obligation.
    run.passes();
}

#[test]
fn l1_and_l2_name_the_node_and_the_send_they_concern() {
    let mut run = Run::new(3);
    run.converge();
    let invoked = run.history.events().len();
    run.direct(1, 0, 2, id(0, 0, 0));
    let violation = run.judge().err().expect("node 2 owes a delivery");
    assert_eq!((violation.code.as_str(), violation.node, violation.events.clone()), ("L2", Some(2), vec![invoked]));
    assert!(matches!(run.history.events()[invoked].event, EventKind::Invoke { .. }), "it names the send's invocation");

    let mut run = Run::new(3);
    run.view(0, &[1, 2]);
    run.view(1, &[0, 2]);
    run.view(2, &[0]);
    let violation = run.judge().err().expect("node 2 does not know node 1");
    assert_eq!(
        (violation.to_string(), violation.node),
        ("L1 membership convergence: node 2 does not know node 1".to_string(), Some(2))
    );
}

#[test]
fn l2_views_observed_after_the_send_do_not_count() {
    let mut run = Run::new(3);
    run.view(0, &[1]);
    run.broadcast(1, 0, id(0, 0, 0));
    run.view(0, &[1, 2]);
    run.view(1, &[0, 2]);
    run.view(2, &[0, 1]);
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.passes();
}

#[test]
fn l2_direct_messages() {
    let mut run = Run::new(3);
    run.converge();
    run.direct(1, 0, 2, id(0, 0, 0));
    run.fails("L2 delivery: node 2 never delivered \"b1\" from node 0");
    // A refused send obliges nothing.
    let mut run = Run::new(3);
    run.converge();
    run.send(
        1,
        Op::Direct { from: 0, to: 2, tag: None, size: None },
        OpResult::Failed("outbox for peer 2 is full".into()),
    );
    run.passes();
}

#[test]
fn l2_exempts_origins_that_went_down_and_addressees_that_are_down() {
    // The origin crashed after sending (and stays down).
    let mut run = Run::new(3);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.crash(0);
    run.view(1, &[2]);
    run.view(2, &[1]);
    run.passes();
    // The origin crashed and restarted: a new incarnation owes nothing.
    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.crash(0);
    run.restart(0);
    run.view(0, &[1]);
    run.passes();
    // The addressee is down at the end.
    let mut run = Run::new(3);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.crash(2);
    run.view(0, &[1]);
    run.view(1, &[0]);
    run.passes();
    // An addressee that restarted must get it in its new life.
    let mut run = Run::new(2);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.crash(1);
    run.restart(1);
    run.view(1, &[0]);
    run.fails("L2 delivery: node 1 never delivered \"b1\" from node 0");
}

#[test]
fn l1_convergence_needs_every_live_node_at_its_current_address() {
    let mut run = Run::new(2);
    run.fails("L1 membership convergence: node 0 does not know node 1");
    run.converge();
    run.passes();
    run.push(Some(1), EventKind::Rebound { addr: addr(1, 20001) });
    run.fails("L1 membership convergence: node 0 knows node 1 at 10.0.0.2:7000 but it is at 10.0.0.2:20001");
    run.view(0, &[1]);
    run.passes();
    // A crash clears the node's view; a down node is not expected anywhere.
    run.crash(0);
    run.passes();
    run.restart(0);
    run.fails("L1 membership convergence: node 0 does not know node 1");
}

fn between(a: &[NodeIdx], b: &[NodeIdx]) -> Scope {
    Scope::Between { a: a.to_vec(), b: b.to_vec() }
}

fn partition(a: &[NodeIdx], b: &[NodeIdx], oneway: bool) -> Action {
    Action::Link { change: LinkChange::Partition { oneway }, scope: between(a, b) }
}

#[test]
fn goals_restart_partition_and_rebind() {
    let mut run = Run::new(3);
    run.converge();
    run.step(0, partition(&[0], &[1, 2], false));
    run.broadcast(1, 0, id(0, 0, 0));
    run.step(2, Action::Link { change: LinkChange::Heal, scope: Scope::Every });
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.deliver(2, id(0, 0, 0), MessageKind::Broadcast, 1);
    assert_eq!(run.hits(), ["G2 delivered across a healed partition"]);

    // A one-way partition from 1 to 0 does not cut 0 off from 1.
    let mut run = Run::new(2);
    run.converge();
    run.step(0, partition(&[1], &[0], true));
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    assert!(run.hits().is_empty());
    // Healed between the two groups only, then sent: not across.
    run.step(2, partition(&[0], &[1], false));
    run.step(3, Action::Link { change: LinkChange::Heal, scope: between(&[1], &[0]) });
    run.broadcast(4, 0, id(0, 0, 1));
    run.deliver(1, id(0, 0, 1), MessageKind::Broadcast, 4);
    assert!(run.hits().is_empty());

    let mut run = Run::new(2);
    run.push(Some(1), EventKind::Rebound { addr: addr(1, 20001) });
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    assert_eq!(run.hits(), ["G3 delivered after a rebind"]);
}

#[test]
fn conditions_read_the_deliveries_and_views() {
    let mut run = Run::new(3);
    let tags = |tags: &[&str]| tags.iter().map(|t| t.to_string()).collect::<BTreeSet<String>>();
    assert_eq!(run.check(0, Condition::Converged(True)), Err("node 0 does not know node 1".into()));
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.direct(2, 0, 1, id(0, 0, 1));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    run.deliver(1, id(0, 0, 1), MessageKind::Direct, 2);
    assert_eq!(run.check(1, Condition::Received(2)), Ok(()));
    assert_eq!(run.check(2, Condition::Received(1)), Err("node 2 delivered 0 messages, expected 1".into()));
    assert_eq!(run.check(1, Condition::ReceivedTags(tags(&["b1", "b2"]))), Ok(()));
    assert_eq!(
        run.check(1, Condition::ReceivedTags(tags(&["b1"]))),
        Err("node 1 delivered tags {\"b1\", \"b2\"}, expected {\"b1\"}".into())
    );
    assert_eq!(run.check(0, Condition::NotReceivedTags(tags(&["b1"]))), Ok(()));
    assert_eq!(run.check(1, Condition::NotReceivedTags(tags(&["b2", "x"]))), Err("node 1 delivered [\"b2\"]".into()));
    assert_eq!(run.check(1, Condition::Peers(2)), Ok(()));
    assert_eq!(run.check(1, Condition::Converged(True)), Ok(()));
    run.crash(1);
    assert_eq!(run.check(1, Condition::Peers(0)), Ok(()), "a crash clears the view");
    assert_eq!(run.check(1, Condition::Received(2)), Ok(()), "deliveries count all incarnations");
    assert_eq!(run.check(0, Condition::Converged(True)), Ok(()), "a down node need not be known");
    run.push(Some(2), EventKind::Rebound { addr: addr(2, 20001) });
    assert_eq!(
        run.check(0, Condition::Converged(True)),
        Err("node 0 knows node 2 at 10.0.0.3:7000 but it is at 10.0.0.3:20001".into())
    );
    assert_eq!(run.check(0, Condition::Peers(3)), Err("node 0 knows 2 peers, expected 3".into()));
}

#[test]
fn the_outcome_is_the_tags_and_the_final_view() {
    let mut run = Run::new(3);
    run.converge();
    run.broadcast(1, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 1);
    let outcome = |run: &Run, node| PubSub.outcome(&run.history, node);
    assert_eq!(outcome(&run, 1), NodeOutcome { delivered: ["b1".to_string()].into(), members: [0, 2].into() });
    run.crash(1);
    assert_eq!(outcome(&run, 1), NodeOutcome { delivered: ["b1".to_string()].into(), members: BTreeSet::new() });
    assert_eq!(outcome(&run, 0), NodeOutcome { delivered: BTreeSet::new(), members: [1, 2].into() });
}

#[test]
fn the_history_encodes_observations_canonically() {
    let mut run = Run::new(2);
    run.view(0, &[1]);
    run.broadcast(3, 0, id(0, 0, 0));
    run.deliver(1, id(0, 0, 0), MessageKind::Broadcast, 3);
    let lines = run.history.to_jsonl();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(
        lines[2],
        r#"{"t_us":3000,"node":0,"event":{"observe":{"view":{"peers":{"1":{"addr":"10.0.0.2:7000","incarnation":0,"version":0}}}}}}"#
    );
    assert_eq!(
        lines[3],
        r#"{"t_us":4000,"node":0,"event":{"invoke":{"id":0,"step":3,"op":{"broadcast":{"from":0}}}}}"#
    );
    assert_eq!(
        lines[4],
        r#"{"t_us":5000,"node":0,"event":{"complete":{"id":0,"result":{"ok":{"sent":{"id":{"origin":0,"incarnation":0,"seq":0}}}}}}}"#
    );
    let digest = digest_for(0, "b3", 32);
    assert_eq!(
        lines[5],
        format!(
            r#"{{"t_us":6000,"node":1,"event":{{"observe":{{"delivered":{{"id":{{"origin":0,"incarnation":0,"seq":0}},"kind":"broadcast","tag":"b3","size":32,"digest":{digest}}}}}}}}}"#
        )
    );
}
