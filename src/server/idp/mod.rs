//! `serve --idp`: a test OpenID Connect provider beside the JWKS server. It shares the
//! server's store and signing key (tokens are signed by the key the JWKS publishes) and keeps
//! its own short-lived state (codes, refresh tokens, sessions, revocations) in memory.
//!
//! Endpoints, under the issuer's path: `/authorize` (a login page, or `prompt=none`),
//! `/token` (RFC 6749 grants, PKCE S256, refresh rotation, RFC 8693 token exchange;
//! client_secret_basic, client_secret_post, private_key_jwt, or none with PKCE),
//! `/userinfo`, `/introspect` (RFC 7662), `/revoke` (RFC 7009) and `/logout`.

pub mod config;
mod state;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::App;
use crate::crypto::verify::{Policy, TrustedKeys, verify_token};
use crate::crypto::{Alg, Hash, b64, jws};
use crate::server::store::records::Kind;
use crate::when;
use config::{ClientEntry, Fail, Loaded, TOKEN_EXCHANGE, TokenFault};
use state::{AccessInfo, CodeGrant, Grant, Login};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const AT_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const SESSION_COOKIE: &str = "jwkit_session";
const CSRF_COOKIE: &str = "jwkit_csrf";

pub struct Idp {
    pub config: Loaded,
    /// No --idp-config: any client id with any secret, any redirect URI, any user.
    pub open: bool,
    pub opaque: bool,
    /// The origins browser apps may call the token and resource endpoints from.
    pub cors: crate::server::cors::Origins,
    /// The server's published keys as a trusted set, with the ETag of the document.
    own_keys: Mutex<Option<(String, Arc<TrustedKeys>)>>,
}

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: String,
    description: String,
    basic: bool,
}

fn oauth(error: &str, description: impl Into<String>) -> OAuthError {
    OAuthError {
        status: if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        },
        error: error.into(),
        description: description.into(),
        basic: false,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        no_store(r.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic {
                "Basic realm=\"jwkit\""
            } else {
                "Bearer realm=\"jwkit\""
            };
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        r
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b64::encode(b)
}

fn sha256_b64(data: &[u8]) -> String {
    b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// Form or query parameters; a repeated one is an error (RFC 6749 §3.1).
fn params(bytes: &[u8]) -> Result<BTreeMap<String, String>, OAuthError> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(oauth(
                "invalid_request",
                format!("parameter {k:?} is given more than once"),
            ));
        }
    }
    Ok(out)
}

/// The answer of an IdP route on a server without --idp (the routes are mounted only with
/// it, so this is a guard, not a path a request takes).
fn off() -> Response {
    super::error(
        StatusCode::NOT_FOUND,
        "the identity provider is off (serve --idp)",
    )
}

/// The query string of a page request (/authorize, /logout); a malformed one is an error
/// page, never a redirect.
fn query_params(q: &Option<String>) -> Result<BTreeMap<String, String>, Box<Response>> {
    params(q.as_deref().unwrap_or("").as_bytes()).map_err(|e| Box::new(error_page(&e.description)))
}

/// The HTML-escaped text.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl Idp {
    pub fn new(
        config: Loaded,
        open: bool,
        opaque: bool,
        cors: crate::server::cors::Origins,
    ) -> Idp {
        Idp {
            config,
            open,
            opaque,
            cors,
            own_keys: Mutex::new(None),
        }
    }

    /// The client entry, or (open mode) one made up for any id.
    fn client(&self, id: &str) -> Option<ClientRef<'_>> {
        match self.config.clients.get(id) {
            Some(c) => Some(ClientRef::Known(c)),
            None if self.open && !id.is_empty() => Some(ClientRef::Open(id.to_string())),
            None => None,
        }
    }
}

enum ClientRef<'a> {
    Known(&'a ClientEntry),
    Open(String),
}

impl ClientRef<'_> {
    fn id(&self) -> &str {
        match self {
            ClientRef::Known(c) => &c.client.id,
            ClientRef::Open(id) => id,
        }
    }
    fn allows(&self, grant: &str) -> bool {
        match self {
            ClientRef::Known(c) => c.grants.iter().any(|g| g == grant),
            ClientRef::Open(_) => grant != "password",
        }
    }
    fn fail(&self) -> Option<&Fail> {
        match self {
            ClientRef::Known(c) => c.client.fail.as_ref(),
            ClientRef::Open(_) => None,
        }
    }
    fn delay(&self) -> Option<std::time::Duration> {
        match self {
            ClientRef::Known(c) => c.delay,
            ClientRef::Open(_) => None,
        }
    }
    fn public(&self) -> bool {
        match self {
            ClientRef::Known(c) => c.client.secret.is_none() && c.keys.is_none(),
            ClientRef::Open(_) => false,
        }
    }
    fn audience(&self) -> String {
        match self {
            ClientRef::Known(c) => c.client.audience.clone().unwrap_or(c.client.id.clone()),
            ClientRef::Open(id) => id.clone(),
        }
    }
    fn redirect_ok(&self, uri: &str, open: bool) -> bool {
        match self {
            ClientRef::Known(c) => c.client.redirect_uris.iter().any(|u| u == uri),
            ClientRef::Open(_) => {
                open && url::Url::parse(uri)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.fragment().is_none())
            }
        }
    }
    fn scopes_ok(&self, scope: &str) -> Result<(), OAuthError> {
        if let ClientRef::Known(c) = self
            && let Some(allowed) = &c.client.scopes
            && let Some(bad) = scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .find(|s| !allowed.iter().any(|a| a == s))
        {
            return Err(oauth(
                "invalid_scope",
                format!("client {:?} may not ask for scope {bad:?}", c.client.id),
            ));
        }
        Ok(())
    }
    /// Whether this client may exchange a token for `audience` (RFC 8693 §2.1).
    fn exchange_audience_ok(&self, audience: &str) -> bool {
        match self {
            ClientRef::Known(c) => match &c.client.exchange_audiences {
                Some(list) => list.iter().any(|a| a == audience),
                None => audience == self.audience(),
            },
            ClientRef::Open(_) => true,
        }
    }
    fn claims(&self) -> Map<String, Value> {
        match self {
            ClientRef::Known(c) => c.client.claims.clone(),
            ClientRef::Open(_) => Map::new(),
        }
    }
}

/// The failure a client or user is configured with, after its delay.
async fn injected(fail: Option<&Fail>, delay: Option<std::time::Duration>) -> Option<OAuthError> {
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let f = fail?;
    let error = f.error.as_deref()?;
    Some(oauth(
        error,
        f.description
            .clone()
            .unwrap_or_else(|| format!("{error} (failure injected by the configuration)")),
    ))
}

fn fault(fail: Option<&Fail>) -> Option<TokenFault> {
    fail.and_then(|f| f.token)
}

pub fn routes(router: Router<Arc<App>>, prefix: &str) -> Router<Arc<App>> {
    let mut r = router;
    let mut prefixes = vec![String::new()];
    if !prefix.is_empty() {
        prefixes.push(prefix.to_string());
    }
    for p in prefixes {
        r = r
            .route(
                &format!("{p}/authorize"),
                get(authorize_get).post(authorize_post),
            )
            .route(&format!("{p}/token"), axum::routing::post(token))
            .route(&format!("{p}/userinfo"), get(userinfo).post(userinfo))
            .route(&format!("{p}/introspect"), axum::routing::post(introspect))
            .route(&format!("{p}/revoke"), axum::routing::post(revoke))
            .route(&format!("{p}/logout"), get(logout).post(logout));
    }
    r
}

