//! The identity provider for today's OAuth clients: dynamic client registration (RFC 7591,
//! RFC 7592), DPoP (RFC 9449, on the server and in `generate-jwt --dpop-proof` / `verify-jwt
//! --dpop`), several issuers on one server, RFC 8707 resource indicators; with panva's
//! openid-client and the MCP TypeScript SDK as the clients.

use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::serve::{Server, http};
use crate::util::Env;

fn post_json(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = http()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().expect("post");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A form POST with optional headers: status, JSON body, the DPoP-Nonce header.
fn form(
    url: &str,
    headers: &[(&str, &str)],
    pairs: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut req = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("post");
    let status = resp.status().as_u16();
    let nonce = resp
        .headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        nonce,
    )
}

/// A key made by `jwkit generate-key` (EC P-256, a JWK) at `name`.
pub(crate) fn ec_jwk(env: &Env, name: &str) {
    env.ok(&["generate-key", "--type", "ec", "-f", "jwk", "--out", name]);
}

/// `jwkit generate-jwt --dpop-proof` with `key` for METHOD URL (and extra flags).
pub(crate) fn proof(env: &Env, key: &str, htm: &str, htu: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "generate-jwt",
        "--dpop-proof",
        "--key-file",
        key,
        "--htm",
        htm,
        "--htu",
        htu,
    ];
    args.extend_from_slice(extra);
    env.ok(&args).trim().to_string()
}

/// A client that never follows a redirect (the redirect URIs here are never contacted).
fn no_redirect() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn verify(env: &Env, issuer: &str, token: &str) -> crate::util::Run {
    env.run(&[
        "verify-jwt",
        "--issuer",
        issuer,
        "--allow-http",
        "--any-aud",
        "--json",
        token,
    ])
}

