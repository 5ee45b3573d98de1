//! JWE decryption against the published vectors: RFC 7520 (sections 5.1-5.13 and 6, every
//! compact and JSON form, every recipient) with RFC 8037's X25519 case, and Project
//! Wycheproof's JWE suite (every valid test decrypts to its plaintext; every invalid one is
//! refused with nothing on stdout).

use serde_json::Value;

use crate::util::{Env, vector_json};

/// `decode --plaintext` of `token` with `key` (a JWK, or a password string).
fn decrypt(env: &Env, key: &Value, token: &str) -> crate::util::Run {
    let mut args = vec!["decode", "--plaintext", "--insecure"];
    match key {
        Value::String(password) => {
            std::fs::write(env.path("password"), format!("{password}\n")).expect("password");
            args.extend(["--password-file", "password"]);
        }
        jwk => {
            std::fs::write(env.path("key.json"), jwk.to_string()).expect("key");
            args.extend(["--decrypt-key-file", "key.json"]);
        }
    }
    args.push("-");
    env.run_with_stdin(&args, token.as_bytes())
}

/// Every serialization of one RFC 7520-style case decrypts, with every key it lists.
fn case_decrypts(env: &Env, name: &str, case: &Value) -> usize {
    let input = &case["input"];
    let plaintext = input["plaintext"].as_str().expect("plaintext");
    let keys: Vec<Value> = match input.get("key").or_else(|| input.get("pwd")) {
        Some(Value::Array(list)) => list.clone(),
        Some(k) => vec![k.clone()],
        None => panic!("{name}: no key"),
    };
    let mut n = 0;
    for form in ["compact", "json", "json_flat"] {
        let Some(token) = case["output"].get(form) else {
            continue;
        };
        let token = match token {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for key in &keys {
            let run = decrypt(env, key, &token);
            assert_eq!(run.code, 0, "{name} {form}: {}", run.stderr);
            assert_eq!(run.stdout, plaintext, "{name} {form}");
            n += 1;
        }
    }
    n
}

#[test]
fn rfc7520_and_rfc8037_vectors_decrypt_to_their_plaintexts() {
    let env = Env::new();
    let dir = crate::util::vectors().join("jwe/rfc7520");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("rfc7520 dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut decrypted = 0;
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let case = vector_json(&format!("jwe/rfc7520/{name}"));
        // Section 6 nests a JWS in a JWE: its encryption half is a case like the others.
        let case = case.get("encrypt").cloned().unwrap_or(case);
        decrypted += case_decrypts(&env, &name, &case);
    }
    // 5.1-5.9, section 6 and RFC 8037 in three forms (33), 5.10-5.12 in the two JSON forms
    // (6), 5.13's general JSON with each of its three recipients' keys (3).
    assert_eq!(decrypted, 42, "every form of every case");
}

#[test]
fn rsa1_5_decrypts_only_when_asked() {
    let env = Env::new();
    let case = vector_json("jwe/rfc7520/5_1.key_encryption_using_rsa_v15_and_aes-hmac-sha2.json");
    std::fs::write(env.path("key.json"), case["input"]["key"].to_string()).expect("key");
    let token = case["output"]["compact"].as_str().expect("compact");
    let run = env.run_with_stdin(
        &[
            "decode",
            "--plaintext",
            "--decrypt-key-file",
            "key.json",
            "-",
        ],
        token.as_bytes(),
    );
    run.fails_with("RSA1_5");
}

#[test]
fn wycheproof_jwe_suite() {
    let env = Env::new();
    let suite = vector_json("wycheproof/json_web_encryption_test.json");
    let (mut valid, mut invalid) = (0, 0);
    for group in suite["testGroups"].as_array().expect("groups") {
        for test in group["tests"].as_array().expect("tests") {
            let id = test["tcId"].as_u64().expect("id");
            let token = test["jwe"].as_str().expect("jwe");
            let run = decrypt(&env, &group["private"], token);
            if test["result"] == "valid" {
                assert_eq!(run.code, 0, "tcId {id}: {}", run.stderr);
                let pt = test["pt"].as_str().expect("pt");
                let want: Vec<u8> = (0..pt.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&pt[i..i + 2], 16).expect("hex"))
                    .collect();
                assert_eq!(run.stdout_bytes, want, "tcId {id}");
                valid += 1;
            } else {
                assert_eq!(run.code, 2, "tcId {id} ({}) was accepted", test["comment"]);
                assert!(run.stdout.is_empty(), "tcId {id}: {}", run.stdout);
                assert!(run.stderr.contains("error: "), "tcId {id}: {}", run.stderr);
                assert!(
                    !run.stderr.contains("panicked"),
                    "tcId {id}: {}",
                    run.stderr
                );
                invalid += 1;
            }
        }
    }
    assert_eq!(valid + invalid, 139, "the suite has 139 tests");
}

/// Runs a peer (jwcrypto or jose) over a batch of jobs.
fn peer(which: &str, jobs: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let mut cmd = match which {
        "jwcrypto" => {
            let python = crate::generate_jwt::peer_python().expect("python");
            let mut c = std::process::Command::new(python);
            c.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/jwe_peer.py"));
            c
        }
        _ => {
            let mut c = std::process::Command::new("node");
            c.arg(crate::idp::idp_dir().join("jwe_peer.mjs"));
            c
        }
    };
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("peer");
    let input = serde_json::to_vec(jobs).expect("jobs");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("peer output");
    writer.join().expect("writer").expect("write jobs");
    assert!(
        out.status.success(),
        "{which}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peer results")
}

