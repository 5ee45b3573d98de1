//! `jwkit serve` as a real process on an ephemeral loopback port: end to end with the other
//! commands, upload validation, concurrency, crash safety, expiry, token issuing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use jwkit::crypto::{Curve, Key, KeyMeta, KeySpec};
use serde_json::{Value, json};

use crate::util::Env;

pub(crate) const TOKEN: &str = "upload-secret-0123456789";

/// A running `jwkit serve`; its stderr is collected. Dropping it kills the process.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(env: &Env, data: &Path, extra: &[&str]) -> Server {
        Server::start_after(env, None, data, extra)
    }

    /// `start` through `sh` after `setup` (for example `ulimit -n 1024`).
    pub(crate) fn start_after(
        env: &Env,
        setup: Option<&str>,
        data: &Path,
        extra: &[&str],
    ) -> Server {
        std::fs::write(env.path("upload.token"), format!("{TOKEN}\n")).expect("token file");
        let mut args = vec!["serve"];
        if !extra.contains(&"--store") {
            args.extend(["--data-dir", data.to_str().expect("path")]);
        }
        if !extra.contains(&"--addr") {
            args.extend(["--addr", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--no-upload-token") {
            args.extend(["--upload-token-file", "upload.token"]);
        }
        args.extend(extra.iter().filter(|a| **a != "--no-upload-token"));
        Server::from_command(match setup {
            Some(setup) => env.cmd_after(setup, &args),
            None => env.cmd(&args),
        })
    }

    /// Starts `jwkit serve` (or `jwkit proxy`) as `cmd` gives it, waiting for its listening
    /// line.
    pub(crate) fn from_command(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged first: a test that reads the log once start() returns sees the
                // listening line.
                {
                    let mut l = sink.lock().expect("log");
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(rest) = line
                    .strip_prefix("jwkit serve: listening on ")
                    .or_else(|| line.strip_prefix("jwkit proxy: listening on "))
                {
                    let _ = tx.send(rest.split(' ').next().unwrap_or_default().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server starts");
        Server { child, url, log }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    pub(crate) fn signal(&mut self, sig: &str) -> i32 {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.child.wait().expect("wait").code().unwrap_or(-1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A thread that GETs `/health` every `every` (a new connection each time) until stopped, and
/// fails the test when one is not answered 200.
pub(crate) struct HealthLoop {
    running: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Duration, usize)>,
}

impl HealthLoop {
    pub(crate) fn start(url: &str, every: Duration) -> HealthLoop {
        use std::sync::atomic::{AtomicBool, Ordering};
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let health_url = format!("{url}/health");
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            let (mut worst, mut answered) = (Duration::ZERO, 0);
            while flag.load(Ordering::SeqCst) {
                let t = std::time::Instant::now();
                let r = client.get(&health_url).send();
                let ok = r.as_ref().is_ok_and(|r| r.status().as_u16() == 200);
                assert!(ok, "GET /health failed: {r:?} after {:?}", t.elapsed());
                worst = worst.max(t.elapsed());
                answered += 1;
                std::thread::sleep(every);
            }
            (worst, answered)
        });
        HealthLoop { running, thread }
    }

    /// Stops the loop: the slowest answer and how many there were.
    pub(crate) fn stop(self) -> (Duration, usize) {
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the health loop")
    }
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

pub(crate) fn upload(url: &str, body: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = http().post(format!("{url}/jwks")).body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().expect("upload");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().expect("body")).unwrap_or(Value::Null),
    )
}

fn jwks(url: &str) -> (Value, String) {
    let resp = http()
        .get(format!("{url}/.well-known/jwks.json"))
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/jwk-set+json");
    let etag = resp.headers()["etag"].to_str().expect("etag").to_string();
    (
        serde_json::from_slice(&resp.bytes().expect("b")).expect("jwks parses"),
        etag,
    )
}

fn kids(doc: &Value) -> Vec<String> {
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

pub(crate) fn public_jwk(spec: KeySpec) -> String {
    let key = Key::generate(spec, KeyMeta::default(), false).expect("generate");
    Value::Object(key.public().expect("public").to_jwk()).to_string()
}

#[test]
fn end_to_end_upload_sign_verify_delete() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &[]);
    let url = server.url.clone();
    std::fs::write(env.path("upload.token"), format!("{TOKEN}\n")).expect("w");
    let kid = env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--save",
        "--upload",
        &url,
        "--upload-token-file",
        "upload.token",
    ]);
    let kid = kid.trim();
    assert!(
        env.ok(&["key", "list"]).contains(kid),
        "the private half is kept locally"
    );
    let token = env.ok(&["generate-jwt", "--key", kid, "--iss", &url, "--exp", "5m"]);
    env.ok(&["verify-jwt", "--server", &url, token.trim()]);
    env.ok(&["verify-jwt", "--issuer", &url, token.trim()]);
    let resp = http()
        .delete(format!("{url}/jwks/{kid}"))
        .bearer_auth(TOKEN)
        .send()
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 200);
    let run = env.run(&[
        "verify-jwt",
        "--server",
        &url,
        "--no-cache",
        "--json",
        token.trim(),
    ]);
    assert_eq!(run.code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).expect("json")["error"]["kind"],
        "unknown_kid"
    );
    // The stored key uploads again with `key upload`, and a second upload of it is a 200.
    let again = crate::util::Run::from(
        env.cmd(&["key", "upload", kid, "--server", &url])
            .env("JWKIT_UPLOAD_TOKEN", TOKEN)
            .output()
            .expect("run"),
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), kid);
    let (status, _) = upload(
        &url,
        &env.ok(&["key", "public", "--key", kid, "-f", "jwk"]),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "the same key again");
    let log = server.log();
    assert!(
        log.contains("POST /jwks 201") && log.contains(&format!("DELETE /jwks/{kid} 200")),
        "{log}"
    );
    assert!(
        !log.contains(TOKEN) && !log.contains(&token.trim()[..40]),
        "no secrets in the log"
    );
}

