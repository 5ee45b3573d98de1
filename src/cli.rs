//! The command line, as clap derive types. Doc comments are the help text; the man pages and
//! completions in `man/` and `completions/` are generated from these definitions.

use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::crypto::{Alg, Curve, Hash};
pub use crate::output::ColorChoice;

/// Make, check and fix JSON Web Tokens and their keys.
///
/// jwkit generates keys (RSA, EC, Ed25519, HMAC) as PEM, JWK or JWKS, keeps them in a private
/// local key store, and converts, inspects and publishes them. Data goes to stdout, messages to
/// stderr; the exit status is 0 on success, 1 when a token is rejected, 2 on any other error.
#[derive(Debug, Parser)]
#[command(
    name = "jwkit",
    version,
    max_term_width = 100,
    propagate_version = true
)]
#[command(after_long_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// When to use colour on stderr: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Errors keep every layer of their cause (network errors are otherwise one line).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

impl Cli {
    /// Parses the process arguments. The commands scripts call in loops (generate-jwt,
    /// verify-jwt, decode) are parsed by a clap `Command` holding just that subcommand, built
    /// from the same definitions: building and dropping the whole tree was a tenth of a
    /// verify run. Help, version and every error go through the full parser, so what people
    /// see is the same either way.
    pub fn parse_args() -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if let Some(cli) = Cli::parse_fast(&args) {
            return cli;
        }
        // Help and usage errors follow --color, NO_COLOR and TERM=dumb like everything else.
        let mut cmd = Cli::command().color(clap_color(&args));
        let matches = cmd
            .try_get_matches_from_mut(args)
            .unwrap_or_else(|e| e.exit());
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
    }

    /// The one-subcommand parse, or None to leave it to the full parser.
    pub fn parse_fast(args: &[std::ffi::OsString]) -> Option<Cli> {
        use clap::FromArgMatches as _;
        let name = args.get(1)?.to_str()?;
        let asks_for_docs = args
            .iter()
            .skip(2)
            .any(|a| matches!(a.to_str(), Some("-h" | "--help" | "-V" | "--version")));
        if asks_for_docs {
            return None;
        }
        let sub = match name {
            "verify-jwt" => VerifyJwtArgs::augment_args(clap::Command::new("verify-jwt")),
            "generate-jwt" => GenerateJwtArgs::augment_args(clap::Command::new("generate-jwt")),
            "decode" => DecodeArgs::augment_args(clap::Command::new("decode")),
            _ => return None,
        };
        let mut cmd = GlobalArgs::augment_args(clap::Command::new("jwkit")).subcommand(sub);
        let mut matches = cmd.try_get_matches_from_mut(args).ok()?;
        let global = GlobalArgs::from_arg_matches_mut(&mut matches).ok()?;
        let (_, mut sub) = matches.remove_subcommand()?;
        let command = match name {
            "verify-jwt" => Command::VerifyJwt(Box::new(
                VerifyJwtArgs::from_arg_matches_mut(&mut sub).ok()?,
            )),
            "generate-jwt" => Command::GenerateJwt(Box::new(
                GenerateJwtArgs::from_arg_matches_mut(&mut sub).ok()?,
            )),
            _ => Command::Decode(DecodeArgs::from_arg_matches_mut(&mut sub).ok()?),
        };
        // None of this is needed again and the process is short-lived: skip the teardown.
        std::mem::forget((cmd, matches, sub));
        Some(Cli { global, command })
    }
}

/// The colour choice for clap's own output, read from the raw arguments before parsing:
/// `--color WHEN` (or `--color=WHEN`) wins; otherwise NO_COLOR or TERM=dumb turn colour off.
fn clap_color(args: &[std::ffi::OsString]) -> clap::ColorChoice {
    let mut given = None;
    let mut it = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix("--color=") {
            given = Some(v.to_string());
        } else if a == "--color" {
            given = it.next().map(str::to_string);
        }
    }
    match given.as_deref() {
        Some("always") => clap::ColorChoice::Always,
        Some("never") => clap::ColorChoice::Never,
        _ if crate::output::color_off_by_env() => clap::ColorChoice::Never,
        _ => clap::ColorChoice::Auto,
    }
}

const AFTER_HELP: &str = "\
Exit status: 0 success; 1 a token was rejected (verify-jwt); 2 any other error (usage, an unreadable
or malformed key or file, network).

