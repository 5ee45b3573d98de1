//! CORS for the endpoints a browser app calls across origins (RFC 6454 origins, the Fetch
//! standard's CORS protocol): discovery, the key set, and the identity provider's token,
//! userinfo, introspection and revocation endpoints. Preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) are answered here, before routing. The login page,
//! `/authorize` and `/logout` are navigations, not fetches: they get no CORS headers, and
//! neither do the administrative endpoints.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which origins may read the answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origins {
    /// Any origin (`Access-Control-Allow-Origin: *`): the test IdP's default.
    Any,
    /// Only these (`scheme://host[:port]`), each answered with its own origin.
    Listed(Vec<String>),
}

impl Origins {
    /// From `--cors-origin` values: none means any; `*` means any.
    pub fn parse(given: &[String]) -> anyhow::Result<Origins> {
        if given.is_empty() || given.iter().any(|o| o == "*") {
            return Ok(Origins::Any);
        }
        let mut out = Vec::new();
        for o in given {
            let trimmed = o.trim_end_matches('/');
            let url = url::Url::parse(trimmed)
                .map_err(|e| anyhow::anyhow!("--cors-origin {o:?}: not an origin ({e})"))?;
            let origin = url.origin().ascii_serialization();
            if origin != trimmed {
                anyhow::bail!(
                    "--cors-origin {o:?}: an origin is scheme://host[:port], with no path (here {origin})"
                );
            }
            out.push(origin);
        }
        Ok(Origins::Listed(out))
    }

    /// The Access-Control-Allow-Origin value for a request from `origin`, if it may read.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        match self {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::Listed(list) => list
                .iter()
                .any(|o| o == origin)
                .then(|| HeaderValue::from_str(origin).ok())
                .flatten(),
        }
    }
}

/// The CORS policy and the paths it covers.
pub struct Cors {
    pub origins: Origins,
    pub paths: HashSet<String>,
}

const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// What browser OAuth libraries send: client authentication, form bodies, DPoP proofs.
const ALLOW_HEADERS: &str = "authorization, content-type, dpop, accept";
/// What a script may read beyond the simple headers: the bearer challenge, DPoP nonces.
const EXPOSE_HEADERS: &str = "www-authenticate, dpop-nonce, etag";

fn set_common(h: &mut HeaderMap, allow: HeaderValue, listed: bool) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    if listed {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

pub async fn layer(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    if !cors.paths.contains(req.uri().path()) {
        return next.run(req).await;
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let listed = matches!(cors.origins, Origins::Listed(_));
    let allow = origin.as_deref().and_then(|o| cors.origins.allow(o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        // An origin not allowed gets a preflight without the grant: the browser stops there.
        if let Some(allow) = allow {
            set_common(h, allow, listed);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        } else if listed {
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        return r;
    }
    let mut resp = next.run(req).await;
    if let Some(allow) = allow {
        let h = resp.headers_mut();
        set_common(h, allow, listed);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    } else if listed {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert_eq!(Origins::parse(&[]).expect("none"), Origins::Any);
        assert_eq!(
            Origins::parse(&["http://127.0.0.1:3000/".into()]).expect("origin"),
            Origins::Listed(vec!["http://127.0.0.1:3000".into()])
        );
        assert!(Origins::parse(&["http://a.example/app".into()]).is_err());
        assert!(Origins::parse(&["not a url".into()]).is_err());
        let listed = Origins::parse(&["https://app.example".into()]).expect("origin");
        assert!(listed.allow("https://app.example").is_some());
        assert!(listed.allow("https://evil.example").is_none());
        assert!(listed.allow("null").is_none());
    }
}
