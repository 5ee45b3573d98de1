//! The one printer: data to stdout, messages to stderr, and the colour decision.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

use crate::cli::ColorChoice;

static COLOR: OnceLock<bool> = OnceLock::new();

pub const RED: &str = "31";
pub const YELLOW: &str = "33";
pub const BOLD: &str = "1";

/// Decides once whether stderr gets colour: `--color`, then `NO_COLOR`, then "is it a terminal".
pub fn init_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stderr().is_terminal()
        }
    };
    let _ = COLOR.set(on);
}

/// Wraps `text` in an ANSI style when colour is on.
pub fn paint(text: &str, style: &str) -> String {
    if COLOR.get().copied().unwrap_or(false) {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Writes data to stdout. Errors (a closed pipe included) go back to the caller.
pub fn data(bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes.as_ref())?;
    out.flush()
}

/// Writes one line of data to stdout.
pub fn data_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A JSON document on stdout, pretty, with a final newline.
pub fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(data(text)?)
}

/// `error: ...` on stderr, for a reported outcome that is not a failure of jwkit itself.
pub fn error(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "{} {msg}", paint("error:", RED));
}

/// `warning: ...` on stderr.
pub fn warn(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "{} {msg}", paint("warning:", YELLOW));
}

/// A note for people on stderr ("saved key ...").
pub fn note(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "{msg}");
}
