//! The robustness flags of `explore` and `confirm`, and how a robustness
//! reads in their lines (see [`tandem_sim::explore::robust`]).

use clap::Args;
use tandem_sim::explore::robust::{Robustness, Rule, DEFAULT_MIN, DEFAULT_RUNS};

/// `--robustness K` and `--min-robust F`.
#[derive(Debug, Clone, Copy, Args)]
pub struct RobustnessArgs {
    /// Perturbed runs that measure a failure's robustness: the same scenario
    /// with simulation seeds derived from its seed and the run's number, so
    /// latencies within their ranges, loss draws and boot stagger move
    /// (0: measure nothing).
    #[arg(long = "robustness", value_name = "K", default_value_t = DEFAULT_RUNS)]
    perturbed_runs: u32,
    /// The share of perturbed runs (0 to 1) a failure must still fail in to
    /// be robust; below it, it is timing-fragile.
    #[arg(long, value_name = "F", default_value_t = DEFAULT_MIN, value_parser = parse_share)]
    min_robust: f64,
}

impl RobustnessArgs {
    /// The rule the flags set.
    pub fn rule(&self) -> Rule {
        Rule { runs: self.perturbed_runs, min: self.min_robust }
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    s.parse().ok().filter(|f| (0.0..=1.0).contains(f)).ok_or_else(|| format!("invalid share `{s}`, expected 0 to 1"))
}

/// `robust 7/8`, or `robust 2/8, timing-fragile`.
pub fn words(robustness: &Robustness, fragile: bool) -> String {
    let fragile = if fragile { ", timing-fragile" } else { "" };
    format!("robust {robustness}{fragile}")
}

/// The comment line a reproducer of a failure of `code` carries first:
/// `# robust 7/8: ...`.
pub fn comment(code: &str, robustness: &Robustness, fragile: bool) -> String {
    format!(
        "# {}: fails with {code} in {} of {} runs with perturbed timing (seeds derived from `seed`)\n",
        words(robustness, fragile),
        robustness.held,
        robustness.runs
    )
}

/// Why a failure of `code` that is timing-fragile under `rule` may not
/// show on a real stack.
pub fn fragile_warning(code: &str, robustness: &Robustness, rule: &Rule) -> String {
    format!(
        "timing-fragile: the failure ({code}) recurs in only {} of {} runs with perturbed timing (--min-robust {}); \
         a real run may well not reproduce it",
        robustness.held, robustness.runs, rule.min
    )
}
