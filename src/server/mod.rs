//! `jwkit serve`: a JWKS server (DESIGN.md §6). Publishes uploaded public keys and its own
//! token-signing keys, takes authenticated uploads, and issues test tokens.

pub mod cors;
pub mod idp;
pub mod listen;
pub mod store;
pub mod tenant;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::crypto::{self, SigningKey, json as strict_json, jws};
use crate::when;
use store::{AddError, Added, Store, StoreError};

/// Upload bodies larger than this are refused with 413.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024;
/// Members that only private or secret keys have: an upload holding one is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// What the server keeps of the upload token: its SHA-256, compared in constant time with the
/// SHA-256 of the one a request presents.
pub fn token_digest(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

pub struct App {
    pub store: Box<dyn Store>,
    /// A whole request must be read and answered within this.
    pub request_timeout: std::time::Duration,
    /// A body not sent with the upload token must arrive whole within this.
    pub body_timeout: std::time::Duration,
    /// SHA-256 of the upload token; None: uploads, deletes and rotation are disabled.
    pub upload_token: Option<Vec<u8>>,
    /// The issuer exactly as given (or the bound address), for `iss` and discovery.
    pub issuer: String,
    /// The key set's URL in discovery: the issuer's origin and path prefix.
    pub jwks_uri: String,
    pub max_age: i64,
    pub issue: Option<Issuer>,
    pub paths: Paths,
    /// `--idp`: the test identity provider.
    pub idp: Option<idp::Idp>,
    /// The active signing key, parsed once per kid.
    pub signer: std::sync::Mutex<Option<(String, Arc<SigningKey>)>>,
    /// The issuers under path segments (`--idp`), made on first use.
    pub tenants: tenant::Tenants,
}

impl App {
    /// The issuer of the request being answered: the server's, or a tenant's.
    pub fn iss(&self) -> String {
        match tenant::current() {
            Some(t) => t.issuer.clone(),
            None => self.issuer.clone(),
        }
    }

    /// The key set's URL of the request's issuer.
    pub fn jwks_uri_now(&self) -> String {
        match tenant::current() {
            Some(t) => format!("{}/.well-known/jwks.json", t.issuer),
            None => self.jwks_uri.clone(),
        }
    }

    /// The active signing key and its kid, parsed once and kept until the store's active key
    /// changes.
    pub fn signer(&self) -> Option<(String, Arc<SigningKey>)> {
        if let Some(t) = tenant::current() {
            return Some((t.kid.clone(), Arc::clone(&t.signer)));
        }
        let kid = self.store.view().active_kid()?;
        let mut cached = self.signer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached_kid, s)) = cached.as_ref()
            && *cached_kid == kid
        {
            return Some((kid, Arc::clone(s)));
        }
        let active = self.store.active_signing()?;
        let key = crypto::load_key(&serde_json::to_vec(&active.jwk).ok()?, None).ok()?;
        let signer = Arc::new(SigningKey::new(&key, key.default_alg().ok()?).ok()?);
        *cached = Some((active.kid.clone(), Arc::clone(&signer)));
        Some((active.kid, signer))
    }
}

/// A new signing key for `alg`: RSA-2048 for RS*/PS*, the alg's curve for ES*, Ed25519 for
/// EdDSA. Its JWK carries `use: sig` and `alg`, as providers publish them.
pub fn new_signing_key(alg: crypto::Alg) -> anyhow::Result<crypto::Key> {
    let spec = match alg {
        a if a.is_rsa() => crypto::KeySpec::Rsa { bits: 2048 },
        crypto::Alg::EdDSA => crypto::KeySpec::Ed25519,
        a => crypto::KeySpec::Ec(a.curve().ok_or_else(|| {
            anyhow::anyhow!("--alg {a}: not a signature algorithm the server can use")
        })?),
    };
    let meta = crypto::KeyMeta {
        alg: Some(alg),
        use_: Some("sig".into()),
        ..crypto::KeyMeta::default()
    };
    let mut key = crypto::Key::generate(spec, meta, false)?;
    key.meta.kid = Some(key.kid_or_thumbprint());
    Ok(key)
}

