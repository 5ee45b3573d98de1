//! The test IdP against hostile and careless clients, one case each, with the answer the
//! RFCs name; and what real clients need: CORS and preflights, response modes, the userinfo
//! token in a form body, case-insensitive schemes, a JSON answer from /revoke.

use std::time::Duration;

use serde_json::{Value, json};

use crate::idp::{authorize, form, get, hidden_field, login_csrf, pkce, refused, start};
use crate::serve::Server;
use crate::util::Env;

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}?{q}")
}

fn no_redirects() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A code for `user` by prompt=none and login_hint, redeemed by web: the token answer.
fn tokens_for(url: &str, user: &str, scope: &str) -> Value {
    let (verifier, challenge) = pkce();
    let (status, q) = authorize(
        url,
        &[
            ("client_id", "web"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("response_type", "code"),
            ("scope", scope),
            ("prompt", "none"),
            ("login_hint", user),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    assert_eq!(status, 302);
    let code = get(&q, "code").unwrap_or_else(|| panic!("{q:?}"));
    let (s, t, _) = form(
        &format!("{url}/token"),
        Some(("web", "web-secret")),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(s, 200, "{t}");
    let mut t = t;
    t["code"] = code.into();
    t["verifier"] = verifier.into();
    t
}

fn userinfo_status(url: &str, token: &str) -> u16 {
    no_redirects()
        .get(format!("{url}/userinfo"))
        .bearer_auth(token)
        .send()
        .expect("userinfo")
        .status()
        .as_u16()
}

fn introspect_active(url: &str, token: &str) -> bool {
    let (s, v, _) = form(
        &format!("{url}/introspect"),
        Some(("web", "web-secret")),
        &[("token", token)],
    );
    assert_eq!(s, 200, "{v}");
    v["active"] == true
}

#[test]
fn hostile_clients_get_the_answers_the_rfcs_name() {
    let env = Env::new();
    let server = start(&env, 9, &[]);
    let url = server.url.clone();
    let token_url = format!("{url}/token");
    let web = Some(("web", "web-secret"));

    // RFC 7662 §2.1: a public client (client_id alone) may not introspect anything.
    let t = tokens_for(&url, "alice", "openid email offline_access");
    let access = t["access_token"].as_str().expect("at").to_string();
    let refresh = t["refresh_token"].as_str().expect("rt").to_string();
    for token in [&access, &refresh] {
        let (s, v, www) = form(
            &format!("{url}/introspect"),
            None,
            &[("client_id", "spa"), ("token", token)],
        );
        assert_eq!(
            (s, v["error"].as_str()),
            (401, Some("invalid_client")),
            "{v}"
        );
        assert!(www.starts_with("Basic"), "{www}");
    }
    // RFC 7009 §2.1: a public client revokes only its own tokens; web's stay active.
    for token in [&access, &refresh] {
        let (s, v, _) = form(
            &format!("{url}/revoke"),
            None,
            &[("client_id", "spa"), ("token", token)],
        );
        assert_eq!(s, 200, "{v}");
    }
    assert!(introspect_active(&url, &access));
    assert!(introspect_active(&url, &refresh));

    // RFC 8693: token exchange needs an active subject token, never widens its scope, and
    // goes only to the audiences the client may ask for; a bad subject is invalid_request.
    let exchange = |subject: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ];
        pairs.extend_from_slice(extra);
        form(&token_url, web, &pairs)
    };
    let (s, v, _) = exchange(&access, &[("audience", "https://api.example.com")]);
    assert_eq!(s, 200, "{v}");
    refused(
        exchange(
            &access,
            &[
                ("audience", "https://api.example.com"),
                ("scope", "email roles admin"),
            ],
        ),
        400,
        "invalid_scope",
    );
    refused(
        exchange(&access, &[("audience", "https://elsewhere.example")]),
        400,
        "invalid_target",
    );
    refused(exchange("not-a-token", &[]), 400, "invalid_request");
    let (s, _, _) = form(&format!("{url}/revoke"), web, &[("token", &access)]);
    assert_eq!(s, 200);
    refused(
        exchange(&access, &[("audience", "https://api.example.com")]),
        400,
        "invalid_request",
    );
    // ... and the revoked access token presented as a plain JWT is refused too.
    let (s, v, _) = form(
        &token_url,
        web,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &access),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ],
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );

    // RFC 6749 §4.1.2: a code used twice is refused, and the tokens issued for it revoked.
    let t = tokens_for(&url, "alice", "openid offline_access");
    let first_access = t["access_token"].as_str().expect("at").to_string();
    let first_refresh = t["refresh_token"].as_str().expect("rt").to_string();
    assert_eq!(userinfo_status(&url, &first_access), 200);
    refused(
        form(
            &token_url,
            web,
            &[
                ("grant_type", "authorization_code"),
                ("code", t["code"].as_str().expect("code")),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("code_verifier", t["verifier"].as_str().expect("v")),
            ],
        ),
        400,
        "invalid_grant",
    );
    assert_eq!(userinfo_status(&url, &first_access), 401);
    refused(
        form(
            &token_url,
            web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &first_refresh),
            ],
        ),
        400,
        "invalid_grant",
    );

    // RFC 9700 §4.14.2: a rotated refresh token used again revokes its successor.
    let t = tokens_for(&url, "alice", "openid offline_access");
    let old = t["refresh_token"].as_str().expect("rt").to_string();
    let (s, next, _) = form(
        &token_url,
        web,
        &[("grant_type", "refresh_token"), ("refresh_token", &old)],
    );
    assert_eq!(s, 200, "{next}");
    let successor = next["refresh_token"].as_str().expect("rt").to_string();
    let successor_access = next["access_token"].as_str().expect("at").to_string();
    refused(
        form(
            &token_url,
            web,
            &[("grant_type", "refresh_token"), ("refresh_token", &old)],
        ),
        400,
        "invalid_grant",
    );
    assert!(!introspect_active(&url, &successor));
    assert_eq!(userinfo_status(&url, &successor_access), 401);
    refused(
        form(
            &token_url,
            web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &successor),
            ],
        ),
        400,
        "invalid_grant",
    );

    // A user with a password is never logged in without it: not by login_hint ...
    let (status, q) = authorize(
        &url,
        &[
            ("client_id", "web"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("response_type", "code"),
            ("prompt", "none"),
            ("login_hint", "erin"),
        ],
    );
    assert_eq!(
        (status, get(&q, "error").as_deref()),
        (302, Some("login_required"))
    );
    // ... nor by a typed sub on the login page. The page is never framed, and its form
    // checks a CSRF token.
    let auth_query =
        "client_id=web&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb";
    let page = no_redirects()
        .get(format!("{url}/authorize?{auth_query}"))
        .send()
        .expect("page");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let (csrf_cookie, csrf) = login_csrf(page);
    let post_login = |cookie: Option<&str>, pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("client_id", "web"),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ];
        all.extend_from_slice(pairs);
        let mut req = no_redirects()
            .post(format!("{url}/authorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&all)
                    .finish(),
            );
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let resp = req.send().expect("post");
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    };
    let (s, body) = post_login(
        Some(&csrf_cookie),
        &[
            ("csrf", &csrf),
            ("username", "bob"),
            ("claims", r#"{"sub": "erin"}"#),
        ],
    );
    assert_eq!(s, 400);
    assert!(body.contains("another user"), "{body}");
    // Without the cookie, or with another token: the form is refused, nobody logs in.
    let (s, body) = post_login(None, &[("csrf", &csrf), ("username", "bob")]);
    assert_eq!(s, 400);
    assert!(body.contains("log in again"), "{body}");
    let (s, _) = post_login(
        Some(&csrf_cookie),
        &[("csrf", "forged"), ("username", "bob")],
    );
    assert_eq!(s, 400);
    let (s, _) = post_login(Some(&csrf_cookie), &[("csrf", &csrf), ("username", "bob")]);
    assert_eq!(s, 302, "the real form logs in");
}

