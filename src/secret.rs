//! HMAC secrets named on the command line (`--secret-file`, `--secret-env`): raw bytes, never
//! changed silently. A secret shorter than RFC 7518 §3.2 asks for is refused unless the caller
//! allows it (`--insecure`: an app's existing secret must be usable); the two common slips, a
//! trailing newline from `echo` and a secret still base64-encoded, get a warning.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;

use crate::crypto::{Key, KeyMeta};
use crate::{input, output};

/// The shortest secret HS256 accepts (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;

/// How a secret is read.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecretOptions {
    /// Accept a secret shorter than the hash size, with a warning.
    pub insecure: bool,
    /// The file or variable holds the secret base64-encoded (standard or URL-safe alphabet,
    /// padded or not); the decoded bytes are the secret.
    pub base64: bool,
}

/// The HMAC key from `--secret-file FILE` or `--secret-env VAR`, or None when neither is given.
pub fn load(file: Option<&str>, env: Option<&str>, opts: SecretOptions) -> Result<Option<Key>> {
    let (bytes, from) = if let Some(spec) = file {
        let bytes = input::read(spec, "secret file", input::MAX_KEY_BYTES)?;
        let from = if spec == "-" {
            "stdin".to_string()
        } else {
            spec.to_string()
        };
        (bytes, from)
    } else if let Some(var) = env {
        use std::os::unix::ffi::OsStrExt;
        let value = std::env::var_os(var).filter(|v| !v.is_empty());
        let Some(value) = value else {
            bail!("environment variable {var} is not set or empty");
        };
        (value.as_bytes().to_vec(), format!("${var}"))
    } else {
        return Ok(None);
    };
    let bytes = if opts.base64 {
        decode_base64(&bytes)
            .with_context(|| format!("--secret-base64: the secret from {from} is not base64"))?
    } else {
        warn_on_slips(&bytes, &from);
        bytes
    };
    if bytes.is_empty() {
        bail!("the HMAC secret from {from} is empty");
    }
    if bytes.len() < MIN_SECRET_BYTES {
        if !opts.insecure {
            bail!(
                "the HMAC secret from {from} is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} (RFC 7518 §3.2). If it is the secret an app already uses, --insecure uses it anyway, with a warning",
                bytes.len()
            );
        }
        output::warn(&format!(
            "--insecure: the HMAC secret from {from} is {} bytes, shorter than the {MIN_SECRET_BYTES} RFC 7518 §3.2 asks for HS256; a short secret can be guessed, and whoever has it can mint tokens",
            bytes.len()
        ));
        return Ok(Some(Key::hmac_short(bytes, KeyMeta::default())?));
    }
    Key::hmac(bytes, KeyMeta::default())
        .map(Some)
        .with_context(|| format!("loading the HMAC secret from {from}"))
}

/// Decodes a base64 secret: either alphabet, padded or not, surrounding white space ignored.
fn decode_base64(bytes: &[u8]) -> Result<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow!("it is not text"))?;
    let text = text.trim().trim_end_matches('=');
    if text.contains(['+', '/']) {
        STANDARD_NO_PAD.decode(text)
    } else {
        URL_SAFE_NO_PAD.decode(text)
    }
    .map_err(|e| anyhow!("{e}"))
}

/// Warns (never printing the secret) when it ends with a line break, or looks like base64 of
/// printable text, the two ways a copied secret silently differs from the app's.
fn warn_on_slips(bytes: &[u8], from: &str) {
    if bytes.ends_with(b"\n") {
        output::warn(&format!(
            "the secret from {from} ends with a newline, which is part of the secret as used; if the app's secret has none, write the file with printf '%s' (or echo -n)"
        ));
    }
    if let Some(len) = base64_of_text(bytes) {
        output::warn(&format!(
            "the secret from {from} looks base64-encoded (it decodes to {len} bytes of printable text); it is used as is: if the app uses the decoded value (as Kubernetes secrets hold it), add --secret-base64"
        ));
    }
}

/// The decoded length when `bytes` (less a final line break) is base64, of either alphabet, of
/// printable ASCII text at least 4 bytes long.
fn base64_of_text(bytes: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(bytes).ok()?.trim_end();
    if text.len() < 8 || !text.len().is_multiple_of(4) && text.contains('=') {
        return None;
    }
    let decoded = decode_base64(text.as_bytes()).ok()?;
    let printable = decoded.len() >= 4
        && decoded
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\n');
    printable.then_some(decoded.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_text_is_recognised_and_random_secrets_are_not() {
        assert_eq!(base64_of_text(b"c3VwZXJzZWNyZXQ=\n"), Some(11));
        assert_eq!(base64_of_text(b"c3VwZXJzZWNyZXQ"), Some(11));
        assert_eq!(base64_of_text(b"supersecret"), None);
        // 32 random bytes, base64: decodes to bytes that are not text.
        assert_eq!(
            base64_of_text(b"q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="),
            None
        );
        assert_eq!(
            decode_base64(b"c3VwZXJzZWNyZXQ=\n").ok(),
            Some(b"supersecret".to_vec())
        );
    }
}
