//! Memory for plaintext module bytes: anonymous (never file-backed), locked
//! against swap where the OS allows, excluded from core dumps, and zeroed
//! before it is returned to the OS.
use std::ops::{Deref, DerefMut};

use memmap2::{Advice, MmapMut, MmapOptions};
use zeroize::Zeroize;

/// A zeroizing, unswappable, undumpable byte buffer.
pub struct SecretBuffer {
    map: MmapMut,
    len: usize,
    locked: bool,
}

impl SecretBuffer {
    /// A zero-filled buffer of `len` bytes.
    pub fn new(len: usize) -> std::io::Result<Self> {
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
