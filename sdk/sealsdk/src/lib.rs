//! The Sealrun vendor SDK: the keystore, sealing modules into packages,
//! issuing licenses, and inspecting and verifying both. The `sealsdk` binary
//! is a thin command-line front end over this library.

pub mod client;
pub mod dates;
pub mod dongle;
mod error;
pub mod inspect;
pub mod issue;
pub mod keystore;
pub mod ledger;
pub mod ledger_state;
mod plan;
pub mod seal;
pub mod server;
pub mod verify;

pub use error::SdkError;

/// Result type of this crate.
pub type Result<T, E = SdkError> = core::result::Result<T, E>;

/// The system random number generator, as the format crate wants it.
pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}
