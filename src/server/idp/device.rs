//! The device authorization grant (RFC 8628): a device asks for codes at
//! `/device_authorization`, the user approves its user code at `/device` (a page, or for
//! scripts a POST of `user_code` and `username`), and the device polls `/token`.
//!
//! Every step lives in the store, so any replica answers any of them: the grant by its device
//! code, the user code pointing at it, the user's decision (taken once by the device), and the
//! last poll (a record that lives for the polling interval: a poll that finds it live is told
//! to slow down; adding it is one atomic step across replicas).

use serde::{Deserialize, Serialize};

use super::authorize::{STYLE, page_headers, user_login};
use super::*;

/// What a device authorization holds.
#[derive(Serialize, Deserialize)]
struct DeviceGrant {
    client_id: String,
    scope: String,
    user_code: String,
    /// When the codes expire (the record lives on a little, to answer expired_token).
    expires: i64,
}

/// The user's answer.
#[derive(Serialize, Deserialize)]
struct Decision {
    login: Option<Login>,
}

/// The record outlives its codes by this much, so a late poll hears expired_token.
const EXPIRED_GRACE: i64 = 600;

/// User codes: 8 letters from a set without vowels (no words) and without look-alikes,
/// shown as XXXX-XXXX (RFC 8628 §6.1); about 34 bits.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

