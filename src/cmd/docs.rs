//! `jwkit completions SHELL` and `jwkit man`: generated from the clap definitions; the copies
//! committed under `completions/` and `man/` are checked against these by a test.

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::exit::ExitStatus;
use crate::{atomic, output};

pub fn completions(args: &CompletionsArgs) -> Result<ExitStatus> {
    output::data(completion_script(args.shell))?;
    Ok(ExitStatus::Success)
}

/// The completion script for one shell.
pub fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "jwkit", &mut out);
    out
}

pub fn man(args: &ManArgs) -> Result<ExitStatus> {
    let pages = man_pages()?;
    match &args.out {
        None => {
            let top = pages
                .into_iter()
                .next()
                .map(|(_, page)| page)
                .unwrap_or_default();
            output::data(top)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            // Every page is checked before any is written, and each is written atomically (a
            // temporary file renamed into place): a link planted at a page's name is replaced,
            // never followed, and an existing page is kept unless --force.
            let paths: Vec<_> = pages.iter().map(|(name, _)| dir.join(name)).collect();
            for path in &paths {
                if !args.force && std::fs::symlink_metadata(path).is_ok() {
                    bail!(
                        "{} already exists (use --force to overwrite)",
                        path.display()
                    );
                }
            }
            let staged = pages
                .iter()
                .zip(&paths)
                .map(|((_, page), path)| atomic::stage(path, page, 0o644))
                .collect::<Result<Vec<_>>>()?;
            atomic::commit(staged, args.force)?;
        }
    }
    Ok(ExitStatus::Success)
}

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success; for verify\-jwt: the token (every token, with \-\-batch) is valid.
.TP
\fB1\fR
verify\-jwt (and resign \-\-verify\-with): the token is not valid: malformed, bad signature, expired, not yet valid, wrong iss/aud/typ, alg not allowed, unknown kid.
.TP
\fB2\fR
Anything else: usage, an unreadable or malformed key, file or claims, network or server failure; for commands that do not verify (decode, resign), a malformed token too.
"#;

/// `(file name, roff)` for jwkit.1 and one page per (sub)command, jwkit.1 first.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, &mut pages)?;
    Ok(pages)
}

fn collect(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).manual("jwkit manual");
    let mut page = Vec::new();
    man.render(&mut page)?;
    page.extend_from_slice(EXIT_STATUS.as_bytes());
    pages.push((man.get_filename(), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
    }
    Ok(())
}
