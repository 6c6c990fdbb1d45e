//! Process hardening applied before any key or plaintext is in memory.
//!
//! Not dumpable: no core dump is written, and other processes of the same
//! user can neither ptrace this one nor open its `/proc/<pid>/mem`, `fd/` or
//! `maps` (only root can). Core size zero as a second line for systems where
//! a core handler ignores the dumpable flag.
use rustix::mm::{Advice, madvise};
use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

/// Applies the hardening; best effort, since each call can only fail on
/// kernels without the feature, where there is nothing better to do.
pub fn harden_process() -> bool {
    let core = setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) }).is_ok();
    let dumpable = set_dumpable_behavior(DumpableBehavior::NotDumpable).is_ok();
    core && dumpable
}

/// Marks the compiled code in `range` (a module's or component's
/// `image_range`) `MADV_DONTDUMP`, so that a
/// core dump leaves it out even when the dump is forced past the
/// not-dumpable flag (a debugger's `gcore` run as root honours it too).
/// Best effort, like [`harden_process`]; returns whether it took.
#[allow(unsafe_code)]
pub fn exclude_from_core_dumps(range: std::ops::Range<*const u8>) -> bool {
    let page = rustix::param::page_size().max(1);
    let start = range.start as usize / page * page;
    let end = (range.end as usize).div_ceil(page) * page;
    if end <= start {
        return false;
    }
    // SAFETY: MADV_DONTDUMP changes only whether these pages go into a
    // core dump, never their contents or protections. The range lies in
    // wasmtime's page-aligned mapping of the module's code; rounding out
    // to whole pages adds nothing outside it.
    unsafe { madvise(start as *mut std::ffi::c_void, end - start, Advice::LinuxDontDump) }.is_ok()
}
