//! [`PubSub`]: the adapter that lets tandem drive the reference node.

use std::net::SocketAddr;

use proptest::strategy::BoxedStrategy;
use tandem::history::{Event, History};
use tandem::picture::Mark;
use tandem::property::Property;
use tandem::scenario::{NodeIdx, True};
use tandem::system::{Capabilities, Invocation, Knob, NodeContext, PlantedBug, System};
use tandem::transport::Transport;

use crate::condition::Condition;
use crate::knobs;
use crate::messaging::{self, Delivery, Kind, Ledger, Message, Messaging, View};
use crate::node::{EventObserver, MessageId, MessageKind, Mutation, Node, NodeConfig, NodeId};
use crate::observation::Observation;
use crate::op::{Op, Output};
use crate::outcome::NodeOutcome;
use crate::payload::{digest_for, payload_for};
use crate::running::Running;
use crate::workload;

/// The pub/sub system: the [reference node](crate::node) behind tandem's
/// [`System`] trait. Its operations are [`Op`]s, its conditions
/// [`Condition`]s, and its properties the [messaging set](crate::messaging).
#[derive(Debug, Clone, Copy, Default)]
pub struct PubSub;

impl System for PubSub {
    type Op = Op;
    type Output = Output;
    type Observation = Observation;
    type Condition = Condition;
    type Outcome = NodeOutcome;
    type State = Ledger<MessageId>;
    type Node = Running;

    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn description(&self) -> &'static str {
        "pub/sub over gossip membership: acknowledged, de-duplicated broadcast and direct messages, hot-reload rebinds"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rebind: true }
    }

    /// The node's five mutations; they change behaviour only in a build with
    /// the `mutations` feature (a node asked for one in another build does
    /// not start).
    fn planted_bugs(&self) -> Vec<PlantedBug> {
        Mutation::ALL.into_iter().map(|m| PlantedBug { name: m.name(), description: m.description() }).collect()
    }

    fn knobs(&self) -> Vec<Knob> {
        knobs::all()
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self, T>) -> Result<Running, String> {
        let mutation = ctx.mutation.map(str::parse::<Mutation>).transpose().map_err(|e| e.to_string())?;
        let events = ctx.observer.clone();
        let config = NodeConfig {
            incarnation: ctx.incarnation,
            seeds: ctx.seed_addrs(),
            rng_seed: ctx.rng_seed,
            outbox_capacity: knobs::outbox_capacity(&ctx.knobs),
            timing: knobs::timing(&ctx.knobs),
            mutation,
            observer: Some(EventObserver::new(move |_, event| events.observe(Observation::Node(event)))),
            ..NodeConfig::new(NodeId(ctx.index), ctx.listen)
        };
        let node = Node::start(config, ctx.transport).await.map_err(|e| e.to_string())?;
        Ok(Running::new(node, ctx.observer))
    }

    fn addr(&self, node: &Running) -> SocketAddr {
        node.addr()
    }

    /// Sends the harness's deterministic payload (see
    /// [`payload_for`]); the tag defaults to `b<step>`.
    async fn invoke(&self, node: &mut Running, op: Op, invocation: Invocation) -> Result<Output, String> {
        let tag = op.tag(invocation.step);
        let payload = payload_for(op.from(), &tag, op.size());
        let sent = match op.to() {
            None => node.broadcast.send(tag, payload).await,
            Some(to) => node.direct.send(NodeId(to), tag, payload).await,
        };
        sent.map(|sent| Output::Sent { id: sent.id }).map_err(|e| e.to_string())
    }

    async fn rebind(&self, node: &mut Running, addr: SocketAddr) -> Result<SocketAddr, String> {
        node.handle.rebind(addr).await
    }

    async fn stop(&self, node: Running) {
        node.stop().await
    }

    fn fold(&self, state: &mut Ledger<MessageId>, event: &Event<Self>) {
        state.fold(event);
    }

    fn mark(&self, history: &History<Self>, event: &Event<Self>) -> Option<Mark> {
        messaging::mark(history, event)
    }

    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &Condition) -> Result<(), String> {
        condition.check(history.state(), history.nodes(), node)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        messaging::properties()
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> NodeOutcome {
        NodeOutcome::of(history.state(), node)
    }

    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Op> {
        match focus {
            Some(node) => workload::send_to(nodes, node),
            None => workload::send(nodes),
        }
    }

    fn ready(&self) -> Option<Condition> {
        Some(Condition::Converged(True))
    }
}

impl Messaging for PubSub {
    type Id = MessageId;

    fn message(op: &Op, step: usize) -> Option<Message> {
        let tag = op.tag(step);
        let digest = digest_for(op.from(), &tag, op.size());
        Some(Message { tag, digest, to: op.to() })
    }

    fn sent(output: &Output) -> Option<MessageId> {
        let Output::Sent { id } = output;
        Some(*id)
    }

    fn delivery(observation: &Observation) -> Option<Delivery<MessageId>> {
        let Observation::Delivered { id, kind, tag, digest, .. } = observation else { return None };
        let kind = match kind {
            MessageKind::Broadcast => Kind::Broadcast,
            MessageKind::Direct => Kind::Direct,
        };
        Some(Delivery { id: *id, origin: id.origin.0, kind, tag: tag.clone(), digest: *digest })
    }

    fn view(observation: &Observation) -> Option<View> {
        let Observation::View { peers } = observation else { return None };
        Some(peers.iter().map(|(id, peer)| (id.0, peer.addr)).collect())
    }

    fn ledger(state: &Ledger<MessageId>) -> Option<&Ledger<MessageId>> {
        Some(state)
    }
}
