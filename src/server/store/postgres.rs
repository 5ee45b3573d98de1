//! The PostgreSQL store (`--store postgres://...`): one database shared by replicas.
//!
//! - **One version counter.** `jwkit_state` is one row. Every write locks it (`FOR UPDATE`),
//!   bumps `version`, stamps the rows it changes with the new version and sends
//!   `NOTIFY jwkit_changes`. Writers are serialised by the row lock, so versions commit in order.
//!   A replica applies the rows stamped after the version it has, read in one
//!   repeatable-read snapshot; deletions are kept as tombstones so they travel the same way.
//! - **Rotation with one winner.** The same row holds the rotation record (count, due time).
//!   A rotation is a compare-and-swap on the count: every replica may try, one commits, the
//!   others find the count moved and re-read. `jwkit_rotations` logs one row per rotation.
//! - **Reads never touch the database.** GETs are served from the [`View`] in memory, which a
//!   listener task keeps current: on each notification, and every second as a fallback (which
//!   is also the health probe). While the database is down the last set stays served, writes
//!   answer 503, and the listener reconnects by itself.
//! - **Sealed signing keys.** The private JWK of each server key is stored sealed with the
//!   store key ([`SealKey`]); the public JWK is stored beside it, so replicas without the
//!   store key can serve the set (but not sign).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{AsyncMessage, IsolationLevel};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::records::Kind;
use super::seal::SealKey;
use super::{
    AddError, Added, Health, Rotation, State, Store, StoreError, StoredPublic, StoredSigning, View,
};
use crate::crypto::{Key, PublicKey};

/// The schema this jwkit writes, one migration per version. Append only.
pub const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE jwkit_state (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL,
    rotations bigint NOT NULL,
    rotated_at bigint NOT NULL,
    key_check bytea
);
INSERT INTO jwkit_state (id, version, rotations, rotated_at) VALUES (1, 0, 0, 0);
CREATE TABLE jwkit_keys (
    kid text PRIMARY KEY,
    thumbprint text NOT NULL,
    jwk text NOT NULL,
    added bigint NOT NULL,
    expires bigint,
    deleted boolean NOT NULL DEFAULT false,
    version bigint NOT NULL
);
CREATE UNIQUE INDEX jwkit_keys_thumbprint ON jwkit_keys (thumbprint) WHERE NOT deleted;
CREATE INDEX jwkit_keys_version ON jwkit_keys (version);
CREATE TABLE jwkit_signing (
    kid text PRIMARY KEY,
    created bigint NOT NULL,
    activated bigint,
    published_until bigint,
    next boolean NOT NULL,
    public_jwk text NOT NULL,
    sealed bytea NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    version bigint NOT NULL
);
CREATE INDEX jwkit_signing_version ON jwkit_signing (version);
CREATE TABLE jwkit_rotations (
    n bigint PRIMARY KEY,
    kid text NOT NULL,
    due bigint NOT NULL,
    at_ms bigint NOT NULL
);
"#,
    r#"
CREATE TABLE jwkit_idp_records (
    kind text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    expires bigint NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX jwkit_idp_records_expires ON jwkit_idp_records (expires);
"#,
];

/// The advisory lock held by the one replica pruning expired IdP records ("jwkitp").
const PRUNE_LOCK: i64 = 0x6a77_6b69_7470;

/// The advisory lock that serialises migrations of replicas starting at once ("jwkit").
const MIGRATION_LOCK: i64 = 0x006a_776b_6974;
const CHANNEL: &str = "jwkit_changes";
/// How often a replica re-reads the version when no notification came.
const POLL: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How much longer a retired key stays published than the grace asks: a replica that has
/// not seen a rotation yet (at most one [`POLL`], normally milliseconds) still signs with the
/// old key, and its tokens must verify until they expire.
const REPLICA_LAG: i64 = 2;

/// A `--store` URL taken apart: the driver's configuration, the TLS set-up, and the URL
/// without its password for messages.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub shown: String,
}

