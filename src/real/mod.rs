//! The real-network backend: reference nodes over MsQuic on loopback, with
//! packet-level faults injected by UDP relays.
//!
//! Every node-to-node QUIC packet crosses a [`relay::Relay`], which applies
//! the [`faults::FaultTable`] set by the runner: partitions (both ways or one
//! way), loss and added latency. Nodes dial the addresses membership gave
//! them; the relays are chosen by those addresses, so a rebind is seen by the
//! nodes exactly as in the simulation. Everything runs unprivileged on
//! 127.0.0.1 with OS-assigned ports.

pub mod cluster;
pub mod faults;
pub mod relay;
pub mod transport;

use std::time::Instant;

pub use cluster::{RealCluster, RealOptions};

use crate::execute::{execute, Outcome};
use crate::record::Record;
use crate::scenario::Scenario;

/// A finished real run.
#[derive(Debug, Clone)]
pub struct RealRun {
    /// Pass, or the first failure.
    pub outcome: Outcome,
    /// Everything observed.
    pub record: Record,
    /// Wall-clock time of the run, start-up included.
    pub wall: std::time::Duration,
}

/// The real-network options a scenario asks for.
pub fn options_for(scenario: &Scenario) -> RealOptions {
    RealOptions {
        seeds: scenario.seeds.clone(),
        latency: (scenario.network.latency.min, scenario.network.latency.max),
        loss: scenario.network.loss,
        mutation: scenario.mutation,
        ..RealOptions::new(scenario.nodes)
    }
}

/// Runs `scenario` over MsQuic on loopback.
pub fn run_real(scenario: &Scenario) -> Result<RealRun, String> {
    // Wall time of a real run.
    let started = Instant::now();
    let mut cluster = RealCluster::new(options_for(scenario))?;
    let outcome = execute(scenario, &mut cluster);
    let record = cluster.into_record();
    Ok(RealRun { outcome, record, wall: started.elapsed() })
}
