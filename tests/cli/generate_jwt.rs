//! `jwkit generate-jwt`: tokens for every algorithm, checked by an independent implementation
//! (PyJWT), claims and times, and refusals.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use jwkit::crypto::{b64, jws::Compact};
use serde_json::{Value, json};

use crate::util::{Env, vectors};

fn key_path(name: &str) -> String {
    vectors()
        .join("keys")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn claims_of(token: &str) -> Value {
    let c = Compact::parse(token.trim()).expect("token parses");
    serde_json::from_slice(&c.payload).expect("claims json")
}

fn header_of(token: &str) -> Value {
    Value::Object(Compact::parse(token.trim()).expect("token parses").header)
}

/// The venv Python with PyJWT that `.ci/run` installs, or None (outside CI only) with a
/// visible message.
pub fn peer_python() -> Option<PathBuf> {
    let python = std::env::var_os("JWKIT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let usable = Command::new(&python)
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "PyJWT is required in CI: {} cannot import jwt (.ci/run installs it)",
        python.display()
    );
    eprintln!(
        "SKIPPED: cross-check with PyJWT: no {} with PyJWT (python3 -m venv .venv && .venv/bin/pip install 'pyjwt[crypto]')",
        python.display()
    );
    None
}

/// Sends cases to PyJWT and returns its verdicts in order.
pub fn pyjwt_verify(python: &PathBuf, cases: &[Value]) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/verify_peer.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut stdin = child.stdin.take().expect("stdin");
    for c in cases {
        writeln!(stdin, "{c}").expect("write case");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("python output");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("verdict json"))
        .collect()
}

/// The verifying key as a peer would get it: the public JWK, or for HMAC the secret's JWK.
pub fn peer_key(env: &Env, alg: &str, key: &str) -> Value {
    if alg.starts_with("HS") {
        serde_json::from_str(&std::fs::read_to_string(env.path(key)).expect("read")).expect("json")
    } else {
        serde_json::from_str(&env.ok(&["key", "public", key, "-f", "jwk"])).expect("json")
    }
}

/// A signing key for every algorithm: RFC vector keys where there is one, and a secp256k1 key
/// and a 512-bit HMAC secret generated into `env` (as `k256.jwk` and `hmac.jwk`).
pub fn alg_keys(env: &Env) -> Vec<(&'static str, String)> {
    env.ok(&[
        "generate-key",
        "-t",
        "ec",
        "--curve",
        "secp256k1",
        "-f",
        "jwk",
        "--out",
        "k256.jwk",
    ]);
    env.ok(&[
        "generate-key",
        "-t",
        "hmac",
        "--bits",
        "512",
        "-f",
        "jwk",
        "--out",
        "hmac.jwk",
    ]);
    let rsa = key_path("rfc7515-A.2.private.pem");
    let mut cases: Vec<(&'static str, String)> = ["HS256", "HS384", "HS512"]
        .map(|a| (a, "hmac.jwk".to_string()))
        .to_vec();
    cases.extend(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"].map(|a| (a, rsa.clone())));
    cases.extend([
        ("ES256", key_path("rfc7515-A.3.private.pem")),
        ("ES384", key_path("generated-p384.private.pem")),
        ("ES512", key_path("rfc7515-A.4.private.sec1.pem")),
        ("ES256K", "k256.jwk".into()),
        ("EdDSA", key_path("rfc8037-A.1.private.pem")),
    ]);
    cases
}

#[test]
fn every_algorithm_verifies_in_pyjwt_with_kid_and_typ() {
    let env = Env::new();
    let cases = alg_keys(&env);
    assert_eq!(cases.len(), jwkit::crypto::Alg::ALL.len());
    let mut peer_cases = Vec::new();
    for (alg, key) in &cases {
        let token = env.ok(&[
            "generate-jwt",
            "--key-file",
            key,
            "--alg",
            alg,
            "--sub",
            "alice",
            "--exp",
            "10m",
        ]);
        assert!(
            token.ends_with('\n') && token.trim().split('.').count() == 3,
            "{alg}: {token}"
        );
        let header = header_of(&token);
        let kid = env.ok(&["key", "thumbprint", key]).trim().to_string();
        assert_eq!(
            header,
            json!({"alg": alg, "typ": "JWT", "kid": kid}),
            "{alg}"
        );
        let verify_key = peer_key(&env, alg, key);
        peer_cases.push(json!({"token": token.trim(), "key": verify_key, "alg": alg}));
    }
    let Some(python) = peer_python() else { return };
    let verdicts = pyjwt_verify(&python, &peer_cases);
    assert_eq!(verdicts.len(), cases.len());
    for ((alg, _), v) in cases.iter().zip(&verdicts) {
        assert_eq!(v["ok"], true, "{alg}: PyJWT says {v}");
        assert_eq!(v["claims"]["sub"], "alice", "{alg}");
        assert_eq!(v["header"]["typ"], "JWT", "{alg}");
        assert_eq!(v["header"]["alg"], *alg, "{alg}");
    }
    // And PyJWT rejects a tampered one, so the check can fail.
    let mut tampered = peer_cases[3].clone();
    let t = tampered["token"]
        .as_str()
        .expect("token")
        .replace(".eyJ", ".eyK");
    tampered["token"] = t.into();
    assert_eq!(pyjwt_verify(&python, &[tampered])[0]["ok"], false);
}

#[test]
fn times_exp_nbf_iat_and_expired() {
    let env = Env::new();
    let key = key_path("rfc8037-A.1.private.pem");
    let c = claims_of(&env.ok(&["generate-jwt", "--key-file", &key, "--exp", "1h"]));
    let (iat, exp) = (
        c["iat"].as_i64().expect("iat"),
        c["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 3600);
    let now = crate::util::unix_now();
    assert!((iat - now).abs() <= 5, "iat {iat} now {now}");
    let c = claims_of(&env.ok(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--exp",
        "2030-01-01T00:00:00Z",
        "--nbf",
        "@1700000000",
        "--iat",
        "-5m",
    ]));
    assert_eq!(c["exp"], 1_893_456_000);
    assert_eq!(c["nbf"], 1_700_000_000);
    assert!((c["iat"].as_i64().expect("iat") - (now - 300)).abs() <= 5);
    let c = claims_of(&env.ok(&["generate-jwt", "--key-file", &key, "--expired"]));
    let (iat, exp) = (
        c["iat"].as_i64().expect("iat"),
        c["exp"].as_i64().expect("exp"),
    );
    assert!((exp - (now - 3600)).abs() <= 5 && exp - iat == 3600, "{c}");
    let c = claims_of(&env.ok(&["generate-jwt", "--key-file", &key, "--no-iat", "--no-exp"]));
    assert_eq!(c, json!({}));
    // Without --exp, a token lives the documented default of 1h (verify-jwt requires exp).
    let c = claims_of(&env.ok(&["generate-jwt", "--key-file", &key, "--no-iat"]));
    assert!(
        (c["exp"].as_i64().expect("exp") - (now + 3600)).abs() <= 5,
        "{c}"
    );
    let c = claims_of(&env.ok(&["generate-jwt", "--key-file", &key]));
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        3600
    );
    env.run(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--exp",
        "1h",
        "--no-exp",
    ])
    .fails_with("cannot be used with");
    env.run(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--exp",
        "1h",
        "--nbf",
        "2h",
    ])
    .fails_with("earlier than nbf");
    env.run(&["generate-jwt", "--key-file", &key, "--exp", "tomorrow"])
        .fails_with(
            "expected a duration from now (30s, 15m, 1h, 7d, -5m, 1h30m), an RFC 3339 date",
        );
}

