//! `jwkit proxy`: an HTTP proxy that re-signs the tokens of the traffic passing through it, by
//! the rules of `resign --scan`. As a reverse proxy (`--upstream URL`) every request goes to
//! one origin; as a forward proxy (no upstream) clients send absolute-form requests
//! (`HTTP_PROXY`) and CONNECT tunnels, which pass untouched or, with an interception CA, are
//! terminated and re-signed too. Nothing but tokens and lengths changes: header names keep
//! their case and order, hop-by-hop headers are dropped as RFC 9110 §7.6.1 says, bodies keep
//! their framing and content coding. The listener is the server's (timeouts, eviction,
//! graceful stop).

pub mod rewrite;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use crate::output;
use crate::scan::coding::Coding;
use rewrite::{Counts, Rewriter, has_ey};

/// Which traffic is re-signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sides {
    pub requests: bool,
    pub responses: bool,
}

/// Where a reverse proxy sends everything.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub scheme: String,
    pub authority: String,
}

pub struct Config {
    pub upstream: Option<Upstream>,
    pub sides: Sides,
    /// Bodies larger than this pass through untouched (streamed).
    pub max_body: usize,
    /// Add `Forwarded` and `X-Forwarded-For`.
    pub forwarded: bool,
    /// An upstream exchange (connect and response head) must finish within this.
    pub upstream_timeout: Duration,
    /// A request body must arrive within this.
    pub body_timeout: Duration,
    pub intercept: Option<Arc<tls::Intercept>>,
    /// `-v`: one line per request (method, status, time, counts; never a token).
    pub verbose: bool,
}

type Upstreams = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// One worker thread's proxy: the configuration and the cache are shared by all, the pool of
/// upstream connections is the thread's own (a request and its upstream exchange stay on one
/// thread).
pub struct Proxy {
    config: Arc<Config>,
    /// The upstream's origin, parsed once.
    origin: Option<(Scheme, Authority)>,
    pub rewriter: Arc<Rewriter>,
    client: Upstreams,
}

/// The origin an intercepted TLS connection was opened for (`CONNECT host:port`).
#[derive(Clone, Debug)]
struct Intercepted(String);

