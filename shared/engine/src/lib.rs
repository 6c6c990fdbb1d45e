//! The wasmtime configuration shared by everything that compiles guests:
//! the launcher (which runs them) and `sealsdk seal` (which validates them
//! and, with `--precompile`, compiles them ahead of time for named targets).
//!
//! Code compiled by one engine runs only under an engine whose
//! [`runtime_fingerprint`] is equal, so both sides build their engines
//! here and nowhere else: a setting changed in one place is changed for
//! both, and precompiled code stops matching instead of misbehaving.
use sealrun_format::package::AppKind;
use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, WasmFeatures};

pub mod guest;

/// The WebAssembly features guests may use, exactly: the engine enables
/// these and no others, and [`guest::inspect`] validates components with
/// the same set, so what `seal` accepts is what the launcher runs.
///
/// Deny by default, for proposals too: what no WASI toolchain emits is
/// off. The GC proposal (and function references, which it builds on)
/// would give the guest a GC heap outside the memory budget; exceptions
/// allocate their objects there too; 64-bit memories are not what wasm32
/// targets make; threads would share memories the store's limiter cannot
/// see. Reference types, multiple tables and memories, SIMD, tail calls
/// and extended constants stay on (LLVM emits them for wasm32), bounded by
/// the launcher's limits. `GC_TYPES` is wasmparser's name for the value
/// types of the core spec (funcref, externref) and is part of `WASM2`.
/// The component model is on for WASI preview-2 components, without its
/// async, threading and later extensions.
pub const GUEST_FEATURES: WasmFeatures = WasmFeatures::WASM2
    .union(WasmFeatures::TAIL_CALL)
    .union(WasmFeatures::EXTENDED_CONST)
    .union(WasmFeatures::MULTI_MEMORY)
    .union(WasmFeatures::RELAXED_SIMD)
    .union(WasmFeatures::COMPONENT_MODEL);

/// Why an engine could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The target is not one of [`TARGETS`].
    #[error("unknown target {target:?}; known targets: {}", known_targets().join(", "))]
    UnknownTarget {
        /// The name asked for.
        target: String,
    },
    /// wasmtime does not accept the target's triple.
    #[error("target {target}: {source}")]
    Target {
        /// The target.
        target: String,
        /// wasmtime's reason.
        source: wasmtime::Error,
    },
    /// This build of wasmtime has no compiler for the target.
    #[error("this build cannot compile for {target} (the compiler for it is not built in): {source}")]
    NotBuiltIn {
        /// The target.
        target: String,
        /// wasmtime's reason.
        source: wasmtime::Error,
    },
    /// The engine for this machine could not be made.
    #[error("wasmtime engine: {0}")]
    Host(#[source] wasmtime::Error),
}

/// Targets that native code may be compiled for, with their triples.
pub const TARGETS: &[(&str, &str)] = &[
    ("x86_64-linux", "x86_64-unknown-linux-gnu"),
    ("aarch64-linux", "aarch64-unknown-linux-gnu"),
    ("x86_64-macos", "x86_64-apple-darwin"),
    ("aarch64-macos", "aarch64-apple-darwin"),
];

fn known_targets() -> Vec<&'static str> {
    TARGETS.iter().map(|(n, _)| *n).collect()
}

/// The target name of the machine this program runs on, if it has one.
pub fn host_target() -> Option<&'static str> {
    match (std::env::consts::ARCH, std::env::consts::OS) {
        ("x86_64", "linux") => Some("x86_64-linux"),
        ("aarch64", "linux") => Some("aarch64-linux"),
        ("x86_64", "macos") => Some("x86_64-macos"),
        ("aarch64", "macos") => Some("aarch64-macos"),
        _ => None,
    }
}

/// The configuration shared by every engine: what the wasmtime CLI uses by
/// default (Cranelift at its default optimisation level, parallel
/// compilation), no fuel and no epoch checks (a stop ends the process), and
/// no wasmtime disk cache (the `cache` feature is not even compiled in;
/// Sealrun keeps its own, encrypted).
pub fn base_config() -> Config {
    let mut config = Config::new();
    config.parallel_compilation(true);
    // Copy-on-write memory images keep every data segment in a memfd that
    // other processes of the user could open through /proc; without them
    // data segments are copied into the instance's anonymous memory.
    config.memory_init_cow(false);
    // Exactly the guest features: everything off, then those on.
    config.wasm_features(WasmFeatures::all(), false);
    config.wasm_features(GUEST_FEATURES, true);
    config
}

