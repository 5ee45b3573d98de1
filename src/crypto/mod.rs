//! The shared crypto core: algorithms, key loading by content, JWK/PEM encoding, RFC 7638
//! thumbprints, and signing/verifying over raw bytes. No clap, no printing, no process exit.
//! aws-lc-rs is the one backend; keys are parsed once into aws-lc objects and reused.

pub mod alg;
pub mod b64;
pub mod dpop;
pub mod json;
pub mod jwe;
pub mod jws;
mod key;
mod parse;
pub mod resign;
mod roca;
mod sign;
pub mod verify;
mod weak;

pub use alg::{Alg, Curve, Hash};
pub use key::{Key, KeyMeta, KeyType, PublicKey, PublicMaterial};
pub use parse::{JwkSet, is_jwks, load_key};
pub use sign::{KeySpec, SigningKey, VerifyingKey, sign, verify};
pub use weak::{PrimalityMemo, set_primality_memo};

/// What can go wrong in the core. Messages are complete sentences fragments for `error: ...`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key that is malformed, weak or inconsistent.
    #[error("{0}")]
    Key(String),
    /// An algorithm name jwkit does not sign or verify with.
    #[error(
        "unsupported algorithm \"{0}\" (jwkit supports HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384, ES512, ES256K, EdDSA)"
    )]
    UnsupportedAlg(String),
    /// The algorithm and the key do not belong together.
    #[error("algorithm {alg} does not fit this {key}; it fits: {fits}")]
    AlgMismatch { alg: Alg, key: String, fits: String },
    /// A kid was asked for that the set does not hold.
    #[error("no key with kid \"{kid}\" in the set (kids: {available})")]
    UnknownKid { kid: String, available: String },
    /// More than one key could be meant.
    #[error("{0}")]
    Ambiguous(String),
    /// The backend refused to sign (should not happen with a validated key).
    #[error("signing failed in the crypto backend")]
    Sign,
}

impl Error {
    pub(crate) fn key(msg: impl Into<String>) -> Error {
        Error::Key(msg.into())
    }
}
