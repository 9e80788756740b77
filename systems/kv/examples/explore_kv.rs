//! Explores the kv system with tandem's generic explorer, as `tandem
//! explore --system kv` does, without the `tandem` binary's other systems:
//!
//! ```sh
//! cargo run --release -p tandem-kv --features mutations --example explore_kv -- \
//!     [--mutation NAME] [--cases 500] [--seed 1] [--jobs 2]
//! ```
//!
//! Prints the first failing case, its shrunk reproducer, or `OK`.

use std::sync::Arc;
use std::time::Instant;

use tandem_kv::Kv;
use tandem_sim::explore::runner::{explore, Plan, Shard};
use tandem_sim::explore::shrink::{shrink, DEFAULT_BUDGET};
use tandem_sim::explore::strategy::Space;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut mutation, mut cases, mut seed, mut jobs) = (None, 500u64, 1u64, 1usize);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--mutation" => mutation = Some(value),
            "--cases" => cases = value.parse().expect("--cases N"),
            "--seed" => seed = value.parse().expect("--seed N"),
            "--jobs" => jobs = value.parse().expect("--jobs N"),
            other => panic!("unknown flag {other}"),
        }
    }
    let system = Arc::new(Kv);
    let plan = Plan { seed, cases, space: Space { mutation, ..Space::default() }, jobs, shard: Shard::ALL };
    let started = Instant::now();
    let runs = explore(&system, &plan, |_| {});
    let Some(failing) = runs.last().filter(|r| r.failure.is_some()) else {
        println!("OK {} cases, seed {seed}, {:?}", runs.len(), started.elapsed());
        return;
    };
    let failure = failing.failure.clone().expect("a failing run");
    println!("FOUND after {} cases ({:?}): {failure}", failing.case.number(), started.elapsed());
    let shrunk = shrink(system, &failing.case.scenario, &failure, DEFAULT_BUDGET);
    println!(
        "shrunk from {} to {} steps, {} nodes, in {} runs: {}",
        failing.case.scenario.steps.len(),
        shrunk.scenario.steps.len(),
        shrunk.scenario.nodes,
        shrunk.runs,
        shrunk.failure
    );
    println!("{}", shrunk.scenario.to_toml());
}
