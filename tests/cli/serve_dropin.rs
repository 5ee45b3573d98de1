//! `jwkit serve` as a drop-in for the small JWKS servers people run in tests: their documented
//! API (GET and POST on /, /health and /connect, the endpoint map with bare paths, every
//! spelling of `expired`), an RS256 key as providers publish it, the key set where a real
//! provider keeps it, the issuer used exactly as given, claims on /auth, safe rotation, and the
//! flags that make no sense refused. PyJWT's PyJWKClient plays the application.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jwkit::crypto::jws::Compact;
use serde_json::{Value, json};

use crate::generate_jwt::peer_python;
use crate::serve::{Server, TOKEN, http, upload};
use crate::util::{Env, free_port, unix_now};

fn get(url: &str) -> (u16, Value) {
    let r = http().get(url).send().expect("get");
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().expect("body")).unwrap_or(Value::Null),
    )
}

fn post(url: &str, body: &str, content_type: &str) -> (u16, Value) {
    let r = http()
        .post(url)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .expect("post");
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_slice(&r.bytes().expect("body")).unwrap_or(Value::Null),
    )
}

fn token_of(v: &Value) -> String {
    v["token"].as_str().expect("token").to_string()
}

fn header_of(token: &str) -> Value {
    Value::Object(Compact::parse(token).expect("parse").header)
}

fn claims_of(token: &str) -> Value {
    Value::Object(
        Compact::parse(token)
            .expect("parse")
            .claims()
            .expect("claims"),
    )
}

/// PyJWKClient's verdicts on `tokens` against the set at `jwks_url`.
pub(crate) fn pyjwk(
    python: &PathBuf,
    jwks_url: &str,
    issuer: Option<&str>,
    tokens: &[String],
) -> Vec<Value> {
    pyjwk_tls(python, jwks_url, issuer, None, tokens)
}

/// `pyjwk` trusting the CA certificate in `cafile` for HTTPS.
fn pyjwk_tls(
    python: &PathBuf,
    jwks_url: &str,
    issuer: Option<&str>,
    cafile: Option<&str>,
    tokens: &[String],
) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/jwks_peer.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(jwks_url).arg(issuer.unwrap_or(""));
    if let Some(ca) = cafile {
        cmd.arg(ca);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, (tokens.join("\n") + "\n").as_bytes()).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("verdict"))
        .collect()
}

