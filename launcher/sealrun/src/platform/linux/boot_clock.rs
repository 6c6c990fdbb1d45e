//! A clock that counts time asleep (Linux `CLOCK_BOOTTIME`).
use std::time::{Duration, Instant};

/// The time since boot, counting suspend (CLOCK_BOOTTIME): a lease keeps
/// running at the daemon while this computer sleeps, so a deadline must
/// too. (`Instant` stops during suspend on Linux.)
#[allow(unsafe_code)]
pub(crate) fn boot_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_BOOTTIME
    // exists on every Linux this runs on.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } == 0;
    if !ok {
        // Never expected; fall back to a clock that at least moves.
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        return START.get_or_init(Instant::now).elapsed();
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}
