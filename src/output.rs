//! The one printer: data to stdout, messages to stderr, and the colour decision.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

static COLOR: OnceLock<bool> = OnceLock::new();
static VERBOSE: OnceLock<bool> = OnceLock::new();

/// `--verbose`: errors keep every layer of their cause.
pub fn init_verbose(on: bool) {
    let _ = VERBOSE.set(on);
}

pub fn verbose() -> bool {
    VERBOSE.get().copied().unwrap_or(false)
}

/// `--color`: when stderr gets colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// NO_COLOR (set and not empty) or TERM=dumb: no colour unless asked for by --color.
pub fn color_off_by_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
        || std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

pub const RED: &str = "31";
pub const YELLOW: &str = "33";
pub const BOLD: &str = "1";

/// Decides once whether stderr gets colour: `--color`, then `NO_COLOR` and `TERM=dumb`, then
/// "is it a terminal".
pub fn init_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !color_off_by_env() && io::stderr().is_terminal(),
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
    emit(format!("{} {}\n", paint("error:", RED), escape(msg)));
}

/// `warning: ...` on stderr.
pub fn warn(msg: &str) {
    emit(format!("{} {}\n", paint("warning:", YELLOW), escape(msg)));
}

/// A note for people on stderr ("saved key ...").
pub fn note(msg: &str) {
    emit(format!("{}\n", escape(msg)));
}

/// One line of a server's log on stderr. `line` is jwkit's own text: whatever in it came from
/// outside must already be escaped.
pub fn log(line: impl Into<String>) {
    let mut line = line.into();
    line.push('\n');
    emit(line);
}

/// A server's stderr: lines go through a bounded queue to one writer thread, so a log reader
/// that is slow, gone (a closed pipe) or out of disk can neither stop nor slow the server. A
/// line that cannot be queued or written is dropped and counted.
enum LogItem {
    Line(String),
    Flush(std::sync::mpsc::Sender<()>),
}

static LOG_QUEUE: OnceLock<SyncSender<LogItem>> = OnceLock::new();
static LOG_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines waiting for the writer at most; beyond it they are dropped.
const LOG_QUEUE_LINES: usize = 8192;

/// From now on stderr is written by a writer thread (for servers): `warn`, `note`, `error` and
/// `log` never block and never fail.
pub fn start_log_writer() {
    LOG_QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(LOG_QUEUE_LINES);
        let spawned = std::thread::Builder::new()
            .name("jwkit-log".into())
            .spawn(move || write_log(rx));
        if spawned.is_err() {
            // No thread: lines are counted as dropped rather than written in the caller.
            LOG_DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        tx
    });
}

/// At most this much is gathered for one write.
const LOG_BATCH_BYTES: usize = 64 * 1024;

/// Writes the queued lines: what has queued up since the last write goes out in one write, so
/// a busy server costs the writer one wake-up and one system call per batch, not per line.
fn write_log(rx: Receiver<LogItem>) {
    let mut batch: Vec<u8> = Vec::with_capacity(LOG_BATCH_BYTES);
    while let Ok(first) = rx.recv() {
        let mut lines = 0u64;
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                LogItem::Line(line) => {
                    batch.extend_from_slice(line.as_bytes());
                    lines += 1;
                }
                LogItem::Flush(done) => flushes.push(done),
            }
            next = if batch.len() < LOG_BATCH_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() && io::stderr().lock().write_all(&batch).is_err() {
            LOG_DROPPED.fetch_add(lines, Ordering::Relaxed);
        }
        batch.clear();
        // Answered once every line queued before them is written.
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Lines a server could not write to stderr (closed pipe, full disk, a full queue).
pub fn log_dropped() -> u64 {
    LOG_DROPPED.load(Ordering::Relaxed)
}

/// Waits (at most `within`) until every queued line has been handed to stderr.
pub fn flush_log(within: Duration) {
    if let Some(tx) = LOG_QUEUE.get() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if tx.try_send(LogItem::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(within);
        }
    }
}

/// Writes a finished line to stderr: through the writer thread once a server started it,
/// else directly. Never panics; a failed write is counted.
fn emit(line: String) {
    match LOG_QUEUE.get() {
        Some(tx) => match tx.try_send(LogItem::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                LOG_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        },
        None => {
            if io::stderr().lock().write_all(line.as_bytes()).is_err() {
                LOG_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The one escaping rule for text that reaches stdout or stderr outside JSON (DESIGN.md §3):
/// control characters (C0, DEL, C1) and invisible or direction-changing characters are written
/// as `\n`, `\t`, `\r`, `\0` or `\u{..}`, so text from a token, a key set or a request can
/// neither add or remove a line nor send a terminal an escape sequence. Everything else, other
/// scripts included, is kept. Applying it twice changes nothing more.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00ad}'                       // soft hyphen
            | '\u{061c}'                     // Arabic letter mark
            | '\u{180e}'                     // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'        // zero-width characters, LRM, RLM
            | '\u{2028}'..='\u{202e}'        // line/paragraph separators, bidi embeddings
            | '\u{2060}'..='\u{206f}'        // word joiner, bidi isolates, invisible operators
            | '\u{feff}'                     // zero-width no-break space (BOM)
            | '\u{fff9}'..='\u{fffb}'        // interlinear annotation
        )
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_keeps_text_on_one_line_and_is_idempotent() {
        let hostile = "a\n2\tvalid\tRS256\tadmin\r\u{1b}[2J\u{1b}]0;x\u{7}\0\u{9b}\u{202e}z";
        let once = escape(hostile);
        assert!(!once.chars().any(|c| c.is_control()), "{once}");
        assert!(!once.contains('\u{202e}'));
        assert_eq!(
            once,
            "a\\n2\\tvalid\\tRS256\\tadmin\\r\\u{1b}[2J\\u{1b}]0;x\\u{7}\\0\\u{9b}\\u{202e}z"
        );
        assert_eq!(escape(&once), once);
        assert!(matches!(
            escape("José ünïcode"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
