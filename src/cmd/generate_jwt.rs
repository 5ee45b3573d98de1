//! `jwkit generate-jwt`: build the header and claims from flags, sign, print the token.

use anyhow::{Context, Result, bail};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};

use crate::cli::{GenerateJwtArgs, SecretArgs, SigningKeyArgs};
use crate::crypto::{self, Key, SigningKey, b64, json, jws};
use crate::exit::ExitStatus;
use crate::input;
use crate::output;
use crate::secret;
use crate::store::KeyStore;
use crate::when;

pub fn run(args: &GenerateJwtArgs) -> Result<ExitStatus> {
    input::one_stdin(&[
        args.signing.key_file.as_deref(),
        args.signing.secret_file.as_deref(),
        args.claims.as_deref(),
    ])?;
    let now = when::now();
    // Claims first: a mistake there should not cost a key parse.
    let claims = build_claims(args, now)?;
    let key = load_signing_key(&args.signing, &args.secret, args.kid.as_deref())?;
    let alg = match args.alg {
        Some(alg) => {
            key.check_alg(alg)?;
            alg
        }
        None => key.default_alg()?,
    };
    if args.dpop_proof {
        return dpop_proof(args, &key, alg, claims, now);
    }
    let signer = SigningKey::new(&key, alg)?;
    let mut header = Map::new();
    header.insert("alg".into(), alg.as_str().into());
    if !args.typ.is_empty() {
        header.insert("typ".into(), args.typ.clone().into());
    }
    if !args.no_kid {
        let kid = args.kid.clone().unwrap_or_else(|| key.kid_or_thumbprint());
        header.insert("kid".into(), kid.into());
    }
    for item in &args.headers {
        let (name, value) = name_value(item, "--header", true)?;
        if matches!(name.as_str(), "alg" | "crit" | "b64") {
            bail!(
                "--header {name} is refused: alg comes from the key or --alg, and jwkit does not emit crit or b64"
            );
        }
        if matches!(name.as_str(), "kid" | "typ") {
            bail!("--header {name} is refused: use --{name}");
        }
        header.insert(name, value);
    }
    let payload = serde_json::to_vec(&claims)?;
    let token = jws::encode(&header, &payload, &signer)?;
    let token = match load_encrypt_key(
        args.encrypt_key_file.as_deref(),
        args.encrypt_key.as_deref(),
    )? {
        None => token,
        Some(key) => encrypt_nested(
            &token,
            &key,
            args.jwe_alg.as_deref(),
            args.jwe_enc.as_deref(),
        )?,
    };
    output::data_line(&token)?;
    Ok(ExitStatus::Success)
}

/// `--dpop-proof`: a proof for one request (RFC 9449 §4.2), signed by the key, its public
/// JWK in the header; `--iat` dates it (to test a server's window), `--claim` adds members
/// such as the server's `nonce`.
fn dpop_proof(
    args: &GenerateJwtArgs,
    key: &Key,
    alg: crypto::Alg,
    claims: Map<String, Value>,
    now: i64,
) -> Result<ExitStatus> {
    let htm = args.htm.as_deref().unwrap_or_default();
    let htu = args.htu.as_deref().unwrap_or_default();
    if htm.is_empty() || !htm.bytes().all(|b| b.is_ascii_alphabetic()) {
        bail!("--htm must be an HTTP method such as GET or POST");
    }
    match url::Url::parse(htu) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => bail!("--htu must be an http or https URL"),
    }
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
    let mut jti = [0u8; 16];
    SystemRandom::new()
        .fill(&mut jti)
        .map_err(|_| anyhow::anyhow!("no randomness for the jti"))?;
    // What --claim and --claims add (a server's nonce, say); jti, htm, htu, iat and ath are
    // the proof's own.
    let mut extra = claims;
    for own in ["jti", "htm", "htu", "iat", "ath", "exp"] {
        extra.remove(own);
    }
    let proof = crypto::dpop::make(
        key,
        alg,
        &crypto::dpop::Request {
            htm,
            htu,
            access_token: args
                .ath
                .as_deref()
                .map(|t| jws::pasted(t).token.into_owned())
                .as_deref(),
            extra,
            iat,
            jti: b64::encode(jti),
        },
    )?;
    output::data_line(&proof)?;
    Ok(ExitStatus::Success)
}

/// The encryption key `--encrypt-key-file FILE` or `--encrypt-key KID` (the store) names.
pub fn load_encrypt_key(
    file: Option<&str>,
    stored: Option<&str>,
) -> Result<Option<crate::crypto::jwe::EncryptKey>> {
    if let Some(spec) = file {
        let bytes = input::read(spec, "--encrypt-key-file", 1 << 20)?;
        let key = crate::crypto::jwe::load_encrypt_key(&bytes, None)
            .map_err(|e| anyhow::anyhow!("--encrypt-key-file {}: {e}", output::escape(spec)))?;
        return Ok(Some(key));
    }
    if let Some(kid) = stored {
        let key = KeyStore::open()?
            .find(kid)?
            .encrypt_key()
            .map_err(|e| anyhow::anyhow!("--encrypt-key {}: {e:#}", output::escape(kid)))?;
        return Ok(Some(key));
    }
    Ok(None)
}

