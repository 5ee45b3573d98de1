//! Finding compact JWS tokens in any text and rewriting them, every other byte kept: in JSON
//! strings, headers, cookies, query strings and form bodies, also inside JSON held in strings
//! (escaped quotes) and inside base64 documents held in JSON strings (a HAR body with
//! `"encoding": "base64"`, a `bodyBase64` member), which are decoded, rewritten and re-encoded in
//! the same alphabet and padding. `--only` selectors look at where each token stands (`place`);
//! `http` and `har` fix declared lengths after a rewrite. Pure functions over bytes, used by
//! `resign --scan` (and meant for a live re-signing proxy).

pub mod coding;
pub mod har;
pub mod http;
pub mod place;
pub mod stream;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

pub use place::{Place, Selector, place_of};

use crate::crypto::jws::MAX_TOKEN_BYTES;

/// Which bytes can be part of a compact token: base64url and the dot.
static TOKEN_BYTES: [bool; 256] = table(b"-_.");
/// Which bytes can be part of a base64 document (either alphabet, with padding).
static B64_BYTES: [bool; 256] = table(b"+/-_=");

const fn table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric();
        i += 1;
    }
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
}

pub fn token_byte(b: u8) -> bool {
    TOKEN_BYTES[b as usize]
}

/// Base64 documents shorter than this are not looked into (no token fits in them).
const MIN_B64: usize = 32;
/// How deep base64 documents are opened (a base64 body inside a base64 body: 2).
const MAX_DEPTH: usize = 2;

/// One token where it stands.
pub struct Occurrence<'a> {
    pub token: &'a str,
    /// Inside a base64 document.
    pub nested: bool,
    /// Chosen by the `--only` selectors (always, when there are none).
    pub selected: bool,
    /// Which of the first 64 `--only` selectors chose it (bit i: selector i).
    pub only_hits: u64,
}

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Scanner {
    /// `--only` places; empty = every token.
    pub only: Vec<Selector>,
    /// Look inside base64 documents held in JSON strings.
    pub nested: bool,
}

/// The tokens and base64 documents of one text, found once and used by both passes of a
/// rewrite (collecting tokens to re-sign, then writing).
#[derive(Debug, Default)]
pub struct Found {
    tokens: Vec<(usize, usize)>,
    docs: Vec<(usize, usize)>,
}

impl Found {
    /// Where the tokens are: start and end offsets.
    pub fn token_spans(&self) -> &[(usize, usize)] {
        &self.tokens
    }

    /// Nothing to look at: the text passes through as it is.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.docs.is_empty()
    }
}

impl Scanner {
    /// Finds the tokens (and, when nested, the base64 documents that may hold one) in `text`.
    pub fn find(&self, text: &[u8]) -> Found {
        self.find_at(text, 0)
    }

    /// `find` in one part of a longer text cut inside a run of token characters: with
    /// `open_start` the text continued before `text` (a run at its start is the tail of a
    /// longer one), with `open_end` it continues after (a run at its end goes on). Such runs
    /// are never taken for tokens, so a cut never yields half a token; the caller cuts only
    /// inside runs too long to be one.
    pub fn find_in_part(&self, text: &[u8], open_start: bool, open_end: bool) -> Found {
        let mut found = self.find_at(text, 0);
        found.tokens.retain(|&(s, e)| {
            let touches_start = s == 0;
            // A full stop after a token is not part of it: the run may end one byte later.
            let run_end = text[e..]
                .iter()
                .position(|&b| !token_byte(b))
                .map_or(text.len(), |p| e + p);
            let touches_end = run_end == text.len();
            !((open_start && touches_start) || (open_end && touches_end))
        });
        found
    }

    fn find_at(&self, text: &[u8], depth: usize) -> Found {
        Found {
            tokens: token_spans(text),
            docs: if self.nested && depth < MAX_DEPTH {
                base64_spans(text)
            } else {
                Vec::new()
            },
        }
    }

