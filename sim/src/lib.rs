//! # tandem-sim
//!
//! tandem's deterministic backend: any [`System`](tandem::System)'s nodes on
//! a seeded simulated network, discrete-event ([`EventCluster`], the
//! default) or turmoil ([`SimCluster`]). Same system, scenario, seed and
//! build => the same history digest, in any process. Also the generic
//! explorer ([`explore`]), the `cargo test` helpers ([`testing`]) and
//! reproducer files ([`report`]). The `tandem` command is `tandem-cli`'s.

#![warn(missing_docs)]

// The echo example is also a test fixture of this crate, and names it.
#[cfg(test)]
extern crate self as tandem_sim;

pub mod calibration;
pub mod cluster;
pub mod determinism;
pub mod events;
pub mod explore;
pub mod logging;
pub mod net;
pub mod report;
pub mod run;
pub mod testing;
pub mod transport;

pub use cluster::{Backend, SimCluster, SimOptions};
pub use events::EventCluster;
pub use net::{LinkTable, QuicModel, Transmission, Transmissions};
pub use run::{run_scenario, run_with};
pub use transport::SimTransport;