impl Proxy {
    pub fn new(
        config: Arc<Config>,
        rewriter: Arc<Rewriter>,
        upstream_tls: rustls::ClientConfig,
    ) -> Proxy {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.upstream_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(upstream_tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .http1_preserve_header_case(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        // `--upstream` was checked to be an http(s) origin: it parses.
        let origin = config.upstream.as_ref().and_then(|u| {
            Some((
                Scheme::try_from(u.scheme.as_str()).ok()?,
                Authority::try_from(u.authority.as_str()).ok()?,
            ))
        });
        Proxy {
            config,
            origin,
            rewriter,
            client,
        }
    }
}

/// The summary line every 10 s while anything happens, and once at the end.
pub async fn report(rewriter: Arc<Rewriter>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    let mut last = String::new();
    loop {
        tick.tick().await;
        let line = rewriter.stats.line();
        if line != last {
            output::log(line.clone());
            last = line;
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// An error answer, boxed for `Result`.
fn refuse(status: StatusCode, message: impl Into<String>) -> Box<Response> {
    Box::new(error(status, message))
}

/// Answers one request: every request goes here (no routing).
pub async fn handle(proxy: Arc<Proxy>, req: Request, peer: SocketAddr) -> Response {
    if req.method() == Method::CONNECT {
        return connect(proxy, req, peer);
    }
    let start = Instant::now();
    let method = req.method().clone();
    let mut counts = Counts::default();
    let resp = match forward(&proxy, req, peer, &mut counts).await {
        Ok(r) => r,
        Err(r) => *r,
    };
    if proxy.config.verbose {
        output::log(format!(
            "{method} {} {:.2}ms tokens {} re-signed {}",
            resp.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0,
            counts.found,
            counts.resigned
        ));
    }
    resp
}

/// Where a request goes: the origin and the path (with the query).
struct Target {
    scheme: Scheme,
    authority: Authority,
    pq: PathAndQuery,
}

/// The origin (scheme, authority) and the path of a request.
fn target(proxy: &Proxy, req: &Request) -> Result<Target, Box<Response>> {
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let not_a_uri = || refuse(StatusCode::BAD_REQUEST, "the request target is not a URI");
    if let Some(Intercepted(authority)) = req.extensions().get::<Intercepted>() {
        return Ok(Target {
            scheme: Scheme::HTTPS,
            authority: Authority::try_from(authority.as_str()).map_err(|_| not_a_uri())?,
            pq,
        });
    }
    if let Some((scheme, authority)) = &proxy.origin {
        return Ok(Target {
            scheme: scheme.clone(),
            authority: authority.clone(),
            pq,
        });
    }
    match (req.uri().scheme(), req.uri().authority()) {
        (Some(scheme), Some(authority)) if matches!(scheme.as_str(), "http" | "https") => {
            Ok(Target {
                scheme: scheme.clone(),
                authority: authority.clone(),
                pq,
            })
        }
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "a forward proxy takes absolute-form requests (http://host/path, as HTTP_PROXY clients send) and CONNECT; start with --upstream URL for a reverse proxy",
        )),
    }
}

/// Headers that belong to one connection (RFC 9110 §7.6.1): never forwarded.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Drops the hop-by-hop headers, and those the `Connection` header names; keeps `Upgrade`
/// (and `Connection: upgrade`) when `upgrade` is true.
fn drop_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let hop = |name: &HeaderName| {
        HOP_BY_HOP.contains(&name.as_str()) || (!upgrade && name == header::UPGRADE)
    };
    // Most messages have none, or only `Connection: keep-alive`: one pass over the names.
    let mut drop: Vec<HeaderName> = headers.keys().filter(|n| hop(n)).cloned().collect();
    if drop.is_empty() {
        return;
    }
    // And the headers the `Connection` header names.
    for v in headers.get_all(header::CONNECTION) {
        for name in v.as_bytes().split(|&b| b == b',') {
            if let Ok(name) = HeaderName::from_bytes(name.trim_ascii())
                && headers.contains_key(&name)
            {
                drop.push(name);
            }
        }
    }
    for name in drop {
        if upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(&name);
    }
}

/// Re-signs the tokens in a request target (path and query), scanned as the request line
/// `METHOD TARGET HTTP/1.1`, so `--only param:NAME` means what it means in a capture. None
/// when nothing changed.
fn rewrite_target(
    rewriter: &Rewriter,
    method: &Method,
    pq: &str,
    counts: &mut Counts,
) -> Option<String> {
    if !has_ey(pq.as_bytes()) {
        return None;
    }
    let before = format!("{method} ");
    let new = rewriter.rewrite(format!("{before}{pq} HTTP/1.1").as_bytes(), counts)?;
    let text = String::from_utf8(new).ok()?;
    text.strip_prefix(&before)?
        .strip_suffix(" HTTP/1.1")
        .map(str::to_string)
}

/// Re-signs the tokens in header values. Each value is scanned as the line `Name: value`, so
/// `--only header:NAME` and `cookie:NAME` mean what they mean in a capture; a header keeps its
/// place and its other values their order.
fn rewrite_headers(rewriter: &Rewriter, headers: &mut HeaderMap, counts: &mut Counts) {
    // A value with no `ey` holds no token: most heads are passed over at once.
    let has = |v: &HeaderValue| has_ey(v.as_bytes());
    // Only the names with a value that may hold a token are taken apart.
    let mut names: Vec<HeaderName> = Vec::new();
    for (name, v) in headers.iter() {
        if has(v) && !names.contains(name) {
            names.push(name.clone());
        }
    }
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        let mut changed = false;
        let mut new_values = Vec::with_capacity(values.len());
        for v in values {
            if !has(&v) {
                new_values.push(v);
                continue;
            }
            let mut line = Vec::with_capacity(name.as_str().len() + 2 + v.len());
            line.extend_from_slice(name.as_str().as_bytes());
            line.extend_from_slice(b": ");
            line.extend_from_slice(v.as_bytes());
            match rewriter
                .rewrite(&line, counts)
                .and_then(|new| HeaderValue::from_bytes(&new[name.as_str().len() + 2..]).ok())
            {
                Some(new) => {
                    changed = true;
                    new_values.push(new);
                }
                None => new_values.push(v),
            }
        }
        if changed {
            let mut it = new_values.into_iter();
            if let Some(first) = it.next() {
                headers.insert(name.clone(), first);
            }
            for v in it {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// A body read whole, or one that passes through as it streams.
enum Taken {
    Whole(Bytes),
    Stream(Body),
}

/// Reads `body` up to `max` bytes; a longer one (or one with trailers) comes back as a stream
/// of what was read and the rest.
async fn take(body: Body, max: usize) -> Result<Taken, axum::Error> {
    let mut body = body;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let Some(frame) = body.frame().await else {
            // One chunk (most bodies) is the body itself; several are put together.
            if chunks.len() <= 1 {
                return Ok(Taken::Whole(chunks.pop().unwrap_or_default()));
            }
            let mut whole = Vec::with_capacity(total);
            for c in &chunks {
                whole.extend_from_slice(c);
            }
            return Ok(Taken::Whole(Bytes::from(whole)));
        };
        let frame = frame?;
        match frame.into_data() {
            Ok(data) => {
                total += data.len();
                chunks.push(data);
                if total > max {
                    break;
                }
            }
            // Trailers: the body is not one to take apart.
            Err(_) => break,
        }
    }
    let head = futures_util::stream::iter(chunks.into_iter().map(Ok::<Bytes, axum::Error>));
    let rest = body.into_data_stream();
    use futures_util::StreamExt;
    Ok(Taken::Stream(Body::from_stream(head.chain(rest))))
}

/// True for bodies that are streams by nature: server-sent events.
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Counts a body passed through untouched.
fn passed(proxy: &Proxy) {
    proxy
        .rewriter
        .stats
        .passed_through
        .fetch_add(1, Ordering::Relaxed);
}

/// Re-signs a whole body (decoding and re-encoding its content coding) and fixes its declared
/// length. Returns the body to send.
fn rewrite_body(proxy: &Proxy, headers: &mut HeaderMap, data: Bytes, counts: &mut Counts) -> Bytes {
    if data.is_empty() {
        return data;
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"));
    let Some(coding) = Coding::from_header(encoding) else {
        passed(proxy);
        return data;
    };
    let new = if coding == Coding::Identity {
        // Scanned as it is: no copy.
        proxy.rewriter.rewrite(&data, counts)
    } else {
        let Some(decoded) = coding.decode(&data, proxy.config.max_body) else {
            // Not what it says it is, or a bomb: passed on as it came.
            passed(proxy);
            return data;
        };
        proxy
            .rewriter
            .rewrite(&decoded, counts)
            .and_then(|new| coding.encode_like(&data, &new).ok())
    };
    let Some(new) = new else {
        return data;
    };
    if headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(new.len()));
    }
    Bytes::from(new)
}

async fn forward(
    proxy: &Arc<Proxy>,
    mut req: Request,
    peer: SocketAddr,
    counts: &mut Counts,
) -> Result<Response, Box<Response>> {
    let Target {
        scheme,
        authority,
        mut pq,
    } = target(proxy, &req)?;
    proxy
        .rewriter
        .stats
        .requests
        .fetch_add(1, Ordering::Relaxed);
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| !v.is_empty());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let sides = proxy.config.sides;
    if sides.requests {
        if let Some(new) = rewrite_target(&proxy.rewriter, &parts.method, pq.as_str(), counts) {
            // A token's characters are all allowed in a path or query: it parses.
            if let Ok(new) = PathAndQuery::try_from(new) {
                pq = new;
            }
        }
        rewrite_headers(&proxy.rewriter, &mut parts.headers, counts);
    }
    drop_hop_by_hop(&mut parts.headers, upgrade);
    if proxy.config.forwarded {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ip = peer.ip();
        let for_ = if ip.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&format!("for={for_};proto=http;host={host}")) {
            parts
                .headers
                .append(HeaderName::from_static("forwarded"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            parts
                .headers
                .append(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    // An upgrade has no body to take, and a request without one (most GETs) needs no timer.
    let body = if upgrade || hyper::body::Body::is_end_stream(&body) {
        Body::empty()
    } else {
        match tokio::time::timeout(proxy.config.body_timeout, take(body, proxy.config.max_body))
            .await
        {
            Err(_) => {
                return Err(refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive within the body timeout",
                ));
            }
            Ok(Err(_)) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                ));
            }
            Ok(Ok(Taken::Whole(data))) if sides.requests => {
                Body::from(rewrite_body(proxy, &mut parts.headers, data, counts))
            }
            Ok(Ok(Taken::Whole(data))) => Body::from(data),
            Ok(Ok(Taken::Stream(b))) => {
                passed(proxy);
                b
            }
        }
    };
    let mut uri = hyper::http::uri::Parts::default();
    uri.scheme = Some(scheme);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(pq);
    let Ok(uri) = Uri::from_parts(uri) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "the request target is not a URI",
        ));
    };
    parts.uri = uri;
    let out = hyper::Request::from_parts(parts, body);
    let sent = tokio::time::timeout(proxy.config.upstream_timeout, proxy.client.request(out)).await;
    let mut resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(upstream_failed(
                proxy,
                authority.as_str(),
                StatusCode::BAD_GATEWAY,
                &upstream_cause(&e),
            ));
        }
        Err(_) => {
            return Err(upstream_failed(
                proxy,
                authority.as_str(),
                StatusCode::GATEWAY_TIMEOUT,
                "no answer within the upstream timeout",
            ));
        }
    };
    proxy
        .rewriter
        .stats
        .responses
        .fetch_add(1, Ordering::Relaxed);
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_upgrade {
            let upstream_side = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let (Ok(a), Ok(b)) = (client_side.await, upstream_side.await) {
                    let _ =
                        tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b))
                            .await;
                }
            });
        }
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    if sides.responses {
        rewrite_headers(&proxy.rewriter, &mut parts.headers, counts);
    }
    drop_hop_by_hop(&mut parts.headers, false);
    let body = Body::new(body);
    let stream = is_event_stream(&parts.headers);
    let body = if stream {
        passed(proxy);
        body
    } else {
        match take(body, proxy.config.max_body).await {
            Ok(Taken::Whole(data)) if sides.responses => {
                Body::from(rewrite_body(proxy, &mut parts.headers, data, counts))
            }
            Ok(Taken::Whole(data)) => Body::from(data),
            Ok(Taken::Stream(b)) => {
                passed(proxy);
                b
            }
            Err(_) => {
                proxy
                    .rewriter
                    .stats
                    .upstream_errors
                    .fetch_add(1, Ordering::Relaxed);
                return Err(refuse(
                    StatusCode::BAD_GATEWAY,
                    format!("the upstream {authority} broke off its answer"),
                ));
            }
        }
    };
    Ok(Response::from_parts(parts, body))
}