    /// Walks `text`: `visit` sees every token occurrence, in order, and returns its replacement
    /// (None keeps it). With `out`, the text is written there with the replacements, base64
    /// documents re-encoded where something inside them changed. Returns true when anything
    /// was replaced.
    pub fn walk(
        &self,
        text: &[u8],
        visit: &mut dyn FnMut(&Occurrence) -> Option<String>,
        out: Option<&mut Vec<u8>>,
    ) -> bool {
        let found = self.find(text);
        self.walk_found(text, &found, visit, out)
    }

    /// `walk` with what `find` found in `text`.
    pub fn walk_found(
        &self,
        text: &[u8],
        found: &Found,
        visit: &mut dyn FnMut(&Occurrence) -> Option<String>,
        out: Option<&mut Vec<u8>>,
    ) -> bool {
        self.walk_layer(text, found, 0, visit, out)
    }

    fn walk_layer(
        &self,
        text: &[u8],
        found: &Found,
        depth: usize,
        visit: &mut dyn FnMut(&Occurrence) -> Option<String>,
        mut out: Option<&mut Vec<u8>>,
    ) -> bool {
        let mut changed = false;
        let mut at = 0;
        let mut tokens = found.tokens.iter().copied().peekable();
        let mut docs = found.docs.iter().copied().peekable();
        loop {
            // The next token or base64 document, whichever comes first (they never overlap:
            // a document holds no dot, and a token run stops at a quote).
            let next_token = tokens.peek().map(|s| s.0);
            let next_doc = docs.peek().map(|d| d.0);
            let take_token = match (next_token, next_doc) {
                (None, None) => break,
                (Some(t), Some(d)) => t < d,
                (t, _) => t.is_some(),
            };
            if take_token {
                let Some((s, e)) = tokens.next() else { break };
                let token = std::str::from_utf8(&text[s..e]).unwrap_or_default();
                let (selected, only_hits) = if self.only.is_empty() {
                    (true, 0)
                } else {
                    let place = place_of(text, s);
                    let mut any = false;
                    let mut bits = 0u64;
                    for (i, sel) in self.only.iter().enumerate() {
                        if sel.matches(&place) {
                            any = true;
                            bits |= 1u64.checked_shl(i as u32).unwrap_or(0);
                        }
                    }
                    (any, bits)
                };
                let occ = Occurrence {
                    token,
                    nested: depth > 0,
                    selected,
                    only_hits,
                };
                if let Some(new) = visit(&occ) {
                    changed = true;
                    if let Some(o) = out.as_deref_mut() {
                        o.extend_from_slice(&text[at..s]);
                        o.extend_from_slice(new.as_bytes());
                    }
                    at = e;
                }
            } else {
                let Some((s, e)) = docs.next() else { break };
                let Some((decoded, style)) = decode_document(&text[s..e]) else {
                    continue;
                };
                let inner_found = self.find_at(&decoded, depth + 1);
                if inner_found.is_empty() {
                    continue;
                }
                let mut inner = out
                    .as_ref()
                    .map(|_| Vec::with_capacity(decoded.len() + 256));
                if self.walk_layer(&decoded, &inner_found, depth + 1, visit, inner.as_mut()) {
                    changed = true;
                    if let (Some(o), Some(inner)) = (out.as_deref_mut(), inner) {
                        o.extend_from_slice(&text[at..s]);
                        o.extend_from_slice(style.encode(&inner).as_bytes());
                        at = e;
                    }
                }
            }
        }
        if let Some(o) = out {
            o.extend_from_slice(&text[at..]);
        }
        changed
    }
}

/// The spans of JWT-looking strings: runs of base64url characters and dots with three segments
/// (or five: a compact JWE), the first starting `ey` (a base64url JSON object). A sentence's full stop after a token is
/// not part of it. Candidates are found with a vectorised search for `ey`.
pub fn token_spans(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut resume = 0;
    for s in memchr::memmem::find_iter(text, b"ey") {
        if s < resume || (s > 0 && token_byte(text[s - 1])) {
            continue;
        }
        let len = text[s..]
            .iter()
            .position(|&b| !token_byte(b))
            .unwrap_or(text.len() - s);
        resume = s + len;
        let mut e = s + len;
        let run = &text[s..e];
        // Three segments (a JWS) or five (a compact JWE), less a sentence's full stop.
        let dots = memchr::memchr_iter(b'.', run).count();
        if matches!(dots, 3 | 5) && run.last() == Some(&b'.') {
            e -= 1;
        } else if !matches!(dots, 2 | 4) {
            continue;
        }
        if e - s >= 5 && e - s <= MAX_TOKEN_BYTES {
            spans.push((s, e));
        }
    }
    spans
}

