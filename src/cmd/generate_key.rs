//! `jwkit generate-key`: a fresh key to stdout, files, and/or the key store.

use anyhow::{Result, bail};

use crate::atomic;
use crate::cli::{GenerateKeyArgs, KeyAlg, KeyTypeArg, KeyUse};
use crate::cmd::key::{render_private, render_public};
use crate::crypto::jwe::{self, KeyKind};
use crate::crypto::{Alg, Curve, Hash, Key, KeyMeta, KeySpec};
use crate::exit::ExitStatus;
use crate::output;
use crate::store::KeyStore;
use crate::upload;

pub fn run(args: &GenerateKeyArgs) -> Result<ExitStatus> {
    let plan = plan(args)?;
    let spec = plan.spec;
    // Refuse before the (possibly slow) generation when an output is in the way.
    for path in args.out.iter().chain(&args.public_out) {
        atomic::refuse_existing(path, args.force)?;
    }
    if args.public_out.is_some() && matches!(spec, KeySpec::Hmac { .. }) {
        bail!("a symmetric key has no public half; --public-out does not apply");
    }
    if let (KeySpec::Hmac { bytes }, Some(alg)) = (spec, plan.alg)
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
        alg: match args.alg {
            Some(KeyAlg::Sig(a)) => Some(a),
            _ => None,
        },
        use_: match (plan.encrypting, args.use_) {
            (true, _) => Some("enc".into()),
            (false, Some(KeyUse::Sig)) => Some("sig".into()),
            (false, _) => None,
        },
        key_ops: None,
        enc_alg: match args.alg {
            Some(KeyAlg::Enc(a)) => Some(a.to_string()),
            _ => None,
        },
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
                    "a symmetric key is never uploaded: a JWKS server publishes public keys"
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
            let path = KeyStore::open()?.save(&key, &plan.store_alg, args.force)?;
            output::note(&format!("saved key {kid} to {}", path.display()));
        }
        output::data_line(&kid)?;
    } else if args.save {
        let path = KeyStore::open()?.save(&key, &plan.store_alg, args.force)?;
        output::note(&format!("saved key {kid} to {}", path.display()));
        output::data_line(&kid)?;
    } else if args.out.is_none() {
        output::data(render_private(&key, args.format)?.as_bytes())?;
    }
    Ok(ExitStatus::Success)
}

/// What `generate-key` makes: the key, the algorithm the store records for it (a JWS alg for
/// a signing key, a JWE key-management alg for an encryption key), and the JWS alg asked for.
struct Plan {
    spec: KeySpec,
    store_alg: String,
    alg: Option<Alg>,
    encrypting: bool,
}

