//! Client authentication at the token, introspection and revocation endpoints:
//! client_secret_basic, client_secret_post, private_key_jwt (RFC 7523), or none.

use super::*;

/// Authenticates the client of a token, introspection or revocation request.
pub(super) async fn authenticate<'a>(
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
            .client(app, &id)
            .await?
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
        .client(app, id)
        .await?
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
pub(super) async fn assertion_client<'a>(
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
    let Some(ClientRef::Known(entry)) = idp.client(app, &iss).await? else {
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
            format!("{b}/par"),
            app.iss(),
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
