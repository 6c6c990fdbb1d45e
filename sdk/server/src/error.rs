//! The one error type of the server library.
use std::path::PathBuf;

/// Everything the server's operations can fail with. The API turns each into
/// a problem+json response ([`crate::api`]); internal failures (database,
/// I/O) become a bare 500 there and are logged, never shown to callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration file does not parse.
    #[error("the configuration file {path} is not valid: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: Box<toml::de::Error>,
    },
    /// A configuration value (from the file or the environment) is out of range.
    #[error("configuration {name} {problem}")]
    ConfigValue {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The master key could not be read.
    #[error(
        "the master key in {0} is not a Sealrun server master key (a header line and 64 hex digits); use the file `sealrun-server init` wrote"
    )]
    BadMasterKey(&'static str),
    /// The master key is not the one the database was initialised with.
    #[error(
        "the master key does not match this database (it was initialised with another key); start the server with the key `sealrun-server init` made for it"
    )]
    WrongMasterKey,
    /// A stored secret did not decrypt under the master key.
    #[error("a stored secret could not be decrypted: the database row was altered or moved")]
    SecretUnreadable,
    /// The database has not been initialised.
    #[error("the database has no Sealrun schema: run `sealrun-server init` first")]
    NotInitialised,
    /// `init` was run on a database that already has a schema.
    #[error("the database is already initialised; nothing was changed")]
    AlreadyInitialised,
    /// The database schema is newer than this build.
    #[error("the database schema is version {found}, newer than this server ({supported}); upgrade sealrun-server")]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A Sealrun format rejected a value.
    #[error("{0}")]
    Format(#[from] sealrun_format::Error),
    /// No such object (or it belongs to another vendor: the answer is the same).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The object exists already.
    #[error("{0} exists already")]
    Exists(&'static str),
    /// A request value is invalid.
    #[error("invalid {field}: {problem}")]
    Invalid {
        /// The value.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The vendor has not certified the server's issuing key yet.
    #[error(
        "the server cannot issue licenses for this vendor yet: certify its issuing key with `sealsdk server certify`"
    )]
    NoIssuerCert,
    /// The vendor's certificate for the issuing key has lapsed.
    #[error(
        "the vendor's certificate for the server's issuing key has expired: renew it with `sealsdk server certify`"
    )]
    IssuerCertExpired,
    /// No release with a content key matches.
    #[error("no release of this product in the range {0} has been created yet")]
    NoRelease(String),
    /// No release in range has an uploaded package.
    #[error("no package has been uploaded for this product in the code's release range")]
    NoPackage,
    /// An uploaded package does not belong where it was uploaded.
    #[error("the package does not match: {0}")]
    PackageMismatch(&'static str),
    /// The activation code is unknown.
    #[error("the activation code is not valid: check it for typos")]
    CodeUnknown,
    /// The activation code was revoked by the vendor.
    #[error("the activation code was withdrawn by the vendor: contact them")]
    CodeRevoked,
    /// The activation code has expired.
    #[error("the activation code has expired: contact the vendor for a new one")]
    CodeExpired,
    /// Every activation of the code is in use.
    #[error(
        "the activation code is in use on {0} device(s), its limit: run `sealrun deactivate` on a device that no longer needs it"
    )]
    CodeExhausted(i64),
    /// The code's transfer limit is used up.
    #[error("the activation code has been moved between devices {0} times, its limit: contact the vendor")]
    TransferLimit(i64),
    /// The license is not an active activation of this code on this device.
    #[error("this device has no active activation of this code")]
    NotActivated,
    /// Missing or wrong credentials.
    #[error("missing or invalid token")]
    Unauthorized,
    /// The group-commit writer has stopped (the server is shutting down).
    #[error("the database writer has stopped")]
    WriterGone,
    /// The group commit this request was part of failed.
    #[error("storing a batch of licenses failed: {0}")]
    BatchFailed(std::sync::Arc<ServerError>),
    /// Too many attempts.
    #[error("too many attempts: wait a minute and try again")]
    RateLimited,
    /// A stored value this server wrote after checking it does not parse.
    #[error("a stored {0} does not parse: the database row was altered")]
    StoredRowDamaged(&'static str),
}
