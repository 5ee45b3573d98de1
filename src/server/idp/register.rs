//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).
//!
//! `POST /register` takes a client's metadata, checks it, and answers with a new client_id
//! (and a client_secret unless the client authenticates with `none` or `private_key_jwt`), a
//! registration access token and the client's configuration URI. The client is kept in the
//! server's store (kind `client`), so every replica on one database knows it; a registered
//! client is then as strict as a configured one (its redirect URIs, grants, secret, keys), in
//! open mode too. With `serve --registration-token FILE` registration needs that initial
//! access token (RFC 7591 §3); without it, registration is open, as a test IdP's is.
//!
//! `GET`, `PUT` and `DELETE /register/{client_id}` read, replace and delete a registration,
//! with the registration access token as a Bearer token.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::config::{self, Client, ClientEntry};
use super::{OAuthError, base, json_no_store, oauth, random_token, state};
use crate::server::App;
use crate::server::store::records::Kind;
use crate::when;

/// How long a registration lasts: until it is deleted (a century, as the store's records
/// all have an expiry).
const LIFETIME: i64 = 100 * 365 * 24 * 3600;
/// A registration request's body, at most.
const MAX_BODY: usize = 64 << 10;
/// A `jwks_uri` document, at most.
const MAX_JWKS: usize = 256 << 10;

/// What the store keeps of a registered client.
#[derive(Serialize, Deserialize)]
struct Registered {
    /// The metadata as registered (checked, with the defaults filled in).
    metadata: Map<String, Value>,
    secret: Option<String>,
    /// The key set fetched from `jwks_uri` when the client registered or was updated.
    fetched_jwks: Option<Value>,
    /// SHA-256 of the registration access token.
    token_hash: String,
    issued_at: i64,
}

/// An RFC 7591 §3.2.2 error about the metadata.
fn metadata_error(description: impl Into<String>) -> OAuthError {
    oauth("invalid_client_metadata", description)
}

/// A registered client, ready for use; None when there is no such registration.
pub(super) async fn find(app: &App, id: &str) -> Result<Option<ClientEntry>, OAuthError> {
    if id.is_empty() || id.len() > 256 {
        return Ok(None);
    }
    let Some(r) = state::get::<Registered>(app, Kind::Client, id).await? else {
        return Ok(None);
    };
    let client = to_client(id, &r).map_err(metadata_error)?;
    config::entry(client)
        .map(Some)
        .map_err(|e| metadata_error(format!("{e:#}")))
}

fn strings(m: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{name} must be an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("{name} must be an array of strings")),
    }
}

fn string<'a>(m: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

/// The configuration-model client a registration stands for.
fn to_client(id: &str, r: &Registered) -> Result<Client, String> {
    let m = &r.metadata;
    let jwks = m.get("jwks").cloned().or_else(|| r.fetched_jwks.clone());
    Ok(Client {
        id: id.to_string(),
        secret: r.secret.clone(),
        redirect_uris: strings(m, "redirect_uris")?.unwrap_or_default(),
        post_logout_redirect_uris: strings(m, "post_logout_redirect_uris")?.unwrap_or_default(),
        grants: strings(m, "grant_types")?,
        jwks,
        audience: None,
        exchange_audiences: None,
        scopes: string(m, "scope")?.map(|s| {
            s.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        }),
        claims: Map::new(),
        fail: None,
        id_token_encrypted_response_alg: string(m, "id_token_encrypted_response_alg")?
            .map(str::to_string),
        id_token_encrypted_response_enc: string(m, "id_token_encrypted_response_enc")?
            .map(str::to_string),
    })
}

/// The grants a registration may name, and what RFC 7591 calls them.
const GRANTS: [&str; 7] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    config::TOKEN_EXCHANGE,
    config::JWT_BEARER_GRANT,
    config::DEVICE_GRANT,
];

const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
];

