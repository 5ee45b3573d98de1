//! `jwkit verify-jwt`: RFC and Wycheproof vectors, every attack class, and remote key sets
//! against a real HTTP server on 127.0.0.1 (requests counted, slow and huge bodies, redirects).

use std::io::Write;
use std::time::{Duration, Instant};

use jwkit::crypto::{self, Alg, b64};
use serde_json::{Value, json};

use crate::http::{Route, TestServer};
use crate::jose::{claims_in, es256, key_file, rejected, sign_raw};
use crate::util::{Env, vector_json};

#[test]
fn rfc_tokens_verify_and_unsecured_ones_are_rejected() {
    let env = Env::new();
    for (file, extra) in [
        ("rfc7515-A.1-HS256.json", "--ignore-exp"),
        ("rfc7515-A.2-RS256.json", "--ignore-exp"),
        ("rfc7515-A.3-ES256.json", "--ignore-exp"),
        ("rfc7515-A.4-ES512.json", "--raw"),
        ("rfc7520-4.1.json", "--raw"),
        ("rfc7520-4.2.json", "--raw"),
        ("rfc7520-4.3.json", "--raw"),
        ("rfc7520-4.4.json", "--raw"),
        ("rfc8037-A-ed25519.json", "--raw"),
    ] {
        let v = vector_json(file);
        let jwk = if v["public_jwk"].is_object() {
            &v["public_jwk"]
        } else {
            &v["jwk"]
        };
        std::fs::write(env.path("k.json"), jwk.to_string()).expect("write");
        let token = v["token"].as_str().expect("token");
        let run = env.run(&["verify-jwt", "--key-file", "k.json", extra, token]);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        if extra == "--raw" {
            let payload = b64::decode(token.split('.').nth(1).expect("payload")).expect("b64");
            assert_eq!(
                run.stdout_bytes, payload,
                "{file}: --raw prints the payload as is"
            );
        } else {
            let claims: Value = serde_json::from_str(&run.stdout).expect("claims");
            assert_eq!(claims["iss"], "joe", "{file}");
        }
    }
    // The 2011 tokens without --ignore-exp are expired; non-JSON payloads need --raw.
    let a2 = vector_json("rfc7515-A.2-RS256.json");
    let t = a2["token"].as_str().expect("t");
    let pem = key_file("rfc7515-A.2.public.pem");
    let run = rejected(&env, &["verify-jwt", "--key-file", &pem, t], "expired");
    assert!(
        run.stderr.contains("expired at 2011-03-22T18:43:00Z ("),
        "{}",
        run.stderr
    );
    let ed = vector_json("rfc8037-A-ed25519.json");
    let ed_pub = key_file("rfc8037-A.1.public.jwk.json");
    let run = rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            &ed_pub,
            ed["token"].as_str().expect("t"),
        ],
        "malformed",
    );
    assert!(run.stderr.contains("--raw"), "{}", run.stderr);
    for file in ["rfc7515-A.5-none.json", "rfc7519-6.1-unsecured-jwt.json"] {
        let t = vector_json(file)["token"].as_str().expect("t").to_string();
        rejected(
            &env,
            &["verify-jwt", "--key-file", &pem, "--ignore-exp", &t],
            "alg_not_allowed",
        );
        rejected(
            &env,
            &["verify-jwt", "--key-file", &pem, "--raw", &t],
            "alg_not_allowed",
        );
    }
}

