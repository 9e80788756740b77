//! What a node ended with: the unit `tandem confirm` compares between the
//! simulation and MsQuic.

use std::collections::BTreeSet;

use serde::Serialize;
use tandem::NodeIdx;

use crate::messaging::Ledger;
use crate::node::MessageId;

/// One node's end state, as the harness observed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeOutcome {
    /// The tags it delivered, all incarnations.
    pub delivered: BTreeSet<String>,
    /// The nodes in its final membership view (none when it is down).
    pub members: BTreeSet<u32>,
}

impl NodeOutcome {
    /// The outcome of `node` in `ledger`.
    pub fn of(ledger: &Ledger<MessageId>, node: NodeIdx) -> NodeOutcome {
        let n = ledger.node(node);
        NodeOutcome { delivered: n.tags.clone(), members: n.view.keys().copied().collect() }
    }
}
