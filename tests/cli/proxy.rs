//! `jwkit proxy` in the replay users' workflow: an app that verifies tokens with PyJWT's
//! PyJWKClient against `jwkit serve` (the key uploaded with `generate-key --save --upload`), a
//! capture whose expired tokens an unknown identity provider signed (in the Authorization
//! header, a cookie, the query, JSON, form and gzip bodies), replayed by mitmproxy's client
//! replay: directly every request is refused; through the reverse proxy, and through the
//! forward proxy, every one is accepted, and what the app received is the capture byte for
//! byte apart from tokens and lengths (compared in Python).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::generate_jwt::peer_python;
use crate::serve::{Server, TOKEN};
use crate::util::{Env, free_port};

fn peer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/replay_peer.py")
}

/// The venv with mitmproxy (`.venv-mitm`: mitmproxy pins an older cryptography than the
/// cross-check venv), its python, or None (a failure in CI).
fn mitm_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-mitm/bin/python");
    if python.with_file_name("mitmdump").is_file() {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "mitmproxy is required in CI (.ci/run installs it into .venv-mitm)"
    );
    eprintln!(
        "SKIPPED: proxy replay test: no {} (python3 -m venv .venv-mitm && .venv-mitm/bin/pip install -r tests/requirements-mitm.txt)",
        python.display()
    );
    None
}

/// The identity provider the app trusts: `jwkit serve`, and the kid of a key made with
/// `generate-key --save --upload` against it.
fn identity_provider(env: &Env) -> (Server, String) {
    let server = Server::start(env, &env.path("data"), &[]);
    let out = env
        .cmd(&["generate-key", "--type", "ec", "--save", "--upload"])
        .env("JWKIT_SERVER", &server.url)
        .env("JWKIT_UPLOAD_TOKEN", TOKEN)
        .output()
        .expect("generate-key");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kid = String::from_utf8(out.stdout)
        .expect("kid")
        .trim()
        .to_string();
    (server, kid)
}

/// `jwkit proxy --listen 127.0.0.1:0 ARGS`, its listening line awaited.
pub(crate) fn start_proxy(env: &Env, args: &[&str]) -> Server {
    let mut all = vec!["proxy", "--listen", "127.0.0.1:0"];
    all.extend(args);
    let mut cmd = env.cmd(&all);
    cmd.stdin(Stdio::null());
    Server::from_command(cmd)
}

/// The app, killed on drop.
pub(crate) struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_app(python: &std::path::Path, port: u16, jwks: &str, log: &std::path::Path) -> App {
    start_peer(
        python,
        port,
        &["app", &port.to_string(), jwks, log.to_str().expect("p")],
    )
}

fn py(python: &std::path::Path, args: &[&str]) -> String {
    run_peer(Command::new(python).arg(peer()).args(args), args)
}

/// `py` with `env`'s key store (JWKIT_HOME) for the jwkit it runs.
fn py_in(python: &std::path::Path, env: &Env, args: &[&str]) -> String {
    run_peer(
        Command::new(python)
            .arg(peer())
            .args(args)
            .env("JWKIT_HOME", env.home()),
        args,
    )
}

