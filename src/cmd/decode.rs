//! `jwkit decode`: header and claims of a token, with readable times. Never verifies.

use anyhow::{Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::{DecodeArgs, DecryptArgs};
use crate::crypto::{b64, jwe, jws};
use crate::exit::ExitStatus;
use crate::input;
use crate::output;
use crate::when;

#[derive(Serialize)]
struct Decoded {
    /// A JWE's header (protected, shared and the recipient's members); the other members
    /// describe its plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    jwe_header: Option<Map<String, Value>>,
    header: Map<String, Value>,
    /// The claims, or null when the payload is not a JSON object.
    claims: Option<Map<String, Value>>,
    /// The payload when it is not a JSON object: text, or base64url when not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_encoding: Option<&'static str>,
    /// base64url, as in the token.
    signature: String,
    times: Map<String, Value>,
}

#[derive(Serialize)]
struct TimeReading {
    #[serde(skip_serializing_if = "Option::is_none")]
    unix: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    utc: Option<String>,
    /// "expired 3h ago", "valid for 59m", "in 5m", "2h ago".
    #[serde(skip_serializing_if = "Option::is_none")]
    reading: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: &DecodeArgs) -> Result<ExitStatus> {
    let raw = input::read_token(args.token.as_deref())?;
    if jwe::is_jwe(&raw) {
        return run_jwe(args, &raw);
    }
    let pasted = jws::pasted(&raw);
    let token = jws::Compact::parse(&pasted.token)?;
    output::warn("signature not verified (decode never verifies; use verify-jwt)");
    show(args, None, &token)
}

/// Header, claims and times of a JWS (the plaintext of a JWE when `jwe_header` is given).
fn show(
    args: &DecodeArgs,
    jwe_header: Option<Map<String, Value>>,
    token: &jws::Compact,
) -> Result<ExitStatus> {
    let claims = token.claims();
    let (payload, payload_encoding) = payload_text(&claims, &token.payload);
    let doc = Decoded {
        jwe_header,
        header: token.header.clone(),
        times: times(&claims),
        claims,
        payload,
        payload_encoding,
        signature: token.signature_b64.to_string(),
    };
    print(args, &doc)
}

fn print(args: &DecodeArgs, doc: &Decoded) -> Result<ExitStatus> {
    if args.json {
        output::json(doc)?;
    } else {
        output::data(human(doc)?)?;
    }
    Ok(ExitStatus::Success)
}

fn payload_text(
    claims: &Option<Map<String, Value>>,
    payload: &[u8],
) -> (Option<String>, Option<&'static str>) {
    match (claims, std::str::from_utf8(payload)) {
        (Some(_), _) => (None, None),
        (None, Ok(text)) => (Some(text.to_string()), Some("utf-8")),
        (None, Err(_)) => (Some(b64::encode(payload)), Some("base64url")),
    }
}

fn times(claims: &Option<Map<String, Value>>) -> Map<String, Value> {
    let now = when::now();
    let mut times = Map::new();
    if let Some(c) = claims {
        for name in ["iat", "nbf", "exp"] {
            if let Some(v) = c.get(name) {
                times.insert(
                    name.into(),
                    serde_json::to_value(reading(name, v, now)).unwrap_or(Value::Null),
                );
            }
        }
    }
    times
}

/// The decryption keys the flags name.
pub fn decrypt_keys(args: &DecryptArgs) -> Result<Vec<jwe::DecryptKey>> {
    if let Some(kid) = &args.decrypt_key {
        let key = crate::store::KeyStore::open()?
            .find(kid)?
            .decrypt_key()
            .map_err(|e| anyhow!("--decrypt-key {}: {e:#}", output::escape(kid)))?;
        return Ok(vec![key]);
    }
    if let Some(spec) = &args.decrypt_key_file {
        let bytes = input::read(spec, "--decrypt-key-file", 1 << 20)?;
        return jwe::load_keys(&bytes)
            .map_err(|e| anyhow!("--decrypt-key-file {}: {e}", output::escape(spec)));
    }
    if let Some(path) = &args.password_file {
        let bytes = input::read_secret_file(path, "--password-file", 64 << 10)?;
        let pw = bytes
            .strip_suffix(b"\r\n")
            .or_else(|| bytes.strip_suffix(b"\n"))
            .unwrap_or(&bytes);
        if pw.is_empty() {
            bail!("--password-file {}: the password is empty", path.display());
        }
        return Ok(vec![jwe::DecryptKey::password(pw)]);
    }
    Ok(Vec::new())
}

fn run_jwe(args: &DecodeArgs, raw: &str) -> Result<ExitStatus> {
    if args.insecure {
        output::warn(
            "--insecure: RSA1_5 JWEs are decrypted (PKCS#1 v1.5, open to padding oracles)",
        );
    }
    let keys = decrypt_keys(&args.decrypt)?;
    if keys.is_empty() {
        // The header is all that can be read: shown, and the rest named.
        let header = jwe::header(raw).map_err(|e| anyhow!("{e}"))?;
        output::warn(
            "the token is a JWE (encrypted): its header only; give --decrypt-key-file FILE, --decrypt-key KID or --password-file FILE to read the rest",
        );
        let doc = Decoded {
            jwe_header: Some(header),
            header: Map::new(),
            claims: None,
            payload: None,
            payload_encoding: None,
            signature: String::new(),
            times: Map::new(),
        };
        return print(args, &doc);
    }
    let opts = jwe::Options {
        allow_rsa1_5: args.insecure,
        ..jwe::Options::default()
    };
    let done = jwe::decrypt(raw, &keys, &opts).map_err(|e| anyhow!("{e}"))?;
    if args.plaintext {
        output::data(done.plaintext.as_slice())?;
        return Ok(ExitStatus::Success);
    }
    // A nested JWT: the plaintext is a JWS, shown as one (its signature not verified).
    if let Ok(text) = std::str::from_utf8(&done.plaintext)
        && let Ok(inner) = jws::Compact::parse(text.trim())
    {
        output::warn("decrypted; the inner token's signature is not verified (use verify-jwt)");
        return show(args, Some(done.header), &inner);
    }
    output::warn("decrypted; the sender is not authenticated (decode never verifies)");
    let claims = super::super::crypto::json::parse_object(&done.plaintext).ok();
    let (payload, payload_encoding) = payload_text(&claims, &done.plaintext);
    let doc = Decoded {
        jwe_header: Some(done.header),
        header: Map::new(),
        times: times(&claims),
        claims,
        payload,
        payload_encoding,
        signature: String::new(),
    };
    print(args, &doc)
}

fn reading(name: &str, v: &Value, now: i64) -> TimeReading {
    let unix = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f as i64)
        }),
        _ => None,
    };
    let Some(unix) = unix else {
        return TimeReading {
            unix: None,
            utc: None,
            reading: None,
            error: Some(format!("{name} is not a NumericDate (a number of seconds)")),
        };
    };
    let span = when::span(unix.abs_diff(now));
    let text = match name {
        "exp" if unix <= now => format!("expired {span} ago"),
        "exp" => format!("valid for {span}"),
        "nbf" if unix > now => format!("not valid for another {span}"),
        _ => when::relative(unix, now),
    };
    TimeReading {
        unix: Some(unix),
        utc: Some(when::rfc3339(unix)),
        reading: Some(text),
        error: None,
    }
}