/// openid-client, with nothing configured beyond `--idp`: registers itself, runs PAR with
/// code and PKCE and gets DPoP-bound tokens whose cnf.jkt is its proof key's thumbprint (computed
/// by `jwkit key thumbprint`), uses them at userinfo and refreshes them, runs the device grant,
/// discovers a second issuer under a path, and (a second client, registered with its own
/// key) sends a signed request object (RFC 9101). Every access token verifies with `jwkit
/// verify-jwt --issuer` at its own issuer, and not at the other.
#[test]
fn openid_client_registers_binds_dpop_pushes_polls_and_finds_a_second_issuer() {
    let Some(()) = crate::idp::node() else { return };
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--idp"]);
    let url = server.url.clone();
    let mut node = Command::new("node")
        .arg(crate::idp::idp_dir().join("modern.mjs"))
        .args([url.as_str(), "dana"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let mut lines = std::io::BufReader::new(node.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("read");
    let started: Value = serde_json::from_str(&first).expect("device json");
    let user_code = started["user_code"].as_str().expect("user_code");
    let (status, _, _) = form(
        &format!("{url}/device"),
        &[],
        &[("user_code", user_code), ("username", "dana")],
    );
    assert_eq!(status, 200, "approving the device");
    let last = lines.next().expect("the result").expect("read");
    let out = node.wait_with_output().expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&last).expect("result json");
    assert!(
        r["par_request_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("urn:ietf:params:oauth:request_uri:"))
    );
    // The proof key's thumbprint, by jwkit.
    std::fs::write(env.path("dpop.jwk"), r["dpop_jwk"].to_string()).expect("w");
    let jkt = env.ok(&["key", "thumbprint", "dpop.jwk"]);
    for which in ["code", "refreshed", "device"] {
        assert_eq!(
            r[which]["token_type"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("dpop"),
            "{which}"
        );
        let token = r[which]["access_token"].as_str().expect("token");
        let run = verify(&env, &url, token);
        assert_eq!(run.code, 0, "{which}: {}", run.stderr);
        let v: Value = serde_json::from_str(&run.stdout).expect("json");
        assert_eq!(
            v["claims"]["cnf"]["jkt"],
            jkt.trim(),
            "{which} bound to the proof key"
        );
        assert_eq!(v["claims"]["client_id"], r["client_id"], "{which}");
    }
    assert_eq!(r["userinfo"]["sub"], "dana");
    // The second issuer: its own, and its tokens are not the first's (nor the other way).
    let second = format!("{url}/tenant-b");
    assert_eq!(r["second"]["issuer"], second.as_str());
    let token_b = r["second"]["access_token"].as_str().expect("token");
    assert_eq!(verify(&env, &second, token_b).code, 0);
    assert_eq!(
        verify(&env, &url, token_b).code,
        1,
        "tenant-b's token at the main issuer"
    );
    let main = r["code"]["access_token"].as_str().expect("token");
    assert_eq!(
        verify(&env, &second, main).code,
        1,
        "the main token at tenant-b"
    );
    // JAR: the authorization request travelled as a signed request object only.
    assert_eq!(r["jar"]["request_in_url"], true);
    assert_eq!(
        r["jar"]["url_params"],
        json!(["client_id", "request"]),
        "{}",
        r["jar"]
    );
    let run = verify(
        &env,
        &url,
        r["jar"]["access_token"].as_str().expect("token"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v["claims"]["client_id"], r["jar"]["client_id"]);
    assert_eq!(v["claims"]["sub"], "dana");
}

/// Every DPoP error RFC 9449 names, at the token endpoint and userinfo: a wrong htm or htu, a
/// stale iat, a replayed jti, a proof by another key than the token's (and the binding's
/// refresh token), a bound token presented as Bearer; and with `dpop_nonce = true`, the
/// server's nonce (use_dpop_nonce, then accepted with it). `verify-jwt --dpop` checks the
/// same things offline.
#[test]
fn dpop_proofs_are_checked_as_rfc_9449_says() {
    let env = Env::new();
    std::fs::write(
        env.path("idp.toml"),
        "dpop_nonce = true\n\n[[clients]]\nid = \"svc\"\nsecret = \"s\"\ngrants = [\"client_credentials\"]\n",
    )
    .expect("w");
    let server = Server::start(&env, &env.path("data"), &["--idp"]);
    let nonced = Server::start(
        &env,
        &env.path("data2"),
        &["--idp", "--idp-config", "idp.toml"],
    );
    let url = server.url.clone();
    let token_url = format!("{url}/token");
    for k in ["a", "b"] {
        ec_jwk(&env, &format!("{k}.jwk"));
    }
    let jkt_a = env.ok(&["key", "thumbprint", "a.jwk"]).trim().to_string();
    let cc = [
        ("grant_type", "client_credentials"),
        ("client_id", "svc"),
        ("client_secret", "s"),
    ];
    // A good proof: a bound token.
    let p = proof(&env, "a.jwk", "POST", &token_url, &[]);
    let (s, body, _) = form(&token_url, &[("DPoP", &p)], &cc);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let at = body["access_token"].as_str().expect("at").to_string();
    // The same proof again: its jti was used.
    let (s, body, _) = form(&token_url, &[("DPoP", &p)], &cc);
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    // Wrong method, wrong URI, stale, from the future, no typ, HMAC.
    let bad = [
        proof(&env, "a.jwk", "GET", &token_url, &[]),
        proof(&env, "a.jwk", "POST", &format!("{url}/par"), &[]),
        proof(&env, "a.jwk", "POST", &token_url, &["--iat", "-10m"]),
        proof(&env, "a.jwk", "POST", &token_url, &["--iat", "5m"]),
    ];
    for (i, p) in bad.iter().enumerate() {
        let (s, body, _) = form(&token_url, &[("DPoP", p)], &cc);
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "case {i}: {body}"
        );
    }
    // A token with typ JWT is no proof.
    let not_proof = env.ok(&[
        "generate-jwt",
        "--key-file",
        "a.jwk",
        "--claim",
        "htm=POST",
        "--claim",
        &format!("htu={token_url}"),
    ]);
    let (s, body, _) = form(&token_url, &[("DPoP", not_proof.trim())], &cc);
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{body}"
    );
    // Userinfo: the proof by key b for a token bound to key a; the token as Bearer; then right.
    let ui = format!("{url}/userinfo");
    let get = |auth: String, dpop: Option<String>| {
        let mut req = http().get(&ui).header("authorization", auth);
        if let Some(p) = dpop {
            req = req.header("DPoP", p);
        }
        let resp = req.send().expect("get");
        (resp.status().as_u16(), resp.text().unwrap_or_default())
    };
    // client_credentials tokens have no user: the answer is a 200 with sub, or 401.
    let pb = proof(&env, "b.jwk", "GET", &ui, &["--ath", &at]);
    let (s, text) = get(format!("DPoP {at}"), Some(pb));
    assert_eq!(s, 401, "{text}");
    let (s, text) = get(format!("Bearer {at}"), None);
    assert_eq!(s, 401, "a DPoP-bound token as Bearer: {text}");
    let pa = proof(&env, "a.jwk", "GET", &ui, &["--ath", &at]);
    let (s, text) = get(format!("DPoP {at}"), Some(pa));
    assert_eq!(s, 200, "{text}");
    // Introspection shows the binding.
    let (s, body, _) = form(
        &format!("{url}/introspect"),
        &[],
        &[("token", &at), ("client_id", "svc"), ("client_secret", "s")],
    );
    assert_eq!(s, 200);
    assert_eq!(
        (body["token_type"].as_str(), body["cnf"]["jkt"].as_str()),
        (Some("DPoP"), Some(jkt_a.as_str())),
        "{body}"
    );
    // verify-jwt --dpop: the proof for this token and request; another key's; another URI.
    let offline = |key: &str, htu: &str| {
        let p = proof(&env, key, "GET", htu, &["--ath", &at]);
        env.run(&[
            "verify-jwt",
            "--issuer",
            &url,
            "--allow-http",
            "--any-aud",
            "--json",
            "--dpop",
            &p,
            "--htm",
            "GET",
            "--htu",
            &ui,
            &at,
        ])
    };
    assert_eq!(offline("a.jwk", &ui).code, 0);
    for run in [
        offline("b.jwk", &ui),
        offline("a.jwk", &format!("{url}/elsewhere")),
    ] {
        assert_eq!(run.code, 1, "{}", run.stderr);
        let v: Value = serde_json::from_str(&run.stdout).expect("json");
        assert_eq!(v["error"]["kind"], "dpop_invalid", "{v}");
    }
    // A server that hands out nonces: use_dpop_nonce with one, then accepted with it.
    let n_url = format!("{}/token", nonced.url);
    let p = proof(&env, "a.jwk", "POST", &n_url, &[]);
    let (s, body, nonce) = form(&n_url, &[("DPoP", &p)], &cc);
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{body}"
    );
    let nonce = nonce.expect("a DPoP-Nonce header");
    let p = proof(
        &env,
        "a.jwk",
        "POST",
        &n_url,
        &["--claim", &format!("nonce={nonce}")],
    );
    let (s, body, next) = form(&n_url, &[("DPoP", &p)], &cc);
    assert_eq!(s, 200, "{body}");
    assert!(next.is_some(), "the answer hands out the next nonce");
    let p = proof(&env, "a.jwk", "POST", &n_url, &["--claim", "nonce=made-up"]);
    let (s, body, _) = form(&n_url, &[("DPoP", &p)], &cc);
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{body}"
    );
}

/// Registration (RFC 7591) gated by `--registration-token`, metadata checked, the client then
/// as strict as a configured one, and RFC 7592 read, update and delete with the registration
/// access token; registered clients live in the store.
#[test]
fn clients_register_and_manage_themselves_as_rfc_7591_and_7592_say() {
    let env = Env::new();
    std::fs::write(env.path("initial.token"), "initial-access-token-123\n").expect("w");
    let mut perms = std::fs::metadata(env.path("initial.token"))
        .expect("m")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(env.path("initial.token"), perms).expect("chmod");
    let server = Server::start(
        &env,
        &env.path("data"),
        &["--idp", "--registration-token", "initial.token"],
    );
    let reg = format!("{}/register", server.url);
    let meta = json!({
        "client_name": "app",
        "redirect_uris": ["https://app.test/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
    });
    assert_eq!(
        post_json(&reg, None, &meta).0,
        401,
        "no initial access token"
    );
    assert_eq!(post_json(&reg, Some("wrong"), &meta).0, 401);
    let (s, client) = post_json(&reg, Some("initial-access-token-123"), &meta);
    assert_eq!(s, 201, "{client}");
    let id = client["client_id"].as_str().expect("id").to_string();
    let secret = client["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let rat = client["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_string();
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(client["registration_client_uri"], format!("{reg}/{id}"));
    // Metadata refused, each with its RFC 7591 error.
    for (body, error) in [
        (
            json!({"redirect_uris": ["https://a.test/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.test/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.test/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.test/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.test/cb"], "jwks": {"keys": []}, "jwks_uri": "https://a.test/jwks"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.test/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
    ] {
        let (s, v) = post_json(&reg, Some("initial-access-token-123"), &body);
        assert_eq!((s, v["error"].as_str()), (400, Some(error)), "{body}: {v}");
    }
    // The registered client is strict: its redirect URI only, its secret only.
    let authorize = |redirect: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("client_id", id.as_str()),
                ("redirect_uri", redirect),
                ("response_type", "code"),
                ("scope", "openid"),
            ])
            .finish();
        http()
            .get(format!("{}/authorize?{q}", server.url))
            .send()
            .expect("get")
            .status()
            .as_u16()
    };
    assert_eq!(
        authorize("https://evil.test/callback"),
        400,
        "an unregistered redirect_uri is an error page"
    );
    let token = format!("{}/token", server.url);
    let cc = |s: &str| {
        form(
            &token,
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", s),
            ],
        )
        .0
    };
    assert_eq!(cc("wrong"), 401);
    assert_eq!(
        cc(&secret),
        400,
        "client_credentials was not registered: unauthorized_client"
    );
    // RFC 7592: read, update (grant_types now with client_credentials), then the grant works.
    let mgmt = format!("{reg}/{id}");
    let resp = http().get(&mgmt).bearer_auth(&rat).send().expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        http()
            .get(&mgmt)
            .bearer_auth("nope")
            .send()
            .expect("get")
            .status()
            .as_u16(),
        401
    );
    let mut updated = meta.clone();
    updated["client_id"] = id.clone().into();
    updated["grant_types"] = json!(["authorization_code", "client_credentials"]);
    let resp = http()
        .put(&mgmt)
        .bearer_auth(&rat)
        .header("content-type", "application/json")
        .body(updated.to_string())
        .send()
        .expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(cc(&secret), 200, "the secret stays; the new grant works");
    let resp = http()
        .delete(&mgmt)
        .bearer_auth(&rat)
        .send()
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(
        cc(&secret),
        200,
        "open mode: an unknown id is any client again"
    );
    assert_eq!(
        http()
            .get(&mgmt)
            .bearer_auth(&rat)
            .send()
            .expect("get")
            .status()
            .as_u16(),
        401
    );
    // Discovery names the endpoint.
    let doc: Value = serde_json::from_str(
        &http()
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                server.url
            ))
            .send()
            .expect("get")
            .text()
            .expect("text"),
    )
    .expect("json");
    assert_eq!(doc["registration_endpoint"], reg.as_str());
}

