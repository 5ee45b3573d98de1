//! Property tests (proptest, 256 cases each): key round trips through every format for every
//! key type; sign then verify for every algorithm; `resign` keeps the payload byte for byte and
//! verifies under the new key; the scanner changes no byte outside a token; `decode` of any
//! well-formed token succeeds (the real binary).

use std::sync::OnceLock;

use jwkit::crypto::resign::{ClaimChanges, KidChoice, Resigner};
use jwkit::crypto::verify::{Policy, TrustedKeys, verify_token};
use jwkit::crypto::{self, Alg, Curve, Hash, Key, KeyMeta, KeySpec, SigningKey, b64, jws};
use proptest::prelude::*;
use serde_json::{Map, Value};

const NOW: i64 = 1_764_000_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failure prints its minimal input; a case worth keeping becomes a named test.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One key per kind: RSA from the RFC vectors (generating 2048-bit keys per case would be the
/// whole test's time), the rest generated once.
fn keys() -> &'static Vec<(&'static str, Key)> {
    static KEYS: OnceLock<Vec<(&'static str, Key)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let vector = |name: &str| {
            let path = format!("{}/tests/vectors/keys/{name}", env!("CARGO_MANIFEST_DIR"));
            crypto::load_key(&std::fs::read(path).expect("vector key"), None).expect("load")
        };
        let generated = |spec| Key::generate(spec, KeyMeta::default(), false).expect("generate");
        vec![
            ("rsa", vector("rfc7515-A.2.private.pem")),
            ("rsa", vector("rfc7517-A.2-key1.private.pem")),
            ("p256", generated(KeySpec::Ec(Curve::P256))),
            ("p384", generated(KeySpec::Ec(Curve::P384))),
            ("p521", generated(KeySpec::Ec(Curve::P521))),
            ("secp256k1", generated(KeySpec::Ec(Curve::Secp256k1))),
            ("ed25519", generated(KeySpec::Ed25519)),
            ("hmac", generated(KeySpec::Hmac { bytes: 64 })),
        ]
    })
}

fn key_for(alg: Alg) -> &'static Key {
    let kind = match alg {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => "hmac",
        Alg::ES256 => "p256",
        Alg::ES384 => "p384",
        Alg::ES512 => "p521",
        Alg::ES256K => "secp256k1",
        Alg::EdDSA => "ed25519",
        _ => "rsa",
    };
    &keys().iter().find(|(k, _)| *k == kind).expect("a key").1
}

/// The key a verifier holds: the public half, or the secret itself.
fn verifying(key: &Key) -> Key {
    if key.is_hmac() {
        return key.clone();
    }
    let jwk = Value::Object(key.public().expect("public").to_jwk()).to_string();
    crypto::load_key(jwk.as_bytes(), None).expect("public JWK")
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claims a strict verifier accepts: any members, plus exp in the future and no other time.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..8).prop_map(|m| {
        let mut c: Map<String, Value> = m
            .into_iter()
            .filter(|(k, _)| {
                !["exp", "nbf", "iat", "aud", "iss", "sub", "jti"].contains(&k.as_str())
            })
            .collect();
        c.insert("exp".into(), (NOW + 3600).into());
        c
    })
}

fn sign(alg: Alg, header: &Map<String, Value>, payload: &[u8]) -> String {
    let signer = SigningKey::new(key_for(alg), alg).expect("signer");
    jws::encode(header, payload, &signer).expect("sign")
}

fn header(alg: Alg) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("alg".into(), alg.as_str().into());
    h.insert("typ".into(), "JWT".into());
    h
}