#[test]
fn claims_from_flags_json_and_stdin_in_a_stable_order() {
    let env = Env::new();
    let key = key_path("rfc8037-A.1.private.pem");
    let args = [
        "generate-jwt",
        "--key-file",
        &key,
        "--iat",
        "@1000",
        "--claims",
        r#"{"z":1,"iss":"doc","nested":{"a":[1,2]}}"#,
        "--iss",
        "flag",
        "--aud",
        "one",
        "-c",
        "admin=true",
        "-c",
        "n=5",
        "-c",
        "roles=[\"a\"]",
        "-c",
        "name=bob",
        "--claim-str",
        "zip=01234",
        "--jti",
        "id-7",
    ];
    let token = env.ok(&args);
    let payload = Compact::parse(token.trim()).expect("parse").payload;
    assert_eq!(
        String::from_utf8(payload).expect("utf8"),
        r#"{"z":1,"iss":"flag","nested":{"a":[1,2]},"aud":"one","admin":true,"n":5,"roles":["a"],"name":"bob","zip":"01234","iat":1000,"exp":4600,"jti":"id-7"}"#
    );
    assert_eq!(
        env.ok(&args),
        token,
        "EdDSA with fixed claims is reproducible"
    );
    let c = claims_of(&env.ok(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--aud",
        "a",
        "--aud",
        "b",
        "--jti",
    ]));
    assert_eq!(c["aud"], json!(["a", "b"]));
    assert_eq!(
        b64::decode(c["jti"].as_str().expect("jti"))
            .expect("b64")
            .len(),
        16
    );
    std::fs::write(env.path("claims.json"), br#"{"from":"file"}"#).expect("write");
    assert_eq!(
        claims_of(&env.ok(&[
            "generate-jwt",
            "--key-file",
            &key,
            "--claims",
            "@claims.json"
        ]))["from"],
        "file"
    );
    let out = env
        .run_with_stdin(
            &["generate-jwt", "--key-file", &key, "--claims", "-"],
            br#"{"from":"stdin"}"#,
        )
        .success();
    assert_eq!(claims_of(&out)["from"], "stdin");
    // The key on stdin works too, and stdin cannot be used twice.
    let pem = std::fs::read(&key).expect("read");
    assert_eq!(
        env.run_with_stdin(&["generate-jwt", "--key-file", "-"], &pem)
            .code,
        0
    );
    env.run_with_stdin(&["generate-jwt", "--key-file", "-", "--claims", "-"], &pem)
        .fails_with("stdin (-) can be used for only one input");
}