/// Token issuing (--issue-tokens).
pub struct Issuer {
    pub ttl: i64,
    pub alg: crypto::Alg,
    /// Signs the `?expired=true` tokens; its public half is never published.
    pub expired_key: SigningKey,
    pub expired_kid: String,
    /// `--allow-claim-override`: requests may set iss, iat, exp and nbf.
    pub allow_override: bool,
    /// How long a retired key stays published: the longest `?ttl` a request may ask for.
    pub grace: i64,
    /// `--token-claims`: claims every /auth token carries; the server's, like `iss`.
    pub defaults: serde_json::Map<String, Value>,
}

/// Body members that are credentials: never copied into a token.
const CREDENTIALS: [&str; 3] = ["password", "client_secret", "client_assertion"];

/// `--token-claims JSON|@FILE`: a JSON object of claims, the standard ones of the right type;
/// iat, exp and nbf are the server's to set (--token-ttl).
pub fn token_claims(spec: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let text = match spec.strip_prefix('@') {
        Some(path) => {
            crate::input::read_regular_file(std::path::Path::new(path), "--token-claims", 1 << 20)?
        }
        None => spec.as_bytes().to_vec(),
    };
    let claims = strict_json::parse_object(&text)
        .map_err(|e| anyhow::anyhow!("--token-claims: not a JSON object of claims: {e}"))?;
    for name in ["iat", "exp", "nbf"] {
        if claims.contains_key(name) {
            anyhow::bail!("--token-claims: {name} is set by the server (--token-ttl), not here");
        }
    }
    for (name, what) in TYPED_CLAIMS {
        if let Some(v) = claims.get(name)
            && !well_typed(name, v)
        {
            anyhow::bail!("--token-claims: claim \"{name}\" must be {what}, not {v}");
        }
    }
    Ok(claims)
}

/// The user name of `Authorization: Basic` credentials (any case of the scheme).
fn basic_user(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
    (!user.is_empty()).then(|| user.to_string())
}

/// Where the server answers: the issuer's path prefix, the paths of the key set (the usual
/// ones, the same under the prefix, and every --jwks-path) and of discovery.
pub struct Paths {
    pub prefix: String,
    pub jwks: Vec<String>,
    pub discovery: Vec<String>,
}

/// A path the router can take as it is: absolute, printable ASCII, no empty segment, no
/// segment starting with ':' or '*' and no braces (the router's capture syntax), no query or
/// fragment; '%' only where it comes from a URL's own encoding.
fn servable(path: &str, percent: bool) -> bool {
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"{}*?#\\".contains(&b) && (percent || b != b'%'));
    path.starts_with('/')
        && path.len() <= 512
        && plain
        && path[1..]
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with([':', '*']))
}

/// Routes that a --jwks-path may not take.
const RESERVED: [&str; 12] = [
    "/",
    "/auth",
    "/health",
    "/ready",
    "/connect",
    "/rotate",
    "/authorize",
    "/token",
    "/userinfo",
    "/introspect",
    "/revoke",
    "/logout",
];

