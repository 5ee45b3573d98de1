//! Fetching remote key sets and OIDC discovery documents: HTTPS (plain HTTP only on loopback or
//! with --allow-http), timeouts, a 1 MiB cap counted after decompression, at most 3 redirects
//! and never from HTTPS to HTTP. Responses are cached on disk per URL, honouring
//! `Cache-Control: max-age` and `ETag`, so repeated runs make no requests.

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::digest;
use reqwest::Url;
use reqwest::blocking::Client;
use serde::{Deserialize, Serialize};

use crate::{atomic, output, when};

/// Responses larger than this (after decompression) are refused.
pub const MAX_BODY_BYTES: u64 = 1 << 20;
/// Cache lifetime bound and default (seconds). A server's max-age is honoured down to 0 (then
/// every run revalidates with the ETag): a cache must never hide a key the server published.
const MAX_MAX_AGE: i64 = 24 * 3600;
const DEFAULT_MAX_AGE: i64 = 300;
/// A cached set this young is used, with a warning, when a fetch fails.
const STALE_LIMIT_MS: i64 = 24 * 3600 * 1000;
/// An unknown kid refetches a cached set at most once per this many milliseconds per URL,
/// across runs: tokens with made-up kids cannot turn jwkit into a request flood, and a key
/// published since the last fetch is picked up at once (unless another unknown kid forced a
/// refetch in the same short window).
pub const REFETCH_WINDOW_MS: i64 = 2000;

pub struct FetchOptions {
    pub timeout: Duration,
    pub allow_http: bool,
    pub cacert: Option<PathBuf>,
    pub use_cache: bool,
}

/// One cached response. Times are Unix milliseconds.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    url: String,
    fetched_ms: i64,
    /// Seconds.
    max_age: i64,
    #[serde(default)]
    etag: Option<String>,
    /// When an unknown kid last forced a refetch of this URL.
    #[serde(default)]
    refetched_ms: Option<i64>,
    body: String,
}

/// Where a body came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Fetched (or revalidated with 304) during this run.
    Network,
    /// From the cache, fetched this many milliseconds ago.
    Cache { age_ms: i64 },
}

/// Unix time in milliseconds.
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The URL for messages: a password in it is replaced by `***`.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The directory of cached key sets (`dirs::cache_dir()` + `/jwkit/jwks`).
fn cache_root() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("jwkit").join("jwks"))
}

/// Drops every cached response from `server` (its base URL): after an upload to it, the next
/// verify must see the set the server now serves. Returns how many entries were dropped.
pub fn forget_server(server: &str) -> usize {
    let Some(dir) = cache_root() else { return 0 };
    let Ok(read) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let base = server.trim_end_matches('/');
    let mut dropped = 0;
    for entry in read.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(cached) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok())
        else {
            continue;
        };
        let under = cached
            .url
            .strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        if under && std::fs::remove_file(&path).is_ok() {
            dropped += 1;
        }
    }
    dropped
}

pub struct JwksClient {
    opts: FetchOptions,
    http: Option<Client>,
    cache_dir: Option<PathBuf>,
}

impl JwksClient {
    pub fn new(opts: FetchOptions) -> JwksClient {
        let cache_dir = cache_root();
        JwksClient {
            opts,
            http: None,
            cache_dir,
        }
    }

