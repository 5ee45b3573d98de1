//! Loading keys by content, never by file name: PEM (PKCS#1, PKCS#8, SEC1, SPKI, X.509
//! certificate), DER, a JWK, or a JWKS. DER structure comes from the RustCrypto format crates;
//! the key material is then checked by aws-lc (see `key.rs`).

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use der::Decode;
use der::asn1::ObjectIdentifier;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::key::{
    Material, PublicMaterial, SecretMaterial, ec_material, ec_signing_alg, ed25519_material,
    strip_leading_zeros,
};
use super::{Alg, Curve, Error, Key, KeyMeta, b64, json};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");

fn curve_from_oid(oid: ObjectIdentifier) -> Result<Curve, Error> {
    match oid {
        o if o == OID_P256 => Ok(Curve::P256),
        o if o == OID_P384 => Ok(Curve::P384),
        o if o == OID_P521 => Ok(Curve::P521),
        o if o == OID_SECP256K1 => Ok(Curve::Secp256k1),
        o => Err(Error::key(format!(
            "unsupported EC curve (OID {o}); jwkit handles P-256, P-384, P-521 and secp256k1"
        ))),
    }
}

/// Loads one key from file or stdin bytes. For a JWKS, `kid` picks the key (needed when the
/// set holds more than one).
pub fn load_key(bytes: &[u8], kid: Option<&str>) -> Result<Key, Error> {
    if bytes.first() == Some(&0x30) {
        // Binary DER is never trimmed: its last bytes may well look like white space.
        return from_der(bytes);
    }
    let trimmed = trim_ascii(bytes);
    if trimmed.is_empty() {
        return Err(Error::key("the key input is empty"));
    }
    let key = if trimmed.starts_with(b"-----BEGIN") {
        from_pem(trimmed)?
    } else if trimmed.starts_with(b"{") {
        let obj =
            json::parse_object(trimmed).map_err(|e| Error::key(format!("invalid JSON: {e}")))?;
        if obj.contains_key("keys") {
            return JwkSet::from_object(&obj)?.select(kid);
        }
        match obj.get("jwk") {
            // A jwkit key-store record (`keys/<thumbprint>.json`): the key is its "jwk" member.
            Some(Value::Object(jwk)) if !obj.contains_key("kty") => from_jwk(jwk)?,
            _ => from_jwk(&obj)?,
        }
    } else {
        return Err(Error::key(
            "not a key: expected PEM, DER, a JWK or a JWKS (HMAC secrets as raw bytes go in --secret-file)",
        ));
    };
    match (kid, &key.meta.kid) {
        (Some(want), Some(have)) if want != have => Err(Error::UnknownKid {
            kid: want.to_string(),
            available: have.clone(),
        }),
        _ => Ok(key),
    }
}

