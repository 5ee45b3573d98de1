//! `jwkit serve`: a JWKS server (DESIGN.md §6). Publishes uploaded public keys and its own
//! token-signing keys, takes authenticated uploads, and issues test tokens.

pub mod store;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::crypto::{self, SigningKey, json as strict_json, jws};
use crate::when;
use store::{AddError, Added, Store};

/// Upload bodies larger than this are refused with 413.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024;
/// Members that only private or secret keys have: an upload holding one is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

pub struct App {
    pub store: Store,
    /// SHA-256 of the upload token; None: uploads and deletes are disabled.
    pub upload_token: Option<Vec<u8>>,
    pub base_url: String,
    pub max_age: i64,
    pub issue: Option<Issuer>,
}

/// Token issuing (--issue-tokens).
pub struct Issuer {
    pub ttl: i64,
    /// Signs the `?expired=true` tokens; its public half is never published.
    pub expired_key: SigningKey,
    pub expired_kid: String,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", post(upload))
        .route("/jwks/{kid}", delete(remove))
        .route("/auth", post(auth))
        .route("/health", get(health))
        .route("/", get(info))
        .route("/connect", get(info))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// One line per request on stderr: method, path, status, latency. Never a body or a token.
async fn log_request(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "{method} {} {} {ms:.2}ms",
        crate::output::escape(&path),
        resp.status().as_u16()
    );
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn jwks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let doc = app.store.doc(when::now());
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
    Json(json!({
        "issuer": app.base_url,
        "jwks_uri": format!("{}/.well-known/jwks.json", app.base_url),
    }))
    .into_response()
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn info(State(app): State<Arc<App>>) -> Response {
    Json(json!({
        "service": "jwkit",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "ok",
        "uploads": app.upload_token.is_some(),
        "issues_tokens": app.issue.is_some(),
        "endpoints": {
            "jwks": "GET /.well-known/jwks.json",
            "discovery": "GET /.well-known/openid-configuration",
            "upload": "POST /jwks",
            "delete": "DELETE /jwks/{kid}",
            "auth": "POST /auth (?expired=true)",
            "health": "GET /health",
        },
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
        let g = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, g.trim().as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(g.as_ref(), want).is_ok()
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

#[derive(Deserialize)]
struct UploadQuery {
    expires_in: Option<String>,
}

async fn upload(
    State(app): State<Arc<App>>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&app, &headers) {
        return *r;
    }
    let now = when::now();
    let expires = match q.expires_in.as_deref().map(when::parse_duration) {
        None => None,
        Some(Ok(d)) if d > 0 => Some(now + d),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "expires_in must be a positive duration such as 1h",
            );
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
    let app2 = Arc::clone(&app);
    let result = tokio::task::spawn_blocking(move || app2.store.add(keys, now)).await;
    match result {
        Ok(Ok(added)) => {
            let any_new = added.iter().any(|(_, a)| *a == Added::New);
            let kids: Vec<&str> = added.iter().map(|(k, _)| k.as_str()).collect();
            let status = if any_new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(json!({ "kids": kids, "created": any_new }))).into_response()
        }
        Ok(Err(AddError::KidTaken(kid))) => error(
            StatusCode::CONFLICT,
            format!("kid \"{kid}\" is taken by another key; upload under another kid"),
        ),
        Ok(Err(AddError::Io(e))) => {
            eprintln!("error: storing a key: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the key could not be stored",
            )
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the key could not be stored",
        ),
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
    let app2 = Arc::clone(&app);
    let k = kid.clone();
    match tokio::task::spawn_blocking(move || app2.store.delete(&k)).await {
        Ok(Ok(true)) => Json(json!({ "deleted": kid })).into_response(),
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, format!("no key with kid \"{kid}\"")),
        Ok(Err(e)) => {
            eprintln!("error: deleting a key: {e:#}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the key could not be deleted",
            )
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the key could not be deleted",
        ),
    }
}

#[derive(Deserialize)]
struct AuthQuery {
    #[serde(default)]
    expired: bool,
}

/// A test token: `sub` from a JSON or form body (default "test-user"), iss = the server,
/// exp = now + ttl. With `?expired=true`, expired and signed by a key that is not published.
async fn auth(
    State(app): State<Arc<App>>,
    Query(q): Query<AuthQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(issue) = &app.issue else {
        return error(
            StatusCode::NOT_FOUND,
            "token issuing is off (start the server with --issue-tokens)",
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let sub = if body.is_empty() {
        None
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "sub")
            .map(|(_, v)| v.into_owned())
    } else {
        match strict_json::parse_object(&body) {
            Ok(o) => o.get("sub").and_then(Value::as_str).map(str::to_string),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
        }
    };
    let now = when::now();
    let sub = sub.unwrap_or_else(|| "test-user".into());
    if q.expired {
        return sign_token(
            &issue.expired_key,
            &issue.expired_kid,
            &app.base_url,
            &sub,
            now - 7200,
            now - 3600,
        );
    }
    let Some(active) = app.store.active_signing() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no active signing key");
    };
    let signer = crypto::load_key(&serde_json::to_vec(&active.jwk).unwrap_or_default(), None)
        .and_then(|k| k.default_alg().and_then(|a| SigningKey::new(&k, a)));
    match signer {
        Ok(signer) => sign_token(
            &signer,
            &active.kid,
            &app.base_url,
            &sub,
            now,
            now + issue.ttl,
        ),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the signing key is unusable",
        ),
    }
}

fn sign_token(
    signer: &SigningKey,
    kid: &str,
    iss: &str,
    sub: &str,
    iat: i64,
    exp: i64,
) -> Response {
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), signer.alg().as_str().into());
    header.insert("typ".into(), "JWT".into());
    header.insert("kid".into(), kid.into());
    let claims = json!({"iss": iss, "sub": sub, "iat": iat, "exp": exp});
    match jws::encode(&header, claims.to_string().as_bytes(), signer) {
        Ok(token) => Json(json!({ "token": token })).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "signing failed"),
    }
}
