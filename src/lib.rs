//! # tandem
//!
//! Deterministic simulation testing for networked nodes. A node is written
//! once against [`Transport`]; a small adapter, a [`System`], lets tandem
//! start it, invoke its operations from scenario steps, record what it does
//! into a [`History`], and judge that history with the system's
//! [`Property`]s. The same scenario then runs on a seeded simulated network
//! (the `tandem-sim` crate) and over real QUIC (the `tandem-msquic` crate).
//! A system is four traits by concern: its [`Adapter`] runs a node, its
//! [`Oracle`] checks the history, its [`Workload`] drives exploration and
//! its [`Drawing`] draws the timeline picture.
//!
//! This crate is the framework's core: it imports no system and no network
//! backend. The crate root is a system author's API, flat:
//!
//! ```
//! use tandem::{History, NodeIdx, System};
//!
//! fn first_start<S: System>(history: &History<S>, node: NodeIdx) -> bool {
//!     history.node(node).incarnation == 0
//! }
//! ```
//!
//! The system API ([`System`], its four traits, its [`NodeContext`] and
//! results), the transport traits a node is written against, durable
//! [`Storage`], the history and properties that judge a run, and the in-node assertion
//! macros ([`always!`], [`sometimes!`], [`reachable!`],
//! [`assert_unreachable!`], [`buggify!`]). The modules hold the rest of each
//! concept (a scenario's steps, the transport's framing helpers, the
//! consistency checkers); [`engine`] is what runs a scenario, for the
//! backends and the command line.

#![warn(missing_docs)]

pub mod consistency;
pub mod engine;
pub mod history;
pub mod prelude;
pub mod probe;
pub mod property;
pub mod scenario;
mod seed;
pub mod storage;
pub mod system;
pub mod transport;

pub use engine::links::{Link, LinkState};
pub use engine::picture::Mark;
pub use history::{Event, EventKind, Faults, History, NodeLife, OpResult};
pub use probe::Probe;
pub use property::{Failure, Judge, Monitor, Property, Violation};
pub use scenario::{Action, NodeIdx, Scenario, True};
pub use storage::{DiskFault, Storage};
pub use system::{
    Adapter, Capabilities, Drawing, FailStop, Invocation, Knob, Knobs, NodeContext, NodeSecret, Observer, OpError,
    Operation, Oracle, PlantedBug, SurvivedDiskFault, System, Tolerance, Workload,
};
pub use transport::{
    Connection, ConnectionInfo, FrameDecoder, Framing, Listener, MessageReceiver, MessageSender, PeerIdentity,
    Transport, TransportError, APPLICATION_CLOSE_CODES,
};
