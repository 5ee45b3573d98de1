//! `serve --idp`: a test OpenID Connect provider beside the JWKS server. It shares the
//! server's store and signing key (tokens are signed by the key the JWKS publishes) and keeps
//! its short-lived records (codes, sessions, refresh tokens, revocations) in the store too, so
//! replicas share them (`state`).
//!
//! Rooms: `authorize` (the authorization endpoint and login page), `token` (one function per
//! grant), `client_auth`, `issue` (claims, signing), `resource` (userinfo, introspection,
//! revocation, logout), `state` (the records and their store methods), `config`.
//!
//! Endpoints, under the issuer's path: `/authorize` (a login page, or `prompt=none`),
//! `/token` (RFC 6749 grants, PKCE S256, refresh rotation, RFC 8693 token exchange;
//! client_secret_basic, client_secret_post, private_key_jwt, or none with PKCE),
//! `/userinfo`, `/introspect` (RFC 7662), `/revoke` (RFC 7009) and `/logout`.

mod authorize;
mod client_auth;
pub mod config;
mod debugger;
mod device;
mod dpop;
mod issue;
mod register;
mod resource;
mod state;
mod token;

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
use authorize::*;
use client_auth::*;
use config::{
    ClientEntry, DEVICE_GRANT, Fail, JWT_BEARER_GRANT, Loaded, TOKEN_EXCHANGE, TokenFault,
};
use issue::*;
use resource::*;
use state::{AccessInfo, CodeGrant, Grant, Login};
use token::*;

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
    /// The initial access token dynamic registration needs (RFC 7591 §3); None: open.
    pub registration_token: Option<String>,
    /// The server's published keys as a trusted set, with the ETag of the document.
    own_keys: Mutex<Option<(String, Arc<TrustedKeys>)>>,
}

/// An RFC 6749 §5.2 error.
struct OAuthError {
    status: StatusCode,
    error: String,
    description: String,
    basic: bool,
    /// A DPoP nonce to hand out with the error (`use_dpop_nonce`).
    dpop_nonce: Option<String>,
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
        dpop_nonce: None,
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = json_no_store(
            self.status,
            json!({ "error": self.error, "error_description": self.description }),
        );
        if let Some(n) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            r.headers_mut().insert("dpop-nonce", n);
        }
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

/// A JSON answer that holds or concerns tokens: never cached (RFC 6749 §5.1).
fn json_no_store(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    no_store(r.headers_mut());
    r
}

/// An endpoint's result: its JSON answer with `status`, or its OAuth error.
fn answer(status: StatusCode, result: Result<Value, OAuthError>) -> Response {
    match result {
        Ok(body) => json_no_store(status, body),
        Err(e) => e.into_response(),
    }
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
        registration_token: Option<String>,
    ) -> Idp {
        Idp {
            config,
            open,
            opaque,
            cors,
            registration_token,
            own_keys: Mutex::new(None),
        }
    }

    /// How long any token of a family can live: a family's revocation lasts this long.
    fn family_ttl(&self) -> i64 {
        self.config.refresh_ttl.max(self.config.access_ttl)
    }

    /// The client: configured, registered (RFC 7591, in the store, so every replica knows
    /// it), or (open mode) one made up for any other id.
    async fn client(&self, app: &App, id: &str) -> Result<Option<ClientRef<'_>>, OAuthError> {
        if let Some(c) = self.config.clients.get(id) {
            return Ok(Some(ClientRef::Known(Entry::Config(c))));
        }
        if let Some(c) = register::find(app, id).await? {
            return Ok(Some(ClientRef::Known(Entry::Stored(Box::new(c)))));
        }
        if self.open && !id.is_empty() {
            return Ok(Some(ClientRef::Open(id.to_string())));
        }
        Ok(None)
    }
}

/// A known client's entry: from the configuration, or a registered one read from the store.
enum Entry<'a> {
    Config(&'a ClientEntry),
    Stored(Box<ClientEntry>),
}

impl std::ops::Deref for Entry<'_> {
    type Target = ClientEntry;
    fn deref(&self) -> &ClientEntry {
        match self {
            Entry::Config(c) => c,
            Entry::Stored(c) => c,
        }
    }
}

enum ClientRef<'a> {
    Known(Entry<'a>),
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
    fn id_token_encryption(&self) -> Option<&config::IdTokenEncryption> {
        match self {
            ClientRef::Known(c) => c.id_token_encryption.as_ref(),
            ClientRef::Open(_) => None,
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
            .route(&format!("{p}/par"), axum::routing::post(par))
            .route(
                &format!("{p}/device_authorization"),
                axum::routing::post(device::authorization),
            )
            .route(
                &format!("{p}/device"),
                get(device::page).post(device::decide),
            )
            .route(&format!("{p}/userinfo"), get(userinfo).post(userinfo))
            .route(&format!("{p}/introspect"), axum::routing::post(introspect))
            .route(&format!("{p}/revoke"), axum::routing::post(revoke))
            .route(&format!("{p}/logout"), get(logout).post(logout))
            .route(
                &format!("{p}/debugger"),
                get(debugger::form).post(debugger::start),
            )
            .route(&format!("{p}/debugger/callback"), get(debugger::callback))
            .route(
                &format!("{p}/register"),
                axum::routing::post(register::register),
            )
            .route(
                &format!("{p}/register/{{client_id}}"),
                get(register::read)
                    .put(register::update)
                    .delete(register::remove),
            );
    }
    r
}

/// The base URL of the endpoints: the issuer without its trailing slash.
fn base(app: &App) -> String {
    app.iss().trim_end_matches('/').to_string()
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
        JWT_BEARER_GRANT,
        DEVICE_GRANT,
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
        "pushed_authorization_request_endpoint": format!("{b}/par"),
        "registration_endpoint": format!("{b}/register"),
        "device_authorization_endpoint": format!("{b}/device_authorization"),
        "require_pushed_authorization_requests": false,
        "end_session_endpoint": format!("{b}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grants,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "id_token_encryption_alg_values_supported": [
            "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512", "ECDH-ES",
            "ECDH-ES+A128KW", "ECDH-ES+A192KW", "ECDH-ES+A256KW"
        ],
        "id_token_encryption_enc_values_supported": [
            "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "A128GCM", "A192GCM", "A256GCM"
        ],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": true,
        "request_uri_parameter_supported": false,
        "request_object_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
        "dpop_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"],
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
