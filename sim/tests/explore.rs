//! `tandem explore` as users run it: planted bugs are found, shrunk and
//! replayable; a correct node survives; threads and shards change nothing.

#![cfg(all(feature = "mutations", feature = "bundled"))]

mod common;

use std::path::Path;

use common::{scratch, stderr, stdout, tandem, trace_of};
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
    assert!(scenario.nodes <= 3, "{mutation}: {} nodes\n{}", scenario.nodes, scenario.to_toml());
    assert_eq!(scenario.mutation.as_deref(), Some(mutation));
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
    (text.clone(), reproducer)
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

/// The per-case JSON lines and the summary of a `--json` exploration.
fn cases(args: &[&str], dir: &Path) -> (Vec<String>, serde_json::Value) {
    let out = tandem(&[&["explore", "--json"], args].concat(), dir);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let summary = serde_json::from_str(&lines.pop().expect("a summary")).unwrap();
    (lines, summary)
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
fn guided_exploration_is_the_same_on_threads_and_shards() {
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
    assert_eq!(cases(&[&GUIDED[..], &["--jobs", "2"]].concat(), &dir), (all.clone(), summary.clone()), "--jobs 2");
    let (first, s1) = cases(&[&GUIDED[..], &["--shard", "1/2"]].concat(), &dir);
    let (second, s2) = cases(&[&GUIDED[..], &["--shard", "2/2", "--jobs", "2"]].concat(), &dir);
    for shard in [&s1, &s2] {
        assert_eq!(shard["cases"], 40);
        assert_eq!(shard["growth"], summary["growth"], "a guided shard follows every case's coverage");
    }
    let mut both = [first, second].concat();
    both.sort_by_key(|line| number(line));
    assert_eq!(both, all, "the shards together run exactly the cases of the whole run, mutants included");
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
    ] {
        let out = tandem(&[&["explore"], args].concat(), &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{args:?}: nothing runs");
    }
    let out = tandem(&["explore", "--mutation", "off-by-one"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let names = "no-dedup, self-delivery, stale-rebind, no-retransmit, forget-on-restart";
    assert!(stderr(&out).contains(names), "{}", stderr(&out));
    let out = tandem(&["explore", "--system", "raft"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown system `raft`, expected one of pubsub, kv"), "{}", stderr(&out));
}
