//! JWE (RFC 7516) decryption with the algorithms of RFC 7518 and RFC 8037: compact and JSON
//! serializations (general and flattened; several recipients: the first whose key fits).
//!
//! aws-lc does the cryptography: RSA-OAEP, ECDH (P-256/384/521, X25519), the Concat KDF
//! (single-step KDF of NIST SP 800-56C, which is JWA's Concat KDF), AES key wrap, AES-GCM,
//! AES-CBC, HMAC and PBKDF2. aws-lc's AES key wrap has no 192-bit variant: A192KW (and
//! ECDH-ES+A192KW, PBES2-HS384+A192KW) unwrap with RustCrypto's `aes-kw`, for exactly that.
//!
//! Hardening, as the best libraries do it: every failure once a key is at work (unwrap, OAEP,
//! padding, tag, CEK length) is one error with one message, so no oracle is offered; invalid
//! curve points are refused by aws-lc's point checks; `p2c` is capped; `zip` output is capped;
//! header members may not repeat across the protected, shared and per-recipient headers, and
//! `crit` names nothing jwkit does not understand (it understands none).

use std::io::Read;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement;
use aws_lc_rs::cipher::{self, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::constant_time;
use aws_lc_rs::hmac;
use aws_lc_rs::kdf;
use aws_lc_rs::key_wrap::{self, KeyEncryptionKey, KeyWrap};
use aws_lc_rs::pbkdf2;
use aws_lc_rs::rsa;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::b64;

/// `p2c` above this is refused (panva's default): a token cannot make jwkit run PBKDF2 for
/// minutes.
pub const MAX_P2C: u64 = 10_000;
/// `zip: DEF` plaintexts are inflated to at most this many bytes.
pub const MAX_INFLATED: usize = 250 * 1000;
/// A JWE larger than this is refused before anything is decoded.
pub const MAX_TOKEN: usize = 16 << 20;

/// The one message of every decryption failure.
pub const FAILED: &str = "the token could not be decrypted (a wrong key, or the token was altered)";

/// Why a JWE was not decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a JWE, or a JWE whose form is wrong (bad base64, a header that is not JSON...).
    Malformed(String),
    /// An algorithm, `crit` member or option jwkit does not take.
    Unsupported(String),
    /// No key given fits the token.
    NoKey(String),
    /// The cryptography failed. Always the same message.
    Failed,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Malformed(m) | Error::Unsupported(m) | Error::NoKey(m) => f.write_str(m),
            Error::Failed => f.write_str(FAILED),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The stable kind word (DESIGN.md §4).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::Unsupported(_) => "alg_not_allowed",
            Error::NoKey(_) => "unknown_kid",
            Error::Failed => "decrypt_failed",
        }
    }
}

fn malformed(m: impl Into<String>) -> Error {
    Error::Malformed(m.into())
}

/// What may be decrypted with.
pub enum Secret {
    /// The parsed key and its PKCS#8 DER (for independent copies).
    Rsa {
        key: rsa::PrivateDecryptingKey,
        pkcs8: Zeroizing<Vec<u8>>,
    },
    /// An EC (P-256/384/521) or X25519 private key, for ECDH-ES, and its raw private bytes.
    Agreement {
        crv: &'static str,
        key: agreement::PrivateKey,
        d: Zeroizing<Vec<u8>>,
    },
    /// A symmetric key: AES key wrap, AES-GCM key wrap or direct encryption.
    Oct(Zeroizing<Vec<u8>>),
    /// A password, for PBES2.
    Password(Zeroizing<Vec<u8>>),
}

/// A decryption key and what its JWK says of itself.
pub struct DecryptKey {
    pub kid: Option<String>,
    /// The JWK's `alg`, when it has one: the key then decrypts that algorithm only.
    pub alg: Option<String>,
    pub secret: Secret,
}

impl DecryptKey {
    pub fn password(p: &[u8]) -> DecryptKey {
        DecryptKey {
            kid: None,
            alg: None,
            secret: Secret::Password(Zeroizing::new(p.to_vec())),
        }
    }

    /// A copy that shares no aws-lc object with this one (a batch gives each thread its own:
    /// an RSA key's blinding state is locked per key, and threads sharing one wait on it).
    /// None if the key does not parse again (it did once, so it does).
    pub fn independent_copy(&self) -> Option<DecryptKey> {
        let secret = match &self.secret {
            Secret::Rsa { pkcs8, .. } => Secret::Rsa {
                key: rsa::PrivateDecryptingKey::from_pkcs8(pkcs8).ok()?,
                pkcs8: pkcs8.clone(),
            },
            Secret::Agreement { crv, d, .. } => Secret::Agreement {
                crv,
                key: agreement::PrivateKey::from_private_key(agreement_alg(crv).ok()?, d).ok()?,
                d: d.clone(),
            },
            Secret::Oct(k) => Secret::Oct(k.clone()),
            Secret::Password(p) => Secret::Password(p.clone()),
        };
        Some(DecryptKey {
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            secret,
        })
    }

    /// The key to encrypt to this key's owner again (its public half; a symmetric key as it
    /// is). None for a password: jwkit does not encrypt with PBES2.
    pub fn to_encrypt_key(&self) -> Option<EncryptKey> {
        let target = match &self.secret {
            Secret::Rsa { key, .. } => Target::Rsa(key.public_key()),
            Secret::Agreement { crv, key, .. } => Target::Agreement {
                crv,
                public: key.compute_public_key().ok()?.as_ref().to_vec(),
            },
            Secret::Oct(k) => Target::Oct(k.clone()),
            Secret::Password(_) => return None,
        };
        Some(EncryptKey {
            kid: self.kid.clone(),
            alg: self.alg.clone(),
            target,
        })
    }

    /// Whether this key can serve `alg` (by its kind, and by its own `alg` when it has one;
    /// a direct-encryption key's `alg` may name the content encryption, as RFC 7520 §5.6's).
    fn fits(&self, alg: &str, enc: &str) -> bool {
        if self
            .alg
            .as_deref()
            .is_some_and(|a| a != alg && !(alg == "dir" && a == enc))
        {
            return false;
        }
        match &self.secret {
            Secret::Rsa { .. } => alg.starts_with("RSA"),
            Secret::Agreement { .. } => alg.starts_with("ECDH-ES"),
            Secret::Oct(_) => alg == "dir" || (alg.starts_with('A') && (alg.ends_with("KW"))),
            Secret::Password(_) => alg.starts_with("PBES2-"),
        }
    }
}

/// Options of one decryption.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub max_p2c: u64,
    pub max_inflated: usize,
    /// RSA1_5 (PKCS#1 v1.5 key transport, open to padding oracles) is taken only when asked.
    pub allow_rsa1_5: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_p2c: MAX_P2C,
            max_inflated: MAX_INFLATED,
            allow_rsa1_5: false,
        }
    }
}