Environment: JWKIT_HOME (key store root), JWKIT_SERVER, JWKIT_UPLOAD_TOKEN, JWKIT_JWKS_URL,
JWKIT_STORE and JWKIT_STORE_KEY (serve's PostgreSQL store), NO_COLOR.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a key pair or HMAC secret as PEM, JWK or JWKS.
    ///
    /// The kid is the key's RFC 7638 thumbprint unless --kid is given. Without --out or --save
    /// the private key goes to stdout; with --save it is kept in the key store and its kid is
    /// printed.
    #[command(visible_alias = "genkey")]
    GenerateKey(GenerateKeyArgs),

    /// Sign a JWT: claims from flags, JSON or stdin; the compact token on stdout.
    ///
    /// The header gets alg (from the key unless --alg), typ (JWT) and kid (the key's kid, else
    /// its thumbprint). Times take WHEN: a duration from now (30s, 15m, 1h, 7d, -5m), an
    /// RFC 3339 date, or @UNIX. iat is now unless --no-iat; --expired makes a token that
    /// expired an hour ago, for testing rejections.
    GenerateJwt(Box<GenerateJwtArgs>),

    /// Verify a token: signature, algorithm and claims, against a key, a key set, a JWKS URL, an
    /// OIDC issuer or a jwkit server.
    ///
    /// Strict by default: exp is required, alg none is never accepted, the alg must fit the
    /// selected key (and --alg), crit and duplicate JSON members are rejected, and header jwk,
    /// jku, x5u and x5c are never used. Valid: the claims on stdout, exit 0. Rejected: nothing
    /// on stdout, `error: token rejected: ...` on stderr, exit 1. Other errors: exit 2.
    VerifyJwt(Box<VerifyJwtArgs>),

    /// Give a token a new signature from a new key, claims kept byte for byte unless asked
    /// otherwise; with --scan, every token in any text (HAR files, logs, HTTP dumps).
    ///
    /// Header members keep their order; alg and kid become the new key's, and x5t, x5t#S256,
    /// x5c and jwk are dropped. A `Bearer ` prefix is kept. --scan writes the text back with
    /// every other byte identical, the same token always becoming the same new token.
    Resign(Box<ResignArgs>),

    /// Re-sign tokens live: an HTTP proxy that re-signs every token in the requests and
    /// responses passing through it, by the rules of `resign --scan`.
    ///
    /// With --upstream URL a reverse proxy: replay traffic at it and every request goes to the
    /// app with its tokens re-signed. Without, a forward proxy for clients that use
    /// HTTP_PROXY: absolute-form requests are re-signed, CONNECT tunnels pass untouched unless
    /// an interception CA is given. Nothing but tokens and lengths changes. A summary line on
    /// stderr every 10 s and at exit; -v for one line per request.
    Proxy(Box<ProxyArgs>),

    /// Show a token's header and claims, with readable times. Never verifies the signature.
    Decode(DecodeArgs),

    /// Inspect, convert and publish keys.
    #[command(subcommand)]
    Key(KeyCommand),

    /// Run a JWKS server: publish keys, take authenticated uploads, issue test tokens.
    ///
    /// Endpoints: GET /.well-known/jwks.json (also /jwks, /.well-known/jwks and every
    /// --jwks-path), GET /.well-known/openid-configuration, POST /jwks (upload; Authorization:
    /// Bearer <upload token>), DELETE /jwks/{kid}, POST /rotate (authenticated), POST /auth
    /// (with --issue-tokens; ?expired=true for an expired token), GET or POST /health, / and
    /// /connect, GET /ready; with --idp the OpenID endpoints. Binds 127.0.0.1 unless told
    /// otherwise. One log line per request on stderr; stops cleanly on SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),

    /// Print a shell completion script to stdout.
    Completions(CompletionsArgs),

    /// Print the man page, or write one page per command into a directory.
    Man(ManArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    Rsa,
    Ec,
    Ed25519,
    /// An X25519 key for JWE (ECDH-ES), written as a JWK (use: enc).
    X25519,
    Hmac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// PKCS#8 for private keys, SPKI for public keys.
    #[default]
    Pem,
    /// One JSON Web Key.
    Jwk,
    /// A JSON Web Key Set holding the key.
    Jwks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyUse {
    /// Signatures: the key never decrypts.
    Sig,
    /// Encryption (JWE): the key never signs or verifies.
    Enc,
}

impl ValueEnum for Alg {
    fn value_variants<'a>() -> &'a [Self] {
        &Alg::ALL
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

/// `generate-key --alg`: a JWS algorithm (a signing key) or a JWE key-management algorithm
/// (an encryption key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Sig(Alg),
    Enc(&'static str),
}

const KEY_ALGS: [KeyAlg; 29] = {
    let mut out = [KeyAlg::Enc(""); 29];
    let mut i = 0;
    while i < Alg::ALL.len() {
        out[i] = KeyAlg::Sig(Alg::ALL[i]);
        i += 1;
    }
    let mut j = 0;
    while j < crate::crypto::jwe::KEY_ALGS.len() {
        out[i + j] = KeyAlg::Enc(crate::crypto::jwe::KEY_ALGS[j]);
        j += 1;
    }
    out
};

impl ValueEnum for KeyAlg {
    fn value_variants<'a>() -> &'a [Self] {
        &KEY_ALGS
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            KeyAlg::Sig(a) => a.as_str(),
            KeyAlg::Enc(a) => a,
        }))
    }
}

impl ValueEnum for Curve {
    fn value_variants<'a>() -> &'a [Self] {
        &Curve::ALL
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Sha256,
    Sha384,
    Sha512,
}

impl From<HashArg> for Hash {
    fn from(h: HashArg) -> Hash {
        match h {
            HashArg::Sha256 => Hash::Sha256,
            HashArg::Sha384 => Hash::Sha384,
            HashArg::Sha512 => Hash::Sha512,
        }
    }
}

#[derive(Debug, Args)]
pub struct GenerateKeyArgs {
    /// Key type.
    #[arg(long = "type", short = 't', value_enum, default_value_t = KeyTypeArg::Rsa)]
    pub key_type: KeyTypeArg,

    /// RSA modulus size (2048, 3072, 4096; default 2048), or HMAC secret size in bits
    /// (default: the hash size of --alg, 256 for HS256).
    #[arg(long)]
    pub bits: Option<usize>,

    /// EC curve (default P-256).
    #[arg(long, value_enum)]
    pub curve: Option<Curve>,

    /// Algorithm to record in the JWK, restricting the key to it (default: none recorded; the key
    /// type's default RS256, ES256, ES384, ES512, ES256K, EdDSA or HS256 applies). A JWE
    /// key-management algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A128KW, dir, ...) makes an
    /// encryption key (use: enc); for --type hmac it sets the key's size.
    #[arg(long, value_enum)]
    pub alg: Option<KeyAlg>,

    /// Key ID (default: the RFC 7638 SHA-256 thumbprint).
    #[arg(long, allow_hyphen_values = true)]
    pub kid: Option<String>,

    /// Public key use recorded in the JWK.
    #[arg(long = "use", value_enum)]
    pub use_: Option<KeyUse>,

    /// Output format of the private key (and of --public-out).
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Pem)]
    pub format: Format,

    /// Write the private key to FILE (mode 0600) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Also write the public key to FILE.
    #[arg(long, value_name = "FILE")]
    pub public_out: Option<PathBuf>,

    /// Keep the key in the key store ($JWKIT_HOME/keys) and print its kid.
    #[arg(long)]
    pub save: bool,

    /// Overwrite existing files (and a stored key with the same kid).
    #[arg(long)]
    pub force: bool,

    /// Allow HMAC secrets shorter than the hash size (warns). RSA keys under 2048 bits are
    /// never generated: jwkit refuses to load them.
    #[arg(long)]
    pub insecure: bool,

    /// Upload the public key to this jwkit server ({URL}/jwks) and print the kid; with no URL,
    /// $JWKIT_SERVER.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub upload: Option<String>,

    /// The upload token (else $JWKIT_UPLOAD_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub upload_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the URL is printed on stderr).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub addr: String,

    /// Where keys are kept (default: server/ under the key store root).
    #[arg(long, value_name = "DIR", conflicts_with = "store")]
    pub data_dir: Option<PathBuf>,

    /// Keep the keys in PostgreSQL instead (else $JWKIT_STORE), shared by every replica
    /// started with the same URL: postgres://USER:PASSWORD@HOST:PORT/DB. The schema is created
    /// on first use. TLS: ?sslmode=require (verified; ?sslrootcert=FILE for a private CA),
    /// required by default but on loopback.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,

    /// The key that seals the server's signing keys in the database (AES-256-GCM; at least 32
    /// bytes, e.g. from `openssl rand -base64 32`; else $JWKIT_STORE_KEY). Every replica needs
    /// the same one; --issue-tokens with --store needs it.
    #[arg(long, value_name = "FILE")]
    pub store_key_file: Option<PathBuf>,

    /// The bearer token uploads and deletes need (else $JWKIT_UPLOAD_TOKEN; with neither,
    /// uploads answer 403).
    #[arg(long, value_name = "FILE")]
    pub upload_token_file: Option<PathBuf>,

    /// Keep a signing key of the server's own and answer POST /auth with tokens.
    #[arg(long)]
    pub issue_tokens: bool,

    /// The algorithm of the server's own signing key (with --issue-tokens; default RS256 with
    /// an RSA-2048 key, as most identity providers sign). Any signature alg but HS*.
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,

    /// Roll the server's signing key this often (with --issue-tokens). The next key is
    /// published one period before it starts signing, so the period must be at least
    /// --max-age.
    #[arg(long, value_name = "DUR")]
    pub rotate_every: Option<String>,

    /// How long a rotated-out signing key stays published (with --rotate-every; default and
    /// minimum: --token-ttl, so every token it signed verifies until it expires).
    #[arg(long, value_name = "DUR")]
    pub grace: Option<String>,

    /// Lifetime of /auth tokens (with --issue-tokens) [default: 15m].
    #[arg(long, value_name = "DUR")]
    pub token_ttl: Option<String>,

    /// Server-side claims for /auth tokens (with --issue-tokens): a JSON object, or @FILE
    /// holding one, e.g. '{"iss":"jwks-server","aud":"test-client","sub":"fake-user"}'. Any
    /// claim but iat, exp and nbf; iss may be any string. A request's own claims override
    /// them only with --allow-claim-override.
    #[arg(long, value_name = "JSON|@FILE")]
    pub token_claims: Option<String>,

    /// Let /auth requests set iss, iat, exp and nbf (and the --token-claims) themselves (with
    /// --issue-tokens).
    #[arg(long)]
    pub allow_claim_override: bool,

    /// Also be a test OpenID Connect provider: discovery, /authorize with a login page,
    /// /token (client_credentials, authorization_code with PKCE, refresh_token, token
    /// exchange), /userinfo, /introspect, /revoke, /logout; tokens signed by the server's key
    /// (implies --issue-tokens). Without --idp-config any client id and secret are accepted.
    #[arg(long)]
    pub idp: bool,

    /// The identity provider's clients, users, claim templates, scopes, lifetimes and
    /// failure injection (TOML, or JSON; see docs/idp.md).
    #[arg(long, value_name = "FILE", requires = "idp")]
    pub idp_config: Option<PathBuf>,

    /// An origin (scheme://host[:port]) whose browser apps may call discovery, the key set,
    /// /token, /par, /userinfo, /introspect and /revoke (CORS); repeatable. Without it any origin
    /// may (a test IdP's default; said on stderr at start).
    #[arg(long, value_name = "ORIGIN", requires = "idp")]
    pub cors_origin: Vec<String>,

    /// Dynamic client registration (RFC 7591, POST /register) needs this initial access token
    /// (the file's first line) as a Bearer token. Without it registration is open.
    #[arg(long, value_name = "FILE", requires = "idp")]
    pub registration_token: Option<PathBuf>,

    /// Issue opaque access tokens (random strings, checked by /userinfo and /introspect)
    /// instead of JWTs (RFC 9068).
    #[arg(long, requires = "idp")]
    pub opaque_access_tokens: bool,

    /// Cache-Control max-age of the JWKS.
    #[arg(long, value_name = "DUR", default_value = "5m")]
    pub max_age: String,

    /// The issuer, used exactly as given (a trailing slash kept) in tokens and discovery; its
    /// path is honoured: discovery at {issuer}/.well-known/openid-configuration and the key set
    /// under the same prefix (default: http://ADDR as bound).
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,

    /// Also serve the key set at PATH (repeatable), where a real provider keeps it:
    /// /oauth2/v1/keys, /realms/NAME/protocol/openid-connect/certs, ...
    #[arg(long = "jwks-path", value_name = "PATH")]
    pub jwks_path: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM), read again on SIGHUP.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a certificate from a throwaway CA made at start, for the server's host
    /// names; the CA certificate is written to --tls-ca-out (default: tls-ca.pem in the data
    /// directory), for clients to trust (verify-jwt --cacert).
    #[arg(long)]
    pub tls_self_signed: bool,

    /// Where --tls-self-signed writes the CA certificate.
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub tls_ca_out: Option<PathBuf>,

    /// A request's head must arrive within this, and a kept-alive connection that stays idle
    /// this long is closed.
    #[arg(long, value_name = "DUR", default_value = "10s")]
    pub header_timeout: String,

    /// A whole request (its body included) must be read and answered within this (else 408).
    #[arg(long, value_name = "DUR", default_value = "30s")]
    pub request_timeout: String,

    /// A request body sent without the upload token must arrive whole within this (else
    /// 408); requests bearing the upload token have --request-timeout.
    #[arg(long, value_name = "DUR", default_value = "5s")]
    pub body_timeout: String,

    /// At most this many open connections; when full, the one making the least progress
    /// (fewest bytes per second, inside a request or not; connections under a second old
    /// are spared) is closed to make room.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_connections: usize,
}

