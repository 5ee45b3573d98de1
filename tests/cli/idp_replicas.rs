//! `serve --idp` replicas on one PostgreSQL behind nginx round robin (the README's setup):
//! every code, session, refresh token, revocation and used assertion is in the database, so
//! any replica finishes what another started; one is killed with SIGKILL mid-flow.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::pg::{Cluster, Nginx};
use crate::serve::Server;
use crate::util::{Env, free_port};

const STORE_KEY: &str = "c3RvcmUta2V5LWZvci10aGUtcmVwbGljYS10ZXN0cy0wMTIzNDU2Nzg5\n";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-replicas";

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn challenge() -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes());
    jwkit::crypto::b64::encode(digest)
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// POST a form; status and JSON body.
fn post(url: &str, auth: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(pairs));
    if let Some((id, secret)) = auth {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().expect("post");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null),
    )
}

/// The query of a redirect, and the session cookie it set.
fn redirected(resp: reqwest::blocking::Response) -> (BTreeMap<String, String>, Option<String>) {
    assert_eq!(resp.status().as_u16(), 302, "{:?}", resp.text());
    let location = resp.headers()["location"].to_str().expect("location");
    let query = url::Url::parse(location)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    (query, cookie)
}

fn auth_pairs(state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", "web".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid email offline_access".into()),
        ("state", state.into()),
        ("code_challenge", challenge()),
        ("code_challenge_method", "S256".into()),
    ]
}

/// The login page (GET), then the form posted as a browser would: a code and a session.
fn log_in(lb: &str, state: &str) -> (String, String) {
    let pairs = auth_pairs(state);
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = client()
        .get(format!("{lb}/authorize?{}", encode(&borrowed)))
        .send()
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    // The page's CSRF token: in its cookie and in the form, sent back together.
    let (csrf_cookie, csrf) = crate::idp::login_csrf(page);
    let mut form = borrowed.clone();
    form.extend([
        ("username", "alice"),
        ("password", "alice-pw"),
        ("csrf", csrf.as_str()),
    ]);
    let (query, cookie) = redirected(
        client()
            .post(format!("{lb}/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", csrf_cookie)
            .body(encode(&form))
            .send()
            .expect("login"),
    );
    assert_eq!(query.get("state").map(String::as_str), Some(state));
    (
        query.get("code").expect("code").clone(),
        cookie.expect("session cookie"),
    )
}

/// Single sign-on: prompt=none with the session cookie, answered by whichever replica.
fn sso(lb: &str, cookie: &str, state: &str) -> String {
    let mut pairs = auth_pairs(state);
    pairs.push(("prompt", "none".into()));
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (query, _) = redirected(
        client()
            .get(format!("{lb}/authorize?{}", encode(&borrowed)))
            .header("cookie", cookie)
            .send()
            .expect("sso"),
    );
    query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("{query:?}"))
}

fn redeem(lb: &str, code: &str) -> Value {
    let (s, t) = post(
        &format!("{lb}/token"),
        Some(("web", "web-secret")),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    );
    assert_eq!(s, 200, "{t}");
    t
}

fn userinfo(url: &str, access: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{url}/userinfo"))
        .bearer_auth(access)
        .send()
        .expect("userinfo");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null),
    )
}

/// `serve --idp` on `port` with the shared PostgreSQL store `db`, as the balancer's issuer,
/// with `extra` flags.
fn replica(env: &Env, db: &str, port: u16, issuer: &str, extra: &[&str]) -> Server {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--store",
        db,
        "--store-key-file",
        "store.key",
        "--addr",
        &addr,
        "--issuer",
        issuer,
        "--idp",
    ];
    args.extend_from_slice(extra);
    Server::start(env, &env.path("unused"), &args)
}

