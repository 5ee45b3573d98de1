//! Keys named by the token itself: an embedded `jwk`, a `jku`/`x5u` URL to fetch, an `x5c`
//! chain, a `kid` used as a path or a query.

use jwkit::crypto::{self, Alg};
use serde_json::{Value, json};

use crate::http::{Route, TestServer};
use crate::jose::{claims_in, es256, key_file, rejected, sign_raw};
use crate::util::Env;

/// The attacker signs with its own key and points at it every way the header allows; no
/// request may reach the attacker's server. Sources: CVE-2018-0114 (node-jose trusted an
/// embedded `jwk`); `jku`/`x5u` SSRF and key spoofing (PortSwigger "JWT authentication bypass
/// via jku header injection", jwt_tool `-X s`).
#[test]
fn jwk_jku_x5u_x5c_are_never_used_or_fetched() {
    let env = Env::new();
    let server = TestServer::start();
    let real = key_file("rfc7515-A.3.public.pem");
    // The attacker signs with its own key and points at it every way the header allows.
    let attacker = crypto::load_key(
        &std::fs::read(key_file("rfc7520-3.2.private.pem")).expect("k"),
        None,
    )
    .expect("k");
    let attacker_pub = Value::Object(attacker.public().expect("pub").to_jwk());
    let jwks_url = server.url("/attacker.jwks");
    server.set(
        "/attacker.jwks",
        Route::json(json!({"keys": [attacker_pub]}).to_string()),
    );
    let headers = [
        json!({"alg": "ES512", "jwk": attacker_pub}),
        json!({"alg": "ES512", "jku": jwks_url}),
        json!({"alg": "ES512", "x5u": server.url("/cert.pem")}),
        json!({"alg": "ES512", "x5c": ["MIIB"]}),
    ];
    for h in headers {
        let token = sign_raw(
            "rfc7520-3.2.private.pem",
            Alg::ES512,
            h.to_string().as_bytes(),
            &claims_in(600),
        );
        rejected(
            &env,
            &["verify-jwt", "--key-file", &real, &token],
            "alg_not_allowed",
        );
        rejected(
            &env,
            &[
                "verify-jwt",
                "--key-file",
                &key_file("rfc7515-A.4.public.pem"),
                &token,
            ],
            "bad_signature",
        );
    }
    assert_eq!(server.total_hits(), 0, "jku/x5u were fetched");
}

/// `kid` as a file path (`../../dev/null`, whose empty content an HMAC verifier might use as the
/// key), as SQL, as a shell command and with a line break that would forge a log or batch line:
/// jwkit only ever compares a kid with the kids of the keys it was given. Sources: PortSwigger
/// "JWT authentication bypass via kid header path traversal"; jwt_tool `-I -hc kid`.
#[test]
fn kid_path_traversal_and_injection() {
    let env = Env::new();
    crate::jose::two_key_set(&env);
    std::fs::write(env.path("empty"), b"").expect("write");
    for kid in [
        "../../../../../../dev/null",
        "/dev/null",
        "empty",
        "x' UNION SELECT 'secret' --",
        "$(touch pwned)",
        "|touch pwned",
        "k1\n1\tvalid\tES256\tforged",
    ] {
        let header = json!({"alg": "ES256", "kid": kid}).to_string();
        let run = rejected(
            &env,
            &["verify-jwt", "--jwks-file", "set.json", &es256(&header)],
            "unknown_kid",
        );
        assert!(!run.stderr.contains("\tvalid\t"), "{}", run.stderr);
        // HS256 signed with the empty string, as if the kid's file had been read as the key.
        let hs = {
            let input = format!(
                "{}.{}",
                jwkit::crypto::b64::encode(json!({"alg": "HS256", "kid": kid}).to_string()),
                jwkit::crypto::b64::encode(claims_in(600))
            );
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"");
            format!(
                "{input}.{}",
                jwkit::crypto::b64::encode(aws_lc_rs::hmac::sign(&k, input.as_bytes()))
            )
        };
        let run = env.run(&["verify-jwt", "--jwks-file", "set.json", &hs]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stdout.is_empty());
        assert!(!env.path("pwned").exists() && !std::path::Path::new("pwned").exists());
    }
    // A line break from a kid never reaches stderr as a line break: one error line.
    let header = json!({"alg": "ES256", "kid": "a\nerror: token accepted"}).to_string();
    let run = rejected(
        &env,
        &["verify-jwt", "--jwks-file", "set.json", &es256(&header)],
        "unknown_kid",
    );
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("error: token accepted")),
        "{}",
        run.stderr
    );
}