/// Parses a `postgres://` URL. libpq's `sslmode` and `sslrootcert` are taken here: TLS is
/// always verified (`require`, `verify-ca` and `verify-full` all verify the certificate and
/// the host name, against `sslrootcert` or the system's roots); `disable` turns it off; with no
/// `sslmode`, TLS is required but for loopback and Unix sockets.
pub fn target(url_text: &str) -> Result<Target> {
    let mut url = url::Url::parse(url_text).map_err(|e| {
        anyhow!("--store: not a URL ({e}); expected postgres://USER:PASSWORD@HOST:PORT/DB")
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        bail!(
            "--store: expected a postgres:// URL, not {}:// (the directory store is --data-dir)",
            url.scheme()
        );
    }
    let mut shown_url = url.clone();
    if shown_url.password().is_some() {
        let _ = shown_url.set_password(Some("***"));
    }
    let shown = shown_url.to_string();
    let mut sslmode = None;
    let mut rootcert = None;
    let rest: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(k, v)| match k.as_ref() {
            "sslmode" => {
                sslmode = Some(v.into_owned());
                None
            }
            "sslrootcert" => {
                rootcert = Some(v.into_owned());
                None
            }
            _ => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    if rest.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut config: tokio_postgres::Config = url
        .as_str()
        .parse()
        .map_err(|e| anyhow!("--store {shown}: {e}"))?;
    if config.get_hosts().is_empty() {
        bail!("--store {shown}: the URL names no host");
    }
    let local = config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    let mode = match sslmode.as_deref() {
        None if local => SslMode::Disable,
        None => SslMode::Require,
        Some("disable") => SslMode::Disable,
        Some("allow" | "prefer") => SslMode::Prefer,
        Some("require" | "verify-ca" | "verify-full") => SslMode::Require,
        Some(other) => bail!(
            "--store: sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
        ),
    };
    config.ssl_mode(mode);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("jwkit serve");
    }
    let mut roots = rustls::RootCertStore::empty();
    match &rootcert {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("--store: reading sslrootcert {path}"))?;
            let certs =
                pem::parse_many(&pem).map_err(|e| anyhow!("--store: sslrootcert {path}: {e}"))?;
            for c in certs.iter().filter(|c| c.tag() == "CERTIFICATE") {
                roots
                    .add(rustls::pki_types::CertificateDer::from(
                        c.contents().to_vec(),
                    ))
                    .map_err(|e| anyhow!("--store: sslrootcert {path}: {e}"))?;
            }
            if roots.is_empty() {
                bail!("--store: sslrootcert {path} holds no certificate");
            }
        }
        None if mode != SslMode::Disable => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
        None => {}
    }
    let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("setting up TLS")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Target {
        config,
        tls: MakeRustlsConnect::new(tls_config),
        shown,
    })
}

pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    target: Target,
    seal: Option<SealKey>,
    view: View,
    /// The version the view has applied; held across a refresh so refreshes never interleave.
    applied: tokio::sync::Mutex<i64>,
    reachable: AtomicBool,
}

/// A database error as the client sees it: the store is unavailable. (Every write checks
/// its conflicts under the lock, so an error here is the database's, not the request's.)
fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl PgStore {
    /// Connects, creates or migrates the schema, checks the store key against the database,
    /// loads the key set, and starts the listener. Errors name the cause, never the password.
    pub async fn open(target: Target, seal: Option<SealKey>) -> Result<PgStore> {
        let shown = target.shown.clone();
        let (mut client, conn) = target
            .config
            .connect(target.tls.clone())
            .await
            .map_err(|e| anyhow!("connecting to {shown}: {}", describe_error(&e)))?;
        let driver = tokio::spawn(conn);
        migrate(&mut client)
            .await
            .with_context(|| format!("preparing the database {shown}"))?;
        if let Some(seal) = &seal {
            check_store_key(&mut client, seal).await?;
        }
        drop(client);
        driver.abort();
        let manager = Manager::from_config(
            target.config.clone(),
            target.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .context("setting up the connection pool")?;
        let inner = Arc::new(Inner {
            pool,
            target,
            seal,
            view: View::new(State::default()),
            applied: tokio::sync::Mutex::new(0),
            reachable: AtomicBool::new(true),
        });
        inner
            .refresh()
            .await
            .with_context(|| format!("reading the keys from {shown}"))?;
        tokio::spawn(listen(Arc::clone(&inner)));
        Ok(PgStore { inner })
    }
}

/// The driver's error with its cause (a server message, a refused connection), which never
/// holds the password.
fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text = format!("{text}: {more}");
                }
                source = s.source();
            }
            text
        }
    }
}