/// The base URL of the endpoints: the issuer without its trailing slash.
fn base(app: &App) -> String {
    app.issuer.trim_end_matches('/').to_string()
}

/// The discovery members `--idp` adds.
pub fn discovery(app: &App, idp: &Idp, doc: &mut Value) {
    let b = base(app);
    let alg = app.issue.as_ref().map_or("RS256", |i| i.alg.as_str());
    let mut grants: Vec<&str> = vec![
        "authorization_code",
        "refresh_token",
        "client_credentials",
        TOKEN_EXCHANGE,
    ];
    if idp.config.password_grant {
        grants.push("password");
    }
    let mut scopes: Vec<String> = vec!["openid".into(), "offline_access".into()];
    scopes.extend(idp.config.scopes.keys().cloned());
    let mut claims: Vec<String> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "azp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for list in idp.config.scopes.values() {
        for c in list {
            if !claims.contains(c) {
                claims.push(c.clone());
            }
        }
    }
    let extra = json!({
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "userinfo_endpoint": format!("{b}/userinfo"),
        "introspection_endpoint": format!("{b}/introspect"),
        "revocation_endpoint": format!("{b}/revoke"),
        "end_session_endpoint": format!("{b}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "scopes_supported": scopes,
        "claims_supported": claims,
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login"],
    });
    if let (Value::Object(d), Value::Object(e)) = (doc, extra) {
        d.extend(e);
    }
}

// ---- /authorize ---------------------------------------------------------------------------

/// The checked authorization request.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    /// The request named redirect_uri (rather than the one registered by default).
    redirect_given: bool,
    mode: Mode,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    challenge: Option<String>,
}

/// An authorization error: shown as a page when the client or redirect URI cannot be
/// trusted (RFC 6749 §4.1.2.1), else sent back to the client.
enum AuthError {
    Page(String),
    /// Back to the client: redirect URI, state, error, response mode.
    Redirect(String, Option<String>, OAuthError, Mode),
}

fn error_page(message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>jwkit: authorization error</title>{STYLE}</head>\
         <body><main><h1>Authorization error</h1><p class=\"error\">{}</p></main></body></html>",
        html(message)
    );
    let mut r = (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    page_headers(r.headers_mut());
    r
}

fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return error_page("the redirect URI is not a URL"),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    no_store(r.headers_mut());
    r
}

fn auth_error_response(app: &App, e: AuthError) -> Response {
    match e {
        AuthError::Page(m) => error_page(&m),
        AuthError::Redirect(uri, state, err, mode) => {
            let iss = app.issuer.clone();
            let mut pairs = vec![
                ("error", err.error.as_str()),
                ("error_description", err.description.as_str()),
                ("iss", iss.as_str()),
            ];
            if let Some(s) = &state {
                pairs.push(("state", s));
            }
            respond(&uri, &pairs, mode)
        }
    }
}

/// How the authorization answer reaches the client (OAuth 2.0 Multiple Response Type
/// Encoding Practices; Form Post Response Mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Query,
    Fragment,
    FormPost,
}

/// The authorization answer in `mode`: a redirect with the pairs in the query or the
/// fragment, or a page that posts them to the redirect URI.
fn respond(uri: &str, pairs: &[(&str, &str)], mode: Mode) -> Response {
    match mode {
        Mode::Query => redirect_to(uri, pairs),
        Mode::Fragment => {
            let mut url = match url::Url::parse(uri) {
                Ok(u) => u,
                Err(_) => return error_page("the redirect URI is not a URL"),
            };
            let fragment = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            url.set_fragment(Some(&fragment));
            let mut r = StatusCode::FOUND.into_response();
            if let Ok(v) = HeaderValue::from_str(url.as_str()) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            no_store(r.headers_mut());
            r
        }
        Mode::FormPost => {
            let inputs: String = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                        html(k),
                        html(v)
                    )
                })
                .collect();
            let body = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>jwkit: sending the answer</title></head>\
                 <body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\">{inputs}\
                 <noscript><button type=\"submit\">Continue</button></noscript></form></body></html>",
                html(uri)
            );
            let mut r =
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
            let h = r.headers_mut();
            no_store(h);
            // Only the one inline handler runs; the page may not be framed.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-hashes' 'sha256-ePniVEkSivX/c7XWBGafqh8tSpiRrKiqYeqbG7N1TOE='; frame-ancestors 'none'",
                ),
            );
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            r
        }
    }
}

/// Headers of every HTML page: never framed (RFC 9700 §4.16), nothing loaded from outside.
fn page_headers(h: &mut HeaderMap) {
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
}

fn check_auth_request(idp: &Idp, p: &BTreeMap<String, String>) -> Result<AuthRequest, AuthError> {
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let Some(client) = idp.client(&client_id) else {
        return Err(AuthError::Page(if client_id.is_empty() {
            "the request has no client_id".into()
        } else {
            format!("unknown client_id {client_id:?}")
        }));
    };
    let redirect_uri = match (p.get("redirect_uri"), &client) {
        (Some(u), c) if c.redirect_ok(u, idp.open) => u.clone(),
        (Some(u), _) => {
            return Err(AuthError::Page(format!(
                "redirect_uri {u:?} is not registered for client {client_id:?} (it must match exactly)"
            )));
        }
        (None, ClientRef::Known(c)) if c.client.redirect_uris.len() == 1 => {
            c.client.redirect_uris[0].clone()
        }
        (None, _) => return Err(AuthError::Page("the request has no redirect_uri".into())),
    };
    let state = p.get("state").cloned();
    let mode = match p.get("response_mode").map(String::as_str) {
        None | Some("query") => Mode::Query,
        Some("fragment") => Mode::Fragment,
        Some("form_post") => Mode::FormPost,
        Some(other) => {
            return Err(AuthError::Redirect(
                redirect_uri.clone(),
                state.clone(),
                oauth(
                    "invalid_request",
                    format!("response_mode {other:?}: query, fragment or form_post"),
                ),
                Mode::Query,
            ));
        }
    };
    let back = |e: OAuthError| AuthError::Redirect(redirect_uri.clone(), state.clone(), e, mode);
    match p.get("response_type").map(String::as_str) {
        Some("code") => {}
        Some(other) => {
            return Err(back(oauth(
                "unsupported_response_type",
                format!("response_type {other:?}: only \"code\" is supported"),
            )));
        }
        None => return Err(back(oauth("invalid_request", "response_type is missing"))),
    }
    let challenge = match (
        p.get("code_challenge"),
        p.get("code_challenge_method").map(String::as_str),
    ) {
        (None, None) => None,
        (Some(c), Some("S256")) => {
            if c.len() != 43 || b64::decode(c).is_err() {
                return Err(back(oauth(
                    "invalid_request",
                    "code_challenge must be 43 base64url characters (SHA-256)",
                )));
            }
            Some(c.clone())
        }
        (Some(_), None | Some("plain")) => {
            return Err(back(oauth(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported)",
            )));
        }
        (_, Some(m)) => {
            return Err(back(oauth(
                "invalid_request",
                format!(
                    "code_challenge_method {m:?} without a code_challenge, or unknown: only S256"
                ),
            )));
        }
    };
    if challenge.is_none() && client.public() {
        return Err(back(oauth(
            "invalid_request",
            "a public client must use PKCE (code_challenge with S256)",
        )));
    }
    if !client.allows("authorization_code") {
        return Err(back(oauth(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        )));
    }
    let scope = p.get("scope").cloned().unwrap_or_else(|| "openid".into());
    client.scopes_ok(&scope).map_err(back)?;
    Ok(AuthRequest {
        redirect_given: p.contains_key("redirect_uri"),
        mode,
        client_id: client.id().to_string(),
        redirect_uri,
        scope,
        state,
        nonce: p.get("nonce").cloned(),
        challenge,
    })
}

