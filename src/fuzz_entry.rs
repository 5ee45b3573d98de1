//! The entry points where jwkit takes outside bytes, one function each, for the fuzz targets
//! in `fuzz/` and for `tests/fuzz_corpus.rs`, which replays every committed corpus file and
//! regression through the same functions on stable Rust. Each must return for any input, never
//! panic; where a property is cheap to state (a re-serialised key loads back as the same key,
//! a walk that replaces nothing writes the input back) it is asserted, so a fuzzer finds its
//! violations as crashes. Not a public API.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::crypto::verify::{Policy, TrustedKeys, verify_token};
use crate::crypto::{self, Alg, Hash, JwkSet, Key, KeyMeta, jws};
use crate::scan::{self, Scanner};

/// The moment every target judges times at: fixed, so a crash reproduces.
pub const NOW: i64 = 1_764_000_000;

/// The HMAC secret the structure-aware target signs with (32 bytes: HS256's minimum).
const SECRET: &[u8; 32] = b"jwkit-fuzz-secret-0123456789abcd";

fn hmac_key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        Key::hmac(
            SECRET.to_vec(),
            KeyMeta {
                kid: Some("fuzz-hmac".into()),
                ..KeyMeta::default()
            },
        )
        .expect("a 32-byte secret")
    })
}

/// The fixed key set the verification targets verify against: the HMAC key alone.
fn trusted() -> &'static TrustedKeys {
    static TRUSTED: OnceLock<TrustedKeys> = OnceLock::new();
    TRUSTED.get_or_init(|| TrustedKeys::single(hmac_key(), &[]).expect("the fuzz key"))
}

/// Key loading: PEM, DER, JWK, JWKS, store records. A key that loads round-trips through its
/// JWK with the same thumbprint.
pub fn keys(data: &[u8]) {
    if let Ok(key) = crypto::load_key(data, None) {
        let jwk = Value::Object(key.to_jwk()).to_string();
        let again = crypto::load_key(jwk.as_bytes(), None)
            .unwrap_or_else(|e| panic!("a loaded key's own JWK does not load: {e}"));
        assert_eq!(
            key.thumbprint(Hash::Sha256),
            again.thumbprint(Hash::Sha256),
            "the JWK round trip changed the key"
        );
        if let Ok(public) = key.public() {
            let _ = public.to_spki_der();
        }
    }
    if let Ok(set) = JwkSet::parse(data) {
        let _ = set.kid_list();
        let _ = TrustedKeys::from_fetched_set(set, &[]);
    }
}

/// JWS compact parsing of pasted text (quotes, `Bearer`, line breaks).
pub fn jws(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pasted = jws::pasted(text);
    if let Ok(c) = jws::Compact::parse(&pasted.token) {
        let _ = c.claims();
    }
}

fn policies() -> [Policy; 3] {
    [
        Policy {
            any_aud: true,
            ..Policy::default()
        },
        Policy {
            iss: Some("https://issuer.example".into()),
            aud: vec!["api".into()],
            sub: Some("alice".into()),
            typ: Some("JWT".into()),
            require: vec!["jti".into(), "iat".into()],
            leeway: i64::MAX,
            ..Policy::default()
        },
        Policy {
            raw: true,
            ignore_exp: true,
            algs: vec![Alg::HS256, Alg::HS512],
            ..Policy::default()
        },
    ]
}

/// Full verification of an arbitrary token against a fixed key set.
pub fn verify(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for policy in &policies() {
        for now in [NOW, i64::MIN, i64::MAX] {
            let _ = verify_token(text, trusted(), policy, now);
        }
    }
}

/// Structure-aware verification: the input is a header and a claims document (split at the
/// first 0xff byte), signed with the known key, so the claim checks are reached rather than
/// stopped at the signature. What verifies has exactly the payload that was signed.
pub fn verify_structured(data: &[u8]) {
    let (header, claims) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"{\"alg\":\"HS256\",\"kid\":\"fuzz-hmac\"}"[..], data),
    };
    let b64 = |b: &[u8]| crypto::b64::encode(b);
    let input = format!("{}.{}", b64(header), b64(claims));
    let Ok(sig) = crypto::sign(Alg::HS256, hmac_key(), input.as_bytes()) else {
        return;
    };
    let token = format!("{input}.{}", b64(&sig));
    for policy in &policies() {
        for now in [NOW, 0, i64::MIN, i64::MAX] {
            if let Ok(v) = verify_token(&token, trusted(), policy, now) {
                assert_eq!(
                    v.payload, claims,
                    "a verified payload differs from the signed one"
                );
                assert_eq!(v.alg, Some(Alg::HS256));
            }
        }
    }
}