/// The MCP TypeScript SDK's client-side OAuth (`@modelcontextprotocol/sdk`) against `serve
/// --idp` with nothing configured: a protected MCP server (the SDK's own, over Streamable
/// HTTP) answers 401 with RFC 9728 metadata naming the IdP; the SDK discovers it, registers
/// itself, authorizes with PKCE S256 and a resource indicator, redeems the code and calls a
/// tool. The access token's aud is the MCP server's URL (RFC 8707), which `jwkit verify-jwt
/// --issuer --aud` confirms.
#[test]
fn the_mcp_sdk_completes_its_authorization_flow() {
    let Some(()) = crate::idp::node() else { return };
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--idp"]);
    let out = Command::new("node")
        .arg(crate::idp::idp_dir().join("mcp.mjs"))
        .args([server.url.as_str(), "erin"])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(r["tool"], "hello erin");
    assert_eq!(r["code_challenge_method"], "S256");
    let resource = r["resource_param"].as_str().expect("a resource indicator");
    let run = env.run(&[
        "verify-jwt",
        "--issuer",
        &server.url,
        "--allow-http",
        "--aud",
        resource,
        "--json",
        r["access_token"].as_str().expect("token"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(
        v["claims"]["client_id"], r["client_id"],
        "the registered client"
    );
    assert!(
        server.log().contains("POST /register 201"),
        "{}",
        server.log()
    );
}

/// Request objects (RFC 9101) made with `jwkit generate-jwt` by a client that registered its
/// key: one signed by that key makes the request (its parameters only); one signed by another
/// key, for another audience, expired, or from a client without keys is an error page. And
/// RFC 8707: a resource indicator that is no absolute URI is invalid_target, as is a token
/// request for another resource than the code was granted for.
#[test]
fn request_objects_and_resource_indicators_are_checked() {
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--idp"]);
    let url = server.url.clone();
    for k in ["client", "other"] {
        env.ok(&[
            "generate-key",
            "--type",
            "ec",
            "-f",
            "jwk",
            "--out",
            &format!("{k}.jwk"),
            "--public-out",
            &format!("{k}.pub.jwk"),
        ]);
    }
    let public: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("client.pub.jwk")).expect("r"))
            .expect("jwk");
    let redirect = "https://app.test/callback";
    let (s, reg) = post_json(
        &format!("{url}/register"),
        None,
        &json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [public]}}),
    );
    assert_eq!(s, 201, "{reg}");
    let id = reg["client_id"].as_str().expect("id").to_string();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let object = |key: &str, aud: &str, extra: &[&str]| {
        let mut args = vec![
            "generate-jwt",
            "--key-file",
            key,
            "--iss",
            &id,
            "--aud",
            aud,
            "--claim-str",
            "response_type=code",
            "--claim-str",
        ];
        let r = format!("redirect_uri={redirect}");
        let c = format!("client_id={id}");
        let ch = format!("code_challenge={challenge}");
        args.push(&r);
        args.extend([
            "--claim-str",
            &c,
            "--claim-str",
            &ch,
            "--claim-str",
            "code_challenge_method=S256",
            "--claim-str",
            "scope=openid",
            "--claim-str",
            "prompt=none",
            "--claim-str",
            "login_hint=dana",
            "--claim-str",
            "state=s1",
        ]);
        args.extend_from_slice(extra);
        env.ok(&args).trim().to_string()
    };
    let authorize = |request: &str, client: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("client_id", client), ("request", request)])
            .finish();
        let resp = no_redirect()
            .get(format!("{url}/authorize?{q}"))
            .send()
            .expect("get");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, location)
    };
    let (s, location) = authorize(&object("client.jwk", &url, &[]), &id);
    assert_eq!(s, 302, "a good request object");
    assert!(
        location.starts_with(redirect)
            && location.contains("code=")
            && location.contains("state=s1"),
        "{location}"
    );
    for (name, jwt, client) in [
        ("another key", object("other.jwk", &url, &[]), id.clone()),
        (
            "another audience",
            object("client.jwk", "https://elsewhere.test", &[]),
            id.clone(),
        ),
        (
            "expired",
            object("client.jwk", &url, &["--expired"]),
            id.clone(),
        ),
        (
            "a client without keys",
            object("client.jwk", &url, &[]),
            "no-keys-client".to_string(),
        ),
    ] {
        let (s, location) = authorize(&jwt, &client);
        assert_eq!(
            (s, location.as_str()),
            (400, ""),
            "{name}: an error page, never a redirect"
        );
    }
    // RFC 8707.
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", "spa"),
            ("redirect_uri", "https://spa.test/cb"),
            ("response_type", "code"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("prompt", "none"),
            ("login_hint", "dana"),
            ("resource", "not a uri"),
        ])
        .finish();
    let resp = no_redirect()
        .get(format!("{url}/authorize?{q}"))
        .send()
        .expect("get");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(location.contains("error=invalid_target"), "{location}");
    let q = q.replace("resource=not+a+uri", "resource=https%3A%2F%2Fapi.test%2F");
    let resp = no_redirect()
        .get(format!("{url}/authorize?{q}"))
        .send()
        .expect("get");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let code = url::Url::parse(&location)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .expect("a code");
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let (s, body, _) = form(
        &format!("{url}/token"),
        &[],
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", &code),
            ("redirect_uri", "https://spa.test/cb"),
            ("code_verifier", verifier),
            ("resource", "https://other.test/"),
        ],
    );
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );
}

