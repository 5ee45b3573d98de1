//! Token verification: strict parsing, the alg allowlist, key selection by kid/kty/alg/use,
//! the signature, then the claims. Pure logic: the caller supplies keys, policy and the time.

use serde::Serialize;
use serde_json::{Map, Value};

use super::jws::Compact;
use super::{Alg, Error, JwkSet, Key, VerifyingKey, json};

/// Why a token was rejected: the stable words of DESIGN.md §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Malformed,
    BadSignature,
    AlgNotAllowed,
    UnknownKid,
    AmbiguousKey,
    Expired,
    NotYetValid,
    ClaimMismatch,
    MissingClaim,
    CritUnsupported,
    /// A JWE that did not decrypt (one kind, one message, whatever failed).
    DecryptFailed,
    /// A JWE with no signature inside under a public-key algorithm: anyone could have made it.
    Unsigned,
    /// A DPoP proof (`verify-jwt --dpop`) that does not hold for the request or the token.
    DpopInvalid,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Malformed => "malformed",
            Kind::BadSignature => "bad_signature",
            Kind::AlgNotAllowed => "alg_not_allowed",
            Kind::UnknownKid => "unknown_kid",
            Kind::AmbiguousKey => "ambiguous_key",
            Kind::Expired => "expired",
            Kind::NotYetValid => "not_yet_valid",
            Kind::ClaimMismatch => "claim_mismatch",
            Kind::MissingClaim => "missing_claim",
            Kind::CritUnsupported => "crit_unsupported",
            Kind::DecryptFailed => "decrypt_failed",
            Kind::Unsigned => "unsigned",
            Kind::DpopInvalid => "dpop_invalid",
        }
    }
}

/// A rejected token: the kind and a sentence saying exactly why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub kind: Kind,
    pub message: String,
}

fn reject(kind: Kind, message: impl Into<String>) -> Rejection {
    Rejection {
        kind,
        message: message.into(),
    }
}

/// A key trusted for verification, with the algorithms it may verify. The aws-lc verifier for
/// an algorithm is built on first use and kept (a single token needs one; a batch reuses it).
struct TrustedKey {
    kid: Option<String>,
    algs: Vec<Alg>,
    verifiers: Vec<std::sync::OnceLock<Option<VerifyingKey>>>,
    /// The key itself, to build an independent copy for another thread.
    source: Key,
}

/// The keys a token may be checked against, parsed once (a batch reuses them for every token).
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
    allowed: Vec<Alg>,
    /// One key given directly (not a set): a header kid need not match a key without one.
    single: bool,
    /// Set entries that could not be used, with the reason, for messages.
    pub skipped: Vec<String>,
}

impl TrustedKeys {
    /// One explicit key (a key file or a stored key). A key that fits none of the allowed
    /// algorithms is kept: every token is then rejected as alg_not_allowed, saying why.
    pub fn single(key: &Key, allowed: &[Alg]) -> Result<TrustedKeys, Error> {
        Ok(TrustedKeys {
            keys: vec![trust(key, allowed)?],
            allowed: allowed.to_vec(),
            single: true,
            skipped: Vec::new(),
        })
    }

    /// For one key given directly: when the token's kid is neither the key's kid nor its RFC
    /// 7638 thumbprint, the usual cause of a signature that does not verify, said plainly.
    fn other_kid_hint(&self, token_kid: &str) -> Option<String> {
        let [key] = self.keys.as_slice() else {
            return None;
        };
        if !self.single {
            return None;
        }
        let thumbprint = key.source.thumbprint(super::Hash::Sha256);
        let named = token_kid == thumbprint || key.kid.as_deref() == Some(token_kid);
        (!named).then(|| {
            format!(
                "; the token's kid \"{token_kid}\" is not this key's (its thumbprint is {thumbprint}): it was probably signed by another key"
            )
        })
    }

    /// Every usable key of a JWKS. Entries that do not load (an encryption key, an unsupported
    /// kty) are skipped and remembered, so one odd key does not break a whole issuer.
    pub fn from_set(set: JwkSet, allowed: &[Alg]) -> TrustedKeys {
        TrustedKeys::from_entries(set, allowed, false)
    }

    /// A set fetched from a URL: as `from_set`, but secret (`oct`) keys are skipped too. Whoever
    /// can read the URL has them, so they prove nothing about who signed a token.
    pub fn from_fetched_set(set: JwkSet, allowed: &[Alg]) -> TrustedKeys {
        TrustedKeys::from_entries(set, allowed, true)
    }