/// A decrypted JWE.
pub struct Decrypted {
    /// Which of the keys given decrypted it.
    pub key_index: usize,
    /// The protected header as sent.
    pub protected: Map<String, Value>,
    /// Every header member that applied: protected, shared unprotected and the recipient's.
    pub header: Map<String, Value>,
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// A token as people paste it (`jws::pasted`: a `Bearer ` prefix, quotes, wrapped lines),
/// except a JWE in its JSON serialization, which is taken whole, less the white space around.
pub fn pasted(text: &str) -> super::jws::Pasted<'_> {
    let t = text.trim();
    if t.starts_with('{') {
        let start = text.len() - text.trim_start().len();
        return super::jws::Pasted {
            before: &text[..start],
            token: std::borrow::Cow::Borrowed(t),
            after: &text[start + t.len()..],
        };
    }
    super::jws::pasted(text)
}

/// True when `text` (trimmed) looks like a JWE: five compact segments or a JSON serialization.
pub fn is_jwe(text: &str) -> bool {
    let t = text.trim();
    if t.starts_with('{') {
        return serde_json::from_str::<Map<String, Value>>(t)
            .is_ok_and(|o| o.contains_key("ciphertext"));
    }
    t.split('.').count() == 5
}

/// One recipient: its own header and encrypted key.
struct Recipient {
    header: Map<String, Value>,
    encrypted_key: Vec<u8>,
}

/// A JWE taken apart, not yet decrypted.
struct Parsed {
    protected_b64: String,
    protected: Map<String, Value>,
    shared: Map<String, Value>,
    recipients: Vec<Recipient>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
    aad_b64: Option<String>,
}

fn b64_part(text: &str, what: &str) -> Result<Vec<u8>, Error> {
    b64::decode(text).map_err(|e| malformed(format!("the JWE's {what} is not base64url: {e}")))
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, Error> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| malformed(format!("the JWE's {what} is not UTF-8")))?;
    super::json::parse_object(text.as_bytes())
        .map_err(|e| malformed(format!("the JWE's {what} is not a JSON object: {e}")))
}

fn parse(text: &str) -> Result<Parsed, Error> {
    let text = text.trim();
    if text.len() > MAX_TOKEN {
        return Err(malformed("the JWE is over 16 MiB"));
    }
    if text.starts_with('{') {
        return parse_json(text);
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 5 {
        return Err(malformed(format!(
            "a compact JWE has 5 segments, this has {}",
            parts.len()
        )));
    }
    let protected = json_object(&b64_part(parts[0], "protected header")?, "protected header")?;
    Ok(Parsed {
        protected_b64: parts[0].to_string(),
        protected,
        shared: Map::new(),
        recipients: vec![Recipient {
            header: Map::new(),
            encrypted_key: b64_part(parts[1], "encrypted key")?,
        }],
        iv: b64_part(parts[2], "initialization vector")?,
        ciphertext: b64_part(parts[3], "ciphertext")?,
        tag: b64_part(parts[4], "authentication tag")?,
        aad_b64: None,
    })
}

fn parse_json(text: &str) -> Result<Parsed, Error> {
    let o = super::json::parse_object(text.as_bytes())
        .map_err(|e| malformed(format!("the JWE is not a JSON object: {e}")))?;
    let string = |name: &str| -> Result<Option<&str>, Error> {
        match o.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(malformed(format!("the JWE's \"{name}\" is not a string"))),
        }
    };
    let object = |v: Option<&Value>, name: &str| -> Result<Map<String, Value>, Error> {
        match v {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(malformed(format!("the JWE's \"{name}\" is not an object"))),
        }
    };
    let protected_b64 = string("protected")?.unwrap_or("").to_string();
    let protected = if protected_b64.is_empty() {
        Map::new()
    } else {
        json_object(
            &b64_part(&protected_b64, "protected header")?,
            "protected header",
        )?
    };
    let recipients = match o.get("recipients") {
        Some(Value::Array(list)) => {
            if o.contains_key("header") || o.contains_key("encrypted_key") {
                return Err(malformed(
                    "a general JSON JWE has its header and encrypted_key inside recipients",
                ));
            }
            let mut out = Vec::new();
            for r in list {
                let Value::Object(r) = r else {
                    return Err(malformed("a JWE recipient is not an object"));
                };
                let encrypted_key = match r.get("encrypted_key") {
                    None => Vec::new(),
                    Some(Value::String(s)) => b64_part(s, "encrypted key")?,
                    Some(_) => {
                        return Err(malformed("a recipient's encrypted_key is not a string"));
                    }
                };
                out.push(Recipient {
                    header: object(r.get("header"), "header")?,
                    encrypted_key,
                });
            }
            if out.is_empty() {
                return Err(malformed("the JWE has no recipients"));
            }
            out
        }
        Some(_) => return Err(malformed("the JWE's \"recipients\" is not an array")),
        None => vec![Recipient {
            header: object(o.get("header"), "header")?,
            encrypted_key: match string("encrypted_key")? {
                Some(s) => b64_part(s, "encrypted key")?,
                None => Vec::new(),
            },
        }],
    };
    let required = |name: &str| -> Result<Vec<u8>, Error> {
        match string(name)? {
            Some(s) => b64_part(s, name),
            None => Ok(Vec::new()),
        }
    };
    let ciphertext = match string("ciphertext")? {
        Some(s) => b64_part(s, "ciphertext")?,
        None => return Err(malformed("the JWE has no ciphertext")),
    };
    Ok(Parsed {
        protected_b64,
        protected,
        shared: object(o.get("unprotected"), "unprotected")?,
        recipients,
        iv: required("iv")?,
        ciphertext,
        tag: required("tag")?,
        aad_b64: string("aad")?.map(str::to_string),
    })
}

/// The content encryption algorithms: (CEK bytes, GCM or CBC-HMAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Enc {
    Gcm(usize),
    CbcHs(usize),
}

impl Enc {
    fn parse(name: &str) -> Result<Enc, Error> {
        Ok(match name {
            "A128GCM" => Enc::Gcm(16),
            "A192GCM" => Enc::Gcm(24),
            "A256GCM" => Enc::Gcm(32),
            "A128CBC-HS256" => Enc::CbcHs(32),
            "A192CBC-HS384" => Enc::CbcHs(48),
            "A256CBC-HS512" => Enc::CbcHs(64),
            other => {
                return Err(Error::Unsupported(format!(
                    "unsupported JWE enc \"{}\"",
                    crate::output::escape(other)
                )));
            }
        })
    }

    fn key_len(self) -> usize {
        match self {
            Enc::Gcm(n) | Enc::CbcHs(n) => n,
        }
    }
}

/// The header members that may come unprotected (JSON serialization).
const UNPROTECTED_OK: [&str; 18] = [
    "alg", "enc", "kid", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c", "jku", "jwk", "x5u",
    "x5c", "x5t", "x5t#S256", "typ", "cty",
];