    /// Parses `url` and refuses plain HTTP off loopback unless --allow-http.
    pub fn check_url(&self, url: &str) -> Result<Url> {
        let shown = redact(url);
        let parsed = Url::parse(url).with_context(|| format!("invalid URL {shown:?}"))?;
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.opts.allow_http || is_loopback(&parsed) => Ok(parsed),
            "http" => bail!(
                "refusing plain HTTP to {shown}: key sets must come over HTTPS (--allow-http overrides, loopback is always allowed)"
            ),
            other => bail!("unsupported URL scheme {other:?} in {shown}"),
        }
    }

    fn client(&mut self) -> Result<&Client> {
        if self.http.is_none() {
            let allow_http = self.opts.allow_http;
            let policy = reqwest::redirect::Policy::custom(move |attempt| {
                let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
                let to = attempt.url();
                if attempt.previous().len() > 3 {
                    attempt.error("more than 3 redirects")
                } else if to.scheme() == "http" && from_https {
                    attempt.error("refusing a redirect from HTTPS to HTTP")
                } else if to.scheme() == "http" && !allow_http && !is_loopback(to) {
                    attempt.error("refusing a redirect to plain HTTP")
                } else {
                    attempt.follow()
                }
            });
            let mut builder = Client::builder()
                .connect_timeout(Duration::from_secs(5).min(self.opts.timeout))
                .timeout(self.opts.timeout)
                .redirect(policy)
                .user_agent(concat!("jwkit/", env!("CARGO_PKG_VERSION")));
            if let Some(path) = &self.opts.cacert {
                let pem = crate::input::read_regular_file(path, "--cacert", 16 << 20)?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                    format!("--cacert {} holds no PEM certificate", path.display())
                })?;
                builder = builder.tls_certs_merge(certs);
            }
            self.http = Some(builder.build().context("setting up the HTTP client")?);
        }
        self.http
            .as_ref()
            .ok_or_else(|| anyhow!("HTTP client unavailable"))
    }

    fn cache_path(&self, url: &str) -> Option<PathBuf> {
        let digest = digest::digest(&digest::SHA256, url.as_bytes());
        let name: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        self.cache_dir
            .as_ref()
            .map(|d| d.join(format!("{name}.json")))
    }

    fn read_cache(&self, url: &str) -> Option<CacheEntry> {
        let path = self.cache_path(url)?;
        let bytes = std::fs::read(path).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        (entry.url == url).then_some(entry)
    }

    fn write_cache(&self, entry: &CacheEntry) {
        let Some(path) = self.cache_path(&entry.url) else {
            return;
        };
        let write = || -> Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            atomic::private_dir(dir)?;
            let bytes = serde_json::to_vec(entry)?;
            atomic::commit(vec![atomic::stage(&path, &bytes, 0o600)?], true)
        };
        if let Err(e) = write() {
            output::warn(&format!("could not cache {}: {e:#}", entry.url));
        }
    }

    /// The parsed URL (scheme checked) and its cache entry, if caching is on and there is one.
    fn checked_and_cached(&self, url: &str) -> Result<(Url, Option<CacheEntry>)> {
        let checked = self.check_url(url)?;
        let cached = if self.opts.use_cache {
            self.read_cache(url)
        } else {
            None
        };
        Ok((checked, cached))
    }

    /// The body at `url`: from the cache within max-age, else fetched (revalidating with the
    /// ETag). `validate` must accept a body before it is cached or used. When the fetch fails
    /// and the cache holds a body under 24 h old, that is used with a warning.
    pub fn get(
        &mut self,
        url: &str,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Result<(String, Origin)> {
        let (checked, cached) = self.checked_and_cached(url)?;
        let now = now_ms();
        if let Some(c) = &cached
            && now < c.fetched_ms + c.max_age * 1000
            && now >= c.fetched_ms
        {
            return Ok((
                c.body.clone(),
                Origin::Cache {
                    age_ms: now - c.fetched_ms,
                },
            ));
        }
        match self.fetch(checked, cached.as_ref(), validate) {
            Ok(body) => Ok((body, Origin::Network)),
            Err(e) => match cached {
                Some(c) if now - c.fetched_ms < STALE_LIMIT_MS => {
                    output::warn(&format!(
                        "{e:#}; using the copy cached {} ago",
                        when::span(((now - c.fetched_ms) / 1000).unsigned_abs())
                    ));
                    Ok((
                        c.body,
                        Origin::Cache {
                            age_ms: now - c.fetched_ms,
                        },
                    ))
                }
                _ => Err(e),
            },
        }
    }

    /// After an unknown kid: fetches `url` again, ignoring max-age, unless an unknown kid did
    /// so in the last `REFETCH_WINDOW_MS` (in any run). Returns the new body, or None when the
    /// refetch is not due.
    pub fn refetch(
        &mut self,
        url: &str,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Result<Option<String>> {
        let (checked, cached) = self.checked_and_cached(url)?;
        let now = now_ms();
        if let Some(at) = cached.as_ref().and_then(|c| c.refetched_ms)
            && now - at < REFETCH_WINDOW_MS
            && now >= at
        {
            return Ok(None);
        }
        let body = self.fetch(checked, cached.as_ref(), validate)?;
        if self.opts.use_cache
            && let Some(mut c) = self.read_cache(url)
        {
            c.refetched_ms = Some(now);
            self.write_cache(&c);
        }
        Ok(Some(body))
    }

    fn fetch(
        &mut self,
        url: Url,
        cached: Option<&CacheEntry>,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Result<String> {
        let use_cache = self.opts.use_cache;
        let url_text = url.to_string();
        let shown = redact(&url_text);
        let mut req = self.client()?.get(url.clone());
        if let Some(etag) = cached.and_then(|c| c.etag.as_deref()) {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let resp = req
            .send()
            .map_err(|e| describe(e, &format!("fetching {shown}")))?;
        let status = resp.status();
        let max_age = max_age(resp.headers());
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let now = now_ms();
        if status == reqwest::StatusCode::NOT_MODIFIED
            && let Some(c) = cached
        {
            let entry = CacheEntry {
                url: c.url.clone(),
                fetched_ms: now,
                max_age,
                etag: etag.or_else(|| c.etag.clone()),
                refetched_ms: c.refetched_ms,
                body: c.body.clone(),
            };
            if use_cache {
                self.write_cache(&entry);
            }
            return Ok(entry.body);
        }
        if !status.is_success() {
            bail!("fetching {shown}: HTTP {status}");
        }
        let mut body = Vec::new();
        resp.take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| anyhow!("fetching {shown}: reading the body: {}", e))?;
        if body.len() as u64 > MAX_BODY_BYTES {
            bail!("fetching {shown}: the response is over {MAX_BODY_BYTES} bytes; refused");
        }
        validate(&body).with_context(|| format!("fetching {shown}"))?;
        let body = String::from_utf8(body)
            .map_err(|_| anyhow!("fetching {shown}: the body is not UTF-8"))?;
        if use_cache {
            self.write_cache(&CacheEntry {
                url: url_text,
                fetched_ms: now,
                max_age,
                etag,
                refetched_ms: cached.and_then(|c| c.refetched_ms),
                body: body.clone(),
            });
        }
        Ok(body)
    }
}

/// A request error on one line: `ACTION: cause` (`fetching URL: timed out`), the cause said
/// plainly (timed out, connection refused, the certificate not trusted, a name that does not
/// resolve). The layers underneath (hyper, rustls, the OS error) are kept only with
/// `--verbose`. `action` names the URL already redacted.
pub fn describe(e: reqwest::Error, action: &str) -> anyhow::Error {
    let mut causes: Vec<String> = Vec::new();
    let mut refused = false;
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(err) = source {
        causes.push(err.to_string());
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = err.source();
    }
    let said = |needle: &str| causes.iter().any(|c| c.contains(needle));
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if said("certificate") {
        "the server's TLS certificate is not trusted (--cacert FILE adds a CA)".to_string()
    } else if refused || said("onnection refused") {
        "connection refused".to_string()
    } else if said("dns error") || said("failed to lookup address") {
        "the host name does not resolve".to_string()
    } else if e.is_redirect() {
        "bad redirect (more than 3, or from HTTPS to HTTP)".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        causes.last().cloned().unwrap_or_else(|| "failed".into())
    };
    let line = format!("{action}: {what}");
    if output::verbose() {
        anyhow::Error::new(e.without_url()).context(line)
    } else {
        anyhow::Error::msg(line)
    }
}

/// `Cache-Control: max-age=N`, at most 24 h; 5 min when absent; 0 for `no-cache`/`no-store`.
pub fn max_age(headers: &reqwest::header::HeaderMap) -> i64 {
    let directives: Vec<String> = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-cache" || d == "no-store")
    {
        return 0;
    }
    directives
        .iter()
        .filter_map(|d| d.strip_prefix("max-age="))
        .find_map(|n| n.trim().parse::<i64>().ok())
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(0, MAX_MAX_AGE)
}

/// True for localhost and loopback addresses, where plain HTTP cannot leave the machine.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
