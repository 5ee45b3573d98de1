//! `jwkit decode`: header and claims of a token, with readable times. Never verifies.

use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::DecodeArgs;
use crate::crypto::{b64, jws};
use crate::exit::ExitStatus;
use crate::input;
use crate::output;
use crate::when;

#[derive(Serialize)]
struct Decoded {
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
    let pasted = jws::pasted(&raw);
    let token = jws::Compact::parse(&pasted.token)?;
    output::warn("signature not verified (decode never verifies; use verify-jwt)");
    let now = when::now();
    let claims = token.claims();
    let (payload, payload_encoding) = match (&claims, std::str::from_utf8(&token.payload)) {
        (Some(_), _) => (None, None),
        (None, Ok(text)) => (Some(text.to_string()), Some("utf-8")),
        (None, Err(_)) => (Some(b64::encode(&token.payload)), Some("base64url")),
    };
    let mut times = Map::new();
    if let Some(c) = &claims {
        for name in ["iat", "nbf", "exp"] {
            if let Some(v) = c.get(name) {
                times.insert(name.into(), serde_json::to_value(reading(name, v, now))?);
            }
        }
    }
    let doc = Decoded {
        header: token.header.clone(),
        claims,
        payload,
        payload_encoding,
        signature: token.signature_b64.to_string(),
        times,
    };
    if args.json {
        output::json(&doc)?;
    } else {
        output::data(human(&doc)?)?;
    }
    Ok(ExitStatus::Success)
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
    out.push_str("Header\n");
    out.push_str(&json_text(&doc.header)?);
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