/// The public half of a JWK (the private members dropped; an oct key stays as it is).
fn public(jwk: &Value) -> Value {
    let mut p = jwk.clone();
    let o = p.as_object_mut().expect("jwk");
    if o["kty"] != "oct" {
        for m in ["d", "p", "q", "dp", "dq", "qi"] {
            o.remove(m);
        }
    }
    p
}

/// A P-256 signing key made by jwkit: `sig.json` (private) and `sig.public.json`; the JWK.
fn signing_key(env: &Env) -> Value {
    env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--format",
        "jwk",
        "--out",
        "sig.json",
    ]);
    let sig: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("sig.json")).expect("sig"))
            .expect("sig json");
    std::fs::write(env.path("sig.public.json"), public(&sig).to_string()).expect("w");
    sig
}

const ENCS: [(&str, usize); 6] = [
    ("A128GCM", 16),
    ("A192GCM", 24),
    ("A256GCM", 32),
    ("A128CBC-HS256", 32),
    ("A192CBC-HS384", 48),
    ("A256CBC-HS512", 64),
];

/// Every (alg, enc) pair jwkit encrypts with, and the key each uses.
fn pairs() -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    for (enc, len) in ENCS {
        let mut add = |alg: &str, key: String| out.push((alg.to_string(), key, enc));
        for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512"] {
            add(alg, "rsa".into());
        }
        for crv in ["P-256", "P-384", "P-521", "X25519"] {
            for alg in [
                "ECDH-ES",
                "ECDH-ES+A128KW",
                "ECDH-ES+A192KW",
                "ECDH-ES+A256KW",
            ] {
                add(alg, crv.into());
            }
        }
        for (alg, n) in [
            ("A128KW", 16),
            ("A192KW", 24),
            ("A256KW", 32),
            ("A128GCMKW", 16),
            ("A192GCMKW", 24),
            ("A256GCMKW", 32),
        ] {
            add(alg, format!("oct{n}"));
        }
        add("dir", format!("oct{len}"));
    }
    out
}

/// What jwcrypto 1.5.6 lacks: RSA-OAEP with SHA-384 and SHA-512.
fn jwcrypto_lacks(alg: &str) -> bool {
    matches!(alg, "RSA-OAEP-384" | "RSA-OAEP-512")
}

