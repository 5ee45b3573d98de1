//! `jwkit resign`: one token, or every token in a stream of text (`--scan`).

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};

use crate::atomic;
use crate::cli::{KeySourceArgs, ResignArgs};
use crate::cmd::generate_jwt::{load_signing_key, name_value};
use crate::cmd::verify_jwt::{Failure, Keys};
use crate::crypto::jws::{self, MAX_TOKEN_BYTES};
use crate::crypto::resign::{ClaimChanges, KidChoice, Resigner, Skip};
use crate::crypto::verify::{Policy, verify_token};
use crate::crypto::{Alg, SigningKey};
use crate::exit::ExitStatus;
use crate::{input, output, when};

/// The reason given when --verify-with refuses a token.
const NOT_VERIFIED: &str = "old signature does not verify";

pub fn run(args: &ResignArgs) -> Result<ExitStatus> {
    input::one_stdin(&[
        args.signing.key_file.as_deref(),
        args.signing.secret_file.as_deref(),
        args.scan.as_deref().or(args.token.as_deref()),
    ])?;
    if let Some(out) = &args.out {
        atomic::refuse_existing(out, args.force)?;
    }
    let now = when::now();
    // Everything that can fail for reasons other than a token fails here, before any output.
    let resigner = resigner(args, now)?;
    let verifier = match &args.verify_with {
        Some(source) => Some(verifier(source, args)?),
        None => None,
    };
    let check = |token: &str| -> Result<(), Skip> {
        match &verifier {
            None => Ok(()),
            Some((keys, policy)) => verify_token(token, &keys.trusted, policy, now)
                .map(drop)
                .map_err(|r| Skip {
                    reason: NOT_VERIFIED,
                    message: format!("{NOT_VERIFIED}: {} ({})", r.message, r.kind.as_str()),
                }),
        }
    };
    match &args.scan {
        Some(src) => scan(args, src, &resigner, &check),
        None => single(args, &resigner, &check),
    }
}

fn resigner(args: &ResignArgs, now: i64) -> Result<Resigner> {
    let key = load_signing_key(&args.signing, &args.secret, args.kid.as_deref())?;
    let alg: Alg = match args.alg {
        Some(a) => {
            key.check_alg(a)?;
            a
        }
        None => key.default_alg()?,
    };
    let signer = SigningKey::new(&key, alg)?;
    let kid = match (&args.kid, args.keep_kid) {
        (Some(k), _) => KidChoice::Set(k.clone()),
        (None, true) => KidChoice::Keep,
        (None, false) => KidChoice::Set(key.kid_or_thumbprint()),
    };
    let exp = args
        .exp
        .as_deref()
        .map(|w| when::parse_when(w, now).map_err(|e| anyhow!("--exp: {e}")))
        .transpose()?;
    let set = args
        .set
        .iter()
        .map(|item| name_value(item, "--set", true))
        .collect::<Result<Vec<_>>>()?;
    Ok(Resigner {
        signer,
        kid,
        changes: ClaimChanges {
            refresh: args.refresh,
            lifetime: when::parse_duration(&args.lifetime)
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| anyhow!("--lifetime: expected a positive duration such as 1h"))?,
            exp,
            set,
            unset: args.unset.clone(),
        },
        now,
    })
}

/// `--verify-with`: a URL is a JWKS URL; anything else a key or JWKS file. Only the signature
/// is checked (the tokens being re-signed are often expired).
fn verifier(source: &str, args: &ResignArgs) -> Result<(Keys, Policy)> {
    let is_url = source.starts_with("https://") || source.starts_with("http://");
    let src = KeySourceArgs {
        key_file: (!is_url).then(|| source.to_string()),
        key: None,
        jwks_file: None,
        jwks_url: is_url.then(|| source.to_string()),
        issuer: None,
        server: None,
        secret_file: None,
        secret_env: None,
    };
    let policy = Policy {
        raw: true,
        ..Policy::default()
    };
    let keys = Keys::resolve(&src, &Default::default(), &args.fetch, &policy)
        .map_err(|Failure { err, .. }| err.context("--verify-with"))?;
    Ok((keys, policy))
}