/// Checks the metadata (RFC 7591 §2) and fills in the defaults: grant_types
/// `authorization_code`, response_types `code`, token_endpoint_auth_method
/// `client_secret_basic`. Answers whether the client gets a secret.
fn check_metadata(m: &mut Map<String, Value>, password_grant: bool) -> Result<bool, OAuthError> {
    for name in ["client_id", "client_secret", "registration_access_token"] {
        m.remove(name);
    }
    let grants = strings(m, "grant_types")
        .map_err(metadata_error)?
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    if grants.is_empty() {
        return Err(metadata_error("grant_types is empty"));
    }
    for g in &grants {
        if !GRANTS.contains(&g.as_str()) || (g == "password" && !password_grant) {
            return Err(metadata_error(format!("unsupported grant type {g:?}")));
        }
    }
    let responses = strings(m, "response_types")
        .map_err(metadata_error)?
        .unwrap_or_else(|| vec!["code".into()]);
    if let Some(r) = responses.iter().find(|r| *r != "code") {
        return Err(metadata_error(format!(
            "unsupported response type {r:?} (this server answers code only)"
        )));
    }
    let code = grants.iter().any(|g| g == "authorization_code");
    if code == responses.is_empty() {
        return Err(metadata_error(
            "response_types code goes with grant_types authorization_code (RFC 7591 §2.1)",
        ));
    }
    let uris = strings(m, "redirect_uris").map_err(|e| oauth("invalid_redirect_uri", e))?;
    if code && uris.as_ref().is_none_or(Vec::is_empty) {
        return Err(oauth(
            "invalid_redirect_uri",
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    for uri in uris.iter().flatten().chain(
        strings(m, "post_logout_redirect_uris")
            .map_err(metadata_error)?
            .iter()
            .flatten(),
    ) {
        let url = url::Url::parse(uri)
            .map_err(|e| oauth("invalid_redirect_uri", format!("{uri:?}: {e}")))?;
        if url.fragment().is_some() {
            return Err(oauth(
                "invalid_redirect_uri",
                format!("{uri:?} has a fragment (RFC 6749 §3.1.2)"),
            ));
        }
        if matches!(url.scheme(), "javascript" | "data" | "file" | "vbscript") {
            return Err(oauth(
                "invalid_redirect_uri",
                format!(
                    "{uri:?}: the {} scheme is never a redirect URI",
                    url.scheme()
                ),
            ));
        }
    }
    let method = string(m, "token_endpoint_auth_method")
        .map_err(metadata_error)?
        .unwrap_or("client_secret_basic")
        .to_string();
    if !AUTH_METHODS.contains(&method.as_str()) {
        return Err(metadata_error(format!(
            "unsupported token_endpoint_auth_method {method:?} (one of {})",
            AUTH_METHODS.join(", ")
        )));
    }
    match (m.get("jwks"), m.get("jwks_uri")) {
        (Some(_), Some(_)) => {
            return Err(metadata_error(
                "jwks and jwks_uri both given (RFC 7591 §2: one or the other)",
            ));
        }
        (None, None) if method == "private_key_jwt" => {
            return Err(metadata_error("private_key_jwt needs jwks or jwks_uri"));
        }
        (Some(j), None) if !j.get("keys").is_some_and(Value::is_array) => {
            return Err(metadata_error("jwks must be a JWK set ({\"keys\": [...]})"));
        }
        _ => {}
    }
    if let Some(s) = m.get("scope")
        && !s.is_string()
    {
        return Err(metadata_error("scope must be a string"));
    }
    m.insert("grant_types".into(), json!(grants));
    m.insert("response_types".into(), json!(responses));
    m.insert("token_endpoint_auth_method".into(), json!(method));
    Ok(matches!(
        method.as_str(),
        "client_secret_basic" | "client_secret_post"
    ))
}

/// Fetches a `jwks_uri` (https, or http on the loopback interface), as the client registers.
async fn fetch_jwks(uri: &str) -> Result<Value, OAuthError> {
    let url = url::Url::parse(uri).map_err(|e| metadata_error(format!("jwks_uri: {e}")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(metadata_error(
            "jwks_uri must be https (or http on 127.0.0.1 or localhost)",
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| metadata_error(format!("jwks_uri: {e}")))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| metadata_error(format!("jwks_uri could not be fetched: {e}")))?;
    if !resp.status().is_success() {
        return Err(metadata_error(format!(
            "jwks_uri answered {}",
            resp.status()
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| metadata_error(format!("jwks_uri: {e}")))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS {
            return Err(metadata_error("jwks_uri: the key set is over 256 KiB"));
        }
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| metadata_error(format!("jwks_uri: not JSON: {e}")))?;
    if !v.get("keys").is_some_and(Value::is_array) {
        return Err(metadata_error("jwks_uri: not a JWK set"));
    }
    Ok(v)
}

/// 401 with an RFC 6750 challenge.
fn invalid_token(description: &str) -> Response {
    let mut r = json_no_store(
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid_token", "error_description": description}),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"jwkit\", error=\"invalid_token\""),
    );
    r
}

/// Constant-time equality of two secrets.
fn same(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, OAuthError> {
    if body.len() > MAX_BODY {
        return Err(metadata_error("the registration is over 64 KiB"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(metadata_error("the registration must be a JSON object")),
        Err(e) => Err(metadata_error(format!("malformed JSON: {e}"))),
    }
}

/// Checks the metadata, fetches a `jwks_uri`, and makes sure the client works as registered
/// (its grants, keys and ID token encryption go through the same checks as a configured
/// client's) before anything is stored.
async fn prepare(
    idp: &super::Idp,
    id: &str,
    mut m: Map<String, Value>,
    secret: Option<String>,
    token_hash: String,
    issued_at: i64,
) -> Result<Registered, OAuthError> {
    let wants_secret = check_metadata(&mut m, idp.config.password_grant)?;
    let fetched_jwks = match string(&m, "jwks_uri").map_err(metadata_error)? {
        Some(uri) => Some(fetch_jwks(uri).await?),
        None => None,
    };
    let secret = match (wants_secret, secret) {
        (true, Some(s)) => Some(s),
        (true, None) => Some(random_token()),
        (false, _) => None,
    };
    let r = Registered {
        metadata: m,
        secret,
        fetched_jwks,
        token_hash,
        issued_at,
    };
    let client = to_client(id, &r).map_err(metadata_error)?;
    config::entry(client).map_err(|e| metadata_error(format!("{e:#}")))?;
    Ok(r)
}

/// The answer to a registration or a read: the metadata, the credentials, where to manage it.
fn document(app: &App, id: &str, r: &Registered, token: Option<&str>) -> Value {
    let mut out = r.metadata.clone();
    out.insert("client_id".into(), json!(id));
    out.insert("client_id_issued_at".into(), json!(r.issued_at));
    if let Some(s) = &r.secret {
        out.insert("client_secret".into(), json!(s));
        out.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(t) = token {
        out.insert("registration_access_token".into(), json!(t));
    }
    out.insert(
        "registration_client_uri".into(),
        json!(format!("{}/register/{id}", base(app))),
    );
    Value::Object(out)
}

fn idp_of(app: &App) -> Option<&super::Idp> {
    app.idp.as_ref()
}

/// `POST /register` (RFC 7591 §3.1).
pub(super) async fn register(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = idp_of(&app) else {
        return super::off();
    };
    if let Some(expected) = &idp.registration_token {
        match super::scheme_credentials(&headers, "Bearer").filter(|t| !t.is_empty()) {
            Some(t) if same(t, expected) => {}
            Some(_) => return invalid_token("the initial access token is wrong"),
            None => {
                return invalid_token(
                    "registration needs the initial access token (serve --registration-token)",
                );
            }
        }
    }
    let m = match body_object(&body) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let id = random_token();
    let token = random_token();
    let now = when::now();
    let r = match prepare(idp, &id, m, None, state::key(&token), now).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state::put(&app, Kind::Client, &id, &r, now.saturating_add(LIFETIME)).await {
        return e.into_response();
    }
    json_no_store(StatusCode::CREATED, document(&app, &id, &r, Some(&token)))
}

/// The registration `id` names, when the request's Bearer token is its registration access
/// token; else the 401 to answer (RFC 7592 §2: the same for an unknown client).
async fn authorized(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Registered, String), Response> {
    let Some(token) = super::scheme_credentials(headers, "Bearer").filter(|t| !t.is_empty()) else {
        return Err(invalid_token("the registration access token is missing"));
    };
    let r = state::get::<Registered>(app, Kind::Client, id)
        .await
        .map_err(IntoResponse::into_response)?;
    match r {
        Some(r) if same(&state::key(token), &r.token_hash) => Ok((r, token.to_string())),
        _ => Err(invalid_token(
            "no registration with this client_id and registration access token",
        )),
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub(super) async fn read(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if idp_of(&app).is_none() {
        return super::off();
    }
    match authorized(&app, &headers, &id).await {
        Ok((r, token)) => json_no_store(StatusCode::OK, document(&app, &id, &r, Some(&token))),
        Err(resp) => resp,
    }
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): the metadata replaced as a whole; the
/// client_id must be the registration's, and a client_secret, when sent, its own.
pub(super) async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = idp_of(&app) else {
        return super::off();
    };
    let (old, token) = match authorized(&app, &headers, &id).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let m = match body_object(&body) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    if m.get("client_id").and_then(Value::as_str) != Some(id.as_str()) {
        return oauth(
            "invalid_request",
            "the body's client_id must be the registration's (RFC 7592 §2.2)",
        )
        .into_response();
    }
    if let Some(sent) = m.get("client_secret")
        && old
            .secret
            .as_deref()
            .is_none_or(|s| sent.as_str() != Some(s))
    {
        return oauth("invalid_request", "client_secret is not the client's").into_response();
    }
    let r = match prepare(idp, &id, m, old.secret, old.token_hash, old.issued_at).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let now = when::now();
    if let Err(e) = state::put(&app, Kind::Client, &id, &r, now.saturating_add(LIFETIME)).await {
        return e.into_response();
    }
    json_no_store(StatusCode::OK, document(&app, &id, &r, Some(&token)))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3).
pub(super) async fn remove(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if idp_of(&app).is_none() {
        return super::off();
    }
    if let Err(resp) = authorized(&app, &headers, &id).await {
        return resp;
    }
    match state::delete(&app, Kind::Client, &id).await {
        Ok(()) => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            super::no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}
