//! What happens to one old token: the `--match-*` filters, the `--key-for` rules and the
//! default key, each a `Resigner` (new key, claim changes, kid choice); and `--verify-with`.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::cli::{KeySourceArgs, PlanArgs, SigningKeyArgs};
use crate::cmd::generate_jwt::{load_signing_key, name_value};
use crate::cmd::verify_jwt::{Failure, Keys};
use crate::crypto::jwe;
use crate::crypto::jws::Compact;
use crate::crypto::resign::{
    ClaimChanges, ENCRYPTED, KidChoice, NO_RULE, NOT_A_JWS, NOT_CHOSEN, NOT_DECRYPTED, Resigner,
    Skip,
};
use crate::crypto::verify::Policy;
use crate::crypto::{self, Key, SigningKey};
use crate::when;

/// The reason given when --verify-with refuses a token.
pub(super) const NOT_VERIFIED: &str = "old signature does not verify";
/// A token two --key-for rules claim: an error, not a skip.
pub(super) const AMBIGUOUS: &str = "ambiguous --key-for";

/// The `--verify-with` check of an old token (its signature, as of `at`), for
/// `Plan::resign`: a token that fails is skipped with `NOT_VERIFIED`.
pub(crate) fn check_old(
    verifier: Option<&(Keys, Policy)>,
    token: &str,
    at: i64,
) -> Result<(), Skip> {
    match verifier {
        None => Ok(()),
        Some((keys, policy)) => {
            crate::crypto::verify::verify_token(token, &keys.trusted, policy, at)
                .map(drop)
                .map_err(|r| Skip {
                    reason: NOT_VERIFIED,
                    message: format!("{NOT_VERIFIED}: {} ({})", r.message, r.kind.as_str()),
                })
        }
    }
}

/// `MATCH` of a `--key-for MATCH=KEY` rule.
#[derive(Debug)]
pub(super) enum RuleMatch {
    Alg(String),
    Kid(String),
    Iss(String),
}

/// What the rules and filters look at in an old token.
pub(super) struct OldToken {
    pub(super) alg: Option<String>,
    pub(super) kid: Option<String>,
    pub(super) iss: Option<String>,
}