/// Where a key comes from: a file (PEM, DER, JWK or JWKS; `-` for stdin) or the key store.
#[derive(Debug, Args)]
pub struct KeyInput {
    /// Key file: PEM, DER, JWK or JWKS, recognised by content; `-` reads stdin.
    #[arg(
        value_name = "FILE",
        conflicts_with = "key",
        required_unless_present = "key"
    )]
    pub file: Option<String>,

    /// Use the stored key with this kid (see `jwkit key list`).
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub key: Option<String>,

    /// Pick the key with this kid when the file is a JWKS.
    #[arg(
        long,
        value_name = "KID",
        conflicts_with = "key",
        allow_hyphen_values = true
    )]
    pub kid: Option<String>,
}

/// The key a token is signed with: at most one source (generate-jwt needs one; resign needs one
/// unless --key-for rules name the keys).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct SigningKeyArgs {
    /// Signing key file: PEM, DER, JWK or JWKS (pick with --kid), recognised by content; `-`
    /// reads stdin.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<String>,

    /// Sign with the stored key with this kid (see `jwkit key list`).
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub key: Option<String>,

    /// HMAC secret: the raw bytes of FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<String>,

    /// HMAC secret: the value of the environment variable VAR (secrets never go in argv).
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
}

/// How an HMAC secret from --secret-file / --secret-env is taken.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// Accept an HMAC secret shorter than RFC 7518 §3.2 asks (32 bytes for HS256), such as an
    /// app's existing secret, with a warning (verify-jwt: also decrypt RSA1_5 JWEs).
    #[arg(long)]
    pub insecure: bool,

    /// The --secret-file or --secret-env value is base64 (standard or URL-safe, padded or not,
    /// as `kubectl get secret -o yaml` shows it); the decoded bytes are the secret.
    #[arg(long)]
    pub secret_base64: bool,
}

