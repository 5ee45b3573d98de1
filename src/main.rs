use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = jwkit::cli::Cli::parse();
    match jwkit::run(cli) {
        Ok(status) => status.into(),
        Err(err) => jwkit::exit::report(&err),
    }
}
