//! `tandem check PATH...`

use std::path::PathBuf;

use clap::Args;

use crate::bundle::Bundle;
use crate::shared::{load, scenario_files, Exit};

/// Arguments of `tandem check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files, or directories of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Prints `OK FILE` per valid file and `FILE:LINE:COLUMN: message` per
/// invalid one; exits 2 when any file is invalid.
pub fn check(args: CheckArgs, systems: &[&dyn Bundle]) -> Exit {
    let files = match scenario_files(&args.paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("{error}");
            return Exit::Usage;
        }
    };
    let mut exit = Exit::Pass;
    for file in files {
        match load(file.clone(), systems) {
            Ok(_) => println!("OK {}", file.display()),
            Err(error) => {
                eprintln!("{error}");
                exit = Exit::Usage;
            }
        }
    }
    exit
}
