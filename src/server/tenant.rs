//! Several issuers on one server (`serve --idp`), as navikt's mock-oauth2-server has them:
//! any first path segment that is no endpoint of its own names an issuer.
//! `http://HOST/tenant-b/.well-known/openid-configuration` describes the issuer
//! `http://HOST/tenant-b`, with its own signing key (made on first use, kept in the store so
//! every replica signs with the same one), its own key set, and its own records: codes,
//! sessions, refresh tokens and registered clients of one issuer mean nothing to another,
//! and its tokens do not verify with another's keys.
//!
//! A request under a tenant is answered by the same router with the segment taken off, in a
//! task-local scope that the issuer's URL, the signer, the key set and the record keys read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use tower::ServiceExt;

use super::{App, error};
use crate::crypto::verify::TrustedKeys;
use crate::crypto::{self, SigningKey};
use crate::server::store::Doc;
use crate::server::store::records::Kind;
use crate::when;

/// Issuers one server makes at most (each has a key and records).
pub const MAX_TENANTS: usize = 1000;

/// One issuer under a path segment.
pub struct Tenant {
    pub name: String,
    pub issuer: String,
    pub kid: String,
    pub signer: Arc<SigningKey>,
    /// The public key set, as served, with its ETag.
    pub jwks: Arc<Doc>,
    pub keys: Arc<TrustedKeys>,
}

/// The tenants made so far, by name.
#[derive(Default)]
pub struct Tenants {
    made: Mutex<HashMap<String, Arc<Tenant>>>,
}

tokio::task_local! {
    static CURRENT: Arc<Tenant>;
}

/// The tenant the current request is for, if any.
pub fn current() -> Option<Arc<Tenant>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// A record key under the current tenant (records of one issuer never answer another).
pub fn scoped(key: &str) -> String {
    match current() {
        // A name has no '/', so no two (tenant, key) pairs meet; PostgreSQL's text takes it.
        Some(t) => format!("{}/{key}", t.name),
        None => key.to_string(),
    }
}

/// The endpoints a tenant has: discovery, its key set, the identity provider's.
const TENANT_ENDPOINTS: [&str; 17] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
    "/.well-known/jwks",
    "/jwks",
    "/authorize",
    "/token",
    "/par",
    "/device_authorization",
    "/device",
    "/userinfo",
    "/introspect",
    "/revoke",
    "/logout",
    "/register",
    "/debugger",
    "/debugger/callback",
];

/// A tenant's name: a plain path segment, never one of the server's own.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        && !name.starts_with('.')
        && !TENANT_ENDPOINTS
            .iter()
            .any(|e| e.trim_start_matches('/').split('/').next() == Some(name))
        && !["auth", "rotate", "health", "ready", "connect"].contains(&name)
}

/// Answers a request whose path no route took: under a tenant (`/NAME/ENDPOINT`), by `inner`
/// with the tenant's scope; else the usual 404.
pub async fn dispatch(app: Arc<App>, inner: Router, req: Request) -> Response {
    let not_found = || error(StatusCode::NOT_FOUND, "no such endpoint (GET / lists them)");
    if app.idp.is_none() {
        return not_found();
    }
    let path = req.uri().path().to_string();
    // RFC 8414 §3.1 puts the issuer's path after the well-known name; OpenID clients put it
    // before. Both name the tenant.
    let inserted = [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ]
    .iter()
    .find_map(|wk| {
        let name = path.strip_prefix(wk)?.strip_prefix('/')?;
        (!name.contains('/')).then(|| (name.to_string(), wk.to_string()))
    });
    let Some((name, rest)) = inserted.or_else(|| {
        path.strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .map(|(n, r)| (n.to_string(), format!("/{r}")))
    }) else {
        return not_found();
    };
    let endpoint = TENANT_ENDPOINTS
        .iter()
        .any(|e| rest == *e || (*e == "/register" && rest.starts_with("/register/")));
    if !valid_name(&name) || !endpoint {
        return not_found();
    }
    let tenant = match tenant(&app, &name).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let (mut parts, body) = req.into_parts();
    let uri = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    };
    parts.uri = match uri.parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return not_found(),
    };
    let req = Request::from_parts(parts, body);
    CURRENT
        .scope(tenant, async move {
            match inner.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        })
        .await
}

/// The tenant `name`: made (its key generated and stored, or read back from the store when
/// another replica made it first) on its first request.
async fn tenant(app: &App, name: &str) -> Result<Arc<Tenant>, Response> {
    let failed = |m: String| error(StatusCode::SERVICE_UNAVAILABLE, m);
    {
        let made = app.tenants.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = made.get(name) {
            return Ok(Arc::clone(t));
        }
        if made.len() >= MAX_TENANTS {
            return Err(failed(format!(
                "this server has {MAX_TENANTS} issuers already"
            )));
        }
    }
    let alg = app.issue.as_ref().map_or(crypto::Alg::RS256, |i| i.alg);
    let now = when::now();
    let far = now.saturating_add(100 * 365 * 24 * 3600);
    let existing = app
        .store
        .record_get(Kind::TenantKey, name, now)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let text = match existing {
        Some(t) => t,
        None => {
            let key = tokio::task::spawn_blocking(move || super::new_signing_key(alg))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(format!("{e:#}")))?;
            let text = serde_json::to_string(&key.to_jwk()).map_err(|e| failed(e.to_string()))?;
            // Added only when no replica added one first; then theirs is read back.
            if app
                .store
                .record_add(Kind::TenantKey, name, &text, far, now)
                .await
                .map_err(|e| failed(e.to_string()))?
            {
                text
            } else {
                app.store
                    .record_get(Kind::TenantKey, name, now)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .ok_or_else(|| failed("the issuer's key vanished".into()))?
            }
        }
    };
    let key = crypto::load_key(text.as_bytes(), None).map_err(|e| failed(e.to_string()))?;
    let kid = key.kid_or_thumbprint();
    let signer = Arc::new(
        SigningKey::new(&key, key.default_alg().map_err(|e| failed(e.to_string()))?)
            .map_err(|e| failed(e.to_string()))?,
    );
    let public = key.public().map_err(|e| failed(e.to_string()))?;
    let jwks = Doc::of(&[serde_json::Value::Object(public.to_jwk())], None);
    let set = crypto::JwkSet::parse(&jwks.body).map_err(|e| failed(e.to_string()))?;
    let origin = url::Url::parse(&app.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| app.issuer.trim_end_matches('/').to_string());
    let t = Arc::new(Tenant {
        name: name.to_string(),
        issuer: format!("{origin}/{name}"),
        kid,
        signer,
        jwks: Arc::new(jwks),
        keys: Arc::new(TrustedKeys::from_fetched_set(set, &[])),
    });
    let mut made = app.tenants.made.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Arc::clone(made.entry(name.to_string()).or_insert(t)))
}