/// Pretty JSON for people: serde escapes C0 controls in strings; what it leaves (DEL, C1,
/// bidi and invisible characters) is escaped line by line, so the layout stays the printer's.
fn json_text(value: &impl Serialize) -> Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(text
        .lines()
        .map(output::escape)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The text form. Everything from the token is escaped (DESIGN.md §3): a payload or claim
/// cannot clear the screen or forge a line.
fn human(doc: &Decoded) -> Result<String> {
    let mut out = String::new();
    if let Some(h) = &doc.jwe_header {
        out.push_str("JWE header\n");
        out.push_str(&json_text(h)?);
    }
    if doc.jwe_header.is_none() || !doc.header.is_empty() {
        if doc.jwe_header.is_some() {
            out.push_str("\n\n");
        }
        out.push_str("Header\n");
        out.push_str(&json_text(&doc.header)?);
    }
    match (&doc.claims, &doc.payload) {
        (Some(claims), _) => {
            out.push_str("\n\nClaims\n");
            out.push_str(&json_text(claims)?);
        }
        (None, Some(p)) => {
            let how = if doc.payload_encoding == Some("base64url") {
                "binary, base64url"
            } else {
                "text"
            };
            out.push_str(&format!(
                "\n\nPayload (not a JSON object; {how})\n{}",
                output::escape(p)
            ));
        }
        (None, None) => {}
    }
    if !doc.times.is_empty() {
        out.push_str("\n\nTimes\n");
        for (name, t) in &doc.times {
            let line = match (t.get("utc"), t.get("reading"), t.get("error")) {
                (Some(Value::String(u)), Some(Value::String(r)), _) => format!("{u}, {r}"),
                (_, _, Some(Value::String(e))) => e.clone(),
                _ => String::new(),
            };
            out.push_str(&format!("  {name}  {line}\n"));
        }
    } else {
        out.push('\n');
    }
    Ok(out)
}
