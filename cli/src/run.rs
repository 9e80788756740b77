//! `tandem run` and `tandem replay`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
// Wall-clock `Instant`: the wall= figure of a result line, measured outside the simulation.
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tandem::history::first_difference;
use tandem::scenario::Scenario;

use crate::bundle::{Bundle, Finished, Keep};
use crate::robust::words;
use crate::shared::{prepare, write_picture, Exit};
use tandem_sim::explore::robust::{Rule, DEFAULT_MIN};
use tandem_sim::report::{model_warning, write_reproducer, RunReport, Verdict, FAILURES_DIR};
use tandem_sim::Backend;

/// Arguments of `tandem run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, or directories of them (every `*.toml`, sorted by name).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The first seed (default: each file's `seed`, else 0).
    #[arg(long)]
    seed: Option<u64>,
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Write the trace as JSON lines (several runs: each preceded by a `run` line).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Run each seed twice in two separate processes and compare the digests.
    #[arg(long)]
    check_determinism: bool,
    /// Print one JSON object per run instead of the text line.
    #[arg(long)]
    json: bool,
    /// Write the runs' logs (`tracing`, simulated timestamps) to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Where reproducers of failing runs go.
    #[arg(long, value_name = "DIR", default_value = FAILURES_DIR)]
    out: PathBuf,
    /// Write the timeline picture to FILE (one HTML page): of every failing
    /// run, or of the first run when all pass.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// Arguments of `tandem replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A reproducer: a scenario file with `seed` (and `mutation`) set.
    file: PathBuf,
    /// Write the trace as JSON lines.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Print a JSON object instead of the text line.
    #[arg(long)]
    json: bool,
    /// Write the run's logs to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Write the run's timeline picture to FILE (one HTML page).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Also measure how robust the replayed verdict is in K runs with
    /// perturbed timing, and print it (`  robust k/K`; `--json`: `robustness`).
    #[arg(long, value_name = "K")]
    robustness: Option<u32>,
}

/// Collects traces for `--trace`.
struct TraceSink {
    path: PathBuf,
    text: String,
    runs: usize,
}

impl TraceSink {
    fn add(&mut self, scenario: &str, seed: u64, run: &Finished, total: u64) {
        if total > 1 {
            let header = serde_json::json!({ "run": { "scenario": scenario, "seed": seed } });
            self.text.push_str(&format!("{header}\n"));
        }
        self.text.push_str(run.trace.as_deref().unwrap_or_default());
        self.runs += 1;
    }

