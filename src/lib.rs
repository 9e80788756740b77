//! # tandem
//!
//! Deterministic simulation testing for networked nodes. Node logic is written
//! once against [`transport::Transport`]; the same scenario then runs on a
//! seeded simulated network (the `tandem-sim` crate) and over real QUIC
//! (MsQuic) on loopback.
//!
//! This crate holds what both backends share: the transport trait, the
//! reference [`node`], the scenario model, the oracle of invariants and the
//! trace.

#![warn(missing_docs)]

pub mod cluster;
pub mod execute;
pub mod node;
pub mod oracle;
#[cfg(feature = "msquic")]
pub mod real;
pub mod record;
pub mod scenario;
pub mod trace;
pub mod transport;