/// Runs a `replay_peer.py` command to its end: its stdout, or a failure naming its stderr.
fn run_peer(cmd: &mut Command, args: &[&str]) -> String {
    let out = cmd.output().expect("python");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// What the app logged, compared with the capture by `replay_peer.py compare`.
fn compare(python: &std::path::Path, capture: &std::path::Path, log: &std::path::Path) -> Value {
    let report = py(
        python,
        &[
            "compare",
            capture.to_str().expect("p"),
            log.to_str().expect("p"),
        ],
    );
    serde_json::from_str(&report).expect("report")
}

/// Replays `flows` with mitmdump's client replay, then compares what the app logged with the
/// capture.
fn replay(
    env: &Env,
    python: &std::path::Path,
    mitm: &std::path::Path,
    flows: &str,
    log: &std::path::Path,
) -> Value {
    let _ = std::fs::remove_file(log);
    let mut cmd = Command::new(mitm);
    cmd.args(["-n", "-C", flows, "--set", "client_replay_concurrency=1"])
        .env("HOME", env.path("mitm-home"))
        .current_dir(env.dir.path());
    let out = cmd.output().expect("mitmdump");
    assert!(
        out.status.success(),
        "mitmdump: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // One flow at a time (concurrency 1): mitmdump ends after the last answer, and the app
    // logs each request before it answers.
    assert!(
        log.exists(),
        "nothing reached the app; mitmdump said:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    compare(python, &env.path("capture.json"), log)
}

#[test]
fn captured_traffic_replayed_by_mitmproxy_passes_auth_through_the_proxy() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    let Some(mitm_python) = mitm_python() else {
        return;
    };
    let mitm = mitm_python.with_file_name("mitmdump");
    let (server, kid) = identity_provider(&env);
    let app_port = free_port();
    let log = env.path("app.log");
    let _app = start_app(
        &python,
        app_port,
        &format!("{}/.well-known/jwks.json", server.url),
        &log,
    );
    let capture = env.path("capture.json");
    py(&python, &["capture", capture.to_str().expect("p")]);
    let flows = |name: &str, port: u16| {
        py(
            &mitm_python,
            &[
                "flows",
                capture.to_str().expect("p"),
                "127.0.0.1",
                &port.to_string(),
                env.path(name).to_str().expect("p"),
            ],
        );
        env.path(name).to_str().expect("p").to_string()
    };
    // Directly: every request is refused.
    let direct = flows("direct.flows", app_port);
    let report = replay(&env, &python, &mitm, &direct, &log);
    assert_eq!(report["received"], 12, "{report}");
    assert_eq!(report["refused"], 12, "{report}");

    // Through the reverse proxy: every request is accepted, the same but for tokens.
    let reverse = start_proxy(
        &env,
        &[
            "--upstream",
            &format!("http://127.0.0.1:{app_port}"),
            "--key",
            &kid,
            "--refresh",
        ],
    );
    let port: u16 = reverse
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let through = flows("proxy.flows", port);
    let report = replay(&env, &python, &mitm, &through, &log);
    assert_eq!(report["accepted"], 12, "{report}\n{}", reverse.log());
    assert_eq!(report["same"], 12, "{report}");
    assert_eq!(report["differences"], serde_json::json!([]), "{report}");

    // Through the forward proxy, as a client that uses HTTP_PROXY sends them (absolute-form).
    let forward = start_proxy(&env, &["--key", &kid, "--refresh"]);
    let forward_port = forward.url.rsplit(':').next().expect("port").to_string();
    let _ = std::fs::remove_file(&log);
    py(
        &python,
        &[
            "forward",
            capture.to_str().expect("p"),
            "127.0.0.1",
            &app_port.to_string(),
            &forward_port,
        ],
    );
    let report = compare(&python, &capture, &log);
    assert_eq!(report["accepted"], 12, "{report}\n{}", forward.log());
    assert_eq!(report["same"], 12, "{report}");
    drop(reverse);
    drop(forward);

    // And as GoReplay replays it: each request through `jwkit resign --goreplay` (the
    // middleware protocol), then to the app as raw HTTP.
    let _ = std::fs::remove_file(&log);
    py_in(
        &python,
        &env,
        &[
            "goreplay",
            capture.to_str().expect("p"),
            &app_port.to_string(),
            "--",
            env!("CARGO_BIN_EXE_jwkit"),
            "resign",
            "--goreplay",
            "--key",
            &kid,
            "--refresh",
        ],
    );
    let report = compare(&python, &capture, &log);
    assert_eq!(report["accepted"], 12, "{report}");
    assert_eq!(report["same"], 12, "{report}");
}

/// The responder side (seed 001): the app logs in against a mock that answers captured login
/// responses (access tokens signed with the capture's old secret; every other body gzip). With
/// `jwkit proxy --side response --only json:access_token --secret-file app.secret --insecure`
/// between them, the app verifies every access_token with its own 11-byte secret, and every
/// other member (an ID token included) is as it was.
#[test]
fn login_responses_are_resigned_with_the_apps_own_short_secret() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    let answers = env.path("logins.json");
    py(&python, &["logins", answers.to_str().expect("p")]);
    std::fs::write(env.path("app.secret"), "app-secret!").expect("secret");
    let mock_port = free_port();
    let _mock = start_peer(
        &python,
        mock_port,
        &["mock", &mock_port.to_string(), answers.to_str().expect("p")],
    );
    let proxy = start_proxy(
        &env,
        &[
            "--upstream",
            &format!("http://127.0.0.1:{mock_port}"),
            "--side",
            "response",
            "--only",
            "json:access_token",
            "--secret-file",
            "app.secret",
            "--insecure",
            "--refresh",
        ],
    );
    let report: Value = serde_json::from_str(&py(
        &python,
        &[
            "login",
            &proxy.url,
            env.path("app.secret").to_str().expect("p"),
            answers.to_str().expect("p"),
        ],
    ))
    .expect("report");
    assert_eq!(
        report["problems"],
        serde_json::json!([]),
        "{report}\n{}",
        proxy.log()
    );
    assert_eq!(report["logins"], 8);
    assert_eq!(report["verified"], 8, "{report}");
    assert_eq!(report["same_members"], 8, "{report}");
    assert!(
        proxy.log().contains("warning: the HMAC secret") || proxy.log().contains("insecure"),
        "the short secret is named: {}",
        proxy.log()
    );
}

/// Starts `replay_peer.py ARGS` as a server on `port` and waits until it accepts.
pub(crate) fn start_peer(python: &std::path::Path, port: u16, args: &[&str]) -> App {
    let child = Command::new(python)
        .arg(peer())
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("peer");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{args:?} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    App(child)
}

/// curl through the forward proxy to an HTTPS app: with `--intercept-self-signed` and the CA it
/// wrote, the tunnel is terminated and the token re-signed (the app's own certificate checked
/// against `--cacert`); without an interception CA the tunnel passes untouched.
#[test]
fn https_through_the_forward_proxy_is_intercepted_or_tunnelled() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    crate::util::private_ca(env.dir.path(), "IP:127.0.0.1");
    let app_port = free_port();
    let _app = start_peer(
        &python,
        app_port,
        &[
            "echo",
            &app_port.to_string(),
            env.path("leaf.pem").to_str().expect("p"),
            env.path("leaf.key").to_str().expect("p"),
        ],
    );
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    let old = env
        .ok(&[
            "generate-jwt",
            "--key-file",
            &crate::jose::key_file("rfc8037-A.1.private.pem"),
            "--sub",
            "carol",
            "--expired",
        ])
        .trim()
        .to_string();
    let curl = |proxy: &str, ca: &str| -> Value {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "20",
                "-x",
                proxy,
                "--cacert",
                ca,
                "-H",
                &format!("Authorization: Bearer {old}"),
                &format!("https://127.0.0.1:{app_port}/secure?x=1"),
            ])
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("echo")
    };
    let bearer = |echo: &Value| -> String {
        echo["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|h| h[0] == "Authorization")
            .and_then(|h| h[1].as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .expect("Authorization")
            .to_string()
    };
    let intercepting = start_proxy(
        &env,
        &[
            "--intercept-self-signed",
            "--intercept-ca-out",
            "intercept-ca.pem",
            "--cacert",
            "ca.pem",
            "--key-file",
            &key,
            "--refresh",
        ],
    );
    let echo = curl(
        &intercepting.url,
        env.path("intercept-ca.pem").to_str().expect("p"),
    );
    let new = bearer(&echo);
    assert_ne!(new, old, "re-signed inside the tunnel");
    env.ok(&[
        "verify-jwt",
        "--key-file",
        &crate::jose::key_file("rfc7515-A.3.public.pem"),
        &new,
    ]);
    assert_eq!(echo["path"], "/secure?x=1");
    // Without an interception CA: a tunnel, passed as it is (the app's own CA verifies it).
    let tunnelling = start_proxy(&env, &["--key-file", &key]);
    let echo = curl(&tunnelling.url, env.path("ca.pem").to_str().expect("p"));
    assert_eq!(bearer(&echo), old, "a tunnel is not looked into");
    drop(tunnelling);
    drop(intercepting);
}

/// A loopback upstream that serves each connection on a thread of its own with `serve`
/// (given a reader and a writer on the socket); its port. Runs until the test ends.
fn upstream(serve: fn(std::io::BufReader<std::net::TcpStream>, std::net::TcpStream)) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("upstream");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
                serve(reader, stream);
            });
        }
    });
    port
}

