//! Logs through `tracing`, stamped with simulated time inside the
//! simulation, and with wall-clock time (UTC) and the time since the run
//! began on a real network.
//!
//! Node and runner code log with `tracing`; every node event sits in a
//! `node{id, inc}` span. `RUST_LOG` sets the level (default `info` with a log
//! file, `warn` on stderr). Users' own node code that logs with `tracing` gets
//! the same treatment.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
// Wall-clock `Instant`: read only outside a simulated host (see `RunClock`).
use std::time::Instant;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::EnvFilter;

/// Stamps a log line: simulated time inside a simulated host
/// (`  1.250000s`); elsewhere the wall-clock time in UTC and the time since
/// the last [`real_run_started`] (`2026-12-05T22:10:01.123456Z +1.250000s`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunClock;

/// When the real run under way began, if one did.
static REAL_RUN_START: Mutex<Option<Instant>> = Mutex::new(None);

/// Marks the start of the real run `run` (`hot_reload, real run 1 of 3`):
/// logs it, and stamps the log lines outside the simulation with the time
/// since.
pub fn real_run_started(run: &str) {
    *REAL_RUN_START.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    tracing::info!("{run} begins");
}

impl FormatTime for RunClock {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        if crate::determinism::active() {
            return write!(w, "{:>10.6}s", crate::determinism::elapsed().as_secs_f64());
        }
        SystemTime.format_time(w)?;
        match *REAL_RUN_START.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(start) => write!(w, " +{:.6}s", start.elapsed().as_secs_f64()),
            None => write!(w, " -"),
        }
    }
}

/// Installs the global subscriber: to `file` when given, else to stderr.
/// Does nothing when a subscriber is already installed (tests).
pub fn init(file: Option<&Path>) -> std::io::Result<()> {
    let default = if file.is_some() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_timer(RunClock);
    let _ = match file {
        Some(path) => builder.with_ansi(false).with_writer(Mutex::new(File::create(path)?)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    Ok(())
}