#[test]
fn open_mode_logout_redirects_only_to_web_urls() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--idp"]);
    let url = server.url.clone();
    for bad in [
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
    ] {
        let resp = no_redirects()
            .get(with_query(
                &format!("{url}/logout"),
                &[("post_logout_redirect_uri", bad), ("client_id", "any")],
            ))
            .send()
            .expect("logout");
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
        assert!(resp.headers().get("location").is_none());
    }
    let resp = no_redirects()
        .get(with_query(
            &format!("{url}/logout"),
            &[
                ("post_logout_redirect_uri", "https://app.example/bye"),
                ("client_id", "any"),
            ],
        ))
        .send()
        .expect("logout");
    assert_eq!(resp.status().as_u16(), 302);
}

#[test]
fn login_sessions_expire_with_their_lifetime() {
    let env = Env::new();
    std::fs::write(
        env.path("idp.json"),
        json!({
            "tokens": { "session": "2s" },
            "clients": [{ "id": "web", "secret": "s", "redirect_uris": ["http://127.0.0.1:9/cb"] }],
        })
        .to_string(),
    )
    .expect("config");
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.json"],
    );
    let url = server.url.clone();
    let c = no_redirects();
    let page = c
        .get(format!("{url}/authorize?client_id=web&response_type=code"))
        .send()
        .expect("page");
    let (csrf_cookie, csrf) = login_csrf(page);
    let login = c
        .post(format!("{url}/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", csrf_cookie)
        .body(format!(
            "client_id=web&response_type=code&username=bob&csrf={csrf}"
        ))
        .send()
        .expect("login");
    assert_eq!(login.status().as_u16(), 302);
    let session = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let sso = || {
        let r = c
            .get(format!(
                "{url}/authorize?client_id=web&response_type=code&prompt=none"
            ))
            .header("cookie", &session)
            .send()
            .expect("sso");
        r.headers()["location"].to_str().expect("loc").to_string()
    };
    assert!(sso().contains("code="));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(sso().contains("error=login_required"));
}