/// Header members jwkit reads; a `crit` naming anything (these or others) is refused, as no
/// JWE extension is understood.
fn joint_header(p: &Parsed, r: &Recipient) -> Result<Map<String, Value>, Error> {
    let mut joint = p.protected.clone();
    for part in [&p.shared, &r.header] {
        for (k, v) in part {
            // What is not integrity-protected is taken only when it is a member RFC 7516/7518
            // define: an unknown one would be shown as if the token carried it.
            if !UNPROTECTED_OK.contains(&k.as_str()) {
                return Err(malformed(format!(
                    "the JWE's unprotected header has \"{}\", which jwkit takes only in the protected header",
                    crate::output::escape(k)
                )));
            }
            if joint.contains_key(k) {
                return Err(malformed(format!(
                    "the header member \"{}\" appears in more than one of the JWE's headers",
                    crate::output::escape(k)
                )));
            }
            joint.insert(k.clone(), v.clone());
        }
    }
    if let Some(crit) = joint.get("crit") {
        if !p.protected.contains_key("crit") {
            return Err(malformed("\"crit\" must be in the protected header"));
        }
        return Err(Error::Unsupported(format!(
            "the JWE's crit names extensions jwkit does not understand: {}",
            crate::output::escape(&crit.to_string())
        )));
    }
    if joint.contains_key("zip") && !p.protected.contains_key("zip") {
        return Err(malformed("\"zip\" must be in the protected header"));
    }
    Ok(joint)
}

fn header_str<'a>(h: &'a Map<String, Value>, name: &str) -> Result<&'a str, Error> {
    match h.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(malformed(format!(
            "the JWE header's \"{name}\" is not a string"
        ))),
        None => Err(malformed(format!("the JWE header has no \"{name}\""))),
    }
}

fn header_b64(h: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, Error> {
    match h.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => b64_part(s, name).map(Some),
        Some(_) => Err(malformed(format!(
            "the JWE header's \"{name}\" is not a string"
        ))),
    }
}

/// The header of a JWE (its first recipient's, in the JSON serialization), read without
/// decrypting anything.
pub fn header(token: &str) -> Result<Map<String, Value>, Error> {
    let p = parse(token)?;
    joint_header(&p, &p.recipients[0])
}