impl Paths {
    pub fn new(issuer: Option<&str>, extra: &[String]) -> anyhow::Result<Paths> {
        let prefix = match issuer {
            None => String::new(),
            Some(i) => {
                let url = url::Url::parse(i)
                    .map_err(|e| anyhow::anyhow!("--issuer {i:?} is not a URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    anyhow::bail!("--issuer {i:?}: expected an http or https URL with a host");
                }
                if url.query().is_some() || url.fragment().is_some() {
                    anyhow::bail!("--issuer {i:?}: an issuer has no query or fragment (RFC 8414)");
                }
                let prefix = url.path().trim_end_matches('/').to_string();
                if !prefix.is_empty() && !servable(&prefix, true) {
                    anyhow::bail!(
                        "--issuer {i:?}: its path cannot be served (no segment may start with ':' or '*', and no braces)"
                    );
                }
                prefix
            }
        };
        let mut jwks: Vec<String> = vec![
            "/.well-known/jwks.json".into(),
            "/.well-known/jwks".into(),
            "/jwks".into(),
        ];
        let mut discovery = vec!["/.well-known/openid-configuration".to_string()];
        if !prefix.is_empty() {
            jwks.push(format!("{prefix}/.well-known/jwks.json"));
            jwks.push(format!("{prefix}/.well-known/jwks"));
            discovery.push(format!("{prefix}/.well-known/openid-configuration"));
        }
        for p in extra {
            if !servable(p, false) {
                anyhow::bail!(
                    "--jwks-path {p:?}: expected a plain absolute path such as /oauth2/v1/keys"
                );
            }
            if RESERVED.contains(&p.as_str()) || discovery.contains(p) || p.starts_with("/jwks/") {
                anyhow::bail!("--jwks-path {p}: that path is taken by another endpoint");
            }
            if !jwks.contains(p) {
                jwks.push(p.clone());
            }
        }
        // Paths under the prefix that clash with the reserved ones (an issuer path of /auth).
        for p in jwks.iter().chain(&discovery) {
            if RESERVED.contains(&p.as_str()) {
                anyhow::bail!("the path {p} is taken by another endpoint");
            }
        }
        Ok(Paths {
            prefix,
            jwks,
            discovery,
        })
    }

    /// Where an identity provider's RFC 8414 metadata is served (the same document as OpenID
    /// discovery): `/.well-known/oauth-authorization-server` with the issuer's path after it
    /// (RFC 8414 §3.1), and also under the path, where some clients look.
    pub fn oauth_metadata(&self) -> Vec<String> {
        let base = "/.well-known/oauth-authorization-server";
        let mut out = vec![format!("{base}{}", self.prefix)];
        if !self.prefix.is_empty() {
            out.push(format!("{}{base}", self.prefix));
        }
        out
    }

    /// The key set's URL for discovery: the issuer's origin, its path prefix, the usual name.
    pub fn jwks_uri(&self, issuer: &str) -> String {
        let origin = url::Url::parse(issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| issuer.trim_end_matches('/').to_string());
        format!("{origin}{}/.well-known/jwks.json", self.prefix)
    }
}

pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    for p in &app.paths.jwks {
        router = if p == "/jwks" {
            router.route(p, get(jwks).post(upload))
        } else {
            router.route(p, get(jwks))
        };
    }
    for p in &app.paths.discovery {
        router = router.route(p, get(discovery));
    }
    if app.idp.is_some() {
        for p in app.paths.oauth_metadata() {
            router = router.route(&p, get(discovery));
        }
        router = idp::routes(router, &app.paths.prefix);
    }
    let router = router
        .route("/jwks/{kid}", delete(remove))
        .route("/auth", post(auth))
        .route("/rotate", post(rotate))
        .route("/health", get(health).post(health))
        .route("/ready", get(ready))
        .route("/", get(info).post(info))
        .route("/connect", get(info).post(info))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint (GET / lists them)") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (GET / lists the endpoints)",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), read_body))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            request_timeout,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(log_request));
    let router = match app.idp.as_ref().map(|idp| idp.cors.clone()) {
        Some(origins) => router.layer(middleware::from_fn_with_state(
            Arc::new(cors::Cors {
                origins,
                paths: cors_paths(&app),
            }),
            cors::layer,
        )),
        None => router,
    };
    let served = router.with_state(Arc::clone(&app));
    // A path no route took may be an issuer's under a path segment (tenant.rs).
    let inner = served.clone();
    served.fallback(move |req: axum::extract::Request| {
        let (app, inner) = (Arc::clone(&app), inner.clone());
        async move { tenant::dispatch(app, inner, req).await }
    })
}

/// The paths a browser app fetches across origins: discovery, the key set, and the IdP's
/// token, pushed authorization, userinfo, introspection and revocation endpoints.
fn cors_paths(app: &App) -> std::collections::HashSet<String> {
    let mut paths: std::collections::HashSet<String> = app
        .paths
        .discovery
        .iter()
        .chain(&app.paths.jwks)
        .cloned()
        .chain(app.paths.oauth_metadata())
        .collect();
    for prefix in ["", app.paths.prefix.as_str()] {
        for end in [
            "/token",
            "/par",
            "/userinfo",
            "/introspect",
            "/revoke",
            "/register",
        ] {
            paths.insert(format!("{prefix}{end}"));
        }
    }
    paths
}

