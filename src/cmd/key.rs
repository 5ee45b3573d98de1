//! `jwkit key`: list, show, public, thumbprint, convert and jwks. Also the key rendering
//! (PEM / JWK / JWKS) that generate-key shares.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::cli::{
    Format, KeyCommand, KeyConvertArgs, KeyInput, KeyJwksArgs, KeyListArgs, KeyPublicArgs,
    KeyShowArgs, KeyThumbprintArgs, KeyUploadArgs,
};
use crate::crypto::{self, Hash, Key, PublicKey};
use crate::exit::ExitStatus;
use crate::input;
use crate::output;
use crate::store::KeyStore;

pub fn run(cmd: &KeyCommand) -> Result<ExitStatus> {
    match cmd {
        KeyCommand::List(a) => list(a),
        KeyCommand::Show(a) => show(a),
        KeyCommand::Public(a) => public(a),
        KeyCommand::Thumbprint(a) => thumbprint(a),
        KeyCommand::Convert(a) => convert(a),
        KeyCommand::Jwks(a) => jwks(a),
        KeyCommand::Upload(a) => upload(a),
    }?;
    Ok(ExitStatus::Success)
}

/// Loads the key a `KeyInput` names: a file (or stdin) by content, or a stored key.
pub(crate) fn load_input(input: &KeyInput) -> Result<Key> {
    if let Some(kid) = &input.key {
        return Ok(KeyStore::open()?.find(kid)?.key);
    }
    let spec = input.file.as_deref().unwrap_or("-");
    let bytes = input::read(spec, "key file", input::MAX_KEY_BYTES)?;
    let name = if spec == "-" { "stdin" } else { spec };
    crypto::load_key(&bytes, input.kid.as_deref())
        .with_context(|| format!("loading key from {name}"))
}

/// The key with its kid set to its thumbprint when it has none, so every JWK output has one.
pub(crate) fn with_kid(key: &Key) -> Key {
    let mut key = key.clone();
    key.meta.kid = Some(key.kid_or_thumbprint());
    key
}

fn pem_text(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

fn pretty(obj: &impl Serialize) -> Result<String> {
    let mut s = serde_json::to_string_pretty(obj)?;
    s.push('\n');
    Ok(s)
}

/// A private key (or HMAC secret) as PKCS#8 PEM, a JWK or a JWKS.
pub(crate) fn render_private(key: &Key, format: Format) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(match format {
        Format::Pem => pem_text("PRIVATE KEY", &key.to_pkcs8_der()?),
        Format::Jwk => pretty(&with_kid(key).to_jwk())?,
        Format::Jwks => pretty(&json!({ "keys": [with_kid(key).to_jwk()] }))?,
    }))
}

/// A public key as SPKI PEM, a JWK or a JWKS.
pub(crate) fn render_public(pk: &PublicKey, format: Format) -> Result<String> {
    let mut pk = pk.clone();
    pk.meta.kid = Some(pk.kid_or_thumbprint());
    match format {
        Format::Pem => Ok(pem_text("PUBLIC KEY", &pk.to_spki_der()?)),
        Format::Jwk => pretty(&pk.to_jwk()),
        Format::Jwks => pretty(&json!({ "keys": [pk.to_jwk()] })),
    }
}

#[derive(Serialize)]
struct ListedKey {
    kid: String,
    #[serde(rename = "type")]
    key_type: String,
    /// `sig` or `enc` (an encryption key: it never signs or verifies).
    #[serde(rename = "use")]
    use_: &'static str,
    alg: String,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    thumbprint: String,
    path: String,
}

fn list(args: &KeyListArgs) -> Result<()> {
    let store = KeyStore::open()?;
    let mut rows = Vec::new();
    for entry in store.entries()? {
        match entry {
            Ok(s) => rows.push(ListedKey {
                kid: s.record.kid,
                key_type: s.key.key_type().to_string(),
                use_: use_of(&s.key),
                alg: s.record.alg,
                created: s.record.created,
                expires: s.record.expires,
                thumbprint: s.key.thumbprint(Hash::Sha256),
                path: s.path.display().to_string(),
            }),
            Err((p, e)) => output::warn(&format!("skipping {}: {e:#}", p.display())),
        }
    }
    if args.json {
        return output::json(&json!({ "keys": rows }));
    }
    if rows.is_empty() {
        output::note(&format!(
            "no keys in {}",
            store.root().join("keys").display()
        ));
        return Ok(());
    }
    let w = rows.iter().map(|r| r.kid.len()).max().unwrap_or(3).max(3);
    let tw = rows
        .iter()
        .map(|r| r.key_type.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let aw = rows.iter().map(|r| r.alg.len()).max().unwrap_or(3).max(3);
    let mut out = format!(
        "{:<w$}  {:<tw$}  USE  {:<aw$}  CREATED\n",
        "KID", "TYPE", "ALG"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<w$}  {:<tw$}  {:<3}  {:<aw$}  {}\n",
            output::escape(&r.kid),
            r.key_type,
            r.use_,
            output::escape(&r.alg),
            r.created
        ));
    }
    Ok(output::data(out)?)
}

