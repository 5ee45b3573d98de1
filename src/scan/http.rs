//! Raw HTTP message streams (requests and responses one after another, as a proxy or `curl -v`
//! dump writes them): each head is read by httparse, each body framed by its Content-Length, so
//! that after a rewrite the declared length can follow the body. What cannot be framed (a head
//! that does not parse, a chunked body) is passed on as it is.

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
    /// The digits of the Content-Length value, when the message declares one.
    pub length: Option<Range<usize>>,
    /// A body that must not change length and cannot be fixed (chunked, or cut short): it is
    /// passed on untouched.
    pub frozen_body: bool,
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
    let length = header("content-length").and_then(|h| {
        let text = std::str::from_utf8(h.value).ok()?;
        let digits = text.trim();
        let n: usize = digits.parse().ok()?;
        let start = offset(data, h.value) + (text.len() - text.trim_start().len());
        Some((start..start + digits.len(), n))
    });
    let body_start = pos + head_len;
    let (body_end, frozen) = match (&length, chunked) {
        (_, true) => (next_message(data, body_start), true),
        (Some((_, n)), false) => match body_start.checked_add(*n) {
            Some(end) if end <= data.len() => (end, false),
            // The stream stops inside the body: pass the rest on untouched.
            _ => (data.len(), true),
        },
        (None, false) if is_response => (next_message(data, body_start), false),
        (None, false) => (body_start, false),
    };
    Some(Piece {
        head: pos..body_start,
        body: body_start..body_end,
        length: length.map(|(r, _)| r),
        frozen_body: frozen,
    })
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
        assert_eq!(&data[msgs[0].length.clone().expect("len")], b"5");
        assert_eq!(&data[msgs[1].body.clone()], b"ok");
        assert_eq!(&data[msgs[1].length.clone().expect("len")], b"2");
        assert!(looks_like_http(data));
        assert!(!looks_like_http(b"{\"log\":1}"));
        let total: usize = p.iter().map(|x| x.head.len() + x.body.len()).sum();
        assert_eq!(total, data.len(), "every byte is in exactly one piece");
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