fn plan(args: &GenerateKeyArgs) -> Result<Plan> {
    if args.curve.is_some() && args.key_type != KeyTypeArg::Ec {
        bail!("--curve applies to --type ec only");
    }
    let encrypting = args.use_ == Some(KeyUse::Enc)
        || matches!(args.alg, Some(KeyAlg::Enc(_)))
        || args.key_type == KeyTypeArg::X25519;
    if !encrypting {
        let (spec, alg) = spec_and_alg(args)?;
        return Ok(Plan {
            spec,
            store_alg: alg.to_string(),
            alg: Some(alg),
            encrypting,
        });
    }
    if args.use_ == Some(KeyUse::Sig) {
        bail!("--use sig does not fit an encryption key (an X25519 key, or a JWE --alg)");
    }
    let asked = match args.alg {
        Some(KeyAlg::Sig(a)) => bail!(
            "--alg {a} is a signature algorithm; an encryption key takes a JWE algorithm (RSA-OAEP-256, ECDH-ES+A256KW, A256KW, dir, ...)"
        ),
        Some(KeyAlg::Enc(a)) => Some(a),
        None => None,
    };
    if args.bits.is_some() && !matches!(args.key_type, KeyTypeArg::Rsa | KeyTypeArg::Hmac) {
        bail!("--bits applies to RSA and symmetric keys");
    }
    let want = |kind: KeyKind, default: &'static str, what: &str| -> Result<String> {
        let alg = asked.unwrap_or(default);
        match jwe::key_kind(alg) {
            Some(k) if std::mem::discriminant(&k) == std::mem::discriminant(&kind) => {
                Ok(alg.to_string())
            }
            _ => bail!("--alg {alg} does not fit {what}"),
        }
    };
    let (spec, store_alg) = match args.key_type {
        KeyTypeArg::Rsa => (
            KeySpec::Rsa {
                bits: args.bits.unwrap_or(2048),
            },
            want(
                KeyKind::Rsa,
                "RSA-OAEP-256",
                "an RSA key (it takes RSA-OAEP, RSA-OAEP-256/384/512)",
            )?,
        ),
        KeyTypeArg::Ec => {
            let curve = args.curve.unwrap_or(Curve::P256);
            if curve == Curve::Secp256k1 {
                bail!("JWE's ECDH-ES takes P-256, P-384, P-521 or X25519, not secp256k1");
            }
            (
                KeySpec::Ec(curve),
                want(
                    KeyKind::Agreement,
                    "ECDH-ES+A256KW",
                    "an EC key (it takes ECDH-ES, ECDH-ES+A128KW/A192KW/A256KW)",
                )?,
            )
        }
        KeyTypeArg::X25519 => (
            KeySpec::X25519,
            want(
                KeyKind::Agreement,
                "ECDH-ES+A256KW",
                "an X25519 key (it takes ECDH-ES, ECDH-ES+A128KW/A192KW/A256KW)",
            )?,
        ),
        KeyTypeArg::Ed25519 => {
            bail!("an Ed25519 key signs; it never encrypts (--type x25519 makes an ECDH-ES key)")
        }
        KeyTypeArg::Hmac => {
            // The size follows the algorithm (A128KW: 128 bits), or the algorithm the size.
            let alg = match (asked, args.bits) {
                (Some(a), _) => a,
                (None, None | Some(256)) => "A256KW",
                (None, Some(128)) => "A128KW",
                (None, Some(192)) => "A192KW",
                (None, Some(384 | 512)) => "dir",
                (None, Some(b)) => bail!(
                    "a {b}-bit key fits no JWE algorithm: AES key wrap takes 128, 192 or 256 bits, dir 128 to 512"
                ),
            };
            let bits = match jwe::key_kind(alg) {
                Some(KeyKind::Oct(Some(len))) => {
                    if args.bits.is_some_and(|b| b != len * 8) {
                        bail!("--alg {alg} takes a {}-bit key", len * 8);
                    }
                    len * 8
                }
                Some(KeyKind::Oct(None)) => {
                    let bits = args.bits.unwrap_or(256);
                    if !jwe::DIR_KEY_LENGTHS.contains(&(bits / 8)) || !bits.is_multiple_of(8) {
                        bail!(
                            "--alg dir takes a content encryption key: 128, 192, 256, 384 or 512 bits"
                        );
                    }
                    bits
                }
                _ => bail!(
                    "--alg {alg} does not fit a symmetric key (it takes A128KW, A192KW, A256KW, A128GCMKW, A192GCMKW, A256GCMKW or dir)"
                ),
            };
            (KeySpec::Hmac { bytes: bits / 8 }, alg.to_string())
        }
    };
    Ok(Plan {
        spec,
        store_alg,
        alg: None,
        encrypting,
    })
}

/// Works out what to generate and its algorithm from --type, --bits, --curve and --alg.
fn spec_and_alg(args: &GenerateKeyArgs) -> Result<(KeySpec, Alg)> {
    if args.bits.is_some() && matches!(args.key_type, KeyTypeArg::Ec | KeyTypeArg::Ed25519) {
        bail!("--bits applies to RSA and HMAC keys; EC keys take --curve");
    }
    let asked_alg = match args.alg {
        Some(KeyAlg::Sig(a)) => Some(a),
        Some(KeyAlg::Enc(_)) => bail!("a JWE --alg makes an encryption key"),
        None => None,
    };
    let wrong_alg = |alg: Alg, fits: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "--alg {alg} does not fit a {:?} key; it takes {fits}",
            args.key_type
        )
    };
    Ok(match args.key_type {
        KeyTypeArg::Rsa => {
            let alg = asked_alg.unwrap_or(Alg::RS256);
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
            let curve = match (args.curve, asked_alg.and_then(Alg::curve)) {
                (Some(c), _) => c,
                (None, Some(c)) => c,
                (None, None) => Curve::P256,
            };
            let alg = asked_alg.unwrap_or(curve.alg());
            if alg.curve() != Some(curve) {
                return Err(wrong_alg(alg, &format!("{} on {curve}", curve.alg())));
            }
            (KeySpec::Ec(curve), alg)
        }
        KeyTypeArg::Ed25519 => {
            let alg = asked_alg.unwrap_or(Alg::EdDSA);
            if alg != Alg::EdDSA {
                return Err(wrong_alg(alg, "EdDSA"));
            }
            (KeySpec::Ed25519, alg)
        }
        KeyTypeArg::X25519 => bail!("an X25519 key is for encryption (ECDH-ES); it never signs"),
        KeyTypeArg::Hmac => {
            let alg = asked_alg.unwrap_or(Alg::HS256);
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
