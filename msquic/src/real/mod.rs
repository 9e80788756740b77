//! The real-network backend: a system's nodes over MsQuic on loopback, with
//! packet-level faults injected by UDP relays.
//!
//! Every node-to-node QUIC packet crosses a [`relay::Relay`], which applies
//! the [`faults::FaultTable`] the runner sets from the run's history:
//! partitions (both ways or one way), loss and added latency. Nodes dial the addresses they know; the
//! relays are chosen by those addresses, so a rebind is seen by the nodes
//! exactly as in the simulation. Everything runs unprivileged on 127.0.0.1
//! with OS-assigned ports.
//!
//! Each node incarnation runs on a thread and a current-thread tokio runtime
//! of its own: a crash drops the runtime (every task the node spawned), a
//! `pause` blocks the thread, and a `clock` step sets the thread's clock
//! ([`tandem::engine::clock::set_thread_clock`]), which the clock interposer of
//! `tandem-sim` turns into what the node reads, where it is linked in.

pub mod cluster;
pub mod faults;
mod node;
pub mod relay;
pub mod transport;

use std::sync::Arc;

pub use cluster::{node_secret, verifying_key, RealCluster, RealOptions};

use tandem::engine::cluster::Setup;
use tandem::engine::execute::{execute, Run};
use tandem::scenario::Scenario;
use tandem::System;

/// Runs `scenario` with `system` over MsQuic on loopback, with the
/// scenario's own seed: checks that the scenario is valid for the system,
/// starts a [`RealCluster`], executes the timeline and the end checks, and
/// stops every node.
///
/// Blocks the calling thread; call it from outside any tokio runtime.
pub fn run_real<S: System>(system: Arc<S>, scenario: &Scenario) -> Result<Run<S>, String> {
    if !scenario.is_for(&*system) {
        return Err(format!(
            "scenario `{}` is for system `{}`, not `{}`",
            scenario.name,
            scenario.system.as_deref().unwrap_or_default(),
            system.name()
        ));
    }
    scenario.validate(&*system)?;
    let options = RealOptions::of(Setup::of(&*system, scenario, scenario.seed));
    let mut cluster = RealCluster::new(system, options)?;
    let outcome = execute(scenario, &mut cluster);
    let history = cluster.into_history();
    Ok(Run { seed: scenario.seed, outcome, history })
}