impl SecretArgs {
    pub fn options(&self) -> crate::secret::SecretOptions {
        crate::secret::SecretOptions {
            insecure: self.insecure,
            base64: self.secret_base64,
        }
    }
}

#[derive(Debug, Args)]
pub struct GenerateJwtArgs {
    #[command(flatten)]
    pub signing: SigningKeyArgs,

    #[command(flatten)]
    pub secret: SecretArgs,

    /// Header kid (default: the key's kid, else its RFC 7638 thumbprint). With a JWKS key
    /// file, also picks the key.
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub kid: Option<String>,

    /// Leave kid out of the header.
    #[arg(long, conflicts_with = "kid")]
    pub no_kid: bool,

    /// Signature algorithm (default: from the key: RS256, ES256, ES384, ES512, ES256K, EdDSA or
    /// HS256, or the key's JWK alg).
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,

    /// Header typ; an empty value leaves typ out.
    #[arg(long, value_name = "TYP", default_value = "JWT")]
    pub typ: String,

    /// Extra header member (VALUE is JSON when it parses as JSON, else a string). alg, crit and
    /// b64 are refused; use --kid and --typ for those.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,

    /// A claim; VALUE is JSON when it parses as JSON (admin=true, n=5, roles=["a"]), else a
    /// string.
    #[arg(long = "claim", short = 'c', value_name = "NAME=VALUE")]
    pub claim: Vec<String>,

    /// A claim whose VALUE is always a string.
    #[arg(long = "claim-str", value_name = "NAME=VALUE")]
    pub claim_str: Vec<String>,

