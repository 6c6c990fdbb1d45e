//! The encrypted compiled-code cache.
//!
//! Compiling a large module with Cranelift takes seconds to minutes, so the
//! launcher keeps what it compiled, sealed with a key only this device can
//! derive, and only with the content key from a valid license (see
//! `sealrun_format::code_cache`). Entries live in `$XDG_CACHE_HOME/sealrun/code`
//! as `<entry id>.code`, are decrypted into anonymous memory and handed to
//! wasmtime only after every chunk has been authenticated. Compiled code in
//! plaintext never reaches the disk.
//!
//! A file's modification time records its last use; when the cache grows past
//! its cap the least recently used entries go first.
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sealrun_format::code_cache::{EntryHeader, EntryId, MAX_ENTRY_HEADER_LEN, entry_key, seal_entry};
use sealrun_format::device::DeviceSecret;
use sealrun_format::{ContentKey, UnixTime};
use wasmtime::Engine;
use zeroize::Zeroizing;

use crate::error::LaunchError;
use crate::platform::dirs;
use crate::platform::files::read_exact_at;
use crate::runtime::code_mem::{self, Code};

/// Overrides the cache directory (tests, shared machines with a fast disk).
pub(crate) const CACHE_DIR_ENV: &str = "SEALRUN_CACHE_DIR";
/// Overrides the cache's size cap, in MiB (fractions allowed); 0 turns the
/// cache off.
pub(crate) const CACHE_MAX_ENV: &str = "SEALRUN_CACHE_MAX_MB";
/// Default size cap. Compiled code is 1-3x its module's size: 2 GiB keeps
/// a dozen large apps (or hundreds of small ones) without filling small disks.
pub(crate) const DEFAULT_CACHE_CAP_BYTES: u64 = 2 << 30;
/// Entries decrypt on every core from this size up: below it one core takes
/// about a millisecond, less than starting threads is worth.
pub(crate) const PARALLEL_MIN_LEN: u64 = 4 << 20;
/// File name suffix of entries.
const SUFFIX: &str = ".code";

/// This launcher's version, part of every entry id: a new launcher never
/// reads an older one's entries (it recompiles once and replaces them).
pub(crate) const LAUNCHER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a lookup found.
pub(crate) enum Lookup<C> {
    /// A valid entry: the code, ready to instantiate.
    Hit(C),
    /// No entry for this package, runtime and launcher.
    Miss,
    /// An entry was there but could not be used; the reason is for a warning.
    Refused(String),
}

/// A cache entry as `sealrun cache list` shows it.
#[derive(Debug, Clone)]
pub(crate) struct EntryInfo {
    /// The entry file.
    pub path: PathBuf,
    /// Its size on disk.
    pub size: u64,
    /// Last use.
    pub last_used: SystemTime,
    /// Product, release and name (from its header, unauthenticated), or why
    /// the header does not parse.
    pub label: String,
}

use sealrun_engine::runtime_fingerprint;

/// The compiled-code cache of this user.
#[derive(Debug, Clone)]
pub(crate) struct CodeCache {
    dir: PathBuf,
    cap: u64,
}

