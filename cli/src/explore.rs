//! `tandem explore`: property-based exploration (`spec/cli.md`).

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
// Wall-clock `Instant`: `--for` bounds real work, outside any simulation.
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tandem::scenario::{format_duration, parse_duration, MAX_NODES, MAX_STAGGER};

use crate::bundle::{Bundle, Hunt, Keep};
use crate::coverage_page::{self, Curve};
use crate::robust::{comment, fragile_warning, words, RobustnessArgs};
use crate::shared::{without_msquic, write_picture, Exit};
use tandem_sim::explore::case::Origin;
use tandem_sim::explore::guide::{Guide, Progress};
use tandem_sim::explore::results::{Found, Identity, ShardResult};
use tandem_sim::explore::robust::Rule;
use tandem_sim::explore::runner::{CaseRun, Plan, Shard, UNBOUNDED};
use tandem_sim::explore::shards::ShardSpec;
use tandem_sim::explore::shrink::{self, Shrunk, DEFAULT_BUDGET};
use tandem_sim::explore::strategy::Space;
use tandem_sim::report::FAILURES_DIR;
use tandem_sim::report::{next_steps, reproducer_toml, write_reproducer_text, Verdict};
use tandem_sim::Backend;

/// Arguments of `tandem explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// How many scenarios to generate and run [default: 256, or no bound with --for].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    cases: Option<u64>,
    /// A wall-clock budget, per shard: take no new case after D (like 90s
    /// or 10m); with --cases too, whichever ends first.
    #[arg(long = "for", value_name = "D", value_parser = parse_budget)]
    budget: Option<Duration>,
    /// The exploration's seed (default: random); it determines every case.
    #[arg(long)]
    seed: Option<u64>,
    /// Node counts, `MIN..MAX` inclusive (or one count).
    #[arg(long, default_value = "2..5", value_parser = parse_nodes)]
    nodes: RangeInclusive<u32>,
    /// Every scenario's duration, the settle tail included (at least 1s more than it).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Every scenario's settle tail (default: what the system tolerates, see `tandem systems`).
    #[arg(long, value_parser = parse_duration)]
    settle: Option<Duration>,
    /// Nodes first boot at offsets drawn within this (default: what the
    /// system tolerates, see `tandem systems`; at most 1s).
    #[arg(long, value_parser = parse_duration)]
    stagger: Option<Duration>,
    /// Clients per node: each runs one operation at a time, so a node's
    /// operations overlap with more than one (default: what the system
    /// asks for, see `tandem systems`; at most 64).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(tandem::scenario::MAX_CLIENTS)))]
    clients: Option<u32>,
    /// Threads to run cases on; the results are the same as with one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
    /// Run only shard I of N (1 <= I <= N): the cases whose index modulo N
    /// is I-1. `auto/N` reads I from the environment (TANDEM_SHARD,
    /// JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX, CI_NODE_INDEX,
    /// CIRCLE_NODE_INDEX, BUILDKITE_PARALLEL_JOB), `auto` N too (CI_NODE_TOTAL,
    /// CIRCLE_NODE_TOTAL, BUILDKITE_PARALLEL_JOB_COUNT).
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<ShardSpec>,
    /// Write the result file (JSON, for `tandem merge`) to FILE; with
    /// `--shard`, the default is DIR/explore-s<SEED>-shard-<I>-of-<N>.json.
    #[arg(long, value_name = "FILE")]
    result: Option<PathBuf>,
    /// The system to explore (default: the first this binary carries; see `tandem systems`).
    #[arg(long, value_name = "NAME")]
    system: Option<String>,
    /// Run the system with this planted bug (see `tandem systems`).
    #[arg(long, value_name = "NAME")]
    mutation: Option<String>,
    /// Judge the cases by this property only (repeatable; an `always` or
    /// `eventually` code, see `tandem systems`); default: every property.
    #[arg(long = "property", value_name = "CODE")]
    properties: Vec<String>,
    /// Draw operations from this workload of the system (see `tandem
    /// systems`); default: its first.
    #[arg(long, value_name = "NAME")]
    workload: Option<String>,
    /// Leave out the system's final phase (the operations explored
    /// scenarios issue after the settle, faults healed).
    #[arg(long)]
    no_final: bool,
    /// Where the reproducer of a failure goes.
    #[arg(long, value_name = "DIR", default_value = FAILURES_DIR)]
    out: PathBuf,
    /// Print one JSON object per case and a JSON summary instead of the text line.
    #[arg(long)]
    json: bool,
    /// Write the timeline picture of the shrunk reproducer's run to FILE (HTML).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the coverage over cases and over wall seconds to FILE (HTML).
    #[arg(long, value_name = "FILE")]
    coverage_html: Option<PathBuf>,
    /// How cases are drawn: `swarm` (every case fresh), `coverage` (some
    /// mutate earlier cases that reached something new) or `branch` (some
    /// keep an earlier case's timeline up to the moment it reached something
    /// new or rare, and draw a new future from there).
    #[arg(long, default_value_t = Guide::Coverage, value_parser = parse_guide)]
    guide: Guide,
    /// Run the shrunk reproducer K times over MsQuic (needs the `msquic`
    /// feature) and print how often the real stack fails the same way.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    confirm: Option<u64>,
    /// Stop once N cases in a row (in case order) reached nothing new.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    until_stable: Option<u64>,
    /// How robust a shrunk failure must stay (`--robustness K`, `--min-robust F`).
    #[command(flatten)]
    robustness: RobustnessArgs,
}

