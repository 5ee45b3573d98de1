//! `jwkit verify-jwt`: resolve the key source, verify one token or a batch, report.

use std::io::{BufRead, BufWriter, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::cli::{FetchArgs, KeySourceArgs, VerifyJwtArgs};
use crate::crypto::jwe;
use crate::crypto::verify::{Policy, Rejection, TrustedKeys, Verified, verify_token};
use crate::crypto::{self, JwkSet, b64, jws};
use crate::exit::ExitStatus;
use crate::jwks_client::{FetchOptions, JwksClient, Origin};
use crate::secret::{self, SecretOptions};
use crate::store::KeyStore;
use crate::{input, output, when};

/// An error that is not about the token, with its stable kind for `--json`.
pub(crate) struct Failure {
    pub(crate) kind: &'static str,
    pub(crate) err: anyhow::Error,
}

pub(crate) trait KindExt<T> {
    fn kind(self, kind: &'static str) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> KindExt<T> for Result<T, E> {
    fn kind(self, kind: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            kind,
            err: e.into(),
        })
    }
}

pub fn run(args: &VerifyJwtArgs) -> Result<ExitStatus> {
    match run_checked(args) {
        Ok(status) => Ok(status),
        Err(Failure { kind, err }) => {
            if args.json && !args.batch {
                let doc =
                    json!({"valid": false, "error": {"kind": kind, "message": format!("{err:#}")}});
                output::data_line(&doc.to_string())?;
            }
            Err(err)
        }
    }
}

fn run_checked(args: &VerifyJwtArgs) -> Result<ExitStatus, Failure> {
    let policy = policy(args).kind("usage")?;
    if args.ignore_exp {
        output::warn("--ignore-exp: expired tokens and tokens without exp are accepted");
    }
    if args.fetch.allow_http {
        output::warn(
            "--allow-http: key sets may come over plain HTTP, where anyone on the path can replace them",
        );
    }
    let at = args
        .at
        .as_deref()
        .map(|w| when::parse_when(w, when::now()).map_err(|e| anyhow!("--at: {e}")))
        .transpose()
        .kind("usage")?;
    let mut keys = Keys::resolve(&args.source, &args.secret.options(), &args.fetch, &policy)?;
    let clock = Clock(at);
    let dec = Decryption::from_args(args)?;
    if args.batch {
        batch(args, &policy, &mut keys, clock, &dec)
    } else {
        single(args, &policy, &mut keys, clock, &dec)
    }
}

/// The moment tokens are judged at: now, or `--at`.
#[derive(Clone, Copy)]
struct Clock(Option<i64>);

impl Clock {
    fn now(self) -> i64 {
        self.0.unwrap_or_else(when::now)
    }
}

fn policy(args: &VerifyJwtArgs) -> Result<Policy> {
    let mut iss = args.iss.clone();
    if let Some(issuer) = &args.source.issuer {
        match &iss {
            Some(i) if i != issuer => bail!("--iss {i:?} contradicts --issuer {issuer:?}"),
            _ => iss = Some(issuer.clone()),
        }
    }
    let leeway = when::parse_duration(&args.leeway).map_err(|e| anyhow!("--leeway: {e}"))?;
    if leeway < 0 {
        bail!("--leeway must not be negative");
    }
    Ok(Policy {
        algs: args.alg.clone(),
        leeway,
        iss,
        aud: args.aud.clone(),
        any_aud: args.any_aud,
        sub: args.sub.clone(),
        typ: args.typ.clone(),
        require: args.require.clone(),
        ignore_exp: args.ignore_exp,
        raw: args.raw,
    })
}

/// The trusted keys, and for a remote set what is needed to refetch it on an unknown kid.
pub(crate) struct Keys {
    pub(crate) trusted: TrustedKeys,
    remote: Option<Remote>,
}

struct Remote {
    client: JwksClient,
    url: String,
    /// True once the set has come from the network in this run (then a refetch is pointless).
    fresh: bool,
    /// How old the cached copy in use is, when it came from the cache.
    cached_age_ms: Option<i64>,
}

fn jwks_checker(body: &[u8]) -> Result<()> {
    JwkSet::parse(body)
        .map(drop)
        .map_err(|e| anyhow!("not a usable JWKS: {e}"))
}