/// The user for a name: from the configuration, or (none configured) made up.
fn user_login(idp: &Idp, name: &str, typed: Map<String, Value>, now: i64) -> Option<Login> {
    let mut claims = Map::new();
    match idp.config.users.get(name) {
        Some(u) => claims.extend(config::fill(&u.user.claims, &[("sub", name)])),
        None if idp.config.users.is_empty() || idp.open => {}
        None => return None,
    }
    let mut typed = typed;
    let sub = typed
        .remove("sub")
        .or_else(|| claims.remove("sub"))
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| name.to_string());
    claims.remove("sub");
    for k in typed.keys() {
        claims.remove(k);
    }
    Some(Login {
        sub,
        claims,
        typed,
        auth_time: now,
    })
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, if the request sent it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(prefix.as_str()).map(str::to_string))
        .next()
}

async fn authorize_get(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let p = match query_params(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let req = match check_auth_request(idp, &p) {
        Ok(r) => r,
        Err(e) => return auth_error_response(&app, e),
    };
    let back = |e: OAuthError| {
        auth_error_response(
            &app,
            AuthError::Redirect(req.redirect_uri.clone(), req.state.clone(), e, req.mode),
        )
    };
    if let Some(client) = idp.client(&req.client_id)
        && let Some(e) = injected(client.fail(), client.delay()).await
    {
        return back(e);
    }
    let now = when::now();
    let prompt = p.get("prompt").map(String::as_str).unwrap_or("");
    if prompt.split(' ').any(|x| x == "none") {
        // Headless: the user named by login_hint, else the session's.
        let login = match p.get("login_hint") {
            Some(name)
                if idp
                    .config
                    .users
                    .get(name.as_str())
                    .is_some_and(|u| u.user.password.is_some()) =>
            {
                return back(oauth(
                    "login_required",
                    "login_hint names a user with a password: that user logs in on the page",
                ));
            }
            Some(name) => user_login(idp, name, Map::new(), now),
            None => match session_of(&headers) {
                Some(s) => match state::get::<Login>(&app, Kind::Session, &state::key(&s)).await {
                    Ok(l) => l,
                    Err(e) => return back(e),
                },
                None => None,
            },
        };
        let Some(login) = login else {
            return back(oauth(
                "login_required",
                "prompt=none, and no login_hint or session names a known user",
            ));
        };
        return finish_login(&app, idp, &req, login, None).await;
    }
    login_page(
        &req,
        p.get("login_hint").map(String::as_str).unwrap_or(""),
        "",
        None,
    )
}

async fn authorize_post(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let p = match params(&body) {
        Ok(p) => p,
        Err(e) => return error_page(&e.description),
    };
    let req = match check_auth_request(idp, &p) {
        Ok(r) => r,
        Err(e) => return auth_error_response(&app, e),
    };
    let name = p
        .get("username")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let claims_text = p.get("claims").cloned().unwrap_or_default();
    if !csrf_ok(&headers, &p) {
        return login_page(
            &req,
            &name,
            &claims_text,
            Some("The form expired or was not sent from this page: log in again."),
        );
    }
    if name.is_empty() {
        return login_page(&req, &name, &claims_text, Some("Type a user name."));
    }
    let typed = if claims_text.trim().is_empty() {
        Map::new()
    } else {
        match crate::crypto::json::parse_object(claims_text.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                return login_page(
                    &req,
                    &name,
                    &claims_text,
                    Some(&format!("The claims are not a JSON object: {e}")),
                );
            }
        }
    };
    if let Some(u) = idp.config.users.get(&name)
        && let Some(pw) = &u.user.password
        && p.get("password").is_none_or(|given| {
            aws_lc_rs::constant_time::verify_slices_are_equal(given.as_bytes(), pw.as_bytes())
                .is_err()
        })
    {
        return login_page(&req, &name, &claims_text, Some("Wrong password."));
    }
    // A typed sub is a shortcut for users without a password, never a way around one.
    if let Some(Value::String(sub)) = typed.get("sub")
        && *sub != name
        && idp
            .config
            .users
            .get(sub.as_str())
            .is_some_and(|u| u.user.password.is_some())
    {
        return login_page(
            &req,
            &name,
            &claims_text,
            Some("The claims name another user (sub) who has a password: log in as that user."),
        );
    }
    let Some(login) = user_login(idp, &name, typed, when::now()) else {
        return login_page(&req, &name, &claims_text, Some("No such user."));
    };
    let session = random_token();
    let expires = when::now().saturating_add(idp.config.session_ttl);
    if let Err(e) = state::put(&app, Kind::Session, &state::key(&session), &login, expires).await {
        return error_page(&e.description);
    }
    finish_login(&app, idp, &req, login, Some(session)).await
}

/// A logged-in user: the user's injected failure, else a code sent back.
async fn finish_login(
    app: &App,
    idp: &Idp,
    req: &AuthRequest,
    login: Login,
    session: Option<String>,
) -> Response {
    let name = login.sub.clone();
    if let Some(u) = idp.config.users.get(&name)
        && let Some(e) = injected(u.user.fail.as_ref(), u.delay).await
    {
        return auth_error_response(
            app,
            AuthError::Redirect(req.redirect_uri.clone(), req.state.clone(), e, req.mode),
        );
    }
    let now = when::now();
    let code = random_token();
    let expires = now.saturating_add(idp.config.code_ttl);
    let record = CodeGrant {
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        redirect_given: req.redirect_given,
        challenge: req.challenge.clone(),
        nonce: req.nonce.clone(),
        grant: Grant {
            client_id: req.client_id.clone(),
            login: Some(login),
            scope: req.scope.clone(),
            expires: now.saturating_add(idp.config.refresh_ttl),
            family: random_token(),
        },
        expires,
    };
    // Kept a while past its expiry, so a late redemption hears "expired", not "unknown".
    let kept = expires.saturating_add(idp.config.code_ttl.max(60));
    if let Err(e) = state::put(app, Kind::Code, &state::key(&code), &record, kept).await {
        return auth_error_response(
            app,
            AuthError::Redirect(req.redirect_uri.clone(), req.state.clone(), e, req.mode),
        );
    }
    let mut pairs = vec![("code", code.as_str()), ("iss", app.issuer.as_str())];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    let mut r = respond(&req.redirect_uri, &pairs, req.mode);
    if let Some(s) = session
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={s}; Path=/; HttpOnly; SameSite=Lax"
        ))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

const STYLE: &str = "<style>body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:1rem 0 .3rem;font-weight:600}\
input,textarea{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #bbb;border-radius:4px}\
textarea{font-family:ui-monospace,monospace;min-height:6rem}button{margin-top:1.2rem;padding:.6rem 1.2rem;font:inherit;\
background:#2454a6;color:#fff;border:0;border-radius:4px}.error{color:#a00}.client{color:#555;font-size:.9rem}</style>";

