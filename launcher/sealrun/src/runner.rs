//! Runs a decrypted WASI preview-1 command under wasmtime, deny by default:
//! the guest sees only the arguments, environment variables and directories
//! the user granted, within a memory limit. Ctrl-C, SIGTERM and `--timeout`
//! stop it by ending the process with a message and the documented exit code
//! (see [`stop_process`]). A run that depends on something outside the
//! process (a dongle) is watched: while it is missing the guest is paused at
//! its next safe point, and resumed when it is back (see [`Watch`]).
use std::path::PathBuf;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::error::LaunchError;

/// Default cap on a guest's linear memory, in MiB. wasm32 can address 4 GiB;
/// 2 GiB leaves room for the launcher and the rest of a small machine.
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 2048;
/// Cap on table elements (function references). Real programs need
/// thousands; this stops a hostile guest from growing tables without bound.
pub const MAX_TABLE_ELEMENTS: usize = 10_000_000;
/// Cap on instances, tables and memories: a WASI command needs one each.
const MAX_INSTANCES: usize = 1;
/// See [`MAX_INSTANCES`].
const MAX_TABLES: usize = 16;
/// See [`MAX_INSTANCES`].
const MAX_MEMORIES: usize = 1;

/// A directory granted to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Host directory.
    pub host: PathBuf,
    /// Path the guest sees.
    pub guest: String,
    /// Read-only.
    pub read_only: bool,
}

impl DirGrant {
    /// Parses `HOST[::GUEST][:ro|:rw]`, as in `--dir ./data::/data:ro`.
    pub fn parse(s: &str) -> Result<DirGrant, String> {
        let (rest, read_only) = match (s.strip_suffix(":ro"), s.strip_suffix(":rw")) {
            (Some(r), _) => (r, true),
            (_, Some(r)) => (r, false),
            _ => (s, false),
        };
        let (host, guest) = match rest.split_once("::") {
            Some((h, g)) => (h, g.to_owned()),
            None => (rest, rest.to_owned()),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("--dir {s:?}: expected HOST[::GUEST][:ro], e.g. ./data::/data:ro"));
        }
        let as_capability = sealrun_format::package::Capability::Dir { writable: !read_only, guest: guest.clone() };
        if guest.starts_with('/') && as_capability.problem().is_some() {
            return Err(format!(
                "--dir {s:?}: the guest path must be canonical, e.g. /data (no '..', '.', '//' or trailing '/')"
            ));
        }
        Ok(DirGrant { host: PathBuf::from(host), guest, read_only })
    }
}

/// What the guest is given.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// argv[0] as the guest sees it.
    pub program_name: String,
    /// Arguments after argv[0].
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Directories.
    pub dirs: Vec<DirGrant>,
    /// Linear memory cap in MiB.
    pub max_memory_mib: u64,
    /// Wall-clock limit for the run; `None` lets it run as long as it likes
    /// (the default: many apps are interactive or long-running by design).
    pub timeout: Option<std::time::Duration>,
}

