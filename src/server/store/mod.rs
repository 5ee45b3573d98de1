//! Where the server keeps its keys: one [`Store`] interface, two implementations.
//!
//! - [`dir::DirStore`] (the default): one file per key in a private directory, for a single
//!   server.
//! - [`postgres::PgStore`] (`--store postgres://...`): one PostgreSQL database shared by
//!   replicas. Every change bumps one version counter under a row lock and is announced with
//!   NOTIFY, and every replica applies the changes since the version it has.
//!
//! Both keep the key set in memory as a [`View`] and serve GETs from a prebuilt document, so a
//! read never waits on the disk or the database, and keeps answering while the database is
//! down. The document is a function of the keys alone: replicas holding the same keys serve
//! the same bytes and the same `ETag`.

pub mod dir;
pub mod postgres;
pub mod records;
pub mod seal;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::crypto::{Hash, Key, PublicKey, b64};

/// One published key as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredPublic {
    pub kid: String,
    pub thumbprint: String,
    /// The public JWK, with kid.
    pub jwk: Map<String, Value>,
    pub added: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// The server's own signing key (with --issue-tokens), private, never served as is.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredSigning {
    pub kid: String,
    pub created: i64,
    /// When it started signing (absent in data directories from before this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<i64>,
    /// Set when rotated out: its public half stays published until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_until: Option<i64>,
    /// The next key: published (so verifiers' caches pick it up) but not signing yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub next: bool,
    /// The private JWK; only the public one where the private part cannot be read (a
    /// replica without the store key, which does not sign).
    pub jwk: Map<String, Value>,
}

impl StoredSigning {
    /// `key` published at `now` as the next signing key (not signing yet).
    pub fn next(key: &Key, now: i64) -> StoredSigning {
        StoredSigning {
            kid: key.kid_or_thumbprint(),
            created: now,
            activated: None,
            published_until: None,
            next: true,
            jwk: key.to_jwk(),
        }
    }
}

/// The JWKS as served: body, ETag, and the first time it must be rebuilt (a key expiring).
pub struct Doc {
    pub body: Vec<u8>,
    pub etag: String,
    pub rebuild_at: Option<i64>,
}

/// What an upload of one key came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    New,
    Same,
}

#[derive(Debug)]
pub enum AddError {
    KidTaken(String),
    /// The same key is stored already, under this kid.
    StoredAs(String),
    Failed(StoreError),
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backing database cannot be reached: try again later (503).
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The rotation record: how many rotations there were and when the last one was due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub count: i64,
    pub at: i64,
}

/// What `/health` and `/ready` say of the store.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// "directory" or "postgres".
    pub kind: &'static str,
    /// False while the database cannot be reached (reads go on from memory).
    pub reachable: bool,
}

/// The server's key store. Reads come from memory; writes are durable before they return.
#[async_trait]
pub trait Store: Send + Sync {
    /// The keys in memory, where every read is served from.
    fn view(&self) -> &View;
    /// The current document, rebuilt when a key has expired since it was made.
    fn doc(&self, now: i64) -> Arc<Doc> {
        self.view().doc(now)
    }
    /// The active signing key (the newest not rotated out and not waiting), if any.
    fn active_signing(&self) -> Option<StoredSigning> {
        self.view().active_signing()
    }
    /// The next signing key (published, not signing yet), if any.
    fn next_signing(&self) -> Option<StoredSigning> {
        self.view().next_signing()
    }
    fn rotation(&self) -> Rotation {
        self.view()
            .read()
            .rotation
            .unwrap_or(Rotation { count: 0, at: 0 })
    }
    fn health(&self) -> Health;
    /// Where the keys are, for the start-up line (never a password).
    fn describe(&self) -> String;
    /// Adds public keys (all or none): a kid taken by another key fails the whole upload.
    async fn add(
        &self,
        keys: Vec<(PublicKey, Option<i64>)>,
        now: i64,
    ) -> Result<Vec<(String, Added)>, AddError>;
    /// Removes a key; false when no such kid.
    async fn delete(&self, kid: &str) -> Result<bool, StoreError>;
    /// Publishes `key` as the next signing key, when there is none yet. True when added.
    async fn add_next(&self, key: Key, now: i64) -> Result<bool, StoreError>;
    /// Rotates, when the rotation count is still `expect` (compare-and-swap): the next key
    /// (when there is one) starts signing, the active one is retired and stays published until
    /// `now + grace`, and `key` becomes the new next key. Without a next key, `key` itself
    /// starts signing. Keys whose publication ended are removed. `due` is recorded as the
    /// rotation's time. Returns the key that signs now, or None when another writer rotated
    /// first (the view then has its result).
    async fn rotate(
        &self,
        key: Key,
        now: i64,
        grace: i64,
        due: i64,
        expect: i64,
    ) -> Result<Option<StoredSigning>, StoreError>;

