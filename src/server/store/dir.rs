//! The directory store (the default): one file per key under `keys/`, named by its RFC 7638
//! thumbprint, and one per signing key under `signing/`, written atomically (temporary file,
//! fsync, rename, fsync of the directory) before any 2xx is sent. Writers are serialised;
//! readers take the prebuilt document of the [`View`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use async_trait::async_trait;

use super::records::Kind;

use super::{
    AddError, Added, Health, Rotation, State, Store, StoreError, StoredPublic, StoredSigning, View,
};
use crate::atomic;
use crate::crypto::{Key, PublicKey};

pub struct DirStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    keys_dir: PathBuf,
    signing_dir: PathBuf,
    view: View,
    /// Held across a whole write (check, persist, publish): writes never interleave.
    writer: Mutex<()>,
    /// The identity provider's records: in memory, bounded (a restart forgets them).
    records: super::records::Memory,
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

/// Runs a blocking store operation off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("the store task failed: {e}")))?
}

impl DirStore {
    /// Opens (creating) the data directory and loads every key. A file that does not load is
    /// reported on stderr and skipped.
    pub fn open(root: &Path) -> Result<DirStore> {
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
        let view = View::new(State::default());
        view.update(|st| *st = state);
        // The rotation record of a directory: the active key's start (or creation).
        let at = view
            .active_signing()
            .map(|k| k.activated.unwrap_or(k.created))
            .unwrap_or(0);
        view.update(|st| st.rotation = Some(Rotation { count: 0, at }));
        Ok(DirStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                keys_dir,
                signing_dir,
                view,
                writer: Mutex::new(()),
                records: super::records::Memory::default(),
            }),
        })
    }
}

impl Inner {
    fn add(
        &self,
        keys: Vec<(PublicKey, Option<i64>)>,
        now: i64,
    ) -> Result<Vec<(String, Added)>, AddError> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let plan = self.view.plan_add(&keys, now)?;
        // Durable first: every new key is on disk before the state (and the response) has it.
        let io = |e: anyhow::Error| AddError::Failed(StoreError::Other(e));
        let mut staged = Vec::new();
        for (_, stored) in &plan {
            if let Some(s) = stored {
                let bytes = serde_json::to_vec_pretty(s).map_err(|e| io(e.into()))?;
                staged.push(atomic::stage(&self.key_path(s), &bytes, 0o600).map_err(io)?);
            }
        }
        atomic::commit(staged, false).map_err(io)?;
        let out = super::plan_outcome(&plan);
        self.view.update(|st| {
            for (kid, stored) in plan {
                if let Some(s) = stored {
                    st.uploaded.insert(kid, s);
                }
            }
        });
        Ok(out)
    }

    fn delete(&self, kid: &str) -> Result<bool> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let path = match self.view.read().uploaded.get(kid) {
            Some(s) => self.key_path(s),
            None => return Ok(false),
        };
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        atomic::sync_dir(&self.keys_dir)?;
        self.view.update(|st| st.uploaded.remove(kid));
        Ok(true)
    }

    fn key_path(&self, s: &StoredPublic) -> PathBuf {
        self.keys_dir.join(format!("{}.json", s.thumbprint))
    }

    fn signing_path(&self, kid: &str) -> PathBuf {
        self.signing_dir.join(format!("{kid}.json"))
    }

    fn add_next(&self, key: &Key, now: i64) -> Result<bool> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.view.next_signing().is_some() {
            return Ok(false);
        }
        let new = StoredSigning::next(key, now);
        atomic::commit(
            vec![atomic::stage(
                &self.signing_path(&new.kid),
                &serde_json::to_vec_pretty(&new)?,
                0o600,
            )?],
            true,
        )?;
        self.view.update(|st| st.signing.push(new));
        Ok(true)
    }

    fn rotate(
        &self,
        key: &Key,
        now: i64,
        grace: i64,
        due: i64,
        expect: i64,
    ) -> Result<Option<StoredSigning>> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let count = self.view.read().rotation.map_or(0, |r| r.count);
        if count != expect {
            return Ok(None);
        }
        let (changed, gone) = super::plan_rotation(&self.view.read().signing, key, now, grace);
        let mut staged = Vec::new();
        for c in &changed {
            staged.push(atomic::stage(
                &self.signing_path(&c.kid),
                &serde_json::to_vec_pretty(c)?,
                0o600,
            )?);
        }
        atomic::commit(staged, true)?;
        for kid in &gone {
            let _ = std::fs::remove_file(self.signing_path(kid));
        }
        self.view.update(|st| {
            st.signing.retain(|k| !gone.contains(&k.kid));
            for c in changed {
                match st.signing.iter_mut().find(|k| k.kid == c.kid) {
                    Some(k) => *k = c,
                    None => st.signing.push(c),
                }
            }
            st.rotation = Some(Rotation {
                count: count + 1,
                at: due,
            });
        });
        self.view
            .active_signing()
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("no active signing key after rotating"))
    }
}

#[async_trait]
impl Store for DirStore {
    fn view(&self) -> &View {
        &self.inner.view
    }

    fn health(&self) -> Health {
        Health {
            kind: "directory",
            reachable: true,
        }
    }

    fn describe(&self) -> String {
        format!("data in {}", self.inner.root.display())
    }

    async fn add(
        &self,
        keys: Vec<(PublicKey, Option<i64>)>,
        now: i64,
    ) -> Result<Vec<(String, Added)>, AddError> {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || inner.add(keys, now)).await {
            Ok(r) => r,
            Err(e) => Err(AddError::Failed(StoreError::Other(anyhow::anyhow!(
                "the store task failed: {e}"
            )))),
        }
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        let inner = Arc::clone(&self.inner);
        let kid = kid.to_string();
        blocking(move || Ok(inner.delete(&kid)?)).await
    }

    async fn add_next(&self, key: Key, now: i64) -> Result<bool, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || Ok(inner.add_next(&key, now)?)).await
    }

    async fn rotate(
        &self,
        key: Key,
        now: i64,
        grace: i64,
        due: i64,
        expect: i64,
    ) -> Result<Option<StoredSigning>, StoreError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || Ok(inner.rotate(&key, now, grace, due, expect)?)).await
    }

    async fn record_put(
        &self,
        kind: Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.inner.records.put(kind, key, value, expires, now)
    }

    async fn record_add(
        &self,
        kind: Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.records.add(kind, key, value, expires, now)
    }

    async fn record_get(
        &self,
        kind: Kind,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.inner.records.get(kind, key, now))
    }

    async fn record_take(
        &self,
        kind: Kind,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.inner.records.take(kind, key, now))
    }

    async fn record_delete(&self, kind: Kind, key: &str) -> Result<bool, StoreError> {
        Ok(self.inner.records.delete(kind, key))
    }

    async fn record_prune(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self.inner.records.prune(now))
    }
}

fn load_public(path: &Path) -> Result<StoredPublic> {
    let bytes = std::fs::read(path)?;
    let stored: StoredPublic = serde_json::from_slice(&bytes).context("not a key record")?;
    super::check_public(&stored.jwk)?;
    Ok(stored)
}
