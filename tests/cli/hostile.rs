//! Faults and hostile inputs from outside, each reproduced as it was found: a log reader that
//! goes away, clients trickling bodies, key-set servers dripping bytes, caches planted or
//! broken by others, operator files that are not files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Server, TOKEN};
use crate::util::Env;

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("addr")
}

fn health(client: &reqwest::blocking::Client, url: &str) -> Option<Value> {
    let resp = client.get(format!("{url}/health")).send().ok()?;
    if resp.status().as_u16() != 200 {
        return None;
    }
    serde_json::from_slice(&resp.bytes().ok()?).ok()
}

/// `jwkit serve ... 2>&1 | grep -m1 listening`: grep exits after the first line, and the
/// server goes on writing its log into a pipe nobody reads.
#[test]
fn a_closed_log_pipe_never_stops_the_server() {
    let env = Env::new();
    std::fs::write(env.path("upload.token"), format!("{TOKEN}\n")).expect("token");
    let mut serve = env
        .cmd(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            "data",
            "--issue-tokens",
            "--alg",
            "ES256",
            "--upload-token-file",
            "upload.token",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let grep = Command::new("grep")
        .args(["-m1", "listening"])
        .stdin(Stdio::from(serve.stderr.take().expect("stderr")))
        .stdout(Stdio::piped())
        .output()
        .expect("grep");
    let line = String::from_utf8_lossy(&grep.stdout).to_string();
    let url = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("a listening line")
        .to_string();
    // grep has exited: the pipe's read end is closed. Every request now logs into it.
    let client = crate::serve::http();
    for i in 0..50 {
        assert!(health(&client, &url).is_some(), "health check {i} failed");
        let resp = client
            .post(format!("{url}/auth"))
            .header("content-type", "application/json")
            .body(r#"{"sub":"u"}"#)
            .send()
            .expect("auth");
        assert_eq!(resp.status().as_u16(), 200);
    }
    let (status, _) = crate::serve::upload(
        &url,
        &crate::serve::public_jwk(jwkit::crypto::KeySpec::Ed25519),
        Some(TOKEN),
    );
    assert_eq!(status, 201);
    let h = health(&client, &url).expect("health");
    assert!(
        h["log_lines_dropped"].as_u64().is_some_and(|n| n >= 100),
        "{h}"
    );
    assert!(
        serve.try_wait().expect("wait").is_none(),
        "the server is still running"
    );
    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .expect("kill");
    let t = Instant::now();
    let status = serve.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// 600 clients send the head of an unauthenticated POST /jwks or POST /auth and then trickle
/// its body a byte a second, reconnecting whenever the server closes them; 512 connection
/// slots. Uploads are refused from their headers, trickled bodies meet --body-timeout, and
/// when the slots are full the slowest connection goes: a health check answers every time,
/// within a second.
#[test]
fn trickled_bodies_cannot_hold_the_connection_slots() {
    let _exclusive = crate::util::exclusive();
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--issue-tokens", "--alg", "ES256"],
    );
    let addr = addr_of(&server.url);
    let running = Arc::new(AtomicBool::new(true));
    let checker = {
        let running = Arc::clone(&running);
        let url = server.url.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            let (mut worst, mut answered) = (Duration::ZERO, 0);
            while running.load(Ordering::SeqCst) {
                let t = Instant::now();
                assert!(
                    health(&client, &url).is_some(),
                    "GET /health failed during the attack"
                );
                worst = worst.max(t.elapsed());
                answered += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (worst, answered)
        })
    };
    let head = |i: usize| {
        let path = if i.is_multiple_of(2) {
            "/jwks"
        } else {
            "/auth"
        };
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        )
    };
    let open = |i: usize| -> Option<TcpStream> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_nonblocking(true).ok()?;
        s.write_all(head(i).as_bytes()).ok()?;
        Some(s)
    };
    let mut sockets: Vec<Option<TcpStream>> = (0..600).map(open).collect();
    let (mut reopened, mut refused_401) = (0, 0);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_secs(1));
        for (i, slot) in sockets.iter_mut().enumerate() {
            let alive = slot.as_mut().is_some_and(|s| {
                let mut buf = [0u8; 512];
                match s.read(&mut buf) {
                    Ok(0) => false,
                    Ok(n) => {
                        if buf[..n].starts_with(b"HTTP/1.1 401") {
                            refused_401 += 1;
                        }
                        // Answered: the server closes after an unread body.
                        false
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        s.write_all(b" ").is_ok()
                    }
                    Err(_) => false,
                }
            });
            if !alive {
                reopened += 1;
                *slot = open(i);
            }
        }
    }
    running.store(false, Ordering::SeqCst);
    let (worst, answered) = checker.join().expect("checker");
    drop(sockets);
    assert!(answered >= 50, "{answered} health checks");
    assert!(
        worst < Duration::from_secs(1),
        "a health check took {worst:?}"
    );
    assert!(
        refused_401 >= 300,
        "uploads without the token are refused from their headers: {refused_401}"
    );
    assert!(reopened >= 600, "the attacker reconnected {reopened} times");
    let log = server.log();
    assert!(log.contains("POST /jwks 401"), "{log}");
    assert!(log.contains("POST /auth 408"), "{log}");
}