    /// Claims as a JSON object: inline, @FILE, or - for stdin. Flags win over its members.
    #[arg(long, value_name = "JSON|@FILE|-")]
    pub claims: Option<String>,

    /// Issuer (iss).
    #[arg(long, allow_hyphen_values = true)]
    pub iss: Option<String>,

    /// Subject (sub).
    #[arg(long, allow_hyphen_values = true)]
    pub sub: Option<String>,

    /// Audience (aud); repeat for an array.
    #[arg(long, allow_hyphen_values = true)]
    pub aud: Vec<String>,

    /// Token ID (jti); with no value, a random 128-bit ID.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub jti: Option<String>,

    /// Expiry (exp), as WHEN (default: 1h from now, so the token passes verify-jwt, which
    /// requires exp).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub exp: Option<String>,

    /// Leave exp out (a token that never expires; verify-jwt then needs --ignore-exp).
    #[arg(long, conflicts_with = "exp")]
    pub no_exp: bool,

    /// Not before (nbf), as WHEN.
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub nbf: Option<String>,

    /// Issued at (iat), as WHEN (default: now).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub iat: Option<String>,

    /// Leave iat out.
    #[arg(long, conflicts_with = "iat")]
    pub no_iat: bool,

    /// A token that expired an hour ago (iat two hours ago), for testing rejections.
    #[arg(long, conflicts_with_all = ["exp", "no_exp", "iat", "no_iat"])]
    pub expired: bool,

    /// Sign, then encrypt the token to this key (a nested JWT, cty JWT): a public or private
    /// RSA, EC or X25519 key, or a symmetric key (PEM, JWK, or a JWK set: the first key that
    /// can encrypt).
    #[arg(long, value_name = "FILE", group = "encrypt")]
    pub encrypt_key_file: Option<String>,

    /// Sign, then encrypt the token to this encryption key in the key store (by kid or
    /// thumbprint; made with generate-key --use enc --save).
    #[arg(
        long,
        value_name = "KID",
        group = "encrypt",
        allow_hyphen_values = true
    )]
    pub encrypt_key: Option<String>,

    /// The JWE key management algorithm (default: the key's JWK alg, else RSA-OAEP-256 for RSA,
    /// ECDH-ES+A256KW for EC and X25519, A128KW/A192KW/A256KW by a symmetric key's size).
    #[arg(long, value_name = "ALG", requires = "encrypt")]
    pub jwe_alg: Option<String>,

    /// The JWE content encryption (default A256GCM).
    #[arg(long, value_name = "ENC", requires = "encrypt")]
    pub jwe_enc: Option<String>,

    /// Make a DPoP proof (RFC 9449) for one request instead of a token: typ dpop+jwt, the
    /// key's public JWK in the header, claims jti, htm, htu, iat (--iat dates it), ath with
    /// --ath, and what --claim adds (a server's nonce=...). Needs --htm, --htu and an
    /// asymmetric key.
    #[arg(long, requires_all = ["htm", "htu"], conflicts_with_all = ["encrypt", "exp", "no_exp", "nbf", "expired", "iss", "sub", "aud", "jti"])]
    pub dpop_proof: bool,

    /// The HTTP method of the request a DPoP proof is for (GET, POST, ...).
    #[arg(long, value_name = "METHOD")]
    pub htm: Option<String>,

    /// The URI of the request a DPoP proof is for (its query and fragment are left out).
    #[arg(long, value_name = "URL")]
    pub htu: Option<String>,

    /// The access token the request presents: the proof gets its hash (ath).
    #[arg(long, value_name = "TOKEN", requires = "dpop_proof")]
    pub ath: Option<String>,
}

/// How JWEs are decrypted (decode, verify-jwt, resign, proxy): one key file, one stored key,
/// or one password.
#[derive(Debug, Args)]
#[group(id = "decrypt", multiple = false)]
pub struct DecryptArgs {
    /// Decrypt JWEs with this private or symmetric key (PEM, JWK or JWK set; the JWE's kid
    /// picks from a set). `-` reads stdin.
    #[arg(long, value_name = "FILE")]
    pub decrypt_key_file: Option<String>,

    /// Decrypt JWEs with this encryption key from the key store (by kid or thumbprint).
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub decrypt_key: Option<String>,

    /// Decrypt PBES2 JWEs with the password in this file (one trailing newline is dropped). A
    /// PBES2 token re-signed is encrypted again to --encrypt-key-file or --encrypt-key.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Where verification keys come from: exactly one (or $JWKIT_JWKS_URL, then $JWKIT_SERVER).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct KeySourceArgs {
    /// A key file (PEM, DER, JWK; a private key's public half is used) or a JWKS file.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<String>,

    /// The stored key with this kid.
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub key: Option<String>,

    /// A JWKS file.
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<String>,

    /// A JWKS URL [env: JWKIT_JWKS_URL].
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,

    /// An OIDC issuer: its discovery document names the JWKS, and the token's iss must match.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,

    /// A jwkit server: its /.well-known/jwks.json [env: JWKIT_SERVER].
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// An HMAC secret: the raw bytes of FILE (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<String>,

    /// An HMAC secret: the value of the environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyJwtArgs {
    /// The token (a `Bearer ` prefix is fine); `-` or nothing reads stdin. With --batch: a file
    /// of tokens, one per line (`-` or nothing: stdin).
    #[arg(value_name = "TOKEN")]
    pub token_arg: Option<String>,

    /// The token, as a flag.
    #[arg(long = "token", value_name = "TOKEN", conflicts_with = "token_arg")]
    pub token: Option<String>,