/// True when the bytes are a JWK Set (a JSON object with "keys"), not a single key.
pub fn is_jwks(bytes: &[u8]) -> bool {
    json::parse_object(bytes).is_ok_and(|o| o.contains_key("keys"))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn from_pem(text: &[u8]) -> Result<Key, Error> {
    let blocks = pem::parse_many(text).map_err(|e| Error::key(format!("malformed PEM: {e}")))?;
    let mut keys = blocks.iter().filter(|b| b.tag() != "EC PARAMETERS");
    let Some(block) = keys.next() else {
        return Err(Error::key("malformed PEM: no key block found"));
    };
    let der = block.contents();
    let tag = block.tag();
    let wrap =
        |what: &str, e: Error| Error::key(format!("PEM block \"{tag}\" does not hold {what}: {e}"));
    match tag {
        "PRIVATE KEY" => from_pkcs8(der).map_err(|e| wrap("a PKCS#8 private key", e)),
        "RSA PRIVATE KEY" => {
            from_pkcs1_private(der).map_err(|e| wrap("a PKCS#1 RSA private key", e))
        }
        "EC PRIVATE KEY" => from_sec1(der).map_err(|e| wrap("a SEC1 EC private key", e)),
        "PUBLIC KEY" => from_spki(der).map_err(|e| wrap("an SPKI public key", e)),
        "RSA PUBLIC KEY" => from_pkcs1_public(der).map_err(|e| wrap("a PKCS#1 RSA public key", e)),
        "CERTIFICATE" => from_certificate(der).map_err(|e| wrap("an X.509 certificate", e)),
        "ENCRYPTED PRIVATE KEY" => Err(Error::key(
            "encrypted private keys are not supported; decrypt first (openssl pkcs8 -in KEY -out PLAIN.pem)",
        )),
        other => Err(Error::key(format!(
            "unsupported PEM label \"{other}\" (expected PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY, PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)"
        ))),
    }
}

/// DER with no label: the first structure that decodes decides which parser reads the key.
fn from_der(der: &[u8]) -> Result<Key, Error> {
    if pkcs8::PrivateKeyInfo::from_der(der).is_ok() {
        from_pkcs8(der)
    } else if spki::SubjectPublicKeyInfoRef::from_der(der).is_ok() {
        from_spki(der)
    } else if pkcs1::RsaPrivateKey::from_der(der).is_ok() {
        from_pkcs1_private(der)
    } else if pkcs1::RsaPublicKey::from_der(der).is_ok() {
        from_pkcs1_public(der)
    } else if sec1::EcPrivateKey::from_der(der).is_ok() {
        from_sec1(der)
    } else if x509_cert::Certificate::from_der(der).is_ok() {
        from_certificate(der)
    } else {
        Err(Error::key(
            "not a key: binary input is not DER for PKCS#8, SPKI, PKCS#1, SEC1 or an X.509 certificate",
        ))
    }
}

fn der_err(e: der::Error) -> Error {
    Error::key(format!("DER: {e}"))
}

fn from_pkcs8(der: &[u8]) -> Result<Key, Error> {
    let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(der_err)?;
    let oid = info.algorithm.oid;
    if oid == OID_RSA || oid == OID_RSA_PSS {
        from_pkcs1_private(info.private_key)
    } else if oid == OID_EC {
        let curve_oid = info
            .algorithm
            .parameters_oid()
            .map_err(|_| Error::key("EC key without a named curve"))?;
        let curve = curve_from_oid(curve_oid)?;
        let kp = EcdsaKeyPair::from_pkcs8(ec_signing_alg(curve), der)
            .map_err(|e| Error::key(format!("invalid EC {curve} private key ({e})")))?;
        Key::new(KeyMeta::default(), ec_material(&kp, curve)?)
    } else if oid == OID_ED25519 {
        let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| Error::key(format!("invalid Ed25519 private key ({e})")))?;
        Key::new(KeyMeta::default(), ed25519_material(&kp)?)
    } else {
        Err(unsupported_oid(oid))
    }
}

fn unsupported_oid(oid: ObjectIdentifier) -> Error {
    Error::key(format!(
        "unsupported key algorithm (OID {oid}); jwkit handles RSA, EC and Ed25519"
    ))
}

fn from_pkcs1_private(der: &[u8]) -> Result<Key, Error> {
    let k = pkcs1::RsaPrivateKey::from_der(der).map_err(der_err)?;
    if k.other_prime_infos.is_some() {
        return Err(Error::key("multi-prime RSA keys are not supported"));
    }
    let z = |u: pkcs1::UintRef| Zeroizing::new(u.as_bytes().to_vec());
    Key::new(
        KeyMeta::default(),
        Material::Asymmetric {
            public: PublicMaterial::Rsa {
                n: k.modulus.as_bytes().to_vec(),
                e: k.public_exponent.as_bytes().to_vec(),
            },
            secret: Some(SecretMaterial::Rsa {
                d: z(k.private_exponent),
                p: z(k.prime1),
                q: z(k.prime2),
                dp: z(k.exponent1),
                dq: z(k.exponent2),
                qi: z(k.coefficient),
            }),
        },
    )
}

fn from_pkcs1_public(der: &[u8]) -> Result<Key, Error> {
    let k = pkcs1::RsaPublicKey::from_der(der).map_err(der_err)?;
    public_key(PublicMaterial::Rsa {
        n: k.modulus.as_bytes().to_vec(),
        e: k.public_exponent.as_bytes().to_vec(),
    })
}

