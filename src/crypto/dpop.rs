//! DPoP (RFC 9449): proofs of possession made for one HTTP request (`generate-jwt
//! --dpop-proof`) and checked against one (`serve --idp`'s token, PAR, userinfo and
//! introspection endpoints; `verify-jwt --dpop`).
//!
//! A proof is a JWS whose header has `typ: dpop+jwt`, an asymmetric `alg` and the public
//! `jwk` that verifies it; its claims are `jti`, `htm` (the method), `htu` (the URI without
//! query and fragment), `iat`, and, with an access token, `ath` (its SHA-256, base64url); a
//! server may ask for its `nonce`. The key's RFC 7638 thumbprint (`jkt`) is what a token is
//! bound to (`cnf.jkt`).

use serde_json::{Map, Value, json};

use super::jws::{self, Compact};
use super::{Alg, Hash, Key, SigningKey, b64};

/// A checked proof: the key's thumbprint, its jti and iat.
#[derive(Debug, Clone)]
pub struct Proof {
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The proof is malformed, wrongly signed, or for another request or token.
    Invalid(String),
    /// The server asked for a nonce and the proof has none, or an old one
    /// (`use_dpop_nonce`, RFC 9449 §8).
    Nonce(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Invalid(m) | Error::Nonce(m) => f.write_str(m),
        }
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::Invalid(format!("DPoP proof: {}", m.into()))
}

/// What the proof must match.
pub struct Expect<'a> {
    /// The request's method.
    pub htm: &'a str,
    /// The request's URI (a query and a fragment are ignored).
    pub htu: &'a str,
    pub now: i64,
    /// How old `iat` may be, in seconds (how far ahead: a minute at most).
    pub max_age: i64,
    /// The access token presented with the proof: its hash must be `ath`.
    pub access_token: Option<&'a str>,
    /// The nonces the server accepts; None: no nonce asked for.
    pub nonces: Option<&'a dyn Fn(&str) -> bool>,
}

/// How far ahead of the clock `iat` may be.
const FUTURE: i64 = 60;

/// The URI as compared: scheme, host and port lower case, default port dropped, path as is,
/// no query and no fragment (RFC 9449 §4.3).
fn normal_htu(uri: &str) -> Option<String> {
    let mut u = url::Url::parse(uri).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// The base64url SHA-256 of an access token (`ath`).
pub fn ath(access_token: &str) -> String {
    b64::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        access_token.as_bytes(),
    ))
}

/// Checks a proof against a request; the proof's key thumbprint when it holds.
pub fn check(proof: &str, e: &Expect<'_>) -> Result<Proof, Error> {
    if proof.len() > 8 << 10 {
        return Err(invalid("over 8 KiB"));
    }
    let c = Compact::parse(proof).map_err(|err| invalid(err.to_string()))?;
    if c.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("the header's typ is not dpop+jwt"));
    }
    let alg: Alg = c
        .header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the header has no alg"))?
        .parse()
        .map_err(|_| invalid("the header's alg is not a signature algorithm jwkit knows"))?;
    if alg.is_hmac() {
        return Err(invalid(
            "the alg must be asymmetric (RFC 9449 §4.2), not HMAC",
        ));
    }
    if c.header.contains_key("crit") {
        return Err(invalid("the header has crit"));
    }
    let jwk = c
        .header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the header has no jwk"))?;
    if let Some(m) = ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .find(|m| jwk.contains_key(**m))
    {
        return Err(invalid(format!(
            "the header's jwk holds the private member {m:?}"
        )));
    }
    let bytes = serde_json::to_vec(jwk).map_err(|err| invalid(err.to_string()))?;
    let key = super::load_key(&bytes, None).map_err(|err| invalid(format!("jwk: {err}")))?;
    let ok = super::verify(alg, &key, c.signing_input.as_bytes(), &c.signature)
        .map_err(|err| invalid(err.to_string()))?;
    if !ok {
        return Err(invalid(
            "the signature does not verify with the header's jwk",
        ));
    }
    let claims: Map<String, Value> = serde_json::from_slice(&c.payload)
        .ok()
        .and_then(|v: Value| v.as_object().cloned())
        .ok_or_else(|| invalid("the payload is not a JSON object"))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("jti is missing"))?;
    if text("htm") != Some(e.htm) {
        return Err(invalid(format!(
            "htm is {:?}, the request's method is {}",
            text("htm").unwrap_or(""),
            e.htm
        )));
    }
    let htu = text("htu").ok_or_else(|| invalid("htu is missing"))?;
    if normal_htu(htu).is_none() || normal_htu(htu) != normal_htu(e.htu) {
        return Err(invalid(format!(
            "htu {:?} is not the request's URI {}",
            crate::output::escape(htu),
            e.htu
        )));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("iat is missing or not a number"))?;
    if iat < e.now.saturating_sub(e.max_age) {
        return Err(invalid(format!(
            "iat is {}s old (at most {}s)",
            e.now - iat,
            e.max_age
        )));
    }
    if iat > e.now.saturating_add(FUTURE) {
        return Err(invalid("iat is in the future"));
    }
    match (e.access_token, text("ath")) {
        (Some(t), Some(h)) if h == ath(t) => {}
        (Some(_), Some(_)) => return Err(invalid("ath is not the access token's hash")),
        (Some(_), None) => return Err(invalid("ath is missing (the request has an access token)")),
        (None, _) => {}
    }
    if let Some(accepts) = e.nonces {
        match text("nonce") {
            Some(n) if accepts(n) => {}
            Some(_) => return Err(Error::Nonce("the DPoP nonce is stale".into())),
            None => {
                return Err(Error::Nonce(
                    "the server asks for a DPoP nonce (use the DPoP-Nonce header's)".into(),
                ));
            }
        }
    }
    let jkt = key
        .public()
        .map_err(|err| invalid(err.to_string()))?
        .thumbprint(Hash::Sha256);
    Ok(Proof {
        jkt,
        jti: jti.to_string(),
        iat,
    })
}

