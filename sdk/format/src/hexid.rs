//! The one way fixed-size ids and keys are written and read as text:
//! lowercase hex, two digits a byte. Every id type's `Display` and
//! `FromStr` goes through here, so they cannot drift apart. (By hand, not
//! the `hex` crate: this crate takes no dependency for two loops.)
use core::fmt;

/// Writes `bytes` as lowercase hex.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// `bytes` as a lowercase hex string.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads exactly `2 * N` hex digits (either case; nothing else, no sign or
/// prefix, as `u8::from_str_radix` would allow) into `N` bytes.
pub(crate) fn parse_hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        // Checked above: two ASCII hex digits, so this is UTF-8 and parses.
        *byte = u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_exact() {
        assert_eq!(parse_hex::<2>(b"0aFf"), Some([0x0a, 0xff]));
        assert_eq!(parse_hex::<2>(b"0aF"), None);
        assert_eq!(parse_hex::<2>(b"0aFf0"), None);
        assert_eq!(parse_hex::<2>(b"+aff"), None);
        assert_eq!(parse_hex::<2>(b"0g00"), None);
        assert_eq!(to_hex(&[1, 0xab]), "01ab");
    }
}
