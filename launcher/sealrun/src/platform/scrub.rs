//! Leaves no stale copies of secrets in freed heap memory or in dead stack
//! frames. Zeroize-on-drop clears a key where it ends up, but a key that was
//! moved, a Cranelift code buffer that was freed, or an unwrap done in a
//! stack frame that has returned leave bytes behind that a core dump (or a
//! later bug) could show. So, while a launch unlocks, decrypts and compiles:
//!
//! - [`ScrubbingAlloc`], the launcher's global allocator, zeroes every block
//!   it frees or moves (in any thread) while a [`Scrubbing`] guard lives;
//! - [`scrub_stack`] then zeroes the stack below the caller's frame, where
//!   the frames of the unlock ran.
//!
//! Outside those phases the allocator costs one atomic load per free.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many [`Scrubbing`] guards are alive (in any thread).
static SCRUBBING: AtomicUsize = AtomicUsize::new(0);

/// Bytes of stack [`scrub_stack`] zeroes: more than the deepest unlock path
/// uses below `run` (HPKE, PKCS#11, the cache) with room to spare, and far
/// below the 8 MiB main-thread stack.
pub const STACK_SCRUB_BYTES: usize = 256 << 10;

/// The system allocator, zeroing freed blocks while a [`Scrubbing`] guard
/// lives.
pub struct ScrubbingAlloc;

fn zero(ptr: *mut u8, len: usize) {
    // SAFETY (of the caller's pointer): a live block of `len` bytes that is
    // about to be freed.
    #[allow(unsafe_code)]
    unsafe {
        std::ptr::write_bytes(ptr, 0, len)
    };
    // The block escapes here, so the stores above are not dead stores that
    // the compiler could drop before the free.
    std::hint::black_box(ptr);
}

#[allow(unsafe_code)]
// SAFETY: every call goes to `System` with the caller's arguments; the only
// addition is zeroing a block the caller owns before it is freed.
unsafe impl GlobalAlloc for ScrubbingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCRUBBING.load(Ordering::Relaxed) > 0 {
            zero(ptr, layout.size());
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if SCRUBBING.load(Ordering::Relaxed) == 0 {
            // SAFETY: forwarded as is.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A realloc that moves the block would free the old one unzeroed:
        // move it by hand instead.
        // SAFETY: `layout` with `new_size` is valid per the realloc contract.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size, per the realloc contract.
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct, each at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            zero(ptr, layout.size());
            // SAFETY: the old block, with its layout.
            unsafe { System.dealloc(ptr, layout) };
        }
        new
    }
}

/// While alive, every block freed in the process is zeroed first.
#[must_use = "scrubbing lasts as long as the guard"]
pub struct Scrubbing(());

impl Scrubbing {
    /// Starts scrubbing freed memory.
    pub fn start() -> Scrubbing {
        SCRUBBING.fetch_add(1, Ordering::SeqCst);
        Scrubbing(())
    }
}

impl Drop for Scrubbing {
    fn drop(&mut self) {
        SCRUBBING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Zeroes [`STACK_SCRUB_BYTES`] of the stack below the caller's frame,
/// where the frames of functions that have returned still hold their data.
#[inline(never)]
pub fn scrub_stack() {
    let mut area = [0u8; STACK_SCRUB_BYTES];
    // black_box makes the zeroes real stores into this frame's stack area.
    std::hint::black_box(&mut area);
    area.fill(0);
    std::hint::black_box(&mut area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_counts_and_uncounts() {
        let before = SCRUBBING.load(Ordering::SeqCst);
        let a = Scrubbing::start();
        let b = Scrubbing::start();
        assert_eq!(SCRUBBING.load(Ordering::SeqCst), before + 2);
        drop(a);
        drop(b);
        assert_eq!(SCRUBBING.load(Ordering::SeqCst), before);
    }

    #[test]
    fn scrubbing_realloc_keeps_the_contents() {
        let _s = Scrubbing::start();
        let mut v: Vec<u64> = (0..1000).collect();
        v.reserve(100_000);
        assert!(v.iter().copied().eq(0..1000));
    }
}