/// Decrypts `token` with the first of `keys` that fits (by `kid` when the header names one).
pub fn decrypt(token: &str, keys: &[DecryptKey], opts: &Options) -> Result<Decrypted, Error> {
    let p = parse(token)?;
    let mut last = None;
    for r in &p.recipients {
        let header = joint_header(&p, r)?;
        let alg = header_str(&header, "alg")?;
        let enc_name = header_str(&header, "enc")?;
        let enc = Enc::parse(enc_name)?;
        check_alg(alg, opts)?;
        let kid = match header.get("kid") {
            Some(Value::String(k)) => Some(k.as_str()),
            _ => None,
        };
        let candidates: Vec<(usize, &DecryptKey)> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.fits(alg, enc_name))
            .filter(|(_, k)| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        if candidates.is_empty() {
            last = Some(Error::NoKey(match kid {
                Some(k) => format!(
                    "no decryption key fits the JWE (alg {}, kid \"{}\")",
                    crate::output::escape(alg),
                    crate::output::escape(k)
                ),
                None => format!(
                    "no decryption key fits the JWE (alg {})",
                    crate::output::escape(alg)
                ),
            }));
            continue;
        }
        for (key_index, key) in candidates {
            match decrypt_with(&p, r, &header, alg, enc, key, opts) {
                Ok(plaintext) => {
                    return Ok(Decrypted {
                        key_index,
                        protected: p.protected.clone(),
                        header,
                        plaintext,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
    }
    Err(last.unwrap_or(Error::Failed))
}

/// The key-management algorithms jwkit encrypts with under a key (RSA1_5 only decrypts, with
/// --insecure; PBES2 takes a password).
pub const KEY_ALGS: [&str; 15] = [
    "RSA-OAEP",
    "RSA-OAEP-256",
    "RSA-OAEP-384",
    "RSA-OAEP-512",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A192KW",
    "ECDH-ES+A256KW",
    "A128KW",
    "A192KW",
    "A256KW",
    "A128GCMKW",
    "A192GCMKW",
    "A256GCMKW",
    "dir",
];

/// The password-based key-management algorithms (RFC 7518 §4.8).
const PBES2_ALGS: [&str; 3] = [
    "PBES2-HS256+A128KW",
    "PBES2-HS384+A192KW",
    "PBES2-HS512+A256KW",
];

fn check_alg(alg: &str, opts: &Options) -> Result<(), Error> {
    if !(KEY_ALGS.contains(&alg) || PBES2_ALGS.contains(&alg) || alg == "RSA1_5") {
        return Err(Error::Unsupported(format!(
            "unsupported JWE alg \"{}\"",
            crate::output::escape(alg)
        )));
    }
    if alg == "RSA1_5" && !opts.allow_rsa1_5 {
        return Err(Error::Unsupported(
            "the JWE uses RSA1_5 (PKCS#1 v1.5 key transport, open to padding-oracle attacks); jwkit decrypts it only with --insecure".into(),
        ));
    }
    Ok(())
}

/// The content encryption key for one recipient, then the content.
fn decrypt_with(
    p: &Parsed,
    r: &Recipient,
    header: &Map<String, Value>,
    alg: &str,
    enc: Enc,
    key: &DecryptKey,
    opts: &Options,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let cek = content_key(r, header, alg, enc, key, opts)?;
    if cek.len() != enc.key_len() {
        return Err(Error::Failed);
    }
    let mut aad = p.protected_b64.clone().into_bytes();
    if let Some(extra) = &p.aad_b64 {
        aad.push(b'.');
        aad.extend_from_slice(extra.as_bytes());
    }
    let plain = decrypt_content(enc, &cek, &p.iv, &p.ciphertext, &p.tag, &aad)?;
    match header.get("zip") {
        None => Ok(plain),
        Some(Value::String(z)) if z == "DEF" => inflate(&plain, opts.max_inflated),
        Some(other) => Err(Error::Unsupported(format!(
            "unsupported JWE zip {}",
            crate::output::escape(&other.to_string())
        ))),
    }
}

fn inflate(data: &[u8], max: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let mut d = flate2::read::DeflateDecoder::new(data).take(max as u64 + 1);
    d.read_to_end(&mut out)
        .map_err(|_| malformed("the JWE's compressed plaintext is not DEFLATE"))?;
    if out.len() > max {
        return Err(malformed(format!(
            "the JWE's plaintext inflates beyond {max} bytes (a compression bomb?)"
        )));
    }
    Ok(Zeroizing::new(out))
}

fn content_key(
    r: &Recipient,
    header: &Map<String, Value>,
    alg: &str,
    enc: Enc,
    key: &DecryptKey,
    opts: &Options,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let ek = &r.encrypted_key;
    match (&key.secret, alg) {
        (Secret::Rsa { key: k, .. }, "RSA1_5") => {
            // RFC 7516 §11.5 / RFC 3218: a random CEK stands in for a failed unwrap, so a
            // padding failure and a tag failure look alike.
            let k = rsa::Pkcs1PrivateDecryptingKey::new(k.clone()).map_err(|_| Error::Failed)?;
            let mut out = vec![0u8; k.key_size_bytes()];
            let mut fake = vec![0u8; enc.key_len()];
            aws_lc_rs::rand::fill(&mut fake).map_err(|_| Error::Failed)?;
            match k.decrypt(ek, &mut out) {
                Ok(cek) if cek.len() == enc.key_len() => Ok(Zeroizing::new(cek.to_vec())),
                _ => Ok(Zeroizing::new(fake)),
            }
        }
        (Secret::Rsa { key: k, .. }, _) => {
            let oaep = oaep(alg).ok_or(Error::Failed)?;
            let k = rsa::OaepPrivateDecryptingKey::new(k.clone()).map_err(|_| Error::Failed)?;
            let mut out = vec![0u8; k.min_output_size()];
            let cek = k
                .decrypt(oaep, ek, &mut out, None)
                .map_err(|_| Error::Failed)?;
            Ok(Zeroizing::new(cek.to_vec()))
        }
        (
            Secret::Agreement {
                crv, key: private, ..
            },
            _,
        ) => {
            let epk = match header.get("epk") {
                Some(Value::Object(e)) => e,
                _ => return Err(malformed("the JWE header has no \"epk\" object")),
            };
            let (direct, wrap_len) = match alg {
                "ECDH-ES" => (true, enc.key_len()),
                "ECDH-ES+A128KW" => (false, 16),
                "ECDH-ES+A192KW" => (false, 24),
                "ECDH-ES+A256KW" => (false, 32),
                _ => return Err(Error::Failed),
            };
            let z = ecdh(crv, private, epk)?;
            let algorithm_id = if direct {
                header_str(header, "enc")?
            } else {
                alg
            };
            let apu = header_b64(header, "apu")?.unwrap_or_default();
            let apv = header_b64(header, "apv")?.unwrap_or_default();
            let derived = concat_kdf(&z, algorithm_id, &apu, &apv, wrap_len)?;
            if direct {
                if !ek.is_empty() {
                    return Err(malformed(
                        "ECDH-ES (direct key agreement) takes an empty encrypted key",
                    ));
                }
                Ok(derived)
            } else {
                unwrap(&derived, ek)
            }
        }
        (Secret::Oct(k), "dir") => {
            if !ek.is_empty() {
                return Err(malformed(
                    "dir (direct encryption) takes an empty encrypted key",
                ));
            }
            Ok(k.clone())
        }
        (Secret::Oct(k), "A128KW" | "A192KW" | "A256KW") => {
            if k.len() != kw_len(alg) {
                return Err(Error::Failed);
            }
            unwrap(k, ek)
        }
        (Secret::Oct(k), "A128GCMKW" | "A192GCMKW" | "A256GCMKW") => {
            if k.len() != kw_len(alg) {
                return Err(Error::Failed);
            }
            let iv = header_b64(header, "iv")?
                .ok_or_else(|| malformed("the JWE header has no \"iv\" for AES-GCM key wrap"))?;
            let tag = header_b64(header, "tag")?
                .ok_or_else(|| malformed("the JWE header has no \"tag\" for AES-GCM key wrap"))?;
            gcm_open(k, &iv, ek, &tag, b"")
        }
        (Secret::Password(pw), _) => {
            let (hash, len) = match alg {
                "PBES2-HS256+A128KW" => (pbkdf2::PBKDF2_HMAC_SHA256, 16),
                "PBES2-HS384+A192KW" => (pbkdf2::PBKDF2_HMAC_SHA384, 24),
                "PBES2-HS512+A256KW" => (pbkdf2::PBKDF2_HMAC_SHA512, 32),
                _ => return Err(Error::Failed),
            };
            let p2s = header_b64(header, "p2s")?
                .ok_or_else(|| malformed("the JWE header has no \"p2s\""))?;
            if p2s.len() < 8 {
                return Err(malformed(
                    "the JWE's p2s is shorter than 8 bytes (RFC 7518 §4.8.1.1)",
                ));
            }
            let p2c = match header.get("p2c") {
                Some(Value::Number(n)) => n
                    .as_u64()
                    .ok_or_else(|| malformed("the JWE's p2c is not a positive integer"))?,
                _ => return Err(malformed("the JWE header has no numeric \"p2c\"")),
            };
            if p2c == 0 {
                return Err(malformed("the JWE's p2c is 0"));
            }
            if p2c > opts.max_p2c {
                return Err(Error::Unsupported(format!(
                    "the JWE's p2c is {p2c}, over the cap of {} PBKDF2 iterations",
                    opts.max_p2c
                )));
            }
            let mut salt = alg.as_bytes().to_vec();
            salt.push(0);
            salt.extend_from_slice(&p2s);
            let mut kek = Zeroizing::new(vec![0u8; len]);
            let rounds = std::num::NonZeroU32::new(u32::try_from(p2c).unwrap_or(u32::MAX))
                .ok_or(Error::Failed)?;
            pbkdf2::derive(hash, rounds, &salt, pw, &mut kek);
            unwrap(&kek, ek)
        }
        _ => Err(Error::Failed),
    }
}

/// JWA's Concat KDF (RFC 7518 §4.6.2): NIST SP 800-56C's single-step KDF with SHA-256, over
/// AlgorithmID, PartyUInfo and PartyVInfo (each length-prefixed) and the key length in bits.
fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut info = Vec::new();
    for part in [algorithm_id.as_bytes(), apu, apv] {
        info.extend_from_slice(&(part.len() as u32).to_be_bytes());
        info.extend_from_slice(part);
    }
    info.extend_from_slice(&((len * 8) as u32).to_be_bytes());
    let mut derived = Zeroizing::new(vec![0u8; len]);
    kdf::sskdf_digest(
        kdf::get_sskdf_digest_algorithm(kdf::SskdfDigestAlgorithmId::Sha256)
            .ok_or(Error::Failed)?,
        z,
        &info,
        &mut derived,
    )
    .map_err(|_| Error::Failed)?;
    Ok(derived)
}

/// The kind of key a JWE key-management algorithm takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA1_5, RSA-OAEP, RSA-OAEP-256/384/512.
    Rsa,
    /// ECDH-ES and ECDH-ES+A*KW: P-256, P-384, P-521 or X25519.
    Agreement,
    /// A symmetric key: of this many bytes (A*KW, A*GCMKW), or for `dir` any content
    /// encryption's key length (`DIR_KEY_LENGTHS`).
    Oct(Option<usize>),
}

/// The key lengths of the content encryptions, which a `dir` key must have one of.
pub const DIR_KEY_LENGTHS: [usize; 5] = [16, 24, 32, 48, 64];

/// The kind of key `alg` takes; None for PBES2 (a password) and for a name that is no JWE
/// key-management algorithm.
pub fn key_kind(alg: &str) -> Option<KeyKind> {
    Some(match alg {
        "RSA1_5" | "RSA-OAEP" | "RSA-OAEP-256" | "RSA-OAEP-384" | "RSA-OAEP-512" => KeyKind::Rsa,
        "ECDH-ES" | "ECDH-ES+A128KW" | "ECDH-ES+A192KW" | "ECDH-ES+A256KW" => KeyKind::Agreement,
        "A128KW" | "A192KW" | "A256KW" | "A128GCMKW" | "A192GCMKW" | "A256GCMKW" => {
            KeyKind::Oct(Some(kw_len(alg)))
        }
        "dir" => KeyKind::Oct(None),
        _ => return None,
    })
}

fn kw_len(alg: &str) -> usize {
    if alg.starts_with("A128") {
        16
    } else if alg.starts_with("A192") {
        24
    } else {
        32
    }
}

/// AES key unwrap (RFC 3394) with a 128-, 192- or 256-bit key-encryption key.
fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(Error::Failed);
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let n = match kek.len() {
        16 | 32 => {
            let cipher = if kek.len() == 16 {
                &key_wrap::AES_128
            } else {
                &key_wrap::AES_256
            };
            let k = KeyEncryptionKey::new(cipher, kek).map_err(|_| Error::Failed)?;
            k.unwrap(wrapped, &mut out)
                .map_err(|_| Error::Failed)?
                .len()
        }
        24 => {
            // aws-lc has no 192-bit key wrap: RustCrypto's aes-kw, for this only.
            let k = aes_kw::KekAes192::try_from(kek).map_err(|_| Error::Failed)?;
            let cek = k.unwrap_vec(wrapped).map_err(|_| Error::Failed)?;
            out[..cek.len()].copy_from_slice(&cek);
            cek.len()
        }
        _ => return Err(Error::Failed),
    };
    out.truncate(n);
    Ok(out)
}

/// The OAEP parameters of an RSA-OAEP algorithm name.
fn oaep(alg: &str) -> Option<&'static rsa::OaepAlgorithm> {
    Some(match alg {
        "RSA-OAEP" => &rsa::OAEP_SHA1_MGF1SHA1,
        "RSA-OAEP-256" => &rsa::OAEP_SHA256_MGF1SHA256,
        "RSA-OAEP-384" => &rsa::OAEP_SHA384_MGF1SHA384,
        "RSA-OAEP-512" => &rsa::OAEP_SHA512_MGF1SHA512,
        _ => return None,
    })
}

/// An AES-GCM key of 128, 192 or 256 bits.
fn gcm_key(key: &[u8]) -> Result<LessSafeKey, Error> {
    let alg = match key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        32 => &aead::AES_256_GCM,
        _ => return Err(Error::Failed),
    };
    Ok(LessSafeKey::new(
        UnboundKey::new(alg, key).map_err(|_| Error::Failed)?,
    ))
}

