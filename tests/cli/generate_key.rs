//! `jwkit generate-key`: every type and format, files, the key store, and refusals.

use std::os::unix::fs::PermissionsExt;

use jwkit::crypto::{self, Hash};

use crate::util::Env;

#[test]
fn every_type_and_format_loads_back_with_kid_as_thumbprint() {
    let env = Env::new();
    for args in [
        &["--type", "ec"][..],
        &["--type", "ec", "--curve", "P-384"],
        &["--type", "ec", "--curve", "P-521"],
        &["--type", "ec", "--curve", "secp256k1"],
        &["--type", "ec", "--alg", "ES384"],
        &["--type", "ed25519"],
        &["--type", "rsa", "--alg", "PS256"],
    ] {
        for format in ["pem", "jwk", "jwks"] {
            let mut a = vec!["generate-key", "--format", format];
            a.extend_from_slice(args);
            let out = env.ok(&a);
            let key = crypto::load_key(out.as_bytes(), None).expect("output loads");
            assert!(key.is_private(), "{a:?}");
            if format != "pem" {
                assert_eq!(
                    key.meta.kid.as_deref(),
                    Some(key.thumbprint(Hash::Sha256).as_str()),
                    "{a:?}"
                );
            }
        }
    }
    let ec384: serde_json::Value =
        serde_json::from_str(&env.ok(&["generate-key", "-t", "ec", "--alg", "ES384", "-f", "jwk"]))
            .expect("json");
    assert_eq!(ec384["crv"], "P-384", "--alg ES384 picks its curve");
    assert_eq!(ec384["alg"], "ES384");
}

#[test]
fn hmac_secrets_are_jwk_and_at_least_the_hash_size() {
    let env = Env::new();
    let jwk: serde_json::Value = serde_json::from_str(&env.ok(&[
        "generate-key",
        "-t",
        "hmac",
        "--alg",
        "HS512",
        "-f",
        "jwk",
    ]))
    .expect("json");
    assert_eq!(jwk["kty"], "oct");
    assert_eq!(
        jwkit::crypto::b64::decode(jwk["k"].as_str().expect("k"))
            .expect("b64")
            .len(),
        64
    );
    env.run(&["generate-key", "-t", "hmac", "--bits", "128"])
        .fails_with("too short for HS256");
    env.run(&["generate-key", "-t", "hmac"])
        .fails_with("no PEM form");
    let weak = env.run(&[
        "generate-key",
        "-t",
        "hmac",
        "--bits",
        "128",
        "--insecure",
        "-f",
        "jwk",
    ]);
    assert_eq!(weak.code, 0, "{}", weak.stderr);
    assert!(
        weak.stderr.contains("warning: --insecure"),
        "{}",
        weak.stderr
    );
}

#[test]
fn usage_mistakes_are_refused() {
    let env = Env::new();
    env.run(&["generate-key", "--bits", "1024"])
        .fails_with("under 2048 bits are refused");
    env.run(&["generate-key", "--bits", "1024", "--insecure"])
        .fails_with("under 2048 bits");
    env.run(&["generate-key", "-t", "ec", "--alg", "RS256"])
        .fails_with("does not fit");
    env.run(&[
        "generate-key",
        "-t",
        "ec",
        "--curve",
        "P-384",
        "--alg",
        "ES256",
    ])
    .fails_with("does not fit");
    env.run(&["generate-key", "-t", "ed25519", "--bits", "256"])
        .fails_with("--bits applies");
    env.run(&["generate-key", "-t", "rsa", "--curve", "P-256"])
        .fails_with("--curve applies");
    let bad = env.run(&["generate-key", "--alg", "none"]);
    assert_eq!(bad.code, 2, "clap refuses an unknown alg: {}", bad.stderr);
}

