//! The `tandem` command with tandem's bundled systems: see `tandem --help`
//! and docs/cli.md. The library never imports these systems; this binary
//! does, as a user's own `main` would, and adds `tandem bench`, which
//! measures them, and `tandem calibrate`, which measures the real stack.

use clap::{Args, FromArgMatches};

mod bench;
mod calibrate;

fn main() -> std::process::ExitCode {
    let bench = tandem_cli::Extra {
        command: bench::cli::BenchArgs::augment_args(clap::Command::new("bench"))
            .about("Measure tandem against raw turmoil, raw MsQuic and UDP (BENCHMARKS.md)")
            .after_help(
                "Examples:
  tandem bench                       every section, best of 3 (minutes)
  tandem bench --quick               small workloads, seconds (CI)
  tandem bench --section sim --json",
            ),
        run: Box::new(|matches| match bench::cli::BenchArgs::from_arg_matches(matches) {
            Ok(args) => bench::cli::bench(args),
            Err(error) => error.exit(),
        }),
    };
    let calibrate = tandem_cli::Extra {
        command: calibrate::CalibrateArgs::augment_args(clap::Command::new("calibrate"))
            .about("Measure MsQuic on loopback and the local disk; write a calibration profile for the simulation")
            .after_help(
                "Examples:
  tandem calibrate                                 100 samples of each (about 30 s), to profiles/local.toml
  tandem calibrate --samples 20 --out my.toml
  tandem run scenarios/twophase/ --profile my.toml the simulation with that disk latency

The QUIC measurements need a build with MsQuic:
  cargo run --release -p tandem-cli --features msquic -- calibrate",
            ),
        run: Box::new(|matches| match calibrate::CalibrateArgs::from_arg_matches(matches) {
            Ok(args) => calibrate::calibrate(args),
            Err(error) => error.exit(),
        }),
    };
    tandem_cli::main_with_extra(
        &[&tandem_pubsub::PubSub, &tandem_kv::Kv, &tandem_twophase::TwoPhase, &tandem_primary::Primary],
        vec![bench, calibrate],
    )
}