/// The cases of an exploration without `--cases`.
const DEFAULT_CASES: u64 = 256;

fn parse_budget(s: &str) -> Result<Duration, String> {
    let budget = parse_duration(s)?;
    if budget.is_zero() {
        return Err(format!("invalid budget `{s}`, expected a duration above zero, like 90s or 10m"));
    }
    Ok(budget)
}

fn parse_guide(s: &str) -> Result<Guide, String> {
    s.parse()
}

fn parse_nodes(s: &str) -> Result<RangeInclusive<u32>, String> {
    let expected =
        || format!("invalid node range `{s}`, expected MIN..MAX with 1 <= MIN <= MAX <= {MAX_NODES}, like 2..5");
    let (min, max) = s.split_once("..").unwrap_or((s, s));
    let min: u32 = min.trim().parse().map_err(|_| expected())?;
    let max: u32 = max.trim().parse().map_err(|_| expected())?;
    if min == 0 || min > max || max > MAX_NODES {
        return Err(expected());
    }
    Ok(min..=max)
}

fn parse_shard(s: &str) -> Result<ShardSpec, String> {
    s.parse()
}

/// The system `--system` names, and the planted bug `--mutation` names, or why not.
fn pick<'a>(args: &ExploreArgs, systems: &[&'a dyn Bundle]) -> Result<&'a dyn Bundle, String> {
    let names = || systems.iter().map(|s| s.syntax().system()).collect::<Vec<_>>().join(", ");
    let system = match &args.system {
        Some(name) => *systems
            .iter()
            .find(|s| s.syntax().system() == name)
            .ok_or_else(|| format!("unknown system `{name}`, expected one of {}", names()))?,
        None => systems[0],
    };
    if let Some(mutation) = &args.mutation {
        let bugs = system.syntax().bugs();
        if !bugs.iter().any(|b| b.name == mutation) {
            let known: Vec<&str> = bugs.iter().map(|b| b.name).collect();
            return Err(format!(
                "unknown mutation `{mutation}` of system `{}`, expected one of: {}",
                system.syntax().system(),
                known.join(", ")
            ));
        }
    }
    Ok(system)
}

/// A seed from the OS's randomness (outside any simulation), small enough to type.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish() % 1_000_000_000
}

