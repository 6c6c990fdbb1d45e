//! Runs a decrypted WASI preview-1 command under wasmtime, deny by default
//! (and holds what WASI preview-2 components share with it: the grants,
//! the memory budget, the stops and the watch; see `component`):
//! the guest sees only the arguments, environment variables and directories
//! the user granted, within a memory limit. Ctrl-C, SIGTERM, SIGHUP and `--timeout`
//! stop it by ending the process with a message and the documented exit code
//! (see [`stop_process`]). A run that depends on something outside the
//! process (a dongle) is watched: while it is missing the guest's thread is
//! held in a signal handler, and let go when it is back (see [`Watch`]).
use std::path::PathBuf;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use wasmtime::{Engine, Linker, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::error::{GuestError, LaunchError};
use crate::platform::thread_hold;
use crate::watch::{self, Lost, Watch};

/// Default cap on a guest's linear memory, in MiB. wasm32 can address 4 GiB;
/// 2 GiB leaves room for the launcher and the rest of a small machine.
pub const DEFAULT_MAX_MEMORY_MIB: u64 = 2048;
/// Cap on one table's elements (function references). Real programs need
/// thousands, large C++ ones some hundred thousand; ten million, the cap
/// before, let 16 tables take 1.26 GB of host memory.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Host bytes one table element costs, counted against `--max-memory`:
/// a function reference is a pointer.
pub const TABLE_ELEMENT_BYTES: usize = 8;
/// Longest `--timeout`: a year. Longer is no limit in practice, and a
/// deadline that far cannot overflow the clock.
pub const MAX_TIMEOUT_SECS: f64 = 365.0 * 86_400.0;

/// Reads `--timeout SECS`: a positive number of seconds, at most
/// [`MAX_TIMEOUT_SECS`]; the message names the problem.
pub fn parse_timeout(secs: Option<f64>) -> Result<Option<std::time::Duration>, String> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_SECS => Ok(Some(std::time::Duration::from_secs_f64(s))),
        Some(s) => Err(format!(
            "--timeout {s}: give a positive number of seconds, at most {MAX_TIMEOUT_SECS} (a year); leave it out for no limit"
        )),
    }
}

/// Cap on what the guest holds open at once through WASI: files,
/// directories and streams (each file or directory is a descriptor of the
/// launcher's). A hostile guest opened 20,000, leaving the launcher none
/// for its heartbeats and the release of a floating seat. 512 is far more
/// than programs keep open, and half the usual soft limit of 1024
/// descriptors, so the launcher keeps the other half. Past it the guest
/// traps (WASI preview 1 turns a full table into a trap, not an errno).
pub const MAX_GUEST_RESOURCES: usize = 512;

/// Cap on instances, tables and memories: a WASI command needs one each
/// (two instances: the guest and the symlink check's trampoline, which
/// defines no memory or table of its own).
const MAX_INSTANCES: usize = 2;
/// See [`MAX_INSTANCES`].
const MAX_TABLES: usize = 16;
/// See [`MAX_INSTANCES`].
const MAX_MEMORIES: usize = 1;

/// Most bytes one call to `wasi:random` (or preview 1's `random_get`)
/// makes the host allocate: 1 MiB is far more than any key or seed, and
/// keeps a guest from asking for wasmtime-wasi's default of 64 MiB at a
/// time.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// How many instances, tables and memories a guest may create.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) instances: usize,
    pub(crate) tables: usize,
    pub(crate) memories: usize,
}

/// The caps of a core module (see [`MAX_INSTANCES`]).
const MODULE_CAPS: Caps = Caps { instances: MAX_INSTANCES, tables: MAX_TABLES, memories: MAX_MEMORIES };

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
    /// The network (components only; none by default).
    pub net: super::net::NetGrants,
}

