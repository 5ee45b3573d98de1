//! The attack catalogue: one test per published attack class on JWT libraries, each with its
//! source (a CVE or advisory, or the attack's name in the JWT attack playbooks that pentest tools
//! such as jwt_tool and Burp's JWT Editor use). Every test runs the real `jwkit verify-jwt` and
//! asserts exit 1 (2 for a key jwkit refuses to load), empty stdout and the documented kind.
//!
//! | class | source | test |
//! |---|---|---|
//! | alg none, any casing | CVE-2015-9235 (node-jsonwebtoken), jwt_tool "none" | `alg_confusion::alg_none_in_every_casing` |
//! | HMAC keyed with the public key | CVE-2015-9235, CVE-2016-10555 (jwt-simple) | `alg_confusion::hs256_keyed_with_the_rsa_public_key` |
//! | embedded `jwk` | CVE-2018-0114 (node-jose) | `header_keys::jwk_jku_x5u_x5c_are_never_used_or_fetched` |
//! | `jku` / `x5u` fetching (SSRF) | jwt_tool "spoof JWKS", PortSwigger "jku header injection" | same test: no request reaches the server |
//! | `kid` path traversal and injection | PortSwigger "kid header path traversal", jwt_tool "kid injection" | `header_keys::kid_path_traversal_and_injection` |
//! | psychic signatures | CVE-2022-21449 (Java ECDSA) | `signatures::psychic_signatures_on_every_curve` |
//! | ECDSA DER-encoded signature | RFC 7518 §3.4 (JWS takes r‖s); CVE-2022-21449 write-ups | `signatures::der_encoded_ecdsa_signatures` |
//! | ECDSA high-S (malleability) | Wycheproof ECDSA, BIP-62 | `signatures::high_s_ecdsa_changes_no_claim` |
//! | RSA PKCS#1 v1.5 forgery, e = 3 | Bleichenbacher 2006; CVE-2006-4339 (OpenSSL), CVE-2014-1568 (NSS) | `signatures::bleichenbacher_e3_forgery` |
//! | wrong-typed `exp`/`nbf` treated as absent | CVE-2026-25537 (`jsonwebtoken` < 10.3) | `claims::wrong_typed_times_are_invalid_not_absent` |
//! | duplicate members | CVE-2023-48223 class (parser differentials), RFC 7515 §5.2 | `claims::duplicate_members` |
//! | `crit` | RFC 7515 §4.1.11; CVE-2023-25659 class | `claims::crit_is_refused` |
//! | `b64: false` | RFC 7797 §6 (unencoded payload confusion) | `claims::b64_false_is_refused` |
//! | nested JWS / JWE confusion | CVE-2023-51774 (json-jwt), jose4j/node-jose JWE-as-JWS | `structure::nested_and_jwe_confusion` |
//! | small-order and weak keys | CVE-2020-36843 class (Ed25519 small order), ROCA CVE-2017-15361 | `keys::weak_keys_are_refused` |
//! | oversize inputs | CVE-2023-46233 class (DoS by huge tokens), jwt_tool fuzzing | `structure::oversize_inputs` |
//! | JWE invalid curve (ECDH-ES) | Jager-Schwenk-Somorovsky 2015, CVE-2017-16007 (node-jose) | `jwe::invalid_curve_points_are_refused` |
//! | JWE PBES2 cost (huge p2c) | CVE-2022-36083 (panva jose) | `jwe::pbes2_iteration_count_is_capped` |
//! | JWE zip bomb (zip: DEF) | CVE-2024-28180 (go-jose) | `jwe::zip_bombs_are_cut_off` |
//! | JWE RSA1_5 padding oracle | Bleichenbacher 1998, RFC 7516 §11.5 | `jwe::rsa1_5_is_refused_and_never_an_oracle` |
//! | JWE alg/enc and key misuse | RFC 7517 §4.2-4.3, key confusion | `jwe::alg_and_key_misuse_is_refused` |

#[allow(dead_code)]
#[path = "../cli/util.rs"]
mod util;

#[allow(dead_code)]
#[path = "../cli/http.rs"]
mod http;

#[allow(dead_code)]
#[path = "../cli/jose.rs"]
mod jose;

/// An RSA key made by `openssl genpkey` (bits, public exponent) in the test's directory.
pub(crate) fn openssl_rsa(env: &util::Env, name: &str, bits: u32, e: u32) -> std::path::PathBuf {
    let path = env.path(name);
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-pkeyopt")
        .arg(format!("rsa_keygen_pubexp:{e}"))
        .arg("-out")
        .arg(&path)
        .output()
        .expect("openssl (Debian: apt-get install openssl)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    path
}

mod alg_confusion;
mod claims;
mod header_keys;
mod jwe;
mod keys;
mod signatures;
mod structure;
