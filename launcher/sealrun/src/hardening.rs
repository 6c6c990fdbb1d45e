//! Process hardening applied before any key or plaintext is in memory.
//!
//! Not dumpable: no core dump is written, and other processes of the same
//! user can neither ptrace this one nor open its `/proc/<pid>/mem`, `fd/` or
//! `maps` (only root can). Core size zero as a second line for systems where
//! a core handler ignores the dumpable flag.

/// Applies the hardening; best effort, since each call can only fail on
/// kernels without the feature, where there is nothing better to do.
#[allow(unsafe_code)]
pub fn harden_process() -> bool {
    #[cfg(target_os = "linux")]
    {
        let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: plain system calls with valid arguments; no memory is shared.
        let core = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) } == 0;
        // SAFETY: as above.
        let dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == 0;
        core && dumpable
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
