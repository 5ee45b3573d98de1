//! `jwkit serve`: check the flags, set up the store and signing keys, bind, serve until SIGINT
//! or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::ServeArgs;
use crate::crypto::{Alg, SigningKey};
use crate::exit::ExitStatus;
use crate::server::store::{Store, dir::DirStore, postgres::PgStore, seal::SealKey};
use crate::server::{self, App, Issuer, Paths};
use crate::store::KeyStore;
use crate::when::duration;
use crate::{output, upload, when};

/// Default lifetime of /auth tokens.
const DEFAULT_TTL: i64 = 15 * 60;

/// Where the keys are kept, chosen and checked before anything is opened.
enum Backing {
    Dir,
    Postgres(Box<server::store::postgres::Target>, Option<SealKey>),
}

pub fn run(args: &ServeArgs) -> Result<ExitStatus> {
    // The identity provider signs with the server's own key.
    let issue_tokens = args.issue_tokens || args.idp;
    let idp = if args.idp {
        let open = args.idp_config.is_none();
        let config = server::idp::config::load(args.idp_config.as_deref())?;
        if open {
            output::warn(
                "serve --idp without --idp-config: open mode, any client id with any secret, any redirect URI and any user are accepted",
            );
        }
        let cors = server::cors::Origins::parse(&args.cors_origin)?;
        if cors == server::cors::Origins::Any {
            output::warn(
                "serve --idp: CORS allows any origin on discovery, the key set, /token, /par, /userinfo, /introspect and /revoke (--cors-origin ORIGIN to list the browser apps' origins)",
            );
        }
        let registration_token = match &args.registration_token {
            Some(path) => Some(
                crate::upload::read_upload_token(Some(path))
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "--registration-token: {}",
                            format!("{e:#}").replace("the upload token file", "the file")
                        )
                    })?
                    .ok_or_else(|| anyhow::anyhow!("--registration-token: the file is empty"))?,
            ),
            None => None,
        };
        Some(server::idp::Idp::new(
            config,
            open,
            args.opaque_access_tokens,
            cors,
            registration_token,
        ))
    } else {
        None
    };
    let issue_only = [
        (args.rotate_every.is_some(), "--rotate-every"),
        (args.token_ttl.is_some(), "--token-ttl"),
        (args.alg.is_some(), "--alg"),
        (args.allow_claim_override, "--allow-claim-override"),
        (args.token_claims.is_some(), "--token-claims"),
    ];
    if !issue_tokens && let Some((_, flag)) = issue_only.iter().find(|(given, _)| *given) {
        bail!("{flag} needs --issue-tokens (it is about the server's own signing key and tokens)");
    }
    if args.grace.is_some() && args.rotate_every.is_none() {
        bail!("--grace needs --rotate-every (without rotation no key is retired)");
    }
    let alg = args.alg.unwrap_or(Alg::RS256);
    if alg.is_hmac() {
        bail!("--alg {alg}: the server publishes its key, and an HMAC secret cannot be published");
    }
    let max_age = duration("--max-age", &args.max_age)?;
    let ttl = match &args.token_ttl {
        Some(t) => duration("--token-ttl", t)?,
        None => DEFAULT_TTL,
    };
    let rotate_every = args
        .rotate_every
        .as_deref()
        .map(|r| duration("--rotate-every", r))
        .transpose()?;
    let grace = match &args.grace {
        Some(g) => duration("--grace", g)?,
        None => ttl,
    };
    if grace < ttl {
        bail!(
            "--grace {} is shorter than --token-ttl {}: tokens would outlive the key that signed them",
            when::span(grace.unsigned_abs()),
            when::span(ttl.unsigned_abs())
        );
    }
    if let Some(r) = rotate_every
        && r < max_age
    {
        bail!(
            "--rotate-every {} is shorter than --max-age {}: a new key must be published at least max-age before it signs",
            when::span(r.unsigned_abs()),
            when::span(max_age.unsigned_abs())
        );
    }
    let paths = Paths::new(args.issuer.as_deref(), &args.jwks_path)?;
    let token_claims = match &args.token_claims {
        Some(spec) => server::token_claims(spec)?,
        None => serde_json::Map::new(),
    };
    // Certificate files are checked before anything is written or bound.
    let tls_files = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls::from_files(cert, key)?),
        _ => None,
    };
    let limits = server::listen::Limits {
        header_timeout: Duration::from_secs(
            duration("--header-timeout", &args.header_timeout)?.unsigned_abs(),
        ),
        max_connections: match args.max_connections {
            0 => bail!("--max-connections must be at least 1"),
            n => n,
        },
        shutdown_grace: Duration::from_secs(5),
    };
    let request_timeout =
        Duration::from_secs(duration("--request-timeout", &args.request_timeout)?.unsigned_abs());
    let body_timeout =
        Duration::from_secs(duration("--body-timeout", &args.body_timeout)?.unsigned_abs());
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => KeyStore::open()?.root().join("server"),
    };
    // --store beats $JWKIT_STORE; --data-dir beats both.
    let store_url = match (&args.store, &args.data_dir) {
        (Some(url), _) => Some(url.clone()),
        (None, Some(_)) => None,
        (None, None) => std::env::var("JWKIT_STORE").ok().filter(|v| !v.is_empty()),
    };
    let backing = match &store_url {
        Some(url) => {
            let target = server::store::postgres::target(url)?;
            let seal = SealKey::load(args.store_key_file.as_deref())?;
            if issue_tokens && seal.is_none() {
                bail!(
                    "--issue-tokens with --store needs the store key that seals the signing keys in the database: --store-key-file FILE or JWKIT_STORE_KEY (the same on every replica)"
                );
            }
            Backing::Postgres(Box::new(target), seal)
        }
        None => {
            if args.store_key_file.is_some() {
                bail!(
                    "--store-key-file needs --store postgres://...: a data directory keeps the signing keys in files only its owner can read"
                );
            }
            Backing::Dir
        }
    };
    let token = upload::read_upload_token(args.upload_token_file.as_deref())?;
    if token.is_none() {
        output::note(
            "jwkit serve: uploads are off (no --upload-token-file or JWKIT_UPLOAD_TOKEN): uploads, deletes and rotation answer 403",
        );
    }
    let runtime = server::listen::runtime()?;
    let served = runtime.block_on(async move {
        let store: Box<dyn Store> = match backing {
            Backing::Dir => Box::new(
                DirStore::open(&data_dir)
                    .with_context(|| format!("opening the data directory {}", data_dir.display()))?,
            ),
            Backing::Postgres(target, seal) => Box::new(PgStore::open(*target, seal).await?),
        };
        let listener = server::listen::bind(&args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let local = listener.local_addr()?;
        let tls = match tls_files {
            Some(served) => Some(served),
            None if args.tls_self_signed => {
                let (served, ca) = server::tls::self_signed(&host_names(local, args.issuer.as_deref()))?;
                let out = args
                    .tls_ca_out
                    .clone()
                    .unwrap_or_else(|| data_dir.join("tls-ca.pem"));
                crate::atomic::commit(vec![crate::atomic::stage(&out, ca.as_bytes(), 0o644)?], true)
                    .with_context(|| format!("writing the CA certificate to {}", out.display()))?;
                output::log(format!(
                    "jwkit serve: the throwaway CA's certificate is in {} (verify-jwt --cacert {0})",
                    out.display()
                ));
                Some(served)
            }
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = args
            .issuer
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{local}"));
        let issue = if issue_tokens {
            let now = when::now();
            let rotation = store.rotation();
            let stale = store.active_signing().as_ref().is_none_or(|k| {
                signing_alg(k) != Some(alg)
                    || rotate_every.is_some_and(|r| now.saturating_sub(rotation.at) >= r)
            });
            // A compare-and-swap like every rotation: of replicas starting at once, one
            // rotates and the others take its key.
            if stale {
                store
                    .rotate(server::new_signing_key(alg)?, now, grace, now, rotation.count)
                    .await?;
            }
            if rotate_every.is_some() && store.next_signing().is_none() {
                store.add_next(server::new_signing_key(alg)?, now).await?;
            }
            if store.active_signing().is_none() {
                bail!("the store has no active signing key after start-up");
            }
            let expired = server::new_signing_key(alg)?;
            Some(Issuer {
                ttl,
                alg,
                expired_kid: expired.kid_or_thumbprint(),
                expired_key: SigningKey::new(&expired, alg)?,
                allow_override: args.allow_claim_override,
                grace,
                defaults: token_claims,
            })
        } else {
            None
        };
        let described = store.describe();
        let app = Arc::new(App {
            store,
            request_timeout,
            body_timeout,
            upload_token: token.as_deref().map(server::token_digest),
            jwks_uri: paths.jwks_uri(&issuer),
            issuer: issuer.clone(),
            max_age,
            issue,
            paths,
            idp,
            signer: std::sync::Mutex::new(None),
            tenants: Default::default(),
        });
        if let Some(every) = rotate_every {
            tokio::spawn(rotate_on_schedule(Arc::clone(&app), every, alg, grace));
        }
        if app.idp.is_some() {
            tokio::spawn(prune_idp_records(Arc::clone(&app)));
        }
        let acceptor = match &tls {
            Some(served) => {
                let acceptor = server::tls::acceptor(Arc::clone(served) as _)?;
                // SIGHUP reads the certificate files again; the listener stays.
                let t = Arc::clone(served);
                if let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                {
                    tokio::spawn(async move {
                        while hup.recv().await.is_some() {
                            // Off the async workers: a slow disk never holds a request.
                            let t = Arc::clone(&t);
                            let reloaded = tokio::task::spawn_blocking(move || t.reload())
                                .await
                                .unwrap_or_else(|e| Err(anyhow!("the reload failed: {e}")));
                            match reloaded {
                                Ok(true) => output::log("jwkit serve: TLS certificate reloaded"),
                                Ok(false) => {}
                                Err(e) => output::log(format!(
                                    "error: reloading the TLS certificate (the old one stays): {e:#}"
                                )),
                            }
                        }
                    });
                }
                Some(acceptor)
            }
            None => None,
        };
        output::log(format!(
            "jwkit serve: listening on {scheme}://{local} (issuer {}, {described})",
            output::escape(&issuer),
        ));
        server::listen::serve(listener, server::router(app), acceptor, limits, shutdown_signal())
            .await;
        output::log("jwkit serve: stopped");
        Ok::<(), anyhow::Error>(())
    });
    output::flush_log(Duration::from_secs(1));
    served?;
    Ok(ExitStatus::Success)
}

/// The names a self-signed certificate covers: loopback, the bound address, the issuer's host.
fn host_names(local: std::net::SocketAddr, issuer: Option<&str>) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !local.ip().is_unspecified() {
        names.push(local.ip().to_string());
    }
    if let Some(host) = issuer
        .and_then(|i| url::Url::parse(i).ok())
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
    {
        names.push(host);
    }
    names.sort();
    names.dedup();
    names
}

