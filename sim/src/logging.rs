//! Logs through `tracing`, stamped with simulated time inside the simulation.
//!
//! Node and runner code log with `tracing`; every node event sits in a
//! `node{id, inc}` span. `RUST_LOG` sets the level (default `info` with a log
//! file, `warn` on stderr). Users' own node code that logs with `tracing` gets
//! the same treatment.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

/// Stamps simulated time inside a simulated host, `-` elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match crate::determinism::active().then(crate::determinism::elapsed) {
            Some(t) => write!(w, "{:>10.6}s", t.as_secs_f64()),
            None => write!(w, "{:>11}", "-"),
        }
    }
}

/// Installs the global subscriber: to `file` when given, else to stderr.
/// Does nothing when a subscriber is already installed (tests).
pub fn init(file: Option<&Path>) -> std::io::Result<()> {
    let default = if file.is_some() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_timer(SimTime);
    let _ = match file {
        Some(path) => builder.with_ansi(false).with_writer(Mutex::new(File::create(path)?)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    Ok(())
}
