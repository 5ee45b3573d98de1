//! JWE attack classes: each token is refused by `jwkit verify-jwt --decrypt-key-file` (exit 1,
//! nothing on stdout, the documented kind), and every failure once a key is at work reads the
//! same, so none is an oracle.

use std::io::Write;

use jwkit::crypto::{b64, jwe};
use serde_json::{Map, Value, json};

use crate::jose::{key_file, rejected};
use crate::util::Env;

/// A signed token to encrypt: claims that verify under rfc7515-A.3 (ES256), valid for 10 minutes.
fn signed(env: &Env) -> String {
    env.ok(&[
        "generate-jwt",
        "--key-file",
        &key_file("rfc7515-A.3.private.pem"),
        "--sub",
        "victim",
        "--exp",
        "10m",
    ])
    .trim()
    .to_string()
}

fn encrypt_to(
    jwk: &str,
    plaintext: &[u8],
    alg: &str,
    enc: &str,
    extra: Map<String, Value>,
) -> String {
    let o: Map<String, Value> = serde_json::from_str(jwk).expect("jwk");
    let key = jwe::encrypt_key_from_jwk(&o).expect("encryption key");
    jwe::encrypt(plaintext, &key, alg, enc, extra).expect("encrypt")
}

/// The token with its protected header changed by `edit` (the rest kept: the tag no longer
/// matches, which a careless implementation would notice only after using the header).
fn with_header(token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut header: Map<String, Value> =
        serde_json::from_slice(&b64::decode(&parts[0]).expect("b64")).expect("header");
    edit(&mut header);
    parts[0] = b64::encode(serde_json::to_vec(&header).expect("json"));
    parts.join(".")
}

fn verify(env: &Env, key: &str, token: &str, kind: &str) -> crate::util::Run {
    let public = key_file("rfc7515-A.3.public.pem");
    rejected(
        env,
        &[
            "verify-jwt",
            "--key-file",
            &public,
            "--decrypt-key-file",
            key,
            token,
        ],
        kind,
    )
}

const P256_PRIVATE: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;

/// Invalid-curve attacks on ECDH-ES: an ephemeral key off the curve, on another curve, or the
/// point at infinity's stand-ins. Each would leak bits of the private key to an implementation
/// that multiplies without checking. Sources: Jager, Schwenk, Somorovsky, "Practical Invalid
/// Curve Attacks on TLS-ECDH" (ESORICS 2015); CVE-2017-16007 (node-jose).
#[test]
fn invalid_curve_points_are_refused() {
    let env = Env::new();
    std::fs::write(env.path("ec.json"), P256_PRIVATE).expect("w");
    let good = encrypt_to(
        P256_PRIVATE,
        signed(&env).as_bytes(),
        "ECDH-ES+A128KW",
        "A128GCM",
        Map::new(),
    );
    let one = b64::encode([1u8; 32]);
    let zero = b64::encode([0u8; 32]);
    let mut messages = Vec::new();
    for (what, epk) in [
        (
            "off the curve",
            json!({"kty": "EC", "crv": "P-256", "x": one, "y": one}),
        ),
        (
            "zeros",
            json!({"kty": "EC", "crv": "P-256", "x": zero, "y": zero}),
        ),
        (
            "short coordinates",
            json!({"kty": "EC", "crv": "P-256", "x": b64::encode([1u8; 8]), "y": b64::encode([1u8; 8])}),
        ),
        (
            "another curve",
            json!({"kty": "EC", "crv": "P-384", "x": b64::encode([1u8; 48]), "y": b64::encode([1u8; 48])}),
        ),
        (
            "X25519 for a P-256 key",
            json!({"kty": "OKP", "crv": "X25519", "x": zero}),
        ),
    ] {
        let token = with_header(&good, |h| {
            h.insert("epk".into(), epk);
        });
        let run = verify(&env, "ec.json", &token, "decrypt_failed");
        messages.push((what, run.stderr));
    }
    // One message for all of them.
    let first = &messages[0].1;
    for (what, m) in &messages {
        assert_eq!(m, first, "{what}");
    }
    assert!(first.contains(jwe::FAILED), "{first}");
}

/// PBES2 with a huge iteration count: hours of PBKDF2 for one token. Source: CVE-2022-36083
/// (panva jose); jwkit caps p2c at 10,000, panva's choice.
#[test]
fn pbes2_iteration_count_is_capped() {
    let env = Env::new();
    std::fs::write(env.path("password"), "hunter2\n").expect("w");
    let header = json!({"alg": "PBES2-HS256+A128KW", "enc": "A128GCM",
        "p2s": b64::encode([7u8; 16]), "p2c": 2_147_483_647u64});
    let token = format!(
        "{}.{}.{}.{}.{}",
        b64::encode(header.to_string()),
        b64::encode([1u8; 24]),
        b64::encode([2u8; 12]),
        b64::encode([3u8; 40]),
        b64::encode([4u8; 16])
    );
    let public = key_file("rfc7515-A.3.public.pem");
    let run = rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            &public,
            "--password-file",
            "password",
            &token,
        ],
        "alg_not_allowed",
    );
    assert!(
        run.stderr.contains("over the cap of 10000"),
        "{}",
        run.stderr
    );
}

