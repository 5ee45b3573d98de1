//! The identity provider's short-lived records (codes, login sessions, refresh tokens, access
//! token facts, revocations, used assertion ids), kept by the store beside the keys so that
//! every replica on one database sees each record: a code made by one replica is redeemed on
//! another, a revocation is seen by all at once.
//!
//! Every record has a kind, a key (a hash of the secret it stands for: the store never holds
//! a usable code or token), a value (JSON) and an expiry; an expired record is as good as
//! gone. Single use is one operation in the store ([`Store::record_take`]: PostgreSQL's
//! `DELETE ... RETURNING`), never a read then a write.
//!
//! [`Memory`] is the directory store's: in memory, bounded by [`MAX_RECORDS`] live records,
//! expired ones dropped as it grows.
//!
//! [`Store::record_take`]: super::Store::record_take

use std::collections::HashMap;
use std::sync::Mutex;

use super::StoreError;

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An authorization code, until redeemed.
    Code,
    /// A login session (the cookie).
    Session,
    /// A refresh token, until used.
    Refresh,
    /// An access token's facts (by jti, or the opaque token).
    Access,
    /// A revoked access token (by jti) or token family.
    Revoked,
    /// A used `private_key_jwt` assertion id.
    Assertion,
    /// A code or refresh token that was redeemed: its family, so a replay revokes it.
    Used,
    /// A pushed authorization request (RFC 9126), until used.
    Par,
    /// A device authorization (RFC 8628) by its device code.
    Device,
    /// A device authorization's user code: the device code's key.
    DeviceUser,
    /// The user's decision on a device authorization, until the device takes it.
    DeviceDecision,
    /// A device's last poll, live for the polling interval (a poll within it: slow_down).
    DevicePoll,
    /// A client registered dynamically (RFC 7591), by its client_id.
    Client,
    /// A DPoP proof's key and jti, taken once (RFC 9449 §11.1).
    DpopJti,
    /// A DPoP nonce the server handed out (RFC 9449 §8).
    DpopNonce,
    /// The signing key of an issuer under a path segment (`tenant`), by its name.
    TenantKey,
    /// What the debugger page keeps between its authorization request and the callback.
    Debugger,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Code => "code",
            Kind::Session => "session",
            Kind::Refresh => "refresh",
            Kind::Access => "access",
            Kind::Revoked => "revoked",
            Kind::Assertion => "assertion",
            Kind::Used => "used",
            Kind::Par => "par",
            Kind::Device => "device",
            Kind::DeviceUser => "device_user",
            Kind::DeviceDecision => "device_decision",
            Kind::DevicePoll => "device_poll",
            Kind::Client => "client",
            Kind::DpopJti => "dpop_jti",
            Kind::DpopNonce => "dpop_nonce",
            Kind::TenantKey => "tenant_key",
            Kind::Debugger => "debugger",
        }
    }
}

/// Live records the memory store holds at most; a new one beyond it is refused (the store
/// is full) rather than memory growing without end.
pub const MAX_RECORDS: usize = 2_000_000;
/// The map drops its expired records when it reaches this size, then twice what remains.
const PRUNE_AT: usize = 1024;

/// Records in memory (the directory store's).
pub struct Memory {
    inner: Mutex<MemoryInner>,
}

struct MemoryInner {
    map: HashMap<(Kind, String), (String, i64)>,
    prune_at: usize,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            inner: Mutex::new(MemoryInner {
                map: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
        }
    }
}

impl Memory {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more record at `now`: expired ones dropped when the map has grown.
    fn room(inner: &mut MemoryInner, now: i64) -> Result<(), StoreError> {
        if inner.map.len() >= inner.prune_at {
            inner.map.retain(|_, (_, expires)| *expires > now);
            inner.prune_at = (2 * inner.map.len()).max(PRUNE_AT);
        }
        if inner.map.len() >= MAX_RECORDS {
            return Err(StoreError::Unavailable(format!(
                "the identity provider holds {MAX_RECORDS} live records (codes, sessions, tokens): shorten the lifetimes in [tokens]"
            )));
        }
        Ok(())
    }

    pub fn put(
        &self,
        kind: Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        Self::room(&mut inner, now)?;
        inner
            .map
            .insert((kind, key.to_string()), (value.to_string(), expires));
        Ok(())
    }

    pub fn add(
        &self,
        kind: Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        Self::room(&mut inner, now)?;
        let k = (kind, key.to_string());
        if inner.map.get(&k).is_some_and(|(_, e)| *e > now) {
            return Ok(false);
        }
        inner.map.insert(k, (value.to_string(), expires));
        Ok(true)
    }

    pub fn get(&self, kind: Kind, key: &str, now: i64) -> Option<String> {
        let inner = self.lock();
        inner
            .map
            .get(&(kind, key.to_string()))
            .filter(|(_, e)| *e > now)
            .map(|(v, _)| v.clone())
    }

    pub fn take(&self, kind: Kind, key: &str, now: i64) -> Option<String> {
        let mut inner = self.lock();
        inner
            .map
            .remove(&(kind, key.to_string()))
            .filter(|(_, e)| *e > now)
            .map(|(v, _)| v)
    }

    pub fn delete(&self, kind: Kind, key: &str) -> bool {
        self.lock().map.remove(&(kind, key.to_string())).is_some()
    }

    /// Drops every expired record; how many there were. The memory they held goes back to
    /// the system, not only to the allocator's free lists.
    pub fn prune(&self, now: i64) -> u64 {
        let mut inner = self.lock();
        let before = inner.map.len();
        inner.map.retain(|_, (_, e)| *e > now);
        inner.map.shrink_to_fit();
        inner.prune_at = (2 * inner.map.len()).max(PRUNE_AT);
        let dropped = (before - inner.map.len()) as u64;
        drop(inner);
        if dropped > 0 {
            release_free_memory();
        }
        dropped
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Returns the allocator's free pages to the system. Records are many small allocations from
/// every worker thread's arena: after a pruning, glibc keeps their pages (the arenas are
/// fragmented, so nothing is at the top to trim), and resident memory would stay at its peak.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers and only gives free pages back (glibc 2.8+).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
