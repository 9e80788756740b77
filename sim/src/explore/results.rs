//! A shard's result file (`tandem explore --result`), and what `tandem
//! merge` makes of the files of every shard of one exploration: checks that
//! they tile its cases, unions their coverage and keeps one failure per
//! property and reproducer shape, the one with the smallest reproducer.
//!
//! The file is JSON, versioned by its `format` field ([`FORMAT`]).
//! Signature hashes are sorted 16-digit hex strings: many JSON readers lose
//! the low bits of 64-bit numbers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::guide::{Growth, Guide, Progress};
use super::robust::Robustness;
use super::runner::{CaseRun, Shard, UNBOUNDED};

/// The result-file format this tandem writes and reads.
pub const FORMAT: u32 = 1;

/// What makes shards parts of one exploration: everything that decides
/// its cases and where it stops, except the shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The system explored.
    pub system: String,
    /// Its planted bug, if any.
    pub mutation: Option<String>,
    /// The exploration's seed.
    pub seed: u64,
    /// How many cases the whole exploration has: [`UNBOUNDED`] (`null` in
    /// the file) when only the time budget bounds them.
    #[serde(with = "bound")]
    pub cases: u64,
    /// How cases are drawn.
    pub guide: Guide,
    /// Node counts, `MIN..MAX`.
    pub nodes: String,
    /// Every case's duration.
    pub duration: String,
    /// Every case's settle tail.
    pub settle: String,
    /// Every case's boot stagger (files written before it: the 20 ms
    /// exploration always used).
    #[serde(default = "default_stagger")]
    pub stagger: String,
    /// Every node's clients (files written before it: 1).
    #[serde(default = "one_client")]
    pub clients: u32,
    /// `--until-stable N`, if given.
    pub until_stable: Option<u64>,
    /// `--for D`, each shard's time budget, if given.
    #[serde(default)]
    pub budget: Option<String>,
    /// The simulator that ran the cases (their histories differ).
    pub backend: String,
    /// `--property CODE`s: the properties that judged the cases (none: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// `--workload NAME`: the system's workload the cases drew from (none:
    /// its default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// `--no-final`: the cases left out the system's final phase.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_final: bool,
}

/// The clients of explorations before `--clients`.
fn one_client() -> u32 {
    1
}

/// The boot stagger of explorations before `--stagger`.
fn default_stagger() -> String {
    "20ms".into()
}

impl Identity {
    /// The fields where `other` differs, like `seed 2 (not 1)`.
    pub fn differences(&self, other: &Identity) -> Vec<String> {
        let fields = |identity: &Identity| match serde_json::to_value(identity) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("an identity serialises to an object"),
        };
        let (mine, theirs) = (fields(self), fields(other));
        mine.iter()
            .filter(|(k, v)| theirs[k.as_str()] != **v)
            .map(|(k, v)| format!("{k} {} (not {v})", theirs[k.as_str()]))
            .collect()
    }
}

/// The cases `start`, `start + step`, ... below `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// The first case's index (from 0).
    pub start: u64,
    /// The end, exclusive.
    pub end: u64,
    /// The distance between cases: the shard count.
    pub step: u64,
}

impl Span {
    /// Ascending `indices` as spans of stride `step`.
    pub fn compress(indices: &[u64], step: u64) -> Vec<Span> {
        let mut spans: Vec<Span> = Vec::new();
        for &index in indices {
            match spans.last_mut() {
                Some(span) if span.end - 1 + step == index => span.end = index + 1,
                _ => spans.push(Span { start: index, end: index + 1, step }),
            }
        }
        spans
    }

    /// How many cases it holds (`start < end`, `step >= 1`).
    pub fn count(&self) -> u64 {
        (self.end - self.start).div_ceil(self.step)
    }
}

/// Why a shard stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stop {
    /// It ran all its cases.
    Complete,
    /// At its first failing case.
    Failure,
    /// When its coverage was stable (`--until-stable`).
    Stable,
    /// When its time budget ran out (`--for`).
    Deadline,
}