/// A signed token encrypted to `key` (a nested JWT: `cty: JWT`).
pub fn encrypt_nested(
    token: &str,
    key: &crate::crypto::jwe::EncryptKey,
    alg: Option<&str>,
    enc: Option<&str>,
) -> Result<String> {
    let alg = alg.map_or_else(|| key.default_alg(), str::to_string);
    let enc = enc.unwrap_or(crate::crypto::jwe::DEFAULT_ENC);
    let mut extra = Map::new();
    extra.insert("cty".into(), "JWT".into());
    crate::crypto::jwe::encrypt(token.as_bytes(), key, &alg, enc, extra)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The lifetime of a token when neither --exp nor --no-exp is given: verify-jwt requires exp, so
/// a token made without thinking about it still verifies, and still expires.
pub const DEFAULT_LIFETIME: i64 = 3600;

/// Loads the signing key from exactly one of --key-file, --key, --secret-file, --secret-env.
pub(crate) fn load_signing_key(
    src: &SigningKeyArgs,
    secret: &SecretArgs,
    kid: Option<&str>,
) -> Result<Key> {
    let key = if let Some(spec) = &src.key_file {
        let bytes = input::read(spec, "key file", input::MAX_KEY_BYTES)?;
        let name = if spec == "-" { "stdin" } else { spec };
        // A JWKS needs --kid to pick a key; for a single key, --kid only names it in the header.
        let pick = if crypto::is_jwks(&bytes) { kid } else { None };
        crypto::load_key(&bytes, pick).with_context(|| format!("loading key from {name}"))?
    } else if let Some(kid) = &src.key {
        KeyStore::open()?.find(kid)?.into_key()
    } else if let Some(key) = secret::load(
        src.secret_file.as_deref(),
        src.secret_env.as_deref(),
        secret.options(),
    )? {
        key
    } else {
        bail!("no signing key: use --key-file, --key, --secret-file or --secret-env");
    };
    if !key.is_private() {
        bail!("the key is a public key; signing needs the private key");
    }
    Ok(key)
}

/// Splits `NAME=VALUE`; VALUE is JSON when it parses as JSON (and `as_json`), else a string.
pub(crate) fn name_value(item: &str, flag: &str, as_json: bool) -> Result<(String, Value)> {
    let Some((name, value)) = item.split_once('=') else {
        bail!("{flag} {item:?}: expected NAME=VALUE");
    };
    if name.is_empty() {
        bail!("{flag} {item:?}: the name is empty");
    }
    let value = match json::parse(value.as_bytes()) {
        Ok(v) if as_json => v,
        _ => Value::String(value.to_string()),
    };
    Ok((name.to_string(), value))
}

/// Claims in a reproducible order: the --claims document's members, then iss, sub, aud, the
/// --claim and --claim-str flags, then iat, nbf, exp and jti. Flags win over the document.
fn build_claims(args: &GenerateJwtArgs, now: i64) -> Result<Map<String, Value>> {
    let mut claims = match &args.claims {
        None => Map::new(),
        Some(src) => {
            let (bytes, from) = if src == "-" {
                (
                    input::read("-", "claims", input::MAX_CLAIMS_BYTES)?,
                    "stdin".to_string(),
                )
            } else if let Some(path) = src.strip_prefix('@') {
                (
                    input::read(path, "claims file", input::MAX_CLAIMS_BYTES)?,
                    path.to_string(),
                )
            } else {
                (src.as_bytes().to_vec(), "--claims".to_string())
            };
            json::parse_object(&bytes)
                .map_err(|e| anyhow::anyhow!("claims from {from} are not a JSON object: {e}"))?
        }
    };
    if let Some(iss) = &args.iss {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(sub) = &args.sub {
        claims.insert("sub".into(), sub.clone().into());
    }
    match args.aud.as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), one.clone().into());
        }
        many => {
            claims.insert(
                "aud".into(),
                many.iter().cloned().map(Value::from).collect(),
            );
        }
    }
    for item in &args.claim {
        let (name, value) = name_value(item, "--claim", true)?;
        claims.insert(name, value);
    }
    for item in &args.claim_str {
        let (name, value) = name_value(item, "--claim-str", false)?;
        claims.insert(name, value);
    }
    let at = |flag: &str, text: &str| -> Result<i64> {
        when::parse_when(text, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
    };
    if args.expired {
        claims.insert("iat".into(), (now - 7200).into());
    } else if let Some(iat) = &args.iat {
        claims.insert("iat".into(), at("iat", iat)?.into());
    } else if !args.no_iat {
        claims.insert("iat".into(), now.into());
    }
    if let Some(nbf) = &args.nbf {
        claims.insert("nbf".into(), at("nbf", nbf)?.into());
    }
    if args.expired {
        claims.insert("exp".into(), (now - 3600).into());
    } else if let Some(exp) = &args.exp {
        claims.insert("exp".into(), at("exp", exp)?.into());
    } else if !args.no_exp && !claims.contains_key("exp") {
        // Relative to iat when one was given, so --iat keeps the default lifetime.
        let from = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
        let exp = from
            .checked_add(DEFAULT_LIFETIME)
            .ok_or_else(|| anyhow::anyhow!("--iat is too far in the future to add exp"))?;
        claims.insert("exp".into(), exp.into());
    }
    if let (Some(exp), Some(nbf)) = (
        claims.get("exp").and_then(Value::as_i64),
        claims.get("nbf").and_then(Value::as_i64),
    ) && exp < nbf
    {
        bail!(
            "exp ({}) is earlier than nbf ({}): the token would never be valid",
            when::rfc3339(exp),
            when::rfc3339(nbf)
        );
    }
    match args.jti.as_deref() {
        None => {}
        Some("") => {
            let mut id = [0u8; 16];
            SystemRandom::new()
                .fill(&mut id)
                .map_err(|_| anyhow::anyhow!("the random generator failed"))?;
            claims.insert("jti".into(), b64::encode(id).into());
        }
        Some(id) => {
            claims.insert("jti".into(), id.into());
        }
    }
    Ok(claims)
}
