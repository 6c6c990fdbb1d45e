//! The daemon's one error type.
use std::path::PathBuf;

/// What went wrong while starting or administering the daemon. Requests
/// are refused with [`crate::wire::Refusal`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FloatdError {
    /// The configuration file is missing or wrong.
    #[error("{path}: {problem}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        problem: String,
    },
    /// A file or socket could not be used.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or address.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A license file cannot be served.
    #[error("the license {path} cannot be served: {problem}")]
    License {
        /// The file.
        path: PathBuf,
        /// Why, and what to do.
        problem: String,
    },
    /// The device identity, the dongle or a license check failed.
    #[error("{}", sealrun::cli::advice::message(.0))]
    Launcher(#[from] sealrun::LaunchError),
    /// The lease database failed.
    #[error("the lease database {path} failed: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: sqlx::Error,
    },
    /// Another daemon already uses the state directory.
    #[error(
        "another sealrun-floatd already uses the state directory {0}; stop it first (two daemons on one state would each lend every seat)"
    )]
    Locked(PathBuf),
    /// The daemon could not be asked (admin commands).
    #[error("cannot reach sealrun-floatd at {url}: {reason}")]
    Unreachable {
        /// Where it was asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The daemon refused an admin command.
    #[error("sealrun-floatd refused: {0}")]
    Refused(String),
}

impl FloatdError {
    /// The exit code of `sealrun-floatd` for this error (the README lists them).
    pub fn exit_code(&self) -> u8 {
        match self {
            FloatdError::Config { .. } => 2,
            FloatdError::Io { .. } => 3,
            FloatdError::License { .. } => 4,
            FloatdError::Launcher(e) => match e {
                sealrun::LaunchError::Dongle(_) => 7,
                _ => 4,
            },
            FloatdError::Database { .. } => 5,
            FloatdError::Locked(_) => 6,
            FloatdError::Unreachable { .. } => 8,
            FloatdError::Refused(_) => 9,
        }
    }
}