#[test]
fn the_jwks_never_holds_private_members_for_any_key_type() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--issue-tokens"]);
    let specs = [
        KeySpec::Rsa { bits: 2048 },
        KeySpec::Ec(Curve::P256),
        KeySpec::Ec(Curve::P384),
        KeySpec::Ec(Curve::P521),
        KeySpec::Ec(Curve::Secp256k1),
        KeySpec::Ed25519,
    ];
    for spec in specs {
        let key = Key::generate(spec, KeyMeta::default(), false).expect("generate");
        let private = Value::Object(key.to_jwk()).to_string();
        let (status, body) = upload(&server.url, &private, Some(TOKEN));
        assert_eq!(status, 400, "{spec:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .expect("error")
                .contains("private member \"d\""),
            "{body}"
        );
        let (status, _) = upload(
            &server.url,
            &Value::Object(key.public().expect("p").to_jwk()).to_string(),
            Some(TOKEN),
        );
        assert_eq!(status, 201, "{spec:?}");
    }
    let secret =
        Key::generate(KeySpec::Hmac { bytes: 32 }, KeyMeta::default(), false).expect("hmac");
    let (status, body) = upload(
        &server.url,
        &Value::Object(secret.to_jwk()).to_string(),
        Some(TOKEN),
    );
    assert_eq!(status, 400, "{body}");
    let (doc, _) = jwks(&server.url);
    let keys = doc["keys"].as_array().expect("keys");
    assert_eq!(
        keys.len(),
        7,
        "six uploads and the server's own signing key"
    );
    for k in keys {
        for m in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(k.get(m).is_none(), "{m} in {k}");
        }
        assert_ne!(k["kty"], "oct");
    }
}

