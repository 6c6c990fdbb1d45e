//! Writing to standard error without Rust's `stderr` lock.
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};

/// Writes `bytes` straight to file descriptor 2: a thread held mid-write
/// (see `thread_hold`) may own the lock of Rust's `stderr`, and what is
/// written here must not wait for it. Errors are ignored, as `eprintln!`
/// would panic on them and nothing better can be done.
pub(crate) fn write_unlocked(bytes: &[u8]) {
    #[allow(unsafe_code)]
    // SAFETY: fd 2 is open for the life of the process; ManuallyDrop keeps
    // this File from closing it.
    let mut err = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(std::io::stderr().as_raw_fd()) });
    let _ = err.write_all(bytes);
}