/// The AES-CBC-HMAC-SHA2 tag (RFC 7518 §5.2.2.1): HMAC over AAD, IV, ciphertext and the AAD's
/// length in bits, truncated to the MAC key's length (the hash follows from it).
fn cbc_hs_tag(mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let hash = match mac_key.len() {
        16 => hmac::HMAC_SHA256,
        24 => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hash, mac_key));
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.update(&((aad.len() as u64) * 8).to_be_bytes());
    ctx.sign().as_ref()[..mac_key.len()].to_vec()
}

fn gcm_open(
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    if tag.len() != 16 {
        return Err(Error::Failed);
    }
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| Error::Failed)?;
    let k = gcm_key(key)?;
    let mut in_out = Zeroizing::new(Vec::with_capacity(ciphertext.len() + 16));
    in_out.extend_from_slice(ciphertext);
    in_out.extend_from_slice(tag);
    let n = k
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| Error::Failed)?
        .len();
    in_out.truncate(n);
    Ok(in_out)
}

fn decrypt_content(
    enc: Enc,
    cek: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    match enc {
        Enc::Gcm(_) => {
            if iv.len() != 12 {
                return Err(Error::Failed);
            }
            gcm_open(cek, iv, ciphertext, tag, aad)
        }
        Enc::CbcHs(n) => {
            let half = n / 2;
            let (mac_key, enc_key) = cek.split_at(half);
            if iv.len() != 16 || tag.len() != half {
                return Err(Error::Failed);
            }
            let mac = cbc_hs_tag(mac_key, aad, iv, ciphertext);
            if constant_time::verify_slices_are_equal(&mac, tag).is_err() {
                return Err(Error::Failed);
            }
            let cipher = match half {
                16 => &cipher::AES_128,
                24 => &cipher::AES_192,
                _ => &cipher::AES_256,
            };
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(cipher, enc_key).map_err(|_| Error::Failed)?,
            )
            .map_err(|_| Error::Failed)?;
            let iv: [u8; 16] = iv.try_into().map_err(|_| Error::Failed)?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let n = key
                .decrypt(
                    &mut buf,
                    cipher::DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from(iv)),
                )
                .map_err(|_| Error::Failed)?
                .len();
            buf.truncate(n);
            Ok(buf)
        }
    }
}

/// The shared secret of ECDH-ES between `private` and the header's `epk` (which must be on the
/// same curve; aws-lc refuses points not on it).
fn ecdh(
    crv: &str,
    private: &agreement::PrivateKey,
    epk: &Map<String, Value>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let member = |name: &str| -> Result<Vec<u8>, Error> {
        match epk.get(name) {
            Some(Value::String(s)) => b64_part(s, &format!("epk {name}")),
            _ => Err(malformed(format!("the JWE's epk has no \"{name}\""))),
        }
    };
    let epk_crv = match epk.get("crv") {
        Some(Value::String(c)) => c.as_str(),
        _ => return Err(malformed("the JWE's epk has no \"crv\"")),
    };
    if epk_crv != crv {
        return Err(Error::Failed);
    }
    let (alg, point) = match crv {
        "X25519" => (&agreement::X25519, member("x")?),
        _ => {
            let (alg, len) = match crv {
                "P-256" => (&agreement::ECDH_P256, 32),
                "P-384" => (&agreement::ECDH_P384, 48),
                "P-521" => (&agreement::ECDH_P521, 66),
                _ => return Err(Error::Failed),
            };
            let (x, y) = (member("x")?, member("y")?);
            if x.len() != len || y.len() != len {
                return Err(Error::Failed);
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (alg, point)
        }
    };
    let peer = agreement::UnparsedPublicKey::new(alg, point);
    agreement::agree(private, peer, Error::Failed, |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })
}

// ---- keys ------------------------------------------------------------------------------------

/// Decryption keys from a file's bytes: a JWK, a JWK set, or a PEM/DER private key.
pub fn load_keys(bytes: &[u8]) -> Result<Vec<DecryptKey>, String> {
    let text = std::str::from_utf8(bytes).unwrap_or("").trim();
    if text.starts_with('{') {
        let o: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        if let Some(keys) = o.get("keys") {
            let list = keys
                .as_array()
                .ok_or_else(|| "\"keys\" is not an array".to_string())?;
            let mut out = Vec::new();
            for k in list {
                let obj = k
                    .as_object()
                    .ok_or_else(|| "a member of \"keys\" is not an object".to_string())?;
                // Keys that cannot decrypt (public, or signing-only) are passed over in a set.
                if let Ok(Some(key)) = from_jwk(obj) {
                    out.push(key);
                }
            }
            if out.is_empty() {
                return Err("the key set holds no private key that can decrypt".into());
            }
            return Ok(out);
        }
        return match from_jwk(&o)? {
            Some(k) => Ok(vec![k]),
            None => Err("the JWK is a public key: decryption needs the private key".into()),
        };
    }
    let key = super::parse::load_key(bytes, None).map_err(|e| e.to_string())?;
    from_checked(&key, None, None)?
        .map(|k| vec![k])
        .ok_or_else(|| "the file holds a public key: decryption needs the private key".into())
}