fn login_page(req: &AuthRequest, name: &str, claims: &str, error: Option<&str>) -> Response {
    // Double-submit CSRF token: in a cookie only this site's pages send, and in the form.
    let csrf = random_token();
    let mut hidden = String::new();
    let mut field = |k: &str, v: &str| {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            html(k),
            html(v)
        ));
    };
    field("csrf", &csrf);
    field("response_type", "code");
    if req.mode != Mode::Query {
        field(
            "response_mode",
            if req.mode == Mode::Fragment {
                "fragment"
            } else {
                "form_post"
            },
        );
    }
    field("client_id", &req.client_id);
    if req.redirect_given {
        field("redirect_uri", &req.redirect_uri);
    }
    field("scope", &req.scope);
    if let Some(s) = &req.state {
        field("state", s);
    }
    if let Some(n) = &req.nonce {
        field("nonce", n);
    }
    if let Some(c) = &req.challenge {
        field("code_challenge", c);
        field("code_challenge_method", "S256");
    }
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"error\">{}</p>", html(e))
    });
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>jwkit: log in</title>{STYLE}</head><body><main>\
         <h1>Log in (jwkit test identity provider)</h1>\
         <p class=\"client\">for <b>{client}</b>, scope <code>{scope}</code></p>{error}\
         <form method=\"post\" action=\"authorize\">{hidden}\
         <label for=\"username\">User name</label><input id=\"username\" name=\"username\" value=\"{name}\" autofocus required>\
         <label for=\"password\">Password (only for users configured with one)</label><input id=\"password\" name=\"password\" type=\"password\">\
         <label for=\"claims\">Extra claims (a JSON object, optional)</label>\
         <textarea id=\"claims\" name=\"claims\" placeholder='{{\"email\": \"alice@example.com\", \"roles\": [\"admin\"]}}'>{claims}</textarea>\
         <button id=\"login\" type=\"submit\">Log in</button></form></main></body></html>",
        client = html(&req.client_id),
        scope = html(&req.scope),
        name = html(name),
        claims = html(claims),
    );
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    let h = r.headers_mut();
    no_store(h);
    page_headers(h);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={csrf}; Path=/; HttpOnly; SameSite=Strict"
    )) {
        h.append(header::SET_COOKIE, v);
    }
    r
}

/// True when the form's CSRF token is the one in the cookie the login page set.
fn csrf_ok(headers: &HeaderMap, p: &BTreeMap<String, String>) -> bool {
    let Some(given) = p.get("csrf") else {
        return false;
    };
    cookie(headers, CSRF_COOKIE).is_some_and(|c| {
        aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), given.as_bytes()).is_ok()
    })
}

// ---- client authentication ----------------------------------------------------------------

/// Authenticates the client of a token, introspection or revocation request.
async fn authenticate<'a>(
    app: &App,
    idp: &'a Idp,
    headers: &HeaderMap,
    p: &BTreeMap<String, String>,
) -> Result<ClientRef<'a>, OAuthError> {
    let basic = scheme_credentials(headers, "Basic");
    let unauthorized = |basic: bool, d: &str| OAuthError {
        basic,
        ..oauth("invalid_client", d)
    };
    let secret_matches = |client: &ClientRef<'_>, given: &str| match client {
        ClientRef::Open(_) => true,
        ClientRef::Known(c) => c.client.secret.as_ref().is_some_and(|s| {
            aws_lc_rs::constant_time::verify_slices_are_equal(s.as_bytes(), given.as_bytes())
                .is_ok()
        }),
    };
    if let Some(b) = basic {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                unauthorized(true, "the Basic credentials are not base64 of id:secret")
            })?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized(true, "the Basic credentials are not id:secret"))?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded.
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (id, secret) = (dec(id), dec(secret));
        if p.get("client_id").is_some_and(|c| *c != id) {
            return Err(oauth(
                "invalid_request",
                "client_id differs from the Basic credentials",
            ));
        }
        let client = idp
            .client(&id)
            .ok_or_else(|| unauthorized(true, "unknown client"))?;
        if !secret_matches(&client, &secret) {
            return Err(unauthorized(true, "wrong client secret"));
        }
        return Ok(client);
    }
    if let Some(assertion) = p.get("client_assertion") {
        if p.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(oauth(
                "invalid_request",
                format!("client_assertion_type must be {JWT_BEARER}"),
            ));
        }
        return assertion_client(app, idp, assertion, p.get("client_id")).await;
    }
    let id = p.get("client_id").ok_or_else(|| {
        unauthorized(
            false,
            "no client authentication (Basic, client_secret, client_assertion) and no client_id",
        )
    })?;
    let client = idp
        .client(id)
        .ok_or_else(|| unauthorized(false, "unknown client"))?;
    match p.get("client_secret") {
        Some(s) if secret_matches(&client, s) => Ok(client),
        Some(_) => Err(unauthorized(false, "wrong client secret")),
        None if client.public() || idp.open => Ok(client),
        None => Err(unauthorized(false, "this client must authenticate")),
    }
}

/// private_key_jwt (RFC 7523): the assertion verified against the client's registered keys,
/// iss = sub = the client, aud the token endpoint or the issuer, not seen before.
async fn assertion_client<'a>(
    app: &App,
    idp: &'a Idp,
    assertion: &str,
    client_id: Option<&String>,
) -> Result<ClientRef<'a>, OAuthError> {
    let bad = |d: String| oauth("invalid_client", d);
    let c = jws::Compact::parse(assertion).map_err(|e| bad(format!("client_assertion: {e}")))?;
    let claims = c
        .claims()
        .ok_or_else(|| bad("client_assertion: the payload is not a claims object".into()))?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if client_id.is_some_and(|id| *id != iss) {
        return Err(bad("client_assertion: iss is not the client_id".into()));
    }
    let Some(ClientRef::Known(entry)) = idp.client(&iss) else {
        return Err(bad(format!(
            "client_assertion: no registered client {iss:?} with keys"
        )));
    };
    let Some(keys) = &entry.keys else {
        return Err(bad(format!(
            "client {iss:?} has no jwks for private_key_jwt"
        )));
    };
    let b = base(app);
    let policy = Policy {
        iss: Some(iss.clone()),
        sub: Some(iss.clone()),
        // Any endpoint of this server that takes client authentication, or the issuer.
        aud: vec![
            format!("{b}/token"),
            format!("{b}/introspect"),
            format!("{b}/revoke"),
            app.issuer.clone(),
            b.clone(),
        ],
        require: vec!["exp".into()],
        leeway: 5,
        ..Policy::default()
    };
    let now = when::now();
    let verified = verify_token(assertion, keys, &policy, now)
        .map_err(|r| bad(format!("client_assertion: {}", r.message)))?;
    let claims = verified.claims.unwrap_or_default();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        // Once across every replica: the store adds the record only when none is live.
        let seen = state::key(&format!("{iss}\u{0}{jti}"));
        if !state::add(app, Kind::Assertion, &seen, exp.max(now + 1)).await? {
            return Err(bad("client_assertion: this jti was used already".into()));
        }
    }
    Ok(ClientRef::Known(entry))
}

// ---- tokens -------------------------------------------------------------------------------