/// A helper thread for the length of a run (the deadline, the watcher): it
/// gets a receiver whose sender goes when this guard is dropped, so it sees
/// the run end as `Disconnected`; the drop then waits for it to finish.
pub(crate) struct RunThread {
    cancel: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunThread {
    pub(crate) fn spawn(body: impl FnOnce(std::sync::mpsc::Receiver<()>) + Send + 'static) -> RunThread {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        RunThread { cancel: Some(tx), thread: Some(std::thread::spawn(move || body(rx))) }
    }
}

impl Drop for RunThread {
    fn drop(&mut self) {
        drop(self.cancel.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ends the process when the guest's time is up; dropping the guard before
/// then cancels it.
fn deadline(timeout: Option<std::time::Duration>) -> Option<RunThread> {
    let limit = timeout?;
    Some(RunThread::spawn(move |rx| {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            stop_process(LaunchError::Guest(GuestError::TimedOut { limit }));
        }
    }))
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
    let told = STOP_WORDING.get().map_or_else(|| why.to_string(), |tell| tell(&why));
    watch::say(&told);
    // A watched app is held before the hooks run: giving its seat back
    // must not let it run on meanwhile.
    if let Some(guest) = *WATCHED_GUEST.lock().unwrap_or_else(|p| p.into_inner()) {
        thread_hold::hold(guest);
    }
    run_stop_hooks();
    std::process::exit(i32::from(why.exit_code()))
}

type StopHook = Box<dyn Fn() + Send>;

/// How the front end words an error for the user (the CLI's advice); the
/// problem alone (`Display`) until one is set.
static STOP_WORDING: std::sync::OnceLock<fn(&LaunchError) -> String> = std::sync::OnceLock::new();

/// Sets how [`stop_process`] words why it stops the app: once, by the front end.
pub fn word_stops_with(tell: fn(&LaunchError) -> String) {
    let _ = STOP_WORDING.set(tell);
}

/// The guest thread of a watched run, while it runs.
static WATCHED_GUEST: std::sync::Mutex<Option<thread_hold::Thread>> = std::sync::Mutex::new(None);

/// Work that must happen however the process ends (giving a floating seat
/// back): run by [`stop_process`] before it exits, and by the caller after
/// a normal end.
static STOP_HOOKS: std::sync::Mutex<Vec<StopHook>> = std::sync::Mutex::new(Vec::new());

/// Registers `hook` to run when the process is stopped by [`stop_process`].
pub fn at_stop(hook: impl Fn() + Send + 'static) {
    STOP_HOOKS.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(hook));
}

fn run_stop_hooks() {
    // try_lock: a second stop (Ctrl-C during the first) must not wait for
    // the first's hooks.
    if let Ok(hooks) = STOP_HOOKS.try_lock() {
        for h in hooks.iter() {
            h();
        }
    }
}

/// The engine for this machine: the shared configuration
/// ([`sealrun_engine::base_config`]) with the host's CPU features, as
/// `wasmtime run` compiles.
pub fn engine() -> Result<Engine, LaunchError> {
    sealrun_engine::host_engine().map_err(|e| GuestError::start("", e))
}

/// Notes for the user about capabilities the package asks for that were
/// not granted (nothing is granted without the user saying so), and about
/// network grants a module cannot use.
pub fn package_hints(manifest: &sealrun_format::package::Manifest, guest: &GuestConfig) -> Vec<String> {
    use sealrun_format::package::{AppKind, Capability};
    let (dirs, env, net) = (&guest.dirs, &guest.env, &guest.net);
    let mut out = Vec::new();
    if manifest.kind == AppKind::Console && net.any() {
        out.push(
            "this app is a WASI preview-1 module, which has no network access: the --allow-* grants do nothing for it"
                .to_owned(),
        );
    }
    for c in &manifest.capabilities {
        match c {
            Capability::Dir { writable, guest } if !dirs.iter().any(|d| &d.guest == guest) => {
                let mode = if *writable { "" } else { ":ro" };
                out.push(format!("this app asks for a directory at {guest}; grant one with --dir HOST::{guest}{mode}"));
            }
            Capability::Env(name) if !env.iter().any(|(k, _)| k == name) => {
                out.push(format!("this app reads ${name}; pass it with --env {name}=VALUE"));
            }
            Capability::Connect(to) if !net.connect.iter().any(|e| e.to_string() == *to) => {
                out.push(format!("this app asks to connect to {to}; allow it with --allow-connect {to}"));
            }
            Capability::Listen(on) if !net.listen.iter().any(|l| l.to_string() == *on) => {
                out.push(format!("this app asks to listen on {on}; allow it with --allow-listen {on}"));
            }
            Capability::Dns if !net.dns => {
                out.push("this app asks to look up host names; allow it with --allow-dns".to_owned());
            }
            Capability::Udp if !net.udp => {
                out.push("this app asks for UDP; allow it with --allow-udp".to_owned());
            }
            _ => {}
        }
    }
    out
}

/// Runs a [`Watch`] until dropped: holds the guest while the check fails,
/// lets it go when the check passes again, and ends the process when the
/// grace period runs out.
fn watcher(mut watch: Box<dyn Watch>, guest: thread_hold::Thread) -> RunThread {
    use std::sync::mpsc::RecvTimeoutError;
    RunThread::spawn(move |rx| {
        let mut lost_since: Option<std::time::Instant> = None;
        while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(watch.interval()) {
            let result = watch.check();
            // The app may have finished while the check ran: its exit
            // code stands, whatever the check found.
            if let Err(std::sync::mpsc::TryRecvError::Disconnected) = rx.try_recv() {
                break;
            }
            match (result, lost_since) {
                (Ok(()), None) => {}
                (Ok(()), Some(_)) => {
                    lost_since = None;
                    // Said first: the app's next output comes after it.
                    watch::say(&watch.resumed());
                    thread_hold::release(guest);
                }
                // stop_process holds the app before it gives anything back.
                (Err(Lost::Gone(why)), _) => stop_process(watch.give_up(&why)),
                (Err(Lost::Away(why)), None) if watch.grace().is_zero() => stop_process(watch.give_up(&why)),
                (Err(Lost::Away(why)), None) => {
                    lost_since = Some(std::time::Instant::now());
                    thread_hold::hold(guest);
                    watch::say(&watch.paused(&why));
                }
                (Err(Lost::Away(why)), Some(since)) if since.elapsed() >= watch.grace() => {
                    stop_process(watch.give_up(&why))
                }
                (Err(Lost::Away(_)), Some(_)) => {}
            }
        }
        // The run is over (the guest returned while held is impossible,
        // but its thread may have been held on the way out): let it go.
        if lost_since.is_some() {
            thread_hold::release(guest);
        }
    })
}

/// Compiles a module or component from memory, keeping its code out of
/// core dumps. Nothing is written to disk.
pub(crate) fn compile<C: super::code_mem::Code>(engine: &Engine, wasm: &[u8]) -> Result<C, LaunchError> {
    let code = C::compile(engine, wasm).map_err(|e| GuestError::start("", e))?;
    super::code_mem::excluded(&code);
    Ok(code)
}

/// One budget, `--max-memory`, over everything the guest makes the host
/// allocate for it: every linear memory and every table (the GC proposal,
/// whose heap would be a third, is off: see [`sealrun_engine::base_config`]). wasmtime asks
/// before each memory or table is created or grown, with its size before
/// and after, so the sum of what was granted is what the guest holds.
pub(crate) struct Limits {
    caps: Caps,
    max_memory: usize,
    /// Bytes granted so far, over all memories and tables.
    used: usize,
    /// The growth last granted, taken back if wasmtime then fails it.
    pending: usize,
    memory_refused: bool,
}

impl Limits {
    /// A budget of `max_memory` bytes with the given caps.
    pub(crate) fn new(max_memory: usize, caps: Caps) -> Limits {
        Limits { caps, max_memory, used: 0, pending: 0, memory_refused: false }
    }

