//! Everything a system's adapter names, in one import:
//!
//! ```
//! use tandem::prelude::*;
//!
//! fn first_start<S: System>(history: &History<S>, node: NodeIdx) -> bool {
//!     history.node(node).incarnation == 0
//! }
//! ```
//!
//! The system API ([`System`], its [`NodeContext`] and results), the
//! transport traits a node is written against, durable [`Storage`], the
//! history and properties that judge a run, and the in-node assertion
//! macros ([`always!`](crate::always), [`sometimes!`](crate::sometimes),
//! [`reachable!`](crate::reachable), [`assert_unreachable!`](crate::assert_unreachable),
//! [`buggify!`](crate::buggify)).

pub use crate::history::{Event, EventKind, History, NodeLife, OpResult};
pub use crate::picture::Mark;
pub use crate::probe::Probe;
pub use crate::property::{Failure, Property};
pub use crate::scenario::{NodeIdx, True};
pub use crate::storage::{DiskFault, Storage};
pub use crate::system::{
    Capabilities, FailStop, Invocation, Knob, Knobs, NodeContext, Observer, OpError, Operation, PlantedBug,
    SurvivedDiskFault, System, Tolerance,
};
pub use crate::transport::{
    Connection, ConnectionInfo, Framing, Listener, MessageReceiver, MessageSender, PeerIdentity, Transport,
    TransportError,
};
pub use crate::{always, assert_unreachable, buggify, reachable, sometimes};
