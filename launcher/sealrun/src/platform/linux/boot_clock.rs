//! A clock that counts time asleep (Linux `CLOCK_BOOTTIME`).
use std::time::Duration;

use rustix::time::{ClockId, clock_gettime};

/// The time since boot, counting suspend (CLOCK_BOOTTIME): a lease keeps
/// running at the daemon while this computer sleeps, so a deadline must
/// too. (`Instant` stops during suspend on Linux.) CLOCK_BOOTTIME exists on
/// every Linux this runs on (2.6.39 and later).
pub(crate) fn boot_now() -> Duration {
    let ts = clock_gettime(ClockId::Boottime);
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}
