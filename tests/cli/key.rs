//! `jwkit key`: public, thumbprint, convert, jwks; Wycheproof's key cases; malformed keys.

use jwkit::crypto::{self, Hash};
use serde_json::Value;

use crate::util::{Env, vector_json, vector_key_files, vectors};

#[test]
fn thumbprints_of_the_rfc_examples() {
    let env = Env::new();
    let v = vectors();
    let tp = env.ok(&[
        "key",
        "thumbprint",
        v.join("keys/rfc7517-A.2-key1.public.pem")
            .to_str()
            .expect("path"),
    ]);
    assert_eq!(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs\n");
    let tp = env.ok(&[
        "key",
        "thumbprint",
        v.join("keys/rfc8037-A.1.private.pem")
            .to_str()
            .expect("path"),
    ]);
    assert_eq!(tp, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\n");
    let jwk = serde_json::to_vec(&vector_json("rfc7638-3.1-thumbprint.json")["jwk"]).expect("json");
    let uri = env
        .run_with_stdin(&["key", "thumbprint", "--uri", "-"], &jwk)
        .success();
    assert_eq!(
        uri.trim(),
        "urn:ietf:params:oauth:jwk-thumbprint:sha-256:NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    let sha512 = env
        .run_with_stdin(&["key", "thumbprint", "--hash", "sha512", "-"], &jwk)
        .success();
    assert_eq!(
        sha512.trim(),
        vector_json("rfc7638-3.1-thumbprint.json")["expected"]["thumbprint_sha512_per_panva_tests"]
    );
}

#[test]
fn every_vector_key_converts_through_every_format_and_back() {
    let env = Env::new();
    for path in vector_key_files() {
        let p = path.to_str().expect("path");
        let original = crypto::load_key(&std::fs::read(&path).expect("read"), None).expect("loads");
        let tp = original.thumbprint(Hash::Sha256);
        assert_eq!(env.ok(&["key", "thumbprint", p]).trim(), tp, "{p}");
        for format in ["pem", "jwk", "jwks"] {
            let converted = env.ok(&["key", "convert", p, "--format", format]);
            let back = crypto::load_key(converted.as_bytes(), None).expect("converted loads");
            assert_eq!(back.thumbprint(Hash::Sha256), tp, "{p} -> {format}");
            assert_eq!(back.is_private(), original.is_private(), "{p} -> {format}");
            // And back to PEM from the converted form: the same key.
            let again = env
                .run_with_stdin(&["key", "convert", "-", "-f", "pem"], converted.as_bytes())
                .success();
            let k2 = crypto::load_key(again.as_bytes(), None).expect("pem loads");
            assert_eq!(k2.thumbprint(Hash::Sha256), tp);
            if original.is_private() {
                assert_eq!(
                    k2.to_jwk().get("d"),
                    original.to_jwk().get("d"),
                    "{p}: private scalar kept"
                );
            }
            let public = env.ok(&["key", "public", p, "--format", format]);
            assert!(
                !public.contains("\"d\""),
                "{p}: public output holds no private member"
            );
            let pk = crypto::load_key(public.as_bytes(), None).expect("public loads");
            assert!(!pk.is_private());
            assert_eq!(pk.thumbprint(Hash::Sha256), tp);
        }
    }
}

/// Wycheproof `json_web_key_test.json`: every key set labelled invalid is refused by
/// `key public` and `key thumbprint` with exit 2.
#[test]
fn wycheproof_invalid_keys_are_refused() {
    let env = Env::new();
    let suite = vector_json("wycheproof/json_web_key_test.json");
    let mut refused = 0;
    for group in suite["testGroups"].as_array().expect("groups") {
        for test in group["tests"].as_array().expect("tests") {
            let id = test["tcId"].as_u64().expect("id");
            let header_b64 = test["jws"]
                .as_str()
                .expect("jws")
                .split('.')
                .next()
                .expect("header");
            let header: Value =
                serde_json::from_slice(&crypto::b64::decode(header_b64).expect("b64"))
                    .expect("header json");
            let kid = header["kid"].as_str().expect("kid");
            // tcId 3 is labelled invalid for its modified signature; its key set is tcId 2's,
            // which is valid, so the set itself must load.
            let key_is_invalid = test["result"] == "invalid" && id != 3;
            // tcId 6 signs with an encryption key (RSA1_5, use enc): the key itself is sound
            // and loads as an encryption key; what is refused is verifying with it.
            if test["comment"] == "rejectsWrongUse" {
                let set = serde_json::to_vec(&group["public"]).expect("json");
                let shown =
                    env.run_with_stdin(&["key", "public", "-f", "jwk", "--kid", kid, "-"], &set);
                assert_eq!(shown.code, 0, "tcId {id}: {}", shown.stderr);
                assert!(
                    shown.stdout.contains("\"use\": \"enc\""),
                    "{}",
                    shown.stdout
                );
                std::fs::write(env.path("enc-set.json"), &set).expect("w");
                let jws = test["jws"].as_str().expect("jws");
                let run = env.run(&[
                    "verify-jwt",
                    "--jwks-file",
                    "enc-set.json",
                    "--ignore-exp",
                    jws,
                ]);
                assert_ne!(
                    run.code, 0,
                    "tcId {id}: an encryption key verified a signature"
                );
                refused += 1;
                continue;
            }
            for which in ["private", "public"] {
                let Some(set) = group.get(which) else {
                    continue;
                };
                let set = serde_json::to_vec(set).expect("json");
                for cmd in ["public", "thumbprint"] {
                    let run = env.run_with_stdin(&["key", cmd, "--kid", kid, "-"], &set);
                    if key_is_invalid {
                        run.fails_with("error: loading key from stdin: ");
                        refused += 1;
                    } else if cmd == "public" && group["private"]["keys"][0]["kty"] == "oct" {
                        // An HMAC secret is valid but has no public half to print.
                        run.fails_with("no public half");
                    } else {
                        assert_eq!(run.code, 0, "tcId {id} {which} {cmd}: {}", run.stderr);
                    }
                }
            }
        }
    }
    assert!(refused >= 57, "refusals counted: {refused}");
}

#[test]
fn jwks_merges_files_and_refuses_duplicates_and_secrets() {
    let env = Env::new();
    let v = vectors();
    let a = v.join("keys/rfc7515-A.2.private.pem");
    let b = v.join("keys/rfc8037-A.1.public.jwk.json");
    let out = env.ok(&[
        "key",
        "jwks",
        a.to_str().expect("p"),
        b.to_str().expect("p"),
    ]);
    let set: Value = serde_json::from_str(&out).expect("json");
    let keys = set["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "{k}");
        }
        assert!(k["kid"].is_string());
    }
    env.run(&[
        "key",
        "jwks",
        a.to_str().expect("p"),
        a.to_str().expect("p"),
    ])
    .fails_with("duplicate kid");
    let secret = env.ok(&["generate-key", "-t", "hmac", "-f", "jwk"]);
    std::fs::write(env.path("s.jwk"), secret).expect("write");
    env.run(&["key", "jwks", "s.jwk"])
        .fails_with("never carries secrets");
    // Stored keys join by kid.
    let kid = env.ok(&["generate-key", "-t", "ec", "--save", "--kid", "stored-1"]);
    assert_eq!(kid.trim(), "stored-1");
    let set: Value = serde_json::from_str(&env.ok(&[
        "key",
        "jwks",
        "--key",
        "stored-1",
        b.to_str().expect("p"),
    ]))
    .expect("json");
    assert_eq!(
        set["keys"][1]["kid"], "stored-1",
        "files first, then stored keys"
    );
}

#[test]
fn malformed_keys_get_a_cause_and_exit_2() {
    let env = Env::new();
    let pem = std::fs::read_to_string(vectors().join("keys/rfc7515-A.3.private.pem")).expect("pem");
    let spki = std::fs::read_to_string(vectors().join("keys/rfc7515-A.3.public.pem")).expect("pem");
    let rsa_jwk: Value = serde_json::from_slice(
        &std::fs::read(vectors().join("keys/rfc7515-A.2.public.jwk.json")).expect("r"),
    )
    .expect("json");
    let mut e1 = rsa_jwk.clone();
    e1["e"] = "AQ".into();
    let mut no_n = rsa_jwk.clone();
    no_n.as_object_mut().expect("obj").remove("n");
    let mut with_crv = rsa_jwk.clone();
    with_crv["crv"] = "P-256".into();
    let mut n_number = rsa_jwk.clone();
    n_number["n"] = 5.into();
    let ec: Value = serde_json::from_slice(
        &std::fs::read(vectors().join("keys/rfc7515-A.3.public.jwk.json")).expect("r"),
    )
    .expect("json");
    let mut off_curve = ec.clone();
    off_curve["y"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    let mut padded = ec.clone();
    padded["x"] = format!("{}=", ec["x"].as_str().expect("x")).into();
    let j = |v: &Value| serde_json::to_vec(v).expect("json");
    let truncated = &pem[..pem.len() / 2];
    let relabelled = spki.replace("PUBLIC KEY", "PRIVATE KEY");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty file", vec![], "empty"),
        ("white space", b"  \n\t".to_vec(), "empty"),
        (
            "truncated PEM",
            truncated.as_bytes().to_vec(),
            "malformed PEM",
        ),
        (
            "wrong PEM label",
            relabelled.into_bytes(),
            "does not hold a PKCS#8 private key",
        ),
        (
            "unknown PEM label",
            pem.replace("PRIVATE KEY", "DSA PRIVATE KEY").into_bytes(),
            "unsupported PEM label",
        ),
        (
            "encrypted PEM",
            pem.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
                .into_bytes(),
            "encrypted private keys",
        ),
        (
            "garbage DER",
            vec![0x30, 0x82, 0x01, 0x00, 0xde, 0xad],
            "not DER",
        ),
        (
            "binary junk",
            vec![0xff, 0x00, 0x13, 0x37, 0x80],
            "not a key",
        ),
        ("text junk", b"hello world".to_vec(), "not a key"),
        ("JSON array", b"[1,2]".to_vec(), "not a key"),
        ("invalid JSON", b"{\"kty\":".to_vec(), "invalid JSON"),
        (
            "duplicate member",
            br#"{"kty":"oct","k":"AAAA","k":"BBBB"}"#.to_vec(),
            "duplicate member",
        ),
        ("no kty", br#"{"n":"AQAB"}"#.to_vec(), "no \"kty\""),
        (
            "unknown kty",
            br#"{"kty":"DSA"}"#.to_vec(),
            "unsupported kty",
        ),
        ("missing n", j(&no_n), "lacks the required member \"n\""),
        ("member of another kty", j(&with_crv), "does not belong"),
        ("member of wrong type", j(&n_number), "must be a string"),
        ("RSA e = 1", j(&e1), "public exponent"),
        ("EC point off curve", j(&off_curve), "not on curve"),
        ("padded base64url", j(&padded), "padding"),
        (
            "OKP X25519 of 3 bytes",
            br#"{"kty":"OKP","crv":"X25519","x":"AAAA"}"#.to_vec(),
            "32 bytes",
        ),
        ("empty JWKS", br#"{"keys":[]}"#.to_vec(), "holds no keys"),
    ];
    for (name, bytes, needle) in cases {
        std::fs::write(env.path("bad.key"), &bytes).expect("write");
        for cmd in ["public", "thumbprint"] {
            let run = env.run(&["key", cmd, "bad.key"]);
            assert!(
                run.stderr.contains(needle),
                "{name} ({cmd}): {}",
                run.stderr
            );
            run.fails_with("error: loading key from bad.key: ");
        }
    }
    env.run(&["key", "public", "missing.pem"])
        .fails_with("reading key file missing.pem");
    env.run(&["key", "public", "--key", "nope"])
        .fails_with("no key with kid \"nope\"");
}

/// Thumbprints are base64url, so about one kid in 64 begins with '-': every argument that takes
/// a kid must accept it.
#[test]
fn kids_that_begin_with_a_hyphen_work_everywhere() {
    let env = Env::new();
    let kid = env.ok(&["generate-key", "-t", "ec", "--save", "--kid", "-Ikid"]);
    assert_eq!(kid.trim(), "-Ikid");
    assert!(
        env.ok(&["key", "show", "-Ikid"])
            .contains("\"kid\": \"-Ikid\"")
    );
    env.ok(&["key", "public", "--key", "-Ikid"]);
    let token = env.ok(&["generate-jwt", "--key", "-Ikid", "--exp", "5m"]);
    env.ok(&["verify-jwt", "--key", "-Ikid", token.trim()]);
    let set = env.ok(&["key", "jwks", "--key", "-Ikid"]);
    std::fs::write(env.path("set.json"), &set).expect("write");
    env.ok(&["key", "public", "set.json", "--kid", "-Ikid"]);
    let resigned = env.ok(&["resign", "--key", "-Ikid", "--kid", "-Other", token.trim()]);
    let header = jwkit::crypto::jws::Compact::parse(resigned.trim())
        .expect("token")
        .header;
    assert_eq!(header["kid"], "-Other");
    // Claim values may begin with a hyphen too: an IdP's random client id as iss, sub or aud.
    let token = env.ok(&[
        "generate-jwt",
        "--key",
        "-Ikid",
        "--iss",
        "-rP2client",
        "--sub",
        "-sub",
        "--aud",
        "-aud",
    ]);
    env.ok(&[
        "verify-jwt",
        "--key",
        "-Ikid",
        "--iss",
        "-rP2client",
        "--sub",
        "-sub",
        "--aud",
        "-aud",
        token.trim(),
    ]);
}