/// What a base64 document holding a token must contain. A token's header starts `eyJ` (or
/// `eyA` for `{ "`); base64 of text holding `eyJ` holds `ZXlK`, `V5S` or `leU`, depending on
/// where the 3-byte groups fall (`eyA`: `ZXlB`, `V5Q`, `leU`). Looking for these (a vectorised
/// search) instead of at every string keeps the cost of nested bodies near zero when they hold
/// no token.
static TRIGGERS: [&[u8]; 5] = [b"ZXlK", b"ZXlB", b"V5S", b"V5Q", b"leU"];

/// Spans of JSON string contents (between quotes, escaped or not) that are a base64 document of
/// at least `MIN_B64` characters holding a trigger.
fn base64_spans(text: &[u8]) -> Vec<(usize, usize)> {
    let mut hits: Vec<usize> = Vec::new();
    for t in TRIGGERS {
        hits.extend(memchr::memmem::find_iter(text, t));
    }
    if hits.is_empty() {
        return Vec::new();
    }
    hits.sort_unstable();
    let mut spans = Vec::new();
    let mut covered = 0;
    for hit in hits {
        if hit < covered {
            continue;
        }
        let s = text[..hit]
            .iter()
            .rposition(|&b| !B64_BYTES[b as usize])
            .map_or(0, |p| p + 1);
        let e = text[hit..]
            .iter()
            .position(|&b| !B64_BYTES[b as usize])
            .map_or(text.len(), |p| hit + p);
        covered = e;
        // The whole content of a JSON string: a quote before, a quote (or the backslash of an
        // escaped one) after.
        let quoted = s > 0 && text[s - 1] == b'"' && matches!(text.get(e), Some(b'"' | b'\\'));
        if quoted && e - s >= MIN_B64 {
            spans.push((s, e));
        }
    }
    spans
}

/// How a base64 document was written, to write a new one the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B64Style {
    url_safe: bool,
    padded: bool,
}

impl B64Style {
    pub fn encode(self, bytes: &[u8]) -> String {
        match (self.url_safe, self.padded) {
            (false, true) => STANDARD.encode(bytes),
            (false, false) => STANDARD_NO_PAD.encode(bytes),
            (true, true) => URL_SAFE.encode(bytes),
            (true, false) => URL_SAFE_NO_PAD.encode(bytes),
        }
    }
}

