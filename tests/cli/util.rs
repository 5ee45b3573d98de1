//! The one way tests run jwkit: a clean environment (no JWKIT_* or NO_COLOR from the caller),
//! a private temporary JWKIT_HOME, and helpers that check exit code, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::io::Write;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The JWKS cache root these runs use (XDG_CACHE_HOME).
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A `jwkit` command with a clean environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jwkit"));
        cmd.args(args);
        self.clean(&mut cmd);
        cmd
    }

    /// A `jwkit` command run through `sh` after `setup` (for example `ulimit -n 1024`), with
    /// the same clean environment.
    pub fn cmd_after(&self, setup: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{setup}; exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_jwkit"))
            .args(args);
        self.clean(&mut cmd);
        cmd
    }

    /// jwkit run through `sh` under the given umask.
    pub fn run_with_umask(&self, umask: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_jwkit"))
            .args(args)
            .stdin(Stdio::null());
        self.clean(&mut cmd);
        Run::from(cmd.output().expect("run sh"))
    }

    fn clean(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("JWKIT_") || k == "NO_COLOR" {
                cmd.env_remove(k);
            }
        }
        cmd.env("JWKIT_HOME", self.home())
            .env("XDG_CACHE_HOME", self.cache())
            .current_dir(self.dir.path());
    }

    /// Runs jwkit with `stdin` as standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jwkit");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait jwkit");
        let _ = writer.join();
        Run::from(out)
    }

    /// Runs jwkit under GNU time: the run (time's line taken off stderr) and its peak
    /// resident memory in KiB.
    pub fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        let mut run = Run::from(
            self.cmd_after("exec /usr/bin/time -f 'maxrss=%M' \"$0\" \"$@\"", args)
                .stdin(Stdio::null())
                .output()
                .expect("run jwkit under /usr/bin/time"),
        );
        let at = run.stderr.rfind("maxrss=").expect("GNU time's line");
        let kib = run.stderr[at + "maxrss=".len()..]
            .trim()
            .parse()
            .expect("maxrss in KiB");
        run.stderr.truncate(at);
        (run, kib)
    }

    /// Runs jwkit with no standard input.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(
            self.cmd(args)
                .stdin(Stdio::null())
                .output()
                .expect("run jwkit"),
        )
    }

    /// Runs jwkit, asserts exit 0 and a clean stderr-free run, and returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).success()
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stdout_bytes: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    #[track_caller]
    pub fn success(self) -> String {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self.stdout
    }

    /// Asserts a usage/input error: exit 2, nothing on stdout, one `error:` line naming `needle`.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Run {
        assert_eq!(
            self.code, 2,
            "expected exit 2; stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stdout.is_empty(),
            "stdout must be empty, got: {}",
            self.stdout
        );
        assert!(
            self.stderr.starts_with("error: "),
            "stderr: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "stderr should mention {needle:?}: {}",
            self.stderr
        );
        self
    }
}

/// `tests/vectors` (a copy of the shared RFC and Wycheproof vectors).
pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn vector_json(name: &str) -> serde_json::Value {
    let text = std::fs::read(vectors().join(name)).expect("vector file");
    serde_json::from_slice(&text).expect("vector JSON")
}

/// Every key file under `tests/vectors/keys` (raw HMAC `.bin`/`.hex` files excluded).
pub fn vector_key_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors().join("keys"))
        .expect("keys dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("bin" | "hex")))
        .collect();
    files.sort();
    files
}

/// Unix seconds now (to compare with token times).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Held by the tests that measure time against a bound (a health check within 1 s, a timeout)
/// and by the few that load both cores for seconds (1,000 processes, an 80 MiB scan): the
/// former then never share the machine with the latter. Tests run in parallel otherwise.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loopback port that is free now (for a server whose address or issuer must be known first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A throwaway CA in `dir` (ca.pem, ca.key) and a server certificate it signed for `san`
/// (`IP:127.0.0.1`, `DNS:localhost,IP:127.0.0.1`): leaf.pem, leaf.key. Made with openssl.
pub fn private_ca(dir: &Path, san: &str) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=jwkit test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=jwkit test server",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("w");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}
