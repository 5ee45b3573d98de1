//! `jwkit generate-key`: a fresh key to stdout, files, and/or the key store.

use anyhow::{Result, bail};

use crate::atomic;
use crate::cli::{GenerateKeyArgs, KeyTypeArg, KeyUse};
use crate::cmd::key::{render_private, render_public};
use crate::crypto::{Alg, Curve, Hash, Key, KeyMeta, KeySpec};
use crate::exit::ExitStatus;
use crate::output;
use crate::store::KeyStore;
use crate::upload;

pub fn run(args: &GenerateKeyArgs) -> Result<ExitStatus> {
    if args.key_type == KeyTypeArg::X25519 {
        return x25519(args);
    }
    let (spec, alg) = spec_and_alg(args)?;
    // Refuse before the (possibly slow) generation when an output is in the way.
    for path in args.out.iter().chain(&args.public_out) {
        atomic::refuse_existing(path, args.force)?;
    }
    if args.public_out.is_some() && matches!(spec, KeySpec::Hmac { .. }) {
        bail!("an HMAC secret has no public half; --public-out does not apply");
    }
    if let KeySpec::Hmac { bytes } = spec
        && bytes < alg.hash().map_or(32, Hash::output_len)
    {
        output::warn(&format!(
            "--insecure: a {}-bit HMAC secret is shorter than {alg} needs (RFC 7518 §3.2); jwkit itself will refuse to load it",
            bytes * 8
        ));
    }
    // The JWK names an alg only when asked: an RSA key stays usable for RS* and PS*, an HMAC
    // secret for every HS* its length allows. The store records the default alg either way.
    let meta = KeyMeta {
        kid: args.kid.clone(),
        alg: args.alg,
        use_: args.use_.map(|u| {
            match u {
                KeyUse::Sig => "sig",
                KeyUse::Enc => "enc",
            }
            .to_string()
        }),
        key_ops: None,
    };
    let mut key = Key::generate(spec, meta, args.insecure)?;
    key.meta.kid = Some(key.kid_or_thumbprint());
    let kid = key.kid_or_thumbprint();

    let mut staged = Vec::new();
    if let Some(path) = &args.out {
        let text = render_private(&key, args.format)?;
        staged.push(atomic::stage(path, text.as_bytes(), 0o600)?);
    }
    if let Some(path) = &args.public_out {
        let text = render_public(&key.public()?, args.format)?;
        staged.push(atomic::stage(path, text.as_bytes(), 0o644)?);
    }
    // Upload before anything is committed locally: a refused upload (401, 409) loses nothing.
    let uploaded = match &args.upload {
        Some(url) => {
            let server = upload::server_url(Some(url.as_str()).filter(|u| !u.is_empty()))?;
            let token =
                upload::read_upload_token(args.upload_token_file.as_deref())?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "no upload token: use --upload-token-file or set JWKIT_UPLOAD_TOKEN"
                    )
                })?;
            let public = key.public().map_err(|_| {
                anyhow::anyhow!(
                    "an HMAC secret is never uploaded: a JWKS server publishes public keys"
                )
            })?;
            let kid = upload::upload(&server, &public, &token)?;
            crate::jwks_client::forget_server(&server);
            output::note(&format!("uploaded {kid} to {server}"));
            Some(kid)
        }
        None => None,
    };
    atomic::commit(staged, args.force)?;
    if let Some(kid) = uploaded {
        if args.save {
            let path = KeyStore::open()?.save(&key, alg, args.force)?;
            output::note(&format!("saved key {kid} to {}", path.display()));
        }
        output::data_line(&kid)?;
    } else if args.save {
        let path = KeyStore::open()?.save(&key, alg, args.force)?;
        output::note(&format!("saved key {kid} to {}", path.display()));
        output::data_line(&kid)?;
    } else if args.out.is_none() {
        output::data(render_private(&key, args.format)?.as_bytes())?;
    }
    Ok(ExitStatus::Success)
}

