//! What a key is: RSA, EC, Ed25519 or an HMAC secret, with its checks (size, curve membership,
//! private/public consistency), its JWK and PEM forms, and its RFC 7638 thumbprint.
//! `PublicKey` is a separate type with no room for private members: every public output uses it.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPrivateKeyBin, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use serde_json::{Map, Value};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Alg, Curve, Error, Hash, b64, roca, weak};

/// Smallest RSA modulus jwkit loads (DESIGN.md §7).
pub const MIN_RSA_BITS: usize = 2048;

/// Optional JWK members that travel with a key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMeta {
    pub kid: Option<String>,
    pub alg: Option<Alg>,
    /// `sig`, or `enc` for an encryption key (loads, but never signs or verifies).
    pub use_: Option<String>,
    /// RFC 7517 §4.3 `key_ops`, when the JWK has it: the key signs only with "sign" in it and
    /// verifies only with "verify".
    pub key_ops: Option<Vec<String>>,
    /// A JWE key-management algorithm (RFC 7518 §4) named by the JWK's `alg`, such as
    /// RSA-OAEP-256 or A128KW: the key is then an encryption key.
    pub enc_alg: Option<String>,
}

/// The public members of an asymmetric key. No private member fits in here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicMaterial {
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Fixed-length affine coordinates.
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
    /// An X25519 public key (RFC 8037), for ECDH-ES only.
    X25519 {
        x: Vec<u8>,
    },
}

/// The private members of an asymmetric key, wiped from memory when dropped.
#[derive(Clone)]
pub(crate) enum SecretMaterial {
    Rsa {
        d: Zeroizing<Vec<u8>>,
        p: Zeroizing<Vec<u8>>,
        q: Zeroizing<Vec<u8>>,
        dp: Zeroizing<Vec<u8>>,
        dq: Zeroizing<Vec<u8>>,
        qi: Zeroizing<Vec<u8>>,
    },
    /// The scalar, fixed length.
    Ec { d: Zeroizing<Vec<u8>> },
    /// The 32-byte seed.
    Ed25519 { d: Zeroizing<Vec<u8>> },
    /// The 32-byte X25519 private key.
    X25519 { d: Zeroizing<Vec<u8>> },
}

#[derive(Clone)]
pub(crate) enum Material {
    Asymmetric {
        public: PublicMaterial,
        secret: Option<SecretMaterial>,
    },
    Hmac {
        k: Zeroizing<Vec<u8>>,
    },
}

/// The broad kind of a key, for listings and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa { bits: usize },
    Ec(Curve),
    Ed25519,
    X25519,
    Hmac { bytes: usize },
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyType::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyType::Ec(c) => write!(f, "EC {c}"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::X25519 => f.write_str("X25519"),
            KeyType::Hmac { bytes } => write!(f, "HMAC ({} bits)", bytes * 8),
        }
    }
}

/// Any key jwkit handles: public, private, or an HMAC secret. Constructed only through
/// checks, so a `Key` in hand is well-formed, strong enough and self-consistent.
#[derive(Clone)]
pub struct Key {
    pub meta: KeyMeta,
    pub(crate) material: Material,
    /// The aws-lc key pair built when a private key was checked, kept so signing does not
    /// parse and validate the key a second time.
    pair: Option<Arc<SigningPair>>,
    /// An HMAC secret shorter than its hash, taken on purpose (`--insecure`): it fits every HS
    /// algorithm instead of none.
    short_secret: bool,
}

/// A public key: the public half of an asymmetric key and its metadata, nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub meta: KeyMeta,
    pub material: PublicMaterial,
}

fn bit_len(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i - 1) * 8 + (8 - be[i].leading_zeros() as usize),
        None => 0,
    }
}

pub(crate) fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let lead = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..lead.min(v.len().saturating_sub(1)));
    v
}

pub(crate) fn ec_verify_alg(curve: Curve) -> &'static sig::EcdsaVerificationAlgorithm {
    match curve {
        Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED,
        Curve::P521 => &sig::ECDSA_P521_SHA512_FIXED,
        Curve::Secp256k1 => &sig::ECDSA_P256K1_SHA256_FIXED,
    }
}

pub(crate) fn ec_signing_alg(curve: Curve) -> &'static sig::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
        Curve::Secp256k1 => &sig::ECDSA_P256K1_SHA256_FIXED_SIGNING,
    }
}

