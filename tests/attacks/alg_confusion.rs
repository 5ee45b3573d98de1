//! Algorithm confusion: a token that names an algorithm the key was never meant for.

use jwkit::crypto::{self, b64};

use crate::jose::{claims_in, key_file, rejected};
use crate::util::Env;

/// `alg: none` in any casing, with an empty and with a made-up signature. Source: CVE-2015-9235
/// (node-jsonwebtoken accepted `none`); jwt_tool's `-X a` ("alg none") tries these casings.
#[test]
fn alg_none_in_every_casing() {
    let env = Env::new();
    let pem = key_file("rfc7515-A.3.public.pem");
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = b64::encode(format!(r#"{{"alg":"{none}"}}"#));
        for sig in ["", "c2ln"] {
            let token = format!("{header}.{}.{sig}", b64::encode(claims_in(600)));
            rejected(
                &env,
                &["verify-jwt", "--key-file", &pem, &token],
                "alg_not_allowed",
            );
        }
    }
}

/// HS256 keyed with the verifier's RSA public key, in every encoding it is kept in (SPKI PEM,
/// PKCS#1 PEM, DER, JWK). Source: CVE-2015-9235 and CVE-2016-10555 (jwt-simple), jwt_tool's
/// `-X k` ("key confusion").
#[test]
fn hs256_keyed_with_the_rsa_public_key() {
    let env = Env::new();
    let pem_path = key_file("rfc7515-A.2.public.pem");
    let spki_pem = std::fs::read(&pem_path).expect("pem");
    let der = pem::parse(&spki_pem).expect("pem").into_contents();
    let key = crypto::load_key(&spki_pem, None).expect("rsa");
    let jwk = serde_json::to_vec(&key.public().expect("pub").to_jwk()).expect("json");
    let pkcs1_pem = {
        use der::Decode;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&der).expect("spki");
        pem::encode(&pem::Pem::new(
            "RSA PUBLIC KEY",
            spki.subject_public_key.raw_bytes().to_vec(),
        ))
    };
    std::fs::write(env.path("pub.jwk"), &jwk).expect("write");
    std::fs::write(env.path("pub.der"), &der).expect("write");
    std::fs::write(env.path("pub.pkcs1.pem"), &pkcs1_pem).expect("write");
    let header = b64::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = b64::encode(claims_in(600));
    let input = format!("{header}.{payload}");
    for secret in [
        spki_pem.as_slice(),
        pkcs1_pem.as_bytes(),
        der.as_slice(),
        jwk.as_slice(),
    ] {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let token = format!(
            "{input}.{}",
            b64::encode(aws_lc_rs::hmac::sign(&k, input.as_bytes()))
        );
        for file in [pem_path.as_str(), "pub.jwk", "pub.der", "pub.pkcs1.pem"] {
            rejected(
                &env,
                &["verify-jwt", "--key-file", file, &token],
                "alg_not_allowed",
            );
        }
    }
}
