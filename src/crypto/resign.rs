//! Re-signing: a token gets a new signature from a new key. Header members keep their order
//! (alg and kid are replaced; members tied to the old key are dropped); the payload segment is
//! kept byte for byte unless a claim change is asked for.

use serde_json::{Map, Value};

use super::jws::Compact;
use super::{SigningKey, b64, json, jws};

/// Header members that describe the old key, dropped on re-signing.
const OLD_KEY_MEMBERS: [&str; 4] = ["x5t", "x5t#S256", "x5c", "jwk"];

/// What to put in the new header's kid.
#[derive(Clone, Debug)]
pub enum KidChoice {
    /// This kid (the new key's, or --kid).
    Set(String),
    /// Whatever the token had (or nothing).
    Keep,
    /// No kid.
    Omit,
}

/// Claim edits; all times are relative to one `now` for the whole run, so the same token
/// always becomes the same new token.
#[derive(Clone, Debug, Default)]
pub struct ClaimChanges {
    /// iat becomes now; nbf and exp move by the same amount. A token with exp but neither iat
    /// nor nbf has no known lifetime: its exp becomes now + `lifetime`.
    pub refresh: bool,
    pub lifetime: i64,
    pub exp: Option<i64>,
    pub set: Vec<(String, Value)>,
    pub unset: Vec<String>,
}

impl ClaimChanges {
    pub fn is_empty(&self) -> bool {
        !self.refresh && self.exp.is_none() && self.set.is_empty() && self.unset.is_empty()
    }
}

/// Why a token was not re-signed. `reason` is a short stable phrase for counts; messages
/// never contain token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Skip {
    pub reason: &'static str,
    pub message: String,
}

/// A JWT-looking string that is no JWS: it does not parse, or its header names no alg.
pub const NOT_A_JWS: &str = "not a JWS";
/// Reasons for leaving a token as it is on purpose (counted as "left", not "skipped").
pub const NOT_CHOSEN: &str = "not chosen";
pub const NO_RULE: &str = "no --key-for rule matches";
/// A JWE met with no decryption key (`--decrypt-key-file`, `--decrypt-key`, `--password-file`).
pub const ENCRYPTED: &str = "encrypted (no decryption key given)";
/// A JWE that does not decrypt with the keys given, or holds no signed token.
pub const NOT_DECRYPTED: &str = "does not decrypt to a signed token";

/// A token the scanners count: a JWS, or a compact JWE (five segments, a header with alg
/// and enc).
pub fn is_token(token: &str) -> bool {
    if super::jws::is_jws(token) {
        return true;
    }
    token.bytes().filter(|&b| b == b'.').count() == 4
        && super::jwe::header(token).is_ok_and(|h| {
            h.get("alg").is_some_and(serde_json::Value::is_string)
                && h.get("enc").is_some_and(serde_json::Value::is_string)
        })
}

impl Skip {
    /// Left as it is on purpose (a filter or the rules did not choose it), not a failure.
    pub fn left_on_purpose(&self) -> bool {
        matches!(self.reason, NOT_CHOSEN | NO_RULE)
    }
}

fn skip(reason: &'static str, message: impl Into<String>) -> Skip {
    Skip {
        reason,
        message: message.into(),
    }
}

/// A live re-signer hands out a remembered new token again until this close to its exp.
const REUSE_MARGIN: i64 = 5;

/// Until when a new token may be handed out again for the same old one (its exp, less a
/// margin); None when it has no exp (then always).
pub fn reusable_until(new_token: &str) -> Option<i64> {
    let exp = Compact::parse(new_token)
        .ok()?
        .claims()?
        .get("exp")?
        .as_i64()?;
    Some(exp.saturating_sub(REUSE_MARGIN))
}

pub struct Resigner {
    /// One signer per algorithm the new key can sign with, the default first.
    pub signers: Vec<SigningKey>,
    /// `--alg` was given: always sign with the first signer. Otherwise a token keeps its own
    /// alg when the new key fits it (an HS512 token stays HS512), else gets the default.
    pub fixed_alg: bool,
    pub kid: KidChoice,
    pub changes: ClaimChanges,
    pub now: i64,
}

impl Resigner {
    /// The re-signed token. `check` runs on the parsed original first (for --verify-with).
    pub fn resign(
        &self,
        token: &str,
        check: &dyn Fn(&str) -> Result<(), Skip>,
    ) -> Result<String, Skip> {
        self.resign_at(token, check, self.now)
    }

