//! Item 4: peak resident memory, each workload measured alone in a child
//! process (`tandem bench --probe NAME`), which prints its `VmHWM`.

use std::process::Command;

use super::report::Figure;
use super::sim_speed::SEED;
use super::{raw_turmoil, workload, Options};
use tandem_sim::run::{options_for, run_with};

/// A workload whose peak memory a child process measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Probe {
    /// Nothing: the process's own footprint.
    Idle,
    /// tandem: 64 simulated nodes, the scaling workload.
    Sim64,
    /// The same actions on 64 raw turmoil hosts.
    RawSim64,
    /// 8 reference nodes over MsQuic on loopback sending 10,000 broadcasts.
    #[cfg(feature = "msquic")]
    Quic8,
}

impl Probe {
    /// Its command-line name.
    fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value().expect("no probe is skipped").get_name().to_string()
    }
}

/// The simulated seconds of the 64-node workload.
fn sim64_secs(quick: bool) -> u64 {
    if quick {
        2
    } else {
        10
    }
}

/// 10,000 broadcasts (1,000 when quick), spread over 8 nodes.
#[cfg(feature = "msquic")]
fn quic8_broadcasts(quick: bool) -> usize {
    if quick {
        1_000
    } else {
        10_000
    }
}

/// Runs `probe`'s workload in this process and returns its peak RSS in KiB.
pub fn run_probe(probe: Probe, quick: bool) -> Result<u64, String> {
    match probe {
        Probe::Idle => {}
        Probe::Sim64 => {
            let scenario = workload::fixed_load(64, sim64_secs(quick));
            run_with(
                std::sync::Arc::new(tandem_pubsub::PubSub),
                &scenario,
                options_for(&tandem_pubsub::PubSub, &scenario, SEED),
            );
        }
        Probe::RawSim64 => {
            let scenario = workload::fixed_load(64, sim64_secs(quick));
            let options = options_for(&tandem_pubsub::PubSub, &scenario, SEED);
            raw_turmoil::run::<tandem_pubsub::PubSub>(&options, &workload::planned(&scenario), scenario.duration);
        }
        #[cfg(feature = "msquic")]
        Probe::Quic8 => {
            use super::quic::{broadcast_all, runtime, start_nodes, BROADCAST_SIZE};
            let runtime = runtime();
            runtime.block_on(async {
                let mut nodes = start_nodes(8).await?;
                let origins: Vec<usize> = (0..8).collect();
                broadcast_all(&mut nodes, &origins, quic8_broadcasts(quick) / 8, BROADCAST_SIZE).await
            })?;
        }
    }
    peak_rss()
}

/// This process's peak resident set size in KiB (`VmHWM`).
fn peak_rss() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("/proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmHWM in /proc/self/status".into())
}

/// Runs `probe` in a child process and returns its peak RSS in MiB.
fn measure_in_child(probe: Probe, quick: bool) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command.args(["bench", "--probe", &probe.name()]);
    if quick {
        command.arg("--quick");
    }
    let output = command.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("probe {} failed: {}", probe.name(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    let kib: u64 = stdout.trim().parse().map_err(|_| format!("probe {} printed {stdout:?}", probe.name()))?;
    Ok(kib as f64 / 1024.0)
}

/// Peak RSS of the 64-node simulation (against the same actions on raw
/// turmoil) and of the 8-node MsQuic cluster (against an idle process).
pub fn measure(options: &Options) -> Result<Vec<Figure>, String> {
    let quick = options.quick;
    #[cfg_attr(not(feature = "msquic"), allow(unused_mut))]
    let mut figures = vec![Figure::new(
        "memory.sim64.peak_rss",
        format!("64 simulated nodes, 10 broadcasts per simulated second, {} s", sim64_secs(quick)),
        measure_in_child(Probe::Sim64, quick)?,
        "MiB",
    )
    .against("raw turmoil, same actions", measure_in_child(Probe::RawSim64, quick)?)];
    #[cfg(feature = "msquic")]
    figures.push(
        Figure::new(
            "memory.quic8.peak_rss",
            format!("8 reference nodes over MsQuic on loopback, {} broadcasts of 1 KiB", quic8_broadcasts(quick)),
            measure_in_child(Probe::Quic8, quick)?,
            "MiB",
        )
        .against("idle tandem process", measure_in_child(Probe::Idle, quick)?),
    );
    Ok(figures)
}