fn str_of<'a>(o: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match o.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("the JWK's \"{name}\" is not a string")),
    }
}

fn b64_of(o: &Map<String, Value>, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    str_of(o, name)?
        .map(|s| {
            b64::decode(s)
                .map(Zeroizing::new)
                .map_err(|e| format!("the JWK's \"{name}\" is not base64url: {e}"))
        })
        .transpose()
}

/// What every JWE key reads from its JWK first: kid, alg and kty, after refusing a key kept
/// for signatures (`use: sig`) or whose `key_ops` name neither of `ops` nor deriveKey/Bits.
/// `verb` ("decrypt", "encrypt") names the use in the messages.
fn jwk_for<'a>(
    o: &'a Map<String, Value>,
    verb: &str,
    ops: [&str; 2],
) -> Result<(Option<String>, Option<String>, &'a str), String> {
    let kid = str_of(o, "kid")?.map(str::to_string);
    let alg = str_of(o, "alg")?.map(str::to_string);
    if str_of(o, "use")? == Some("sig") {
        return Err(format!(
            "the JWK is a signing key (use: sig): it never {verb}s"
        ));
    }
    if let Some(list) = o.get("key_ops") {
        let list = list
            .as_array()
            .ok_or_else(|| "the JWK's key_ops is not an array".to_string())?;
        let allowed = |op: &str| ops.contains(&op) || matches!(op, "deriveKey" | "deriveBits");
        if !list.iter().any(|v| v.as_str().is_some_and(allowed)) {
            return Err(format!("the JWK's key_ops allow no {verb}ion"));
        }
    }
    let kty = str_of(o, "kty")?.ok_or_else(|| "the JWK has no \"kty\"".to_string())?;
    Ok((kid, alg, kty))
}

/// An oct JWK's key, which may not be empty.
fn oct_k(o: &Map<String, Value>) -> Result<Zeroizing<Vec<u8>>, String> {
    let k = b64_of(o, "k")?.ok_or_else(|| "the oct JWK has no \"k\"".to_string())?;
    if k.is_empty() {
        return Err("the oct JWK's \"k\" is empty".into());
    }
    Ok(k)
}

/// A decryption key from a JWK; None for a public key. A key marked `use: sig`, or whose
/// `key_ops` allow neither decrypt nor unwrapKey, never decrypts.
pub fn from_jwk(o: &Map<String, Value>) -> Result<Option<DecryptKey>, String> {
    let (kid, alg, kty) = jwk_for(o, "decrypt", ["decrypt", "unwrapKey"])?;
    let secret = match kty {
        "oct" => Secret::Oct(oct_k(o)?),
        "EC" | "RSA" | "OKP" => {
            // jwk_for read kid, alg, use and key_ops; the checked key loader does the rest
            // (curve, sizes, an X25519 key's public half matching its private one).
            let mut plain = o.clone();
            for m in ["alg", "use", "key_ops", "kid"] {
                plain.remove(m);
            }
            let key = super::parse::from_jwk(&plain).map_err(|e| e.to_string())?;
            return from_checked(&key, kid, alg);
        }
        other => {
            return Err(format!(
                "unsupported kty \"{}\" for decryption",
                crate::output::escape(other)
            ));
        }
    };
    Ok(Some(DecryptKey { kid, alg, secret }))
}

/// A decryption key from a checked (signing-model) key: RSA and EC private keys.
fn from_checked(
    key: &super::key::Key,
    kid: Option<String>,
    alg: Option<String>,
) -> Result<Option<DecryptKey>, String> {
    use super::key::{Material, PublicMaterial, SecretMaterial};
    let kid = kid.or_else(|| key.meta.kid.clone());
    let alg = alg.or_else(|| key.meta.enc_alg.clone());
    let secret = match &key.material {
        Material::Asymmetric {
            public: PublicMaterial::X25519 { .. },
            secret: Some(SecretMaterial::X25519 { d }),
        } => Secret::Agreement {
            crv: "X25519",
            key: agreement::PrivateKey::from_private_key(&agreement::X25519, d)
                .map_err(|_| "the X25519 private key is not 32 bytes".to_string())?,
            d: d.clone(),
        },
        Material::Asymmetric { secret: None, .. } => return Ok(None),
        Material::Asymmetric {
            public: PublicMaterial::Rsa { .. },
            ..
        } => {
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            Secret::Rsa {
                key: rsa::PrivateDecryptingKey::from_pkcs8(&der)
                    .map_err(|_| "the RSA key cannot decrypt".to_string())?,
                pkcs8: der,
            }
        }
        Material::Asymmetric {
            public: PublicMaterial::Ec { curve, .. },
            secret: Some(SecretMaterial::Ec { d }),
        } => {
            let (crv, alg) = match curve.as_str() {
                "P-256" => ("P-256", &agreement::ECDH_P256),
                "P-384" => ("P-384", &agreement::ECDH_P384),
                "P-521" => ("P-521", &agreement::ECDH_P521),
                other => return Err(format!("an EC key on {other} does not decrypt")),
            };
            Secret::Agreement {
                crv,
                key: agreement::PrivateKey::from_private_key(alg, d)
                    .map_err(|_| "the EC private key is not valid".to_string())?,
                d: d.clone(),
            }
        }
        Material::Asymmetric { .. } => {
            return Err("an Ed25519 key signs; it does not decrypt (X25519 does)".into());
        }
        Material::Hmac { k } => Secret::Oct(k.clone()),
    };
    Ok(Some(DecryptKey { kid, alg, secret }))
}

// ---- encryption ------------------------------------------------------------------------------

/// What a JWE may be encrypted to: a public key (or the public half of a private one), or a
/// shared symmetric key.
pub enum Target {
    Rsa(rsa::PublicEncryptingKey),
    /// An EC point (uncompressed) or an X25519 public key, for ECDH-ES.
    Agreement {
        crv: &'static str,
        public: Vec<u8>,
    },
    Oct(Zeroizing<Vec<u8>>),
}

/// An encryption key and what its JWK says of itself.
pub struct EncryptKey {
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub target: Target,
}

impl EncryptKey {
    /// The key-management algorithm used when none is asked for: the key's own `alg`, else by
    /// its type: RSA-OAEP-256, ECDH-ES+A256KW, or AES key wrap of the key's size.
    pub fn default_alg(&self) -> String {
        if let Some(a) = &self.alg {
            return a.clone();
        }
        match &self.target {
            Target::Rsa(_) => "RSA-OAEP-256".into(),
            Target::Agreement { .. } => "ECDH-ES+A256KW".into(),
            Target::Oct(k) => match k.len() {
                16 => "A128KW".into(),
                24 => "A192KW".into(),
                _ => "A256KW".into(),
            },
        }
    }
}

/// The content encryption used when none is asked for.
pub const DEFAULT_ENC: &str = "A256GCM";