#[test]
fn header_kid_typ_and_extra_members() {
    let env = Env::new();
    let key = key_path("rfc7515-A.3.private.pem");
    let h = header_of(&env.ok(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--kid",
        "k1",
        "--typ",
        "at+jwt",
        "--header",
        "x5t=abc",
        "--header",
        "n=1",
    ]));
    assert_eq!(
        h,
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "x5t": "abc", "n": 1})
    );
    let h = header_of(&env.ok(&["generate-jwt", "--key-file", &key, "--no-kid", "--typ", ""]));
    assert_eq!(h, json!({"alg": "ES256"}));
    for bad in ["alg=none", "crit=[\"exp\"]", "b64=false"] {
        env.run(&["generate-jwt", "--key-file", &key, "--header", bad])
            .fails_with("is refused");
    }
    env.run(&["generate-jwt", "--key-file", &key, "--alg", "RS256"])
        .fails_with("it fits: ES256");
    // A JWKS key file: --kid picks the key and names it.
    let set = env.ok(&["key", "convert", &key, "-f", "jwks"]);
    std::fs::write(env.path("set.json"), &set).expect("write");
    let kid = env.ok(&["key", "thumbprint", &key]).trim().to_string();
    assert_eq!(
        header_of(&env.ok(&["generate-jwt", "--key-file", "set.json", "--kid", &kid]))["kid"],
        kid
    );
    env.run(&["generate-jwt", "--key-file", "set.json", "--kid", "other"])
        .fails_with("no key with kid \"other\"");
}

#[test]
fn hmac_secrets_from_file_env_and_store() {
    let env = Env::new();
    let secret = std::fs::read(vectors().join("keys/rfc7515-A.1.hmac.bin")).expect("read");
    std::fs::write(env.path("s.bin"), &secret).expect("write");
    let t1 = env.ok(&[
        "generate-jwt",
        "--secret-file",
        "s.bin",
        "--iat",
        "@1",
        "--no-kid",
    ]);
    let t2 = crate::util::Run::from(
        env.cmd(&[
            "generate-jwt",
            "--secret-env",
            "MY_SECRET",
            "--iat",
            "@1",
            "--no-kid",
        ])
        .env("MY_SECRET", std::ffi::OsStr::from_bytes_lossy(&secret))
        .output()
        .expect("run"),
    );
    assert_eq!(t2.code, 0, "{}", t2.stderr);
    assert_eq!(
        t1, t2.stdout,
        "the same secret from a file or the environment signs the same"
    );
    assert_eq!(header_of(&t1)["alg"], "HS256");
    env.run(&["generate-jwt", "--secret-env", "UNSET_VAR_JWKIT"])
        .fails_with("UNSET_VAR_JWKIT is not set");
    std::fs::write(env.path("short.bin"), b"short").expect("write");
    env.run(&["generate-jwt", "--secret-file", "short.bin"])
        .fails_with("needs at least 32");
    let kid = env.ok(&["generate-key", "-t", "ed25519", "--save"]);
    let t = env.ok(&["generate-jwt", "--key", kid.trim()]);
    assert_eq!(header_of(&t)["kid"], kid.trim());
    env.run(&[
        "generate-jwt",
        "--key-file",
        &key_path("rfc7515-A.3.public.pem"),
    ])
    .fails_with("public key");
    env.run(&["generate-jwt"]).fails_with("--key-file");
}

trait FromBytesLossy {
    fn from_bytes_lossy(b: &[u8]) -> std::ffi::OsString;
}

impl FromBytesLossy for std::ffi::OsStr {
    fn from_bytes_lossy(b: &[u8]) -> std::ffi::OsString {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(b).to_os_string()
    }
}

#[test]
fn bad_input_exits_2_with_one_line_cause() {
    let env = Env::new();
    let key = key_path("rfc7515-A.3.private.pem");
    env.run(&["generate-jwt", "--key-file", "nope.pem"])
        .fails_with("reading key file nope.pem");
    std::fs::write(env.path("junk.key"), [0xff, 0xfe, 0x00]).expect("write");
    env.run(&["generate-jwt", "--key-file", "junk.key"])
        .fails_with("not a key");
    env.run(&["generate-jwt", "--key-file", &key, "--claims", "[1,2]"])
        .fails_with("not a JSON object");
    env.run(&[
        "generate-jwt",
        "--key-file",
        &key,
        "--claims",
        "{\"a\":1,\"a\":2}",
    ])
    .fails_with("duplicate member");
    env.run(&["generate-jwt", "--key-file", &key, "--claims", "{"])
        .fails_with("not a JSON object");
    env.run(&["generate-jwt", "--key-file", &key, "--claim", "novalue"])
        .fails_with("expected NAME=VALUE");
    env.run(&["generate-jwt", "--key-file", &key, "--claim", "=5"])
        .fails_with("the name is empty");
    env.run(&["generate-jwt", "--key-file", &key, "--nbf", ""])
        .fails_with("--nbf: cannot read");
}
