//! Item 6: how fast exploration finds bugs. For every planted bug of every
//! bundled system, over many exploration seeds: the cases it takes to find
//! the bug (median, p90, max, and the seeds that missed it within the
//! budget), the wall time to find it, and the size of the shrunk reproducer;
//! for plain swarm exploration, coverage-guided exploration and branching
//! exploration side by side, and for each guide the bugs it found per
//! CPU-minute.

// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::Instant;

use tandem_cli::bundle::Bundle;
use tandem_sim::explore::guide::Guide;
use tandem_sim::explore::runner::Plan;
use tandem_sim::explore::shrink;
use tandem_sim::explore::strategy::Space;

use super::report::Figure;
use super::Options;

/// The bundled systems, as the `tandem` binary carries them.
pub(super) fn systems() -> [&'static dyn Bundle; 4] {
    [&tandem_pubsub::PubSub, &tandem_kv::Kv, &tandem_twophase::TwoPhase, &tandem_primary::Primary]
}

/// The guides compared, in report order.
const GUIDES: [Guide; 3] = [Guide::Swarm, Guide::Coverage, Guide::Branch];

/// One exploration seed's hunt for one bug.
struct SeedHunt {
    /// The case that failed first, if any within the budget.
    found: Option<u64>,
    /// Wall seconds until the exploration stopped.
    secs: f64,
    /// CPU seconds of this process (every thread) until then.
    cpu_secs: f64,
    /// Steps and nodes of the shrunk reproducer.
    shrunk: Option<(usize, u32)>,
}

fn hunt(system: &dyn Bundle, bug: &str, guide: Guide, seed: u64, budget: u64) -> SeedHunt {
    let space = Space { planted_bug: Some(bug.to_string()), ..Space::default() };
    let plan = Plan { jobs: 2, guide, ..Plan::new(seed, budget, space) };
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    // Timed until the bug is found, before it is shrunk.
    let found_after = std::cell::Cell::new(None);
    let found = || found_after.set(Some((start.elapsed(), cpu_seconds())));
    let hunt = system.hunt(&plan, &|_| {}, &|_| found(), &shrink::Options::default());
    let (wall, cpu) = found_after.get().unwrap_or_else(|| (start.elapsed(), cpu_seconds()));
    SeedHunt {
        found: hunt.failing().map(|failing| failing.case.number()),
        secs: wall.as_secs_f64(),
        cpu_secs: cpu - cpu_start,
        shrunk: hunt.shrunk.map(|shrunk| (shrunk.scenario.steps.len(), shrunk.scenario.nodes)),
    }
}

/// The CPU time this process has used so far, every thread, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The `q` quantile (0..=1) of sorted `values`, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The figures of one bug: cases to find, misses, wall time, shrunk size.
fn figures(system: &str, bug: &str, guide: Guide, hunts: &[SeedHunt], budget: u64) -> Vec<Figure> {
    let mut cases: Vec<f64> = hunts.iter().filter_map(|h| h.found).map(|c| c as f64).collect();
    cases.sort_by(f64::total_cmp);
    let mut secs: Vec<f64> = hunts.iter().filter(|h| h.found.is_some()).map(|h| h.secs).collect();
    secs.sort_by(f64::total_cmp);
    let missed = hunts.len() - cases.len();
    let mut every_seed = cases.clone();
    every_seed.resize(hunts.len(), (budget + 1) as f64);
    let steps = hunts.iter().filter_map(|h| h.shrunk).map(|(s, _)| s).max().unwrap_or(0);
    let nodes = hunts.iter().filter_map(|h| h.shrunk).map(|(_, n)| n).max().unwrap_or(0);
    let id = |what: &str| format!("bugs.{system}.{bug}.{guide}.{what}");
    let over = format!("{system} {bug}, {} exploration seeds, --guide {guide}", hunts.len());
    vec![
        Figure::new(
            id("cases_median"),
            format!("{over}: cases to find, median of the seeds that found it"),
            quantile(&cases, 0.5),
            "cases",
        ),
        Figure::new(
            id("cases_median_all"),
            format!("{over}: cases to find, median of every seed (a miss counts as {}, past the budget)", budget + 1),
            quantile(&every_seed, 0.5),
            "cases",
        ),
        Figure::new(id("cases_p90"), format!("{over}: cases to find, p90"), quantile(&cases, 0.9), "cases"),
        Figure::new(
            id("cases_max"),
            format!("{over}: cases to find, max"),
            cases.last().copied().unwrap_or(f64::NAN),
            "cases",
        ),
        Figure::new(
            id("missed"),
            format!("{over}: seeds that missed it within {budget} cases"),
            missed as f64,
            "seeds",
        ),
        Figure::new(
            id("wall_median"),
            format!("{over}: wall time to find, median (2 threads)"),
            quantile(&secs, 0.5),
            "s",
        ),
        Figure::new(id("shrunk_steps_max"), format!("{over}: shrunk reproducer, most steps"), steps as f64, "steps"),
        Figure::new(id("shrunk_nodes_max"), format!("{over}: shrunk reproducer, most nodes"), nodes as f64, "nodes"),
    ]
}

/// Hunts every planted bug of every bundled system (or those of
/// `options.bugs`): 20 seeds within 2,000 cases (3 seeds within 500 when
/// quick; `options.bug_seeds` seeds when set).
pub fn measure(options: &Options) -> Vec<Figure> {
    let (seeds, budget) = if options.quick { (3, 500) } else { (20, 2_000) };
    let seeds = options.bug_seeds.unwrap_or(seeds);
    let mut all = Vec::new();
    // Per guide: bugs found, CPU seconds spent.
    let mut spent = [(0usize, 0.0f64); GUIDES.len()];
    for system in systems() {
        let info = system.info();
        let chosen = |name: &str| options.bugs.is_empty() || options.bugs.iter().any(|b| b == name);
        for bug in info.planted_bugs.iter().filter(|b| chosen(b.name)) {
            for (guide, spent) in GUIDES.into_iter().zip(&mut spent) {
                let hunts: Vec<SeedHunt> =
                    (1..=seeds).map(|seed| hunt(system, bug.name, guide, seed, budget)).collect();
                spent.0 += hunts.iter().filter(|h| h.found.is_some()).count();
                spent.1 += hunts.iter().map(|h| h.cpu_secs).sum::<f64>();
                all.extend(figures(info.name, bug.name, guide, &hunts, budget));
            }
        }
    }
    for (guide, (found, cpu)) in GUIDES.into_iter().zip(spent) {
        all.push(Figure::new(
            format!("bugs.{guide}.found_per_cpu_minute"),
            format!("--guide {guide}: bugs found (seed and bug pairs) per CPU-minute of hunting, every thread"),
            found as f64 / (cpu / 60.0).max(f64::MIN_POSITIVE),
            "bugs/CPU-min",
        ));
    }
    all
}
