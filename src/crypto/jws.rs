//! JWS compact serialization (RFC 7515 §7.1): building `header.payload.signature` and taking it
//! apart strictly. The signing input is always the segments as received, never re-encoded.

use serde_json::{Map, Value};

use super::{SigningKey, b64, json};

/// Tokens longer than this are refused before any decoding (DESIGN.md §7).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a compact token could not be taken apart. Messages name the segment and the fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MalformedToken {
    #[error("the token is empty")]
    Empty,
    #[error("the token is {0} bytes; tokens over {MAX_TOKEN_BYTES} bytes are refused")]
    TooLong(usize),
    #[error(
        "the token has {0} segment{s}; a JWS compact token has 3 (header.payload.signature)",
        s = if *.0 == 1 { "" } else { "s" }
    )]
    Segments(usize),
    #[error(
        "the token has 5 segments: it is a JWE (an encrypted token), not a signed JWS; `jwkit decode --decrypt-key-file FILE` decrypts it"
    )]
    Jwe,
    #[error("the token on stdin is over {MAX_TOKEN_BYTES} bytes; tokens that long are refused")]
    InputTooLong,
    #[error("the token is not text: byte {0} is not UTF-8")]
    NotUtf8(usize),
    #[error("{segment} segment is {reason}")]
    Base64 { segment: Segment, reason: String },
    #[error("header is not JSON: {0}")]
    HeaderJson(String),
    #[error("header is not UTF-8")]
    HeaderUtf8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Header,
    Payload,
    Signature,
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// A compact JWS taken apart: decoded header, raw payload bytes and signature, and the
/// signing input exactly as it appeared in the token.
#[derive(Debug, Clone)]
pub struct Compact<'a> {
    pub header: Map<String, Value>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
    /// `header.payload` as received (what the signature covers).
    pub signing_input: &'a str,
    pub payload_b64: &'a str,
    pub signature_b64: &'a str,
}

/// A token as people paste it, taken out of what surrounds it: white space, an
/// `Authorization:` header name, a `Bearer` scheme, quotes, and trailing punctuation (a comma,
/// a semicolon, a closing quote, brace, bracket or parenthesis). A line break inside the token
/// (a token wrapped over lines), with the white space around it, is removed; other white space
/// inside stays, and makes the token malformed (Wycheproof "rejectsSpacesInMac"). `before` and `after` are what was taken off the
/// ends, so `resign` can put the new token back in the same place.
#[derive(Debug, PartialEq, Eq)]
pub struct Pasted<'a> {
    pub before: &'a str,
    pub token: std::borrow::Cow<'a, str>,
    pub after: &'a str,
}

/// Characters a paste may put around a token: quotes and backticks.
fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\'' | '`')
}

/// Strips `name` (ASCII, any case) from the start of `text`.
fn strip_word<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let head = text.get(..name.len())?;
    head.eq_ignore_ascii_case(name).then(|| &text[name.len()..])
}

/// Removes every run of white space that holds a line break.
fn unwrap_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            run.push(c);
            continue;
        }
        if !run.contains(['\n', '\r']) {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out
}

/// Takes a pasted token apart from its surroundings (see `Pasted`).
/// True when `token` is a compact JWS whose header names an alg (a string): what re-signing
/// looks at. A JWT-looking string that is not is counted apart.
pub fn is_jws(token: &str) -> bool {
    Compact::parse(token).is_ok_and(|c| c.header.get("alg").is_some_and(|a| a.is_string()))
}

pub fn pasted(text: &str) -> Pasted<'_> {
    let mut rest = text.trim_start_matches(|c: char| c.is_whitespace() || is_quote(c));
    if let Some(after_name) = strip_word(rest, "authorization") {
        let after_name = after_name.trim_start_matches(|c: char| c.is_whitespace() || is_quote(c));
        if let Some(value) = after_name.strip_prefix(':') {
            rest = value.trim_start_matches(|c: char| c.is_whitespace() || is_quote(c));
        }
    }
    if let Some(after_scheme) = strip_word(rest, "bearer")
        && after_scheme.starts_with(char::is_whitespace)
    {
        rest = after_scheme.trim_start_matches(|c: char| c.is_whitespace() || is_quote(c));
    }
    let core = rest.trim_end_matches(|c: char| {
        c.is_whitespace() || is_quote(c) || matches!(c, ',' | ';' | '}' | ']' | ')')
    });
    let start = text.len() - rest.len();
    let end = start + core.len();
    let token = if core.contains(['\n', '\r']) {
        std::borrow::Cow::Owned(unwrap_lines(core))
    } else {
        std::borrow::Cow::Borrowed(core)
    };
    Pasted {
        before: &text[..start],
        token,
        after: &text[end..],
    }
}