#[test]
fn bad_requests_get_4xx_and_leave_the_store_unchanged() {
    let env = Env::new();
    let data = env.path("data");
    let server = Server::start(&env, &data, &[]);
    let url = &server.url;
    let good = public_jwk(KeySpec::Ed25519);
    assert_eq!(upload(url, &good, Some(TOKEN)).0, 201);
    let (before, etag) = jwks(url);
    let files = || std::fs::read_dir(data.join("keys")).expect("dir").count();
    let n = files();
    let huge = format!("{{\"kty\":\"OKP\",\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    let mut taken: Value = serde_json::from_str(&public_jwk(KeySpec::Ed25519)).expect("j");
    taken["kid"] = before["keys"][0]["kid"].clone();
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        (good.clone(), None, 401, "upload token"),
        (good.clone(), Some("wrong-token"), 401, "upload token"),
        (
            public_jwk(KeySpec::Ed25519).replace("\"x\"", "\"d\":\"AAAA\",\"x\""),
            Some(TOKEN),
            400,
            "private member",
        ),
        (huge, Some(TOKEN), 413, "larger than 65536 bytes"),
        ("{\"kty\":".into(), Some(TOKEN), 400, "malformed JSON"),
        (
            "{\"kty\":\"DSA\",\"y\":\"AQAB\"}".into(),
            Some(TOKEN),
            400,
            "unsupported kty",
        ),
        (
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}).to_string(),
            Some(TOKEN),
            400,
            "bits",
        ),
        (taken.to_string(), Some(TOKEN), 409, "is taken"),
    ];
    for (body, token, status, needle) in cases {
        let (got, resp) = upload(url, &body, token);
        assert_eq!(got, status, "{resp}");
        assert!(
            resp["error"].as_str().unwrap_or("").contains(needle),
            "{resp}"
        );
    }
    let del = http()
        .delete(format!("{url}/jwks/nope"))
        .bearer_auth(TOKEN)
        .send()
        .expect("d");
    assert_eq!(del.status().as_u16(), 404);
    let del = http()
        .delete(format!(
            "{url}/jwks/{}",
            before["keys"][0]["kid"].as_str().expect("k")
        ))
        .send()
        .expect("d");
    assert_eq!(del.status().as_u16(), 401);
    let (after, etag2) = jwks(url);
    assert_eq!(
        (after, etag2),
        (before, etag.clone()),
        "the store is unchanged"
    );
    assert_eq!(files(), n);
    // A 304 for the current ETag.
    let resp = http()
        .get(format!("{url}/.well-known/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 304);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("max-age=300")
    );
    // Without an upload token configured, uploads are refused with a hint.
    let closed = Server::start(&env, &env.path("data2"), &["--no-upload-token"]);
    let (status, body) = upload(&closed.url, &good, Some(TOKEN));
    assert_eq!(status, 403);
    assert!(
        body["error"]
            .as_str()
            .expect("e")
            .contains("--upload-token-file"),
        "{body}"
    );
}

#[test]
fn sixteen_concurrent_uploaders_lose_nothing_and_restart_keeps_everything() {
    let env = Env::new();
    let data = env.path("data");
    let mut server = Server::start(&env, &data, &[]);
    let url = server.url.clone();
    let keys: Vec<Vec<String>> = (0..16)
        .map(|_| (0..100).map(|_| public_jwk(KeySpec::Ed25519)).collect())
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (url, stop) = (url.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                jwks(&url); // always a whole, parseable document
                reads += 1;
            }
            reads
        })
    };
    let uploaders: Vec<_> = keys
        .into_iter()
        .map(|batch| {
            let url = url.clone();
            std::thread::spawn(move || {
                for k in batch {
                    assert_eq!(upload(&url, &k, Some(TOKEN)).0, 201);
                }
            })
        })
        .collect();
    for u in uploaders {
        u.join().expect("uploader");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().expect("reader") > 0);
    let (doc, _) = jwks(&url);
    assert_eq!(kids(&doc).len(), 1600);
    assert_eq!(server.signal("-TERM"), 0, "graceful shutdown on SIGTERM");
    assert!(server.log().contains("jwkit serve: stopped"));
    let restarted = Server::start(&env, &data, &[]);
    let (doc2, _) = jwks(&restarted.url);
    let (mut a, mut b) = (kids(&doc), kids(&doc2));
    a.sort();
    b.sort();
    assert_eq!(a, b, "every acknowledged key survives a restart");
}

#[test]
fn kill_9_during_uploads_keeps_every_acknowledged_key() {
    let env = Env::new();
    let data = env.path("data");
    let mut server = Server::start(&env, &data, &[]);
    let url = server.url.clone();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let loop_thread = {
        let (url, acked) = (url.clone(), Arc::clone(&acked));
        std::thread::spawn(move || {
            for _ in 0..5000 {
                let k = public_jwk(KeySpec::Ed25519);
                match http()
                    .post(format!("{url}/jwks"))
                    .bearer_auth(TOKEN)
                    .body(k)
                    .send()
                {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let body: Value = serde_json::from_slice(&r.bytes().unwrap_or_default())
                            .unwrap_or(Value::Null);
                        acked
                            .lock()
                            .expect("l")
                            .push(body["kids"][0].as_str().unwrap_or_default().to_string());
                    }
                    _ => break,
                }
            }
        })
    };
    while acked.lock().expect("l").len() < 150 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal("-KILL");
    loop_thread.join().expect("loop");
    let acked = acked.lock().expect("l").clone();
    let restarted = Server::start(&env, &data, &[]);
    let present = kids(&jwks(&restarted.url).0);
    for kid in &acked {
        assert!(present.contains(kid), "acknowledged {kid} lost");
    }
    assert!(!restarted.log().contains("corrupt"), "{}", restarted.log());
    for f in std::fs::read_dir(data.join("keys")).expect("dir") {
        let p: PathBuf = f.expect("e").path();
        serde_json::from_slice::<Value>(&std::fs::read(&p).expect("read"))
            .expect("every file is whole JSON");
    }
}

