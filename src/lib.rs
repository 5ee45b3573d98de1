//! jwkit: a JWT client and key toolkit. `run` dispatches one parsed command line.

pub mod atomic;
pub mod checked_keys;
pub mod cli;
pub mod cmd;
pub mod crypto;
pub mod exit;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod input;
pub mod jwks_client;
pub mod output;
pub mod parallel;
pub mod proxy;
pub mod scan;
pub mod secret;
pub mod server;
pub mod store;
pub mod upload;
pub mod when;

use cli::{Cli, Command};
use exit::ExitStatus;

/// Runs one command. Errors come back to `main`, which prints them once.
pub fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    output::init_color(cli.global.color);
    output::init_verbose(cli.global.verbose);
    crypto::set_primality_memo(&checked_keys::MEMO);
    match &cli.command {
        Command::GenerateKey(args) => cmd::generate_key::run(args),
        Command::GenerateJwt(args) => cmd::generate_jwt::run(args),
        Command::VerifyJwt(args) => cmd::verify_jwt::run(args),
        Command::Resign(args) => cmd::resign::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Decode(args) => cmd::decode::run(args),
        Command::Key(sub) => cmd::key::run(sub),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Completions(args) => cmd::docs::completions(args),
        Command::Man(args) => cmd::docs::man(args),
    }
}
