//! Keys under which anyone can forge: refused wherever jwkit loads a key, with exit 2. The
//! same fixtures are refused by `serve` uploads and the key commands in
//! `tests/cli/seams.rs` (`keys_under_which_anyone_can_forge_are_refused_everywhere`).

use crate::jose::identity_forgery;
use crate::openssl_rsa;
use crate::util::Env;

/// Small-order and non-canonical Ed25519 points (any signature of the identity point's form
/// verifies for every message under some implementations), RSA moduli that are prime or have a
/// small factor, and RSA keys under 2048 bits. Sources: CVE-2020-36843 class (Ed25519
/// small-order public keys, "Taming the many EdDSAs", 2020); ROCA (CVE-2017-15361) and
/// Bleichenbacher-style weak moduli; NIST SP 800-131A for the 2048-bit floor.
#[test]
fn weak_keys_are_refused() {
    let env = Env::new();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weak");
    let rsa1024 = openssl_rsa(&env, "rsa1024.pem", 1024, 65537);
    let cases = [
        (
            fixtures.join("ed25519-identity.jwk"),
            "EdDSA",
            "small order",
        ),
        (fixtures.join("ed25519-order8.jwk"), "EdDSA", "small order"),
        (
            fixtures.join("ed25519-noncanonical.jwk"),
            "EdDSA",
            "not canonically encoded",
        ),
        (fixtures.join("rsa-prime-modulus.jwk"), "RS256", "prime"),
        (fixtures.join("rsa-factor-3.jwk"), "RS256", "small factor 3"),
        (rsa1024, "RS256", "2048"),
    ];
    for (path, alg, why) in cases {
        let token = identity_forgery(alg);
        let path = path.to_str().expect("path");
        let run = env.run(&["verify-jwt", "--key-file", path, &token]);
        assert_eq!(run.code, 2, "{path}: {}", run.stderr);
        assert!(run.stdout.is_empty());
        assert!(run.stderr.contains(why), "{path}: {}", run.stderr);
        // In a key set, the weak key is skipped: the token finds no key (exit 1).
        let jwk = if path.ends_with(".pem") {
            continue;
        } else {
            std::fs::read_to_string(path).expect("read")
        };
        std::fs::write(env.path("set.json"), format!(r#"{{"keys":[{jwk}]}}"#)).expect("write");
        let run = env.run(&["verify-jwt", "--jwks-file", "set.json", &token]);
        assert!(matches!(run.code, 1 | 2), "{path}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}