impl CodeCache {
    /// The cache at its usual place with its usual cap, honouring
    /// [`CACHE_DIR_ENV`] and [`CACHE_MAX_ENV`].
    pub(crate) fn from_env() -> Result<CodeCache, LaunchError> {
        let dir = match std::env::var_os(CACHE_DIR_ENV).filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => dirs::cache_dir().join("code"),
        };
        let cap = match std::env::var(CACHE_MAX_ENV) {
            Ok(v) => match v.trim().parse::<f64>() {
                Ok(mib) if mib.is_finite() && mib >= 0.0 => (mib * (1u64 << 20) as f64) as u64,
                _ => {
                    return Err(LaunchError::Usage(format!(
                        "{CACHE_MAX_ENV}={v:?}: expected a size in MiB, e.g. 2048 (0 turns the cache off)"
                    )));
                }
            },
            Err(_) => DEFAULT_CACHE_CAP_BYTES,
        };
        Ok(CodeCache { dir, cap })
    }

    /// A cache in `dir` with a cap of `cap` bytes.
    #[cfg(test)]
    pub(crate) fn new(dir: PathBuf, cap: u64) -> CodeCache {
        CodeCache { dir, cap }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size cap in bytes (0: the cache is off).
    pub(crate) fn cap(&self) -> u64 {
        self.cap
    }

    /// Whether entries are read and written at all.
    pub(crate) fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// Where the entry `id` lives.
    pub(crate) fn entry_path(&self, id: &EntryId) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", id.to_hex()))
    }

    /// Looks up the entry `id` and, if it authenticates under `key`, loads it
    /// into `engine`. Anything but a valid entry is a miss or a refusal,
    /// never an error: the caller compiles instead.
    pub(crate) fn load<C: Code>(&self, engine: &Engine, id: &EntryId, key: &ContentKey) -> Lookup<C> {
        let path = self.entry_path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Refused(format!("cannot open {}: {e}", path.display())),
        };
        match load_entry(engine, &file, id, key) {
            Ok(module) => {
                // Marks the entry as recently used for eviction; failing to
                // is harmless.
                let _ = file.set_modified(SystemTime::now());
                Lookup::Hit(module)
            }
            Err(reason) => Lookup::Refused(reason),
        }
    }

    /// Seals `module`'s compiled code as entry `id` under `key` and writes it
    /// (atomically, 0600), then evicts least recently used entries beyond the
    /// cap. Returns the entry's size.
    /// Failing to store is never fatal: the caller warns and runs anyway.
    pub(crate) fn store<C: Code>(
        &self,
        module: &C,
        id: &EntryId,
        key: &ContentKey,
        label: &str,
        now: UnixTime,
    ) -> std::io::Result<u64> {
        // The serialized code is plaintext in ordinary heap memory for the
        // moment it takes to seal it, and is zeroed right after.
        let code = Zeroizing::new(module.serialize().map_err(std::io::Error::other)?);
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let sealed = seal_entry(id, key, label, now, &code, &mut rng).map_err(std::io::Error::other)?;
        drop(code);
        crate::platform::files::create_private_dir(&self.dir)?;
        let path = self.entry_path(id);
        // Unsynced: a torn entry after a crash fails authentication and is
        // rebuilt, which costs one compile and loses nothing.
        sealrun_host::fs::write_atomic(&path, &sealed, 0o600, sealrun_host::fs::Durability::Unsynced)?;
        self.evict(Some(&path));
        Ok(sealed.len() as u64)
    }

    /// Every entry, least recently used first.
    pub(crate) fn list(&self) -> Vec<EntryInfo> {
        let Ok(dir) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out: Vec<EntryInfo> = dir
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.')))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let path = e.path();
                let label = match read_header(&path) {
                    Ok(h) => h.label,
                    Err(why) => format!("(unreadable: {why})"),
                };
                Some(EntryInfo { path, size: meta.len(), last_used: meta.modified().ok()?, label })
            })
            .collect();
        out.sort_by_key(|e| e.last_used);
        out
    }

    /// Total size of all entries.
    #[cfg(test)]
    pub(crate) fn size(&self) -> u64 {
        self.list().iter().map(|e| e.size).sum()
    }

    /// Removes every entry (and leftover temporary files); returns how many
    /// entries and bytes were removed.
    pub(crate) fn clear(&self) -> Result<(usize, u64), LaunchError> {
        let mut removed = (0, 0);
        let Ok(dir) = fs::read_dir(&self.dir) else { return Ok(removed) };
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_entry = name.ends_with(SUFFIX) && !name.starts_with('.');
            if !is_entry && !name.ends_with(".tmp") {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).map_err(LaunchError::io("cannot remove", &e.path()))?;
            if is_entry {
                removed.0 += 1;
                removed.1 += size;
            }
        }
        Ok(removed)
    }

    /// Removes least recently used entries until the total fits the cap,
    /// never `keep` (the entry just written).
    fn evict(&self, keep: Option<&Path>) {
        let entries = self.list();
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        for e in entries {
            if total <= self.cap {
                break;
            }
            if Some(e.path.as_path()) == keep {
                continue;
            }
            if fs::remove_file(&e.path).is_ok() {
                tracing::debug!(path = %e.path.display(), size = e.size, "evicted from the code cache");
                total -= e.size;
            }
        }
    }
}

/// Where the code of a cache entry came from: the id says so, and the two
/// never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Compiled on this machine from the package's module.
    Compiled,
    /// The vendor's precompiled native code, loaded from the package.
    VendorNative,
}

/// The key and id of the entry for a package on this device, for code of
/// `origin`.
pub(crate) fn entry_for(
    package_identity: &[u8; 32],
    engine: &Engine,
    origin: Origin,
    content: &ContentKey,
    device_secret: &DeviceSecret,
) -> (EntryId, ContentKey) {
    let runtime = runtime_fingerprint(engine);
    let id = match origin {
        Origin::Compiled => EntryId::new(package_identity, &runtime, LAUNCHER_VERSION),
        Origin::VendorNative => EntryId::for_vendor_native(package_identity, &runtime, LAUNCHER_VERSION),
    };
    let key = entry_key(content, device_secret, &id);
    (id, key)
}

/// Reads and parses an entry's header; the file is never mapped (so a file
/// truncated meanwhile is a read error, not SIGBUS).
fn read_entry_header(file: &File) -> Result<EntryHeader, String> {
    let len = file.metadata().map_err(|e| format!("cannot read it: {e}"))?.len();
    let mut head = vec![0u8; (len as usize).min(MAX_ENTRY_HEADER_LEN)];
    read_exact_at(file, &mut head, 0).map_err(|e| format!("cannot read it: {e}"))?;
    let header = EntryHeader::parse_prefix(&head).map_err(|e| e.to_string())?;
    header.check_len(len).map_err(|e| e.to_string())?;
    Ok(header)
}

fn read_header(path: &Path) -> Result<EntryHeader, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    read_entry_header(&file)
}