fn user_claims_for(idp: &Idp, login: &Login, scope: &str) -> Map<String, Value> {
    let asked: HashSet<&str> = scope.split(' ').collect();
    let mut out: Map<String, Value> = login
        .claims
        .iter()
        .filter(|(name, _)| {
            let governed: Vec<&String> = idp
                .config
                .scopes
                .iter()
                .filter(|(_, list)| list.iter().any(|c| c == *name))
                .map(|(s, _)| s)
                .collect();
            governed.is_empty() || governed.iter().any(|s| asked.contains(s.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(login.typed.clone());
    out
}

fn sign(
    app: &App,
    typ: &str,
    claims: &Map<String, Value>,
    fault: Option<TokenFault>,
) -> Result<String, OAuthError> {
    let (kid, signer) = app.signer().ok_or_else(|| OAuthError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..oauth("temporarily_unavailable", "no active signing key")
    })?;
    let mut header = Map::new();
    header.insert("alg".into(), signer.alg().as_str().into());
    header.insert("typ".into(), typ.into());
    header.insert("kid".into(), kid.into());
    let payload =
        serde_json::to_vec(claims).map_err(|_| oauth("server_error", "encoding the claims"))?;
    let token = jws::encode(&header, &payload, &signer)
        .map_err(|_| oauth("server_error", "signing failed"))?;
    Ok(match fault {
        Some(TokenFault::InvalidSignature) => {
            // The first signature character changed: still well-formed, no longer valid.
            let dot = token.rfind('.').unwrap_or(0) + 1;
            let mut bytes = token.into_bytes();
            if let Some(b) = bytes.get_mut(dot) {
                *b = if *b == b'A' { b'B' } else { b'A' };
            }
            String::from_utf8(bytes).unwrap_or_default()
        }
        _ => token,
    })
}

/// `at_hash`: the left half of the hash of the access token, by the signing alg's hash.
fn at_hash(alg: Alg, token: &str) -> String {
    let algo = match alg.hash() {
        Some(Hash::Sha256) => &aws_lc_rs::digest::SHA256,
        Some(Hash::Sha384) => &aws_lc_rs::digest::SHA384,
        Some(Hash::Sha512) | None => &aws_lc_rs::digest::SHA512,
    };
    let d = aws_lc_rs::digest::digest(algo, token.as_bytes());
    b64::encode(&d.as_ref()[..d.as_ref().len() / 2])
}

struct Issued {
    access: String,
    expires_in: i64,
    scope: String,
    id_token: Option<String>,
    refresh: Option<String>,
    issued_token_type: Option<&'static str>,
}

impl Issued {
    fn response(self) -> Response {
        let mut body = json!({
            "access_token": self.access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        });
        if let Some(t) = self.id_token {
            body["id_token"] = t.into();
        }
        if let Some(t) = self.refresh {
            body["refresh_token"] = t.into();
        }
        if let Some(t) = self.issued_token_type {
            body["issued_token_type"] = t.into();
        }
        let mut r = Json(body).into_response();
        no_store(r.headers_mut());
        r
    }
}

struct IssueParams<'a> {
    client: &'a ClientRef<'a>,
    login: Option<&'a Login>,
    scope: String,
    audience: Option<String>,
    nonce: Option<String>,
    refresh: bool,
    fault: Option<TokenFault>,
    act: Option<Value>,
    issued_token_type: Option<&'static str>,
    /// The token family (from a code); None starts none (client credentials, exchange).
    family: Option<String>,
}

impl<'a> IssueParams<'a> {
    /// Tokens for `client` (and `login`) with `scope`: no nonce, no refresh token, no `act`.
    fn new(
        client: &'a ClientRef<'a>,
        login: Option<&'a Login>,
        scope: String,
        fault: Option<TokenFault>,
    ) -> IssueParams<'a> {
        IssueParams {
            client,
            login,
            scope,
            audience: None,
            nonce: None,
            refresh: false,
            fault,
            act: None,
            issued_token_type: None,
            family: None,
        }
    }
}

async fn issue(app: &App, idp: &Idp, ip: IssueParams<'_>) -> Result<Issued, OAuthError> {
    let now = when::now();
    let ttl = idp.config.access_ttl;
    let (iat, exp) = match ip.fault {
        Some(TokenFault::Expired) => (now - 2 * ttl, now - ttl),
        _ => (now, now.saturating_add(ttl)),
    };
    let sub = ip
        .login
        .map_or(ip.client.id().to_string(), |l| l.sub.clone());
    let vars = [
        ("sub", sub.as_str()),
        ("client_id", ip.client.id()),
        ("scope", ip.scope.as_str()),
    ];
    let jti = random_token();
    let mut claims = Map::new();
    claims.extend(config::fill(&idp.config.claims, &vars));
    claims.extend(config::fill(&ip.client.claims(), &vars));
    if let Some(l) = ip.login {
        claims.extend(user_claims_for(idp, l, &ip.scope));
    }
    claims.insert("iss".into(), app.issuer.clone().into());
    claims.insert("sub".into(), sub.clone().into());
    claims.insert(
        "aud".into(),
        ip.audience
            .clone()
            .unwrap_or_else(|| ip.client.audience())
            .into(),
    );
    claims.insert("iat".into(), iat.into());
    claims.insert("exp".into(), exp.into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert("client_id".into(), ip.client.id().into());
    if !ip.scope.is_empty() {
        claims.insert("scope".into(), ip.scope.clone().into());
    }
    if let Some(l) = ip.login {
        claims.insert("auth_time".into(), l.auth_time.into());
    }
    if let Some(act) = &ip.act {
        claims.insert("act".into(), act.clone());
    }
    let mut userinfo = Map::new();
    userinfo.insert("sub".into(), sub.clone().into());
    if let Some(l) = ip.login {
        userinfo.extend(user_claims_for(idp, l, &ip.scope));
    }
    let access = if idp.opaque {
        random_token()
    } else {
        sign(app, "at+jwt", &claims, ip.fault)?
    };
    // Kept: opaque tokens (they are only this record) and tokens of a user (userinfo).
    if idp.opaque || ip.login.is_some() || ip.family.is_some() {
        let key = if idp.opaque {
            state::key(&access)
        } else {
            jti.clone()
        };
        let info = AccessInfo {
            claims: claims.clone(),
            userinfo,
            family: ip.family.clone(),
        };
        state::put(app, Kind::Access, &key, &info, exp.max(now + 1)).await?;
    }
    let id_token = match (ip.login, ip.scope.split(' ').any(|s| s == "openid")) {
        (Some(l), true) => {
            let alg = app.signer().map_or(Alg::RS256, |(_, s)| s.alg());
            let (iat, exp) = match ip.fault {
                Some(TokenFault::Expired) => (now - 2 * idp.config.id_ttl, now - idp.config.id_ttl),
                _ => (now, now.saturating_add(idp.config.id_ttl)),
            };
            let mut id = Map::new();
            id.extend(config::fill(&idp.config.claims, &vars));
            id.extend(config::fill(&ip.client.claims(), &vars));
            id.extend(user_claims_for(idp, l, &ip.scope));
            id.insert("iss".into(), app.issuer.clone().into());
            id.insert("sub".into(), sub.clone().into());
            id.insert("aud".into(), ip.client.id().into());
            id.insert("azp".into(), ip.client.id().into());
            id.insert("iat".into(), iat.into());
            id.insert("exp".into(), exp.into());
            id.insert("auth_time".into(), l.auth_time.into());
            id.insert("at_hash".into(), at_hash(alg, &access).into());
            if let Some(n) = &ip.nonce {
                id.insert("nonce".into(), n.clone().into());
            }
            Some(sign(app, "JWT", &id, ip.fault)?)
        }
        _ => None,
    };
    let refresh = if ip.refresh && ip.client.allows("refresh_token") {
        let token = random_token();
        let expires = now.saturating_add(idp.config.refresh_ttl);
        let grant = Grant {
            client_id: ip.client.id().to_string(),
            login: ip.login.cloned(),
            scope: ip.scope.clone(),
            expires,
            family: ip.family.clone().unwrap_or_else(random_token),
        };
        state::put(app, Kind::Refresh, &state::key(&token), &grant, expires).await?;
        Some(token)
    } else {
        None
    };
    Ok(Issued {
        access,
        expires_in: exp - now,
        scope: ip.scope,
        id_token,
        refresh,
        issued_token_type: ip.issued_token_type,
    })
}

/// The trusted set of the server's own published keys, to check tokens it issued.
/// Parsed once per document (by its ETag), not per request.
fn own_keys(app: &App, idp: &Idp) -> Option<Arc<TrustedKeys>> {
    let doc = app.store.doc(when::now());
    let mut cached = idp.own_keys.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((etag, keys)) = cached.as_ref()
        && *etag == doc.etag
    {
        return Some(Arc::clone(keys));
    }
    let set = crate::crypto::JwkSet::parse(&doc.body).ok()?;
    let keys = Arc::new(TrustedKeys::from_fetched_set(set, &[]));
    *cached = Some((doc.etag.clone(), Arc::clone(&keys)));
    Some(keys)
}

/// The facts of an access token this server issued and has not revoked, if it is active.
async fn active_access(
    app: &App,
    idp: &Idp,
    token: &str,
) -> Result<Option<AccessInfo>, OAuthError> {
    let now = when::now();
    if idp.opaque && !token.contains('.') {
        let key = state::key(token);
        let Some(info) = state::get::<AccessInfo>(app, Kind::Access, &key).await? else {
            return Ok(None);
        };
        if info.claims.get("exp").and_then(Value::as_i64).unwrap_or(0) <= now
            || state::access_revoked(app, &key).await?
            || family_revoked(app, &info).await?
        {
            return Ok(None);
        }
        return Ok(Some(info));
    }
    verified_access(app, idp, token, now).await
}

/// Whether the family of an access token was revoked.
async fn family_revoked(app: &App, info: &AccessInfo) -> Result<bool, OAuthError> {
    match &info.family {
        Some(f) => state::family_revoked(app, f).await,
        None => Ok(false),
    }
}

/// A JWT access token of this issuer, verified, not revoked: its facts.
async fn verified_access(
    app: &App,
    idp: &Idp,
    token: &str,
    now: i64,
) -> Result<Option<AccessInfo>, OAuthError> {
    let Some(keys) = own_keys(app, idp) else {
        return Ok(None);
    };
    let policy = Policy {
        iss: Some(app.issuer.clone()),
        any_aud: true,
        typ: Some("at+jwt".into()),
        ..Policy::default()
    };
    let Some(claims) = verify_token(token, &keys, &policy, now)
        .ok()
        .and_then(|v| v.claims)
    else {
        return Ok(None);
    };
    let Some(jti) = claims
        .get("jti")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(None);
    };
    if state::access_revoked(app, &jti).await? {
        return Ok(None);
    }
    let info = match state::get::<AccessInfo>(app, Kind::Access, &jti).await? {
        Some(info) => info,
        None => AccessInfo {
            userinfo: {
                let mut m = Map::new();
                m.insert(
                    "sub".into(),
                    claims.get("sub").cloned().unwrap_or(Value::Null),
                );
                m
            },
            claims,
            family: None,
        },
    };
    if family_revoked(app, &info).await? {
        return Ok(None);
    }
    Ok(Some(info))
}

async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    match token_inner(&app, idp, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    app: &App,
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let p = params(body)?;
    let client = authenticate(app, idp, headers, &p).await?;
    if let Some(e) = injected(client.fail(), client.delay()).await {
        return Err(e);
    }
    let fault = fault(client.fail());
    let grant = p
        .get("grant_type")
        .map(String::as_str)
        .ok_or_else(|| oauth("invalid_request", "grant_type is missing"))?;
    let known = [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "password",
        TOKEN_EXCHANGE,
    ];
    if !known.contains(&grant) || (grant == "password" && !idp.config.password_grant) {
        return Err(oauth(
            "unsupported_grant_type",
            format!("grant_type {grant:?} is not supported here"),
        ));
    }
    if !client.allows(grant) {
        return Err(oauth(
            "unauthorized_client",
            format!("this client may not use {grant}"),
        ));
    }
    let now = when::now();
    let issued = match grant {
        "client_credentials" => {
            let scope = p.get("scope").cloned().unwrap_or_default();
            client.scopes_ok(&scope)?;
            issue(
                app,
                idp,
                IssueParams {
                    audience: p.get("audience").or(p.get("resource")).cloned(),
                    ..IssueParams::new(&client, None, scope, fault)
                },
            )
            .await?
        }
        "authorization_code" => {
            let code = p
                .get("code")
                .ok_or_else(|| oauth("invalid_request", "code is missing"))?;
            let code_key = state::key(code);
            let g = state::take::<CodeGrant>(app, Kind::Code, &code_key).await?;
            if g.is_none() {
                replayed(app, idp, &code_key).await?;
            }
            let g = redeemed(
                "code",
                g,
                |g| (g.expires, g.client_id.as_str()),
                &client,
                now,
            )?;
            // Redeemed: a second use of this code revokes what it issued.
            let family_ttl = idp.config.refresh_ttl.max(idp.config.access_ttl);
            state::mark_used(
                app,
                &code_key,
                &g.grant.family,
                now.saturating_add(family_ttl),
            )
            .await?;
            // RFC 6749 §4.1.3: required when the authorization request included it.
            if (g.redirect_given || p.contains_key("redirect_uri"))
                && p.get("redirect_uri") != Some(&g.redirect_uri)
            {
                return Err(oauth(
                    "invalid_grant",
                    "redirect_uri differs from the authorization request's",
                ));
            }
            match (&g.challenge, p.get("code_verifier")) {
                (Some(c), Some(v)) => {
                    let shape = (43..=128).contains(&v.len())
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                    if !shape || sha256_b64(v.as_bytes()) != *c {
                        return Err(oauth(
                            "invalid_grant",
                            "the PKCE code_verifier does not match the code_challenge",
                        ));
                    }
                }
                (Some(_), None) => {
                    return Err(oauth(
                        "invalid_grant",
                        "code_verifier is missing (the request used PKCE)",
                    ));
                }
                (None, Some(_)) => {
                    return Err(oauth(
                        "invalid_grant",
                        "code_verifier given, but the authorization request had no code_challenge",
                    ));
                }
                (None, None) => {}
            }
            let user_fault = g
                .grant
                .login
                .as_ref()
                .and_then(|l| idp.config.users.get(&l.sub))
                .and_then(fault_of_user);
            issue(
                app,
                idp,
                IssueParams {
                    nonce: g.nonce.clone(),
                    refresh: true,
                    family: Some(g.grant.family.clone()),
                    ..IssueParams::new(
                        &client,
                        g.grant.login.as_ref(),
                        g.grant.scope.clone(),
                        fault.or(user_fault),
                    )
                },
            )
            .await?
        }
        "refresh_token" => {
            let rt = p
                .get("refresh_token")
                .ok_or_else(|| oauth("invalid_request", "refresh_token is missing"))?;
            // Rotating refresh tokens: each is good once; a second use revokes the family.
            let rt_key = state::key(rt);
            let g = state::take::<Grant>(app, Kind::Refresh, &rt_key).await?;
            if g.is_none() {
                replayed(app, idp, &rt_key).await?;
            }
            let g = redeemed(
                "refresh token",
                g,
                |g| (g.expires, g.client_id.as_str()),
                &client,
                now,
            )?;
            if state::family_revoked(app, &g.family).await? {
                return Err(oauth("invalid_grant", "the refresh token was revoked"));
            }
            state::mark_used(app, &rt_key, &g.family, g.expires).await?;
            let scope = match p.get("scope") {
                None => g.scope.clone(),
                Some(s) => {
                    let had: HashSet<&str> = g.scope.split(' ').collect();
                    if let Some(extra) = s.split(' ').find(|x| !x.is_empty() && !had.contains(x)) {
                        return Err(oauth(
                            "invalid_scope",
                            format!("scope {extra:?} was not granted"),
                        ));
                    }
                    s.clone()
                }
            };
            issue(
                app,
                idp,
                IssueParams {
                    refresh: true,
                    family: Some(g.family.clone()),
                    ..IssueParams::new(&client, g.login.as_ref(), scope, fault)
                },
            )
            .await?
        }
        "password" => {
            let name = p
                .get("username")
                .ok_or_else(|| oauth("invalid_request", "username is missing"))?;
            let pw = p
                .get("password")
                .ok_or_else(|| oauth("invalid_request", "password is missing"))?;
            let Some(u) = idp.config.users.get(name) else {
                return Err(oauth("invalid_grant", "wrong user name or password"));
            };
            let ok = u.user.password.as_ref().is_some_and(|want| {
                aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), pw.as_bytes())
                    .is_ok()
            });
            if !ok {
                return Err(oauth("invalid_grant", "wrong user name or password"));
            }
            if let Some(e) = injected(u.user.fail.as_ref(), u.delay).await {
                return Err(e);
            }
            let login = user_login(idp, name, Map::new(), now)
                .ok_or_else(|| oauth("invalid_grant", "no such user"))?;
            let scope = p.get("scope").cloned().unwrap_or_default();
            client.scopes_ok(&scope)?;
            issue(
                app,
                idp,
                IssueParams {
                    refresh: true,
                    ..IssueParams::new(&client, Some(&login), scope, fault.or(fault_of_user(u)))
                },
            )
            .await?
        }
        _ => {
            // RFC 8693: a token this server issued, exchanged for an access token for another
            // audience, with `act` naming the client that asked.
            let subject = p
                .get("subject_token")
                .ok_or_else(|| oauth("invalid_request", "subject_token is missing"))?;
            let kind = p
                .get("subject_token_type")
                .map(String::as_str)
                .ok_or_else(|| oauth("invalid_request", "subject_token_type is missing"))?;
            if ![AT_TYPE, JWT_TYPE, ID_TYPE].contains(&kind) {
                return Err(oauth(
                    "invalid_request",
                    format!(
                        "subject_token_type {kind:?} is not supported (access_token, jwt or id_token)"
                    ),
                ));
            }
            if let Some(t) = p.get("requested_token_type")
                && t != AT_TYPE
            {
                return Err(oauth(
                    "invalid_request",
                    "only an access token can be requested",
                ));
            }
            // RFC 8693 §2.2.2: a subject token that is not valid is invalid_request.
            let inactive = || {
                oauth(
                    "invalid_request",
                    "subject_token is not an active token of this issuer (expired, revoked or another issuer's)",
                )
            };
            let claims = match active_access(app, idp, subject).await? {
                Some(info) => info.claims,
                None if kind == AT_TYPE => return Err(inactive()),
                None => {
                    // An ID token or another JWT of this issuer; never an access token that
                    // was found inactive above.
                    let keys =
                        own_keys(app, idp).ok_or_else(|| oauth("server_error", "no keys"))?;
                    let policy = Policy {
                        iss: Some(app.issuer.clone()),
                        any_aud: true,
                        ..Policy::default()
                    };
                    let is_access = jws::Compact::parse(subject).is_ok_and(|c| {
                        c.header
                            .get("typ")
                            .and_then(Value::as_str)
                            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
                    });
                    if is_access {
                        return Err(inactive());
                    }
                    let verified = verify_token(subject, &keys, &policy, now)
                        .ok()
                        .and_then(|v| v.claims)
                        .ok_or_else(inactive)?;
                    if let Some(jti) = verified.get("jti").and_then(Value::as_str)
                        && state::access_revoked(app, jti).await?
                    {
                        return Err(inactive());
                    }
                    verified
                }
            };
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // Never wider than the subject token's scope.
            let granted = claims
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let scope = match p.get("scope") {
                None => granted.clone(),
                Some(asked) => {
                    let had: HashSet<&str> = granted.split(' ').collect();
                    if let Some(extra) =
                        asked.split(' ').find(|x| !x.is_empty() && !had.contains(x))
                    {
                        return Err(oauth(
                            "invalid_scope",
                            format!("scope {extra:?} is not in the subject token's scope"),
                        ));
                    }
                    asked.clone()
                }
            };
            client.scopes_ok(&scope)?;
            let audience = p.get("audience").or(p.get("resource")).cloned();
            if let Some(a) = &audience
                && !client.exchange_audience_ok(a)
            {
                return Err(oauth(
                    "invalid_target",
                    format!(
                        "client {:?} may not exchange tokens for audience {a:?} (exchange_audiences)",
                        client.id()
                    ),
                ));
            }
            let mut carried = Map::new();
            for (k, v) in &claims {
                if ![
                    "iss",
                    "sub",
                    "aud",
                    "iat",
                    "exp",
                    "jti",
                    "client_id",
                    "scope",
                    "act",
                    "nbf",
                ]
                .contains(&k.as_str())
                {
                    carried.insert(k.clone(), v.clone());
                }
            }
            let login = Login {
                sub,
                claims: Map::new(),
                typed: carried,
                auth_time: claims
                    .get("auth_time")
                    .and_then(Value::as_i64)
                    .unwrap_or(now),
            };
            let mut act = json!({ "sub": client.id() });
            if let Some(prev) = claims.get("act") {
                act["act"] = prev.clone();
            }
            let mut issued = issue(
                app,
                idp,
                IssueParams {
                    audience,
                    act: Some(act),
                    issued_token_type: Some(AT_TYPE),
                    ..IssueParams::new(
                        &client,
                        Some(&login),
                        scope
                            .split_whitespace()
                            .filter(|s| *s != "openid")
                            .collect::<Vec<_>>()
                            .join(" "),
                        fault,
                    )
                },
            )
            .await?;
            issued.id_token = None;
            issued
        }
    };
    Ok(issued.response())
}

