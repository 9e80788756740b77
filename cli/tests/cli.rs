//! The `tandem` binary as users and the acceptance checks run it.
#![cfg(feature = "bundled")]

mod common;

use common::{scenario, scratch, stderr, stdout, tandem, tandem_env, trace_of};
use tandem::engine::profile::Profile;

#[test]
fn run_passes_and_digests_are_stable() {
    let dir = scratch("run");
    let hot = scenario("hot_reload.toml");
    let first = tandem(&["run", hot.to_str().unwrap(), "--seed", "7", "--seeds", "2"], &dir);
    assert_eq!(first.status.code(), Some(0), "{}{}", stdout(&first), stderr(&first));
    let lines: Vec<String> = stdout(&first).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("PASS hot_reload seed=7 sim=10.000s wall="), "{}", lines[0]);
    assert!(lines[1].starts_with("PASS hot_reload seed=8 "), "{}", lines[1]);
    let again = tandem(&["run", hot.to_str().unwrap(), "--seed", "7"], &dir);
    assert_eq!(trace_of(&stdout(&again)), trace_of(&lines[0]), "same seed, same digest");
    assert_ne!(trace_of(&lines[0]), trace_of(&lines[1]));
}

#[test]
fn json_and_trace_files() {
    let dir = scratch("json");
    let hot = scenario("hot_reload.toml");
    let out = tandem(&["run", hot.to_str().unwrap(), "--json", "--trace", "t.jsonl"], &dir);
    assert_eq!(out.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(value["result"], "PASS");
    assert_eq!(value["seed"], 0);
    let trace = std::fs::read_to_string(dir.join("t.jsonl")).unwrap();
    assert!(trace.lines().count() > 10);
    for line in trace.lines() {
        let _: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
    }
}

#[test]
fn a_wrong_expectation_fails_and_its_reproducer_replays_to_the_same_digest() {
    let dir = scratch("fail");
    let text =
        std::fs::read_to_string(scenario("hot_reload.toml")).unwrap().replace("received = 0\n", "received = 1\n");
    std::fs::write(dir.join("wrong.toml"), text).unwrap();
    let out = tandem(&["run", "wrong.toml", "--seed", "3"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let mut lines = text.lines();
    let result = lines.next().unwrap();
    assert!(result.starts_with("FAIL hot_reload seed=3 "), "{result}");
    assert!(result.contains("node 0 delivered 0 messages, expected 1"), "{result}");
    assert_eq!(lines.next().unwrap(), "  reproduce: tandem replay target/tandem/failures/hot_reload-seed3.toml");
    let picture = "  picture:   tandem replay target/tandem/failures/hot_reload-seed3.toml --html target/tandem/failures/hot_reload-seed3.html";
    assert_eq!(lines.next().unwrap(), picture, "a failing run says how to see it");
    let page = tandem(&picture.trim_start()["picture:".len()..].split_whitespace().skip(1).collect::<Vec<_>>(), &dir);
    assert_eq!(page.status.code(), Some(1));
    assert!(std::fs::read_to_string(dir.join("target/tandem/failures/hot_reload-seed3.html"))
        .unwrap()
        .contains("hot_reload seed=3"));
    for _ in 0..2 {
        let replay = tandem(&["replay", "target/tandem/failures/hot_reload-seed3.toml"], &dir);
        assert_eq!(replay.status.code(), Some(1), "a reproducer of a failure fails every time");
        assert_eq!(trace_of(&stdout(&replay)), trace_of(result));
    }
}

#[test]
fn broken_files_exit_2_with_line_and_column_before_running() {
    let dir = scratch("broken");
    std::fs::write(dir.join("good.toml"), "nodes = 2\n").unwrap();
    std::fs::write(dir.join("bad.toml"), "nodes = 2\n\n[[step]]\ncrash = { node = 5 }\n").unwrap();
    let out = tandem(&["run", "good.toml", "bad.toml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "", "nothing runs");
    assert!(stderr(&out).starts_with("bad.toml:4:18: "), "{}", stderr(&out));
    let check = tandem(&["check", "good.toml", "bad.toml"], &dir);
    assert_eq!(check.status.code(), Some(2));
    assert_eq!(stdout(&check), "OK good.toml\n");
    assert!(stderr(&check).starts_with("bad.toml:4:18: "), "{}", stderr(&check));
    assert_eq!(tandem(&["check", "good.toml"], &dir).status.code(), Some(0));
    assert_eq!(tandem(&["run", "--no-such-flag", "good.toml"], &dir).status.code(), Some(2));
    assert_eq!(tandem(&["run", "missing.toml"], &dir).status.code(), Some(2));
}

#[test]
fn check_determinism_compares_two_processes() {
    let dir = scratch("determinism");
    let hot = scenario("hot_reload.toml");
    let out = tandem(&["run", hot.to_str().unwrap(), "--check-determinism", "--seed", "4"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with("PASS hot_reload seed=4 "), "{}", stdout(&out));
}

#[test]
fn systems_lists_every_bundled_system_with_its_vocabulary() {
    let dir = scratch("systems");
    let out = tandem(&["systems", "--json"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let systems: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = systems.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pubsub", "kv", "twophase", "primary"], "the reference system first: the default");
    assert_eq!(systems[0]["operations"], serde_json::json!(["broadcast", "direct"]));
    let codes: Vec<&str> =
        systems[0]["properties"].as_array().unwrap().iter().map(|p| p["code"].as_str().unwrap()).collect();
    for code in ["S1", "S2", "S3", "S4", "L1", "L2"] {
        assert!(codes.contains(&code), "{codes:?}");
    }
    assert_eq!(systems[0]["planted_bugs"].as_array().unwrap().len(), 7);
    assert_eq!(systems[1]["planted_bugs"].as_array().unwrap().len(), 6);
    assert_eq!(systems[2]["capabilities"]["storage"], serde_json::json!(true));
    assert_eq!(systems[2]["planted_bugs"].as_array().unwrap().len(), 5);
    assert_eq!(
        systems[2]["tolerance"]["disk_faults"],
        serde_json::json!([{ "fault": "lying-sync", "node": 0 }, { "fault": "corrupt-read", "node": 0 }])
    );
    assert_eq!(systems[3]["tolerance"]["disk_faults"], serde_json::json!([]), "survives no disk corruption");
    assert_eq!(systems[3]["operations"], serde_json::json!(["put", "get", "append"]));
    assert_eq!(systems[3]["planted_bugs"].as_array().unwrap().len(), 6);
    assert_eq!(systems[3]["workloads"], serde_json::json!(["mixed", "single-key"]));
    assert_eq!(systems[3]["final_phase"], serde_json::json!(true));
    assert_eq!(systems[1]["workloads"], serde_json::json!([]), "kv names no workloads");
    assert_eq!(systems[1]["final_phase"], serde_json::json!(false));
    let text = tandem(&["systems"], &dir);
    assert!(stdout(&text).starts_with("pubsub (default): "), "{}", stdout(&text));
    assert_eq!(stdout(&text).matches("  survives: disk lying-sync on node 0\n").count(), 1, "{}", stdout(&text));
    assert_eq!(stdout(&text).matches("  survives: disk corrupt-read on node 0\n").count(), 1, "{}", stdout(&text));
}

#[test]
fn a_scenario_picks_its_system_and_mismatches_are_rejected_before_running() {
    let dir = scratch("pick");
    std::fs::write(
        dir.join("kv_on_pubsub.toml"),
        "nodes = 2\n\n[[step]]\nput = { node = 0, key = \"a\", value = \"x\" }\n",
    )
    .unwrap();
    let out = tandem(&["run", "kv_on_pubsub.toml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("kv_on_pubsub.toml:4:1: unknown action `put`"), "{}", stderr(&out));
    assert!(stderr(&out).contains("or an operation of system `pubsub`: broadcast, direct"), "{}", stderr(&out));
    std::fs::write(dir.join("unknown.toml"), "system = \"raft\"\nnodes = 2\n").unwrap();
    let out = tandem(&["check", "unknown.toml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "unknown.toml:1:10: unknown system `raft`, expected one of pubsub, kv, twophase, primary"
    );
}

#[test]
fn help_describes_the_tool_and_every_subcommand() {
    let out = tandem(&["--help"], &scratch("help"));
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.starts_with("Deterministic simulation testing for networked nodes"), "{text}");
    for command in ["run", "replay", "check", "confirm", "explore", "merge", "systems", "bench", "calibrate"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(line.split_whitespace().count() > 2, "{command} has a description: {line}");
    }
    assert!(text.lines().any(|l| l.trim_start().starts_with("bench") && l.contains("Measure tandem")), "{text}");
    assert!(!text.contains("crate"), "the help speaks of the tool, not of crates: {text}");
    for command in ["run", "replay", "check", "confirm", "explore", "merge", "systems", "bench", "calibrate"] {
        let help = stdout(&tandem(&[command, "--help"], &scratch("help")));
        let example = help
            .split("Examples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("`tandem {command} --help` has examples: {help}"));
        assert!(example.trim_start().starts_with(&format!("tandem {command}")), "{command}: {example}");
    }
}

#[test]
fn calibrate_writes_a_profile_whose_sync_latency_the_simulation_takes() {
    let dir = scratch("calibrate");
    let out = tandem(&["calibrate", "--samples", "3", "--out", "local.toml"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("| disk sync |"), "{}", stdout(&out));
    let mut profile = Profile::from_file(&dir.join("local.toml")).unwrap();
    assert_eq!((profile.disk.write.samples, profile.disk.sync.samples), (3, 3));
    assert_eq!(profile.quic.is_some(), cfg!(feature = "msquic"), "QUIC is measured only with MsQuic");

    // A slower disk changes a syncing system's runs, by flag or variable,
    // and a determinism check's child processes take the same profile.
    profile.disk.sync.p50_us = 40_000.0;
    std::fs::write(dir.join("slow.toml"), profile.to_toml()).unwrap();
    let commit = scenario("twophase/commit.toml");
    let commit = commit.to_str().unwrap();
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let out = tandem_env(&[&["run", commit, "--seed", "1"], extra].concat(), &dir, &["TANDEM_PROFILE"], env);
        assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
        trace_of(&stdout(&out)).to_string()
    };
    let slow = run(&["--profile", "slow.toml"], &[]);
    assert_ne!(run(&[], &[]), slow, "the default profile syncs faster");
    assert_eq!(run(&[], &[("TANDEM_PROFILE", "slow.toml")]), slow);
    assert_eq!(run(&["--profile", "slow.toml", "--check-determinism"], &[]), slow);
    let bad = tandem(&["run", commit, "--profile", "missing.toml"], &dir);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--profile"), "{}", stderr(&bad));
}

#[cfg(not(feature = "msquic"))]
#[test]
fn confirm_without_msquic_says_how_to_get_it() {
    let args = ["confirm", "scenarios/hot_reload.toml", "--runs", "2", "--robustness", "4", "--min-robust", "0.5"];
    let out = tandem(&args, &scratch("no-msquic"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cargo run --release -p tandem-cli --features msquic -- confirm"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_run_reports_its_coverage_signature_and_the_goals_it_missed() {
    let dir = scratch("coverage");
    let hot = scenario("hot_reload.toml");
    let json = |seed: &str| {
        let out = tandem(&["run", hot.to_str().unwrap(), "--seed", seed, "--json"], &dir);
        serde_json::from_str::<serde_json::Value>(stdout(&out).trim()).expect("one JSON object")
    };
    let (first, again) = (json("7"), json("7"));
    assert!(first["signature"].as_u64().is_some_and(|n| n > 10), "{first}");
    assert_eq!(first["signature"], again["signature"], "the same run, the same signature");
    let text = tandem(&["run", hot.to_str().unwrap(), "--seed", "7"], &dir);
    let missed = first["missed"].as_array().unwrap();
    assert!(!missed.is_empty(), "hot_reload reaches no restart goal: {first}");
    for goal in missed {
        assert!(stderr(&text).contains(goal.as_str().unwrap()), "{}", stderr(&text));
    }
}

#[test]
fn a_command_whose_reader_goes_away_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("pipe");
    let hot = scenario("hot_reload.toml");
    // Thousands of result lines: more than a pipe holds, so the command is
    // still writing when its reader goes (`tandem run ... | head -1`).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["run", hot.to_str().unwrap(), "--seeds", "3000"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("PASS hot_reload"), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert!(out.status.success() || out.status.signal() == Some(13), "{:?}", out.status);
    }
}
