//! `/debugger`: a page to look inside the identity provider, as navikt's mock-oauth2-server
//! has one. It builds an authorization request (client, scope, user hint, prompt, resource),
//! plays the client: sends the browser to `/authorize` with PKCE, state and nonce, takes the
//! callback, redeems the code at the token endpoint, and shows the callback, the token
//! response and every token decoded (header and claims; never verified here: the page says
//! so). Plain HTML, no script and nothing from outside.
//!
//! Its redirect URI is `{issuer}/debugger/callback`: any client in open mode; with
//! `--idp-config`, a client that lists it.

use super::*;

/// What the debugger keeps between the start and the callback (by state, ten minutes).
#[derive(serde::Serialize, serde::Deserialize)]
struct Started {
    client_id: String,
    client_secret: Option<String>,
    verifier: String,
    redirect_uri: String,
}

const TTL: i64 = 600;

fn page(title: &str, inner: &str, status: StatusCode) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>jwkit: {t}</title>{STYLE}{WIDE}</head>\
         <body><main><h1>{t}</h1>{inner}</main></body></html>",
        t = html(title)
    );
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    no_store(r.headers_mut());
    page_headers(r.headers_mut());
    r
}

const WIDE: &str = "<style>main{max-width:56rem}pre{background:#f4f5f7;padding:.8rem;overflow-x:auto;\
white-space:pre-wrap;word-break:break-all;font-size:.85rem}h2{font-size:1.05rem;margin-top:1.6rem}\
.note{color:#555;font-size:.9rem}</style>";

/// `GET /debugger`: the form.
pub(super) async fn form(State(app): State<Arc<App>>) -> Response {
    if app.idp.is_none() {
        return off();
    }
    let b = base(&app);
    let inner = format!(
        "<p class=\"note\">Builds an authorization request to <code>{issuer}</code>, plays the client \
         (PKCE S256, state, nonce), and shows what comes back. Its redirect URI is \
         <code>{b}/debugger/callback</code>.</p>\
         <form method=\"post\" action=\"debugger\">\
         <label for=\"client_id\">Client id</label><input id=\"client_id\" name=\"client_id\" value=\"debugger\" required>\
         <label for=\"client_secret\">Client secret (empty: a public client)</label><input id=\"client_secret\" name=\"client_secret\" type=\"password\">\
         <label for=\"scope\">Scope</label><input id=\"scope\" name=\"scope\" value=\"openid profile email offline_access\">\
         <label for=\"login_hint\">login_hint (with prompt none: log in as this user at once)</label><input id=\"login_hint\" name=\"login_hint\">\
         <label for=\"prompt\">prompt</label><input id=\"prompt\" name=\"prompt\" placeholder=\"none, login\">\
         <label for=\"resource\">resource (RFC 8707, the access token's audience)</label><input id=\"resource\" name=\"resource\">\
         <button id=\"start\" type=\"submit\">Send the authorization request</button></form>",
        issuer = html(&app.iss()),
        b = html(&b),
    );
    page("debugger", &inner, StatusCode::OK)
}

