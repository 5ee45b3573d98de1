//! JWS algorithms (RFC 7518 §3, RFC 8037, RFC 8812) and the key kinds they need.

use std::fmt;
use std::str::FromStr;

use super::Error;

/// A JWS signature algorithm that jwkit signs and verifies. `none` is deliberately absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    ES256K,
    EdDSA,
}

/// Elliptic curves for ECDSA keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
    Secp256k1,
}

/// The hash behind an HMAC, RSA or ECDSA algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// Output size in bytes; also the minimum HMAC secret length for the algorithm.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

impl Alg {
    pub const ALL: [Alg; 14] = [
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::ES256K,
        Alg::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::ES256K => "ES256K",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn hash(self) -> Option<Hash> {
        match self {
            Alg::HS256 | Alg::RS256 | Alg::PS256 | Alg::ES256 | Alg::ES256K => Some(Hash::Sha256),
            Alg::HS384 | Alg::RS384 | Alg::PS384 | Alg::ES384 => Some(Hash::Sha384),
            Alg::HS512 | Alg::RS512 | Alg::PS512 | Alg::ES512 => Some(Hash::Sha512),
            Alg::EdDSA => None,
        }
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
        )
    }

    /// The curve an ECDSA algorithm is defined over (RFC 7518 §3.4 ties each ES alg to one curve).
    pub fn curve(self) -> Option<Curve> {
        match self {
            Alg::ES256 => Some(Curve::P256),
            Alg::ES384 => Some(Curve::P384),
            Alg::ES512 => Some(Curve::P521),
            Alg::ES256K => Some(Curve::Secp256k1),
            _ => None,
        }
    }

    /// True when the signature is the same every time for the same key and input.
    pub fn is_deterministic(self) -> bool {
        !matches!(
            self,
            Alg::PS256
                | Alg::PS384
                | Alg::PS512
                | Alg::ES256
                | Alg::ES384
                | Alg::ES512
                | Alg::ES256K
        )
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = Error;

    /// Exact, case-sensitive names as in RFC 7518: `none`, `None` or `hs256` are not algorithms here.
    fn from_str(s: &str) -> Result<Self, Error> {
        Alg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnsupportedAlg(s.to_string()))
    }
}

impl Curve {
    pub const ALL: [Curve; 4] = [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1];

    /// The JWK `crv` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Secp256k1 => "secp256k1",
        }
    }

    /// Size in bytes of one coordinate and of the private scalar.
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    pub fn alg(self) -> Alg {
        match self {
            Curve::P256 => Alg::ES256,
            Curve::P384 => Alg::ES384,
            Curve::P521 => Alg::ES512,
            Curve::Secp256k1 => Alg::ES256K,
        }
    }

    pub fn from_jwk_name(s: &str) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_not_an_alg() {
        for alg in Alg::ALL {
            assert_eq!(alg.as_str().parse::<Alg>().ok(), Some(alg));
        }
        for bad in [
            "none", "None", "NONE", "hs256", "ES521", "ES224", "RSA1_5", "",
        ] {
            assert!(bad.parse::<Alg>().is_err(), "{bad}");
        }
    }
}