fn public_key(material: PublicMaterial) -> Result<Key, Error> {
    Key::new(
        KeyMeta::default(),
        Material::Asymmetric {
            public: material,
            secret: None,
        },
    )
}

fn from_sec1(der: &[u8]) -> Result<Key, Error> {
    let k = sec1::EcPrivateKey::from_der(der).map_err(der_err)?;
    let oid = k
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or_else(|| Error::key("SEC1 EC key without a named curve"))?;
    let curve = curve_from_oid(oid)?;
    let kp = EcdsaKeyPair::from_private_key_der(ec_signing_alg(curve), der)
        .map_err(|e| Error::key(format!("invalid EC {curve} private key ({e})")))?;
    if let Some(given) = k.public_key
        && given != kp.public_key().as_ref()
    {
        return Err(Error::key(
            "the EC private key's embedded public key does not match its scalar",
        ));
    }
    Key::new(KeyMeta::default(), ec_material(&kp, curve)?)
}

fn from_spki(der: &[u8]) -> Result<Key, Error> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(der_err)?;
    let bits = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Error::key("public key bit string has unused bits"))?;
    let oid = info.algorithm.oid;
    if oid == OID_RSA || oid == OID_RSA_PSS {
        from_pkcs1_public(bits)
    } else if oid == OID_EC {
        let curve_oid = info
            .algorithm
            .parameters_oid()
            .map_err(|_| Error::key("EC public key without a named curve"))?;
        let curve = curve_from_oid(curve_oid)?;
        let len = curve.coordinate_len();
        match bits.first() {
            Some(4) if bits.len() == 1 + 2 * len => public_key(PublicMaterial::Ec {
                curve,
                x: bits[1..=len].to_vec(),
                y: bits[1 + len..].to_vec(),
            }),
            Some(2 | 3) => Err(Error::key("compressed EC points are not supported")),
            _ => Err(Error::key(format!("malformed EC {curve} public point"))),
        }
    } else if oid == OID_ED25519 {
        public_key(PublicMaterial::Ed25519 { x: bits.to_vec() })
    } else {
        Err(unsupported_oid(oid))
    }
}

fn from_certificate(der: &[u8]) -> Result<Key, Error> {
    use der::Encode;
    let cert = x509_cert::Certificate::from_der(der).map_err(der_err)?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(der_err)?;
    from_spki(&spki)
}

// ---- JWK ---------------------------------------------------------------------------------

