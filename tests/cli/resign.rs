//! `jwkit resign`: single tokens for every algorithm (checked by PyJWT), claim edits, header
//! rules, and `--scan` over a HAR capture and over large streams.

use std::collections::HashMap;

use jwkit::crypto::jws::Compact;
use serde_json::{Value, json};

use crate::generate_jwt::{alg_keys, peer_key, peer_python, pyjwt_verify};
use crate::util::{Env, vector_json, vectors};

fn key_path(name: &str) -> String {
    vectors()
        .join("keys")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn parts(token: &str) -> (Value, String) {
    let c = Compact::parse(token.trim()).expect("token");
    (Value::Object(c.header), c.payload_b64.to_string())
}

/// An original token signed with the RFC 7515 A.1 HMAC key, which the new keys replace.
fn original(env: &Env, extra: &[&str]) -> String {
    std::fs::copy(
        vectors().join("keys/rfc7515-A.1.hmac.bin"),
        env.path("old.bin"),
    )
    .expect("copy");
    let mut args = vec![
        "generate-jwt",
        "--secret-file",
        "old.bin",
        "--kid",
        "old",
        "--sub",
        "alice",
        "--exp",
        "1h",
    ];
    args.extend_from_slice(extra);
    env.ok(&args).trim().to_string()
}

#[test]
fn every_algorithm_resigns_keeping_the_payload_and_pyjwt_agrees() {
    let env = Env::new();
    let token = original(
        &env,
        &[
            "--header",
            "x5t=abc",
            "--header",
            "jwk={\"kty\":\"oct\"}",
            "--header",
            "cty=JWT",
        ],
    );
    let (_, old_payload) = parts(&token);
    let cases = alg_keys(&env);
    let mut peer = Vec::new();
    for (alg, key) in &cases {
        let new = env.ok(&["resign", "--key-file", key, "--alg", alg, &token]);
        let (header, payload) = parts(&new);
        assert_eq!(
            payload, old_payload,
            "{alg}: the payload segment is kept byte for byte"
        );
        // An asymmetric key's thumbprint becomes the kid; an HMAC secret keeps the token's own
        // kid (no hash of the secret is published).
        let kid = if alg.starts_with("HS") {
            "old".to_string()
        } else {
            env.ok(&["key", "thumbprint", key]).trim().to_string()
        };
        // Order kept: alg first as in the original, typ, then kid, then cty; x5t and jwk dropped.
        assert_eq!(
            serde_json::to_string(&header).expect("json"),
            json!({"alg": alg, "typ": "JWT", "kid": kid, "cty": "JWT"}).to_string(),
            "{alg}"
        );
        let verify_key = peer_key(&env, alg, key);
        peer.push(json!({"token": new.trim(), "key": verify_key, "alg": alg}));
    }
    let Some(python) = peer_python() else { return };
    for ((alg, _), verdict) in cases.iter().zip(pyjwt_verify(&python, &peer)) {
        assert_eq!(verdict["ok"], true, "{alg}: PyJWT says {verdict}");
        assert_eq!(verdict["claims"]["sub"], "alice");
    }
}

#[test]
fn refresh_makes_the_rfc7519_example_valid_now() {
    let env = Env::new();
    let rfc = vector_json("rfc7519-3.1-example-jwt.json")["token"]
        .as_str()
        .expect("t")
        .to_string();
    let key = key_path("rfc8037-A.1.private.pem");
    let public = key_path("rfc8037-A.1.public.pem");
    let new = env.ok(&["resign", "--key-file", &key, "--refresh", &rfc]);
    let claims: Value =
        serde_json::from_str(&env.ok(&["verify-jwt", "--key-file", &public, new.trim()]))
            .expect("valid now");
    let now = crate::util::unix_now();
    // The example has exp but no iat or nbf, so its lifetime is unknown: --lifetime (1h) applies.
    assert!(
        (claims["exp"].as_i64().expect("exp") - (now + 3600)).abs() <= 5,
        "{claims}"
    );
    assert_eq!(claims["iss"], "joe");
    assert!(claims.get("iat").is_none(), "no claim is added");
    // With iat, the lifetime is kept exactly: iat becomes now, nbf and exp move as much.
    let old = env.ok(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--iat",
        "@1000000000",
        "--nbf",
        "@1000000060",
        "--exp",
        "@1000000900",
    ]);
    let new = env.ok(&["resign", "--key-file", &key, "--refresh", old.trim()]);
    let c: Value =
        serde_json::from_str(&env.ok(&["verify-jwt", "--key-file", &public, new.trim()]))
            .expect("valid");
    let iat = c["iat"].as_i64().expect("iat");
    assert!((iat - now).abs() <= 5);
    assert_eq!(c["nbf"].as_i64().expect("nbf") - iat, 60);
    assert_eq!(c["exp"].as_i64().expect("exp") - iat, 900);
}

