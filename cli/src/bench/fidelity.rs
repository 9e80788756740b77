//! Item 7 (`--section fidelity`): does what the simulation finds hold on a
//! real stack? For every planted bug of every bundled system and each
//! exploration seed, the shrunk reproducer's agreement over MsQuic (real runs
//! that fail with the simulation's property); for every bundled scenario, the
//! real runs that agree with the simulation. Real runs take wall time (a
//! scenario's duration each): this section is only run on request.

use std::path::PathBuf;

use tandem_cli::bundle::Bundle;
use tandem_cli::load_all;
use tandem_sim::explore::guide::Guide;
use tandem_sim::explore::runner::Plan;
use tandem_sim::explore::shrink::Options as Shrinking;
use tandem_sim::explore::strategy::Space;
use tandem_sim::Backend;

use super::bugs::systems;
use super::report::{Figure, Target};
use super::Options;

/// Where the bundled scenario files are, from the workspace root.
const SCENARIO_DIRS: [&str; 4] = ["scenarios", "scenarios/kv", "scenarios/twophase", "scenarios/primary"];

/// Agreement the issue asks of a shrunk reproducer: at least 4 of 5 runs.
const AGREEING: f64 = 0.8;

/// One reproducer's or scenario's real runs.
struct Agreement {
    id: String,
    what: String,
    /// Real runs with the simulation's verdict, of `runs`; `Err` when the
    /// real cluster could not run it, with why.
    agreed: Result<usize, String>,
}

/// Explores for `bug` with `seed` (coverage guide, `cases` cases), shrinks
/// the first failure and confirms the reproducer over MsQuic `runs` times.
fn reproducer(system: &dyn Bundle, bug: &str, seed: u64, cases: u64, runs: usize) -> Agreement {
    let space = Space { planted_bug: Some(bug.to_string()), ..Space::default() };
    let plan = Plan { jobs: 2, guide: Guide::Coverage, ..Plan::new(seed, cases, space) };
    let hunt = system.hunt(&plan, &|_| {}, &|_| {}, &Shrinking::default());
    let name = system.info().name;
    let id = format!("fidelity.{name}.{bug}.seed{seed}.agreed");
    let (Some(failing), Some(shrunk)) = (hunt.failing(), hunt.shrunk.as_ref()) else {
        let why = format!("not found within {cases} cases");
        return Agreement { id, what: format!("{name} {bug}, seed {seed}: {why}"), agreed: Err(why) };
    };
    let scenario = &shrunk.scenario;
    let what = format!(
        "{name} {bug}, seed {seed}: case {}, shrunk to {} steps, robust {}; real runs failing as the simulation does, of {runs}",
        failing.case.number(),
        scenario.steps.len(),
        shrunk.robustness
    );
    let agreed = system.confirm(plan.space.backend, scenario, failing.case.sim_seed(), runs, false).map(|c| c.agreed);
    Agreement { id, what, agreed }
}

/// Confirms every bundled scenario `runs` times.
fn scenarios(runs: usize) -> Result<Vec<Agreement>, String> {
    let systems = systems();
    let dirs: Vec<PathBuf> = SCENARIO_DIRS.iter().map(PathBuf::from).collect();
    let loaded = load_all(&dirs, &systems)?;
    Ok(loaded
        .iter()
        .map(|file| {
            let scenario = &file.scenario;
            Agreement {
                id: format!("fidelity.scenario.{}.agreed", scenario.name),
                what: format!("{}: real runs agreeing with the simulation, of {runs}", file.file.display()),
                agreed: file.system.confirm(Backend::default(), scenario, scenario.seed, runs, false).map(|c| c.agreed),
            }
        })
        .collect())
}

/// The figures: each agreement (a run that could not be made is listed
/// with why, as NaN), and the share of reproducers agreeing 4 of 5 or better.
fn figures(reproducers: Vec<Agreement>, scenarios: Vec<Agreement>, runs: usize) -> Vec<Figure> {
    let share = |rows: &[Agreement]| {
        let agreeing = rows.iter().filter(|a| a.agreed.as_ref().is_ok_and(|&k| k as f64 >= AGREEING * runs as f64));
        agreeing.count() as f64 / rows.len() as f64
    };
    let mut all: Vec<Figure> = Vec::new();
    for (kind, rows, goal) in [("reproducers", &reproducers, 0.9), ("scenarios", &scenarios, 1.0)] {
        if rows.is_empty() {
            continue;
        }
        all.push(
            Figure::new(
                format!("fidelity.{kind}.agreeing"),
                format!("share of {kind} whose real runs agree with the simulation in at least 4 of 5 (80%)"),
                share(rows),
                "share",
            )
            .target(Target::value_at_least(goal)),
        );
    }
    for row in reproducers.into_iter().chain(scenarios) {
        let (value, what) = match row.agreed {
            Ok(agreed) => (agreed as f64, row.what),
            Err(why) => (f64::NAN, format!("{}: not confirmed: {why}", row.what)),
        };
        all.push(Figure::new(row.id, what, value, "runs"));
    }
    all
}

/// Every planted bug's reproducers (exploration seeds 1-3 within 2,000
/// cases; seed 1 within 500 when quick; `options.bug_seeds` seeds when set)
/// and every bundled scenario, each confirmed over MsQuic 5 times (2 when
/// quick).
pub fn measure(options: &Options) -> Result<Vec<Figure>, String> {
    let (seeds, cases, runs) = if options.quick { (1, 500, 2) } else { (3, 2_000, 5) };
    let seeds = options.bug_seeds.unwrap_or(seeds);
    let chosen = |name: &str| options.bugs.is_empty() || options.bugs.iter().any(|b| b == name);
    let mut reproducers = Vec::new();
    for system in systems() {
        for bug in system.info().planted_bugs.iter().filter(|b| chosen(b.name)) {
            for seed in 1..=seeds {
                reproducers.push(reproducer(system, bug.name, seed, cases, runs));
            }
        }
    }
    let scenarios = if options.bugs.is_empty() { scenarios(runs)? } else { Vec::new() };
    Ok(figures(reproducers, scenarios, runs))
}
