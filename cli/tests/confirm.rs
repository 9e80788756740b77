//! `tandem confirm` over real MsQuic on loopback.
#![cfg(all(feature = "msquic", feature = "bundled"))]

mod common;

use common::{scenario, scratch, stderr, stdout, tandem};

#[test]
fn hot_reload_is_confirmed_over_msquic() {
    let hot = scenario("hot_reload.toml");
    let out = tandem(&["confirm", hot.to_str().unwrap(), "--transport", "msquic", "--json"], &scratch("confirm"));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let value: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(value["result"], "CONFIRMED");
    assert_eq!((value["sim"].as_str(), value["real"].as_str()), (Some("PASS"), Some("PASS")));
}

#[test]
fn a_failing_scenario_fails_on_both_backends() {
    let dir = scratch("confirm-wrong");
    let text = std::fs::read_to_string(scenario("hot_reload.toml"))
        .unwrap()
        .replace("duration = \"10s\"", "duration = \"4s\"\nsettle = \"1s\"")
        .replace("received = 0\n", "received = 5\n");
    std::fs::write(dir.join("wrong.toml"), text).unwrap();
    let out = tandem(&["confirm", "wrong.toml", "--runs", "2", "--html", "both.html"], &dir);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("CONFIRMED hot_reload sim=FAIL real=FAIL wall="), "{text}");
    assert!(text.contains(" agreed=2/2 "), "both real runs fail as the simulation does: {text}");
    assert!(text.contains("expected 5"), "{text}");
    let page = std::fs::read_to_string(dir.join("both.html")).unwrap();
    assert!(page.contains("hot_reload seed=") && page.contains("hot_reload (MsQuic, loopback)"), "both runs are drawn");
}

#[cfg(feature = "mutations")]
#[test]
fn an_explored_failure_is_confirmed_over_msquic() {
    let dir = scratch("confirm-explored");
    let explore = tandem(&["explore", "--cases", "20", "--seed", "1", "--mutation", "self-delivery"], &dir);
    assert_eq!(explore.status.code(), Some(1), "{}", stdout(&explore));
    let text = stdout(&explore);
    let reproducer = text.lines().find_map(|l| l.strip_prefix("  reproduce: tandem replay ")).expect("a reproducer");
    let out = tandem(&["confirm", reproducer], &dir);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "a confirmed failure is still a failure: {text}");
    assert!(text.contains(" sim=FAIL real=FAIL "), "{text}");
    assert!(text.starts_with("CONFIRMED "), "{text}");
    assert!(text.contains("S1 no self-delivery"), "{text}");
}

#[cfg(feature = "mutations")]
#[test]
fn explore_confirms_what_it_found_k_times() {
    let dir = scratch("explore-confirm");
    let args = ["explore", "--cases", "20", "--seed", "1", "--mutation", "self-delivery", "--confirm", "2"];
    let explore = tandem(&args, &dir);
    let text = stdout(&explore);
    assert_eq!(explore.status.code(), Some(1), "{text}");
    let line =
        text.lines().find(|l| l.starts_with("  CONFIRMED ")).unwrap_or_else(|| panic!("a confirmation line: {text}"));
    assert!(line.contains(" sim=FAIL real=FAIL ") && line.contains(" agreed=2/2 "), "{line}");
}
