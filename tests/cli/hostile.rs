//! Faults and hostile inputs from outside, each reproduced as it was found: a log reader that
//! goes away, clients trickling bodies, key-set servers dripping bytes, caches planted or
//! broken by others, operator files that are not files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
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
    let checker = crate::serve::HealthLoop::start(&server.url, Duration::from_millis(100));
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
    let (worst, answered) = checker.stop();
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

/// A key-set server that sends its headers at once and then its body a byte a second:
/// `--timeout 3s` bounds the whole fetch.
#[test]
fn timeout_bounds_the_whole_fetch_of_a_dripped_key_set() {
    use crate::http::{Route, TestServer};
    let env = Env::new();
    let server = TestServer::start();
    let mut drip = Route::json(
        br#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#.to_vec(),
    );
    drip.trickle = Some(Duration::from_secs(1));
    server.set("/drip", drip);
    let token = env.ok(&[
        "generate-jwt",
        "--key-file",
        &crate::util::vectors()
            .join("keys/rfc7515-A.3.private.pem")
            .to_string_lossy(),
        "--sub",
        "x",
    ]);
    // The same drip behind discovery: the issuer's document arrives at once, its key set
    // drips.
    let issuer = server.url("/idp");
    server.set(
        "/idp/.well-known/openid-configuration",
        Route::json(
            serde_json::json!({"issuer": issuer, "jwks_uri": server.url("/drip")})
                .to_string()
                .into_bytes(),
        ),
    );
    for (flag, url) in [
        ("--jwks-url", server.url("/drip")),
        ("--issuer", issuer.clone()),
    ] {
        let t = Instant::now();
        env.run(&[
            "verify-jwt",
            "--timeout",
            "3s",
            "--no-cache",
            "--any-aud",
            flag,
            &url,
            token.trim(),
        ])
        .fails_with("timed out");
        let took = t.elapsed();
        assert!(took <= Duration::from_secs(4), "{flag}: took {took:?}");
    }
}

/// The RFC 7638 thumbprint of the RFC 7515 A.3 key: its kid in `jwks_of` sets.
const A3_KID: &str = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";

/// A token signed by the RFC 7515 A.3 key (ES256), with `kid`.
fn es256_token(kid: &str) -> String {
    let claims = serde_json::json!({"sub": "alice", "exp": crate::util::unix_now() + 600});
    crate::jose::sign_raw(
        "rfc7515-A.3.private.pem",
        jwkit::crypto::Alg::ES256,
        serde_json::json!({"alg": "ES256", "kid": kid})
            .to_string()
            .as_bytes(),
        claims.to_string().as_bytes(),
    )
}

/// The cache entry file jwkit uses for `url` (SHA-256 of the URL, hex).
fn cache_file(env: &Env, url: &str) -> std::path::PathBuf {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, url.as_bytes());
    let name: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    env.cache().join("jwkit/jwks").join(format!("{name}.json"))
}