/// Certificate, key, token and configuration files are checked like input: a FIFO, /dev/zero
/// or a file of gigabytes is refused at start at once, and on SIGHUP the old pair stays and
/// the server still stops on SIGTERM.
#[test]
fn operator_files_that_are_not_files_are_refused_at_start_and_on_reload() {
    let env = Env::new();
    let path = |name: &str| env.path(name).to_str().expect("p").to_string();
    let (cert_a, key_a, ca_a) = crate::serve_dropin::make_cert(2020, 2090);
    std::fs::write(env.path("cert.pem"), &cert_a).expect("cert");
    std::fs::write(env.path("key.pem"), &key_a).expect("key");
    std::fs::write(env.path("ca.pem"), &ca_a).expect("ca");
    let mkfifo = |name: &str| {
        let ok = Command::new("mkfifo")
            .arg(env.path(name))
            .status()
            .expect("mkfifo")
            .success();
        assert!(ok);
    };
    mkfifo("fifo.pem");
    // A sparse 3 GiB file.
    std::fs::File::create(env.path("huge.pem"))
        .and_then(|f| f.set_len(3 << 30))
        .expect("huge");
    let serve = |extra: &[&str]| {
        let t = Instant::now();
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--data-dir", "d"];
        args.extend(extra);
        let run = env.run(&args);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        run
    };
    let (cert, key, fifo, huge) = (
        path("cert.pem"),
        path("key.pem"),
        path("fifo.pem"),
        path("huge.pem"),
    );
    for (c, k, needle) in [
        (fifo.as_str(), key.as_str(), "not a regular file"),
        (
            "/dev/zero",
            key.as_str(),
            "--tls-cert /dev/zero: not a regular file",
        ),
        (
            cert.as_str(),
            "/dev/zero",
            "--tls-key /dev/zero: not a regular file",
        ),
        (cert.as_str(), fifo.as_str(), "not a regular file"),
        (huge.as_str(), key.as_str(), "is larger than 1048576 bytes"),
    ] {
        serve(&["--tls-cert", c, "--tls-key", k]).fails_with(needle);
    }
    serve(&["--upload-token-file", &fifo]).fails_with("not a regular file");
    serve(&["--upload-token-file", "/dev/zero"]).fails_with("not a regular file");
    serve(&["--idp", "--idp-config", &fifo]).fails_with("not a regular file");
    serve(&["--idp", "--idp-config", &huge]).fails_with("larger than");

    let mut server = Server::start(
        &env,
        &env.path("data"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let healthy = || {
        crate::serve_dropin::https(&env.path("ca.pem"))
            .get(format!("{}/health", server.url))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 200)
    };
    assert!(healthy());
    // The certificate becomes a FIFO, then a link to /dev/zero, then 3 GiB: each reload is
    // refused, the pair in use stays, handshakes go on.
    std::fs::remove_file(env.path("cert.pem")).expect("rm");
    mkfifo("cert.pem");
    crate::serve_dropin::hangup_until(&server, "not a regular file");
    assert!(healthy());
    std::fs::remove_file(env.path("cert.pem")).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", env.path("cert.pem")).expect("link");
    let before = server.log().matches("the old one stays").count();
    crate::serve_dropin::hangup_until(&server, "--tls-cert");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches("the old one stays").count() < before + 1 {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(healthy());
    std::fs::remove_file(env.path("cert.pem")).expect("rm");
    std::fs::rename(env.path("huge.pem"), env.path("cert.pem")).expect("mv");
    crate::serve_dropin::hangup_until(&server, "is larger than");
    assert!(healthy());
    let t = Instant::now();
    assert_eq!(server.signal("-TERM"), 0, "{}", server.log());
    assert!(t.elapsed() < Duration::from_secs(5));
}
