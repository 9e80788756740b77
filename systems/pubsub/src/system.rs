//! [`PubSub`]: the adapter that lets tandem drive the reference node.

use std::net::SocketAddr;
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use proptest::strategy::BoxedStrategy;
use tandem::{
    Adapter, Capabilities, Drawing, Event, Faults, History, Invocation, Knob, Mark, NodeContext, NodeIdx, NodeSecret,
    OpError, Oracle, PeerIdentity, PlantedBug, Property, Transport, True, Workload,
};

use crate::condition::Condition;
use crate::knobs;
use crate::messaging::{self, Delivery, Kind, Ledger, Message, Messaging, View};
use crate::node::roster::{Credentials, Roster};
use crate::node::{EventObserver, MessageId, MessageKind, Mutation, Node, NodeConfig, NodeId};
use crate::observation::Observation;
use crate::op::{Op, Output};
use crate::outcome::NodeOutcome;
use crate::payload::{digest_for, payload_for};
use crate::running::Running;
use crate::workload;

/// The pub/sub system: the [reference node](crate::node) behind tandem's
/// [`System`](tandem::System) traits. Its operations are [`Op`]s, its conditions
/// [`Condition`]s, and its properties the [messaging set](crate::messaging).
#[derive(Debug, Clone, Copy, Default)]
pub struct PubSub;

/// The credentials of node `index` when the network proves every node's
/// identity and provisions every node's signing key (the real network): a
/// roster binding each node id to its certificate and to its verifying
/// key, and the node's own signing key. `None` otherwise (the simulation),
/// or when any node lacks an identity or a key.
///
/// Each node signs its records with its own secret
/// ([`NodeContext::secret`], bound to its TLS key in `RealCluster`); the
/// others get only its public half ([`NodeContext::verifying_keys`]), so no
/// member can sign another's record.
pub fn cluster_credentials(
    identities: &[Option<PeerIdentity>],
    verifying_keys: &[Option<[u8; 32]>],
    secret: Option<&NodeSecret>,
    index: NodeIdx,
) -> Option<Credentials> {
    let key = SigningKey::from_bytes(&secret?.0);
    if identities.len() != verifying_keys.len() {
        return None;
    }
    let mut roster = Roster::default();
    for ((node, identity), public) in (0..).zip(identities).zip(verifying_keys) {
        let public = VerifyingKey::from_bytes(&(*public)?).ok()?;
        roster.insert(NodeId(node), (*identity)?, public);
    }
    // A secret that is not the one the roster gives this node signs nothing anyone believes.
    if roster.entry(NodeId(index))?.key != key.verifying_key() {
        return None;
    }
    Some(Credentials::new(key, Arc::new(roster)))
}

impl Adapter for PubSub {
    type Op = Op;
    type Output = Output;
    type Observation = Observation;
    type Node = Running;

    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn description(&self) -> &'static str {
        "pub/sub over gossip membership: acknowledged, de-duplicated broadcast and direct messages, hot-reload rebinds"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { rebind: true, ..Capabilities::default() }
    }

    /// The node's planted bugs ([`Mutation::ALL`]); they change behaviour only in a build with
    /// the `mutations` feature (a node asked for one in another build does
    /// not start).
    fn planted_bugs(&self) -> Vec<PlantedBug> {
        Mutation::ALL.into_iter().map(|m| PlantedBug { name: m.name(), description: m.description() }).collect()
    }

    fn knobs(&self) -> Vec<Knob> {
        knobs::all()
    }

    async fn start<T: Transport>(&self, ctx: NodeContext<Self::Observation, T>) -> Result<Running, String> {
        let mutation = ctx.planted_bug.map(str::parse::<Mutation>).transpose().map_err(|e| e.to_string())?;
        let events = ctx.observer.clone();
        let config = NodeConfig {
            incarnation: ctx.incarnation,
            seeds: ctx.seed_addrs(),
            rng_seed: ctx.rng_seed,
            outbox_capacity: knobs::outbox_capacity(&ctx.knobs),
            timing: knobs::timing(&ctx.knobs),
            mutation,
            observer: Some(EventObserver::new(move |_, event| events.observe(Observation::Node(event)))),
            credentials: cluster_credentials(&ctx.identities, &ctx.verifying_keys, ctx.secret.as_ref(), ctx.index),
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
    async fn invoke(&self, node: &Running, op: Op, invocation: Invocation) -> Result<Output, OpError> {
        let tag = op.tag(invocation.step);
        let payload = payload_for(op.from(), &tag, op.size());
        let sent = match op.to() {
            None => node.broadcast.send(tag, payload).await,
            Some(to) => node.direct.send(NodeId(to), tag, payload).await,
        };
        sent.map(|sent| Output::Sent { id: sent.id, dropped: sent.dropped.iter().map(|n| n.0).collect() })
            .map_err(|e| OpError::Failed(e.to_string()))
    }

    async fn rebind(&self, node: &mut Running, addr: SocketAddr) -> Result<SocketAddr, String> {
        node.handle.rebind(addr).await
    }

    async fn stop(&self, node: Running) {
        node.stop().await
    }
}

impl Oracle for PubSub {
    type Condition = Condition;
    type Outcome = NodeOutcome;
    type State = Ledger<MessageId>;

    fn fold(&self, state: &mut Ledger<MessageId>, event: &Event<Self>, faults: &Faults) {
        state.fold(event, faults);
    }

    fn check(&self, history: &History<Self>, node: NodeIdx, condition: &Condition) -> Result<(), String> {
        condition.check(history.state(), history.nodes(), node)
    }

    /// The [messaging set](crate::messaging::properties), and two goals
    /// that name the preconditions of the deep bug
    /// `version-before-incarnation`, in order: G4 a node restarted after
    /// rebinding twice, G5 it then rebound again (fewer times than before).
    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = messaging::properties();
        properties.push(Property::sometimes(
            "G4",
            "a node restarted after rebinding twice",
            |history: &History<Self>, _: &Event<Self>| history.state().goals().restart_after_rebinds,
        ));
        properties.push(Property::sometimes(
            "G5",
            "a node that restarted after rebinding twice rebound again",
            |history: &History<Self>, _: &Event<Self>| history.state().goals().rebind_after_restart,
        ));
        properties
    }

    fn outcome(&self, history: &History<Self>, node: NodeIdx) -> NodeOutcome {
        NodeOutcome::of(history.state(), node)
    }

    fn ready(&self) -> Option<Condition> {
        Some(Condition::Converged(True))
    }
}

