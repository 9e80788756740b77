//! # tandem-sim
//!
//! tandem's deterministic backend: the reference node on a seeded turmoil
//! network. Same seed, same build => the same trace digest, in any process.

#![warn(missing_docs)]

pub mod net;
pub mod run;
pub mod cluster;
pub mod transport;

pub use run::{run_scenario, run_with, SimRun};
pub use net::{LossTable, QuicModel};
pub use cluster::{SimCluster, SimOptions};
pub use transport::SimTransport;