impl OldToken {
    pub(super) fn read(token: &str) -> Result<OldToken, Skip> {
        let c = Compact::parse(token).map_err(|e| Skip {
            reason: NOT_A_JWS,
            message: e.to_string(),
        })?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        // A JWT-looking string whose header has no alg is no JWS, whatever the mode.
        if text(c.header.get("alg")).is_none() {
            return Err(Skip {
                reason: NOT_A_JWS,
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
    pub(super) fn matches(&self, old: &OldToken) -> bool {
        match self {
            RuleMatch::Alg(a) => old.alg.as_deref() == Some(a.as_str()),
            RuleMatch::Kid(k) => old.kid.as_deref() == Some(k.as_str()),
            RuleMatch::Iss(i) => old.iss.as_deref() == Some(i.as_str()),
        }
    }
}

/// Which key re-signs which token: `--match-*` filters, `--key-for` rules, the default key.
pub(crate) struct Plan {
    pub(super) default: Option<Resigner>,
    pub(super) rules: Vec<(String, RuleMatch, Resigner)>,
    pub(super) match_alg: Vec<String>,
    pub(super) match_kid: Vec<String>,
    pub(super) match_iss: Vec<String>,
    /// Nested tokens (a JWS inside a JWE): the keys that decrypt them and, when given, the
    /// key they are encrypted to afterwards (else the one they were encrypted to).
    pub(super) nested: Option<Nested>,
}

pub(crate) struct Nested {
    keys: Vec<jwe::DecryptKey>,
    target: Option<jwe::EncryptKey>,
}

impl Nested {
    fn new(args: &PlanArgs) -> Result<Option<Nested>> {
        let keys = crate::cmd::decode::decrypt_keys(&args.decrypt)?;
        if keys.is_empty() {
            return Ok(None);
        }
        let target = crate::cmd::generate_jwt::load_encrypt_key(
            args.encrypt_key_file.as_deref(),
            args.encrypt_key.as_deref(),
        )?;
        if target.is_none() && keys.iter().all(|k| k.to_encrypt_key().is_none()) {
            bail!(
                "a PBES2 token is encrypted again to a key: give --encrypt-key-file FILE or --encrypt-key KID"
            );
        }
        Ok(Some(Nested { keys, target }))
    }
}

impl Plan {
    pub(crate) fn new(args: &PlanArgs, now: i64) -> Result<Plan> {
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
            nested: Nested::new(args)?,
        })
    }

    /// True when nested tokens can be re-signed (a decryption key was given).
    pub(crate) fn opens_nested(&self) -> bool {
        self.nested.is_some()
    }

    /// A nested token: decrypted, its inner JWS re-signed by the plan's rules, then
    /// encrypted again with the same algorithms (and `cty`, `typ`) to the key it was
    /// encrypted to, or to the `--encrypt-key` target with that key's default algorithm.
    fn resign_nested(
        &self,
        token: &str,
        check: &dyn Fn(&str) -> Result<(), Skip>,
        now: Option<i64>,
    ) -> Result<String, Skip> {
        let Some(n) = &self.nested else {
            return Err(skip(
                ENCRYPTED,
                "the token is a JWE (encrypted): give --decrypt-key-file FILE, --decrypt-key KID or --password-file FILE to re-sign what it holds",
            ));
        };
        let failed = |m: String| Skip {
            reason: NOT_DECRYPTED,
            message: m,
        };
        let done = jwe::decrypt(token, &n.keys, &jwe::Options::default())
            .map_err(|e| failed(e.to_string()))?;
        let inner = std::str::from_utf8(&done.plaintext)
            .ok()
            .map(str::trim)
            .filter(|t| Compact::parse(t).is_ok())
            .ok_or_else(|| {
                failed("the JWE holds no signed token (it is encrypted only): there is no signature to re-sign".into())
            })?;
        let new_inner = self.resign_jws(inner, check, now)?;
        let own;
        let (target, same) = match &n.target {
            Some(t) => (t, false),
            None => {
                own = n.keys[done.key_index].to_encrypt_key().ok_or_else(|| {
                    failed("a PBES2 token is encrypted again to a key: give --encrypt-key-file FILE or --encrypt-key KID".into())
                })?;
                (&own, true)
            }
        };
        let str_of = |name: &str| {
            done.header
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let alg = match (same, str_of("alg")) {
            (true, Some(a)) => a,
            _ => target.default_alg(),
        };
        let enc = str_of("enc").unwrap_or_else(|| jwe::DEFAULT_ENC.to_string());
        let mut extra = serde_json::Map::new();
        for name in ["cty", "typ"] {
            if let Some(v) = done.protected.get(name) {
                extra.insert(name.into(), v.clone());
            }
        }
        jwe::encrypt(new_inner.as_bytes(), target, &alg, &enc, extra)
            .map_err(|e| failed(format!("encrypting the re-signed token: {e}")))
    }

    pub(super) fn needs_old_token(&self) -> bool {
        !self.rules.is_empty()
            || !self.match_alg.is_empty()
            || !self.match_kid.is_empty()
            || !self.match_iss.is_empty()
    }

    /// A token must match every kind of filter given (any value within a kind).
    pub(super) fn chosen(&self, old: &OldToken) -> bool {
        let ok = |want: &[String], have: &Option<String>| {
            want.is_empty() || have.as_ref().is_some_and(|h| want.contains(h))
        };
        ok(&self.match_alg, &old.alg)
            && ok(&self.match_kid, &old.kid)
            && ok(&self.match_iss, &old.iss)
    }

    /// Re-signs `token` with the key the plan gives it, or says why not. Claim times are as of
    /// the run's start, or of `now` when given (a live re-signer).
    pub(crate) fn resign(
        &self,
        token: &str,
        check: &dyn Fn(&str) -> Result<(), Skip>,
        now: Option<i64>,
    ) -> Result<String, Skip> {
        if jwe::is_jwe(token) {
            return self.resign_nested(token, check, now);
        }
        self.resign_jws(token, check, now)
    }

    fn resign_jws(
        &self,
        token: &str,
        check: &dyn Fn(&str) -> Result<(), Skip>,
        now: Option<i64>,
    ) -> Result<String, Skip> {
        let with = |r: &Resigner| match now {
            Some(now) => r.resign_at(token, check, now),
            None => r.resign(token, check),
        };
        if !self.needs_old_token() {
            return match &self.default {
                Some(d) => with(d),
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
                Some(d) => with(d),
                None => Err(skip(NO_RULE, NO_RULE)),
            },
            [(_, _, r)] => with(r),
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
    pub(super) fn deterministic(&self) -> bool {
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
fn load_rule_key(spec: &str, args: &PlanArgs) -> Result<Key> {
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

fn resigner(key: Key, args: &PlanArgs, now: i64) -> Result<Resigner> {
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
pub(crate) fn verifier(source: &str, args: &PlanArgs) -> Result<(Keys, Policy)> {
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