/// Interop both ways for every (alg, enc) pair, nested JWTs verified end to end: jwkit signs
/// and encrypts, jwcrypto and jose decrypt and verify the inner signature; jwcrypto and jose
/// sign and encrypt, `jwkit verify-jwt --decrypt-key-file` decrypts and verifies (one
/// `--batch` run per decryption key). Encrypted-only tokens: refused as `unsigned` under a
/// public-key algorithm, taken with --allow-unsigned, and taken under a shared key.
#[test]
fn nested_tokens_interoperate_with_jwcrypto_and_jose_both_ways() {
    if crate::generate_jwt::peer_python().is_none() || crate::idp::node().is_none() {
        return;
    }
    let env = Env::new();
    let keys = peer("jwcrypto", &[serde_json::json!({"op": "keys"})]);
    let keys = keys[0]["keys"].as_object().expect("keys").clone();
    for (name, jwk) in &keys {
        std::fs::write(env.path(&format!("{name}.private.json")), jwk.to_string()).expect("w");
        std::fs::write(
            env.path(&format!("{name}.public.json")),
            public(jwk).to_string(),
        )
        .expect("w");
    }
    let sig = signing_key(&env);
    let sig_public = public(&sig);
    let pairs = pairs();
    assert_eq!(pairs.len(), 162);

    // jwkit -> jwcrypto, jose.
    let mut opens = Vec::new();
    for (i, (alg, key, enc)) in pairs.iter().enumerate() {
        let token = env.ok(&[
            "generate-jwt",
            "--key-file",
            "sig.json",
            "--sub",
            &format!("pair-{i}"),
            "--encrypt-key-file",
            &format!("{key}.public.json"),
            "--jwe-alg",
            alg,
            "--jwe-enc",
            enc,
        ]);
        opens.push(serde_json::json!({
            "op": "open", "token": token.trim(), "key": keys[key.as_str()], "sig": sig_public,
        }));
    }
    for which in ["jwcrypto", "jose"] {
        let results = peer(which, &opens);
        for (i, ((alg, key, enc), r)) in pairs.iter().zip(&results).enumerate() {
            if which == "jwcrypto" && jwcrypto_lacks(alg) {
                assert_eq!(r["ok"], false, "{which} {alg} {enc}");
                continue;
            }
            assert_eq!(
                r["ok"], true,
                "{which} could not open jwkit's {alg}/{enc} ({key}): {r}"
            );
            assert_eq!(
                r["claims"]["sub"],
                format!("pair-{i}"),
                "{which} {alg} {enc}"
            );
        }
    }

    // jwcrypto, jose -> jwkit: one verify-jwt --batch per decryption key.
    for which in ["jwcrypto", "jose"] {
        let nests: Vec<Value> = pairs
            .iter()
            .enumerate()
            .map(|(i, (alg, key, enc))| {
                serde_json::json!({
                    "op": "nest", "claims": {"sub": format!("{which}-{i}"), "exp": 4102444800u64},
                    "sig": sig, "key": public(&keys[key.as_str()]), "alg": alg, "enc": enc,
                })
            })
            .collect();
        let results = peer(which, &nests);
        let mut by_key: std::collections::BTreeMap<&str, Vec<(usize, String)>> = Default::default();
        for (i, ((alg, key, enc), r)) in pairs.iter().zip(&results).enumerate() {
            if which == "jwcrypto" && jwcrypto_lacks(alg) {
                continue;
            }
            assert_eq!(r["ok"], true, "{which} could not make {alg}/{enc}: {r}");
            by_key
                .entry(key.as_str())
                .or_default()
                .push((i, r["token"].as_str().expect("token").to_string()));
        }
        for (key, tokens) in by_key {
            let lines: String = tokens.iter().map(|(_, t)| format!("{t}\n")).collect();
            let run = env.run_with_stdin(
                &[
                    "verify-jwt",
                    "--batch",
                    "--json",
                    "--key-file",
                    "sig.public.json",
                    "--decrypt-key-file",
                    &format!("{key}.private.json"),
                    "-",
                ],
                lines.as_bytes(),
            );
            assert_eq!(run.code, 0, "{which} {key}: {}\n{}", run.stderr, run.stdout);
            let verdicts: Vec<Value> = run
                .stdout
                .lines()
                .map(|l| serde_json::from_str(l).expect("json line"))
                .collect();
            assert_eq!(verdicts.len(), tokens.len(), "{which} {key}");
            for ((i, _), v) in tokens.iter().zip(&verdicts) {
                let (alg, _, enc) = &pairs[*i];
                assert_eq!(v["valid"], true, "{which} {alg}/{enc} ({key}): {v}");
                assert_eq!(v["alg"], "ES256", "{which} {alg}/{enc}");
            }
        }
        // PBES2 (jwkit decrypts it; it encrypts to keys only): the password as an app keeps
        // it, with a trailing newline in its file.
        std::fs::write(env.path("password"), "correct horse battery staple\n").expect("w");
        let password = serde_json::json!({"kty": "oct",
            "k": jwkit::crypto::b64::encode("correct horse battery staple")});
        let mut pbes = Vec::new();
        for alg in [
            "PBES2-HS256+A128KW",
            "PBES2-HS384+A192KW",
            "PBES2-HS512+A256KW",
        ] {
            for (enc, _) in ENCS {
                pbes.push(serde_json::json!({
                    "op": "nest", "claims": {"sub": format!("{which}-{alg}-{enc}"), "exp": 4102444800u64},
                    "sig": sig, "key": password, "alg": alg, "enc": enc,
                }));
            }
        }
        let made = peer(which, &pbes);
        let lines: String = made
            .iter()
            .map(|r| {
                assert_eq!(r["ok"], true, "{which} PBES2: {r}");
                format!("{}\n", r["token"].as_str().expect("token"))
            })
            .collect();
        let run = env.run_with_stdin(
            &[
                "verify-jwt",
                "--batch",
                "--key-file",
                "sig.public.json",
                "--password-file",
                "password",
                "-",
            ],
            lines.as_bytes(),
        );
        assert_eq!(run.code, 0, "{which} PBES2: {}\n{}", run.stderr, run.stdout);
        assert_eq!(
            run.stdout
                .lines()
                .filter(|l| l.contains("\tvalid\t"))
                .count(),
            18,
            "{}",
            run.stdout
        );
        // And one of them through verify-jwt's single mode: the claims as they were made.
        let (i, (alg, key, _)) = pairs
            .iter()
            .enumerate()
            .find(|(_, (alg, _, _))| alg == "ECDH-ES+A256KW")
            .expect("pair");
        let claims = env.ok(&[
            "verify-jwt",
            "--key-file",
            "sig.public.json",
            "--decrypt-key-file",
            &format!("{key}.private.json"),
            results[i]["token"].as_str().expect("token"),
        ]);
        assert!(
            claims.contains(&format!("\"{which}-{i}\"")),
            "{alg}: {claims}"
        );
    }

    // Encrypted only: under RSA-OAEP-256 anyone with the public key could have made it.
    let seals = peer(
        "jose",
        &[
            serde_json::json!({"op": "seal", "claims": {"sub": "sealed", "exp": 4102444800u64},
                "key": public(&keys["rsa"]), "alg": "RSA-OAEP-256", "enc": "A256GCM"}),
            serde_json::json!({"op": "seal", "claims": {"sub": "shared", "exp": 4102444800u64},
                "key": keys["oct32"], "alg": "A256KW", "enc": "A256GCM"}),
        ],
    );
    let sealed = seals[0]["token"].as_str().expect("sealed");
    let verify = |key: &str, token: &str, extra: &[&str]| {
        let mut args = vec![
            "verify-jwt",
            "--json",
            "--key-file",
            "sig.public.json",
            "--decrypt-key-file",
            key,
        ];
        args.extend_from_slice(extra);
        args.push(token);
        env.run(&args)
    };
    let run = verify("rsa.private.json", sealed, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("\"kind\":\"unsigned\""),
        "{}",
        run.stdout
    );
    let run = verify("rsa.private.json", sealed, &["--allow-unsigned"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"sealed\""), "{}", run.stdout);
    assert!(run.stderr.contains("--allow-unsigned"), "{}", run.stderr);
    let shared = seals[1]["token"].as_str().expect("shared");
    let run = verify("oct32.private.json", shared, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("\"shared\""), "{}", run.stdout);
    // A wrong key: one kind, one message.
    std::fs::write(
        env.path("wrong.json"),
        serde_json::json!({"kty": "oct", "k": format!("{}A", "C".repeat(42))}).to_string(),
    )
    .expect("w");
    let run = verify("wrong.json", shared, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains("\"kind\":\"decrypt_failed\""),
        "{}",
        run.stdout
    );
}

