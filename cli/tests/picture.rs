//! The timeline picture (`--html`) in a real browser: headless Chromium
//! (Debian's `chromium`) opens pages of real runs and the test reads back
//! the DOM the page's script built. CI keeps a screenshot of a failing run
//! as a build artifact (`target/tandem/artifacts/timeline.png`).
#![cfg(feature = "bundled")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{scenario, scratch, stdout, tandem};

/// Chromium, or `None` outside CI when it is not installed (`scripts/test`
/// installs it; in CI a missing browser fails the test).
fn chromium() -> Option<&'static str> {
    let found = Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("chromium is not installed: `apt-get install chromium` (scripts/test does it)");
    }
    if !found {
        eprintln!("skipped: chromium is not installed (`apt-get install chromium`; scripts/test does it)");
    }
    found.then_some("chromium")
}

/// Chromium as the machine allows it: headless, as root, no network.
fn browser(chromium: &str, profile: &Path) -> Command {
    let mut command = Command::new(chromium);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,700",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The DOM of `page` after its script ran.
fn dom(chromium: &str, page: &Path, dir: &Path) -> String {
    let out = browser(chromium, &dir.join("profile"))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("data-status=\"rendered\""),
        "the page did not finish drawing:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dom.contains("data-errors="), "script errors: {}", between(&dom, "<pre id=\"errors\">", "</pre>"));
    dom
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map_or(text.len(), |i| i + start.len());
    &text[from..from + text[from..].find(end).unwrap_or(0)]
}

/// The number a run's `<section>` reports for `what` (`lanes`, `bands`, ...).
fn count(dom: &str, what: &str) -> usize {
    between(dom, &format!("data-{what}=\""), "\"").parse().unwrap_or_else(|_| panic!("no data-{what} in the page"))
}

fn picture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pictures").join(name)
}

/// Replays `file` with `--html` and returns the page.
fn replay_page(file: &Path, dir: &Path) -> PathBuf {
    let page = dir.join("page.html");
    let out = tandem(&["replay", file.to_str().unwrap(), "--html", page.to_str().unwrap()], dir);
    assert_eq!(out.status.code(), Some(1), "the reproducer fails: {}", stdout(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("@import"), "the page loads nothing");
    page
}

#[test]
fn a_duplicate_delivery_is_drawn_with_its_band_arrows_and_the_violation() {
    let Some(chromium) = chromium() else { return };
    let dir = scratch("picture-duplicate");
    let page = replay_page(&picture("duplicate.toml"), &dir);
    let dom = dom(chromium, &page, &dir);
    assert_eq!(count(&dom, "lanes"), 2);
    assert_eq!(dom.matches("class=\"lane\"").count(), 2);
    assert!(count(&dom, "bands") >= 1 && dom.contains("class=\"band one-way\""), "the one-way partition is a band");
    assert!(count(&dom, "arrows") >= 2, "the send joins both deliveries");
    assert_eq!(dom.matches("class=\"arrow\"").count(), count(&dom, "arrows"));
    assert_eq!(between(&dom, "data-violation=\"", "\""), "S2");
    assert!(dom.contains("class=\"violation\""));
    assert!(dom.contains("class=\"dot problem named\""), "the second delivery is the duplicate the violation names");

    // The artifact CI keeps, and the README's kind of picture.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tandem/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("timeline.png");
    let _ = std::fs::remove_file(&png);
    let out = browser(chromium, &dir.join("profile"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot of the picture");
    eprintln!("screenshot: {}", png.canonicalize().unwrap().display());
}

#[test]
fn a_missing_delivery_after_a_restart_is_marked() {
    let Some(chromium) = chromium() else { return };
    let dir = scratch("picture-restart");
    let page = replay_page(&picture("forget_on_restart.toml"), &dir);
    let dom = dom(chromium, &page, &dir);
    assert!(dom.contains("class=\"crash\"") && dom.contains("class=\"restart\""), "node 0's crash and restart");
    assert!(dom.contains("class=\"arrow missing\""), "the broadcast never reached node 0");
    assert_eq!(between(&dom, "data-violation=\"", "\""), "L2");
    assert_eq!(
        dom.matches("class=\"dot named\"").count(),
        1,
        "the violation names the broadcast node 0 never delivered"
    );
}

#[test]
fn a_kv_rebind_is_marked_and_writes_join_the_replicas_that_stored_them() {
    let Some(chromium) = chromium() else { return };
    let dir = scratch("picture-rebind");
    let page = dir.join("rebind.html");
    let rebind = scenario("kv/rebind.toml");
    let out = tandem(&["run", rebind.to_str().unwrap(), "--html", page.to_str().unwrap()], &dir);
    assert!(out.status.success(), "{}", stdout(&out));
    let dom = dom(chromium, &page, &dir);
    assert!(dom.contains("class=\"rebind\""), "the rebind is marked on its lane");
    assert!(count(&dom, "steps") >= 1 && count(&dom, "dots") >= 1);
    assert!(count(&dom, "arrows") >= 1 && dom.contains("data-kind=\"write\"") && dom.contains("data-kind=\"store\""));
    assert_eq!(between(&dom, "data-violation=\"", "\""), "");
}

#[test]
fn a_run_of_ten_thousand_events_renders_in_seconds() {
    let Some(chromium) = chromium() else { return };
    let dir = scratch("picture-large");
    let mut text = String::from("name = \"large\"\nnodes = 16\nseeds = [0]\nduration = \"30s\"\n\n");
    text.push_str("[[step]]\nawait = { converged = true, timeout = \"10s\" }\n\n");
    text.push_str("[[step]]\npartition = { a = [0, 1, 2, 3], b = [4, 5, 6, 7] }\n\n");
    for i in 0..170 {
        text.push_str(&format!("[[step]]\nafter = \"100ms\"\nbroadcast = {{ from = {} }}\n\n", i % 16));
    }
    text.push_str("[[step]]\nheal = {}\n");
    let file = dir.join("large.toml");
    std::fs::write(&file, text).unwrap();
    let (page, trace) = (dir.join("large.html"), dir.join("large.jsonl"));
    let args = ["run", file.to_str().unwrap(), "--html", page.to_str().unwrap(), "--trace", trace.to_str().unwrap()];
    let out = tandem(&args, &dir);
    assert!(out.status.success(), "{}", stdout(&out));
    let events = std::fs::read_to_string(&trace).unwrap().lines().count();
    assert!(events >= 10_000, "{events} events");
    let started = Instant::now();
    let dom = dom(chromium, &page, &dir);
    let took = started.elapsed();
    assert!(count(&dom, "dots") >= 9_000, "every dot is drawn");
    assert!(!dom.contains("dot problem"), "a passing run has no duplicate deliveries");
    let render: f64 = between(&dom, "data-render-ms=\"", "\"").parse().unwrap();
    eprintln!("{events} events: drawn in {render:.0} ms, browser done in {took:?}");
    assert!(render < 3_000.0, "drawing {events} events took {render} ms");
    assert!(took < Duration::from_secs(60));
}
