//! `jwkit serve --idp`: real OpenID Connect clients log in against it. panva's openid-client
//! (npm, tests/idp/flows.mjs) drives every flow; Authlib with Selenium and headless Chromium
//! (tests/idp/browser.py) logs in through the login page; every token is verified again with
//! `jwkit verify-jwt --issuer`. Bad requests get the OAuth error the RFC names, never a 500.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::generate_jwt::{claims_of, peer_python};
use crate::serve::{Server, http};
use crate::util::{Env, free_port};

/// In CI (`CI` or `JWKIT_TEST_REQUIRED`, which .ci/run sets) a missing client fails the test.
pub fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("JWKIT_TEST_REQUIRED").is_some()
}

pub fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

/// node with openid-client installed (`npm ci` in tests/idp), or None (SKIPPED outside CI).
pub(crate) fn node() -> Option<()> {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && idp_dir().join("node_modules/openid-client").is_dir();
    if ok {
        return Some(());
    }
    assert!(
        !required(),
        "node and tests/idp/node_modules are required in CI (.ci/run runs npm ci there)"
    );
    eprintln!("SKIPPED: no node or no tests/idp/node_modules (cd tests/idp && npm ci)");
    None
}

const CONFIG: &str = r#"
# The test identity provider's configuration (TOML).
password_grant = true
claims = { tenant = "acme" }

[tokens]
access = "5m"
code = "2s"

[scopes]
roles = ["roles"]