/// Wycheproof `json_web_signature_test.json`: every case agrees with its label, except the
/// quirks DESIGN.md §8 lists, each asserted here with the reason.
#[test]
fn wycheproof_jws_cases_agree_with_their_labels() {
    let env = Env::new();
    let suite = vector_json("wycheproof/json_web_signature_test.json");
    let quirks: &[(u64, &str)] = &[
        // One token (HS256 over "Test") appears three times with contradictory labels: 357 says
        // valid, 367 and 370 say invalid. It is valid; we accept all three.
        (
            367,
            "same token as tcId 357, labelled invalid there but valid here",
        ),
        (
            370,
            "same token as tcId 357, labelled invalid there but valid here",
        ),
        // Labelled valid, but a '?' sits inside a base64url segment: strict base64url refuses it.
        (372, "'?' in the header segment is not base64url"),
        (373, "'?' in the payload segment is not base64url"),
        // The key says alg PS256 and the token PS384: the key's alg is binding, so we refuse.
        (346, "key alg PS256 disagrees with token alg PS384"),
        (350, "key alg PS256 disagrees with token alg PS384"),
        // The key says alg "ES521", which is no algorithm (ES512 is meant): the key is refused.
        (347, "key alg ES521 is not an algorithm"),
        (351, "key alg ES521 is not an algorithm"),
    ];
    let mut checked = 0;
    for group in suite["testGroups"].as_array().expect("groups") {
        let key = group.get("public").unwrap_or(&group["private"]);
        std::fs::write(env.path("key.json"), key.to_string()).expect("write");
        for test in group["tests"].as_array().expect("tests") {
            let id = test["tcId"].as_u64().expect("id");
            let Some(token) = test["jws"].as_str() else {
                // JSON serialization is not compact: jwkit reads compact tokens only.
                continue;
            };
            let run = env.run(&[
                "verify-jwt",
                "--raw",
                "--key-file",
                "key.json",
                "--token",
                token,
            ]);
            assert!(
                run.code == 0 || run.code == 1 || run.code == 2,
                "tcId {id}: {}",
                run.stderr
            );
            assert!(
                !run.stderr.contains("panicked"),
                "tcId {id}: {}",
                run.stderr
            );
            let accepted = run.code == 0;
            let labelled_valid = test["result"] == "valid";
            match quirks.iter().find(|(q, _)| *q == id) {
                Some((_, why)) => assert_eq!(
                    accepted, !labelled_valid,
                    "tcId {id} ({why}): {}",
                    run.stderr
                ),
                None => assert_eq!(
                    accepted, labelled_valid,
                    "tcId {id} ({}): {}",
                    test["comment"], run.stderr
                ),
            }
            checked += 1;
        }
    }
    assert!(checked >= 390, "cases checked: {checked}");
}