impl<'a> Compact<'a> {
    /// Takes a compact token apart. Checks the length first, then the segment count, then
    /// strict base64url of each segment, then that the header is a JSON object without
    /// duplicate members.
    pub fn parse(token: &'a str) -> Result<Compact<'a>, MalformedToken> {
        if token.is_empty() {
            return Err(MalformedToken::Empty);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(MalformedToken::TooLong(token.len()));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(match token.split('.').count() {
                5 => MalformedToken::Jwe,
                n => MalformedToken::Segments(n),
            });
        };
        let decode = |segment: Segment, text: &str| {
            b64::decode(text).map_err(|reason| MalformedToken::Base64 { segment, reason })
        };
        let header_bytes = decode(Segment::Header, h)?;
        let payload = decode(Segment::Payload, p)?;
        let signature = decode(Segment::Signature, s)?;
        if std::str::from_utf8(&header_bytes).is_err() {
            return Err(MalformedToken::HeaderUtf8);
        }
        let header = json::parse_object(&header_bytes).map_err(MalformedToken::HeaderJson)?;
        Ok(Compact {
            header,
            payload,
            signature,
            signing_input: &token[..h.len() + 1 + p.len()],
            payload_b64: p,
            signature_b64: s,
        })
    }

    /// The payload as a JSON object (a JWT claims set), if it is one.
    pub fn claims(&self) -> Option<Map<String, Value>> {
        json::parse_object(&self.payload).ok()
    }
}

/// Builds a compact JWS: base64url of the header JSON and of `payload`, signed by `key`.
pub fn encode(
    header: &Map<String, Value>,
    payload: &[u8],
    key: &SigningKey,
) -> Result<String, super::Error> {
    let header_json = serde_json::to_vec(header).map_err(|e| super::Error::key(e.to_string()))?;
    encode_segments(&b64::encode(header_json), &b64::encode(payload), key)
}

/// Signs already-encoded segments (kept byte for byte, as `resign` needs).
pub fn encode_segments(
    header_b64: &str,
    payload_b64: &str,
    key: &SigningKey,
) -> Result<String, super::Error> {
    let mut token = String::with_capacity(header_b64.len() + payload_b64.len() + 700);
    token.push_str(header_b64);
    token.push('.');
    token.push_str(payload_b64);
    let sig = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64::encode(sig));
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_tokens_say_which_segment() {
        assert_eq!(
            Compact::parse("a.b").err(),
            Some(MalformedToken::Segments(2))
        );
        assert_eq!(
            Compact::parse("a.b.c.d").err(),
            Some(MalformedToken::Segments(4))
        );
        let err = Compact::parse("eyJhbGciOiJIUzI1NiJ9=.e30.").expect_err("padding");
        assert!(
            err.to_string()
                .starts_with("header segment is padding '=' at byte 20"),
            "{err}"
        );
        let err = Compact::parse("eyJhbGciOiJIUzI1NiJ9.e3+0.").expect_err("plus");
        assert_eq!(
            err.to_string(),
            "payload segment is not valid base64url: '+' at byte 2"
        );
        assert_eq!(Compact::parse("a.b.c.d.e").err(), Some(MalformedToken::Jwe));
        assert!(matches!(
            Compact::parse("WzFd.e30.").err(),
            Some(MalformedToken::HeaderJson(_))
        ));
        let long = ".".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            Compact::parse(&long).err(),
            Some(MalformedToken::TooLong(MAX_TOKEN_BYTES + 1))
        );
    }

    #[test]
    fn pasted_tokens_lose_what_surrounds_them() {
        let t = |s: &str| pasted(s).token.into_owned();
        assert_eq!(t("  Bearer abc.def.ghi \n"), "abc.def.ghi");
        assert_eq!(t("bearer abc"), "abc");
        assert_eq!(t("abc"), "abc");
        assert_eq!(t("\"abc.def.ghi\","), "abc.def.ghi");
        assert_eq!(t("'abc.def.ghi'"), "abc.def.ghi");
        assert_eq!(t("Authorization: Bearer abc.def.ghi\r\n"), "abc.def.ghi");
        assert_eq!(t("authorization:bearer  abc.def.ghi"), "abc.def.ghi");
        assert_eq!(
            t("\"Authorization\": \"Bearer abc.def.ghi\"}"),
            "abc.def.ghi"
        );
        assert_eq!(t("abc.de\n  f.ghi"), "abc.def.ghi");
        assert_eq!(t("abc.de\r\nf.ghi"), "abc.def.ghi");
        assert_eq!(
            t("abc.def.  ghi"),
            "abc.def.  ghi",
            "spaces alone are not a wrap"
        );
        assert_eq!(t("abc.def.ghi);"), "abc.def.ghi");
        // A token that merely starts with the letters of a scheme is kept whole.
        assert_eq!(t("Bearerish.x.y"), "Bearerish.x.y");
        let p = pasted("Bearer abc.def.ghi\",\n");
        assert_eq!((p.before, p.after), ("Bearer ", "\",\n"));
    }
}