fn single(
    args: &ResignArgs,
    resigner: &Resigner,
    check: &dyn Fn(&str) -> Result<(), Skip>,
) -> Result<ExitStatus> {
    let raw = input::read_token(args.token.as_deref())?;
    // What surrounds the token (a `Bearer ` prefix, quotes, a trailing comma) is put back
    // around the new one, less the outer white space.
    let pasted = jws::pasted(raw.trim());
    match resigner.resign(&pasted.token, check) {
        Ok(new) => {
            let line = format!("{}{new}{}\n", pasted.before, pasted.after);
            match &args.out {
                Some(path) => atomic::commit(
                    vec![atomic::stage(path, line.as_bytes(), 0o644)?],
                    args.force,
                )?,
                None => output::data(line)?,
            }
            Ok(ExitStatus::Success)
        }
        Err(skip) if skip.reason == NOT_VERIFIED => {
            output::error(&format!("token rejected: {}", skip.message));
            Ok(ExitStatus::Rejected)
        }
        Err(skip) => bail!("cannot re-sign the token: {}", skip.message),
    }
}

/// Bytes read per step of a scan.
const CHUNK: usize = 4 << 20;
/// A run of token characters longer than this cannot be a token (64 KiB plus a margin).
const MAX_RUN: usize = MAX_TOKEN_BYTES + 1024;
/// The map from old to new tokens is cleared when its text passes this size, so memory stays
/// bounded; only randomized signatures (ES*, PS*) can then differ for a later repeat.
const MAP_LIMIT: usize = 32 << 20;

/// Which bytes can be part of a compact token: base64url and the dot (a table: the scan's
/// inner loop looks at every byte of the input).
static TOKEN_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
        i += 1;
    }
    t
};

fn token_byte(b: u8) -> bool {
    TOKEN_BYTES[b as usize]
}

/// Counts for the summary on stderr.
#[derive(Default)]
struct Tally {
    found: usize,
    resigned: usize,
    skipped: HashMap<&'static str, usize>,
    bytes: u64,
}

fn scan(
    args: &ResignArgs,
    src: &str,
    resigner: &Resigner,
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
    let mut staged = match &args.out {
        Some(path) => Some(atomic::stage_stream(path, 0o644)?),
        None => None,
    };
    // One buffered sink: stdout, or a duplicate handle on the staged temporary file.
    let mut sink: std::io::BufWriter<Box<dyn Write>> = std::io::BufWriter::with_capacity(
        1 << 20,
        match &mut staged {
            Some(s) => Box::new(s.file().try_clone().context("opening the output file")?),
            None => Box::new(std::io::stdout().lock()),
        },
    );
    let mut progress = Progress::new(size);
    let mut tally = Tally::default();
    let mut map: HashMap<String, Result<String, Skip>> = HashMap::new();
    let mut map_bytes = 0usize;
    let mut warned_map = false;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + MAX_RUN);
    // True while passing through an over-long run that began in an earlier chunk.
    let mut in_long_run = false;
    loop {
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let n =
            read_full(&mut reader, &mut buf[start..]).with_context(|| format!("reading {src}"))?;
        buf.truncate(start + n);
        let eof = n == 0;
        tally.bytes += n as u64;
        // Hold back a run that may continue in the next chunk.
        let mut cut = buf.len();
        if !eof {
            let run_start = buf
                .iter()
                .rposition(|&b| !token_byte(b))
                .map_or(0, |i| i + 1);
            if buf.len() - run_start <= MAX_RUN && !(in_long_run && run_start == 0) {
                cut = run_start;
            }
        }
        let (now_part, _) = buf.split_at(cut);
        let spans = find_tokens(now_part, &mut in_long_run, cut == buf.len() && !eof);
        // Re-sign the tokens not seen before, on all cores.
        let mut fresh: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for &(s, e) in &spans {
            let t = std::str::from_utf8(&now_part[s..e]).unwrap_or_default();
            if !map.contains_key(t) && seen.insert(t) {
                fresh.push(t);
            }
        }
        for (t, r) in fresh
            .iter()
            .zip(resign_parallel(&fresh, resigner, check, threads))
        {
            map_bytes += t.len() * 2;
            map.insert((*t).to_string(), r);
        }
        // Write the text with each token replaced.
        let out = &mut sink;
        let mut at = 0;
        for &(s, e) in &spans {
            let t = std::str::from_utf8(&now_part[s..e]).unwrap_or_default();
            out.write_all(&now_part[at..s])?;
            match map.get(t) {
                Some(Ok(new)) => {
                    out.write_all(new.as_bytes())?;
                    tally.resigned += 1;
                    tally.found += 1;
                }
                Some(Err(skip)) => {
                    out.write_all(t.as_bytes())?;
                    if skip.reason != "not a JWS" {
                        tally.found += 1;
                    }
                    *tally.skipped.entry(skip.reason).or_default() += 1;
                }
                None => out.write_all(t.as_bytes())?,
            }
            at = e;
        }
        out.write_all(&now_part[at..])?;
        if map_bytes > MAP_LIMIT {
            if !warned_map && !resigner.signer.alg().is_deterministic() {
                output::warn(
                    "the map of re-signed tokens passed 32 MiB and was cleared: a token repeated after this point may get a different (equally valid) signature",
                );
                warned_map = true;
            }
            map.clear();
            map_bytes = 0;
        }
        progress.update(tally.bytes, tally.found);
        buf.drain(..cut);
        if eof {
            break;
        }
    }
    sink.flush()?;
    drop(sink);
    if let Some(s) = staged {
        atomic::commit(vec![s.finish()?], args.force)?;
    }
    progress.done();
    let mut summary = format!("found {} tokens, re-signed {}", tally.found, tally.resigned);
    let mut reasons: Vec<_> = tally.skipped.iter().collect();
    reasons.sort();
    for (reason, n) in reasons {
        summary.push_str(&format!(", skipped {n} ({reason})"));
    }
    output::note(&summary);
    Ok(ExitStatus::Success)
}