/// `tandem explore`: checks the arguments, hunts, then reports a pass or
/// the shrunk failure.
pub fn explore(args: ExploreArgs, systems: &[&dyn Bundle], backend: Backend) -> Exit {
    let system = match pick(&args, systems) {
        Ok(system) => system,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Usage;
        }
    };
    if let Some(exit) = args.confirm.and_then(|_| without_msquic("explore --confirm")) {
        return exit;
    }
    let setup = match set_up(&args, system, backend) {
        Ok(setup) => setup,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Usage;
        }
    };
    let plan = &setup.plan;
    let name = system.syntax().system();
    let total = plan.shard.cases_of(plan.cases);
    let budget = args.budget.map(format_duration);
    let shard_of = |of: String| format!("shard {} of {of}", plan.shard);
    let what = match &budget {
        Some(budget) if plan.cases == UNBOUNDED => format!("cases for {budget} (shard {})", plan.shard),
        Some(budget) => format!("{total} cases ({}), for at most {budget}", shard_of(format!("{} cases", plan.cases))),
        None => format!("{total} cases ({})", shard_of(format!("{} cases", plan.cases))),
    };
    eprintln!("explore: system {name}, seed {}, {what}, guide {}", plan.seed, plan.guide);
    let bar = progress_bar(args.json, total, args.budget, plan.seed);
    let rule = args.robustness.rule();
    let hunt = hunt(&args, system, plan, &bar, &rule);
    bar.finish_and_clear();
    let (runs, progress) = (&hunt.exploration.runs, &hunt.exploration.progress);
    if args.json {
        for run in runs {
            println!("{}", case_json(run));
        }
    }
    let mut coverage = coverage_json(plan, progress);
    // Draws the system's fair rule rejected (each drawn again).
    let redrawn: u64 = runs.iter().map(|r| u64::from(r.case.redrawn)).sum();
    coverage.insert("redrawn".into(), json!(redrawn));
    if let Some(file) = &setup.result_file {
        coverage.insert("result_file".into(), json!(file));
    }
    let identity = setup.identity(&args, name);
    if let Some(page) = &args.coverage_html {
        let curve = Curve { name: format!("shard {}", plan.shard), points: &progress.growth };
        if let Err(error) = coverage_page::write(page, &coverage_page::title(&identity, 1), &[curve]) {
            eprintln!("{error}");
            return Exit::Usage;
        }
    }
    // Writes the result file, if asked for, with what the shard found.
    let save = |found: Vec<Found>| match &setup.result_file {
        Some(file) => write_result(file, &ShardResult::new(identity.clone(), plan.shard, runs, progress, found)),
        None => Ok(()),
    };
    if redrawn > 0 && !args.json {
        eprintln!(
            "explore: {redrawn} drawn scenarios were unfair to system {name} (its fair rule) and were drawn again"
        );
    }
    let (Some(failing), Some(shrunk)) = (hunt.failing(), &hunt.shrunk) else {
        if let Err(error) = save(Vec::new()) {
            eprintln!("{error}");
            return Exit::Fail;
        }
        if args.json {
            let mut summary = json!({ "result": "OK", "cases": runs.len(), "seed": plan.seed });
            summary.as_object_mut().expect("an object").extend(coverage);
            println!("{summary}");
        } else {
            println!("OK {} cases, seed {}", runs.len(), plan.seed);
            print_coverage(plan, progress);
        }
        return Exit::Pass;
    };
    let found = match found(&args, system, &setup, failing, shrunk, &rule, &bar) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    if let Err(error) = save(vec![found.found.clone()]) {
        eprintln!("{error}");
    }
    report_found(&args, plan, progress, failing, shrunk, &rule, found, coverage);
    Exit::Fail
}

/// An exploration's plan and where its results go, from the arguments.
struct Setup {
    plan: Plan,
    settle: Duration,
    stagger: Duration,
    clients: u32,
    result_file: Option<PathBuf>,
}

