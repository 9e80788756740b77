//! Property-based exploration (`tandem explore`) of any [`System`](tandem::System):
//! generate scenarios (generic faults, the system's own operations), run
//! them in the simulation, let the system's properties judge them, and
//! shrink the first failure to a small reproducer.
//!
//! - [`strategy`]: public proptest strategies for scenarios, with
//!   [`swarm`] testing: each case enables its own mix of fault kinds;
//! - [`timeline`]: episodes of related actions, merged into a timeline;
//! - [`rules`]: what keeps a generated scenario fair to a correct node;
//! - [`case`]: a case, a pure function of the exploration's seed and its index;
//! - [`guide`] and [`mutate`]: coverage-guided exploration, which mutates
//!   the cases that reached something new;
//! - [`branch`]: branching from the moment a case reached something new;
//! - [`runner`]: the case loop, on several threads or one shard;
//! - [`shards`]: which shard a machine runs, from `--shard` or the environment;
//! - [`results`]: a shard's result file, and merging the files of every shard;
//! - [`shrink`] and [`remap`]: reducing a failure to a minimal scenario;
//! - [`robust`]: how often a failure holds when timing moves.

pub mod branch;
pub mod case;
pub mod guide;
pub mod mutate;
pub mod remap;
pub mod results;
pub mod robust;
pub mod rules;
pub mod runner;
pub mod shards;
pub mod shrink;
pub mod strategy;
pub mod swarm;
pub mod timeline;

/// The guide's echo system (`examples/ping.rs`), as a fixture for the
/// framework's own tests: they never use a bundled system.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../examples/ping.rs"]
pub(crate) mod testing;