fn uncompressed_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(4);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    point
}

impl PublicMaterial {
    pub fn key_type(&self) -> KeyType {
        match self {
            PublicMaterial::Rsa { n, .. } => KeyType::Rsa { bits: bit_len(n) },
            PublicMaterial::Ec { curve, .. } => KeyType::Ec(*curve),
            PublicMaterial::Ed25519 { .. } => KeyType::Ed25519,
            PublicMaterial::X25519 { .. } => KeyType::X25519,
        }
    }

    /// Checks the public members and returns them parsed by aws-lc for `alg`, ready to verify.
    pub(crate) fn parse_for(&self, alg: Alg) -> Result<ParsedPublicKey, Error> {
        let rejected = |what: &str, e: aws_lc_rs::error::KeyRejected| {
            Error::key(format!("{what} is not a valid public key ({e})"))
        };
        match self {
            PublicMaterial::Rsa { n, e } => {
                let params: &'static sig::RsaParameters = match alg {
                    Alg::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(self.mismatch(alg)),
                };
                PublicKeyComponents { n, e }
                    .to_parsed_public_key(params)
                    .map_err(|e| rejected("the RSA key", e))
            }
            PublicMaterial::Ec { curve, x, y } => {
                if alg.curve() != Some(*curve) {
                    return Err(self.mismatch(alg));
                }
                ParsedPublicKey::new(ec_verify_alg(*curve), uncompressed_point(x, y))
                    .map_err(|_| Error::key(format!("the EC point (x, y) is not on curve {curve}")))
            }
            PublicMaterial::Ed25519 { x } => {
                if alg != Alg::EdDSA {
                    return Err(self.mismatch(alg));
                }
                ParsedPublicKey::new(&sig::ED25519, x).map_err(|e| rejected("the Ed25519 key", e))
            }
            PublicMaterial::X25519 { .. } => Err(Error::key(
                "an X25519 key is for encryption (ECDH-ES): it never signs or verifies",
            )),
        }
    }

    fn mismatch(&self, alg: Alg) -> Error {
        Error::AlgMismatch {
            alg,
            key: format!("{} key", self.key_type()),
            fits: join_algs(&self.algs()),
        }
    }

    /// Algorithms the key material fits, before any JWK `alg` narrows them.
    pub fn algs(&self) -> Vec<Alg> {
        match self {
            PublicMaterial::Rsa { .. } => Alg::ALL.into_iter().filter(|a| a.is_rsa()).collect(),
            PublicMaterial::Ec { curve, .. } => vec![curve.alg()],
            PublicMaterial::Ed25519 { .. } => vec![Alg::EdDSA],
            PublicMaterial::X25519 { .. } => vec![],
        }
    }

    /// Structural and strength checks, then aws-lc's own parse (point on curve, RSA sanity).
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self {
            PublicMaterial::Rsa { n, e } => {
                let bits = bit_len(n);
                if bits < MIN_RSA_BITS {
                    return Err(Error::key(format!(
                        "the RSA key is {bits} bits; at least {MIN_RSA_BITS} are required"
                    )));
                }
                if n.last().is_some_and(|b| b & 1 == 0) {
                    return Err(Error::key("the RSA modulus n is even"));
                }
                let e_bits = bit_len(e);
                if e_bits < 2 || e.last().is_some_and(|b| b & 1 == 0) {
                    return Err(Error::key(
                        "the RSA public exponent e must be odd and at least 3 (e = 1 makes signatures forgeable)",
                    ));
                }
                if e_bits > 33 {
                    return Err(Error::key(
                        "the RSA public exponent e is larger than 2^33 (unsupported)",
                    ));
                }
                if roca::is_vulnerable(n) {
                    return Err(Error::key(
                        "the RSA modulus has the ROCA fingerprint (CVE-2017-15361): its private key can be recovered",
                    ));
                }
                if let Some(why) = weak::rsa_modulus_weakness(n) {
                    return Err(Error::key(why));
                }
            }
            PublicMaterial::Ec { curve, x, y } => {
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return Err(Error::key(format!(
                        "EC coordinates for {curve} must be {len} bytes each (x is {}, y is {})",
                        x.len(),
                        y.len()
                    )));
                }
            }
            PublicMaterial::Ed25519 { x } => {
                if x.len() != 32 {
                    return Err(Error::key(format!(
                        "an Ed25519 public key is 32 bytes, not {}",
                        x.len()
                    )));
                }
                if let Some(why) = weak::ed25519_weakness(x) {
                    return Err(Error::key(why));
                }
            }
            PublicMaterial::X25519 { x } => {
                if x.len() != 32 {
                    return Err(Error::key(format!(
                        "an X25519 public key is 32 bytes, not {}",
                        x.len()
                    )));
                }
                return Ok(());
            }
        }
        match self.algs().first() {
            Some(&probe) => self.parse_for(probe).map(drop),
            None => Ok(()),
        }
    }

    /// RFC 7638 required members, in lexicographic order.
    fn thumbprint_input(&self) -> String {
        let (kty, members): (&str, Vec<(&str, String)>) = match self {
            PublicMaterial::Rsa { n, e } => {
                ("RSA", vec![("e", b64::encode(e)), ("n", b64::encode(n))])
            }
            PublicMaterial::Ec { curve, x, y } => (
                "EC",
                vec![
                    ("crv", curve.as_str().to_string()),
                    ("x", b64::encode(x)),
                    ("y", b64::encode(y)),
                ],
            ),
            PublicMaterial::Ed25519 { x } => (
                "OKP",
                vec![("crv", "Ed25519".to_string()), ("x", b64::encode(x))],
            ),
            PublicMaterial::X25519 { x } => (
                "OKP",
                vec![("crv", "X25519".to_string()), ("x", b64::encode(x))],
            ),
        };
        canonical_json(kty, members)
    }

    fn jwk_members(&self, out: &mut Map<String, Value>) {
        match self {
            PublicMaterial::Rsa { n, e } => {
                out.insert("n".into(), b64::encode(n).into());
                out.insert("e".into(), b64::encode(e).into());
            }
            PublicMaterial::Ec { curve, x, y } => {
                out.insert("crv".into(), curve.as_str().into());
                out.insert("x".into(), b64::encode(x).into());
                out.insert("y".into(), b64::encode(y).into());
            }
            PublicMaterial::Ed25519 { x } => {
                out.insert("crv".into(), "Ed25519".into());
                out.insert("x".into(), b64::encode(x).into());
            }
            PublicMaterial::X25519 { x } => {
                out.insert("crv".into(), "X25519".into());
                out.insert("x".into(), b64::encode(x).into());
            }
        }
    }

    fn kty(&self) -> &'static str {
        match self {
            PublicMaterial::Rsa { .. } => "RSA",
            PublicMaterial::Ec { .. } => "EC",
            PublicMaterial::Ed25519 { .. } | PublicMaterial::X25519 { .. } => "OKP",
        }
    }
}