/// Ends the process when the guest's time is up; dropping the guard before
/// then cancels it.
struct Deadline {
    cancel: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Deadline {
    fn start(timeout: Option<std::time::Duration>) -> Deadline {
        let Some(limit) = timeout else {
            return Deadline { cancel: None, thread: None };
        };
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                stop_process(LaunchError::TimedOut { limit });
            }
        });
        Deadline { cancel: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Stops a running guest by ending the process, from a watcher thread, with
/// the launcher's message and exit code for `why`.
///
/// Guests run without interruption checks: epoch checks at every loop
/// header made a compute-bound guest up to 2x slower (measured with
/// `wasmtime run -W timeout=…`, docs/performance.md), and fuel is slower
/// still. Ending the process loses nothing a trap would keep: WASI writes go
/// straight to the host's files, the plaintext module was freed after
/// compiling, and the memory of a non-dumpable process goes with it.
pub fn stop_process(why: LaunchError) -> ! {
    eprintln!("sealrun: {why}");
    std::process::exit(i32::from(why.exit_code()))
}

/// The configuration shared by every engine: what the wasmtime CLI uses by
/// default (Cranelift at its default optimisation level, parallel
/// compilation), no fuel and no epoch checks (a stop ends the process, see
/// [`stop_process`]), and no wasmtime disk cache (the `cache` feature is not
/// even compiled in; Sealrun keeps its own, encrypted).
pub fn base_config() -> Config {
    let mut config = Config::new();
    config.parallel_compilation(true);
    // Copy-on-write memory images keep every data segment in a memfd that
    // other processes of the user could open through /proc; without them
    // data segments are copied into the instance's anonymous memory.
    config.memory_init_cow(false);
    config
}

/// The engine for this machine: [`base_config`] with the host's CPU
/// features, as `wasmtime run` compiles.
pub fn engine() -> Result<Engine, LaunchError> {
    Engine::new(&base_config()).map_err(|e| LaunchError::GuestStart(format!("wasmtime engine: {e}")))
}

/// The engine for a watched run: as [`engine`], plus epoch checks in the
/// compiled code, the points where a guest can be paused. Only runs that
/// need pausing (dongle licenses) pay for the checks; their compiled code is
/// cached apart from the plain engine's, since the runtime fingerprint differs.
pub fn pausable_engine() -> Result<Engine, LaunchError> {
    let mut config = base_config();
    config.epoch_interruption(true);
    Engine::new(&config).map_err(|e| LaunchError::GuestStart(format!("wasmtime engine: {e}")))
}

/// What a watched run depends on, checked every [`Watch::interval`] on a
/// thread of its own while the guest runs.
pub trait Watch: Send {
    /// Time between checks.
    fn interval(&self) -> std::time::Duration;
    /// How long it may be missing before the run is stopped.
    fn grace(&self) -> std::time::Duration;
    /// Whether it holds now.
    fn check(&mut self) -> Result<(), Lost>;
    /// Told to the user when the guest is paused.
    fn paused(&self, why: &str) -> String;
    /// Told to the user when the guest resumes.
    fn resumed(&self) -> String;
    /// Why the run is stopped, when it is missing past the grace period or
    /// can never come back.
    fn give_up(&self, why: &str) -> LaunchError;
}

/// A failed [`Watch::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Missing now; may come back within the grace period.
    Away(String),
    /// Cannot come back (e.g. replaced by something else): stop now.
    Gone(String),
}