[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["http://127.0.0.1:9/cb", "http://127.0.0.1:CALLBACK/callback"]
post_logout_redirect_uris = ["http://127.0.0.1:9/bye"]
claims = { app = "app-${client_id}", who = "${sub}" }
grants = ["authorization_code", "refresh_token", "client_credentials", "token-exchange", "password"]
exchange_audiences = ["https://api.example.com"]

[[clients]]
id = "spa"
redirect_uris = ["http://127.0.0.1:9/spa"]

[[clients]]
id = "service"
secret = "service-secret"
grants = ["client_credentials"]
scopes = ["api:read", "api:write"]
audience = "https://api.example.com"

[[clients]]
id = "down"
secret = "s"
fail = { error = "temporarily_unavailable", description = "maintenance", delay = "1s" }

[[clients]]
id = "expired"
secret = "s"
fail = { token = "expired" }

[[clients]]
id = "forged"
secret = "s"
fail = { token = "invalid_signature" }

[[users]]
name = "alice"
claims = { email = "alice@example.com", email_verified = true, name = "Alice", roles = ["admin"] }

[[users]]
name = "erin"
password = "erin-pw"
claims = { email = "erin@example.com", roles = ["admin"] }

[[users]]
name = "bob"

[[users]]
name = "mallory"
fail = { error = "access_denied", description = "mallory may not log in" }
"#;

/// `serve --idp` with the test configuration (callback port `cb`), ES256.
pub fn start(env: &Env, cb: u16, extra: &[&str]) -> Server {
    std::fs::write(
        env.path("idp.toml"),
        CONFIG.replace("CALLBACK", &cb.to_string()),
    )
    .expect("config");
    let mut args = vec!["--idp", "--idp-config", "idp.toml", "--alg", "ES256"];
    args.extend(extra);
    Server::start(env, &env.path("data"), &args)
}

pub fn form(url: &str, auth: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> (u16, Value, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut req = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = auth {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().expect("post");
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let body = resp.bytes().expect("body");
    (
        status,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
        www,
    )
}

/// The query of the redirect an /authorize request answers with.
pub fn authorize(url: &str, pairs: &[(&str, &str)]) -> (u16, Vec<(String, String)>) {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = client
        .get(format!("{url}/authorize?{query}"))
        .send()
        .expect("authorize");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let pairs = url::Url::parse(&location)
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    (status, pairs)
}

/// A token request (client credentials, form pairs) and the status and error it must get.
pub type RefusedCase<'a> = (
    Option<(&'a str, &'a str)>,
    &'a [(&'a str, &'a str)],
    u16,
    &'a str,
);

/// A token endpoint answer that is the OAuth error `error` with `status`; its body.
pub fn refused((status, body, _): (u16, Value, String), want_status: u16, error: &str) -> Value {
    assert_eq!(
        (status, body["error"].as_str()),
        (want_status, Some(error)),
        "{body}"
    );
    assert!(body["error_description"].is_string(), "{body}");
    body
}

pub fn get(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// `jwkit verify-jwt --issuer` on a token, with extra flags; the run.
pub fn verify(env: &Env, issuer: &str, token: &str, extra: &[&str]) -> crate::util::Run {
    let mut args = vec!["verify-jwt", "--issuer", issuer, "--no-cache", "--json"];
    args.extend(extra);
    args.push(token);
    env.run(&args)
}

pub fn pkce() -> (String, String) {
    let verifier = "verifier-0123456789-0123456789-0123456789-abcdef".to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, jwkit::crypto::b64::encode(digest))
}

#[test]
fn openid_client_drives_every_flow_and_jwkit_verifies_every_token() {
    let Some(()) = node() else { return };
    let env = Env::new();
    let server = start(&env, 9, &[]);
    let url = server.url.clone();
    let out = Command::new("node")
        .arg(idp_dir().join("flows.mjs"))
        .args([&url, "web", "web-secret", "http://127.0.0.1:9/cb", "alice"])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "openid-client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("flows output");
    assert_eq!(r["discovered"], format!("{url}/token"));
    // client_credentials: sub is the client, the template claims are filled in.
    let cc = r["client_credentials"]["access_token"]
        .as_str()
        .expect("cc token");
    assert_eq!(r["client_credentials"]["scope"], "api:read");
    let run = verify(
        &env,
        &url,
        cc,
        &["--aud", "web", "--typ", "at+jwt", "--sub", "web"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let claims = claims_of(cc);
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["app"], "app-web");
    // The authorization code flow: the ID token the library checked (signature, iss, aud,
    // nonce), with the claims the scopes release, the templates, at_hash and auth_time.
    let id = &r["authorization_code"]["id_claims"];
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], "web");
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["name"], "Alice");
    assert_eq!(id["who"], "alice");
    assert!(id["roles"].is_null(), "roles needs the roles scope: {id}");
    assert!(
        id["at_hash"].is_string() && id["auth_time"].is_i64(),
        "{id}"
    );
    for (token, aud, typ) in [
        (&r["authorization_code"]["access_token"], "web", "at+jwt"),
        (&r["authorization_code"]["id_token"], "web", "JWT"),
        (&r["refresh"]["access_token"], "web", "at+jwt"),
        (&r["refresh"]["id_token"], "web", "JWT"),
        (
            &r["token_exchange"]["access_token"],
            "https://api.example.com",
            "at+jwt",
        ),
    ] {
        let token = token.as_str().expect("token");
        let run = verify(
            &env,
            &url,
            token,
            &["--aud", aud, "--typ", typ, "--sub", "alice"],
        );
        assert_eq!(run.code, 0, "{token}: {}", run.stdout);
    }
    assert_eq!(r["par"]["url_params"], json!(["client_id", "request_uri"]));
    assert_eq!(r["par"]["sub"], "alice");
    let run = verify(
        &env,
        &url,
        r["par"]["access_token"].as_str().expect("par at"),
        &["--aud", "web", "--typ", "at+jwt", "--sub", "alice"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(r["userinfo"]["sub"], "alice");
    assert_eq!(r["userinfo"]["email"], "alice@example.com");
    assert_ne!(
        r["refresh"]["refresh_token"],
        r["authorization_code"]["refresh_token"]
    );
    assert_eq!(
        r["refresh"]["reuse"], "invalid_grant",
        "refresh tokens rotate"
    );
    assert_eq!(r["introspection"]["active"], true);
    assert_eq!(r["introspection"]["sub"], "alice");
    assert_eq!(r["introspection"]["client_id"], "web");
    let exchanged = claims_of(r["token_exchange"]["access_token"].as_str().expect("te"));
    assert_eq!(exchanged["act"]["sub"], "web");
    assert_eq!(exchanged["email"], "alice@example.com");
    assert_eq!(
        r["token_exchange"]["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(r["revoked"]["active"], false);
    // panva's jose, as a resource server: every access token, typ at+jwt.
    for (name, sub) in [
        ("client_credentials", "web"),
        ("authorization_code", "alice"),
        ("refresh", "alice"),
        ("token_exchange", "alice"),
    ] {
        assert_eq!(
            r["jose"][name],
            json!({ "sub": sub, "typ": "at+jwt" }),
            "{name}"
        );
    }
}

#[test]
fn the_login_page_in_headless_chromium_and_authlib() {
    // The code from the login must be redeemed within its 1 minute: not beside the tests that
    // load both cores.
    let _exclusive = crate::util::exclusive();
    let Some(python) = peer_python() else { return };
    let browser_ready = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
        && Command::new(&python)
            .args(["-c", "import selenium, authlib"])
            .status()
            .is_ok_and(|s| s.success());
    if !browser_ready {
        assert!(
            !required(),
            "chromium, chromium-driver, selenium and Authlib are required in CI"
        );
        eprintln!("SKIPPED: no chromium + chromedriver, or no selenium and Authlib in the venv");
        return;
    }
    let env = Env::new();
    let cb = free_port();
    let server = start(&env, cb, &[]);
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("idp-login-page.png");
    let _ = std::fs::remove_file(&shot);
    let typed = r#"{"department": "qa", "roles": ["tester"], "level": 3}"#;
    let out = Command::new(&python)
        .arg(idp_dir().join("browser.py"))
        .args([&server.url, "web", "web-secret", "bob", typed])
        .arg(&shot)
        .arg(cb.to_string())
        .output()
        .expect("browser.py");
    assert!(
        out.status.success(),
        "browser.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("browser output");
    assert!(
        r["title"].as_str().expect("title").contains("log in"),
        "{r}"
    );
    let id = &r["id_claims"];
    assert_eq!(id["sub"], "bob");
    assert_eq!(id["department"], "qa");
    assert_eq!(id["roles"], json!(["tester"]));
    assert_eq!(id["level"], 3);
    let run = verify(
        &env,
        &server.url,
        r["id_token"].as_str().expect("id"),
        &["--aud", "web"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!(
        "screenshot of the login page: {} ({} bytes)",
        shot.display(),
        png.len()
    );
}

#[test]
fn every_bad_request_gets_the_oauth_error_the_rfcs_name() {
    let env = Env::new();
    let server = start(&env, 9, &[]);
    let url = server.url.clone();
    let token_url = format!("{url}/token");
    let web = Some(("web", "web-secret"));
    let (verifier, challenge) = pkce();
    let code_for = |extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("client_id", "web"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
            ("prompt", "none"),
            ("login_hint", "alice"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        pairs.extend_from_slice(extra);
        let (status, q) = authorize(&url, &pairs);
        assert_eq!(status, 302, "{q:?}");
        assert_eq!(get(&q, "state").as_deref(), Some("st"));
        get(&q, "code").unwrap_or_else(|| panic!("a code: {q:?}"))
    };
    let exchange = |code: &str, verifier: &str, redirect: &str| {
        form(
            &token_url,
            web,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", redirect),
            ],
        )
    };
    let cb = "http://127.0.0.1:9/cb";
    // A wrong PKCE verifier, then the same code again (spent by the failed attempt).
    let code = code_for(&[]);
    refused(
        exchange(&code, "wrong-verifier-0123456789-0123456789-0123456789", cb),
        400,
        "invalid_grant",
    );
    refused(exchange(&code, &verifier, cb), 400, "invalid_grant");
    // A reused code: the first exchange works, the second is refused.
    let code = code_for(&[]);
    let (s, ok, _) = exchange(&code, &verifier, cb);
    assert_eq!(s, 200, "{ok}");
    let e = refused(exchange(&code, &verifier, cb), 400, "invalid_grant");
    assert!(
        e["error_description"]
            .as_str()
            .expect("d")
            .contains("used already")
    );
    // An expired code (tokens.code = 2s).
    let code = code_for(&[]);
    std::thread::sleep(Duration::from_millis(3100));
    let e = refused(exchange(&code, &verifier, cb), 400, "invalid_grant");
    assert!(
        e["error_description"]
            .as_str()
            .expect("d")
            .contains("expired")
    );
    // A redirect URI that differs from the authorization request's.
    let code = code_for(&[]);
    refused(
        exchange(&code, &verifier, "http://127.0.0.1:9/other"),
        400,
        "invalid_grant",
    );
    // At /authorize an unregistered redirect URI or client is a page, never a redirect.
    for (client, redirect) in [("web", "http://127.0.0.1:9/cb/x"), ("nobody", cb)] {
        let resp = http()
            .get(format!(
                "{url}/authorize?client_id={client}&response_type=code&redirect_uri={redirect}"
            ))
            .send()
            .expect("authorize");
        assert_eq!(resp.status().as_u16(), 400);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .expect("ct")
                .starts_with("text/html")
        );
    }
    // Errors sent back to the client.
    for (extra, want) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("login_hint", "mallory")], "access_denied"),
        (vec![("login_hint", "nobody-known")], "login_required"),
    ] {
        let mut pairs = vec![
            ("client_id", "web"),
            ("redirect_uri", cb),
            ("response_type", "code"),
            ("state", "st"),
            ("prompt", "none"),
            ("login_hint", "alice"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            pairs.retain(|(pk, _)| *pk != k);
            pairs.push((k, v));
        }
        let (status, q) = authorize(&url, &pairs);
        assert_eq!(status, 302);
        assert_eq!(get(&q, "error").as_deref(), Some(want), "{q:?}");
        assert_eq!(get(&q, "state").as_deref(), Some("st"));
    }
    // A public client must use PKCE.
    let (_, q) = authorize(
        &url,
        &[
            ("client_id", "spa"),
            ("response_type", "code"),
            ("prompt", "none"),
            ("login_hint", "alice"),
        ],
    );
    assert_eq!(
        get(&q, "error").as_deref(),
        Some("invalid_request"),
        "{q:?}"
    );
    // Client authentication and grants.
    let (s, e, www) = form(
        &token_url,
        Some(("web", "wrong")),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "{e}"
    );
    assert!(www.starts_with("Basic"), "{www}");
    let service = Some(("service", "service-secret"));
    let exchange_type = "urn:ietf:params:oauth:grant-type:token-exchange";
    let access_type = "urn:ietf:params:oauth:token-type:access_token";
    let cases: [RefusedCase; 10] = [
        (
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "web"),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
        ),
        (
            web,
            &[("grant_type", "urn:example:unknown")],
            400,
            "unsupported_grant_type",
        ),
        (web, &[], 400, "invalid_request"),
        (
            web,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "password"),
            ],
            400,
            "invalid_request",
        ),
        (
            service,
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            400,
            "unauthorized_client",
        ),
        (
            service,
            &[("grant_type", "client_credentials"), ("scope", "admin")],
            400,
            "invalid_scope",
        ),
        (
            web,
            &[
                ("grant_type", "password"),
                ("username", "erin"),
                ("password", "wrong"),
            ],
            400,
            "invalid_grant",
        ),
        (
            web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "never-issued"),
            ],
            400,
            "invalid_grant",
        ),
        (
            web,
            &[
                ("grant_type", exchange_type),
                ("subject_token", "x.y.z"),
                ("subject_token_type", access_type),
            ],
            400,
            // RFC 8693 §2.2.2: an invalid subject token is invalid_request.
            "invalid_request",
        ),
        (
            web,
            &[
                ("grant_type", exchange_type),
                ("subject_token", "x.y.z"),
                ("subject_token_type", "urn:example:other"),
            ],
            400,
            "invalid_request",
        ),
    ];
    for (auth, pairs, status, error) in cases {
        refused(form(&token_url, auth, pairs), status, error);
    }
    let resp = http()
        .get(format!("{url}/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .expect("userinfo");
    assert_eq!(resp.status().as_u16(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .expect("h")
            .contains("invalid_token")
    );
    // Whatever arrives, no endpoint answers 5xx.
    let junk: [&[u8]; 8] = [
        b"",
        b"%%%",
        b"grant_type=%ff%fe",
        b"client_id=&client_secret=&grant_type=authorization_code&code=",
        b"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c",
        b"token=&token_type_hint=refresh_token",
        b"{\"json\": true}",
        &[0xff, 0x00, 0x26, 0x3d, 0x3d, 0x26],
    ];
    for path in [
        "/token",
        "/introspect",
        "/revoke",
        "/authorize",
        "/userinfo",
        "/logout",
    ] {
        for body in junk {
            for auth in [None, web] {
                let mut req = http()
                    .post(format!("{url}{path}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.to_vec());
                if let Some((i, s)) = auth {
                    req = req.basic_auth(i, Some(s));
                }
                let status = req.send().expect("post").status().as_u16();
                assert!(status < 500, "{path} {body:?}: {status}");
            }
        }
    }
    assert!(!server.log().contains(" 500 "), "{}", server.log());
}

#[test]
fn configured_clients_users_templates_scopes_and_injected_failures() {
    let env = Env::new();
    let server = start(&env, 9, &[]);
    let url = server.url.clone();
    let token_url = format!("{url}/token");
    // A service client: its audience and scopes.
    let (s, t, _) = form(
        &token_url,
        Some(("service", "service-secret")),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "api:read api:write"),
        ],
    );
    assert_eq!(s, 200, "{t}");
    let at = t["access_token"].as_str().expect("at");
    let run = verify(
        &env,
        &url,
        at,
        &["--aud", "https://api.example.com", "--sub", "service"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(claims_of(at)["scope"], "api:read api:write");
    // Scopes release claims: roles only with the roles scope; unlisted claims always.
    let (_, t, _) = form(
        &token_url,
        Some(("web", "web-secret")),
        &[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", "erin-pw"),
            ("scope", "openid roles"),
        ],
    );
    let id = claims_of(t["id_token"].as_str().expect("id token"));
    assert_eq!(id["roles"], json!(["admin"]));
    assert!(id["email"].is_null(), "email needs the email scope: {id}");
    assert_eq!(id["tenant"], "acme");
    assert_eq!(id["who"], "erin", "the client's template, filled in");
    // Failure injection: an error after a delay; expired tokens; bad signatures.
    let started = Instant::now();
    let (s, e, _) = form(
        &token_url,
        Some(("down", "s")),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(
        (s, e["error"].as_str(), e["error_description"].as_str()),
        (400, Some("temporarily_unavailable"), Some("maintenance"))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "the configured delay"
    );
    for (client, kind) in [("expired", "expired"), ("forged", "bad_signature")] {
        let (_, t, _) = form(
            &token_url,
            Some((client, "s")),
            &[("grant_type", "client_credentials")],
        );
        let at = t["access_token"].as_str().expect("at");
        let run = verify(&env, &url, at, &["--aud", client]);
        assert_eq!(run.code, 1);
        let verdict: Value = serde_json::from_str(&run.stdout).expect("json");
        assert_eq!(verdict["error"]["kind"], kind, "{verdict}");
    }
    // A configured user's failure at /authorize.
    let (_, q) = authorize(
        &url,
        &[
            ("client_id", "web"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("response_type", "code"),
            ("prompt", "none"),
            ("login_hint", "mallory"),
        ],
    );
    assert_eq!(get(&q, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        get(&q, "error_description").as_deref(),
        Some("mallory may not log in")
    );
    // Logout: to a registered address only, with the state.
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("c");
    let r = client
        .get(format!(
            "{url}/logout?client_id=web&post_logout_redirect_uri=http://127.0.0.1:9/bye&state=s9"
        ))
        .send()
        .expect("logout");
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye?state=s9");
    let r = client
        .get(format!(
            "{url}/logout?client_id=web&post_logout_redirect_uri=http://evil.example/"
        ))
        .send()
        .expect("logout");
    assert_eq!(r.status().as_u16(), 400);
}

/// private_key_jwt with a JSON configuration: the client signs its assertion with its own
/// key (here made and signed by jwkit itself); a replayed or foreign assertion is refused.
#[test]
fn private_key_jwt_clients_from_a_json_configuration() {
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
    env.ok(&["generate-key", "--type", "ec", "--out", "other.pem"]);
    let jwks: Value = serde_json::from_str(&env.ok(&["key", "jwks", "client.pub"])).expect("jwks");
    let config = json!({
        "clients": [{ "id": "signer", "grants": ["client_credentials"], "jwks": jwks }],
    });
    std::fs::write(env.path("idp.json"), config.to_string()).expect("config");
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.json"],
    );
    let token_url = format!("{}/token", server.url);
    let assertion = |key: &str, jti: &str| {
        env.ok(&[
            "generate-jwt",
            "--key-file",
            key,
            "--iss",
            "signer",
            "--sub",
            "signer",
            "--aud",
            &token_url,
            "--exp",
            "1m",
            "--jti",
            jti,
        ])
        .trim()
        .to_string()
    };
    let post = |a: &str| {
        form(
            &token_url,
            None,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", a),
            ],
        )
    };
    let first = assertion("client.pem", "one");
    let (s, t, _) = post(&first);
    assert_eq!(s, 200, "{t}");
    let run = verify(
        &env,
        &server.url,
        t["access_token"].as_str().expect("at"),
        &["--aud", "signer"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    refused(post(&first), 401, "invalid_client");
    refused(post(&assertion("other.pem", "two")), 401, "invalid_client");
}

#[test]
fn a_configuration_that_does_not_parse_stops_the_start_naming_the_line() {
    let env = Env::new();
    for (name, text, says) in [
        (
            "bad.toml",
            "[[clients]]\nid = \"web\"\nsecret = = \"x\"\n",
            "line 3",
        ),
        (
            "bad.json",
            "{\n  \"clients\": [\n    {\"id\": }\n  ]\n}\n",
            "line 3",
        ),
        (
            "unknown.toml",
            "[[clients]]\nid = \"web\"\nsecrett = \"x\"\n",
            "secrett",
        ),
        (
            "grant.toml",
            "[[clients]]\nid = \"web\"\ngrants = [\"implicit\"]\n",
            "unknown grant",
        ),
        (
            "uri.toml",
            "[[clients]]\nid = \"web\"\nredirect_uris = [\"not a url\"]\n",
            "redirect URI",
        ),
    ] {
        std::fs::write(env.path(name), text).expect("write");
        let run = env.run(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            "d",
            "--idp",
            "--idp-config",
            name,
        ]);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{name}: {}", run.stderr);
    }
}

/// Without a configuration: open mode (a warning), any client; opaque access tokens work
/// with userinfo, introspection and revocation.
#[test]
fn open_mode_with_opaque_access_tokens() {
    let env = Env::new();
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--opaque-access-tokens"],
    );
    assert!(server.log().contains("open mode"), "{}", server.log());
    let url = server.url.clone();
    let (_, q) = authorize(
        &url,
        &[
            ("client_id", "anything"),
            ("redirect_uri", "http://127.0.0.1:9/x"),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("prompt", "none"),
            ("login_hint", "carol"),
        ],
    );
    let code = get(&q, "code").expect("code");
    let (s, t, _) = form(
        &format!("{url}/token"),
        Some(("anything", "any-secret")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/x"),
        ],
    );
    assert_eq!(s, 200, "{t}");
    let at = t["access_token"].as_str().expect("at");
    assert!(!at.contains('.'), "opaque: {at}");
    let run = verify(
        &env,
        &url,
        t["id_token"].as_str().expect("id"),
        &["--aud", "anything", "--sub", "carol"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let info: Value = serde_json::from_slice(
        &http()
            .get(format!("{url}/userinfo"))
            .bearer_auth(at)
            .send()
            .expect("ui")
            .bytes()
            .expect("b"),
    )
    .expect("json");
    assert_eq!(info["sub"], "carol");
    let auth = Some(("anything", "x"));
    let (_, i, _) = form(&format!("{url}/introspect"), auth, &[("token", at)]);
    assert_eq!(i["active"], true, "{i}");
    let (s, _, _) = form(&format!("{url}/revoke"), auth, &[("token", at)]);
    assert_eq!(s, 200);
    let (_, i, _) = form(&format!("{url}/introspect"), auth, &[("token", at)]);
    assert_eq!(i["active"], false, "{i}");
    let resp = http()
        .get(format!("{url}/userinfo"))
        .bearer_auth(at)
        .send()
        .expect("ui");
    assert_eq!(resp.status().as_u16(), 401);
}

/// The value of the hidden form field `name` in a page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}: {html}"))
        + marker.len();
    html[at..].split('"').next().unwrap_or_default().to_string()
}

/// The login page's CSRF token, from a GET /authorize answer: the `name=value` of the cookie it
/// set and the form's hidden field, which a login posts back together.
pub fn login_csrf(page: reqwest::blocking::Response) -> (String, String) {
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("jwkit_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("csrf cookie")
        .to_string();
    let field = hidden_field(&page.text().expect("html"), "csrf");
    (cookie, field)
}

/// RFC 8414: the identity provider's metadata at `/.well-known/oauth-authorization-server`
/// (the issuer's path after it, §3.1, and under the path too, where some clients look): the
/// same document as OpenID discovery. A plain JWKS server (no `--idp`) has none.
#[test]
fn oauth_authorization_server_metadata_is_served_where_rfc_8414_says() {
    let env = Env::new();
    let port = crate::util::free_port();
    let issuer = format!("http://127.0.0.1:{port}/tenant-a");
    std::fs::write(env.path("idp.toml"), CONFIG.replace("CALLBACK", "9")).expect("config");
    let _server = Server::start(
        &env,
        &env.path("data"),
        &[
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--issuer",
            &issuer,
            "--idp",
            "--idp-config",
            "idp.toml",
        ],
    );
    let fetch = |url: &str| -> (u16, Value) {
        let resp = http().get(url).send().expect("get");
        let status = resp.status().as_u16();
        (
            status,
            serde_json::from_slice(&resp.bytes().expect("body")).unwrap_or(Value::Null),
        )
    };
    let (status, openid) = fetch(&format!("{issuer}/.well-known/openid-configuration"));
    assert_eq!(status, 200);
    for url in [
        format!("http://127.0.0.1:{port}/.well-known/oauth-authorization-server/tenant-a"),
        format!("{issuer}/.well-known/oauth-authorization-server"),
    ] {
        let (status, doc) = fetch(&url);
        assert_eq!(status, 200, "{url}");
        assert_eq!(doc, openid, "{url}");
        assert_eq!(doc["issuer"], issuer.as_str());
        for member in [
            "authorization_endpoint",
            "token_endpoint",
            "response_types_supported",
            "code_challenge_methods_supported",
        ] {
            assert!(!doc[member].is_null(), "{url}: {member}");
        }
    }
    // Without --idp: no authorization server, no metadata.
    let plain = Server::start(&env, &env.path("data2"), &[]);
    let (status, _) = fetch(&format!(
        "{}/.well-known/oauth-authorization-server",
        plain.url
    ));
    assert_eq!(status, 404);
}