    /// Whether a memory or table was refused for the budget (a trap that
    /// follows is reported as out of memory).
    pub(crate) fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    /// Grants growing by `more` bytes if the budget allows.
    fn grow(&mut self, more: usize) -> bool {
        match self.used.checked_add(more) {
            Some(total) if total <= self.max_memory => {
                self.used = total;
                self.pending = more;
                true
            }
            _ => {
                // Refused (the guest sees memory.grow or table.grow fail, or
                // cannot start) and noted, so a trap that follows is
                // reported as out of memory.
                self.memory_refused = true;
                false
            }
        }
    }

    fn grow_failed(&mut self) {
        self.used = self.used.saturating_sub(std::mem::take(&mut self.pending));
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(self.grow(desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES)))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn instances(&self) -> usize {
        self.caps.instances
    }
    fn tables(&self) -> usize {
        self.caps.tables
    }
    fn memories(&self) -> usize {
        self.caps.memories
    }
}

struct Host {
    wasi: WasiP1Ctx,
    limits: Limits,
    /// Where an allowed `path_symlink` goes (see [`refuse_escaping_symlinks`]).
    symlink: Option<SymlinkFn>,
}

/// Ends the process on SIGINT, SIGTERM and SIGHUP while the guest runs: each
/// gives a floating seat back at once ([`at_stop`]). SIGHUP is what a
/// terminal window sends when it is closed; left to its default it would
/// end the launcher without giving the seat back.
pub(crate) struct SignalGuard {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalGuard {
    pub(crate) fn install() -> Result<Self, LaunchError> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| GuestError::start("cannot install signal handlers", e))?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                stop_process(LaunchError::Guest(GuestError::Interrupted { signal }));
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

/// The WASI context both kinds of guest start from: stdio, the arguments,
/// the environment and the directories the user granted, nothing else
/// (no network: see `component` for the grants that open it).
pub(crate) fn wasi_builder(cfg: &GuestConfig) -> Result<WasiCtxBuilder, LaunchError> {
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
            .map_err(|e| GuestError::start(format!("cannot grant directory {}", d.host.display()), e))?;
    }
    b.max_random_size(MAX_RANDOM_BYTES);
    Ok(b)
}

/// `--max-memory` in bytes.
pub(crate) fn max_memory_bytes(cfg: &GuestConfig) -> usize {
    usize::try_from(cfg.max_memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
}

/// What stops a run from outside, installed before the guest is
/// instantiated and removed when dropped: the signal handlers and the
/// deadline.
pub(crate) struct Stops {
    _signals: SignalGuard,
    _deadline: Option<RunThread>,
}

impl Stops {
    /// Installs the signal handlers and starts the deadline of `cfg`.
    pub(crate) fn install(cfg: &GuestConfig) -> Result<Stops, LaunchError> {
        Ok(Stops { _signals: SignalGuard::install()?, _deadline: deadline(cfg.timeout) })
    }
}

/// Calls the guest's entry point (`call`) on this thread with `watch`
/// checked meanwhile: the guest is held while what the watch checks is
/// away, and the process ends when it does not come back.
pub(crate) fn call_watched<R>(watch: Option<Box<dyn Watch>>, call: impl FnOnce() -> R) -> Result<R, LaunchError> {
    let watcher = match watch {
        Some(w) => {
            let guest =
                thread_hold::install().map_err(|e| GuestError::start("cannot install the pause signal handlers", e))?;
            *WATCHED_GUEST.lock().unwrap_or_else(|p| p.into_inner()) = Some(guest);
            Some(watcher(w, guest))
        }
        None => None,
    };
    let result = call();
    drop(watcher);
    *WATCHED_GUEST.lock().unwrap_or_else(|p| p.into_inner()) = None;
    Ok(result)
}

/// What a guest's failure (not its exit) is reported as: out of memory when
/// the budget refused something, a full resource table, else the trap.
pub(crate) fn guest_failure(e: wasmtime::Error, memory_refused: bool, cfg: &GuestConfig) -> LaunchError {
    if memory_refused {
        return LaunchError::Guest(GuestError::OutOfMemory { limit_mib: cfg.max_memory_mib });
    }
    if e.downcast_ref::<wasmtime::component::ResourceTableError>().is_some() {
        return LaunchError::Guest(GuestError::Trap(
            format!(
                "it held more than {MAX_GUEST_RESOURCES} files, directories, streams and sockets open at once (the sandbox's limit)"
            )
            .into(),
        ));
    }
    let cause = match e.downcast_ref::<Trap>() {
        Some(trap) => Box::new(*trap) as crate::error::BoxError,
        None => e.into(),
    };
    LaunchError::Guest(GuestError::Trap(cause))
}

/// [`run`], with `watch` checked while the guest runs.
pub fn run_watched(
    engine: &Engine,
    module: &Module,
    cfg: &GuestConfig,
    watch: Option<Box<dyn Watch>>,
) -> Result<i32, LaunchError> {
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi)
        .map_err(|e| GuestError::start("WASI", e))?;

    let mut wasi = wasi_builder(cfg)?.build_p1();
    wasmtime_wasi::WasiView::ctx(&mut wasi).table.set_max_capacity(MAX_GUEST_RESOURCES);
    let host = Host { wasi, limits: Limits::new(max_memory_bytes(cfg), MODULE_CAPS), symlink: None };
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limits);
    let symlink = refuse_escaping_symlinks(&mut linker, &mut store)?;