/// `enc` for an encryption key, else `sig`.
fn use_of(key: &Key) -> &'static str {
    if key.is_encryption_key() {
        "enc"
    } else {
        "sig"
    }
}

fn show(args: &KeyShowArgs) -> Result<()> {
    let stored = KeyStore::open()?.find(&args.kid)?;
    let key = &stored.key;
    let mut doc = Map::new();
    doc.insert("kid".into(), stored.record.kid.clone().into());
    doc.insert("type".into(), key.key_type().to_string().into());
    doc.insert("use".into(), use_of(key).into());
    doc.insert("alg".into(), stored.record.alg.clone().into());
    doc.insert("created".into(), stored.record.created.clone().into());
    if let Some(e) = &stored.record.expires {
        doc.insert("expires".into(), e.clone().into());
    }
    doc.insert("thumbprint".into(), key.thumbprint(Hash::Sha256).into());
    doc.insert("path".into(), stored.path.display().to_string().into());
    if let Ok(pk) = key.public() {
        doc.insert("public_jwk".into(), Value::Object(pk.to_jwk()));
    }
    if args.private {
        doc.insert("private_jwk".into(), Value::Object(key.to_jwk()));
    }
    output::json(&doc)
}

fn public(args: &KeyPublicArgs) -> Result<()> {
    let key = load_input(&args.input)?;
    let pk = key.public()?;
    Ok(output::data(render_public(&pk, args.format)?)?)
}

fn thumbprint(args: &KeyThumbprintArgs) -> Result<()> {
    let key = load_input(&args.input)?;
    if key.is_hmac() {
        output::warn("the thumbprint of an HMAC secret is derived from the secret itself");
    }
    let hash: Hash = args.hash.into();
    let tp = key.thumbprint(hash);
    if args.uri {
        let name = match hash {
            Hash::Sha256 => "sha-256",
            Hash::Sha384 => "sha-384",
            Hash::Sha512 => "sha-512",
        };
        Ok(output::data_line(&format!(
            "urn:ietf:params:oauth:jwk-thumbprint:{name}:{tp}"
        ))?)
    } else {
        Ok(output::data_line(&tp)?)
    }
}

fn convert(args: &KeyConvertArgs) -> Result<()> {
    let key = load_input(&args.input)?;
    let text = if args.public || !key.is_private() {
        Zeroizing::new(render_public(&key.public()?, args.format)?)
    } else {
        render_private(&key, args.format)?
    };
    Ok(output::data(text.as_bytes())?)
}

fn jwks(args: &KeyJwksArgs) -> Result<()> {
    if args.files.is_empty() && args.keys.is_empty() {
        bail!("nothing to merge: name key or JWKS files, or stored keys with --key");
    }
    let mut keys: Vec<(String, PublicKey)> = Vec::new();
    for spec in &args.files {
        let bytes = input::read(spec, "key file", input::MAX_KEY_BYTES)?;
        let name = if spec == "-" { "stdin" } else { spec.as_str() };
        let loaded: Vec<Key> = if crypto::is_jwks(&bytes) {
            crypto::JwkSet::parse(&bytes)
                .and_then(|set| set.entries.into_iter().map(|e| e.key).collect())
                .with_context(|| format!("loading keys from {name}"))?
        } else {
            vec![
                crypto::load_key(&bytes, None)
                    .with_context(|| format!("loading key from {name}"))?,
            ]
        };
        for k in loaded {
            keys.push((name.to_string(), public_for_set(&k, name)?));
        }
    }
    if !args.keys.is_empty() {
        let store = KeyStore::open()?;
        for kid in &args.keys {
            let k = store.find(kid)?.into_key();
            keys.push((format!("stored key {kid}"), public_for_set(&k, kid)?));
        }
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (from, pk) in &keys {
        let kid = pk.meta.kid.as_deref().unwrap_or("");
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == kid) {
            bail!("duplicate kid \"{kid}\": in {first} and in {from}");
        }
        seen.push((kid, from));
    }
    let set: Vec<Map<String, Value>> = keys.iter().map(|(_, pk)| pk.to_jwk()).collect();
    output::json(&json!({ "keys": set }))
}

fn upload(args: &KeyUploadArgs) -> Result<()> {
    let server = crate::upload::server_url(args.server.as_deref())?;
    let token =
        crate::upload::read_upload_token(args.upload_token_file.as_deref())?.ok_or_else(|| {
            anyhow::anyhow!("no upload token: use --upload-token-file or set JWKIT_UPLOAD_TOKEN")
        })?;
    let public = KeyStore::open()?.find(&args.kid)?.into_key().public()?;
    let kid = crate::upload::upload(&server, &public, &token)?;
    crate::jwks_client::forget_server(&server);
    output::note(&format!("uploaded {kid} to {server}"));
    Ok(output::data_line(&kid)?)
}

fn public_for_set(key: &Key, from: &str) -> Result<PublicKey> {
    if key.is_hmac() {
        bail!("{from} holds an HMAC secret; a public JWKS never carries secrets");
    }
    let mut pk = key.public()?;
    pk.meta.kid = Some(pk.kid_or_thumbprint());
    Ok(pk)
}
