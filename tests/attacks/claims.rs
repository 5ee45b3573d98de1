//! Headers and claims that a lenient parser reads differently from a strict one.

use jwkit::crypto::Alg;

use crate::jose::{es256, key_file, rejected, sign_raw};
use crate::util::{Env, unix_now};

fn eddsa(header: &str, claims: &str) -> String {
    sign_raw(
        "rfc8037-A.1.private.pem",
        Alg::EdDSA,
        header.as_bytes(),
        claims.as_bytes(),
    )
}

/// `exp` or `nbf` of the wrong type (a string, a boolean, a float out of range) must make the
/// token invalid, never count as absent (which would make an expired token valid forever).
/// Source: CVE-2026-25537 (the `jsonwebtoken` crate before 10.3 skipped such claims).
#[test]
fn wrong_typed_times_are_invalid_not_absent() {
    let env = Env::new();
    let public = key_file("rfc8037-A.1.public.pem");
    let past = unix_now() - 3600;
    for claims in [
        format!(r#"{{"exp":"{past}"}}"#),
        r#"{"exp":"9999999999"}"#.to_owned(),
        r#"{"exp":null}"#.to_owned(),
        r#"{"exp":[9999999999]}"#.to_owned(),
        r#"{"exp":1e300}"#.to_owned(),
        r#"{"exp":9999999999,"nbf":"0"}"#.to_owned(),
        r#"{"exp":9999999999,"nbf":true}"#.to_owned(),
        r#"{"exp":9999999999,"iat":"now"}"#.to_owned(),
    ] {
        let token = eddsa(r#"{"alg":"EdDSA"}"#, &claims);
        rejected(
            &env,
            &["verify-jwt", "--key-file", &public, &token],
            "malformed",
        );
    }
}

/// Duplicate members in the header or the claims: two parsers (a gateway's and the app's) may
/// take different ones, so jwkit takes none. Sources: RFC 7515 §5.2 (duplicate names must be
/// rejected or the last taken); the parser-differential class of CVE-2023-48223
/// (fast-jwt) and the "JSON interoperability" research by Bishop Fox (2021).
#[test]
fn duplicate_members() {
    let env = Env::new();
    let public = key_file("rfc8037-A.1.public.pem");
    let exp = unix_now() + 600;
    for (header, claims) in [
        (
            r#"{"alg":"EdDSA","alg":"none"}"#.to_owned(),
            format!(r#"{{"exp":{exp}}}"#),
        ),
        (
            r#"{"alg":"EdDSA","kid":"a","kid":"b"}"#.to_owned(),
            format!(r#"{{"exp":{exp}}}"#),
        ),
        (
            r#"{"alg":"EdDSA"}"#.to_owned(),
            format!(r#"{{"exp":{exp},"exp":1}}"#),
        ),
        (
            r#"{"alg":"EdDSA"}"#.to_owned(),
            format!(r#"{{"exp":{exp},"sub":"alice","sub":"admin"}}"#),
        ),
    ] {
        let token = eddsa(&header, &claims);
        rejected(
            &env,
            &["verify-jwt", "--key-file", &public, &token],
            "malformed",
        );
    }
}

/// `crit` names extensions the verifier must understand; jwkit understands none, so any `crit`
/// is refused (an ignored `crit` is how a restriction is lost). Sources: RFC 7515 §4.1.11;
/// the "crit ignored" class (CVE-2023-25659 and go-jose's 2016 advisory).
#[test]
fn crit_is_refused() {
    let env = Env::new();
    let public = key_file("rfc7515-A.3.public.pem");
    for header in [
        r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"ES256","crit":[]}"#,
        r#"{"alg":"ES256","crit":"b64"}"#,
    ] {
        rejected(
            &env,
            &["verify-jwt", "--key-file", &public, &es256(header)],
            "crit_unsupported",
        );
    }
}

/// `b64: false` (RFC 7797): the payload is signed unencoded, so the same signature can stand for
/// different claims depending on whether the verifier honours it. jwkit does not support it and
/// refuses it, with or without `crit`. Source: RFC 7797 §6 and §8 (security considerations).
#[test]
fn b64_false_is_refused() {
    let env = Env::new();
    let public = key_file("rfc7515-A.3.public.pem");
    for header in [
        r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"ES256","b64":false}"#,
        r#"{"alg":"ES256","b64":true}"#,
    ] {
        rejected(
            &env,
            &["verify-jwt", "--key-file", &public, &es256(header)],
            "crit_unsupported",
        );
    }
}
