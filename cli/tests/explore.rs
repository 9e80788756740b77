//! `tandem explore` as users run it: planted bugs are found, shrunk and
//! replayable; a correct node survives; threads and shards change nothing.

#![cfg(all(feature = "mutations", feature = "bundled"))]

mod common;

use std::path::Path;

use common::{scratch, stderr, stdout, tandem, tandem_env, trace_of};
use serde_json::Value;
use tandem::scenario::Scenario;
use tandem_kv::Kv;
use tandem_pubsub::PubSub;

/// Explores the reference system with `mutation`; see [`finds_in`].
fn finds(mutation: &str, codes: &[&str], jobs: &str, dir: &Path) -> (String, String) {
    finds_in("pubsub", mutation, codes, jobs, dir)
}

/// Explores `system` with `mutation` and checks the finding: exit 1, a FOUND
/// line naming one of `codes`, a reproducer of at most 6 steps and 3 nodes
/// that replays to the same failure and digest twice. Returns the output and
/// the reproducer's text.
fn finds_in(system: &str, mutation: &str, codes: &[&str], jobs: &str, dir: &Path) -> (String, String) {
    let args = ["explore", "--system", system, "--cases", "500", "--seed", "1", "--mutation", mutation, "--jobs", jobs];
    let out = tandem(&args, dir);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let mut lines = text.lines();
    let found = lines.next().expect("a FOUND line");
    let reproduce = lines.next().expect("a reproduce line");
    let failure = found.strip_prefix("FOUND ").unwrap_or_else(|| panic!("{found}"));
    let failure = &failure[..failure.rfind(" after ").unwrap_or_else(|| panic!("{found}"))];
    assert!(codes.iter().any(|code| failure.starts_with(&format!("{code} "))), "{mutation}: {found}");
    let path = reproduce.strip_prefix("  reproduce: tandem replay ").unwrap_or_else(|| panic!("{reproduce}"));
    assert!(path.starts_with("target/tandem/failures/explore-s1-c") && path.ends_with(".toml"), "{path}");
    let scenario = Scenario::from_file_among(&dir.join(path), &[&PubSub, &Kv]).unwrap();
    assert_eq!(scenario.system.as_deref(), Some(system), "the reproducer names its system");
    assert!(scenario.steps.len() <= 6, "{mutation}: {} steps\n{}", scenario.steps.len(), scenario.to_toml());
    // kv's writes come from whichever nodes the draw picked, and renumbering
    // them changes the run: its reproducers may keep up to 5.
    let most_nodes = if system == "kv" { 5 } else { 3 };
    assert!(scenario.nodes <= most_nodes, "{mutation}: {} nodes\n{}", scenario.nodes, scenario.to_toml());
    assert_eq!(scenario.planted_bug.as_deref(), Some(mutation));
    let replays: Vec<String> = (0..2)
        .map(|_| {
            let replay = tandem(&["replay", path], dir);
            assert_eq!(replay.status.code(), Some(1), "a reproducer fails every time: {}", stdout(&replay));
            stdout(&replay)
        })
        .collect();
    assert_eq!(trace_of(&replays[0]), trace_of(&replays[1]), "the same digest twice");
    assert!(replays[0].trim_end().ends_with(failure), "replay: {}found: {failure}", replays[0]);
    let reproducer = std::fs::read_to_string(dir.join(path)).unwrap();
    let robust = robustness(found);
    assert!(robust.ends_with("/8"), "8 perturbed runs by default: {found}");
    let first = reproducer.lines().next().unwrap_or_default();
    let fragile = if found.ends_with(", timing-fragile") { ", timing-fragile" } else { "" };
    assert!(first.starts_with(&format!("# robust {robust}{fragile}: fails with ")), "the file carries it: {first}");
    (text.clone(), reproducer)
}

/// The robustness a FOUND line ends with (`; robust 7/8`, maybe followed
/// by `, timing-fragile` or why): `7/8`.
fn robustness(found: &str) -> &str {
    let words = found.rsplit_once("; robust ").unwrap_or_else(|| panic!("no robustness: {found}")).1;
    words.split([',', ' ']).next().unwrap()
}

