//! Re-signing the tokens of one message as it passes: the request target, each header value
//! and the body are scanned (`scan::Scanner`, so `--only` places mean what they mean to
//! `resign --scan`), and every chosen token is replaced through a cache keyed by the old
//! token: the same old token becomes the same new token while the new one is valid, however
//! many connections carry it at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::crypto::resign::Skip;
use crate::scan::Scanner;

/// True when `text` holds `ey`, where every token starts: text without it holds none. (A
/// two-byte needle: one memchr pass, without building a substring searcher per call.)
pub fn has_ey(text: &[u8]) -> bool {
    memchr::memchr_iter(b'e', text).any(|i| text.get(i + 1) == Some(&b'y'))
}

/// Re-signs one old token as of `now`, by the plan's rules.
pub type Resign = dyn Fn(&str, i64) -> Result<String, Skip> + Send + Sync;

/// Shards of the token cache (a token's shard is picked by its hash).
const SHARDS: usize = 16;
/// Tokens a shard remembers; a full shard first drops what has expired, then everything.
const SHARD_TOKENS: usize = 8192;

/// What became of one old token.
struct Done {
    result: Result<String, Skip>,
    until: Option<i64>,
}

/// Counts for the summary lines.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub tokens: AtomicU64,
    pub resigned: AtomicU64,
    pub cache_hits: AtomicU64,
    pub left: AtomicU64,
    pub skipped: AtomicU64,
    pub passed_through: AtomicU64,
    pub tunnels: AtomicU64,
    pub upstream_errors: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// One line: the counts since start.
    pub fn line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "jwkit proxy: {} requests, {} responses, {} tokens found, {} re-signed ({} from the cache), {} left, {} skipped, {} bodies passed through, {} tunnels, {} upstream errors",
            g(&self.requests),
            g(&self.responses),
            g(&self.tokens),
            g(&self.resigned),
            g(&self.cache_hits),
            g(&self.left),
            g(&self.skipped),
            g(&self.passed_through),
            g(&self.tunnels),
            g(&self.upstream_errors),
        )
    }
}

pub struct Rewriter {
    scanner: Scanner,
    resign: Box<Resign>,
    shards: Vec<Mutex<HashMap<String, Done>>>,
    pub stats: Stats,
}

/// Counts of one message, for `-v`.
#[derive(Default, Clone, Copy)]
pub struct Counts {
    pub found: u64,
    pub resigned: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.found += other.found;
        self.resigned += other.resigned;
    }
}

impl Rewriter {
    pub fn new(scanner: Scanner, resign: Box<Resign>) -> Rewriter {
        Rewriter {
            scanner,
            resign,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            stats: Stats::default(),
        }
    }

    /// The new token for `old`: from the cache while it is good, else re-signed now (under
    /// the shard's lock, so two connections carrying the same new token at once get the same
    /// answer).
    fn new_token(&self, old: &str) -> Result<String, Skip> {
        // One old token is always in one shard, under one lock. The shard comes from the last
        // bytes of the token, its signature's: spread, and cheaper than hashing it twice.
        let tail = &old.as_bytes()[old.len().saturating_sub(8)..];
        let pick = tail.iter().fold(0usize, |h, &b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let shard = &self.shards[pick % SHARDS];
        let now = crate::when::now();
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = map.get(old)
            && d.until.is_none_or(|until| until > now)
        {
            Stats::add(&self.stats.cache_hits, u64::from(d.result.is_ok()));
            return d.result.clone();
        }
        let result = (self.resign)(old, now);
        if map.len() >= SHARD_TOKENS {
            map.retain(|_, d| d.until.is_none_or(|until| until > now));
            if map.len() >= SHARD_TOKENS {
                map.clear();
            }
        }
        let until = result
            .as_ref()
            .ok()
            .and_then(|t| crate::crypto::resign::reusable_until(t));
        map.insert(
            old.to_string(),
            Done {
                result: result.clone(),
                until,
            },
        );
        result
    }

    /// `text` with its chosen tokens re-signed; None when nothing changed.
    pub fn rewrite(&self, text: &[u8], counts: &mut Counts) -> Option<Vec<u8>> {
        // Every token starts with `ey`: text without it (most bodies) is passed over at once.
        if !has_ey(text) {
            return None;
        }
        let found = self.scanner.find(text);
        if found.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(text.len() + 256);
        let mut mine = Counts::default();
        let changed = self.scanner.walk_found(
            text,
            &found,
            &mut |o| {
                if !o.selected {
                    // Not in a chosen place: counted as found only when it is a JWS.
                    let jws = crate::crypto::resign::is_token(o.token);
                    mine.found += u64::from(jws);
                    Stats::add(
                        if jws {
                            &self.stats.left
                        } else {
                            &self.stats.skipped
                        },
                        1,
                    );
                    return None;
                }
                // The cache first: a token seen before costs a lookup, no parse.
                match self.new_token(o.token) {
                    Ok(new) => {
                        mine.found += 1;
                        mine.resigned += 1;
                        Some(new)
                    }
                    Err(s) if s.reason == crate::crypto::resign::NOT_A_JWS => {
                        Stats::add(&self.stats.skipped, 1);
                        None
                    }
                    Err(s) if s.left_on_purpose() => {
                        mine.found += 1;
                        Stats::add(&self.stats.left, 1);
                        None
                    }
                    Err(_) => {
                        mine.found += 1;
                        Stats::add(&self.stats.skipped, 1);
                        None
                    }
                }
            },
            Some(&mut out),
        );
        Stats::add(&self.stats.tokens, mine.found);
        Stats::add(&self.stats.resigned, mine.resigned);
        counts.add(mine);
        changed.then_some(out)
    }
}
