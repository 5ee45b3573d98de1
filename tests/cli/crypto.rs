//! The crypto core against the RFC vectors, Wycheproof, and an independent JOSE layer.

use std::collections::BTreeMap;

use jwkit::crypto::{self, Alg, Curve, Hash, Key, KeyMeta, KeySpec, SigningKey, VerifyingKey, b64};
use serde_json::Value;

use crate::util::{vector_json, vector_key_files, vectors};

fn jwk_key(v: &Value) -> Key {
    crypto::load_key(&serde_json::to_vec(v).expect("json"), None).expect("vector key loads")
}

fn signing_input(v: &Value) -> Vec<u8> {
    v["expected"]["signing_input"]
        .as_str()
        .expect("signing input")
        .as_bytes()
        .to_vec()
}

fn signature(v: &Value) -> Vec<u8> {
    b64::decode(v["expected"]["signature_b64"].as_str().expect("sig")).expect("b64")
}

#[test]
fn rfc_deterministic_signatures_reproduce_byte_for_byte() {
    for (file, alg) in [
        ("rfc7515-A.1-HS256.json", Alg::HS256),
        ("rfc7515-A.2-RS256.json", Alg::RS256),
        ("rfc8037-A-ed25519.json", Alg::EdDSA),
    ] {
        let v = vector_json(file);
        let key = jwk_key(&v["jwk"]);
        let sig = crypto::sign(alg, &key, &signing_input(&v)).expect("sign");
        assert_eq!(b64::encode(&sig), v["expected"]["signature_b64"], "{file}");
    }
}

#[test]
fn rfc_randomized_signatures_verify_and_tampering_fails() {
    for (file, alg) in [
        ("rfc7515-A.3-ES256.json", Alg::ES256),
        ("rfc7515-A.4-ES512.json", Alg::ES512),
        ("rfc7515-A.2-RS256.json", Alg::RS256),
        ("rfc7515-A.1-HS256.json", Alg::HS256),
        ("rfc8037-A-ed25519.json", Alg::EdDSA),
    ] {
        let v = vector_json(file);
        let jwk = if v["public_jwk"].is_object() {
            &v["public_jwk"]
        } else {
            &v["jwk"]
        };
        let key = jwk_key(jwk);
        let input = signing_input(&v);
        let sig = signature(&v);
        assert_eq!(
            crypto::verify(alg, &key, &input, &sig).ok(),
            Some(true),
            "{file}"
        );
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert_eq!(
            crypto::verify(alg, &key, &input, &bad).ok(),
            Some(false),
            "{file}"
        );
        let mut other = input.clone();
        other.push(b'x');
        assert_eq!(
            crypto::verify(alg, &key, &other, &sig).ok(),
            Some(false),
            "{file}"
        );
    }
}

#[test]
fn every_vector_key_loads_and_all_forms_of_a_key_share_one_thumbprint() {
    let mut by_key: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for path in vector_key_files() {
        let bytes = std::fs::read(&path).expect("read");
        let key = crypto::load_key(&bytes, None)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        // "rfc7517-A.2-key0.private.pem" and "rfc7517-A.2-key0.jwk.json" are one key.
        let cut = [".jwk.json", ".public.", ".private."]
            .iter()
            .filter_map(|m| name.find(m))
            .min()
            .expect("a known key file suffix");
        let stem = name[..cut].to_string();
        by_key
            .entry(stem)
            .or_default()
            .push((name, key.thumbprint(Hash::Sha256)));
    }
    assert!(by_key.len() >= 9, "{by_key:?}");
    for (stem, forms) in &by_key {
        let first = &forms[0].1;
        assert!(forms.iter().all(|(_, t)| t == first), "{stem}: {forms:?}");
    }
    assert_ne!(
        by_key["rfc7517-A.2-key0"][0].1, by_key["rfc7517-A.2-key1"][0].1,
        "different keys stay apart"
    );
}

#[test]
fn raw_hmac_secrets_load_and_match_their_hex() {
    for path in std::fs::read_dir(vectors().join("keys")).expect("dir") {
        let path = path.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let raw = std::fs::read(&path).expect("bin");
        let hex = std::fs::read_to_string(path.with_extension("hex")).expect("hex");
        let decoded: Vec<u8> = (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).expect("hex digit"))
            .collect();
        assert_eq!(raw, decoded, "{}", path.display());
        let loaded = Key::hmac(raw.clone(), KeyMeta::default());
        if path.ends_with("rfc7517-A.3-key0.hmac.bin") {
            // A 16-byte A128KW key-wrap key, not an HMAC key: RFC 7518 §3.2 requires at least
            // the hash size (32 bytes for HS256), so refusing it as an HMAC secret is right.
            assert!(loaded.is_err());
        } else {
            assert!(loaded.is_ok(), "{}", path.display());
        }
    }
}

