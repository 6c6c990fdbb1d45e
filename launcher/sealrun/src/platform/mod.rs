//! The one seam between the launcher and the operating system. Everything
//! OS-specific is reached through this facade, one file per concern in
//! `unix/` (POSIX) and `linux/`, with portable fallbacks below; `windows/`
//! and `macos/` plug in with the same file names. Almost all of the
//! launcher's `unsafe` lives in these files, each block with its SAFETY
//! reason. Nothing here imports the rest of the launcher.
//!
//! | concern | Linux | elsewhere |
//! |---|---|---|
//! | hardening (not dumpable, no core, code out of dumps) | `linux/hardening.rs` | no-op |
//! | locked memory for secrets | `locked_memory.rs` (memmap2: mlock, MADV_DONTDUMP) | same, best effort |
//! | freed memory zeroed while secrets are handled | `scrub.rs` (portable) | same |
//! | sealed memory file for compiled code | `linux/memfd.rs` | none (code is copied) |
//! | terminal write that takes no lock | `unix/stderr.rs` | — |
//! | holding the guest thread | `unix/thread_hold.rs` | — |
//! | boot clock (counts suspend) | `linux/boot_clock.rs` | monotonic clock |
//! | machine ID | `machine_id.rs` (machine-uid) | same |
//! | per-user folders | `dirs.rs` (etcetera via sealrun-host) | same |
//! | owner-only folders and files, non-blocking open, positioned reads | `unix/files.rs` | — |
//! | terminal prompt | in `sealrun_host::prompt` (rustix termios, libc sigaction), since `sealsdk` asks for PINs too | — |
pub(crate) mod dirs;
pub(crate) mod locked_memory;
pub mod scrub;

#[cfg(target_os = "linux")]
pub(crate) mod linux;
mod machine_id;
#[cfg(unix)]
mod unix;

pub(crate) use machine_id::read as machine_id;
#[cfg(unix)]
pub(crate) use unix::files;
#[cfg(unix)]
pub(crate) use unix::stderr::write_unlocked as write_stderr_unlocked;
#[cfg(unix)]
pub(crate) use unix::thread_hold;

#[cfg(target_os = "linux")]
pub(crate) use linux::boot_clock::boot_now;
#[cfg(target_os = "linux")]
pub use linux::hardening;
#[cfg(target_os = "linux")]
pub(crate) use linux::memfd::{SealedCode, proc_path};

/// Hardening where the OS has none of Linux's calls: nothing is applied,
/// and callers are told so.
#[cfg(not(target_os = "linux"))]
pub mod hardening {
    /// Nothing to apply here; `false` says so.
    pub fn harden_process() -> bool {
        false
    }
    /// Nothing to apply here; `false` says so.
    pub fn exclude_from_core_dumps(_code: std::ops::Range<*const u8>) -> bool {
        false
    }
}

/// A clock that moves while asleep, where no boot clock is known: the
/// monotonic clock from the first call (it may stop during suspend).
#[cfg(not(target_os = "linux"))]
pub(crate) fn boot_now() -> std::time::Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}