impl Workload for PubSub {
    fn operations(&self, nodes: u32, focus: Option<NodeIdx>) -> BoxedStrategy<Op> {
        match focus {
            Some(node) => workload::send_to(nodes, node),
            None => workload::send(nodes),
        }
    }
}

impl Drawing for PubSub {
    fn mark(&self, history: &History<Self>, event: &Event<Self>) -> Option<Mark> {
        messaging::mark(history, event)
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
        let Output::Sent { id, .. } = output;
        Some(*id)
    }

    fn dropped(output: &Output) -> Vec<NodeIdx> {
        let Output::Sent { dropped, .. } = output;
        dropped.clone()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::roster::Refusal;
    use crate::node::wire::MemberRecord;

    #[test]
    fn a_cluster_that_proves_identities_gets_a_roster_no_node_can_speak_for_another() {
        let secrets: Vec<NodeSecret> = (0..3u8).map(|i| NodeSecret([i + 7; 32])).collect();
        let public: Vec<_> =
            secrets.iter().map(|s| Some(SigningKey::from_bytes(&s.0).verifying_key().to_bytes())).collect();
        assert!(cluster_credentials(&[None, None], &[None, None], None, 0).is_none(), "no roster in simulation");
        assert!(
            cluster_credentials(&[Some(PeerIdentity([1; 32])), None], &public[..2], Some(&secrets[0]), 0).is_none(),
            "nor when one node is unproven"
        );
        let identities: Vec<_> = (0..3u8).map(|i| Some(PeerIdentity([i; 32]))).collect();
        assert!(
            cluster_credentials(&identities, &public, Some(&secrets[1]), 0).is_none(),
            "nor with another node's secret"
        );
        let [zero, one] =
            [0, 1].map(|i| cluster_credentials(&identities, &public, Some(&secrets[i]), i as u32).unwrap());
        assert_eq!(zero.roster, one.roster, "every node holds the same roster");
        assert_eq!(one.roster.check_peer(NodeId(2), Some(PeerIdentity([2; 32]))), Ok(()));
        assert!(matches!(
            one.roster.check_peer(NodeId(2), Some(PeerIdentity([0; 32]))),
            Err(Refusal::Impersonation { .. })
        ));

        let record =
            |id| MemberRecord { id: NodeId(id), incarnation: 3, version: 1, addr: "127.0.0.1:9".parse().unwrap() };
        assert_eq!(zero.roster.check_record(&one.sign(record(1))), Ok(()), "node 0 believes node 1's own record");
        assert_eq!(
            zero.roster.check_record(&one.sign(record(2))),
            Err(Refusal::ForgedRecord(NodeId(2))),
            "node 1 cannot sign for node 2"
        );
    }
}