    /// `resign` with the claim times (`--refresh`) computed as of `now`: a live re-signer
    /// (a proxy, a GoReplay middleware) computes them when it first sees a token.
    pub fn resign_at(
        &self,
        token: &str,
        check: &dyn Fn(&str) -> Result<(), Skip>,
        now: i64,
    ) -> Result<String, Skip> {
        let c = Compact::parse(token).map_err(|e| skip(NOT_A_JWS, e.to_string()))?;
        if !c.header.contains_key("alg") {
            return Err(skip(NOT_A_JWS, "the header has no alg"));
        }
        check(token)?;
        let signer = self.signer_for(c.header.get("alg").and_then(Value::as_str));
        let header = self.new_header(&c.header, signer);
        let header_b64 =
            b64::encode(serde_json::to_vec(&header).map_err(|e| skip("malformed", e.to_string()))?);
        let payload_b64 = if self.changes.is_empty() {
            c.payload_b64.to_string()
        } else {
            let claims = json::parse_object(&c.payload).map_err(|e| {
                skip(
                    "payload not claims",
                    format!("the payload is not a JSON claims set ({e})"),
                )
            })?;
            let claims = self.edit_claims(claims, now)?;
            b64::encode(serde_json::to_vec(&claims).map_err(|e| skip("malformed", e.to_string()))?)
        };
        jws::encode_segments(&header_b64, &payload_b64, signer)
            .map_err(|e| skip("signing failed", e.to_string()))
    }

    /// The default signer (the one `--alg` or the key's default alg chose).
    pub fn default_signer(&self) -> &SigningKey {
        &self.signers[0]
    }

    fn signer_for(&self, old_alg: Option<&str>) -> &SigningKey {
        if self.fixed_alg {
            return self.default_signer();
        }
        old_alg
            .and_then(|a| self.signers.iter().find(|s| s.alg().as_str() == a))
            .unwrap_or_else(|| self.default_signer())
    }

    fn new_header(&self, old: &Map<String, Value>, signer: &SigningKey) -> Map<String, Value> {
        let mut header = Map::with_capacity(old.len() + 1);
        for (k, v) in old {
            if OLD_KEY_MEMBERS.contains(&k.as_str()) {
                continue;
            }
            match k.as_str() {
                "alg" => {
                    header.insert(k.clone(), signer.alg().as_str().into());
                }
                "kid" => match &self.kid {
                    KidChoice::Set(kid) => {
                        header.insert(k.clone(), kid.clone().into());
                    }
                    KidChoice::Keep => {
                        header.insert(k.clone(), v.clone());
                    }
                    KidChoice::Omit => {}
                },
                _ => {
                    header.insert(k.clone(), v.clone());
                }
            }
        }
        if let KidChoice::Set(kid) = &self.kid
            && !header.contains_key("kid")
        {
            header.insert("kid".into(), kid.clone().into());
        }
        header
    }

    fn edit_claims(
        &self,
        mut claims: Map<String, Value>,
        now: i64,
    ) -> Result<Map<String, Value>, Skip> {
        let ch = &self.changes;
        if ch.refresh {
            let time =
                |claims: &Map<String, Value>, name: &str| claims.get(name).and_then(Value::as_i64);
            let exp = time(&claims, "exp");
            let out_of_range = |what: &str| {
                skip(
                    "cannot refresh",
                    format!(
                        "--refresh: {what} is out of range (times past year 9999 or before 1970 cannot be moved)"
                    ),
                )
            };
            let Some(anchor) = time(&claims, "iat")
                .or_else(|| time(&claims, "nbf"))
                .map(Ok)
                .or_else(|| {
                    exp.map(|e| {
                        e.checked_sub(ch.lifetime)
                            .ok_or_else(|| out_of_range("exp"))
                    })
                })
                .transpose()?
            else {
                return Err(skip(
                    "cannot refresh",
                    "--refresh needs an iat, nbf or exp to move",
                ));
            };
            let delta = now
                .checked_sub(anchor)
                .ok_or_else(|| out_of_range("the anchor time"))?;
            for name in ["iat", "nbf", "exp"] {
                if let Some(t) = time(&claims, name) {
                    let moved = t.checked_add(delta).ok_or_else(|| out_of_range(name))?;
                    claims.insert(name.into(), moved.into());
                }
            }
        }
        if let Some(exp) = ch.exp {
            claims.insert("exp".into(), exp.into());
        }
        for (name, value) in &ch.set {
            claims.insert(name.clone(), value.clone());
        }
        for name in &ch.unset {
            claims.shift_remove(name);
        }
        Ok(claims)
    }
}
