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
/// Cache lifetime bounds and default (seconds).
const MIN_MAX_AGE: i64 = 60;
const MAX_MAX_AGE: i64 = 24 * 3600;
const DEFAULT_MAX_AGE: i64 = 300;
/// A cached set this young is used, with a warning, when a fetch fails.
const STALE_LIMIT: i64 = 24 * 3600;
/// An unknown kid triggers at most one refetch per this many seconds, across runs.
const REFETCH_INTERVAL: i64 = 30;

pub struct FetchOptions {
    pub timeout: Duration,
    pub allow_http: bool,
    pub cacert: Option<PathBuf>,
    pub use_cache: bool,
}

/// One cached response.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    url: String,
    fetched_at: i64,
    max_age: i64,
    #[serde(default)]
    etag: Option<String>,
    /// When an unknown kid last forced a refetch of this URL.
    #[serde(default)]
    refetched_at: Option<i64>,
    body: String,
}

/// Where a body came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Fetched (or revalidated with 304) during this run.
    Network,
    /// From the cache, within max-age.
    Cache,
}

pub struct JwksClient {
    opts: FetchOptions,
    http: Option<Client>,
    cache_dir: Option<PathBuf>,
}

impl JwksClient {
    pub fn new(opts: FetchOptions) -> JwksClient {
        let cache_dir = dirs::cache_dir().map(|d| d.join("jwkit").join("jwks"));
        JwksClient {
            opts,
            http: None,
            cache_dir,
        }
    }

    /// Parses `url` and refuses plain HTTP off loopback unless --allow-http.
    pub fn check_url(&self, url: &str) -> Result<Url> {
        let parsed = Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.opts.allow_http || is_loopback(&parsed) => Ok(parsed),
            "http" => bail!(
                "refusing plain HTTP to {url}: key sets must come over HTTPS (--allow-http overrides, loopback is always allowed)"
            ),
            other => bail!("unsupported URL scheme {other:?} in {url}"),
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
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading --cacert {}", path.display()))?;
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
            atomic::private_dir(dir, 0o700)?;
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
        let now = when::now();
        if let Some(c) = &cached
            && now < c.fetched_at + c.max_age
            && now >= c.fetched_at
        {
            return Ok((c.body.clone(), Origin::Cache));
        }
        match self.fetch(checked, cached.as_ref(), validate) {
            Ok(body) => Ok((body, Origin::Network)),
            Err(e) => match cached {
                Some(c) if now - c.fetched_at < STALE_LIMIT => {
                    output::warn(&format!(
                        "{e:#}; using the copy cached {} ago",
                        when::span((now - c.fetched_at).unsigned_abs())
                    ));
                    Ok((c.body, Origin::Cache))
                }
                _ => Err(e),
            },
        }
    }

    /// After an unknown kid: fetches `url` again, ignoring max-age, unless that was done in the
    /// last 30 s (by any run). Returns the new body, or None when the refetch is not due.
    pub fn refetch(
        &mut self,
        url: &str,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Result<Option<String>> {
        let (checked, cached) = self.checked_and_cached(url)?;
        let now = when::now();
        if let Some(at) = cached.as_ref().and_then(|c| c.refetched_at)
            && now - at < REFETCH_INTERVAL
            && now >= at
        {
            return Ok(None);
        }
        let body = self.fetch(checked, cached.as_ref(), validate)?;
        if self.opts.use_cache
            && let Some(mut c) = self.read_cache(url)
        {
            c.refetched_at = Some(now);
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
        let mut req = self.client()?.get(url.clone());
        if let Some(etag) = cached.and_then(|c| c.etag.as_deref()) {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let resp = req.send().map_err(|e| describe(e, &url_text))?;
        let status = resp.status();
        let max_age = max_age(resp.headers());
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let now = when::now();
        if status == reqwest::StatusCode::NOT_MODIFIED
            && let Some(c) = cached
        {
            let entry = CacheEntry {
                url: c.url.clone(),
                fetched_at: now,
                max_age,
                etag: etag.or_else(|| c.etag.clone()),
                refetched_at: c.refetched_at,
                body: c.body.clone(),
            };
            if use_cache {
                self.write_cache(&entry);
            }
            return Ok(entry.body);
        }
        if !status.is_success() {
            bail!("GET {url_text}: HTTP {status}");
        }
        let mut body = Vec::new();
        resp.take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| anyhow!("GET {url_text}: reading the body: {e}"))?;
        if body.len() as u64 > MAX_BODY_BYTES {
            bail!("GET {url_text}: the response is over {MAX_BODY_BYTES} bytes; refused");
        }
        validate(&body).with_context(|| format!("GET {url_text}"))?;
        let body = String::from_utf8(body)
            .map_err(|_| anyhow!("GET {url_text}: the body is not UTF-8"))?;
        if use_cache {
            self.write_cache(&CacheEntry {
                url: url_text,
                fetched_at: now,
                max_age,
                etag,
                refetched_at: cached.and_then(|c| c.refetched_at),
                body: body.clone(),
            });
        }
        Ok(body)
    }
}

/// A fetch error with its cause, said plainly (timeouts and refused connections included).
fn describe(e: reqwest::Error, url: &str) -> anyhow::Error {
    let tls = {
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        let mut found = false;
        while let Some(err) = source {
            found |= err.to_string().contains("certificate");
            source = err.source();
        }
        found
    };
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if tls {
        "the server's TLS certificate is not trusted (--cacert FILE adds a CA)".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else if e.is_redirect() {
        "bad redirect".to_string()
    } else {
        "failed".to_string()
    };
    anyhow::Error::new(e).context(format!("GET {url}: {what}"))
}

/// `Cache-Control: max-age=N`, clamped to 1 min .. 24 h; 5 min when absent.
fn max_age(headers: &reqwest::header::HeaderMap) -> i64 {
    headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.trim().parse::<i64>().ok())
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
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