    let stops = Stops::install(cfg)?;
    let instance = match linker.instantiate(&mut store, module) {
        Ok(i) => i,
        Err(e) => return Err(start_failure(e, store.data().limits.memory_refused, cfg)),
    };
    connect_symlink_trampoline(engine, &mut store, &instance, symlink)?;
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .map_err(|_| GuestError::cannot_start("the module has no `_start` function (not a WASI command)"))?;
    let result = call_watched(watch, || start.call(&mut store, ()))?;
    drop(stops);
    match result {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(guest_failure(e, store.data().limits.memory_refused, cfg)),
        },
    }
}

/// What a failed instantiation is reported as: out of memory when the
/// budget refused a memory or table, else a failed start.
pub(crate) fn start_failure(e: wasmtime::Error, memory_refused: bool, cfg: &GuestConfig) -> LaunchError {
    if memory_refused {
        LaunchError::Guest(GuestError::OutOfMemory { limit_mib: cfg.max_memory_mib })
    } else {
        GuestError::start("", e)
    }
}

/// WASI preview 1's `errno` for "operation not permitted".
const ERRNO_PERM: i32 = 63;
/// Longest symlink target read from the guest: the host's PATH_MAX.
const MAX_SYMLINK_TARGET: usize = 4096;

/// Whether the guest may make a symlink pointing at `target`: a relative
/// path with no `..`, which can only lead down from the link's directory,
/// so it stays inside the granted directory whatever the link's place and
/// whatever other links the guest made (none of which climbs either).
/// wasmtime keeps the guest from *following* a link out of its grant, but
/// a link it leaves behind (`out/report.txt -> ../../.bashrc`) is followed
/// by the next host program that writes the output.
pub(crate) fn symlink_target_allowed(target: &str) -> bool {
    !target.is_empty() && !target.starts_with('/') && !target.split('/').any(|c| c == "..")
}

