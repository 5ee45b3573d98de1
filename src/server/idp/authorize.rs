//! The authorization endpoint: the request checked, the login page (CSRF token, never
//! framed), `prompt=none`, sessions, and the answer in the response mode asked for.

use super::*;

/// The checked authorization request.
pub(super) struct AuthRequest {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    /// The request named redirect_uri (rather than the one registered by default).
    pub(super) redirect_given: bool,
    pub(super) mode: Mode,
    pub(super) scope: String,
    pub(super) state: Option<String>,
    pub(super) nonce: Option<String>,
    pub(super) challenge: Option<String>,
    /// The resource indicator (RFC 8707): the access tokens' audience.
    pub(super) resource: Option<String>,
    /// The DPoP key thumbprint the code is bound to (RFC 9449 §10).
    pub(super) dpop_jkt: Option<String>,
}

/// An authorization error: shown as a page when the client or redirect URI cannot be
/// trusted (RFC 6749 §4.1.2.1), else sent back to the client.
pub(super) enum AuthError {
    Page(String),
    /// Back to the client: redirect URI, state, error, response mode.
    Redirect(String, Option<String>, OAuthError, Mode),
}

pub(super) fn error_page(message: &str) -> Response {
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

pub(super) fn redirect_to(uri: &str, pairs: &[(&str, &str)]) -> Response {
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

pub(super) fn auth_error_response(app: &App, e: AuthError) -> Response {
    match e {
        AuthError::Page(m) => error_page(&m),
        AuthError::Redirect(uri, state, err, mode) => {
            let iss = app.iss();
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
pub(super) enum Mode {
    Query,
    Fragment,
    FormPost,
}

/// The authorization answer in `mode`: a redirect with the pairs in the query or the
/// fragment, or a page that posts them to the redirect URI.
pub(super) fn respond(uri: &str, pairs: &[(&str, &str)], mode: Mode) -> Response {
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
pub(super) fn page_headers(h: &mut HeaderMap) {
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
}

pub(super) async fn check_auth_request(
    app: &App,
    idp: &Idp,
    p: &BTreeMap<String, String>,
) -> Result<AuthRequest, AuthError> {
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let found = idp
        .client(app, &client_id)
        .await
        .map_err(|e| AuthError::Page(e.description))?;
    let Some(client) = found else {
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
    let resource = match p.get("resource") {
        None => None,
        Some(r) => match resource_indicator(r) {
            Ok(()) => Some(r.clone()),
            Err(e) => return Err(back(e)),
        },
    };
    let dpop_jkt = match p.get("dpop_jkt") {
        Some(j) if j.len() != 43 || b64::decode(j).is_err() => {
            return Err(back(oauth(
                "invalid_request",
                "dpop_jkt must be a SHA-256 JWK thumbprint (43 base64url characters)",
            )));
        }
        other => other.cloned(),
    };
    Ok(AuthRequest {
        resource,
        dpop_jkt,
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

/// A resource indicator must be an absolute URI without a fragment (RFC 8707 §2).
pub(super) fn resource_indicator(r: &str) -> Result<(), OAuthError> {
    match url::Url::parse(r) {
        Ok(u) if u.fragment().is_none() => Ok(()),
        _ => Err(oauth(
            "invalid_target",
            format!("resource {r:?} is not an absolute URI without a fragment (RFC 8707 §2)"),
        )),
    }
}

/// The user for a name: from the configuration, or (none configured) made up.
pub(super) fn user_login(
    idp: &Idp,
    name: &str,
    typed: Map<String, Value>,
    now: i64,
) -> Option<Login> {
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

pub(super) fn session_of(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `name`, if the request sent it.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(prefix.as_str()).map(str::to_string))
        .next()
}

pub(super) async fn authorize_get(
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
    let p = match pushed(&app, &p).await {
        Ok(p) => p,
        Err(m) => return error_page(&m),
    };
    let p = match request_object(&app, idp, p).await {
        Ok(p) => p,
        Err(e) => return error_page(&e.description),
    };
    let req = match check_auth_request(&app, idp, &p).await {
        Ok(r) => r,
        Err(e) => return auth_error_response(&app, e),
    };
    let back = |e: OAuthError| {
        auth_error_response(
            &app,
            AuthError::Redirect(req.redirect_uri.clone(), req.state.clone(), e, req.mode),
        )
    };
    if let Ok(Some(client)) = idp.client(&app, &req.client_id).await
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

pub(super) async fn authorize_post(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let p = match params(&body) {
        Ok(p) => p,
        Err(e) => return error_page(&e.description),
    };
    let req = match check_auth_request(&app, idp, &p).await {
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
pub(super) async fn finish_login(
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
        dpop_jkt: req.dpop_jkt.clone(),
        grant: Grant {
            client_id: req.client_id.clone(),
            login: Some(login),
            scope: req.scope.clone(),
            expires: now.saturating_add(idp.config.refresh_ttl),
            family: random_token(),
            audience: req.resource.clone(),
            jkt: None,
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
    let iss = app.iss();
    let mut pairs = vec![("code", code.as_str()), ("iss", iss.as_str())];
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

pub(super) const STYLE: &str = "<style>body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0}\
main{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:1rem 0 .3rem;font-weight:600}\
input,textarea{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #bbb;border-radius:4px}\
textarea{font-family:ui-monospace,monospace;min-height:6rem}button{margin-top:1.2rem;padding:.6rem 1.2rem;font:inherit;\
background:#2454a6;color:#fff;border:0;border-radius:4px}.error{color:#a00}.client{color:#555;font-size:.9rem}</style>";

pub(super) fn login_page(
    req: &AuthRequest,
    name: &str,
    claims: &str,
    error: Option<&str>,
) -> Response {
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
    if let Some(r) = &req.resource {
        field("resource", r);
    }
    if let Some(j) = &req.dpop_jkt {
        field("dpop_jkt", j);
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
pub(super) fn csrf_ok(headers: &HeaderMap, p: &BTreeMap<String, String>) -> bool {
    let Some(given) = p.get("csrf") else {
        return false;
    };
    cookie(headers, CSRF_COOKIE).is_some_and(|c| {
        aws_lc_rs::constant_time::verify_slices_are_equal(c.as_bytes(), given.as_bytes()).is_ok()
    })
}

/// How long a pushed authorization request waits for its `/authorize` (RFC 9126 §2.2 suggests
/// a short time; 60 s as most servers).
const PAR_TTL: i64 = 60;
const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// POST /par (RFC 9126): the authorization request's parameters, pushed by an authenticated
/// client, checked as /authorize checks them and kept for one use; answered with the
/// `request_uri` that /authorize then takes instead of them.
pub(super) async fn par(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let result = async {
        let mut p = params(&body)?;
        let client = authenticate(&app, idp, &headers, &p).await?;
        if p.contains_key("request_uri") {
            return Err(oauth(
                "invalid_request",
                "request_uri may not be pushed (RFC 9126 §2.1)",
            ));
        }
        if p.get("client_id").is_some_and(|id| id != client.id()) {
            return Err(oauth(
                "invalid_request",
                "client_id differs from the authenticated client",
            ));
        }
        p.insert("client_id".into(), client.id().to_string());
        for credential in ["client_secret", "client_assertion", "client_assertion_type"] {
            p.remove(credential);
        }
        let mut p = request_object(&app, idp, p).await?;
        // A proof at PAR binds the code to its key (RFC 9449 §10.1); with dpop_jkt as well,
        // both must name one key.
        if let Some(jkt) = super::dpop::proof(&app, idp, &headers, "POST", "/par", None).await? {
            if p.get("dpop_jkt").is_some_and(|j| *j != jkt) {
                return Err(oauth(
                    "invalid_dpop_proof",
                    "dpop_jkt is not the thumbprint of the DPoP proof's key",
                ));
            }
            p.insert("dpop_jkt".into(), jkt);
        }
        // Checked now, as /authorize would: a bad request is refused here, not later.
        for credential in ["client_secret", "client_assertion", "client_assertion_type"] {
            p.remove(credential);
        }
        match check_auth_request(&app, idp, &p).await {
            Ok(_) => {}
            Err(AuthError::Page(m)) => return Err(oauth("invalid_request", m)),
            Err(AuthError::Redirect(_, _, e, _)) => return Err(e),
        }
        let handle = random_token();
        let expires = when::now().saturating_add(PAR_TTL);
        state::put(&app, Kind::Par, &state::key(&handle), &p, expires).await?;
        Ok(json!({
            "request_uri": format!("{REQUEST_URI_PREFIX}{handle}"),
            "expires_in": PAR_TTL,
        }))
    }
    .await;
    answer(StatusCode::CREATED, result)
}

/// The parameters of an authorization request: those pushed earlier when it names a
/// `request_uri` (used once; with the same `client_id`, and nothing else taken from the
/// query, RFC 9126 §4), else the query's own. An unknown, used or expired `request_uri` is a
/// page, never a redirect: nothing in it can be trusted.
/// A request object (RFC 9101 JAR): `request` holds the authorization request as a JWT
/// signed by the client's registered key (iss the client, aud the issuer, exp required). Its
/// parameters, and only they, make the request (§6.3); `client_id` outside must match.
pub(super) async fn request_object(
    app: &App,
    idp: &Idp,
    p: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, OAuthError> {
    let Some(jwt) = p.get("request") else {
        return Ok(p);
    };
    let bad = |m: String| oauth("invalid_request_object", m);
    let client_id = p
        .get("client_id")
        .ok_or_else(|| bad("a request object needs client_id beside it (RFC 9101 §5)".into()))?;
    let Some(ClientRef::Known(entry)) = idp.client(app, client_id).await? else {
        return Err(bad(format!(
            "client {client_id:?} has no registered keys to verify its request object"
        )));
    };
    let Some(keys) = &entry.keys else {
        return Err(bad(format!(
            "client {client_id:?} has no jwks to verify its request object"
        )));
    };
    let policy = Policy {
        iss: Some(client_id.clone()),
        aud: vec![app.iss(), base(app)],
        leeway: 5,
        ..Policy::default()
    };
    let verified = verify_token(jwt, keys, &policy, when::now())
        .map_err(|r| bad(format!("request object: {}", r.message)))?;
    let claims = verified.claims.unwrap_or_default();
    if claims
        .get("client_id")
        .is_some_and(|c| c.as_str() != Some(client_id.as_str()))
    {
        return Err(bad(
            "the request object's client_id is not the client's".into()
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in claims {
        if matches!(
            k.as_str(),
            "iss" | "aud" | "exp" | "iat" | "nbf" | "jti" | "request" | "request_uri"
        ) {
            continue;
        }
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        out.insert(k, text);
    }
    out.insert("client_id".into(), client_id.clone());
    Ok(out)
}

async fn pushed(
    app: &App,
    p: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let Some(uri) = p.get("request_uri") else {
        return Ok(p.clone());
    };
    let Some(handle) = uri.strip_prefix(REQUEST_URI_PREFIX) else {
        return Err(format!(
            "request_uri {uri:?} is not one this server issued (POST /par makes them)"
        ));
    };
    let stored = state::take::<BTreeMap<String, String>>(app, Kind::Par, &state::key(handle))
        .await
        .map_err(|e| e.description)?
        .ok_or_else(|| "the request_uri is unknown, expired or used already".to_string())?;
    if p.get("client_id") != stored.get("client_id") {
        return Err("client_id is missing or differs from the pushed request's".into());
    }
    Ok(stored)
}
