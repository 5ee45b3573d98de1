//! The seams between commands, tried as users work: a key server with upload, sign and verify
//! in a loop and with rotation (the cache on); tokens pasted from browsers and JSON; hostile
//! tokens and key sets; an app's short secret; the files jwkit writes and the directories it
//! is given. Real processes, a real `jwkit serve` and a counting HTTP server on 127.0.0.1.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use jwkit::crypto::{Alg, b64};
use serde_json::{Value, json};

use crate::generate_jwt::{peer_python, pyjwt_verify};
use crate::http::{Route, TestServer};
use crate::jose::{key_file, sign_raw};
use crate::serve::{Server, TOKEN, upload};
use crate::util::{Env, Run, unix_now};
use crate::verify_jwt::jwks_of;

/// An ES256 token (RFC 7515 A.3 key) with this header and claims valid for 10 minutes.
fn es256_with(header: &Value) -> String {
    let claims = json!({"sub": "alice", "exp": unix_now() + 600});
    sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// Exit 1, nothing on stdout, and `error: token rejected: ... (kind)` on one stderr line.
#[track_caller]
fn rejected_as(run: &Run, kind: &str) {
    assert_eq!(run.code, 1, "stdout: {} stderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!("({kind})")),
        "expected {kind}: {}",
        run.stderr
    );
}

#[test]
fn upload_sign_verify_in_a_loop_with_the_cache_on() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &[]);
    for round in 0..10 {
        let kid = env
            .ok(&[
                "generate-key",
                "--type",
                "ec",
                "--save",
                "--upload",
                &server.url,
                "--upload-token-file",
                "upload.token",
            ])
            .trim()
            .to_string();
        let token = env.ok(&["generate-jwt", "--key", &kid]).trim().to_string();
        let run = env.run(&["verify-jwt", "--server", &server.url, "--token", &token]);
        assert_eq!(run.code, 0, "round {round}: {}", run.stderr);
        let claims: Value = serde_json::from_str(&run.stdout).expect("claims");
        assert!(claims["exp"].as_i64().is_some(), "{claims}");
    }
    // The same with `key upload` of stored keys: it drops the cached set as well.
    for round in 0..3 {
        let kid = env
            .ok(&["generate-key", "--type", "ed25519", "--save"])
            .trim()
            .to_string();
        let uploaded = env
            .cmd(&["key", "upload", &kid, "--server", &server.url])
            .env("JWKIT_UPLOAD_TOKEN", TOKEN)
            .output()
            .expect("key upload");
        assert!(uploaded.status.success(), "round {round}: {uploaded:?}");
        let token = env.ok(&["generate-jwt", "--key", &kid]).trim().to_string();
        env.ok(&["verify-jwt", "--server", &server.url, &token]);
    }
}

#[test]
fn a_rotating_server_is_followed_by_a_cached_verify_for_a_minute() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--issue-tokens", "--rotate-every", "5s", "--max-age", "1s"],
    );
    let client = crate::serve::http();
    let started = Instant::now();
    let mut kids = std::collections::BTreeSet::new();
    let mut runs = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let resp = client
            .post(format!("{}/auth", server.url))
            .header("Content-Type", "application/json")
            .body(json!({"sub": "alice"}).to_string())
            .send()
            .expect("auth");
        let token: Value = serde_json::from_slice(&resp.bytes().expect("body")).expect("json");
        let token = token["access_token"]
            .as_str()
            .or_else(|| token["token"].as_str())
            .expect("token in /auth response")
            .to_string();
        let header = jwkit::crypto::jws::Compact::parse(&token)
            .expect("parse")
            .header;
        kids.insert(header["kid"].as_str().expect("kid").to_string());
        let run = env.run(&["verify-jwt", "--server", &server.url, &token]);
        assert_eq!(
            run.code,
            0,
            "after {:?}, a fresh token from the server was rejected: {}",
            started.elapsed(),
            run.stderr
        );
        runs += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(kids.len() >= 10, "the server rotated: {} keys", kids.len());
    assert!(runs > 100, "{runs} verifications");
}

