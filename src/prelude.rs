//! The crate root's names, for a glob import (`use tandem::prelude::*`);
//! `use tandem::{...}` names the same items one by one.
//!
//! ```
//! use tandem::prelude::*;
//!
//! fn first_start<S: System>(history: &History<S>, node: NodeIdx) -> bool {
//!     history.node(node).incarnation == 0
//! }
//! ```

pub use crate::{always, assert_unreachable, buggify, reachable, sometimes};
pub use crate::{
    Action, Adapter, Capabilities, Connection, ConnectionInfo, DiskFault, Drawing, Event, EventKind, FailStop, Failure,
    Faults, FrameDecoder, Framing, History, Invocation, Judge, Knob, Knobs, Link, LinkState, Listener, Mark,
    MessageReceiver, MessageSender, Monitor, NodeContext, NodeIdx, NodeLife, NodeSecret, Observer, OpError, OpResult,
    Operation, Oracle, PeerIdentity, PlantedBug, Probe, Property, Scenario, Storage, SurvivedDiskFault, System,
    Tolerance, Transport, TransportError, True, Violation, Workload, APPLICATION_CLOSE_CODES,
};
