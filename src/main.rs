//! The `lantern` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    lantern::cli::main(lantern::cli::Cli::parse())
}
