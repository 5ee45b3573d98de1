//! The token endpoint: one function per grant.

use super::*;

pub(super) async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let mut r = match token_inner(&app, idp, &headers, &body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // With server nonces, every token answer hands out the next one (RFC 9449 §8.2).
    if idp.config.dpop_nonce
        && let Ok(n) = super::dpop::new_nonce(&app).await
        && let Ok(v) = HeaderValue::from_str(&n)
    {
        r.headers_mut().insert("dpop-nonce", v);
    }
    r
}

/// What every grant works from: the request's parameters, the authenticated client, the
/// client's injected token fault, and the time.
#[derive(Clone, Copy)]
struct GrantRequest<'a> {
    app: &'a App,
    idp: &'a Idp,
    p: &'a BTreeMap<String, String>,
    client: &'a ClientRef<'a>,
    fault: Option<TokenFault>,
    now: i64,
    /// The thumbprint of the DPoP proof's key: the tokens are bound to it.
    jkt: Option<&'a str>,
}

pub(super) async fn token_inner(
    app: &App,
    idp: &Idp,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let p = params(body)?;
    // RFC 7523 §2.1: a JWT bearer grant needs no client authentication; its assertion's
    // issuer is the client, checked with the client's keys by the grant.
    let unauthenticated_bearer = p.get("grant_type").map(String::as_str) == Some(JWT_BEARER_GRANT)
        && !headers.contains_key(header::AUTHORIZATION)
        && !["client_id", "client_secret", "client_assertion"]
            .iter()
            .any(|k| p.contains_key(*k));
    let client = if unauthenticated_bearer {
        bearer_issuer(app, idp, &p).await?
    } else {
        authenticate(app, idp, headers, &p).await?
    };
    if let Some(e) = injected(client.fail(), client.delay()).await {
        return Err(e);
    }
    let jkt = super::dpop::proof(app, idp, headers, "POST", "/token", None).await?;
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
        JWT_BEARER_GRANT,
        DEVICE_GRANT,
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
    let r = GrantRequest {
        app,
        idp,
        p: &p,
        client: &client,
        fault,
        now: when::now(),
        jkt: jkt.as_deref(),
    };
    let issued = match grant {
        "client_credentials" => client_credentials(&r).await?,
        "authorization_code" => authorization_code(&r).await?,
        "refresh_token" => refresh_token(&r).await?,
        "password" => password(&r).await?,
        JWT_BEARER_GRANT => jwt_bearer(&r).await?,
        DEVICE_GRANT => super::device::grant(app, idp, &p, &client, fault, r.now, r.jkt).await?,
        _ => token_exchange(&r).await?,
    };
    Ok(issued.response())
}

/// The client a JWT bearer grant comes from when it did not authenticate: the assertion's
/// `iss` (read here only to find the client; the grant verifies the assertion).
async fn bearer_issuer<'a>(
    app: &App,
    idp: &'a Idp,
    p: &BTreeMap<String, String>,
) -> Result<ClientRef<'a>, OAuthError> {
    let assertion = p
        .get("assertion")
        .ok_or_else(|| oauth("invalid_request", "assertion is missing"))?;
    let iss = jws::Compact::parse(assertion)
        .ok()
        .and_then(|c| c.claims())
        .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| {
            oauth(
                "invalid_grant",
                "the assertion is not a JWT with an iss claim",
            )
        })?;
    match idp.client(app, &iss).await? {
        Some(c @ ClientRef::Known(_)) => Ok(c),
        _ => Err(oauth(
            "invalid_grant",
            format!("the assertion's iss {iss:?} is no registered client with keys"),
        )),
    }
}

