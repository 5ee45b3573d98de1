//! The server's durable key store: one file per key under `keys/`, named by its RFC 7638
//! thumbprint, written atomically (temporary file, fsync, rename, fsync of the directory)
//! before any 2xx is sent. Writers are serialised; readers take a prebuilt JWKS document, so a
//! GET never waits on the disk and always sees a whole document.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::atomic;
use crate::crypto::{Hash, Key, PublicKey, b64};

/// One published key as stored on disk.
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
    /// Set when rotated out: its public half stays published until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_until: Option<i64>,
    /// The next key: published (so verifiers' caches pick it up) but not signing yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub next: bool,
    pub jwk: Map<String, Value>,
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

pub struct Store {
    keys_dir: PathBuf,
    signing_dir: PathBuf,
    state: RwLock<State>,
    /// Held across a whole write (check, persist, publish): writes never interleave.
    writer: Mutex<()>,
}

#[derive(Default)]
struct State {
    uploaded: BTreeMap<String, StoredPublic>,
    signing: Vec<StoredSigning>,
    doc: Option<Arc<Doc>>,
}

fn io_dir(root: &Path, name: &str) -> Result<PathBuf> {
    let dir = root.join(name);
    atomic::private_dir(&dir)?;
    atomic::refuse_shared(&dir, "the data directory")?;
    // A kill -9 between create and rename leaves a temporary file: it was never acknowledged.
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".jwkit-"))
        {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(dir)
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

impl Store {
    /// Opens (creating) the data directory and loads every key. A file that does not load is
    /// reported on stderr and skipped.
    pub fn open(root: &Path) -> Result<Store> {
        atomic::private_dir(root)?;
        atomic::refuse_shared(root, "the data directory")?;
        let keys_dir = io_dir(root, "keys")?;
        let signing_dir = io_dir(root, "signing")?;
        let mut state = State::default();
        for path in json_files(&keys_dir)? {
            match load_public(&path) {
                Ok(k) => {
                    state.uploaded.insert(k.kid.clone(), k);
                }
                Err(e) => crate::output::warn(&format!(
                    "skipping corrupt key file {}: {e:#}",
                    path.display()
                )),
            }
        }
        for path in json_files(&signing_dir)? {
            match std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<StoredSigning>(&b)?))
            {
                Ok(k) => state.signing.push(k),
                Err(e) => crate::output::warn(&format!(
                    "skipping corrupt signing key {}: {e:#}",
                    path.display()
                )),
            }
        }
        state.signing.sort_by_key(|k| k.created);
        Ok(Store {
            keys_dir,
            signing_dir,
            state: RwLock::new(state),
            writer: Mutex::new(()),
        })
    }

    /// The current document, rebuilt when a key has expired since it was made.
    pub fn doc(&self, now: i64) -> Arc<Doc> {
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
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

    /// Adds public keys (all or none): a kid taken by another key fails the whole upload.
    pub fn add(
        &self,
        keys: Vec<(PublicKey, Option<i64>)>,
        now: i64,
    ) -> Result<Vec<(String, Added)>, AddError> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut plan = Vec::new();
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            for (pk, expires) in &keys {
                let thumbprint = pk.thumbprint(Hash::Sha256);
                let kid = pk.kid_or_thumbprint();
                // One file per key (named by its thumbprint): the same key under another kid
                // is a conflict that names the kid it is stored under.
                if let Some(other) = st
                    .uploaded
                    .values()
                    .find(|o| o.thumbprint == thumbprint && o.kid != kid)
                {
                    return Err(AddError::StoredAs(other.kid.clone()));
                }
                match st.uploaded.get(&kid) {
                    Some(old) if old.thumbprint == thumbprint => {
                        plan.push((kid, Added::Same, None))
                    }
                    Some(_) => return Err(AddError::KidTaken(kid)),
                    None if plan.iter().any(|(k, _, _)| *k == kid) => {
                        return Err(AddError::KidTaken(kid));
                    }
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
                        plan.push((kid, Added::New, Some(stored)));
                    }
                }
            }
        }
        // Durable first: every new key is on disk before the state (and the response) has it.
        let mut staged = Vec::new();
        for (_, _, stored) in &plan {
            if let Some(s) = stored {
                let bytes = serde_json::to_vec_pretty(s).map_err(|e| AddError::Io(e.into()))?;
                staged.push(atomic::stage(&self.key_path(s), &bytes, 0o600).map_err(AddError::Io)?);
            }
        }
        atomic::commit(staged, false).map_err(AddError::Io)?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (kid, added, stored) in plan {
            if let Some(s) = stored {
                st.uploaded.insert(kid.clone(), s);
            }
            out.push((kid, added));
        }
        st.doc = None;
        Ok(out)
    }

    /// Removes a key; false when no such kid.
    pub fn delete(&self, kid: &str) -> Result<bool> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let path = {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            match st.uploaded.get(kid) {
                Some(s) => self.key_path(s),
                None => return Ok(false),
            }
        };
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        atomic::sync_dir(&self.keys_dir)?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.uploaded.remove(kid);
        st.doc = None;
        Ok(true)
    }

    fn key_path(&self, s: &StoredPublic) -> PathBuf {
        self.keys_dir.join(format!("{}.json", s.thumbprint))
    }

    /// The active signing key (the newest not rotated out and not waiting), if any.
    pub fn active_signing(&self) -> Option<StoredSigning> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.signing
            .iter()
            .rev()
            .find(|k| k.published_until.is_none() && !k.next)
            .cloned()
    }

    /// The next signing key (published, not signing yet), if any.
    pub fn next_signing(&self) -> Option<StoredSigning> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.signing.iter().rev().find(|k| k.next).cloned()
    }

    /// Publishes `key` as the next signing key, when there is none yet. True when added.
    pub fn add_next(&self, key: &Key, now: i64) -> Result<bool> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .signing
            .iter()
            .any(|k| k.next)
        {
            return Ok(false);
        }
        let kid = key.kid_or_thumbprint();
        let new = StoredSigning {
            kid: kid.clone(),
            created: now,
            published_until: None,
            next: true,
            jwk: key.to_jwk(),
        };
        atomic::commit(
            vec![atomic::stage(
                &self.signing_dir.join(format!("{kid}.json")),
                &serde_json::to_vec_pretty(&new)?,
                0o600,
            )?],
            true,
        )?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.signing.push(new);
        st.doc = None;
        Ok(true)
    }

    /// Rotates: the next key (when there is one) starts signing, the active one is retired and
    /// stays published until `now + grace`, and `key` becomes the new next key, published from
    /// now on. Without a next key (a data directory from before pre-publication), `key`
    /// itself starts signing. Keys whose publication ended are deleted. Returns the key that
    /// signs now.
    pub fn rotate(&self, key: &Key, now: i64, grace: i64) -> Result<StoredSigning> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let kid = key.kid_or_thumbprint();
        let promote = {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            st.signing.iter().any(|k| k.next)
        };
        let new = StoredSigning {
            kid: kid.clone(),
            created: now,
            published_until: None,
            next: promote,
            jwk: key.to_jwk(),
        };
        let path = |kid: &str| self.signing_dir.join(format!("{kid}.json"));
        let mut staged = vec![atomic::stage(
            &path(&kid),
            &serde_json::to_vec_pretty(&new)?,
            0o600,
        )?];
        let mut changed = Vec::new();
        let mut gone = Vec::new();
        {
            let st = self.state.read().unwrap_or_else(|e| e.into_inner());
            for old in &st.signing {
                let mut o = old.clone();
                match (old.published_until, old.next) {
                    (None, true) => o.next = false,
                    (None, false) => o.published_until = Some(now.saturating_add(grace)),
                    (Some(t), _) if t <= now => {
                        gone.push(old.kid.clone());
                        continue;
                    }
                    (Some(_), _) => continue,
                }
                staged.push(atomic::stage(
                    &path(&o.kid),
                    &serde_json::to_vec_pretty(&o)?,
                    0o600,
                )?);
                changed.push(o);
            }
        }
        atomic::commit(staged, true)?;
        for kid in &gone {
            let _ = std::fs::remove_file(path(kid));
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.signing.retain(|k| !gone.contains(&k.kid));
        for c in changed {
            if let Some(k) = st.signing.iter_mut().find(|k| k.kid == c.kid) {
                *k = c;
            }
        }
        st.signing.push(new);
        st.doc = None;
        drop(st);
        drop(_w);
        self.active_signing()
            .ok_or_else(|| anyhow::anyhow!("no active signing key after rotating"))
    }
}