/// The alg a stored signing key was made for (its JWK `alg`).
fn signing_alg(k: &server::store::StoredSigning) -> Option<Alg> {
    k.jwk.get("alg")?.as_str()?.parse().ok()
}

/// Rotates the signing key every `every` seconds from the last rotation's due time, on the
/// store's rotation record. Replicas sharing a database all watch the same record and all
/// try when it is due; the compare-and-swap lets one through, and the others take its key.
async fn rotate_on_schedule(app: Arc<App>, every: i64, alg: Alg, grace: i64) {
    loop {
        let rotation = app.store.rotation();
        let due = rotation.at.saturating_add(every);
        let now_ms = when::now_ms();
        let wait_ms = due.saturating_mul(1000).saturating_sub(now_ms);
        if wait_ms > 0 {
            // Never longer than a second: another replica's rotation moves the record.
            tokio::time::sleep(Duration::from_millis(wait_ms.clamp(1, 1000).unsigned_abs())).await;
            continue;
        }
        let key = match tokio::task::spawn_blocking(move || server::new_signing_key(alg)).await {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                output::log(format!("error: making a signing key: {e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => {
                output::log(format!("error: making a signing key: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let now = when::now();
        // Far behind (every replica was down): the schedule starts again from now.
        let at = if now.saturating_sub(due) < every {
            due
        } else {
            now
        };
        match app.store.rotate(key, now, grace, at, rotation.count).await {
            Ok(Some(k)) => output::log(format!("rotated the signing key: now {}", k.kid)),
            Ok(None) => {}
            Err(e) => {
                output::log(format!("error: rotating the signing key: {e:#}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not when the future is
/// first polled: a signal that comes while the first requests are served is not lost (the
/// accept loop runs in tasks of its own, which may serve before the caller polls this).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(term) => {}
            _ = wait(int) => {}
        }
    }
}

/// Drops the identity provider's expired records (codes, sessions, tokens) every minute: on
/// a database, one replica at a time. Memory and table size follow the live records.
async fn prune_idp_records(app: Arc<server::App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        // A database that is down now is pruned on a later tick.
        let _ = app.store.record_prune(crate::when::now()).await;
    }
}