#[test]
fn the_documented_api_of_the_replaced_servers_holds() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--issue-tokens"]);
    let url = &server.url;
    for path in ["/", "/health", "/connect"] {
        let (g, doc) = get(&format!("{url}{path}"));
        let (p, pdoc) = post(&format!("{url}{path}"), "", "application/json");
        assert_eq!((g, p), (200, 200), "{path}");
        assert_eq!(doc["status"], "ok", "{path}: {doc}");
        assert_eq!(doc, pdoc, "{path}: GET and POST answer alike");
    }
    let (_, connect) = get(&format!("{url}/connect"));
    let endpoints = &connect["endpoints"];
    assert_eq!(endpoints["jwks"], "/.well-known/jwks.json", "{connect}");
    assert_eq!(endpoints["auth"], "/auth");
    assert_eq!(endpoints["auth_expired"], "/auth?expired=true");
    assert_eq!(connect["service"], "jwkit");
    // A client joins the bare paths onto the base URL.
    let (status, set) = get(&format!("{url}{}", endpoints["jwks"].as_str().expect("p")));
    assert_eq!(status, 200);
    let keys = set["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{set}");
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["alg"].as_str(), k["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    for member in ["kid", "n", "e"] {
        assert!(k[member].is_string(), "{member}: {k}");
    }
    for path in ["/jwks", "/.well-known/jwks"] {
        assert_eq!(get(&format!("{url}{path}")).1, set, "{path}");
    }
    // Tokens, and every spelling of `expired`.
    let (status, fresh) = post(
        &format!("{url}/auth"),
        r#"{"sub":"alice"}"#,
        "application/json",
    );
    assert_eq!(status, 200, "{fresh}");
    let fresh = token_of(&fresh);
    assert_eq!(header_of(&fresh)["alg"], "RS256");
    assert_eq!(header_of(&fresh)["kid"], k["kid"]);
    let expired_kid = |q: &str| -> (Value, Value) {
        let (status, body) = post(&format!("{url}/auth{q}"), "", "application/json");
        assert_eq!(status, 200, "{q}: {body}");
        let t = token_of(&body);
        (header_of(&t)["kid"].clone(), claims_of(&t))
    };
    for q in [
        "?expired",
        "?expired=",
        "?expired=1",
        "?expired=true",
        "?expired=True",
        "?expired=TRUE",
        "?expired=yes",
    ] {
        let (kid, claims) = expired_kid(q);
        assert_ne!(kid, k["kid"], "{q}: signed by an unpublished key");
        assert!(claims["exp"].as_i64().expect("exp") < claims["iat"].as_i64().expect("iat") + 7200);
        assert!(
            claims["exp"].as_i64().expect("exp") < unix_now(),
            "{q}: expired"
        );
    }
    for q in ["?expired=0", "?expired=false", "?expired=No", ""] {
        assert_eq!(expired_kid(q).0, k["kid"], "{q}");
    }
    let (status, body) = post(&format!("{url}/auth?expired=maybe"), "", "application/json");
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("maybe")),
        "{body}"
    );
    let (_, expired) = post(&format!("{url}/auth?expired=true"), "", "application/json");
    let expired = token_of(&expired);
    // Every 4xx is JSON naming the problem.
    let (status, body) = get(&format!("{url}/no/such/thing"));
    assert_eq!(status, 404);
    assert!(body["error"].is_string(), "{body}");
    let r = http()
        .delete(format!("{url}/health"))
        .send()
        .expect("delete");
    assert_eq!(r.status().as_u16(), 405);
    let body: Value = serde_json::from_slice(&r.bytes().expect("b")).expect("json 405");
    assert!(body["error"].is_string());
    // The application's view: PyJWKClient against the served set.
    let Some(python) = peer_python() else { return };
    let verdicts = pyjwk(
        &python,
        &format!("{url}/.well-known/jwks.json"),
        None,
        &[fresh, expired],
    );
    assert_eq!(verdicts[0]["ok"], true, "{}", verdicts[0]);
    assert_eq!(verdicts[0]["claims"]["sub"], "alice");
    assert_eq!(
        verdicts[1]["ok"], false,
        "the expired token is rejected: {}",
        verdicts[1]
    );
}

