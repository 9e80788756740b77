//! `tandem bench [--quick] [--json] [--section NAME]... [--reps N]`

use clap::Args;

use tandem_cli::Exit;

use crate::bench::memory::{run_probe, Probe};
use crate::bench::{run, Options, Section};

/// Arguments of `tandem bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Small workloads that finish in seconds (for CI); not the published figures.
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run only these sections (repeatable); all but `bugs` and `fidelity` by default.
    #[arg(long = "section", value_enum)]
    sections: Vec<Section>,
    /// Repetitions of each timing, the best counting (default 3, 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// The bug and fidelity benchmarks: exploration seeds per bug (default 20
    /// and 3, 3 and 1 with --quick).
    #[arg(long, value_name = "N")]
    bug_seeds: Option<u64>,
    /// The bug and fidelity benchmarks: only these planted bugs (repeatable);
    /// all by default.
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Internal: run one memory workload and print its peak RSS in KiB.
    #[arg(long, value_enum, hide = true)]
    probe: Option<Probe>,
}

/// Runs the benchmark suite and prints its report; exits 1 when a section
/// could not run. Missed targets are reported, not failures.
pub fn bench(args: BenchArgs) -> Exit {
    if let Some(probe) = args.probe {
        return match run_probe(probe, args.quick) {
            Ok(kib) => {
                println!("{kib}");
                Exit::Pass
            }
            Err(error) => {
                eprintln!("{error}");
                Exit::Fail
            }
        };
    }
    let sections = if args.sections.is_empty() {
        vec![Section::Sim, Section::Explore, Section::Quic, Section::Memory, Section::Scaling, Section::Checker]
    } else {
        args.sections
    };
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 });
    let options = Options { quick: args.quick, reps, sections, bug_seeds: args.bug_seeds, bugs: args.bugs };
    let report = run(&options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        print!("{}", report.to_text());
    }
    // A section this build cannot run (no MsQuic) is reported as skipped, not failed.
    Exit::Pass
}