#[derive(Debug)]
pub enum AddError {
    KidTaken(String),
    /// The same key is stored already, under this kid.
    StoredAs(String),
    Io(anyhow::Error),
}

fn load_public(path: &Path) -> Result<StoredPublic> {
    let bytes = std::fs::read(path)?;
    let stored: StoredPublic = serde_json::from_slice(&bytes).context("not a key record")?;
    // The same checks as an upload: a file edited into something else does not get served.
    let key = crate::crypto::load_key(&serde_json::to_vec(&stored.jwk)?, None)?;
    if key.is_private() {
        anyhow::bail!("holds a private key");
    }
    Ok(stored)
}

fn build_doc(st: &State, now: i64) -> Doc {
    let mut keys: Vec<Value> = Vec::new();
    let mut rebuild_at: Option<i64> = None;
    let mut soonest = |t: i64| rebuild_at = Some(rebuild_at.map_or(t, |r| r.min(t)));
    for k in st.signing.iter() {
        match k.published_until {
            Some(t) if t <= now => continue,
            Some(t) => soonest(t),
            None => {}
        }
        // Only the public members of the server's own key are published.
        if let Ok(key) =
            crate::crypto::load_key(&serde_json::to_vec(&k.jwk).unwrap_or_default(), None)
            && let Ok(pk) = key.public()
        {
            keys.push(Value::Object(pk.to_jwk()));
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
