//! Sealed memfds (Linux): memory with a file descriptor, never a file on
//! disk, filled once and then sealed so that no descriptor or mapping can
//! change it. The code loader hands authenticated compiled code to wasmtime
//! this way, which maps it privately instead of copying it. System calls
//! through rustix (the `memfd` crate cannot ask for `MFD_EXEC`, which
//! kernels with `vm.memfd_noexec` need before the code can be mapped
//! executable).
use std::fs::File;

use rustix::fs::{MemfdFlags, SealFlags};

/// The seals the code's memfd gets once filled: no more seals, no
/// change of size, no write through any descriptor or new mapping.
/// The SAFETY argument of the code loader (`runtime::code_mem`) rests on
/// these.
pub(crate) const SEALS: SealFlags =
    SealFlags::SEAL.union(SealFlags::SHRINK).union(SealFlags::GROW).union(SealFlags::WRITE);

/// A memfd being filled; [`fill`](Self::fill) seals it.
pub(crate) struct SealedCode {
    file: File,
    len: usize,
}

/// A sealed memfd holding authenticated code.
pub(crate) struct Filled(File);

impl SealedCode {
    pub(crate) fn new(len: usize) -> std::io::Result<SealedCode> {
        let base = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let fd = match rustix::fs::memfd_create(c"sealrun-code", base | MemfdFlags::EXEC) {
            // Kernels before 6.3 do not know MFD_EXEC (and need none).
            Err(rustix::io::Errno::INVAL) => rustix::fs::memfd_create(c"sealrun-code", base),
            other => other,
        }?;
        SealedCode::from_file(File::from(fd), len)
    }

    /// A memfd made elsewhere (the tests make ones that cannot be sealed).
    pub(crate) fn from_file(file: File, len: usize) -> std::io::Result<SealedCode> {
        file.set_len(len as u64)?;
        Ok(SealedCode { file, len })
    }

    /// Maps the memfd writable, lets `write` fill it, unmaps it and seals
    /// the memfd against any further change (so what wasmtime maps is
    /// what was authenticated). `write` must fill all of it or fail. A
    /// memfd the kernel does not seal with every one of [`SEALS`] is an
    /// error: its code is never handed on.
    #[allow(unsafe_code)]
    pub(crate) fn fill(self, write: impl FnOnce(&mut [u8]) -> Result<(), String>) -> Result<Filled, String> {
        // SAFETY: a shared map of our own new memfd, which no one else
        // has a descriptor for. Not populated: shmem pages allocated in
        // one go by mmap were slower than the page faults the decrypting
        // threads take in parallel (measured on the 220 MB Yosys entry).
        let mut view = unsafe { memmap2::MmapOptions::new().len(self.len).map_mut(&self.file) }
            .map_err(|e| format!("cannot map memory for it: {e}"))?;
        write(&mut view)?;
        drop(view);
        seal(&self.file).map_err(|e| format!("cannot seal the memory holding it: {e}"))?;
        Ok(Filled(self.file))
    }
}

/// Adds [`SEALS`] to `file` and reads them back. `F_ADD_SEALS` fails
/// on a memfd made without `MFD_ALLOW_SEALING`, and `F_SEAL_WRITE`
/// while any writable shared mapping of it is left.
pub(crate) fn seal(file: &File) -> std::io::Result<()> {
    rustix::fs::fcntl_add_seals(file, SEALS)?;
    let have = rustix::fs::fcntl_get_seals(file)?;
    if !have.contains(SEALS) {
        return Err(std::io::Error::other(format!("the kernel applied {have:?} of {SEALS:?}")));
    }
    Ok(())
}

impl Filled {
    /// The sealed memfd, to be mapped privately (its contents can no longer
    /// change).
    pub(crate) fn into_file(self) -> File {
        self.0
    }
}

/// A path that opens `file` (a sealed memfd from [`Filled::into_file`])
/// again, for APIs that take code by path: its entry under `/proc/self/fd`,
/// which names the same memory, not a file on disk. Valid while `file` is
/// open.
pub(crate) fn proc_path(file: &File) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    std::path::PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn fill_with(code: SealedCode, byte: u8) -> Result<Filled, String> {
        code.fill(|buf| {
            buf.fill(byte);
            Ok(())
        })
    }

    /// Issue 26: the result of `F_ADD_SEALS` was ignored, so code in a
    /// memfd that did not take the seals went to wasmtime as if sealed.
    #[test]
    fn a_memfd_that_cannot_be_sealed_is_refused() {
        let fd = rustix::fs::memfd_create(c"unsealable", MemfdFlags::CLOEXEC).unwrap();
        let code = SealedCode::from_file(File::from(fd), 4096).unwrap();
        let err = fill_with(code, 1).err().expect("an unsealable memfd must not be handed on");
        assert!(err.contains("cannot seal"), "{err}");
    }

    /// A writable shared mapping that outlives the fill (another view
    /// of the same memfd) would let the code change after the check:
    /// the write seal is refused while it exists, and so is the code.
    #[test]
    #[allow(unsafe_code)]
    fn a_memfd_still_mapped_writable_is_refused() {
        let code = SealedCode::new(4096).unwrap();
        // SAFETY: a map of the test's own memfd, dropped at the end.
        let mut other = unsafe { memmap2::MmapOptions::new().len(4096).map_mut(&code.file) }.unwrap();
        let err = fill_with(code, 2).err().expect("a memfd with a writable map left must not be handed on");
        assert!(err.contains("cannot seal"), "{err}");
        other[0] = 3;
    }

    /// A filled memfd holds its seals: no write through the descriptor.
    #[test]
    fn a_filled_memfd_is_sealed_against_change() {
        let Filled(mut file) = fill_with(SealedCode::new(4096).unwrap(), 4).unwrap();
        assert!(rustix::fs::fcntl_get_seals(&file).unwrap().contains(SEALS));
        assert!(file.write_all(b"x").is_err(), "a sealed memfd took a write");
        assert!(file.set_len(8192).is_err() && file.set_len(0).is_err(), "a sealed memfd changed size");
    }
}