/// JWT bearer (RFC 7523 §2.1), for service accounts: an assertion signed by the client's
/// registered key (`jwks`), `iss` the client, `sub` the subject the tokens are for, `aud` the
/// token endpoint or the issuer, `exp` required, each `jti` once across replicas.
async fn jwt_bearer(r: &GrantRequest<'_>) -> Result<Issued, OAuthError> {
    let GrantRequest {
        app,
        idp,
        p,
        client,
        fault,
        now,
        ..
    } = *r;
    let bad = |d: String| oauth("invalid_grant", d);
    let assertion = p
        .get("assertion")
        .ok_or_else(|| oauth("invalid_request", "assertion is missing"))?;
    let ClientRef::Known(entry) = client else {
        return Err(bad(
            "the JWT bearer grant needs a registered client with keys".into(),
        ));
    };
    let Some(keys) = &entry.keys else {
        return Err(bad(format!(
            "client {:?} has no jwks to check its assertions with",
            entry.client.id
        )));
    };
    let b = base(app);
    let policy = Policy {
        iss: Some(entry.client.id.clone()),
        aud: vec![format!("{b}/token"), app.iss(), b.clone()],
        require: vec!["exp".into(), "sub".into()],
        leeway: 5,
        ..Policy::default()
    };
    let verified = verify_token(assertion, keys, &policy, now)
        .map_err(|e| bad(format!("the assertion: {}", e.message)))?;
    let claims = verified.claims.unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("the assertion's sub is not a non-empty string".into()))?
        .to_string();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    if let Some(jti) = claims.get("jti").and_then(Value::as_str) {
        let seen = state::key(&format!("bearer\u{0}{}\u{0}{jti}", entry.client.id));
        if !state::add(app, Kind::Assertion, &seen, exp.max(now + 1)).await? {
            return Err(bad("the assertion's jti was used already".into()));
        }
    }
    // A configured user gets its claims; any other subject (a service account) its name.
    let login = user_login(idp, &sub, Map::new(), now).unwrap_or(Login {
        sub,
        claims: Map::new(),
        typed: Map::new(),
        auth_time: now,
    });
    let scope = p.get("scope").cloned().unwrap_or_default();
    client.scopes_ok(&scope)?;
    issue(
        app,
        idp,
        IssueParams {
            jkt: r.jkt.map(str::to_string),
            audience: p.get("audience").or(p.get("resource")).cloned(),
            ..IssueParams::new(client, Some(&login), scope, fault)
        },
    )
    .await
}

/// client_credentials (RFC 6749 §4.4): tokens for the client itself.
async fn client_credentials(r: &GrantRequest<'_>) -> Result<Issued, OAuthError> {
    let GrantRequest {
        app,
        idp,
        p,
        client,
        fault,
        ..
    } = *r;
    let scope = p.get("scope").cloned().unwrap_or_default();
    client.scopes_ok(&scope)?;
    issue(
        app,
        idp,
        IssueParams {
            jkt: r.jkt.map(str::to_string),
            audience: p.get("audience").or(p.get("resource")).cloned(),
            ..IssueParams::new(client, None, scope, fault)
        },
    )
    .await
}

/// authorization_code (RFC 6749 §4.1.3): the code once, for the same client and redirect URI,
/// with the PKCE verifier; a code used twice revokes what it issued.
async fn authorization_code(r: &GrantRequest<'_>) -> Result<Issued, OAuthError> {
    let GrantRequest {
        app,
        idp,
        p,
        client,
        fault,
        now,
        ..
    } = *r;
    let code = p
        .get("code")
        .ok_or_else(|| oauth("invalid_request", "code is missing"))?;
    let (g, code_key) = redeem::<CodeGrant>(r, Kind::Code, "code", code, |g| {
        (g.expires, g.client_id.as_str())
    })
    .await?;
    // Redeemed: a second use of this code revokes what it issued.
    state::mark_used(
        app,
        &code_key,
        &g.grant.family,
        now.saturating_add(idp.family_ttl()),
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
    let audience = granted_resource(p, &g.grant)?;
    // A code bound to a DPoP key (dpop_jkt, RFC 9449 §10) is redeemed with that key only.
    if let Some(bound) = &g.dpop_jkt
        && r.jkt != Some(bound.as_str())
    {
        return Err(oauth(
            "invalid_dpop_proof",
            "the code is bound to a DPoP key (dpop_jkt): the proof must be made with it",
        ));
    }
    issue(
        app,
        idp,
        IssueParams {
            jkt: r.jkt.map(str::to_string),
            audience,
            nonce: g.nonce.clone(),
            refresh: true,
            family: Some(g.grant.family.clone()),
            ..IssueParams::new(
                client,
                g.grant.login.as_ref(),
                g.grant.scope.clone(),
                fault.or(user_fault),
            )
        },
    )
    .await
}

/// The audience of tokens from a grant: the token request's `resource` (RFC 8707 §2.2),
/// which must be the one the grant was made for when it was made for one, else the grant's.
fn granted_resource(p: &BTreeMap<String, String>, g: &Grant) -> Result<Option<String>, OAuthError> {
    match (p.get("resource"), &g.audience) {
        (None, a) => Ok(a.clone()),
        (Some(r), Some(a)) if r == a => Ok(Some(r.clone())),
        (Some(r), Some(_)) => Err(oauth(
            "invalid_target",
            format!("resource {r:?} is not the one this grant was made for"),
        )),
        (Some(r), None) => {
            super::authorize::resource_indicator(r)?;
            Ok(Some(r.clone()))
        }
    }
}

/// refresh_token (RFC 6749 §6): rotating; a reused refresh token revokes its family.
async fn refresh_token(r: &GrantRequest<'_>) -> Result<Issued, OAuthError> {
    let GrantRequest {
        app,
        idp,
        p,
        client,
        fault,
        ..
    } = *r;
    let rt = p
        .get("refresh_token")
        .ok_or_else(|| oauth("invalid_request", "refresh_token is missing"))?;
    // Rotating refresh tokens: each is good once; a second use revokes the family.
    let (g, rt_key) = redeem::<Grant>(r, Kind::Refresh, "refresh token", rt, |g| {
        (g.expires, g.client_id.as_str())
    })
    .await?;
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
    let audience = granted_resource(p, &g)?;
    // A public client's refresh token is bound to its DPoP key (RFC 9449 §5).
    if let Some(bound) = &g.jkt
        && r.jkt != Some(bound.as_str())
    {
        return Err(oauth(
            "invalid_dpop_proof",
            "the refresh token is bound to a DPoP key: the proof must be made with it",
        ));
    }
    issue(
        app,
        idp,
        IssueParams {
            jkt: r.jkt.map(str::to_string),
            audience,
            refresh: true,
            family: Some(g.family.clone()),
            ..IssueParams::new(client, g.login.as_ref(), scope, fault)
        },
    )
    .await
}

/// password (RFC 6749 §4.3), only with `password_grant = true`.
async fn password(r: &GrantRequest<'_>) -> Result<Issued, OAuthError> {
    let GrantRequest {
        app,
        idp,
        p,
        client,
        fault,
        now,
        ..
    } = *r;
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
        aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), pw.as_bytes()).is_ok()
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
            jkt: r.jkt.map(str::to_string),
            refresh: true,
            ..IssueParams::new(client, Some(&login), scope, fault.or(fault_of_user(u)))
        },
    )
    .await
}