#[test]
fn the_key_set_answers_where_a_real_provider_keeps_it_and_the_issuer_is_exact() {
    let env = Env::new();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}/realms/test/");
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start(
        &env,
        &env.path("data"),
        &[
            "--addr",
            &addr,
            "--issuer",
            &issuer,
            "--issue-tokens",
            "--jwks-path",
            "/oauth2/v1/keys",
            "--jwks-path",
            "/realms/test/protocol/openid-connect/certs",
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let (status, disc) = get(&format!("{issuer}.well-known/openid-configuration"));
    assert_eq!(status, 200, "discovery under the issuer's path");
    assert_eq!(
        disc["issuer"].as_str(),
        Some(issuer.as_str()),
        "byte for byte, slash kept"
    );
    let jwks_uri = disc["jwks_uri"].as_str().expect("jwks_uri").to_string();
    assert_eq!(
        jwks_uri,
        format!("{base}/realms/test/.well-known/jwks.json")
    );
    let set = get(&jwks_uri).1;
    assert_eq!(set["keys"].as_array().map(Vec::len), Some(1));
    for path in [
        "/oauth2/v1/keys",
        "/realms/test/protocol/openid-connect/certs",
        "/.well-known/jwks.json",
    ] {
        assert_eq!(get(&format!("{base}{path}")).1, set, "{path}");
    }
    let (_, info) = get(&format!("{base}/connect"));
    assert_eq!(
        info["endpoints"]["jwks"],
        "/realms/test/.well-known/jwks.json"
    );
    let (_, t) = post(
        &format!("{base}/auth"),
        "sub=bob",
        "application/x-www-form-urlencoded",
    );
    let t = token_of(&t);
    assert_eq!(claims_of(&t)["iss"].as_str(), Some(issuer.as_str()));
    let out = env.ok(&["verify-jwt", "--issuer", &issuer, &t]);
    assert!(out.contains("\"bob\""), "{out}");
    drop(server);
    if let Some(python) = peer_python() {
        let server = Server::start(
            &env,
            &env.path("data"),
            &["--addr", &addr, "--issuer", &issuer, "--issue-tokens"],
        );
        let (_, t) = post(&format!("{base}/auth"), "", "application/json");
        let v = pyjwk(&python, &jwks_uri, Some(&issuer), &[token_of(&t)]);
        assert_eq!(v[0]["ok"], true, "{}", v[0]);
        drop(server);
    }
}

#[test]
fn auth_takes_claims_checks_their_types_and_bounds_the_ttl() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--issue-tokens", "--alg", "ES256"],
    );
    let url = &server.url;
    let body = r#"{"sub":"carol","aud":"api","scope":"read write","roles":["admin"],"tenant":7,"iss":"https://evil","exp":1}"#;
    let (status, r) = post(&format!("{url}/auth"), body, "application/json");
    assert_eq!(status, 200, "{r}");
    let t = token_of(&r);
    assert_eq!(header_of(&t)["alg"], "ES256");
    let c = claims_of(&t);
    assert_eq!(
        (c["sub"].clone(), c["aud"].clone(), c["scope"].clone()),
        (json!("carol"), json!("api"), json!("read write"))
    );
    assert_eq!(
        (c["roles"].clone(), c["tenant"].clone()),
        (json!(["admin"]), json!(7))
    );
    assert_eq!(c["iss"].as_str(), Some(url.as_str()), "iss is the server's");
    assert_eq!(
        c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat"),
        900
    );
    env.ok(&["verify-jwt", "--server", url, "--aud", "api", &t]);
    for (bad, member) in [
        (r#"{"sub":5}"#, "sub"),
        (r#"{"aud":[1]}"#, "aud"),
        (r#"{"jti":{}}"#, "jti"),
        ("[1]", "JSON object"),
    ] {
        let (status, r) = post(&format!("{url}/auth"), bad, "application/json");
        assert_eq!(status, 400, "{bad}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(member)),
            "{bad}: {r}"
        );
    }
    let (status, r) = post(&format!("{url}/auth?ttl=2m"), "", "application/json");
    assert_eq!(status, 200);
    let c = claims_of(&token_of(&r));
    assert_eq!(
        c["exp"].as_i64().expect("e") - c["iat"].as_i64().expect("i"),
        120
    );
    for q in [
        "?ttl=1h",
        "?ttl=0s",
        "?ttl=soon",
        "?ttl=9223372036854775807s",
    ] {
        let (status, r) = post(&format!("{url}/auth{q}"), "", "application/json");
        assert_eq!(status, 400, "{q}: {r}");
        assert!(r["error"].is_string());
    }
    drop(server);
    // With --allow-claim-override the test sets iss and exp itself.
    let server = Server::start(
        &env,
        &env.path("data2"),
        &["--issue-tokens", "--allow-claim-override"],
    );
    let (_, r) = post(
        &format!("{}/auth", server.url),
        r#"{"iss":"https://idp.example","exp":4000000000}"#,
        "application/json",
    );
    let c = claims_of(&token_of(&r));
    assert_eq!(
        (c["iss"].clone(), c["exp"].clone()),
        (json!("https://idp.example"), json!(4_000_000_000i64))
    );
}

#[test]
fn the_store_refuses_a_second_kid_for_a_key_and_durations_out_of_range() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &[]);
    let jwk = env.ok(&[
        "key",
        "public",
        &crate::jose::key_file("rfc7515-A.3.public.pem"),
        "-f",
        "jwk",
    ]);
    let mut a: Value = serde_json::from_str(&jwk).expect("jwk");
    a["kid"] = json!("first");
    assert_eq!(upload(&server.url, &a.to_string(), Some(TOKEN)).0, 201);
    assert_eq!(upload(&server.url, &a.to_string(), Some(TOKEN)).0, 200);
    a["kid"] = json!("second");
    let (status, body) = upload(&server.url, &a.to_string(), Some(TOKEN));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"first\"")),
        "{body}"
    );
    for q in [
        "expires_in=9223372036854775807s",
        "expires_in=6000w",
        "expires_in=5300w1d",
        "expires_in=-1s",
    ] {
        let r = http()
            .post(format!("{}/jwks?{q}", server.url))
            .bearer_auth(TOKEN)
            .body(jwk.clone())
            .send()
            .expect("upload");
        assert_eq!(r.status().as_u16(), 400, "{q}");
    }
    let set = get(&format!("{}/.well-known/jwks.json", server.url)).1;
    assert_eq!(
        set["keys"].as_array().map(Vec::len),
        Some(1),
        "nothing else stored: {set}"
    );
}

