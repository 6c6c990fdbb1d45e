//! The one error type of the SDK library.
use std::path::PathBuf;

/// Everything the SDK can fail with. Each message names the problem and,
/// where there is one, the next step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A Sealrun format error in a named file.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: sealrun_format::Error,
    },
    /// A value given on the command line is invalid.
    #[error("{0}")]
    Invalid(#[from] sealrun_format::Error),
    /// There is no vendor key in the keystore.
    #[error(
        "no vendor key in {0}: run `sealsdk keygen` first (or point --keystore / SEALSDK_KEYSTORE at your keystore)"
    )]
    NoVendorKey(PathBuf),
    /// A vendor key already exists and would be overwritten.
    #[error(
        "a vendor key already exists in {0}; refusing to overwrite it, since every package and license signed with it would be orphaned. Use another --keystore to make a second key"
    )]
    VendorKeyExists(PathBuf),
    /// A keystore file is damaged.
    #[error("the keystore file {0} is damaged or not a Sealrun key file; restore it from your backup")]
    BadKeyFile(PathBuf),
    /// No content key for the releases a license should cover.
    #[error(
        "no content key for {product} {range} in the keystore: seal that release first with `sealsdk seal`, or pick --releases that were sealed ({known})"
    )]
    NoContentKeys {
        /// Product id.
        product: String,
        /// Release range asked for.
        range: String,
        /// Releases the keystore has keys for.
        known: String,
    },
    /// The input is not a guest the launcher can run.
    #[error("{path} is not a WebAssembly module or component the launcher can run: {source}")]
    InvalidGuest {
        /// The input file.
        path: PathBuf,
        /// Why.
        source: sealrun_engine::guest::GuestError,
    },
    /// The icon given to `seal --icon` cannot go into a manifest.
    #[error("the icon {path} {problem}: give a PNG or SVG of at most 7 KiB (a 48- or 64-pixel PNG fits)")]
    BadIcon {
        /// The icon file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The file is neither a Sealrun package nor a license.
    #[error("{0} is not a Sealrun package or license (they start with the bytes SEALPKG, SEALLIC or SEALDLC)")]
    NotSealrun(PathBuf),
    /// A module could not be precompiled for a target.
    #[error("cannot precompile for {target}: {reason}")]
    Precompile {
        /// The target name.
        target: String,
        /// Why.
        reason: String,
    },
    /// The licensing server refused a request; its message says why.
    #[error("the server refused: {detail} (HTTP {status}, {code})")]
    Server {
        /// HTTP status.
        status: u16,
        /// The problem's machine-readable code.
        code: String,
        /// The server's message.
        detail: String,
    },
    /// The licensing server could not be reached or answered nonsense.
    #[error("cannot talk to the server at {url}: {reason}")]
    Unreachable {
        /// The server URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// No server URL or token was given.
    #[error("{0}")]
    ServerSetup(&'static str),
    /// A ledger export or invoice does not check out.
    #[error("{0}")]
    LedgerMismatch(String),
    /// The keystore's ledger records (`ledger/`) are missing or damaged.
    #[error("{0}")]
    LedgerRecords(String),
    /// The server offers another operator key than the one pinned.
    #[error(
        "the server's operator key is {offered}, but this keystore pinned {pinned} ({file}): it is another server, or the operator replaced its key; \
         keep your records, ask the operator why, and only if the change is announced move {file} aside and certify again"
    )]
    OperatorKeyChanged {
        /// The pinned key (hex).
        pinned: String,
        /// The key the server offered (hex).
        offered: String,
        /// The pin file.
        file: PathBuf,
    },
    /// The keystore has no key for a dongle.
    #[error(
        "no key for dongle {dongle} in the keystore {dir}: it was provisioned with another keystore (or by the server); issue its licenses there"
    )]
    NoDongleKey {
        /// The dongle id.
        dongle: String,
        /// The keystore.
        dir: PathBuf,
    },
    /// A hardware key (token) could not be used.
    #[error(transparent)]
    Token(#[from] sealrun_token::TokenError),
    /// A date could not be parsed.
    #[error("invalid date {0:?}: use YYYY-MM-DD (UTC) or an RFC 3339 time such as 2027-12-31T18:00:00Z")]
    BadDate(String),
}

impl SdkError {
    /// An I/O error on `path` while doing `action` ("cannot read", ...).
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SdkError {
        let path = path.into();
        move |source| SdkError::Io { action, path, source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>) -> impl FnOnce(sealrun_format::Error) -> SdkError {
        let path = path.into();
        move |source| SdkError::Format { path, source }
    }
}
