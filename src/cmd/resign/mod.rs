//! `jwkit resign`: one token, or every token in a text (`--scan`: logs, JSON lines, raw HTTP
//! streams, HAR files) or in GoReplay's middleware pipe (`--goreplay`), each re-signed by the
//! key its old form calls for (`--key-for`), only where chosen (`--only`, `--match-*`), with
//! declared lengths kept right. `plan` decides what happens to one token; `scan` walks texts.

mod goreplay;
pub(crate) mod plan;
mod scan;

use anyhow::{Result, anyhow, bail};

use crate::cli::ResignArgs;
use crate::crypto::jws;
use crate::crypto::resign::Skip;
use crate::exit::ExitStatus;
use crate::{atomic, input, output, when};

use plan::{NOT_VERIFIED, Plan};

pub fn run(args: &ResignArgs) -> Result<ExitStatus> {
    input::one_stdin(&[
        args.plan.signing.key_file.as_deref(),
        args.plan.signing.secret_file.as_deref(),
        args.scan.as_deref().or(args.token.as_deref()),
    ])?;
    if let Some(out) = &args.out {
        atomic::refuse_existing(out, args.force)?;
    }
    if !args.plan.only.is_empty() && args.scan.is_none() && !args.goreplay {
        bail!("--only needs --scan or --goreplay (a single token has no place)");
    }
    if args.plan.only.len() > 64 {
        bail!("at most 64 --only selectors, not {}", args.plan.only.len());
    }
    let now = when::now();
    // Everything that can fail for reasons other than a token fails here, before any output.
    let plan = Plan::new(&args.plan, now)?;
    let verifier = match &args.plan.verify_with {
        Some(source) => Some(plan::verifier(source, &args.plan)?),
        None => None,
    };
    let check = |token: &str| plan::check_old(verifier.as_ref(), token, now);
    if args.goreplay {
        return goreplay::run(args, &plan, &check);
    }
    match &args.scan {
        Some(src) => scan::scan(args, src, &plan, &check),
        None => single(args, &plan, &check),
    }
}

fn single(
    args: &ResignArgs,
    plan: &Plan,
    check: &dyn Fn(&str) -> Result<(), Skip>,
) -> Result<ExitStatus> {
    let raw = input::read_token(args.token.as_deref())?;
    // What surrounds the token (a `Bearer ` prefix, quotes, a trailing comma) is put back
    // around the new one, less the outer white space.
    if crate::crypto::jwe::is_jwe(&raw) {
        return single_nested(args, plan, check, raw.trim());
    }
    if args.decrypt_key_file.is_some() || args.decrypt_key.is_some() || args.password_file.is_some()
    {
        output::warn("the token is not a JWE: the decryption key is not used");
    }
    let pasted = jws::pasted(raw.trim());
    match plan.resign(&pasted.token, check, None) {
        Ok(new) => {
            let line = format!("{}{new}{}\n", pasted.before, pasted.after);
            match &args.out {
                Some(path) => atomic::commit(
                    vec![atomic::stage(path, line.as_bytes(), 0o600)?],
                    args.force,
                )?,
                None => output::data(line)?,
            }
            Ok(ExitStatus::Success)
        }
        Err(skip) if skip.reason == NOT_VERIFIED => {
            output::error(&format!("token rejected: {}", skip.message));
            Ok(ExitStatus::Rejected)
        }
        Err(skip) => bail!("cannot re-sign the token: {}", skip.message),
    }
}

/// A nested token: decrypted, its inner JWS re-signed by the plan, then encrypted again with
/// the same algorithms, to the key it was encrypted to or to `--encrypt-key-file`.
fn single_nested(
    args: &ResignArgs,
    plan: &Plan,
    check: &dyn Fn(&str) -> Result<(), Skip>,
    token: &str,
) -> Result<ExitStatus> {
    use crate::crypto::jwe;
    let keys = crate::cmd::decode::decrypt_keys(
        args.decrypt_key_file.as_deref(),
        args.decrypt_key.as_deref(),
        args.password_file.as_deref(),
    )?;
    if keys.is_empty() {
        bail!(
            "the token is a JWE (encrypted): give --decrypt-key-file FILE (or --password-file FILE) to re-sign what it holds"
        );
    }
    let done = jwe::decrypt(token, &keys, &jwe::Options::default()).map_err(|e| anyhow!("{e}"))?;
    let inner = std::str::from_utf8(&done.plaintext)
        .ok()
        .map(str::trim)
        .filter(|t| jws::Compact::parse(t).is_ok())
        .ok_or_else(|| {
            anyhow!("the JWE holds no signed token (it is encrypted only): there is no signature to re-sign")
        })?;
    let new_inner = match plan.resign(inner, check, None) {
        Ok(new) => new,
        Err(skip) if skip.reason == NOT_VERIFIED => {
            output::error(&format!("token rejected: {}", skip.message));
            return Ok(ExitStatus::Rejected);
        }
        Err(skip) => bail!("cannot re-sign the inner token: {}", skip.message),
    };
    let (target, same) = match crate::cmd::generate_jwt::load_encrypt_key(
        args.encrypt_key_file.as_deref(),
        args.encrypt_key.as_deref(),
    )? {
        Some(key) => (key, false),
        None => (
            keys[done.key_index].to_encrypt_key().ok_or_else(|| {
                anyhow!("a PBES2 token is encrypted again to a key: give --encrypt-key-file FILE or --encrypt-key KID")
            })?,
            true,
        ),
    };
    let str_of = |name: &str| {
        done.header
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    // The same algorithms when the key takes them; a new key gets its own default alg.
    let alg = match (same, str_of("alg")) {
        (true, Some(a)) => a,
        _ => target.default_alg(),
    };
    let enc = str_of("enc").unwrap_or_else(|| jwe::DEFAULT_ENC.to_string());
    let mut extra = serde_json::Map::new();
    for name in ["cty", "typ"] {
        if let Some(v) = done.protected.get(name) {
            extra.insert(name.into(), v.clone());
        }
    }
    let new = jwe::encrypt(new_inner.as_bytes(), &target, &alg, &enc, extra)
        .map_err(|e| anyhow!("encrypting the re-signed token: {e}"))?;
    let line = format!("{new}\n");
    match &args.out {
        Some(path) => atomic::commit(
            vec![atomic::stage(path, line.as_bytes(), 0o600)?],
            args.force,
        )?,
        None => output::data(line)?,
    }
    Ok(ExitStatus::Success)
}
