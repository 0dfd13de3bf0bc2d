//! `lantern check-config FILE`: validate without contacting anything, print the effective config masked.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, EXIT_CONFIG};

pub fn check_config(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            print!("{}", config.to_effective_toml());
            eprintln!("{}: configuration is valid", file.display());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: configuration is invalid ({} problem(s))",
                file.display(),
                errors.0.len()
            );
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
