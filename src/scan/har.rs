//! HAR 1.2 size fields after a rewrite: a request's `bodySize` and a response's `bodySize` and
//! `content.size` that matched the old body (its text, or its decoded bytes with
//! `"encoding": "base64"`) are set to the new body's length; sizes that were unknown (-1) or
//! already did not match stay as they were, and no other byte changes. Positions come from a
//! small iterative JSON walker (serde_json gives values, not where they are).

use std::collections::BTreeMap;
use std::ops::Range;

use base64::Engine;

/// True when `data` begins as a HAR document does: a JSON object whose first member is `log`
/// holding an object (`{"log": {`). A JSON-lines log whose lines have a `log` string (Docker's
/// json-file driver) is not one, and is streamed as text.
pub fn looks_like_har(data: &[u8]) -> bool {
    let rest = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let rest = rest.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"{") else {
        return false;
    };
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b"\"log\"") else {
        return false;
    };
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b":") else {
        return false;
    };
    rest.trim_ascii_start().starts_with(b"{")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Request,
    Response,
}

/// Where one request's or response's size fields and body are in a document.
#[derive(Default, Debug)]
struct Fields {
    body_size: Option<Range<usize>>,
    content_size: Option<Range<usize>>,
    text: Option<Range<usize>>,
    encoding: Option<Range<usize>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Finds every entry's size fields and body.
fn fields(doc: &[u8]) -> BTreeMap<(usize, Side), Fields> {
    let mut map: BTreeMap<(usize, Side), Fields> = BTreeMap::new();
    walk(doc, &mut |path, range| {
        let key = |i: usize| match path.get(i) {
            Some(Seg::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        if key(0) != Some("log") || key(1) != Some("entries") {
            return;
        }
        let Some(Seg::Index(entry)) = path.get(2) else {
            return;
        };
        let side = match key(3) {
            Some("request") => Side::Request,
            Some("response") => Side::Response,
            _ => return,
        };
        let f = map.entry((*entry, side)).or_default();
        match (side, &path[4..]) {
            (_, [Seg::Key(k)]) if k == "bodySize" => f.body_size = Some(range),
            (Side::Request, [Seg::Key(p), Seg::Key(t)]) if p == "postData" && t == "text" => {
                f.text = Some(range)
            }
            (Side::Response, [Seg::Key(c), Seg::Key(k)]) if c == "content" => match k.as_str() {
                "size" => f.content_size = Some(range),
                "text" => f.text = Some(range),
                "encoding" => f.encoding = Some(range),
                _ => {}
            },
            _ => {}
        }
    });
    map
}

/// The body length in bytes: the text, or its decoded bytes when base64.
fn body_len(doc: &[u8], f: &Fields) -> Option<usize> {
    let text: String = serde_json::from_slice(&doc[f.text.clone()?]).ok()?;
    let encoding: Option<String> = f
        .encoding
        .clone()
        .and_then(|r| serde_json::from_slice(&doc[r]).ok());
    if encoding.as_deref() == Some("base64") {
        // Either alphabet, padded or not: what was written is what gets measured.
        let config = base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
        let text = text.trim();
        let alphabet = if text.contains(['-', '_']) {
            &base64::alphabet::URL_SAFE
        } else {
            &base64::alphabet::STANDARD
        };
        base64::engine::GeneralPurpose::new(alphabet, config)
            .decode(text)
            .ok()
            .map(|b| b.len())
    } else {
        Some(text.len())
    }
}

fn number(doc: &[u8], r: &Option<Range<usize>>) -> Option<i64> {
    std::str::from_utf8(&doc[r.clone()?]).ok()?.parse().ok()
}

/// `new` (a rewrite of `old`) with the size fields that matched the old bodies fixed.
pub fn fix_sizes(old: &[u8], new: &[u8]) -> Vec<u8> {
    let (before, after) = (fields(old), fields(new));
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    for (key, o) in &before {
        let Some(n) = after.get(key) else { continue };
        let (Some(old_len), Some(new_len)) = (body_len(old, o), body_len(new, n)) else {
            continue;
        };
        if old_len == new_len {
            continue;
        }
        for (old_field, new_field) in [
            (&o.content_size, &n.content_size),
            (&o.body_size, &n.body_size),
        ] {
            if number(old, old_field) == Some(old_len as i64)
                && let Some(r) = new_field
            {
                edits.push((r.clone(), new_len.to_string()));
            }
        }
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = Vec::with_capacity(new.len() + 16);
    let mut at = 0;
    for (r, text) in edits {
        out.extend_from_slice(&new[at..r.start]);
        out.extend_from_slice(text.as_bytes());
        at = r.end;
    }
    out.extend_from_slice(&new[at..]);
    out
}

/// Calls `visit` with the path and byte range of every string (quotes included) and number.
/// Iterative, so no document nests it into a stack overflow; it stops quietly at the first
/// byte that is not JSON (the document is then only partly seen, and fewer sizes are fixed).
fn walk(doc: &[u8], visit: &mut dyn FnMut(&[Seg], Range<usize>)) {
    #[derive(PartialEq)]
    enum Want {
        Value,
        Key,
        Next,
    }
    let mut path: Vec<Seg> = Vec::new();
    // For each open container: true for an object.
    let mut open: Vec<bool> = Vec::new();
    let mut want = Want::Value;
    let mut i = 0;
    let n = doc.len();
    loop {
        while i < n && doc[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return;
        }
        match want {
            Want::Value => match doc[i] {
                b'{' => {
                    open.push(true);
                    i += 1;
                    want = Want::Key;
                }
                b'[' => {
                    open.push(false);
                    path.push(Seg::Index(0));
                    i += 1;
                    want = Want::Value;
                }
                b']' if open.last() == Some(&false) => {
                    // An empty array.
                    path.pop();
                    open.pop();
                    i += 1;
                    want = Want::Next;
                }
                b'"' => {
                    let Some(end) = string_end(doc, i) else {
                        return;
                    };
                    visit(&path, i..end);
                    i = end;
                    want = Want::Next;
                }
                _ => {
                    let end = doc[i..]
                        .iter()
                        .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                        .map_or(n, |p| i + p);
                    if end == i {
                        return;
                    }
                    if matches!(doc[i], b'-' | b'0'..=b'9') {
                        visit(&path, i..end);
                    }
                    i = end;
                    want = Want::Next;
                }
            },
            Want::Key => match doc[i] {
                b'}' => {
                    open.pop();
                    i += 1;
                    want = Want::Next;
                }
                b'"' => {
                    let Some(end) = string_end(doc, i) else {
                        return;
                    };
                    let key: String = serde_json::from_slice(&doc[i..end]).unwrap_or_default();
                    path.push(Seg::Key(key));
                    i = end;
                    while i < n && doc[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    if i >= n || doc[i] != b':' {
                        return;
                    }
                    i += 1;
                    want = Want::Value;
                }
                _ => return,
            },
            Want::Next => {
                let Some(&is_object) = open.last() else {
                    return;
                };
                match (doc[i], is_object) {
                    (b',', true) => {
                        path.pop();
                        want = Want::Key;
                    }
                    (b',', false) => {
                        if let Some(Seg::Index(k)) = path.last_mut() {
                            *k += 1;
                        }
                        want = Want::Value;
                    }
                    (b'}', true) | (b']', false) => {
                        path.pop();
                        open.pop();
                        want = Want::Next;
                    }
                    _ => return,
                }
                i += 1;
            }
        }
    }
}

/// The index just past the closing quote of the string opening at `start`.
fn string_end(doc: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < doc.len() {
        match doc[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_matched_follow_the_new_body() {
        let old = br#"{"log": {"entries": [
 {"request": {"bodySize": 3, "postData": {"text": "a=1"}},
  "response": {"bodySize": 11, "content": {"size": 11, "text": "hello world"}}},
 {"request": {"bodySize": -1},
  "response": {"bodySize": 5, "content": {"size": 4, "text": "aGk=", "encoding": "base64"}}}]}}"#;
        let new = br#"{"log": {"entries": [
 {"request": {"bodySize": 3, "postData": {"text": "a=12"}},
  "response": {"bodySize": 11, "content": {"size": 11, "text": "hello, world"}}},
 {"request": {"bodySize": -1},
  "response": {"bodySize": 5, "content": {"size": 4, "text": "aGk=", "encoding": "base64"}}}]}}"#;
        let fixed = String::from_utf8(fix_sizes(old, new)).expect("utf8");
        assert!(fixed.contains(r#""bodySize": 4, "postData""#), "{fixed}");
        assert!(
            fixed.contains(r#""bodySize": 12, "content": {"size": 12"#),
            "{fixed}"
        );
        assert!(
            fixed.contains(r#""bodySize": 5, "content": {"size": 4"#),
            "unchanged body"
        );
    }

    #[test]
    fn the_walker_survives_deep_and_broken_documents() {
        let deep = "[".repeat(100_000);
        assert!(fields(deep.as_bytes()).is_empty());
        assert!(fields(b"{\"log\": {\"entries\": [{\"request\": ").is_empty());
        assert!(fields(b"\"unterminated").is_empty());
        assert!(looks_like_har(b"  {\n \"log\": {}}"));
    }
}
