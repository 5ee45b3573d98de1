//! Fetching remote key sets and OIDC discovery documents: HTTPS (plain HTTP only on loopback or
//! with --allow-http), one deadline for the whole fetch, a 1 MiB cap counted after
//! decompression, at most 3 redirects and never from HTTPS to HTTP. Responses are cached on
//! disk per URL, honouring `Cache-Control: max-age` and `ETag`, so repeated runs make no
//! requests. A cache is evidence only when it is ours: a directory this user owns that group
//! and others cannot write, regular files opened without following links, read under a size
//! cap, max-age clamped, corrupt entries discarded; runs fetching the same URL at once take
//! turns through a lock file, so they make one request between them.

use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// A cache file beyond this is not one of ours: a 1 MiB body JSON-escaped, and room.
const MAX_ENTRY_BYTES: u64 = 8 << 20;
/// The untrusted-cache warning is given once per run.
static WARNED_UNTRUSTED: AtomicBool = AtomicBool::new(false);
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

/// True when `dir` may hold evidence: a directory (not a link to one) owned by this user that
/// group and others cannot write.
fn ours(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

/// The cache directory when it and its parent (`jwkit/`) are ours, or do not exist yet; else
/// None, with one warning: an entry others could have written is never trusted.
fn trusted_cache_root() -> Option<PathBuf> {
    let root = cache_root()?;
    let suspect = [root.parent(), Some(root.as_path())]
        .into_iter()
        .flatten()
        .find(|d| d.symlink_metadata().is_ok() && !ours(d));
    match suspect {
        None => Some(root),
        Some(d) => {
            if !WARNED_UNTRUSTED.swap(true, Ordering::Relaxed) {
                output::warn(&format!(
                    "the key-set cache {} is not a private directory of this user (owned by another, writable by group or others, or a link): the cache is not used; fix it with chmod 700 or remove it",
                    d.display()
                ));
            }
            None
        }
    }
}

/// Opens a file of the cache for reading: a regular file, not a link, owned by this user, at
/// most `MAX_ENTRY_BYTES`; without blocking (a FIFO there is refused, not waited on).
fn read_entry_file(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file()
        || meta.uid() != rustix::process::geteuid().as_raw()
        || meta.len() > MAX_ENTRY_BYTES
    {
        return None;
    }
    let mut buf = Vec::new();
    file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= MAX_ENTRY_BYTES).then_some(buf)
}

/// The entry in `bytes`, its times made sane: max-age at most `MAX_MAX_AGE` whatever the file
/// says, so no entry outlives the documented bound.
fn parse_entry(bytes: &[u8]) -> Option<CacheEntry> {
    let mut entry: CacheEntry = serde_json::from_slice(bytes).ok()?;
    entry.max_age = entry.max_age.clamp(0, MAX_MAX_AGE);
    Some(entry)
}