/// Every 4xx body is JSON `{"error": ...}`: rejections made by the framework (a body over the
/// limit, a malformed header) are rewritten to say the same in JSON.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let is_html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // The identity provider's pages for a browser stay HTML.
    if !status.is_client_error() || is_json || is_html {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("client error");
    let message = match std::str::from_utf8(&text).map(str::trim) {
        Ok(t) if !t.is_empty() => format!("{reason}: {}", crate::output::escape(t)),
        _ => reason.to_string(),
    };
    let mut out = error(status, message);
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// True for the requests that need the upload token.
fn needs_upload_token(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    (*method == Method::POST && (path == "/jwks" || path == "/rotate"))
        || (*method == Method::DELETE && path.starts_with("/jwks/"))
}

/// Before a handler runs: a request that needs the upload token is answered 401/403 from its
/// headers alone, before a byte of its body is read; then the body is read whole (at most
/// `MAX_UPLOAD_BYTES`) within a deadline, `--request-timeout` for a request bearing the
/// upload token and the much shorter `--body-timeout` for any other, so a client trickling a
/// body holds a connection for seconds, not for the whole request timeout.
async fn read_body(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let authenticated = if needs_upload_token(req.method(), req.uri().path()) {
        if let Err(r) = authorize(&app, req.headers()) {
            return *r;
        }
        true
    } else {
        false
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let deadline = if authenticated {
        app.request_timeout
    } else {
        app.body_timeout
    };
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, MAX_UPLOAD_BYTES);
    let bytes = match tokio::time::timeout(deadline, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large();
        }
        Ok(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            );
        }
        Err(_) => {
            let flag = if authenticated {
                "--request-timeout"
            } else {
                "--body-timeout"
            };
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {flag}"),
            );
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {MAX_UPLOAD_BYTES} bytes"),
    )
}

/// A request (reading its body included) that takes longer than --request-timeout gets 408.
async fn request_timeout(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            "the request was not read and answered within --request-timeout",
        ),
    }
}

/// One line per request on stderr: method, path, status, latency. Never a body or a token.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    crate::output::log(format!(
        "{method} {} {} {ms:.2}ms",
        crate::output::escape(&path),
        resp.status().as_u16()
    ));
    resp
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn jwks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let doc = match tenant::current() {
        Some(t) => Arc::clone(&t.jwks),
        None => app.store.doc(when::now()),
    };
    let cache = format!("public, max-age={}", app.max_age);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == doc.etag || t.trim() == "*")
        });
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = doc.body.clone().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&doc.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

async fn discovery(State(app): State<Arc<App>>) -> Response {
    let mut doc = json!({
        "issuer": app.iss(),
        "jwks_uri": app.jwks_uri_now(),
    });
    if let Some(issue) = &app.issue {
        doc["id_token_signing_alg_values_supported"] = json!([issue.alg.as_str()]);
    }
    if let Some(idp) = &app.idp {
        idp::discovery(&app, idp, &mut doc);
    }
    Json(doc).into_response()
}

/// The server is up; says whether its store is reachable (reads go on from memory when it
/// is not).
async fn health(State(app): State<Arc<App>>) -> Response {
    let store = app.store.health();
    let status = if store.reachable { "ok" } else { "degraded" };
    Json(json!({
        "status": status,
        "store": store,
        "log_lines_dropped": crate::output::log_dropped(),
    }))
    .into_response()
}

/// For load balancers: 200 while the store takes writes, 503 while it is unreachable.
async fn ready(State(app): State<Arc<App>>) -> Response {
    let store = app.store.health();
    if store.reachable {
        Json(json!({ "status": "ready", "store": store })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": "the key store is unreachable", "store": store })),
        )
            .into_response()
    }
}

/// A failed write: 503 with Retry-After when the store is unreachable, else 500.
fn store_failed(what: &str, e: &StoreError) -> Response {
    crate::output::log(format!(
        "error: {what}: {}",
        crate::output::escape(&format!("{e:#}"))
    ));
    match e {
        StoreError::Unavailable(_) => {
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the key store is unavailable, so {what} did not happen; try again"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        StoreError::Other(_) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed")),
    }
}

