//! `tandem confirm PATH... [--transport msquic] [--seed N] [--json]`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use tandem::scenario::format_duration;

use super::{prepare, Exit};
use crate::confirm::compare;
use crate::run::run_scenario;

/// The real transports `confirm` can use.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RealTransport {
    /// QUIC + TLS 1.3 over MsQuic.
    Msquic,
}

/// Arguments of `tandem confirm`.
#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// Scenario files, or directories of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The real transport.
    #[arg(long, value_enum, default_value = "msquic")]
    transport: RealTransport,
    /// The simulation seed (default: each file's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object per scenario.
    #[arg(long)]
    json: bool,
    /// Write the runs' logs (wall-clock and simulated timestamps) to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

/// Runs each scenario over real MsQuic and in simulation and compares them.
pub fn confirm(args: ConfirmArgs) -> Exit {
    let RealTransport::Msquic = args.transport;
    let scenarios = match prepare(&args.paths, args.log.as_deref()) {
        Ok(scenarios) => scenarios,
        Err(exit) => return exit,
    };
    let mut exit = Exit::Pass;
    let spinner = if args.json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    spinner.enable_steady_tick(Duration::from_millis(120));
    for (_, scenario) in &scenarios {
        spinner.set_message(format!("{}: real run over MsQuic ({} of wall time)", scenario.name, format_duration(scenario.duration)));
        // Wall time: confirm runs on the real network.
        let started = Instant::now();
        let real = match tandem::real::run_real(scenario) {
            Ok(real) => real,
            Err(error) => {
                eprintln!("{}: the real cluster did not start: {error}", scenario.name);
                exit = Exit::Fail;
                continue;
            }
        };
        let sim = run_scenario(scenario, args.seed.unwrap_or(scenario.seed));
        let confirmation = compare(scenario, (&sim.outcome, &sim.record), (&real.outcome, &real.record), started.elapsed());
        if !confirmation.passed() {
            exit = Exit::Fail;
        }
        spinner.suspend(|| {
            if args.json {
                println!("{}", serde_json::to_string(&confirmation).expect("serialisable"));
            } else {
                println!("{confirmation}");
            }
        });
    }
    spinner.finish_and_clear();
    exit
}