/// `{"crv":..,"kty":..,...}` with members sorted and no white space (RFC 7638 §3).
fn canonical_json(kty: &str, mut members: Vec<(&str, String)>) -> String {
    members.push(("kty", kty.to_string()));
    members.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), Value::from(v.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn thumbprint_of(input: &str, hash: Hash) -> String {
    let alg = match hash {
        Hash::Sha256 => &digest::SHA256,
        Hash::Sha384 => &digest::SHA384,
        Hash::Sha512 => &digest::SHA512,
    };
    b64::encode(digest::digest(alg, input.as_bytes()))
}

pub(crate) fn join_algs(algs: &[Alg]) -> String {
    if algs.is_empty() {
        return "none".into();
    }
    algs.iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The JWK members a key's metadata gives. A public JWK's `key_ops` keeps only the public
/// operations (verify, encrypt, wrapKey; a private key's sign, decrypt and unwrapKey become
/// them), so a published key never claims an operation only its private half performs.
fn meta_members(meta: &KeyMeta, public: bool, out: &mut Map<String, Value>) {
    if let Some(u) = &meta.use_ {
        out.insert("use".into(), u.clone().into());
    }
    if let Some(ops) = &meta.key_ops {
        let mut list: Vec<&str> = Vec::new();
        for op in ops {
            let op = match (public, op.as_str()) {
                (true, "sign") => "verify",
                (true, "decrypt") => "encrypt",
                (true, "unwrapKey") => "wrapKey",
                (_, other) => other,
            };
            if !list.contains(&op) {
                list.push(op);
            }
        }
        out.insert("key_ops".into(), list.into());
    }
    if let Some(a) = meta.alg {
        out.insert("alg".into(), a.as_str().into());
    } else if let Some(a) = &meta.enc_alg {
        out.insert("alg".into(), a.clone().into());
    }
    if let Some(k) = &meta.kid {
        out.insert("kid".into(), k.clone().into());
    }
}

impl PublicKey {
    /// RFC 7638 thumbprint, base64url.
    pub fn thumbprint(&self, hash: Hash) -> String {
        thumbprint_of(&self.material.thumbprint_input(), hash)
    }

    /// The public JWK: `kty`, metadata, then the key members.
    pub fn to_jwk(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("kty".into(), self.material.kty().into());
        meta_members(&self.meta, true, &mut out);
        self.material.jwk_members(&mut out);
        out
    }

    /// SubjectPublicKeyInfo DER, as serialised by aws-lc.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, Error> {
        let probe = self.material.algs().first().copied().ok_or_else(|| {
            Error::key("jwkit writes an X25519 key as a JWK only; use --format jwk or jwks")
        })?;
        let parsed = self.material.parse_for(probe)?;
        parsed
            .as_der()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| Error::key("could not encode the public key as DER"))
    }

    pub fn key_type(&self) -> KeyType {
        self.material.key_type()
    }

    /// The kid, or the SHA-256 thumbprint when the key has none.
    pub fn kid_or_thumbprint(&self) -> String {
        self.meta
            .kid
            .clone()
            .unwrap_or_else(|| self.thumbprint(Hash::Sha256))
    }

    /// True for an encryption key (see `Key::is_encryption_key`).
    pub fn is_encryption_key(&self) -> bool {
        is_encryption(&self.meta, Some(&self.material))
    }

    /// Algorithms this key may be used with: its JWK `alg` if set, else all its type fits.
    pub fn algs(&self) -> Vec<Alg> {
        match self.meta.alg {
            Some(a) => vec![a],
            None => self.material.algs(),
        }
    }
}

