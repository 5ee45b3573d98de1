//! Cutting a stream into parts that are scanned one at a time, so memory stays bounded
//! whatever the input's size and no token, line or HTTP message is split where it could
//! matter: text is cut at line ends (a JSON line, with its base64 bodies, is seen whole), a
//! line over the window is cut never inside a token, and an HTTP stream is cut between
//! messages.

use crate::crypto::jws::MAX_TOKEN_BYTES;
use crate::scan::{http::Piece, token_byte};

/// How large the parts may grow.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A line (or HTTP message) longer than this is cut anyway.
    pub line: usize,
    /// The longest run of token and base64 characters carried whole from one part of an
    /// over-long line to the next (a base64 body that large is passed on as it is).
    pub carry: usize,
    /// The longest run of token characters that can hold a token (a token and a full stop).
    pub token: usize,
}

/// The limits `resign --scan` uses.
pub const LIMITS: Limits = Limits {
    line: 64 << 20,
    carry: 16 << 20,
    token: MAX_TOKEN_BYTES + 1,
};

// A part that starts with a carried run reaches the line limit only after that run and any
// token in it have ended: no token is ever cut.
const _: () = assert!(LIMITS.line > LIMITS.carry + LIMITS.token + 1);

/// What to do with the bytes read so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Read more before cutting.
    More,
    /// Scan `..at` now and keep the rest. With `open_end`, the cut is inside a run of token
    /// characters too long to be a token: the part is scanned with `Scanner::find_in_part`,
    /// told that the text goes on (and the next part, that it went on before).
    At { at: usize, open_end: bool },
}

/// Where to cut text held in `buf` (`eof`: nothing more will come).
pub fn text_cut(buf: &[u8], eof: bool, limits: &Limits) -> Cut {
    if eof {
        return Cut::At {
            at: buf.len(),
            open_end: false,
        };
    }
    match memchr::memrchr(b'\n', buf) {
        Some(p) => Cut::At {
            at: p + 1,
            open_end: false,
        },
        None if buf.len() < limits.line => Cut::More,
        None => long_line_cut(buf, limits),
    }
}

/// Where to cut an HTTP stream held in `buf`, framed into `pieces` (`http::pieces(buf)`):
/// after the last message that is surely whole (every piece but the last, whose body or head
/// may go on in bytes not read yet). A single message over the line limit is passed on as it
/// is read.
pub fn http_cut(buf: &[u8], eof: bool, pieces: &[Piece], limits: &Limits) -> Cut {
    let whole = |at: usize| Cut::At {
        at,
        open_end: false,
    };
    if eof {
        return whole(buf.len());
    }
    match pieces {
        [.., last] if pieces.len() >= 2 => whole(last.head.start),
        _ if buf.len() < limits.line => Cut::More,
        _ => whole(buf.len()),
    }
}

/// The cut of a line over the limit. Never inside a token: before the run of token and
/// base64 characters at the end when it can be carried (a base64 body up to `carry` stays
/// whole); else before the run of token characters at the end when a token could fit in it
/// (a token glued to a long base64 run by `+`, `/` or `=`); else inside that run, which is
/// too long to be a token or to start one.
fn long_line_cut(buf: &[u8], limits: &Limits) -> Cut {
    // The start of the run at the end of `buf` of bytes `in_run` takes, when it is at most
    // `limit` long (only that much is looked at).
    let run_start = |in_run: &dyn Fn(u8) -> bool, limit: usize| {
        let from = buf.len().saturating_sub(limit + 1);
        buf[from..]
            .iter()
            .rposition(|&b| !in_run(b))
            .map(|p| from + p + 1)
    };
    let at = run_start(&|b| token_byte(b) || b"+/=".contains(&b), limits.carry)
        .or_else(|| run_start(&token_byte, limits.token));
    match at {
        Some(at) => Cut::At {
            at,
            open_end: false,
        },
        None => Cut::At {
            at: buf.len(),
            open_end: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        line: 32,
        carry: 8,
        token: 12,
    };

    #[test]
    fn text_is_cut_at_line_ends_and_long_runs_never_inside_a_token() {
        assert_eq!(
            text_cut(b"ab\ncd", false, &SMALL),
            Cut::At {
                at: 3,
                open_end: false
            }
        );
        assert_eq!(text_cut(b"abcd", false, &SMALL), Cut::More);
        assert_eq!(
            text_cut(b"abcd", true, &SMALL),
            Cut::At {
                at: 4,
                open_end: false
            }
        );
        // A short run at the end is carried whole.
        let buf = [b"x ".as_slice(), &[b'A'; 30], b" eyJ.a"].concat();
        assert_eq!(
            text_cut(&buf, false, &SMALL),
            Cut::At {
                at: 33,
                open_end: false
            }
        );
        // A long base64 run ending in `/` and part of a token: the token part is carried.
        let buf = [[b'A'; 30].as_slice(), b"/eyJ.a"].concat();
        assert_eq!(
            text_cut(&buf, false, &SMALL),
            Cut::At {
                at: 31,
                open_end: false
            }
        );
        // One long token-character run: cut inside it, marked open.
        let buf = [b'A'; 40];
        assert_eq!(
            text_cut(&buf, false, &SMALL),
            Cut::At {
                at: 40,
                open_end: true
            }
        );
    }
}