#[test]
fn flags_that_do_nothing_or_break_tokens_are_usage_errors() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--grace", "1h"], "--grace needs --rotate-every"),
        (&["--token-ttl", "1h"], "--token-ttl needs --issue-tokens"),
        (&["--alg", "ES256"], "--alg needs --issue-tokens"),
        (
            &["--rotate-every", "1h"],
            "--rotate-every needs --issue-tokens",
        ),
        (&["--issue-tokens", "--alg", "HS256"], "cannot be published"),
        (
            &["--issue-tokens", "--rotate-every", "1h", "--grace", "1m"],
            "shorter than --token-ttl",
        ),
        (
            &["--issue-tokens", "--rotate-every", "1m", "--max-age", "5m"],
            "shorter than --max-age",
        ),
        (
            &["--issue-tokens", "--token-ttl", "5300w"],
            "at most 100 years",
        ),
        (&["--jwks-path", "keys"], "plain absolute path"),
        (&["--jwks-path", "/auth"], "taken by another endpoint"),
        (&["--jwks-path", "/a/{x}"], "plain absolute path"),
        (
            &["--jwks-path", "/.well-known/openid-configuration"],
            "taken",
        ),
        (&["--jwks-path", "/:x/keys"], "plain absolute path"),
        (&["--jwks-path", "/a//b"], "plain absolute path"),
        (&["--issuer", "http://127.0.0.1:1/:x"], "cannot be served"),
        (&["--issuer", "http://127.0.0.1:1/a/*b"], "cannot be served"),
        (&["--issuer", "ftp://x.example"], "http or https"),
        (&["--issuer", "https://x.example/?a=1"], "no query"),
    ];
    for (args, needle) in cases {
        let mut a = vec!["serve", "--addr", "127.0.0.1:0", "--data-dir", "data"];
        a.extend(args.iter());
        env.run(&a).fails_with(needle);
    }
    assert!(
        !env.path("data").exists(),
        "a refused start creates nothing"
    );
}