/// RFC 7520 section 6: a JWS nested in a JWE, verified end to end at a time it was valid.
#[test]
fn rfc7520_section_6_verifies_at_its_time() {
    let env = Env::new();
    let case = vector_json("jwe/rfc7520/6.nesting_signatures_and_encryption.json");
    std::fs::write(
        env.path("enc.json"),
        case["encrypt"]["input"]["key"].to_string(),
    )
    .expect("w");
    std::fs::write(
        env.path("sig.json"),
        public(&case["sign"]["input"]["key"]).to_string(),
    )
    .expect("w");
    for form in ["compact", "json", "json_flat"] {
        let token = match &case["encrypt"]["output"][form] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let run = env.run_with_stdin(
            &[
                "verify-jwt",
                "--json",
                "--key-file",
                "sig.json",
                "--decrypt-key-file",
                "enc.json",
                "--at",
                "@1300819000",
                "-",
            ],
            token.as_bytes(),
        );
        assert_eq!(run.code, 0, "{form}: {}", run.stderr);
        assert!(
            run.stdout.contains("\"iss\":\"hobbiton.example\""),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("\"alg\":\"PS256\""), "{}", run.stdout);
        // Now, long after: expired.
        let run = env.run_with_stdin(
            &[
                "verify-jwt",
                "--key-file",
                "sig.json",
                "--decrypt-key-file",
                "enc.json",
                "-",
            ],
            token.as_bytes(),
        );
        assert_eq!(run.code, 1, "{form}");
        assert!(run.stderr.contains("(expired)"), "{}", run.stderr);
    }
}

/// OIDC Core §10.2: a client registered with id_token_encrypted_response_alg and a JWKS with
/// its encryption key gets ID tokens signed, then encrypted to that key. panva's openid-client
/// decrypts and checks one in a code flow; `jwkit verify-jwt --issuer --decrypt-key-file`
/// verifies it end to end; another client's ID tokens stay signed only.
#[test]
fn the_idp_encrypts_id_tokens_for_clients_that_ask() {
    let Some(()) = crate::idp::node() else { return };
    let env = Env::new();
    env.ok(&[
        "generate-key",
        "--type",
        "rsa",
        "--use",
        "enc",
        "--format",
        "jwk",
        "--out",
        "client-enc.jwk",
    ]);
    let public = env.ok(&["key", "public", "client-enc.jwk", "-f", "jwk"]);
    let public: Value = serde_json::from_str(&public).expect("public jwk");
    let config = format!(
        r#"
[[clients]]
id = "sealed"
secret = "sealed-secret"
redirect_uris = ["http://127.0.0.1:9/cb"]
id_token_encrypted_response_alg = "RSA-OAEP-256"
id_token_encrypted_response_enc = "A256GCM"
jwks = {{ keys = [{public}] }}

[[clients]]
id = "plain"
secret = "plain-secret"
redirect_uris = ["http://127.0.0.1:9/cb"]

[[users]]
name = "alice"
claims = {{ email = "alice@example.com" }}
"#,
        public = toml_inline(&public),
    );
    std::fs::write(env.path("idp.toml"), config).expect("config");
    let server = crate::serve::Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.toml", "--alg", "ES256"],
    );
    let url = server.url.clone();
    let discovery: Value = serde_json::from_slice(
        &crate::serve::http()
            .get(format!("{url}/.well-known/openid-configuration"))
            .send()
            .expect("discovery")
            .bytes()
            .expect("body"),
    )
    .expect("json");
    assert!(
        discovery["id_token_encryption_alg_values_supported"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "RSA-OAEP-256")),
        "{discovery}"
    );
    let run = |client: &str, secret: &str| -> Value {
        let out = std::process::Command::new("node")
            .arg(crate::idp::idp_dir().join("encrypted_id_token.mjs"))
            .args([
                url.as_str(),
                client,
                secret,
                "http://127.0.0.1:9/cb",
                "alice",
                env.path("client-enc.jwk").to_str().expect("path"),
            ])
            .output()
            .expect("node");
        assert!(
            out.status.success(),
            "openid-client ({client}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("output")
    };
    let sealed = run("sealed", "sealed-secret");
    let id_token = sealed["id_token"].as_str().expect("id_token");
    assert_eq!(id_token.split('.').count(), 5, "a JWE: {id_token}");
    assert_eq!(sealed["claims"]["sub"], "alice");
    assert_eq!(sealed["claims"]["aud"], "sealed");
    let header: Value = serde_json::from_slice(
        &jwkit::crypto::b64::decode(id_token.split('.').next().expect("h")).expect("b64"),
    )
    .expect("header");
    assert_eq!(header["alg"], "RSA-OAEP-256");
    assert_eq!(header["enc"], "A256GCM");
    assert_eq!(header["cty"], "JWT");
    // jwkit verifies it end to end against the issuer's own key set.
    let verified = env.run(&[
        "verify-jwt",
        "--issuer",
        &url,
        "--no-cache",
        "--aud",
        "sealed",
        "--json",
        "--decrypt-key-file",
        "client-enc.jwk",
        id_token,
    ]);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(
        verified.stdout.contains("\"alg\":\"ES256\""),
        "{}",
        verified.stdout
    );
    // Without the key it is only named.
    let run_no_key = env.run(&[
        "verify-jwt",
        "--issuer",
        &url,
        "--no-cache",
        "--aud",
        "sealed",
        id_token,
    ]);
    assert_eq!(run_no_key.code, 1);
    // A client that did not ask gets a signed token only (openid-client takes both).
    let plain = run("plain", "plain-secret");
    assert_eq!(
        plain["id_token"].as_str().expect("id").split('.').count(),
        3
    );
}