/// The pause gate between the watcher and the guest's epoch callback.
#[derive(Default)]
struct Gate {
    paused: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn set(&self, paused: bool) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
        self.changed.notify_all();
    }

    /// Blocks the guest thread while paused.
    fn wait(&self) {
        let mut p = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        while *p {
            p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Runs a [`Watch`] until dropped: pauses the guest (through the gate and an
/// epoch tick) while the check fails, resumes it when the check passes
/// again, and ends the process when the grace period runs out.
struct Watcher {
    cancel: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(mut watch: Box<dyn Watch>, engine: Engine, gate: std::sync::Arc<Gate>) -> Watcher {
        use std::sync::mpsc::RecvTimeoutError;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut lost_since: Option<std::time::Instant> = None;
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(watch.interval()) {
                match (watch.check(), lost_since) {
                    (Ok(()), None) => {}
                    (Ok(()), Some(_)) => {
                        lost_since = None;
                        gate.set(false);
                        say(&watch.resumed());
                    }
                    (Err(Lost::Gone(why)), _) => stop_process(watch.give_up(&why)),
                    (Err(Lost::Away(why)), None) => {
                        lost_since = Some(std::time::Instant::now());
                        gate.set(true);
                        // The guest stops at its next epoch check.
                        engine.increment_epoch();
                        say(&watch.paused(&why));
                    }
                    (Err(Lost::Away(why)), Some(since)) if since.elapsed() >= watch.grace() => {
                        stop_process(watch.give_up(&why))
                    }
                    (Err(Lost::Away(_)), Some(_)) => {}
                }
            }
        });
        Watcher { cancel: Some(tx), thread: Some(thread) }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One line for the user on stderr, from a helper thread.
fn say(message: &str) {
    eprintln!("sealrun: {message}");
}

/// Compiles a module from memory. Nothing is written to disk.
pub fn compile(engine: &Engine, module: &[u8]) -> Result<Module, LaunchError> {
    Module::new(engine, module).map_err(|e| LaunchError::GuestStart(format!("{e}")))
}

struct Limits {
    max_memory: usize,
    memory_refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            // Refuse the growth (the guest sees memory.grow fail) and note it,
            // so a trap that follows is reported as out of memory.
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

struct Host {
    wasi: WasiP1Ctx,
    limits: Limits,
}

/// Ends the process on SIGINT/SIGTERM while the guest runs.
struct SignalGuard {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalGuard {
    fn install() -> Result<Self, LaunchError> {
        let mut signals = Signals::new([SIGINT, SIGTERM])
            .map_err(|e| LaunchError::GuestStart(format!("cannot install signal handlers: {e}")))?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                stop_process(LaunchError::Interrupted { signal });
            }
        });
        Ok(SignalGuard { handle, thread: Some(thread) })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the `_start` of a compiled WASI command and returns its exit code.
pub fn run(engine: &Engine, module: &Module, cfg: &GuestConfig) -> Result<i32, LaunchError> {
    run_watched(engine, module, cfg, None)
}

/// [`run`], with `watch` checked while the guest runs. A watched run needs
/// an engine from [`pausable_engine`].
pub fn run_watched(
    engine: &Engine,
    module: &Module,
    cfg: &GuestConfig,
    watch: Option<Box<dyn Watch>>,
) -> Result<i32, LaunchError> {
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)
        .map_err(|e| LaunchError::GuestStart(format!("WASI: {e}")))?;

    let mut b = WasiCtxBuilder::new();
    b.inherit_stdio();
    b.arg(&cfg.program_name);
    b.args(&cfg.args);
    for (k, v) in &cfg.env {
        b.env(k, v);
    }
    for d in &cfg.dirs {
        let perms = if d.read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
        b.preopened_dir(&d.host, &d.guest, perms)
            .map_err(|e| LaunchError::GuestStart(format!("cannot grant directory {}: {e}", d.host.display())))?;
    }
    let max_memory = usize::try_from(cfg.max_memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let host = Host { wasi: b.build_p1(), limits: Limits { max_memory, memory_refused: false } };
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limits);
    let gate = std::sync::Arc::new(Gate::default());
    if watch.is_some() {
        // The deadline is one tick away; the watcher ticks only to pause.
        store.set_epoch_deadline(1);
        let g = gate.clone();
        store.epoch_deadline_callback(move |_| {
            g.wait();
            Ok(wasmtime::UpdateDeadline::Continue(1))
        });
    }

    let signals = SignalGuard::install()?;
    let deadline = Deadline::start(cfg.timeout);
    let instance = match linker.instantiate(&mut store, module) {
        Ok(i) => i,
        Err(_) if store.data().limits.memory_refused => {
            return Err(LaunchError::GuestOutOfMemory { limit_mib: cfg.max_memory_mib });
        }
        Err(e) => return Err(LaunchError::GuestStart(format!("{e}"))),
    };
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|_| LaunchError::GuestStart("the module has no `_start` function (not a WASI command)".into()))?;
    let watcher = watch.map(|w| Watcher::start(w, engine.clone(), gate));
    let result = start.call(&mut store, ());
    drop((watcher, signals, deadline));
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                return Ok(exit.0);
            }
            if store.data().limits.memory_refused {
                return Err(LaunchError::GuestOutOfMemory { limit_mib: cfg.max_memory_mib });
            }
            let trap = e.downcast_ref::<Trap>().map(|t| t.to_string());
            Err(LaunchError::GuestTrap(trap.unwrap_or_else(|| format!("{e}"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dir_grants() {
        let d = DirGrant::parse("./data::/data:ro").unwrap();
        assert_eq!(d, DirGrant { host: "./data".into(), guest: "/data".into(), read_only: true });
        let d = DirGrant::parse("/tmp/x").unwrap();
        assert_eq!(d, DirGrant { host: "/tmp/x".into(), guest: "/tmp/x".into(), read_only: false });
        assert!(DirGrant::parse("::/data").is_err());
    }
}
