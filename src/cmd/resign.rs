//! `jwkit resign`: one token, or every token in a text (`--scan`: logs, JSON lines, raw HTTP
//! streams, HAR files), each re-signed by the key its old form calls for (`--key-for`), only
//! where chosen (`--only`, `--match-*`), with declared lengths kept right.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::atomic;
use crate::cli::{KeySourceArgs, ResignArgs, ScanFormat, SigningKeyArgs};
use crate::cmd::generate_jwt::{load_signing_key, name_value};
use crate::cmd::verify_jwt::{Failure, Keys};
use crate::crypto::jws::{self, Compact};
use crate::crypto::resign::{ClaimChanges, KidChoice, Resigner, Skip};
use crate::crypto::verify::{Policy, verify_token};
use crate::crypto::{self, Key, SigningKey};
use crate::exit::ExitStatus;
use crate::scan::{Found, Scanner, har, http, stream};
use crate::{input, output, when};

/// The reason given when --verify-with refuses a token.
const NOT_VERIFIED: &str = "old signature does not verify";
/// Reasons for leaving a token as it is on purpose (counted as "left", not "skipped").
const NOT_CHOSEN: &str = "not chosen";
const NO_RULE: &str = "no --key-for rule matches";
/// A token two --key-for rules claim: an error, not a skip.
const AMBIGUOUS: &str = "ambiguous --key-for";

pub fn run(args: &ResignArgs) -> Result<ExitStatus> {
    input::one_stdin(&[
        args.signing.key_file.as_deref(),
        args.signing.secret_file.as_deref(),
        args.scan.as_deref().or(args.token.as_deref()),
    ])?;
    if let Some(out) = &args.out {
        atomic::refuse_existing(out, args.force)?;
    }
    if args.only.len() > 64 {
        bail!("at most 64 --only selectors, not {}", args.only.len());
    }
    let now = when::now();
    // Everything that can fail for reasons other than a token fails here, before any output.
    let plan = Plan::new(args, now)?;
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
        Some(src) => scan(args, src, &plan, &check),
        None => single(args, &plan, &check),
    }
}

/// `MATCH` of a `--key-for MATCH=KEY` rule.
#[derive(Debug)]
enum RuleMatch {
    Alg(String),
    Kid(String),
    Iss(String),
}

/// What the rules and filters look at in an old token.
struct OldToken {
    alg: Option<String>,
    kid: Option<String>,
    iss: Option<String>,
}

impl OldToken {
    fn read(token: &str) -> Result<OldToken, Skip> {
        let c = Compact::parse(token).map_err(|e| Skip {
            reason: "malformed",
            message: e.to_string(),
        })?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        // A JWT-looking string whose header has no alg is no JWS, whatever the mode.
        if text(c.header.get("alg")).is_none() {
            return Err(Skip {
                reason: "malformed",
                message: "the header has no alg".into(),
            });
        }
        let iss = c.claims().and_then(|claims| text(claims.get("iss")));
        Ok(OldToken {
            alg: text(c.header.get("alg")),
            kid: text(c.header.get("kid")),
            iss,
        })
    }
}

impl RuleMatch {
    fn matches(&self, old: &OldToken) -> bool {
        match self {
            RuleMatch::Alg(a) => old.alg.as_deref() == Some(a.as_str()),
            RuleMatch::Kid(k) => old.kid.as_deref() == Some(k.as_str()),
            RuleMatch::Iss(i) => old.iss.as_deref() == Some(i.as_str()),
        }
    }
}

/// Which key re-signs which token: `--match-*` filters, `--key-for` rules, the default key.
struct Plan {
    default: Option<Resigner>,
    rules: Vec<(String, RuleMatch, Resigner)>,
    match_alg: Vec<String>,
    match_kid: Vec<String>,
    match_iss: Vec<String>,
}

