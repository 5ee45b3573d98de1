//! The store key (`--store-key-file` / `JWKIT_STORE_KEY`): the private parts of the server's
//! signing keys are kept in the database sealed with AES-256-GCM under a key derived from it
//! (HKDF-SHA256), each bound to its kid, so a database dump alone signs nothing.

use std::path::Path;

use anyhow::{Result, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{hkdf, rand};

/// The shortest store key accepted: 32 bytes, as `openssl rand -base64 32` makes (44).
const MIN_BYTES: usize = 32;
const SALT: &[u8] = b"jwkit store key v1";
/// What the check value seals: a replica with another store key fails at start on it, before
/// it could write a key the others cannot read.
const CHECK: &[u8] = b"jwkit store key check";

pub struct SealKey {
    key: LessSafeKey,
}

impl SealKey {
    /// The key from the file, else from `JWKIT_STORE_KEY`; None when neither is given. The
    /// text is used as it is, but for white space at its ends (a newline from `echo`).
    pub fn load(file: Option<&Path>) -> Result<Option<SealKey>> {
        let (text, from) = match file {
            Some(path) => {
                let bytes = crate::input::read_secret_file(path, "the store key file", 64 * 1024)?;
                (bytes, format!("--store-key-file {}", path.display()))
            }
            None => match std::env::var_os("JWKIT_STORE_KEY") {
                Some(v) if !v.is_empty() => {
                    use std::os::unix::ffi::OsStrExt;
                    (v.as_bytes().to_vec(), "JWKIT_STORE_KEY".to_string())
                }
                _ => return Ok(None),
            },
        };
        let secret = text.trim_ascii();
        if secret.len() < MIN_BYTES {
            bail!(
                "the store key from {from} is {} bytes; at least {MIN_BYTES} are needed (make one with: openssl rand -base64 32)",
                secret.len()
            );
        }
        Ok(Some(SealKey::derive(secret)?))
    }

    pub fn derive(secret: &[u8]) -> Result<SealKey> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let okm = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .map_err(|_| anyhow::anyhow!("deriving the store key"))?;
        Ok(SealKey {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    /// nonce || ciphertext || tag, bound to `context` (the kid).
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no random bytes for a nonce"))?;
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("sealing a signing key"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// The plain text, or None when this key did not seal it (or it was changed).
    pub fn open(&self, sealed: &[u8], context: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = zeroize::Zeroizing::new(body.to_vec());
        let n = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .ok()?
            .len();
        buf.truncate(n);
        Some(buf)
    }

    pub fn check_value(&self) -> Result<Vec<u8>> {
        self.seal(CHECK, "check")
    }

    pub fn verifies(&self, check: &[u8]) -> bool {
        self.open(check, "check")
            .is_some_and(|p| p.as_slice() == CHECK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_kid() {
        let k = SealKey::derive(b"0123456789abcdef0123456789abcdef").expect("test");
        let sealed = k.seal(b"{\"d\":\"x\"}", "kid1").expect("test");
        assert_eq!(
            k.open(&sealed, "kid1").expect("test").as_slice(),
            b"{\"d\":\"x\"}"
        );
        assert!(k.open(&sealed, "kid2").is_none());
        let other = SealKey::derive(b"0123456789abcdef0123456789abcdeX").expect("test");
        assert!(other.open(&sealed, "kid1").is_none());
        assert!(k.verifies(&k.check_value().expect("test")));
        assert!(!other.verifies(&k.check_value().expect("test")));
        let mut bad = sealed.clone();
        *bad.last_mut().expect("test") ^= 1;
        assert!(k.open(&bad, "kid1").is_none());
    }
}
