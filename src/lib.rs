//! # tandem
//!
//! Deterministic simulation testing for networked nodes. A node is written
//! once against [`transport::Transport`]; a small adapter, a
//! [`system::System`], lets tandem start it, invoke its operations from
//! scenario steps, record what it does into a [`history::History`], and
//! judge that history with the system's [`property::Property`]s. The same
//! scenario then runs on a seeded simulated network (the `tandem-sim` crate)
//! and over real QUIC (the `tandem-msquic` crate).
//!
//! This crate is the framework's core: it imports no system and no network
//! backend. A system's adapter imports what it names from [`prelude`].

#![warn(missing_docs)]

pub mod clock;
pub mod cluster;
pub mod consistency;
pub mod coverage;
pub mod execute;
pub mod history;
pub mod host;
pub mod links;
pub mod nodes;
pub mod picture;
pub mod prelude;
pub mod probe;
pub mod profile;
pub mod property;
pub mod scenario;
pub mod storage;
pub mod system;
pub mod transport;

pub use system::System;