#[allow(unsafe_code)]
fn load_entry<C: Code>(engine: &Engine, file: &File, id: &EntryId, key: &ContentKey) -> Result<C, String> {
    let started = std::time::Instant::now();
    let header = read_entry_header(file)?;
    let len = usize::try_from(header.plaintext_len).map_err(|_| "it is too large for this machine".to_owned())?;
    let threads = if header.plaintext_len >= PARALLEL_MIN_LEN {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        1
    };
    // Each chunk is read straight into its final place (no map of the entry,
    // whose pages would otherwise count twice in the launcher's memory).
    let read = |at: u64, buf: &mut [u8]| read_exact_at(file, buf, at).is_ok();
    let fill = |buf: &mut [u8]| {
        header.decrypt_body_from(id, key, read, buf, threads).map_err(|_| {
            "it could not be authenticated (damaged, or made on another device or for another package)".to_owned()
        })
    };
    // SAFETY: `fill` succeeds only when every chunk authenticated under a key
    // derived from this package's content key and this device's secret: the
    // code is exactly what this launcher serialized with `C::serialize`
    // for an engine with the same compatibility fingerprint (part of the id).
    let module = unsafe { code_mem::load_trusted(engine, len, fill) };
    tracing::debug!(len, ms = started.elapsed().as_secs_f64() * 1e3, "cache entry loaded");
    module
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_keeps_the_cap_and_the_newest_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path().to_owned(), 250);
        for (i, age) in [(1u8, 300u64), (2, 200), (3, 100)] {
            let p = dir.path().join(format!("{}{SUFFIX}", hex_of(i)));
            fs::write(&p, vec![0u8; 100]).unwrap();
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
        }
        let keep = dir.path().join(format!("{}{SUFFIX}", hex_of(1)));
        cache.evict(Some(&keep));
        let left: Vec<String> =
            cache.list().iter().map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        // Entry 2 is the least recently used that may go; 1 is kept even
        // though it is older, and 200 bytes fit the cap.
        assert_eq!(left, [format!("{}{SUFFIX}", hex_of(1)), format!("{}{SUFFIX}", hex_of(3))]);
        assert_eq!(cache.size(), 200);
        assert_eq!(cache.clear().unwrap(), (2, 200));
        assert!(cache.list().is_empty());
    }

    /// The smallest WASI command: `_start` does nothing.
    const EMPTY_COMMAND: &[u8] = &[
        0, b'a', b's', b'm', 1, 0, 0, 0, // magic, version
        1, 4, 1, 0x60, 0, 0, // type section: () -> ()
        3, 2, 1, 0, // one function of type 0
        7, 10, 1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0, // export _start
        10, 4, 1, 2, 0, 0x0b, // body: no locals, end
    ];

    #[test]
    fn changed_engine_configuration_never_uses_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path().to_owned(), DEFAULT_CACHE_CAP_BYTES);
        let secret = sealrun_format::device::DeviceSecret::from_bytes(&[7; 32]);
        let content = ContentKey::from_bytes(&[9; 32]);
        let identity = [3u8; 32];

        let ours = crate::runtime::runner::engine().unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true).memory_init_cow(false).cranelift_opt_level(wasmtime::OptLevel::None);
        let other = Engine::new(&config).unwrap();
        assert_ne!(runtime_fingerprint(&ours), runtime_fingerprint(&other));
        assert_eq!(runtime_fingerprint(&ours), runtime_fingerprint(&crate::runtime::runner::engine().unwrap()));

        let (id, key) = entry_for(&identity, &ours, Origin::Compiled, &content, &secret);
        let module = wasmtime::Module::new(&ours, EMPTY_COMMAND).unwrap();
        cache.store(&module, &id, &key, "test", 1).unwrap();
        assert!(matches!(cache.load::<wasmtime::Module>(&ours, &id, &key), Lookup::Hit(_)));

        // The other configuration looks under another name and misses...
        let (other_id, other_key) = entry_for(&identity, &other, Origin::Compiled, &content, &secret);
        assert_ne!(id, other_id);
        assert!(matches!(cache.load::<wasmtime::Module>(&other, &other_id, &other_key), Lookup::Miss));
        // ...and an entry planted under that name does not authenticate.
        fs::copy(cache.entry_path(&id), cache.entry_path(&other_id)).unwrap();
        assert!(matches!(cache.load::<wasmtime::Module>(&other, &other_id, &other_key), Lookup::Refused(_)));
        // Another launcher version names another entry too.
        let fingerprint = runtime_fingerprint(&ours);
        assert_ne!(EntryId::new(&identity, &fingerprint, "0.0.0-other"), id);
        // The vendor's native code never shares an id with code compiled
        // here, even under the same engine (issue 24, finding 9: on a
        // baseline aarch64 CPU the host's and the vendor target's runtime
        // fingerprints are equal, and cached vendor code ran on after
        // `trust remove`).
        let (native_id, native_key) = entry_for(&identity, &ours, Origin::VendorNative, &content, &secret);
        assert_ne!(native_id, id);
        assert!(matches!(cache.load::<wasmtime::Module>(&ours, &native_id, &native_key), Lookup::Miss));
    }

    fn hex_of(i: u8) -> String {
        EntryId([i; 32]).to_hex()
    }
}
