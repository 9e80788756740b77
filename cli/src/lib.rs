//! # tandem-cli
//!
//! The `tandem` command line (`docs/cli.md`), for any set of systems, on
//! top of both backends: the simulation (`tandem-sim`) and, with the
//! `msquic` feature, real QUIC (`tandem-msquic`) for `tandem confirm`.
//!
//! A user's system gets the whole command through a few lines of their own
//! `main`:
//!
//! ```no_run
//! # #[derive(Clone)] struct MySystem;
//! # fn main() {}
//! # fn demo(my_system: impl tandem_cli::bundle::Bundle) -> std::process::ExitCode {
//! tandem_cli::main_with(&[&my_system])
//! # }
//! ```
//!
//! Exit codes for every subcommand: 0 all good, 1 a run failed, 2 bad input
//! or usage, reported before anything runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use tandem_sim::Backend;

use crate::bundle::Bundle;

pub mod bundle;
mod check;
pub mod compare;
mod confirm;
mod coverage_page;
mod explore;
mod merge;
mod robust;
mod run;
mod shared;
mod systems;

pub use shared::{load_all, prepare, scenario_files, without_msquic, write_picture, Exit, Loaded};
pub use tandem_sim::report::FAILURES_DIR;

/// Parses `--backend`, listing the backends in `--help`.
fn backend_names() -> impl clap::builder::TypedValueParser<Value = Backend> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Backend::ALL.map(Backend::name))
        .map(|name| name.parse::<Backend>().expect("a listed backend"))
}

/// Deterministic simulation testing for networked nodes: run scenario files
/// against your system in a seeded simulation, replay failures exactly,
/// explore generated scenarios and shrink what fails, draw any run as a
/// timeline picture, and confirm findings over real QUIC (MsQuic).
#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    after_help = "Examples:
  tandem run scenarios/ --seeds 20            every scenario in the folder, seeds 0..19
  tandem replay target/tandem/failures/partition_heal-seed3.toml --html run.html
  tandem explore --cases 500 --jobs 2         generate, run and shrink scenarios
  tandem systems                              what this binary can test