#[test]
fn idp_replicas_behind_round_robin_share_codes_sessions_refresh_tokens_and_revocations() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("idp");
    let env = Env::new();
    env.ok(&[
        "generate-key",
        "--type",
        "ec",
        "--out",
        "client.pem",
        "--public-out",
        "client.pub",
    ]);
    let jwks: Value = serde_json::from_str(&env.ok(&["key", "jwks", "client.pub"])).expect("jwks");
    let config = json!({
        "clients": [
            { "id": "web", "secret": "web-secret", "redirect_uris": [REDIRECT],
              "grants": ["authorization_code", "refresh_token"] },
            { "id": "signer", "grants": ["client_credentials"], "jwks": jwks },
        ],
        "users": [
            { "name": "alice", "password": "alice-pw", "claims": { "email": "alice@example.com" } },
            { "name": "bob", "claims": { "email": "bob@example.com" } },
        ],
    });
    std::fs::write(env.path("idp.json"), config.to_string()).expect("config");
    std::fs::write(env.path("store.key"), STORE_KEY).expect("store key");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let upstreams: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let Some(lb) = Nginx::start(&upstreams) else {
        return;
    };
    let start = |port: u16| {
        replica(
            &env,
            &db,
            port,
            &lb.url,
            &["--idp-config", "idp.json", "--alg", "ES256"],
        )
    };
    let mut replicas: Vec<Server> = ports.iter().map(|p| start(*p)).collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    // Every replica signs with the one key the first one made (converged by the store).
    let lb_url = lb.url.clone();

    // 30 login-page flows with PKCE, each step on the next replica; userinfo on another one
    // still has the user's claims.
    let mut sessions = Vec::new();
    let mut refresh = Vec::new();
    for i in 0..30 {
        let (code, cookie) = log_in(&lb_url, &format!("s{i}"));
        let t = redeem(&lb_url, &code);
        let (s, info) = userinfo(&lb_url, t["access_token"].as_str().expect("at"));
        assert_eq!(
            (s, info["email"].as_str()),
            (200, Some("alice@example.com")),
            "{info}"
        );
        sessions.push(cookie);
        refresh.push(t["refresh_token"].as_str().expect("rt").to_string());
    }
    // 30 headless code flows with PKCE (prompt=none, login_hint of a user without a password),
    // authorized on one replica and redeemed on the next.
    for i in 0..30 {
        let mut pairs = auth_pairs(&format!("h{i}"));
        pairs.push(("prompt", "none".into()));
        pairs.push(("login_hint", "bob".into()));
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (query, _) = redirected(
            client()
                .get(format!("{lb_url}/authorize?{}", encode(&borrowed)))
                .send()
                .expect("authorize"),
        );
        let t = redeem(&lb_url, query.get("code").expect("code"));
        let (s, info) = userinfo(&lb_url, t["access_token"].as_str().expect("at"));
        assert_eq!((s, info["email"].as_str()), (200, Some("bob@example.com")));
    }
    // 30 single sign-ons by session cookie, each redeemed.
    for (i, cookie) in sessions.iter().enumerate() {
        let code = sso(&lb_url, cookie, &format!("sso{i}"));
        let t = redeem(&lb_url, &code);
        assert!(t["id_token"].is_string(), "{t}");
    }
    // 30 refresh rotations: each new refresh token used on the next replica.
    let mut rt = refresh[0].clone();
    let mut last_access = String::new();
    for _ in 0..30 {
        let (s, t) = post(
            &format!("{lb_url}/token"),
            Some(("web", "web-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        );
        assert_eq!(s, 200, "{t}");
        rt = t["refresh_token"].as_str().expect("rt").to_string();
        last_access = t["access_token"].as_str().expect("at").to_string();
    }
    // A rotated refresh token used again: refused, and its family (the newest refresh token
    // and its access token) is revoked on every replica.
    let (s, t) = post(
        &format!("{lb_url}/token"),
        Some(("web", "web-secret")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh[0]),
        ],
    );
    assert_eq!(
        (s, t["error"].as_str()),
        (400, Some("invalid_grant")),
        "{t}"
    );
    for url in &urls {
        assert_eq!(userinfo(url, &last_access).0, 401, "{url}");
    }
    let (s, t) = post(
        &format!("{lb_url}/token"),
        Some(("web", "web-secret")),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    );
    assert_eq!(
        (s, t["error"].as_str()),
        (400, Some("invalid_grant")),
        "{t}"
    );

    // A revoked access token is refused by every replica at once (read on use).
    let (code, _) = log_in(&lb_url, "revoke");
    let t = redeem(&lb_url, &code);
    let access = t["access_token"].as_str().expect("at").to_string();
    for url in &urls {
        assert_eq!(userinfo(url, &access).0, 200);
    }
    let (s, _) = post(
        &format!("{lb_url}/revoke"),
        Some(("web", "web-secret")),
        &[("token", &access)],
    );
    assert_eq!(s, 200);
    for url in &urls {
        assert_eq!(userinfo(url, &access).0, 401, "{url}");
    }

    // One private_key_jwt assertion, sent to all three replicas at once: accepted once.
    let token_url = format!("{lb_url}/token");
    let assertion = env
        .ok(&[
            "generate-jwt",
            "--key-file",
            "client.pem",
            "--iss",
            "signer",
            "--sub",
            "signer",
            "--aud",
            &token_url,
            "--exp",
            "1m",
            "--jti",
            "once",
        ])
        .trim()
        .to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = urls
            .iter()
            .map(|u| {
                let a = assertion.clone();
                s.spawn(move || {
                    post(
                        &format!("{u}/token"),
                        None,
                        &[
                            ("grant_type", "client_credentials"),
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                            ),
                            ("client_assertion", &a),
                        ],
                    )
                    .0
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("post"))
            .collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 401, 401], "{statuses:?}");

    // Flows started on one replica, which is then killed with SIGKILL: the codes and sessions
    // it made are redeemed on the others.
    let first = &urls[0];
    let started: Vec<(String, String)> = (0..10).map(|i| log_in(first, &format!("k{i}"))).collect();
    let mut killed = replicas.remove(0);
    assert_eq!(killed.signal("-KILL"), -1, "killed by the signal");
    for (i, (code, cookie)) in started.iter().enumerate() {
        let t = redeem(&lb_url, code);
        let (s, _) = userinfo(&lb_url, t["access_token"].as_str().expect("at"));
        assert_eq!(s, 200);
        let again = sso(&lb_url, cookie, &format!("k{i}-again"));
        redeem(&lb_url, &again);
    }
    // Nothing secret is in the database: codes, sessions and tokens are stored as hashes.
    let dump = pg.sql("idp", "SELECT key || ' ' || value FROM jwkit_idp_records");
    for (code, cookie) in &started {
        assert!(!dump.contains(code.as_str()));
        let sid = cookie.split_once('=').expect("cookie").1;
        assert!(!dump.contains(sid));
    }
    assert!(!dump.contains(&rt));
}

/// What this round's features keep in the store, shared by replicas on one PostgreSQL: a
/// client registered on one replica (RFC 7591) is known to the other, for its grants and its
/// RFC 7592 registration; a DPoP proof taken by one is a replay at the other; an issuer under
/// a path, asked for on both replicas at once for the first time, gets one signing key, so its
/// tokens verify through the balancer whichever replica made them.
#[test]
fn replicas_share_registered_clients_dpop_proofs_and_path_issuers() {
    let Some(pg) = Cluster::start() else { return };
    let db = pg.database("modern");
    let env = Env::new();
    std::fs::write(env.path("store.key"), STORE_KEY).expect("store key");
    let ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let upstreams: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let Some(lb) = Nginx::start(&upstreams) else {
        return;
    };
    let replicas: Vec<Server> = ports
        .iter()
        .map(|port| replica(&env, &db, *port, &lb.url, &[]))
        .collect();
    let (a, b) = (replicas[0].url.clone(), replicas[1].url.clone());
    // Registered on A, used on B.
    let resp = client()
        .post(format!("{a}/register"))
        .header("content-type", "application/json")
        .body(
            json!({"grant_types": ["client_credentials"], "response_types": [],
                   "token_endpoint_auth_method": "client_secret_basic"})
            .to_string(),
        )
        .send()
        .expect("register");
    assert_eq!(resp.status().as_u16(), 201);
    let reg: Value = serde_json::from_slice(&resp.bytes().expect("body")).expect("json");
    let id = reg["client_id"].as_str().expect("id");
    let secret = reg["client_secret"].as_str().expect("secret");
    let (s, t) = post(
        &format!("{b}/token"),
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(s, 200, "{t}");
    let (s, _) = post(
        &format!("{b}/token"),
        Some((id, "wrong")),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(s, 401, "B knows the client's secret, not any secret");
    let mgmt = reg["registration_client_uri"]
        .as_str()
        .expect("uri")
        .replace(&lb.url, &b);
    let read = client()
        .get(&mgmt)
        .bearer_auth(reg["registration_access_token"].as_str().expect("rat"))
        .send()
        .expect("read");
    assert_eq!(read.status().as_u16(), 200);
    // A DPoP proof: taken at A, a replay at B (both check htu against the issuer's URL).
    crate::idp_modern::ec_jwk(&env, "dpop.jwk");
    let proof =
        crate::idp_modern::proof(&env, "dpop.jwk", "POST", &format!("{}/token", lb.url), &[]);
    let dpop = |url: &str| {
        let resp = client()
            .post(format!("{url}/token"))
            .basic_auth(id, Some(secret))
            .header("DPoP", &proof)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .expect("token");
        let status = resp.status().as_u16();
        let body: Value =
            serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or(Value::Null);
        (status, body)
    };
    let (s, body) = dpop(&a);
    assert_eq!(
        (s, body["token_type"].as_str()),
        (200, Some("DPoP")),
        "{body}"
    );
    let (s, body) = dpop(&b);
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    // A path issuer made on both replicas at once: one key.
    let jwks = |url: String| {
        std::thread::spawn(move || {
            client()
                .get(format!("{url}/tenant-x/.well-known/jwks.json"))
                .send()
                .expect("jwks")
                .text()
                .expect("text")
        })
    };
    let (ja, jb) = (jwks(a.clone()), jwks(b.clone()));
    let (ja, jb) = (ja.join().expect("a"), jb.join().expect("b"));
    assert_eq!(ja, jb, "one key for tenant-x on both replicas");
    let (s, t) = post(
        &format!("{a}/tenant-x/token"),
        Some(("any", "any")),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(s, 200, "{t}");
    let run = env.run(&[
        "verify-jwt",
        "--issuer",
        &format!("{}/tenant-x", lb.url),
        "--allow-http",
        "--any-aud",
        "--no-cache",
        t["access_token"].as_str().expect("at"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