/// A code or refresh token that was not there: when it was redeemed before, this is a replay,
/// and everything issued from it is revoked (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
async fn replayed(app: &App, idp: &Idp, secret_key: &str) -> Result<(), OAuthError> {
    if let Some(family) = state::used_family(app, secret_key).await? {
        let ttl = idp.config.refresh_ttl.max(idp.config.access_ttl);
        state::revoke_family(app, &family, ttl).await?;
        return Err(oauth(
            "invalid_grant",
            "the grant was used already; the tokens issued for it are revoked",
        ));
    }
    Ok(())
}

/// A code or refresh token taken out of the store (so it works once): there, unexpired, and
/// issued to this client; else `invalid_grant` saying which.
fn redeemed<T>(
    what: &str,
    taken: Option<T>,
    facts: impl Fn(&T) -> (i64, &str),
    client: &ClientRef<'_>,
    now: i64,
) -> Result<T, OAuthError> {
    let Some(t) = taken else {
        return Err(oauth(
            "invalid_grant",
            format!("the {what} is unknown, revoked or was used already"),
        ));
    };
    let (expires, client_id) = facts(&t);
    if expires <= now {
        return Err(oauth("invalid_grant", format!("the {what} has expired")));
    }
    if client_id != client.id() {
        return Err(oauth(
            "invalid_grant",
            format!("the {what} was issued to another client"),
        ));
    }
    Ok(t)
}

