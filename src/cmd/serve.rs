//! `jwkit serve`: set up the store and signing keys, bind, serve until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::ServeArgs;
use crate::crypto::{Curve, Key, KeyMeta, KeySpec, SigningKey};
use crate::exit::ExitStatus;
use crate::server::{self, App, Issuer, store::Store};
use crate::store::KeyStore;
use crate::{output, upload, when};

pub fn run(args: &ServeArgs) -> Result<ExitStatus> {
    let duration = |flag: &str, text: &str| -> Result<i64> {
        when::parse_duration(text)
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| anyhow!("{flag}: expected a positive duration such as 15m"))
    };
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => KeyStore::open()?.root().join("server"),
    };
    let token = upload::read_upload_token(args.upload_token_file.as_deref())?;
    if token.is_none() {
        output::warn(
            "no upload token (--upload-token-file or JWKIT_UPLOAD_TOKEN): uploads and deletes answer 403",
        );
    }
    let max_age = duration("--max-age", &args.max_age)?;
    let ttl = duration("--token-ttl", &args.token_ttl)?;
    let rotate_every = args
        .rotate_every
        .as_deref()
        .map(|r| duration("--rotate-every", r))
        .transpose()?;
    let grace = match &args.grace {
        Some(g) => duration("--grace", g)?,
        None => rotate_every.unwrap_or(86_400),
    };
    if !args.issue_tokens && rotate_every.is_some() {
        bail!("--rotate-every needs --issue-tokens (it rotates the server's own signing key)");
    }
    let store = Store::open(&data_dir)
        .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("binding {}", args.addr))?;
        let local = listener.local_addr()?;
        let base_url = args
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{local}"))
            .trim_end_matches('/')
            .to_string();
        let issue = if args.issue_tokens {
            let now = when::now();
            let stale = store
                .active_signing()
                .is_none_or(|k| rotate_every.is_some_and(|r| now - k.created >= r));
            if stale {
                store.rotate(&new_signing_key()?, now, grace)?;
            }
            let expired = new_signing_key()?;
            Some(Issuer {
                ttl,
                expired_kid: expired.kid_or_thumbprint(),
                expired_key: SigningKey::new(&expired, expired.default_alg()?)?,
            })
        } else {
            None
        };
        let app = Arc::new(App {
            store,
            upload_token: token.map(|t| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes())
                    .as_ref()
                    .to_vec()
            }),
            base_url: base_url.clone(),
            max_age,
            issue,
        });
        if let Some(every) = rotate_every {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(every.unsigned_abs()));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let app = Arc::clone(&app);
                    let done = tokio::task::spawn_blocking(move || {
                        new_signing_key().and_then(|k| app.store.rotate(&k, when::now(), grace))
                    })
                    .await;
                    match done {
                        Ok(Ok(k)) => eprintln!("rotated the signing key: now {}", k.kid),
                        Ok(Err(e)) => eprintln!("error: rotating the signing key: {e:#}"),
                        Err(e) => eprintln!("error: rotating the signing key: {e}"),
                    }
                }
            });
        }
        eprintln!(
            "jwkit serve: listening on {base_url} (data in {})",
            data_dir.display()
        );
        axum::serve(listener, server::router(app))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?;
        eprintln!("jwkit serve: stopped");
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(ExitStatus::Success)
}

/// The server's own token-signing keys are ES256 (P-256): small tokens, fast to verify.
fn new_signing_key() -> Result<Key> {
    let mut key = Key::generate(KeySpec::Ec(Curve::P256), KeyMeta::default(), false)?;
    key.meta.kid = Some(key.kid_or_thumbprint());
    Ok(key)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
