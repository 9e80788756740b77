//! # tandem-sim
//!
//! tandem's deterministic backend: any [`System`](tandem::System)'s nodes on
//! a seeded simulated network, discrete-event ([`EventCluster`], the
//! default) or turmoil ([`TurmoilCluster`]). Same system, scenario, seed and
//! build => the same history digest, in any process. Also the generic
//! explorer ([`explore`]), the `cargo test` helpers ([`testing`]) and
//! reproducer files ([`report`]). The `tandem` command is `tandem-cli`'s.

#![warn(missing_docs)]

// The echo example is also a test fixture of this crate, and names it.
#[cfg(test)]
extern crate self as tandem_sim;

// The ground floor, shared by both backends.
pub mod calibration;
pub mod determinism;
pub mod options;
pub mod quic;
// The two backends, side by side: neither imports the other.
pub mod events;
pub mod turmoil;
// What runs on them.
pub mod explore;
pub mod logging;
pub mod report;
pub mod run;
pub mod testing;

pub use events::EventCluster;
pub use options::{Backend, SimOptions};
pub use quic::{QuicModel, Transmission, Transmissions};
pub use run::{run_scenario, run_with};
pub use turmoil::{LinkTable, TurmoilCluster, TurmoilTransport};

/// The turmoil backend's cluster, by its old name.
#[deprecated(
    since = "0.2.0",
    note = "the turmoil backend's cluster is `TurmoilCluster`; the default backend's is `EventCluster`"
)]
pub type SimCluster<S> = TurmoilCluster<S>;

/// The turmoil backend's transport, by its old name.
#[deprecated(
    since = "0.2.0",
    note = "the turmoil backend's transport is `TurmoilTransport`; the default backend's is `events::EventTransport`"
)]
pub type SimTransport = TurmoilTransport;