impl Keys {
    pub(crate) fn resolve(
        s: &KeySourceArgs,
        secret: &SecretOptions,
        fetch: &FetchArgs,
        policy: &Policy,
    ) -> Result<Keys, Failure> {
        let local = |trusted| Keys {
            trusted,
            remote: None,
        };
        if let Some(key) = secret::load(s.secret_file.as_deref(), s.secret_env.as_deref(), *secret)
            .kind("key_invalid")?
        {
            return Ok(local(
                TrustedKeys::single(&key, &policy.algs).kind("key_invalid")?,
            ));
        }
        if let Some(spec) = &s.key_file {
            let bytes = input::read(spec, "key file", input::MAX_KEY_BYTES).kind("io")?;
            let is_set = crypto::is_jwks(&bytes);
            let trusted = if is_set {
                TrustedKeys::from_set(JwkSet::parse(&bytes).kind("key_invalid")?, &policy.algs)
            } else {
                let key = crypto::load_key(&bytes, None)
                    .with_context(|| format!("loading key from {spec}"))
                    .kind("key_invalid")?;
                TrustedKeys::single(&key, &policy.algs).kind("key_invalid")?
            };
            return Ok(local(non_empty(trusted, spec)?));
        }
        if let Some(kid) = &s.key {
            let key = KeyStore::open()
                .and_then(|st| st.find(kid))
                .kind("key_invalid")?
                .into_key();
            return Ok(local(
                TrustedKeys::single(&key, &policy.algs).kind("key_invalid")?,
            ));
        }
        if let Some(spec) = &s.jwks_file {
            let bytes = input::read(spec, "JWKS file", input::MAX_KEY_BYTES).kind("io")?;
            let set = JwkSet::parse(&bytes)
                .with_context(|| format!("loading {spec}"))
                .kind("key_invalid")?;
            return Ok(local(non_empty(
                TrustedKeys::from_set(set, &policy.algs),
                spec,
            )?));
        }
        let timeout = when::parse_duration(&fetch.timeout)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| anyhow!("--timeout: expected a positive duration such as 10s"))
            .kind("usage")?;
        let mut client = JwksClient::new(FetchOptions {
            timeout: Duration::from_secs(timeout.unsigned_abs()),
            allow_http: fetch.allow_http,
            cacert: fetch.cacert.clone(),
            use_cache: !fetch.no_cache,
        });
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url = if let Some(issuer) = &s.issuer {
            discover(&mut client, issuer)?
        } else if let Some(url) = &s.jwks_url {
            url.clone()
        } else if let Some(server) = &s.server {
            server_jwks(server)
        } else if let Some(url) = env("JWKIT_JWKS_URL") {
            url
        } else if let Some(server) = env("JWKIT_SERVER") {
            server_jwks(&server)
        } else {
            return Err(anyhow!(
                "no key source: use --key-file, --key, --jwks-file, --jwks-url, --issuer, --server, --secret-file or --secret-env (or set JWKIT_JWKS_URL or JWKIT_SERVER)"
            ))
            .kind("usage");
        };
        let (body, origin) = client.get(&url, &jwks_checker).kind("network")?;
        let set = JwkSet::parse(body.as_bytes()).kind("key_invalid")?;
        // A server's set may be empty (every key deleted): then the token is what fails, as
        // unknown_kid, not the key source.
        let trusted = TrustedKeys::from_fetched_set(set, &policy.algs);
        let cached_age_ms = match origin {
            Origin::Network => None,
            Origin::Cache { age_ms } => Some(age_ms),
        };
        Ok(Keys {
            trusted,
            remote: Some(Remote {
                client,
                url,
                fresh: cached_age_ms.is_none(),
                cached_age_ms,
            }),
        })
    }

    /// For an unknown_kid message: where the set came from, when it came from the cache.
    fn cache_note(&self) -> Option<String> {
        let remote = self.remote.as_ref()?;
        let age = remote.cached_age_ms?;
        Some(format!(
            "the key set from {} was cached {} ago; --no-cache fetches it anew",
            crate::jwks_client::redact(&remote.url),
            if age < 1000 {
                format!("{age}ms")
            } else {
                when::span((age / 1000).unsigned_abs())
            }
        ))
    }

    /// After an unknown kid: one refetch of a remote set that came from the cache (rate-limited
    /// per URL across runs, see `jwks_client::REFETCH_WINDOW_MS`). True when the keys were
    /// replaced.
    pub(crate) fn refetch(&mut self, policy: &Policy) -> Result<bool, Failure> {
        let Some(remote) = &mut self.remote else {
            return Ok(false);
        };
        if remote.fresh {
            return Ok(false);
        }
        remote.fresh = true;
        let Some(body) = remote
            .client
            .refetch(&remote.url, &jwks_checker)
            .kind("network")?
        else {
            return Ok(false);
        };
        let set = JwkSet::parse(body.as_bytes()).kind("key_invalid")?;
        self.trusted = TrustedKeys::from_fetched_set(set, &policy.algs);
        remote.cached_age_ms = None;
        Ok(true)
    }
}

