//! Raw HTTP message streams (requests and responses one after another, as a proxy or `curl -v`
//! dump writes them): each head is read by httparse, each body framed by its Content-Length, so
//! that after a rewrite the declared length can follow the body. Content-Length follows RFC
//! 9110 §8.6: identical values, in repeated fields or as a list, are one length (rewritten as
//! one field with one value); conflicting or malformed values make the message unframeable,
//! and it is passed on untouched. What cannot be framed (a head that does not parse, a chunked
//! body) is passed on as it is.

use std::ops::Range;

/// Heads larger than this, or with more headers, are not taken for HTTP.
const MAX_HEADERS: usize = 128;

/// One part of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The start line and headers (with the blank line), or a stretch of other text.
    pub head: Range<usize>,
    /// The body, possibly empty.
    pub body: Range<usize>,
    /// The declared Content-Length, when the message declares one it can be framed by.
    pub length: Option<Length>,
    /// A body that must not change length and cannot be fixed (chunked, or cut short): it is
    /// passed on untouched.
    pub frozen_body: bool,
    /// Content-Length values that conflict or do not parse: the whole message, head and
    /// body, is passed on untouched (RFC 9110 §8.6: it cannot be framed).
    pub conflict: bool,
    /// The `Content-Encoding` value, when there is one.
    pub encoding: Option<String>,
}

/// Where a message declares its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Length {
    /// The value of the first Content-Length field (`210`, or a list such as `210, 210`).
    pub value: Range<usize>,
    /// Further Content-Length fields, whole lines with their line ends.
    pub repeats: Vec<Range<usize>>,
    /// The length they all declare.
    pub declared: usize,
}

/// True when `data` starts with an HTTP/1.x request or status line.
pub fn looks_like_http(data: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if data.starts_with(b"HTTP/1.") {
        let mut resp = httparse::Response::new(&mut headers);
        return resp.parse(data).is_ok() && resp.code.is_some();
    }
    let mut req = httparse::Request::new(&mut headers);
    req.parse(data).is_ok() && req.version.is_some()
}

fn offset(data: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - data.as_ptr() as usize
}

/// Splits a stream into messages (and a final stretch of anything that is not HTTP).
pub fn pieces(data: &[u8]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        // Blank lines between messages belong to no message.
        let skip = data[pos..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if skip > 0 {
            out.push(Piece {
                head: pos..pos + skip,
                body: pos + skip..pos + skip,
                length: None,
                frozen_body: false,
                conflict: false,
                encoding: None,
            });
            pos += skip;
            continue;
        }
        match message(data, pos) {
            Some(p) => {
                pos = p.body.end;
                out.push(p);
            }
            None => {
                out.push(Piece {
                    head: pos..data.len(),
                    body: data.len()..data.len(),
                    length: None,
                    frozen_body: false,
                    conflict: false,
                    encoding: None,
                });
                break;
            }
        }
    }
    out
}

/// The message at `pos`, or None when no complete head parses there.
fn message(data: &[u8], pos: usize) -> Option<Piece> {
    let rest = &data[pos..];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let is_response = rest.starts_with(b"HTTP/");
    let (head_len, headers) = if is_response {
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => (n, resp.headers),
            _ => return None,
        }
    } else {
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(rest) {
            Ok(httparse::Status::Complete(n)) => (n, req.headers),
            _ => return None,
        }
    };
    let header = |name: &str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(name));
    let chunked = header("transfer-encoding").is_some_and(|h| {
        String::from_utf8_lossy(h.value)
            .to_ascii_lowercase()
            .contains("chunked")
    });
    let length = content_length(data, headers);
    let body_start = pos + head_len;
    let conflict = matches!(length, Declared::Conflict);
    let (body_end, frozen) = match (&length, chunked) {
        (_, true) | (Declared::Conflict, _) => (next_message(data, body_start), true),
        (Declared::Length(l), false) => match body_start.checked_add(l.declared) {
            Some(end) if end <= data.len() => (end, false),
            // The stream stops inside the body: pass the rest on untouched.
            _ => (data.len(), true),
        },
        (Declared::None, false) if is_response => (next_message(data, body_start), false),
        (Declared::None, false) => (body_start, false),
    };
    Some(Piece {
        head: pos..body_start,
        body: body_start..body_end,
        length: match length {
            Declared::Length(l) if !chunked => Some(l),
            _ => None,
        },
        frozen_body: frozen,
        conflict,
        encoding: header("content-encoding")
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string()),
    })
}

/// What a head's Content-Length fields say.
enum Declared {
    None,
    Length(Length),
    Conflict,
}

