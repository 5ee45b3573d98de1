//! Inputs named on the command line: a file path or `-` for stdin (read whole, at most once),
//! with a size cap so a wrong file cannot exhaust memory.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

/// Key files beyond this are not keys.
pub const MAX_KEY_BYTES: u64 = 1 << 20;

static STDIN_USED: AtomicBool = AtomicBool::new(false);

/// Reads `spec` (`-` = stdin) whole; `what` names it in errors ("key file").
pub fn read(spec: &str, what: &str, limit: u64) -> Result<Vec<u8>> {
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
        if buf.len() as u64 > limit {
            bail!("{what} on stdin is larger than {limit} bytes");
        }
    } else {
        let file = std::fs::File::open(spec).with_context(|| format!("reading {what} {spec}"))?;
        file.take(limit + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("reading {what} {spec}"))?;
        if buf.len() as u64 > limit {
            bail!("{what} {spec} is larger than {limit} bytes");
        }
    }
    Ok(buf)
}