fn non_empty(trusted: TrustedKeys, from: &str) -> Result<TrustedKeys, Failure> {
    if trusted.is_empty() {
        let why = if trusted.skipped.is_empty() {
            "it holds no keys".to_string()
        } else {
            format!("skipped: {}", trusted.skipped.join("; "))
        };
        return Err(anyhow!("no usable verification key in {from} ({why})")).kind("key_invalid");
    }
    Ok(trusted)
}

fn server_jwks(server: &str) -> String {
    format!("{}/.well-known/jwks.json", server.trim_end_matches('/'))
}

/// OIDC discovery: the document's issuer must equal the one asked for; its jwks_uri is used.
fn discover(client: &mut JwksClient, issuer: &str) -> Result<String, Failure> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let check = |body: &[u8]| -> Result<()> {
        let doc = crypto::json::parse_object(body)
            .map_err(|e| anyhow!("not a discovery document: {e}"))?;
        match (doc.get("issuer"), doc.get("jwks_uri")) {
            (Some(Value::String(_)), Some(Value::String(_))) => Ok(()),
            _ => bail!("the discovery document lacks issuer or jwks_uri"),
        }
    };
    let (body, _) = client.get(&url, &check).kind("network")?;
    let doc = crypto::json::parse_object(body.as_bytes())
        .map_err(|e| anyhow!(e))
        .kind("network")?;
    let said = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if said != issuer {
        return Err(anyhow!(
            "the discovery document at {} names issuer {said:?}, not {issuer:?}; refusing its keys",
            crate::jwks_client::redact(&url)
        ))
        .kind("network");
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    client.check_url(&jwks_uri).kind("network")?;
    Ok(jwks_uri)
}

/// Adds the cache note (`Keys::cache_note`) to an unknown_kid rejection.
fn explain(r: &mut Rejection, note: Option<&str>) {
    if r.kind == crypto::verify::Kind::UnknownKid
        && let Some(note) = note
    {
        r.message.push_str("; ");
        r.message.push_str(note);
    }
}

/// Verifies, and on an unknown kid refetches a remote set once and tries again.
fn verify_with_refetch(
    token: &str,
    keys: &mut Keys,
    policy: &Policy,
    now: i64,
    dec: &Decryption,
) -> Result<Result<Verified, Rejection>, Failure> {
    let first = verify_any(token, &keys.trusted, policy, now, dec);
    let result = match &first {
        Err(r) if r.kind == crypto::verify::Kind::UnknownKid && keys.refetch(policy)? => {
            verify_any(token, &keys.trusted, policy, now, dec)
        }
        _ => first,
    };
    Ok(result.map_err(|mut r| {
        explain(&mut r, keys.cache_note().as_deref());
        r
    }))
}

/// How JWEs are opened before their signature is verified.
pub(crate) struct Decryption {
    keys: Vec<jwe::DecryptKey>,
    opts: jwe::Options,
    allow_unsigned: bool,
}

impl Decryption {
    /// A copy for one thread of a batch, sharing no aws-lc key with the others.
    fn independent_copy(&self) -> Option<Decryption> {
        Some(Decryption {
            keys: self
                .keys
                .iter()
                .map(jwe::DecryptKey::independent_copy)
                .collect::<Option<Vec<_>>>()?,
            opts: self.opts,
            allow_unsigned: self.allow_unsigned,
        })
    }

    fn from_args(args: &VerifyJwtArgs) -> Result<Decryption, Failure> {
        let keys = crate::cmd::decode::decrypt_keys(&args.decrypt).kind("key_invalid")?;
        if args.allow_unsigned {
            output::warn(
                "--allow-unsigned: encrypted-only tokens under public-key algorithms (which anyone with the public key can make) are accepted",
            );
        }
        Ok(Decryption {
            keys,
            opts: jwe::Options {
                allow_rsa1_5: args.secret.insecure,
                ..jwe::Options::default()
            },
            allow_unsigned: args.allow_unsigned,
        })
    }
}

