//! # tandem-sim
//!
//! tandem's deterministic backend: the reference node on a seeded turmoil
//! network. Same seed, same build => the same trace digest, in any process.

#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod cluster;
#[cfg(feature = "msquic")]
pub mod confirm;
pub mod explore;
pub mod logging;
pub mod net;
pub mod report;
pub mod run;
pub mod testing;
pub mod transport;

pub use cluster::{SimCluster, SimOptions};
pub use net::{LossTable, QuicModel};
pub use run::{run_scenario, run_with, SimRun};
pub use transport::SimTransport;