fn plant(env: &Env, url: &str, body: &str, fetched_ms: i64, max_age: i64) {
    let path = cache_file(env, url);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    let entry = serde_json::json!({
        "url": url, "fetched_ms": fetched_ms, "max_age": max_age, "body": body,
    });
    std::fs::write(&path, entry.to_string()).expect("plant");
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Someone else planted an entry for an HTTPS URL jwkit never contacted, holding their own
/// key: in a cache directory that group or others can write, or that another user owns, it
/// is not evidence. An entry that claims a max-age of decades expires after the documented
/// 24 h all the same.
#[test]
fn a_planted_cache_entry_is_never_evidence() {
    let env = Env::new();
    // Nothing listens there: only the cache could make this token valid.
    let url = "https://127.0.0.1:9/jwks";
    let jwks = crate::verify_jwt::jwks_of(&env, &["rfc7515-A.3.public.pem"]);
    let forged = es256_token(A3_KID);
    let now_ms = crate::util::unix_now() * 1000;
    let verify = || env.run(&["verify-jwt", "--jwks-url", url, "--timeout", "2s", &forged]);
    let root = env.cache().join("jwkit");
    for (what, dir_mode) in [("world-writable", 0o777), ("group-writable", 0o770)] {
        plant(&env, url, &jwks, now_ms, 3600);
        chmod(&root.join("jwks"), dir_mode);
        let run = verify();
        assert_eq!(run.code, 2, "{what}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{what}");
        assert!(
            run.stderr
                .contains("is not a private directory of this user"),
            "{what}: {}",
            run.stderr
        );
        assert_eq!(
            run.stderr.matches("warning:").count(),
            1,
            "one warning: {}",
            run.stderr
        );
        chmod(&root.join("jwks"), 0o700);
        chmod(&root, 0o777);
        let run = verify();
        assert_eq!(run.code, 2, "{what} parent: {}", run.stderr);
        chmod(&root, 0o700);
    }
    // Another user's directory (root can make one): not ours, not trusted.
    if rustix::process::geteuid().is_root() {
        plant(&env, url, &jwks, now_ms, 3600);
        std::os::unix::fs::chown(root.join("jwks"), Some(65534), Some(65534)).expect("chown");
        let run = verify();
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("not a private directory"),
            "{}",
            run.stderr
        );
        std::os::unix::fs::chown(root.join("jwks"), Some(0), Some(0)).expect("chown");
    }
    // In our own private directory, an entry that claims 30 years of max-age and was
    // fetched two days ago has expired (24 h at most), and the stale copy is too old to use.
    plant(&env, url, &jwks, now_ms - 2 * 86_400_000, 30 * 365 * 86_400);
    chmod(&root.join("jwks"), 0o700);
    let run = verify();
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    // The same entry fetched a minute ago is ours and in date: the cache works as before.
    plant(&env, url, &jwks, now_ms - 60_000, 3600);
    let run = verify();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A cache entry that is garbage, a FIFO, or a link to /dev/zero is discarded and fetched
/// again at once, in bounded memory.
#[test]
fn broken_cache_entries_are_refetched_fast_in_bounded_memory() {
    use crate::http::{Route, TestServer};
    let env = Env::new();
    let server = TestServer::start();
    let jwks = crate::verify_jwt::jwks_of(&env, &["rfc7515-A.3.public.pem"]);
    server.set(
        "/jwks",
        Route::json(jwks.clone()).header("Cache-Control", "max-age=600"),
    );
    let url = server.url("/jwks");
    let token = es256_token(A3_KID);
    let now_ms = crate::util::unix_now() * 1000;
    // Warm, so the directories exist as jwkit makes them.
    env.ok(&["verify-jwt", "--jwks-url", &url, &token]);
    let path = cache_file(&env, &url);
    let mut hits = server.hits("/jwks");
    let mut check = |what: &str| {
        let t = Instant::now();
        let (run, kib) = env.run_measured(&["verify-jwt", "--jwks-url", &url, &token]);
        assert_eq!(run.code, 0, "{what}: {}", run.stderr);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: {:?}",
            t.elapsed()
        );
        assert!(kib < 64 * 1024, "{what}: {kib} KiB resident");
        assert_eq!(server.hits("/jwks"), hits + 1, "{what}: refetched once");
        hits += 1;
        let entry: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("entry")).expect("json");
        assert_eq!(
            entry["body"].as_str(),
            Some(jwks.as_str()),
            "{what}: replaced"
        );
    };
    plant(&env, &url, "garbage, not a key set", now_ms, 600);
    check("garbage body");
    std::fs::write(&path, b"{\"url\": 12").expect("corrupt");
    check("corrupt entry");
    std::fs::remove_file(&path).expect("rm");
    let ok = Command::new("mkfifo").arg(&path).status().expect("mkfifo");
    assert!(ok.success());
    check("FIFO");
    std::fs::remove_file(&path).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &path).expect("link");
    check("link to /dev/zero");
}

