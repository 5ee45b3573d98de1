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
