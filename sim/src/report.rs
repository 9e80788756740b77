//! Result lines of the `tandem` command, in the format of `spec/cli.md`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::engine::execute::Outcome;
use tandem::history::Digest;
use tandem::scenario::Scenario;

/// Whether a run passed; printed `PASS` or `FAIL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Every invariant, expectation and await held.
    Pass,
    /// Something failed.
    Fail,
}

impl Verdict {
    /// `Pass` when `passed`.
    pub fn of(passed: bool) -> Verdict {
        if passed {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
        })
    }
}

/// One run's result, printable as the spec's text line or as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Pass or fail.
    pub result: Verdict,
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Simulated seconds the run lasted.
    pub sim_secs: f64,
    /// Wall-clock milliseconds it took.
    pub wall_ms: u64,
    /// The trace digest, 16 hex digits.
    pub trace: String,
    /// The first failure, if any.
    pub failure: Option<String>,
    /// The reproducer written for a failure.
    pub reproduce: Option<PathBuf>,
    /// The coverage goals (`sometimes` properties, in-node `sometimes!` and
    /// `reachable!`) the run never reached.
    #[serde(default)]
    pub missed: Vec<String>,
    /// The size of the run's coverage signature (see `tandem::engine::coverage`).
    #[serde(default)]
    pub signature: usize,
}

impl RunReport {
    /// The report of a finished simulated run.
    pub fn new(scenario: &Scenario, seed: u64, outcome: &Outcome, digest: Digest, wall: Duration) -> Self {
        RunReport {
            result: Verdict::of(outcome.passed()),
            scenario: scenario.name.clone(),
            seed,
            sim_secs: outcome.end.as_secs_f64(),
            wall_ms: wall.as_millis() as u64,
            trace: digest.to_string(),
            failure: outcome.failure.as_ref().map(|f| f.to_string()),
            reproduce: None,
            missed: outcome.coverage.iter().filter(|c| !c.hit).map(|c| c.goal.clone()).collect(),
            signature: outcome.signature.len(),
        }
    }

    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("reports serialise")
    }
}

/// `640us` under a millisecond, `9ms` under a second, `3.2s` above.
pub fn format_wall(wall: Duration) -> String {
    if wall < Duration::from_millis(1) {
        format!("{}us", wall.as_micros())
    } else if wall < Duration::from_secs(1) {
        format!("{}ms", wall.as_millis())
    } else {
        format!("{:.1}s", wall.as_secs_f64())
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} seed={} sim={:.3}s wall={} trace={}",
            self.result,
            self.scenario,
            self.seed,
            self.sim_secs,
            format_wall(Duration::from_millis(self.wall_ms)),
            self.trace
        )?;
        if let Some(failure) = &self.failure {
            write!(f, " {failure}")?;
        }
        if let Some(path) = &self.reproduce {
            write!(f, "\n{}", next_steps(path))?;
        }
        Ok(())
    }
}

/// Where failing runs leave their reproducers.
pub const FAILURES_DIR: &str = "target/tandem/failures";

/// What to do with a reproducer at `path`: the command that replays it, and
/// the one that draws its timeline picture.
pub fn next_steps(path: &Path) -> String {
    let (page, program) = (path.with_extension("html"), program());
    format!(
        "  reproduce: {program} replay {}\n  picture:   {program} replay {} --html {}",
        path.display(),
        path.display(),
        page.display()
    )
}

/// The name of the command that runs: the binary's file name once
/// `tandem_cli::main_with` has named it, else `tandem`.
pub fn program() -> &'static str {
    PROGRAM.get().map_or("tandem", String::as_str)
}

static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the command after this process's binary (`argv[0]`'s file name);
/// returns the name.
pub fn name_program_from_args() -> &'static str {
    PROGRAM.get_or_init(|| {
        let arg0 = std::env::args_os().next().unwrap_or_default();
        let name = Path::new(&arg0).file_name().map(|n| n.to_string_lossy().into_owned());
        name.filter(|n| !n.is_empty()).unwrap_or_else(|| "tandem".into())
    })
}

/// Writes `scenario` as a reproducer for `seed` into `dir`, named
/// `<name>-seed<seed>.toml`, and returns its path.
pub fn write_reproducer(dir: &Path, scenario: &Scenario, seed: u64) -> std::io::Result<PathBuf> {
    write_reproducer_as(dir, &format!("{}-seed{seed}", scenario.name), scenario, seed)
}

/// Writes `scenario` as a reproducer for `seed` into `dir`, named
/// `<stem>.toml` (made file-safe), and returns its path.
pub fn write_reproducer_as(dir: &Path, stem: &str, scenario: &Scenario, seed: u64) -> std::io::Result<PathBuf> {
    write_reproducer_text(dir, stem, &reproducer_toml(scenario, seed))
}

/// The simulation's model: bumped whenever a change to the simulation (its
/// network, disk or scheduling) can change what an existing reproducer
/// does. CHANGELOG.md says what each version changed.
pub const MODEL: u32 = 2;

/// The comment a reproducer carries to say which model found it.
const MODEL_COMMENT: &str = "# tandem simulation model ";

/// The text of `scenario` as a reproducer for `seed`, marked with the
/// simulation [`MODEL`] that found it.
pub fn reproducer_toml(scenario: &Scenario, seed: u64) -> String {
    let mut reproducer = scenario.clone();
    reproducer.seed = seed;
    format!("{MODEL_COMMENT}{MODEL}\n{}", reproducer.to_toml())
}

/// A warning when a reproducer's `text` says a simulation model other than
/// this build's found it: its run may no longer fail as it did. Files
/// without the mark (hand-written, or older) get none.
pub fn model_warning(text: &str) -> Option<String> {
    let found: u32 = text.lines().find_map(|line| line.strip_prefix(MODEL_COMMENT)?.trim().parse().ok())?;
    (found != MODEL).then(|| {
        format!(
            "warning: simulation model {found} found this reproducer, and this build simulates with model {MODEL} \
             (CHANGELOG.md says what changed): it may no longer fail as it did; explore again to find the bug under \
             this model"
        )
    })
}

/// Writes a reproducer's `text` into `dir`, named `<stem>.toml` (made
/// file-safe), and returns its path.
pub fn write_reproducer_text(dir: &Path, stem: &str, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.toml", file_safe(stem)));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A name usable as a file name on every platform.
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reproducer_of_another_model_is_warned_about() {
        let text = reproducer_toml(&Scenario::new("s", 2), 7);
        assert!(text.starts_with(&format!("# tandem simulation model {MODEL}\n")), "{text}");
        assert_eq!(model_warning(&text), None);
        let older = text.replacen(&format!("model {MODEL}"), "model 1", 1);
        let warning = model_warning(&older).expect("a warning");
        assert!(warning.contains("simulation model 1 found this reproducer"), "{warning}");
        assert_eq!(model_warning("nodes = 2\n"), None, "hand-written files carry no mark");
    }

    #[test]
    fn wall_times_under_a_millisecond_are_microseconds() {
        assert_eq!(format_wall(Duration::from_micros(640)), "640us");
        assert_eq!(format_wall(Duration::from_micros(9_400)), "9ms");
        assert_eq!(format_wall(Duration::from_millis(3_240)), "3.2s");
    }
}
