//! `resign --scan`: a text read a part at a time (`scan::stream`), every chosen token in it
//! re-signed on all cores, the text written back with every other byte and every declared
//! length right, and the counts on stderr.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::atomic;
use crate::cli::{ResignArgs, ScanFormat};
use crate::crypto::resign::is_token;
use crate::crypto::resign::{NOT_A_JWS, Skip};
use crate::exit::ExitStatus;
use crate::output;
use crate::scan::coding::Coding;
use crate::scan::{Found, Scanner, har, http, stream};

use super::plan::{AMBIGUOUS, OldToken, Plan};

/// Bytes read per step of a scan.
const CHUNK: usize = 4 << 20;
/// The map from old to new tokens is cleared when its text passes this size, so memory stays
/// bounded; only randomized signatures (ES*, PS*) can then differ for a later repeat.
const MAP_LIMIT: usize = 32 << 20;

/// Counts for the summary on stderr.
#[derive(Default)]
pub(super) struct Tally {
    found: usize,
    nested: usize,
    resigned: usize,
    left: HashMap<&'static str, usize>,
    skipped: HashMap<&'static str, usize>,
    bytes: u64,
    /// Which selectors chose at least one token (bit i: `--only` i).
    only_hits: u64,
    /// Per `--match-alg`, `--match-kid`, `--match-iss` value and `--key-for` rule: matched.
    alg_hits: Vec<bool>,
    kid_hits: Vec<bool>,
    iss_hits: Vec<bool>,
    rule_hits: Vec<bool>,
}

/// One scan: the scanner, the plan, and the map of tokens re-signed so far.
pub(super) struct Run<'a> {
    scanner: Scanner,
    plan: &'a Plan,
    check: &'a (dyn Fn(&str) -> Result<(), Skip> + Sync),
    threads: usize,
    /// Live (GoReplay, a proxy): claim times are computed when a token is first re-signed,
    /// and a remembered new token is used again only while it is valid.
    live: bool,
    map: HashMap<String, Done>,
    map_bytes: usize,
    warned_map: bool,
    pub(super) tally: Tally,
}

