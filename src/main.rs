use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = jwkit::cli::Cli::parse_args();
    match jwkit::run(cli) {
        Ok(status) => status.into(),
        Err(err) => jwkit::exit::report(&err),
    }
}