/// GET or POST `/` and `/connect`: the service, its state and its endpoints as bare paths, to
/// be joined to the server's base URL.
async fn info(State(app): State<Arc<App>>) -> Response {
    let prefix = &app.paths.prefix;
    Json(json!({
        "service": "jwkit",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "ok",
        "issuer": app.issuer,
        "uploads": app.upload_token.is_some(),
        "issues_tokens": app.issue.is_some(),
        "endpoints": {
            "jwks": format!("{prefix}/.well-known/jwks.json"),
            "discovery": format!("{prefix}/.well-known/openid-configuration"),
            "auth": "/auth",
            "auth_expired": "/auth?expired=true",
            "upload": "/jwks",
            "delete": "/jwks/{kid}",
            "rotate": "/rotate",
            "health": "/health",
            "ready": "/ready",
            "connect": "/connect",
        },
        "jwks_paths": app.paths.jwks,
        "idp": app.idp.as_ref().map(|_| json!({
            "authorize": format!("{prefix}/authorize"),
            "token": format!("{prefix}/token"),
            "userinfo": format!("{prefix}/userinfo"),
            "introspect": format!("{prefix}/introspect"),
            "revoke": format!("{prefix}/revoke"),
            "logout": format!("{prefix}/logout"),
            "par": format!("{prefix}/par"),
            "device_authorization": format!("{prefix}/device_authorization"),
            "register": format!("{prefix}/register"),
            "debugger": format!("{prefix}/debugger"),
            "issuers_under_a_path": "/{name}/.well-known/openid-configuration",
        })),
    }))
    .into_response()
}

/// Checks `Authorization: Bearer <upload token>`, comparing SHA-256 digests in constant time.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(want) = &app.upload_token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "uploads are disabled: start the server with --upload-token-file FILE or JWKIT_UPLOAD_TOKEN",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let ok = given.is_some_and(|g| {
        aws_lc_rs::constant_time::verify_slices_are_equal(&token_digest(g.trim()), want).is_ok()
    });
    if ok {
        Ok(())
    } else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "a valid upload token is required (Authorization: Bearer ...)",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(Box::new(r))
    }
}

/// The value of `name` in a query string, decoded (the last one wins).
fn query_param(q: &Option<String>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .last()
}

/// A request duration (`expires_in`, `ttl`): positive, at most `max` seconds.
fn request_duration(name: &str, text: &str, max: i64) -> Result<i64, Box<Response>> {
    match when::parse_duration(text) {
        Ok(d) if d > 0 && d <= max => Ok(d),
        Ok(d) if d > max => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "{name} {:?} is longer than this server allows ({})",
                crate::output::escape(text),
                when::span(max.unsigned_abs())
            ),
        ))),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "{name} must be a positive duration such as 1h, not {:?}",
                crate::output::escape(text)
            ),
        ))),
    }
}

async fn upload(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return *r;
    }
    let now = when::now();
    let expires = match query_param(&q, "expires_in") {
        None => None,
        Some(text) => {
            match request_duration("expires_in", &text, when::MAX_DURATION) {
                // From the next whole second: rounding never shortens the lifetime asked for.
                Ok(d) => Some(when::now_ceil().saturating_add(d)),
                Err(r) => return *r,
            }
        }
    };
    let doc = match strict_json::parse_object(&body) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let jwks: Vec<serde_json::Map<String, Value>> = match doc.get("keys") {
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for k in list {
                match k {
                    Value::Object(o) => out.push(o.clone()),
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "every member of \"keys\" must be a JWK object",
                        );
                    }
                }
            }
            out
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, "\"keys\" must be an array"),
        None => vec![doc],
    };
    if jwks.is_empty() {
        return error(StatusCode::BAD_REQUEST, "no keys to upload");
    }
    let mut keys = Vec::new();
    for jwk in &jwks {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the key holds the private member \"{m}\": upload public keys only"),
            );
        }
        let key = match crypto::load_key(&serde_json::to_vec(jwk).unwrap_or_default(), None) {
            Ok(k) => k,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid key: {e}")),
        };
        match key.public() {
            Ok(pk) => keys.push((pk, expires)),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid key: {e}")),
        }
    }
    match app.store.add(keys, now).await {
        Ok(added) => {
            let any_new = added.iter().any(|(_, a)| *a == Added::New);
            let kids: Vec<&str> = added.iter().map(|(k, _)| k.as_str()).collect();
            let status = if any_new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({ "kids": kids, "created": any_new }))).into_response()
        }
        Err(AddError::KidTaken(kid)) => error(
            StatusCode::CONFLICT,
            format!("kid \"{kid}\" is taken by another key; upload under another kid"),
        ),
        Err(AddError::StoredAs(kid)) => error(
            StatusCode::CONFLICT,
            format!(
                "this key is already stored, under kid \"{kid}\"; delete it first to store it under another kid"
            ),
        ),
        Err(AddError::Failed(e)) => store_failed("storing the key", &e),
    }
}

