//! Sealrun file formats: packages (`*.sealed`), licenses (`*.license`),
//! device codes, hardware-key (dongle) records and sealed licenses,
//! content-key wrapping (also for the leases of floating licenses), the STREAM chunk cipher and the
//! launcher's compiled-code cache entries and its sealed last-seen time, and
//! the licensing server's billing ledger.
//!
//! Everything here is pure: it parses from byte slices and writes into
//! buffers or `Write`rs handed in by the caller, and never touches files or
//! the network. Every length is bounded by a named constant in [`limits`],
//! trailing data and non-canonical encodings are rejected, and signatures are
//! verified over the bytes exactly as received. The byte layout of every
//! artifact is documented in `docs/format.md`.
#![forbid(unsafe_code)]

pub mod clock;
pub mod code_cache;
mod cursor;
pub mod device;
pub mod dongle;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
mod hexid;
mod issuer;
pub mod keys;
pub mod lease;
pub mod ledger;
pub mod license;
pub mod limits;
pub mod net;
pub mod package;
pub mod release;
pub mod stream;
pub mod text;
mod wrap;

pub use error::{Artifact, Error};
pub use keys::{ContentKey, KeyId, VendorPublicKey, VendorSigningKey};
pub use release::Release;

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Unix time in whole seconds (UTC). Formats store every instant this way.
pub type UnixTime = u64;
