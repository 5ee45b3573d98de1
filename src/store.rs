//! The local key store (DESIGN.md §5): `$JWKIT_HOME/keys/<thumbprint>.json`, one private JWK
//! plus metadata per file, files 0600 in 0700 directories, written atomically. File names
//! come from the RFC 7638 thumbprint, never from user text.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::atomic;
use crate::crypto::{self, Hash, Key};

/// What one store file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub kid: String,
    pub alg: String,
    /// RFC 3339, UTC.
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The private JWK (with kid and alg).
    pub jwk: Map<String, Value>,
}

/// A stored key, loaded and checked.
pub struct StoredKey {
    pub record: Record,
    pub key: Key,
    pub path: PathBuf,
}

pub struct KeyStore {
    root: PathBuf,
}

impl StoredKey {
    /// The key, named by the kid it is stored under.
    pub fn into_key(self) -> Key {
        let mut key = self.key;
        key.meta.kid = Some(self.record.kid);
        key
    }
}

impl KeyStore {
    /// `$JWKIT_HOME`, else the user's data dir + `/jwkit`.
    pub fn open() -> Result<KeyStore> {
        let root = match std::env::var_os("JWKIT_HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            _ => dirs::data_dir()
                .ok_or_else(|| anyhow!("no data directory for the key store; set JWKIT_HOME"))?
                .join("jwkit"),
        };
        Ok(KeyStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// Saves a private key under its thumbprint; refuses to replace a key, or to reuse a kid
    /// another stored key has, unless `force`.
    pub fn save(&self, key: &Key, alg: &str, force: bool) -> Result<PathBuf> {
        if !key.is_private() {
            bail!("only private keys and HMAC secrets go in the key store");
        }
        let kid = key.kid_or_thumbprint();
        let thumbprint = key.thumbprint(Hash::Sha256);
        let dir = self.keys_dir();
        atomic::private_dir(&dir)?;
        atomic::refuse_shared(&self.root, "the key store")?;
        atomic::refuse_shared(&dir, "the key store")?;
        let path = dir.join(format!("{thumbprint}.json"));
        if !force && path.exists() {
            bail!("this key is already in the store ({})", path.display());
        }
        let clashes: Vec<PathBuf> = self
            .entries()?
            .into_iter()
            .filter_map(Result::ok)
            .filter(|s| s.record.kid == kid && s.path != path)
            .map(|s| s.path)
            .collect();
        if !clashes.is_empty() && !force {
            bail!(
                "kid \"{kid}\" already names another stored key (use another --kid, or --force to replace it)"
            );
        }
        let mut jwk = key.to_jwk();
        jwk.insert("kid".into(), kid.clone().into());
        let record = Record {
            kid,
            alg: alg.to_string(),
            created: jiff::Timestamp::now()
                .round(jiff::Unit::Second)?
                .to_string(),
            expires: None,
            jwk,
        };
        let mut text = serde_json::to_vec_pretty(&record)?;
        text.push(b'\n');
        atomic::commit(vec![atomic::stage(&path, &text, 0o600)?], force)?;
        for old in clashes {
            fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(path)
    }

    /// Every `*.json` file in the store, loaded; a file that does not load is returned as its
    /// path and error so that listings can report it and go on.
    pub fn entries(&self) -> Result<Vec<Result<StoredKey, (PathBuf, anyhow::Error)>>> {
        let dir = self.keys_dir();
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("reading {}", dir.display())));
            }
        };
        let mut paths: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths
            .into_iter()
            .map(|p| load(&p).map_err(|e| (p, e)))
            .collect())
    }

    /// Finds a stored key by kid or thumbprint.
    pub fn find(&self, kid: &str) -> Result<StoredKey> {
        let mut found = Vec::new();
        let mut kids = Vec::new();
        for entry in self.entries()? {
            match entry {
                Ok(s) => {
                    let stem = s.path.file_stem().and_then(|x| x.to_str()).unwrap_or("");
                    if s.record.kid == kid || stem == kid {
                        found.push(s);
                    } else {
                        kids.push(s.record.kid);
                    }
                }
                Err((p, e)) => crate::output::warn(&format!("skipping {}: {e:#}", p.display())),
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 if kids.is_empty() => bail!(
                "no key with kid \"{kid}\" in the key store ({} is empty)",
                self.keys_dir().display()
            ),
            0 => bail!(
                "no key with kid \"{kid}\" in the key store (kids: {})",
                kids.join(", ")
            ),
            n => bail!("{n} stored keys answer to \"{kid}\"; use the thumbprint instead"),
        }
    }
}

impl StoredKey {
    /// Refuses a signing key for a JWE use: the store keeps a key for encryption when it is an
    /// encryption key or its recorded alg is a JWE one. `verb` says what it never does.
    fn refuse_signing(&self, verb: &str) -> Result<()> {
        if self.key.is_encryption_key() || crypto::jwe::key_kind(&self.record.alg).is_some() {
            return Ok(());
        }
        bail!(
            "the stored key \"{}\" is a signing key ({}): it never {verb}; make one with generate-key --use enc --save",
            crate::output::escape(&self.record.kid),
            crate::output::escape(&self.record.alg)
        )
    }

    /// The stored key as a JWE decryption key (`--decrypt-key KID`). A signing key never
    /// decrypts.
    pub fn decrypt_key(&self) -> Result<crypto::jwe::DecryptKey> {
        self.refuse_signing("decrypts")?;
        let mut key = crypto::jwe::from_jwk(&self.record.jwk)
            .map_err(|e| anyhow!("{e}"))?
            .ok_or_else(|| anyhow!("the stored key holds no private key"))?;
        key.kid = Some(self.record.kid.clone());
        Ok(key)
    }

    /// The stored key as a JWE encryption key (`--encrypt-key KID`): its public half, or
    /// the symmetric key; the alg the store records is its default.
    pub fn encrypt_key(&self) -> Result<crypto::jwe::EncryptKey> {
        self.refuse_signing("encrypts")?;
        let mut key =
            crypto::jwe::encrypt_key_from_jwk(&self.record.jwk).map_err(|e| anyhow!("{e}"))?;
        key.kid = Some(self.record.kid.clone());
        if key.alg.is_none() {
            key.alg = Some(self.record.alg.clone());
        }
        Ok(key)
    }
}

fn load(path: &Path) -> Result<StoredKey> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let record: Record = serde_json::from_slice(&bytes).context("not a jwkit key record")?;
    let key = crypto::load_key(&serde_json::to_vec(&record.jwk)?, None)?;
    Ok(StoredKey {
        record,
        key,
        path: path.to_path_buf(),
    })
}
