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
mod chain;
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
mod problem;
pub mod provision;
pub mod ratelimit;
mod rows;
pub mod secrets;
mod serve;
pub mod service;
mod time;
pub mod vendors;

pub use error::ServerError;
pub use serve::{InitReport, init, open, serve};
pub use time::now;