/// What became of one old token, and until when a new token stays good to hand out again.
struct Done {
    result: Result<String, Skip>,
    until: Option<i64>,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        plan: &'a Plan,
        check: &'a (dyn Fn(&str) -> Result<(), Skip> + Sync),
        only: Vec<crate::scan::Selector>,
        threads: usize,
        live: bool,
    ) -> Run<'a> {
        Run {
            scanner: Scanner { only, nested: true },
            plan,
            check,
            threads,
            live,
            map: HashMap::new(),
            map_bytes: 0,
            warned_map: false,
            tally: Tally::default(),
        }
    }

    /// True when `token` was re-signed before and, live, its new token is still good.
    fn known(&self, token: &str, now: i64) -> bool {
        self.map
            .get(token)
            .is_some_and(|d| !self.live || d.until.is_none_or(|until| until > now))
    }
    /// Re-signs (on all cores) every chosen token in `parts` not seen before.
    fn prepare(&mut self, parts: &[(&[u8], &Found)]) -> Result<()> {
        let now = crate::when::now();
        let live_now = self.live.then_some(now);
        let mut fresh: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (part, found) in parts {
            self.scanner.walk_found(
                part,
                found,
                &mut |o| {
                    if o.selected && !self.known(o.token, now) && seen.insert(o.token.to_string()) {
                        fresh.push(o.token.to_string());
                    }
                    None
                },
                None,
            );
        }
        let plan = self.plan;
        let check = self.check;
        let results = crate::parallel::map_ordered(
            &fresh,
            self.threads,
            |t: &String| plan.resign(t, check, live_now),
            || {
                Err(Skip {
                    reason: "internal error",
                    message: "a signing thread failed".into(),
                })
            },
        );
        self.record_hits(&fresh);
        for (t, r) in fresh.into_iter().zip(results) {
            if let Err(s) = &r
                && s.reason == AMBIGUOUS
            {
                bail!("{}", s.message);
            }
            self.map_bytes += t.len() * 2;
            let until = r
                .as_ref()
                .ok()
                .and_then(|new| crate::crypto::resign::reusable_until(new));
            self.map.insert(t, Done { result: r, until });
        }
        Ok(())
    }

    /// Notes which `--match-*` values and `--key-for` rules the tokens match.
    fn record_hits(&mut self, tokens: &[String]) {
        let plan = self.plan;
        if !plan.needs_old_token() {
            return;
        }
        let t = &mut self.tally;
        t.alg_hits.resize(plan.match_alg.len(), false);
        t.kid_hits.resize(plan.match_kid.len(), false);
        t.iss_hits.resize(plan.match_iss.len(), false);
        t.rule_hits.resize(plan.rules.len(), false);
        for old in tokens.iter().filter_map(|tok| OldToken::read(tok).ok()) {
            for (want, have, hits) in [
                (&plan.match_alg, &old.alg, &mut t.alg_hits),
                (&plan.match_kid, &old.kid, &mut t.kid_hits),
                (&plan.match_iss, &old.iss, &mut t.iss_hits),
            ] {
                for (i, w) in want.iter().enumerate() {
                    hits[i] |= have.as_ref() == Some(w);
                }
            }
            for (i, (_, m, _)) in plan.rules.iter().enumerate() {
                t.rule_hits[i] |= m.matches(&old);
            }
        }
    }

    /// A warning for each selector that matched no token in the whole input: a typo in
    /// `--only json:acess_token` must not pass as "nothing to do".
    pub(super) fn warn_unmatched(&self, args: &ResignArgs) {
        let t = &self.tally;
        let mut unmatched: Vec<String> = Vec::new();
        for (i, sel) in args.plan.only.iter().enumerate() {
            if t.only_hits & (1u64 << i) == 0 {
                unmatched.push(format!("--only {sel}"));
            }
        }
        let plan = self.plan;
        for (flag, want, hits) in [
            ("--match-alg", &plan.match_alg, &t.alg_hits),
            ("--match-kid", &plan.match_kid, &t.kid_hits),
            ("--match-iss", &plan.match_iss, &t.iss_hits),
        ] {
            for (i, w) in want.iter().enumerate() {
                if !hits.get(i).copied().unwrap_or(false) {
                    unmatched.push(format!("{flag} {w}"));
                }
            }
        }
        for (i, (rule, _, _)) in plan.rules.iter().enumerate() {
            if !t.rule_hits.get(i).copied().unwrap_or(false) {
                unmatched.push(format!("--key-for {rule}"));
            }
        }
        for u in unmatched {
            output::warn(&format!("{u} matched no token in the input"));
        }
    }

    /// `part` with its chosen tokens replaced (after `prepare`), counting as it goes.
    fn rewrite(&mut self, part: &[u8], found: &Found, out: &mut Vec<u8>) {
        let map = &self.map;
        let tally = &mut self.tally;
        self.scanner.walk_found(
            part,
            found,
            &mut |o| {
                let result = map.get(o.token).map(|d| &d.result);
                let jws = match result {
                    Some(Err(s)) => s.reason != NOT_A_JWS,
                    Some(Ok(_)) => true,
                    None => is_token(o.token),
                };
                // A JWT-looking string that is no JWS is never "found": it is skipped as
                // not a JWS, in every place and mode alike.
                if !jws {
                    *tally.skipped.entry(NOT_A_JWS).or_default() += 1;
                    return None;
                }
                tally.found += 1;
                tally.nested += usize::from(o.nested);
                tally.only_hits |= o.only_hits;
                if !o.selected {
                    *tally.left.entry("not in a chosen place").or_default() += 1;
                    return None;
                }
                match result {
                    Some(Ok(new)) => {
                        tally.resigned += 1;
                        Some(new.clone())
                    }
                    Some(Err(skip)) if skip.left_on_purpose() => {
                        *tally.left.entry(skip.reason).or_default() += 1;
                        None
                    }
                    Some(Err(skip)) => {
                        *tally.skipped.entry(skip.reason).or_default() += 1;
                        None
                    }
                    None => None,
                }
            },
            Some(out),
        );
    }

    /// Counts the tokens in a part that is passed on untouched.
    fn leave(&mut self, part: &[u8], why: &'static str) {
        let tally = &mut self.tally;
        self.scanner.walk(
            part,
            &mut |o| {
                if is_token(o.token) {
                    tally.found += 1;
                    tally.nested += usize::from(o.nested);
                    tally.only_hits |= o.only_hits;
                    *tally.left.entry(why).or_default() += 1;
                } else {
                    *tally.skipped.entry(NOT_A_JWS).or_default() += 1;
                }
                None
            },
            None,
        );
    }

    /// `text` rewritten; borrowed as it is when it holds nothing to look at.
    fn process<'t>(&mut self, text: &'t [u8]) -> Result<std::borrow::Cow<'t, [u8]>> {
        self.process_part(text, false, false)
    }

    /// `process` of one part of a text cut inside a run of token characters
    /// (`Scanner::find_in_part`).
    fn process_part<'t>(
        &mut self,
        text: &'t [u8],
        open_start: bool,
        open_end: bool,
    ) -> Result<std::borrow::Cow<'t, [u8]>> {
        let found = self.scanner.find_in_part(text, open_start, open_end);
        if found.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(text));
        }
        self.prepare(&[(text, &found)])?;
        let mut out = Vec::with_capacity(text.len() + 4096);
        self.rewrite(text, &found, &mut out);
        self.trim_map();
        Ok(std::borrow::Cow::Owned(out))
    }

    /// `rewrite` of a part not found yet.
    fn rewrite_part(&mut self, part: &[u8], out: &mut Vec<u8>) {
        let found = self.scanner.find(part);
        self.rewrite(part, &found, out);
    }

    /// A raw HTTP stream: every message re-signed, its Content-Length fixed when it matched
    /// (`http::write_head`); a message whose lengths conflict passes untouched.
    pub(super) fn process_http(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let pieces = http::pieces(data);
        // Bodies in a content coding are scanned decoded.
        let decoded: Vec<Option<Vec<u8>>> = pieces
            .iter()
            .map(|p| {
                (!p.conflict && !p.frozen_body)
                    .then(|| decoded_body(p, data))
                    .flatten()
            })
            .collect();
        let mut texts: Vec<&[u8]> = Vec::new();
        for (p, d) in pieces.iter().zip(&decoded).filter(|(p, _)| !p.conflict) {
            texts.push(&data[p.head.clone()]);
            if !p.frozen_body {
                texts.push(d.as_deref().unwrap_or(&data[p.body.clone()]));
            }
        }
        let found: Vec<Found> = texts.iter().map(|t| self.scanner.find(t)).collect();
        let parts: Vec<(&[u8], &Found)> = texts.iter().copied().zip(&found).collect();
        self.prepare(&parts)?;
        let mut out = Vec::with_capacity(data.len() + 4096);
        for (p, decoded) in pieces.iter().zip(&decoded) {
            if p.conflict {
                let message = p.head.start..p.body.end;
                self.leave(
                    &data[message.clone()],
                    "in a message with conflicting Content-Length",
                );
                out.extend_from_slice(&data[message]);
                continue;
            }
            let mut body = Vec::with_capacity(p.body.len() + 1024);
            if p.frozen_body {
                self.leave(&data[p.body.clone()], "in a chunked or cut-short body");
                body.extend_from_slice(&data[p.body.clone()]);
            } else if let Some(decoded) = decoded {
                // A gzip, deflate or br body: re-signed inside, encoded again the same way.
                let mut inner = Vec::with_capacity(decoded.len() + 1024);
                self.rewrite_part(decoded, &mut inner);
                match coding_of(p).map(|c| c.encode_like(&data[p.body.clone()], &inner)) {
                    Some(Ok(encoded)) if inner != *decoded => body.extend_from_slice(&encoded),
                    _ => body.extend_from_slice(&data[p.body.clone()]),
                }
            } else {
                self.rewrite_part(&data[p.body.clone()], &mut body);
            }
            http::write_head(data, p, body.len(), &mut out, &mut |part, o| {
                self.rewrite_part(part, o)
            });
            out.extend_from_slice(&body);
        }
        self.trim_map();
        Ok(out)
    }

    fn trim_map(&mut self) {
        if self.map_bytes > MAP_LIMIT {
            if !self.warned_map && !self.plan.deterministic() {
                output::warn(
                    "the map of re-signed tokens passed 32 MiB and was cleared: a token repeated after this point may get a different (equally valid) signature",
                );
                self.warned_map = true;
            }
            self.map.clear();
            self.map_bytes = 0;
        }
    }
}

