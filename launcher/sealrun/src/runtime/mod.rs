//! Running a guest: the engine, loading code (decryption, the encrypted
//! compiled-code cache, sealed memory for large code, the vendor's native
//! code) and the sandboxed run. Knows nothing of licenses: it is given an
//! opened package and the content key the license side unlocked.
//!
//! [`Guest`] is the one place where the kind of guest is decided; a second
//! kind (components) and a host API for the guest are added there.
pub(crate) mod cache;
pub(crate) mod code_mem;
pub mod component;
pub mod http;
pub(crate) mod load;
pub(crate) mod native;
pub mod net;
pub(crate) mod package;
pub mod runner;

pub use package::read_header;

pub(crate) use load::{LoadWith, Source};
pub(crate) use package::OpenedPackage;

use sealrun_format::package::AppKind;

use crate::error::{GuestError, LaunchError};
use crate::watch::Watch;

/// Compiled guest code, by kind.
pub(crate) enum Guest {
    /// A core WebAssembly module for WASI preview 1.
    Module(wasmtime::Module),
    /// A WASI preview-2 component for the `wasi:cli/command` world.
    Command(wasmtime::component::Component),
    /// A WASI preview-2 component for the `wasi:http/proxy` world, loaded
    /// for `sealrun serve`.
    HttpProxy(wasmtime::component::Component),
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

/// The engine for this machine and a guest of `kind` (HTTP services are
/// compiled with epoch checks: see `sealrun_engine::interruptible`).
pub(crate) fn engine_for(kind: AppKind) -> Result<wasmtime::Engine, LaunchError> {
    sealrun_engine::host_engine_for(kind).map_err(|e| GuestError::start("", e))
}

/// The engine `sealrun serve` runs an HTTP service with: [`engine_for`]'s
/// configuration (so the same compiled code and cache entries) with
/// instances taken from a pool sized for `opts` (see
/// `http::pooled_allocation`), or allocated one by one when no pool fits.
pub(crate) fn serve_engine(opts: &http::ServeOptions) -> Result<wasmtime::Engine, LaunchError> {
    if let Some(pool) = http::pooled_allocation(opts.max_concurrent) {
        let mut config = sealrun_engine::config_for(AppKind::ComponentHttpProxy);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        match wasmtime::Engine::new(&config) {
            Ok(engine) => return Ok(engine),
            // The pool reserves terabytes of address space up front; under
            // a `ulimit -v` that fails, and one-by-one allocation works.
            Err(e) => tracing::debug!("no instance pool ({e:#}); allocating instances one by one"),
        }
    }
    engine_for(AppKind::ComponentHttpProxy)
}

/// Loads the guest in `package` with `engine` (see [`load::load_code`]).
pub(crate) fn load(
    package: &OpenedPackage,
    engine: wasmtime::Engine,
    with: &LoadWith<'_>,
) -> Result<Loaded, LaunchError> {
    match package.manifest().kind {
        AppKind::Console => {
            let (engine, module, source) = load::load_code(package, engine, with)?;
            Ok(Loaded { engine, guest: Guest::Module(module), source })
        }
        AppKind::ComponentCommand => {
            let (engine, component, source) = load::load_code(package, engine, with)?;
            Ok(Loaded { engine, guest: Guest::Command(component), source })
        }
        AppKind::ComponentHttpProxy if with.serving => {
            let (engine, component, source) = load::load_code(package, engine, with)?;
            Ok(Loaded { engine, guest: Guest::HttpProxy(component), source })
        }
        // An HTTP service runs under `sealrun serve`, not as a command. The
        // kind byte is believed only once the vendor's signature over the
        // package checks out (a damaged package is reported as damaged),
        // and nothing is decrypted.
        AppKind::ComponentHttpProxy => {
            package.verify_signature()?;
            Err(GuestError::cannot_start(
                "it is an HTTP service (a wasi:http/proxy component); start it with `sealrun serve`",
            ))
        }
    }
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
        Guest::Command(component) => component::run_watched(&loaded.engine, component, cfg, watch),
        Guest::HttpProxy(_) => Err(GuestError::cannot_start(
            "it is an HTTP service (a wasi:http/proxy component); start it with `sealrun serve`",
        )),
    }
}

/// Serves a loaded HTTP service as `opts` says (see [`http::serve`]).
pub(crate) fn serve(
    loaded: &Loaded,
    cfg: &runner::GuestConfig,
    opts: &http::ServeOptions,
    watch: Option<Box<dyn Watch>>,
) -> Result<i32, LaunchError> {
    match &loaded.guest {
        Guest::HttpProxy(component) => http::serve(&loaded.engine, component, cfg, opts, watch),
        Guest::Module(_) | Guest::Command(_) => Err(GuestError::cannot_start(
            "it is a command, not an HTTP service (a wasi:http/proxy component); run it with `sealrun run`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pooled or not, the engine compiles the same code: cache entries and
    /// vendor-precompiled code are shared. The pool itself can be made here
    /// (no silent fallback in this test).
    #[test]
    fn a_pooled_engine_has_the_fingerprint_of_the_plain_one() {
        let mut config = sealrun_engine::config_for(AppKind::ComponentHttpProxy);
        let pool = http::pooled_allocation(http::DEFAULT_MAX_CONCURRENT).expect("the default is pooled");
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let pooled = wasmtime::Engine::new(&config).expect("a pool for the default --max-concurrent");
        let plain = engine_for(AppKind::ComponentHttpProxy).unwrap();
        let fp = sealrun_engine::runtime_fingerprint;
        assert_eq!(fp(&pooled), fp(&plain));
    }
}