#[test]
fn kid_is_never_a_path_and_unknown_kids_list_the_known_ones() {
    let env = Env::new();
    crate::jose::two_key_set(&env);
    let token = es256(r#"{"alg":"ES256","kid":"../../dev/null"}"#);
    let run = rejected(
        &env,
        &["verify-jwt", "--jwks-file", "set.json", &token],
        "unknown_kid",
    );
    assert!(
        run.stderr
            .contains("oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"),
        "{}",
        run.stderr
    );
    // With the right kid the same set verifies, and without a kid the one fitting key is used.
    let good = es256(r#"{"alg":"ES256","kid":"oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"}"#);
    env.ok(&["verify-jwt", "--jwks-file", "set.json", &good]);
    env.ok(&[
        "verify-jwt",
        "--jwks-file",
        "set.json",
        &es256(r#"{"alg":"ES256"}"#),
    ]);
    // Two keys under one kid that both fit: ambiguous.
    let jwk: Value = serde_json::from_str(&env.ok(&[
        "key",
        "public",
        &key_file("rfc7515-A.3.public.pem"),
        "-f",
        "jwk",
    ]))
    .expect("j");
    let mut twin = jwk.clone();
    twin["alg"] = "ES256".into();
    std::fs::write(
        env.path("dup.json"),
        json!({"keys": [jwk, twin]}).to_string(),
    )
    .expect("write");
    rejected(
        &env,
        &["verify-jwt", "--jwks-file", "dup.json", &good],
        "ambiguous_key",
    );
}

#[test]
fn crit_duplicates_der_signatures_and_tampering_are_rejected() {
    let env = Env::new();
    let pem = key_file("rfc7515-A.3.public.pem");
    let v = |t: &str, kind: &str| {
        rejected(&env, &["verify-jwt", "--key-file", &pem, t], kind);
    };
    v(
        &es256(r#"{"alg":"ES256","crit":["exp"]}"#),
        "crit_unsupported",
    );
    v(&es256(r#"{"alg":"ES256","alg":"ES256"}"#), "malformed");
    let dup_claims = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256"}"#,
        br#"{"exp":9999999999,"exp":1}"#,
    );
    v(&dup_claims, "malformed");
    // An ES256 signature in ASN.1 DER form instead of r||s.
    let k = crypto::load_key(
        &std::fs::read(key_file("rfc7515-A.3.private.pem")).expect("k"),
        None,
    )
    .expect("k");
    let der_key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &k.to_pkcs8_der().expect("pkcs8"),
    )
    .expect("asn1 signer");
    let input = format!(
        "{}.{}",
        b64::encode(br#"{"alg":"ES256"}"#),
        b64::encode(claims_in(600))
    );
    let der_sig = der_key
        .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
        .expect("sign");
    v(
        &format!("{input}.{}", b64::encode(der_sig.as_ref())),
        "bad_signature",
    );
    // r = s = 0.
    v(
        &format!("{input}.{}", b64::encode([0u8; 64])),
        "bad_signature",
    );
    // Tampered payload and header (still valid JSON), signature kept.
    let good = es256(r#"{"alg":"ES256"}"#);
    let parts: Vec<&str> = good.split('.').collect();
    let other_payload = b64::encode(
        String::from_utf8(claims_in(600))
            .expect("u")
            .replace("alice", "mallory"),
    );
    v(
        &format!("{}.{other_payload}.{}", parts[0], parts[2]),
        "bad_signature",
    );
    let other_header = b64::encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    v(
        &format!("{other_header}.{}.{}", parts[1], parts[2]),
        "bad_signature",
    );
    // Non-canonical base64url (padding, trailing bits) in the signature.
    v(&format!("{good}="), "malformed");
}

#[test]
fn claims_are_checked_strictly() {
    let env = Env::new();
    let key = key_file("rfc8037-A.1.private.pem");
    let pubk = key_file("rfc8037-A.1.public.pem");
    let token = |extra: &[&str]| {
        let mut a = vec![
            "generate-jwt",
            "--key-file",
            key.as_str(),
            "--iss",
            "me",
            "--aud",
            "api",
            "--sub",
            "alice",
            "--typ",
            "at+jwt",
        ];
        a.extend_from_slice(extra);
        env.ok(&a).trim().to_string()
    };
    let good = token(&["--exp", "10m"]);
    let out = env.ok(&[
        "verify-jwt",
        "--key-file",
        &pubk,
        "--iss",
        "me",
        "--aud",
        "x",
        "--aud",
        "api",
        "--sub",
        "alice",
        "--typ",
        "application/AT+JWT",
        "--require",
        "iat",
        &good,
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("claims")["sub"],
        "alice"
    );
    let doc: Value = serde_json::from_str(&env.ok(&[
        "verify-jwt",
        "--key-file",
        &pubk,
        "--aud",
        "api",
        "--json",
        &good,
    ]))
    .expect("json");
    assert_eq!(
        (doc["valid"].clone(), doc["alg"].clone()),
        (json!(true), json!("EdDSA"))
    );
    // RFC 7519 §4.1.3: a token with aud is for someone; a verifier that names no audience
    // rejects it, and says which flag to add. --any-aud accepts it on purpose.
    let no_aud = rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, &good],
        "claim_mismatch",
    );
    assert!(
        no_aud.stderr.contains("--aud") && no_aud.stderr.contains("--any-aud"),
        "{}",
        no_aud.stderr
    );
    env.ok(&["verify-jwt", "--key-file", &pubk, "--any-aud", &good]);
    // A token without aud needs no --aud.
    let no_aud_token = env
        .ok(&["generate-jwt", "--key-file", key.as_str(), "--sub", "alice"])
        .trim()
        .to_string();
    env.ok(&["verify-jwt", "--key-file", &pubk, &no_aud_token]);
    let r = rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, &token(&["--expired"])],
        "expired",
    );
    assert!(
        r.stderr.contains("(1h ago)") || r.stderr.contains("(59m ago)"),
        "{}",
        r.stderr
    );
    rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            &pubk,
            &token(&["--exp", "2h", "--nbf", "1h"]),
        ],
        "not_yet_valid",
    );
    // Within the leeway, nbf a few seconds ahead and exp a few seconds past are fine.
    env.ok(&[
        "verify-jwt",
        "--key-file",
        &pubk,
        "--aud",
        "api",
        &token(&["--exp", "-10s"]),
    ]);
    rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            &pubk,
            "--leeway",
            "0s",
            &token(&["--exp", "-10s"]),
        ],
        "expired",
    );
    rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            &pubk,
            "--any-aud",
            "--require",
            "iat",
            &token(&["--no-iat"]),
        ],
        "missing_claim",
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, "--iss", "you", &good],
        "claim_mismatch",
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, "--aud", "web", &good],
        "claim_mismatch",
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, "--sub", "bob", &good],
        "claim_mismatch",
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, "--typ", "JWT", &good],
        "claim_mismatch",
    );
    rejected(
        &env,
        &[
            "verify-jwt",
            "--key-file",
            &pubk,
            "--any-aud",
            "--require",
            "jti",
            &good,
        ],
        "missing_claim",
    );
    rejected(
        &env,
        &["verify-jwt", "--key-file", &pubk, "--alg", "ES256", &good],
        "alg_not_allowed",
    );
    // Wrong types are invalid, not absent.
    for bad in [
        r#"{"exp":"9999999999"}"#,
        r#"{"exp":-1}"#,
        r#"{"exp":1e300}"#,
        r#"{"exp":9999999999,"nbf":true}"#,
    ] {
        let t = sign_raw(
            "rfc8037-A.1.private.pem",
            Alg::EdDSA,
            br#"{"alg":"EdDSA"}"#,
            bad.as_bytes(),
        );
        rejected(&env, &["verify-jwt", "--key-file", &pubk, &t], "malformed");
    }
    let ignored = env.run(&[
        "verify-jwt",
        "--key-file",
        &pubk,
        "--any-aud",
        "--ignore-exp",
        &token(&["--expired"]),
    ]);
    assert_eq!(ignored.code, 0);
    assert!(
        ignored.stderr.contains("warning: --ignore-exp"),
        "{}",
        ignored.stderr
    );
    // Token from stdin and with --token, Bearer prefix and all.
    assert_eq!(
        env.run_with_stdin(
            &["verify-jwt", "--key-file", &pubk, "--aud", "api"],
            format!("Bearer {good}\n").as_bytes()
        )
        .code,
        0
    );
    env.ok(&[
        "verify-jwt",
        "--key-file",
        &pubk,
        "--aud",
        "api",
        "--token",
        &format!("Bearer {good}"),
    ]);
}