async fn remove(
    State(app): State<Arc<App>>,
    Path(kid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return *r;
    }
    match app.store.delete(&kid).await {
        Ok(true) => Json(json!({ "deleted": kid })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no key with kid \"{kid}\"")),
        Err(e) => store_failed("deleting the key", &e),
    }
}

/// `?expired`: a bare `expired`, or true/false, 1/0, yes/no, on/off in any case.
fn expired_flag(q: &Option<String>) -> Result<bool, Box<Response>> {
    let Some(v) = query_param(q, "expired") else {
        return Ok(false);
    };
    match v.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "expired must be true or false (or 1/0, yes/no), not {:?}",
                crate::output::escape(&v)
            ),
        ))),
    }
}

/// Claims a request may not give with the wrong type: name and what it must be.
const TYPED_CLAIMS: [(&str, &str); 7] = [
    ("sub", "a string"),
    ("iss", "a string"),
    ("jti", "a string"),
    ("aud", "a string or an array of strings"),
    ("exp", "an integer number of seconds"),
    ("nbf", "an integer number of seconds"),
    ("iat", "an integer number of seconds"),
];

fn well_typed(name: &str, v: &Value) -> bool {
    match name {
        "sub" | "iss" | "jti" => v.is_string(),
        "aud" => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "exp" | "nbf" | "iat" => v
            .as_i64()
            .is_some_and(|n| (0..=253_402_300_799).contains(&n)),
        _ => true,
    }
}

/// The claims a request asks for: a JSON object, or form fields (as strings).
fn requested_claims(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let claims = if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect()
    } else {
        strict_json::parse_object(body).map_err(|e| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a JSON object of claims (or a form): {e}"),
            ))
        })?
    };
    for (name, what) in TYPED_CLAIMS {
        if let Some(v) = claims.get(name)
            && !well_typed(name, v)
        {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("claim \"{name}\" must be {what}, not {v}"),
            )));
        }
    }
    Ok(claims)
}

/// A test token: claims from a JSON or form body (`sub` defaults to "test-user"), iss the
/// server's issuer, iat now, exp now + ttl (`?ttl=DUR` up to the grace). iss, iat, exp and nbf
/// are the server's unless --allow-claim-override. With `?expired=true`, expired and signed by
/// a key that is not published.
async fn auth(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(issue) = &app.issue else {
        return error(
            StatusCode::NOT_FOUND,
            "token issuing is off (start the server with --issue-tokens)",
        );
    };
    let expired = match expired_flag(&q) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let ttl = match query_param(&q, "ttl") {
        None => issue.ttl,
        Some(t) => match request_duration("ttl", &t, issue.grace.max(issue.ttl)) {
            Ok(d) => d,
            Err(r) => return *r,
        },
    };
    let requested = match requested_claims(&headers, &body) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let now = when::now();
    let (iat, exp) = if expired {
        (now - 7200, now - 3600)
    } else {
        (now, now.saturating_add(ttl))
    };
    let server_owned = |name: &str| {
        ["iss", "iat", "exp", "nbf"].contains(&name) || issue.defaults.contains_key(name)
    };
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), app.issuer.clone().into());
    claims.insert("sub".into(), "test-user".into());
    for (k, v) in &issue.defaults {
        claims.insert(k.clone(), v.clone());
    }
    // The user a test client names (a `username` member, else Basic credentials) is the
    // subject, unless the request names one.
    let named_user = match requested.get("username") {
        Some(Value::String(u)) if !u.is_empty() => Some(u.clone()),
        _ => basic_user(&headers),
    };
    let gave_sub = requested.contains_key("sub");
    for (k, v) in requested {
        if CREDENTIALS.contains(&k.as_str()) {
            continue;
        }
        if issue.allow_override || !server_owned(&k) {
            claims.insert(k, v);
        }
    }
    if let Some(user) = named_user
        && !gave_sub
        && (issue.allow_override || !server_owned("sub"))
    {
        claims.insert("sub".into(), user.into());
    }
    for (name, value) in [("iat", iat), ("exp", exp)] {
        if !(issue.allow_override && claims.contains_key(name)) {
            claims.insert(name.into(), value.into());
        }
    }
    if expired {
        return sign_token(&issue.expired_key, &issue.expired_kid, &claims, exp - iat);
    }
    match app.signer() {
        Some((kid, signer)) => sign_token(&signer, &kid, &claims, exp - iat),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no usable active signing key",
        ),
    }
}

