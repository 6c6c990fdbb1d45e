//! Hands authenticated compiled code to wasmtime without leaving plaintext
//! on disk: small code through a locked, zeroized buffer that wasmtime
//! copies; large code through a sealed memfd (memory, never a file on disk)
//! that wasmtime maps as it is, saving a copy of hundreds of MiB.
use wasmtime::{Engine, Module};

use crate::platform::locked_memory::SecretBuffer;

/// Code at least this large goes through a memfd: below it the copy costs
/// less than a millisecond.
pub(crate) const MEMFD_MIN_LEN: usize = 4 << 20;

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
pub(crate) unsafe fn load_trusted(
    engine: &Engine,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> Result<Module, String> {
    #[cfg(target_os = "linux")]
    if len >= MEMFD_MIN_LEN
        && let Ok(code) = crate::platform::SealedCode::new(len)
    {
        let sealed = code.fill(fill)?.into_file();
        tracing::debug!(len, "compiled code mapped from a sealed memfd");
        // SAFETY: the caller's contract covers the bytes; `fill` checked that
        // the memfd is sealed against writes, shrinking and growing, so the
        // private map wasmtime makes of it cannot change underneath.
        return unsafe { Module::deserialize_open_file(engine, sealed) }
            .map_err(|e| format!("wasmtime refused it: {e:#}"))
            .inspect(excluded);
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
    let excluded = crate::platform::hardening::exclude_from_core_dumps(module);
    tracing::debug!(excluded, "compiled code excluded from core dumps");
}
