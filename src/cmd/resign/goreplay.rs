//! `resign --goreplay`: GoReplay's middleware protocol (its `docs/Middleware.md`). GoReplay
//! writes one message per line on our stdin, hex-encoded; decoded, a message's first line is
//! `TYPE ID TIMESTAMP[ LATENCY]` (1 a request, 2 the original response, 3 the replayed
//! response) and the rest is the raw HTTP payload. A request comes back on stdout with its
//! tokens re-signed and its Content-Length fixed, in the same framing; every other message
//! comes back as it came. GoReplay waits for each answer, so each is flushed as it is done. A
//! line that is not a message is named on stderr and passed on unchanged; stdout carries
//! nothing else.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::ResignArgs;
use crate::crypto::resign::Skip;
use crate::exit::ExitStatus;
use crate::output;

use super::plan::Plan;
use super::scan::{Run, summary};

/// A line longer than this (hex) is passed on as it is, unread: 256 MiB of hex is a 128 MiB
/// message.
const MAX_LINE: usize = 256 << 20;
/// How often a summary line goes to stderr while messages flow.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Counts of messages, for the summary.
#[derive(Default)]
struct Messages {
    requests: u64,
    others: u64,
    malformed: u64,
}

pub(super) fn run(
    args: &ResignArgs,
    plan: &Plan,
    check: &(dyn Fn(&str) -> Result<(), Skip> + Sync),
) -> Result<ExitStatus> {
    // One message at a time, as GoReplay sends them: no thread pool to wake per message.
    let mut run = Run::new(plan, check, args.plan.only.clone(), 1, true);
    let mut input = std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    let mut out = std::io::stdout().lock();
    let mut counts = Messages::default();
    let mut line: Vec<u8> = Vec::new();
    let mut number: u64 = 0;
    let mut last = Instant::now();
    loop {
        line.clear();
        let whole = match read_line(&mut input, &mut line, &mut out)? {
            Some(whole) => whole,
            None => break,
        };
        number += 1;
        if !whole {
            counts.malformed += 1;
            output::warn(&format!(
                "line {number}: longer than {MAX_LINE} bytes; passed on unchanged"
            ));
            out.flush()?;
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match answer(&mut run, text) {
            Ok(Answer::Resigned(hex)) => {
                counts.requests += 1;
                out.write_all(hex.as_bytes())?;
                out.write_all(b"\n")?;
            }
            Ok(Answer::Unchanged) => {
                counts.requests += 1;
                out.write_all(text)?;
                out.write_all(b"\n")?;
            }
            Ok(Answer::AsItCame) => {
                counts.others += 1;
                out.write_all(text)?;
                out.write_all(b"\n")?;
            }
            Err(why) => {
                counts.malformed += 1;
                output::warn(&format!("line {number}: {why}; passed on unchanged"));
                out.write_all(text)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
        if last.elapsed() >= SUMMARY_EVERY {
            last = Instant::now();
            output::note(&report(&counts, &run));
        }
    }
    out.flush()?;
    output::note(&report(&counts, &run));
    run.warn_unmatched(args);
    Ok(ExitStatus::Success)
}

fn report(counts: &Messages, run: &Run) -> String {
    format!(
        "goreplay: {} requests, {} other messages, {} malformed lines; {}",
        counts.requests,
        counts.others,
        counts.malformed,
        summary(&run.tally)
    )
}

/// What to write back for one line.
enum Answer {
    /// A request, re-signed: the new line (hex, without its newline).
    Resigned(String),
    /// A request with nothing to re-sign: the line as it came.
    Unchanged,
    /// Anything but a request: the line as it came.
    AsItCame,
}

/// Decodes one line, re-signs a request's payload, encodes it again.
fn answer(run: &mut Run, line: &[u8]) -> Result<Answer, String> {
    let decoded = base16ct::mixed::decode_vec(line).map_err(|_| "not hex".to_string())?;
    let Some(meta_end) = memchr::memchr(b'\n', &decoded) else {
        return Err("no header line (TYPE ID TIMESTAMP) before the payload".into());
    };
    let meta = &decoded[..meta_end];
    let kind = meta.split(|&b| b == b' ').next().unwrap_or_default();
    match kind {
        b"1" => {}
        b"2" | b"3" => return Ok(Answer::AsItCame),
        _ => return Err("the message type is not 1, 2 or 3".into()),
    }
    let payload = &decoded[meta_end + 1..];
    let new = run
        .process_http(payload)
        .map_err(|e| format!("cannot re-sign the request: {e:#}"))?;
    if new == payload {
        return Ok(Answer::Unchanged);
    }
    let mut message = Vec::with_capacity(meta_end + 1 + new.len());
    message.extend_from_slice(&decoded[..=meta_end]);
    message.extend_from_slice(&new);
    Ok(Answer::Resigned(base16ct::lower::encode_string(&message)))
}

/// Reads one line (with its newline) into `line`. Some(true): a whole line; Some(false): a
/// line over `MAX_LINE`, which is copied to `out` as it is read (with its newline) instead;
/// None: the end of the input.
fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    out: &mut impl Write,
) -> std::io::Result<Option<bool>> {
    let mut over = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if over {
                out.write_all(b"\n")?;
                return Ok(Some(false));
            }
            return Ok((!line.is_empty()).then_some(true));
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(p) => (p + 1, true),
            None => (buf.len(), false),
        };
        if over {
            out.write_all(&buf[..take])?;
        } else if line.len() + take > MAX_LINE {
            over = true;
            out.write_all(line)?;
            out.write_all(&buf[..take])?;
            line.clear();
        } else {
            line.extend_from_slice(&buf[..take]);
        }
        input.consume(take);
        if done {
            return Ok(Some(!over));
        }
    }
}