/// What a new proof is for.
pub struct Request<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub access_token: Option<&'a str>,
    /// More claims, such as the server's `nonce`; the members above take their place.
    pub extra: Map<String, Value>,
    pub iat: i64,
    pub jti: String,
}

/// A proof signed by `key` (a private asymmetric key) for `req`.
pub fn make(key: &Key, alg: Alg, req: &Request<'_>) -> Result<String, super::Error> {
    if alg.is_hmac() {
        return Err(super::Error::key(
            "a DPoP proof is signed with an asymmetric key (RSA, EC, Ed25519), not an HMAC secret",
        ));
    }
    let public = key.public()?;
    let mut jwk = public.to_jwk();
    for m in ["kid", "use", "alg", "key_ops"] {
        jwk.remove(m);
    }
    let mut header = Map::new();
    header.insert("typ".into(), json!("dpop+jwt"));
    header.insert("alg".into(), json!(alg.as_str()));
    header.insert("jwk".into(), Value::Object(jwk));
    let mut claims = req.extra.clone();
    claims.insert("jti".into(), json!(req.jti));
    claims.insert("htm".into(), json!(req.htm));
    claims.insert("htu".into(), json!(req.htu));
    claims.insert("iat".into(), json!(req.iat));
    if let Some(t) = req.access_token {
        claims.insert("ath".into(), json!(ath(t)));
    }
    let payload = serde_json::to_vec(&claims).map_err(|e| super::Error::key(e.to_string()))?;
    jws::encode(&header, &payload, &SigningKey::new(key, alg)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyMeta, KeySpec};

    fn proof(key: &Key, htm: &str, htu: &str, iat: i64, token: Option<&str>) -> String {
        make(
            key,
            Alg::ES256,
            &Request {
                htm,
                htu,
                access_token: token,
                extra: Map::new(),
                iat,
                jti: "j1".into(),
            },
        )
        .expect("proof")
    }

    fn expect<'a>(htm: &'a str, htu: &'a str, token: Option<&'a str>) -> Expect<'a> {
        Expect {
            htm,
            htu,
            now: 1_000_000,
            max_age: 300,
            access_token: token,
            nonces: None,
        }
    }

    #[test]
    fn a_proof_holds_for_its_request_only() {
        let key = Key::generate(
            KeySpec::Ec(crate::crypto::Curve::P256),
            KeyMeta::default(),
            false,
        )
        .expect("key");
        let p = proof(&key, "POST", "https://as.test/token?x=1", 1_000_000, None);
        let ok = check(&p, &expect("POST", "https://AS.test:443/token", None)).expect("valid");
        assert_eq!(ok.jkt, key.thumbprint(Hash::Sha256));
        for (htm, htu) in [
            ("GET", "https://as.test/token"),
            ("POST", "https://as.test/par"),
        ] {
            assert!(matches!(
                check(&p, &expect(htm, htu, None)),
                Err(Error::Invalid(_))
            ));
        }
        let old = proof(&key, "POST", "https://as.test/token", 1_000_000 - 301, None);
        assert!(check(&old, &expect("POST", "https://as.test/token", None)).is_err());
        let bound = proof(&key, "GET", "https://rs.test/me", 1_000_000, Some("tok"));
        assert!(check(&bound, &expect("GET", "https://rs.test/me", Some("tok"))).is_ok());
        assert!(check(&bound, &expect("GET", "https://rs.test/me", Some("other"))).is_err());
        // Another key's signature under this jwk.
        let other = Key::generate(
            KeySpec::Ec(crate::crypto::Curve::P256),
            KeyMeta::default(),
            false,
        )
        .expect("key");
        let forged = proof(&other, "POST", "https://as.test/token", 1_000_000, None);
        let (h, _) = p.split_once('.').expect("dot");
        let swapped = format!("{h}.{}", forged.split_once('.').expect("dot").1);
        assert!(check(&swapped, &expect("POST", "https://as.test/token", None)).is_err());
    }
}
