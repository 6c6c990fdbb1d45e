//! Validation of the names and strings the formats carry.
//!
//! Each check is used both when building an artifact (so a vendor learns of
//! a bad value at once) and when parsing one (so a crafted file cannot carry
//! what a well-formed one could not).
use crate::limits::*;

/// Why a product id is invalid, if it is.
///
/// Product ids are reverse-DNS style: two or more dot-separated labels of
/// lowercase ASCII letters, digits and inner hyphens (`com.acme.tool`).
/// Keeping them to this alphabet makes them safe as file names.
pub fn product_id_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > MAX_PRODUCT_ID_LEN {
        return Some("must be 1 to 128 characters");
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return Some("must have at least two dot-separated parts, e.g. com.acme.tool");
    }
    for l in labels {
        if l.is_empty() || l.starts_with('-') || l.ends_with('-') {
            return Some("has an empty part or a part starting or ending with '-'");
        }
        if !l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Some("may only contain lowercase letters a-z, digits, '-' and '.'");
        }
    }
    None
}

/// Why a display name, licensee or other free text is invalid, if it is:
/// it must be non-empty, at most `max` bytes, without control characters and
/// without leading or trailing white space.
pub fn free_text_problem(s: &str, max: usize) -> Option<&'static str> {
    if s.is_empty() || s.len() > max {
        return Some("is empty or too long");
    }
    if s.chars().any(char::is_control) {
        return Some("contains control characters");
    }
    // Zero-width and bidirectional formatting characters can make a name
    // display as something it is not.
    let invisible =
        |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}');
    if s.chars().any(invisible) {
        return Some("contains invisible or text-direction characters");
    }
    if s.trim() != s {
        return Some("has leading or trailing white space");
    }
    None
}

/// Why a feature name is invalid, if it is: 1 to 64 characters of
/// lowercase ASCII letters, digits, '-', '_' and '.'.
pub fn feature_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > MAX_FEATURE_LEN {
        return Some("must be 1 to 64 characters");
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)) {
        return Some("may only contain lowercase letters, digits, '-', '_' and '.'");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_ids() {
        assert_eq!(product_id_problem("com.acme.tool"), None);
        assert_eq!(product_id_problem("io.x-y.a1"), None);
        for bad in ["", "tool", "Com.acme", "com..acme", "com.-acme", "com.acme/../x", "com.acme "] {
            assert!(product_id_problem(bad).is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn free_text() {
        assert_eq!(free_text_problem("Jane Doe", 10), None);
        assert!(free_text_problem(" Jane", 10).is_some());
        assert!(free_text_problem("a\nb", 10).is_some());
        assert!(free_text_problem("", 10).is_some());
        assert!(free_text_problem("Acme\u{202E}exe", 20).is_some());
        assert!(free_text_problem("12345678901", 10).is_some());
    }
}
