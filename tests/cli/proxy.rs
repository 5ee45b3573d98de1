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

/// mitmdump beside the venv's python, or None (a failure in CI).
fn mitmdump(python: &std::path::Path) -> Option<PathBuf> {
    let m = python.with_file_name("mitmdump");
    if m.is_file() {
        return Some(m);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "mitmproxy is required in CI (.ci/run installs it from tests/requirements.txt)"
    );
    eprintln!("SKIPPED: proxy replay test: no {}", m.display());
    None
}

/// The app, killed on drop.
struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_app(python: &std::path::Path, port: u16, jwks: &str, log: &std::path::Path) -> App {
    let child = Command::new(python)
        .arg(peer())
        .args(["app", &port.to_string(), jwks, log.to_str().expect("p")])
        .stdout(Stdio::null())
        .spawn()
        .expect("app");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the app did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    App(child)
}

fn py(python: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(peer())
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
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
    // mitmdump may end as its last answers come in: wait for the app's record of each.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = || {
        std::fs::read_to_string(log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    while lines() < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        log.exists(),
        "nothing reached the app; mitmdump said:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report = py(
        python,
        &[
            "compare",
            env.path("capture.json").to_str().expect("p"),
            log.to_str().expect("p"),
        ],
    );
    serde_json::from_str(&report).expect("report")
}

#[test]
fn captured_traffic_replayed_by_mitmproxy_passes_auth_through_the_proxy() {
    let env = Env::new();
    let Some(python) = peer_python() else { return };
    let Some(mitm) = mitmdump(&python) else {
        return;
    };
    // The identity provider the app trusts: jwkit serve, with a key uploaded to it.
    let server = Server::start(&env, &env.path("data"), &[]);
    let kid = {
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
        String::from_utf8(out.stdout)
            .expect("kid")
            .trim()
            .to_string()
    };
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
            &python,
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
    let reverse = Server::from_command({
        let mut c = env.cmd(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &format!("http://127.0.0.1:{app_port}"),
            "--key",
            &kid,
            "--refresh",
        ]);
        c.stdin(Stdio::null());
        c
    });
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
    let forward = Server::from_command({
        let mut c = env.cmd(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--key",
            &kid,
            "--refresh",
        ]);
        c.stdin(Stdio::null());
        c
    });
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
    let report: Value = serde_json::from_str(&py(
        &python,
        &[
            "compare",
            capture.to_str().expect("p"),
            log.to_str().expect("p"),
        ],
    ))
    .expect("report");
    assert_eq!(report["accepted"], 12, "{report}\n{}", forward.log());
    assert_eq!(report["same"], 12, "{report}");
    drop(reverse);
    drop(forward);
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
    let _mock = {
        let child = Command::new(&python)
            .arg(peer())
            .args(["mock", &mock_port.to_string(), answers.to_str().expect("p")])
            .spawn()
            .expect("mock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", mock_port)).is_err() {
            assert!(Instant::now() < deadline, "the mock did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        App(child)
    };
    let proxy = Server::from_command({
        let mut c = env.cmd(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
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
        ]);
        c.stdin(Stdio::null());
        c
    });
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
fn start_peer(python: &std::path::Path, port: u16, args: &[&str]) -> App {
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
    let intercepting = Server::from_command({
        let mut c = env.cmd(&[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--intercept-self-signed",
            "--intercept-ca-out",
            "intercept-ca.pem",
            "--cacert",
            "ca.pem",
            "--key-file",
            &key,
            "--refresh",
        ]);
        c.stdin(Stdio::null());
        c
    });
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
    let tunnelling = Server::from_command({
        let mut c = env.cmd(&["proxy", "--listen", "127.0.0.1:0", "--key-file", &key]);
        c.stdin(Stdio::null());
        c
    });
    let echo = curl(&tunnelling.url, env.path("ca.pem").to_str().expect("p"));
    assert_eq!(bearer(&echo), old, "a tunnel is not looked into");
    drop(tunnelling);
    drop(intercepting);
}