Exit codes: 0 all good, 1 a run failed, 2 bad input (reported before anything runs).
Docs: docs/cli.md, docs/scenario-format.md, docs/guide.md (test your own node)."
)]
struct Cli {
    /// The simulator: `events` (discrete events, the default) or `turmoil`
    /// (turmoil 0.7, tick by tick). Also read from TANDEM_BACKEND.
    #[arg(long, global = true, value_name = "BACKEND", value_parser = backend_names(), env = "TANDEM_BACKEND", default_value = "events")]
    backend: Backend,
    /// The calibration profile the simulation takes its disk latency from
    /// (written by `tandem calibrate`); default: the one compiled in,
    /// profiles/default.toml. Also read from TANDEM_PROFILE.
    #[arg(long, global = true, value_name = "FILE")]
    profile: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios in the deterministic simulation.
    #[command(after_help = "Examples:
  tandem run scenarios/hot_reload.toml
  tandem run scenarios/ scenarios/kv/ --seeds 20
  tandem run scenarios/partition_heal.toml --seed 3 --trace run.jsonl --html run.html
  tandem run scenarios/loss_20.toml --seeds 5 --check-determinism")]
    Run(run::RunArgs),
    /// Run a reproducer file and print its result line.
    #[command(after_help = "Examples:
  tandem replay target/tandem/failures/partition_heal-seed3.toml
  tandem replay target/tandem/failures/partition_heal-seed3.toml --html failure.html   (open it in a browser)")]
    Replay(run::ReplayArgs),
    /// Validate scenario files without running them.
    #[command(after_help = "Examples:
  tandem check scenarios/
  tandem check my_scenario.toml        errors name FILE:LINE:COLUMN and exit 2")]
    Check(check::CheckArgs),
    /// Run scenarios over real MsQuic on loopback and in simulation, and compare.
    #[command(after_help = "Examples:
  tandem confirm scenarios/hot_reload.toml
  tandem confirm target/tandem/failures/explore-s1-c5.toml --html both.html

Needs a build with MsQuic (cmake and libnuma-dev):
  cargo run --release -p tandem-cli --features msquic -- confirm scenarios/hot_reload.toml")]
    Confirm(confirm::ConfirmArgs),
    /// Generate scenarios, run them, and shrink the first failure.
    #[command(after_help = "Examples:
  tandem explore --cases 500 --seed 1
  tandem explore --cases 2000 --jobs 2 --nodes 2..6
  tandem explore --system kv --mutation no-tiebreak --html found.html
  tandem explore --cases 20000 --seed 42 --shard 1/4     one machine of four
  tandem explore --cases 4096 --seed 42 --shard auto/4   the shard from JOB_COMPLETION_INDEX, CI_NODE_INDEX, ...")]
    Explore(Box<explore::ExploreArgs>),
    /// Merge the result files of every shard of one exploration: check
    /// they tile its cases, union coverage, keep the smallest reproducer
    /// of each distinct failure.
    #[command(after_help = "Examples:
  tandem merge target/tandem/failures/explore-s42-shard-*-of-4.json
  tandem merge /results/*.json --out failures/ --json")]
    Merge(merge::MergeArgs),
    /// List the systems this binary can test, with their operations,
    /// conditions, properties and planted bugs.
    #[command(after_help = "Examples:
  tandem systems
  tandem systems --json")]
    Systems(systems::SystemsArgs),
}

/// A subcommand a binary adds to the standard ones (the bundled binary adds
/// `bench`).
pub struct Extra {
    /// The subcommand, as clap builds it.
    pub command: clap::Command,
    /// Runs it.
    pub run: Box<dyn Fn(&ArgMatches) -> Exit>,
}

/// The whole `tandem` command for `systems` (the first is the default of
/// scenario files that name none): parses the command line, runs the
/// subcommand and returns its exit code.
pub fn main_with(systems: &[&dyn Bundle]) -> ExitCode {
    main_with_extra(systems, Vec::new())
}

/// [`main_with`], plus subcommands of the binary's own.
///
/// # Panics
///
/// When `systems` is empty.
pub fn main_with_extra(systems: &[&dyn Bundle], extras: Vec<Extra>) -> ExitCode {
    assert!(!systems.is_empty(), "tandem needs at least one system");
    exit_quietly_when_the_reader_goes();
    let program = tandem_sim::report::name_program_from_args();
    let mut command = Cli::command();
    if program != "tandem" {
        // A user's own binary names itself, and says which tandem it carries.
        command = command.name(program).bin_name(program).version(concat!("(tandem ", env!("CARGO_PKG_VERSION"), ")"));
    }
    for extra in &extras {
        command = command.subcommand(extra.command.clone());
    }
    // clap prints help and version with code 0 and usage errors with code 2.
    let matches = command.try_get_matches().unwrap_or_else(|error| error.exit());
    if let Some(path) = matches.get_one::<PathBuf>("profile") {
        if let Err(exit) = select_profile(path) {
            return exit.into();
        }
    }
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(extra) = extras.iter().find(|e| e.command.get_name() == name) {
            return (extra.run)(sub).into();
        }
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match cli.command {
        Command::Run(args) => run::run(args, systems, cli.backend),
        Command::Replay(args) => run::replay(args, systems, cli.backend),
        Command::Check(args) => check::check(args, systems),
        Command::Confirm(args) => confirm::confirm(args, systems, cli.backend),
        Command::Explore(args) => explore::explore(*args, systems, cli.backend),
        Command::Merge(args) => merge::merge(args, systems),
        Command::Systems(args) => systems::systems(args, systems),
    }
    .into()
}

/// Makes the profile file at `path` this process's and its children's
/// (`TANDEM_PROFILE`, which the simulation reads); a file that is no profile
/// is bad input.
fn select_profile(path: &Path) -> Result<(), Exit> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Err(error) = tandem::engine::profile::Profile::from_file(&absolute) {
        eprintln!("--profile: {error}");
        return Err(Exit::Usage);
    }
    // Before any thread starts: children (`--check-determinism`) inherit it.
    std::env::set_var("TANDEM_PROFILE", absolute);
    Ok(())
}

/// Gives SIGPIPE back its default action, which Rust's runtime ignores: a
/// command whose output is piped into a reader that goes away (`tandem
/// systems | head -1`) then ends quietly, as Unix commands do, instead of
/// panicking on its next `println!`. The real backend only writes to UDP
/// sockets, which never raise it.
fn exit_quietly_when_the_reader_goes() {
    #[cfg(unix)]
    // SAFETY: `signal` with `SIG_DFL` installs no handler of ours; it runs at
    // the start of `main`, before this process writes anywhere.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clap's own checks of every subcommand's flags.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