#[test]
fn claim_edits_kid_choices_and_bearer() {
    let env = Env::new();
    let token = original(&env, &["-c", "role=\"user\"", "-c", "n=1"]);
    let key = key_path("rfc7515-A.3.private.pem");
    let new = env.ok(&[
        "resign",
        "--key-file",
        &key,
        "--set",
        "role=admin",
        "--set",
        "extra=[1]",
        "--unset",
        "n",
        "--exp",
        "@2000000000",
        &token,
    ]);
    let payload = Compact::parse(new.trim()).expect("parse").payload;
    let text = String::from_utf8(payload).expect("utf8");
    let iat = serde_json::from_str::<Value>(&text).expect("json")["iat"].clone();
    assert_eq!(
        text,
        format!(r#"{{"sub":"alice","role":"admin","iat":{iat},"exp":2000000000,"extra":[1]}}"#),
        "order kept"
    );
    let (h, _) = parts(&env.ok(&["resign", "--key-file", &key, "--keep-kid", &token]));
    assert_eq!(h["kid"], "old");
    let (h, _) = parts(&env.ok(&["resign", "--key-file", &key, "--kid", "new-kid", &token]));
    assert_eq!(h["kid"], "new-kid");
    let out = env.ok(&["resign", "--key-file", &key, &format!("Bearer {token}")]);
    assert!(
        out.starts_with("Bearer eyJ") && out.ends_with('\n'),
        "{out}"
    );
    let out = env
        .run_with_stdin(
            &["resign", "--key-file", &key],
            format!("Bearer {token}\n").as_bytes(),
        )
        .success();
    assert!(out.starts_with("Bearer eyJ"), "{out}");
}

#[test]
fn verify_with_checks_the_old_signature_first() {
    let env = Env::new();
    let token = original(&env, &[]);
    let key = key_path("rfc8037-A.1.private.pem");
    std::fs::write(env.path("old.jwk"), json!({"kty": "oct", "k": jwkit::crypto::b64::encode(std::fs::read(env.path("old.bin")).expect("r"))}).to_string()).expect("w");
    env.ok(&[
        "resign",
        "--key-file",
        &key,
        "--verify-with",
        "old.jwk",
        &token,
    ]);
    env.ok(&[
        "generate-key",
        "-t",
        "hmac",
        "-f",
        "jwk",
        "--out",
        "other.jwk",
    ]);
    let run = env.run(&[
        "resign",
        "--key-file",
        &key,
        "--verify-with",
        "other.jwk",
        &token,
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("old signature does not verify"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(&token[..20]),
        "token text never appears in diagnostics"
    );
    // In a scan, such a token is left unchanged and counted.
    std::fs::write(env.path("log.txt"), format!("a {token} b\n")).expect("w");
    let run = env.run(&[
        "resign",
        "--key-file",
        &key,
        "--verify-with",
        "other.jwk",
        "--scan",
        "log.txt",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, format!("a {token} b\n"));
    assert!(
        run.stderr
            .contains("skipped 1 (old signature does not verify)"),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_input_and_keys_that_cannot_sign() {
    let env = Env::new();
    let key = key_path("rfc7515-A.3.private.pem");
    env.run(&["resign", "--key-file", &key, "abc.def"])
        .fails_with("has 2 segments");
    env.run(&[
        "resign",
        "--key-file",
        &key,
        "eyJhbGciOiJIUzI1NiJ9!.e30.c2ln",
    ])
    .fails_with("header segment is not valid base64url");
    let token = original(&env, &[]);
    env.run(&[
        "resign",
        "--key-file",
        &key_path("rfc7515-A.3.public.pem"),
        &token,
    ])
    .fails_with("public key");
    env.run(&["resign", "--key-file", &key, "--alg", "RS256", &token])
        .fails_with("does not fit");
    std::fs::write(env.path("big.txt"), format!("x {token}\n")).expect("w");
    env.run(&[
        "resign",
        "--key-file",
        &key_path("rfc7515-A.3.public.pem"),
        "--scan",
        "big.txt",
        "--out",
        "out.txt",
    ])
    .fails_with("public key");
    assert!(
        !env.path("out.txt").exists(),
        "nothing written before the key is known to sign"
    );
    std::fs::write(env.path("out.txt"), b"keep").expect("w");
    env.run(&[
        "resign",
        "--key-file",
        &key,
        "--scan",
        "big.txt",
        "--out",
        "out.txt",
    ])
    .fails_with("already exists");
    assert_eq!(std::fs::read(env.path("out.txt")).expect("r"), b"keep");
    env.ok(&[
        "resign",
        "--key-file",
        &key,
        "--scan",
        "big.txt",
        "--out",
        "out.txt",
        "--force",
    ]);
    assert!(
        std::fs::read_to_string(env.path("out.txt"))
            .expect("r")
            .starts_with("x eyJ")
    );
}

/// Signs the HAR fixture's placeholders, re-signs the capture, and checks that the output is
/// the input with each token swapped for one consistent new token, and nothing else changed.
#[test]
fn har_capture_changes_only_token_text() {
    let env = Env::new();
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/capture.har.template"),
    )
    .expect("fixture");
    std::fs::write(env.path("hs.bin"), [7u8; 32]).expect("w");
    let tokens = [
        env.ok(&[
            "generate-jwt",
            "--key-file",
            &key_path("rfc7515-A.3.private.pem"),
            "--sub",
            "t1",
            "--expired",
        ]),
        env.ok(&[
            "generate-jwt",
            "--key-file",
            &key_path("rfc7515-A.3.private.pem"),
            "--sub",
            "t2",
            "--exp",
            "1h",
        ]),
        env.ok(&[
            "generate-jwt",
            "--key-file",
            &key_path("rfc8037-A.1.private.pem"),
            "--sub",
            "t3",
        ]),
        env.ok(&[
            "generate-jwt",
            "--secret-file",
            "hs.bin",
            "--sub",
            "t4",
            "--no-iat",
            "--exp",
            "-1m",
        ]),
    ];
    let mut har = template.clone();
    for (i, t) in tokens.iter().enumerate() {
        har = har.replace(&format!("{{{{T{}}}}}", i + 1), t.trim());
    }
    std::fs::write(env.path("capture.har"), &har).expect("w");
    let run = env.run(&[
        "resign",
        "--key-file",
        &key_path("rfc7515-A.2.private.pem"),
        "--refresh",
        "--scan",
        "capture.har",
        "--threads",
        "2",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Skipped: eyJ.x.y (not base64url JSON) and the three-segment string whose header has no alg.
    assert!(
        run.stderr
            .contains("found 7 tokens, re-signed 7, skipped 2 (not a JWS)"),
        "{}",
        run.stderr
    );
    for t in &tokens {
        assert!(
            !run.stderr.contains(&t.trim()[..30]),
            "token text in diagnostics"
        );
    }
    let out = run.stdout;
    // Map each old token to the new one found at the same place.
    let mut map: HashMap<String, String> = HashMap::new();
    let (mut i, mut j) = (0, 0);
    let (a, b) = (har.as_bytes(), out.as_bytes());
    while i < a.len() {
        let old = tokens
            .iter()
            .map(|t| t.trim())
            .find(|t| har[i..].starts_with(t));
        match old {
            Some(old) => {
                let end = j + out[j..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
                    .expect("end");
                let new = &out[j..end];
                assert!(
                    map.entry(old.to_string())
                        .or_insert_with(|| new.to_string())
                        == new,
                    "same token, same new token"
                );
                assert_ne!(new, old);
                i += old.len();
                j = end;
            }
            None => {
                assert_eq!(
                    a[i], b[j],
                    "byte {i} of the capture changed outside a token"
                );
                i += 1;
                j += 1;
            }
        }
    }
    assert_eq!(j, b.len());
    assert_eq!(map.len(), 4);
    for new in map.values() {
        let claims = env.ok(&[
            "verify-jwt",
            "--key-file",
            &key_path("rfc7515-A.2.public.pem"),
            "--ignore-exp",
            new,
        ]);
        assert!(claims.contains("\"sub\": \"t"), "{claims}");
    }
    // The refreshed t1 (expired an hour ago) is valid again.
    env.ok(&[
        "verify-jwt",
        "--key-file",
        &key_path("rfc7515-A.2.public.pem"),
        &map[tokens[0].trim()],
    ]);
}

#[test]
fn scanning_streams_across_chunk_boundaries_and_leaves_long_runs_alone() {
    let env = Env::new();
    let key = key_path("rfc8037-A.1.private.pem");
    let token = env
        .ok(&["generate-jwt", "--key-file", &key, "--sub", "x"])
        .trim()
        .to_string();
    // Filler puts tokens across the 4 MiB read boundary; an over-long base64url run (no token
    // inside can be real) and a long dotted run surround them.
    let mut text = String::new();
    let long_run = "A".repeat(200_000);
    text.push_str(&format!("start {long_run}.{token} end\n"));
    let filler = "x".repeat(1000) + "\n";
    while text.len() < (4 << 20) - 100 {
        text.push_str(&filler);
    }
    for _ in 0..30 {
        text.push_str(&format!("{token} "));
    }
    text.push_str(&"y.".repeat(50_000));
    text.push_str(&format!("\n{token}"));
    std::fs::write(env.path("big.log"), &text).expect("w");
    let one = env.run(&[
        "resign",
        "--key-file",
        &key,
        "--scan",
        "big.log",
        "--threads",
        "1",
    ]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert!(
        one.stderr.contains("found 31 tokens, re-signed 31"),
        "{}",
        one.stderr
    );
    let piped = env
        .run_with_stdin(
            &["resign", "--key-file", &key, "--scan", "--threads", "2"],
            text.as_bytes(),
        )
        .success();
    assert_eq!(
        piped, one.stdout,
        "the same output from a file or a pipe, on any number of threads"
    );
    let new = env
        .ok(&["resign", "--key-file", &key, &token])
        .trim()
        .to_string();
    assert_eq!(
        one.stdout,
        text.replace(&format!(" {token}"), &format!(" {new}"))
            .replace(&format!("\n{token}"), &format!("\n{new}"))
    );
}

#[test]
fn a_line_longer_than_the_scan_window_passes_through_and_a_token_after_it_is_found() {
    let _exclusive = crate::util::exclusive();
    let env = Env::new();
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    let token = env
        .ok(&["generate-jwt", "--key-file", &key, "--sub", "x"])
        .trim()
        .to_string();
    // 80 MiB of base64-class characters on one line (more than the 64 MiB window and the
    // 16 MiB carried run), then a token on the same line.
    let mut input = vec![b'A'; 80 << 20];
    input.extend_from_slice(format!(" {token}\n").as_bytes());
    std::fs::write(env.path("long.txt"), &input).expect("write");
    let run = env.run(&[
        "resign",
        "--scan",
        "long.txt",
        "--key-file",
        &key,
        "--out",
        "out.txt",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("re-signed 1"), "{}", run.stderr);
    let out = std::fs::read(env.path("out.txt")).expect("out");
    assert_eq!(
        &out[..80 << 20],
        &input[..80 << 20],
        "the long run passes through"
    );
    let tail = std::str::from_utf8(&out[(80 << 20) + 1..])
        .expect("utf8")
        .trim_end();
    assert_ne!(tail, token);
    assert_eq!(tail.split('.').count(), 3);
}

/// A line longer than the 64 MiB scan window is cut, and the cut never splits a token: a token
/// after a base64 run (glued to it by `/`) is found and re-signed whole wherever the cut falls
/// within 9 bytes of it, and a token glued to the run's letters (so not a token at all, read
/// whole or in parts) is left alone; the summary says exactly that each time.
#[test]
fn the_long_line_cut_never_splits_a_token_at_any_offset() {
    let _exclusive = crate::util::exclusive();
    let env = Env::new();
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    let public = crate::jose::key_file("rfc7515-A.3.public.pem");
    let token = env
        .ok(&[
            "generate-jwt",
            "--key-file",
            &key,
            "--sub",
            "x",
            "--alg",
            "ES256",
        ])
        .trim()
        .to_string();
    let window: usize = 64 << 20;
    let prefix = b"{\"blob\":\"";
    // The line's start, made once: a JSON string of base64 letters past the window.
    let mut base = Vec::with_capacity(window + 64);
    base.extend_from_slice(prefix);
    base.resize(window + 64, b'A');
    for glued in [false, true] {
        for off in -9i64..=9 {
            let start = (window as i64 + off) as usize;
            let sep: &[u8] = if glued { b"" } else { b"/" };
            let mut input = Vec::with_capacity(start + token.len() + 8);
            input.extend_from_slice(&base[..start - sep.len()]);
            input.extend_from_slice(sep);
            input.extend_from_slice(token.as_bytes());
            input.extend_from_slice(b"\"}\n");
            let run = env.run_with_stdin(&["resign", "--scan", "-", "--key-file", &key], &input);
            let what = format!("glued {glued}, token at the cut {off:+}");
            assert_eq!(run.code, 0, "{what}: {}", run.stderr);
            let out = run.stdout_bytes;
            assert_eq!(&out[..start], &input[..start], "{what}: the run is kept");
            let tail = std::str::from_utf8(&out[start..]).expect("utf8");
            let new = tail.strip_suffix("\"}\n").expect("the line's end is kept");
            if glued {
                assert_eq!(new, token, "{what}");
                assert!(
                    run.stderr.contains("found 0 tokens"),
                    "{what}: {}",
                    run.stderr
                );
            } else {
                assert_ne!(new, token, "{what}");
                assert!(
                    run.stderr.contains("found 1 token, re-signed 1"),
                    "{what}: {}",
                    run.stderr
                );
                env.ok(&["verify-jwt", "--key-file", &public, new]);
            }
        }
    }
}
