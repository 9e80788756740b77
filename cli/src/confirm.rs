//! `tandem confirm PATH... [--transport msquic] [--seed N] [--json]`

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use tandem::scenario::format_duration;

use crate::bundle::Bundle;
use crate::robust::{fragile_warning, RobustnessArgs};
use crate::shared::{prepare, without_msquic, write_picture, Exit};
use tandem_sim::Backend;

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
    /// Real runs per scenario (one simulated run): how often the real stack
    /// shows the simulation's verdict, printed as `agreed=k/K`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// Write the timeline pictures to FILE (one HTML page): each scenario's
    /// simulated run above its run over MsQuic.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// How robust the simulated verdict is, measured before any real run
    /// (`--robustness K`, `--min-robust F`).
    #[command(flatten)]
    robustness: RobustnessArgs,
}

/// Runs each scenario over real MsQuic and in simulation and compares them.
/// A build without MsQuic says how to get one (exit 2).
pub fn confirm(args: ConfirmArgs, systems: &[&dyn Bundle], backend: Backend) -> Exit {
    let RealTransport::Msquic = args.transport;
    if let Some(exit) = without_msquic("confirm") {
        return exit;
    }
    let scenarios = match prepare(&args.paths, args.log.as_deref(), systems) {
        Ok(scenarios) => scenarios,
        Err(exit) => return exit,
    };
    let mut exit = Exit::Pass;
    let mut pictures = Vec::new();
    let spinner = if args.json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    spinner.enable_steady_tick(Duration::from_millis(120));
    let rule = args.robustness.rule();
    for loaded in &scenarios {
        let scenario = &loaded.scenario;
        let seed = args.seed.unwrap_or(scenario.seed);
        spinner.set_message(format!("{}: {} simulated runs with perturbed timing", scenario.name, rule.runs));
        let (failure, robustness) = loaded.system.robustness(backend, scenario, seed, rule.runs);
        if let Some(failure) = failure.filter(|_| !robustness.meets(&rule)) {
            spinner.suspend(|| eprintln!("{}: {}", scenario.name, fragile_warning(&failure.code, &robustness, &rule)));
        }
        spinner.set_message(format!(
            "{}: real run over MsQuic ({} of wall time)",
            scenario.name,
            format_duration(scenario.duration)
        ));
        let confirmation = match loaded.system.confirm(backend, scenario, seed, args.runs as usize, args.html.is_some())
        {
            Ok(mut confirmation) => {
                pictures.append(&mut confirmation.pictures);
                confirmation.robustness = (rule.runs > 0).then_some(robustness);
                confirmation
            }
            Err(error) => {
                eprintln!("{}: the real cluster did not start: {error}", scenario.name);
                exit = Exit::Fail;
                continue;
            }
        };
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
    if let Some(page) = &args.html {
        if let Err(error) = write_picture(page, &pictures) {
            eprintln!("{error}");
            return Exit::Usage;
        }
    }
    exit
}