/// 50 runs at once, each with a token whose kid the set does not hold: the runs take turns
/// on the URL's lock, and the one refetch per window is shared. Cold and warm cache.
#[test]
fn concurrent_runs_with_unknown_kids_share_one_refetch_per_window() {
    use crate::http::{Route, TestServer};
    let _exclusive = crate::util::exclusive();
    for warm in [true, false] {
        let env = Env::new();
        let server = TestServer::start();
        server.set(
            "/jwks",
            Route::json(crate::verify_jwt::jwks_of(
                &env,
                &["rfc7515-A.3.public.pem"],
            )),
        );
        let url = server.url("/jwks");
        if warm {
            env.ok(&["verify-jwt", "--jwks-url", &url, &es256_token(A3_KID)]);
        }
        let before = server.hits("/jwks");
        let started = Instant::now();
        let children: Vec<_> = (0..50)
            .map(|i| {
                env.cmd(&[
                    "verify-jwt",
                    "--jwks-url",
                    &url,
                    &es256_token(&format!("unknown-{i}")),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("wait");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("unknown_kid"), "{stderr}");
        }
        let elapsed = started.elapsed().as_secs_f64();
        let requests = server.hits("/jwks") - before;
        let windows = (elapsed / 2.0).ceil().max(1.0) as usize;
        assert!(
            requests <= 2 * windows,
            "warm {warm}: {requests} requests from 50 runs in {elapsed:.1}s"
        );
    }
}

/// Raw HTTP with its Content-Length repeated, listed, or in conflict (RFC 9110 §8.6): equal
/// values collapse into one corrected field; conflicting ones leave the message untouched and
/// counted; every other message keeps its own right length.
#[test]
fn repeated_listed_and_conflicting_content_lengths() {
    let env = Env::new();
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    let public = crate::jose::key_file("rfc7515-A.3.public.pem");
    let token = es256_token(A3_KID);
    let body = format!("{{\"access_token\":\"{token}\",\"token_type\":\"Bearer\"}}");
    let n = body.len();
    let capture = [
        format!("POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: {n}\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n{body}"),
        format!("HTTP/1.1 200 OK\r\nContent-Length: {n}, {n}\r\n\r\n{body}"),
        format!("POST /c HTTP/1.1\r\nHost: app\r\nContent-Length: {n}\r\nContent-Length: {}\r\n\r\n{body}\r\n", n + 1),
        format!("POST /d HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer {token}\r\nContent-Length: {n}\r\n\r\n{body}"),
    ]
    .concat();
    std::fs::write(env.path("capture.http"), &capture).expect("write");
    let run = env.run(&[
        "resign",
        "--scan",
        "capture.http",
        "--key-file",
        &key,
        "--kid",
        "new",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("found 5 tokens, re-signed 4")
            && run
                .stderr
                .contains("left 1 (in a message with conflicting Content-Length)"),
        "{}",
        run.stderr
    );
    let out = run.stdout_bytes;
    let pieces = jwkit::scan::http::pieces(&out);
    let messages: Vec<_> = pieces.iter().filter(|p| p.head.len() > 2).collect();
    assert_eq!(messages.len(), 4, "{}", String::from_utf8_lossy(&out));
    let head = |i: usize| String::from_utf8_lossy(&out[messages[i].head.clone()]).to_string();
    for i in [0, 1, 3] {
        let p = messages[i];
        let length = p.length.as_ref().expect("a length");
        assert_eq!(length.declared, p.body.len(), "message {i}: {}", head(i));
        assert!(
            length.repeats.is_empty(),
            "message {i}: one field: {}",
            head(i)
        );
        assert_eq!(head(i).matches("Content-Length").count(), 1, "{}", head(i));
        let body: Value = serde_json::from_slice(&out[p.body.clone()]).expect("json");
        let new = body["access_token"].as_str().expect("token");
        assert_ne!(new, token);
        env.ok(&["verify-jwt", "--key-file", &public, new]);
    }
    assert!(head(0).contains("Content-Type: application/json"));
    assert!(
        !head(1).contains(", "),
        "a list collapses into one value: {}",
        head(1)
    );
    // The conflicting message is byte for byte what it was.
    let conflicting = format!(
        "POST /c HTTP/1.1\r\nHost: app\r\nContent-Length: {n}\r\nContent-Length: {}\r\n\r\n{body}\r\n",
        n + 1
    );
    assert!(
        memchr::memmem::find(&out, conflicting.as_bytes()).is_some(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

/// A 100 MiB Docker json-file log (each line `{"log":"...","stream":...,"time":...}`) is
/// not a HAR document: it streams, in bounded memory, and every token in it is re-signed.
#[test]
fn a_docker_json_log_streams_in_bounded_memory() {
    let _exclusive = crate::util::exclusive();
    let env = Env::new();
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    let token = es256_token(A3_KID);
    let mut log = Vec::with_capacity(101 << 20);
    let mut lines: usize = 0;
    while log.len() < 100 << 20 {
        let text = if lines.is_multiple_of(1000) {
            format!("GET /api/items Authorization: Bearer {token} 200\\n")
        } else {
            format!("GET /api/items/{lines} 200 12ms user-agent=curl/8.5.0\\n")
        };
        log.extend_from_slice(
            format!(
                "{{\"log\":\"{text}\",\"stream\":\"stdout\",\"time\":\"2026-12-05T10:00:{:02}.{lines:09}Z\"}}\n",
                lines % 60
            )
            .as_bytes(),
        );
        lines += 1;
    }
    let tokens = lines.div_ceil(1000);
    std::fs::write(env.path("container.log"), &log).expect("write");
    let (run, kib) = env.run_measured(&[
        "resign",
        "--scan",
        "container.log",
        "--key-file",
        &key,
        "--out",
        "out.log",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("found {tokens} tokens, re-signed {tokens}")),
        "{}",
        run.stderr
    );
    assert!(kib < 64 * 1024, "{kib} KiB resident for a 100 MiB log");
    let written = std::fs::read(env.path("out.log")).expect("out");
    assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), lines);
    assert!(memchr::memmem::find(&written, token.as_bytes()).is_none());
}

/// HAR bodies in base64url (with or without padding) get their bodySize and content.size
/// fixed like standard base64 ones.
#[test]
fn har_sizes_follow_base64url_bodies() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let env = Env::new();
    let key = crate::jose::key_file("rfc7515-A.3.private.pem");
    let token = es256_token(A3_KID);
    // A body whose base64 needs `-` or `_` in the URL-safe alphabet.
    let body = format!("{{\"access_token\":\"{token}\",\"note\":\"??>>~~\"}}");
    let mut entries = Vec::new();
    for (i, encoded) in [
        STANDARD.encode(&body),
        URL_SAFE.encode(&body),
        URL_SAFE_NO_PAD.encode(&body),
    ]
    .iter()
    .enumerate()
    {
        entries.push(serde_json::json!({
            "startedDateTime": "2026-12-05T10:00:00Z", "time": 1,
            "request": {"method": "GET", "url": format!("http://app/{i}"), "httpVersion": "HTTP/1.1",
                "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [],
                "cookies": [], "redirectURL": "", "headersSize": -1, "bodySize": body.len(),
                "content": {"size": body.len(), "mimeType": "application/json", "text": encoded, "encoding": "base64"}},
            "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}
        }));
    }
    let har = serde_json::json!({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": entries}});
    std::fs::write(
        env.path("capture.har"),
        serde_json::to_vec_pretty(&har).expect("json"),
    )
    .expect("write");
    let run = env.run(&[
        "resign",
        "--scan",
        "capture.har",
        "--key-file",
        &key,
        "--kid",
        "new",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("re-signed 3"), "{}", run.stderr);
    let out: Value = serde_json::from_slice(&run.stdout_bytes).expect("HAR");
    for (i, e) in out["log"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .enumerate()
    {
        let content = &e["response"]["content"];
        let text = content["text"].as_str().expect("text");
        let decoded = if i == 0 {
            STANDARD.decode(text)
        } else if i == 1 {
            URL_SAFE.decode(text)
        } else {
            URL_SAFE_NO_PAD.decode(text)
        }
        .expect("same alphabet and padding");
        assert_ne!(
            decoded.len(),
            body.len(),
            "entry {i}: the body changed length"
        );
        assert_eq!(
            content["size"].as_u64(),
            Some(decoded.len() as u64),
            "entry {i}"
        );
        assert_eq!(
            e["response"]["bodySize"].as_u64(),
            Some(decoded.len() as u64),
            "entry {i}"
        );
    }
}