/// An upstream for the hostile test: reads every request (a Content-Length body, or a chunked
/// one) to the end without keeping it, and answers `{"bytes": N}`. Runs until the test ends.
fn sink() -> u16 {
    use std::io::{BufRead, Read, Write};
    upstream(|mut reader, mut out| {
        loop {
            let mut length = 0u64;
            let mut chunked = false;
            let mut line = String::new();
            let mut first = true;
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" && !first {
                    break;
                }
                first = false;
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                    chunked = true;
                }
            }
            let mut read = 0u64;
            if chunked {
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let size = u64::from_str_radix(line.trim(), 16).unwrap_or(0);
                    if size == 0 {
                        line.clear();
                        let _ = reader.read_line(&mut line);
                        break;
                    }
                    read += std::io::copy(&mut (&mut reader).take(size), &mut std::io::sink())
                        .unwrap_or(0);
                    line.clear();
                    let _ = reader.read_line(&mut line);
                }
            } else {
                read = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink())
                    .unwrap_or(0);
            }
            let body = format!("{{\"bytes\":{read}}}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// The proxy's peak resident memory so far, in KiB.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A request with 10,000 tokens, a 1 GiB body, a gzip bomb, garbage, and 2,000 slow clients:
/// the proxy stays up in bounded memory and a health check through it answers every time.
#[test]
fn hostile_traffic_leaves_the_proxy_bounded_and_serving() {
    use std::io::{Read, Write};
    let _exclusive = crate::util::exclusive();
    let env = Env::new();
    std::fs::write(
        env.path("new.secret"),
        "new-secret-for-the-replay-0123456789",
    )
    .expect("secret");
    let upstream = sink();
    let proxy = start_proxy(
        &env,
        &[
            "--upstream",
            &format!("http://127.0.0.1:{upstream}"),
            "--secret-file",
            "new.secret",
            "--header-timeout",
            "3s",
        ],
    );
    let addr: std::net::SocketAddr = proxy
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let checker = crate::serve::HealthLoop::start(&proxy.url, Duration::from_millis(100));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    // 10,000 distinct tokens in one JSON body: each re-signed (a longer signature), so the
    // upstream gets a longer body.
    let tokens: Vec<String> = (0..10_000)
        .map(|i| {
            use base64::Engine;
            let claims = format!("{{\"sub\":\"u{i}\"}}");
            format!(
                "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "tokens": tokens })).expect("json");
    let resp = client
        .post(&proxy.url)
        .body(body.clone())
        .send()
        .expect("10,000 tokens");
    assert_eq!(resp.status().as_u16(), 200);
    let answered: Value = serde_json::from_slice(&resp.bytes().expect("b")).expect("json");
    let grown = answered["bytes"].as_u64().expect("bytes") - body.len() as u64;
    assert_eq!(
        grown,
        10_000 * (43 - 4),
        "every signature re-made: {answered}"
    );
    let line = proxy.log();
    // A 1 GiB body, streamed: over --max-body, it passes through as it comes.
    let gib = 1u64 << 30;
    let stream = std::io::repeat(b'A').take(gib);
    let resp = client
        .post(format!("{}/upload", proxy.url))
        .body(reqwest::blocking::Body::sized(stream, gib))
        .send()
        .expect("1 GiB");
    let answered: Value = serde_json::from_slice(&resp.bytes().expect("b")).expect("json");
    assert_eq!(
        answered["bytes"], gib,
        "the whole body reached the upstream"
    );
    // A gzip bomb: 1,024 gzip members of 1 MiB of zeros each (one file, as RFC 1952 allows),
    // about 1 MiB that inflates to 1 GiB. Made by repeating one member: compressing 1 GiB
    // in a debug build would load a core for a minute.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 1 << 20]).expect("gzip");
        e.finish().expect("gzip").repeat(1024)
    };
    let resp = client
        .post(format!("{}/bomb", proxy.url))
        .header("Content-Encoding", "gzip")
        .body(bomb.clone())
        .send()
        .expect("bomb");
    let answered: Value = serde_json::from_slice(&resp.bytes().expect("b")).expect("json");
    assert_eq!(answered["bytes"], bomb.len(), "passed on as it came");
    // Garbage.
    for junk in [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage".as_slice(),
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        &[0xffu8; 4096],
    ] {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(junk);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read(&mut [0u8; 512]);
        }
    }
    // 2,000 slow clients: half send nothing, half half a request line.
    let mut slow = Vec::new();
    for i in 0..2000 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /health HT");
            }
            slow.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    let (worst, answered) = checker.stop();
    drop(slow);
    assert!(answered >= 20, "{answered} health checks");
    assert!(
        worst < Duration::from_secs(1),
        "a health check took {worst:?}"
    );
    // Still serving, in bounded memory.
    let resp = client.post(&proxy.url).body(body).send().expect("again");
    assert_eq!(resp.status().as_u16(), 200);
    let kib = peak_kib(proxy.pid());
    eprintln!("proxy peak resident memory through the hostile traffic: {kib} KiB");
    assert!(kib > 0 && kib < 256 * 1024, "{kib} KiB");
    assert!(line.contains("listening"), "{line}");
}

/// A long replay: a capture of 60-second tokens, ten minutes old, sent through the proxy again
/// and again for three minutes. `--refresh` computes each token's times when it is first
/// re-signed, and a new token is handed out again only while it is valid: every request is
/// accepted, the last as the first.
#[test]
fn a_three_minute_replay_of_sixty_second_tokens_is_accepted_throughout() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    let (server, kid) = identity_provider(&env);
    let app_port = free_port();
    let _app = start_app(
        &python,
        app_port,
        &format!("{}/.well-known/jwks.json", server.url),
        &env.path("app.log"),
    );
    let capture = env.path("capture.json");
    py(
        &python,
        &["capture", capture.to_str().expect("p"), "60", "600"],
    );
    let proxy = start_proxy(
        &env,
        &[
            "--upstream",
            &format!("http://127.0.0.1:{app_port}"),
            "--key",
            &kid,
            "--refresh",
        ],
    );
    let port = proxy.url.rsplit(':').next().expect("port").to_string();
    let report: Value = serde_json::from_str(&py(
        &python,
        &["loop", capture.to_str().expect("p"), &port, "180"],
    ))
    .expect("report");
    assert_eq!(report["refused"], serde_json::json!([]), "{report}");
    assert!(report["accepted"].as_u64().unwrap_or(0) >= 1000, "{report}");
    assert_eq!(report["accepted"], report["sent"], "{report}");
}

