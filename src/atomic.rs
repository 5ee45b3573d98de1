//! Atomic file writes: each file is written to a temporary file in its own directory, synced,
//! and renamed into place, so a reader never sees half a file and a failure leaves nothing.
//! Several files are committed together: if one fails, those already placed are removed.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tempfile::NamedTempFile;

/// A file written and synced under a temporary name, waiting to be renamed into place.
pub struct Staged {
    temp: NamedTempFile,
    path: PathBuf,
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Errors out early when `path` exists and overwriting was not asked for.
pub fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        bail!(
            "{} already exists (use --force to overwrite)",
            path.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path` with permission bits `mode`.
pub fn stage(path: &Path, bytes: &[u8], mode: u32) -> Result<Staged> {
    let dir = parent_of(path);
    let mut temp = NamedTempFile::with_prefix_in(".jwkit-", dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    fs::set_permissions(temp.path(), Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Staged {
        temp,
        path: path.to_path_buf(),
    })
}

/// A temporary file beside `path` to be written bit by bit (a streamed output); `commit` it when
/// complete. Dropping it unfinished removes it.
pub fn stage_stream(path: &Path, mode: u32) -> Result<Staged> {
    stage(path, b"", mode)
}

impl Staged {
    /// Where the temporary file is (until it is committed).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The open temporary file, for streaming into.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Syncs what was streamed into the file.
    pub fn finish(self) -> Result<Staged> {
        self.temp
            .as_file()
            .sync_all()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(self)
    }
}

/// Renames every staged file into place (never over an existing file unless `force`), then
/// syncs the directories. On any failure, the files already placed are removed again.
pub fn commit(staged: Vec<Staged>, force: bool) -> Result<()> {
    let mut placed: Vec<PathBuf> = Vec::new();
    for s in staged {
        let path = s.path.clone();
        let result = if force {
            s.temp.persist(&path).map(drop)
        } else {
            s.temp.persist_noclobber(&path).map(drop)
        };
        if let Err(e) = result {
            for p in &placed {
                let _ = fs::remove_file(p);
            }
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                bail!(
                    "{} already exists (use --force to overwrite)",
                    path.display()
                );
            }
            return Err(
                anyhow::Error::from(e.error).context(format!("cannot write {}", path.display()))
            );
        }
        placed.push(path);
    }
    for p in &placed {
        sync_dir(parent_of(p))?;
    }
    Ok(())
}

/// Makes a rename durable (POSIX needs the directory itself synced).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Creates `dir` and whichever of its parents are missing as 0700, whatever the umask. A
/// directory that already exists keeps its mode: jwkit never changes the permissions of a
/// directory it did not create (`--data-dir /tmp` must not lock everyone else out).
pub fn private_dir(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => fs::set_permissions(d, Permissions::from_mode(0o700))
                .with_context(|| format!("setting permissions on {}", d.display()))?,
            // Another run created it in the meantime: it is theirs, as it is.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("creating {}", d.display())));
            }
        }
    }
    Ok(())
}

/// Refuses a directory that group or others may write to: whoever can write there can plant or
/// swap keys. The caller names what the directory is for.
pub fn refuse_shared(dir: &Path, what: &str) -> Result<()> {
    let meta = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{what} {} is not a directory", dir.display());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        bail!(
            "{what} {} is writable by {} (mode {mode:04o}), so others could plant or replace keys; jwkit leaves its mode alone: use a private directory, or chmod go-w it",
            dir.display(),
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            }
        );
    }
    Ok(())
}

/// While it lives, SIGINT, SIGTERM and SIGHUP first remove the temporary file it was given (a
/// partial output, often valid tokens) and then end the process as the signal would have.
pub struct RemoveOnSignal {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
    path: std::sync::Arc<std::sync::Mutex<Option<PathBuf>>>,
}

/// Starts watching the signals that would leave a temporary file behind, before there is one:
/// a file made through [`RemoveOnSignal::create`] is removed by a signal at any moment after
/// it exists. None when signals cannot be watched.
pub fn remove_on_signal() -> Option<RemoveOnSignal> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
    let handle = signals.handle();
    let path: std::sync::Arc<std::sync::Mutex<Option<PathBuf>>> = std::sync::Arc::default();
    let watched = std::sync::Arc::clone(&path);
    let thread = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            // Waits while a file is being created, so one that exists is always known here.
            if let Ok(p) = watched.lock()
                && let Some(p) = p.as_ref()
            {
                let _ = fs::remove_file(p);
            }
            let _ = signal_hook::low_level::emulate_default_handler(sig);
        }
    });
    Some(RemoveOnSignal {
        handle,
        thread: Some(thread),
        path,
    })
}

impl RemoveOnSignal {
    /// Runs `make` (which creates the temporary file) and records the file's path, both while
    /// holding the lock the signal thread takes first: no moment when the file exists unknown.
    pub fn create<T>(
        &self,
        make: impl FnOnce() -> Result<T>,
        path_of: impl Fn(&T) -> &Path,
    ) -> Result<T> {
        let mut guard = self
            .path
            .lock()
            .map_err(|_| anyhow::anyhow!("the signal watcher failed"))?;
        let made = make()?;
        *guard = Some(path_of(&made).to_path_buf());
        Ok(made)
    }
}

impl Drop for RemoveOnSignal {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