#[test]
fn errors_that_are_not_about_the_token_exit_2() {
    let env = Env::new();
    let t = es256(r#"{"alg":"ES256"}"#);
    env.run(&["verify-jwt", &t]).fails_with("no key source");
    env.run(&["verify-jwt", "--key-file", "missing.pem", &t])
        .fails_with("reading key file missing.pem");
    env.run(&[
        "verify-jwt",
        "--jwks-url",
        "http://example.com/jwks.json",
        &t,
    ])
    .fails_with("refusing plain HTTP");
    env.run(&["verify-jwt", "--jwks-url", "ftp://127.0.0.1/jwks", &t])
        .fails_with("unsupported URL scheme");
    let j = env.run(&["verify-jwt", "--key-file", "missing.pem", "--json", &t]);
    assert_eq!(j.code, 2);
    let doc: Value = serde_json::from_str(&j.stdout).expect("json");
    assert_eq!(doc["error"]["kind"], "io");
}

pub(crate) fn jwks_of(env: &Env, keys: &[&str]) -> String {
    let mut args = vec!["key", "jwks"];
    let paths: Vec<String> = keys.iter().map(|k| key_file(k)).collect();
    args.extend(paths.iter().map(String::as_str));
    env.ok(&args)
}

#[test]
fn remote_sets_are_cached_and_an_unknown_kid_refetches_once() {
    let env = Env::new();
    let server = TestServer::start();
    server.set(
        "/jwks",
        Route::json(jwks_of(&env, &["rfc7515-A.3.public.pem"]))
            .header("Cache-Control", "public, max-age=600")
            .header("ETag", "\"v1\""),
    );
    let url = server.url("/jwks");
    let t1 = es256(r#"{"alg":"ES256","kid":"oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"}"#);
    env.ok(&["verify-jwt", "--jwks-url", &url, &t1]);
    assert_eq!(server.hits("/jwks"), 1);
    env.ok(&["verify-jwt", "--jwks-url", &url, &t1]);
    assert_eq!(
        server.hits("/jwks"),
        1,
        "a second run within max-age makes no request"
    );
    // The cache file is private.
    let dir = env.cache().join("jwkit/jwks");
    let file = std::fs::read_dir(&dir)
        .expect("cache dir")
        .next()
        .expect("entry")
        .expect("e")
        .path();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).expect("m").permissions().mode() & 0o777,
        0o600
    );
    // A new key appears on the server: the unknown kid triggers exactly one refetch.
    server.set(
        "/jwks",
        Route::json(jwks_of(
            &env,
            &["rfc7515-A.3.public.pem", "rfc8037-A.1.public.pem"],
        ))
        .header("ETag", "\"v2\""),
    );
    let ed = env.ok(&[
        "generate-jwt",
        "--key-file",
        &key_file("rfc8037-A.1.private.pem"),
        "--exp",
        "5m",
    ]);
    env.ok(&["verify-jwt", "--jwks-url", &url, ed.trim()]);
    assert_eq!(server.hits("/jwks"), 2);
    // Another unknown kid within 30 s: no further request, and the error lists the kids.
    let t3 = es256(r#"{"alg":"ES256","kid":"nobody"}"#);
    let run = rejected(
        &env,
        &["verify-jwt", "--jwks-url", &url, &t3],
        "unknown_kid",
    );
    assert!(
        run.stderr
            .contains("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"),
        "{}",
        run.stderr
    );
    assert_eq!(server.hits("/jwks"), 2, "at most one refetch per 30 s");
    // --no-cache fetches every time.
    env.ok(&["verify-jwt", "--jwks-url", &url, "--no-cache", &t1]);
    assert_eq!(server.hits("/jwks"), 3);
}

#[test]
fn an_expired_cache_entry_is_revalidated_with_its_etag_and_used_when_the_server_fails() {
    let env = Env::new();
    let server = TestServer::start();
    server.set(
        "/jwks",
        Route::json(jwks_of(&env, &["rfc7515-A.3.public.pem"])).header("ETag", "\"abc\""),
    );
    let url = server.url("/jwks");
    let t = es256(r#"{"alg":"ES256"}"#);
    env.ok(&["verify-jwt", "--jwks-url", &url, &t]);
    let age_cache = |secs: i64| {
        let dir = env.cache().join("jwkit/jwks");
        for e in std::fs::read_dir(&dir).expect("dir") {
            let p = e.expect("e").path();
            let mut entry: Value =
                serde_json::from_slice(&std::fs::read(&p).expect("r")).expect("j");
            entry["fetched_ms"] = (entry["fetched_ms"].as_i64().expect("at") - secs * 1000).into();
            std::fs::write(&p, entry.to_string()).expect("w");
        }
    };
    age_cache(400);
    env.ok(&["verify-jwt", "--jwks-url", &url, &t]);
    assert_eq!(server.hits("/jwks"), 2);
    assert_eq!(
        server.if_none_match(),
        vec!["\"abc\"".to_string()],
        "revalidated with If-None-Match (a 304)"
    );
    age_cache(400);
    server.set("/jwks", Route::status(503));
    let run = env.run(&["verify-jwt", "--jwks-url", &url, &t]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("warning:")
            && run.stderr.contains("HTTP 503")
            && run.stderr.contains("cached"),
        "{}",
        run.stderr
    );
    age_cache(25 * 3600);
    env.run(&["verify-jwt", "--jwks-url", &url, &t])
        .fails_with("HTTP 503");
}

#[test]
fn slow_huge_and_redirecting_servers_are_cut_off() {
    let env = Env::new();
    let server = TestServer::start();
    let set = jwks_of(&env, &["rfc7515-A.3.public.pem"]);
    let t = es256(r#"{"alg":"ES256"}"#);
    let mut slow = Route::json(set.clone());
    slow.trickle = Some(Duration::from_secs(1));
    server.set("/slow", slow);
    let started = Instant::now();
    env.run(&[
        "verify-jwt",
        "--jwks-url",
        &server.url("/slow"),
        "--timeout",
        "2s",
        &t,
    ])
    .fails_with("timed out");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off by the timeout"
    );
    server.set("/huge", Route::json(vec![b' '; 10 * 1024 * 1024]));
    env.run(&["verify-jwt", "--jwks-url", &server.url("/huge"), &t])
        .fails_with("over 1048576 bytes");
    // A small gzip body that inflates to 10 MB is counted after decompression.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 10 * 1024 * 1024]).expect("gzip");
    let bomb = gz.finish().expect("gzip");
    assert!(bomb.len() < 64 * 1024);
    server.set(
        "/bomb",
        Route::json(bomb).header("Content-Encoding", "gzip"),
    );
    env.run(&["verify-jwt", "--jwks-url", &server.url("/bomb"), &t])
        .fails_with("over 1048576 bytes");
    // Up to 3 redirects are followed; a 4th is refused.
    server.set("/jwks", Route::json(set));
    server.set("/r1", Route::redirect("/jwks"));
    server.set("/r2", Route::redirect("/r1"));
    server.set("/r3", Route::redirect("/r2"));
    server.set("/r4", Route::redirect("/r3"));
    env.ok(&[
        "verify-jwt",
        "--jwks-url",
        &server.url("/r3"),
        "--no-cache",
        &t,
    ]);
    env.run(&[
        "verify-jwt",
        "--jwks-url",
        &server.url("/r4"),
        "--no-cache",
        &t,
    ])
    .fails_with("bad redirect");
    server.set("/off", Route::redirect("http://example.com/jwks"));
    env.run(&[
        "verify-jwt",
        "--jwks-url",
        &server.url("/off"),
        "--no-cache",
        &t,
    ])
    .fails_with("bad redirect");
    server.set("/notjson", Route::json("<html>"));
    env.run(&["verify-jwt", "--jwks-url", &server.url("/notjson"), &t])
        .fails_with("not a usable JWKS");
}

#[test]
fn oidc_discovery_and_jwkit_server_urls() {
    let env = Env::new();
    let server = TestServer::start();
    server.set(
        "/.well-known/jwks.json",
        Route::json(jwks_of(&env, &["rfc8037-A.1.public.pem"])),
    );
    server.set(
        "/.well-known/openid-configuration",
        Route::json(
            json!({"issuer": server.base, "jwks_uri": server.url("/.well-known/jwks.json")})
                .to_string(),
        ),
    );
    let key = key_file("rfc8037-A.1.private.pem");
    let good = env.ok(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--iss",
        &server.base,
        "--exp",
        "5m",
    ]);
    env.ok(&["verify-jwt", "--issuer", &server.base, good.trim()]);
    env.ok(&["verify-jwt", "--server", &server.base, good.trim()]);
    let other = env.ok(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--iss",
        "https://elsewhere",
        "--exp",
        "5m",
    ]);
    rejected(
        &env,
        &["verify-jwt", "--issuer", &server.base, other.trim()],
        "claim_mismatch",
    );
    let via_env = crate::util::Run::from(
        env.cmd(&["verify-jwt", good.trim()])
            .env("JWKIT_SERVER", &server.base)
            .output()
            .expect("run"),
    );
    assert_eq!(via_env.code, 0, "{}", via_env.stderr);
    let liar = TestServer::start();
    liar.set(
        "/.well-known/openid-configuration",
        Route::json(
            json!({"issuer": server.base, "jwks_uri": server.url("/.well-known/jwks.json")})
                .to_string(),
        ),
    );
    env.run(&["verify-jwt", "--issuer", &liar.base, good.trim()])
        .fails_with("refusing its keys");
}