/// An upstream that speaks a WebSocket handshake (101, then echoes bytes) at /ws and a
/// server-sent event stream at /sse (one event, a pause, another).
fn streams() -> u16 {
    use std::io::{BufRead, Read, Write};
    upstream(|mut reader, mut out| {
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            line.clear();
        }
        if first.contains("/ws") {
            let _ = out.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                    );
            let mut buf = [0u8; 64];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        } else {
            let _ = out.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: one\n\n",
                    );
            let _ = out.flush();
            std::thread::sleep(Duration::from_secs(3));
            let _ = out.write_all(b"data: two\n\n");
        }
    })
}

/// WebSocket upgrades and server-sent event streams pass through as they flow.
#[test]
fn websockets_and_event_streams_pass_through_as_they_flow() {
    use std::io::{Read, Write};
    let env = Env::new();
    let upstream = streams();
    let proxy = start_proxy(
        &env,
        &[
            "--upstream",
            &format!("http://127.0.0.1:{upstream}"),
            "--key-file",
            &crate::jose::key_file("rfc7515-A.3.private.pem"),
        ],
    );
    let addr = proxy.url.trim_start_matches("http://").to_string();
    let mut ws = std::net::TcpStream::connect(&addr).expect("connect");
    ws.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    ws.write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .expect("handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.read_exact(&mut byte).expect("101");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    ws.write_all(b"hello through the proxy").expect("frame");
    let mut echo = [0u8; 23];
    ws.read_exact(&mut echo).expect("echo");
    assert_eq!(&echo, b"hello through the proxy");
    // The first event arrives while the upstream is still writing the stream.
    let mut sse = std::net::TcpStream::connect(&addr).expect("connect");
    sse.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sse.write_all(b"GET /sse HTTP/1.1\r\nHost: app\r\nAccept: text/event-stream\r\n\r\n")
        .expect("request");
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("data: one") {
        let n = sse.read(&mut buf).expect("event");
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "streamed, not buffered: {:?}",
        t.elapsed()
    );
    assert!(!String::from_utf8_lossy(&got).contains("data: two"));
}
