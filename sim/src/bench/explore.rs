//! Item 2: exploration throughput, cases per second of the default
//! generator (2-5 nodes, 30 s), on one thread and on two, and with
//! coverage guidance (its bookkeeping and mutants) against plain swarm.

use std::sync::atomic::{AtomicU64, Ordering};
// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::Instant;

use super::report::Figure;
use super::Options;
use tandem_sim::explore::guide::Guide;
use tandem_sim::explore::runner::{explore, Plan, Shard};
use tandem_sim::explore::strategy::Space;

/// The exploration seed of the benchmark.
const SEED: u64 = 1;

/// Cases per second of `cases` default cases on `jobs` threads, drawn as `guide` says.
fn cases_per_second(cases: u64, jobs: usize, guide: Guide) -> f64 {
    let plan = Plan { seed: SEED, cases, space: Space::default(), jobs, shard: Shard::ALL, guide, until_stable: None };
    let done = AtomicU64::new(0);
    let start = Instant::now();
    // A failing case stops the exploration early; the rate counts what ran.
    explore(&std::sync::Arc::new(tandem_pubsub::PubSub), &plan, |_| {
        done.fetch_add(1, Ordering::Relaxed);
    });
    done.into_inner() as f64 / start.elapsed().as_secs_f64()
}

/// Measures `--jobs 1` and `--jobs 2` on the same cases.
pub fn measure(options: &Options) -> Vec<Figure> {
    // Guidance starts with the second generation of 64 cases: measure past it.
    let cases = if options.quick { 4 } else { 192 };
    let one = cases_per_second(cases, 1, Guide::Swarm);
    let two = cases_per_second(cases, 2, Guide::Swarm);
    let guided = cases_per_second(cases, 1, Guide::Coverage);
    let what = |jobs: usize, guide: Guide| {
        format!("default generator (2-5 nodes, 30 s), {cases} cases, seed {SEED}, {jobs} thread(s), --guide {guide}")
    };
    vec![
        Figure::new("explore.jobs1.cases_per_s", what(1, Guide::Swarm), one, "cases/s"),
        Figure::new("explore.jobs2.cases_per_s", what(2, Guide::Swarm), two, "cases/s").against("--jobs 1", one),
        Figure::new("explore.guided.jobs1.cases_per_s", what(1, Guide::Coverage), guided, "cases/s")
            .against("--guide swarm", one),
    ]
}