/// The `resign --scan` scanner over any text, nested base64 documents included: a walk that
/// replaces nothing writes the input back byte for byte; one that replaces every token (with a
/// token of another length) is then fed to the HAR size fix-up and the HTTP framing.
pub fn scan(data: &[u8]) {
    for nested in [false, true] {
        let scanner = Scanner {
            only: Vec::new(),
            nested,
        };
        let mut same = Vec::new();
        let changed = scanner.walk(data, &mut |_| None, Some(&mut same));
        assert!(!changed, "a walk that replaced nothing reported a change");
        assert!(
            same == data,
            "a walk that replaced nothing changed the text"
        );
        let mut out = Vec::new();
        scanner.walk(
            data,
            &mut |occ| {
                assert!(!occ.token.is_empty());
                Some("eyJhbGciOiJIUzI1NiJ9.e30.c2ln".to_owned())
            },
            Some(&mut out),
        );
        if scan::har::looks_like_har(data) {
            let _ = scan::har::fix_sizes(data, &out);
        }
    }
    if scan::http::looks_like_http(data) {
        http_lengths(data);
    }
    stream_cuts(data);
    let _ = scan::decode_document(data);
    for start in [0, data.len() / 2, data.len()] {
        let _ = scan::place::place_of(data, start);
    }
}

/// The HTTP framing and its length rewrite: every body a declared length framed gets a token
/// of another length; read again, each such message declares its new body's length in one
/// field, and every other byte is where it was.
fn http_lengths(data: &[u8]) {
    let pieces = scan::http::pieces(data);
    let total: usize = pieces.iter().map(|p| p.head.len() + p.body.len()).sum();
    assert_eq!(total, data.len(), "every byte is in exactly one piece");
    let body = b"eyJhbGciOiJIUzI1NiJ9.e30.c2ln";
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for p in &pieces {
        let fixed = p
            .length
            .as_ref()
            .is_some_and(|l| l.declared == p.body.len())
            && !p.frozen_body
            && !p.conflict;
        let new_body: &[u8] = if fixed { body } else { &data[p.body.clone()] };
        scan::http::write_head(data, p, new_body.len(), &mut out, &mut |part, o| {
            o.extend_from_slice(part)
        });
        out.extend_from_slice(new_body);
        expected.push((fixed, new_body.len()));
    }
    // Read again: the rewritten messages frame as they did, with their new lengths.
    let again = scan::http::pieces(&out);
    let mut messages = again.iter().filter(|p| p.length.is_some());
    for (fixed, len) in expected {
        if fixed {
            let Some(p) = messages.next() else {
                panic!("a rewritten message lost its length");
            };
            let l = p.length.as_ref().expect("a length");
            assert_eq!(l.declared, len, "the new length is declared");
            assert!(l.repeats.is_empty(), "repeated lengths collapse");
            assert_eq!(p.body.len(), len);
        }
    }
}

/// The streaming cut, with limits small enough for fuzzed inputs to cross them: no part yields
/// a token the whole text does not hold there, and every token the limits leave room for (a
/// carried run and the token within one line's length, as `stream::LIMITS` always do) is
/// found in its part.
fn stream_cuts(data: &[u8]) {
    use scan::stream::{Cut, Limits, text_cut};
    let limits = Limits {
        line: 160,
        carry: 16,
        token: crate::crypto::jws::MAX_TOKEN_BYTES + 1,
    };
    let scanner = Scanner::default();
    let whole: Vec<(usize, usize)> = scanner.find(data).token_spans().to_vec();
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let (mut at, mut have, mut open_start) = (0, 0, false);
    // Read 7 bytes at a time, as a reader might deliver them.
    loop {
        have = (have + 7).min(data.len());
        let eof = have == data.len();
        let buf = &data[at..have];
        match text_cut(buf, eof, &limits) {
            Cut::More => continue,
            Cut::At { at: cut, open_end } => {
                assert!(cut <= buf.len());
                let part = &buf[..cut];
                let found = scanner.find_in_part(part, open_start, open_end);
                parts.extend(found.token_spans().iter().map(|&(s, e)| (at + s, at + e)));
                open_start = open_end;
                at += cut;
                if eof && at == data.len() {
                    break;
                }
                assert!(cut > 0 || eof, "a cut makes progress");
            }
        }
    }
    for span in &parts {
        assert!(
            whole.contains(span),
            "a part yielded a token the whole text does not hold there: {span:?}"
        );
    }
    for &(s, e) in &whole {
        if limits.carry + (e - s) + 2 < limits.line {
            assert!(
                parts.contains(&(s, e)),
                "a token was lost to a cut: {s}..{e}"
            );
        }
    }
}

