//! DPoP at the identity provider (RFC 9449): the proof a request carries in its `DPoP`
//! header, checked against the request (method, URI, age, its access token), each `jti` once
//! across replicas, and, with `dpop_nonce = true` in the configuration, the server's nonce.
//! Tokens issued with a proof are bound to its key (`cnf.jkt`, `token_type: DPoP`).

use super::*;
use crate::crypto::dpop::{self, Expect};

/// How old a proof may be.
pub(super) const MAX_AGE: i64 = 300;
/// How long a server nonce is good for.
const NONCE_TTL: i64 = 300;

/// The `DPoP` header's proof, checked for `method` and `path` (under the issuer), with
/// `access_token` when one is presented: its key's thumbprint, or None without a header.
pub(super) async fn proof(
    app: &App,
    idp: &Idp,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all("dpop").iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid_proof("more than one DPoP header (RFC 9449 §4.3)"));
    }
    let text = first
        .to_str()
        .map_err(|_| invalid_proof("the DPoP header is not text"))?
        .trim();
    // The nonce the proof names, looked up first (the check itself is synchronous).
    let named = jws::Compact::parse(text)
        .ok()
        .and_then(|c| c.claims())
        .and_then(|c| c.get("nonce").and_then(Value::as_str).map(str::to_string));
    let known = match (&named, idp.config.dpop_nonce) {
        (Some(n), true) => state::get::<bool>(app, Kind::DpopNonce, &state::key(n))
            .await?
            .is_some(),
        _ => false,
    };
    let accepts = |_: &str| known;
    let htu = format!("{}{path}", base(app));
    let now = when::now();
    let checked = dpop::check(
        text,
        &Expect {
            htm: method,
            htu: &htu,
            now,
            max_age: MAX_AGE,
            access_token,
            nonces: idp
                .config
                .dpop_nonce
                .then_some(&accepts as &dyn Fn(&str) -> bool),
        },
    );
    let p = match checked {
        Ok(p) => p,
        Err(dpop::Error::Invalid(m)) => return Err(invalid_proof(&m)),
        Err(dpop::Error::Nonce(m)) => {
            return Err(OAuthError {
                dpop_nonce: Some(new_nonce(app).await?),
                ..oauth("use_dpop_nonce", m)
            });
        }
    };
    // Each proof once, across replicas, for as long as it could be taken.
    let seen = state::key(&format!("{}\u{0}{}", p.jkt, p.jti));
    let until = p.iat.max(now).saturating_add(MAX_AGE + 60);
    if !state::add(app, Kind::DpopJti, &seen, until).await? {
        return Err(invalid_proof("this proof's jti was used already"));
    }
    Ok(Some(p.jkt))
}

fn invalid_proof(m: &str) -> OAuthError {
    oauth("invalid_dpop_proof", m)
}

/// A fresh server nonce, good for five minutes on every replica.
pub(super) async fn new_nonce(app: &App) -> Result<String, OAuthError> {
    let nonce = random_token();
    state::put(
        app,
        Kind::DpopNonce,
        &state::key(&nonce),
        &true,
        when::now().saturating_add(NONCE_TTL),
    )
    .await?;
    Ok(nonce)
}

/// `cnf.jkt` of an access token's claims, if it is bound.
pub(super) fn bound_key(claims: &Map<String, Value>) -> Option<&str> {
    claims.get("cnf")?.get("jkt")?.as_str()
}
