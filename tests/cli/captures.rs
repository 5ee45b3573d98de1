//! `resign --scan` on captured traffic as replay users bring it: a HAR 1.2 file, JSON lines of
//! request/response pairs (bodies also base64-encoded) and a raw HTTP stream, with expired
//! HS256 and RS256 tokens signed by PyJWT in every place captures keep them. After re-signing,
//! PyJWT verifies every token under its new key, and an independent comparison (Python) checks
//! that every other byte, decoded base64 bodies included, is the same and that the declared
//! sizes match the bodies.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::generate_jwt::peer_python;
use crate::jose::key_file;
use crate::util::{Env, Run};

const FORMATS: [&str; 3] = ["har", "jsonl", "http"];

fn peer(python: &Path, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/capture_peer.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run python");
    assert!(out.status.success(), "capture_peer.py {args:?} failed");
    String::from_utf8(out.stdout).expect("utf8")
}

/// Writes the captures into `env` (PyJWT signs the old tokens) and the new keys: the app's new
/// HMAC secret and a Kubernetes-style `tls.key` (PKCS#1 PEM).
fn captures(env: &Env, python: &Path) -> Value {
    let dir = env.dir.path().to_str().expect("path").to_string();
    peer(
        python,
        &["make", &dir, &key_file("rfc7515-A.2.private.pem")],
    );
    std::fs::write(env.path("new.secret"), "new-app-secret-0123456789-abcdef").expect("write");
    std::fs::copy(
        key_file("rfc7520-3.4.private.pkcs1.pem"),
        env.path("tls.key"),
    )
    .expect("copy");
    serde_json::from_str(&std::fs::read_to_string(env.path("manifest.json")).expect("manifest"))
        .expect("json")
}

fn check(env: &Env, python: &Path, old: &str, new: &str) -> Value {
    let report = peer(
        python,
        &[
            "check",
            env.path(old).to_str().expect("p"),
            env.path(new).to_str().expect("p"),
            env.path("new.secret").to_str().expect("p"),
            &key_file("rfc7520-3.4.public.pem"),
        ],
    );
    serde_json::from_str(&report).expect("report")
}

#[test]
fn a_capture_resigned_by_key_for_rules_verifies_in_pyjwt_and_nothing_else_changes() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    captures(&env, &python);
    let rsa_kid = env.ok(&["key", "thumbprint", "tls.key"]).trim().to_string();
    for format in FORMATS {
        let out = format!("out.{format}");
        let run = env.run(&[
            "resign",
            "--scan",
            &format!("capture.{format}"),
            "--key-for",
            "alg:HS256=secret-file:new.secret",
            "--key-for",
            "alg:RS256=file:tls.key",
            "--refresh",
            "--out",
            &out,
        ]);
        assert_eq!(run.code, 0, "{format}: {}", run.stderr);
        assert!(run.stdout.is_empty());
        if format != "http" {
            assert!(
                run.stderr.contains("(2 inside base64 bodies)"),
                "{format}: {}",
                run.stderr
            );
        }
        assert_eq!(
            std::fs::metadata(env.path(&out))
                .expect("out")
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "the output holds valid tokens"
        );
        let report = check(&env, &python, &format!("capture.{format}"), &out);
        assert_eq!(report["same_outside_tokens"], true, "{format}: {report}");
        if format != "jsonl" {
            assert_eq!(report["sizes_ok"], true, "{format}: {report}");
        }
        let pairs = report["pairs"].as_array().expect("pairs");
        assert!(pairs.len() >= 6, "{format}: {report}");
        assert_eq!(report["counts"][0], report["counts"][1]);
        for p in pairs {
            assert_eq!(
                p["ok"], true,
                "{format}: PyJWT rejects a re-signed token: {p}"
            );
            assert_eq!(p["changed"], true, "{format}: {p}");
            assert_eq!(p["lifetime_kept"], true, "{format}: {p}");
            assert_eq!(p["current"], true, "{format}: {p}");
            assert_eq!(p["claims_kept"], true, "{format}: {p}");
            assert_eq!(
                p["old_alg"], p["new_alg"],
                "{format}: each keeps its alg: {p}"
            );
            if p["old_alg"] == "HS256" {
                assert_eq!(p["new_kid"], p["old_kid"], "HMAC keeps the kid state: {p}");
            } else {
                assert_eq!(p["new_kid"], rsa_kid.as_str(), "{p}");
            }
        }
    }
}