#[test]
fn expiry_token_issuing_and_rotation() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--issue-tokens", "--rotate-every", "3s", "--max-age", "1s"],
    );
    let url = &server.url;
    // An upload with an expiry drops out of the set.
    let resp = http()
        .post(format!("{url}/jwks?expires_in=1s"))
        .bearer_auth(TOKEN)
        .body(public_jwk(KeySpec::Ed25519))
        .send()
        .expect("upload");
    assert_eq!(resp.status().as_u16(), 201);
    let temp_kid = serde_json::from_slice::<Value>(&resp.bytes().expect("b")).expect("j")["kids"]
        [0]
    .as_str()
    .expect("k")
    .to_string();
    assert!(kids(&jwks(url).0).contains(&temp_kid));
    // Tokens from /auth verify against the server, with iss and sub as asked.
    let token = |query: &str, body: &str, ct: &str| -> String {
        let r = http()
            .post(format!("{url}/auth{query}"))
            .header("content-type", ct)
            .body(body.to_string())
            .send()
            .expect("auth");
        assert_eq!(r.status().as_u16(), 200);
        serde_json::from_slice::<Value>(&r.bytes().expect("b")).expect("j")["token"]
            .as_str()
            .expect("t")
            .to_string()
    };
    let t1 = token("", r#"{"sub":"alice"}"#, "application/json");
    let claims: Value =
        serde_json::from_str(&env.ok(&["verify-jwt", "--issuer", url, "--no-cache", &t1]))
            .expect("c");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        900
    );
    let t2 = token("", "sub=bob", "application/x-www-form-urlencoded");
    assert!(
        env.ok(&["verify-jwt", "--server", url, "--no-cache", &t2])
            .contains("\"bob\"")
    );
    let expired = token("?expired=true", "", "application/json");
    let run = env.run(&[
        "verify-jwt",
        "--server",
        url,
        "--no-cache",
        "--ignore-exp",
        "--json",
        &expired,
    ]);
    assert_eq!(run.code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&run.stdout).expect("j")["error"]["kind"],
        "unknown_kid",
        "its key is not published"
    );
    let first_server_kids: Vec<String> = kids(&jwks(url).0)
        .into_iter()
        .filter(|k| *k != temp_kid)
        .collect();
    // Poll (a loaded machine is slow): the upload expires after 1 s, the key rotates after 4 s,
    // and the first key stays published for its 60 s grace.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let now_kids = loop {
        let k = kids(&jwks(url).0);
        let rotated = k
            .iter()
            .any(|x| !first_server_kids.contains(x) && *x != temp_kid);
        if rotated && !k.contains(&temp_kid) {
            break k;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation or expiry: {k:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        first_server_kids.iter().all(|k| now_kids.contains(k)),
        "the rotated-out key is kept for its grace (the token TTL): {now_kids:?}"
    );
    assert!(
        now_kids.iter().any(|k| *k != first_server_kids[0]),
        "a new signing key: {now_kids:?}"
    );
    env.ok(&["verify-jwt", "--server", url, "--no-cache", &t1]);
    let t3 = token("", "", "application/json");
    env.ok(&["verify-jwt", "--server", url, "--no-cache", &t3]);
    let without = Server::start(&env, &env.path("data3"), &[]);
    assert_eq!(
        http()
            .post(format!("{}/auth", without.url))
            .send()
            .expect("auth")
            .status()
            .as_u16(),
        404
    );
    for path in [
        "/health",
        "/",
        "/connect",
        "/.well-known/openid-configuration",
    ] {
        let r = http()
            .get(format!("{}{path}", without.url))
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
}