/// Works out what to generate and its algorithm from --type, --bits, --curve and --alg.
fn spec_and_alg(args: &GenerateKeyArgs) -> Result<(KeySpec, Alg)> {
    if args.curve.is_some() && args.key_type != KeyTypeArg::Ec {
        bail!("--curve applies to --type ec only");
    }
    if args.bits.is_some() && matches!(args.key_type, KeyTypeArg::Ec | KeyTypeArg::Ed25519) {
        bail!("--bits applies to RSA and HMAC keys; EC keys take --curve");
    }
    let wrong_alg = |alg: Alg, fits: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "--alg {alg} does not fit a {:?} key; it takes {fits}",
            args.key_type
        )
    };
    Ok(match args.key_type {
        KeyTypeArg::Rsa => {
            let alg = args.alg.unwrap_or(Alg::RS256);
            if !alg.is_rsa() {
                return Err(wrong_alg(alg, "RS256/384/512 or PS256/384/512"));
            }
            (
                KeySpec::Rsa {
                    bits: args.bits.unwrap_or(2048),
                },
                alg,
            )
        }
        KeyTypeArg::Ec => {
            let curve = match (args.curve, args.alg.and_then(Alg::curve)) {
                (Some(c), _) => c,
                (None, Some(c)) => c,
                (None, None) => Curve::P256,
            };
            let alg = args.alg.unwrap_or(curve.alg());
            if alg.curve() != Some(curve) {
                return Err(wrong_alg(alg, &format!("{} on {curve}", curve.alg())));
            }
            (KeySpec::Ec(curve), alg)
        }
        KeyTypeArg::Ed25519 => {
            let alg = args.alg.unwrap_or(Alg::EdDSA);
            if alg != Alg::EdDSA {
                return Err(wrong_alg(alg, "EdDSA"));
            }
            (KeySpec::Ed25519, alg)
        }
        KeyTypeArg::X25519 => bail!("an X25519 key is made by its own path"),
        KeyTypeArg::Hmac => {
            let alg = args.alg.unwrap_or(Alg::HS256);
            let Some(hash) = alg.hash().filter(|_| alg.is_hmac()) else {
                return Err(wrong_alg(alg, "HS256, HS384 or HS512"));
            };
            let bits = args.bits.unwrap_or(hash.output_len() * 8);
            if bits == 0 || !bits.is_multiple_of(8) {
                bail!("--bits for an HMAC secret must be a positive multiple of 8");
            }
            if bits > 8192 {
                bail!("--bits for an HMAC secret is at most 8192");
            }
            if bits / 8 < hash.output_len() && !args.insecure {
                bail!(
                    "a {bits}-bit secret is too short for {alg}: at least {} bits (RFC 7518 §3.2); --insecure overrides",
                    hash.output_len() * 8
                );
            }
            (KeySpec::Hmac { bytes: bits / 8 }, alg)
        }
    })
}

/// An X25519 key (RFC 8037) for ECDH-ES: a JWK with `use: enc`, its kid the RFC 7638
/// thumbprint. It encrypts and decrypts JWEs; the key store keeps signing keys only.
fn x25519(args: &GenerateKeyArgs) -> Result<ExitStatus> {
    use aws_lc_rs::agreement;
    use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
    use serde_json::{Map, Value};
    if args.bits.is_some() || args.curve.is_some() || args.alg.is_some() {
        bail!(
            "an X25519 key takes no --bits, --curve or --alg (its JWE algorithm is ECDH-ES or ECDH-ES+A*KW, chosen when encrypting)"
        );
    }
    if args.save || args.upload.is_some() {
        bail!(
            "an X25519 key is for encryption: the key store and --upload keep signing keys; write it with --out"
        );
    }
    if args.use_ == Some(KeyUse::Sig) {
        bail!("an X25519 key never signs: it is for encryption (use: enc)");
    }
    if !matches!(
        args.format,
        crate::cli::Format::Jwk | crate::cli::Format::Jwks
    ) {
        bail!("an X25519 key is written as a JWK: use --format jwk or --format jwks");
    }
    for path in args.out.iter().chain(&args.public_out) {
        atomic::refuse_existing(path, args.force)?;
    }
    let failed = || anyhow::anyhow!("could not generate an X25519 key");
    let private = agreement::PrivateKey::generate(&agreement::X25519).map_err(|_| failed())?;
    let public = private.compute_public_key().map_err(|_| failed())?;
    let d: Curve25519SeedBin = private.as_be_bytes().map_err(|_| failed())?;
    let x = crate::crypto::b64::encode(public.as_ref());
    let thumbprint = {
        let canonical = format!(r#"{{"crv":"X25519","kty":"OKP","x":"{x}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        crate::crypto::b64::encode(digest.as_ref())
    };
    let kid = args.kid.clone().unwrap_or(thumbprint);
    let jwk = |private: bool| -> Value {
        let mut o = Map::new();
        o.insert("kty".into(), "OKP".into());
        o.insert("use".into(), "enc".into());
        o.insert("kid".into(), kid.clone().into());
        o.insert("crv".into(), "X25519".into());
        o.insert("x".into(), x.clone().into());
        if private {
            o.insert("d".into(), crate::crypto::b64::encode(d.as_ref()).into());
        }
        let one = Value::Object(o);
        match args.format {
            crate::cli::Format::Jwks => serde_json::json!({ "keys": [one] }),
            _ => one,
        }
    };
    let text =
        |v: Value| -> Result<String> { Ok(format!("{}\n", serde_json::to_string_pretty(&v)?)) };
    let mut staged = Vec::new();
    if let Some(path) = &args.out {
        staged.push(atomic::stage(path, text(jwk(true))?.as_bytes(), 0o600)?);
    }
    if let Some(path) = &args.public_out {
        staged.push(atomic::stage(path, text(jwk(false))?.as_bytes(), 0o644)?);
    }
    atomic::commit(staged, args.force)?;
    if args.out.is_none() {
        output::data(text(jwk(true))?.as_bytes())?;
    }
    Ok(ExitStatus::Success)
}