pub(super) fn scan(
    args: &ResignArgs,
    src: &str,
    plan: &Plan,
    check: &(dyn Fn(&str) -> Result<(), Skip> + Sync),
) -> Result<ExitStatus> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut reader: Box<dyn Read> = if src == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(src).with_context(|| format!("reading {src}"))?)
    };
    let size = if src == "-" {
        None
    } else {
        std::fs::metadata(src).ok().map(|m| m.len())
    };
    // The output holds valid tokens: 0600 while it is written, and after.
    // Signals are watched before the temporary file exists, so none can leave it behind.
    let cleanup = args.out.as_ref().and_then(|_| atomic::remove_on_signal());
    let mut staged = match (&args.out, &cleanup) {
        (Some(path), Some(watch)) => {
            Some(watch.create(|| atomic::stage_stream(path, 0o600), |s| s.temp_path())?)
        }
        (Some(path), None) => Some(atomic::stage_stream(path, 0o600)?),
        (None, _) => None,
    };
    // One buffered sink: stdout, or a duplicate handle on the staged temporary file.
    let mut sink: std::io::BufWriter<Box<dyn Write>> = std::io::BufWriter::with_capacity(
        1 << 20,
        match &mut staged {
            Some(s) => Box::new(s.file().try_clone().context("opening the output file")?),
            None => Box::new(std::io::stdout().lock()),
        },
    );
    let mut run = Run::new(plan, check, args.plan.only.clone(), threads, false);
    let mut progress = Progress::new(size);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    let mut eof = fill(&mut reader, &mut buf, CHUNK).with_context(|| format!("reading {src}"))?;
    let format = match args.format {
        ScanFormat::Auto if har::looks_like_har(&buf) => ScanFormat::Har,
        ScanFormat::Auto if http::looks_like_http(&buf) => ScanFormat::Http,
        ScanFormat::Auto => ScanFormat::Text,
        f => f,
    };
    if format == ScanFormat::Har {
        // Sizes are fixed across the whole document: it is read whole.
        reader
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {src}"))?;
        run.tally.bytes = buf.len() as u64;
        let new = run.process(&buf)?.into_owned();
        sink.write_all(&har::fix_sizes(&buf, &new))?;
    } else {
        // Text by lines, HTTP by messages: a part at a time, in bounded memory.
        let limits = stream::LIMITS;
        // True when the last part was cut inside a run of token characters.
        let mut open_start = false;
        loop {
            let cut = if format == ScanFormat::Http {
                stream::http_cut(&buf, eof, &http::pieces(&buf), &limits)
            } else {
                stream::text_cut(&buf, eof, &limits)
            };
            let stream::Cut::At { at, open_end } = cut else {
                let have = buf.len();
                eof = fill(&mut reader, &mut buf, have + CHUNK)
                    .with_context(|| format!("reading {src}"))?;
                continue;
            };
            let out = if format == ScanFormat::Http {
                std::borrow::Cow::Owned(run.process_http(&buf[..at])?)
            } else {
                run.process_part(&buf[..at], open_start, open_end)?
            };
            sink.write_all(&out)?;
            run.tally.bytes += at as u64;
            progress.update(run.tally.bytes, run.tally.found);
            open_start = open_end;
            buf.drain(..at);
            if eof && buf.is_empty() {
                break;
            }
            if !eof {
                let have = buf.len();
                eof = fill(&mut reader, &mut buf, have + CHUNK)
                    .with_context(|| format!("reading {src}"))?;
            }
        }
    }
    sink.flush()?;
    drop(sink);
    if let Some(s) = staged {
        atomic::commit(vec![s.finish()?], args.force)?;
    }
    progress.done();
    output::note(&summary(&run.tally));
    run.warn_unmatched(args);
    Ok(ExitStatus::Success)
}

