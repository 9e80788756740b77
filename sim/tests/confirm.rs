//! `tandem confirm` over real MsQuic on loopback.
#![cfg(feature = "msquic")]

use std::path::Path;
use std::process::Command;

#[test]
fn hot_reload_is_confirmed_over_msquic() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/hot_reload.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("confirm")
        .arg(&scenario)
        .args(["--transport", "msquic", "--json"])
        .output()
        .expect("run tandem");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(value["result"], "CONFIRMED");
    assert_eq!((value["sim"].as_str(), value["real"].as_str()), (Some("PASS"), Some("PASS")));
}

#[test]
fn a_failing_scenario_fails_on_both_backends() {
    let dir = std::env::temp_dir().join(format!("tandem-confirm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/hot_reload.toml"))
        .unwrap()
        .replace("duration = \"10s\"", "duration = \"4s\"\nsettle = \"1s\"")
        .replace("received = 0\n", "received = 5\n");
    std::fs::write(dir.join("wrong.toml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem")).arg("confirm").arg(dir.join("wrong.toml")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("CONFIRMED hot_reload sim=FAIL real=FAIL wall="), "{stdout}");
    assert!(stdout.contains("expected 5"), "{stdout}");
}