#[test]
fn only_and_match_choose_which_tokens_are_resigned() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    let manifest = captures(&env, &python);
    let chosen_by = |extra: &[&str], format: &str| -> (HashSet<String>, HashSet<String>, Run) {
        let out = format!("o.{format}");
        let input = format!("capture.{format}");
        let mut args = vec![
            "resign",
            "--scan",
            &input,
            "--key-file",
            "tls.key",
            "--refresh",
            "--out",
            &out,
            "--force",
        ];
        args.extend(extra);
        let run = env.run(&args);
        assert_eq!(run.code, 0, "{extra:?}: {}", run.stderr);
        let report = check(&env, &python, &format!("capture.{format}"), &out);
        assert_eq!(
            report["same_outside_tokens"], true,
            "{extra:?} {format}: {report}"
        );
        let (mut changed, mut kept) = (HashSet::new(), HashSet::new());
        for p in report["pairs"].as_array().expect("pairs") {
            let old = p["old"].as_str().expect("old").to_string();
            if p["changed"] == true {
                assert_eq!(p["ok"], true, "{p}");
                changed.insert(old);
            } else {
                kept.insert(old);
            }
        }
        (changed, kept, run)
    };
    let set = |v: &Value| -> HashSet<String> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|t| t.as_str().expect("token").to_string())
            .collect()
    };
    for format in FORMATS {
        for selector in [
            "header:Authorization",
            "cookie:session",
            "param:access_token",
            "json:access_token",
            "json:id_token",
        ] {
            let (changed, kept, run) = chosen_by(&["--only", selector], format);
            let want = set(&manifest[selector]);
            assert!(!changed.is_empty(), "{format} {selector}: nothing chosen");
            assert!(changed.is_subset(&want), "{format} {selector}: {changed:?}");
            assert!(
                kept.is_disjoint(&want),
                "{format} {selector}: left a chosen token"
            );
            assert!(
                run.stderr.contains("not in a chosen place"),
                "{}",
                run.stderr
            );
        }
    }
    // The HAR holds the form token (postData text and params) as param:assertion too.
    let (changed, _, _) = chosen_by(&["--only", "param:assertion"], "har");
    assert_eq!(changed, set(&manifest["param:assertion"]));
    // Filters on the old token.
    let (changed, kept, _) = chosen_by(&["--match-alg", "RS256"], "har");
    let all: HashSet<String> = changed.union(&kept).cloned().collect();
    let alg_of = |t: &str| {
        jwkit::crypto::jws::Compact::parse(t).expect("parse").header["alg"]
            .as_str()
            .expect("alg")
            .to_string()
    };
    assert!(changed.iter().all(|t| alg_of(t) == "RS256"));
    assert!(kept.iter().all(|t| alg_of(t) == "HS256"));
    assert!(!kept.is_empty() && all.len() == changed.len() + kept.len());
    let (changed, _, _) = chosen_by(&["--match-kid", "app-hs"], "jsonl");
    assert!(!changed.is_empty());
    assert!(
        changed.iter().all(|t| {
            jwkit::crypto::jws::Compact::parse(t).expect("p").header["kid"] == "app-hs"
        })
    );
    let (changed, _, run) = chosen_by(&["--match-iss", "https://other-idp.example"], "har");
    assert_eq!(changed.len(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("left"), "{}", run.stderr);
    // Kinds combine (all must match): RS256 and a kid no RS256 token has.
    let (changed, _, _) = chosen_by(&["--match-alg", "RS256", "--match-kid", "app-hs"], "har");
    assert!(changed.is_empty());
}

