//! The resource endpoints: userinfo, introspection, revocation, logout; and what makes an
//! access token active (signature, expiry, revocation of it or of its family).

use super::*;

/// The facts of an access token this server issued and has not revoked, if it is active.
pub(super) async fn active_access(
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
pub(super) async fn family_revoked(app: &App, info: &AccessInfo) -> Result<bool, OAuthError> {
    match &info.family {
        Some(f) => state::family_revoked(app, f).await,
        None => Ok(false),
    }
}

/// A JWT access token of this issuer, verified, not revoked: its facts.
pub(super) async fn verified_access(
    app: &App,
    idp: &Idp,
    token: &str,
    now: i64,
) -> Result<Option<AccessInfo>, OAuthError> {
    let Some(keys) = own_keys(app, idp) else {
        return Ok(None);
    };
    let policy = Policy {
        iss: Some(app.iss()),
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

/// The credentials after an authentication scheme, matched case-insensitively (RFC 9110
/// §11.1: `Bearer`, `bearer` and `BEARER` are one scheme).
pub(super) fn scheme_credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim_start();
    let (name, rest) = v.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

pub(super) async fn userinfo(
    State(app): State<Arc<App>>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    // A DPoP-bound token comes with the DPoP scheme and a proof (RFC 9449 §7.1).
    let dpop_scheme = scheme_credentials(&headers, "DPoP").map(str::to_string);
    let scheme = if dpop_scheme.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    let challenge = |error: &str, d: &str| {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": error, "error_description": d })),
        )
            .into_response();
        let d = d.replace('"', "'");
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{scheme} error=\"{error}\", error_description=\"{d}\""
        )) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    // The header, or (RFC 6750 §2.2) `access_token` in a form body of a POST; not both.
    let in_header = scheme_credentials(&headers, "Bearer")
        .map(str::to_string)
        .or(dpop_scheme.clone());
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
    let token = token.trim();
    let proof_key = if dpop_scheme.is_some() {
        let path = if method == axum::http::Method::POST {
            "POST"
        } else {
            "GET"
        };
        match super::dpop::proof(&app, idp, &headers, path, "/userinfo", Some(token)).await {
            Ok(Some(jkt)) => Some(jkt),
            Ok(None) => {
                return challenge(
                    "invalid_dpop_proof",
                    "the DPoP scheme needs a DPoP proof header",
                );
            }
            Err(e) if e.error == "use_dpop_nonce" => {
                let mut r = challenge("use_dpop_nonce", &e.description);
                if let Some(n) = e.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                    r.headers_mut().insert("dpop-nonce", n);
                }
                return r;
            }
            Err(e) => return challenge("invalid_dpop_proof", &e.description),
        }
    } else {
        None
    };
    match active_access(&app, idp, token).await {
        Ok(Some(info)) => {
            match (super::dpop::bound_key(&info.claims), proof_key.as_deref()) {
                (Some(bound), Some(jkt)) if bound == jkt => {}
                (Some(_), Some(_)) => {
                    return challenge(
                        "invalid_token",
                        "the DPoP proof's key is not the one the token is bound to",
                    );
                }
                (Some(_), None) => {
                    return challenge(
                        "invalid_token",
                        "the token is DPoP-bound: present it with the DPoP scheme and a proof",
                    );
                }
                (None, Some(_)) => {
                    return challenge(
                        "invalid_token",
                        "the token is not DPoP-bound: present it as a Bearer token",
                    );
                }
                (None, None) => {}
            }
            json_no_store(StatusCode::OK, Value::Object(info.userinfo))
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
pub(super) fn presented_credentials(headers: &HeaderMap, p: &BTreeMap<String, String>) -> bool {
    scheme_credentials(headers, "Basic").is_some()
        || p.contains_key("client_secret")
        || p.contains_key("client_assertion")
}

pub(super) async fn introspect(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
                "iss": app.iss(),
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
                // RFC 9449 §6.2: a bound token is introspected with its binding.
                let bound = super::dpop::bound_key(&info.claims).map(str::to_string);
                out.insert(
                    "token_type".into(),
                    if bound.is_some() { "DPoP" } else { "Bearer" }.into(),
                );
                if let Some(jkt) = bound {
                    out.insert("cnf".into(), json!({ "jkt": jkt }));
                }
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
    answer(StatusCode::OK, result)
}

pub(super) async fn revoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
        let family_ttl = idp.family_ttl();
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
    // A JSON body, as OAuth clients parse one (an empty 200 made some throw).
    answer(StatusCode::OK, result.map(|()| json!({})))
}

pub(super) async fn logout(
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
            let found = match client_id.as_deref() {
                Some(id) => idp.client(&app, id).await.ok().flatten(),
                None => None,
            };
            let allowed = match found {
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
