//! `resign --goreplay` as GoReplay runs a middleware: one hex line per message on stdin, each
//! answer awaited before the next is sent. The protocol's framing is cross-checked with the
//! `gor` package (PyPI), an independent implementation, and the new tokens with PyJWT.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use serde_json::Value;

use crate::generate_jwt::peer_python;
use crate::jose::key_file;
use crate::util::Env;

/// 10,000 messages in a row (requests with tokens in the header, a JSON body, a form body, a
/// cookie and the query; original and replayed responses), one at a time.
#[test]
fn ten_thousand_messages_one_at_a_time_through_the_gor_protocol() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/goreplay_peer.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .args([
            env!("CARGO_BIN_EXE_jwkit"),
            &key_file("rfc7515-A.3.public.pem"),
            "10000",
            "--",
            "--key-file",
            &key_file("rfc7515-A.3.private.pem"),
            "--refresh",
        ])
        .env("JWKIT_HOME", env.home())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["messages"], 10_000, "{report}");
    // 5 of every 7 messages are requests, each with one token.
    assert_eq!(report["requests"], 7144, "{report}");
    assert_eq!(report["tokens"], 7144, "{report}");
    assert_eq!(
        report["consistent"], true,
        "the same old token, the same new token"
    );
    assert_eq!(report["exit"], 0, "{report}");
    assert_eq!(report["stdout_rest"], "", "stdout carries answers only");
    let stderr = report["stderr"].as_str().expect("stderr");
    assert!(
        stderr.contains("goreplay: 7144 requests, 2856 other messages, 0 malformed lines"),
        "{stderr}"
    );
}

/// Lines that are not messages are named on stderr and passed on unchanged; a request without
/// tokens comes back as it came; stdout never carries anything else.
#[test]
fn malformed_lines_are_reported_and_passed_on() {
    let env = Env::new();
    let mut child = env
        .cmd(&[
            "resign",
            "--goreplay",
            "--key-file",
            &key_file("rfc7515-A.3.private.pem"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02x}")).collect() };
    let lines = [
        "this is not hex".to_string(),
        hex("no header line"),
        hex("9 abc 1\nGET / HTTP/1.1\r\n\r\n"),
        hex("1 abc 1\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        "ABCDEF0".to_string(),
    ];
    for line in &lines {
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        let mut answer = String::new();
        stdout.read_line(&mut answer).expect("answer");
        assert_eq!(answer.trim_end(), line, "passed on unchanged, at once");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "line 1: not hex",
        "line 2: no header line",
        "line 3: the message type is not 1, 2 or 3",
        "line 5: not hex",
        "goreplay: 1 requests, 0 other messages, 4 malformed lines",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}