    #[command(flatten)]
    pub source: KeySourceArgs,

    #[command(flatten)]
    pub secret: SecretArgs,

    /// Allowed algorithm (repeatable); default: whatever the selected key supports.
    #[arg(long, value_enum)]
    pub alg: Vec<Alg>,

    /// Required issuer (iss).
    #[arg(long, allow_hyphen_values = true)]
    pub iss: Option<String>,

    /// Accepted audience (repeatable); the token's aud must hold one of them. A token that has
    /// aud is rejected unless --aud names one of its values or --any-aud is given (RFC 7519
    /// §4.1.3).
    #[arg(long, allow_hyphen_values = true)]
    pub aud: Vec<String>,

    /// Accept a token whatever its aud says (the caller does not identify itself by audience).
    #[arg(long, conflicts_with = "aud")]
    pub any_aud: bool,

    /// Required subject (sub).
    #[arg(long, allow_hyphen_values = true)]
    pub sub: Option<String>,

    /// Required header typ (compared without case, with or without "application/").
    #[arg(long)]
    pub typ: Option<String>,

    /// Clock skew tolerated for exp and nbf.
    #[arg(long, value_name = "DUR", default_value = "60s")]
    pub leeway: String,

    /// A claim that must be present (repeatable).
    #[arg(long, value_name = "CLAIM")]
    pub require: Vec<String>,

    /// Accept tokens that have expired or have no exp (warns).
    #[arg(long)]
    pub ignore_exp: bool,

    /// Judge exp, nbf and iat as of WHEN instead of now (a capture's time, for example).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub at: Option<String>,

    /// Verify the signature only: the payload need not be JWT claims (it is printed as is), and
    /// no claim is checked.
    #[arg(long, conflicts_with_all = ["iss", "aud", "any_aud", "sub", "typ", "issuer", "require", "ignore_exp", "at"])]
    pub raw: bool,

    /// Tokens one per line; one result per line, in input order.
    #[arg(long)]
    pub batch: bool,

    /// Threads for --batch (default: all cores).
    #[arg(long, value_name = "N", requires = "batch")]
    pub threads: Option<usize>,

    /// JSON on stdout: {"valid":true,"kid":..,"alg":..,"claims":{..}} or
    /// {"valid":false,"error":{"kind":..,"message":..}}; one object per line with --batch.
    #[arg(long)]
    pub json: bool,

    /// A JWE is decrypted, then its inner token's signature and claims are verified.
    #[command(flatten)]
    pub decrypt: DecryptArgs,

    /// Accept an encrypted-only JWT (no signature inside) under a public-key algorithm
    /// (RSA-OAEP, ECDH-ES), which anyone with the public key can make (warns).
    #[arg(long)]
    pub allow_unsigned: bool,

    /// Also check the DPoP proof the token was presented with (RFC 9449): its signature by
    /// its own jwk, typ, htm, htu, iat within 5 minutes (of --at), ath the token's hash, and
    /// the token bound to its key (cnf.jkt its thumbprint).
    #[arg(long, value_name = "PROOF", requires_all = ["dpop_htm", "dpop_htu"], conflicts_with = "batch")]
    pub dpop: Option<String>,

    /// The method of the request the token and its DPoP proof came with.
    #[arg(
        long = "htm",
        id = "dpop_htm",
        value_name = "METHOD",
        requires = "dpop"
    )]
    pub dpop_htm: Option<String>,

    /// The URI of the request the token and its DPoP proof came with.
    #[arg(long = "htu", id = "dpop_htu", value_name = "URL", requires = "dpop")]
    pub dpop_htu: Option<String>,

    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// How remote key sets are fetched.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Neither read nor write the JWKS cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Allow plain-HTTP key sets off loopback (warns).
    #[arg(long)]
    pub allow_http: bool,

    /// The whole of each HTTP fetch (name resolution, connecting, TLS, headers and body)
    /// must finish within this.
    #[arg(long, value_name = "DUR", default_value = "10s")]
    pub timeout: String,

    /// Extra trusted CA certificates (PEM) for HTTPS, besides the system roots.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResignArgs {
    /// The token (a `Bearer ` prefix is kept); `-` or nothing reads stdin.
    #[arg(value_name = "TOKEN", conflicts_with = "scan")]
    pub token: Option<String>,

    /// Re-sign every token in a text (a file, or `-`/nothing for stdin) and write the text back.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub scan: Option<String>,

    /// Write the result to FILE (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Overwrite --out if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,

    /// Speak GoReplay's middleware protocol on stdin and stdout (`gor --middleware "jwkit
    /// resign --goreplay --key-file K"`): one hex-encoded message per line; requests come back
    /// with their tokens re-signed and Content-Length fixed, each flushed as it is done; other
    /// messages come back unchanged.
    #[arg(long, conflicts_with_all = ["scan", "token", "out"])]
    pub goreplay: bool,

    /// Threads for --scan (default: all cores).
    #[arg(long, value_name = "N", requires = "scan")]
    pub threads: Option<usize>,

    /// What --scan reads: auto (recognised by content), text, http (a stream of raw HTTP
    /// messages: Content-Length is fixed) or har (HAR 1.2: bodySize and content.size are fixed).
    #[arg(long, value_enum, default_value_t = ScanFormat::Auto, requires = "scan")]
    pub format: ScanFormat,

    #[command(flatten)]
    pub plan: PlanArgs,
}

