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
