//! The Sealrun licensing service (`sealrun-server`): key generation for
//! product releases, license issuance signed by a vendor-certified issuing
//! key, activation codes, package provision and per-vendor billing from a
//! hash-chained ledger.
//!
//! [`service::Service`] holds the operations; [`api::app`] is the HTTP API
//! over it; the `sealrun-server` binary parses flags and calls [`serve`].

pub mod api;
mod batch;
pub mod billing;
pub mod catalog;
pub mod config;
pub mod db;
pub mod dongles;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
mod hot;
pub mod ledger;
pub mod licensing;
pub mod metrics;
pub mod provision;
pub mod ratelimit;
pub mod secrets;
mod serve;
pub mod service;
pub mod vendors;

pub use error::ServerError;
pub use serve::{InitReport, init, open, serve};

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
