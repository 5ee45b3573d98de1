//! Inputs named on the command line: a file path or `-` for stdin (read whole, at most once),
//! with a size cap so a wrong file cannot exhaust memory.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use crate::crypto::jws::{MAX_TOKEN_BYTES, MalformedToken};

/// Key files beyond this are not keys.
pub const MAX_KEY_BYTES: u64 = 1 << 20;
/// Claims documents beyond this would make tokens far over the token limit anyway.
pub const MAX_CLAIMS_BYTES: u64 = 1 << 20;

static STDIN_USED: AtomicBool = AtomicBool::new(false);

/// The bytes of an input, or the news that it is over the limit (not read further).
enum Capped {
    Whole(Vec<u8>),
    TooLarge,
}

fn read_capped(spec: &str, what: &str, limit: u64) -> Result<Capped> {
    let mut buf = Vec::new();
    if spec == "-" {
        if STDIN_USED.swap(true, Ordering::SeqCst) {
            bail!("stdin (-) can be used for only one input");
        }
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {what} from stdin"))?;
    } else {
        std::fs::File::open(spec)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
            .with_context(|| format!("reading {what} {spec}"))?;
    }
    Ok(if buf.len() as u64 > limit {
        Capped::TooLarge
    } else {
        Capped::Whole(buf)
    })
}

/// Reads a file an operator names for a long-running process (a certificate, a key, a token,
/// a configuration): it must be a regular file (links are followed, as certificate
/// renewals make them), of at most `limit` bytes, and it is opened without blocking, so a
/// FIFO, a device such as /dev/zero or a huge file is refused at once instead of hanging
/// or exhausting memory. `what` names it in errors ("--tls-cert").
pub fn read_regular_file(path: &std::path::Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("{what} {shown}: cannot open it"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("{what} {shown}: cannot read it"))?;
    if !meta.is_file() {
        bail!("{what} {shown}: not a regular file");
    }
    if meta.len() > limit {
        bail!("{what} {shown} is larger than {limit} bytes");
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("{what} {shown}: cannot read it"))?;
    if buf.len() as u64 > limit {
        bail!("{what} {shown} is larger than {limit} bytes");
    }
    Ok(buf)
}

/// `read_regular_file` for a file holding a secret, with a warning when its mode lets group
/// or others read it.
pub fn read_secret_file(path: &std::path::Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = read_regular_file(path, what, limit)?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        crate::output::warn(&format!(
            "{what} {} can be read by group or others (mode {:04o}): chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(bytes)
}

/// Refuses, before anything is read, a command line that names stdin (`-`) more than once.
pub fn one_stdin(specs: &[Option<&str>]) -> Result<()> {
    if specs.iter().filter(|s| **s == Some("-")).count() > 1 {
        bail!("stdin (-) can be used for only one input");
    }
    Ok(())
}

/// Reads `spec` (`-` = stdin) whole; `what` names it in errors ("key file").
pub fn read(spec: &str, what: &str, limit: u64) -> Result<Vec<u8>> {
    match read_capped(spec, what, limit)? {
        Capped::Whole(bytes) => Ok(bytes),
        Capped::TooLarge if spec == "-" => bail!("{what} on stdin is larger than {limit} bytes"),
        Capped::TooLarge => bail!("{what} {spec} is larger than {limit} bytes"),
    }
}

/// Reads a token from the argument, or from stdin when it is absent or `-`. At most a little
/// over 64 KiB is read, so a huge input is refused without reading it all. An input that is
/// too long or not UTF-8 is a `MalformedToken` error (a bad token, not a failure to read one).
pub fn read_token(arg: Option<&str>) -> Result<String> {
    if let Some(t) = arg.filter(|t| *t != "-") {
        return Ok(t.to_string());
    }
    // Room for white space and a `Bearer ` prefix around a maximal token.
    let limit = MAX_TOKEN_BYTES as u64 + 1024;
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        crate::output::note(
            "reading the token from standard input: paste it, then press Enter and Ctrl-D (or give it as an argument)",
        );
    }
    match read_capped("-", "token", limit)? {
        Capped::TooLarge => Err(MalformedToken::InputTooLong.into()),
        Capped::Whole(bytes) => String::from_utf8(bytes)
            .map_err(|e| MalformedToken::NotUtf8(e.utf8_error().valid_up_to()).into()),
    }
}
