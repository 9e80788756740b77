//! Which shard a machine runs: `--shard I/N`, or `--shard auto/N` and
//! `--shard auto`, which read it from the environment variables that
//! Kubernetes Indexed Jobs, AWS Batch array jobs and CI matrices set.
//!
//! [`ShardSpec::resolve`] takes a lookup function instead of reading the
//! process environment, so it is a pure function of what it is given.

use std::fmt;
use std::str::FromStr;

use super::runner::Shard;

/// The variables that may hold the shard's index, in the order they are
/// tried, with the number they count from.
pub const INDEX_VARIABLES: [(&str, u64); 6] = [
    ("TANDEM_SHARD", 1),
    ("JOB_COMPLETION_INDEX", 0),
    ("AWS_BATCH_JOB_ARRAY_INDEX", 0),
    ("CI_NODE_INDEX", 1),
    ("CIRCLE_NODE_INDEX", 0),
    ("BUILDKITE_PARALLEL_JOB", 0),
];

/// The variables that may hold the shard count, in the order they are tried.
pub const COUNT_VARIABLES: [&str; 3] = ["CI_NODE_TOTAL", "CIRCLE_NODE_TOTAL", "BUILDKITE_PARALLEL_JOB_COUNT"];

/// What `--shard` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// `I/N`.
    Given(Shard),
    /// `auto/N` (the count given) or `auto` (the count from the environment too).
    Auto {
        /// `N` of `auto/N`.
        count: Option<u64>,
    },
}

impl FromStr for ShardSpec {
    type Err = String;

    /// `I/N` with 1 <= I <= N, `auto/N` with N >= 1, or `auto`.
    fn from_str(s: &str) -> Result<ShardSpec, String> {
        let expected = || format!("invalid shard `{s}`, expected I/N with 1 <= I <= N (like 1/4), auto/N or auto");
        match s.trim().split_once('/') {
            None if s.trim() == "auto" => Ok(ShardSpec::Auto { count: None }),
            Some(("auto", count)) => match count.trim().parse() {
                Ok(count) if count >= 1 => Ok(ShardSpec::Auto { count: Some(count) }),
                _ => Err(expected()),
            },
            _ => s.parse().map(ShardSpec::Given).map_err(|_| expected()),
        }
    }
}

/// A shard, and the environment variables it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The shard.
    pub shard: Shard,
    /// Where its index and count came from, like `JOB_COMPLETION_INDEX=1
    /// (counting from 0)`; empty when `--shard I/N` gave both.
    pub sources: Vec<String>,
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}", self.shard)?;
        if !self.sources.is_empty() {
            write!(f, " from {}", self.sources.join(" and "))?;
        }
        Ok(())
    }
}

