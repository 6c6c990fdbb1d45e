//! Runs a decrypted `wasi:cli/command` component under wasmtime-wasi's
//! synchronous preview-2 host, with what a core module gets (see
//! `runner`): only the granted arguments, environment, directories and
//! network (see `net`), one
//! memory budget over all of the component's memories and tables, the
//! deadline, the signals, the watch and the exit codes. Escaping symlinks
//! are refused here too.
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::bindings::sync::filesystem::types as fs;
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use super::runner::{self, Caps, GuestConfig, Limits, MAX_GUEST_RESOURCES};
use crate::error::{GuestError, LaunchError};
use crate::watch::Watch;

/// Cap on core instances in a component. Toolchains build a command from
/// several core modules: `wasm32-wasip2` Rust makes 4 (the program, the
/// adapter when it still calls preview 1, and two small shims), jco and
/// componentize-py a few dozen (one per linked library). 64 leaves room
/// for those and keeps a hostile component from making thousands.
pub const MAX_COMPONENT_INSTANCES: usize = 64;
/// Cap on tables in a component: every core instance may bring one or
/// two (the shims' indirect-call tables); each is bounded by
/// `runner::MAX_TABLE_ELEMENTS` and counted against `--max-memory`.
pub const MAX_COMPONENT_TABLES: usize = 128;
/// Cap on linear memories in a component: the program's, the preview-1
/// adapter's, and one per library that keeps its own. All of them count
/// against the one `--max-memory` budget.
pub const MAX_COMPONENT_MEMORIES: usize = 16;
/// Most bytes one call into the host may make it copy out of the guest
/// (strings, lists: a path, a write's buffer): wasmtime's hostcall fuel.
/// Its default is 128 MiB per call, outside the guest's memory budget;
/// 16 MiB is four times the largest buffer std writes at once.
pub const MAX_HOSTCALL_BYTES: usize = 16 << 20;

/// The caps of a component (see [`MAX_COMPONENT_INSTANCES`]).
const COMPONENT_CAPS: Caps =
    Caps { instances: MAX_COMPONENT_INSTANCES, tables: MAX_COMPONENT_TABLES, memories: MAX_COMPONENT_MEMORIES };

/// The WASI release the launcher's linker defines its interfaces under
/// (wasmtime-wasi's; 0.2.x imports of every x link to it).
const WASI_FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// What the store of a component holds (a command's, or one request's of
/// an HTTP service).
pub(crate) struct Host {
    ctx: WasiCtx,
    http: wasmtime_wasi_http::WasiHttpCtx,
    table: ResourceTable,
    limits: Limits,
    gate: super::net::HttpGate,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for Host {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.gate }
    }
}

/// Runs the `wasi:cli/run` export of a compiled command component and
/// returns its exit code (`run` returning an error is exit code 1, as
/// `wasmtime run` has it), with `watch` checked while it runs.
pub(crate) fn run_watched(
    engine: &Engine,
    component: &Component,
    cfg: &GuestConfig,
    watch: Option<Box<dyn Watch>>,
) -> Result<i32, LaunchError> {
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| GuestError::start("WASI", e))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(|e| GuestError::start("WASI HTTP", e))?;
    refuse_escaping_symlinks(&mut linker)?;
    // Every import is checked by type here, before anything runs.
    let pre = linker.instantiate_pre(component).map_err(|e| GuestError::start("its imports do not link", e))?;

    let mut store = new_store(engine, cfg)?;
    let stops = runner::Stops::install(cfg)?;
    let command = match pre.instantiate(&mut store).and_then(|instance| Command::new(&mut store, &instance)) {
        Ok(c) => c,
        Err(e) => return Err(runner::start_failure(e, store.data().memory_refused(), cfg)),
    };
    let result = runner::call_watched(watch, || command.wasi_cli_run().call_run(&mut store))?;
    drop(stops);
    match result {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(runner::guest_failure(e, store.data().memory_refused(), cfg)),
        },
    }
}

/// A store for a component with what `cfg` grants (directories,
/// environment, network, outgoing HTTP), its memory budget and caps, the
/// resource table cap and the hostcall fuel.
pub(crate) fn new_store(engine: &Engine, cfg: &GuestConfig) -> Result<Store<Host>, LaunchError> {
    let mut builder = runner::wasi_builder(cfg)?;
    cfg.net.apply(&mut builder);
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_GUEST_RESOURCES);
    let host = Host {
        ctx: builder.build(),
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        table,
        limits: Limits::new(runner::max_memory_bytes(cfg), COMPONENT_CAPS),
        gate: super::net::HttpGate::new(&cfg.net),
    };
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limits);
    store.set_hostcall_fuel(MAX_HOSTCALL_BYTES);
    Ok(store)
}

impl Host {
    /// Whether the memory budget refused something (see `Limits`).
    pub(crate) fn memory_refused(&self) -> bool {
        self.limits.memory_refused()
    }
}

/// Puts the check of `runner::symlink_target_allowed` before
/// `wasi:filesystem/types`' `symlink-at`: a link whose target could leave
/// the grant is refused with `not-permitted`, every other call goes to
/// wasmtime-wasi's own function unchanged.
fn refuse_escaping_symlinks(linker: &mut Linker<Host>) -> Result<(), LaunchError> {
    type Args = (Resource<fs::Descriptor>, String, String);
    let cannot = |e: wasmtime::Error| GuestError::start("WASI symlink-at", e);
    linker.allow_shadowing(true);
    let defined = linker.instance(WASI_FILESYSTEM_TYPES).and_then(|mut types| {
        types.func_wrap(
            "[method]descriptor.symlink-at",
            |mut store: StoreContextMut<'_, Host>, (dir, target, link): Args| {
                if !runner::symlink_target_allowed(&target) {
                    return Ok((Err(fs::ErrorCode::NotPermitted),));
                }
                let mut view = wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(store.data_mut());
                match fs::HostDescriptor::symlink_at(&mut view, dir, target, link) {
                    Ok(()) => Ok((Ok(()),)),
                    Err(e) => Ok((Err(fs::Host::convert_error_code(&mut view, e)?),)),
                }
            },
        )
    });
    linker.allow_shadowing(false);
    defined.map_err(cannot)
}
