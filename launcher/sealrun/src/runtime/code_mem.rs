//! Hands authenticated compiled code to wasmtime without leaving plaintext
//! on disk: small code through a locked, zeroized buffer that wasmtime
//! copies; large code through a sealed memfd (memory, never a file on disk)
//! that wasmtime maps as it is, saving a copy of hundreds of MiB.
use std::fs::File;
use std::ops::Range;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::platform::locked_memory::SecretBuffer;

/// Code at least this large goes through a memfd: below it the copy costs
/// less than a millisecond.
pub(crate) const MEMFD_MIN_LEN: usize = 4 << 20;

/// Compiled code of either kind of guest, as the loaders and the cache
/// handle it: a core module or a component.
pub(crate) trait Code: Sized {
    /// Compiles `wasm` (decrypted guest bytes) with `engine`.
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self>;
    /// The compiled code, for the cache.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// Loads serialized code from memory (wasmtime copies it).
    ///
    /// # Safety
    ///
    /// As for [`load_trusted`].
    #[allow(unsafe_code)]
    unsafe fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Self>;
    /// Loads serialized code from a sealed memfd (wasmtime maps it).
    ///
    /// # Safety
    ///
    /// As for [`load_trusted`]; the file is sealed against every change.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe fn deserialize_sealed(engine: &Engine, file: File) -> wasmtime::Result<Self>;
    /// Where wasmtime keeps the machine code.
    fn image_range(&self) -> Range<*const u8>;
}

impl Code for Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, wasm)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
    #[allow(unsafe_code)]
    unsafe fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Module::deserialize(engine, code) }
    }
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe fn deserialize_sealed(engine: &Engine, file: File) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Module::deserialize_open_file(engine, file) }
    }
    fn image_range(&self) -> Range<*const u8> {
        Module::image_range(self)
    }
}

impl Code for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, wasm)
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
    #[allow(unsafe_code)]
    unsafe fn deserialize(engine: &Engine, code: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Component::deserialize(engine, code) }
    }
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe fn deserialize_sealed(engine: &Engine, file: File) -> wasmtime::Result<Self> {
        // wasmtime takes a component's code file by path only: the memfd's
        // own entry under /proc opens the same sealed memory again (not a
        // file on disk), and `file` stays open until it is mapped.
        let path = crate::platform::proc_path(&file);
        // SAFETY: passed on from the caller; the path names `file` itself.
        unsafe { Component::deserialize_file(engine, path) }
    }
    fn image_range(&self) -> Range<*const u8> {
        Component::image_range(self)
    }
}

/// Lets `fill` write `len` bytes of compiled code and loads them into
/// `engine`. Failures of `fill` come back as they are; its buffer is zeroed
/// or discarded.
///
/// # Safety
///
/// `fill` must return `Ok` only when the buffer holds code produced by
/// serializing (or precompiling) code of kind `C` with an engine whose
/// compatibility fingerprint equals `engine`'s, and authenticated as such:
/// wasmtime runs it as machine code.
#[allow(unsafe_code)]
pub(crate) unsafe fn load_trusted<C: Code>(
    engine: &Engine,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> Result<C, String> {
    #[cfg(target_os = "linux")]
    if len >= MEMFD_MIN_LEN
        && let Ok(code) = crate::platform::SealedCode::new(len)
    {
        let sealed = code.fill(fill)?.into_file();
        tracing::debug!(len, "compiled code mapped from a sealed memfd");
        // SAFETY: the caller's contract covers the bytes; `fill` checked that
        // the memfd is sealed against writes, shrinking and growing, so the
        // private map wasmtime makes of it cannot change underneath.
        return unsafe { C::deserialize_sealed(engine, sealed) }
            .map_err(|e| format!("wasmtime refused it: {e:#}"))
            .inspect(excluded);
    }
    let mut code = SecretBuffer::new(len).map_err(|e| format!("cannot allocate memory: {e}"))?;
    fill(&mut code)?;
    // SAFETY: the caller's contract covers the bytes. wasmtime checks the
    // compatibility fingerprint again and copies the code into its own
    // executable memory; `code` is zeroed when dropped.
    unsafe { C::deserialize(engine, &code[..]) }.map_err(|e| format!("wasmtime refused it: {e}")).inspect(excluded)
}

/// Keeps the loaded code out of core dumps (see `hardening`).
pub(crate) fn excluded<C: Code>(code: &C) {
    let excluded = crate::platform::hardening::exclude_from_core_dumps(code.image_range());
    tracing::debug!(excluded, "compiled code excluded from core dumps");
}
