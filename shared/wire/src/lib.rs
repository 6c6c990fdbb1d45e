//! The wire between Sealrun's programs, kept in one place so both ends of
//! each protocol build from the same names and types:
//! - [`floating`]: `sealrun` ↔ `sealrun-floatd`, the site's floating seats;
//! - [`server`]: `sealrun` ↔ `sealrun-server`, the names the end-user
//!   calls (package downloads with an activation code) carry in headers.
//!
//! Types only: no I/O, no crypto (the proofs inside are checked by
//! `sealrun-format`).
pub mod floating;
pub mod server;