#[test]
fn rotation_publishes_a_key_before_it_signs_and_keeps_it_for_its_tokens() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &[
            "--issue-tokens",
            "--rotate-every",
            "3s",
            "--max-age",
            "1s",
            "--token-ttl",
            "6s",
        ],
    );
    let url = server.url.clone();
    let now = || Instant::now();
    let started = now();
    // Per key: the last GET that did not have it (so it was published after that).
    let mut published_after: std::collections::HashMap<String, Instant> = Default::default();
    let mut previous_get = started;
    let mut first_signed: std::collections::HashMap<String, Instant> = Default::default();
    let mut live: Vec<(String, Instant)> = Vec::new();
    let mut verified = 0;
    let mut peer_verified = 0;
    let python = peer_python();
    while started.elapsed() < Duration::from_secs(14) {
        let this_get = now();
        for k in get(&format!("{url}/.well-known/jwks.json")).1["keys"]
            .as_array()
            .expect("keys")
        {
            published_after
                .entry(k["kid"].as_str().expect("kid").to_string())
                .or_insert(previous_get);
        }
        previous_get = this_get;
        let (_, r) = post(&format!("{url}/auth"), "", "application/json");
        let t = token_of(&r);
        let kid = header_of(&t)["kid"].as_str().expect("kid").to_string();
        first_signed.entry(kid).or_insert_with(now);
        live.push((t, now() + Duration::from_secs(5)));
        live.retain(|(_, until)| now() < *until);
        // Every token not yet expired verifies, the cache on, at this moment: with jwkit, and
        // with PyJWKClient (which allows no clock skew: tokens with a second or more left).
        for (t, _) in &live {
            let run = env.run(&["verify-jwt", "--server", &url, t]);
            assert_eq!(run.code, 0, "after {:?}: {}", started.elapsed(), run.stderr);
            verified += 1;
        }
        if let Some(python) = &python {
            let fresh: Vec<String> = live
                .iter()
                .map(|(t, _)| t.clone())
                .filter(|t| claims_of(t)["exp"].as_i64().expect("exp") > unix_now() + 1)
                .collect();
            for v in pyjwk(
                python,
                &format!("{url}/.well-known/jwks.json"),
                None,
                &fresh,
            ) {
                assert_eq!(v["ok"], true, "after {:?}: {v}", started.elapsed());
                peer_verified += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(first_signed.len() >= 3, "rotated: {first_signed:?}");
    // A key signed less than max-age after the last GET that did not have it was certainly
    // signing too early (however slowly this loop went round). The first key signs at once.
    for (kid, signed) in &first_signed {
        let after = published_after
            .get(kid)
            .expect("a signing key is in the set");
        assert!(
            signed.duration_since(*after) >= Duration::from_secs(1) || *after == started,
            "{kid} signed {:?} after a GET without it (max-age 1s)",
            signed.duration_since(*after)
        );
    }
    assert!(verified > 30, "{verified}");
    assert!(python.is_none() || peer_verified > 20, "{peer_verified}");
}

#[test]
fn post_rotate_follows_the_same_rules() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--issue-tokens", "--max-age", "1s"],
    );
    let url = &server.url;
    let rotate = |token: Option<&str>| -> (u16, Value) {
        let mut req = http().post(format!("{url}/rotate"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().expect("rotate");
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_slice(&r.bytes().expect("b")).unwrap_or(Value::Null),
        )
    };
    assert_eq!(rotate(None).0, 401);
    let (_, before) = post(&format!("{url}/auth"), "", "application/json");
    let old_kid = header_of(&token_of(&before))["kid"].clone();
    let (status, first) = rotate(Some(TOKEN));
    assert_eq!(status, 202, "a next key is published first: {first}");
    let next = first["next"].clone();
    let set = get(&format!("{url}/.well-known/jwks.json")).1;
    assert!(
        set["keys"]
            .as_array()
            .expect("k")
            .iter()
            .any(|k| k["kid"] == next),
        "published"
    );
    let (status, early) = rotate(Some(TOKEN));
    assert_eq!(status, 409, "too early: {early}");
    std::thread::sleep(Duration::from_millis(2100));
    let (status, done) = rotate(Some(TOKEN));
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["active"], next);
    let (_, after) = post(&format!("{url}/auth"), "", "application/json");
    assert_eq!(header_of(&token_of(&after))["kid"], next);
    // The old key stays published: the token it signed still verifies.
    env.ok(&[
        "verify-jwt",
        "--server",
        url,
        "--no-cache",
        &token_of(&before),
    ]);
    assert_ne!(old_kid, next);
}