/// A JSON value written as TOML (inline tables and arrays), for the test configuration.
fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .map(|(k, v)| format!("{k} = {}", toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// `resign` of a nested token: decrypted, the inner token re-signed with the new key (claims
/// kept byte for byte), encrypted again with the same algorithms to the same recipient, or to
/// `--encrypt-key-file`. panva's jose opens the result and verifies the new signature.
#[test]
fn nested_tokens_are_resigned_and_encrypted_again() {
    let Some(()) = crate::idp::node() else { return };
    let env = Env::new();
    std::fs::write(
        env.path("old.secret"),
        "the-old-secret-of-the-app-0123456789\n",
    )
    .expect("w");
    env.ok(&[
        "generate-key",
        "--type",
        "rsa",
        "--use",
        "enc",
        "--format",
        "jwk",
        "--out",
        "rsa.jwk",
    ]);
    env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--use",
        "enc",
        "--format",
        "jwk",
        "--out",
        "ec.jwk",
    ]);
    let old = env.ok(&[
        "generate-jwt",
        "--secret-file",
        "old.secret",
        "--sub",
        "alice",
        "--claim",
        "role=admin",
        "--encrypt-key-file",
        "rsa.jwk",
        "--jwe-enc",
        "A128CBC-HS256",
    ]);
    let old = old.trim();
    let inner_of = |key: &str, token: &str| {
        env.ok(&["decode", "--plaintext", "--decrypt-key-file", key, token])
    };
    let old_inner = inner_of("rsa.jwk", old);
    let signer = crate::jose::key_file("rfc7515-A.3.private.pem");
    let new = env.ok(&[
        "resign",
        "--key-file",
        &signer,
        "--decrypt-key-file",
        "rsa.jwk",
        old,
    ]);
    let new = new.trim();
    assert_eq!(new.split('.').count(), 5, "{new}");
    let header: Value = serde_json::from_slice(
        &jwkit::crypto::b64::decode(new.split('.').next().expect("h")).expect("b64"),
    )
    .expect("header");
    assert_eq!(
        (
            header["alg"].as_str(),
            header["enc"].as_str(),
            header["cty"].as_str()
        ),
        (Some("RSA-OAEP-256"), Some("A128CBC-HS256"), Some("JWT")),
        "{header}"
    );
    // The claims byte for byte.
    let new_inner = inner_of("rsa.jwk", new);
    assert_eq!(new_inner.split('.').nth(1), old_inner.split('.').nth(1));
    // jose opens it and verifies the new ES256 signature.
    let rsa: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("rsa.jwk")).expect("r"))
            .expect("jwk");
    let sig: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::jose::key_file("rfc7515-A.3.public.jwk.json")).expect("s"),
    )
    .expect("jwk");
    let opened = peer(
        "jose",
        &[serde_json::json!({"op": "open", "token": new, "key": rsa, "sig": sig})],
    );
    assert_eq!(opened[0]["ok"], true, "{}", opened[0]);
    assert_eq!(opened[0]["claims"]["role"], "admin");
    // To another recipient.
    let moved = env.ok(&[
        "resign",
        "--key-file",
        &signer,
        "--decrypt-key-file",
        "rsa.jwk",
        "--encrypt-key-file",
        "ec.jwk",
        old,
    ]);
    let moved = moved.trim();
    assert_eq!(
        inner_of("ec.jwk", moved).split('.').nth(1),
        old_inner.split('.').nth(1)
    );
    let run = env.run(&[
        "decode",
        "--plaintext",
        "--decrypt-key-file",
        "rsa.jwk",
        moved,
    ]);
    assert_eq!(run.code, 2, "the old recipient cannot read it");
    // Without the decryption key: refused, nothing on stdout.
    let run = env.run(&["resign", "--key-file", &signer, old]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("--decrypt-key-file"), "{}", run.stderr);
}

