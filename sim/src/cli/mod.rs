//! The `tandem` command line (`spec/cli.md`).
//!
//! Exit codes for every subcommand: 0 all good, 1 a run failed, 2 bad input
//! or usage, reported before anything runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tandem::scenario::Scenario;

mod bench;
mod check;
#[cfg(feature = "msquic")]
mod confirm;
mod explore;
mod run;

pub use run::FAILURES_DIR;

/// How a subcommand ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Pass,
    /// A run failed.
    Fail,
    /// Bad input or usage.
    Usage,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Pass => 0,
            Exit::Fail => 1,
            Exit::Usage => 2,
        })
    }
}

/// Deterministic simulation testing for networked nodes.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios in the deterministic simulation.
    Run(run::RunArgs),
    /// Run a reproducer file and print its result line.
    Replay(run::ReplayArgs),
    /// Validate scenario files without running them.
    Check(check::CheckArgs),
    /// Measure tandem against raw turmoil, raw MsQuic and UDP (BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Run scenarios over real MsQuic on loopback and in simulation, and compare.
    #[cfg(feature = "msquic")]
    Confirm(confirm::ConfirmArgs),
    /// Generate scenarios, run them, and shrink the first failure.
    Explore(explore::ExploreArgs),
}

/// Parses the command line, runs the subcommand and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help and version with code 0 and usage errors with code 2.
        Err(error) => error.exit(),
    };
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Replay(args) => run::replay(args),
        Command::Check(args) => check::check(args),
        Command::Bench(args) => bench::bench(args),
        #[cfg(feature = "msquic")]
        Command::Confirm(args) => confirm::confirm(args),
        Command::Explore(args) => explore::explore(args),
    }
    .into()
}

/// The scenario files named by `paths`: files as given, directories as every
/// `*.toml` inside, sorted by name.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("{}: no *.toml scenario files in this directory", path.display()));
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    Ok(files)
}

/// Parses every file, or returns the first error as `FILE:LINE:COLUMN: message`.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Scenario)>, String> {
    scenario_files(paths)?
        .into_iter()
        .map(|file| load(&file).map(|s| (file, s)))
        .collect()
}

fn load(file: &Path) -> Result<Scenario, String> {
    Scenario::from_file(file).map_err(|e| e.to_string())
}

/// Loads every scenario and sets up logging before anything runs; on bad
/// input prints why and gives the usage exit.
pub fn prepare(paths: &[PathBuf], log: Option<&Path>) -> Result<Vec<(PathBuf, Scenario)>, Exit> {
    let scenarios = load_all(paths).map_err(|error| {
        eprintln!("{error}");
        Exit::Usage
    })?;
    crate::logging::init(log).map_err(|error| {
        eprintln!("{}: {error}", log.map(Path::display).map(|d| d.to_string()).unwrap_or_default());
        Exit::Usage
    })?;
    Ok(scenarios)
}