#[test]
fn robustness_is_the_same_every_time_and_follows_its_flags() {
    let dir = scratch("robustness");
    let explore = |extra: &[&str]| {
        let mut args = vec!["explore", "--system", "twophase", "--cases", "100", "--seed", "1"];
        args.extend(["--mutation", "vote-unsynced"]);
        args.extend(extra);
        let out = tandem(&args, &dir);
        assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
        stdout(&out).lines().next().unwrap_or_default().to_string()
    };
    let found = explore(&[]);
    assert_eq!(found, explore(&[]), "the same exploration, the same shrink and robustness");
    let case = found.split(" cases; shrunk").next().and_then(|head| head.rsplit(' ').next()).unwrap();
    let reproducer = format!("target/tandem/failures/explore-s1-c{case}.toml");
    let replay = tandem(&["replay", &reproducer, "--robustness", "8"], &dir);
    let measured = stdout(&replay).lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(measured, format!("  robust {}", robustness(&found)), "replay measures the same: {found}");
    let held: u32 = robustness(&found).split('/').next().unwrap().parse().unwrap();
    assert!(held >= 4, "kept only while at least 4 of 8 perturbed runs fail: {found}");
    let sixteen = explore(&["--robustness", "16", "--min-robust", "0.75"]);
    assert!(robustness(&sixteen).ends_with("/16"), "{sixteen}");
    let held: u32 = robustness(&sixteen).split('/').next().unwrap().parse().unwrap();
    assert!(held >= 12, "{sixteen}");
    let unmeasured = explore(&["--robustness", "0"]);
    assert!(!unmeasured.contains("robust"), "0 measures nothing: {unmeasured}");
    let json: Value = serde_json::from_str(
        stdout(&tandem(
            &[
                "explore",
                "--system",
                "twophase",
                "--cases",
                "100",
                "--seed",
                "1",
                "--mutation",
                "vote-unsynced",
                "--json",
            ],
            &dir,
        ))
        .lines()
        .last()
        .unwrap(),
    )
    .unwrap();
    assert_eq!(format!("{}/{}", json["robustness"]["held"], json["robustness"]["runs"]), robustness(&found));
    assert_eq!(json["fragile"], false);
}

#[test]
fn self_delivery_breaks_s1() {
    finds("self-delivery", &["S1"], "1", &scratch("self-delivery"));
}

#[test]
fn no_dedup_breaks_s2_and_two_threads_find_the_same() {
    let one = finds("no-dedup", &["S2"], "1", &scratch("no-dedup-1"));
    let two = finds("no-dedup", &["S2"], "2", &scratch("no-dedup-2"));
    assert_eq!(one, two, "--jobs 2 reports the same case, shrink and reproducer as --jobs 1");
}

#[test]
fn stale_rebind_breaks_l1() {
    finds("stale-rebind", &["L1", "L2"], "1", &scratch("stale-rebind"));
}

#[test]
fn no_retransmit_breaks_l2() {
    finds("no-retransmit", &["L2"], "1", &scratch("no-retransmit"));
}

#[test]
fn forget_on_restart_breaks_l2() {
    finds("forget-on-restart", &["L2"], "1", &scratch("forget-on-restart"));
}

#[test]
fn kv_planted_bugs_are_found_shrunk_and_replayed() {
    finds_in("kv", "no-tiebreak", &["L1"], "1", &scratch("kv-no-tiebreak"));
    finds_in("kv", "no-clock-merge", &["assert", "S2", "L1"], "1", &scratch("kv-no-clock-merge"));
    finds_in("kv", "drop-tombstones", &["S1", "S2", "L1"], "1", &scratch("kv-drop-tombstones"));
    finds_in("kv", "skip-missing-keys", &["L1"], "1", &scratch("kv-skip-missing-keys"));
}

#[test]
fn a_correct_kv_survives() {
    let out = tandem(&["explore", "--system", "kv", "--cases", "100", "--seed", "1"], &scratch("kv-clean"));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "OK 100 cases, seed 1\n");
}

#[test]
fn a_correct_node_survives() {
    let out = tandem(&["explore", "--cases", "100", "--seed", "1"], &scratch("clean"));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "OK 100 cases, seed 1\n");
}

/// The per-case JSON lines and the summary of a `--json` exploration,
/// without the growth's wall seconds (they differ from run to run).
fn cases(args: &[&str], dir: &Path) -> (Vec<String>, serde_json::Value) {
    let out = tandem(&[&["explore", "--json"], args].concat(), dir);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let mut summary: Value = serde_json::from_str(&lines.pop().expect("a summary")).unwrap();
    for point in summary["growth"].as_array_mut().unwrap() {
        point.as_object_mut().unwrap().remove("secs").expect("wall seconds");
    }
    (lines, summary)
}