impl Setup {
    /// The exploration's identity, as its result file names it.
    fn identity(&self, args: &ExploreArgs, system: &str) -> Identity {
        Identity {
            system: system.to_string(),
            mutation: args.mutation.clone(),
            seed: self.plan.seed,
            cases: self.plan.cases,
            guide: args.guide,
            nodes: format!("{}..{}", args.nodes.start(), args.nodes.end()),
            duration: format_duration(args.duration),
            settle: format_duration(self.settle),
            stagger: format_duration(self.stagger),
            clients: self.clients,
            until_stable: args.until_stable,
            budget: args.budget.map(format_duration),
            backend: self.plan.space.backend.to_string(),
            properties: args.properties.clone(),
            workload: args.workload.clone(),
            no_final: args.no_final,
        }
    }
}

/// The plan of exploring `system`, or why the arguments are bad input.
fn set_up(args: &ExploreArgs, system: &dyn Bundle, backend: Backend) -> Result<Setup, String> {
    let info = system.info();
    let settle = args.settle.unwrap_or(info.tolerance.settle);
    let shortest = settle + Duration::from_secs(1);
    if args.duration < shortest {
        return Err(format!(
            "--duration {} is too short, expected at least {} (the settle tail is {})",
            format_duration(args.duration),
            format_duration(shortest),
            format_duration(settle)
        ));
    }
    let stagger = args.stagger.unwrap_or(info.tolerance.stagger);
    if stagger > MAX_STAGGER {
        return Err(format!(
            "--stagger {} is too long, expected at most {}",
            format_duration(stagger),
            format_duration(MAX_STAGGER)
        ));
    }
    let clients = args.clients.unwrap_or(info.tolerance.clients);
    let judging: Vec<&str> = info.properties.iter().filter(|p| p.kind != "sometimes").map(|p| p.code).collect();
    if let Some(unknown) = args.properties.iter().find(|code| !judging.contains(&code.as_str())) {
        return Err(format!(
            "--property {unknown}: system `{}` has no such `always` or `eventually` property, expected one of: {}",
            info.name,
            judging.join(", ")
        ));
    }
    if let Some(workload) = args.workload.as_ref().filter(|w| !info.workloads.contains(&w.as_str())) {
        let known = if info.workloads.is_empty() { "(none)".to_string() } else { info.workloads.join(", ") };
        return Err(format!(
            "--workload {workload}: system `{}` has no such workload, expected one of: {known}",
            info.name
        ));
    }
    let shard = args.shard.as_ref().map(|spec| spec.resolve(|name| std::env::var(name).ok())).transpose()?;
    if let Some(resolved) = shard.as_ref().filter(|r| !r.sources.is_empty()) {
        eprintln!("explore: {resolved}");
    }
    let shard = shard.map(|r| r.shard);
    let seed = args.seed.unwrap_or_else(random_seed);
    let result_file = args
        .result
        .clone()
        .or_else(|| shard.map(|s| args.out.join(format!("explore-s{seed}-shard-{}-of-{}.json", s.index, s.count))));
    if let Some(error) = result_file.as_deref().and_then(unwritable) {
        return Err(error);
    }
    let cases = args.cases.unwrap_or(if args.budget.is_some() { UNBOUNDED } else { DEFAULT_CASES });
    let plan = Plan {
        seed,
        cases,
        space: Space {
            nodes: args.nodes.clone(),
            duration: args.duration,
            settle,
            planted_bug: args.mutation.clone(),
            stagger,
            clients,
            properties: args.properties.clone(),
            workload: args.workload.clone(),
            finals: !args.no_final,
            backend,
            ..Space::default()
        },
        jobs: args.jobs as usize,
        shard: shard.unwrap_or(Shard::ALL),
        guide: args.guide,
        until_stable: args.until_stable,
        deadline: args.budget.map(|budget| Instant::now() + budget),
    };
    Ok(Setup { plan, settle, stagger, clients, result_file })
}

