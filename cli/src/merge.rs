//! `tandem merge`: the result files of every shard of one exploration,
//! merged (`docs/cli.md`).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;
use tandem::scenario::Scenario;

use crate::bundle::Bundle;
use crate::coverage_page::{self, Curve};
use crate::robust::words;
use crate::shared::Exit;
use tandem_sim::explore::results::{merge as merge_results, Merged, ShardResult, Stop};
use tandem_sim::explore::runner::UNBOUNDED;
use tandem_sim::report::FAILURES_DIR;
use tandem_sim::report::{next_steps, write_reproducer_text};

/// Arguments of `tandem merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The result files of the shards (`explore --result`), one per shard.
    #[arg(required = true, value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Where the reproducers of the failures go.
    #[arg(long, value_name = "DIR", default_value = FAILURES_DIR)]
    out: PathBuf,
    /// Print one JSON summary instead of the text lines.
    #[arg(long)]
    json: bool,
    /// Write the coverage over cases and over wall seconds, one curve per
    /// shard, to FILE (HTML).
    #[arg(long, value_name = "FILE")]
    coverage_html: Option<PathBuf>,
}

/// Reads and checks one result file; errors name it.
fn read(file: &Path) -> Result<ShardResult, String> {
    let name = file.display();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read it: {e}"))?;
    let result: ShardResult =
        serde_json::from_str(&text).map_err(|e| format!("{name}: not a tandem explore result file: {e}"))?;
    result.check().map_err(|e| format!("{name}: {e}"))?;
    Ok(result)
}

/// Checks that every reproducer of `results` is a scenario of the system
/// explored, which this binary must carry.
fn check_reproducers(results: &[(String, ShardResult)], systems: &[&dyn Bundle]) -> Result<(), String> {
    for (file, result) in results {
        let name = &result.exploration.system;
        let Some(system) = systems.iter().find(|s| s.syntax().system() == name) else {
            let known: Vec<&str> = systems.iter().map(|s| s.syntax().system()).collect();
            return Err(format!("{file}: unknown system `{name}`, expected one of {}", known.join(", ")));
        };
        for found in &result.failures {
            let source = format!("{file} (the reproducer of case {})", found.case);
            Scenario::parse(&found.reproducer, &source, system.syntax()).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `tandem merge`.
pub fn merge(args: MergeArgs, systems: &[&dyn Bundle]) -> Exit {
    let merged = args
        .files
        .iter()
        .map(|file| read(file).map(|result| (file.display().to_string(), result)))
        .collect::<Result<Vec<_>, String>>()
        .and_then(|results| {
            check_reproducers(&results, systems)?;
            merge_results(&results)
        });
    let merged = match merged {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Usage;
        }
    };
    if let Some(page) = &args.coverage_html {
        let curves: Vec<Curve> = merged
            .growth
            .iter()
            .map(|(index, points)| Curve { name: format!("shard {index}/{}", merged.shards), points })
            .collect();
        let title = coverage_page::title(&merged.exploration, merged.shards);
        if let Err(error) = coverage_page::write(page, &title, &curves) {
            eprintln!("error: {error}");
            return Exit::Usage;
        }
    }
    let mut paths = Vec::new();
    for distinct in &merged.failures {
        let stem = Path::new(&distinct.found.path).file_stem().map(|s| s.to_string_lossy().into_owned());
        let stem = stem.unwrap_or_else(|| format!("explore-s{}-c{}", merged.exploration.seed, distinct.found.case));
        match write_reproducer_text(&args.out, &stem, &distinct.found.reproducer) {
            Ok(path) => paths.push(path),
            Err(error) => {
                eprintln!("cannot write the reproducer: {error}");
                return Exit::Fail;
            }
        }
    }
    if args.json {
        println!("{}", summary_json(&merged, &paths));
    } else {
        print_text(&merged, &paths);
    }
    if merged.failures.is_empty() {
        Exit::Pass
    } else {
        Exit::Fail
    }
}

/// The FOUND lines and the MERGED line on standard output; the shards that
/// stopped early and the goals missed on standard error.
fn print_text(merged: &Merged, paths: &[PathBuf]) {
    for (distinct, path) in merged.failures.iter().zip(paths) {
        let robust = distinct.found.robustness.map(|r| format!("; {}", words(&r, distinct.found.fragile)));
        println!(
            "FOUND {} (shard {}, case {}; {} shards found it){}",
            distinct.found.failure,
            distinct.shard,
            distinct.found.case,
            distinct.shards.len(),
            robust.unwrap_or_default()
        );
        println!("{}", next_steps(path));
    }
    for early in &merged.early {
        let why = match early.stopped {
            Stop::Failure => "at its first failure",
            Stop::Stable => "when its coverage was stable",
            Stop::Deadline => "when its time budget ran out",
            Stop::Complete => unreachable!("a complete shard ran every case (checked on reading)"),
        };
        eprintln!("shard {} stopped {why}: {} of its {} cases not run", early.shard, early.not_run, early.of);
    }
    let reached = merged.goals.values().filter(|hit| **hit).count();
    println!(
        "MERGED {} shards, {} cases, {} distinct failures, {reached} of {} goals, signature of {} hashes",
        merged.shards,
        merged.ran,
        merged.failures.len(),
        merged.goals.len(),
        merged.signature.len()
    );
    let missed = missed(merged);
    if !missed.is_empty() {
        eprintln!("missed: {}", missed.join("; "));
    }
}

/// The goals no shard reached.
fn missed(merged: &Merged) -> Vec<&str> {
    merged.goals.iter().filter(|(_, hit)| !**hit).map(|(goal, _)| goal.as_str()).collect()
}

fn summary_json(merged: &Merged, paths: &[PathBuf]) -> serde_json::Value {
    let failures: Vec<serde_json::Value> = merged
        .failures
        .iter()
        .zip(paths)
        .map(|(d, path)| {
            json!({
                "failure": d.found.failure, "code": d.found.code, "shard": d.shard, "case": d.found.case,
                "found_by": d.shards, "steps": d.found.steps, "nodes": d.found.nodes, "reproduce": path,
                "robustness": d.found.robustness, "fragile": d.found.fragile,
            })
        })
        .collect();
    let e = &merged.exploration;
    json!({
        "result": if merged.failures.is_empty() { "OK" } else { "FOUND" },
        "system": e.system, "mutation": e.mutation, "seed": e.seed, "guide": e.guide,
        "total": (e.cases != UNBOUNDED).then_some(e.cases), "budget": e.budget,
        "shards": merged.shards, "cases": merged.ran,
        "not_run": merged.early.iter().map(|x| x.not_run).sum::<u64>(), "stopped_early": merged.early,
        "failures": failures,
        "goals_reached": merged.goals.values().filter(|hit| **hit).count(), "goals": merged.goals.len(),
        "missed": missed(merged), "signature": merged.signature.len(),
        "growth": merged.growth.iter().map(|(shard, growth)| json!({ "shard": shard, "growth": growth })).collect::<Vec<_>>(),
    })
}
