//! Linux implementations.
pub(crate) mod boot_clock;
pub mod hardening;
pub(crate) mod memfd;
