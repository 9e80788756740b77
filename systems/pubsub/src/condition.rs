//! The conditions of `await`, `expect` and `[[expect]]`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tandem::{NodeIdx, NodeLife, True};

use crate::messaging::Ledger;
use crate::node::MessageId;

/// A condition on one node, as written in a scenario:
/// `received = 2`, `received_tags = ["a"]`, `not_received_tags = ["b"]`,
/// `peers = 3` or `converged = true`.
///
/// ```
/// use tandem::scenario::Call;
/// use tandem_pubsub::Condition;
/// let call = Call::of(&Condition::Received(2));
/// assert_eq!((call.key.as_str(), call.value.as_integer()), ("received", Some(2)));
/// assert_eq!(call.typed::<Condition>(), Ok(Condition::Received(2)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The node delivered exactly this many messages (broadcast and
    /// direct, all incarnations).
    Received(u64),
    /// The set of tags the node delivered is exactly this one.
    ReceivedTags(BTreeSet<String>),
    /// The node delivered none of these tags.
    NotReceivedTags(BTreeSet<String>),
    /// The node knows exactly this many other nodes now.
    Peers(u32),
    /// The node knows every other live node at its current address.
    Converged(True),
}

impl Condition {
    /// Why the condition does not hold for `node` now; `lives` are the
    /// history's node lives and `ledger` what the run delivered and saw.
    pub fn check(&self, ledger: &Ledger<MessageId>, lives: &[NodeLife], node: NodeIdx) -> Result<(), String> {
        let n = ledger.node(node);
        match self {
            Condition::Received(want) => match n.delivered {
                got if got == *want => Ok(()),
                got => Err(format!("node {node} delivered {got} messages, expected {want}")),
            },
            Condition::ReceivedTags(want) if n.tags == *want => Ok(()),
            Condition::ReceivedTags(want) => Err(format!("node {node} delivered tags {:?}, expected {want:?}", n.tags)),
            Condition::NotReceivedTags(unwanted) => {
                let got: Vec<&String> = n.tags.intersection(unwanted).collect();
                match got.is_empty() {
                    true => Ok(()),
                    false => Err(format!("node {node} delivered {got:?}")),
                }
            }
            Condition::Peers(want) => match n.view.len() {
                got if got == *want as usize => Ok(()),
                got => Err(format!("node {node} knows {got} peers, expected {want}")),
            },
            Condition::Converged(True) => ledger.converged(lives, node),
        }
    }
}