    fn from_entries(set: JwkSet, allowed: &[Alg], fetched: bool) -> TrustedKeys {
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for entry in set.entries {
            let name = entry.kid.clone().unwrap_or_else(|| "(no kid)".into());
            if fetched && entry.kty == "oct" {
                skipped.push(format!(
                    "{name}: a secret (oct) key in a fetched set is never used, since anyone who can read the set could sign with it"
                ));
                continue;
            }
            match entry.key.and_then(|k| trust(&k, allowed)) {
                Ok(t) => keys.push(t),
                Err(e) => skipped.push(format!("{name}: {e}")),
            }
        }
        TrustedKeys {
            keys,
            allowed: allowed.to_vec(),
            single: false,
            skipped,
        }
    }

    /// The same keys parsed afresh: threads that each verify with their own copy share no
    /// aws-lc key object (whose reference counts and locks they would otherwise contend on).
    pub fn independent_copy(&self) -> TrustedKeys {
        TrustedKeys {
            keys: self
                .keys
                .iter()
                .filter_map(|k| trust(&k.source, &self.allowed).ok())
                .collect(),
            allowed: self.allowed.clone(),
            single: self.single,
            skipped: self.skipped.clone(),
        }
    }

    /// The kids on offer, for an unknown_kid message.
    pub fn kid_list(&self) -> String {
        let kids: Vec<&str> = self
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap_or("(none)"))
            .collect();
        if kids.is_empty() {
            "none".into()
        } else {
            kids.join(", ")
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn trust(key: &Key, allowed: &[Alg]) -> Result<TrustedKey, Error> {
    let algs: Vec<Alg> = key
        .algs()
        .into_iter()
        .filter(|a| allowed.is_empty() || allowed.contains(a))
        .collect();
    let verifiers: Vec<std::sync::OnceLock<Option<VerifyingKey>>> =
        algs.iter().map(|_| std::sync::OnceLock::new()).collect();
    // Check the key now, so a bad one is reported when loaded, not at the first token; the
    // verifier built for the check is kept.
    if let (Some(first), Some(cell)) = (algs.first(), verifiers.first()) {
        let _ = cell.set(Some(VerifyingKey::new(key, *first)?));
    }
    Ok(TrustedKey {
        kid: key.meta.kid.clone(),
        verifiers,
        algs,
        source: key.clone(),
    })
}

impl TrustedKey {
    fn verifier(&self, alg: Alg) -> Option<&VerifyingKey> {
        let i = self.algs.iter().position(|a| *a == alg)?;
        self.verifiers[i]
            .get_or_init(|| VerifyingKey::new(&self.source, alg).ok())
            .as_ref()
    }
}

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// `--alg`: allowed algorithms; empty = whatever the selected key supports.
    pub algs: Vec<Alg>,
    /// Seconds of clock skew tolerated for exp and nbf.
    pub leeway: i64,
    pub iss: Option<String>,
    /// Accepted audiences; the token's aud must hold one of them.
    pub aud: Vec<String>,
    /// Accept any aud (`--any-aud`). Without it and without `aud`, a token with aud is
    /// rejected (RFC 7519 §4.1.3: a recipient that does not identify itself with a value in
    /// aud must reject the token).
    pub any_aud: bool,
    pub sub: Option<String>,
    pub typ: Option<String>,
    pub require: Vec<String>,
    pub ignore_exp: bool,
    /// Signature only: the payload need not be JWT claims, and no claim is checked.
    pub raw: bool,
}

/// A token that passed.
#[derive(Debug, Clone)]
pub struct Verified {
    pub kid: Option<String>,
    /// The signature's algorithm (None for an encrypted-only token taken without one).
    pub alg: Option<Alg>,
    /// The claims (None with `Policy::raw`).
    pub claims: Option<Map<String, Value>>,
    pub payload: Vec<u8>,
}

/// Verifies one compact token at time `now` (Unix seconds).
pub fn verify_token(
    token: &str,
    keys: &TrustedKeys,
    policy: &Policy,
    now: i64,
) -> Result<Verified, Rejection> {
    let c = Compact::parse(token).map_err(|e| reject(Kind::Malformed, e.to_string()))?;
    let alg = header_alg(&c.header, policy)?;
    if c.header.contains_key("crit") {
        return Err(reject(
            Kind::CritUnsupported,
            "the header has \"crit\"; jwkit understands no critical extensions, so it rejects them all",
        ));
    }
    if c.header.contains_key("b64") {
        return Err(reject(
            Kind::CritUnsupported,
            "the header has \"b64\" (RFC 7797 unencoded payload), which jwkit does not support",
        ));
    }
    let kid = match c.header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(other) => {
            return Err(reject(
                Kind::Malformed,
                format!("header kid must be a string, found {}", json::kind(other)),
            ));
        }
    };
    let (key_kid, verifier) = select(keys, kid, alg)?;
    if !verifier.verify(c.signing_input.as_bytes(), &c.signature) {
        let mut message = format!("the {alg} signature does not verify");
        if let Some(hint) = kid.and_then(|k| keys.other_kid_hint(k)) {
            message.push_str(&hint);
        }
        return Err(reject(Kind::BadSignature, message));
    }
    if policy.raw {
        return Ok(Verified {
            kid: key_kid,
            alg: Some(alg),
            claims: None,
            payload: c.payload,
        });
    }
    let claims = json::parse_object(&c.payload).map_err(|e| {
        reject(
            Kind::Malformed,
            format!("the payload is not a JSON claims set ({e}); --raw verifies the signature of any payload"),
        )
    })?;
    check_typ(&c.header, policy)?;
    check_claims(&claims, policy, now)?;
    Ok(Verified {
        kid: key_kid,
        alg: Some(alg),
        claims: Some(claims),
        payload: c.payload,
    })
}