/// Verifies a JWS; a JWE is first decrypted: a nested JWT's inner token is then verified as
/// any other, and an encrypted-only one is taken only when its encryption authenticates its
/// sender (a shared key) or `--allow-unsigned` says so.
fn verify_any(
    token: &str,
    keys: &TrustedKeys,
    policy: &Policy,
    now: i64,
    dec: &Decryption,
) -> Result<Verified, Rejection> {
    use crypto::verify::Kind;
    if !jwe::is_jwe(token) {
        return verify_token(token, keys, policy, now);
    }
    if dec.keys.is_empty() {
        return Err(Rejection {
            kind: Kind::Malformed,
            message: "the token is a JWE (encrypted): give --decrypt-key-file FILE or --password-file FILE".into(),
        });
    }
    let done = jwe::decrypt(token, &dec.keys, &dec.opts).map_err(|e| Rejection {
        kind: match e {
            jwe::Error::Failed => Kind::DecryptFailed,
            jwe::Error::Malformed(_) => Kind::Malformed,
            jwe::Error::Unsupported(_) => Kind::AlgNotAllowed,
            jwe::Error::NoKey(_) => Kind::UnknownKid,
        },
        message: e.to_string(),
    })?;
    if let Ok(text) = std::str::from_utf8(&done.plaintext)
        && jws::Compact::parse(text.trim()).is_ok()
    {
        return verify_token(text.trim(), keys, policy, now);
    }
    let alg = done.header.get("alg").and_then(Value::as_str).unwrap_or("");
    if (alg.starts_with("RSA") || alg.starts_with("ECDH")) && !dec.allow_unsigned {
        return Err(Rejection {
            kind: Kind::Unsigned,
            message: format!(
                "the token is encrypted ({}) but not signed: anyone with the public key could have made it; --allow-unsigned accepts it",
                output::escape(alg)
            ),
        });
    }
    crypto::verify::verify_claims(&done.plaintext, policy, now)
}

/// The token from the argument or stdin, as pasted; an input that cannot be a token (too long,
/// not UTF-8) is a rejection like any other malformed token.
fn read_token(arg: Option<&str>) -> Result<Result<String, Rejection>, Failure> {
    match input::read_token(arg) {
        Ok(raw) => Ok(Ok(jwe::pasted(&raw).token.into_owned())),
        Err(e) => match e.downcast_ref::<jws::MalformedToken>() {
            Some(m) => Ok(Err(Rejection {
                kind: crypto::verify::Kind::Malformed,
                message: m.to_string(),
            })),
            None => Err(Failure { kind: "io", err: e }),
        },
    }
}

fn single(
    args: &VerifyJwtArgs,
    policy: &Policy,
    keys: &mut Keys,
    clock: Clock,
    dec: &Decryption,
) -> Result<ExitStatus, Failure> {
    let arg = args.token.as_deref().or(args.token_arg.as_deref());
    let verdict = match read_token(arg)? {
        Ok(token) => verify_with_refetch(&token, keys, policy, clock.now(), dec)?
            .and_then(|v| dpop_holds(args, &token, v, clock.now())),
        Err(r) => Err(r),
    };
    match verdict {
        Ok(v) => {
            if args.json {
                output::data_line(&valid_json(&v).to_string()).kind("io")?;
            } else if policy.raw {
                output::data(&v.payload).kind("io")?;
            } else {
                output::json(&v.claims).kind("io")?;
            }
            Ok(ExitStatus::Success)
        }
        Err(r) => {
            if args.json {
                let doc = json!({"valid": false, "error": {"kind": r.kind, "message": r.message}});
                output::data_line(&doc.to_string()).kind("io")?;
            }
            output::error(&format!(
                "token rejected: {} ({})",
                r.message,
                r.kind.as_str()
            ));
            Ok(ExitStatus::Rejected)
        }
    }
}