/// A failure a shard found, shrunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The failing case's number (its index plus one).
    pub case: u64,
    /// The code of what failed (`S2`, `expect`, `panic`, ...).
    pub code: String,
    /// The shrunk failure, as the `FOUND` line prints it.
    pub failure: String,
    /// The coverage signature of the shrunk reproducer's run: with `code`,
    /// what tells two failures apart when no `shape` is known.
    #[serde(with = "hex")]
    pub signature: BTreeSet<u64>,
    /// The reproducer's [shape](tandem::scenario::Scenario::shape): with
    /// `code`, what tells two failures apart (empty in result files written
    /// before shapes: those group by signature).
    #[serde(default)]
    pub shape: String,
    /// The coverage signature of the failing case.
    #[serde(with = "hex")]
    pub case_signature: BTreeSet<u64>,
    /// The reproducer's step count.
    pub steps: usize,
    /// Its node count.
    pub nodes: u32,
    /// The reproducer: a scenario file's text.
    pub reproducer: String,
    /// Where the shard wrote it.
    pub path: String,
    /// How robust the shrunk failure is (see [`robust`](super::robust));
    /// `None` when not measured.
    #[serde(default)]
    pub robustness: Option<Robustness>,
    /// Whether it is below the exploration's `--min-robust`.
    #[serde(default)]
    pub fragile: bool,
}

/// What a shard's cases reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reached {
    /// The coverage goals some case reached, by name.
    pub goals_reached: Vec<String>,
    /// The goals no case reached.
    pub goals_missed: Vec<String>,
    /// The union of the cases' signatures.
    #[serde(with = "hex")]
    pub signature: BTreeSet<u64>,
}

/// A shard's result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardResult {
    /// [`FORMAT`].
    pub format: u32,
    /// The exploration it is a shard of.
    #[serde(flatten)]
    pub exploration: Identity,
    /// Which shard.
    pub shard: Shard,
    /// The cases it ran.
    pub ran: Vec<Span>,
    /// Why it stopped.
    pub stopped: Stop,
    /// What it found (at most one today: a shard stops at its first failure).
    pub failures: Vec<Found>,
    /// What its cases reached.
    pub coverage: Reached,
    /// Its coverage over its cases and time (empty in files written before).
    #[serde(default)]
    pub growth: Vec<Growth>,
}

impl ShardResult {
    /// The result of `shard` of `exploration`, which ran `runs` (in case
    /// order) and reached `progress`, and found `failures`.
    pub fn new(
        exploration: Identity,
        shard: Shard,
        runs: &[CaseRun],
        progress: &Progress,
        failures: Vec<Found>,
    ) -> Self {
        let indices: Vec<u64> = runs.iter().map(|r| r.case.index).collect();
        let stopped = if runs.last().is_some_and(|r| r.failure.is_some()) {
            Stop::Failure
        } else if (runs.len() as u64) < shard.cases_of(exploration.cases) {
            if exploration.until_stable.is_some_and(|n| progress.streak >= n) {
                Stop::Stable
            } else {
                Stop::Deadline
            }
        } else {
            Stop::Complete
        };
        let goals = |hit: bool| progress.goals.iter().filter(|(_, h)| **h == hit).map(|(g, _)| g.clone()).collect();
        let coverage =
            Reached { goals_reached: goals(true), goals_missed: goals(false), signature: progress.signature.clone() };
        let ran = Span::compress(&indices, shard.count);
        let growth = progress.growth.clone();
        ShardResult { format: FORMAT, exploration, shard, ran, stopped, failures, coverage, growth }
    }