/// Fills `buf` as far as the input allows (a pipe may return less than asked).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The spans of JWT-looking strings: runs of base64url characters and dots with three segments,
/// the first starting `ey` (a base64url JSON object). A sentence's full stop after a token is
/// not part of it. `long` carries "inside an over-long run" across chunks.
fn find_tokens(text: &[u8], long: &mut bool, ends_mid_run: bool) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let n = text.len();
    let mut i = 0;
    loop {
        // Skip to the next run of token bytes.
        match text[i..].iter().position(|&b| token_byte(b)) {
            None => {
                if i < n {
                    *long = false;
                }
                break;
            }
            Some(0) => {}
            Some(k) => {
                *long = false;
                i += k;
            }
        }
        let s = i;
        i += text[s..]
            .iter()
            .position(|&b| !token_byte(b))
            .unwrap_or(n - s);
        let continued = std::mem::replace(long, false);
        if continued || (i == n && ends_mid_run) {
            // The tail of an over-long run, or the start of one that goes on: never a token.
            *long = i == n;
            continue;
        }
        let mut e = i;
        let run = &text[s..e];
        if run.len() < 5 || !run.starts_with(b"ey") {
            continue;
        }
        let dots = run.iter().filter(|&&b| b == b'.').count();
        if dots == 3 && run.last() == Some(&b'.') {
            e -= 1;
        } else if dots != 2 {
            continue;
        }
        if e - s <= MAX_TOKEN_BYTES {
            spans.push((s, e));
        }
    }
    spans
}

fn resign_parallel(
    tokens: &[&str],
    resigner: &Resigner,
    check: &(dyn Fn(&str) -> Result<(), Skip> + Sync),
    threads: usize,
) -> Vec<Result<String, Skip>> {
    // A JWT-looking string that does not parse as a JWS with an alg is "not a JWS".
    let one = |t: &&str| -> Result<String, Skip> {
        resigner.resign(t, check).map_err(|skip| match skip.reason {
            "malformed" => Skip {
                reason: "not a JWS",
                ..skip
            },
            _ => skip,
        })
    };
    crate::parallel::map_ordered(tokens, threads, one, || {
        Err(Skip {
            reason: "internal error",
            message: "a signing thread failed".into(),
        })
    })
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