proptest! {
    #![proptest_config(config())]

    /// Every key type through PKCS#8/SPKI PEM and DER, JWK and JWKS, private and public
    /// halves: the same key (thumbprint) comes back.
    #[test]
    fn keys_round_trip_through_every_format(index in 0usize..8, public in any::<bool>(), kid in "[A-Za-z0-9_-]{1,20}") {
        let (_, key) = &keys()[index];
        let want = key.thumbprint(Hash::Sha256);
        let mut forms: Vec<Vec<u8>> = Vec::new();
        let jwk = if public && !key.is_hmac() {
            key.public().expect("public").to_jwk()
        } else {
            key.to_jwk()
        };
        let mut with_kid = jwk.clone();
        with_kid.insert("kid".into(), kid.clone().into());
        forms.push(Value::Object(jwk).to_string().into_bytes());
        forms.push(serde_json::json!({"keys": [Value::Object(with_kid)]}).to_string().into_bytes());
        if !key.is_hmac() {
            let (tag, der) = if public {
                ("PUBLIC KEY", key.public().expect("public").to_spki_der().expect("spki"))
            } else {
                ("PRIVATE KEY", key.to_pkcs8_der().expect("pkcs8").to_vec())
            };
            forms.push(pem::encode(&pem::Pem::new(tag, der.clone())).into_bytes());
            forms.push(der);
        }
        for form in forms {
            let back = crypto::load_key(&form, None).expect("loads back");
            prop_assert_eq!(back.thumbprint(Hash::Sha256), want.clone());
            prop_assert_eq!(back.is_private(), !public || key.is_hmac());
        }
    }

    /// Every algorithm: what jwkit signs, jwkit verifies, with the claims as signed.
    #[test]
    fn sign_then_verify_for_every_algorithm(alg in prop::sample::select(Alg::ALL.to_vec()), claims in claims()) {
        let payload = serde_json::to_vec(&claims).expect("json");
        let token = sign(alg, &header(alg), &payload);
        let keys = TrustedKeys::single(&verifying(key_for(alg)), &[]).expect("trusted");
        let policy = Policy { any_aud: true, ..Policy::default() };
        let v = verify_token(&token, &keys, &policy, NOW).map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
        prop_assert_eq!(v.alg, Some(alg));
        prop_assert_eq!(v.claims, Some(claims));
        prop_assert_eq!(v.payload, payload);
    }

    /// `resign` of any token keeps its payload segment byte for byte and verifies under the
    /// new key, whatever algorithm it had and whichever the new key signs with.
    #[test]
    fn resign_keeps_the_payload_and_verifies_under_the_new_key(
        old_alg in prop::sample::select(Alg::ALL.to_vec()),
        new_alg in prop::sample::select(Alg::ALL.to_vec()),
        payload in prop::collection::vec(any::<u8>(), 0..300),
        extra in "[a-z]{0,12}",
    ) {
        let mut h = header(old_alg);
        h.insert("kid".into(), "old".into());
        if !extra.is_empty() {
            h.insert(extra.clone(), Value::from(extra.clone()));
        }
        let old = sign(old_alg, &h, &payload);
        let resigner = Resigner {
            signers: vec![SigningKey::new(key_for(new_alg), new_alg).expect("signer")],
            fixed_alg: true,
            kid: KidChoice::Set("new".into()),
            changes: ClaimChanges::default(),
            now: NOW,
        };
        let new = resigner.resign(&old, &|_| Ok(())).map_err(|s| TestCaseError::fail(s.message))?;
        prop_assert_eq!(new.split('.').nth(1), old.split('.').nth(1));
        let keys = TrustedKeys::single(&verifying(key_for(new_alg)), &[]).expect("trusted");
        let policy = Policy { raw: true, ..Policy::default() };
        let v = verify_token(&new, &keys, &policy, NOW).map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
        prop_assert_eq!(v.alg, Some(new_alg));
        prop_assert_eq!(v.payload, payload);
        let new_header = jws::Compact::parse(&new).expect("parses").header;
        prop_assert_eq!(new_header.get("kid").and_then(Value::as_str), Some("new"));
    }

    /// The scanner, given text with tokens between delimiters, replaces exactly the tokens and
    /// changes no other byte.
    #[test]
    fn the_scanner_changes_no_byte_outside_a_token(
        pieces in prop::collection::vec(("[ -~\n\t]{0,40}", any::<bool>()), 1..8),
        delimiter in prop::sample::select(vec![" ", "\"", "\n", "=", ",", "; ", "Bearer "]),
    ) {
        let token = sign(Alg::HS256, &header(Alg::HS256), b"{\"sub\":\"a\"}");
        let mut text = String::new();
        let mut expected = String::new();
        let mut placed = 0;
        for (filler, with_token) in &pieces {
            // Fillers never hold a token of their own: no "ey" in them.
            let filler = filler.replace("ey", "e_");
            text.push_str(&filler);
            expected.push_str(&filler);
            if *with_token {
                text.push_str(delimiter.trim_end_matches(' '));
                text.push(' ');
                text.push_str(&token);
                text.push(' ');
                expected.push_str(delimiter.trim_end_matches(' '));
                expected.push(' ');
                expected.push_str("NEW");
                expected.push(' ');
                placed += 1;
            }
        }
        for nested in [false, true] {
            let scanner = jwkit::scan::Scanner { only: Vec::new(), nested };
            let mut out = Vec::new();
            let mut seen = 0;
            scanner.walk(text.as_bytes(), &mut |occ| {
                assert_eq!(occ.token, token);
                seen += 1;
                Some("NEW".to_owned())
            }, Some(&mut out));
            prop_assert_eq!(seen, placed);
            prop_assert_eq!(String::from_utf8(out).expect("utf-8"), expected.clone());
        }
    }

    /// `jwkit decode` (the binary) accepts any well-formed token: any header with an alg, any
    /// claims or any payload bytes, any times.
    #[test]
    fn decode_of_any_well_formed_token_succeeds(
        header_extra in prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..4),
        body in prop_oneof![
            claims().prop_map(|c| serde_json::to_vec(&c).expect("json")),
            prop::collection::vec(any::<u8>(), 0..200),
            (any::<i64>(), any::<i64>()).prop_map(|(a, b)| format!(r#"{{"exp":{a},"iat":{b},"nbf":{a}}}"#).into_bytes()),
        ],
    ) {
        let mut h: Map<String, Value> = header_extra.into_iter().collect();
        h.insert("alg".into(), "HS256".into());
        let input = format!("{}.{}", b64::encode(Value::Object(h).to_string()), b64::encode(&body));
        let token = format!("{input}.{}", b64::encode([7u8; 32]));
        for json in [false, true] {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jwkit"));
            cmd.arg("decode");
            if json {
                cmd.arg("--json");
            }
            let out = cmd.arg(&token).env_clear().output().expect("jwkit");
            prop_assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            prop_assert!(!out.stdout.is_empty());
        }
    }
}

/// The case the sign-then-verify property found: a float claim must come back exactly as it
/// was signed (serde_json's `float_roundtrip`), not one unit in the last place off.
#[test]
fn a_float_claim_comes_back_exactly() {
    let mut claims = Map::new();
    claims.insert("_".into(), Value::from(vec![8.863426088900501e-187]));
    claims.insert("exp".into(), (NOW + 3600).into());
    let payload = serde_json::to_vec(&claims).expect("json");
    let token = sign(Alg::HS256, &header(Alg::HS256), &payload);
    let keys = TrustedKeys::single(key_for(Alg::HS256), &[]).expect("trusted");
    let v = verify_token(
        &token,
        &keys,
        &Policy {
            any_aud: true,
            ..Policy::default()
        },
        NOW,
    )
    .expect("verifies");
    assert_eq!(v.claims, Some(claims));
}