/// `--dpop PROOF --htm --htu`: the proof holds for the request and the token (its `ath`),
/// and the token is bound to the proof's key (`cnf.jkt`, RFC 9449 §6).
fn dpop_holds(
    args: &VerifyJwtArgs,
    token: &str,
    v: Verified,
    now: i64,
) -> Result<Verified, Rejection> {
    let Some(proof) = args.dpop.as_deref() else {
        return Ok(v);
    };
    let bad = |m: String| Rejection {
        kind: crypto::verify::Kind::DpopInvalid,
        message: m,
    };
    let proof = jws::pasted(proof).token.into_owned();
    let checked = crypto::dpop::check(
        &proof,
        &crypto::dpop::Expect {
            htm: args.dpop_htm.as_deref().unwrap_or_default(),
            htu: args.dpop_htu.as_deref().unwrap_or_default(),
            now,
            max_age: 300,
            access_token: Some(token),
            nonces: None,
        },
    )
    .map_err(|e| bad(e.to_string()))?;
    let bound = v
        .claims
        .as_ref()
        .and_then(|c| c.get("cnf"))
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str);
    match bound {
        Some(jkt) if jkt == checked.jkt => Ok(v),
        Some(_) => Err(bad(
            "the token is bound to another key (cnf.jkt is not the proof key's thumbprint)".into(),
        )),
        None => Err(bad(
            "the token is not DPoP-bound (no cnf.jkt): a proof proves nothing for it".into(),
        )),
    }
}

fn valid_json(v: &Verified) -> Value {
    let mut doc = Map::new();
    doc.insert("valid".into(), true.into());
    doc.insert("kid".into(), v.kid.clone().map_or(Value::Null, Value::from));
    doc.insert(
        "alg".into(),
        v.alg.map_or(Value::Null, |a| a.as_str().into()),
    );
    match &v.claims {
        Some(c) => {
            doc.insert("claims".into(), Value::Object(c.clone()));
        }
        None => {
            let payload = match std::str::from_utf8(&v.payload) {
                Ok(t) => t.to_string(),
                Err(_) => b64::encode(&v.payload),
            };
            doc.insert("payload".into(), payload.into());
        }
    }
    Value::Object(doc)
}

/// One line of `--batch --json` output.
#[derive(Serialize)]
struct BatchResult<'a> {
    line: usize,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alg: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<BatchError<'a>>,
}

#[derive(Serialize)]
struct BatchError<'a> {
    kind: &'a str,
    message: &'a str,
}

/// Lines are verified in chunks of this many, each chunk split over the threads.
const CHUNK: usize = 16 * 1024;

fn batch(
    args: &VerifyJwtArgs,
    policy: &Policy,
    keys: &mut Keys,
    clock: Clock,
    dec: &Decryption,
) -> Result<ExitStatus, Failure> {
    if args.token.is_some() {
        return Err(anyhow!(
            "--batch reads tokens from a file or stdin, not --token"
        ))
        .kind("usage");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let reader: Box<dyn BufRead + Send> = match args.token_arg.as_deref() {
        None | Some("-") => Box::new(std::io::BufReader::with_capacity(1 << 16, std::io::stdin())),
        Some(path) => Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            std::fs::File::open(path)
                .with_context(|| format!("reading tokens from {path}"))
                .kind("io")?,
        )),
    };
    let as_json = args.json;
    type Results = Vec<Outcome>;
    // Three stages run at once: a reader fills chunks, this thread verifies them on all cores,
    // a writer prints the previous chunk. Bounded channels keep memory to a few chunks.
    let (valid, rejected) = std::thread::scope(|scope| -> Result<(usize, usize), Failure> {
        let (chunk_tx, chunk_rx) =
            std::sync::mpsc::sync_channel::<Result<Vec<(usize, String)>, Failure>>(2);
        let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<(Vec<(usize, String)>, Results)>(2);
        scope.spawn(move || read_chunks(reader, &chunk_tx));
        let writer = scope.spawn(move || -> std::io::Result<(usize, usize)> {
            let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let (mut valid, mut rejected) = (0, 0);
            for (chunk, results) in out_rx {
                for ((line, _), r) in chunk.iter().zip(&results) {
                    match r {
                        Ok(_) => valid += 1,
                        Err(_) => rejected += 1,
                    }
                    write_result(&mut out, as_json, *line, r)?;
                }
            }
            out.flush()?;
            Ok((valid, rejected))
        });
        for chunk in chunk_rx {
            let chunk = chunk?;
            let now = clock.now();
            let mut results = verify_parallel(&chunk, &keys.trusted, policy, now, threads, dec);
            let unknown =
                |r: &Outcome| matches!(r, Err(e) if e.kind == crypto::verify::Kind::UnknownKid);
            if results.iter().any(unknown) && keys.refetch(policy)? {
                for (i, r) in results.iter_mut().enumerate() {
                    if unknown(r) {
                        *r = outcome(verify_any(
                            &jwe::pasted(&chunk[i].1).token,
                            &keys.trusted,
                            policy,
                            now,
                            dec,
                        ));
                    }
                }
            }
            let note = keys.cache_note();
            for r in results.iter_mut() {
                if let Err(e) = r {
                    explain(e, note.as_deref());
                }
            }
            if out_tx.send((chunk, results)).is_err() {
                break; // the writer stopped (a closed stdout): its error is reported below
            }
        }
        drop(out_tx);
        writer
            .join()
            .map_err(|_| anyhow!("the output thread failed"))
            .kind("io")?
            .kind("io")
    })?;
    if valid + rejected == 0 {
        return Err(anyhow!("no tokens on input")).kind("usage");
    }
    output::note(&format!(
        "{} tokens: {valid} valid, {rejected} rejected",
        valid + rejected
    ));
    Ok(if rejected == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Rejected
    })
}

