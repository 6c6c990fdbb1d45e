//! Running a guest: the engine, loading code (decryption, the encrypted
//! compiled-code cache, sealed memory for large code, the vendor's native
//! code) and the sandboxed run. Knows nothing of licenses: it is given an
//! opened package and the content key the license side unlocked.
//!
//! [`Guest`] is the one place where the kind of guest is decided; a second
//! kind (components) and a host API for the guest are added there.
pub(crate) mod cache;
pub(crate) mod code_mem;
pub(crate) mod load;
pub(crate) mod native;
pub(crate) mod package;
pub mod runner;

pub use package::read_header;

pub(crate) use load::{LoadWith, Source};
pub(crate) use package::OpenedPackage;

use crate::error::LaunchError;
use crate::watch::Watch;

/// Compiled guest code, by kind.
pub(crate) enum Guest {
    /// A core WebAssembly module for WASI preview 1.
    Module(wasmtime::Module),
}

/// A guest ready to run: its code and the engine the code belongs to.
pub(crate) struct Loaded {
    /// The host engine, or a target engine for vendor-precompiled code.
    pub(crate) engine: wasmtime::Engine,
    /// The code.
    pub(crate) guest: Guest,
    /// Where the code came from.
    pub(crate) source: Source,
}

/// The engine for this machine.
pub(crate) fn engine() -> Result<wasmtime::Engine, LaunchError> {
    runner::engine()
}

/// Loads the guest in `package` with `engine` (see [`load::load_module`]).
pub(crate) fn load(
    package: &OpenedPackage,
    engine: wasmtime::Engine,
    with: &LoadWith<'_>,
) -> Result<Loaded, LaunchError> {
    // Every package holds a core module today (the format has no other kind).
    let (engine, module, source) = load::load_module(package, engine, with)?;
    Ok(Loaded { engine, guest: Guest::Module(module), source })
}

/// Runs a loaded guest with `cfg`, checking `watch` while it runs; its exit
/// code.
pub(crate) fn run(
    loaded: &Loaded,
    cfg: &runner::GuestConfig,
    watch: Option<Box<dyn Watch>>,
) -> Result<i32, LaunchError> {
    match &loaded.guest {
        Guest::Module(module) => runner::run_watched(&loaded.engine, module, cfg, watch),
    }
}