#[test]
fn out_and_public_out_write_files_with_safe_modes() {
    let env = Env::new();
    let out = env.ok(&[
        "generate-key",
        "-t",
        "ed25519",
        "--out",
        "k.pem",
        "--public-out",
        "k.pub.pem",
    ]);
    assert!(out.is_empty(), "no key on stdout with --out");
    let private = env.path("k.pem");
    let public = env.path("k.pub.pem");
    assert_eq!(
        std::fs::metadata(&private)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let pk = crypto::load_key(&std::fs::read(&public).expect("read"), None).expect("public loads");
    assert!(!pk.is_private());
    let sk =
        crypto::load_key(&std::fs::read(&private).expect("read"), None).expect("private loads");
    assert_eq!(pk.thumbprint(Hash::Sha256), sk.thumbprint(Hash::Sha256));
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(env.dir.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".jwkit-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn existing_files_are_never_overwritten_without_force() {
    let env = Env::new();
    let path = env.path("k.pem");
    std::fs::write(&path, b"precious").expect("write");
    env.run(&["generate-key", "-t", "ec", "--out", "k.pem"])
        .fails_with("already exists");
    assert_eq!(std::fs::read(&path).expect("read"), b"precious");
    env.run(&[
        "generate-key",
        "-t",
        "ec",
        "--out",
        "new.pem",
        "--public-out",
        "k.pem",
    ])
    .fails_with("already exists");
    assert!(!env.path("new.pem").exists(), "nothing half-written");
    env.ok(&["generate-key", "-t", "ec", "--out", "k.pem", "--force"]);
    assert!(crypto::load_key(&std::fs::read(&path).expect("read"), None).is_ok());
}

#[test]
fn an_unwritable_directory_leaves_nothing_behind() {
    let env = Env::new();
    // /proc refuses new files even to root, so this holds whoever runs the tests.
    env.run(&["generate-key", "-t", "ec", "--out", "/proc/jwkit-test.pem"])
        .fails_with("cannot write in /proc");
    env.run(&[
        "generate-key",
        "-t",
        "ec",
        "--out",
        "ok.pem",
        "--public-out",
        "/proc/jwkit-test.pub",
    ])
    .fails_with("/proc");
    assert!(
        !env.path("ok.pem").exists(),
        "the private key is not left without its public half"
    );
    let ro = env.path("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    let probe = ro.join("probe");
    if std::fs::write(&probe, b"x").is_err() {
        // Not root: permission bits hold, so the 0500 directory is unwritable too.
        env.run(&["generate-key", "-t", "ec", "--out", "ro/k.pem"])
            .fails_with("cannot write");
        assert_eq!(std::fs::read_dir(&ro).expect("dir").count(), 0);
    }
}

#[test]
fn save_keeps_keys_private_even_under_umask_000() {
    let env = Env::new();
    let kid = env
        .run_with_umask("000", &["generate-key", "--type", "ec", "--save"])
        .success();
    let kid = kid.trim();
    assert_eq!(kid.len(), 43, "kid is a SHA-256 thumbprint: {kid}");
    let keys = env.home().join("keys");
    let file = keys.join(format!("{kid}.json"));
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&env.home()), 0o700);
    let list = env.ok(&["key", "list"]);
    assert!(
        list.contains(kid) && list.contains("ES256") && list.contains("EC P-256"),
        "{list}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["key", "list", "--json"])).expect("json");
    assert_eq!(json["keys"][0]["kid"], kid);
    // The stored key signs (its private half is there) and is found by kid.
    let shown: serde_json::Value =
        serde_json::from_str(&env.ok(&["key", "show", kid])).expect("json");
    assert_eq!(shown["alg"], "ES256");
    assert!(shown["public_jwk"].get("d").is_none());
    assert!(shown.get("private_jwk").is_none());
}

#[test]
fn save_with_a_chosen_kid_and_refusing_a_second_key_under_it() {
    let env = Env::new();
    assert_eq!(
        env.ok(&[
            "generate-key",
            "-t",
            "ed25519",
            "--save",
            "--kid",
            "../../etc/passwd"
        ])
        .trim(),
        "../../etc/passwd"
    );
    let files: Vec<_> = std::fs::read_dir(env.home().join("keys"))
        .expect("dir")
        .collect();
    assert_eq!(
        files.len(),
        1,
        "file name is the thumbprint, never user text"
    );
    env.run(&[
        "generate-key",
        "-t",
        "ed25519",
        "--save",
        "--kid",
        "../../etc/passwd",
    ])
    .fails_with("already names another stored key");
    env.ok(&[
        "generate-key",
        "-t",
        "ed25519",
        "--save",
        "--kid",
        "../../etc/passwd",
        "--force",
    ]);
    assert_eq!(
        std::fs::read_dir(env.home().join("keys"))
            .expect("dir")
            .count(),
        1,
        "replaced, not added"
    );
}
