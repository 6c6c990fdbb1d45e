//! Release numbers: `MAJOR.MINOR.PATCH`, stored as three big-endian u32.
use core::fmt;

/// A product release, ordered numerically (`1.10.0` > `1.9.3`).
///
/// Pre-release and build suffixes are not part of format v1: a release is
/// what a vendor sells, and three numbers keep range checks unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number.
    pub patch: u32,
}

impl Release {
    /// Encoded size in bytes.
    pub const LEN: usize = 12;

    /// A release from its three numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Release { major, minor, patch }
    }

    pub(crate) fn to_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&self.major.to_be_bytes());
        out[4..8].copy_from_slice(&self.minor.to_be_bytes());
        out[8..].copy_from_slice(&self.patch.to_be_bytes());
        out
    }

    pub(crate) fn from_bytes(b: [u8; 12]) -> Self {
        let n = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Release { major: n(0), minor: n(4), patch: n(8) }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// An inclusive range of releases; `max: None` means "and every later one".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseRange {
    /// Lowest release covered.
    pub min: Release,
    /// Highest release covered, if bounded.
    pub max: Option<Release>,
}

impl ReleaseRange {
    /// Whether `r` lies in the range.
    pub fn contains(&self, r: Release) -> bool {
        r >= self.min && self.max.is_none_or(|max| r <= max)
    }
}

impl fmt::Display for ReleaseRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "{}", self.min),
            Some(max) => write!(f, "{} to {}", self.min, max),
            None => write!(f, "{} and later", self.min),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_releases_only() {
        assert_eq!("1.10.0".parse::<Release>().unwrap(), Release::new(1, 10, 0));
        for bad in ["", "1", "1.0", "1.0.0.0", "01.0.0", "1.0.0-rc1", "1.-1.0", "a.b.c", "1..0"] {
            assert!(bad.parse::<Release>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn orders_numerically() {
        assert!(Release::new(1, 10, 0) > Release::new(1, 9, 3));
        let r = ReleaseRange { min: Release::new(1, 0, 0), max: Some(Release::new(1, 9, 9)) };
        assert!(r.contains(Release::new(1, 5, 0)));
        assert!(!r.contains(Release::new(2, 0, 0)));
        assert!(!r.contains(Release::new(0, 9, 0)));
    }
}