/// Reads non-blank lines into chunks of `CHUNK`, numbered from 1 as in the input. A line that
/// is not UTF-8 is kept with its bad bytes replaced, so it is rejected as malformed on its own.
fn read_chunks(
    mut reader: Box<dyn BufRead + Send>,
    tx: &std::sync::mpsc::SyncSender<Result<Vec<(usize, String)>, Failure>>,
) {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut buf = Vec::new();
    for i in 0.. {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                if !line.trim().is_empty() {
                    chunk.push((i + 1, line.into_owned()));
                }
            }
            Err(e) => {
                let _ = tx.send(Err(Failure {
                    kind: "io",
                    err: anyhow::Error::new(e).context(format!("reading line {}", i + 1)),
                }));
                return;
            }
        }
        if chunk.len() == CHUNK
            && tx
                .send(Ok(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))))
                .is_err()
        {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(Ok(chunk));
    }
}

/// What a batch keeps of a verified token: its kid and alg. The claims are dropped in the
/// worker thread that parsed them (freeing memory in another thread contends in malloc).
type Outcome = Result<(Option<String>, Option<crypto::Alg>), Rejection>;

fn outcome(r: Result<Verified, Rejection>) -> Outcome {
    r.map(|v| (v.kid, v.alg))
}

fn verify_parallel(
    chunk: &[(usize, String)],
    keys: &TrustedKeys,
    policy: &Policy,
    now: i64,
    threads: usize,
    dec: &Decryption,
) -> Vec<Outcome> {
    // Each thread verifies with its own copy of the keys when there is more than one thread.
    let share = threads <= 1;
    crate::parallel::map_ordered_with(
        chunk,
        threads,
        || (!share).then(|| (keys.independent_copy(), dec.independent_copy())),
        |own, (_, t)| {
            let (keys, dec) = match own {
                Some((k, d)) => (&*k, d.as_ref().unwrap_or(dec)),
                None => (keys, dec),
            };
            outcome(verify_any(&jwe::pasted(t).token, keys, policy, now, dec))
        },
        || {
            Err(Rejection {
                kind: crypto::verify::Kind::Malformed,
                message: "internal error in a verification thread".into(),
            })
        },
    )
}

fn write_result(
    out: &mut impl Write,
    as_json: bool,
    line: usize,
    r: &Outcome,
) -> std::io::Result<()> {
    if as_json {
        let doc = match r {
            Ok((kid, alg)) => BatchResult {
                line,
                valid: true,
                kid: kid.as_deref(),
                alg: alg.map(|a| a.as_str()),
                error: None,
            },
            Err(e) => BatchResult {
                line,
                valid: false,
                kid: None,
                alg: None,
                error: Some(BatchError {
                    kind: e.kind.as_str(),
                    message: &e.message,
                }),
            },
        };
        serde_json::to_writer(&mut *out, &doc)?;
        out.write_all(b"\n")
    } else {
        // Text from tokens and key sets is escaped: a line gains no tab and no line break.
        match r {
            Ok((kid, alg)) => writeln!(
                out,
                "{line}\tvalid\t{}\t{}",
                alg.map_or("-", |a| a.as_str()),
                output::escape(kid.as_deref().unwrap_or("-"))
            ),
            Err(e) => writeln!(
                out,
                "{line}\trejected\t{}\t{}",
                e.kind.as_str(),
                output::escape(&e.message)
            ),
        }
    }
}