/// Reads every Content-Length field of a head (RFC 9110 §8.6): one length when all values,
/// across fields and lists, are the same number; a conflict otherwise.
fn content_length(data: &[u8], headers: &[httparse::Header<'_>]) -> Declared {
    let mut declared: Option<usize> = None;
    let mut value = None;
    let mut repeats = Vec::new();
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        let Ok(text) = std::str::from_utf8(h.value) else {
            return Declared::Conflict;
        };
        for item in text.split(',') {
            let digits = item.trim_matches([' ', '\t']);
            let Some(n) = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<usize>().ok())
                .flatten()
            else {
                return Declared::Conflict;
            };
            if declared.is_some_and(|d| d != n) {
                return Declared::Conflict;
            }
            declared = Some(n);
        }
        let start = offset(data, h.value) + (text.len() - text.trim_start().len());
        let end = offset(data, h.value) + text.trim_end().len();
        if value.is_none() {
            value = Some(start..end.max(start));
        } else {
            // The whole field line: from its name to the end of its line.
            let line_start = offset(data, h.name.as_bytes());
            let after = offset(data, h.value) + h.value.len();
            let line_end = memchr::memchr(b'\n', &data[after..]).map_or(after, |p| after + p + 1);
            repeats.push(line_start..line_end);
        }
    }
    match (declared, value) {
        (Some(declared), Some(value)) => Declared::Length(Length {
            value,
            repeats,
            declared,
        }),
        _ => Declared::None,
    }
}

/// Writes `piece`'s head for a body now `new_len` bytes long: when it declared the old body's
/// length, that length is written as one Content-Length field with one value (repeated fields
/// and lists collapse) and only when it changed; every other stretch of the head goes through
/// `rewrite` (which replaces tokens).
pub fn write_head(
    data: &[u8],
    piece: &Piece,
    new_len: usize,
    out: &mut Vec<u8>,
    rewrite: &mut dyn FnMut(&[u8], &mut Vec<u8>),
) {
    let fix = piece
        .length
        .as_ref()
        .filter(|l| l.declared == piece.body.len() && new_len != l.declared);
    let Some(length) = fix else {
        rewrite(&data[piece.head.clone()], out);
        return;
    };
    let mut at = piece.head.start;
    rewrite(&data[at..length.value.start], out);
    out.extend_from_slice(new_len.to_string().as_bytes());
    at = length.value.end;
    for line in &length.repeats {
        rewrite(&data[at..line.start], out);
        at = line.end;
    }
    rewrite(&data[at..piece.head.end], out);
}

/// Where the next message begins (a start line at the beginning of a line), or the end.
fn next_message(data: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(nl) = memchr::memchr(b'\n', &data[i..]) {
        let line = i + nl + 1;
        if line < data.len() && looks_like_http(&data[line..]) {
            return line;
        }
        i = line;
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_of_requests_and_responses_is_framed() {
        let data = b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length:  2\r\n\r\nok\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let p = pieces(data);
        let msgs: Vec<&Piece> = p
            .iter()
            .filter(|x| x.length.is_some() || !x.head.is_empty())
            .collect();
        assert_eq!(&data[msgs[0].body.clone()], b"hello");
        assert_eq!(&data[msgs[0].length.clone().expect("len").value], b"5");
        assert_eq!(&data[msgs[1].body.clone()], b"ok");
        assert_eq!(&data[msgs[1].length.clone().expect("len").value], b"2");
        assert!(looks_like_http(data));
        assert!(!looks_like_http(b"{\"log\":1}"));
        let total: usize = p.iter().map(|x| x.head.len() + x.body.len()).sum();
        assert_eq!(total, data.len(), "every byte is in exactly one piece");
    }

    /// Rewrites every body of `data` to `new_body` and writes the heads with `write_head`.
    fn rewritten(data: &[u8], new_body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces(data) {
            let body: &[u8] = if p.length.is_some() && !p.frozen_body {
                new_body
            } else {
                &data[p.body.clone()]
            };
            write_head(data, &p, body.len(), &mut out, &mut |t, o| {
                o.extend_from_slice(t)
            });
            out.extend_from_slice(body);
        }
        out
    }

    #[test]
    fn repeated_and_listed_lengths_collapse_and_conflicts_pass_untouched() {
        let same = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nX: y\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        assert_eq!(
            rewritten(same, b"hi!"),
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nX: y\r\n\r\nhi!GET / HTTP/1.1\r\n\r\n"
        );
        let listed =
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            rewritten(listed, b"hi!"),
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi!HTTP/1.1 204 No Content\r\n\r\n"
        );
        // Unchanged length: every byte stays, repeats included.
        assert_eq!(rewritten(same, b"hello"), same);
        for conflicting in [
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!GET / HTTP/1.1\r\n\r\n".as_slice(),
            b"POST /a HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello!GET / HTTP/1.1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 5x\r\n\r\nhello!GET / HTTP/1.1\r\n\r\n",
        ] {
            let p = pieces(conflicting);
            assert!(p[0].conflict && p[0].frozen_body && p[0].length.is_none());
            assert!(conflicting[p[0].body.clone()].starts_with(b"hello!"));
            assert_eq!(rewritten(conflicting, b"hi"), conflicting);
        }
    }

    #[test]
    fn short_bodies_and_garbage_are_passed_on() {
        let data = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort";
        let p = pieces(data);
        assert!(p[0].frozen_body);
        assert_eq!(p[0].body.end, data.len());
        let p = pieces(b"not http at all");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].head, 0..15);
    }
}
