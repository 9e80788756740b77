//! What the subcommands share: their exit, finding and loading scenario
//! files, pictures, and the advice of a build without MsQuic.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tandem::scenario::{Scenario, Syntax};

use crate::bundle::{system_of, Bundle};

/// How a subcommand ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Pass,
    /// A run failed.
    Fail,
    /// Bad input or usage.
    Usage,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(match exit {
            Exit::Pass => 0,
            Exit::Fail => 1,
            Exit::Usage => 2,
        })
    }
}

/// The scenario files named by `paths`: files as given, directories as every
/// `*.toml` inside, sorted by name.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("{}: no *.toml scenario files in this directory", path.display()));
            }
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    Ok(files)
}

/// A scenario file, parsed, with the system it is for.
pub struct Loaded<'a> {
    /// The file.
    pub file: PathBuf,
    /// Its scenario.
    pub scenario: Scenario,
    /// The system that runs it.
    pub system: &'a dyn Bundle,
}

/// Parses every file for the system it names among `systems`, or returns the
/// first error as `FILE:LINE:COLUMN: message`.
pub fn load_all<'a>(paths: &[PathBuf], systems: &[&'a dyn Bundle]) -> Result<Vec<Loaded<'a>>, String> {
    scenario_files(paths)?.into_iter().map(|file| load(file, systems)).collect()
}

pub(crate) fn load<'a>(file: PathBuf, systems: &[&'a dyn Bundle]) -> Result<Loaded<'a>, String> {
    let syntaxes: Vec<&dyn Syntax> = systems.iter().map(|s| s.syntax()).collect();
    let scenario = Scenario::from_file_among(&file, &syntaxes).map_err(|e| e.to_string())?;
    let system = system_of(systems, &scenario);
    Ok(Loaded { file, scenario, system })
}

/// In a build without MsQuic: says which command builds `tandem COMMAND`
/// with it, and gives the usage exit.
pub fn without_msquic(command: &str) -> Option<Exit> {
    if cfg!(feature = "msquic") {
        return None;
    }
    eprintln!("{}", msquic_advice(tandem_sim::report::program(), command));
    Some(Exit::Usage)
}

/// What `program COMMAND` says in a build without MsQuic: how to build it
/// with MsQuic, for tandem's own binary or a user's.
fn msquic_advice(program: &str, command: &str) -> String {
    let build = match program {
        "tandem" => format!("cargo run --release -p tandem-cli --features msquic -- {command} ..."),
        // A user's own binary: their crate turns on tandem-cli's feature.
        _ => format!(
            "give your crate a feature `msquic = [\"tandem-cli/msquic\"]` and run \
             cargo run --release --bin {program} --features msquic -- {command} ..."
        ),
    };
    format!("{program} {command} needs MsQuic, and this {program} was built without it: {build} (MsQuic builds with cmake and libnuma-dev)")
}

/// Writes the timeline pictures of `pictures` as one HTML page to `path`.
pub fn write_picture(path: &Path, pictures: &[tandem::engine::picture::Picture]) -> Result<(), String> {
    tandem::engine::picture::write(path, pictures).map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads every scenario and sets up logging before anything runs; on bad
/// input prints why and gives the usage exit.
pub fn prepare<'a>(paths: &[PathBuf], log: Option<&Path>, systems: &[&'a dyn Bundle]) -> Result<Vec<Loaded<'a>>, Exit> {
    let scenarios = load_all(paths, systems).map_err(|error| {
        eprintln!("{error}");
        Exit::Usage
    })?;
    tandem_sim::logging::init(log).map_err(|error| {
        eprintln!("{}: {error}", log.map(Path::display).map(|d| d.to_string()).unwrap_or_default());
        Exit::Usage
    })?;
    Ok(scenarios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_without_msquic_names_the_binary_and_the_feature_to_enable() {
        let ours = msquic_advice("tandem", "confirm");
        assert!(ours.starts_with("tandem confirm needs MsQuic"), "{ours}");
        assert!(ours.contains("cargo run --release -p tandem-cli --features msquic -- confirm ..."), "{ours}");
        let theirs = msquic_advice("mybin", "confirm");
        assert!(theirs.starts_with("mybin confirm needs MsQuic, and this mybin was built without it"), "{theirs}");
        assert!(theirs.contains("msquic = [\"tandem-cli/msquic\"]"), "{theirs}");
        assert!(theirs.contains("--bin mybin --features msquic -- confirm"), "{theirs}");
        assert!(!theirs.contains("-p tandem-cli"), "not tandem's own binary: {theirs}");
    }
}
