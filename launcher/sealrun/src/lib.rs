//! The Sealrun launcher: device identity, the license store, hardware keys, verification
//! and decryption of packages into locked memory, and the sandboxed runner.
//! The `sealrun` binary is a thin command-line front end over this library.

pub mod cache;
pub mod clock;
pub mod code_mem;
pub mod config;
pub mod desktop;
pub mod device;
pub mod doctor;
pub mod dongle;
pub mod error;
pub mod floating;
pub mod gui;
pub mod hardening;
pub mod launch;
pub mod native;
pub mod online;
pub mod paths;
pub mod runner;
pub mod scrub;
pub mod secure_buf;
pub mod store;
pub mod ui;

pub use error::LaunchError;