const RSA_PRIVATE: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// Parses one JWK object (RFC 7517/7518/8037) into a checked key.
pub(crate) fn from_jwk(obj: &Map<String, Value>) -> Result<Key, Error> {
    let kty = str_member(obj, "kty")?.ok_or_else(|| Error::key("JWK has no \"kty\""))?;
    let key_ops = match obj.get("key_ops") {
        None => None,
        Some(ops) => {
            let ops: Vec<String> = ops
                .as_array()
                .filter(|a| a.iter().all(Value::is_string))
                .ok_or_else(|| Error::key("JWK member \"key_ops\" must be an array of strings"))?
                .iter()
                .filter_map(|o| o.as_str().map(str::to_string))
                .collect();
            const KNOWN: [&str; 8] = [
                "sign",
                "verify",
                "encrypt",
                "decrypt",
                "wrapKey",
                "unwrapKey",
                "deriveKey",
                "deriveBits",
            ];
            if !ops.iter().any(|o| KNOWN.contains(&o.as_str())) {
                return Err(Error::key(
                    "the JWK's key_ops name no operation jwkit performs (sign, verify, encrypt, decrypt, wrapKey, unwrapKey, deriveKey, deriveBits)",
                ));
            }
            Some(ops)
        }
    };
    // A JWE key-management alg (RSA-OAEP-256, A128KW, ...) makes the key an encryption key.
    let (alg, enc_alg) = match str_member(obj, "alg")? {
        None => (None, None),
        Some(name) => match name.parse::<Alg>() {
            Ok(alg) => (Some(alg), None),
            Err(_) if super::jwe::key_kind(name).is_some() => (None, Some(name.to_string())),
            Err(e) => return Err(e),
        },
    };
    let meta = KeyMeta {
        kid: str_member(obj, "kid")?.map(str::to_string),
        alg,
        use_: str_member(obj, "use")?.map(str::to_string),
        key_ops,
        enc_alg,
    };
    let foreign: &[&str] = match kty {
        "RSA" => &["crv", "x", "y", "k"],
        "EC" => &["n", "e", "k", "p", "q", "dp", "dq", "qi", "oth"],
        "OKP" => &["n", "e", "y", "k", "p", "q", "dp", "dq", "qi", "oth"],
        "oct" => &[
            "n", "e", "d", "x", "y", "crv", "p", "q", "dp", "dq", "qi", "oth",
        ],
        other => {
            return Err(Error::key(format!(
                "unsupported kty \"{other}\" (jwkit handles RSA, EC, OKP and oct)"
            )));
        }
    };
    if let Some(m) = foreign.iter().find(|m| obj.contains_key(**m)) {
        return Err(Error::key(format!(
            "member \"{m}\" does not belong in a JWK of kty \"{kty}\""
        )));
    }
    let material = match kty {
        "RSA" => {
            if obj.contains_key("oth") {
                return Err(Error::key(
                    "multi-prime RSA keys (\"oth\") are not supported",
                ));
            }
            let public = PublicMaterial::Rsa {
                n: strip_leading_zeros(required(obj, "n", kty)?),
                e: strip_leading_zeros(required(obj, "e", kty)?),
            };
            let present: Vec<&str> = RSA_PRIVATE
                .iter()
                .copied()
                .filter(|m| obj.contains_key(*m))
                .collect();
            let secret = if present.is_empty() {
                None
            } else if present.len() < RSA_PRIVATE.len() {
                let missing: Vec<&str> = RSA_PRIVATE
                    .iter()
                    .copied()
                    .filter(|m| !obj.contains_key(*m))
                    .collect();
                return Err(Error::key(format!(
                    "RSA private JWK lacks {} (jwkit needs d, p, q, dp, dq and qi)",
                    missing.join(", ")
                )));
            } else {
                let z = |m: &str| -> Result<Zeroizing<Vec<u8>>, Error> {
                    Ok(Zeroizing::new(strip_leading_zeros(required(obj, m, kty)?)))
                };
                Some(SecretMaterial::Rsa {
                    d: z("d")?,
                    p: z("p")?,
                    q: z("q")?,
                    dp: z("dp")?,
                    dq: z("dq")?,
                    qi: z("qi")?,
                })
            };
            Material::Asymmetric { public, secret }
        }
        "EC" => {
            let crv = str_member(obj, "crv")?.ok_or_else(|| Error::key("EC JWK has no \"crv\""))?;
            let curve = Curve::from_jwk_name(crv).ok_or_else(|| {
                Error::key(format!(
                    "unsupported crv \"{crv}\" (jwkit handles P-256, P-384, P-521 and secp256k1)"
                ))
            })?;
            Material::Asymmetric {
                public: PublicMaterial::Ec {
                    curve,
                    x: required(obj, "x", kty)?,
                    y: required(obj, "y", kty)?,
                },
                secret: b64_member(obj, "d")?.map(|d| SecretMaterial::Ec {
                    d: Zeroizing::new(d),
                }),
            }
        }
        "OKP" => {
            let crv =
                str_member(obj, "crv")?.ok_or_else(|| Error::key("OKP JWK has no \"crv\""))?;
            if crv == "X25519" {
                return Key::new(
                    meta,
                    Material::Asymmetric {
                        public: PublicMaterial::X25519 {
                            x: required(obj, "x", kty)?,
                        },
                        secret: b64_member(obj, "d")?.map(|d| SecretMaterial::X25519 {
                            d: Zeroizing::new(d),
                        }),
                    },
                );
            }
            if crv != "Ed25519" {
                return Err(Error::key(format!(
                    "unsupported OKP crv \"{crv}\" (jwkit handles Ed25519, and X25519 for encryption)"
                )));
            }
            Material::Asymmetric {
                public: PublicMaterial::Ed25519 {
                    x: required(obj, "x", kty)?,
                },
                secret: b64_member(obj, "d")?.map(|d| SecretMaterial::Ed25519 {
                    d: Zeroizing::new(d),
                }),
            }
        }
        _ => {
            let k = required(obj, "k", kty)?;
            if k.is_empty() {
                return Err(Error::key("the HMAC secret \"k\" is empty"));
            }
            Material::Hmac {
                k: Zeroizing::new(k),
            }
        }
    };
    Key::new(meta, material)
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, Error> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::key(format!(
            "JWK member \"{name}\" must be a string, found {}",
            json::kind(other)
        ))),
    }
}