#[test]
fn batch_results_come_in_input_order_on_any_number_of_threads() {
    let env = Env::new();
    let server = TestServer::start();
    server.set(
        "/jwks",
        Route::json(jwks_of(&env, &["rfc7515-A.3.public.pem"])),
    );
    let good = es256(r#"{"alg":"ES256"}"#);
    let expired = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256"}"#,
        br#"{"exp":1}"#,
    );
    let mut input = String::new();
    let mut expect = Vec::new();
    for i in 0..300 {
        match i % 3 {
            0 => input.push_str(&format!("{good}\n")),
            1 => input.push_str(&format!("Bearer {expired}\n")),
            _ => input.push_str("not.a.token\n"),
        }
        expect.push(i % 3 == 0);
    }
    input.push('\n');
    std::fs::write(env.path("tokens.txt"), &input).expect("write");
    let mut outputs = Vec::new();
    for threads in ["1", "2", "7"] {
        let run = env.run(&[
            "verify-jwt",
            "--batch",
            "--json",
            "--threads",
            threads,
            "--jwks-url",
            &server.url("/jwks"),
            "tokens.txt",
        ]);
        assert_eq!(run.code, 1, "some tokens are invalid: {}", run.stderr);
        let lines: Vec<Value> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 300);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["line"], i + 1);
            assert_eq!(l["valid"], expect[i], "line {}", i + 1);
            if !expect[i] {
                assert_eq!(
                    l["error"]["kind"],
                    if i % 3 == 1 { "expired" } else { "malformed" }
                );
            } else {
                assert_eq!(l["alg"], "ES256");
            }
        }
        assert!(
            run.stderr.contains("300 tokens: 100 valid, 200 rejected"),
            "{}",
            run.stderr
        );
        outputs.push(run.stdout);
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "same output whatever the thread count"
    );
    assert_eq!(
        server.hits("/jwks"),
        1,
        "the key set is fetched once (then cached)"
    );
    let all_good = format!("{good}\n{good}\n");
    let run = env.run_with_stdin(
        &[
            "verify-jwt",
            "--batch",
            "--key-file",
            &key_file("rfc7515-A.3.public.pem"),
        ],
        all_good.as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 2);
    assert!(
        run.stdout.starts_with("1\tvalid\tES256\t"),
        "{}",
        run.stdout
    );
    env.run_with_stdin(
        &[
            "verify-jwt",
            "--batch",
            "--key-file",
            &key_file("rfc7515-A.3.public.pem"),
        ],
        b"\n\n",
    )
    .fails_with("no tokens");
}