/// The claim checks alone, for the plaintext of an encrypted-only JWT whose encryption the
/// caller accepts as its authentication.
pub fn verify_claims(payload: &[u8], policy: &Policy, now: i64) -> Result<Verified, Rejection> {
    let claims = json::parse_object(payload).map_err(|e| {
        reject(
            Kind::Malformed,
            format!("the decrypted payload is not a JSON claims set ({e})"),
        )
    })?;
    check_claims(&claims, policy, now)?;
    Ok(Verified {
        kid: None,
        alg: None,
        claims: Some(claims),
        payload: payload.to_vec(),
    })
}

fn header_alg(header: &Map<String, Value>, policy: &Policy) -> Result<Alg, Rejection> {
    let name = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(reject(
                Kind::Malformed,
                format!("header alg must be a string, found {}", json::kind(other)),
            ));
        }
        None => return Err(reject(Kind::Malformed, "the header has no alg")),
    };
    if name.eq_ignore_ascii_case("none") {
        return Err(reject(
            Kind::AlgNotAllowed,
            format!("alg \"{name}\" (an unsigned token) is never accepted"),
        ));
    }
    let alg: Alg = name.parse().map_err(|_| {
        reject(
            Kind::AlgNotAllowed,
            format!("alg \"{name}\" is not supported"),
        )
    })?;
    if !policy.algs.is_empty() && !policy.algs.contains(&alg) {
        return Err(reject(
            Kind::AlgNotAllowed,
            format!(
                "alg {alg} is not allowed (--alg allows {})",
                super::key::join_algs(&policy.algs)
            ),
        ));
    }
    Ok(alg)
}

/// Picks the one key that may verify: same kid (exactly), and bound to the header's alg.
fn select<'k>(
    keys: &'k TrustedKeys,
    kid: Option<&str>,
    alg: Alg,
) -> Result<(Option<String>, &'k VerifyingKey), Rejection> {
    let by_kid: Vec<&TrustedKey> = match kid {
        Some(want) => keys
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(want) || (keys.single && k.kid.is_none()))
            .collect(),
        None => keys.keys.iter().collect(),
    };
    if by_kid.is_empty() {
        let want = kid.unwrap_or_default();
        let mut msg = format!("no key with kid \"{want}\" (kids: {})", keys.kid_list());
        if !keys.skipped.is_empty() {
            msg.push_str(&format!("; skipped: {}", keys.skipped.join("; ")));
        }
        return Err(reject(Kind::UnknownKid, msg));
    }
    let fits: Vec<(&TrustedKey, &VerifyingKey)> = by_kid
        .iter()
        .filter_map(|k| k.verifier(alg).map(|v| (*k, v)))
        .collect();
    match fits.as_slice() {
        [(k, v)] => Ok((k.kid.clone(), v)),
        [] => {
            let accepted: Vec<Alg> = by_kid.iter().flat_map(|k| k.algs.iter().copied()).collect();
            let which = match kid {
                Some(k) => format!("the key with kid \"{k}\""),
                None => "no key in the set".into(),
            };
            Err(reject(
                Kind::AlgNotAllowed,
                if kid.is_some() {
                    format!(
                        "{which} does not accept alg {alg} (it accepts: {})",
                        super::key::join_algs(&accepted)
                    )
                } else {
                    format!("{which} accepts alg {alg}")
                },
            ))
        }
        many => Err(reject(
            Kind::AmbiguousKey,
            match kid {
                Some(k) => format!("{} keys with kid \"{k}\" accept {alg}", many.len()),
                None => format!(
                    "the token has no kid and {} keys accept {alg}; jwkit will not guess",
                    many.len()
                ),
            },
        )),
    }
}

