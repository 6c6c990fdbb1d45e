//! The Sealrun launcher, as rooms that follow a launch:
//!
//! `cli` (arguments into a plan, and what is printed) → `session` (one
//! launch: the package opened once, the user's settings, the license, the
//! run slot, the watch) → `license` (finding and checking licenses and
//! unwrapping the content key, one file per binding) and `runtime` (engine,
//! loading, the sandboxed run) → `platform` (every OS-specific call, and
//! almost all `unsafe`). `ui` holds the terminal and desktop dialogs.
//! `license` and `runtime` do not import each other (what both need while
//! a guest runs is in `watch`), and `platform` imports nothing of the
//! launcher; `tests/tests/layout.rs` checks both. docs/architecture.md has
//! the map.
//!
//! The `sealrun` binary is `main.rs` over [`cli`]. Other crates use a few
//! pieces: `sealrun-floatd` the device identity, dongles, the license store
//! and hardening; the tests limits and labels.

pub mod cli;
pub(crate) mod config;
pub mod error;
pub mod license;
pub mod platform;
pub mod runtime;
pub(crate) mod session;
pub mod ui;
pub(crate) mod watch;

pub use error::LaunchError;
