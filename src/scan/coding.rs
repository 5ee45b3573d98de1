//! Bodies as captures and proxies meet them: `Content-Encoding` gzip, deflate and br are
//! decoded for the scan and encoded again the same way, under a cap on the decoded size (a
//! bomb passes through untouched, counted).

use std::io::{Read, Write};

/// A body's content coding, when the proxy can take it apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
}

impl Coding {
    /// From a `Content-Encoding` value; None for codings the proxy does not decode (several,
    /// or unknown ones): such a body passes through untouched.
    pub fn from_header(value: Option<&str>) -> Option<Coding> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Some(Coding::Identity),
            Some("gzip" | "x-gzip") => Some(Coding::Gzip),
            Some("deflate") => Some(Coding::Deflate),
            Some("br") => Some(Coding::Brotli),
            _ => None,
        }
    }

    /// The decoded body, at most `cap` bytes; None when it does not decode or is larger.
    pub fn decode(self, data: &[u8], cap: usize) -> Option<Vec<u8>> {
        let reader: Box<dyn Read + '_> = match self {
            Coding::Identity => return Some(data.to_vec()),
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
            // HTTP's "deflate" is zlib (RFC 9110 §8.4.1.2); some servers send raw deflate.
            Coding::Deflate if zlib_framed(data) => Box::new(flate2::read::ZlibDecoder::new(data)),
            Coding::Deflate => Box::new(flate2::read::DeflateDecoder::new(data)),
            Coding::Brotli => Box::new(brotli::Decompressor::new(data, 4096)),
        };
        let mut out = Vec::new();
        reader.take(cap as u64 + 1).read_to_end(&mut out).ok()?;
        (out.len() <= cap).then_some(out)
    }

    /// `data` encoded as `original` was: in this coding, and for deflate in the same framing
    /// (zlib or raw).
    pub fn encode_like(self, original: &[u8], data: &[u8]) -> std::io::Result<Vec<u8>> {
        self.encode(data, zlib_framed(original))
    }

    /// `data` encoded in this coding (deflate in zlib framing when `zlib`).
    fn encode(self, data: &[u8], zlib: bool) -> std::io::Result<Vec<u8>> {
        match self {
            Coding::Identity => Ok(data.to_vec()),
            Coding::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data)?;
                e.finish()
            }
            Coding::Deflate if zlib => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data)?;
                e.finish()
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data)?;
                e.finish()
            }
            Coding::Brotli => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    w.write_all(data)?;
                    w.flush()?;
                }
                Ok(out)
            }
        }
    }
}

/// True when a deflate body is zlib-framed (RFC 9110's "deflate"), false for raw deflate: a
/// zlib stream starts with a byte whose low nibble is 8 (the deflate method).
fn zlib_framed(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b & 0x0f == 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coding_round_trips_and_bombs_are_refused() {
        let text = b"{\"access_token\":\"eyJhbGciOiJIUzI1NiJ9.e30.c2ln\"}".repeat(50);
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
            for zlib in [true, false] {
                let encoded = coding.encode(&text, zlib).expect("encode");
                assert_eq!(coding.decode(&encoded, 1 << 20).expect("decode"), text);
                assert!(coding.decode(&encoded, 100).is_none(), "over the cap");
            }
        }
        assert_eq!(Coding::from_header(Some("GZIP")), Some(Coding::Gzip));
        assert_eq!(Coding::from_header(Some("gzip, br")), None);
        assert!(Coding::Gzip.decode(b"not gzip", 100).is_none());
    }
}