    /// Checks what the file says of itself: its format, a shard within
    /// its count, cases of its own within the exploration and each once,
    /// failures if and only if it stopped at one, a time budget if it has
    /// no case count or stopped at its deadline, and that a shard that ran
    /// to completion ran all of its cases.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!("result format {}, this tandem reads format {FORMAT}", self.format));
        }
        let Shard { index, count } = self.shard;
        if index == 0 || index > count {
            return Err(format!("shard {index}/{count} is not a shard, expected 1 <= I <= N"));
        }
        let cases = self.exploration.cases;
        let mut spans = self.ran.clone();
        spans.sort_by_key(|s| s.start);
        for span in &spans {
            if span.step != count || span.start % count != index - 1 || span.start >= span.end || span.end > cases {
                let own = format!("those whose index modulo {count} is {}", index - 1);
                return Err(format!(
                    "shard {}: span {span:?} is not cases of its own ({own}) within 0..{cases}",
                    self.shard
                ));
            }
        }
        if let Some(pair) = spans.windows(2).find(|pair| pair[1].start < pair[0].end) {
            return Err(format!("shard {}: spans {:?} and {:?} overlap", self.shard, pair[0], pair[1]));
        }
        if (self.stopped == Stop::Failure) == self.failures.is_empty() {
            let (stopped, failures) = (serde_json::json!(self.stopped), self.failures.len());
            return Err(format!("shard {} stopped {stopped} with {failures} failures", self.shard));
        }
        let unbounded = cases == UNBOUNDED;
        if self.exploration.budget.is_none() && (unbounded || self.stopped == Stop::Deadline) {
            let why = if unbounded { "has no case count" } else { "stopped at its deadline" };
            return Err(format!("shard {} {why} but has no time budget", self.shard));
        }
        if unbounded && self.stopped == Stop::Complete {
            return Err(format!("shard {} stopped complete but has no case count", self.shard));
        }
        if self.stopped == Stop::Complete && self.not_run() > 0 {
            return Err(format!(
                "shard {} stopped complete but did not run {} of its cases",
                self.shard,
                self.not_run()
            ));
        }
        Ok(())
    }

    /// How many cases it ran.
    pub fn ran_count(&self) -> u64 {
        self.ran.iter().map(Span::count).sum()
    }

    /// How many of its cases it did not run (none of an [`UNBOUNDED`] exploration's).
    pub fn not_run(&self) -> u64 {
        if self.exploration.cases == UNBOUNDED {
            return 0;
        }
        self.shard.cases_of(self.exploration.cases).saturating_sub(self.ran_count())
    }
}

/// A shard that stopped before running all its cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Early {
    /// Which.
    pub shard: Shard,
    /// Why.
    pub stopped: Stop,
    /// How many of its cases it did not run.
    pub not_run: u64,
    /// How many cases it has.
    pub of: u64,
}

/// A failure as merged: the one with the smallest reproducer among those
/// of the same code and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distinct {
    /// The failure kept.
    pub found: Found,
    /// The shard that found it.
    pub shard: u64,
    /// Every shard that found this failure.
    pub shards: BTreeSet<u64>,
}

/// The shards of one exploration, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The exploration.
    pub exploration: Identity,
    /// How many shards.
    pub shards: u64,
    /// How many cases they ran together.
    pub ran: u64,
    /// The shards that stopped early.
    pub early: Vec<Early>,
    /// The distinct failures, in case order.
    pub failures: Vec<Distinct>,
    /// Every coverage goal, and whether some shard reached it.
    pub goals: BTreeMap<String, bool>,
    /// The union of the shards' signatures.
    pub signature: BTreeSet<u64>,
    /// Each shard's coverage growth, by shard index (curves of different
    /// shards are not summed: their signatures overlap).
    pub growth: BTreeMap<u64, Vec<Growth>>,
}