/// A module that calls WASI's `path_symlink` with the guest's memory as its
/// own: wasmtime's function reads the paths from the memory of the instance
/// that calls it, so the check in [`refuse_escaping_symlinks`] hands an
/// allowed call on through this. Imports the function and the memory,
/// exports the memory and `symlink` (five i32 in, the errno out).
const SYMLINK_TRAMPOLINE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x0a, 0x01, 0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, // type 0: (i32 x5) -> i32
    0x02, 0x37, 0x02, // imports: 2
    0x16, b'w', b'a', b's', b'i', b'_', b's', b'n', b'a', b'p', b's', b'h', b'o', b't', b'_', b'p', b'r', b'e', b'v',
    b'i', b'e', b'w', b'1', 0x0c, b'p', b'a', b't', b'h', b'_', b's', b'y', b'm', b'l', b'i', b'n', b'k', 0x00,
    0x00, // func of type 0
    0x05, b'g', b'u', b'e', b's', b't', 0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00,
    0x00, // memory, min 0
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x07, 0x14, 0x02, // exports: 2
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00, // "memory": memory 0
    0x07, b's', b'y', b'm', b'l', b'i', b'n', b'k', 0x00, 0x01, // "symlink": func 1
    0x0a, 0x10, 0x01, 0x0e, 0x00, // code: 1 body, 14 bytes, no locals
    0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0x20, 0x03, 0x20, 0x04, 0x10, 0x00, 0x0b, // local.get 0..4; call 0; end
];

/// What [`refuse_escaping_symlinks`] calls for an allowed link.
type SymlinkFn = wasmtime::TypedFunc<(i32, i32, i32, i32, i32), i32>;

