//! Signing and verifying over raw bytes, with keys parsed into aws-lc objects once and reused
//! (a batch of a million tokens parses its key once). Also key generation.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;

use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey};
use zeroize::Zeroizing;

use super::key::{Material, SigningPair, ec_material, ec_signing_alg, ed25519_material};
use super::{Alg, Curve, Error, Hash, Key, KeyMeta};

/// A private key bound to one algorithm, ready to sign many inputs.
pub struct SigningKey {
    alg: Alg,
    inner: Signer,
}

enum Signer {
    /// RSA, ECDSA and Ed25519 sign with the pair the key was checked with.
    Pair(Arc<SigningPair>, Option<&'static dyn sig::RsaEncoding>),
    Hmac(Box<hmac::Key>),
}

fn hmac_alg(alg: Alg) -> hmac::Algorithm {
    match alg.hash() {
        Some(Hash::Sha384) => hmac::HMAC_SHA384,
        Some(Hash::Sha512) => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

impl SigningKey {
    /// Binds `key` to `alg`, refusing public keys and algorithms that do not fit the key.
    pub fn new(key: &Key, alg: Alg) -> Result<SigningKey, Error> {
        key.check_alg(alg)?;
        key.check_op("sign")?;
        let pair = key.signing_pair()?;
        let inner = match &*pair {
            SigningPair::Hmac(k) => Signer::Hmac(Box::new(hmac::Key::new(hmac_alg(alg), k))),
            SigningPair::Rsa(_) => {
                let enc: &'static dyn sig::RsaEncoding = match alg {
                    Alg::RS256 => &sig::RSA_PKCS1_SHA256,
                    Alg::RS384 => &sig::RSA_PKCS1_SHA384,
                    Alg::RS512 => &sig::RSA_PKCS1_SHA512,
                    Alg::PS256 => &sig::RSA_PSS_SHA256,
                    Alg::PS384 => &sig::RSA_PSS_SHA384,
                    _ => &sig::RSA_PSS_SHA512,
                };
                Signer::Pair(pair, Some(enc))
            }
            SigningPair::Ec(_) | SigningPair::Ed25519(_) => Signer::Pair(pair, None),
        };
        Ok(SigningKey { alg, inner })
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The raw JWS signature of `input` (ECDSA as fixed-length r||s, RFC 7518 §3.4).
    pub fn sign(&self, input: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        match &self.inner {
            Signer::Hmac(k) => Ok(hmac::sign(k, input).as_ref().to_vec()),
            Signer::Pair(pair, enc) => match (&**pair, enc) {
                (SigningPair::Rsa(kp), Some(enc)) => {
                    let mut out = vec![0; kp.public_modulus_len()];
                    kp.sign(*enc, &rng, input, &mut out)
                        .map_err(|_| Error::Sign)?;
                    Ok(out)
                }
                (SigningPair::Ec(kp), _) => Ok(kp
                    .sign(&rng, input)
                    .map_err(|_| Error::Sign)?
                    .as_ref()
                    .to_vec()),
                (SigningPair::Ed25519(kp), _) => Ok(kp.sign(input).as_ref().to_vec()),
                _ => Err(Error::Sign),
            },
        }
    }
}

/// A key bound to one algorithm, ready to verify many signatures.
pub struct VerifyingKey {
    alg: Alg,
    inner: Verifier,
}

enum Verifier {
    Public(Box<ParsedPublicKey>),
    Hmac(Box<hmac::Key>),
}

impl VerifyingKey {
    /// Binds `key` to `alg`. HMAC algorithms take only HMAC secrets, never a public key's bytes.
    pub fn new(key: &Key, alg: Alg) -> Result<VerifyingKey, Error> {
        key.check_alg(alg)?;
        key.check_op("verify")?;
        let inner = match &key.material {
            Material::Hmac { k } => Verifier::Hmac(Box::new(hmac::Key::new(hmac_alg(alg), k))),
            Material::Asymmetric { public, .. } => {
                Verifier::Public(Box::new(public.parse_for(alg)?))
            }
        };
        Ok(VerifyingKey { alg, inner })
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// True when `signature` is a valid signature of `input` (HMAC compared in constant time).
    pub fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.inner {
            Verifier::Public(p) => p.verify_sig(input, signature).is_ok(),
            Verifier::Hmac(k) => hmac::verify(k, input, signature).is_ok(),
        }
    }
}

/// Signs `input` with `key` under `alg` (one-shot form of `SigningKey`).
pub fn sign(alg: Alg, key: &Key, input: &[u8]) -> Result<Vec<u8>, Error> {
    SigningKey::new(key, alg)?.sign(input)
}

/// Verifies `signature` over `input` (one-shot form of `VerifyingKey`). `Err` means the key
/// cannot be used with `alg`; `Ok(false)` means the signature is wrong.
pub fn verify(alg: Alg, key: &Key, input: &[u8], signature: &[u8]) -> Result<bool, Error> {
    Ok(VerifyingKey::new(key, alg)?.verify(input, signature))
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub enum KeySpec {
    Rsa {
        bits: usize,
    },
    Ec(Curve),
    Ed25519,
    /// An X25519 key (RFC 8037), for ECDH-ES encryption only.
    X25519,
    Hmac {
        bytes: usize,
    },
}

impl Key {
    /// Generates a fresh key. HMAC secrets shorter than 32 bytes need `insecure`.
    pub fn generate(spec: KeySpec, meta: KeyMeta, insecure: bool) -> Result<Key, Error> {
        let failed = |what: &str| {
            Error::key(format!(
                "{what} key generation failed in the crypto backend"
            ))
        };
        let material = match spec {
            KeySpec::Rsa { bits } => {
                let size = match bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    b if b < 2048 => {
                        return Err(Error::key(format!(
                            "RSA keys under 2048 bits are refused ({b} asked); jwkit would not load such a key either"
                        )));
                    }
                    b => {
                        return Err(Error::key(format!(
                            "RSA key size {b} is not supported (use 2048, 3072 or 4096)"
                        )));
                    }
                };
                let kp = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| failed("RSA"))?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der =
                    aws_lc_rs::encoding::AsDer::as_der(&kp).map_err(|_| failed("RSA"))?;
                let key = super::load_key(der.as_ref(), None)?;
                key.material
            }
            KeySpec::Ec(curve) => {
                let kp = EcdsaKeyPair::generate(ec_signing_alg(curve)).map_err(|_| failed("EC"))?;
                ec_material(&kp, curve)?
            }
            KeySpec::Ed25519 => {
                let kp = Ed25519KeyPair::generate().map_err(|_| failed("Ed25519"))?;
                ed25519_material(&kp)?
            }
            KeySpec::X25519 => {
                let mut d = Zeroizing::new(vec![0u8; 32]);
                SystemRandom::new()
                    .fill(&mut d)
                    .map_err(|_| failed("X25519"))?;
                let x = super::key::x25519_public(&d)?;
                Material::Asymmetric {
                    public: super::key::PublicMaterial::X25519 { x },
                    secret: Some(super::key::SecretMaterial::X25519 { d }),
                }
            }
            KeySpec::Hmac { bytes } => {
                let mut k = Zeroizing::new(vec![0u8; bytes]);
                SystemRandom::new()
                    .fill(&mut k)
                    .map_err(|_| failed("HMAC"))?;
                if insecure {
                    return Ok(Key::hmac_unchecked(k.to_vec(), meta));
                }
                Material::Hmac { k }
            }
        };
        Key::new(meta, material)
    }
}