/// Runs the plan's cases with the progress bar, and shrinks the first failure.
fn hunt(args: &ExploreArgs, system: &dyn Bundle, plan: &Plan, bar: &ProgressBar, rule: &Rule) -> Hunt {
    let total = plan.shard.cases_of(plan.cases);
    let reached = Mutex::new((BTreeSet::new(), BTreeSet::new()));
    let ran = AtomicU64::new(0);
    // Each case done: the bar counts it, or, with `--for`, shows the time
    // spent and the coverage so far (a union: cases end in any order).
    let done = |run: &CaseRun| {
        let (Some(deadline), Some(budget)) = (plan.deadline, args.budget) else { return bar.inc(1) };
        let ran = ran.fetch_add(1, Ordering::Relaxed) + 1;
        let mut reached = reached.lock().expect("no case panics holding it");
        reached.0.extend(run.coverage.iter().filter(|c| c.hit).map(|c| c.goal.clone()));
        reached.1.extend(run.signature.keys().copied());
        let of = if plan.cases == UNBOUNDED { String::new() } else { format!("/{total}") };
        bar.set_message(format!("{ran}{of} cases, {} goals, {} hashes", reached.0.len(), reached.1.len()));
        let spent = budget.saturating_sub(deadline.saturating_duration_since(Instant::now()));
        bar.set_position(spent.as_millis() as u64);
    };
    let shrinking = |failing: &CaseRun| bar.set_message(format!("shrinking case {}", failing.case.number()));
    let options = shrink::Options { budget: DEFAULT_BUDGET, robustness: *rule, backend: plan.space.backend };
    system.hunt(plan, &done, &shrinking, &options)
}

/// What the exploration found: its result-file entry, and what the report
/// says beside it.
struct Finding {
    found: Found,
    confirmation: Option<Result<crate::compare::Confirmation, String>>,
}

/// Writes the shrunk failure's reproducer (and its picture, and its
/// confirmation over MsQuic, when asked for).
fn found(
    args: &ExploreArgs,
    system: &dyn Bundle,
    setup: &Setup,
    failing: &CaseRun,
    shrunk: &Shrunk,
    rule: &Rule,
    bar: &ProgressBar,
) -> Result<Finding, Exit> {
    // The shrunk failure's robustness, when measured.
    let robustness = (rule.runs > 0).then_some(shrunk.robustness);
    let fragile = !shrunk.robustness.meets(rule);
    let mut reproducer = reproducer_toml(&shrunk.scenario, failing.case.sim_seed());
    if let Some(robustness) = &robustness {
        reproducer.insert_str(0, &comment(&shrunk.failure.code, robustness, fragile));
    }
    let path = write_reproducer_text(&args.out, &failing.case.scenario.name, &reproducer).map_err(|error| {
        eprintln!("cannot write the reproducer: {error}");
        Exit::Fail
    })?;
    // The reproducer's run, for its picture and its signature.
    let keep = Keep { picture: args.html.is_some(), ..Keep::default() };
    let replay = (args.html.is_some() || setup.result_file.is_some())
        .then(|| system.simulate(setup.plan.space.backend, &shrunk.scenario, failing.case.sim_seed(), keep));
    if let (Some(page), Some(run)) = (&args.html, &replay) {
        write_picture(page, run.picture.as_slice()).map_err(|error| {
            eprintln!("{error}");
            Exit::Usage
        })?;
    }
    let confirmation = args.confirm.map(|runs| {
        bar.suspend(|| eprintln!("confirming the reproducer over MsQuic, {runs} runs"));
        let backend = setup.plan.space.backend;
        let mut confirmation = system.confirm(backend, &shrunk.scenario, failing.case.sim_seed(), runs as usize, false);
        if let Ok(confirmation) = &mut confirmation {
            confirmation.robustness = robustness;
        }
        confirmation
    });
    let found = Found {
        case: failing.case.number(),
        code: shrunk.failure.code.clone(),
        failure: shrunk.failure.to_string(),
        signature: replay.map(|run| run.outcome.signature.into_keys().collect()).unwrap_or_default(),
        shape: shrunk.scenario.shape(),
        case_signature: failing.signature.keys().copied().collect(),
        steps: shrunk.scenario.steps.len(),
        nodes: shrunk.scenario.nodes,
        reproducer,
        path: path.display().to_string(),
        robustness,
        fragile,
    };
    Ok(Finding { found, confirmation })
}