#[test]
fn slow_and_idle_clients_cannot_starve_others_and_sigterm_ends_the_server() {
    let _exclusive = crate::util::exclusive();
    use std::io::{Read, Write};
    let env = Env::new();
    let server = Server::start_after(
        &env,
        Some("ulimit -n 1024"),
        &env.path("data"),
        &["--header-timeout", "3s"],
    );
    let addr: std::net::SocketAddr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    // A health check loop that must keep answering within 1 s throughout.
    let checker = crate::serve::HealthLoop::start(&server.url, Duration::from_millis(50));
    // 2,000 connections: half send nothing, half half a request line.
    let mut sockets = Vec::new();
    for i in 0..2000 {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            if i % 2 == 0 {
                let _ = s.write_all(b"GET /health HT");
            }
            sockets.push(s);
        }
    }
    assert!(
        sockets.len() >= 1500,
        "{} connections opened",
        sockets.len()
    );
    // Past the header timeout, every one of them has been closed by the server.
    std::thread::sleep(Duration::from_secs(5));
    let (worst, answered) = checker.stop();
    assert!(answered > 20, "{answered} health checks");
    assert!(
        worst < Duration::from_secs(1),
        "a health check took {worst:?}"
    );
    let mut open = 0;
    for s in &mut sockets {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 256];
        // Closed: EOF (0) or a reset; open: a read timeout.
        if let Err(e) = s.read(&mut buf)
            && matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "idle and half-written connections are closed by the timeouts"
    );
    drop(sockets);
    drop(server);

    // SIGTERM with an idle keep-alive client connected: the server ends within 5 s, exit 0.
    let mut server = Server::start(&env, &env.path("data2"), &[]);
    let addr: std::net::SocketAddr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut idle = std::net::TcpStream::connect(addr).expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut first = [0u8; 64];
    let n = idle.read(&mut first).expect("response");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let t = Instant::now();
    let code = server.signal("-TERM");
    assert_eq!(code, 0, "{}", server.log());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

/// An HTTPS client trusting the CA certificate (PEM) at `ca`.
pub(crate) fn https(ca: &std::path::Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca).expect("CA file");
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).expect("CA PEM"))
        .build()
        .expect("client")
}

