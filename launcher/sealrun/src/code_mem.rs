//! Hands authenticated compiled code to wasmtime without leaving plaintext
//! on disk: small code through a locked, zeroized buffer that wasmtime
//! copies; large code through a sealed memfd (memory, never a file on disk)
//! that wasmtime maps as it is, saving a copy of hundreds of MiB.
use wasmtime::{Engine, Module};

use crate::secure_buf::SecretBuffer;

/// Code at least this large goes through a memfd: below it the copy costs
/// less than a millisecond.
pub const MEMFD_MIN_LEN: usize = 4 << 20;

/// Lets `fill` write `len` bytes of compiled code and loads them into
/// `engine`. Failures of `fill` come back as they are; its buffer is zeroed
/// or discarded.
///
/// # Safety
///
/// `fill` must return `Ok` only when the buffer holds code produced by
/// `Module::serialize` or `Engine::precompile_module` of an engine whose
/// compatibility fingerprint equals `engine`'s, and authenticated as such:
/// wasmtime runs it as machine code.
#[allow(unsafe_code)]
pub unsafe fn load_trusted(
    engine: &Engine,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> Result<Module, String> {
    #[cfg(target_os = "linux")]
    if len >= MEMFD_MIN_LEN
        && let Ok(code) = memfd::SealedCode::new(len)
    {
        let code = code.fill(fill)?;
        tracing::debug!(len, "compiled code mapped from a sealed memfd");
        // SAFETY: the caller's contract covers the bytes; the memfd is sealed.
        return unsafe { code.deserialize(engine) }.inspect(excluded);
    }
    let mut code = SecretBuffer::new(len).map_err(|e| format!("cannot allocate memory: {e}"))?;
    fill(&mut code)?;
    // SAFETY: the caller's contract covers the bytes. wasmtime checks the
    // compatibility fingerprint again and copies the code into its own
    // executable memory; `code` is zeroed when dropped.
    unsafe { Module::deserialize(engine, &code[..]) }.map_err(|e| format!("wasmtime refused it: {e}")).inspect(excluded)
}

/// Keeps the loaded code out of core dumps (see `hardening`).
fn excluded(module: &Module) {
    let excluded = crate::hardening::exclude_from_core_dumps(module);
    tracing::debug!(excluded, "compiled code excluded from core dumps");
}

/// Authenticated compiled code in a sealed memfd, which wasmtime maps
/// privately instead of copying.
#[cfg(target_os = "linux")]
mod memfd {
    use std::fs::File;
    use std::os::fd::FromRawFd;

    use wasmtime::{Engine, Module};

    /// `MFD_EXEC` (Linux 6.3+): the code must be mappable executable even
    /// where `vm.memfd_noexec` makes memfds non-executable by default.
    const MFD_EXEC: libc::c_uint = 0x0010;

    /// A memfd being filled; [`fill`](Self::fill) seals it.
    pub(super) struct SealedCode {
        file: File,
        len: usize,
    }

    /// A sealed memfd holding authenticated code.
    pub(super) struct Filled(File);

    impl SealedCode {
        #[allow(unsafe_code)]
        pub(super) fn new(len: usize) -> std::io::Result<SealedCode> {
            let name = c"sealrun-code";
            let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
            // SAFETY: `name` is a valid C string; the call has no other inputs.
            let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
            if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                // Kernels before 6.3 do not know MFD_EXEC (and need none).
                // SAFETY: as above.
                fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
            }
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            let file = unsafe { File::from_raw_fd(fd) };
            file.set_len(len as u64)?;
            Ok(SealedCode { file, len })
        }

        /// Maps the memfd writable, lets `write` fill it, unmaps it and seals
        /// the memfd against any further change (so what wasmtime maps is
        /// what was authenticated). `write` must fill all of it or fail.
        #[allow(unsafe_code)]
        pub(super) fn fill(self, write: impl FnOnce(&mut [u8]) -> Result<(), String>) -> Result<Filled, String> {
            // SAFETY: a shared map of our own new memfd, which no one else
            // has a descriptor for. Not populated: shmem pages allocated in
            // one go by mmap were slower than the page faults the decrypting
            // threads take in parallel (measured on the 220 MB Yosys entry).
            let mut view = unsafe { memmap2::MmapOptions::new().len(self.len).map_mut(&self.file) }
                .map_err(|e| format!("cannot map memory for it: {e}"))?;
            write(&mut view)?;
            drop(view);
            let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
            // SAFETY: fcntl on a descriptor we own; no writable map remains.
            let _ = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&self.file), libc::F_ADD_SEALS, seals) };
            Ok(Filled(self.file))
        }
    }

    impl Filled {
        /// # Safety
        ///
        /// The memfd must hold code as [`super::load_trusted`] requires.
        #[allow(unsafe_code)]
        pub(super) unsafe fn deserialize(self, engine: &Engine) -> Result<Module, String> {
            // SAFETY: the caller vouches for the bytes; the memfd is sealed
            // against writes, shrinking and growing, so the private map
            // wasmtime makes of it cannot change underneath.
            unsafe { Module::deserialize_open_file(engine, self.0) }.map_err(|e| format!("wasmtime refused it: {e:#}"))
        }
    }
}