/// Prints the shrunk failure: a JSON summary, or the text lines.
#[allow(clippy::too_many_arguments)]
fn report_found(
    args: &ExploreArgs,
    plan: &Plan,
    progress: &Progress,
    failing: &CaseRun,
    shrunk: &Shrunk,
    rule: &Rule,
    Finding { found, confirmation }: Finding,
    coverage: serde_json::Map<String, serde_json::Value>,
) {
    let (before, after) = (failing.case.scenario.steps.len(), found.steps);
    let (number, path) = (found.case, &found.path);
    if args.json {
        let mut summary = json!({
            "result": "FOUND", "seed": plan.seed, "case": number, "failure": found.failure,
            "code": found.code, "steps_before": before, "steps_after": after,
            "nodes": found.nodes, "shrink_runs": shrunk.runs, "reproduce": path,
        });
        if found.robustness.is_some() {
            summary["robustness"] = json!(found.robustness);
            summary["robustness_found"] = json!(shrunk.found);
            summary["fragile"] = json!(found.fragile);
        }
        summary.as_object_mut().expect("an object").extend(coverage);
        if let Some(confirmation) = &confirmation {
            summary["confirm"] = match confirmation {
                Ok(c) => serde_json::to_value(c).expect("confirmations serialise"),
                Err(error) => json!({ "error": error }),
            };
        }
        println!("{summary}");
    } else {
        let robust = found_words(shrunk, rule).map(|w| format!("; {w}")).unwrap_or_default();
        println!(
            "FOUND {} after {number} cases; shrunk from {before} to {after} steps in {} runs{robust}",
            shrunk.failure, shrunk.runs
        );
        if found.fragile {
            eprintln!("explore: {}", fragile_warning(&found.code, &shrunk.robustness, rule));
        }
        println!("{}", next_steps(Path::new(path)));
        match &confirmation {
            Some(Ok(confirmation)) => println!("  {confirmation}"),
            Some(Err(error)) => println!("  the real cluster did not start: {error}"),
            None => {}
        }
        print_coverage(plan, progress);
    }
    let _ = std::io::stdout().flush();
}

/// The progress bar on standard error (hidden with `--json`): the cases
/// run of `total`, or, with a `budget`, the time spent of it.
fn progress_bar(json: bool, total: u64, budget: Option<Duration>, seed: u64) -> ProgressBar {
    if json {
        return ProgressBar::hidden();
    }
    let bar = match budget {
        None => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} cases {elapsed} {msg}").expect("a template"),
        ),
        Some(budget) => {
            let style = ProgressStyle::with_template("{bar:40} {elapsed} of {prefix} {msg}").expect("a template");
            let bar =
                ProgressBar::new(budget.as_millis() as u64).with_style(style).with_prefix(format_duration(budget));
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        }
    };
    bar.set_message(format!("seed {seed}"));
    bar
}

/// How robust the shrunk failure is, for its `FOUND` line (nothing when
/// `rule` measures nothing): `robust 7/8`, `robust 2/8, timing-fragile`, or
/// `robust 6/8 (timing-fragile as found: 1/8)` when shrinking made a
/// fragile failure robust.
fn found_words(shrunk: &Shrunk, rule: &Rule) -> Option<String> {
    let (found, now) = (shrunk.found.meets(rule), shrunk.robustness.meets(rule));
    let mut words = words(&shrunk.robustness, !now);
    if !found && now {
        words.push_str(&format!(" (timing-fragile as found: {})", shrunk.found));
    }
    (rule.runs > 0).then_some(words)
}