#[test]
fn a_time_budget_stops_the_exploration_and_draws_its_coverage() {
    let dir = scratch("budget");
    let started = std::time::Instant::now();
    let args = ["explore", "--system", "pubsub", "--for", "2s", "--seed", "1", "--json", "--coverage-html", "c.html"];
    let out = tandem(&args, &dir);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(took.as_secs_f64() >= 2.0 && took.as_secs_f64() < 8.0, "it stops after about 2s: {took:?}");
    let summary: Value = serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    let ran = summary["cases"].as_u64().unwrap();
    assert!(ran > 0, "{summary}");
    let growth = summary["growth"].as_array().unwrap();
    let secs: Vec<f64> = growth.iter().map(|g| g["secs"].as_f64().unwrap()).collect();
    assert!(secs.windows(2).all(|w| w[0] <= w[1]) && secs[0] < secs[secs.len() - 1], "{secs:?}");
    assert!(secs[secs.len() - 1] >= 1.9, "the last cases end at the deadline: {secs:?}");
    assert_eq!(growth.last().unwrap()["cases"].as_u64(), Some(ran));
    let full: Vec<u64> = growth.iter().map(|g| g["cases"].as_u64().unwrap()).filter(|c| c % 64 == 0).collect();
    assert_eq!(full, (1..=ran / 64).map(|g| g * 64).collect::<Vec<_>>(), "a point after every generation");
    let page = std::fs::read_to_string(dir.join("c.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("seed 1, guide coverage, budget 2s"), "{page}");
    assert_eq!(page.matches("<circle").count(), 4 * growth.len(), "a dot per point in each of the four panels");

    // Both bounds: the cases end first; the result file says why it stopped.
    let out = tandem(&["explore", "--cases", "10", "--for", "10m", "--seed", "1", "--shard", "1/1"], &dir);
    assert_eq!(stdout(&out), "OK 10 cases, seed 1\n", "{}", stderr(&out));
    let file = dir.join("target/tandem/failures/explore-s1-shard-1-of-1.json");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(
        (&result["stopped"], &result["budget"], &result["cases"]),
        (&"complete".into(), &"10m".into(), &10.into())
    );

    // Two timed shards merge, each keeping its own curve.
    for shard in ["1/2", "2/2"] {
        let out = tandem(&["explore", "--for", "1s", "--seed", "2", "--shard", shard], &dir);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let files = ["1", "2"].map(|i| format!("target/tandem/failures/explore-s2-shard-{i}-of-2.json"));
    for file in &files {
        let result: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        assert_eq!((&result["stopped"], &result["cases"]), (&"deadline".into(), &Value::Null), "{result}");
    }
    let out = tandem(&["merge", &files[0], &files[1], "--json", "--coverage-html", "m.html"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let merged: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!((&merged["total"], &merged["budget"], &merged["not_run"]), (&Value::Null, &"1s".into(), &0.into()));
    let curves = merged["growth"].as_array().unwrap();
    let points: usize = curves.iter().map(|c| c["growth"].as_array().unwrap().len()).sum();
    assert_eq!(curves.iter().map(|c| &c["shard"]).collect::<Vec<_>>(), [&1, &2], "each shard's curve");
    let page = std::fs::read_to_string(dir.join("m.html")).unwrap();
    assert!(page.contains("budget 1s, 2 shards") && page.contains("shard 2/2"), "{page}");
    assert_eq!(page.matches("<circle").count(), 4 * points);
}

/// The case number of a per-case JSON line.
fn number(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["case"].as_u64().unwrap()
}

#[test]
fn threads_and_shards_run_exactly_the_cases_of_one_thread() {
    let dir = scratch("shards");
    let args = ["--cases", "40", "--seed", "3", "--guide", "swarm"];
    let (all, summary) = cases(&args, &dir);
    assert_eq!((&summary["result"], &summary["cases"], &summary["seed"]), (&"OK".into(), &40.into(), &3.into()));
    assert_eq!(all.len(), 40);
    assert_eq!(cases(&[&args[..], &["--jobs", "2"]].concat(), &dir).0, all, "--jobs 2 runs the same cases");
    let (first, s1) = cases(&[&args[..], &["--shard", "1/2"]].concat(), &dir);
    let (second, s2) = cases(&[&args[..], &["--shard", "2/2", "--jobs", "2"]].concat(), &dir);
    assert_eq!((s1["cases"].as_u64(), s2["cases"].as_u64()), (Some(20), Some(20)));
    assert!(first.iter().all(|l| number(l) % 2 == 1), "shard 1/2 runs cases 1, 3, 5, ...");
    let mut both = [first, second].concat();
    both.sort_by_key(|line| number(line));
    assert_eq!(both, all, "the shards together run exactly the cases of the whole run, digests included");
}

/// A short guided exploration: 80 small cases, so the second generation
/// (cases 65 to 80) mutates the corpus of the first.
const GUIDED: [&str; 10] =
    ["--cases", "80", "--seed", "3", "--nodes", "2..3", "--duration", "7s", "--guide", "coverage"];

#[test]
fn guided_exploration_is_the_same_on_threads() {
    let dir = scratch("guided");
    let (all, summary) = cases(&GUIDED, &dir);
    assert_eq!(all.len(), 80);
    assert!(all[..64].iter().all(|l| l.contains(r#""origin":"fresh""#)), "the first generation has no corpus");
    assert!(all[64..].iter().any(|l| l.contains(r#""parent""#)), "the second mutates corpus cases");
    assert_eq!(summary["guide"], "coverage");
    let growth = summary["growth"].as_array().unwrap();
    assert_eq!(growth.last().unwrap()["cases"], 80);
    assert_eq!(growth.last().unwrap()["signature"], summary["signature"]);
    assert!(growth.windows(2).all(|w| w[0]["signature"].as_u64() <= w[1]["signature"].as_u64()));
    assert_eq!(cases(&[&GUIDED[..], &["--jobs", "2"]].concat(), &dir), (all, summary), "--jobs 2");
}

/// A field of a per-case JSON line.
fn field(line: &str, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).unwrap()[name].clone()
}

#[test]
fn guided_shards_guide_themselves_on_disjoint_cases() {
    let dir = scratch("guided-shards");
    // 72 cases a shard: the last 8 of each, its second generation, may mutate its own corpus.
    let args = [&["--cases", "144"][..], &GUIDED[2..]].concat();
    let (first, s1) = cases(&[&args[..], &["--shard", "1/2"]].concat(), &dir);
    let (second, s2) = cases(&[&args[..], &["--shard", "2/2", "--jobs", "2"]].concat(), &dir);
    let again = cases(&[&args[..], &["--shard", "1/2", "--jobs", "2"]].concat(), &dir);
    assert_eq!(again, (first.clone(), s1.clone()), "--jobs 2 runs the same cases");
    for (shard, lines, summary) in [(1, &first, &s1), (2, &second, &s2)] {
        assert_eq!((lines.len(), &summary["cases"]), (72, &72.into()), "shard {shard} runs only its own cases");
        let own = |number: u64| (number - 1) % 2 == shard - 1;
        assert!(lines.iter().all(|l| own(number(l))), "shard {shard}/2 runs cases {shard}, {}, ...", shard + 2);
        assert!(lines[..64].iter().all(|l| field(l, "origin") == "fresh"), "its first generation has no corpus");
        let parents: Vec<u64> = lines[64..].iter().filter_map(|l| field(l, "origin")["parent"].as_u64()).collect();
        assert!(!parents.is_empty(), "its second generation mutates its corpus");
        assert!(parents.iter().all(|&p| own(p)), "shard {shard} mutates only its own cases: {parents:?}");
        assert_eq!(summary["growth"].as_array().unwrap().last().unwrap()["cases"], 72, "its coverage is its own");
    }
    let mut numbers: Vec<u64> = first.iter().chain(&second).map(|l| number(l)).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=144).collect::<Vec<_>>(), "the two shards tile the cases");
    let (alone, _) = cases(&[&["--cases", "8"][..], &GUIDED[2..]].concat(), &dir);
    for line in first.iter().chain(&second).filter(|l| number(l) <= 8) {
        let same = &alone[number(line) as usize - 1];
        assert_eq!(field(line, "trace"), field(same, "trace"), "a fresh case is the same on a shard as on one machine");
    }
}

#[test]
fn until_stable_on_a_shard_counts_only_its_own_cases() {
    let dir = scratch("stable-shard");
    let (runs, summary) = cases(&[&GUIDED[..], &["--shard", "2/2", "--until-stable", "1"]].concat(), &dir);
    assert_eq!(summary["stable"], true);
    assert!(runs.len() < 40 && runs.iter().all(|l| number(l) % 2 == 0), "{runs:?}");
    let new: Vec<bool> = runs.iter().map(|l| field(l, "new") == true).collect();
    let (last, before) = new.split_last().unwrap();
    assert!(!last && before.iter().all(|n| *n), "it stops at its first own case that reached nothing new: {new:?}");
}

#[test]
fn until_stable_stops_after_n_cases_in_a_row_reached_nothing_new() {
    let dir = scratch("stable");
    let args = [&GUIDED[..], &["--until-stable", "2"]].concat();
    let (runs, summary) = cases(&args, &dir);
    assert_eq!(summary["stable"], true);
    assert!(runs.len() < 80, "{} cases", runs.len());
    let new = |line: &String| serde_json::from_str::<serde_json::Value>(line).unwrap()["new"] == true;
    let streak = runs.iter().rev().take_while(|l| !new(l)).count();
    assert_eq!(streak, 2, "it stops at the first run of 2 cases that reached nothing new");
    assert!(runs.windows(2).filter(|w| w.iter().all(|l| !new(l))).count() == 1);
    assert_eq!(
        cases(&[&args[..], &["--jobs", "2"]].concat(), &dir),
        (runs, summary),
        "--jobs 2 stops at the same case"
    );
}

#[test]
fn bad_arguments_exit_2_before_running() {
    let dir = scratch("usage");
    for args in [
        &["--shard", "0/2"][..],
        &["--shard", "3/2"],
        &["--shard", "1-2"],
        &["--nodes", "5..2"],
        &["--nodes", "0..3"],
        &["--duration", "2s"],
        &["--cases", "0"],
        &["--guide", "random"],
        &["--until-stable", "0"],
        &["--for", "0s"],
        &["--for", "abc"],
    ] {
        let out = tandem(&[&["explore"], args].concat(), &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}: nothing runs");
    }
    let out = tandem(&["explore", "--for", "0s"], &dir);
    assert!(stderr(&out).contains("invalid budget `0s`, expected a duration above zero, like 90s"), "{}", stderr(&out));
    let out = tandem(&["explore", "--mutation", "off-by-one"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let names = "no-dedup, self-delivery, stale-rebind, no-retransmit, forget-on-restart";
    assert!(stderr(&out).contains(names), "{}", stderr(&out));
    let out = tandem(&["explore", "--system", "raft"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown system `raft`, expected one of pubsub, kv"), "{}", stderr(&out));
}

/// The shard-index variables `--shard auto` reads: cleared so that a CI
/// runner's own do not leak into the tests.
const SHARD_VARIABLES: [&str; 9] = [
    "TANDEM_SHARD",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "CI_NODE_INDEX",
    "CIRCLE_NODE_INDEX",
    "BUILDKITE_PARALLEL_JOB",
    "CI_NODE_TOTAL",
    "CIRCLE_NODE_TOTAL",
    "BUILDKITE_PARALLEL_JOB_COUNT",
];

/// Runs shard `shard` (like `2/4`) of a small guided exploration of
/// `mutation` with `seed`, and returns its result file's path and contents.
fn shard(mutation: &str, seed: &str, shard: &str, dir: &Path) -> (String, Value) {
    let args = ["explore", "--cases", "256", "--seed", seed, "--nodes", "2..3", "--duration", "7s"];
    let out = tandem(&[&args[..], &["--mutation", mutation, "--shard", shard]].concat(), dir);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}{}", stdout(&out), stderr(&out));
    let (index, count) = shard.split_once('/').unwrap();
    let file = format!("target/tandem/failures/explore-s{seed}-shard-{index}-of-{count}.json");
    assert!(stderr(&out).contains(&format!("result: {file}\n")), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(&file)).unwrap()).unwrap();
    (file, result)
}

/// The case indices a result file says its shard ran.
fn ran(result: &Value) -> Vec<u64> {
    let spans = result["ran"].as_array().unwrap();
    let span = |s: &Value, k: &str| s[k].as_u64().unwrap();
    spans.iter().flat_map(|s| (span(s, "start")..span(s, "end")).step_by(span(s, "step") as usize)).collect()
}

#[test]
fn four_guided_shards_merge_into_one_exploration() {
    let dir = scratch("merge");
    let shards: Vec<(String, Value)> = (1..=4).map(|i| shard("stale-rebind", "1", &format!("{i}/4"), &dir)).collect();
    let mut failures = Vec::new();
    let mut all = Vec::new();
    for (i, (_, result)) in (1u64..).zip(&shards) {
        assert_eq!((&result["format"], &result["system"]), (&1.into(), &"pubsub".into()));
        assert_eq!(result["guide"], "coverage");
        assert_eq!(result["shard"], serde_json::json!({ "index": i, "count": 4 }));
        let ran = ran(result);
        let own: Vec<u64> = (i - 1..256).step_by(4).collect();
        assert_eq!(ran, own[..ran.len()], "shard {i} runs a prefix of its own cases");
        let found = result["failures"].as_array().unwrap();
        match result["stopped"].as_str().unwrap() {
            "failure" => assert_eq!(found[0]["case"].as_u64(), ran.last().map(|c| c + 1), "it stops at its failure"),
            "complete" => assert!(found.is_empty() && ran.len() == 64),
            other => panic!("{other}"),
        }
        failures.extend(found.iter().map(|f| (i, f.clone())));
        all.extend(ran);
    }
    assert!(!failures.is_empty(), "a shard finds the planted bug");
    let count = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), count, "the shards' cases are disjoint");

    // The failures of the same property and reproducer shape, as merge keeps them.
    let mut groups: std::collections::BTreeMap<String, Vec<(u64, &Value)>> = Default::default();
    for (i, f) in &failures {
        assert!(f["shape"].as_str().is_some_and(|shape| shape.contains(" nodes: ")), "{f}");
        groups.entry(format!("{} {}", f["code"], f["shape"])).or_default().push((*i, f));
    }
    assert!(groups.values().any(|g| g.len() > 1), "several shards found one failure: {groups:?}");

    let files: Vec<&str> = shards.iter().map(|(file, _)| file.as_str()).collect();
    let out = tandem(&[&["merge"], &files[..], &["--out", "merged"]].concat(), &dir);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with("FOUND ")).collect();
    assert_eq!(found.len(), groups.len(), "one FOUND line per distinct failure:\n{text}");
    for group in groups.values() {
        let &(shard, kept) = group.iter().min_by_key(|(_, f)| (f["steps"].as_u64(), f["case"].as_u64())).unwrap();
        let case = kept["case"].as_u64().unwrap();
        let fragile = if kept["fragile"] == true { ", timing-fragile" } else { "" };
        let robust = format!("{}/{}{fragile}", kept["robustness"]["held"], kept["robustness"]["runs"]);
        let line = format!(
            "FOUND {} (shard {shard}, case {case}; {} shards found it); robust {robust}",
            kept["failure"].as_str().unwrap(),
            group.len()
        );
        let at = text.lines().position(|l| l == line).unwrap_or_else(|| panic!("{line}\n{text}"));
        let path = format!("merged/explore-s1-c{case}.toml");
        assert_eq!(text.lines().nth(at + 1).unwrap(), format!("  reproduce: tandem replay {path}"));
        let reproducer = std::fs::read_to_string(dir.join(&path)).unwrap();
        assert_eq!(reproducer, kept["reproducer"].as_str().unwrap(), "the kept reproducer, as the shard wrote it");
        let replay = tandem(&["replay", &path], &dir);
        assert_eq!(replay.status.code(), Some(1), "{}", stdout(&replay));
        assert!(stdout(&replay).trim_end().ends_with(kept["failure"].as_str().unwrap()), "{}", stdout(&replay));
    }
    let stopped = shards.iter().filter(|(_, r)| ran(r).len() < 64).count();
    assert_eq!(stderr(&out).lines().filter(|l| l.contains(" stopped at its first failure: ")).count(), stopped);
    let goals = |key: &str| -> std::collections::BTreeSet<String> {
        shards.iter().flat_map(|(_, r)| r["coverage"][key].as_array().unwrap().iter().map(|g| g.to_string())).collect()
    };
    let (reached, missed) = (goals("goals_reached"), goals("goals_missed"));
    let merged = format!(
        "MERGED 4 shards, {count} cases, {} distinct failures, {} of {} goals, signature of ",
        groups.len(),
        reached.len(),
        reached.union(&missed).count()
    );
    assert!(text.lines().last().unwrap().starts_with(&merged), "{text}");

    let json = tandem(&[&["merge", "--json"], &files[..], &["--out", "merged"]].concat(), &dir);
    assert_eq!(json.status.code(), Some(1));
    let summary: Value = serde_json::from_str(stdout(&json).trim()).expect("one JSON object");
    assert_eq!(
        (&summary["result"], &summary["shards"], &summary["cases"]),
        (&"FOUND".into(), &4.into(), &count.into())
    );
    assert_eq!(summary["not_run"].as_u64(), Some(256 - count as u64), "every case not run is accounted for");
    assert_eq!(summary["failures"].as_array().unwrap().len(), groups.len());
    let union: std::collections::BTreeSet<&str> = shards
        .iter()
        .flat_map(|(_, r)| r["coverage"]["signature"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()))
        .collect();
    assert_eq!(summary["signature"].as_u64(), Some(union.len() as u64), "the signatures' union");
}

#[test]
fn merge_rejects_missing_doubled_and_foreign_shards_and_bad_files() {
    let dir = scratch("merge-bad");
    let files: Vec<String> = (1..=4).map(|i| shard("self-delivery", "1", &format!("{i}/4"), &dir).0).collect();
    let (other, _) = shard("self-delivery", "2", "4/4", &dir);
    std::fs::write(dir.join("broken.json"), "{\"format\": 1, \"system\": ").unwrap();
    let fail = |args: &[&str], message: &str| {
        let out = tandem(&[&["merge"], args].concat(), &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}{}", stdout(&out), stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    };
    let [one, two, three, four] = [&files[0], &files[1], &files[2], &files[3]].map(String::as_str);
    fail(&[one, two, three], "missing shards 4/4 of the exploration of");
    fail(&[one, two, three, three, four], &format!("{three}: shard 3/4 is given twice, also by {three}"));
    fail(&[one, two, three, &other], &format!("{other}: not the exploration of {one}: seed 2 (not 1)"));
    fail(&[one, two, three, four, "broken.json"], "broken.json: not a tandem explore result file: ");
    fail(&[one, "missing.json"], "missing.json: cannot read it");
    let out = tandem(&["merge", one, two, three, four], &dir);
    assert_eq!(out.status.code(), Some(1), "the four shards merge: {}", stderr(&out));
    assert!(stdout(&out).contains("(shard 1, case 1; 4 shards found it)"), "{}", stdout(&out));
}

#[test]
fn shard_auto_reads_the_index_from_the_environment() {
    let dir = scratch("shard-auto");
    let args = ["explore", "--cases", "8", "--seed", "1", "--duration", "7s", "--guide", "swarm", "--json"];
    let run = |shard: &str, set: &[(&str, &str)]| {
        tandem_env(&[&args[..], &["--shard", shard]].concat(), &dir, &SHARD_VARIABLES, set)
    };
    let out = run("auto/4", &[("JOB_COMPLETION_INDEX", "1")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("explore: shard 2/4 from JOB_COMPLETION_INDEX=1 (counting from 0)"),
        "{}",
        stderr(&out)
    );
    let numbers: Vec<u64> = stdout(&out).lines().filter(|l| l.contains(r#""case""#)).map(number).collect();
    assert_eq!(numbers, [2, 6], "shard 2 of 4 runs cases 2 and 6");
    let file = dir.join("target/tandem/failures/explore-s1-shard-2-of-4.json");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(result["shard"], serde_json::json!({ "index": 2, "count": 4 }));
    let out = run("auto", &[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "4")]);
    let from = "shard 3/4 from CI_NODE_INDEX=3 (counting from 1) and CI_NODE_TOTAL=4";
    assert!(stderr(&out).contains(from), "{}", stderr(&out));
    for (shard, set, message) in [
        ("auto/4", &[][..], "--shard auto/4: none of TANDEM_SHARD, JOB_COMPLETION_INDEX"),
        ("auto/4", &[("TANDEM_SHARD", "5")], "TANDEM_SHARD=5 (counting from 1) is out of range for 4 shards"),
        ("auto", &[("CIRCLE_NODE_INDEX", "0")], "the shard count is unknown"),
    ] {
        let out = run(shard, set);
        assert_eq!(out.status.code(), Some(2), "{set:?}");
        assert_eq!(stdout(&out), "", "nothing runs");
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
}

#[test]
fn the_boot_stagger_is_the_systems_or_the_flags_and_reproducers_carry_it() {
    let dir = scratch("stagger");
    let systems = stdout(&tandem(&["systems"], &dir));
    assert!(systems.contains("settle 5s, boot stagger 20ms"), "{systems}");
    let args = ["explore", "--cases", "50", "--seed", "1", "--mutation", "self-delivery", "--stagger", "300ms"];
    let out = tandem(&args, &dir);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let path =
        stdout(&out).lines().nth(1).and_then(|l| l.strip_prefix("  reproduce: tandem replay ")).map(String::from);
    let reproducer = std::fs::read_to_string(dir.join(path.expect("a reproduce line"))).unwrap();
    assert!(reproducer.contains("stagger = \"300ms\""), "{reproducer}");
    let too_long = tandem(&["explore", "--cases", "1", "--stagger", "2s"], &dir);
    assert_eq!(too_long.status.code(), Some(2));
    assert!(stderr(&too_long).contains("--stagger 2s is too long, expected at most 1s"), "{}", stderr(&too_long));
}

#[test]
fn branching_finds_a_deep_bug_swarm_misses_and_its_branch_replays_alone() {
    let dir = scratch("branch");
    let hunt = |guide: &str| {
        let args = ["--system", "kv", "--mutation", "restart-reuses-version", "--cases", "400", "--seed", "1"];
        tandem(&[&["explore", "--json", "--jobs", "2", "--guide", guide][..], &args].concat(), &dir)
    };
    let swarm = hunt("swarm");
    assert_eq!(swarm.status.code(), Some(0), "swarm misses it in 400 cases: {}", stdout(&swarm));
    let branch = hunt("branch");
    assert_eq!(branch.status.code(), Some(1), "branching finds it: {}", stderr(&branch));
    let lines: Vec<String> = stdout(&branch).lines().map(str::to_string).collect();
    let summary: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let failing = lines.iter().find(|l| field(l, "failure").is_string()).expect("the failing case");
    let origin = field(failing, "origin");
    assert!(origin["branched_at_ms"].as_u64().is_some(), "the failing case is a branch: {origin}");
    assert!(lines[..16].iter().all(|l| field(l, "origin") == "fresh"), "the first generation is 16 fresh cases");
    assert!(lines[16..32].iter().any(|l| field(l, "origin").is_object()), "the second generation branches");
    assert_eq!(summary["guide"], "branch");
    let reproducer = summary["reproduce"].as_str().expect("a reproducer");
    let replay = tandem(&["replay", reproducer], &dir);
    assert_eq!(replay.status.code(), Some(1), "the branch's reproducer fails alone: {}", stdout(&replay));
}

/// `--property` names what judges the cases: kv's `skip-missing-keys` breaks
/// convergence (L1) only, so exploring by S1 and S2 finds nothing where L1
/// finds it at once; the reproducer names L1 and replays judged by it, and a
/// reproducer naming a property the system lacks is bad input.
#[test]
fn property_selects_the_properties_that_judge_the_cases() {
    let dir = scratch("explore-property");
    let explore = |codes: &[&str]| {
        let mut args = vec!["explore", "--system", "kv", "--mutation", "skip-missing-keys", "--cases", "200"];
        args.extend(["--seed", "1", "--jobs", "1"]);
        for code in codes {
            args.extend(["--property", code]);
        }
        tandem(&args, &dir)
    };
    let safety = explore(&["S1", "S2"]);
    assert_eq!(safety.status.code(), Some(0), "{}{}", stdout(&safety), stderr(&safety));
    let convergence = explore(&["L1"]);
    let text = stdout(&convergence);
    assert_eq!(convergence.status.code(), Some(1), "{text}");
    assert!(text.starts_with("FOUND L1 "), "{text}");
    let path = text.lines().nth(1).and_then(|l| l.strip_prefix("  reproduce: tandem replay ")).expect("a reproducer");
    let reproducer = Scenario::from_file_among(&dir.join(path), &[&Kv]).unwrap();
    assert_eq!(reproducer.properties, ["L1"]);
    let replay = tandem(&["replay", path], &dir);
    assert_eq!(replay.status.code(), Some(1), "{}", stdout(&replay));
    let text =
        std::fs::read_to_string(dir.join(path)).unwrap().replace(r#"properties = ["L1"]"#, r#"properties = ["L9"]"#);
    std::fs::write(dir.join("unknown.toml"), &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("properties")).expect("the key") + 1;
    let bad = tandem(&["replay", "unknown.toml"], &dir);
    assert_eq!(bad.status.code(), Some(2));
    let error = stderr(&bad);
    assert!(error.contains(&format!("unknown.toml:{line}:15: unknown property `L9` of system `kv`")), "{error}");
    let unknown = explore(&["G1"]);
    assert_eq!(unknown.status.code(), Some(2), "a coverage goal judges nothing");
    assert!(stderr(&unknown).contains("expected one of: S1, S2, L1"), "{}", stderr(&unknown));
}

/// `--workload NAME` picks one of the system's workloads (an unknown one is
/// bad usage), and the final phase is in every primary case and its
/// reproducer: `sticky-forward` is found by L3 there, with single-key
/// operations only, and not with `--no-final`.
#[test]
fn workload_picks_the_operations_and_the_final_phase_finds_what_only_it_sees() {
    let dir = scratch("explore-workload");
    let explore = |extra: &[&str]| {
        let args = ["explore", "--system", "primary", "--seed", "1", "--jobs", "1"];
        tandem(&[&args[..], extra].concat(), &dir)
    };
    let unknown = explore(&["--workload", "reads-only"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(stdout(&unknown), "", "nothing runs");
    let error = stderr(&unknown);
    assert!(
        error.contains(
            "--workload reads-only: system `primary` has no such workload, expected one of: mixed, single-key"
        ),
        "{error}"
    );
    let none = tandem(&["explore", "--system", "kv", "--workload", "mixed"], &dir);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("expected one of: (none)"), "{}", stderr(&none));
    let found = explore(&["--mutation", "sticky-forward", "--workload", "single-key", "--cases", "200"]);
    let text = stdout(&found);
    assert_eq!(found.status.code(), Some(1), "{text}{}", stderr(&found));
    assert!(text.starts_with("FOUND L3 "), "{text}");
    let path = text.lines().nth(1).and_then(|l| l.strip_prefix("  reproduce: tandem replay ")).expect("a reproducer");
    let reproducer = Scenario::from_file_among(&dir.join(path), &[&tandem_primary::Primary]).unwrap();
    assert!(!reproducer.finals.is_empty(), "{}", reproducer.to_toml());
    let keys: Vec<String> = reproducer
        .steps
        .iter()
        .chain(&reproducer.finals)
        .filter_map(|step| match &step.action {
            tandem::scenario::Action::Op(call) => {
                Some(call.typed::<tandem_primary::PrimaryOp>().unwrap().key().to_string())
            }
            _ => None,
        })
        .collect();
    let drawn = reproducer.steps.len()
        - reproducer.steps.iter().filter(|s| !matches!(s.action, tandem::scenario::Action::Op(_))).count();
    assert!(keys[..drawn].iter().all(|key| key == "a"), "single-key draws only `a`: {keys:?}");
    let replays: Vec<String> = (0..2).map(|_| stdout(&tandem(&["replay", path], &dir))).collect();
    assert_eq!(trace_of(&replays[0]), trace_of(&replays[1]), "the same digest twice");
    let without = explore(&["--mutation", "sticky-forward", "--no-final", "--cases", "100"]);
    assert_eq!(without.status.code(), Some(0), "{}{}", stdout(&without), stderr(&without));
    let listed = stdout(&tandem(&["systems"], &dir));
    assert!(listed.contains("  workloads: mixed (default), single-key\n  final phase: yes"), "{listed}");
}