fn b64_member(obj: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, Error> {
    str_member(obj, name)?
        .map(|s| b64::decode(s).map_err(|e| Error::key(format!("JWK member \"{name}\" is {e}"))))
        .transpose()
}

fn required(obj: &Map<String, Value>, name: &str, kty: &str) -> Result<Vec<u8>, Error> {
    b64_member(obj, name)?
        .ok_or_else(|| Error::key(format!("{kty} JWK lacks the required member \"{name}\"")))
}

// ---- JWKS --------------------------------------------------------------------------------

/// One entry of a JWK Set: its kid and kty as written, and the key or why it was refused.
pub struct JwkEntry {
    pub kid: Option<String>,
    pub kty: String,
    pub key: Result<Key, Error>,
}

/// A JWK Set (RFC 7517 §5). Entries that fail to load are kept with their error, so that a
/// verifier can skip an encryption key it does not need while `key` commands report it.
pub struct JwkSet {
    pub entries: Vec<JwkEntry>,
}

impl JwkSet {
    pub fn parse(bytes: &[u8]) -> Result<JwkSet, Error> {
        let obj =
            json::parse_object(bytes).map_err(|e| Error::key(format!("invalid JWKS JSON: {e}")))?;
        JwkSet::from_object(&obj)
    }

    pub(crate) fn from_object(obj: &Map<String, Value>) -> Result<JwkSet, Error> {
        let keys = obj
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::key("a JWKS needs a \"keys\" array"))?;
        let mut entries = Vec::with_capacity(keys.len());
        for k in keys {
            let o = k.as_object().ok_or_else(|| {
                Error::key("every member of a JWKS \"keys\" array must be an object")
            })?;
            entries.push(JwkEntry {
                kid: o.get("kid").and_then(Value::as_str).map(str::to_string),
                kty: o
                    .get("kty")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                key: from_jwk(o),
            });
        }
        let privates = entries
            .iter()
            .filter(|e| e.key.as_ref().is_ok_and(Key::is_private))
            .count();
        let publics = entries
            .iter()
            .filter(|e| e.key.as_ref().is_ok_and(|k| !k.is_private()))
            .count();
        if privates > 0 && publics > 0 {
            return Err(Error::key(
                "the JWKS mixes private or secret keys with public keys; keep them in separate sets",
            ));
        }
        Ok(JwkSet { entries })
    }

    /// Picks one key for the `key` and signing commands: by kid, or the only key.
    pub fn select(self, kid: Option<&str>) -> Result<Key, Error> {
        let kids = self.kid_list();
        let mut matching: Vec<JwkEntry> = match kid {
            Some(want) => self
                .entries
                .into_iter()
                .filter(|e| e.kid.as_deref() == Some(want))
                .collect(),
            None => self.entries,
        };
        match (matching.len(), kid) {
            (0, Some(want)) => Err(Error::UnknownKid {
                kid: want.to_string(),
                available: kids,
            }),
            (0, None) => Err(Error::key("the JWKS holds no keys")),
            (1, _) => matching.remove(0).key,
            (n, Some(want)) => Err(Error::Ambiguous(format!(
                "the JWKS holds {n} keys with kid \"{want}\""
            ))),
            (n, None) => Err(Error::Ambiguous(format!(
                "the JWKS holds {n} keys (kids: {kids}); choose one with --kid"
            ))),
        }
    }

    /// The kids in the set, for messages.
    pub fn kid_list(&self) -> String {
        let kids: Vec<&str> = self
            .entries
            .iter()
            .map(|e| e.kid.as_deref().unwrap_or("(none)"))
            .collect();
        if kids.is_empty() {
            "none".into()
        } else {
            kids.join(", ")
        }
    }
}