/// A compressed plaintext that inflates without end (zip: DEF). Source: CVE-2024-28180
/// (go-jose decompression bomb); jwkit inflates to 250 KB at most.
#[test]
fn zip_bombs_are_cut_off() {
    let env = Env::new();
    let oct = r#"{"kty":"oct","k":"and0LWZ1enotMzItYnl0ZS1rZXktMDEyMzQ1Njc4OWE"}"#;
    std::fs::write(env.path("oct.json"), oct).expect("w");
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![b'A'; 64 << 20]).expect("deflate");
    let bomb = e.finish().expect("deflate");
    let mut extra = Map::new();
    extra.insert("zip".into(), "DEF".into());
    let token = encrypt_to(oct, &bomb, "A256KW", "A256GCM", extra);
    let run = verify(&env, "oct.json", &token, "malformed");
    assert!(run.stderr.contains("inflates beyond"), "{}", run.stderr);
}

/// RSA1_5 key transport is a padding oracle (Bleichenbacher's "Million Message Attack", 1998).
/// jwkit refuses it unless --insecure; with it, a bad padding and a bad tag fail alike
/// (RFC 7516 §11.5: a random CEK stands in for a failed unwrap).
#[test]
fn rsa1_5_is_refused_and_never_an_oracle() {
    let env = Env::new();
    let case: Value = serde_json::from_slice(
        &std::fs::read(
            crate::util::vectors()
                .join("jwe/rfc7520/5_1.key_encryption_using_rsa_v15_and_aes-hmac-sha2.json"),
        )
        .expect("vector"),
    )
    .expect("json");
    std::fs::write(env.path("rsa.json"), case["input"]["key"].to_string()).expect("w");
    let token = case["output"]["compact"]
        .as_str()
        .expect("compact")
        .to_string();
    verify(&env, "rsa.json", &token, "alg_not_allowed");
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    // A bad padding: the encrypted key changed.
    let mut ek = b64::decode(&parts[1]).expect("b64");
    ek[10] ^= 1;
    let bad_padding = {
        let mut p = parts.clone();
        p[1] = b64::encode(&ek);
        p.join(".")
    };
    // A bad tag.
    let mut tag = b64::decode(&parts[4]).expect("b64");
    tag[0] ^= 1;
    parts[4] = b64::encode(&tag);
    let bad_tag = parts.join(".");
    let public = key_file("rfc7515-A.3.public.pem");
    let mut seen = Vec::new();
    for t in [&bad_padding, &bad_tag] {
        let run = rejected(
            &env,
            &[
                "verify-jwt",
                "--insecure",
                "--key-file",
                &public,
                "--decrypt-key-file",
                "rsa.json",
                t,
            ],
            "decrypt_failed",
        );
        seen.push(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    assert_eq!(
        seen[0], seen[1],
        "a padding failure reads like a tag failure"
    );
}

/// Keys used for what they are not for: a signing key (use: sig) never decrypts, an
/// encryption key (use: enc) never verifies, a key-wrap key of the wrong size and an alg the
/// key cannot serve fail without telling why beyond the one message. Source: RFC 7517 §4.2-4.3;
/// the "key confusion" class of JOSE advisories (CVE-2015-9235 for JWS).
#[test]
fn alg_and_key_misuse_is_refused() {
    let env = Env::new();
    let mut sig: Map<String, Value> = serde_json::from_str(P256_PRIVATE).expect("jwk");
    sig.insert("use".into(), "sig".into());
    std::fs::write(env.path("sig.json"), Value::Object(sig.clone()).to_string()).expect("w");
    let token = encrypt_to(
        P256_PRIVATE,
        signed(&env).as_bytes(),
        "ECDH-ES",
        "A256GCM",
        Map::new(),
    );
    let public = key_file("rfc7515-A.3.public.pem");
    let run = env.run(&[
        "verify-jwt",
        "--key-file",
        &public,
        "--decrypt-key-file",
        "sig.json",
        &token,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("never decrypts"), "{}", run.stderr);
    // An enc key never verifies a JWS.
    let mut enc = sig;
    enc.insert("use".into(), "enc".into());
    enc.remove("d");
    std::fs::write(env.path("enc.public.json"), Value::Object(enc).to_string()).expect("w");
    let run = env.run(&["verify-jwt", "--key-file", "enc.public.json", &signed(&env)]);
    assert_ne!(run.code, 0, "an enc key verified a JWS: {}", run.stdout);
    assert!(run.stdout.is_empty());
    // A128KW under a 32-byte key, and an RSA key for ECDH-ES.
    let oct32 = r#"{"kty":"oct","k":"and0LWZ1enotMzItYnl0ZS1rZXktMDEyMzQ1Njc4OWE"}"#;
    let oct16 = r#"{"kty":"oct","k":"Zm9yLXRoZS1qd2UtZnV6eg"}"#;
    std::fs::write(env.path("oct32.json"), oct32).expect("w");
    let kw = encrypt_to(
        oct16,
        signed(&env).as_bytes(),
        "A128KW",
        "A128GCM",
        Map::new(),
    );
    verify(&env, "oct32.json", &kw, "decrypt_failed");
    let rsa = std::fs::read_to_string(key_file("rfc7515-A.2.jwk.json")).expect("rsa");
    std::fs::write(env.path("rsa.json"), rsa).expect("w");
    verify(&env, "rsa.json", &token, "unknown_kid");
}