/// Encryption keys from a file's bytes: a JWK (public or private), a JWK set (the first key
/// that can take an encryption, or the one whose kid is `kid`), or a PEM/DER key.
pub fn load_encrypt_key(bytes: &[u8], kid: Option<&str>) -> Result<EncryptKey, String> {
    let text = std::str::from_utf8(bytes).unwrap_or("").trim();
    if text.starts_with('{') {
        let o: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
        if let Some(keys) = o.get("keys") {
            let list = keys
                .as_array()
                .ok_or_else(|| "\"keys\" is not an array".to_string())?;
            let mut last = "the key set is empty".to_string();
            for k in list {
                let Some(obj) = k.as_object() else { continue };
                if kid.is_some() && obj.get("kid").and_then(Value::as_str) != kid {
                    continue;
                }
                match encrypt_key_from_jwk(obj) {
                    Ok(key) => return Ok(key),
                    Err(e) => last = e,
                }
            }
            return Err(match kid {
                Some(k) => format!(
                    "no key in the set has kid {}: {last}",
                    crate::output::escape(k)
                ),
                None => format!("no key in the set can encrypt: {last}"),
            });
        }
        return encrypt_key_from_jwk(&o);
    }
    let key = super::parse::load_key(bytes, None).map_err(|e| e.to_string())?;
    from_checked_public(&key, None, None)
}

/// An encryption key from a JWK. A `use: sig` key, or one whose `key_ops` allow neither
/// encrypt nor wrapKey, never encrypts.
pub fn encrypt_key_from_jwk(o: &Map<String, Value>) -> Result<EncryptKey, String> {
    let (kid, alg, kty) = jwk_for(o, "encrypt", ["encrypt", "wrapKey"])?;
    let target = match kty {
        "oct" => Target::Oct(oct_k(o)?),
        "EC" | "RSA" | "OKP" => {
            let mut public = o.clone();
            for m in [
                "alg", "use", "key_ops", "kid", "d", "p", "q", "dp", "dq", "qi",
            ] {
                public.remove(m);
            }
            let key = super::parse::from_jwk(&public).map_err(|e| e.to_string())?;
            return from_checked_public(&key, kid, alg);
        }
        other => {
            return Err(format!(
                "unsupported kty \"{}\" for encryption",
                crate::output::escape(other)
            ));
        }
    };
    Ok(EncryptKey { kid, alg, target })
}

fn from_checked_public(
    key: &super::key::Key,
    kid: Option<String>,
    alg: Option<String>,
) -> Result<EncryptKey, String> {
    use super::key::{Material, PublicMaterial};
    let kid = kid.or_else(|| key.meta.kid.clone());
    let alg = alg.or_else(|| key.meta.enc_alg.clone());
    let target = match &key.material {
        Material::Hmac { k } => Target::Oct(k.clone()),
        Material::Asymmetric { public, .. } => match public {
            PublicMaterial::Rsa { .. } => {
                let der = key
                    .public()
                    .and_then(|p| p.to_spki_der())
                    .map_err(|e| e.to_string())?;
                Target::Rsa(
                    rsa::PublicEncryptingKey::from_der(&der)
                        .map_err(|_| "the RSA key cannot encrypt".to_string())?,
                )
            }
            PublicMaterial::Ec { curve, x, y } => {
                let crv = match curve.as_str() {
                    "P-256" => "P-256",
                    "P-384" => "P-384",
                    "P-521" => "P-521",
                    other => return Err(format!("an EC key on {other} does not encrypt")),
                };
                let mut point = vec![4u8];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Target::Agreement { crv, public: point }
            }
            PublicMaterial::X25519 { x } => Target::Agreement {
                crv: "X25519",
                public: x.clone(),
            },
            PublicMaterial::Ed25519 { .. } => {
                return Err("an Ed25519 key signs; it does not encrypt (X25519 does)".into());
            }
        },
    };
    Ok(EncryptKey { kid, alg, target })
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut out).map_err(|_| Error::Failed)?;
    Ok(out)
}

fn agreement_alg(crv: &str) -> Result<&'static agreement::Algorithm, Error> {
    Ok(match crv {
        "P-256" => &agreement::ECDH_P256,
        "P-384" => &agreement::ECDH_P384,
        "P-521" => &agreement::ECDH_P521,
        "X25519" => &agreement::X25519,
        _ => return Err(Error::Failed),
    })
}

/// AES key wrap (RFC 3394) with a 128-, 192- or 256-bit key-encryption key.
fn wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>, Error> {
    match kek.len() {
        16 | 32 => {
            let cipher = if kek.len() == 16 {
                &key_wrap::AES_128
            } else {
                &key_wrap::AES_256
            };
            let k = KeyEncryptionKey::new(cipher, kek).map_err(|_| Error::Failed)?;
            let mut out = vec![0u8; cek.len() + 8];
            let n = k.wrap(cek, &mut out).map_err(|_| Error::Failed)?.len();
            out.truncate(n);
            Ok(out)
        }
        24 => {
            let k = aes_kw::KekAes192::try_from(kek).map_err(|_| Error::Failed)?;
            k.wrap_vec(cek).map_err(|_| Error::Failed)
        }
        _ => Err(Error::Failed),
    }
}

