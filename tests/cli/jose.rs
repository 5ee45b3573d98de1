//! JOSE helpers shared by the CLI tests and the attack catalogue (`tests/attacks/`): vector key
//! paths, raw signing of any header and payload, and the one assertion of a rejection.

use jwkit::crypto::{self, Alg, SigningKey, b64, jws};
use serde_json::Value;

use crate::util::{Env, Run, vectors};

pub(crate) fn key_file(name: &str) -> String {
    vectors()
        .join("keys")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Signs raw header and payload bytes (so tests can craft any header) with a vector key.
pub(crate) fn sign_raw(key: &str, alg: Alg, header: &[u8], payload: &[u8]) -> String {
    let k = crypto::load_key(&std::fs::read(key_file(key)).expect("key"), None).expect("load");
    let signer = SigningKey::new(&k, alg).expect("signer");
    jws::encode_segments(&b64::encode(header), &b64::encode(payload), &signer).expect("sign")
}

pub(crate) fn claims_in(secs: i64) -> Vec<u8> {
    let now = crate::util::unix_now();
    format!(r#"{{"sub":"alice","iss":"me","exp":{}}}"#, now + secs).into_bytes()
}

pub(crate) fn es256(header: &str) -> String {
    sign_raw(
        "rfc7515-A.3.private.pem",
        Alg::ES256,
        header.as_bytes(),
        &claims_in(600),
    )
}

/// Asserts a rejection: exit 1, empty stdout, the kind on stderr; then the same kind in --json.
#[track_caller]
pub(crate) fn rejected(env: &Env, args: &[&str], kind: &str) -> Run {
    let run = env.run(args);
    assert_eq!(
        run.code, 1,
        "{args:?}: expected exit 1; stderr: {}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "{args:?}: stdout must be empty: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("error: token rejected: ")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("({kind})")),
        "{args:?}: expected {kind}: {}",
        run.stderr
    );
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let j = env.run(&with_json);
    assert_eq!(j.code, 1);
    let doc: Value = serde_json::from_str(&j.stdout).expect("json");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["error"]["kind"], kind, "{}", j.stdout);
    run
}

/// The forgery a small-order Ed25519 key accepts for any claims (R = the identity point,
/// S = 0), sent with `alg` to every weak key: claims `sub: admin`, valid for 10 minutes.
pub(crate) fn identity_forgery(alg: &str) -> String {
    let mut sig = vec![0u8; 64];
    sig[0] = 1;
    format!(
        "{}.{}.{}",
        b64::encode(serde_json::json!({"alg": alg}).to_string()),
        b64::encode(
            serde_json::json!({"sub": "admin", "exp": crate::util::unix_now() + 600}).to_string()
        ),
        b64::encode(&sig)
    )
}

/// `set.json` in the test's directory: a JWKS of the RFC 7515 A.3 (EC) and A.2 (RSA) public
/// keys, made by `jwkit key jwks`.
pub(crate) fn two_key_set(env: &Env) -> &'static str {
    let set = env.ok(&[
        "key",
        "jwks",
        &key_file("rfc7515-A.3.public.pem"),
        &key_file("rfc7515-A.2.public.pem"),
    ]);
    std::fs::write(env.path("set.json"), &set).expect("write");
    "set.json"
}