#[test]
fn tokens_with_random_kids_cannot_make_a_request_flood() {
    let _exclusive = crate::util::exclusive();
    let env = Env::new();
    let server = TestServer::start();
    server.set(
        "/jwks",
        Route::json(jwks_of(&env, &["rfc7515-A.3.public.pem"])).header("ETag", "\"v1\""),
    );
    let url = server.url("/jwks");
    let random_kid_token =
        |i: usize| es256_with(&json!({"alg": "ES256", "kid": format!("forged-{i}")}));
    // One batch of 1,000: the set is fetched once and never again in that run.
    let tokens: Vec<String> = (0..1000).map(random_kid_token).collect();
    std::fs::write(env.path("tokens.txt"), tokens.join("\n")).expect("write");
    let run = env.run(&["verify-jwt", "--batch", "--jwks-url", &url, "tokens.txt"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1000);
    assert_eq!(server.hits("/jwks"), 1, "one fetch for the whole batch");
    // 1,000 separate runs, one token each, sharing the cache: an unknown kid may refetch at
    // most once per window per URL, across runs.
    let started = Instant::now();
    for (i, t) in tokens.iter().enumerate() {
        let run = env.run(&["verify-jwt", "--jwks-url", &url, t]);
        assert_eq!(run.code, 1, "token {i}: {}", run.stderr);
        assert!(run.stderr.contains("(unknown_kid)"), "{}", run.stderr);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = server.hits("/jwks") - 1;
    let bound = 2 + (elapsed / 2.0).ceil() as usize;
    assert!(
        requests <= bound,
        "{requests} requests for 1,000 runs over {elapsed:.1}s (at most {bound})"
    );
    // The rejection says the set came from the cache, how old it is, and how to refetch.
    let last = env.run(&["verify-jwt", "--jwks-url", &url, &tokens[0]]);
    assert!(
        last.stderr.contains("was cached") && last.stderr.contains("--no-cache"),
        "{}",
        last.stderr
    );
}

#[test]
fn a_server_max_age_under_a_minute_is_honoured() {
    let env = Env::new();
    let server = TestServer::start();
    server.set(
        "/jwks",
        Route::json(jwks_of(&env, &["rfc7515-A.3.public.pem"]))
            .header("Cache-Control", "max-age=0")
            .header("ETag", "\"v1\""),
    );
    let url = server.url("/jwks");
    let t = es256_with(&json!({"alg": "ES256"}));
    for _ in 0..3 {
        env.ok(&["verify-jwt", "--jwks-url", &url, &t]);
    }
    assert_eq!(server.hits("/jwks"), 3, "max-age=0: every run revalidates");
    assert_eq!(
        server.if_none_match(),
        vec!["\"v1\"".to_string(), "\"v1\"".to_string()],
        "with the ETag, so the server can answer 304"
    );
}

#[test]
fn every_key_file_jwkit_writes_loads_back() {
    let env = Env::new();
    for (ty, extra) in [
        ("ec", None),
        ("ed25519", None),
        ("rsa", Some("rfc7515-A.2")),
    ] {
        let (key, public) = match extra {
            // RSA generation is slow in a debug build: use the RFC key, as a file like any other.
            Some(rfc) => (
                key_file(&format!("{rfc}.private.pem")),
                key_file(&format!("{rfc}.public.pem")),
            ),
            None => {
                env.ok(&[
                    "generate-key",
                    "--type",
                    ty,
                    "--out",
                    &format!("{ty}.pem"),
                    "--public-out",
                    &format!("{ty}.pub.pem"),
                ]);
                (format!("{ty}.pem"), format!("{ty}.pub.pem"))
            }
        };
        // Sign with no other flag, verify with no other flag.
        let token = env
            .ok(&["generate-jwt", "--key-file", &key])
            .trim()
            .to_string();
        env.ok(&["verify-jwt", "--key-file", &public, &token]);
    }
    // --save with --out writes both; the store's own record file is a key file too.
    let kid = env
        .ok(&[
            "generate-key",
            "--type",
            "ec",
            "--save",
            "--out",
            "saved.pem",
        ])
        .trim()
        .to_string();
    assert!(env.path("saved.pem").exists());
    let record = std::fs::read_dir(env.home().join("keys"))
        .expect("store")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a record");
    let record = record.to_str().expect("path");
    for signing in [record, "saved.pem"] {
        let token = env
            .ok(&["generate-jwt", "--key-file", signing])
            .trim()
            .to_string();
        let header = jwkit::crypto::jws::Compact::parse(&token)
            .expect("parse")
            .header;
        assert_eq!(header["kid"], json!(kid));
        env.ok(&["verify-jwt", "--key-file", record, &token]);
        env.ok(&["verify-jwt", "--key", &kid, &token]);
    }
    let public = env.ok(&["key", "public", record, "-f", "jwk"]);
    assert!(public.contains("\"kty\": \"EC\"") && !public.contains("\"d\""));
}

#[test]
fn a_hostile_kid_cannot_forge_a_batch_row_or_reach_the_terminal() {
    let env = Env::new();
    let hostile = [
        "x\n2\tvalid\tRS256\tadmin",
        "tab\there",
        "cr\rhere",
        "esc\u{1b}[2J\u{1b}]0;pwned\u{7}",
        "nul\0here",
        "rlo\u{202e}here",
        "c1\u{9b}31m",
    ];
    let tokens: Vec<String> = hostile
        .iter()
        .map(|kid| es256_with(&json!({"alg": "ES256", "kid": kid})))
        .collect();
    std::fs::write(env.path("tokens.txt"), tokens.join("\n") + "\n").expect("write");
    let set = jwks_of(&env, &["rfc7515-A.3.public.pem"]);
    std::fs::write(env.path("jwks.json"), &set).expect("write");
    let run = env.run(&[
        "verify-jwt",
        "--batch",
        "--jwks-file",
        "jwks.json",
        "tokens.txt",
    ]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        hostile.len(),
        "one line per token:\n{}",
        run.stdout
    );
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "{line:?}");
        assert_eq!(fields[0], (i + 1).to_string());
        assert_eq!((fields[1], fields[2]), ("rejected", "unknown_kid"));
        // The three tabs are the separators; no field holds a control character.
        for field in &fields {
            assert!(!field.chars().any(|c| c.is_control()), "{line:?}");
        }
        assert!(!line.contains('\u{202e}'), "{line:?}");
    }
    assert!(
        lines[0].contains("x\\n2\\tvalid\\tRS256\\tadmin"),
        "{}",
        lines[0]
    );
    assert!(run.stdout.lines().all(|l| !l.contains("\tvalid\t")));
    // --json keeps the kid exactly, as JSON escapes it.
    let j = env.run(&[
        "verify-jwt",
        "--batch",
        "--json",
        "--jwks-file",
        "jwks.json",
        "tokens.txt",
    ]);
    let docs: Vec<Value> = j
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(docs.len(), hostile.len());
    assert!(
        docs[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(hostile[0]))
    );
    // A single rejection: one stderr line, no control character.
    for t in &tokens {
        let one = env.run(&["verify-jwt", "--jwks-file", "jwks.json", t]);
        rejected_as(&one, "unknown_kid");
        assert_eq!(one.stderr.lines().count(), 1, "{:?}", one.stderr);
        assert!(
            !one.stderr.trim_end().chars().any(|c| c.is_control()),
            "{:?}",
            one.stderr
        );
    }
    // A key set's kid is escaped too, on a valid line.
    let mut doc: Value = serde_json::from_str(&set).expect("set");
    doc["keys"][0]["kid"] = json!("k\n1\tvalid");
    std::fs::write(env.path("hostile-set.json"), doc.to_string()).expect("write");
    let t = es256_with(&json!({"alg": "ES256", "kid": "k\n1\tvalid"}));
    std::fs::write(env.path("one.txt"), &t).expect("write");
    let ok = env.run(&[
        "verify-jwt",
        "--batch",
        "--jwks-file",
        "hostile-set.json",
        "one.txt",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(ok.stdout, "1\tvalid\tES256\tk\\n1\\tvalid\n");
    // decode's text output escapes a payload that would clear the screen and fake a verdict.
    let payload = "\u{1b}[2J\u{1b}[32mSIGNATURE VERIFIED\u{1b}[0m\r\nline2";
    let t = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256","kid":"\u001b]0;x\u0007"}"#,
        payload.as_bytes(),
    );
    let d = env.run(&["decode", &t]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert!(!d.stdout_bytes.contains(&0x1b), "{:?}", d.stdout);
    assert!(!d.stdout.contains('\r'));
    assert!(d.stdout.contains("\\u{1b}[2J"), "{}", d.stdout);
}

#[test]
fn keys_under_which_anyone_can_forge_are_refused_everywhere() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &[]);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weak");
    let cases = [
        ("rsa-prime-modulus.jwk", "prime"),
        ("rsa-factor-3.jwk", "small factor 3"),
        ("rsa-factor-4999.jwk", "small factor 4999"),
        ("ed25519-identity.jwk", "small order"),
        ("ed25519-order8.jwk", "small order"),
        ("ed25519-noncanonical.jwk", "not canonically encoded"),
    ];
    for (file, why) in cases {
        let path = fixtures.join(file);
        let path = path.to_str().expect("path");
        // The forged token for the identity key: R = identity, S = 0.
        let alg = if file.starts_with("rsa") {
            "RS256"
        } else {
            "EdDSA"
        };
        let token = crate::jose::identity_forgery(alg);
        env.run(&["verify-jwt", "--key-file", path, &token])
            .fails_with(why);
        env.run(&["key", "public", path]).fails_with(why);
        env.run(&["key", "thumbprint", path]).fails_with(why);
        let jwk = std::fs::read_to_string(fixtures.join(file)).expect("read");
        let (status, body) = upload(&server.url, &jwk, Some(TOKEN));
        assert_eq!(status, 400, "{file}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(why)),
            "{body}"
        );
        // In a set next to a good key, the weak one is skipped and the good one still works.
        let good = jwks_of(&env, &["rfc7515-A.3.public.pem"]);
        let mut set: Value = serde_json::from_str(&good).expect("set");
        let weak: Value = serde_json::from_str(&jwk).expect("jwk");
        set["keys"].as_array_mut().expect("keys").push(weak);
        std::fs::write(env.path("mixed.json"), set.to_string()).expect("write");
        let kid = set["keys"][0]["kid"].as_str().expect("kid").to_string();
        env.ok(&[
            "verify-jwt",
            "--jwks-file",
            "mixed.json",
            &es256_with(&json!({"alg": "ES256", "kid": kid})),
        ]);
        let forged = env.run(&["verify-jwt", "--jwks-file", "mixed.json", &token]);
        assert_eq!(forged.code, 1, "{}", forged.stderr);
    }
    let resp = crate::serve::http()
        .get(format!("{}/.well-known/jwks.json", server.url))
        .send()
        .expect("get");
    let doc: Value = serde_json::from_slice(&resp.bytes().expect("body")).expect("json");
    assert_eq!(doc["keys"], json!([]), "no refused upload was stored");
}