#[test]
fn bad_rules_and_selectors_are_usage_errors_and_ambiguity_writes_nothing() {
    let env = Env::new();
    std::fs::write(env.path("cap.txt"), "no tokens here\n").expect("write");
    let k = key_file("rfc7515-A.2.private.pem");
    for (args, needle) in [
        (vec!["--key-for", "alg:HS256"], "expected MATCH=KEY"),
        (vec!["--key-for", "size:9=file:x"], "unknown MATCH kind"),
        (vec!["--key-for", "alg:XX999=file:x"], "XX999"),
        (vec!["--key-for", "kid:=file:x"], "is empty"),
        (vec!["--key-for", "alg:RS256=file:"], "names nothing"),
        (
            vec!["--key-for", "alg:RS256=file:/nonexistent/key.pem"],
            "/nonexistent/key.pem",
        ),
        (vec!["--only", "body:x"], "unknown kind"),
        (vec!["--only", "json:"], "is empty"),
    ] {
        let mut a = vec!["resign", "--scan", "cap.txt"];
        a.extend(args.iter());
        env.run(&a).fails_with(needle);
    }
    // Nothing to sign with at all.
    env.run(&["resign", "--scan", "cap.txt"])
        .fails_with("no signing key");
    // A selector that matches nothing is not an error; the counts say so.
    let t = env
        .ok(&["generate-jwt", "--key-file", &k, "--kid", "k1"])
        .trim()
        .to_string();
    std::fs::write(env.path("cap.txt"), format!("{{\"a\":\"{t}\"}}\n")).expect("write");
    let run = env.run(&[
        "resign",
        "--scan",
        "cap.txt",
        "--key-file",
        &k,
        "--only",
        "json:zzz",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("re-signed 0, left 1 (not in a chosen place)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains(&t));
    // A token two rules claim: an error naming both, and no output file.
    let run = env.run(&[
        "resign",
        "--scan",
        "cap.txt",
        "--key-for",
        &format!("alg:RS256=file:{k}"),
        "--key-for",
        &format!("kid:k1=file:{k}"),
        "--out",
        "out.txt",
    ]);
    let run = run.fails_with("--key-for alg:RS256");
    assert!(run.stderr.contains("--key-for kid:k1"), "{}", run.stderr);
    assert!(!env.path("out.txt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".jwkit-"))
        .collect();
    assert!(leftovers.is_empty());
    // A token no rule matches, with no default key, is left and counted.
    let run = env.run(&[
        "resign",
        "--scan",
        "cap.txt",
        "--key-for",
        &format!("alg:HS256=file:{k}"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("left 1 (no --key-for rule matches)"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_interrupted_scan_leaves_no_temporary_file() {
    let env = Env::new();
    for signal in ["-TERM", "-INT"] {
        let mut child = env
            .cmd(&[
                "resign",
                "--scan",
                "-",
                "--key-file",
                &key_file("rfc7515-A.3.private.pem"),
                "--out",
                "out.txt",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Some input, then the pipe stays open: the scan waits for more.
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, b"{\"x\":1}\n").expect("write");
        let temp = |env: &Env| {
            std::fs::read_dir(env.dir.path())
                .expect("dir")
                .filter_map(|e| e.ok())
                .find(|e| e.file_name().to_string_lossy().starts_with(".jwkit-"))
                .map(|e| e.path())
        };
        let started = Instant::now();
        let path = loop {
            if let Some(p) = temp(&env) {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no temporary file appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the temporary file holds tokens");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let _ = child.wait().expect("wait");
        drop(stdin);
        assert!(temp(&env).is_none(), "{signal}: a temporary file was left");
        assert!(!env.path("out.txt").exists());
    }
}

/// The summary is the same whatever the mode reads a capture as, an alg-less JWT-looking
/// string is "not a JWS" under every plan, and a selector that matched nothing in the whole
/// input (a typo in `--only json:acess_token`) is named in a warning.
#[test]
fn counts_agree_across_modes_and_unmatched_selectors_are_named() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    captures(&env, &python);
    let summary = |input: &str, extra: &[&str]| -> (String, String) {
        let mut args = vec!["resign", "--scan", input, "--key-file", "tls.key"];
        args.extend(extra);
        let run = env.run(&args);
        assert_eq!(run.code, 0, "{input} {extra:?}: {}", run.stderr);
        let line = run
            .stderr
            .lines()
            .find(|l| l.starts_with("found "))
            .unwrap_or_else(|| panic!("no summary: {}", run.stderr))
            .to_string();
        (line, run.stderr)
    };
    for (input, modes) in [
        ("capture.http", ["auto", "http", "text"]),
        ("capture.har", ["auto", "har", "text"]),
        ("capture.jsonl", ["auto", "text", "text"]),
    ] {
        let lines: Vec<String> = modes
            .iter()
            .map(|m| summary(input, &["--format", m]).0)
            .collect();
        assert!(lines.iter().all(|l| *l == lines[0]), "{input}: {lines:#?}");
        assert!(lines[0].contains("re-signed"), "{}", lines[0]);
    }
    // An alg-less header: the same reason with and without --key-for rules.
    std::fs::write(
        env.path("fake.txt"),
        "Authorization: Bearer eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJ4In0.c2ln\n",
    )
    .expect("write");
    let plain = summary("fake.txt", &[]).0;
    let ruled = summary("fake.txt", &["--key-for", "alg:HS256=file:tls.key"]).0;
    assert_eq!(plain, "found 0 tokens, re-signed 0, skipped 1 (not a JWS)");
    assert_eq!(ruled, plain);
    // Selectors that match nothing are named; those that match are not.
    let (line, stderr) = summary(
        "capture.jsonl",
        &[
            "--only",
            "json:acess_token",
            "--only",
            "json:access_token",
            "--match-kid",
            "no-such-kid",
            "--match-alg",
            "HS256",
        ],
    );
    assert!(line.contains("re-signed"), "{line}");
    for named in ["--only json:acess_token", "--match-kid no-such-kid"] {
        assert!(
            stderr.contains(&format!("warning: {named} matched no token in the input")),
            "{named}: {stderr}"
        );
    }
    for quiet in ["--only json:access_token", "--match-alg HS256"] {
        assert!(
            !stderr.contains(&format!("{quiet} matched")),
            "{quiet}: {stderr}"
        );
    }
    let (_, stderr) = summary(
        "capture.har",
        &["--key-for", "kid:no-such-kid=file:tls.key"],
    );
    assert!(
        stderr.contains(
            "warning: --key-for kid:no-such-kid=file:tls.key matched no token in the input"
        ),
        "{stderr}"
    );
}
