//! `jwkit proxy`: check the flags, build the re-sign plan (the one `resign` uses), bind, and
//! proxy until SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cli::{ProxyArgs, ProxySide};
use crate::cmd::resign::plan::{Plan, check_old, verifier};
use crate::crypto::resign::Skip;
use crate::exit::ExitStatus;
use crate::proxy::{self, Config, Proxy, Sides, Upstream, rewrite::Rewriter, tls};
use crate::scan::Scanner;
use crate::{output, when};

/// `16MiB`, `512KiB`, `1G`, `1000000` (bytes).
fn size(flag: &str, text: &str) -> Result<usize> {
    let t = text.trim();
    let digits = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &t[digits.len()..];
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: expected a size such as 16MiB, not {text:?}"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => bail!("{flag}: unknown unit {unit:?} (B, KiB, MiB, GiB)"),
    };
    let bytes = n
        .checked_mul(mult)
        .filter(|b| *b > 0 && *b <= 1 << 32)
        .ok_or_else(|| anyhow::anyhow!("{flag} {text}: between 1 byte and 4 GiB"))?;
    Ok(bytes as usize)
}

fn upstream(url: &str) -> Result<Upstream> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("--upstream {url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("--upstream {url}: expected an http or https URL");
    }
    let Some(host) = parsed.host_str() else {
        bail!("--upstream {url}: no host");
    };
    if parsed.path() != "/" && !parsed.path().is_empty() {
        bail!("--upstream {url}: an origin (scheme, host, port) without a path");
    }
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    Ok(Upstream {
        scheme: parsed.scheme().to_string(),
        authority,
    })
}

pub fn run(args: &ProxyArgs) -> Result<ExitStatus> {
    let now = when::now();
    if args.plan.only.len() > 64 {
        bail!("at most 64 --only selectors, not {}", args.plan.only.len());
    }
    let plan = Plan::new(&args.plan, now)?;
    let verify = match &args.plan.verify_with {
        Some(source) => Some(verifier(source, &args.plan)?),
        None => None,
    };
    let upstream = args.upstream.as_deref().map(upstream).transpose()?;
    if upstream.is_some() && (args.intercept_ca.is_some() || args.intercept_self_signed) {
        bail!(
            "--intercept-ca and --intercept-self-signed are for a forward proxy (without --upstream)"
        );
    }
    let max_body = size("--max-body", &args.max_body)?;
    let secs = |flag: &str, text: &str| -> Result<Duration> {
        Ok(Duration::from_secs(
            when::duration(flag, text)?.unsigned_abs(),
        ))
    };
    let upstream_timeout = secs("--upstream-timeout", &args.upstream_timeout)?;
    let body_timeout = secs("--body-timeout", &args.body_timeout)?;
    let limits = crate::server::listen::Limits {
        header_timeout: secs("--header-timeout", &args.header_timeout)?,
        max_connections: match args.max_connections {
            0 => bail!("--max-connections must be at least 1"),
            n => n,
        },
        shutdown_grace: Duration::from_secs(5),
    };
    if args.insecure_upstream {
        output::warn("--insecure-upstream: the upstream's TLS certificate is not verified");
    }
    let upstream_tls =
        tls::upstream_config(args.plan.fetch.cacert.as_deref(), args.insecure_upstream)?;
    let intercept = match (
        &args.intercept_ca,
        &args.intercept_key,
        &args.intercept_ca_out,
    ) {
        (Some(cert), Some(key), _) => Some(Arc::new(tls::Intercept::from_files(cert, key)?)),
        (_, _, Some(out)) if args.intercept_self_signed => {
            let (ca, pem) = tls::Intercept::self_signed()?;
            tls::write_ca(out, &pem)?;
            output::note(&format!(
                "jwkit proxy: the interception CA's certificate is in {} (clients trust it to be intercepted)",
                out.display()
            ));
            Some(Arc::new(ca))
        }
        _ => None,
    };
    let sides = Sides {
        requests: args.side != ProxySide::Response,
        responses: args.side != ProxySide::Request,
    };
    let plan = Arc::new(plan);
    let verify = Arc::new(verify);
    let resign = {
        let plan = Arc::clone(&plan);
        Box::new(move |token: &str, at: i64| -> Result<String, Skip> {
            let check = |t: &str| check_old(verify.as_ref().as_ref(), t, at);
            plan.resign(token, &check, Some(at))
        })
    };
    let rewriter = Arc::new(Rewriter::new(
        Scanner {
            only: args.plan.only.clone(),
            nested: true,
        },
        resign,
    ));
    let config = Arc::new(Config {
        upstream,
        sides,
        max_body,
        forwarded: args.forwarded,
        upstream_timeout,
        body_timeout,
        intercept,
        verbose: output::verbose(),
    });
    // The main thread takes signals and writes the summary; the worker threads serve.
    let runtime = crate::server::listen::main_runtime()?;
    let served = runtime.block_on(async move {
        let listener = crate::server::listen::bind(&args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let local = listener.local_addr()?;
        let mode = match &args.upstream {
            Some(u) => format!("reverse proxy for {}", output::escape(u)),
            None => "forward proxy".to_string(),
        };
        output::log(format!("jwkit proxy: listening on http://{local} ({mode})"));
        let reporter = tokio::spawn(proxy::report(Arc::clone(&rewriter)));
        let make = || {
            let proxy = Arc::new(Proxy::new(
                Arc::clone(&config),
                Arc::clone(&rewriter),
                upstream_tls.clone(),
            ));
            move |req, peer| proxy::handle(Arc::clone(&proxy), req, peer)
        };
        crate::server::listen::serve_per_thread(
            listener,
            crate::server::listen::threads(),
            make,
            limits,
            crate::cmd::serve::shutdown_signal(),
        )
        .await
        .context("starting the worker threads")?;
        reporter.abort();
        output::log(rewriter.stats.line());
        output::log("jwkit proxy: stopped");
        Ok::<(), anyhow::Error>(())
    });
    output::flush_log(Duration::from_secs(1));
    served?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_upstreams_are_read_as_written() {
        assert_eq!(size("--max-body", "16MiB").ok(), Some(16 << 20));
        assert_eq!(size("--max-body", "512k").ok(), Some(512 << 10));
        assert_eq!(size("--max-body", "100").ok(), Some(100));
        for bad in ["", "0", "12 parsecs", "-1M", "99999G"] {
            assert!(size("--max-body", bad).is_err(), "{bad}");
        }
        let u = upstream("https://app.internal:8443").expect("upstream");
        assert_eq!(
            (u.scheme.as_str(), u.authority.as_str()),
            ("https", "app.internal:8443")
        );
        assert!(upstream("http://app/base/path").is_err());
        assert!(upstream("ftp://app").is_err());
    }
}
