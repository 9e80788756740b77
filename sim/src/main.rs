//! The `tandem` command: see `tandem --help` and spec/cli.md.

fn main() -> std::process::ExitCode {
    tandem_sim::cli::main()
}
