//! Real servers for the replica tests: a PostgreSQL cluster in a temporary directory (Debian's
//! `postgresql` package, started as an unprivileged user on a loopback port, password
//! authentication over TCP) and an nginx load balancer in front of jwkit replicas. Outside CI
//! a missing server makes the test print SKIPPED; in CI (`CI` or
//! `JWKIT_TEST_REQUIRED` set) it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const PASSWORD: &str = "pg-test-password-0123";

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("JWKIT_TEST_REQUIRED").is_some()
}

fn skip(what: &str) {
    assert!(
        !required(),
        "{what} is required in CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {what} is not installed here");
}

/// The directory of PostgreSQL's server programs: the newest /usr/lib/postgresql/N/bin, or
/// the one `initdb` on PATH is in.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((n, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    Some(path.parent()?.to_path_buf()).filter(|_| out.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A PostgreSQL cluster of the test's own; stopped and removed on drop.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// The unprivileged user the server runs as, when the tests run as root.
    user: Option<String>,
    pub port: u16,
    /// Serving TLS with a certificate from a throwaway CA (`ca()`).
    tls: bool,
}

impl Cluster {
    /// A new cluster, started; None (SKIPPED) when PostgreSQL is not installed, outside CI.
    pub fn start() -> Option<Cluster> {
        let Some(bin) = bin_dir() else {
            skip("PostgreSQL (Debian package postgresql)");
            return None;
        };
        // initdb refuses to run as root: as root, the cluster belongs to `postgres` (made by
        // the Debian package) or `nobody`.
        let user = is_root().then(|| {
            let has_postgres = Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if has_postgres { "postgres" } else { "nobody" }.to_string()
        });
        let dir = std::env::temp_dir().join(format!(
            "jwkit-pg-{}-{}",
            std::process::id(),
            crate::util::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let port = crate::util::free_port();
        let cluster = Cluster {
            dir,
            bin,
            user,
            port,
            tls: false,
        };
        std::fs::write(cluster.dir.join("pw"), format!("{PASSWORD}\n")).expect("pwfile");
        if let Some(user) = &cluster.user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cluster.dir, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            assert!(
                Command::new("chown")
                    .args(["-R", user, cluster.dir.to_str().expect("utf-8")])
                    .status()
                    .expect("chown")
                    .success()
            );
        }
        let data = cluster.data();
        let pwfile = cluster.dir.join("pw");
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-U",
                "jwkit",
                &format!("--pwfile={}", pwfile.display()),
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs one of PostgreSQL's programs as the cluster's user; panics with its output on
    /// failure.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let exe = self.bin.join(program);
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the server (again), on the same port and data.
    pub fn start_server(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = self.dir.join("log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Restarts the server with TLS on: a certificate for localhost and 127.0.0.1 from a
    /// throwaway CA, whose certificate is at `ca()`.
    pub fn enable_tls(&mut self) {
        let certs = self.dir.join("certs");
        std::fs::create_dir_all(&certs).expect("certs dir");
        crate::util::private_ca(&certs, "DNS:localhost,IP:127.0.0.1");
        let data = self.data();
        for (from, to) in [("leaf.pem", "server.crt"), ("leaf.key", "server.key")] {
            std::fs::copy(certs.join(from), data.join(to)).expect("copy");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join(to), std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
            if let Some(user) = &self.user {
                assert!(
                    Command::new("chown")
                        .args([user.as_str(), data.join(to).to_str().expect("utf-8")])
                        .status()
                        .expect("chown")
                        .success()
                );
            }
        }
        self.stop_server();
        self.tls = true;
        self.start_server();
    }

    /// The CA certificate of `enable_tls`.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("certs/ca.pem")
    }

    /// Stops the server (fast shutdown: sessions are ended, as on a real outage).
    pub fn stop_server(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// The URL of database `db` for jwkit.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://jwkit:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql (over the cluster's Unix socket), returning unaligned rows.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let dir = self.dir.to_str().expect("utf-8").to_string();
        let port = self.port.to_string();
        self.run(
            "psql",
            &[
                "-h",
                &dir,
                "-p",
                &port,
                "-U",
                "jwkit",
                "-d",
                db,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }

    /// A new empty database; returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(self.bin.join("pg_ctl"));
                c
            }
            None => Command::new(self.bin.join("pg_ctl")),
        };
        let _ = cmd
            .args(["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx as a round-robin load balancer in front of `upstreams` (host:port); stopped on drop.
pub struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Nginx {
    /// None (SKIPPED) when nginx is not installed, outside CI.
    pub fn start(upstreams: &[String]) -> Option<Nginx> {
        let exe = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        let Some(exe) = exe else {
            skip("nginx (Debian package nginx)");
            return None;
        };
        let dir = tempfile::tempdir().expect("nginx dir");
        let port = crate::util::free_port();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server {u} max_fails=0;\n"))
            .collect();
        let conf = format!(
            "worker_processes 1;\n\
             pid {dir}/nginx.pid;\n\
             error_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
                 access_log off;\n\
                 client_body_temp_path {dir}/body;\n\
                 proxy_temp_path {dir}/proxy;\n\
                 fastcgi_temp_path {dir}/fastcgi;\n\
                 uwsgi_temp_path {dir}/uwsgi;\n\
                 scgi_temp_path {dir}/scgi;\n\
                 upstream jwkit {{\n{servers}        keepalive 32;\n    }}\n\
                 server {{\n\
                     listen 127.0.0.1:{port};\n\
                     location / {{\n\
                         proxy_pass http://jwkit;\n\
                         proxy_http_version 1.1;\n\
                         proxy_set_header Connection \"\";\n\
                         proxy_next_upstream error timeout;\n\
                         proxy_connect_timeout 2s;\n\
                     }}\n\
                 }}\n\
             }}\n",
            dir = dir.path().display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = Command::new(exe)
            .args(["-e", "stderr", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start nginx");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(Nginx {
            child,
            _dir: dir,
            url,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