/// Decodes a base64 document that holds UTF-8 text; None for anything else (binary data such
/// as images or gzip, mixed alphabets, misplaced padding). Only a short prefix is decoded
/// before deciding, so binary blobs cost little.
pub fn decode_document(doc: &[u8]) -> Option<(Vec<u8>, B64Style)> {
    let body_len = doc.len() - doc.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &doc[..body_len];
    if doc.len() - body_len > 2 || body.contains(&b'=') {
        return None;
    }
    let std_chars = body.iter().any(|&b| b == b'+' || b == b'/');
    let url_chars = body.iter().any(|&b| b == b'-' || b == b'_');
    if std_chars && url_chars {
        return None;
    }
    let padded = body_len < doc.len() || doc.len().is_multiple_of(4);
    let style = B64Style {
        url_safe: url_chars,
        padded,
    };
    let engine = if url_chars {
        &URL_SAFE_NO_PAD
    } else {
        &STANDARD_NO_PAD
    };
    // A prefix of whole quanta first: binary data fails the UTF-8 check here.
    let probe = &body[..body.len().min(512) / 4 * 4];
    let head = engine.decode(probe).ok()?;
    if let Err(e) = std::str::from_utf8(&head)
        && (e.error_len().is_some() || probe.len() == body.len())
    {
        return None;
    }
    let bytes = engine.decode(body).ok()?;
    std::str::from_utf8(&bytes).ok()?;
    // Re-encoding must give back the same text, or the rest of the document would change.
    (style.encode(&bytes).as_bytes() == doc).then_some((bytes, style))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";

    fn replace_all(scanner: &Scanner, text: &[u8]) -> (String, Vec<(String, bool, bool)>) {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        scanner.walk(
            text,
            &mut |o| {
                seen.push((o.token.to_string(), o.nested, o.selected));
                o.selected.then(|| "NEW.TOKEN.X".to_string())
            },
            Some(&mut out),
        );
        (String::from_utf8(out).expect("utf8"), seen)
    }

    #[test]
    fn tokens_are_found_and_nothing_else_changes() {
        // Three segments or five (a compact JWE, `dir`'s empty key too); four or six are not.
        let jwe = "eyJhbGciOiJkaXIifQ..aXY.Y3Q.dGFn";
        let text = format!("a {T1}. b=\"{T1}\" c={T1}x.y eyJ.six.segments.are.not.one ey {jwe}.");
        let (out, seen) = replace_all(&Scanner::default(), text.as_bytes());
        assert_eq!(
            out,
            "a NEW.TOKEN.X. b=\"NEW.TOKEN.X\" c=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnx.y eyJ.six.segments.are.not.one ey NEW.TOKEN.X."
        );
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn base64_documents_are_opened_and_re_encoded_in_their_style() {
        let inner = format!("{{\"access_token\":\"{T1}\",\"id_token\":\"{T1}\"}}");
        for (style, encoded) in [
            ("std padded", STANDARD.encode(&inner)),
            ("std unpadded", STANDARD_NO_PAD.encode(&inner)),
            ("url unpadded", URL_SAFE_NO_PAD.encode(&inner)),
        ] {
            let text = format!("{{\"bodyBase64\":\"{encoded}\",\"n\":1}}");
            let scanner = Scanner {
                nested: true,
                ..Scanner::default()
            };
            let (out, seen) = replace_all(&scanner, text.as_bytes());
            assert_eq!(seen.len(), 2, "{style}");
            assert!(seen.iter().all(|(_, nested, _)| *nested));
            let new_doc = out
                .strip_prefix("{\"bodyBase64\":\"")
                .and_then(|r| r.strip_suffix("\",\"n\":1}"))
                .expect("frame kept");
            let (decoded, _) = decode_document(new_doc.as_bytes()).expect("decodes");
            assert_eq!(
                String::from_utf8(decoded).expect("utf8"),
                "{\"access_token\":\"NEW.TOKEN.X\",\"id_token\":\"NEW.TOKEN.X\"}",
                "{style}"
            );
            assert_eq!(new_doc.ends_with('='), encoded.ends_with('='), "{style}");
        }
    }

    #[test]
    fn binary_and_odd_base64_is_left_alone() {
        let png = STANDARD.encode([0x89u8, b'P', b'N', b'G', 0, 0, 0xff, 0xfe].repeat(20));
        assert!(decode_document(png.as_bytes()).is_none());
        assert!(decode_document(b"YWJj=ZGVm").is_none(), "padding inside");
        assert!(
            decode_document(b"a+b_cdefghijklmnopqrstuvwxyzABCD").is_none(),
            "mixed"
        );
        let text = format!("{{\"img\":\"{png}\"}}");
        let scanner = Scanner {
            nested: true,
            ..Scanner::default()
        };
        let (out, _) = replace_all(&scanner, text.as_bytes());
        assert_eq!(out, text);
    }

    #[test]
    fn a_token_inside_escaped_json_is_found() {
        let text = format!("{{\"text\":\"{{\\\"access_token\\\":\\\"{T1}\\\"}}\"}}");
        let (out, seen) = replace_all(&Scanner::default(), text.as_bytes());
        assert_eq!(seen.len(), 1);
        assert!(
            out.contains("\\\"access_token\\\":\\\"NEW.TOKEN.X\\\""),
            "{out}"
        );
    }
}
