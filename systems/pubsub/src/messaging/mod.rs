//! A reusable property set for message-passing systems: safety S1-S4,
//! liveness L1-L2 and coverage goals, over what the harness observed.
//!
//! Any system whose nodes send messages (to everyone, or to one node) and
//! deliver them can plug in: implement [`Messaging`] to say which history
//! events are sends, deliveries and membership views, and return
//! [`properties`] from [`Oracle::properties`](tandem::Oracle::properties):
//!
//! - S1 no self-delivery: a node never delivers its own message.
//! - S2 no duplicates: a node incarnation delivers each message at most once.
//! - S3 integrity: a delivered message has the origin, kind, tag and payload
//!   the harness asked the origin to send.
//! - S4 addressing: a direct message is delivered only to its addressee.
//! - L1 membership convergence: at the end, every live node knows every
//!   other live node at its current address.
//! - L2 delivery: at the end, every message whose origin stayed up from
//!   sending to the end was delivered to each of its addressees that is up.
//!
//! A property judges what the harness observed, never what the node claims:
//! the tag and payload of a sent message are the ones the harness computed
//! for the invoked operation (the node's answer only names the message), and
//! a broadcast's addressees are the members of the origin's last membership
//! view observed before the operation was invoked, not a recipient list the
//! node returns.
//!
//! Keeping a [`Ledger`] in the system's derived state (see
//! [`Messaging::ledger`]) makes the liveness checks cheaper, enables the
//! coverage goals and gives cheap answers to conditions such as "node 1
//! delivered 3 messages".

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use serde::Serialize;
use tandem::{NodeIdx, System};

mod ledger;
mod picture;
mod properties;

pub use ledger::{Arrival, Fact, Goals, Ledger, NodeState, Outgoing, SentMessage};
pub use picture::mark;
pub use properties::{properties, undelivered};

/// Whether a message goes to every member or to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// To every member the origin knows, except itself.
    Broadcast,
    /// To one addressee.
    Direct,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Broadcast => "broadcast",
            Kind::Direct => "direct",
        })
    }
}

/// A message an operation asks its node to send, as the harness computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The tag.
    pub tag: String,
    /// The digest of the payload the harness handed the node.
    pub digest: u64,
    /// The addressee of a direct message; `None` for a broadcast.
    pub to: Option<NodeIdx>,
}

impl Message {
    /// Broadcast or direct.
    pub fn kind(&self) -> Kind {
        match self.to {
            Some(_) => Kind::Direct,
            None => Kind::Broadcast,
        }
    }
}

/// A message a node handed to its application, as the harness observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery<I> {
    /// The message's id.
    pub id: I,
    /// The node that sent it, as the message says.
    pub origin: NodeIdx,
    /// Broadcast or direct, as the receiver saw it.
    pub kind: Kind,
    /// The tag, as received.
    pub tag: String,
    /// The digest of the payload, as received.
    pub digest: u64,
}

/// A node's membership view: the other nodes it knows, by index, at the
/// address it knows them at.
pub type View = BTreeMap<NodeIdx, SocketAddr>;

/// A message-passing system: which of its history events are sends,
/// deliveries and membership views.
///
/// The functions take no `self`: properties are built without a system
/// value, and each run makes fresh monitors.
pub trait Messaging: System {
    /// A message's id, unique in a run (for example origin, incarnation and
    /// sequence number). Its `Display` form appears in violation details.
    type Id: Clone + Ord + fmt::Debug + fmt::Display + Send + Sync + 'static;

    /// The message `op` asks its node to send, as the harness computes it;
    /// `None` for an operation that sends nothing. `step` is the index of
    /// the scenario step that invoked it.
    fn message(op: &Self::Op, step: usize) -> Option<Message>;

    /// The id of the message a successful send operation returned.
    fn sent(output: &Self::Output) -> Option<Self::Id>;

    /// The addressees a successful send operation says it left out (a
    /// documented degradation, such as a member whose outbox is full): they
    /// are not obliged to deliver it. None by default.
    fn dropped(_output: &Self::Output) -> Vec<NodeIdx> {
        Vec::new()
    }

    /// The delivery an observation reports, if it reports one.
    fn delivery(observation: &Self::Observation) -> Option<Delivery<Self::Id>>;

    /// The node's new membership view an observation reports, if it reports
    /// one. A node's view is empty when it starts and after a crash.
    fn view(observation: &Self::Observation) -> Option<View>;

    /// The ledger the system keeps in its derived state: with
    /// `type State = Ledger<Self::Id>` and `state.fold(event, faults)` in
    /// [`Oracle::fold`](tandem::Oracle::fold), return `Some(state)`. Without
    /// one, the coverage goals are never hit and the liveness checks replay
    /// the history.
    fn ledger(_state: &Self::State) -> Option<&Ledger<Self::Id>> {
        None
    }
}

/// `at` as seconds with milliseconds, as violation details print times.
pub(crate) fn secs(at: std::time::Duration) -> String {
    format!("{:.3}s", at.as_secs_f64())
}