/// Token exchange (RFC 8693): an active token of this issuer, exchanged for an access token
/// for another audience, with `act` naming the client that asked.
async fn token_exchange(r: &GrantRequest<'_>) -> Result<Issued, OAuthError> {
    let GrantRequest {
        app,
        idp,
        p,
        client,
        fault,
        now,
        ..
    } = *r;
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
            format!("subject_token_type {kind:?} is not supported (access_token, jwt or id_token)"),
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
            let keys = own_keys(app, idp).ok_or_else(|| oauth("server_error", "no keys"))?;
            let policy = Policy {
                iss: Some(app.iss()),
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
            if let Some(extra) = asked.split(' ').find(|x| !x.is_empty() && !had.contains(x)) {
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
            jkt: r.jkt.map(str::to_string),
            audience,
            act: Some(act),
            issued_token_type: Some(AT_TYPE),
            ..IssueParams::new(
                client,
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
    Ok(issued)
}

/// A code or refresh token taken out of the store (so it works once), there, unexpired and
/// issued to this client: the record and its store key. Else `invalid_grant` saying which;
/// when it was redeemed before, this is a replay, and everything issued from it is revoked
/// (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
async fn redeem<T: serde::de::DeserializeOwned>(
    r: &GrantRequest<'_>,
    kind: Kind,
    what: &str,
    secret: &str,
    facts: impl Fn(&T) -> (i64, &str),
) -> Result<(T, String), OAuthError> {
    let key = state::key(secret);
    let Some(t) = state::take::<T>(r.app, kind, &key).await? else {
        if let Some(family) = state::used_family(r.app, &key).await? {
            state::revoke_family(r.app, &family, r.idp.family_ttl()).await?;
            return Err(oauth(
                "invalid_grant",
                "the grant was used already; the tokens issued for it are revoked",
            ));
        }
        return Err(oauth(
            "invalid_grant",
            format!("the {what} is unknown, revoked or was used already"),
        ));
    };
    let (expires, client_id) = facts(&t);
    if expires <= r.now {
        return Err(oauth("invalid_grant", format!("the {what} has expired")));
    }
    if client_id != r.client.id() {
        return Err(oauth(
            "invalid_grant",
            format!("the {what} was issued to another client"),
        ));
    }
    Ok((t, key))
}

pub(super) fn fault_of_user(u: &config::UserEntry) -> Option<TokenFault> {
    fault(u.user.fail.as_ref())
}