#[test]
fn browser_apps_get_cors_and_clients_get_what_they_expect() {
    let env = Env::new();
    let server = start(&env, 9, &[]);
    let url = server.url.clone();
    assert!(
        server.log().contains("CORS allows any origin"),
        "{}",
        server.log()
    );
    let c = no_redirects();
    // A preflight for the token endpoint, as a browser sends it before a POST.
    for path in [
        "/token",
        "/userinfo",
        "/introspect",
        "/revoke",
        "/.well-known/openid-configuration",
    ] {
        let r = c
            .request(reqwest::Method::OPTIONS, format!("{url}{path}"))
            .header("origin", "http://127.0.0.1:5173")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
            .expect("preflight");
        assert_eq!(r.status().as_u16(), 204, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        let allowed = r.headers()["access-control-allow-headers"]
            .to_str()
            .expect("h");
        assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    }
    let r = c
        .get(format!("{url}/.well-known/jwks.json"))
        .header("origin", "http://127.0.0.1:5173")
        .send()
        .expect("jwks");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // Navigations get no CORS headers.
    let r = c
        .get(format!("{url}/authorize?client_id=web"))
        .header("origin", "http://127.0.0.1:5173")
        .send()
        .expect("authorize");
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // response_mode fragment and form_post.
    let (verifier, challenge) = pkce();
    let auth = |mode: &str| {
        c.get(with_query(
            &format!("{url}/authorize"),
            &[
                ("client_id", "web"),
                ("redirect_uri", "http://127.0.0.1:9/cb"),
                ("response_type", "code"),
                ("prompt", "none"),
                ("login_hint", "alice"),
                ("state", "st"),
                ("response_mode", mode),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        ))
        .send()
        .expect("authorize")
    };
    let r = auth("fragment");
    assert_eq!(r.status().as_u16(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().expect("loc")).expect("url");
    assert!(loc.query().is_none(), "{loc}");
    let frag: Vec<(String, String)> =
        url::form_urlencoded::parse(loc.fragment().expect("frag").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(get(&frag, "state").as_deref(), Some("st"));
    assert!(get(&frag, "code").is_some());
    let r = auth("form_post");
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().expect("html");
    assert!(html.contains("action=\"http://127.0.0.1:9/cb\""), "{html}");
    let code = hidden_field(&html, "code");
    assert_eq!(hidden_field(&html, "state"), "st");
    let r = auth("jwt");
    let loc = r.headers()["location"].to_str().expect("loc").to_string();
    assert!(loc.contains("error=invalid_request"), "{loc}");

    // /token without redirect_uri when the request had none is fine; the code from
    // form_post is redeemed with client_secret_post, and the scheme is case-insensitive.
    let (s, t, _) = form(
        &format!("{url}/token"),
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_verifier", &verifier),
            ("client_id", "web"),
            ("client_secret", "web-secret"),
        ],
    );
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("at").to_string();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = c
            .get(format!("{url}/userinfo"))
            .header("authorization", format!("{scheme} {access}"))
            .send()
            .expect("userinfo");
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    // RFC 6750 §2.2: the token in a form body (pyoidc's default for userinfo).
    let r = c
        .post(format!("{url}/userinfo"))
        .header("origin", "http://127.0.0.1:5173")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={access}"))
        .send()
        .expect("userinfo");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let info: Value = serde_json::from_slice(&r.bytes().expect("b")).expect("json");
    assert_eq!(info["sub"], "alice");
    // BASIC in capitals at the token endpoint.
    let r = c
        .post(format!("{url}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!(
                "BASIC {}",
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    b"service:service-secret"
                )
            ),
        )
        .body("grant_type=client_credentials")
        .send()
        .expect("token");
    assert_eq!(r.status().as_u16(), 200);
    // /revoke answers JSON.
    let r = c
        .post(format!("{url}/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth("web", Some("web-secret"))
        .body(format!("token={access}"))
        .send()
        .expect("revoke");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("application/json")
    );
    assert_eq!(userinfo_status(&url, &access), 401);
}

#[test]
fn cors_for_listed_origins_only() {
    let env = Env::new();
    let server = start(
        &env,
        9,
        &[
            "--cors-origin",
            "http://127.0.0.1:5173",
            "--cors-origin",
            "https://app.example/",
        ],
    );
    let url = server.url.clone();
    assert!(!server.log().contains("CORS allows any origin"));
    let c = no_redirects();
    let preflight = |origin: &str| {
        c.request(reqwest::Method::OPTIONS, format!("{url}/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .expect("preflight")
    };
    let ok = preflight("https://app.example");
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        ok.headers()["vary"]
            .to_str()
            .expect("vary")
            .contains("Origin")
    );
    let other = preflight("https://evil.example");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let r = c
        .get(format!("{url}/.well-known/openid-configuration"))
        .header("origin", "https://evil.example")
        .send()
        .expect("discovery");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // An origin with a path stops the start.
    let bad = env.run(&[
        "serve",
        "--idp",
        "--addr",
        "127.0.0.1:0",
        "--cors-origin",
        "https://app.example/callback",
    ]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--cors-origin"), "{}", bad.stderr);
}

#[test]
fn a_single_page_app_on_another_origin_logs_in_with_oidc_client_ts() {
    // The code must be redeemed within its minute: not beside the tests that load both cores.
    let _exclusive = crate::util::exclusive();
    let Some(python) = crate::generate_jwt::peer_python() else {
        return;
    };
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
        && crate::idp::idp_dir()
            .join("node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js")
            .exists()
        && std::process::Command::new(&python)
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        assert!(
            !crate::idp::required(),
            "chromium, chromium-driver, selenium and tests/idp/node_modules are required in CI"
        );
        eprintln!("SKIPPED: no chromium + chromedriver, selenium or oidc-client-ts");
        return;
    }
    let env = Env::new();
    let app_port = crate::util::free_port();
    std::fs::write(
        env.path("idp.json"),
        json!({
            "clients": [{
                "id": "spa",
                "redirect_uris": [format!("http://127.0.0.1:{app_port}/callback.html")],
                "grants": ["authorization_code", "refresh_token"],
            }],
            "users": [{ "name": "bob", "claims": { "email": "bob@example.com" } }],
        })
        .to_string(),
    )
    .expect("config");
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.json", "--alg", "ES256"],
    );
    let out = std::process::Command::new(&python)
        .arg(crate::idp::idp_dir().join("spa.py"))
        .args([&server.url, "spa", &app_port.to_string(), "bob"])
        .output()
        .expect("spa.py");
    assert!(
        out.status.success(),
        "spa.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("spa output");
    assert!(r["error"].is_null(), "{r}");
    assert!(
        r["login_title"].as_str().expect("title").contains("log in"),
        "{r}"
    );
    // userinfo (loadUserInfo) merged into the profile; the state came back.
    assert_eq!(r["first"]["profile"]["sub"], "bob", "{r}");
    assert_eq!(r["first"]["profile"]["email"], "bob@example.com", "{r}");
    assert_eq!(r["first"]["state"]["from"], "index", "{r}");
    // The refresh: new tokens, the user still bob.
    assert_ne!(r["renewed"]["access_token"], r["first"]["access_token"]);
    assert_ne!(r["renewed"]["refresh_token"], r["first"]["refresh_token"]);
    assert_eq!(r["renewed"]["profile"]["sub"], "bob");
    assert_eq!(r["console_errors"], json!([]), "{r}");
    let run = crate::idp::verify(
        &env,
        &server.url,
        r["renewed"]["access_token"].as_str().expect("at"),
        &["--aud", "spa", "--typ", "at+jwt", "--sub", "bob"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn pyoidc_authlib_and_simple_oauth2_call_as_they_do_by_default() {
    let Some(python) = crate::generate_jwt::peer_python() else {
        return;
    };
    let ready = std::process::Command::new(&python)
        .args(["-c", "import oic, authlib"])
        .status()
        .is_ok_and(|s| s.success())
        && crate::idp::idp_dir()
            .join("node_modules/simple-oauth2")
            .is_dir();
    if !ready {
        assert!(
            !crate::idp::required(),
            "pyoidc (oic), Authlib and tests/idp/node_modules are required in CI"
        );
        eprintln!("SKIPPED: no oic or Authlib in the venv, or no simple-oauth2");
        return;
    }
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
    std::fs::write(
        env.path("idp.json"),
        json!({
            "clients": [
                { "id": "web", "secret": "web-secret", "redirect_uris": ["http://127.0.0.1:9/cb"] },
                { "id": "signer", "grants": ["client_credentials"], "jwks": jwks },
            ],
            "users": [{ "name": "alice", "claims": { "email": "alice@example.com" } }],
        })
        .to_string(),
    )
    .expect("config");
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.json", "--alg", "ES256"],
    );
    let out = std::process::Command::new(&python)
        .arg(crate::idp::idp_dir().join("clients.py"))
        .arg(&server.url)
        .arg(env.path("client.pem"))
        .output()
        .expect("clients.py");
    assert!(
        out.status.success(),
        "clients.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("clients output");
    // pyoidc's default userinfo request: the token in a POST form body.
    assert_eq!(r["pyoidc_userinfo"]["sub"], "alice", "{r}");
    assert_eq!(r["pyoidc_userinfo"]["email"], "alice@example.com", "{r}");
    // Authlib's private_key_jwt with aud = the introspection and the revocation endpoint.
    assert_eq!(r["authlib_introspect"]["status"], 200, "{r}");
    assert_eq!(r["authlib_introspect"]["body"]["active"], true, "{r}");
    assert_eq!(
        r["authlib_introspect"]["body"]["client_id"], "signer",
        "{r}"
    );
    assert_eq!(r["authlib_revoke"]["status"], 200, "{r}");
    assert_eq!(r["authlib_after_revoke"]["body"]["active"], false, "{r}");
    // simple-oauth2's revokeAll(): both revocations answered with JSON it can parse.
    let node = std::process::Command::new("node")
        .arg(crate::idp::idp_dir().join("revoke_all.mjs"))
        .arg(&server.url)
        .output()
        .expect("node");
    assert!(
        node.status.success(),
        "revoke_all.mjs: {}{}",
        String::from_utf8_lossy(&node.stdout),
        String::from_utf8_lossy(&node.stderr)
    );
    let n: Value = serde_json::from_slice(&node.stdout).expect("node output");
    assert_eq!(
        n,
        json!({ "had_refresh": true, "revoked": true, "access_active": false, "refresh_active": false })
    );
}

#[test]
fn pushed_authorization_requests_are_checked_then_used_once() {
    let env = Env::new();
    let server = start(&env, 9, &[]);
    let url = server.url.clone();
    let par_url = format!("{url}/par");
    let web = Some(("web", "web-secret"));
    let (verifier, challenge) = pkce();
    let pushed = [
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:9/cb"),
        ("scope", "openid email"),
        ("state", "par-state"),
        ("prompt", "none"),
        ("login_hint", "alice"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (s, v, _) = form(&par_url, web, &pushed);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["expires_in"], 60);
    let request_uri = v["request_uri"].as_str().expect("request_uri").to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let c = no_redirects();
    let go = |client_id: &str| {
        c.get(with_query(
            &format!("{url}/authorize"),
            &[("client_id", client_id), ("request_uri", &request_uri)],
        ))
        .send()
        .expect("authorize")
    };
    let r = go("web");
    assert_eq!(r.status().as_u16(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().expect("loc")).expect("url");
    let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
    assert_eq!(get(&q, "state").as_deref(), Some("par-state"));
    let code = get(&q, "code").expect("code");
    let (s, t, _) = form(
        &format!("{url}/token"),
        web,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            ("code_verifier", &verifier),
        ],
    );
    assert_eq!(s, 200, "{t}");
    // The request_uri used twice: a page, never a redirect.
    let again = go("web");
    assert_eq!(again.status().as_u16(), 400);
    assert!(again.headers().get("location").is_none());
    assert!(again.text().expect("page").contains("used already"));
    // A pushed request for another client_id than the one at /authorize (the request_uri is
    // spent by the try: used once, whatever came of it).
    let (_, v, _) = form(&par_url, web, &pushed);
    let other = v["request_uri"].as_str().expect("request_uri").to_string();
    let r = c
        .get(with_query(
            &format!("{url}/authorize"),
            &[("client_id", "spa"), ("request_uri", &other)],
        ))
        .send()
        .expect("authorize");
    assert_eq!(r.status().as_u16(), 400);
    // PAR needs client authentication, takes no request_uri, and checks the request at once.
    refused(form(&par_url, None, &pushed), 401, "invalid_client");
    let mut with_uri = pushed.to_vec();
    with_uri.push(("request_uri", "urn:x"));
    refused(form(&par_url, web, &with_uri), 400, "invalid_request");
    refused(
        form(
            &par_url,
            web,
            &[
                ("response_type", "code"),
                ("redirect_uri", "http://evil.example/cb"),
            ],
        ),
        400,
        "invalid_request",
    );
    // Discovery names the endpoint.
    let d: Value = serde_json::from_slice(
        &c.get(format!("{url}/.well-known/openid-configuration"))
            .send()
            .expect("discovery")
            .bytes()
            .expect("body"),
    )
    .expect("json");
    assert_eq!(
        d["pushed_authorization_request_endpoint"],
        format!("{url}/par")
    );
}

/// The JWT bearer grant (RFC 7523 §2.1), for service accounts: Authlib's AssertionSession signs
/// an assertion with the client's key and posts it without client authentication; the access
/// token is for the assertion's `sub` and verifies with `jwkit verify-jwt --issuer`. Refused
/// with invalid_grant: a replayed jti, another audience, an expired assertion, another key,
/// an unknown issuer, and another client's assertion under a client's own credentials.
#[test]
fn service_accounts_get_tokens_with_a_jwt_bearer_grant() {
    let Some(python) = crate::generate_jwt::peer_python() else {
        return;
    };
    let env = Env::new();
    let jwk =
        std::fs::read_to_string(crate::jose::key_file("rfc7515-A.3.public.jwk.json")).expect("jwk");
    let jwk: Value = serde_json::from_str(&jwk).expect("jwk json");
    let inline = |v: &Value| -> String {
        let o = v.as_object().expect("jwk");
        let members: Vec<String> = o.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        format!("{{ {} }}", members.join(", "))
    };
    std::fs::write(
        env.path("idp.toml"),
        format!(
            r#"
[[clients]]
id = "svc"
jwks = {{ keys = [{}] }}
scopes = ["api:read"]

[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["http://127.0.0.1:9/cb"]
"#,
            inline(&jwk)
        ),
    )
    .expect("config");
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.toml", "--alg", "ES256"],
    );
    let url = server.url.clone();
    let token_url = format!("{url}/token");
    let private = crate::jose::key_file("rfc7515-A.3.private.pem");
    let out = std::process::Command::new(&python)
        .arg(crate::idp::idp_dir().join("service_account.py"))
        .args([&token_url, "svc", "robot-7", &private, "ES256"])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "Authlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("token json");
    let access = answer["access_token"].as_str().expect("access_token");
    let run = crate::idp::verify(&env, &url, access, &["--aud", "svc", "--sub", "robot-7"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    // Assertions made by jwkit for the refusals.
    let assertion = |iss: &str, aud: &str, exp: &str, key: &str, jti: &str| -> String {
        env.ok(&[
            "generate-jwt",
            "--no-kid",
            "--key-file",
            key,
            "--iss",
            iss,
            "--sub",
            "robot-7",
            "--aud",
            aud,
            "--exp",
            exp,
            "--jti",
            jti,
        ])
        .trim()
        .to_string()
    };
    let grant = |assertion: &str, auth: Option<(&str, &str)>| {
        form(
            &token_url,
            auth,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
            ],
        )
    };
    let good = assertion("svc", &token_url, "5m", &private, "once");
    let (s, t, _) = grant(&good, None);
    assert_eq!(s, 200, "{t}");
    refused(grant(&good, None), 400, "invalid_grant");
    refused(
        grant(
            &assertion(
                "svc",
                "https://elsewhere.example/token",
                "5m",
                &private,
                "a",
            ),
            None,
        ),
        400,
        "invalid_grant",
    );
    refused(
        grant(&assertion("svc", &token_url, "-1m", &private, "b"), None),
        400,
        "invalid_grant",
    );
    let other = crate::jose::key_file("rfc7515-A.4.private.pem");
    refused(
        grant(&assertion("svc", &token_url, "5m", &other, "c"), None),
        400,
        "invalid_grant",
    );
    refused(
        grant(&assertion("nobody", &token_url, "5m", &private, "d"), None),
        400,
        "invalid_grant",
    );
    refused(
        grant(
            &assertion("svc", &token_url, "5m", &private, "e"),
            Some(("web", "web-secret")),
        ),
        400,
        "invalid_grant",
    );
    // In discovery.
    let disc: Value = serde_json::from_slice(
        &crate::serve::http()
            .get(format!("{url}/.well-known/openid-configuration"))
            .send()
            .expect("discovery")
            .bytes()
            .expect("body"),
    )
    .expect("json");
    assert!(
        disc["grant_types_supported"].as_array().is_some_and(|g| g
            .iter()
            .any(|v| v == "urn:ietf:params:oauth:grant-type:jwt-bearer")),
        "{disc}"
    );
}

/// The device authorization grant (RFC 8628): openid-client starts it against an IdP run with
/// nothing beyond `--idp`, a script approves the user code with the documented POST, and the
/// polling client gets tokens that `jwkit verify-jwt --issuer` verifies. The RFC's answers:
/// authorization_pending, slow_down (a poll within the interval), access_denied, expired_token,
/// invalid_grant for another client's device code; a user code answered once.
#[test]
fn the_device_grant_answers_as_rfc_8628_says() {
    use std::io::BufRead;
    let Some(()) = crate::idp::node() else { return };
    let env = Env::new();
    std::fs::write(
        env.path("idp.toml"),
        "[tokens]\ndevice = \"6s\"\ndevice_interval = \"2s\"\n\n[[clients]]\nid = \"tv\"\n\n[[clients]]\nid = \"other\"\n\n[[users]]\nname = \"alice\"\n",
    )
    .expect("config");
    let configured = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--idp-config", "idp.toml", "--alg", "ES256"],
    );
    let open = Server::start(&env, &env.path("data2"), &["--idp"]);
    // openid-client against the open IdP.
    let mut node = std::process::Command::new("node")
        .arg(crate::idp::idp_dir().join("device.mjs"))
        .args([open.url.as_str(), "tv-app"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    let mut lines = std::io::BufReader::new(node.stdout.take().expect("stdout")).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    let user_code = first["user_code"].as_str().expect("user_code").to_string();
    assert_eq!(first["verification_uri"], format!("{}/device", open.url));
    assert_eq!(
        first["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", open.url),
        "the user code in the URI's query, nothing else"
    );
    let approve = |url: &str, pairs: &[(&str, &str)]| -> (u16, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let resp = crate::serve::http()
            .post(format!("{url}/device"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .expect("post");
        (resp.status().as_u16(), resp.text().expect("text"))
    };
    // Typed as a person would: lower case, no dash.
    let typed = user_code.replace('-', "").to_lowercase();
    let (s, page) = approve(&open.url, &[("user_code", &typed), ("username", "dana")]);
    assert_eq!(s, 200, "{page}");
    let second: Value =
        serde_json::from_str(&lines.next().expect("tokens").expect("read")).expect("json");
    let status = node.wait().expect("node");
    assert!(status.success(), "openid-client failed");
    let access = second["access_token"].as_str().expect("access");
    assert_eq!(second["claims"]["sub"], "dana");
    assert!(second["refresh_token"].is_string());
    let run = crate::idp::verify(
        &env,
        &open.url,
        access,
        &["--aud", "tv-app", "--sub", "dana"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    let (s, _) = approve(
        &open.url,
        &[("user_code", &user_code), ("username", "dana")],
    );
    assert_eq!(s, 400, "a user code is answered once");

    // The RFC's answers, one by one, on the configured IdP.
    let url = configured.url.clone();
    let start = |client: &str| -> Value {
        let (s, v, _) = form(
            &format!("{url}/device_authorization"),
            None,
            &[("client_id", client)],
        );
        assert_eq!(s, 200, "{v}");
        v
    };
    let poll = |client: &str, device_code: &str| {
        form(
            &format!("{url}/token"),
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", client),
                ("device_code", device_code),
            ],
        )
    };
    let d = start("tv");
    assert_eq!(d["interval"], 2);
    let code = d["device_code"].as_str().expect("device_code");
    refused(poll("tv", code), 400, "authorization_pending");
    refused(poll("tv", code), 400, "slow_down");
    refused(poll("other", code), 400, "invalid_grant");
    std::thread::sleep(Duration::from_millis(2100));
    refused(poll("tv", code), 400, "authorization_pending");
    let (s, page) = approve(
        &url,
        &[
            ("user_code", d["user_code"].as_str().expect("uc")),
            ("username", "mallory"),
        ],
    );
    assert_eq!(s, 400, "not a configured user: {page}");
    let (s, _) = approve(
        &url,
        &[
            ("user_code", d["user_code"].as_str().expect("uc")),
            ("action", "deny"),
        ],
    );
    assert_eq!(s, 200);
    // The answer is read before the interval is: no wait.
    refused(poll("tv", code), 400, "access_denied");
    // A cross-site form cannot approve.
    let d = start("tv");
    let resp = crate::serve::http()
        .post(format!("{url}/device"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body(format!(
            "user_code={}&username=alice",
            d["user_code"].as_str().expect("uc")
        ))
        .send()
        .expect("post");
    assert_eq!(resp.status().as_u16(), 403);
    // Too late: expired_token.
    std::thread::sleep(Duration::from_millis(6200));
    refused(
        poll("tv", d["device_code"].as_str().expect("dc")),
        400,
        "expired_token",
    );
    refused(poll("tv", "no-such-code"), 400, "invalid_grant");
    // Approved in time: tokens once.
    let d = start("tv");
    let (s, _) = approve(
        &url,
        &[
            ("user_code", d["user_code"].as_str().expect("uc")),
            ("username", "alice"),
        ],
    );
    assert_eq!(s, 200);
    let (s, t, _) = poll("tv", d["device_code"].as_str().expect("dc"));
    assert_eq!(s, 200, "{t}");
    refused(
        poll("tv", d["device_code"].as_str().expect("dc")),
        400,
        "invalid_grant",
    );
}
