//! `jwkit resign`: one token, or every token in a text (`--scan`: logs, JSON lines, raw HTTP
//! streams, HAR files) or in GoReplay's middleware pipe (`--goreplay`), each re-signed by the
//! key its old form calls for (`--key-for`), only where chosen (`--only`, `--match-*`), with
//! declared lengths kept right. `plan` decides what happens to one token; `scan` walks texts.

mod goreplay;
pub(crate) mod plan;
mod scan;

use anyhow::{Result, bail};

use crate::cli::ResignArgs;
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
    if !crate::crypto::jwe::is_jwe(&raw) && plan.opens_nested() {
        output::warn("the token is not a JWE: the decryption key is not used");
    }
    // A JWE in its JSON serialization is taken whole (and comes back compact).
    let pasted = crate::crypto::jwe::pasted(raw.trim());
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