fn fault_of_user(u: &config::UserEntry) -> Option<TokenFault> {
    fault(u.user.fail.as_ref())
}

// ---- userinfo, introspection, revocation, logout --------------------------------------------

/// The credentials after an authentication scheme, matched case-insensitively (RFC 9110
/// §11.1: `Bearer`, `bearer` and `BEARER` are one scheme).
fn scheme_credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim_start();
    let (name, rest) = v.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

async fn userinfo(
    State(app): State<Arc<App>>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let challenge = |error: &str, d: &str| {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": error, "error_description": d })),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "Bearer error=\"{error}\", error_description=\"{d}\""
        )) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    // The header, or (RFC 6750 §2.2) `access_token` in a form body of a POST; not both.
    let in_header = scheme_credentials(&headers, "Bearer").map(str::to_string);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let in_body = if method == axum::http::Method::POST && is_form {
        match params(&body) {
            Ok(p) => p.get("access_token").cloned(),
            Err(e) => return challenge("invalid_request", &e.description),
        }
    } else {
        None
    };
    let token = match (in_header, in_body) {
        (Some(_), Some(_)) => {
            return challenge(
                "invalid_request",
                "the access token is both in the header and in the body (RFC 6750 §2)",
            );
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => {
            return challenge(
                "invalid_request",
                "an access token is required (Authorization: Bearer, or access_token in a form body)",
            );
        }
    };
    match active_access(&app, idp, token.trim()).await {
        Ok(Some(info)) => {
            let mut r = Json(Value::Object(info.userinfo)).into_response();
            no_store(r.headers_mut());
            r
        }
        Ok(None) => challenge(
            "invalid_token",
            "the access token is not active (expired, revoked or not this issuer's)",
        ),
        Err(e) => e.into_response(),
    }
}

