//! The exit status (DESIGN.md §4) and the one place errors are printed.

use std::io::{self, Write};
use std::process::ExitCode;

/// 0 success; 1 a token was rejected; 2 anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Rejected,
    Error,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(match s {
            ExitStatus::Success => 0,
            ExitStatus::Rejected => 1,
            ExitStatus::Error => 2,
        })
    }
}

/// Prints `error: <cause chain>` once on stderr and picks the exit code. A broken pipe
/// (`jwkit ... | head -1`) is not an error: exit quietly with 0.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    // A server's queued log lines come first.
    crate::output::flush_log(std::time::Duration::from_secs(1));
    let prefix = crate::output::paint("error:", crate::output::RED);
    let text = format!("{err:#}");
    let _ = writeln!(
        io::stderr().lock(),
        "{prefix} {}",
        crate::output::escape(&text)
    );
    ExitStatus::Error.into()
}