impl ShardSpec {
    /// The shard, reading variables through `lookup` (a variable that is
    /// unset or empty counts as unset), or a usage error that says what
    /// to set.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Resolved, String> {
        let count = match *self {
            ShardSpec::Given(shard) => return Ok(Resolved { shard, sources: Vec::new() }),
            ShardSpec::Auto { count } => count,
        };
        let set = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let spec = count.map_or("auto".to_string(), |n| format!("auto/{n}"));
        let mut sources = Vec::new();
        let Some((name, base, value)) = INDEX_VARIABLES.iter().find_map(|&(n, b)| set(n).map(|v| (n, b, v))) else {
            let names: Vec<&str> = INDEX_VARIABLES.iter().map(|(n, _)| *n).collect();
            return Err(format!("--shard {spec}: none of {} is set; set one or give --shard I/N", names.join(", ")));
        };
        let raw: u64 = value.parse().map_err(|_| {
            format!("--shard {spec}: {name}=`{value}` is not a shard index (a number counting from {base})")
        })?;
        sources.push(format!("{name}={raw} (counting from {base})"));
        let count = match count {
            Some(count) => count,
            None => {
                let Some((total, value)) = COUNT_VARIABLES.iter().find_map(|&n| set(n).map(|v| (n, v))) else {
                    return Err(format!(
                        "--shard auto: the shard count is unknown, none of {} is set; give --shard auto/N",
                        COUNT_VARIABLES.join(", ")
                    ));
                };
                let count =
                    value.parse().ok().filter(|&n: &u64| n >= 1).ok_or_else(|| {
                        format!("--shard auto: {total}=`{value}` is not a shard count (a number from 1)")
                    })?;
                sources.push(format!("{total}={count}"));
                count
            }
        };
        let index = raw.checked_add(1 - base).filter(|&i| (1..=count).contains(&i)).ok_or_else(|| {
            format!(
                "--shard {spec}: {name}={raw} (counting from {base}) is out of range for {count} shards ({base}..={})",
                count - 1 + base
            )
        })?;
        Ok(Resolved { shard: Shard { index, count }, sources })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolves `spec` in an environment of `vars`.
    fn resolve(spec: &str, vars: &[(&str, &str)]) -> Result<Resolved, String> {
        let spec: ShardSpec = spec.parse()?;
        spec.resolve(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
    }

    fn shard(index: u64, count: u64) -> Shard {
        Shard { index, count }
    }

    #[test]
    fn specs_parse() {
        assert_eq!("2/3".parse(), Ok(ShardSpec::Given(shard(2, 3))));
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto { count: None }));
        assert_eq!("auto/4".parse(), Ok(ShardSpec::Auto { count: Some(4) }));
        for bad in ["auto/0", "auto/x", "auto/", "automatic", "0/3", "4/3", "", "/4"] {
            let error = bad.parse::<ShardSpec>().unwrap_err();
            assert!(error.contains("expected I/N") && error.contains("auto/N"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_given_shard_reads_nothing() {
        let resolved = resolve("2/4", &[("JOB_COMPLETION_INDEX", "0")]).unwrap();
        assert_eq!(resolved, Resolved { shard: shard(2, 4), sources: vec![] });
    }

    #[test]
    fn each_variable_counts_from_its_own_base() {
        for (name, value, index) in [
            ("TANDEM_SHARD", "2", 2),
            ("JOB_COMPLETION_INDEX", "2", 3),
            ("AWS_BATCH_JOB_ARRAY_INDEX", "0", 1),
            ("CI_NODE_INDEX", "4", 4),
            ("CIRCLE_NODE_INDEX", "3", 4),
            ("BUILDKITE_PARALLEL_JOB", "1", 2),
        ] {
            let resolved = resolve("auto/4", &[(name, value)]).unwrap();
            assert_eq!(resolved.shard, shard(index, 4), "{name}={value}");
            assert_eq!(resolved.sources.len(), 1);
            assert!(resolved.sources[0].starts_with(&format!("{name}={value} (counting from ")), "{resolved}");
        }
    }

    #[test]
    fn the_first_variable_set_wins_and_empty_ones_are_unset() {
        let vars = [("CIRCLE_NODE_INDEX", "3"), ("JOB_COMPLETION_INDEX", "1"), ("TANDEM_SHARD", " ")];
        let resolved = resolve("auto/4", &vars).unwrap();
        assert_eq!(resolved.shard, shard(2, 4));
        assert_eq!(resolved.to_string(), "shard 2/4 from JOB_COMPLETION_INDEX=1 (counting from 0)");
    }

    #[test]
    fn auto_alone_reads_the_count_too() {
        let resolved = resolve("auto", &[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "5")]).unwrap();
        assert_eq!(resolved.shard, shard(3, 5));
        assert_eq!(resolved.to_string(), "shard 3/5 from CI_NODE_INDEX=3 (counting from 1) and CI_NODE_TOTAL=5");
        let resolved =
            resolve("auto", &[("BUILDKITE_PARALLEL_JOB", "0"), ("BUILDKITE_PARALLEL_JOB_COUNT", "2")]).unwrap();
        assert_eq!(resolved.shard, shard(1, 2));
        let resolved = resolve("auto/3", &[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "5")]).unwrap();
        assert_eq!(resolved.shard, shard(3, 3), "a given count wins over the environment's");
    }

    #[test]
    fn missing_malformed_and_out_of_range_values_are_usage_errors() {
        let error = resolve("auto/4", &[]).unwrap_err();
        assert!(error.starts_with("--shard auto/4: none of TANDEM_SHARD, JOB_COMPLETION_INDEX,"), "{error}");
        let error = resolve("auto", &[("JOB_COMPLETION_INDEX", "1")]).unwrap_err();
        assert!(error.contains("the shard count is unknown, none of CI_NODE_TOTAL,"), "{error}");
        let error = resolve("auto/4", &[("JOB_COMPLETION_INDEX", "4")]).unwrap_err();
        assert_eq!(
            error,
            "--shard auto/4: JOB_COMPLETION_INDEX=4 (counting from 0) is out of range for 4 shards (0..=3)"
        );
        let error = resolve("auto/4", &[("TANDEM_SHARD", "0")]).unwrap_err();
        assert_eq!(error, "--shard auto/4: TANDEM_SHARD=0 (counting from 1) is out of range for 4 shards (1..=4)");
        let error = resolve("auto/4", &[("CI_NODE_INDEX", "-1")]).unwrap_err();
        assert!(error.contains("CI_NODE_INDEX=`-1` is not a shard index"), "{error}");
        let error = resolve("auto", &[("CI_NODE_INDEX", "1"), ("CI_NODE_TOTAL", "0")]).unwrap_err();
        assert!(error.contains("CI_NODE_TOTAL=`0` is not a shard count"), "{error}");
    }
}
