//! The one error type of the format crate.
use core::fmt;

/// Which kind of Sealrun artifact an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Artifact {
    /// A `*.sealed` package.
    Package,
    /// A `*.license` file.
    License,
    /// A device code as printed by `sealrun id`.
    DeviceCode,
    /// A sealed device key file.
    DeviceKey,
    /// A compiled-code cache entry.
    CacheEntry,
    /// The attach record on a hardware key.
    DongleRecord,
    /// A content key lent with a floating license's lease.
    LeaseKey,
    /// The launcher's sealed record of when it last accepted a time-limited license.
    LastSeen,
    /// A licensing server's signed statement: an invoice or a ledger chain head.
    LedgerStatement,
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Artifact::Package => "package",
            Artifact::License => "license",
            Artifact::DeviceCode => "device code",
            Artifact::DeviceKey => "device key",
            Artifact::CacheEntry => "compiled-code cache entry",
            Artifact::DongleRecord => "dongle record",
            Artifact::LeaseKey => "floating lease key",
            Artifact::LastSeen => "last-seen record",
            Artifact::LedgerStatement => "signed ledger statement",
        })
    }
}

/// Everything that can go wrong while reading or writing a Sealrun format.
///
/// Cryptographic failures are deliberately coarse: they say *that* a check
/// failed, never which byte or which step, so they give an attacker no oracle.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input does not start with the magic bytes of the expected artifact.
    #[error("not a Sealrun {0}: the file does not start with the {0} magic bytes")]
    NotSealrun(Artifact),
    /// The artifact uses a format version this build does not read.
    #[error("unsupported {artifact} format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Artifact kind.
        artifact: Artifact,
        /// Version found in the input.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The input ends before the artifact does.
    #[error("the {artifact} is truncated: it needs {needed} bytes but has only {available}")]
    Truncated {
        /// Artifact kind.
        artifact: Artifact,
        /// Bytes the artifact needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// Bytes follow the end of the artifact.
    #[error("the {artifact} has {extra} unexpected bytes after its end")]
    TrailingData {
        /// Artifact kind.
        artifact: Artifact,
        /// Number of extra bytes.
        extra: u64,
    },
    /// A field is malformed or not in its canonical encoding.
    #[error("the {artifact} is malformed: {field} {problem}")]
    Malformed {
        /// Artifact kind.
        artifact: Artifact,
        /// Name of the field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A value given by the caller (not parsed from a file) is out of range.
    #[error("invalid {field}: {problem}")]
    InvalidInput {
        /// Name of the value.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A signature does not verify.
    #[error("the {0} signature does not verify: the file was damaged or tampered with")]
    BadSignature(Artifact),
    /// Authenticated decryption of package data failed.
    #[error("decryption failed: the package was damaged or tampered with")]
    DecryptionFailed,
    /// The content key could not be unwrapped from a license.
    #[error(
        "the content key could not be unwrapped: the license was damaged or tampered with, or is not for this device"
    )]
    UnwrapFailed,
    /// A device code failed its checksum (usually a typo).
    #[error("the device code is mistyped: its checksum does not match")]
    DeviceCodeChecksum,
    /// The license was issued by another vendor than the package's.
    #[error("the license is from another vendor (key {licensed}) than the package (key {package})")]
    OtherVendor {
        /// Short id of the license's vendor key.
        licensed: String,
        /// Short id of the package's vendor key.
        package: String,
    },
    /// The license is for another product.
    #[error("the license is for product {licensed}, but the package is {package}")]
    WrongProduct {
        /// Product the license names.
        licensed: String,
        /// Product of the package.
        package: String,
    },
    /// The package's release is outside the licensed range.
    #[error("the license covers releases {licensed}, but the package is release {package}")]
    ReleaseNotLicensed {
        /// The licensed range, as text.
        licensed: String,
        /// The package's release.
        package: crate::Release,
    },
    /// The license covers the release but carries no key for this build.
    #[error(
        "the license carries no key for this build of release {0} (it was issued for another build or release of it)"
    )]
    NoKeyForPackage(crate::Release),
    /// The license is not valid yet.
    #[error("the license is not valid before {0} (Unix time)")]
    NotYetValid(crate::UnixTime),
    /// The license has expired.
    #[error("the license expired at {0} (Unix time)")]
    Expired(crate::UnixTime),
    /// A ledger's hash chain does not verify.
    #[error("the ledger is broken at entry {seq}: it {problem}")]
    LedgerBroken {
        /// The first entry that does not check out.
        seq: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
}
