//! Item 2: exploration throughput, cases per second of the default
//! generator (2-5 nodes, 30 s), on one thread and on two, and with
//! coverage guidance (its bookkeeping and mutants) against plain swarm; on
//! the discrete-event backend, against the turmoil backend.

use std::sync::atomic::{AtomicU64, Ordering};
// Wall-clock `Instant`: benchmarks time real work, outside any simulation.
use std::time::Instant;

use super::report::{Figure, Target};
use super::Options;
use tandem_sim::explore::guide::Guide;
use tandem_sim::explore::runner::{explore, Plan};
use tandem_sim::explore::strategy::Space;
use tandem_sim::Backend;

/// The exploration seed of the benchmark.
const SEED: u64 = 1;

/// Cases per second of `cases` default cases on `jobs` threads, drawn as
/// `guide` says, on `backend`.
fn cases_per_second(cases: u64, jobs: usize, guide: Guide, backend: Backend) -> f64 {
    let plan = Plan { jobs, guide, ..Plan::new(SEED, cases, Space { backend, ..Space::default() }) };
    let done = AtomicU64::new(0);
    let start = Instant::now();
    // A failing case stops the exploration early; the rate counts what ran.
    explore(&std::sync::Arc::new(tandem_pubsub::PubSub), &plan, |_| {
        done.fetch_add(1, Ordering::Relaxed);
    });
    done.into_inner() as f64 / start.elapsed().as_secs_f64()
}

/// Measures `--jobs 1` and `--jobs 2` on the same cases, on the
/// discrete-event backend, each guide on one thread, and one thread on the
/// turmoil backend.
pub fn measure(options: &Options) -> Vec<Figure> {
    // Guidance starts with the second generation of 64 cases: measure past it.
    let (cases, old_cases) = if options.quick { (64, 4) } else { (1024, 192) };
    let old = cases_per_second(old_cases, 1, Guide::Swarm, Backend::Turmoil);
    let one = cases_per_second(cases, 1, Guide::Swarm, Backend::Events);
    let two = cases_per_second(cases, 2, Guide::Swarm, Backend::Events);
    let guided = cases_per_second(cases, 1, Guide::Coverage, Backend::Events);
    let branching = cases_per_second(cases, 1, Guide::Branch, Backend::Events);
    let what = |cases: u64, jobs: usize, guide: Guide, backend: Backend| {
        format!("default generator (2-5 nodes, 30 s), {cases} cases, seed {SEED}, {jobs} thread(s), --guide {guide}, {backend} backend")
    };
    vec![
        Figure::new("explore.jobs1.cases_per_s", what(cases, 1, Guide::Swarm, Backend::Events), one, "cases/s")
            .against("turmoil backend", old)
            .target(Target::value_at_least(50.0)),
        Figure::new(
            "explore.turmoil.jobs1.cases_per_s",
            what(old_cases, 1, Guide::Swarm, Backend::Turmoil),
            old,
            "cases/s",
        ),
        Figure::new("explore.jobs2.cases_per_s", what(cases, 2, Guide::Swarm, Backend::Events), two, "cases/s")
            .against("--jobs 1", one),
        Figure::new(
            "explore.guided.jobs1.cases_per_s",
            what(cases, 1, Guide::Coverage, Backend::Events),
            guided,
            "cases/s",
        )
        .against("--guide swarm", one),
        Figure::new(
            "explore.branch.jobs1.cases_per_s",
            what(cases, 1, Guide::Branch, Backend::Events),
            branching,
            "cases/s",
        )
        .against("--guide swarm", one),
    ]
}