/// Puts a check before WASI's `path_symlink`: a link whose target could
/// leave the grant ([`symlink_target_allowed`]) is refused with `EPERM`;
/// every other call goes to wasmtime's own function unchanged, through
/// [`SYMLINK_TRAMPOLINE`] (set up by [`connect_symlink_trampoline`] once
/// the guest's memory exists), which also checks the pointers. Returns
/// wasmtime's function, for the trampoline.
fn refuse_escaping_symlinks(linker: &mut Linker<Host>, store: &mut Store<Host>) -> Result<wasmtime::Func, LaunchError> {
    const WASI: &str = "wasi_snapshot_preview1";
    let cannot = |e: wasmtime::Error| GuestError::start("WASI path_symlink", e);
    let Ok(wasmtime::Extern::Func(original)) = linker.get(&mut *store, WASI, "path_symlink") else {
        return Err(GuestError::cannot_start("WASI has no path_symlink"));
    };
    linker.allow_shadowing(true);
    let defined = linker
        .func_wrap(
            WASI,
            "path_symlink",
            |mut caller: wasmtime::Caller<'_, Host>,
             target_ptr: i32,
             target_len: i32,
             fd: i32,
             link_ptr: i32,
             link_len: i32|
             -> wasmtime::Result<i32> {
                let target = caller.get_export("memory").and_then(|m| m.into_memory()).and_then(|memory| {
                    let start = usize::try_from(target_ptr as u32).ok()?;
                    let len = usize::try_from(target_len as u32).ok().filter(|&l| l <= MAX_SYMLINK_TARGET)?;
                    let bytes = memory.data(&caller).get(start..start.checked_add(len)?)?;
                    std::str::from_utf8(bytes).ok().map(str::to_owned)
                });
                // A target that cannot be read here (outside memory, longer
                // than PATH_MAX, not UTF-8) is refused too: no check, no link.
                if !target.is_some_and(|t| symlink_target_allowed(&t)) {
                    return Ok(ERRNO_PERM);
                }
                let Some(through) = caller.data().symlink.clone() else {
                    // No memory to read paths from: nothing to link.
                    return Ok(ERRNO_PERM);
                };
                through.call(&mut caller, (target_ptr, target_len, fd, link_ptr, link_len))
            },
        )
        .map(|_| ())
        .map_err(cannot);
    linker.allow_shadowing(false);
    defined.map(|()| original)
}

/// Instantiates [`SYMLINK_TRAMPOLINE`] over the guest's memory and
/// wasmtime's `path_symlink` (`original`), for [`refuse_escaping_symlinks`].
/// A guest without an exported memory keeps no trampoline (and cannot pass
/// paths anyway).
fn connect_symlink_trampoline(
    engine: &Engine,
    store: &mut Store<Host>,
    guest: &wasmtime::Instance,
    original: wasmtime::Func,
) -> Result<(), LaunchError> {
    let Some(memory) = guest.get_memory(&mut *store, "memory") else { return Ok(()) };
    let cannot = |e: wasmtime::Error| GuestError::start("the symlink check", e);
    let module = Module::new(engine, SYMLINK_TRAMPOLINE).map_err(cannot)?;
    let mut linker: Linker<Host> = Linker::new(engine);
    linker.define(&*store, "wasi_snapshot_preview1", "path_symlink", original).map_err(cannot)?;
    linker.define(&*store, "guest", "memory", memory).map_err(cannot)?;
    let instance = linker.instantiate(&mut *store, &module).map_err(cannot)?;
    let through: SymlinkFn = instance.get_typed_func(&mut *store, "symlink").map_err(cannot)?;
    store.data_mut().symlink = Some(through);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_may_only_lead_down() {
        for ok in ["file", "sub/file", "./file", "a/./b", "..."] {
            assert!(symlink_target_allowed(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../.bashrc", "sub/../../x", "..", "a/..", "//x"] {
            assert!(!symlink_target_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn parses_dir_grants() {
        let d = DirGrant::parse("./data::/data:ro").unwrap();
        assert_eq!(d, DirGrant { host: "./data".into(), guest: "/data".into(), read_only: true });
        let d = DirGrant::parse("/tmp/x").unwrap();
        assert_eq!(d, DirGrant { host: "/tmp/x".into(), guest: "/tmp/x".into(), read_only: false });
        assert!(DirGrant::parse("::/data").is_err());
    }
}
