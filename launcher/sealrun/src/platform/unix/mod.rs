//! POSIX implementations (Linux today; macOS next, with the same files).
pub(crate) mod files;
pub(crate) mod stderr;
pub(crate) mod thread_hold;