/// Encrypts `plaintext` to `key` as a compact JWE, with `extra` header members (`cty`...).
pub fn encrypt(
    plaintext: &[u8],
    key: &EncryptKey,
    alg: &str,
    enc_name: &str,
    extra: Map<String, Value>,
) -> Result<String, Error> {
    let enc = Enc::parse(enc_name)?;
    if alg == "RSA1_5" {
        return Err(Error::Unsupported(
            "jwkit never encrypts with RSA1_5 (open to padding-oracle attacks); use RSA-OAEP-256"
                .into(),
        ));
    }
    check_alg(alg, &Options::default())?;
    if alg.starts_with("PBES2") {
        return Err(Error::Unsupported(
            "jwkit encrypts to keys; PBES2 (a password) decrypts only".into(),
        ));
    }
    let mut header = Map::new();
    header.insert("alg".into(), alg.into());
    header.insert("enc".into(), enc_name.into());
    if let Some(kid) = &key.kid {
        header.insert("kid".into(), kid.clone().into());
    }
    for (k, v) in extra {
        header.entry(k).or_insert(v);
    }
    let mismatch = || {
        Error::Unsupported(format!(
            "the key cannot be used with JWE alg {}",
            crate::output::escape(alg)
        ))
    };
    let (cek, encrypted_key) = match (&key.target, alg) {
        (Target::Rsa(k), _) if alg.starts_with("RSA-OAEP") => {
            let oaep = oaep(alg).ok_or_else(mismatch)?;
            let k = rsa::OaepPublicEncryptingKey::new(k.clone()).map_err(|_| Error::Failed)?;
            let cek = random(enc.key_len())?;
            let mut out = vec![0u8; k.ciphertext_size()];
            let n = k
                .encrypt(oaep, &cek, &mut out, None)
                .map_err(|_| Error::Failed)?
                .len();
            out.truncate(n);
            (cek, out)
        }
        (Target::Agreement { crv, public }, _) if alg.starts_with("ECDH-ES") => {
            let alg_ = agreement_alg(crv)?;
            let ephemeral = agreement::PrivateKey::generate(alg_).map_err(|_| Error::Failed)?;
            let epk_public = ephemeral.compute_public_key().map_err(|_| Error::Failed)?;
            let epk_bytes = epk_public.as_ref();
            let mut epk = Map::new();
            if *crv == "X25519" {
                epk.insert("kty".into(), "OKP".into());
                epk.insert("crv".into(), "X25519".into());
                epk.insert("x".into(), b64::encode(epk_bytes).into());
            } else {
                let len = (epk_bytes.len() - 1) / 2;
                epk.insert("kty".into(), "EC".into());
                epk.insert("crv".into(), (*crv).into());
                epk.insert("x".into(), b64::encode(&epk_bytes[1..=len]).into());
                epk.insert("y".into(), b64::encode(&epk_bytes[1 + len..]).into());
            }
            header.insert("epk".into(), Value::Object(epk));
            let peer = agreement::UnparsedPublicKey::new(alg_, public.clone());
            let z = agreement::agree(&ephemeral, peer, Error::Failed, |z| {
                Ok(Zeroizing::new(z.to_vec()))
            })?;
            match alg {
                "ECDH-ES" => (
                    concat_kdf(&z, enc_name, b"", b"", enc.key_len())?,
                    Vec::new(),
                ),
                "ECDH-ES+A128KW" | "ECDH-ES+A192KW" | "ECDH-ES+A256KW" => {
                    let kek = concat_kdf(&z, alg, b"", b"", kw_len(&alg["ECDH-ES+".len()..]))?;
                    let cek = random(enc.key_len())?;
                    let ek = wrap(&kek, &cek)?;
                    (cek, ek)
                }
                _ => return Err(mismatch()),
            }
        }
        (Target::Oct(k), "dir") => {
            if k.len() != enc.key_len() {
                return Err(Error::Unsupported(format!(
                    "dir with {enc_name} needs a {}-byte key; this one has {}",
                    enc.key_len(),
                    k.len()
                )));
            }
            (k.clone(), Vec::new())
        }
        (
            Target::Oct(k),
            "A128KW" | "A192KW" | "A256KW" | "A128GCMKW" | "A192GCMKW" | "A256GCMKW",
        ) => {
            if k.len() != kw_len(alg) {
                return Err(Error::Unsupported(format!(
                    "{alg} needs a {}-byte key; this one has {}",
                    kw_len(alg),
                    k.len()
                )));
            }
            let cek = random(enc.key_len())?;
            if alg.ends_with("GCMKW") {
                let iv = random(12)?;
                let (ek, tag) = gcm_seal(k, &iv, &cek, b"")?;
                header.insert("iv".into(), b64::encode(iv.as_slice()).into());
                header.insert("tag".into(), b64::encode(&tag).into());
                (cek, ek)
            } else {
                let ek = wrap(k, &cek)?;
                (cek, ek)
            }
        }
        _ => return Err(mismatch()),
    };
    let protected = serde_json::to_string(&header).map_err(|_| Error::Failed)?;
    let protected_b64 = b64::encode(protected.as_bytes());
    let aad = protected_b64.as_bytes();
    let (iv, ciphertext, tag) = match enc {
        Enc::Gcm(_) => {
            let iv = random(12)?;
            let (ct, tag) = gcm_seal(&cek, &iv, plaintext, aad)?;
            (iv.to_vec(), ct, tag)
        }
        Enc::CbcHs(n) => {
            let half = n / 2;
            let (mac_key, enc_key) = cek.split_at(half);
            let cipher = match half {
                16 => &cipher::AES_128,
                24 => &cipher::AES_192,
                _ => &cipher::AES_256,
            };
            let key = cipher::PaddedBlockEncryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(cipher, enc_key).map_err(|_| Error::Failed)?,
            )
            .map_err(|_| Error::Failed)?;
            let mut buf = plaintext.to_vec();
            let context = key.encrypt(&mut buf).map_err(|_| Error::Failed)?;
            let iv: &[u8] = (&context).try_into().map_err(|_| Error::Failed)?;
            let iv = iv.to_vec();
            let tag = cbc_hs_tag(mac_key, aad, &iv, &buf);
            (iv, buf, tag)
        }
    };
    Ok(format!(
        "{protected_b64}.{}.{}.{}.{}",
        b64::encode(&encrypted_key),
        b64::encode(&iv),
        b64::encode(&ciphertext),
        b64::encode(&tag)
    ))
}

fn gcm_seal(
    key: &[u8],
    iv: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| Error::Failed)?;
    let k = gcm_key(key)?;
    let mut buf = plaintext.to_vec();
    let tag = k
        .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| Error::Failed)?;
    Ok((buf, tag.as_ref().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oct(k: &[u8]) -> (EncryptKey, DecryptKey) {
        let jwk = serde_json::json!({"kty": "oct", "k": b64::encode(k)});
        let o = jwk.as_object().expect("object");
        (
            encrypt_key_from_jwk(o).expect("encrypt key"),
            from_jwk(o).expect("key").expect("private"),
        )
    }

    #[test]
    fn a_general_json_jwe_keeps_per_recipient_members_inside_recipients() {
        let (e, d) = oct(&[7u8; 32]);
        let compact = encrypt(b"hello", &e, "A256KW", "A256GCM", Map::new()).expect("encrypt");
        let p: Vec<&str> = compact.split('.').collect();
        let general = |extra: (&str, Value)| {
            let mut o = serde_json::json!({
                "protected": p[0],
                "recipients": [{"encrypted_key": p[1]}],
                "iv": p[2], "ciphertext": p[3], "tag": p[4],
            });
            o[extra.0] = extra.1;
            o.to_string()
        };
        let opts = Options::default();
        let ok = general(("unprotected", serde_json::json!({"kid": "k"})));
        assert_eq!(
            decrypt(&ok, std::slice::from_ref(&d), &opts)
                .expect("decrypts")
                .plaintext
                .as_slice(),
            b"hello"
        );
        for bad in [
            general(("header", serde_json::json!({"kid": "k"}))),
            general(("encrypted_key", Value::from(p[1]))),
        ] {
            assert!(matches!(
                decrypt(&bad, std::slice::from_ref(&d), &opts),
                Err(Error::Malformed(_))
            ));
        }
    }

    #[test]
    fn every_failure_with_a_key_at_work_is_one_error() {
        let (e, _) = oct(&[7u8; 32]);
        let (_, wrong) = oct(&[8u8; 32]);
        let token = encrypt(b"x", &e, "A256KW", "A128CBC-HS256", Map::new()).expect("encrypt");
        let opts = Options::default();
        assert_eq!(decrypt(&token, &[wrong], &opts).err(), Some(Error::Failed));
        let (_, right) = oct(&[7u8; 32]);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[4] = b64::encode([0u8; 16]);
        assert_eq!(
            decrypt(&parts.join("."), &[right], &opts).err(),
            Some(Error::Failed)
        );
    }
}