#[test]
fn fetched_sets_never_yield_secrets_and_key_ops_are_enforced() {
    let env = Env::new();
    let secret = b"0123456789abcdef0123456789abcdef";
    let oct = json!({"kty": "oct", "kid": "s", "k": b64::encode(secret)});
    let set = json!({"keys": [oct]}).to_string();
    std::fs::write(env.path("secret.bin"), secret).expect("write");
    let hs = env
        .ok(&["generate-jwt", "--secret-file", "secret.bin", "--kid", "s"])
        .trim()
        .to_string();
    let server = TestServer::start();
    server.set("/jwks", Route::json(set.clone()));
    let run = env.run(&["verify-jwt", "--jwks-url", &server.url("/jwks"), &hs]);
    rejected_as(&run, "unknown_kid");
    assert!(
        run.stderr.contains("secret (oct) key in a fetched set"),
        "{}",
        run.stderr
    );
    // The same set as a local file is the user's own: it verifies.
    std::fs::write(env.path("local.json"), &set).expect("write");
    env.ok(&["verify-jwt", "--jwks-file", "local.json", &hs]);
    // key_ops: a key for "sign" does not verify; one for "verify" does; "verify" does not sign.
    let public: Value = serde_json::from_str(&env.ok(&[
        "key",
        "public",
        &key_file("rfc7515-A.3.public.pem"),
        "-f",
        "jwk",
    ]))
    .expect("jwk");
    let t = es256_with(&json!({"alg": "ES256"}));
    for (ops, verifies) in [(json!(["sign"]), false), (json!(["verify"]), true)] {
        let mut k = public.clone();
        k["key_ops"] = ops.clone();
        std::fs::write(env.path("ops.jwk"), k.to_string()).expect("write");
        let run = env.run(&["verify-jwt", "--key-file", "ops.jwk", &t]);
        if verifies {
            assert_eq!(run.code, 0, "{}", run.stderr);
        } else {
            run.fails_with("key_ops");
        }
        std::fs::write(env.path("ops-set.json"), json!({"keys": [k]}).to_string()).expect("w");
        let run = env.run(&["verify-jwt", "--jwks-file", "ops-set.json", &t]);
        assert_eq!(
            run.code,
            if verifies { 0 } else { 2 },
            "{ops}: {}",
            run.stderr
        );
    }
    let mut private: Value = serde_json::from_str(&env.ok(&[
        "key",
        "convert",
        &key_file("rfc7515-A.3.private.pem"),
        "-f",
        "jwk",
    ]))
    .expect("jwk");
    private["key_ops"] = json!(["verify"]);
    std::fs::write(env.path("verify-only.jwk"), private.to_string()).expect("write");
    env.run(&["generate-jwt", "--key-file", "verify-only.jwk"])
        .fails_with("key_ops");
}

