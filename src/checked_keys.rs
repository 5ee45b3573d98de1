//! The on-disk memo of RSA moduli that passed the primality check (`crypto::PrimalityMemo`):
//! one line of hex SHA-256 per modulus in `dirs::cache_dir()/jwkit/rsa-composite`, mode 0600,
//! beside the JWKS cache and trusted as it is. Scripts verify with the same key thousands of
//! times; the check (a full-size modular exponentiation) then runs once per key and user.
//! Read only when an RSA key is checked; appended to; started afresh past `MAX_BYTES`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::crypto::PrimalityMemo;

/// About 1,000 moduli; past this the file starts again empty.
const MAX_BYTES: u64 = 64 * 1024;

pub struct DiskMemo {
    known: OnceLock<Vec<u8>>,
}

pub static MEMO: DiskMemo = DiskMemo {
    known: OnceLock::new(),
};

fn path() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("jwkit").join("rsa-composite"))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl PrimalityMemo for DiskMemo {
    fn known_composite(&self, digest: &[u8]) -> bool {
        let known = self.known.get_or_init(|| {
            path()
                .and_then(|p| std::fs::read(p).ok())
                .unwrap_or_default()
        });
        let line = hex(digest);
        known.split(|b| *b == b'\n').any(|l| l == line.as_bytes())
    }

    fn remember_composite(&self, digest: &[u8]) {
        let Some(path) = path() else { return };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                crate::atomic::private_dir(dir).map_err(std::io::Error::other)?;
            }
            let too_big = std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_BYTES);
            let mut f = OpenOptions::new()
                .create(true)
                .append(!too_big)
                .write(true)
                .truncate(too_big)
                .mode(0o600)
                .open(&path)?;
            // One write of one line: appends from concurrent runs do not interleave.
            f.write_all(format!("{}\n", hex(digest)).as_bytes())
        };
        // A memo that cannot be written only costs time later.
        let _ = write();
    }
}
