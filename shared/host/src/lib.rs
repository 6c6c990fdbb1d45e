//! Host helpers that the vendor side (`sealsdk`, the server) and the user
//! side (the launcher, floatd) both need and that belong to neither: the
//! time and how it is shown, where files live, writing a file whole, a TLS configuration
//! trusting a CA file, and the secret prompt on the terminal.
//!
//! Nothing here knows about licenses, packages or the sandbox; every
//! function is a few lines over a maintained crate or one system call.
pub mod dirs;
pub mod fs;
pub mod prompt;
pub mod time;
pub mod tls;