async fn migrate(client: &mut tokio_postgres::Client) -> Result<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS jwkit_schema (version integer NOT NULL)")
        .await?;
    let have: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM jwkit_schema", &[])
        .await?
        .get(0);
    let know = MIGRATIONS.len() as i32;
    if have > know {
        bail!(
            "the database's jwkit schema is version {have}, newer than this jwkit knows ({know}): upgrade jwkit"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("migrating to schema version {}", i + 1))?;
        tx.execute(
            "INSERT INTO jwkit_schema (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The first replica with a store key records a check value; every later one must open it,
/// so two store keys are never used on one database.
async fn check_store_key(client: &mut tokio_postgres::Client, seal: &SealKey) -> Result<()> {
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "SELECT key_check FROM jwkit_state WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    let check: Option<Vec<u8>> = row.get(0);
    match check {
        Some(c) if seal.verifies(&c) => {}
        Some(_) => bail!(
            "the store key (--store-key-file or JWKIT_STORE_KEY) is not the one this database's signing keys were sealed with; nothing was changed"
        ),
        None => {
            tx.execute(
                "UPDATE jwkit_state SET key_check = $1 WHERE id = 1",
                &[&seal.check_value()?],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Keeps the view current: LISTEN on one connection of its own, a refresh on every
/// notification and every [`POLL`]; reconnects when the connection drops.
async fn listen(inner: Arc<Inner>) {
    loop {
        let connected = inner.target.config.connect(inner.target.tls.clone()).await;
        let (client, mut conn) = match connected {
            Ok(c) => c,
            Err(e) => {
                inner.set_reachable(false, &describe_error(&e));
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            inner.set_reachable(false, &describe_error(&e));
            driver.abort();
            tokio::time::sleep(POLL).await;
            continue;
        }
        // Catch up on what happened while this connection was not listening.
        let _ = inner.refresh().await;
        loop {
            tokio::select! {
                m = rx.recv() => {
                    if m.is_none() {
                        break;
                    }
                    while rx.try_recv().is_ok() {}
                    let _ = inner.refresh().await;
                }
                _ = tokio::time::sleep(POLL) => {
                    if client.is_closed() {
                        break;
                    }
                    let _ = inner.refresh().await;
                }
            }
        }
        inner.set_reachable(false, "the listening connection closed");
        driver.abort();
    }
}

/// A key row as read.
struct KeyRow {
    deleted: bool,
    key: StoredPublic,
}

struct SigningRow {
    deleted: bool,
    key: StoredSigning,
}

impl Inner {
    fn set_reachable(&self, up: bool, why: &str) {
        let was = self.reachable.swap(up, Ordering::SeqCst);
        if was && !up {
            crate::output::warn(&format!(
                "the database {} is unreachable ({}): serving the last key set; writes answer 503",
                self.target.shown,
                crate::output::escape(why)
            ));
        } else if !was && up {
            crate::output::log(format!(
                "jwkit serve: the database {} is reachable again",
                self.target.shown
            ));
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        match self.pool.get().await {
            Ok(c) => Ok(c),
            Err(e) => {
                let e = unavailable(e);
                self.set_reachable(false, &e.to_string());
                Err(e)
            }
        }
    }

    /// A database error from a write: the store is unreachable unless the server answered.
    fn failed(&self, e: tokio_postgres::Error) -> StoreError {
        let text = describe_error(&e);
        if e.as_db_error().is_none() {
            self.set_reachable(false, &text);
        }
        StoreError::Unavailable(text)
    }

    /// Applies every change committed since the version the view has.
    async fn refresh(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        let mut client = self.client().await?;
        let read = async {
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let st = tx
                .query_one(
                    "SELECT version, rotations, rotated_at FROM jwkit_state WHERE id = 1",
                    &[],
                )
                .await?;
            let version: i64 = st.get(0);
            let rotation = Rotation {
                count: st.get(1),
                at: st.get(2),
            };
            // A database older than the view (restored, recreated): read it whole again.
            let reset = version < *applied;
            let since = if reset { 0 } else { *applied };
            if version == since {
                tx.commit().await?;
                return Ok((version, rotation, reset, Vec::new(), Vec::new()));
            }
            let keys = tx
                .query(
                    "SELECT kid, thumbprint, jwk, added, expires, deleted FROM jwkit_keys \
                     WHERE version > $1 ORDER BY version",
                    &[&since],
                )
                .await?;
            let signing = tx
                .query(
                    "SELECT kid, created, activated, published_until, next, public_jwk, sealed, deleted \
                     FROM jwkit_signing WHERE version > $1 ORDER BY version",
                    &[&since],
                )
                .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((version, rotation, reset, keys, signing))
        };
        let (version, rotation, reset, keys, signing) = match read.await {
            Ok(r) => r,
            Err(e) => {
                let text = describe_error(&e);
                self.set_reachable(false, &text);
                return Err(StoreError::Unavailable(text));
            }
        };
        self.set_reachable(true, "");
        let keys: Vec<KeyRow> = keys.iter().filter_map(|r| self.key_row(r)).collect();
        let signing: Vec<SigningRow> = signing.iter().filter_map(|r| self.signing_row(r)).collect();
        if reset || !keys.is_empty() || !signing.is_empty() || version != *applied {
            self.view.update(|st| {
                if reset {
                    st.uploaded.clear();
                    st.signing.clear();
                }
                for row in keys {
                    if row.deleted {
                        st.uploaded.remove(&row.key.kid);
                    } else {
                        st.uploaded.insert(row.key.kid.clone(), row.key);
                    }
                }
                for row in signing {
                    st.signing.retain(|k| k.kid != row.key.kid);
                    if !row.deleted {
                        st.signing.push(row.key);
                    }
                }
                st.rotation = Some(rotation);
            });
        }
        *applied = version;
        Ok(())
    }

    fn key_row(&self, r: &tokio_postgres::Row) -> Option<KeyRow> {
        let kid: String = r.get(0);
        let deleted: bool = r.get(5);
        let jwk: Result<Map<String, Value>, _> = serde_json::from_str(r.get::<_, &str>(2));
        let jwk = match jwk.map_err(anyhow::Error::from).and_then(|j| {
            if !deleted {
                super::check_public(&j)?;
            }
            Ok(j)
        }) {
            Ok(j) => j,
            Err(e) => {
                crate::output::warn(&format!(
                    "skipping the stored key {}: {e:#}",
                    crate::output::escape(&kid)
                ));
                return None;
            }
        };
        Some(KeyRow {
            deleted,
            key: StoredPublic {
                kid,
                thumbprint: r.get(1),
                jwk,
                added: r.get(3),
                expires: r.get(4),
            },
        })
    }

    fn signing_row(&self, r: &tokio_postgres::Row) -> Option<SigningRow> {
        let kid: String = r.get(0);
        let deleted: bool = r.get(7);
        let public: Option<Map<String, Value>> = serde_json::from_str(r.get::<_, &str>(5)).ok();
        let sealed: Vec<u8> = r.get(6);
        // The private JWK when this replica holds the store key, else the public one.
        let private = self.seal.as_ref().and_then(|s| {
            let plain = s.open(&sealed, &kid)?;
            serde_json::from_slice::<Map<String, Value>>(&plain).ok()
        });
        if self.seal.is_some() && private.is_none() && !deleted {
            crate::output::warn(&format!(
                "the signing key {} does not open with the store key: it is published but not used to sign",
                crate::output::escape(&kid)
            ));
        }
        let jwk = private.or(public)?;
        Some(SigningRow {
            deleted,
            key: StoredSigning {
                kid,
                created: r.get(1),
                activated: r.get(2),
                published_until: r.get(3),
                next: r.get(4),
                jwk,
            },
        })
    }

    /// Begins a write: the state row locked, its version and rotation record read.
    async fn begin<'a>(
        client: &'a mut deadpool_postgres::Object,
    ) -> Result<(Transaction<'a>, i64, Rotation), tokio_postgres::Error> {
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "SELECT version, rotations, rotated_at FROM jwkit_state WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?;
        let rotation = Rotation {
            count: row.get(1),
            at: row.get(2),
        };
        Ok((tx, row.get(0), rotation))
    }

    /// Ends a write: the new version recorded and announced, then committed.
    async fn finish(tx: Transaction<'_>, version: i64) -> Result<(), tokio_postgres::Error> {
        tx.execute(
            "UPDATE jwkit_state SET version = $1 WHERE id = 1",
            &[&version],
        )
        .await?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &version.to_string()],
        )
        .await?;
        tx.commit().await
    }

    fn seal_signing(&self, k: &StoredSigning) -> Result<(String, Vec<u8>), StoreError> {
        let seal = self.seal.as_ref().ok_or_else(|| {
            StoreError::Other(anyhow!(
                "writing a signing key needs the store key (--store-key-file or JWKIT_STORE_KEY)"
            ))
        })?;
        let public = super::public_jwk(&k.jwk)
            .ok_or_else(|| StoreError::Other(anyhow!("the signing key {} is unusable", k.kid)))?;
        let public = serde_json::to_string(&public).map_err(|e| StoreError::Other(e.into()))?;
        let private = zeroize::Zeroizing::new(
            serde_json::to_vec(&k.jwk).map_err(|e| StoreError::Other(e.into()))?,
        );
        Ok((public, seal.seal(&private, &k.kid)?))
    }

    async fn upsert_signing(
        &self,
        tx: &Transaction<'_>,
        k: &StoredSigning,
        version: i64,
    ) -> Result<(), StoreError> {
        let (public, sealed) = self.seal_signing(k)?;
        tx.execute(
            "INSERT INTO jwkit_signing (kid, created, activated, published_until, next, public_jwk, sealed, deleted, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8) \
             ON CONFLICT (kid) DO UPDATE SET created = $2, activated = $3, published_until = $4, \
             next = $5, public_jwk = $6, sealed = $7, deleted = false, version = $8",
            &[&k.kid, &k.created, &k.activated, &k.published_until, &k.next, &public, &sealed, &version],
        )
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// The signing keys as the database has them, under the write lock.
    async fn signing_in(&self, tx: &Transaction<'_>) -> Result<Vec<StoredSigning>, StoreError> {
        let rows = tx
            .query(
                "SELECT kid, created, activated, published_until, next, public_jwk, sealed, deleted \
                 FROM jwkit_signing WHERE NOT deleted ORDER BY created, kid",
                &[],
            )
            .await
            .map_err(|e| self.failed(e))?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(row) = self.signing_row(r) {
                out.push(row.key);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Store for PgStore {
    fn view(&self) -> &View {
        &self.inner.view
    }

    fn health(&self) -> Health {
        Health {
            kind: "postgres",
            reachable: self.inner.reachable.load(Ordering::SeqCst),
        }
    }

    fn describe(&self) -> String {
        format!("keys in {}", self.inner.target.shown)
    }

    async fn add(
        &self,
        keys: Vec<(PublicKey, Option<i64>)>,
        now: i64,
    ) -> Result<Vec<(String, Added)>, AddError> {
        let inner = &self.inner;
        let mut client = inner.client().await.map_err(AddError::Failed)?;
        let fail = |e| AddError::Failed(inner.failed(e));
        let (tx, version, _) = Inner::begin(&mut client).await.map_err(fail)?;
        // The conflicts are checked against the database under the lock, not the view.
        let mut uploaded = std::collections::BTreeMap::new();
        for (pk, _) in &keys {
            let rows = tx
                .query(
                    "SELECT kid, thumbprint, jwk, added, expires, deleted FROM jwkit_keys \
                     WHERE NOT deleted AND (kid = $1 OR thumbprint = $2)",
                    &[
                        &pk.kid_or_thumbprint(),
                        &pk.thumbprint(crate::crypto::Hash::Sha256),
                    ],
                )
                .await
                .map_err(fail)?;
            for r in &rows {
                if let Some(row) = inner.key_row(r) {
                    uploaded.insert(row.key.kid.clone(), row.key);
                }
            }
        }
        let plan = super::plan_add(&uploaded, &keys, now)?;
        let out = super::plan_outcome(&plan);
        if plan.iter().all(|(_, s)| s.is_none()) {
            drop(tx);
            return Ok(out);
        }
        let version = version + 1;
        for (_, stored) in &plan {
            let Some(s) = stored else { continue };
            let jwk = serde_json::to_string(&s.jwk)
                .map_err(|e| AddError::Failed(StoreError::Other(e.into())))?;
            tx.execute(
                "INSERT INTO jwkit_keys (kid, thumbprint, jwk, added, expires, deleted, version) \
                 VALUES ($1, $2, $3, $4, $5, false, $6) \
                 ON CONFLICT (kid) DO UPDATE SET thumbprint = $2, jwk = $3, added = $4, \
                 expires = $5, deleted = false, version = $6",
                &[&s.kid, &s.thumbprint, &jwk, &s.added, &s.expires, &version],
            )
            .await
            .map_err(fail)?;
        }
        Inner::finish(tx, version).await.map_err(fail)?;
        // The connection goes back first: a refresh takes one of its own.
        drop(client);
        // Read-your-writes: this replica serves the key before it answers. (Committed, so a
        // failed refresh only delays it to the listener's next one.)
        let _ = inner.refresh().await;
        Ok(out)
    }

    async fn delete(&self, kid: &str) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut client = inner.client().await?;
        let (tx, version, _) = Inner::begin(&mut client)
            .await
            .map_err(|e| inner.failed(e))?;
        let n = tx
            .execute(
                "UPDATE jwkit_keys SET deleted = true, version = $2 WHERE kid = $1 AND NOT deleted",
                &[&kid, &(version + 1)],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        if n == 0 {
            return Ok(false);
        }
        Inner::finish(tx, version + 1)
            .await
            .map_err(|e| inner.failed(e))?;
        drop(client);
        let _ = inner.refresh().await;
        Ok(true)
    }

    async fn add_next(&self, key: Key, now: i64) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut client = inner.client().await?;
        let (tx, version, _) = Inner::begin(&mut client)
            .await
            .map_err(|e| inner.failed(e))?;
        let signing = inner.signing_in(&tx).await?;
        if signing
            .iter()
            .any(|k| k.next && k.published_until.is_none())
        {
            drop(tx);
            drop(client);
            let _ = inner.refresh().await;
            return Ok(false);
        }
        let new = StoredSigning::next(&key, now);
        inner.upsert_signing(&tx, &new, version + 1).await?;
        Inner::finish(tx, version + 1)
            .await
            .map_err(|e| inner.failed(e))?;
        drop(client);
        let _ = inner.refresh().await;
        Ok(true)
    }

    async fn rotate(
        &self,
        key: Key,
        now: i64,
        grace: i64,
        due: i64,
        expect: i64,
    ) -> Result<Option<StoredSigning>, StoreError> {
        let inner = &self.inner;
        let mut client = inner.client().await?;
        let (tx, version, rotation) = Inner::begin(&mut client)
            .await
            .map_err(|e| inner.failed(e))?;
        if rotation.count != expect {
            // Another replica rotated first: take its result.
            drop(tx);
            drop(client);
            inner.refresh().await?;
            return Ok(None);
        }
        let signing = inner.signing_in(&tx).await?;
        let (changed, gone) =
            super::plan_rotation(&signing, &key, now, grace.saturating_add(REPLICA_LAG));
        let version = version + 1;
        for c in &changed {
            inner.upsert_signing(&tx, c, version).await?;
        }
        for kid in &gone {
            tx.execute(
                "UPDATE jwkit_signing SET deleted = true, version = $2 WHERE kid = $1",
                &[kid, &version],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        }
        let active = changed
            .iter()
            .find(|k| !k.next && k.published_until.is_none())
            .cloned()
            .ok_or_else(|| StoreError::Other(anyhow!("no active signing key after rotating")))?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        tx.execute(
            "INSERT INTO jwkit_rotations (n, kid, due, at_ms) VALUES ($1, $2, $3, $4)",
            &[&(expect + 1), &active.kid, &due, &now_ms],
        )
        .await
        .map_err(|e| inner.failed(e))?;
        tx.execute(
            "UPDATE jwkit_state SET rotations = $1, rotated_at = $2 WHERE id = 1",
            &[&(expect + 1), &due],
        )
        .await
        .map_err(|e| inner.failed(e))?;
        Inner::finish(tx, version)
            .await
            .map_err(|e| inner.failed(e))?;
        drop(client);
        let _ = inner.refresh().await;
        Ok(Some(active))
    }

    async fn record_put(
        &self,
        kind: Kind,
        key: &str,
        value: &str,
        expires: i64,
        _now: i64,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let client = inner.client().await?;
        client
            .execute(
                "INSERT INTO jwkit_idp_records (kind, key, value, expires) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                &[&kind.name(), &key, &value, &expires],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        Ok(())
    }

    async fn record_add(
        &self,
        kind: Kind,
        key: &str,
        value: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let client = inner.client().await?;
        // One statement: a live record stays (no row comes back), an expired one is replaced.
        let rows = client
            .query(
                "INSERT INTO jwkit_idp_records (kind, key, value, expires) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value, expires = excluded.expires \
                 WHERE jwkit_idp_records.expires <= $5 RETURNING 1",
                &[&kind.name(), &key, &value, &expires, &now],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        Ok(!rows.is_empty())
    }

    async fn record_get(
        &self,
        kind: Kind,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let inner = &self.inner;
        let client = inner.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM jwkit_idp_records WHERE kind = $1 AND key = $2 AND expires > $3",
                &[&kind.name(), &key, &now],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn record_take(
        &self,
        kind: Kind,
        key: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let inner = &self.inner;
        let client = inner.client().await?;
        // Single use in the database: of two replicas deleting at once, one gets the row.
        let row = client
            .query_opt(
                "DELETE FROM jwkit_idp_records WHERE kind = $1 AND key = $2 RETURNING value, expires",
                &[&kind.name(), &key],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        Ok(row.filter(|r| r.get::<_, i64>(1) > now).map(|r| r.get(0)))
    }

    async fn record_delete(&self, kind: Kind, key: &str) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let client = inner.client().await?;
        let n = client
            .execute(
                "DELETE FROM jwkit_idp_records WHERE kind = $1 AND key = $2",
                &[&kind.name(), &key],
            )
            .await
            .map_err(|e| inner.failed(e))?;
        Ok(n > 0)
    }

    async fn record_prune(&self, now: i64) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let mut client = inner.client().await?;
        let tx = client.transaction().await.map_err(|e| inner.failed(e))?;
        // One replica prunes at a time; the others skip this round.
        let mine: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
            .await
            .map_err(|e| inner.failed(e))?
            .get(0);
        if !mine {
            return Ok(0);
        }
        let n = tx
            .execute("DELETE FROM jwkit_idp_records WHERE expires <= $1", &[&now])
            .await
            .map_err(|e| inner.failed(e))?;
        tx.commit().await.map_err(|e| inner.failed(e))?;
        Ok(n)
    }
}