    fn write(&self) -> Result<(), String> {
        std::fs::write(&self.path, &self.text).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

fn emit(report: &RunReport, json: bool, bar: &ProgressBar) {
    bar.suspend(|| {
        if json {
            println!("{}", report.json());
        } else {
            println!("{report}");
        }
        let _ = std::io::stdout().flush();
    });
}

/// `tandem run`.
pub fn run(args: RunArgs, systems: &[&dyn Bundle], backend: Backend) -> Exit {
    let scenarios = match prepare(&args.paths, args.log.as_deref(), systems) {
        Ok(scenarios) => scenarios,
        Err(exit) => return exit,
    };
    let total = scenarios.len() as u64 * args.seeds;
    let bar = if args.json || total < 2 { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} runs {elapsed} {msg}").expect("valid template"));
    let mut sink = args.trace.clone().map(|path| TraceSink { path, text: String::new(), runs: 0 });
    let keep = Keep { trace: sink.is_some(), picture: args.html.is_some() };
    let (mut first_picture, mut failing) = (None, Vec::new());
    let mut exit = Exit::Pass;
    let mut goals: BTreeMap<String, bool> = BTreeMap::new();
    for loaded in &scenarios {
        let (file, scenario) = (&loaded.file, &loaded.scenario);
        let first = args.seed.unwrap_or(scenario.seed);
        for seed in first..first + args.seeds {
            bar.set_message(format!("{} seed={seed}", scenario.name));
            let report = if args.check_determinism {
                determinism_report(file, scenario, seed, backend)
            } else {
                // Wall time of the whole run, measured outside the simulation.
                let started = Instant::now();
                let mut run = loaded.system.simulate(backend, scenario, seed, keep);
                for goal in &run.outcome.coverage {
                    *goals.entry(goal.goal.clone()).or_default() |= goal.hit;
                }
                let mut report = RunReport::new(scenario, seed, &run.outcome, run.digest, started.elapsed());
                if let Some(sink) = sink.as_mut() {
                    sink.add(&scenario.name, seed, &run, total);
                }
                match run.picture.take() {
                    Some(picture) if !report.passed() => failing.push(picture),
                    Some(picture) if first_picture.is_none() => first_picture = Some(picture),
                    _ => {}
                }
                if !report.passed() {
                    report.reproduce = write_reproducer(&args.out, scenario, seed)
                        .map_err(|e| eprintln!("cannot write the reproducer: {e}"))
                        .ok();
                }
                report
            };
            if !report.passed() {
                exit = Exit::Fail;
            }
            emit(&report, args.json, &bar);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let missed: Vec<&str> = goals.iter().filter(|(_, hit)| !**hit).map(|(goal, _)| goal.as_str()).collect();
    if !args.json && !missed.is_empty() {
        eprintln!("missed (no run reached these coverage goals): {}", missed.join("; "));
    }
    if let Some(Err(error)) = sink.map(|s| s.write()) {
        eprintln!("{error}");
        return Exit::Usage;
    }
    if let Some(page) = &args.html {
        let pictures = if failing.is_empty() { first_picture.into_iter().collect() } else { failing };
        if let Err(error) = write_picture(page, &pictures) {
            eprintln!("{error}");
            return Exit::Usage;
        }
    }
    exit
}

/// Runs `seed` of `file` twice, each in a child `tandem run` process, and
/// compares the digests.
fn determinism_report(file: &Path, scenario: &Scenario, seed: u64, backend: Backend) -> RunReport {
    let children = run_child(file, seed, 0, backend).and_then(|a| Ok((a, run_child(file, seed, 1, backend)?)));
    let ((first, trace_a), (second, trace_b)) = match children {
        Ok(children) => children,
        Err(error) => return broken(scenario, seed, &error),
    };
    if first.trace == second.trace {
        return first;
    }
    let difference = match first_difference(&trace_a, &trace_b) {
        Some((line, a, b)) => format!(" first difference at event {line}:\n    process 1: {a}\n    process 2: {b}"),
        None => String::new(),
    };
    let failure = format!("nondeterministic: digests {} and {} differ;{difference}", first.trace, second.trace);
    RunReport { result: Verdict::Fail, failure: Some(failure), ..first }
}

fn broken(scenario: &Scenario, seed: u64, error: &str) -> RunReport {
    RunReport {
        result: Verdict::Fail,
        scenario: scenario.name.clone(),
        seed,
        sim_secs: 0.0,
        wall_ms: 0,
        trace: "0000000000000000".into(),
        failure: Some(format!("determinism check could not run: {error}")),
        reproduce: None,
        missed: Vec::new(),
        signature: 0,
    }
}

/// Runs one seed in a child `tandem run --json` and returns its report and trace.
fn run_child(file: &Path, seed: u64, index: usize, backend: Backend) -> Result<(RunReport, String), String> {
    let trace = std::env::temp_dir().join(format!("tandem-determinism-{}-{seed}-{index}.jsonl", std::process::id()));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg("run")
        .args(["--backend", backend.name()])
        .arg(file)
        .args(["--seed", &seed.to_string(), "--json", "--trace"])
        .arg(&trace)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().next().ok_or_else(|| String::from_utf8_lossy(&output.stderr).into_owned())?;
    let report: RunReport = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
    let text = std::fs::read_to_string(&trace).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&trace);
    Ok((report, text))
}

/// `tandem replay`.
pub fn replay(args: ReplayArgs, systems: &[&dyn Bundle], backend: Backend) -> Exit {
    let loaded = match prepare(std::slice::from_ref(&args.file), args.log.as_deref(), systems) {
        Ok(mut scenarios) => scenarios.remove(0),
        Err(exit) => return exit,
    };
    let scenario = &loaded.scenario;
    if let Some(warning) = std::fs::read_to_string(&loaded.file).ok().as_deref().and_then(model_warning) {
        eprintln!("{}: {warning}", loaded.file.display());
    }
    // Wall time for the report, outside the simulation.
    let started = Instant::now();
    let keep = Keep { trace: args.trace.is_some(), picture: args.html.is_some() };
    let run = loaded.system.simulate(backend, scenario, scenario.seed, keep);
    let report = RunReport::new(scenario, run.seed, &run.outcome, run.digest, started.elapsed());
    if let Some(path) = &args.trace {
        if let Err(e) = std::fs::write(path, run.trace.as_deref().unwrap_or_default()) {
            eprintln!("{}: {e}", path.display());
            return Exit::Usage;
        }
    }
    if let Some(page) = &args.html {
        if let Err(error) = write_picture(page, run.picture.as_slice()) {
            eprintln!("{error}");
            return Exit::Usage;
        }
    }
    let Some(runs) = args.robustness else {
        emit(&report, args.json, &ProgressBar::hidden());
        return if report.passed() { Exit::Pass } else { Exit::Fail };
    };
    let (_, robustness) = loaded.system.robustness(backend, scenario, scenario.seed, runs);
    let fragile = !report.passed() && !robustness.meets(&Rule { runs, min: DEFAULT_MIN });
    if args.json {
        let mut line = serde_json::to_value(&report).expect("reports serialise");
        line["robustness"] = serde_json::json!(robustness);
        line["fragile"] = serde_json::json!(fragile);
        println!("{line}");
    } else {
        println!("{report}\n  {}", words(&robustness, fragile));
    }
    if report.passed() {
        Exit::Pass
    } else {
        Exit::Fail
    }
}
