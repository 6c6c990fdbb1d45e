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

/// A release as typed: here rather than in `release.rs`, which the error
/// type names (a release that parses is one the errors can show).
impl core::str::FromStr for crate::release::Release {
    type Err = crate::error::Error;

    /// Parses `MAJOR.MINOR.PATCH`; leading zeros and suffixes are refused so
    /// that every release has exactly one spelling.
    fn from_str(s: &str) -> crate::Result<Self> {
        const BAD: crate::error::Error = crate::error::Error::InvalidInput {
            field: "release",
            problem: "must be MAJOR.MINOR.PATCH with plain decimal numbers, e.g. 1.0.0",
        };
        let mut parts = s.split('.');
        let mut next = || -> crate::Result<u32> {
            let p = parts.next().ok_or(BAD)?;
            let canonical = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
            if !canonical {
                return Err(BAD);
            }
            p.parse().map_err(|_| BAD)
        };
        let r = crate::release::Release { major: next()?, minor: next()?, patch: next()? };
        if parts.next().is_some() {
            return Err(BAD);
        }
        Ok(r)
    }
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

/// Characters that change how text around them is shown without showing
/// themselves: zero-width and text-direction marks.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
    }
}

/// What else a dialog or terminal shows as a line break or hides: the
/// line and paragraph separators (GTK and Qt break lines at them), the
/// Arabic letter mark, the invisible operators and the Mongolian vowel
/// separator. (Not refused in names, which older packages may hold; only
/// escaped when shown.)
fn breaks_display(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{2060}'..='\u{2064}' | '\u{180E}')
}

/// Whether `c` is written as an escape by [`shown`].
pub fn is_escaped_when_shown(c: char) -> bool {
    c.is_control() || invisible(c) || breaks_display(c)
}

fn escaped(s: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| is_escaped_when_shown(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(bad) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) { escape_into(&mut out, c) } else { out.push(c) }
    }
    std::borrow::Cow::Owned(out)
}

/// `s`, from outside the launcher (a file name, a token label, a server's
/// message), made safe to show in a terminal, a dialog or a log: every
/// control character, line breaks included, and every invisible or
/// text-direction character is written as an escape (`\n`, `\u{1b}`), so
/// the text can neither start a line of its own, move the cursor, set a
/// window title nor reorder what is shown around it. Other text is left as
/// it is (and borrowed).
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    escaped(s, false)
}

/// [`shown`] for a whole message the launcher wrote, whose line breaks
/// are its own: everything but `\n` is escaped. Untrusted pieces inside
/// it should have passed through [`shown`] already; this is the second
/// line of defence at the terminal, the dialog and the log.
pub fn shown_lines(s: &str) -> std::borrow::Cow<'_, str> {
    escaped(s, true)
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert!(matches!(shown("Acme Tool 2.0 – ünïcode"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(shown("a\nYour copy is blocked"), "a\\nYour copy is blocked");
        assert_eq!(shown("\u{1b}]0;owned\u{7}\u{1b}[2J"), "\\u{1b}]0;owned\\u{7}\\u{1b}[2J");
        assert_eq!(shown("x\r\ty\u{7f}\u{9b}"), "x\\r\\ty\\u{7f}\\u{9b}");
        assert_eq!(shown("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(shown("a\u{2028}b\u{2029}c\u{85}d"), "a\\u{2028}b\\u{2029}c\\u{85}d", "line separators");
        assert_eq!(shown_lines("line one\nline \u{1b}[31mtwo"), "line one\nline \\u{1b}[31mtwo");
        assert_eq!(shown_lines("a\r\nb"), "a\\r\nb");
    }
}
