//! Strict lowercase hex, so that every identifier, nonce and signature has exactly one textual
//! form (no malleability: two different strings never decode to the same value).

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Decodes exactly `2 * N` lowercase hex digits; anything else (uppercase, wrong length,
/// whitespace, non-hex) is `None`.
pub(crate) fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let bytes = [0x00, 0x7f, 0xab, 0xff];
        let s = encode(&bytes);
        assert_eq!(s, "007fabff");
        assert_eq!(decode::<4>(&s), Some(bytes));
        assert_eq!(decode::<4>("007FABFF"), None);
        assert_eq!(decode::<4>("007fabf"), None);
        assert_eq!(decode::<4>("007fabfff0"), None);
        assert_eq!(decode::<4>("007fabfg"), None);
        assert_eq!(decode::<2>("é1"), None);
    }
}