/// Drops every cached response from `server` (its base URL): after an upload to it, the next
/// verify must see the set the server now serves. Returns how many entries were dropped.
pub fn forget_server(server: &str) -> usize {
    let Some(dir) = trusted_cache_root() else {
        return 0;
    };
    let Ok(read) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let base = server.trim_end_matches('/');
    let mut dropped = 0;
    for entry in read.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(cached) = read_entry_file(&path).and_then(|b| parse_entry(&b)) else {
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

/// An exclusive lock on one URL's cache entry, held while it is fetched; released on drop.
struct UrlLock(#[allow(dead_code)] File);

pub struct JwksClient {
    opts: FetchOptions,
    http: Option<Client>,
    cache_dir: Option<PathBuf>,
}

impl JwksClient {
    pub fn new(opts: FetchOptions) -> JwksClient {
        let cache_dir = if opts.use_cache {
            trusted_cache_root()
        } else {
            None
        };
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
        let entry = read_entry_file(&path).and_then(|b| parse_entry(&b));
        match entry {
            Some(e) if e.url == url => Some(e),
            // Not an entry, or not this URL's: discarded, so a fresh one takes its place.
            Some(_) => None,
            None => {
                if path.symlink_metadata().is_ok() {
                    let _ = std::fs::remove_file(&path);
                }
                None
            }
        }
    }

    /// Drops a cached entry whose body turned out unusable.
    fn discard(&self, url: &str) {
        if let Some(path) = self.cache_path(url) {
            let _ = std::fs::remove_file(path);
        }
    }

    fn write_cache(&self, entry: &CacheEntry) {
        let Some(path) = self.cache_path(&entry.url) else {
            return;
        };
        let write = || -> Result<()> {
            let dir = path.parent().unwrap_or(Path::new("."));
            atomic::private_dir(dir)?;
            // Made by another user between our check and now: not written to, not trusted.
            if trusted_cache_root().is_none() {
                return Ok(());
            }
            let bytes = serde_json::to_vec(entry)?;
            atomic::commit(vec![atomic::stage(&path, &bytes, 0o600)?], true)
        };
        if let Err(e) = write() {
            output::warn(&format!("could not cache {}: {e:#}", entry.url));
        }
    }

    /// Takes the URL's lock, waiting at most the fetch timeout for another run holding it (then
    /// going on without it). None without a cache.
    fn lock(&self, url: &str) -> Option<UrlLock> {
        use std::os::unix::fs::OpenOptionsExt;
        // Beside the entries, not among them: `jwkit/jwks-locks/<name>.lock`.
        let entry = self.cache_path(url)?;
        let dir = entry.parent()?.with_file_name("jwks-locks");
        let path = dir.join(entry.file_name()?).with_extension("lock");
        atomic::private_dir(&dir).ok()?;
        if !ours(&dir) {
            return None;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(&path)
            .ok()?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return None;
        }
        let deadline = std::time::Instant::now() + self.opts.timeout;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Some(UrlLock(file)),
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return None,
            }
        }
    }

    /// `cached` when its body passes `validate`; else it is discarded (and not revalidated
    /// with its ETag, which would bring the same bad body back).
    fn usable(
        &self,
        cached: Option<CacheEntry>,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Option<CacheEntry> {
        let c = cached?;
        if validate(c.body.as_bytes()).is_ok() {
            Some(c)
        } else {
            self.discard(&c.url);
            None
        }
    }

    /// The cached entry when it is within its max-age and its body passes `validate`; a body
    /// that does not is discarded, so it is fetched again.
    fn fresh(
        &self,
        cached: Option<&CacheEntry>,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Option<(String, Origin)> {
        let c = cached?;
        let now = now_ms();
        if now >= c.fetched_ms.saturating_add(c.max_age * 1000) || now < c.fetched_ms {
            return None;
        }
        if validate(c.body.as_bytes()).is_err() {
            self.discard(&c.url);
            return None;
        }
        Some((
            c.body.clone(),
            Origin::Cache {
                age_ms: now - c.fetched_ms,
            },
        ))
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
        let (checked, mut cached) = self.checked_and_cached(url)?;
        if let Some(hit) = self.fresh(cached.as_ref(), validate) {
            return Ok(hit);
        }
        // Runs that miss together take turns: the first fetches, the others find its entry.
        let lock = self.lock(url);
        if lock.is_some() {
            cached = self.read_cache(url);
            if let Some(hit) = self.fresh(cached.as_ref(), validate) {
                return Ok(hit);
            }
        }
        let cached = self.usable(cached, validate);
        let refetched = cached.as_ref().and_then(|c| c.refetched_ms);
        let now = now_ms();
        match self.fetch(checked, cached.as_ref(), validate, refetched) {
            Ok(body) => Ok((body, Origin::Network)),
            Err(e) => match cached {
                Some(c) if now - c.fetched_ms < STALE_LIMIT_MS && now >= c.fetched_ms => {
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
    /// refetch is not due. Runs that ask at once take turns: one fetches, and the others take
    /// the body it cached.
    pub fn refetch(
        &mut self,
        url: &str,
        validate: &dyn Fn(&[u8]) -> Result<()>,
    ) -> Result<Option<String>> {
        let (checked, cached) = self.checked_and_cached(url)?;
        let recent = |c: &CacheEntry| {
            let now = now_ms();
            c.refetched_ms
                .is_some_and(|at| now - at < REFETCH_WINDOW_MS && now >= at)
        };
        if cached.as_ref().is_some_and(recent) {
            return Ok(None);
        }
        let lock = self.lock(url);
        let cached = if lock.is_some() {
            self.read_cache(url)
        } else {
            cached
        };
        let cached = self.usable(cached, validate);
        if let Some(c) = cached.as_ref().filter(|c| recent(c)) {
            // Another run refetched while this one waited: its body is as new as ours would be.
            return Ok(validate(c.body.as_bytes()).is_ok().then(|| c.body.clone()));
        }
        let body = self.fetch(checked, cached.as_ref(), validate, Some(now_ms()))?;
        drop(lock);
        Ok(Some(body))
    }

    /// Fetches `url` (revalidating `cached` with its ETag) and caches the result, recording
    /// `refetched_ms` as the last unknown-kid refetch.
    fn fetch(
        &mut self,
        url: Url,
        cached: Option<&CacheEntry>,
        validate: &dyn Fn(&[u8]) -> Result<()>,
        refetched_ms: Option<i64>,
    ) -> Result<String> {
        let use_cache = self.opts.use_cache;
        let url_text = url.to_string();
        let shown = redact(&url_text);
        // The request's own timeout bounds the whole fetch, body included (the client's
        // bounds each read, and a body dripped a byte at a time would never meet it).
        let mut req = self.client()?.get(url.clone()).timeout(self.opts.timeout);
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
                refetched_ms,
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
                refetched_ms,
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