/// Merges the results of every shard of one exploration, each with the
/// name of its file (for errors), each already [checked](ShardResult::check).
/// An error when they are of different explorations, or a shard is
/// missing or given twice.
pub fn merge(results: &[(String, ShardResult)]) -> Result<Merged, String> {
    let Some((first_file, first)) = results.first() else { return Err("no result files to merge".into()) };
    let count = first.shard.count;
    let mut files: BTreeMap<u64, &str> = BTreeMap::new();
    for (file, result) in results {
        let mut differences = first.exploration.differences(&result.exploration);
        if result.shard.count != count {
            differences.push(format!("shard count {} (not {count})", result.shard.count));
        }
        if !differences.is_empty() {
            return Err(format!("{file}: not the exploration of {first_file}: {}", differences.join(", ")));
        }
        if let Some(other) = files.insert(result.shard.index, file) {
            return Err(format!("{file}: shard {} is given twice, also by {other}", result.shard));
        }
    }
    let missing: Vec<String> = (1..=count).filter(|i| !files.contains_key(i)).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        let missing = missing.join(", ");
        let every = format!("every shard 1..={count} must be merged");
        return Err(format!("missing shards {missing} of the exploration of {first_file}: {every}"));
    }
    // One failure: the same property, and the same reproducer shape (or,
    // without one, the same coverage signature).
    let mut groups: BTreeMap<(&str, Result<&str, &BTreeSet<u64>>), Distinct> = BTreeMap::new();
    let (mut goals, mut signature) = (BTreeMap::new(), BTreeSet::new());
    for (_, result) in results {
        for found in &result.failures {
            let kind = if found.shape.is_empty() { Err(&found.signature) } else { Ok(found.shape.as_str()) };
            let distinct = groups.entry((&found.code, kind)).or_insert_with(|| Distinct {
                found: found.clone(),
                shard: result.shard.index,
                shards: BTreeSet::new(),
            });
            distinct.shards.insert(result.shard.index);
            if (found.steps, found.case) < (distinct.found.steps, distinct.found.case) {
                (distinct.found, distinct.shard) = (found.clone(), result.shard.index);
            }
        }
        for goal in &result.coverage.goals_missed {
            goals.entry(goal.clone()).or_insert(false);
        }
        for goal in &result.coverage.goals_reached {
            goals.insert(goal.clone(), true);
        }
        signature.extend(&result.coverage.signature);
    }
    let mut failures: Vec<Distinct> = groups.into_values().collect();
    failures.sort_by_key(|d| d.found.case);
    let mut early: Vec<Early> = results
        .iter()
        .filter(|(_, r)| r.not_run() > 0)
        .map(|(_, r)| {
            let of = r.shard.cases_of(r.exploration.cases);
            Early { shard: r.shard, stopped: r.stopped, not_run: r.not_run(), of }
        })
        .collect();
    early.sort_by_key(|e| e.shard.index);
    Ok(Merged {
        exploration: first.exploration.clone(),
        shards: count,
        ran: results.iter().map(|(_, r)| r.ran_count()).sum(),
        early,
        failures,
        goals,
        signature,
        growth: results.iter().map(|(_, r)| (r.shard.index, r.growth.clone())).collect(),
    })
}

/// A case count, with [`UNBOUNDED`] as `null`.
mod bound {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::UNBOUNDED;

    pub fn serialize<S: Serializer>(cases: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        match *cases {
            UNBOUNDED => serializer.serialize_none(),
            cases => serializer.serialize_some(&cases),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.unwrap_or(UNBOUNDED))
    }
}