#[test]
fn usage_conflicts_and_secrets_in_urls() {
    let env = Env::new();
    let t = es256_with(&json!({"alg": "ES256"}));
    let pubk = key_file("rfc7515-A.3.public.pem");
    for extra in [["--issuer", "https://idp.example"], ["--typ", "JWT"]] {
        let mut args = vec!["verify-jwt", "--raw", &t];
        args.extend(extra);
        if extra[0] == "--typ" {
            args.extend(["--key-file", &pubk]);
        }
        env.run(&args).fails_with("cannot be used with");
    }
    let run = env.run(&[
        "verify-jwt",
        "--no-cache",
        "--jwks-url",
        "http://alice:s3cret-pw@127.0.0.1:9/jwks",
        &t,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
    assert!(run.stderr.contains("alice:***@127.0.0.1"), "{}", run.stderr);
    // One line: what was fetched and why it failed; the layers below only with --verbose.
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    let verbose = env.run(&[
        "verify-jwt",
        "-v",
        "--no-cache",
        "--jwks-url",
        "http://alice:s3cret-pw@127.0.0.1:9/jwks",
        &t,
    ]);
    assert!(verbose.stderr.contains("os error"), "{}", verbose.stderr);
    assert!(!verbose.stderr.contains("s3cret-pw"), "{}", verbose.stderr);
    std::fs::write(env.path("upload.token"), "t0k3n-0123456789").expect("write");
    let up = env.run(&[
        "generate-key",
        "--type",
        "ec",
        "--upload",
        "http://bob:hunter2-pw@127.0.0.1:9",
        "--upload-token-file",
        "upload.token",
    ]);
    assert_eq!(up.code, 2, "{}", up.stderr);
    assert!(!up.stderr.contains("hunter2-pw"), "{}", up.stderr);
    assert!(up.stderr.contains("bob:***@127.0.0.1"), "{}", up.stderr);
}

#[test]
fn pasted_tokens_decode_and_verify() {
    let env = Env::new();
    let pubk = key_file("rfc7515-A.3.public.pem");
    let t = es256_with(&json!({"alg": "ES256", "typ": "JWT"}));
    let (a, b) = t.split_at(60);
    let pastes = [
        format!("\"{t}\""),
        format!("'{t}'"),
        format!("Authorization: Bearer {t}"),
        format!("authorization: bearer {t}\r\n"),
        format!("\"Authorization\": \"Bearer {t}\","),
        format!("{a}\n    {b}"),
        format!("{a}\r\n{b}\n"),
        format!("{t},"),
        format!("  \"{t}\"}}"),
    ];
    for p in &pastes {
        let d = env.run(&["decode", "--json", p]);
        assert_eq!(d.code, 0, "{p:?}: {}", d.stderr);
        env.ok(&["verify-jwt", "--key-file", &pubk, p]);
        let via_stdin = env.run_with_stdin(&["verify-jwt", "--key-file", &pubk], p.as_bytes());
        assert_eq!(via_stdin.code, 0, "{p:?}: {}", via_stdin.stderr);
    }
    // One batch line per paste style (but the wrapped ones, which span lines).
    let lines: Vec<&String> = pastes.iter().filter(|p| !p.trim().contains('\n')).collect();
    let batch = lines
        .iter()
        .map(|s| s.trim())
        .collect::<Vec<_>>()
        .join("\n");
    let run = env.run_with_stdin(
        &["verify-jwt", "--batch", "--key-file", &pubk],
        batch.as_bytes(),
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // A JWE is named (decode shows its header alone, without a key); a bad character is named.
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a2V5.aXY.Y2lwaGVy.dGFn";
    let d = env.run(&["decode", "--json", jwe]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert!(d.stdout.contains("\"RSA-OAEP\""), "{}", d.stdout);
    assert!(d.stderr.contains("JWE"), "{}", d.stderr);
    rejected_as(
        &env.run(&["verify-jwt", "--key-file", &pubk, jwe]),
        "malformed",
    );
    assert!(
        env.run(&["verify-jwt", "--key-file", &pubk, jwe])
            .stderr
            .contains("JWE")
    );
    let quoted_inside = format!("{}\"{}", &t[..4], &t[4..]);
    env.run(&["decode", &quoted_inside])
        .fails_with("'\"' at byte 4");
}

#[test]
fn any_input_that_cannot_be_a_token_is_rejected_as_malformed() {
    let env = Env::new();
    let pubk = key_file("rfc7515-A.3.public.pem");
    let cases: Vec<Vec<u8>> = vec![
        vec![b'A'; 70 * 1024],
        vec![b'e', b'y', 0xff, 0xfe, b'.', b'a', b'.', b'b'],
        b"a.b".to_vec(),
    ];
    for input in cases {
        let run = env.run_with_stdin(&["verify-jwt", "--key-file", &pubk], &input);
        rejected_as(&run, "malformed");
        let j = env.run_with_stdin(&["verify-jwt", "--key-file", &pubk, "--json"], &input);
        assert_eq!(j.code, 1);
        let doc: Value = serde_json::from_str(&j.stdout).expect("json");
        assert_eq!(doc["error"]["kind"], "malformed");
    }
    // A batch line that is not UTF-8 is one malformed line, not the end of the batch.
    let t = es256_with(&json!({"alg": "ES256"}));
    let mut input = t.as_bytes().to_vec();
    input.extend_from_slice(b"\n\xff\xfe\n");
    input.extend_from_slice(t.as_bytes());
    let run = env.run_with_stdin(&["verify-jwt", "--batch", "--key-file", &pubk], &input);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[1].starts_with("2\trejected\tmalformed\t"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("3\tvalid\t"));
}

#[test]
fn an_apps_short_secret_works_with_insecure_and_agrees_with_pyjwt() {
    let env = Env::new();
    std::fs::write(env.path("app.secret"), "supersecret").expect("write");
    let fixed = ["--iat", "@1700000000", "--exp", "@4000000000"];
    let sign = |extra: &[&str]| {
        let mut a = vec!["generate-jwt", "--sub", "alice"];
        a.extend(fixed);
        a.extend(extra);
        env.run(&a)
    };
    // Refused without --insecure, with a message that names it and why.
    let refused = sign(&["--secret-file", "app.secret"]).fails_with("--insecure");
    assert!(refused.stderr.contains("11 bytes"), "{}", refused.stderr);
    env.run(&[
        "resign",
        "--secret-file",
        "app.secret",
        &es256_with(&json!({"alg":"ES256"})),
    ])
    .fails_with("--insecure");
    // Accepted with it, with a warning naming the length and the RFC minimum.
    let made = sign(&["--secret-file", "app.secret", "--insecure"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stderr.contains("11 bytes") && made.stderr.contains("RFC 7518"),
        "{}",
        made.stderr
    );
    let token = made.stdout.trim().to_string();
    let header = jwkit::crypto::jws::Compact::parse(&token)
        .expect("parse")
        .header;
    assert_eq!(header["alg"], "HS256");
    // verify-jwt takes the same secret from a file or a variable, and needs --insecure too.
    env.run(&["verify-jwt", "--secret-file", "app.secret", &token])
        .fails_with("--insecure");
    env.ok(&[
        "verify-jwt",
        "--secret-file",
        "app.secret",
        "--insecure",
        &token,
    ]);
    let from_env = env
        .cmd(&[
            "verify-jwt",
            "--secret-env",
            "APP_SECRET",
            "--insecure",
            &token,
        ])
        .env("APP_SECRET", "supersecret")
        .output()
        .expect("run");
    assert!(from_env.status.success(), "{from_env:?}");
    let wrong = env
        .cmd(&[
            "verify-jwt",
            "--secret-env",
            "APP_SECRET",
            "--insecure",
            &token,
        ])
        .env("APP_SECRET", "supersecreT")
        .output()
        .expect("run");
    assert_eq!(wrong.status.code(), Some(1));
    // resign keeps an HS token's family with the app's secret.
    let resigned = env.run(&[
        "resign",
        "--secret-file",
        "app.secret",
        "--insecure",
        &es256_with(&json!({"alg": "ES256"})),
    ]);
    assert_eq!(resigned.code, 0, "{}", resigned.stderr);
    env.ok(&[
        "verify-jwt",
        "--secret-file",
        "app.secret",
        "--insecure",
        resigned.stdout.trim(),
    ]);
    // A secret written with echo, and one still base64-encoded, each get their warning;
    // --secret-base64 decodes the latter to the same secret (so the same HS256 token).
    std::fs::write(env.path("echoed.secret"), "supersecret\n").expect("write");
    let echoed = sign(&["--secret-file", "echoed.secret", "--insecure"]);
    assert!(
        echoed.stderr.contains("ends with a newline"),
        "{}",
        echoed.stderr
    );
    assert_ne!(
        echoed.stdout, made.stdout,
        "the newline is part of the secret"
    );
    std::fs::write(env.path("k8s.secret"), "c3VwZXJzZWNyZXQ=\n").expect("write");
    let encoded = sign(&["--secret-file", "k8s.secret", "--insecure"]);
    assert!(
        encoded.stderr.contains("--secret-base64"),
        "{}",
        encoded.stderr
    );
    let decoded = sign(&[
        "--secret-file",
        "k8s.secret",
        "--secret-base64",
        "--insecure",
    ]);
    assert_eq!(decoded.code, 0, "{}", decoded.stderr);
    assert_eq!(decoded.stdout, made.stdout);
    // PyJWT, an independent implementation, agrees on the signature.
    if let Some(python) = peer_python() {
        let key = json!({"kty": "oct", "k": b64::encode("supersecret")});
        let verdicts = pyjwt_verify(
            &python,
            &[json!({"token": token, "key": key, "alg": "HS256"})],
        );
        assert_eq!(verdicts[0]["ok"], true, "{}", verdicts[0]);
        assert_eq!(verdicts[0]["claims"]["sub"], "alice");
    }
}

#[test]
fn directories_keep_their_mode_and_shared_ones_are_refused() {
    let env = Env::new();
    // An existing JWKIT_HOME keeps its mode (jwkit did not create it).
    let home = env.home();
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    env.ok(&["generate-key", "--type", "ec", "--save"]);
    assert_eq!(mode(&home), 0o755);
    assert_eq!(mode(&home.join("keys")), 0o700, "created by jwkit: private");
    // Through a symlink, the target keeps its mode too.
    let target = env.path("real-home");
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    std::os::unix::fs::symlink(&target, env.path("link-home")).expect("symlink");
    let run = env
        .cmd(&["generate-key", "--type", "ec", "--save"])
        .env("JWKIT_HOME", env.path("link-home"))
        .output()
        .expect("run");
    assert!(run.status.success(), "{run:?}");
    assert_eq!(mode(&target), 0o750);
    // A world-writable store root is refused, with the reason, and nothing is written.
    let shared = env.path("shared-home");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = env
        .cmd(&["generate-key", "--type", "ec", "--save"])
        .env("JWKIT_HOME", &shared)
        .output()
        .expect("run");
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("writable by everyone"), "{stderr}");
    assert!(run.stdout.is_empty());
    assert_eq!(mode(&shared), 0o777);
    assert_eq!(
        std::fs::read_dir(shared.join("keys"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    // serve --data-dir: an existing directory keeps its mode; a shared one is refused.
    let data = env.path("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    drop(Server::start(&env, &data, &[]));
    assert_eq!(mode(&data), 0o755);
}

#[test]
fn man_out_never_follows_a_link_or_overwrites_without_force() {
    let env = Env::new();
    let dir = env.path("man");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(env.path("victim"), "precious\n").expect("write");
    std::os::unix::fs::symlink(env.path("victim"), dir.join("jwkit.1")).expect("symlink");
    env.run(&["man", "--out", "man"])
        .fails_with("already exists");
    assert_eq!(
        std::fs::read_to_string(env.path("victim")).expect("read"),
        "precious\n"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        1,
        "nothing written"
    );
    env.ok(&["man", "--out", "man", "--force"]);
    assert_eq!(
        std::fs::read_to_string(env.path("victim")).expect("read"),
        "precious\n"
    );
    let meta = std::fs::symlink_metadata(dir.join("jwkit.1")).expect("stat");
    assert!(
        meta.is_file(),
        "the link was replaced by the page, not followed"
    );
    assert!(dir.join("jwkit-verify-jwt.1").exists());
    env.run(&["man", "--out", "man"])
        .fails_with("already exists");
}

#[test]
fn extreme_times_are_reported_never_wrapped() {
    let env = Env::new();
    let claims = r#"{"sub":"x","iat":-9223372036854775808,"nbf":-9223372036854775808,"exp":9223372036854775807}"#;
    let t = sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        br#"{"alg":"ES256"}"#,
        claims.as_bytes(),
    );
    let d = env.run(&["decode", &t]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert!(!d.stderr.contains("panicked"));
    let dj = env.run(&["decode", "--json", &t]);
    assert_eq!(dj.code, 0, "{}", dj.stderr);
    let doc: Value = serde_json::from_str(&dj.stdout).expect("json");
    assert_eq!(doc["times"]["exp"]["unix"], json!(i64::MAX));
    env.run(&[
        "resign",
        "--key-file",
        &key_file("rfc7515-A.3.private.pem"),
        "--refresh",
        &t,
    ])
    .fails_with("out of range");
    let v = env.run(&[
        "verify-jwt",
        "--key-file",
        &key_file("rfc7515-A.3.public.pem"),
        &t,
    ]);
    rejected_as(&v, "malformed");
    let far = env.run(&[
        "verify-jwt",
        "--key-file",
        &key_file("rfc7515-A.3.public.pem"),
        "--at",
        "@9223372036854775807",
        &es256_with(&json!({"alg": "ES256"})),
    ]);
    rejected_as(&far, "expired");
    let at = env.run(&[
        "verify-jwt",
        "--key-file",
        &key_file("rfc7515-A.3.public.pem"),
        "--ignore-exp",
        "--at",
        "@-9223372036854775808",
        &es256_with(&json!({"alg": "ES256"})),
    ]);
    assert!(at.code == 0 || at.code == 1, "{}", at.stderr);
    assert!(!at.stderr.contains("panicked"));
}

#[test]
fn verify_at_judges_time_claims_as_of_another_moment() {
    let env = Env::new();
    let key = key_file("rfc7515-A.3.private.pem");
    let pubk = key_file("rfc7515-A.3.public.pem");
    let t = env
        .ok(&[
            "generate-jwt",
            "--key-file",
            &key,
            "--iat",
            "2026-11-20T10:00:00Z",
            "--exp",
            "2026-11-20T11:00:00Z",
        ])
        .trim()
        .to_string();
    env.ok(&[
        "verify-jwt",
        "--key-file",
        &pubk,
        "--at",
        "2026-11-20T10:30:00Z",
        &t,
    ]);
    rejected_as(
        &env.run(&[
            "verify-jwt",
            "--key-file",
            &pubk,
            "--at",
            "2026-11-20T12:00:00Z",
            &t,
        ]),
        "expired",
    );
}

#[test]
fn timeout_bounds_a_fetch_whose_name_never_resolves() {
    let _exclusive = crate::util::exclusive();
    // A namespace of its own, whose resolver never answers (tests/cli/silent_dns.sh).
    let usable = std::process::Command::new("unshare")
        .args(["-nm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs `unshare -nm` (util-linux, run as root) for the DNS timeout test"
        );
        eprintln!("SKIPPED: --timeout and name resolution: `unshare -nm` is not allowed here");
        return;
    }
    let env = Env::new();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/silent_dns.sh");
    let t = es256_with(&json!({"alg": "ES256"}));
    let started = Instant::now();
    let out = std::process::Command::new("unshare")
        .arg("-nm")
        .arg(&script)
        .args([
            env!("CARGO_BIN_EXE_jwkit"),
            "verify-jwt",
            "--no-cache",
            "--timeout",
            "1s",
            "--jwks-url",
            "https://idp.example/jwks",
            &t,
        ])
        .env("JWKIT_HOME", env.home())
        .env("XDG_CACHE_HOME", env.cache())
        .output()
        .expect("unshare");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("fetching https://idp.example/jwks: timed out"),
        "{stderr}"
    );
    // The resolver's own retries would take 10 s; --timeout 1s ends it (plus set-up time).
    assert!(
        elapsed < Duration::from_secs(3),
        "took {elapsed:?}: {stderr}"
    );
}