#[test]
fn https_with_a_throwaway_ca_serves_an_issuer_that_jwkit_and_pyjwt_trust() {
    let env = Env::new();
    let port = free_port();
    let issuer = format!("https://127.0.0.1:{port}/realms/test/");
    let addr = format!("127.0.0.1:{port}");
    let ca = env.path("ca.pem");
    let server = Server::start(
        &env,
        &env.path("data"),
        &[
            "--addr",
            &addr,
            "--issuer",
            &issuer,
            "--tls-self-signed",
            "--tls-ca-out",
            ca.to_str().expect("p"),
            "--issue-tokens",
            "--jwks-path",
            "/oauth2/v1/keys",
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let client = https(&ca);
    let disc: Value = serde_json::from_slice(
        &client
            .get(format!("{issuer}.well-known/openid-configuration"))
            .send()
            .expect("discovery")
            .bytes()
            .expect("b"),
    )
    .expect("json");
    assert_eq!(
        disc["issuer"].as_str(),
        Some(issuer.as_str()),
        "byte for byte"
    );
    let jwks_uri = disc["jwks_uri"].as_str().expect("uri").to_string();
    let get_set = |url: &str| -> Value {
        serde_json::from_slice(&client.get(url).send().expect("get").bytes().expect("b"))
            .expect("j")
    };
    let set = get_set(&jwks_uri);
    assert_eq!(
        get_set(&format!("https://127.0.0.1:{port}/oauth2/v1/keys")),
        set
    );
    let r = client
        .post(format!("https://127.0.0.1:{port}/auth"))
        .send()
        .expect("auth");
    let token = token_of(&serde_json::from_slice(&r.bytes().expect("b")).expect("json"));
    let ca_arg = ca.to_str().expect("p");
    let out = env.ok(&[
        "verify-jwt",
        "--issuer",
        &issuer,
        "--cacert",
        ca_arg,
        &token,
    ]);
    assert!(out.contains("test-user"), "{out}");
    // Without the CA, the certificate is not trusted.
    let run = env.run(&["verify-jwt", "--issuer", &issuer, "--no-cache", &token]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--cacert"), "{}", run.stderr);
    if let Some(python) = peer_python() {
        let v = pyjwk_tls(&python, &jwks_uri, Some(&issuer), Some(ca_arg), &[token]);
        assert_eq!(v[0]["ok"], true, "{}", v[0]);
    }
    drop(server);
    assert!(
        server_log_counts_handshakes(&env, &ca),
        "failed handshakes are counted in one log line"
    );
}

/// A client that does not trust the server's CA fails its handshake; the server counts it.
fn server_log_counts_handshakes(env: &Env, ca: &std::path::Path) -> bool {
    let mut server = Server::start(
        env,
        &env.path("data-hs"),
        &["--tls-self-signed", "--tls-ca-out", ca.to_str().expect("p")],
    );
    let untrusting = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert!(
        untrusting
            .get(format!("{}/health", server.url))
            .send()
            .is_err()
    );
    let trusted = https(ca).get(format!("{}/health", server.url)).send();
    assert!(trusted.is_ok_and(|r| r.status().as_u16() == 200));
    assert_eq!(server.signal("-TERM"), 0);
    server.log().contains("1 failed TLS handshakes")
}

/// A new CA and a certificate it signed for 127.0.0.1, valid from `from` to `to` (years):
/// (certificate PEM, key PEM, CA certificate PEM).
pub(crate) fn make_cert(from: i32, to: i32) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, ca_key).expect("ca cert");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf");
    leaf.not_before = rcgen::date_time_ymd(from, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(to, 1, 1);
    let cert = leaf.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem(), issuer.pem())
}

#[test]
fn tls_files_are_checked_at_start_and_reloaded_on_sighup() {
    let env = Env::new();
    let write = |name: &str, text: &str| {
        std::fs::write(env.path(name), text).expect("write");
        env.path(name).to_str().expect("p").to_string()
    };
    let (cert_a, key_a, ca_a) = make_cert(2020, 2090);
    let (cert_b, key_b, ca_b) = make_cert(2020, 2090);
    let (old_cert, old_key, _) = make_cert(2019, 2020);
    let (ca_a, ca_b) = (write("ca-a.pem", &ca_a), write("ca-b.pem", &ca_b));
    let (cert, key) = (write("cert.pem", &cert_a), write("key.pem", &key_a));
    let other_key = write("other-key.pem", &key_b);
    let expired = (write("old.pem", &old_cert), write("old-key.pem", &old_key));
    let serve = |c: &str, k: &str| {
        env.run(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            "d",
            "--tls-cert",
            c,
            "--tls-key",
            k,
        ])
    };
    serve(&cert, &other_key).fails_with("does not match the certificate");
    serve(&expired.0, &expired.1).fails_with("expired on 2020-01-01");
    serve("missing.pem", &key).fails_with("--tls-cert missing.pem");
    serve(&cert, "missing-key.pem").fails_with("--tls-key missing-key.pem");
    serve(&key, &key).fails_with("--tls-cert");
    let mut server = Server::start(
        &env,
        &env.path("data"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let health = |ca: &str| {
        https(std::path::Path::new(ca))
            .get(format!("{}/health", server.url))
            .send()
            .is_ok_and(|r| r.status().as_u16() == 200)
    };
    assert!(health(&ca_a));
    assert!(!health(&ca_b));
    // New files in place (as a certificate renewal writes them), then SIGHUP: new connections
    // get the new certificate from the same listener.
    write("cert.pem", &cert_b);
    write("key.pem", &key_b);
    hangup_until(&server, "TLS certificate reloaded");
    assert!(health(&ca_b));
    assert!(!health(&ca_a));
    // A bad reload keeps the certificate in use.
    write("key.pem", &key_a);
    hangup_until(&server, "the old one stays");
    assert!(health(&ca_b));
    assert_eq!(server.signal("-TERM"), 0);
}

/// Sends the server SIGHUP and waits until its log says `needle`.
pub(crate) fn hangup_until(server: &Server, needle: &str) {
    let before = server.log().matches(needle).count();
    Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill -HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log().matches(needle).count() == before {
        assert!(Instant::now() < deadline, "no {needle:?}: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test client's login body (`{"username", "password"}` as JSON or a form, or Basic
/// credentials): the user name is the subject and no credential is copied into the token.
#[test]
fn auth_takes_the_user_from_a_login_and_never_copies_credentials() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--issue-tokens", "--alg", "ES256"],
    );
    let auth = format!("{}/auth", server.url);
    let json_login = post(
        &auth,
        r#"{"username":"userABC","password":"password123","client_secret":"s3cret","client_assertion":"eyJ.x.y","scope":"read"}"#,
        "application/json",
    );
    let form_login = post(
        &auth,
        "username=userABC&password=password123&client_secret=s3cret",
        "application/x-www-form-urlencoded",
    );
    for (status, body) in [json_login, form_login] {
        assert_eq!(status, 200, "{body}");
        let c = claims_of(&token_of(&body));
        assert_eq!(c["sub"], "userABC", "{c}");
        for credential in ["password", "client_secret", "client_assertion"] {
            assert!(c.get(credential).is_none(), "{credential} copied: {c}");
        }
        assert!(!c.to_string().contains("password123") && !c.to_string().contains("s3cret"));
    }
    // HTTP Basic credentials name the subject too; a body's own sub wins.
    let basic = crate::serve::http()
        .post(&auth)
        .basic_auth("userABC", Some("password123"))
        .send()
        .expect("basic");
    assert_eq!(basic.status().as_u16(), 200);
    let c = claims_of(&token_of(
        &serde_json::from_slice(&basic.bytes().expect("b")).expect("j"),
    ));
    assert_eq!(c["sub"], "userABC");
    assert!(!c.to_string().contains("password123"));
    let (_, r) = post(
        &auth,
        r#"{"sub":"carol","username":"userABC"}"#,
        "application/json",
    );
    assert_eq!(claims_of(&token_of(&r))["sub"], "carol");
}

/// `--token-claims` pins what a replaced server's clients expect (seed 002's test decodes with
/// `issuer="jwks-server"`, `audience="test-client"` and wants `sub == "fake-user"`): PyJWT,
/// fetching the key set itself, verifies exactly those values. A request's claims do not
/// override them (without --allow-claim-override).
#[test]
fn token_claims_pin_a_replaced_servers_issuer_audience_and_subject() {
    let env = Env::new();
    let Some(python) = crate::generate_jwt::peer_python() else {
        return;
    };
    std::fs::write(
        env.path("claims.json"),
        r#"{"iss":"jwks-server","aud":"test-client","sub":"fake-user","tenant":"t1"}"#,
    )
    .expect("write");
    for spec in [
        r#"{"iss":"jwks-server","aud":"test-client","sub":"fake-user","tenant":"t1"}"#.to_string(),
        format!("@{}", env.path("claims.json").display()),
    ] {
        let server = Server::start(
            &env,
            &env.path("data"),
            &["--issue-tokens", "--token-claims", &spec],
        );
        let (status, r) = post(
            &format!("{}/auth", server.url),
            r#"{"username":"userABC","password":"x","iss":"https://evil","tenant":"t2","role":"admin"}"#,
            "application/json",
        );
        assert_eq!(status, 200, "{r}");
        let token = token_of(&r);
        let script = r#"
import json, sys, jwt
url, token = sys.argv[1], sys.argv[2]
key = jwt.PyJWKClient(url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer="jwks-server", audience="test-client")
print(json.dumps(claims))
"#;
        let out = std::process::Command::new(&python)
            .args(["-c", script, &server.url, &token])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let claims: Value = serde_json::from_slice(&out.stdout).expect("claims");
        assert_eq!(claims["iss"], "jwks-server");
        assert_eq!(claims["aud"], "test-client");
        assert_eq!(claims["sub"], "fake-user");
        assert_eq!(claims["tenant"], "t1", "the server's claim stands");
        assert_eq!(claims["role"], "admin", "other request claims are taken");
        assert!(claims.get("password").is_none());
    }
    for (spec, needle) in [
        (r#"{"exp":1}"#, "exp is set by the server"),
        (r#"{"aud":5}"#, "claim \"aud\" must be"),
        ("[1]", "not a JSON object"),
        ("@missing.json", "--token-claims missing.json"),
    ] {
        env.run(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            "d",
            "--issue-tokens",
            "--token-claims",
            spec,
        ])
        .fails_with(needle);
    }
    env.run(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        "d",
        "--token-claims",
        "{}",
    ])
    .fails_with("--token-claims needs --issue-tokens");
}