/// `generate-key --type x25519`: a JWK (use: enc, the kid its RFC 7638 thumbprint as jwcrypto
/// computes it) that panva's jose encrypts to and jwkit decrypts, and the other way round.
#[test]
fn x25519_keys_are_generated_for_ecdh_es() {
    if crate::generate_jwt::peer_python().is_none() || crate::idp::node().is_none() {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "generate-key",
        "--type",
        "x25519",
        "--format",
        "jwk",
        "--out",
        "x.jwk",
        "--public-out",
        "x.pub.jwk",
    ]);
    let private: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("x.jwk")).expect("r")).expect("jwk");
    let x_public: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("x.pub.jwk")).expect("r"))
            .expect("jwk");
    assert_eq!(
        (
            private["kty"].as_str(),
            private["crv"].as_str(),
            private["use"].as_str()
        ),
        (Some("OKP"), Some("X25519"), Some("enc"))
    );
    assert!(x_public.get("d").is_none(), "{x_public}");
    let tp = peer(
        "jwcrypto",
        &[serde_json::json!({"op": "thumbprint", "key": x_public})],
    );
    assert_eq!(
        tp[0]["thumbprint"], private["kid"],
        "the kid is the RFC 7638 thumbprint"
    );
    // jose -> jwkit.
    let sig = signing_key(&env);
    let made = peer(
        "jose",
        &[
            serde_json::json!({"op": "nest", "claims": {"sub": "x", "exp": 4102444800u64},
        "sig": sig, "key": x_public, "alg": "ECDH-ES+A128KW", "enc": "A128GCM"}),
        ],
    );
    let token = made[0]["token"].as_str().expect("token");
    let run = env.run(&[
        "verify-jwt",
        "--key-file",
        "sig.public.json",
        "--decrypt-key-file",
        "x.jwk",
        token,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // jwkit -> jose.
    let ours = env.ok(&[
        "generate-jwt",
        "--key-file",
        "sig.json",
        "--sub",
        "y",
        "--encrypt-key-file",
        "x.pub.jwk",
    ]);
    let opened = peer(
        "jose",
        &[
            serde_json::json!({"op": "open", "token": ours.trim(), "key": private,
        "sig": public(&sig)}),
        ],
    );
    assert_eq!(opened[0]["claims"]["sub"], "y", "{}", opened[0]);
    // Never for signing, never RSA-OAEP, JWK only.
    for bad in [
        &["--alg", "RSA-OAEP"][..],
        &["--use", "sig"],
        &["--alg", "EdDSA"],
    ] {
        let mut args = vec!["generate-key", "--type", "x25519", "--format", "jwk"];
        args.extend_from_slice(bad);
        let run = env.run(&args);
        assert_eq!(run.code, 2, "{bad:?}");
        assert!(run.stdout.is_empty());
    }
}

/// Encryption keys kept as signing keys are: `generate-key --use enc --save` (RSA, EC, X25519,
/// AES key wrap, dir), listed as `enc` with their JWE alg, used by kid (`--encrypt-key`,
/// `--decrypt-key`), opened by jwcrypto from `key show --private`, published by `serve`
/// after `--upload`, and never used for signatures (nor a signing key for encryption).
#[test]
fn encryption_keys_live_in_the_store_and_on_the_jwks_server() {
    let env = Env::new();
    let sig = signing_key(&env);
    let made: [(&[&str], &str, &str); 6] = [
        (&["--use", "enc"], "RSA-OAEP-256", "RSA-2048"),
        (
            &["--type", "ec", "--curve", "P-384", "--alg", "ECDH-ES"],
            "ECDH-ES",
            "EC P-384",
        ),
        (&["--type", "x25519"], "ECDH-ES+A256KW", "X25519"),
        (
            &["--type", "hmac", "--alg", "A128KW"],
            "A128KW",
            "HMAC (128 bits)",
        ),
        (
            &["--type", "hmac", "--alg", "A192GCMKW"],
            "A192GCMKW",
            "HMAC (192 bits)",
        ),
        (
            &["--type", "hmac", "--alg", "dir", "--bits", "512"],
            "dir",
            "HMAC (512 bits)",
        ),
    ];
    let mut kids = Vec::new();
    for (args, _, _) in made {
        let mut a = vec!["generate-key", "--save"];
        a.extend_from_slice(args);
        kids.push(env.ok(&a).trim().to_string());
    }
    let listed: Value = serde_json::from_str(&env.ok(&["key", "list", "--json"])).expect("json");
    for (kid, (_, alg, kind)) in kids.iter().zip(made) {
        let row = listed["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("listed");
        assert_eq!(
            (
                row["use"].as_str(),
                row["alg"].as_str(),
                row["type"].as_str()
            ),
            (Some("enc"), Some(alg), Some(kind)),
            "{row}"
        );
        // Sign with the signing key, encrypt to the stored key by kid, decrypt by kid.
        let mut g = vec!["generate-jwt", "--key-file", "sig.json", "--sub", "stored"];
        g.extend(["--encrypt-key", kid]);
        if alg == "dir" {
            g.extend(["--jwe-enc", "A256CBC-HS512"]);
        }
        let token = env.ok(&g);
        let header: Value = serde_json::from_str(&env.ok(&["decode", "--json", token.trim()]))
            .expect("decode json");
        assert_eq!(
            header["jwe_header"]["alg"], alg,
            "the stored alg is the default"
        );
        assert_eq!(header["jwe_header"]["kid"], kid.as_str());
        let run = env.run(&[
            "verify-jwt",
            "--key-file",
            "sig.public.json",
            "--decrypt-key",
            kid,
            "--json",
            token.trim(),
        ]);
        assert_eq!(run.code, 0, "{alg}: {}", run.stderr);
        let v: Value = serde_json::from_str(&run.stdout).expect("json");
        assert_eq!(v["claims"]["sub"], "stored");
        // An independent implementation opens it with the stored private JWK.
        if crate::generate_jwt::peer_python().is_some() && !jwcrypto_lacks(alg) {
            let shown: Value =
                serde_json::from_str(&env.ok(&["key", "show", kid, "--private"])).expect("show");
            assert_eq!(shown["use"], "enc");
            let opened = peer(
                "jwcrypto",
                &[serde_json::json!({"op": "open", "token": token.trim(),
                    "key": shown["private_jwk"], "sig": public(&sig)})],
            );
            assert_eq!(opened[0]["claims"]["sub"], "stored", "{alg}: {}", opened[0]);
        }
        // An encryption key never signs nor verifies.
        let run = env.run(&["generate-jwt", "--key", kid, "--sub", "x"]);
        assert_eq!(run.code, 2, "{alg}: an enc key signed");
        assert!(run.stdout.is_empty());
        assert!(run.stderr.contains("encryption key"), "{}", run.stderr);
    }
    // The public JWK of an X25519 key: use enc, no d; it has no PEM form.
    let x = &kids[2];
    let pubjwk: Value =
        serde_json::from_str(&env.ok(&["key", "public", "--key", x, "-f", "jwk"])).expect("public");
    assert_eq!(
        (pubjwk["crv"].as_str(), pubjwk["use"].as_str()),
        (Some("X25519"), Some("enc"))
    );
    assert!(pubjwk.get("d").is_none(), "{pubjwk}");
    env.run(&["key", "public", "--key", x, "-f", "pem"])
        .fails_with("JWK only");
    // A stored signing key never decrypts or encrypts; an Ed25519 key is never made for enc.
    let signer = env.ok(&["generate-key", "--type", "ec", "--save"]);
    let token = env.ok(&[
        "generate-jwt",
        "--key-file",
        "sig.json",
        "--encrypt-key",
        &kids[0],
    ]);
    for args in [
        vec!["decode", "--decrypt-key", signer.trim(), token.trim()],
        vec![
            "generate-jwt",
            "--key-file",
            "sig.json",
            "--encrypt-key",
            signer.trim(),
        ],
        vec!["generate-key", "--type", "ed25519", "--use", "enc"],
        vec!["generate-key", "--type", "ec", "--alg", "RSA-OAEP"],
        vec![
            "generate-key",
            "--type",
            "hmac",
            "--alg",
            "A128KW",
            "--bits",
            "256",
        ],
        vec!["generate-key", "--type", "x25519", "--use", "sig"],
    ] {
        let run = env.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}");
    }
    // key_ops: a JWK kept for decrypt/unwrapKey loads as an encryption key, and its public
    // half claims only the public operations.
    let mut ops = serde_json::from_str::<Value>(&env.ok(&["key", "show", &kids[0], "--private"]))
        .expect("show")["private_jwk"]
        .clone();
    ops.as_object_mut().expect("o").remove("use");
    ops["key_ops"] = serde_json::json!(["decrypt", "unwrapKey"]);
    std::fs::write(env.path("ops.json"), ops.to_string()).expect("w");
    let pubops: Value =
        serde_json::from_str(&env.ok(&["key", "public", "ops.json", "-f", "jwk"])).expect("public");
    assert_eq!(pubops["key_ops"], serde_json::json!(["encrypt", "wrapKey"]));
    let run = env.run(&["verify-jwt", "--key-file", "ops.json", token.trim()]);
    assert_ne!(run.code, 0);
    env.ok(&[
        "decode",
        "--decrypt-key-file",
        "ops.json",
        "--plaintext",
        token.trim(),
    ]);

    // serve: an encryption key uploaded with generate-key is published with use enc, and a
    // token encrypted to the published set opens with the stored private half.
    let server = crate::serve::Server::start(&env, &env.path("data"), &[]);
    let kid = env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--use",
        "enc",
        "--save",
        "--upload",
        &server.url,
        "--upload-token-file",
        "upload.token",
    ]);
    let kid = kid.trim();
    let jwks: Value = crate::serve::http()
        .get(format!("{}/jwks", server.url))
        .send()
        .expect("jwks")
        .text()
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .expect("json");
    let published = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("published");
    assert_eq!(published["use"], "enc", "{published}");
    assert!(published.get("d").is_none());
    std::fs::write(env.path("published.json"), jwks.to_string()).expect("w");
    let token = env.ok(&[
        "generate-jwt",
        "--key-file",
        "sig.json",
        "--sub",
        "published",
        "--encrypt-key-file",
        "published.json",
    ]);
    let run = env.run(&[
        "verify-jwt",
        "--key-file",
        "sig.public.json",
        "--decrypt-key",
        kid,
        token.trim(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// Captured traffic holding nested tokens (an ID token encrypted to the app's RSA key, signed by
/// an identity provider the replay cannot use; made by jwcrypto): `resign --scan` over a raw
/// HTTP capture re-signs the inner tokens with the new key and encrypts them again to the
/// app's key (Content-Length fixed), which jwcrypto opens and verifies with the new public
/// key; without a decryption key the capture passes unchanged and the summary says why; and
/// `proxy` does the same live, in front of an app that echoes what it received.
#[test]
fn nested_tokens_in_captured_traffic_are_resigned_by_scan_and_the_proxy() {
    let Some(python) = crate::generate_jwt::peer_python() else {
        return;
    };
    let env = Env::new();
    let old = signing_key(&env);
    env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--format",
        "jwk",
        "--out",
        "new.json",
        "--public-out",
        "new.pub.json",
    ]);
    let new_pub: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("new.pub.json")).expect("r"))
            .expect("jwk");
    let app_kid = env.ok(&["generate-key", "--use", "enc", "--save"]);
    let app_kid = app_kid.trim();
    let shown: Value =
        serde_json::from_str(&env.ok(&["key", "show", app_kid, "--private"])).expect("show");
    let app_key = shown["private_jwk"].clone();
    let exp = crate::util::unix_now() + 3600;
    let jobs: Vec<Value> = ["alice", "bob"]
        .iter()
        .map(|sub| {
            serde_json::json!({"op": "nest", "claims": {"sub": sub, "exp": exp, "iss": "https://idp.example"},
                "sig": old, "key": public(&app_key), "alg": "RSA-OAEP-256", "enc": "A256GCM"})
        })
        .collect();
    let made = peer("jwcrypto", &jobs);
    let t1 = made[0]["token"].as_str().expect("token");
    let t2 = made[1]["token"].as_str().expect("token");
    let body = format!("{{\"id_token\":\"{t2}\",\"n\":1}}");
    let capture = format!(
        "GET /profile HTTP/1.1\r\nHost: app.example\r\nAuthorization: Bearer {t1}\r\n\r\n\
         POST /session HTTP/1.1\r\nHost: app.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    std::fs::write(env.path("capture.http"), &capture).expect("w");

    // Without a decryption key: nothing changes, and the summary names the reason.
    let run = env.run(&["resign", "--scan", "capture.http", "--key-file", "new.json"]);
    assert_eq!(run.stdout, capture, "{}", run.stderr);
    assert!(run.stderr.contains("encrypted"), "{}", run.stderr);

    // With the app's key from the store: both re-signed and encrypted again.
    let out = env.ok(&[
        "resign",
        "--scan",
        "capture.http",
        "--key-file",
        "new.json",
        "--decrypt-key",
        app_kid,
    ]);
    assert!(!out.contains(t1) && !out.contains(t2), "both replaced");
    let re = regex_lite_tokens(&out);
    assert_eq!(re.len(), 2, "{out}");
    let (head, new_body) = out
        .split_once("\r\n\r\nPOST")
        .map(|(_, rest)| rest.split_once("\r\n\r\n").expect("body"))
        .expect("second request");
    let declared: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("length")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(declared, new_body.len(), "Content-Length fixed");
    let opened = peer(
        "jwcrypto",
        &re.iter()
            .map(|t| serde_json::json!({"op": "open", "token": t, "key": app_key, "sig": new_pub}))
            .collect::<Vec<_>>(),
    );
    for (o, sub) in opened.iter().zip(["alice", "bob"]) {
        assert_eq!(o["claims"]["sub"], sub, "{o}");
        assert_eq!(o["claims"]["exp"], exp, "claims kept");
    }
    for t in &re {
        let header: Value =
            serde_json::from_str(&env.ok(&["decode", "--json", t])).expect("decode");
        assert_eq!(
            header["jwe_header"]["alg"], "RSA-OAEP-256",
            "same algorithms"
        );
        assert_eq!(header["jwe_header"]["cty"], "JWT");
    }

    // Live: the proxy in front of an app that echoes what it received.
    let port = crate::util::free_port();
    let _echo = crate::proxy::start_peer(&python, port, &["echo", &port.to_string()]);
    let upstream = format!("http://127.0.0.1:{port}");
    let proxy = crate::proxy::start_proxy(
        &env,
        &[
            "--upstream",
            &upstream,
            "--key-file",
            "new.json",
            "--decrypt-key",
            app_kid,
        ],
    );
    let echoed = crate::serve::http()
        .get(format!("{}/profile", proxy.url))
        .header("Authorization", format!("Bearer {t1}"))
        .send()
        .expect("through the proxy")
        .text()
        .expect("text");
    let tokens = regex_lite_tokens(&echoed);
    assert_eq!(tokens.len(), 1, "{echoed}");
    assert_ne!(tokens[0], t1);
    let run = env.run(&[
        "verify-jwt",
        "--key-file",
        "new.pub.json",
        "--decrypt-key",
        app_kid,
        "--json",
        &tokens[0],
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["claims"]["sub"], "alice");
}

/// The compact JWEs (five segments starting `ey`) in `text`.
fn regex_lite_tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter(|w| w.starts_with("ey") && w.matches('.').count() == 4)
        .map(str::to_string)
        .collect()
}

