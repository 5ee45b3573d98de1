//! Tokens of another shape than a compact JWS with JSON claims, and tokens too big to be one.

use jwkit::crypto::{Alg, b64};

use crate::jose::{claims_in, key_file, rejected, sign_raw};
use crate::util::Env;

/// A JWE where a JWS is expected, a JWS nested in a JWS (`cty: JWT`), the JSON serialization,
/// and a JWE's key-management alg in a JWS header: each must be refused, not unwrapped or
/// read as claims. Sources: CVE-2023-51774 (json-jwt accepted a JWE as a signed token);
/// the "JWE/JWS confusion" in the jose4j and node-jose advisories (2017-2018); RFC 7519 §7.2.
#[test]
fn nested_and_jwe_confusion() {
    let env = Env::new();
    let public = key_file("rfc7515-A.3.public.pem");
    let v = |token: &str, kind: &str| {
        rejected(&env, &["verify-jwt", "--key-file", &public, token], kind);
    };
    let inner = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256"}"#,
        &claims_in(600),
    );
    // A JWS whose payload is a whole signed token: the outer one holds no claims object.
    let nested = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256","cty":"JWT"}"#,
        inner.as_bytes(),
    );
    v(&nested, "malformed");
    // A compact JWE (RFC 7516 A.3's shape: five segments).
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64::encode(r#"{"alg":"A128KW","enc":"A128CBC-HS256"}"#),
        b64::encode([1u8; 40]),
        b64::encode([2u8; 16]),
        b64::encode(claims_in(600)),
        b64::encode([3u8; 16])
    );
    let run = rejected(
        &env,
        &["verify-jwt", "--key-file", &public, &jwe],
        "malformed",
    );
    assert!(run.stderr.contains("JWE"), "{}", run.stderr);
    // JWE algs in a three-segment token.
    for header in [
        r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#,
        r#"{"alg":"dir","enc":"A128GCM"}"#,
    ] {
        let token = format!(
            "{}.{}.{}",
            b64::encode(header),
            b64::encode(claims_in(600)),
            b64::encode([0u8; 64])
        );
        v(&token, "alg_not_allowed");
    }
    // The JWS JSON serialization where a compact token is expected.
    let parts: Vec<&str> = inner.split('.').collect();
    let json = serde_json::json!({
        "payload": parts[1],
        "signatures": [{"protected": parts[0], "signature": parts[2]}]
    })
    .to_string();
    v(&json, "malformed");
}

/// Oversize input: a token, a header and claims nested deep enough to exhaust a recursive
/// parser, and a huge batch line. Each is refused as malformed (exit 1) after reading at most
/// 64 KiB of it, never with a crash. Sources: CVE-2023-46233 class (unbounded token size),
/// CVE-2022-25898 (jsrsasign, crafted input), serde_json's recursion limit.
#[test]
fn oversize_inputs() {
    let env = Env::new();
    let public = key_file("rfc7515-A.3.public.pem");
    let big = format!(
        "{}.{}.{}",
        b64::encode(r#"{"alg":"ES256"}"#),
        "A".repeat(100_000), // over 64 KiB, under the 128 KiB an argument may have
        "A".repeat(86)
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &public, &big],
        "malformed",
    );
    let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    let deep_claims = format!(r#"{{"exp":9999999999,"x":{deep}}}"#);
    let token = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256"}"#,
        deep_claims.as_bytes(),
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &public, &token],
        "malformed",
    );
    let deep_header = format!(r#"{{"alg":"ES256","x":{deep}}}"#);
    let token = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        deep_header.as_bytes(),
        &claims_in(600),
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &public, &token],
        "malformed",
    );
    // On stdin, 10 MB with no newline (from a file: jwkit stops reading after 64 KiB).
    std::fs::write(env.path("huge"), vec![b'e'; 10_000_000]).expect("write");
    let out = env
        .cmd(&["verify-jwt", "--key-file", &public, "-"])
        .stdin(std::fs::File::open(env.path("huge")).expect("huge"))
        .output()
        .expect("jwkit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("(malformed)"), "{stderr}");
}
