//! Signatures that verify where a sloppy implementation is involved: all-zero ECDSA values,
//! another encoding, the other S, and a cube root standing in for an RSA signature.

use std::process::Command;

use jwkit::crypto::{Alg, b64};

use crate::jose::{claims_in, key_file, rejected, sign_raw};
use crate::openssl_rsa;
use crate::util::Env;

/// Curve, JWS alg, signature half length, and the vector keys (private, public).
const CURVES: [(Alg, usize, &str, &str); 3] = [
    (
        Alg::ES256,
        32,
        "rfc7515-A.3.private.pem",
        "rfc7515-A.3.public.pem",
    ),
    (
        Alg::ES384,
        48,
        "generated-p384.private.pem",
        "generated-p384.public.pem",
    ),
    (
        Alg::ES512,
        66,
        "rfc7515-A.4.private.pem",
        "rfc7515-A.4.public.pem",
    ),
];

/// The group orders, big-endian (SEC 2): r = s = n is the second psychic signature.
fn order(alg: Alg) -> Vec<u8> {
    let hex = match alg {
        Alg::ES256 => "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
        Alg::ES384 => {
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973"
        }
        _ => {
            "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409"
        }
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn input(alg: Alg) -> String {
    format!(
        "{}.{}",
        b64::encode(format!(r#"{{"alg":"{}"}}"#, alg.as_str())),
        b64::encode(claims_in(600))
    )
}

/// r = s = 0 and r = s = n on P-256, P-384 and P-521. Source: CVE-2022-21449 ("psychic
/// signatures", Java 15-18 accepted them for any message).
#[test]
fn psychic_signatures_on_every_curve() {
    let env = Env::new();
    for (alg, half, _, public) in CURVES {
        let n = order(alg);
        assert_eq!(n.len(), half);
        for value in [vec![0u8; half], n] {
            let sig = [value.clone(), value].concat();
            let token = format!("{}.{}", input(alg), b64::encode(sig));
            rejected(
                &env,
                &["verify-jwt", "--key-file", &key_file(public), &token],
                "bad_signature",
            );
        }
    }
}

/// A valid ECDSA signature in ASN.1 DER form instead of JWS's fixed-size r‖s: implementations
/// that hand the bytes to a DER verifier accept it (and with it, the encodings of one signature
/// multiply). Source: RFC 7518 §3.4; the CVE-2022-21449 write-ups on DER parsing.
#[test]
fn der_encoded_ecdsa_signatures() {
    let env = Env::new();
    for (alg, _, private, public) in CURVES {
        let k = jwkit::crypto::load_key(&std::fs::read(key_file(private)).expect("k"), None)
            .expect("k");
        let algorithm = match alg {
            Alg::ES256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            Alg::ES384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            _ => &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        };
        let der_key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            algorithm,
            &k.to_pkcs8_der().expect("pkcs8"),
        )
        .expect("asn1 signer");
        let input = input(alg);
        let sig = der_key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
            .expect("sign");
        rejected(
            &env,
            &[
                "verify-jwt",
                "--key-file",
                &key_file(public),
                &format!("{input}.{}", b64::encode(sig.as_ref())),
            ],
            "bad_signature",
        );
    }
}

fn forge(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/attacks/forge.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 (the forgeries use Python's integers)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// ECDSA malleability: (r, n - s) verifies wherever (r, s) does. jwkit accepts both on
/// purpose: JWS (RFC 7518 §3.4) does not ask for low S, and common signers (Go's crypto/ecdsa,
/// OpenSSL, Java, Python's cryptography, aws-lc) leave S as it comes, so about half of every
/// provider's ES256 tokens have a high S; refusing them would reject valid tokens. What the
/// attacker gains is a second spelling of a token it already holds, with the same header and
/// claims, which this test checks; a replay cache must key on `jti`, not on the token's text.
/// The class is also checked against tampering: the other S over changed claims is rejected.
/// Source: Wycheproof's ECDSA malleability cases; BIP-62 (Bitcoin's low-S rule).
#[test]
fn high_s_ecdsa_changes_no_claim() {
    let env = Env::new();
    for (alg, _, private, public) in CURVES {
        let token = sign_raw(
            private,
            alg,
            format!(r#"{{"alg":"{}"}}"#, alg.as_str()).as_bytes(),
            &claims_in(600),
        );
        let other = forge(&["high-s", &token, alg.as_str()]);
        assert_ne!(other, token);
        let public = key_file(public);
        let a = env.ok(&["verify-jwt", "--key-file", &public, "--json", &token]);
        let b = env.ok(&["verify-jwt", "--key-file", &public, "--json", &other]);
        assert_eq!(a, b, "the other S verified with other claims or header");
        let parts: Vec<&str> = other.split('.').collect();
        let tampered_claims = String::from_utf8(claims_in(600))
            .expect("utf-8")
            .replace("alice", "admin");
        let tampered = format!("{}.{}.{}", parts[0], b64::encode(tampered_claims), parts[2]);
        rejected(
            &env,
            &["verify-jwt", "--key-file", &public, &tampered],
            "bad_signature",
        );
    }
}

/// Bleichenbacher's 2006 forgery for RSA keys with e = 3: a cube root whose cube starts with
/// `00 01 FF 00 DigestInfo hash` and ends in garbage passes a verifier that parses the padding
/// instead of comparing it whole. Sources: Bleichenbacher, CRYPTO 2006 rump session;
/// CVE-2006-4339 (OpenSSL), CVE-2014-1568 (NSS "BERserk"); python-rsa CVE-2016-1494.
#[test]
fn bleichenbacher_e3_forgery() {
    let env = Env::new();
    openssl_rsa(&env, "e3.pem", 2048, 3);
    let public = env.ok(&["key", "public", "e3.pem", "-f", "jwk"]);
    std::fs::write(env.path("e3.pub.jwk"), &public).expect("write");
    let jwk: serde_json::Value = serde_json::from_str(&public).expect("jwk");
    assert_eq!(jwk["e"], "Aw", "e = 3");
    let input = input(Alg::RS256);
    let sig = forge(&["e3", jwk["n"].as_str().expect("n"), &input]);
    rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            "e3.pub.jwk",
            &format!("{input}.{sig}"),
        ],
        "bad_signature",
    );
    // The same key's own signatures verify: the refusal is about the forgery, not the key.
    let good = env.ok(&["generate-jwt", "--key-file", "e3.pem", "--sub", "alice"]);
    env.ok(&["verify-jwt", "--key-file", "e3.pub.jwk", good.trim()]);
}