fn user_code() -> String {
    let mut bytes = [0u8; 8];
    // aws-lc's generator; a failure leaves zeros, caught by the uniqueness of the device code.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let letters: String = bytes
        .iter()
        .map(|b| USER_CODE_ALPHABET[usize::from(*b) % USER_CODE_ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// A user code as typed: case, dashes and spaces do not matter.
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// POST /device_authorization (RFC 8628 §3.1-3.2).
pub(super) async fn authorization(
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
        if !client.allows(DEVICE_GRANT) {
            return Err(oauth(
                "unauthorized_client",
                "this client may not use the device grant",
            ));
        }
        let scope = p.get("scope").cloned().unwrap_or_default();
        client.scopes_ok(&scope)?;
        let now = when::now();
        let expires = now.saturating_add(idp.config.device_ttl);
        let device_code = random_token();
        let code = user_code();
        let device_key = state::key(&device_code);
        let grant = DeviceGrant {
            client_id: client.id().to_string(),
            scope,
            user_code: code.clone(),
            expires,
        };
        state::put(
            &app,
            Kind::Device,
            &device_key,
            &grant,
            expires.saturating_add(EXPIRED_GRACE),
        )
        .await?;
        state::put(
            &app,
            Kind::DeviceUser,
            &state::key(&normalize(&code)),
            &device_key,
            expires,
        )
        .await?;
        let b = base(&app);
        let complete = format!(
            "{b}/device?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &code)
                .finish()
        );
        Ok(json!({
            "device_code": device_code,
            "user_code": code,
            "verification_uri": format!("{b}/device"),
            "verification_uri_complete": complete,
            "expires_in": idp.config.device_ttl,
            "interval": idp.config.device_interval,
        }))
    }
    .await;
    answer(StatusCode::OK, result)
}

/// The device grant at the token endpoint (RFC 8628 §3.4-3.5).
pub(super) async fn grant(
    app: &App,
    idp: &Idp,
    p: &BTreeMap<String, String>,
    client: &ClientRef<'_>,
    fault: Option<TokenFault>,
    now: i64,
    jkt: Option<&str>,
) -> Result<issue::Issued, OAuthError> {
    let device_code = p
        .get("device_code")
        .ok_or_else(|| oauth("invalid_request", "device_code is missing"))?;
    let device_key = state::key(device_code);
    let Some(g) = state::get::<DeviceGrant>(app, Kind::Device, &device_key).await? else {
        return Err(oauth("invalid_grant", "unknown device_code"));
    };
    if g.client_id != client.id() {
        return Err(oauth(
            "invalid_grant",
            "the device_code was issued to another client",
        ));
    }
    if now >= g.expires {
        return Err(oauth(
            "expired_token",
            "the device_code expired before the user approved it; start again",
        ));
    }
    match state::take::<Decision>(app, Kind::DeviceDecision, &device_key).await? {
        Some(Decision { login: None }) => {
            state::delete(app, Kind::Device, &device_key).await?;
            Err(oauth("access_denied", "the user denied the request"))
        }
        Some(Decision { login: Some(login) }) => {
            state::delete(app, Kind::Device, &device_key).await?;
            issue::issue(
                app,
                idp,
                issue::IssueParams {
                    refresh: true,
                    jkt: jkt.map(str::to_string),
                    ..issue::IssueParams::new(client, Some(&login), g.scope, fault)
                },
            )
            .await
        }
        None => {
            let next = now.saturating_add(idp.config.device_interval);
            if state::add(app, Kind::DevicePoll, &device_key, next).await? {
                Err(oauth(
                    "authorization_pending",
                    "the user has not answered yet",
                ))
            } else {
                Err(oauth(
                    "slow_down",
                    format!(
                        "polled within the interval of {}s; wait 5s longer from now on",
                        idp.config.device_interval
                    ),
                ))
            }
        }
    }
}

fn device_page(status: StatusCode, user_code: &str, message: Option<(&str, bool)>) -> Response {
    let note = match message {
        Some((m, true)) => format!("<p class=\"error\">{}</p>", html(m)),
        Some((m, false)) => format!("<p>{}</p>", html(m)),
        None => String::new(),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>jwkit: connect a device</title>{STYLE}</head>\
         <body><main><h1>Connect a device</h1>{note}\
         <form method=\"post\"><label>Code shown on the device <input name=\"user_code\" value=\"{}\" autocomplete=\"off\" required></label>\
         <label>User <input name=\"username\" required></label>\
         <label>Password (if the user has one) <input name=\"password\" type=\"password\"></label>\
         <button name=\"action\" value=\"approve\">Approve</button> <button name=\"action\" value=\"deny\">Deny</button>\
         </form></main></body></html>",
        html(user_code)
    );
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    page_headers(r.headers_mut());
    no_store(r.headers_mut());
    r
}

/// GET /device: the verification page (the user code prefilled from the query).
pub(super) async fn page(State(app): State<Arc<App>>, RawQuery(q): RawQuery) -> Response {
    if app.idp.is_none() {
        return off();
    }
    let code = query_params(&q)
        .ok()
        .and_then(|p| p.get("user_code").cloned())
        .unwrap_or_default();
    device_page(StatusCode::OK, &code, None)
}

/// POST /device: approves or denies a user code, for the page and for scripts (`user_code`,
/// `username`, `password` when the user has one, `action=deny` to refuse). A browser's
/// cross-site POST (an `Origin` other than this server's) is refused; scripts send none.
pub(super) async fn decide(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(idp) = &app.idp else {
        return off();
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let ours = url::Url::parse(&app.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        if origin != ours {
            return device_page(
                StatusCode::FORBIDDEN,
                "",
                Some(("a form on another site cannot approve a device", true)),
            );
        }
    }
    let Ok(p) = params(&body) else {
        return device_page(
            StatusCode::BAD_REQUEST,
            "",
            Some(("a malformed form", true)),
        );
    };
    let code = p.get("user_code").cloned().unwrap_or_default();
    let refuse = |m: &str| device_page(StatusCode::BAD_REQUEST, &code, Some((m, true)));
    let now = when::now();
    let device_key =
        match state::get::<String>(&app, Kind::DeviceUser, &state::key(&normalize(&code))).await {
            Ok(Some(k)) => k,
            Ok(None) => return refuse("unknown or expired code"),
            Err(e) => return e.into_response(),
        };
    match state::get::<Decision>(&app, Kind::DeviceDecision, &device_key).await {
        Ok(Some(_)) => return refuse("this code was answered already"),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let grant = match state::get::<DeviceGrant>(&app, Kind::Device, &device_key).await {
        Ok(Some(g)) if now < g.expires => g,
        Ok(_) => return refuse("unknown or expired code"),
        Err(e) => return e.into_response(),
    };
    let deny = p.get("action").map(String::as_str) == Some("deny");
    let login = if deny {
        None
    } else {
        let name = p.get("username").cloned().unwrap_or_default();
        if name.is_empty() {
            return refuse("give the user to sign in as");
        }
        if let Some(u) = idp.config.users.get(&name) {
            let given = p.get("password").cloned().unwrap_or_default();
            let ok = u.user.password.as_ref().is_none_or(|want| {
                aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), given.as_bytes())
                    .is_ok()
            });
            if !ok {
                return refuse("wrong user name or password");
            }
            if let Some(e) = injected(u.user.fail.as_ref(), u.delay).await {
                return refuse(&e.description);
            }
        }
        match user_login(idp, &name, Map::new(), now) {
            Some(l) => Some(l),
            None => return refuse("no such user"),
        }
    };
    let decision = Decision { login };
    if let Err(e) = state::put(
        &app,
        Kind::DeviceDecision,
        &device_key,
        &decision,
        grant.expires,
    )
    .await
    {
        return e.into_response();
    }
    let message = if deny {
        "Denied: the device gets no tokens."
    } else {
        "Approved: the device gets its tokens on its next poll."
    };
    device_page(StatusCode::OK, "", Some((message, false)))
}