/// WHEN and duration parsing, at ordinary and extreme moments.
pub fn when(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for now in [NOW, 0, i64::MIN, i64::MAX] {
        let _ = crate::when::parse_when(text, now);
    }
    if let Ok(secs) = crate::when::parse_duration(text) {
        let _ = crate::when::span(secs.unsigned_abs());
        let _ = crate::when::relative(NOW.saturating_add(secs), NOW);
    }
}

/// A JWKS fetch's response: header lines (`Name: value`), a blank line, the body. The cache
/// policy comes from the headers, the key set from the body, as `verify-jwt --jwks-url` takes
/// them.
pub fn jwks_response(data: &[u8]) {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &[][..]), |i| (&data[..i], &data[i + 2..]));
    let mut headers = reqwest::header::HeaderMap::new();
    for line in split.0.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(&line[..colon]),
            reqwest::header::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    let age = crate::jwks_client::max_age(&headers);
    assert!((0..=24 * 3600).contains(&age), "max-age {age} out of range");
    if let Ok(set) = JwkSet::parse(split.1) {
        let _ = TrustedKeys::from_fetched_set(set, &[]);
    }
}

struct Served {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

const UPLOAD_TOKEN: &str = "fuzz-upload-token";

/// The identity provider the server target talks to: a confidential and a public client, a
/// user with a password, one with an injected failure, the password grant on.
fn fuzz_idp() -> crate::server::idp::Idp {
    let config = crate::server::idp::config::parse(
        r#"
password_grant = true
claims = { tenant = "${client_id}" }
[[clients]]
id = "web"
secret = "web-secret"
redirect_uris = ["https://app.example/cb"]
claims = { who = "${sub}" }
[[clients]]
id = "spa"
redirect_uris = ["https://app.example/spa"]
[[users]]
name = "alice"
password = "pw"
claims = { email = "alice@example.com" }
[[users]]
name = "mallory"
fail = { error = "access_denied" }
"#,
        "fuzz",
    )
    .expect("the fuzz IdP configuration");
    crate::server::idp::Idp::new(
        crate::server::idp::config::check(config).expect("checked"),
        false,
        false,
        crate::server::cors::Origins::Any,
        None,
    )
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary data directory");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let store = crate::server::store::dir::DirStore::open(dir.path()).expect("a store");
        let key = crate::server::new_signing_key(Alg::ES256).expect("a signing key");
        use crate::server::store::Store;
        runtime
            .block_on(store.rotate(key, NOW, 3600, NOW, 0))
            .expect("an active key");
        let expired = crate::server::new_signing_key(Alg::ES256).expect("a key");
        let paths = crate::server::Paths::new(Some("https://issuer.example/realms/x/"), &[])
            .expect("paths");
        let app = crate::server::App {
            store: Box::new(store),
            request_timeout: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(5),
            upload_token: Some(crate::server::token_digest(UPLOAD_TOKEN)),
            jwks_uri: paths.jwks_uri("https://issuer.example/realms/x/"),
            issuer: "https://issuer.example/realms/x/".into(),
            max_age: 300,
            issue: Some(crate::server::Issuer {
                ttl: 900,
                alg: Alg::ES256,
                expired_kid: expired.kid_or_thumbprint(),
                expired_key: crypto::SigningKey::new(&expired, Alg::ES256).expect("signer"),
                allow_override: false,
                grace: 3600,
                defaults: serde_json::Map::new(),
            }),
            paths,
            idp: Some(fuzz_idp()),
            signer: std::sync::Mutex::new(None),
            tenants: Default::default(),
        };
        Served {
            runtime,
            router: crate::server::router(Arc::new(app)),
            _dir: dir,
        }
    })
}