impl Plan {
    fn new(args: &ResignArgs, now: i64) -> Result<Plan> {
        let s = &args.signing;
        let has_default = s.key_file.is_some()
            || s.key.is_some()
            || s.secret_file.is_some()
            || s.secret_env.is_some();
        if !has_default && args.key_for.is_empty() {
            bail!(
                "no signing key: use --key-file, --key, --secret-file, --secret-env, or --key-for rules"
            );
        }
        let default = if has_default {
            let key = load_signing_key(s, &args.secret, args.kid.as_deref())?;
            Some(resigner(key, args, now)?)
        } else {
            None
        };
        let rules = args
            .key_for
            .iter()
            .map(|rule| {
                let (what, key) = parse_rule(rule)?;
                let key = load_rule_key(key, args).with_context(|| format!("--key-for {rule}"))?;
                Ok((rule.clone(), what, resigner(key, args, now)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            default,
            rules,
            match_alg: args.match_alg.clone(),
            match_kid: args.match_kid.clone(),
            match_iss: args.match_iss.clone(),
        })
    }

    fn needs_old_token(&self) -> bool {
        !self.rules.is_empty()
            || !self.match_alg.is_empty()
            || !self.match_kid.is_empty()
            || !self.match_iss.is_empty()
    }

    /// A token must match every kind of filter given (any value within a kind).
    fn chosen(&self, old: &OldToken) -> bool {
        let ok = |want: &[String], have: &Option<String>| {
            want.is_empty() || have.as_ref().is_some_and(|h| want.contains(h))
        };
        ok(&self.match_alg, &old.alg)
            && ok(&self.match_kid, &old.kid)
            && ok(&self.match_iss, &old.iss)
    }

    /// Re-signs `token` with the key the plan gives it, or says why not.
    fn resign(
        &self,
        token: &str,
        check: &dyn Fn(&str) -> Result<(), Skip>,
    ) -> Result<String, Skip> {
        if !self.needs_old_token() {
            return match &self.default {
                Some(d) => d.resign(token, check),
                None => Err(skip(NO_RULE, NO_RULE)),
            };
        }
        let old = OldToken::read(token)?;
        if !self.chosen(&old) {
            return Err(skip(
                NOT_CHOSEN,
                "not chosen by --match-alg, --match-kid or --match-iss",
            ));
        }
        let hits: Vec<&(String, RuleMatch, Resigner)> = self
            .rules
            .iter()
            .filter(|(_, m, _)| m.matches(&old))
            .collect();
        match hits.as_slice() {
            [] => match &self.default {
                Some(d) => d.resign(token, check),
                None => Err(skip(NO_RULE, NO_RULE)),
            },
            [(_, _, r)] => r.resign(token, check),
            [(a, _, _), (b, _, _), ..] => Err(Skip {
                reason: AMBIGUOUS,
                message: format!(
                    "a token matches both --key-for {a} and --key-for {b}; make the rules exclusive"
                ),
            }),
        }
    }

    /// True when every key signs deterministically (a repeated token always gets the same
    /// new token, even after the map of re-signed tokens is cleared).
    fn deterministic(&self) -> bool {
        self.default
            .iter()
            .chain(self.rules.iter().map(|(_, _, r)| r))
            .all(|r| r.signers.iter().all(|s| s.alg().is_deterministic()))
    }
}

fn skip(reason: &'static str, message: &str) -> Skip {
    Skip {
        reason,
        message: message.to_string(),
    }
}

/// Splits `MATCH=KEY`. A kid may hold `=`, so the split is at the `=` that starts a KEY form.
fn parse_rule(rule: &str) -> Result<(RuleMatch, &str)> {
    let at = ["=file:", "=secret-file:", "=secret-env:", "=store:"]
        .iter()
        .filter_map(|k| rule.rfind(k))
        .max()
        .ok_or_else(|| {
            anyhow!(
                "--key-for {rule:?}: expected MATCH=KEY with KEY file:PATH, secret-file:PATH, secret-env:VAR or store:KID"
            )
        })?;
    let (what, key) = (&rule[..at], &rule[at + 1..]);
    let (kind, value) = what.split_once(':').ok_or_else(|| {
        anyhow!("--key-for {rule:?}: expected MATCH as alg:ALG, kid:KID or iss:ISS before the =")
    })?;
    if value.is_empty() {
        bail!("--key-for {rule:?}: the value after {kind}: is empty");
    }
    let m = match kind {
        "alg" => {
            value
                .parse::<crypto::Alg>()
                .map_err(|e| anyhow!("--key-for {rule:?}: {e}"))?;
            RuleMatch::Alg(value.to_string())
        }
        "kid" => RuleMatch::Kid(value.to_string()),
        "iss" => RuleMatch::Iss(value.to_string()),
        other => bail!("--key-for {rule:?}: unknown MATCH kind {other:?} (alg, kid or iss)"),
    };
    Ok((m, key))
}

/// The key of a `--key-for` rule: `file:PATH`, `secret-file:PATH`, `secret-env:VAR`, `store:KID`,
/// loaded as the matching flag (`--key-file`, `--secret-file`, `--secret-env`, `--key`) is.
fn load_rule_key(spec: &str, args: &ResignArgs) -> Result<Key> {
    let (kind, value) = spec.split_once(':').unwrap_or((spec, ""));
    if value.is_empty() {
        bail!("the key {spec:?} names nothing after {kind}:");
    }
    let value = Some(value.to_string());
    let mut src = SigningKeyArgs {
        key_file: None,
        key: None,
        secret_file: None,
        secret_env: None,
    };
    match kind {
        "file" => src.key_file = value,
        "secret-file" => src.secret_file = value,
        "secret-env" => src.secret_env = value,
        "store" => src.key = value,
        other => bail!("unknown key form {other:?} (file, secret-file, secret-env or store)"),
    }
    load_signing_key(&src, &args.secret, None)
}

fn resigner(key: Key, args: &ResignArgs, now: i64) -> Result<Resigner> {
    let (signers, fixed_alg) = match args.alg {
        Some(a) => {
            key.check_alg(a)?;
            (vec![SigningKey::new(&key, a)?], true)
        }
        None => {
            let default = key.default_alg()?;
            let mut signers = vec![SigningKey::new(&key, default)?];
            for alg in key.algs().into_iter().filter(|a| *a != default) {
                signers.push(SigningKey::new(&key, alg)?);
            }
            (signers, false)
        }
    };
    let kid = match (&args.kid, args.keep_kid) {
        (Some(k), _) => KidChoice::Set(k.clone()),
        (None, true) => KidChoice::Keep,
        // An HMAC secret keeps the token's kid state: no kid added where there was none, and
        // no hash of the secret published.
        (None, false) if key.is_hmac() => KidChoice::Keep,
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
        signers,
        fixed_alg,
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
    plan: &Plan,
    check: &dyn Fn(&str) -> Result<(), Skip>,
) -> Result<ExitStatus> {
    let raw = input::read_token(args.token.as_deref())?;
    // What surrounds the token (a `Bearer ` prefix, quotes, a trailing comma) is put back
    // around the new one, less the outer white space.
    let pasted = jws::pasted(raw.trim());
    match plan.resign(&pasted.token, check) {
        Ok(new) => {
            let line = format!("{}{new}{}\n", pasted.before, pasted.after);
            match &args.out {
                Some(path) => atomic::commit(
                    vec![atomic::stage(path, line.as_bytes(), 0o600)?],
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
/// The map from old to new tokens is cleared when its text passes this size, so memory stays
/// bounded; only randomized signatures (ES*, PS*) can then differ for a later repeat.
const MAP_LIMIT: usize = 32 << 20;

/// Counts for the summary on stderr.
#[derive(Default)]
struct Tally {
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

/// True when `token` is a JWS a plan can look at: it parses, and its header names an alg.
fn is_jws(token: &str) -> bool {
    OldToken::read(token).is_ok()
}

/// One scan: the scanner, the plan, and the map of tokens re-signed so far.
struct Run<'a> {
    scanner: Scanner,
    plan: &'a Plan,
    check: &'a (dyn Fn(&str) -> Result<(), Skip> + Sync),
    threads: usize,
    map: HashMap<String, Result<String, Skip>>,
    map_bytes: usize,
    warned_map: bool,
    tally: Tally,
}

impl Run<'_> {
    /// Re-signs (on all cores) every chosen token in `parts` not seen before.
    fn prepare(&mut self, parts: &[(&[u8], &Found)]) -> Result<()> {
        let mut fresh: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (part, found) in parts {
            self.scanner.walk_found(
                part,
                found,
                &mut |o| {
                    if o.selected
                        && !self.map.contains_key(o.token)
                        && seen.insert(o.token.to_string())
                    {
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
            |t: &String| {
                // A JWT-looking string that does not parse as a JWS with an alg is "not a JWS".
                plan.resign(t, check).map_err(|skip| match skip.reason {
                    "malformed" => Skip {
                        reason: "not a JWS",
                        ..skip
                    },
                    _ => skip,
                })
            },
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
            self.map.insert(t, r);
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
    fn warn_unmatched(&self, args: &ResignArgs) {
        let t = &self.tally;
        let mut unmatched: Vec<String> = Vec::new();
        for (i, sel) in args.only.iter().enumerate() {
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
                let result = map.get(o.token);
                let jws = match result {
                    Some(Err(s)) => s.reason != "not a JWS",
                    Some(Ok(_)) => true,
                    None => is_jws(o.token),
                };
                // A JWT-looking string that is no JWS is never "found": it is skipped as
                // not a JWS, in every place and mode alike.
                if !jws {
                    *tally.skipped.entry("not a JWS").or_default() += 1;
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
                    Some(Err(skip)) if matches!(skip.reason, NOT_CHOSEN | NO_RULE) => {
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
                if is_jws(o.token) {
                    tally.found += 1;
                    tally.nested += usize::from(o.nested);
                    tally.only_hits |= o.only_hits;
                    *tally.left.entry(why).or_default() += 1;
                } else {
                    *tally.skipped.entry("not a JWS").or_default() += 1;
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
    fn process_http(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        let pieces = http::pieces(data);
        let mut ranges = Vec::new();
        for p in pieces.iter().filter(|p| !p.conflict) {
            ranges.push(p.head.clone());
            if !p.frozen_body {
                ranges.push(p.body.clone());
            }
        }
        let found: Vec<Found> = ranges
            .iter()
            .map(|r| self.scanner.find(&data[r.clone()]))
            .collect();
        let parts: Vec<(&[u8], &Found)> = ranges
            .iter()
            .zip(&found)
            .map(|(r, f)| (&data[r.clone()], f))
            .collect();
        self.prepare(&parts)?;
        let mut out = Vec::with_capacity(data.len() + 4096);
        for p in &pieces {
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

fn scan(
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
    let mut run = Run {
        scanner: Scanner {
            only: args.only.clone(),
            nested: true,
        },
        plan,
        check,
        threads,
        map: HashMap::new(),
        map_bytes: 0,
        warned_map: false,
        tally: Tally::default(),
    };
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

fn summary(t: &Tally) -> String {
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