/// Counts an upstream failure, says it on stderr, and answers the client 502 or 504.
fn upstream_failed(
    proxy: &Proxy,
    authority: &str,
    status: StatusCode,
    cause: &str,
) -> Box<Response> {
    proxy
        .rewriter
        .stats
        .upstream_errors
        .fetch_add(1, Ordering::Relaxed);
    output::log(format!(
        "error: upstream {}: {cause}",
        output::escape(authority)
    ));
    refuse(status, format!("the upstream {authority} failed: {cause}"))
}

/// The cause of an upstream failure, said plainly.
fn upstream_cause(e: &hyper_util::client::legacy::Error) -> String {
    let mut causes = Vec::new();
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        causes.push(err.to_string());
        source = err.source();
    }
    let all = causes.join(": ");
    if all.contains("onnection refused") {
        "connection refused".into()
    } else if all.contains("certificate") {
        "its TLS certificate is not trusted (--cacert FILE adds a CA)".into()
    } else if all.contains("dns error") || all.contains("failed to lookup") {
        "the host name does not resolve".into()
    } else {
        causes.last().cloned().unwrap_or_else(|| "failed".into())
    }
}

/// CONNECT host:port: a tunnel, passed through as it is, or with an interception CA
/// terminated here and served like any other traffic.
fn connect(proxy: Arc<Proxy>, mut req: Request, peer: SocketAddr) -> Response {
    let Some(authority) = req.uri().authority().map(|a| a.to_string()) else {
        return error(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    proxy.rewriter.stats.tunnels.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        match proxy.config.intercept.clone() {
            Some(intercept) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']'])
                    .to_string();
                let Ok(acceptor) = intercept.acceptor(&host) else {
                    return;
                };
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io)).await
                else {
                    return;
                };
                let target = Intercepted(authority);
                let service = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(target.clone());
                        let answer = handle(Arc::clone(&proxy), req.map(Body::new), peer);
                        async move { Ok::<_, std::convert::Infallible>(answer.await) }
                    },
                );
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .preserve_header_case(true);
                let _ = builder
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await;
            }
            None => {
                let connected = tokio::time::timeout(
                    proxy.config.upstream_timeout,
                    tokio::net::TcpStream::connect(authority.as_str()),
                )
                .await;
                if let Ok(Ok(mut upstream)) = connected {
                    let mut io = io;
                    let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
                } else {
                    proxy
                        .rewriter
                        .stats
                        .upstream_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("host", "app"),
            ("connection", "keep-alive, X-Trace"),
            ("keep-alive", "timeout=5"),
            ("x-trace", "1"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("authorization", "Bearer x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let mut plain = h.clone();
        drop_hop_by_hop(&mut plain, false);
        let kept: Vec<&str> = plain.keys().map(|k| k.as_str()).collect();
        assert_eq!(kept, ["host", "authorization", "transfer-encoding"]);
        let mut upgrading = h;
        drop_hop_by_hop(&mut upgrading, true);
        assert!(upgrading.contains_key("upgrade") && upgrading.contains_key("connection"));
        assert!(!upgrading.contains_key("x-trace"));
    }
}