/// HTTPS with an independent TLS server (`openssl s_server -WWW`) and a private CA: refused by
/// default (the CA is not a system root), accepted with `--cacert`.
#[test]
fn https_key_sets_need_a_trusted_certificate() {
    let env = Env::new();
    let dir = env.dir.path();
    crate::util::private_ca(dir, "IP:127.0.0.1");
    std::fs::write(
        dir.join("jwks.json"),
        jwks_of(&env, &["rfc7515-A.3.public.pem"]),
    )
    .expect("w");
    let port = crate::util::free_port();
    let mut server = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-WWW",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "leaf.pem",
            "-key",
            "leaf.key",
        ])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s_server");
    let url = format!("https://127.0.0.1:{port}/jwks.json");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = es256(r#"{"alg":"ES256"}"#);
    let refused = env.run(&["verify-jwt", "--jwks-url", &url, "--no-cache", &t]);
    let trusted = env.run(&[
        "verify-jwt",
        "--jwks-url",
        &url,
        "--no-cache",
        "--cacert",
        "ca.pem",
        &t,
    ]);
    let _ = server.kill();
    let _ = server.wait();
    refused.fails_with("TLS certificate is not trusted (--cacert FILE adds a CA)");
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
}

/// The usual cause of a signature that does not verify with a key file: the token was signed
/// by another key. When its kid is neither the key's kid nor its thumbprint, the rejection
/// says so, naming both.
#[test]
fn a_wrong_key_rejection_names_the_kid_and_the_keys_thumbprint() {
    let env = Env::new();
    let token = env
        .ok(&[
            "generate-jwt",
            "--key-file",
            &key_file("rfc7515-A.3.private.pem"),
            "--sub",
            "x",
        ])
        .trim()
        .to_string();
    env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--out",
        "other.pem",
        "--public-out",
        "other.pub",
    ]);
    let other = env.path("other.pub").to_str().expect("p").to_string();
    let run = env.run(&["verify-jwt", "--key-file", &other, &token]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let thumbprint = env.ok(&["key", "thumbprint", &other]);
    assert!(
        run.stderr.contains("(bad_signature)")
            && run.stderr.contains(
                "the token's kid \"oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U\" is not this key's"
            )
            && run.stderr.contains(thumbprint.trim()),
        "{}",
        run.stderr
    );
    // A token whose kid is the key's own thumbprint, tampered: no such hint.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    let run = env.run(&[
        "verify-jwt",
        "--key-file",
        &key_file("rfc7515-A.3.public.pem"),
        &parts.join("."),
    ]);
    assert_eq!(run.code, 1);
    assert!(!run.stderr.contains("is not this key's"), "{}", run.stderr);
}