fn sign_token(
    signer: &SigningKey,
    kid: &str,
    claims: &serde_json::Map<String, Value>,
    ttl: i64,
) -> Response {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), signer.alg().as_str().into());
    header.insert("typ".into(), "JWT".into());
    header.insert("kid".into(), kid.into());
    match serde_json::to_vec(claims)
        .map_err(|_| crypto::Error::Sign)
        .and_then(|payload| jws::encode(&header, &payload, signer))
    {
        Ok(token) => Json(json!({
            "token": token,
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
        }))
        .into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "signing failed"),
    }
}

/// POST /rotate (authenticated like uploads): the next key starts signing when it has been
/// published for at least max-age (so verifiers' caches have it). Otherwise the answer is 409
/// saying when; with no next key yet, one is published now and the answer is 202 saying from
/// when it may sign.
async fn rotate(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return *r;
    }
    let Some(issue) = &app.issue else {
        return error(
            StatusCode::NOT_FOUND,
            "the server has no signing key of its own (start it with --issue-tokens)",
        );
    };
    let (alg, grace, max_age) = (issue.alg, issue.grace, app.max_age);
    let now = when::now();
    let new_key = || async move {
        match tokio::task::spawn_blocking(move || new_signing_key(alg)).await {
            Ok(Ok(k)) => Ok(k),
            Ok(Err(e)) => Err(StoreError::Other(e)),
            Err(e) => Err(StoreError::Other(anyhow::anyhow!("making a key: {e}"))),
        }
    };
    let outcome: Result<(StatusCode, Value), StoreError> = async {
        match app.store.next_signing() {
            // Strictly more than max-age in whole seconds: at least max-age in real time.
            Some(next) if now.saturating_sub(next.created) > max_age => {
                let rotation = app.store.rotation();
                let key = new_key().await?;
                let next_kid = key.kid_or_thumbprint();
                match app.store.rotate(key, now, grace, now, rotation.count).await? {
                    Some(active) => Ok((
                        StatusCode::OK,
                        json!({ "active": active.kid, "next": next_kid }),
                    )),
                    None => Ok((
                        StatusCode::CONFLICT,
                        json!({
                            "error": "another rotation happened at the same time; GET the key set to see it",
                            "active": app.store.active_signing().map(|k| k.kid),
                        }),
                    )),
                }
            }
            Some(next) => Ok((
                StatusCode::CONFLICT,
                json!({
                    "error": format!(
                        "the next key {} was published {} ago; it may start signing once verifiers' caches (max-age {}) have it, at {}",
                        next.kid,
                        when::span(now.saturating_sub(next.created).unsigned_abs()),
                        when::span(max_age.unsigned_abs()),
                        when::rfc3339(next.created.saturating_add(max_age + 1))
                    ),
                    "next": next.kid,
                    "signs_from": next.created.saturating_add(max_age + 1),
                }),
            )),
            None => {
                let key = new_key().await?;
                let kid = key.kid_or_thumbprint();
                if !app.store.add_next(key, now).await? {
                    return Ok((
                        StatusCode::CONFLICT,
                        json!({
                            "error": "another request published a next key at the same time; POST /rotate again later",
                            "next": app.store.next_signing().map(|k| k.kid),
                        }),
                    ));
                }
                Ok((
                    StatusCode::ACCEPTED,
                    json!({
                        "next": kid,
                        "signs_from": now.saturating_add(max_age + 1),
                        "message": format!(
                            "the next key is published now; POST /rotate again from {} to make it sign",
                            when::rfc3339(now.saturating_add(max_age + 1))
                        ),
                    }),
                ))
            }
        }
    }
    .await;
    match outcome {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => store_failed("rotating the signing key", &e),
    }
}