/// The engine for this machine: [`base_config`] with the host's CPU
/// features, as `wasmtime run` compiles.
pub fn host_engine() -> Result<Engine, EngineError> {
    Engine::new(&base_config()).map_err(EngineError::Host)
}

/// Whether the code of a guest of `kind` checks wasmtime's epoch (at loop
/// headers and function entries), so that one call into it can be
/// interrupted: an HTTP service (`sealrun serve`) stops a request over its
/// time limit and serves on. Commands stop by ending the process and run
/// without the checks, which cost up to 2x on tight loops.
pub fn interruptible(kind: AppKind) -> bool {
    kind == AppKind::ComponentHttpProxy
}

/// [`base_config`] for a guest of `kind` (see [`interruptible`]).
pub fn config_for(kind: AppKind) -> Config {
    let mut config = base_config();
    if interruptible(kind) {
        config.epoch_interruption(true);
    }
    config
}

/// The engine for this machine for a guest of `kind`.
pub fn host_engine_for(kind: AppKind) -> Result<Engine, EngineError> {
    Engine::new(&config_for(kind)).map_err(EngineError::Host)
}

/// The engine that compiles (SDK) and loads (launcher) native code for
/// `target` and a guest of `kind`: [`config_for`] for the target's
/// baseline CPU, assuming no
/// CPU features beyond it, so an artifact runs on every machine of its
/// target.
pub fn engine_for_target(target: &str, kind: AppKind) -> Result<Engine, EngineError> {
    let Some((_, triple)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        return Err(EngineError::UnknownTarget { target: target.to_owned() });
    };
    let mut config = config_for(kind);
    config.target(triple).map_err(|source| EngineError::Target { target: target.to_owned(), source })?;
    Engine::new(&config).map_err(|source| EngineError::NotBuiltIn { target: target.to_owned(), source })
}

/// The compatibility fingerprint of `engine`: SHA-256 over what wasmtime
/// itself hashes to decide whether compiled code fits (target, compiler
/// flags, CPU features, tunables, wasm features, wasmtime version).
pub fn runtime_fingerprint(engine: &Engine) -> [u8; 32] {
    struct Sha(Sha256);
    impl std::hash::Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut h = Sha(Sha256::new_with_prefix(b"sealrun/v1/runtime\0"));
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_engines_are_baseline_and_differ_from_the_host_engine() {
        let host = host_target().expect("tests run on a known target");
        let a = engine_for_target(host, AppKind::Console).unwrap();
        let b = engine_for_target(host, AppKind::Console).unwrap();
        let fp = runtime_fingerprint;
        assert_eq!(fp(&a), fp(&b), "the same target gives the same fingerprint");
        assert_ne!(fp(&a), fp(&host_engine().unwrap()), "the host engine infers CPU features, targets do not");
        let serving = engine_for_target(host, AppKind::ComponentHttpProxy).unwrap();
        assert_ne!(fp(&a), fp(&serving), "code with epoch checks is not code without");
        assert_eq!(fp(&a), fp(&engine_for_target(host, AppKind::ComponentCommand).unwrap()));
        let unknown = engine_for_target("pdp11-unix", AppKind::Console).unwrap_err();
        assert!(unknown.to_string().contains("known targets: x86_64-linux"), "{unknown}");
    }

    #[test]
    fn the_feature_set_is_what_the_named_switches_gave() {
        // The engine's features were set by switching proposals off one by
        // one before they were set exactly; both give the same engine (and
        // so the same fingerprint), which shows GUEST_FEATURES names what
        // wasmtime enabled then, and catches a wasmtime upgrade that
        // changes its defaults.
        let mut config = Config::new();
        config.parallel_compilation(true).memory_init_cow(false);
        config.wasm_gc(false).wasm_function_references(false).wasm_exceptions(false);
        config.wasm_memory64(false).wasm_stack_switching(false);
        let switched = Engine::new(&config).unwrap();
        assert_eq!(runtime_fingerprint(&switched), runtime_fingerprint(&host_engine().unwrap()));
        assert!(!GUEST_FEATURES.contains(WasmFeatures::THREADS) && !GUEST_FEATURES.contains(WasmFeatures::GC));
    }

    #[test]
    fn another_configuration_has_another_fingerprint() {
        let ours = host_engine().unwrap();
        let mut config = Config::new();
        config.epoch_interruption(true).memory_init_cow(false).cranelift_opt_level(wasmtime::OptLevel::None);
        let other = Engine::new(&config).unwrap();
        assert_ne!(runtime_fingerprint(&ours), runtime_fingerprint(&other));
        assert_eq!(runtime_fingerprint(&ours), runtime_fingerprint(&host_engine().unwrap()));
    }
}