/// Why the result file cannot be written at `path`, checked before
/// anything runs: its folder cannot be made, or it is a folder.
fn unwritable(path: &Path) -> Option<String> {
    if path.is_dir() {
        return Some(format!("--result {}: is a directory, expected a file", path.display()));
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    let error = std::fs::create_dir_all(folder).err()?;
    Some(format!("--result {}: cannot create {}: {error}", path.display(), folder.display()))
}

/// Writes a shard's result file and says where on standard error.
fn write_result(path: &Path, result: &ShardResult) -> Result<(), String> {
    let text = serde_json::to_string(result).expect("results serialise") + "\n";
    std::fs::write(path, text).map_err(|e| format!("cannot write the result file {}: {e}", path.display()))?;
    eprintln!("result: {}", path.display());
    Ok(())
}

fn case_json(run: &CaseRun) -> serde_json::Value {
    json!({
        "case": run.case.number(),
        "sim_seed": run.case.sim_seed(),
        "nodes": run.case.scenario.nodes,
        "steps": run.case.scenario.steps.len(),
        "trace": run.digest.to_string(),
        "result": Verdict::of(run.failure.is_none()),
        "failure": run.failure.as_ref().map(ToString::to_string),
        "new": run.new,
        "goals": run.coverage.iter().filter(|goal| goal.hit).map(|goal| goal.goal.as_str()).collect::<Vec<_>>(),
        "origin": match &run.case.origin {
            Origin::Fresh => json!("fresh"),
            Origin::Mutant { parent, mutations } => json!({
                "parent": parent + 1,
                "mutations": mutations.iter().map(|m| m.name()).collect::<Vec<_>>(),
            }),
            Origin::Branch { parent, at } => json!({ "parent": parent + 1, "branched_at_ms": at.as_millis() as u64 }),
        },
    })
}

/// The coverage fields of the JSON summary: the guide, the goals reached
/// and missed, the signature's size, its growth and whether coverage became
/// stable.
fn coverage_json(plan: &Plan, progress: &Progress) -> serde_json::Map<String, serde_json::Value> {
    let reached = progress.goals.values().filter(|hit| **hit).count();
    let stable = plan.until_stable.is_some_and(|n| progress.streak >= n);
    let fields = json!({
        "guide": plan.guide.to_string(), "goals_reached": reached, "missed": progress.missed(),
        "signature": progress.signature.len(), "growth": progress.growth, "stable": stable,
    });
    match fields {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("json! of an object"),
    }
}

/// Prints the coverage on standard error: goals reached and missed, the
/// signature's size and its growth.
fn print_coverage(plan: &Plan, progress: &Progress) {
    let reached = progress.goals.values().filter(|hit| **hit).count();
    let last = progress.growth.last().map(|g| g.cases);
    let growth: Vec<String> = progress
        .growth
        .iter()
        .filter(|g| g.cases.is_power_of_two() || Some(g.cases) == last)
        .map(|g| format!("{}: {}/{}", g.cases, g.goals, g.signature))
        .collect();
    eprintln!(
        "coverage ({} guide): {reached} of {} goals, signature of {} hashes; growth (cases: goals/hashes) {}",
        plan.guide,
        progress.goals.len(),
        progress.signature.len(),
        growth.join(", ")
    );
    if plan.until_stable.is_some_and(|n| progress.streak >= n) {
        eprintln!("stable: the last {} cases reached nothing new", progress.streak);
    }
    if !progress.missed().is_empty() {
        eprintln!("missed: {}", progress.missed().join("; "));
    }
}
