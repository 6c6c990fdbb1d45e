//! `sealrun-floatd`, the site floating license manager: it holds a floating
//! license with N seats (bound to its host's device or to its dongle),
//! unwraps the content key once, and lends it to the computers of its
//! network, wrapped to each one's device key, for the life of a lease that
//! clients renew by heartbeat. Never more than N seats are in use, across
//! races, crashes and restarts (docs/floating.md gives the argument).
//!
//! The `sealrun-floatd` binary is a thin front end over this library.

pub mod admin;
pub mod app;
pub mod config;
pub mod daemon;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod licenses;
pub mod metrics;
pub mod seats;
pub mod serve;
pub mod store;
pub mod usage;

pub use error::FloatdError;
pub use sealrun_wire::floating as wire;
