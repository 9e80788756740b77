//! `tandem bench`: how fast tandem is, as ratios against what a user would
//! otherwise use, each measured in the same run as its baseline.
//!
//! | item | module | baseline |
//! |------|--------|----------|
//! | 1. simulation speed | [`sim_speed`] | [`raw_turmoil`] at the same tick |
//! | 2. exploration throughput | [`explore`] | one core vs `--jobs 2` |
//! | 3. real transport | `quic` | `raw_quic` streams, [`udp`] echo |
//! | 4. memory | [`memory`] | raw turmoil, an idle process |
//! | 5. scaling | [`scaling`] | raw turmoil at each size |
//! | 6. bug finding (`--section bugs`) | [`bugs`] | every planted bug, many seeds |
//! | 7. fidelity (`--section fidelity`) | `fidelity` | the simulation's verdict, over MsQuic |
//! | 8. consistency checking | [`checker`] | a goal: a 10,000-call kv history in under a second |
//!
//! Timings are the best of several repetitions (one when quick), which
//! filters out noise from whatever else shares the machine.
//!
//! Benchmarks measure wall-clock time, so this module uses `std::time::Instant`
//! (and, for the UDP echo baseline, an OS thread) outside any simulation.

// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::Instant;

pub mod bugs;
pub mod checker;
pub mod cli;
pub mod explore;
#[cfg(feature = "msquic")]
pub mod fidelity;
pub mod memory;
#[cfg(feature = "msquic")]
pub mod quic;
#[cfg(feature = "msquic")]
pub mod raw_quic;
pub mod raw_turmoil;
pub mod report;
pub mod scaling;
pub mod sim_speed;
#[cfg(feature = "msquic")]
pub mod udp;
pub mod workload;

pub use report::{Machine, Report};

/// A part of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Section {
    /// 1. Simulated seconds per wall second, against raw turmoil.
    Sim,
    /// 2. Exploration cases per second.
    Explore,
    /// 3. MsQuic throughput and latency, against raw msquic and UDP.
    Quic,
    /// 4. Peak RSS.
    Memory,
    /// 5. Wall time against node count.
    Scaling,
    /// 6. Cases and time to find every planted bug (only on request: minutes).
    Bugs,
    /// 7. Reproducers and bundled scenarios over MsQuic (only on request: an hour).
    Fidelity,
    /// 8. The linearizability checker on a 10,000-call kv history.
    Checker,
}

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small workloads that finish in seconds (for CI); not the published figures.
    pub quick: bool,
    /// Repetitions of each timing; the best counts.
    pub reps: usize,
    /// The sections to run.
    pub sections: Vec<Section>,
    /// Exploration seeds per planted bug, instead of the default.
    pub bug_seeds: Option<u64>,
    /// The planted bugs to hunt; empty: all.
    pub bugs: Vec<String>,
}

/// Runs the sections of `options` and collects their figures. A section
/// that cannot run (no MsQuic in this build) is listed as skipped.
pub fn run(options: &Options) -> Report {
    let mut report =
        Report { machine: Machine::this(), quick: options.quick, figures: Vec::new(), skipped: Vec::new() };
    for &section in &options.sections {
        let figures = match section {
            Section::Sim => Ok(sim_speed::measure(options)),
            Section::Explore => Ok(explore::measure(options)),
            #[cfg(feature = "msquic")]
            Section::Quic => quic::measure(options),
            #[cfg(not(feature = "msquic"))]
            Section::Quic => Err("built without the msquic feature".to_string()),
            Section::Memory => memory::measure(options),
            Section::Scaling => Ok(scaling::measure(options)),
            Section::Bugs => Ok(bugs::measure(options)),
            Section::Checker => Ok(checker::measure(options)),
            #[cfg(feature = "msquic")]
            Section::Fidelity => fidelity::measure(options),
            #[cfg(not(feature = "msquic"))]
            Section::Fidelity => Err("built without the msquic feature".to_string()),
        };
        match figures {
            Ok(figures) => report.figures.extend(figures),
            Err(reason) => report.skipped.push(format!("{section:?}: {reason}")),
        }
    }
    report
}

/// Runs `f` `reps` times; returns the shortest wall time in seconds and the
/// last result.
pub fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        let result = f();
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(result);
    }
    (best, last.expect("at least one repetition"))
}

/// Runs `f`, which measures its own seconds, `reps` times; returns the least.
#[cfg(feature = "msquic")]
pub fn fastest<E>(reps: usize, mut f: impl FnMut() -> Result<f64, E>) -> Result<f64, E> {
    (0..reps.max(1)).try_fold(f64::INFINITY, |best, _| Ok(best.min(f()?)))
}