/// A body's content coding, when it has one jwkit decodes.
fn coding_of(p: &http::Piece) -> Option<Coding> {
    match Coding::from_header(p.encoding.as_deref()) {
        Some(Coding::Identity) | None => None,
        c => c,
    }
}

/// A message's body decoded from its content coding (at most `MAX_DECODED` bytes); None for
/// a body without one, or one that does not decode.
fn decoded_body(p: &http::Piece, data: &[u8]) -> Option<Vec<u8>> {
    coding_of(p)?.decode(&data[p.body.clone()], MAX_DECODED)
}

/// A decoded body larger than this is left as it came (a gzip bomb passes untouched).
const MAX_DECODED: usize = 16 << 20;

pub(super) fn summary(t: &Tally) -> String {
    let noun = if t.found == 1 { "token" } else { "tokens" };
    let mut s = format!("found {} {noun}", t.found);
    if t.nested > 0 {
        s.push_str(&format!(" ({} inside base64 bodies)", t.nested));
    }
    s.push_str(&format!(", re-signed {}", t.resigned));
    let mut left: Vec<_> = t.left.iter().collect();
    left.sort();
    for (why, n) in left {
        s.push_str(&format!(", left {n} ({why})"));
    }
    let mut skipped: Vec<_> = t.skipped.iter().collect();
    skipped.sort();
    for (why, n) in skipped {
        s.push_str(&format!(", skipped {n} ({why})"));
    }
    s
}