/// How tokens are re-signed and which: the new key (or `--key-for` rules), claim changes and
/// selectors. Shared by `resign` and `proxy`, so both follow exactly one set of rules.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub signing: SigningKeyArgs,

    #[command(flatten)]
    pub secret: SecretArgs,

    /// A nested token (a JWE holding a JWS) is decrypted, its inner token re-signed, and the
    /// result encrypted again to the key it was encrypted to, or to --encrypt-key-file.
    #[command(flatten)]
    pub decrypt: DecryptArgs,

    /// Encrypt the re-signed nested token to this key instead of the one it was encrypted to.
    #[arg(long, value_name = "FILE", requires = "decrypt")]
    pub encrypt_key_file: Option<String>,

    /// Encrypt the re-signed nested token to this stored encryption key (by kid) instead.
    #[arg(
        long,
        value_name = "KID",
        requires = "decrypt",
        conflicts_with = "encrypt_key_file",
        allow_hyphen_values = true
    )]
    pub encrypt_key: Option<String>,

    /// The new header kid (default: the new key's kid, else its thumbprint). With a JWKS key
    /// file, also picks the key.
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub kid: Option<String>,

    /// Keep the token's own kid.
    #[arg(long, conflicts_with = "kid")]
    pub keep_kid: bool,

    /// The new algorithm (default: from the new key).
    #[arg(long, value_enum)]
    pub alg: Option<Alg>,

    /// Make the token current: iat becomes now, and nbf and exp move by as much, so the
    /// lifetime is kept.
    #[arg(long)]
    pub refresh: bool,

    /// For --refresh of a token with exp but neither iat nor nbf (its lifetime unknown): exp
    /// becomes now + DUR.
    #[arg(long, value_name = "DUR", default_value = "1h", requires = "refresh")]
    pub lifetime: String,

    /// Set exp, as WHEN (after --refresh).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true)]
    pub exp: Option<String>,

    /// Set a claim; VALUE is JSON when it parses as JSON, else a string (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,

    /// Remove a claim (repeatable).
    #[arg(long = "unset", value_name = "NAME")]
    pub unset: Vec<String>,

    /// The old signature must verify first, against a key or JWKS file, or a JWKS URL.
    #[arg(long, value_name = "FILE|URL")]
    pub verify_with: Option<String>,

    /// Re-sign old tokens matching MATCH with KEY (repeatable): MATCH is alg:ALG, kid:KID or
    /// iss:ISS (of the old token); KEY is file:PATH, secret-file:PATH, secret-env:VAR or
    /// store:KID. A token no rule matches is left as it is, unless a default key is given.
    #[arg(long = "key-for", value_name = "MATCH=KEY")]
    pub key_for: Vec<String>,

    /// With --scan or --goreplay: re-sign only tokens in this place (repeatable): json:NAME (a
    /// JSON member, at any depth, also in JSON held in strings and in base64 bodies),
    /// header:NAME, cookie:NAME, param:NAME (query string or form field).
    #[arg(long, value_name = "PLACE")]
    pub only: Vec<crate::scan::Selector>,

    /// Re-sign only tokens whose header alg is ALG (repeatable).
    #[arg(long, value_name = "ALG")]
    pub match_alg: Vec<String>,

    /// Re-sign only tokens whose header kid is KID (repeatable).
    #[arg(long, value_name = "KID", allow_hyphen_values = true)]
    pub match_kid: Vec<String>,

    /// Re-sign only tokens whose iss claim is ISS (repeatable).
    #[arg(long, value_name = "ISS")]
    pub match_iss: Vec<String>,

    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// Which traffic the proxy re-signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxySide {
    Request,
    Response,
    Both,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where to listen (host:port; loopback unless told otherwise).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    /// Be a reverse proxy for this origin (http:// or https://): every request goes there.
    /// Without it, a forward proxy.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// Re-sign the tokens of requests, of responses, or of both.
    #[arg(long, value_enum, default_value_t = ProxySide::Both)]
    pub side: ProxySide,

    /// Forward proxy: terminate CONNECT tunnels with certificates signed by this CA (PEM), so
    /// HTTPS traffic is re-signed too (with --intercept-key).
    #[arg(
        long,
        value_name = "CERT",
        requires = "intercept_key",
        conflicts_with = "intercept_self_signed"
    )]
    pub intercept_ca: Option<PathBuf>,

    /// The private key (PEM) of --intercept-ca.
    #[arg(long, value_name = "KEY", requires = "intercept_ca")]
    pub intercept_key: Option<PathBuf>,

    /// Forward proxy: terminate CONNECT tunnels with a throwaway CA made at start, written to
    /// --intercept-ca-out for clients to trust.
    #[arg(long, requires = "intercept_ca_out")]
    pub intercept_self_signed: bool,

    /// Where --intercept-self-signed writes its CA certificate.
    #[arg(long, value_name = "FILE", requires = "intercept_self_signed")]
    pub intercept_ca_out: Option<PathBuf>,

    /// Do not verify the upstream's TLS certificate (warns).
    #[arg(long)]
    pub insecure_upstream: bool,

    /// Bodies larger than this (and server-sent event streams, WebSocket connections) pass
    /// through untouched; also the cap on a decoded (gzip, deflate, br) body.
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub max_body: String,

    /// Add Forwarded and X-Forwarded-For headers (by default no header is added).
    #[arg(long)]
    pub forwarded: bool,

    /// An upstream must connect and send its answer's head within this (else 504).
    #[arg(long, value_name = "DUR", default_value = "30s")]
    pub upstream_timeout: String,

    /// A request's head must arrive within this; an idle kept-alive connection closes after it.
    #[arg(long, value_name = "DUR", default_value = "10s")]
    pub header_timeout: String,

    /// A request's body must arrive within this (else 408).
    #[arg(long, value_name = "DUR", default_value = "30s")]
    pub body_timeout: String,

    /// At most this many open connections; when full, the one making the least progress is
    /// closed to make room.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_connections: usize,

    #[command(flatten)]
    pub plan: PlanArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Auto,
    Text,
    Http,
    Har,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The token (a `Bearer ` prefix is fine); `-` or nothing reads stdin.
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,

    /// One JSON document: {header, claims, signature, times}; for a JWE also jwe_header.
    #[arg(long)]
    pub json: bool,

    /// Write a JWE's decrypted plaintext to stdout, byte for byte (for scripts).
    #[arg(long, requires = "decrypt")]
    pub plaintext: bool,

    #[command(flatten)]
    pub decrypt: DecryptArgs,

    /// Also decrypt RSA1_5 (PKCS#1 v1.5 key transport, open to padding-oracle attacks).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys in the key store: kid, type, alg, created.
    List(KeyListArgs),

    /// Show one stored key: metadata and its public JWK (--private for the private JWK).
    Show(KeyShowArgs),

    /// Print the public half of a key.
    Public(KeyPublicArgs),

    /// Print a key's RFC 7638 thumbprint.
    Thumbprint(KeyThumbprintArgs),

    /// Convert a key between PEM, JWK and JWKS.
    Convert(KeyConvertArgs),

    /// Merge keys and files into one public JWKS (a duplicate kid is an error).
    Jwks(KeyJwksArgs),

    /// Upload a stored key's public half to a jwkit server.
    Upload(KeyUploadArgs),
}