/// `verify-jwt --batch` takes a JWE's JSON serialization as one line, beside compact tokens:
/// jwcrypto's nested tokens in both forms verify, and a damaged line is one rejection; and
/// `resign` re-signs the JSON form.
#[test]
fn batch_reads_json_serialized_jwes_one_per_line() {
    if crate::generate_jwt::peer_python().is_none() {
        return;
    }
    let env = Env::new();
    let sig = signing_key(&env);
    env.ok(&[
        "generate-key",
        "--type",
        "x25519",
        "--format",
        "jwk",
        "--out",
        "x.jwk",
    ]);
    let x: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("x.jwk")).expect("r")).expect("jwk");
    let job = |json: bool| {
        serde_json::json!({"op": "nest", "claims": {"sub": "batch", "exp": 4102444800u64},
            "sig": sig, "key": public(&x), "alg": "ECDH-ES+A256KW", "enc": "A128CBC-HS256", "json": json})
    };
    let made = peer("jwcrypto", &[job(false), job(true)]);
    let compact = made[0]["token"].as_str().expect("compact");
    let json = made[1]["token"].as_str().expect("json");
    assert!(json.starts_with('{') && !json.contains('\n'), "{json}");
    let damaged = json.replacen("\"ciphertext\":\"", "\"ciphertext\":\"AAAA", 1);
    let input = format!("{compact}\n{json}\n{damaged}\n");
    let run = env.run_with_stdin(
        &[
            "verify-jwt",
            "--batch",
            "--json",
            "--key-file",
            "sig.public.json",
            "--decrypt-key-file",
            "x.jwk",
        ],
        input.as_bytes(),
    );
    assert_eq!(run.code, 1, "one rejected: {}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["valid"], true, "{}", lines[0]);
    assert_eq!(lines[1]["valid"], true, "{}", lines[1]);
    assert_eq!(lines[2]["valid"], false);
    assert_eq!(lines[2]["error"]["kind"], "decrypt_failed", "{}", lines[2]);
    // `resign` takes the JSON serialization too, pasted as it comes, and answers compact.
    env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "-f",
        "jwk",
        "--out",
        "new.json",
        "--public-out",
        "new.pub.json",
    ]);
    let pasted = format!("  {json}\n");
    let run = env.run_with_stdin(
        &[
            "resign",
            "--key-file",
            "new.json",
            "--decrypt-key-file",
            "x.jwk",
            "-",
        ],
        pasted.as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let new = run.stdout.trim();
    assert_eq!(new.matches('.').count(), 4, "a compact JWE: {new}");
    let run = env.run(&[
        "verify-jwt",
        "--key-file",
        "new.pub.json",
        "--decrypt-key-file",
        "x.jwk",
        "--json",
        new,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