/// The debugger page in headless Chromium: the form's defaults sent, the login page filled
/// in, and the callback page shows the token response and the decoded tokens; the access
/// token it shows verifies with `jwkit verify-jwt --issuer`, and a screenshot of the page is
/// kept (in the test's target directory).
#[test]
fn the_debugger_page_works_in_headless_chromium() {
    let _exclusive = crate::util::exclusive();
    let Some(python) = crate::generate_jwt::peer_python() else {
        return;
    };
    let browser_ready = std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
        && Command::new(&python)
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success());
    if !browser_ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium, chromium-driver and selenium are required in CI"
        );
        eprintln!("SKIPPED: no chromium + chromedriver, or no selenium in the venv");
        return;
    }
    let env = Env::new();
    let server = Server::start(&env, &env.path("data"), &["--idp"]);
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("idp-debugger.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&python)
        .arg(crate::idp::idp_dir().join("debugger.py"))
        .args([server.url.as_str(), "frank"])
        .arg(&shot)
        .output()
        .expect("debugger.py");
    assert!(
        out.status.success(),
        "debugger.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        r["login_title"]
            .as_str()
            .is_some_and(|t| t.contains("log in")),
        "{r}"
    );
    assert!(
        r["tokens_title"]
            .as_str()
            .is_some_and(|t| t.contains("tokens")),
        "{r}"
    );
    assert!(
        r["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{}/debugger/callback?", server.url))),
        "{r}"
    );
    assert_eq!(
        r["sections"],
        json!([
            "callback-section",
            "response-section",
            "access_token",
            "id_token",
            "refresh_token"
        ]),
        "{r}"
    );
    let tokens = &r["token_response"];
    let access = tokens["access_token"].as_str().expect("an access token");
    let run = verify(&env, &server.url, access);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).expect("json");
    // What the page decoded is what the token holds.
    assert_eq!(r["decoded_claims"][0], v["claims"], "{r}");
    assert_eq!(v["claims"]["sub"], "frank");
    assert_eq!(v["claims"]["client_id"], "debugger");
    assert_eq!(
        r["decoded_claims"][1]["team"], "debuggers",
        "the id token's typed claim"
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!(
        "screenshot of the debugger: {} ({} bytes)",
        shot.display(),
        png.len()
    );
}