/// `POST /debugger`: keeps what the callback needs and sends the browser to `/authorize`.
pub(super) async fn start(State(app): State<Arc<App>>, body: Bytes) -> Response {
    if app.idp.is_none() {
        return off();
    }
    let p = match params(&body) {
        Ok(p) => p,
        Err(e) => {
            return page(
                "debugger",
                &error_text(&e.description),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let value = |k: &str| {
        p.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(client_id) = value("client_id") else {
        return page(
            "debugger",
            &error_text("a client id is needed"),
            StatusCode::BAD_REQUEST,
        );
    };
    let b = base(&app);
    let redirect_uri = format!("{b}/debugger/callback");
    let state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let started = Started {
        client_id: client_id.clone(),
        client_secret: value("client_secret"),
        verifier: verifier.clone(),
        redirect_uri: redirect_uri.clone(),
    };
    if let Err(e) = state::put(
        &app,
        Kind::Debugger,
        &state::key(&state),
        &started,
        when::now().saturating_add(TTL),
    )
    .await
    {
        return e.into_response();
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &value("scope").unwrap_or_else(|| "openid".into()))
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &sha256_b64(verifier.as_bytes()))
        .append_pair("code_challenge_method", "S256");
    for k in ["login_hint", "prompt", "resource"] {
        if let Some(v) = value(k) {
            q.append_pair(k, &v);
        }
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{b}/authorize?{}", q.finish())) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    no_store(r.headers_mut());
    r
}

fn error_text(m: &str) -> String {
    format!("<p class=\"error\" id=\"error\">{}</p>", html(m))
}

/// Pretty JSON, HTML-escaped line by line (the escaping drops control characters, so the
/// lines are joined again here).
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v)
        .unwrap_or_default()
        .lines()
        .map(html)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A token, decoded for the page: header and claims of a JWS; the header of a JWE.
fn decoded(name: &str, token: &str) -> String {
    let section = |body: String| {
        format!(
            "<h2 id=\"{id}\">{n}</h2>{body}",
            id = html(name),
            n = html(&name.replace('_', " "))
        )
    };
    if let Ok(c) = jws::Compact::parse(token) {
        let claims = c
            .claims()
            .map(Value::Object)
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&c.payload).into_owned()));
        return section(format!(
            "<p class=\"note\">header</p><pre>{}</pre><p class=\"note\">claims</p><pre class=\"claims\">{}</pre>",
            pretty(&Value::Object(c.header.clone())),
            pretty(&claims)
        ));
    }
    if crate::crypto::jwe::is_jwe(token) {
        let header = crate::crypto::jwe::header(token)
            .map(|h| pretty(&Value::Object(h)))
            .unwrap_or_default();
        return section(format!(
            "<p class=\"note\">encrypted (JWE): its header; <code>jwkit decode --decrypt-key-file</code> reads the rest</p><pre>{header}</pre>"
        ));
    }
    section("<p class=\"note\">opaque (not a JWT)</p>".into())
}

/// `GET /debugger/callback`: the authorization response, the code redeemed, the tokens shown.
pub(super) async fn callback(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    let raw = q.unwrap_or_default();
    let p = match params(raw.as_bytes()) {
        Ok(p) => p,
        Err(e) => {
            return page(
                "debugger",
                &error_text(&e.description),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let callback = format!(
        "<h2 id=\"callback-section\">callback</h2><pre id=\"callback\">{}</pre>",
        pretty(&serde_json::to_value(&p).unwrap_or(Value::Null))
    );
    let again = "<p><a href=\"../debugger\">Start again</a></p>";
    if let Some(e) = p.get("error") {
        return page(
            "debugger: the authorization failed",
            &format!("{}{callback}{again}", error_text(e)),
            StatusCode::OK,
        );
    }
    let (Some(code), Some(st)) = (p.get("code"), p.get("state")) else {
        return page(
            "debugger",
            &format!(
                "{}{callback}{again}",
                error_text("no code and state in the callback")
            ),
            StatusCode::BAD_REQUEST,
        );
    };
    let started = match state::take::<Started>(&app, Kind::Debugger, &state::key(st)).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return page(
                "debugger",
                &format!(
                    "{}{callback}{again}",
                    error_text("unknown or used state: start again from the debugger's form")
                ),
                StatusCode::BAD_REQUEST,
            );
        }
        Err(e) => return e.into_response(),
    };
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &started.redirect_uri)
            .append_pair("code_verifier", &started.verifier)
            .append_pair("client_id", &started.client_id);
        if let Some(s) = &started.client_secret {
            form.append_pair("client_secret", s);
        }
        form.finish()
    };
    let answer =
        match super::token::token_inner(&app, idp, &HeaderMap::new(), body.as_bytes()).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    let status = answer.status();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut out = format!(
        "<p class=\"note\">Tokens decoded, not verified (<code>jwkit verify-jwt --issuer {}</code> verifies them).</p>{callback}\
         <h2 id=\"response-section\">token response ({})</h2><pre id=\"token-response\">{}</pre>",
        html(&app.iss()),
        status.as_u16(),
        pretty(&doc)
    );
    for name in ["access_token", "id_token", "refresh_token"] {
        if let Some(t) = doc.get(name).and_then(Value::as_str) {
            out.push_str(&decoded(name, t));
        }
    }
    out.push_str(again);
    page("debugger: tokens", &out, StatusCode::OK)
}
