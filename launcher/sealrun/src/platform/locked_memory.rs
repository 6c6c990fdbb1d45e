//! Memory for plaintext module bytes: anonymous (never file-backed), locked
//! against swap where the OS allows, excluded from core dumps, and zeroed
//! before it is returned to the OS.
use std::ops::{Deref, DerefMut};

use memmap2::{Advice, MmapMut, MmapOptions};
use zeroize::Zeroize;

/// A zeroizing, unswappable, undumpable byte buffer.
pub(crate) struct SecretBuffer {
    map: MmapMut,
    len: usize,
    locked: bool,
}

impl SecretBuffer {
    /// A zero-filled buffer of `len` bytes.
    pub(crate) fn new(len: usize) -> std::io::Result<Self> {
        // A map cannot be empty; an empty buffer maps one byte it never shows.
        // Populated up front: every byte is written right away, and one bulk
        // allocation is far cheaper than a page fault per 4 KiB.
        let map = MmapOptions::new().len(len.max(1)).populate().map_anon()?;
        // Both are best effort: MADV_DONTDUMP is Linux-only, and mlock is
        // bounded by RLIMIT_MEMLOCK (often 8 MiB for ordinary users).
        let _ = map.advise(Advice::DontDump);
        let locked = map.lock().is_ok();
        tracing::debug!(len, locked, "plaintext buffer allocated");
        Ok(SecretBuffer { map, len, locked })
    }
}

impl Deref for SecretBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

impl DerefMut for SecretBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map[..self.len]
    }
}

impl Drop for SecretBuffer {
    fn drop(&mut self) {
        self.map.as_mut().zeroize();
        if self.locked {
            let _ = self.map.unlock();
        }
    }
}

/// One value kept in its own anonymous page(s): locked against swap where
/// the OS allows, excluded from core dumps, and dropped (a key type zeroizes
/// itself) and then zeroed in place. For keys that live as long as the
/// process, such as the device secret. Falls back to the heap only if no
/// page can be mapped.
pub struct SecretBox<T> {
    place: Place<T>,
}

enum Place<T> {
    Page { map: MmapMut, locked: bool },
    Heap(Box<T>),
}

impl<T> SecretBox<T> {
    /// Moves `value` into a page of its own.
    #[allow(unsafe_code)]
    pub fn new(value: T) -> SecretBox<T> {
        let len = std::mem::size_of::<T>().max(1);
        let map = MmapOptions::new().len(len).map_anon();
        match map {
            Ok(mut map) if std::mem::align_of::<T>() <= 4096 => {
                let _ = map.advise(Advice::DontDump);
                let locked = map.lock().is_ok();
                // SAFETY: a fresh, page-aligned writable map of at least
                // size_of::<T>() bytes, so aligned for T; nothing else points
                // into it, and `Drop` drops the value exactly once.
                unsafe { std::ptr::write(map.as_mut_ptr().cast::<T>(), value) };
                SecretBox { place: Place::Page { map, locked } }
            }
            _ => {
                tracing::debug!("no page for a secret; it stays on the heap");
                SecretBox { place: Place::Heap(Box::new(value)) }
            }
        }
    }
}

impl<T> Deref for SecretBox<T> {
    type Target = T;
    #[allow(unsafe_code)]
    fn deref(&self) -> &T {
        match &self.place {
            // SAFETY: `new` wrote a T at the start of the map, and it lives
            // until `Drop`.
            Place::Page { map, .. } => unsafe { &*map.as_ptr().cast::<T>() },
            Place::Heap(b) => b,
        }
    }
}

impl<T> Drop for SecretBox<T> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Place::Page { map, locked } = &mut self.place {
            // SAFETY: the T written by `new`, dropped once, here.
            unsafe { std::ptr::drop_in_place(map.as_mut_ptr().cast::<T>()) };
            map.as_mut().zeroize();
            if *locked {
                let _ = map.unlock();
            }
        }
    }
}

#[allow(unsafe_code)]
// SAFETY: as Box<T>: the box owns the T, so it may move to another thread
// when T may.
unsafe impl<T: Send> Send for SecretBox<T> {}
#[allow(unsafe_code)]
// SAFETY: as Box<T>: shared access gives only &T.
unsafe impl<T: Sync> Sync for SecretBox<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boxed_secret_reads_back_and_drops_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Key([u8; 32]);
        impl Drop for Key {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let b = SecretBox::new(Key([7; 32]));
        assert_eq!(b.0, [7; 32]);
        assert!(matches!(b.place, Place::Page { .. }), "the secret got a page of its own");
        drop(b);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