#[derive(Debug, Args)]
pub struct KeyUploadArgs {
    /// The kid (or thumbprint) of a stored key.
    #[arg(allow_hyphen_values = true)]
    pub kid: String,

    /// The server (default: $JWKIT_SERVER).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// The upload token (else $JWKIT_UPLOAD_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub upload_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeyShowArgs {
    /// The kid (or thumbprint) of a stored key.
    #[arg(allow_hyphen_values = true)]
    pub kid: String,

    /// Include the private JWK.
    #[arg(long)]
    pub private: bool,
}

#[derive(Debug, Args)]
pub struct KeyPublicArgs {
    #[command(flatten)]
    pub input: KeyInput,

    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Pem)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct KeyThumbprintArgs {
    #[command(flatten)]
    pub input: KeyInput,

    /// Hash function.
    #[arg(long, value_enum, default_value_t = HashArg::Sha256)]
    pub hash: HashArg,

    /// Print as an RFC 9278 URI (urn:ietf:params:oauth:jwk-thumbprint:sha-256:...).
    #[arg(long)]
    pub uri: bool,
}

#[derive(Debug, Args)]
pub struct KeyConvertArgs {
    #[command(flatten)]
    pub input: KeyInput,

    /// Output format.
    #[arg(long, short = 'f', value_enum)]
    pub format: Format,

    /// Output only the public half.
    #[arg(long)]
    pub public: bool,
}

#[derive(Debug, Args)]
pub struct KeyJwksArgs {
    /// Key or JWKS files to merge (`-` for stdin).
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// Stored keys to add, by kid (repeatable).
    #[arg(long = "key", value_name = "KID", allow_hyphen_values = true)]
    pub keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write jwkit.1 and one page per command into DIR instead of printing jwkit.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Replace pages that already exist in --out DIR.
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// The fast path parses exactly as the full parser does, and leaves errors to it.
    #[test]
    fn fast_parse_agrees_with_the_full_parser() {
        use clap::Parser;
        let cases: &[&[&str]] = &[
            &[
                "jwkit",
                "verify-jwt",
                "--key-file",
                "k.pem",
                "--alg",
                "RS256",
                "--aud",
                "a",
                "--aud",
                "b",
                "TOKEN",
            ],
            &[
                "jwkit",
                "verify-jwt",
                "--color",
                "never",
                "--batch",
                "--threads",
                "2",
                "--jwks-url",
                "https://x",
                "f.txt",
            ],
            &[
                "jwkit",
                "generate-jwt",
                "--key-file",
                "-",
                "-c",
                "a=1",
                "--claim-str",
                "b=2",
                "--jti",
                "--exp",
                "-5m",
            ],
            &[
                "jwkit",
                "generate-jwt",
                "--secret-env",
                "S",
                "--jti",
                "x",
                "--no-iat",
                "--typ",
                "",
            ],
            &["jwkit", "decode", "--json", "a.b.c"],
            &["jwkit", "decode"],
        ];
        for case in cases {
            let args: Vec<std::ffi::OsString> = case.iter().map(Into::into).collect();
            let fast = super::Cli::parse_fast(&args).expect("fast path");
            let full = super::Cli::try_parse_from(&args).expect("full parse");
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{case:?}");
        }
        for bad in [
            &["jwkit", "verify-jwt", "--alg", "none", "t"][..],
            &["jwkit", "generate-jwt", "--help"],
            &["jwkit", "decode", "--nope"],
            &["jwkit", "key", "list"],
        ] {
            let args: Vec<std::ffi::OsString> = bad.iter().map(Into::into).collect();
            assert!(super::Cli::parse_fast(&args).is_none(), "{bad:?}");
        }
    }
}
