//! Strict base64url (RFC 7515 §2): no padding, no `+` or `/`, no white space, canonical trailing bits.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict base64url; the error names the first offending byte where it can.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    if let Some(at) = text.find('=') {
        return Err(format!(
            "padding '=' at byte {at} (base64url here is unpadded)"
        ));
    }
    URL_SAFE_NO_PAD.decode(text).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, b'=') => {
            format!("padding '=' at byte {at} (base64url here is unpadded)")
        }
        base64::DecodeError::InvalidByte(at, byte) => {
            format!("not valid base64url: {} at byte {at}", describe_byte(byte))
        }
        base64::DecodeError::InvalidLength(_) => "not valid base64url: impossible length".into(),
        base64::DecodeError::InvalidLastSymbol { offset: at, .. } => {
            format!("not valid base64url at byte {at}: non-canonical trailing bits")
        }
        base64::DecodeError::InvalidPadding => "not valid base64url: padding".into(),
    })
}

/// A byte for a message: `'"'` when printable ASCII, else its hex value.
fn describe_byte(b: u8) -> String {
    match b {
        b' ' => "a space".into(),
        b'\'' => "\"'\"".into(),
        0x21..=0x7e => format!("'{}'", b as char),
        _ => format!("byte 0x{b:02x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        assert_eq!(decode("AQAB").ok(), Some(vec![1, 0, 1]));
        assert!(decode("AQAB=").is_err());
        assert!(decode("AQ==").is_err());
        assert!(decode("AR").is_err(), "non-canonical trailing bits");
        assert!(decode("a+b/").is_err());
        assert!(decode("AQ AB").is_err());
        assert_eq!(encode([0xfb, 0xff]), "-_8");
    }
}