/// `typ` compares case-insensitively, with or without `application/` (RFC 7515 §4.1.9).
fn check_typ(header: &Map<String, Value>, policy: &Policy) -> Result<(), Rejection> {
    let Some(want) = &policy.typ else {
        return Ok(());
    };
    let norm = |s: &str| {
        let l = s.to_ascii_lowercase();
        l.strip_prefix("application/")
            .map(str::to_string)
            .unwrap_or(l)
    };
    match header.get("typ") {
        Some(Value::String(t)) if norm(t) == norm(want) => Ok(()),
        Some(Value::String(t)) => Err(reject(
            Kind::ClaimMismatch,
            format!("typ is \"{t}\", expected \"{want}\""),
        )),
        Some(other) => Err(reject(
            Kind::Malformed,
            format!("header typ must be a string, found {}", json::kind(other)),
        )),
        None => Err(reject(
            Kind::MissingClaim,
            format!("the header has no typ (expected \"{want}\")"),
        )),
    }
}

/// The latest date a NumericDate may name: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// A NumericDate (RFC 7519 §2): a non-negative number of seconds. Anything else is invalid,
/// not absent.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejection> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let secs = v
        .as_f64()
        .filter(|f| f.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(f));
    match (v, secs) {
        (Value::Number(_), Some(f)) => Ok(Some(f.floor() as i64)),
        _ => Err(reject(
            Kind::Malformed,
            format!(
                "claim {name} is not a valid NumericDate (a number of seconds from 0 to year 9999): {v}"
            ),
        )),
    }
}

fn check_claims(claims: &Map<String, Value>, policy: &Policy, now: i64) -> Result<(), Rejection> {
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    numeric_date(claims, "iat")?;
    match exp {
        Some(exp) if !policy.ignore_exp && now >= exp.saturating_add(policy.leeway) => {
            return Err(reject(
                Kind::Expired,
                format!(
                    "expired at {} ({} ago)",
                    crate::when::rfc3339(exp),
                    crate::when::span(now.abs_diff(exp))
                ),
            ));
        }
        None if !policy.ignore_exp => {
            return Err(reject(
                Kind::MissingClaim,
                "the token has no exp (tokens must expire; --ignore-exp accepts it)",
            ));
        }
        _ => {}
    }
    if let Some(nbf) = nbf
        && now.saturating_add(policy.leeway) < nbf
    {
        return Err(reject(
            Kind::NotYetValid,
            format!(
                "not valid before {} (in {})",
                crate::when::rfc3339(nbf),
                crate::when::span(nbf.abs_diff(now))
            ),
        ));
    }
    for (name, want) in [("iss", &policy.iss), ("sub", &policy.sub)] {
        let Some(want) = want else { continue };
        match claims.get(name) {
            Some(Value::String(have)) if have == want => {}
            Some(have) => {
                return Err(reject(
                    Kind::ClaimMismatch,
                    format!("{name} is {have}, expected \"{want}\""),
                ));
            }
            None => {
                return Err(reject(
                    Kind::MissingClaim,
                    format!("the token has no {name} (expected \"{want}\")"),
                ));
            }
        }
    }
    if policy.aud.is_empty() {
        if let Some(aud) = claims.get("aud")
            && !policy.any_aud
        {
            return Err(reject(
                Kind::ClaimMismatch,
                format!(
                    "the token is for audience {aud}, and no --aud was given; add --aud with one of its values, or --any-aud to accept any audience"
                ),
            ));
        }
    } else {
        let auds: Vec<&str> = match claims.get("aud") {
            None => {
                return Err(reject(
                    Kind::MissingClaim,
                    format!(
                        "the token has no aud (expected one of: {})",
                        policy.aud.join(", ")
                    ),
                ));
            }
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
                list.iter().filter_map(Value::as_str).collect()
            }
            Some(other) => {
                return Err(reject(
                    Kind::Malformed,
                    format!(
                        "claim aud must be a string or an array of strings, found {}",
                        json::kind(other)
                    ),
                ));
            }
        };
        if !auds.iter().any(|a| policy.aud.iter().any(|w| w == a)) {
            return Err(reject(
                Kind::ClaimMismatch,
                format!(
                    "aud is {:?}, expected one of: {}",
                    auds,
                    policy.aud.join(", ")
                ),
            ));
        }
    }
    for name in &policy.require {
        if !claims.contains_key(name) {
            return Err(reject(
                Kind::MissingClaim,
                format!("the token has no {name} (--require {name})"),
            ));
        }
    }
    Ok(())
}