/// The server's request handling for what clients send: the first byte picks the endpoint
/// (upload, `/auth`, delete; with its high bit, the identity provider's `/token`,
/// `/authorize`, `/introspect`, `/revoke`, `/userinfo`, `/logout`) and the content type; up to
/// the first 0xff byte is the query string, the rest the body (and the bearer token of
/// `/userinfo`). Every 4xx answer is a JSON object with an `error` string, or the identity
/// provider's HTML page; no 5xx but 503.
pub fn server(data: &[u8]) {
    use tower::ServiceExt;
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    let query: String = String::from_utf8_lossy(query)
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '#')
        .collect();
    // The high bit picks the identity provider's endpoints.
    let (method, path) = match (pick & 0x80 != 0, pick % 8) {
        (false, 0 | 1 | 4 | 5) => ("POST", "/auth"),
        (false, 2 | 6) => ("POST", "/jwks"),
        (false, _) => ("DELETE", "/jwks/"),
        (true, 0 | 1) => ("POST", "/token"),
        (true, 2) => ("GET", "/authorize"),
        (true, 3) => ("POST", "/authorize"),
        (true, 4) => ("POST", "/introspect"),
        (true, 5) => ("POST", "/revoke"),
        (true, 6) => ("GET", "/userinfo"),
        (true, _) => ("GET", "/logout"),
    };
    let mut uri = path.to_owned();
    if method == "DELETE" {
        uri.push_str(&crate::crypto::b64::encode(&body[..body.len().min(40)]));
    }
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let content_type = match (pick / 4) % 3 {
        0 => "application/json",
        1 => "application/x-www-form-urlencoded",
        _ => "text/plain",
    };
    let Ok(req) = axum::http::Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", content_type)
        .header(
            "authorization",
            match (path, pick % 2) {
                // web:web-secret
                ("/token" | "/introspect" | "/revoke", 0) => {
                    "Basic d2ViOndlYi1zZWNyZXQ=".to_string()
                }
                ("/userinfo", _) => format!("Bearer {}", String::from_utf8_lossy(body).trim()),
                _ => format!("Bearer {UPLOAD_TOKEN}"),
            },
        )
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return;
    };
    let s = served();
    s.runtime.block_on(async {
        let resp = s.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let html = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("a bounded body");
        // A 4xx is a JSON object with an error string, or the identity provider's HTML page
        // for a browser.
        if status.is_client_error() && !html {
            let v: Map<String, Value> =
                serde_json::from_slice(&bytes).expect("a 4xx body is a JSON object");
            assert!(v.get("error").is_some_and(Value::is_string), "{v:?}");
        }
        assert!(
            !status.is_server_error() || status.as_u16() == 503,
            "{status}"
        );
    });
}

/// The keys the JWE target decrypts with: fixed symmetric keys (16 and 32 bytes), a password,
/// and a P-256 agreement key, so the seeds made with them reach the content decryption.
fn jwe_keys() -> &'static [crypto::jwe::DecryptKey] {
    static KEYS: OnceLock<Vec<crypto::jwe::DecryptKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let jwk = |text: &str| {
            let o: Map<String, Value> = serde_json::from_str(text).expect("a fixed JWK");
            crypto::jwe::from_jwk(&o)
                .expect("a fixed key")
                .expect("a private key")
        };
        vec![
            jwk(JWE_OCT16),
            jwk(JWE_OCT32),
            jwk(JWE_P256),
            crypto::jwe::DecryptKey::password(JWE_PASSWORD),
        ]
    })
}

/// The fixed JWE keys (seeds in `fuzz/corpus/jwe/` are made with them).
pub const JWE_OCT16: &str = r#"{"kty":"oct","k":"Zm9yLXRoZS1qd2UtZnV6eg"}"#;
pub const JWE_OCT32: &str = r#"{"kty":"oct","k":"and0LWZ1enotMzItYnl0ZS1rZXktMDEyMzQ1Njc4OWE"}"#;
pub const JWE_P256: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;
pub const JWE_PASSWORD: &[u8] = b"fuzz-password";

/// JWE decryption, compact and JSON: returns for any input. What decrypts encrypts back
/// (A256KW, A128CBC-HS256) to a token that decrypts to the same bytes.
pub fn jwe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opts = crypto::jwe::Options::default();
    let Ok(done) = crypto::jwe::decrypt(text, jwe_keys(), &opts) else {
        return;
    };
    let o: Map<String, Value> = serde_json::from_str(JWE_OCT32).expect("a fixed JWK");
    let key = crypto::jwe::encrypt_key_from_jwk(&o).expect("a fixed key");
    let again = crypto::jwe::encrypt(&done.plaintext, &key, "A256KW", "A128CBC-HS256", Map::new())
        .expect("encrypting what decrypted");
    let back = crypto::jwe::decrypt(&again, jwe_keys(), &opts).expect("decrypting our own");
    assert_eq!(back.plaintext.as_slice(), done.plaintext.as_slice());
}

/// DPoP proofs (`crypto::dpop::check`, which `serve --idp` runs on every `DPoP` header): any
/// text is a proof that holds or an error, never a panic; a proof that holds names a SHA-256
/// thumbprint (43 base64url characters) and a jti.
pub fn dpop(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let accepts = |n: &str| n == "server-nonce";
    for nonces in [None, Some(&accepts as &dyn Fn(&str) -> bool)] {
        let expect = crypto::dpop::Expect {
            htm: "POST",
            htu: "https://as.example/token",
            now: NOW,
            max_age: 300,
            access_token: None,
            nonces,
        };
        if let Ok(p) = crypto::dpop::check(text, &expect) {
            assert_eq!(p.jkt.len(), 43, "a SHA-256 thumbprint");
            assert!(!p.jti.is_empty());
        }
    }
}