/// Introspection and revocation answer only clients that prove who they are: a public client
/// (client_id alone) may not look into tokens (RFC 7662 §2.1).
fn presented_credentials(headers: &HeaderMap, p: &BTreeMap<String, String>) -> bool {
    scheme_credentials(headers, "Basic").is_some()
        || p.contains_key("client_secret")
        || p.contains_key("client_assertion")
}

async fn introspect(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let result = async {
        let p = params(&body)?;
        let client = authenticate(&app, idp, &headers, &p).await?;
        if !presented_credentials(&headers, &p) {
            return Err(OAuthError {
                basic: true,
                ..oauth(
                    "invalid_client",
                    format!(
                        "introspection needs client authentication; client {:?} sent only its id",
                        client.id()
                    ),
                )
            });
        }
        let token = p
            .get("token")
            .ok_or_else(|| oauth("invalid_request", "token is missing"))?;
        let now = when::now();
        if let Some(g) = state::get::<Grant>(&app, Kind::Refresh, &state::key(token)).await?
            && g.expires > now
            && !state::family_revoked(&app, &g.family).await?
        {
            let mut out = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": g.client_id,
                "scope": g.scope,
                "exp": g.expires,
                "iss": app.issuer,
            });
            if let Some(l) = &g.login {
                out["sub"] = l.sub.clone().into();
                out["username"] = l.sub.clone().into();
            }
            return Ok(out);
        }
        Ok(match active_access(&app, idp, token).await? {
            Some(info) => {
                let mut out = Map::new();
                out.insert("active".into(), true.into());
                out.insert("token_type".into(), "Bearer".into());
                for k in [
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                    "auth_time",
                    "act",
                ] {
                    if let Some(v) = info.claims.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
                if let Some(s) = info.claims.get("sub") {
                    out.insert("username".into(), s.clone());
                }
                Value::Object(out)
            }
            None => json!({ "active": false }),
        })
    }
    .await;
    match result {
        Ok(v) => {
            let mut r = Json(v).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let result = async {
        let p = params(&body)?;
        let client = authenticate(&app, idp, &headers, &p).await?;
        let token = p
            .get("token")
            .ok_or_else(|| oauth("invalid_request", "token is missing"))?;
        if let Some(h) = p.get("token_type_hint")
            && !["access_token", "refresh_token"].contains(&h.as_str())
        {
            return Err(oauth(
                "unsupported_token_type",
                format!("token_type_hint {h:?}"),
            ));
        }
        let family_ttl = idp.config.refresh_ttl.max(idp.config.access_ttl);
        // A refresh token of this client: it and every token of its family (RFC 7009 §2.1).
        let rt_key = state::key(token);
        if let Some(g) = state::get::<Grant>(&app, Kind::Refresh, &rt_key).await?
            && g.client_id == client.id()
        {
            state::delete(&app, Kind::Refresh, &rt_key).await?;
            state::revoke_family(&app, &g.family, family_ttl).await?;
            return Ok(());
        }
        // An access token of this client: its jti (or the opaque token's key) is revoked.
        // Another client's token, or an unknown one, is left as it is (RFC 7009 §2.2).
        if let Some(info) = active_access(&app, idp, token).await?
            && info.claims.get("client_id").and_then(Value::as_str) == Some(client.id())
        {
            let exp = info
                .claims
                .get("exp")
                .and_then(Value::as_i64)
                .unwrap_or_else(|| when::now().saturating_add(family_ttl));
            let id = if idp.opaque && !token.contains('.') {
                state::key(token)
            } else {
                match info.claims.get("jti").and_then(Value::as_str) {
                    Some(j) => j.to_string(),
                    None => return Ok(()),
                }
            };
            state::revoke_access(&app, &id, exp.max(when::now() + 1)).await?;
        }
        Ok(())
    }
    .await;
    match result {
        // A JSON body, as OAuth clients parse one (an empty 200 made some throw).
        Ok(()) => {
            let mut r = Json(json!({})).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn logout(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let p = match query_params(&q) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Some(s) = session_of(&headers)
        && let Err(e) = state::delete(&app, Kind::Session, &state::key(&s)).await
    {
        return e.into_response();
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    let mut r = match p.get("post_logout_redirect_uri") {
        Some(uri) => {
            // The client: from client_id, or the id_token_hint's aud.
            let client_id = p.get("client_id").cloned().or_else(|| {
                p.get("id_token_hint")
                    .and_then(|t| jws::Compact::parse(t).ok())
                    .and_then(|c| c.claims())
                    .and_then(|c| c.get("aud").and_then(Value::as_str).map(str::to_string))
            });
            let allowed = match client_id.as_deref().and_then(|id| idp.client(id)) {
                Some(ClientRef::Known(c)) => c.client.post_logout_redirect_uris.iter().chain(&c.client.redirect_uris).any(|u| u == uri),
                // Open mode: any http or https URL; never javascript:, data: and the like.
                Some(ClientRef::Open(_)) | None => {
                    idp.open
                        && url::Url::parse(uri)
                            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
                }
            };
            if !allowed {
                return error_page(&format!("post_logout_redirect_uri {uri:?} is not registered for the client"));
            }
            let mut pairs = Vec::new();
            if let Some(s) = p.get("state") {
                pairs.push(("state", s.as_str()));
            }
            redirect_to(uri, &pairs)
        }
        None => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>jwkit: logged out</title>{STYLE}</head><body><main><h1>Logged out</h1></main></body></html>"),
        )
            .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
