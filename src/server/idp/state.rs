//! The identity provider's state records and how they are kept: in the server's store
//! (`store::records`), so every replica on one database redeems, refreshes, revokes and logs
//! in alike. Keys are hashes of the secrets (codes, session ids, refresh and opaque access
//! tokens), never the secrets themselves.
//!
//! Tokens come in families: every token issued from one code (and the refresh tokens that
//! follow from it) shares a family id. A code or refresh token used twice revokes its family
//! (RFC 6749 §4.1.2, RFC 9700 §4.14.2): the second use is a sign it was stolen.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use super::{OAuthError, oauth, sha256_b64};
use crate::server::App;
use crate::server::store::StoreError;
use crate::server::store::records::Kind;
use crate::server::tenant::scoped;
use crate::when;

/// Who logged in: the subject and the claims for their tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Login {
    pub sub: String,
    /// The configured user's claims: released by the scopes that name them.
    pub claims: Map<String, Value>,
    /// Claims typed on the login page: always in the tokens (the tester asked for them).
    pub typed: Map<String, Value>,
    pub auth_time: i64,
}

#[derive(Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    /// The authorization request named its redirect_uri (then /token must repeat it).
    #[serde(default)]
    pub redirect_given: bool,
    pub challenge: Option<String>,
    pub nonce: Option<String>,
    /// The DPoP key the code is bound to (`dpop_jkt`, RFC 9449 §10).
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    pub grant: Grant,
    pub expires: i64,
}

/// What a refresh token (or a code) stands for.
#[derive(Clone, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    pub login: Option<Login>,
    pub scope: String,
    pub expires: i64,
    /// The token family: every token issued from one code.
    pub family: String,
    /// The access tokens' audience: the resource indicator (RFC 8707) the grant was made
    /// for, kept for the refreshes.
    #[serde(default)]
    pub audience: Option<String>,
    /// A public client's refresh token is bound to its DPoP key (RFC 9449 §5).
    #[serde(default)]
    pub jkt: Option<String>,
}

/// What the server keeps of an access token: its claims, what userinfo answers, its family.
#[derive(Clone, Serialize, Deserialize)]
pub struct AccessInfo {
    pub claims: Map<String, Value>,
    pub userinfo: Map<String, Value>,
    #[serde(default)]
    pub family: Option<String>,
}

/// The store key of a secret (a code, session id, refresh or opaque access token).
pub fn key(secret: &str) -> String {
    sha256_b64(secret.as_bytes())
}

/// A store that cannot answer: the client may try again (RFC 6749 §4.1.2.1).
pub fn unavailable(e: StoreError) -> OAuthError {
    OAuthError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..oauth("temporarily_unavailable", e.to_string())
    }
}

pub async fn put<T: Serialize>(
    app: &App,
    kind: Kind,
    key: &str,
    value: &T,
    expires: i64,
) -> Result<(), OAuthError> {
    let key = &scoped(key);
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    app.store
        .record_put(kind, key, &text, expires, when::now())
        .await
        .map_err(unavailable)
}

/// Writes a record when no live one has its key: false when one had.
pub async fn add(app: &App, kind: Kind, key: &str, expires: i64) -> Result<bool, OAuthError> {
    let key = &scoped(key);
    app.store
        .record_add(kind, key, "", expires, when::now())
        .await
        .map_err(unavailable)
}

fn parsed<T: DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub async fn get<T: DeserializeOwned>(
    app: &App,
    kind: Kind,
    key: &str,
) -> Result<Option<T>, OAuthError> {
    let key = &scoped(key);
    app.store
        .record_get(kind, key, when::now())
        .await
        .map(parsed)
        .map_err(unavailable)
}

/// Takes a record out (single use, across replicas).
pub async fn take<T: DeserializeOwned>(
    app: &App,
    kind: Kind,
    key: &str,
) -> Result<Option<T>, OAuthError> {
    let key = &scoped(key);
    app.store
        .record_take(kind, key, when::now())
        .await
        .map(parsed)
        .map_err(unavailable)
}

pub async fn delete(app: &App, kind: Kind, key: &str) -> Result<(), OAuthError> {
    let key = &scoped(key);
    app.store
        .record_delete(kind, key)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

fn family_key(family: &str) -> String {
    format!("family:{family}")
}

fn jti_key(jti: &str) -> String {
    format!("jti:{jti}")
}

/// Revokes every token of a family, for `ttl` seconds (the longest any of them lives).
pub async fn revoke_family(app: &App, family: &str, ttl: i64) -> Result<(), OAuthError> {
    let expires = when::now().saturating_add(ttl);
    put(app, Kind::Revoked, &family_key(family), &true, expires).await
}

pub async fn family_revoked(app: &App, family: &str) -> Result<bool, OAuthError> {
    Ok(get::<bool>(app, Kind::Revoked, &family_key(family))
        .await?
        .is_some())
}

/// Revokes one access token (its jti, or the key of an opaque token) until it expires.
pub async fn revoke_access(app: &App, id: &str, expires: i64) -> Result<(), OAuthError> {
    put(app, Kind::Revoked, &jti_key(id), &true, expires).await
}

pub async fn access_revoked(app: &App, id: &str) -> Result<bool, OAuthError> {
    Ok(get::<bool>(app, Kind::Revoked, &jti_key(id))
        .await?
        .is_some())
}

/// Records that a code or refresh token was redeemed, with its family, until `expires`: a
/// second use finds it and revokes the family.
pub async fn mark_used(
    app: &App,
    secret_key: &str,
    family: &str,
    expires: i64,
) -> Result<(), OAuthError> {
    put(app, Kind::Used, secret_key, &family, expires).await
}

/// The family of a code or refresh token redeemed before, if it was.
pub async fn used_family(app: &App, secret_key: &str) -> Result<Option<String>, OAuthError> {
    get::<String>(app, Kind::Used, secret_key).await
}
