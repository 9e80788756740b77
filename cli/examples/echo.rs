//! The guide's echo system (`sim/examples/ping.rs`) with the whole
//! `tandem` command, as a user's own binary gets it:
//! `cargo run -p tandem-cli --example echo -- run sim/examples/ping.toml`.

#[path = "../../sim/examples/ping.rs"]
#[allow(dead_code)] // its own `main` runs one scenario; this one is the CLI
mod ping;

use ping::Echo;

fn main() -> std::process::ExitCode {
    tandem_cli::main_with(&[&Echo])
}