#[test]
fn rfc7638_and_rfc8037_thumbprints() {
    let v = vector_json("rfc7638-3.1-thumbprint.json");
    let key = jwk_key(&v["jwk"]);
    assert_eq!(
        key.thumbprint(Hash::Sha256),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert_eq!(
        key.thumbprint(Hash::Sha384),
        v["expected"]["thumbprint_sha384_per_panva_tests"]
    );
    assert_eq!(
        key.thumbprint(Hash::Sha512),
        v["expected"]["thumbprint_sha512_per_panva_tests"]
    );
    let ed = jwk_key(&vector_json("rfc8037-A-ed25519.json")["public_jwk"]);
    assert_eq!(
        ed.thumbprint(Hash::Sha256),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

fn all_specs() -> Vec<(KeySpec, Vec<Alg>)> {
    vec![
        (
            KeySpec::Rsa { bits: 2048 },
            vec![
                Alg::RS256,
                Alg::RS384,
                Alg::RS512,
                Alg::PS256,
                Alg::PS384,
                Alg::PS512,
            ],
        ),
        (KeySpec::Ec(Curve::P256), vec![Alg::ES256]),
        (KeySpec::Ec(Curve::P384), vec![Alg::ES384]),
        (KeySpec::Ec(Curve::P521), vec![Alg::ES512]),
        (KeySpec::Ec(Curve::Secp256k1), vec![Alg::ES256K]),
        (KeySpec::Ed25519, vec![Alg::EdDSA]),
        (
            KeySpec::Hmac { bytes: 64 },
            vec![Alg::HS256, Alg::HS384, Alg::HS512],
        ),
    ]
}

#[test]
fn generated_keys_public_jwk_verifies_private_signature_for_every_alg() {
    let mut covered = Vec::new();
    for (spec, algs) in all_specs() {
        let key = Key::generate(spec, KeyMeta::default(), false).expect("generate");
        // The verifying side is rebuilt from JSON, as a peer would receive it.
        let verifier_json = if key.is_hmac() {
            serde_json::to_vec(&key.to_jwk())
        } else {
            serde_json::to_vec(&key.public().expect("public").to_jwk())
        }
        .expect("json");
        let verifier = crypto::load_key(&verifier_json, None).expect("public JWK loads");
        assert_eq!(verifier.is_private(), key.is_hmac());
        for alg in algs {
            let input = format!("header.payload-{alg}");
            let sig = SigningKey::new(&key, alg)
                .expect("signer")
                .sign(input.as_bytes())
                .expect("sign");
            let vk = VerifyingKey::new(&verifier, alg).expect("verifier");
            assert!(vk.verify(input.as_bytes(), &sig), "{alg}");
            assert!(!vk.verify(b"header.other", &sig), "{alg}");
            covered.push(alg);
        }
    }
    covered.sort();
    assert_eq!(covered, Alg::ALL.to_vec(), "every algorithm is exercised");
}

#[test]
fn pem_jwk_round_trips_keep_the_key() {
    for (spec, _) in all_specs() {
        let key = Key::generate(spec, KeyMeta::default(), false).expect("generate");
        let jwk = serde_json::to_vec(&key.to_jwk()).expect("json");
        let from_jwk = crypto::load_key(&jwk, None).expect("jwk loads");
        assert_eq!(from_jwk.to_jwk(), key.to_jwk());
        if key.is_hmac() {
            assert!(
                key.to_pkcs8_der().is_err(),
                "an HMAC secret has no PEM form"
            );
            continue;
        }
        let der = key.to_pkcs8_der().expect("pkcs8");
        let from_der = crypto::load_key(&der, None).expect("pkcs8 loads");
        assert_eq!(
            from_der.thumbprint(Hash::Sha256),
            key.thumbprint(Hash::Sha256)
        );
        assert_eq!(
            from_der.to_pkcs8_der().expect("again").as_slice(),
            der.as_slice()
        );
        let mut private_members = from_der.to_jwk();
        private_members.remove("alg");
        let mut expected = key.to_jwk();
        expected.remove("alg");
        assert_eq!(
            private_members, expected,
            "PEM -> JWK gives the same private key"
        );
        let spki = key.public().expect("public").to_spki_der().expect("spki");
        let pk = crypto::load_key(&spki, None).expect("spki loads");
        assert!(!pk.is_private());
        assert_eq!(pk.thumbprint(Hash::Sha256), key.thumbprint(Hash::Sha256));
    }
}

/// An independent JOSE implementation (the jsonwebtoken crate) accepts our signatures and we
/// accept its, for the algorithms it implements.
#[test]
fn jsonwebtoken_crate_agrees_with_our_signatures() {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
    let cases: Vec<(KeySpec, Alg, Algorithm)> = vec![
        (KeySpec::Rsa { bits: 2048 }, Alg::RS256, Algorithm::RS256),
        (KeySpec::Rsa { bits: 2048 }, Alg::PS512, Algorithm::PS512),
        (KeySpec::Ec(Curve::P256), Alg::ES256, Algorithm::ES256),
        (KeySpec::Ec(Curve::P384), Alg::ES384, Algorithm::ES384),
        (KeySpec::Ed25519, Alg::EdDSA, Algorithm::EdDSA),
        (KeySpec::Hmac { bytes: 48 }, Alg::HS384, Algorithm::HS384),
    ];
    for (spec, ours, theirs) in cases {
        let key = Key::generate(spec, KeyMeta::default(), false).expect("generate");
        let input = b"eyJhbGciOiJ4In0.eyJzdWIiOiJ5In0";
        let sig = crypto::sign(ours, &key, input).expect("sign");
        let (dk, ek) = if key.is_hmac() {
            let k = b64::decode(key.to_jwk()["k"].as_str().expect("k")).expect("b64");
            (DecodingKey::from_secret(&k), EncodingKey::from_secret(&k))
        } else {
            let spki = key.public().expect("public").to_spki_der().expect("spki");
            let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
            match ours {
                Alg::RS256 | Alg::PS512 => {
                    let jwk = key.public().expect("public").to_jwk();
                    (
                        DecodingKey::from_rsa_components(
                            jwk["n"].as_str().expect("n"),
                            jwk["e"].as_str().expect("e"),
                        )
                        .expect("rsa components"),
                        EncodingKey::from_rsa_der(&pkcs1_of(&key)),
                    )
                }
                Alg::EdDSA => (
                    DecodingKey::from_ed_der(&spki[12..]),
                    EncodingKey::from_ed_der(&pkcs8),
                ),
                _ => (
                    DecodingKey::from_ec_der(&spki[spki.len() - ec_point_len(ours)..]),
                    EncodingKey::from_ec_der(&pkcs8),
                ),
            }
        };
        let ours_b64 = b64::encode(&sig);
        assert!(
            jsonwebtoken::crypto::verify(&ours_b64, input, &dk, theirs).expect("their verify"),
            "{ours}: jsonwebtoken rejects our signature"
        );
        let theirs_b64 = jsonwebtoken::crypto::sign(input, &ek, theirs).expect("their sign");
        let their_sig = b64::decode(&theirs_b64).expect("b64");
        assert_eq!(
            crypto::verify(ours, &key, input, &their_sig).ok(),
            Some(true),
            "{ours}: we reject theirs"
        );
    }
}

fn ec_point_len(alg: Alg) -> usize {
    1 + 2 * alg.curve().expect("curve").coordinate_len()
}

/// PKCS#1 RSAPrivateKey DER of an RSA key, via `openssl`-free means: re-read our PKCS#8.
fn pkcs1_of(key: &Key) -> Vec<u8> {
    use der::Decode;
    let pkcs8 = key.to_pkcs8_der().expect("pkcs8");
    let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8).expect("pkcs8 parses");
    info.private_key.to_vec()
}

#[test]
fn algorithms_must_fit_their_keys() {
    let ec = Key::generate(KeySpec::Ec(Curve::P256), KeyMeta::default(), false).expect("ec");
    let err = SigningKey::new(&ec, Alg::ES384)
        .err()
        .expect("mismatch")
        .to_string();
    assert!(err.contains("ES256"), "{err}");
    assert!(SigningKey::new(&ec, Alg::HS256).is_err());
    let public = crypto::load_key(
        &serde_json::to_vec(&ec.public().expect("pub").to_jwk()).expect("json"),
        None,
    )
    .expect("public");
    assert!(
        SigningKey::new(&public, Alg::ES256).is_err(),
        "a public key cannot sign"
    );
    // HMAC verification never takes an asymmetric key, whatever bytes it has.
    assert!(VerifyingKey::new(&public, Alg::HS256).is_err());
    let hs = Key::hmac(vec![7; 32], KeyMeta::default()).expect("hmac");
    assert_eq!(
        hs.algs(),
        vec![Alg::HS256],
        "a 32-byte secret is too short for HS384/HS512"
    );
    assert!(SigningKey::new(&hs, Alg::HS512).is_err());
}

#[test]
fn encryption_keys_load_but_never_sign() {
    let key = crypto::load_key(
        &std::fs::read(vectors().join("keys/rfc7517-A.2-key0.jwk.json")).expect("read"),
        None,
    )
    .expect("an enc key loads for inspection");
    let err = SigningKey::new(&key, Alg::ES256)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("enc"), "{err}");
    assert!(VerifyingKey::new(&key, Alg::ES256).is_err());
}