/// Reads until `buf` holds `want` bytes or the input ends; true at the end of the input.
fn fill(r: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    let start = buf.len();
    if want <= start {
        return Ok(false);
    }
    buf.reserve(want - start);
    // read_to_end on a bounded reader fills spare capacity without zeroing it first, and
    // retries reads that a pipe or a signal cut short.
    r.take((want - start) as u64).read_to_end(buf)?;
    Ok(buf.len() < want)
}

/// A progress line on stderr, only when stderr is a terminal and the input is large.
struct Progress {
    on: bool,
    total: Option<u64>,
    last: Instant,
    shown: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        let large = total.is_none_or(|t| t > 64 << 20);
        Progress {
            on: large && std::io::stderr().is_terminal(),
            total,
            last: Instant::now(),
            shown: false,
        }
    }

    fn update(&mut self, bytes: u64, tokens: usize) {
        if !self.on || self.last.elapsed().as_millis() < 200 {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let mib = bytes >> 20;
        let line = match self.total {
            Some(t) if t > 0 => format!(
                "\r{mib} / {} MiB ({}%), {tokens} tokens",
                t >> 20,
                bytes * 100 / t
            ),
            _ => format!("\r{mib} MiB, {tokens} tokens"),
        };
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn done(&self) {
        if self.shown {
            let _ = std::io::stderr().write_all(b"\n");
        }
    }
}