/// Signature hashes as sorted 16-digit hex strings.
mod hex {
    use std::collections::BTreeSet;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hashes: &BTreeSet<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(hashes.iter().map(|h| format!("{h:016x}")))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeSet<u64>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|s| {
                let hex = s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
                hex.then(|| u64::from_str_radix(s, 16).ok())
                    .flatten()
                    .ok_or_else(|| D::Error::custom(format!("invalid signature hash `{s}`, expected 16 hex digits")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(seed: u64) -> Identity {
        Identity {
            system: "echo".into(),
            mutation: None,
            seed,
            cases: 10,
            guide: Guide::Coverage,
            nodes: "2..3".into(),
            duration: "7s".into(),
            settle: "5s".into(),
            stagger: "20ms".into(),
            clients: 1,
            until_stable: None,
            budget: None,
            backend: "events".into(),
            properties: Vec::new(),
            workload: None,
            no_final: false,
        }
    }

    fn found(case: u64, code: &str, signature: &[u64], steps: usize) -> Found {
        Found {
            case,
            code: code.into(),
            failure: format!("{code} broken: case {case}"),
            signature: signature.iter().copied().collect(),
            shape: String::new(),
            case_signature: BTreeSet::from([case]),
            steps,
            nodes: 2,
            reproducer: format!("nodes = 2\nseed = {case}\n"),
            path: format!("target/tandem/failures/explore-s1-c{case}.toml"),
            robustness: Some(Robustness { held: 8, runs: 8 }),
            fragile: false,
        }
    }

    /// Shard `index` of 3 over 10 cases, having run its first `ran` cases.
    fn shard(index: u64, ran: u64, failures: Vec<Found>) -> (String, ShardResult) {
        let shard = Shard { index, count: 3 };
        let indices: Vec<u64> = (0..10).filter(|&i| shard.contains(i)).take(ran as usize).collect();
        let stopped = if failures.is_empty() { Stop::Complete } else { Stop::Failure };
        let coverage = Reached {
            goals_reached: vec![format!("goal {index}")],
            goals_missed: vec!["goal 1".into(), "never".into()],
            signature: BTreeSet::from([index, 100]),
        };
        let result = ShardResult {
            format: FORMAT,
            exploration: identity(1),
            shard,
            ran: Span::compress(&indices, 3),
            stopped,
            failures,
            coverage,
            growth: Vec::new(),
        };
        result.check().unwrap();
        (format!("shard-{index}.json"), result)
    }

    #[test]
    fn spans_compress_strides_and_count_their_cases() {
        let spans = [Span { start: 1, end: 8, step: 3 }, Span { start: 13, end: 14, step: 3 }];
        assert_eq!(Span::compress(&[1, 4, 7, 13], 3), spans);
        assert_eq!(Span::compress(&[0, 1, 2], 1), [Span { start: 0, end: 3, step: 1 }]);
        assert_eq!(Span { start: 1, end: 8, step: 3 }.count(), 3);
        assert!(Span::compress(&[], 4).is_empty());
    }

    #[test]
    fn a_result_file_round_trips_with_hex_hashes() {
        let (_, result) = shard(2, 2, vec![found(5, "S2", &[u64::MAX, 3], 4)]);
        let text = serde_json::to_string(&result).unwrap();
        let head = r#"{"format":1,"system":"echo","mutation":null,"seed":1,"cases":10,"guide":"coverage","#;
        assert!(text.starts_with(head), "{text}");
        assert!(text.contains(r#""signature":["0000000000000003","ffffffffffffffff"]"#), "{text}");
        assert!(text.contains(r#""ran":[{"start":1,"end":5,"step":3}],"stopped":"failure""#), "{text}");
        assert_eq!(serde_json::from_str::<ShardResult>(&text).unwrap(), result);
        let bad = text.replace("ffffffffffffffff", "fffffffffffffffg");
        let error = serde_json::from_str::<ShardResult>(&bad).unwrap_err().to_string();
        assert!(error.contains("invalid signature hash `fffffffffffffffg`"), "{error}");
    }

    #[test]
    fn a_timed_result_file_has_no_case_count_and_old_files_read_without_growth() {
        let (_, mut result) = shard(2, 3, vec![]);
        result.exploration.cases = UNBOUNDED;
        result.exploration.budget = Some("10m".into());
        result.stopped = Stop::Deadline;
        result.growth = vec![Growth { cases: 2, goals: 1, signature: 9, secs: 0.25 }];
        result.check().unwrap();
        assert_eq!(result.not_run(), 0, "an unbounded shard leaves no case unrun");
        let text = serde_json::to_string(&result).unwrap();
        assert!(text.contains(r#""cases":null,"#) && text.contains(r#""budget":"10m""#), "{text}");
        assert!(text.contains(r#""stopped":"deadline""#), "{text}");
        assert!(text.contains(r#""growth":[{"cases":2,"goals":1,"signature":9,"secs":0.25}]"#), "{text}");
        assert_eq!(serde_json::from_str::<ShardResult>(&text).unwrap(), result);
        let untimed = ShardResult { exploration: identity(1), ..result.clone() };
        assert!(untimed.check().unwrap_err().contains("stopped at its deadline but has no time budget"));
        let complete = ShardResult { stopped: Stop::Complete, ..result.clone() };
        assert!(complete.check().unwrap_err().contains("stopped complete but has no case count"));

        let (_, old) = shard(1, 4, vec![]);
        let mut value = serde_json::to_value(&old).unwrap();
        let fields = value.as_object_mut().unwrap();
        fields.remove("growth").unwrap();
        fields.remove("budget").unwrap();
        assert_eq!(serde_json::from_value::<ShardResult>(value).unwrap(), old, "a file written before --for");
    }

    #[test]
    fn check_rejects_what_a_shard_cannot_have_run() {
        let (_, good) = shard(2, 3, vec![]);
        let with = |change: &dyn Fn(&mut ShardResult)| {
            let mut result = good.clone();
            change(&mut result);
            result.check().unwrap_err()
        };
        assert!(with(&|r| r.format = 2).contains("result format 2"));
        assert!(with(&|r| r.shard.index = 4).contains("shard 4/3 is not a shard"));
        assert!(with(&|r| r.ran[0].start = 0).contains("not cases of its own"), "another shard's case");
        assert!(with(&|r| r.ran[0].end = 11).contains("within 0..10"));
        assert!(with(&|r| r.ran.push(Span { start: 4, end: 5, step: 3 })).contains("overlap"));
        assert!(with(&|r| r.ran[0].end = 5).contains("stopped complete but did not run 1 of its cases"));
        assert!(with(&|r| r.stopped = Stop::Failure).contains(r#"stopped "failure" with 0 failures"#));
    }

    #[test]
    fn merge_groups_failures_by_property_and_reproducer_shape_not_values() {
        // Three shards found kv's drop-tombstones: 2-step reproducers that
        // differ only in key names, so in their coverage signatures.
        let shaped = |case, signature: &[u64], steps| Found {
            shape: "3 nodes: put 0; delete 1".into(),
            ..found(case, "S2", signature, steps)
        };
        let results = [
            shard(1, 1, vec![shaped(1, &[1], 2)]),
            shard(2, 1, vec![shaped(2, &[2], 2)]),
            shard(3, 1, vec![shaped(3, &[3], 2), Found { shape: "3 nodes: put 0".into(), ..found(6, "S2", &[4], 1) }]),
        ];
        let merged = merge(&results).unwrap();
        let groups: Vec<(u64, usize)> = merged.failures.iter().map(|d| (d.found.case, d.shards.len())).collect();
        assert_eq!(groups, [(1, 3), (6, 1)], "one failure found by three shards, and one of another shape");
    }

    #[test]
    fn merge_keeps_the_smallest_reproducer_of_each_failure_and_unions_coverage() {
        let results = [
            shard(3, 1, vec![found(3, "S2", &[7, 8], 3)]),
            shard(1, 4, vec![]),
            shard(2, 2, vec![found(5, "S2", &[7, 8], 2)]),
        ];
        let merged = merge(&results).unwrap();
        assert_eq!((merged.shards, merged.ran), (3, 7));
        assert_eq!(merged.failures.len(), 1, "the same code and signature: one failure");
        let failure = &merged.failures[0];
        assert_eq!((failure.found.case, failure.shard, failure.shards.len()), (5, 2, 2), "the fewest steps wins");
        let early: Vec<(u64, Stop, u64, u64)> =
            merged.early.iter().map(|e| (e.shard.index, e.stopped, e.not_run, e.of)).collect();
        assert_eq!(early, [(2, Stop::Failure, 1, 3), (3, Stop::Failure, 2, 3)]);
        let reached: Vec<&str> = merged.goals.iter().filter(|(_, hit)| **hit).map(|(g, _)| g.as_str()).collect();
        assert_eq!(reached, ["goal 1", "goal 2", "goal 3"]);
        assert_eq!(merged.goals.len(), 4, "`never` is missed by all");
        assert_eq!(merged.signature, BTreeSet::from([1, 2, 3, 100]));
        assert_eq!(merged.growth.keys().copied().collect::<Vec<_>>(), [1, 2, 3], "each shard's own curve");

        let tie = [
            shard(1, 1, vec![found(1, "S2", &[7], 2)]),
            shard(2, 1, vec![found(2, "S2", &[7], 2)]),
            shard(3, 1, vec![found(3, "L2", &[7], 1), found(6, "S2", &[9], 1)]),
        ];
        let merged = merge(&tie).unwrap();
        let kept: Vec<(u64, &str, usize)> =
            merged.failures.iter().map(|d| (d.found.case, d.found.code.as_str(), d.shards.len())).collect();
        assert_eq!(kept, [(1, "S2", 2), (3, "L2", 1), (6, "S2", 1)], "a tie keeps the lowest case");
    }

    #[test]
    fn merge_rejects_missing_doubled_and_foreign_shards() {
        let error = merge(&[shard(1, 4, vec![]), shard(3, 3, vec![])]).unwrap_err();
        assert_eq!(error, "missing shards 2/3 of the exploration of shard-1.json: every shard 1..=3 must be merged");
        let (_, again) = shard(1, 4, vec![]);
        let error = merge(&[shard(1, 4, vec![]), ("copy.json".into(), again), shard(2, 3, vec![])]).unwrap_err();
        assert_eq!(error, "copy.json: shard 1/3 is given twice, also by shard-1.json");
        let (file, mut other) = shard(2, 3, vec![]);
        other.exploration.seed = 2;
        other.exploration.guide = Guide::Swarm;
        let error = merge(&[shard(1, 4, vec![]), (file, other)]).unwrap_err();
        let expected =
            r#"shard-2.json: not the exploration of shard-1.json: guide "swarm" (not "coverage"), seed 2 (not 1)"#;
        assert_eq!(error, expected);
        assert!(merge(&[]).is_err());
    }
}