    // The identity provider's records (`records`): shared by every replica on the store.

    /// Writes a record (replacing one with the same kind and key).
    async fn record_put(
        &self,
        kind: records::Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Writes a record only when there is no live one with its kind and key: true when
    /// written (a `private_key_jwt` jti is accepted once across replicas).
    async fn record_add(
        &self,
        kind: records::Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// A live record's value.
    async fn record_get(
        &self,
        kind: records::Kind,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Removes a record and returns its value when it was live, in one step: of two
    /// replicas taking the same record at once, one gets it.
    async fn record_take(
        &self,
        kind: records::Kind,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError>;
    /// Removes a record; true when there was one.
    async fn record_delete(&self, kind: records::Kind, key: &str) -> Result<bool, StoreError>;
    /// Drops expired records (on a database, one replica at a time); how many.
    async fn record_prune(&self, now: i64) -> Result<u64, StoreError>;
}

/// The keys as the server holds them in memory, with the document built from them.
#[derive(Default)]
pub struct View {
    state: RwLock<State>,
}

#[derive(Default, Clone)]
pub struct State {
    pub uploaded: BTreeMap<String, StoredPublic>,
    pub signing: Vec<StoredSigning>,
    pub rotation: Option<Rotation>,
    doc: Option<Arc<Doc>>,
}

impl View {
    pub fn new(state: State) -> View {
        View {
            state: RwLock::new(state),
        }
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state; the document is rebuilt on the next read.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut st);
        st.signing
            .sort_by(|a, b| (a.created, &a.kid).cmp(&(b.created, &b.kid)));
        st.doc = None;
        out
    }

    pub fn doc(&self, now: i64) -> Arc<Doc> {
        {
            let st = self.read();
            if let Some(doc) = &st.doc
                && doc.rebuild_at.is_none_or(|t| now < t)
            {
                return Arc::clone(doc);
            }
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let doc = Arc::new(build_doc(&st, now));
        st.doc = Some(Arc::clone(&doc));
        doc
    }

    pub fn active_signing(&self) -> Option<StoredSigning> {
        active_in(&self.read()).cloned()
    }

    /// The active signing key's kid alone: a per-request check whether it changed, without
    /// copying its JWK.
    pub fn active_kid(&self) -> Option<String> {
        active_in(&self.read()).map(|k| k.kid.clone())
    }

    pub fn next_signing(&self) -> Option<StoredSigning> {
        self.read().signing.iter().rev().find(|k| k.next).cloned()
    }

    /// What adding `keys` would do: per key its kid and whether it is new (with the record
    /// to store), or the conflict that refuses the whole upload.
    pub fn plan_add(
        &self,
        keys: &[(PublicKey, Option<i64>)],
        now: i64,
    ) -> Result<Vec<(String, Option<StoredPublic>)>, AddError> {
        plan_add(&self.read().uploaded, keys, now)
    }
}

/// The active signing key: the newest not rotated out and not waiting.
fn active_in(st: &State) -> Option<&StoredSigning> {
    st.signing
        .iter()
        .rev()
        .find(|k| k.published_until.is_none() && !k.next)
}

/// The plan of an upload against the keys `uploaded`: per key its kid and, when new, the
/// record to store.
pub fn plan_add(
    uploaded: &BTreeMap<String, StoredPublic>,
    keys: &[(PublicKey, Option<i64>)],
    now: i64,
) -> Result<Vec<(String, Option<StoredPublic>)>, AddError> {
    let mut plan: Vec<(String, Option<StoredPublic>)> = Vec::new();
    for (pk, expires) in keys {
        let thumbprint = pk.thumbprint(Hash::Sha256);
        let kid = pk.kid_or_thumbprint();
        // One record per key: the same key under another kid is a conflict that names the
        // kid it is stored under.
        if let Some(other) = uploaded
            .values()
            .find(|o| o.thumbprint == thumbprint && o.kid != kid)
        {
            return Err(AddError::StoredAs(other.kid.clone()));
        }
        match uploaded.get(&kid) {
            Some(old) if old.thumbprint == thumbprint => plan.push((kid, None)),
            Some(_) => return Err(AddError::KidTaken(kid)),
            None if plan.iter().any(|(k, _)| *k == kid) => return Err(AddError::KidTaken(kid)),
            None => {
                let mut pk = pk.clone();
                pk.meta.kid = Some(kid.clone());
                let stored = StoredPublic {
                    kid: kid.clone(),
                    thumbprint,
                    jwk: pk.to_jwk(),
                    added: now,
                    expires: *expires,
                };
                plan.push((kid, Some(stored)));
            }
        }
    }
    Ok(plan)
}

/// The outcome of a plan, as `add` returns it.
pub fn plan_outcome(plan: &[(String, Option<StoredPublic>)]) -> Vec<(String, Added)> {
    plan.iter()
        .map(|(kid, s)| {
            let added = if s.is_some() { Added::New } else { Added::Same };
            (kid.clone(), added)
        })
        .collect()
}

/// The signing keys after a rotation at `now`: the next key (if any) starts signing, the
/// active one is retired until `now + grace`, retired keys past their time are dropped, and
/// `new` joins as the next key (or as the active one when there was no next key). Returns the
/// records that changed or were added, and the kids dropped.
pub fn plan_rotation(
    signing: &[StoredSigning],
    new: &Key,
    now: i64,
    grace: i64,
) -> (Vec<StoredSigning>, Vec<String>) {
    let promote = signing
        .iter()
        .any(|k| k.next && k.published_until.is_none());
    let mut changed = Vec::new();
    let mut gone = Vec::new();
    for old in signing {
        let mut o = old.clone();
        match (old.published_until, old.next) {
            (None, true) => {
                o.next = false;
                o.activated = Some(now);
            }
            (None, false) => o.published_until = Some(now.saturating_add(grace)),
            (Some(t), _) if t <= now => {
                gone.push(old.kid.clone());
                continue;
            }
            (Some(_), _) => continue,
        }
        changed.push(o);
    }
    let mut added = StoredSigning::next(new, now);
    if !promote {
        // No next key to promote: the new key signs from now.
        added.next = false;
        added.activated = Some(now);
    }
    changed.push(added);
    (changed, gone)
}

/// Checks a stored public key the way an upload is checked: a record edited into something
/// else is not served.
pub fn check_public(jwk: &Map<String, Value>) -> anyhow::Result<()> {
    let key = crate::crypto::load_key(&serde_json::to_vec(jwk)?, None)?;
    if key.is_private() {
        anyhow::bail!("holds a private key");
    }
    Ok(())
}

/// The public JWK of a signing key's (private or public) JWK.
pub fn public_jwk(jwk: &Map<String, Value>) -> Option<Map<String, Value>> {
    let key = crate::crypto::load_key(&serde_json::to_vec(jwk).ok()?, None).ok()?;
    Some(key.public().ok()?.to_jwk())
}

fn build_doc(st: &State, now: i64) -> Doc {
    let mut keys: Vec<Value> = Vec::new();
    let mut rebuild_at: Option<i64> = None;
    let mut soonest = |t: i64| rebuild_at = Some(rebuild_at.map_or(t, |r| r.min(t)));
    // Signing keys in (created, kid) order, uploaded keys in kid order: the same keys make
    // the same bytes on every replica.
    for k in st.signing.iter() {
        match k.published_until {
            Some(t) if t <= now => continue,
            Some(t) => soonest(t),
            None => {}
        }
        // Only the public members of the server's own key are published.
        if let Some(pk) = public_jwk(&k.jwk) {
            keys.push(Value::Object(pk));
        }
    }
    for k in st.uploaded.values() {
        match k.expires {
            Some(t) if t <= now => continue,
            Some(t) => soonest(t),
            None => {}
        }
        keys.push(Value::Object(k.jwk.clone()));
    }
    Doc::of(&keys, rebuild_at)
}

impl Doc {
    /// The key set document of `keys`, with its ETag (a hash of the body).
    pub fn of(keys: &[Value], rebuild_at: Option<i64>) -> Doc {
        let body = serde_json::to_vec(&json!({ "keys": keys })).unwrap_or_default();
        let etag = format!(
            "\"{}\"",
            &b64::encode(digest::digest(&digest::SHA256, &body))[..22]
        );
        Doc {
            body,
            etag,
            rebuild_at,
        }
    }
}