/// An encryption key: `use: enc`, a JWE `alg`, `key_ops` with no signature operation, or an
/// X25519 key (which only agrees keys).
fn is_encryption(meta: &KeyMeta, material: Option<&PublicMaterial>) -> bool {
    meta.use_.as_deref() == Some("enc")
        || meta.enc_alg.is_some()
        || matches!(material, Some(PublicMaterial::X25519 { .. }))
        || meta
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|o| o == "sign" || o == "verify"))
}

/// Checks a JWE `alg` (and `use: enc`) against the key it is on: RSA-OAEP takes RSA, ECDH-ES
/// takes P-256/384/521 or X25519, AES key wrap a secret of its size, `dir` a secret of a
/// content encryption's size. An Ed25519 or secp256k1 key never encrypts.
fn check_enc(meta: &KeyMeta, kt: &KeyType) -> Result<(), Error> {
    use super::jwe::KeyKind;
    let encrypting = meta.use_.as_deref() == Some("enc") || meta.enc_alg.is_some();
    if meta.use_.as_deref() == Some("sig")
        && let Some(a) = &meta.enc_alg
    {
        return Err(Error::key(format!(
            "the key's use is \"sig\" but its alg {a} is an encryption algorithm"
        )));
    }
    if encrypting {
        match kt {
            KeyType::Ed25519 => {
                return Err(Error::key(
                    "an Ed25519 key signs; it never encrypts (X25519 does)",
                ));
            }
            KeyType::Ec(Curve::Secp256k1) => {
                return Err(Error::key(
                    "an EC key on secp256k1 signs; JWE's ECDH-ES takes P-256, P-384, P-521 or X25519",
                ));
            }
            _ => {}
        }
    }
    let Some(alg) = &meta.enc_alg else {
        return Ok(());
    };
    let fits = match (super::jwe::key_kind(alg), kt) {
        (Some(KeyKind::Rsa), KeyType::Rsa { .. }) => true,
        (Some(KeyKind::Agreement), KeyType::Ec(_) | KeyType::X25519) => true,
        (Some(KeyKind::Oct(Some(len))), KeyType::Hmac { bytes }) => *bytes == len,
        (Some(KeyKind::Oct(None)), KeyType::Hmac { bytes }) => {
            super::jwe::DIR_KEY_LENGTHS.contains(bytes)
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(Error::key(format!(
            "the JWE alg {alg} does not fit a {kt} key"
        )))
    }
}

fn check_meta(meta: &KeyMeta, fits: &[Alg], kt: &KeyType) -> Result<(), Error> {
    check_enc(meta, kt)?;
    match (meta.use_.as_deref(), meta.alg) {
        (None | Some("sig"), _) => {}
        // An encryption key loads (to inspect or convert it) but never signs or verifies.
        (Some("enc"), None) => {}
        (Some("enc"), Some(alg)) => {
            return Err(Error::key(format!(
                "the key's use is \"enc\" but its alg {alg} is a signature algorithm"
            )));
        }
        (Some(other), _) => {
            return Err(Error::key(format!(
                "unknown key use \"{other}\" (RFC 7517 defines \"sig\" and \"enc\")"
            )));
        }
    }
    if let Some(alg) = meta.alg
        && !fits.contains(&alg)
    {
        return Err(Error::AlgMismatch {
            alg,
            key: format!("{kt} key (its JWK \"alg\" disagrees with the key)"),
            fits: join_algs(fits),
        });
    }
    Ok(())
}

impl Key {
    /// Builds a checked key. Every constructor of `Key` goes through here.
    pub(crate) fn new(meta: KeyMeta, material: Material) -> Result<Key, Error> {
        let mut key = Key {
            meta,
            material,
            pair: None,
            short_secret: false,
        };
        key.pair = key.check()?.map(Arc::new);
        Ok(key)
    }

    /// An HMAC key from raw secret bytes (`--secret-file`, `--secret-env`), checked for length.
    pub fn hmac(k: Vec<u8>, meta: KeyMeta) -> Result<Key, Error> {
        if k.is_empty() {
            return Err(Error::key("the HMAC secret is empty"));
        }
        Key::new(
            meta,
            Material::Hmac {
                k: Zeroizing::new(k),
            },
        )
    }

    /// Builds an HMAC key without the minimum-length check (`generate-key --insecure`).
    pub fn hmac_unchecked(k: Vec<u8>, meta: KeyMeta) -> Key {
        Key {
            meta,
            material: Material::Hmac {
                k: Zeroizing::new(k),
            },
            pair: None,
            short_secret: false,
        }
    }

    /// An HMAC secret shorter than RFC 7518 §3.2 asks, taken on purpose (`--insecure`, for an
    /// app's existing secret): it signs and verifies with any HS algorithm.
    pub fn hmac_short(k: Vec<u8>, meta: KeyMeta) -> Result<Key, Error> {
        if k.is_empty() {
            return Err(Error::key("the HMAC secret is empty"));
        }
        let mut key = Key::hmac_unchecked(k, meta);
        key.short_secret = true;
        check_meta(&key.meta, &key.material_algs(), &key.key_type())?;
        Ok(key)
    }

    pub fn key_type(&self) -> KeyType {
        match &self.material {
            Material::Asymmetric { public, .. } => public.key_type(),
            Material::Hmac { k } => KeyType::Hmac { bytes: k.len() },
        }
    }

    /// True for private keys and HMAC secrets.
    pub fn is_private(&self) -> bool {
        match &self.material {
            Material::Asymmetric { secret, .. } => secret.is_some(),
            Material::Hmac { .. } => true,
        }
    }

    pub fn is_hmac(&self) -> bool {
        matches!(self.material, Material::Hmac { .. })
    }

    /// Algorithms the material fits, before the JWK `alg` narrows them. An HMAC secret fits
    /// the HS algorithms whose hash is no longer than it (RFC 7518 §3.2).
    fn material_algs(&self) -> Vec<Alg> {
        match &self.material {
            Material::Asymmetric { public, .. } => public.algs(),
            Material::Hmac { k } => [Alg::HS256, Alg::HS384, Alg::HS512]
                .into_iter()
                .filter(|a| {
                    self.short_secret || a.hash().is_some_and(|h| k.len() >= h.output_len())
                })
                .collect(),
        }
    }

    /// Algorithms this key may be used with: its JWK `alg` if set, else all its material fits.
    pub fn algs(&self) -> Vec<Alg> {
        if self.is_encryption_key() {
            return vec![];
        }
        match self.meta.alg {
            Some(a) if self.material_algs().contains(&a) => vec![a],
            Some(_) => vec![],
            None => self.material_algs(),
        }
    }

    /// The algorithm used when none is asked for (DESIGN.md §1).
    pub fn default_alg(&self) -> Result<Alg, Error> {
        if self.is_encryption_key() {
            return Err(Error::key(format!(
                "the {} key is an encryption key (use: enc): it never signs or verifies; use it with --encrypt-key-file or --decrypt-key-file",
                self.key_type()
            )));
        }
        self.algs()
            .first()
            .copied()
            .ok_or_else(|| Error::key(format!("the {} key fits no algorithm", self.key_type())))
    }

    /// True for an encryption key: `use: enc`, a JWE `alg`, `key_ops` without a signature
    /// operation, or an X25519 key. It never signs or verifies.
    pub fn is_encryption_key(&self) -> bool {
        match &self.material {
            Material::Asymmetric { public, .. } => is_encryption(&self.meta, Some(public)),
            Material::Hmac { .. } => is_encryption(&self.meta, None),
        }
    }

    /// `Ok` when the key's `key_ops` (if it has them) allow `op` ("sign" or "verify").
    pub fn check_op(&self, op: &str) -> Result<(), Error> {
        match &self.meta.key_ops {
            Some(ops) if !ops.iter().any(|o| o == op) => Err(Error::key(format!(
                "the key's key_ops ({}) do not include \"{op}\" (RFC 7517 §4.3)",
                ops.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// `Ok` when `alg` may be used with this key, else an error naming the algs that fit.
    pub fn check_alg(&self, alg: Alg) -> Result<(), Error> {
        if self.is_encryption_key() {
            return Err(Error::key(
                "the key's use is \"enc\" (encryption); jwkit signs and verifies only with signature keys",
            ));
        }
        let algs = self.algs();
        if algs.contains(&alg) {
            Ok(())
        } else {
            Err(Error::AlgMismatch {
                alg,
                key: format!("{} key", self.key_type()),
                fits: join_algs(&algs),
            })
        }
    }

    /// Checks the key; for an asymmetric private key, returns the aws-lc pair it built.
    fn check(&self) -> Result<Option<SigningPair>, Error> {
        if let Material::Hmac { k } = &self.material
            && !self.is_encryption_key()
        {
            // Length first: "too short for HS512" says more than "HS512 does not fit".
            let min = self
                .meta
                .alg
                .and_then(Alg::hash)
                .map_or(32, Hash::output_len);
            if k.len() < min {
                return Err(Error::key(format!(
                    "the HMAC secret is {} bytes; {} needs at least {min} (RFC 7518 §3.2)",
                    k.len(),
                    self.meta.alg.unwrap_or(Alg::HS256)
                )));
            }
        }
        check_meta(&self.meta, &self.material_algs(), &self.key_type())?;
        match &self.material {
            Material::Hmac { .. } => Ok(None),
            Material::Asymmetric {
                public: PublicMaterial::X25519 { x },
                secret,
            } => {
                if x.len() != 32 {
                    return Err(Error::key("an X25519 public key is 32 bytes"));
                }
                if let Some(SecretMaterial::X25519 { d }) = secret {
                    let derived = x25519_public(d)?;
                    if derived != *x {
                        return Err(Error::key(
                            "the X25519 private key does not match its public key",
                        ));
                    }
                } else if secret.is_some() {
                    return Err(Error::key("private and public members disagree in type"));
                }
                Ok(None)
            }
            Material::Asymmetric { public, secret } => {
                public.check()?;
                match secret {
                    Some(_) => self.build_pair().map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// The aws-lc key pair for signing, built once when the key was checked.
    pub(crate) fn signing_pair(&self) -> Result<Arc<SigningPair>, Error> {
        match (&self.pair, &self.material) {
            (Some(pair), _) => Ok(Arc::clone(pair)),
            (None, Material::Hmac { k }) => Ok(Arc::new(SigningPair::Hmac(k.clone()))),
            (None, _) => self.build_pair().map(Arc::new),
        }
    }

    /// Builds the aws-lc key pair; this is where private/public consistency is checked.
    fn build_pair(&self) -> Result<SigningPair, Error> {
        let inconsistent = |what: &str, e: aws_lc_rs::error::KeyRejected| {
            Error::key(format!(
                "the {what} private key is invalid or does not match its public key ({e})"
            ))
        };
        match &self.material {
            Material::Hmac { k } => Ok(SigningPair::Hmac(k.clone())),
            Material::Asymmetric { secret: None, .. } => Err(Error::key(
                "this is a public key; signing needs the private key",
            )),
            Material::Asymmetric {
                public: PublicMaterial::Rsa { n, e },
                secret:
                    Some(SecretMaterial::Rsa {
                        d,
                        p,
                        q,
                        dp,
                        dq,
                        qi,
                    }),
            } => {
                let components = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: n.as_slice(),
                        e: e.as_slice(),
                    },
                    d: d.as_slice(),
                    p: p.as_slice(),
                    q: q.as_slice(),
                    dP: dp.as_slice(),
                    dQ: dq.as_slice(),
                    qInv: qi.as_slice(),
                };
                aws_lc_rs::rsa::KeyPair::from_components(&components)
                    .map(|kp| SigningPair::Rsa(Box::new(kp)))
                    .map_err(|e| inconsistent("RSA", e))
            }
            Material::Asymmetric {
                public: PublicMaterial::Ec { curve, x, y },
                secret: Some(SecretMaterial::Ec { d }),
            } => {
                if d.len() != curve.coordinate_len() {
                    return Err(Error::key(format!(
                        "an EC {curve} private scalar d is {} bytes, not {}",
                        curve.coordinate_len(),
                        d.len()
                    )));
                }
                EcdsaKeyPair::from_private_key_and_public_key(
                    ec_signing_alg(*curve),
                    d,
                    &uncompressed_point(x, y),
                )
                .map(SigningPair::Ec)
                .map_err(|e| inconsistent("EC", e))
            }
            Material::Asymmetric {
                public: PublicMaterial::Ed25519 { x },
                secret: Some(SecretMaterial::Ed25519 { d }),
            } => {
                if d.len() != 32 {
                    return Err(Error::key(format!(
                        "an Ed25519 private key is a 32-byte seed, not {} bytes",
                        d.len()
                    )));
                }
                Ed25519KeyPair::from_seed_and_public_key(d, x)
                    .map(SigningPair::Ed25519)
                    .map_err(|e| inconsistent("Ed25519", e))
            }
            Material::Asymmetric { .. } => {
                Err(Error::key("private and public members disagree in type"))
            }
        }
    }

    /// The public half. An HMAC secret has none.
    pub fn public(&self) -> Result<PublicKey, Error> {
        match &self.material {
            Material::Asymmetric { public, .. } => Ok(PublicKey {
                meta: self.meta.clone(),
                material: public.clone(),
            }),
            Material::Hmac { .. } => Err(Error::key(
                "an HMAC secret has no public half; share the secret itself only over a safe channel",
            )),
        }
    }

    /// RFC 7638 thumbprint, base64url (an HMAC secret's covers `k`, so it is itself sensitive).
    pub fn thumbprint(&self, hash: Hash) -> String {
        match &self.material {
            Material::Asymmetric { public, .. } => thumbprint_of(&public.thumbprint_input(), hash),
            Material::Hmac { k } => thumbprint_of(
                &canonical_json("oct", vec![("k", b64::encode(k.as_slice()))]),
                hash,
            ),
        }
    }

    /// The kid, or the SHA-256 thumbprint when the key has none.
    pub fn kid_or_thumbprint(&self) -> String {
        self.meta
            .kid
            .clone()
            .unwrap_or_else(|| self.thumbprint(Hash::Sha256))
    }

    /// The JWK with every member, private ones included.
    pub fn to_jwk(&self) -> Map<String, Value> {
        let mut out = Map::new();
        match &self.material {
            Material::Hmac { k } => {
                out.insert("kty".into(), "oct".into());
                meta_members(&self.meta, false, &mut out);
                out.insert("k".into(), b64::encode(k.as_slice()).into());
            }
            Material::Asymmetric { public, secret } => {
                out.insert("kty".into(), public.kty().into());
                meta_members(&self.meta, false, &mut out);
                public.jwk_members(&mut out);
                match secret {
                    None => {}
                    Some(SecretMaterial::Rsa {
                        d,
                        p,
                        q,
                        dp,
                        dq,
                        qi,
                    }) => {
                        for (name, v) in [
                            ("d", d),
                            ("p", p),
                            ("q", q),
                            ("dp", dp),
                            ("dq", dq),
                            ("qi", qi),
                        ] {
                            out.insert(name.into(), b64::encode(v.as_slice()).into());
                        }
                    }
                    Some(
                        SecretMaterial::Ec { d }
                        | SecretMaterial::Ed25519 { d }
                        | SecretMaterial::X25519 { d },
                    ) => {
                        out.insert("d".into(), b64::encode(d.as_slice()).into());
                    }
                }
            }
        }
        out
    }

    /// PKCS#8 DER of a private key, as serialised by aws-lc.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        if self.key_type() == KeyType::X25519 {
            return Err(Error::key(
                "jwkit writes an X25519 key as a JWK only; use --format jwk or jwks",
            ));
        }
        let failed = || Error::key("could not encode the private key as PKCS#8");
        let der: Vec<u8> = match &*self.signing_pair()? {
            SigningPair::Rsa(kp) => {
                let d: Pkcs8V1Der = kp.as_der().map_err(|_| failed())?;
                d.as_ref().to_vec()
            }
            SigningPair::Ec(kp) => kp.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec(),
            SigningPair::Ed25519(kp) => {
                let d: Pkcs8V1Der = kp.as_der().map_err(|_| failed())?;
                d.as_ref().to_vec()
            }
            SigningPair::Hmac(_) => {
                return Err(Error::key(
                    "an HMAC secret has no PEM form; use --format jwk",
                ));
            }
        };
        Ok(Zeroizing::new(der))
    }
}

/// A key pair parsed by aws-lc, ready to sign.
pub(crate) enum SigningPair {
    Rsa(Box<aws_lc_rs::rsa::KeyPair>),
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Hmac(Zeroizing<Vec<u8>>),
}

/// Reads the private members back out of aws-lc key pairs (used for generated and PKCS#8 keys).
pub(crate) fn ec_material(kp: &EcdsaKeyPair, curve: Curve) -> Result<Material, Error> {
    let point = kp.public_key().as_ref();
    let len = curve.coordinate_len();
    if point.len() != 1 + 2 * len || point[0] != 4 {
        return Err(Error::key(
            "unexpected EC public point encoding from the backend",
        ));
    }
    let d: EcPrivateKeyBin = kp
        .private_key()
        .as_be_bytes()
        .map_err(|_| Error::key("could not read the EC private scalar"))?;
    Ok(Material::Asymmetric {
        public: PublicMaterial::Ec {
            curve,
            x: point[1..=len].to_vec(),
            y: point[1 + len..].to_vec(),
        },
        secret: Some(SecretMaterial::Ec {
            d: Zeroizing::new(d.as_ref().to_vec()),
        }),
    })
}

/// The X25519 public key of a private key (RFC 7748), computed by aws-lc.
pub(crate) fn x25519_public(d: &[u8]) -> Result<Vec<u8>, Error> {
    use aws_lc_rs::agreement;
    let bad = || Error::key("the X25519 private key is not a 32-byte key");
    if d.len() != 32 {
        return Err(bad());
    }
    let private =
        agreement::PrivateKey::from_private_key(&agreement::X25519, d).map_err(|_| bad())?;
    let public = private.compute_public_key().map_err(|_| bad())?;
    Ok(public.as_ref().to_vec())
}

pub(crate) fn ed25519_material(kp: &Ed25519KeyPair) -> Result<Material, Error> {
    let seed = kp
        .seed()
        .map_err(|_| Error::key("could not read the Ed25519 seed"))?;
    let seed: aws_lc_rs::encoding::Curve25519SeedBin = seed
        .as_be_bytes()
        .map_err(|_| Error::key("could not read the Ed25519 seed"))?;
    Ok(Material::Asymmetric {
        public: PublicMaterial::Ed25519 {
            x: kp.public_key().as_ref().to_vec(),
        },
        secret: Some(SecretMaterial::Ed25519 {
            d: Zeroizing::new(seed.as_ref().to_vec()),
        }),
    })
}
