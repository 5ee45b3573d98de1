//! Uploading a public key to a jwkit server (`generate-key --upload`, `key upload`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::crypto::PublicKey;

/// The upload token: `--upload-token-file`, else `JWKIT_UPLOAD_TOKEN` (never argv).
pub fn read_upload_token(file: Option<&Path>) -> Result<Option<String>> {
    if let Some(path) = file {
        let bytes = crate::input::read_secret_file(path, "the upload token file", 64 * 1024)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow!("the upload token file {} is not UTF-8 text", path.display()))?;
        let t = text.trim().to_string();
        if t.is_empty() {
            bail!("the upload token file {} is empty", path.display());
        }
        return Ok(Some(t));
    }
    Ok(std::env::var("JWKIT_UPLOAD_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// The server URL: the flag, else `JWKIT_SERVER`.
pub fn server_url(flag: Option<&str>) -> Result<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("JWKIT_SERVER").ok().filter(|v| !v.is_empty()))
        .map(|s| s.trim_end_matches('/').to_string())
        .ok_or_else(|| anyhow!("no server: give its URL, or set JWKIT_SERVER"))
}

/// POSTs the public JWK to `{server}/jwks`; returns the kid the server stored it under.
pub fn upload(server: &str, key: &PublicKey, token: &str) -> Result<String> {
    let url = format!("{server}/jwks");
    let shown = crate::jwks_client::redact(&url);
    let parsed = reqwest::Url::parse(&url).with_context(|| {
        format!(
            "invalid server URL {:?}",
            crate::jwks_client::redact(server)
        )
    })?;
    let loopback = crate::jwks_client::is_loopback(&parsed);
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        bail!("refusing to upload to {shown}: use HTTPS (plain HTTP only on loopback)");
    }
    let mut pk = key.clone();
    pk.meta.kid = Some(pk.kid_or_thumbprint());
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("setting up the HTTP client")?;
    let resp = client
        .post(&url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&pk.to_jwk())?)
        // The whole exchange, the answer's body included.
        .timeout(Duration::from_secs(10))
        .send()
        .map_err(|e| crate::jwks_client::describe(e, &format!("uploading to {shown}")))?;
    let status = resp.status();
    // An answer is a small JSON document: at most 64 KiB of it is read.
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::Read::take(resp, 64 * 1024), &mut answer);
    let body: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    let said = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match status.as_u16() {
        200 | 201 => Ok(body
            .get("kids")
            .and_then(|k| k.get(0))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| pk.kid_or_thumbprint())),
        401 => bail!("the server refused the upload token (401): {said}"),
        403 => bail!("the server does not take uploads (403): {said}"),
        409 => bail!("the kid is taken on the server by another key (409): {said}"),
        code => bail!("the upload failed with HTTP {code}: {said}"),
    }
}
