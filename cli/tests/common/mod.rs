//! Running the `tandem` binary from tests.
// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `tandem ARGS` in `dir`.
pub fn tandem(args: &[&str], dir: &Path) -> Output {
    tandem_env(args, dir, &[], &[])
}

/// Runs `tandem ARGS` in `dir` with the variables of `unset` removed from
/// its environment and those of `set` added.
pub fn tandem_env(args: &[&str], dir: &Path, unset: &[&str], set: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tandem"));
    for name in unset {
        command.env_remove(name);
    }
    command.envs(set.iter().copied()).args(args).current_dir(dir).output().expect("run tandem")
}

/// Its standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Its standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A bundled scenario file.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios").join(name)
}

/// An empty scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The digest in a result line.
pub fn trace_of(line: &str) -> &str {
    let start = line.find("trace=").expect("a trace digest") + 6;
    &line[start..start + 16]
}
