//! `sealrun-bench`: the benchmark suite. Every Sealrun figure is printed next
//! to its peer's from the same run on the same machine, as a ratio:
//!
//! 1. decryption throughput against raw AES-256-GCM-SIV, on one core and on
//!    every core (and sealing, for the vendor side);
//! 2. cold, warm and ahead-of-time launches of a small sample and, with
//!    `--large FILE`, of a large real-world module, against `wasmtime run`
//!    (`-C cache=n`, its default cache, `--allow-precompiled`);
//! 3. a compute-bound guest's run time against `wasmtime run` (module and
//!    component), and `sealrun serve` against `wasmtime serve` under wrk;
//! 4. peak RSS against `wasmtime run`;
//! 5. the licensing server under load from this process (licenses and
//!    activations per second, p50/p99 latency) on SQLite and PostgreSQL.
//!
//! Run it through `scripts/bench`, which builds in release mode first and
//! fetches the large module.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use sealrun_format::code_cache::{CacheEntry, EntryId, seal_entry};
use sealrun_format::package::{Package, PackageSpec, seal_to_vec};
use sealrun_format::stream::{self, ChunkOpener};
use sealrun_format::{ContentKey, Release, VendorSigningKey};
use sealrun_tests::{Device, World, samples_dir};

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Median and spread (min..max) of some timings.
#[derive(Clone, Copy)]
struct Stat {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Stat {
    fn of(mut t: Vec<Duration>) -> Stat {
        t.sort();
        Stat { median: t[t.len() / 2], min: t[0], max: t[t.len() - 1] }
    }

    fn ms(&self) -> String {
        let f = |d: Duration| d.as_secs_f64() * 1e3;
        if f(self.median) >= 1000.0 {
            let s = |d: Duration| d.as_secs_f64();
            return format!("{:.2} s ({:.2}..{:.2})", s(self.median), s(self.min), s(self.max));
        }
        format!("{:.1} ms ({:.1}..{:.1})", f(self.median), f(self.min), f(self.max))
    }

    fn ratio(&self, peer: &Stat) -> f64 {
        self.median.as_secs_f64() / peer.median.as_secs_f64()
    }
}

fn measure(runs: usize, mut f: impl FnMut()) -> Stat {
    Stat::of(
        (0..runs)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect(),
    )
}

fn mb_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

struct Opts {
    runs: usize,
    cold_runs: usize,
    size_mib: usize,
    large: Option<PathBuf>,
    large_args: Vec<String>,
    only: Option<String>,
    load_secs: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let num = |name: &str, default: usize| value(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let opts = Opts {
        runs: num("--runs", 11),
        cold_runs: num("--cold-runs", 3),
        size_mib: num("--size-mib", 64),
        large: value("--large").map(PathBuf::from),
        large_args: value("--large-args")
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        only: value("--only"),
        load_secs: num("--load-secs", 10) as u64,
    };
    let want = |part: &str| opts.only.as_deref().is_none_or(|o| o.split(',').any(|p| p == part));
    if want("crypto") {
        crypto(&opts);
    }
    let world = World::new();
    let dev = world.device("bench");
    if want("launch") {
        launches(&opts, &world, &dev);
    }
    if want("compute") {
        compute(&opts, &world, &dev);
    }
    if want("serve") {
        serve(&opts, &world, &dev);
    }
    if want("dongle") {
        dongle(&opts, &world, &dev);
    }
    if want("server") {
        server_load(&opts);
    }
    if want("floating") {
        floating_load(&opts, &world);
    }
    if want("rss") {
        if opts.only.as_deref() == Some("rss") {
            rss(&opts, &world, &dev);
        } else {
            // On Linux a child starts with its parent's peak RSS as its own
            // (ru_maxrss survives fork and exec), and the throughput section
            // grew this process by hundreds of MiB: measure from a fresh one.
            let mut child = Command::new(std::env::current_exe().expect("own path"));
            let mut rest: Vec<String> = args[1..].to_vec();
            if let Some(i) = rest.iter().position(|a| a == "--only") {
                rest.drain(i..(i + 2).min(rest.len()));
            }
            let status = child.args(rest).args(["--only", "rss"]).status().expect("run the rss section");
            assert!(status.success(), "the rss section failed");
        }
    }
}

fn crypto(o: &Opts) {
    let (runs, size_mib) = (o.runs, o.size_mib);
    let len = size_mib << 20;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut module = vec![0u8; len];
    getrandom::fill(&mut module).expect("random");
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let spec = |len| PackageSpec {
        product: "com.example.bench".into(),
        release: Release::new(1, 0, 0),
        display_name: "bench".into(),
        kind: sealrun_format::package::AppKind::Console,
        capabilities: vec![],
        chunk_size_log2: sealrun_format::limits::DEFAULT_CHUNK_SIZE_LOG2,
        plaintext_len: len as u64,
        icon: None,
    };
    println!("## Throughput on {size_mib} MiB, median of {runs} runs (min..max), {cores} cores\n");
    println!("| operation | MB/s | time |");
    println!("|---|---|---|");

    let mut sealed = Vec::new();
    let seal = measure(runs, || sealed = seal_to_vec(spec(len), &module, &key, &vendor, &mut rng()).expect("seal"));
    row("seal (encrypt + sign, in memory)", len, seal);
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("bench.sealed");
    let opts = sealrun_sdk::seal::SealOptions {
        product: "com.example.bench".into(),
        release: Release::new(1, 0, 0),
        display_name: None,
        capabilities: vec![],
        chunk_size_log2: sealrun_format::limits::DEFAULT_CHUNK_SIZE_LOG2,
        progress: false,
        precompile: vec![],
        icon: None,
    };
    let seal_file = measure(runs, || {
        sealrun_sdk::seal::seal_bytes(&module, sealrun_format::package::AppKind::Console, &key, &vendor, &out, &opts)
            .expect("seal to file");
    });
    row("seal to a file (sealsdk library, fsync)", len, seal_file);

    // The peer: raw AES-256-GCM-SIV over the same bytes, one call per core
    // (each core takes its share), copying the ciphertext into the output
    // buffer first as any out-of-place decryption must.
    let cipher = Aes256GcmSiv::new(&[7u8; 32].into());
    let nonce = Nonce::from([1u8; 12]);
    let raw = |threads: usize| {
        let share = len.div_ceil(threads);
        let pieces: Vec<(Vec<u8>, _)> = module
            .chunks(share)
            .map(|p| {
                let mut b = p.to_vec();
                let tag = cipher.encrypt_inout_detached(&nonce, b"", b.as_mut_slice().into()).expect("encrypt");
                (b, tag)
            })
            .collect();
        let mut work = vec![0u8; len];
        measure(runs, || {
            std::thread::scope(|s| {
                for ((ct, tag), out) in pieces.iter().zip(work.chunks_mut(share)) {
                    let cipher = &cipher;
                    s.spawn(move || {
                        out.copy_from_slice(ct);
                        cipher.decrypt_inout_detached(&nonce, b"", out.into(), tag).expect("raw decrypt");
                    });
                }
            })
        })
    };
    let raw1 = raw(1);
    let raw_n = raw(cores);

    let mut plain = vec![0u8; len];
    let pkg = |threads: usize, plain: &mut Vec<u8>| {
        measure(runs, || {
            let p = Package::parse(&sealed).expect("parse");
            p.decrypt_into_parallel(&key, plain, threads).expect("decrypt");
        })
    };
    let pkg1 = pkg(1, &mut plain);
    assert_eq!(plain, module);
    let pkg_n = pkg(cores, &mut plain);
    assert_eq!(plain, module);
    let verify = measure(runs, || Package::parse(&sealed).expect("parse").verify_signature().expect("verify"));
    // Decryption alone (the STREAM the package decrypt runs, without the
    // signature's SHA-256 of every chunk), through the format crate's API.
    let stream_only = |threads: usize, plain: &mut Vec<u8>| {
        let p = Package::parse(&sealed).expect("parse");
        let m = p.manifest().clone();
        let header_len = p.header().as_bytes().len();
        let ct = &sealed[header_len..header_len + m.layout().ciphertext_len() as usize];
        let opener = ChunkOpener::new(&key, m.nonce_prefix, m.layout(), p.header().digest());
        measure(runs, || {
            stream::open_all(&opener, ct, plain, threads, |_, _| ()).expect("stream");
        })
    };
    let str1 = stream_only(1, &mut plain);
    let str_n = stream_only(cores, &mut plain);
    assert_eq!(plain, module);

    // Compiled-code cache entries: the same STREAM without the signature.
    let id = EntryId([5; 32]);
    let entry = seal_entry(&id, &key, "bench", 0, &module, &mut rng()).expect("seal entry");
    let ent = |threads: usize, plain: &mut Vec<u8>| {
        measure(runs, || {
            CacheEntry::parse(&entry).expect("parse").decrypt_into(&id, &key, plain, threads).expect("decrypt entry");
        })
    };
    let ent1 = ent(1, &mut plain);
    let ent_n = ent(cores, &mut plain);
    assert_eq!(plain, module);

    row("raw AES-256-GCM-SIV decrypt (peer), 1 core", len, raw1);
    row(&format!("raw AES-256-GCM-SIV decrypt (peer), {cores} cores"), len, raw_n);
    row("package: verify signature + decrypt, 1 core", len, pkg1);
    row(&format!("package: verify signature + decrypt, {cores} cores"), len, pkg_n);
    row("  of which the signature (SHA-256 of every chunk), 1 core", len, verify);
    row("package: STREAM decrypt only (no signature), 1 core", len, str1);
    row(&format!("package: STREAM decrypt only, {cores} cores"), len, str_n);
    row("cache entry: decrypt (STREAM, no signature), 1 core", len, ent1);
    row(&format!("cache entry: decrypt, {cores} cores"), len, ent_n);
    println!();
    let per_core = |s: Stat, n: usize| mb_s(len, s.median) / n as f64 / mb_s(len, raw1.median);
    println!("| ratio | package (verify + decrypt) | package STREAM only | cache entry | raw cipher |");
    println!("|---|---|---|---|---|");
    println!(
        "| throughput per core / raw, 1 core | {:.2}x | {:.2}x | {:.2}x | 1.00x |",
        per_core(pkg1, 1),
        per_core(str1, 1),
        per_core(ent1, 1)
    );
    println!(
        "| throughput per core / raw, {cores} cores | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
        per_core(pkg_n, cores),
        per_core(str_n, cores),
        per_core(ent_n, cores),
        per_core(raw_n, cores)
    );
    println!(
        "| {cores} cores vs 1 core | {:.2}x | {:.2}x | {:.2}x | {:.2}x |\n",
        pkg1.ratio(&pkg_n),
        str1.ratio(&str_n),
        ent1.ratio(&ent_n),
        raw1.ratio(&raw_n)
    );
}

fn row(name: &str, len: usize, s: Stat) {
    println!("| {name} | {:.0} | {} |", mb_s(len, s.median), s.ms());
}

fn wasmtime() -> PathBuf {
    sealrun_tests::wasmtime_cli().expect("the wasmtime CLI 48.x is needed: scripts/bench installs it")
}

/// Runs `cmd` to completion with its output discarded; returns its peak RSS
/// in KiB (from wait4's rusage).
#[allow(unsafe_code)]
fn run_quiet(cmd: &mut Command) -> u64 {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (`child` is never
    // waited on by std); status and usage point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed: status {status}");
    std::mem::forget(child);
    usage.ru_maxrss as u64
}

/// An app under test: the package, its plain module and how to run it.
struct App {
    name: String,
    package: PathBuf,
    /// The same module sealed with vendor-precompiled code for this machine.
    aot_package: PathBuf,
    module: PathBuf,
    args: Vec<String>,
    dirs: Vec<(PathBuf, String)>,
}

impl App {
    fn sample(world: &World, dev: &Device, name: &str, args: &[&str]) -> App {
        let package = world.seal(name, "1.0.0");
        world.license(name, dev, &format!("{name}.license"), &[]);
        let module = samples_dir().join(format!("{name}.wasm"));
        let aot_package = seal_aot(world, &module, &format!("com.example.{name}"));
        App {
            name: name.into(),
            package,
            aot_package,
            module,
            args: args.iter().map(|a| a.to_string()).collect(),
            dirs: vec![],
        }
    }

    /// Sample `name` built as a `wasi:cli/command` component, sealed as a
    /// product of its own (`com.example.<name>-component`).
    fn component(world: &World, dev: &Device, name: &str, args: &[&str]) -> App {
        let product = format!("com.example.{name}-component");
        let module = sealrun_tests::component(name);
        let package = world.seal_module(&module, &product, "1.0.0", &format!("{name}-component.sealed"), &[]);
        world.license_product(&product, dev, &format!("{name}-component.license"), &[]);
        let aot_package = seal_aot(world, &module, &product);
        App {
            name: format!("{name} (component)"),
            package,
            aot_package,
            module,
            args: args.iter().map(|a| a.to_string()).collect(),
            dirs: vec![],
        }
    }

    /// The large module made a `wasi:cli/command` component with
    /// wasmtime's preview-1 adapter (what `wasm-tools component new
    /// --adapt` does), so a large component is measured too.
    fn large_component(world: &World, dev: &Device, module: &Path, args: &[String]) -> App {
        let bytes = std::fs::read(module).expect("the large module");
        let component = wit_component::ComponentEncoder::default()
            .module(&bytes)
            .and_then(|e| {
                e.adapter(
                    "wasi_snapshot_preview1",
                    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
                )
            })
            .and_then(|e| e.validate(true).encode())
            .expect("the large module as a component");
        let path = world.path().join("large.component.wasm");
        std::fs::write(&path, component).expect("write the component");
        let product = "com.example.large-component";
        let package = world.seal_module(&path, product, "1.0.0", "large-component.sealed", &[]);
        world.license_product(product, dev, "large-component.license", &[]);
        let name = module.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aot_package = seal_aot(world, &path, product);
        App {
            name: format!("{name} (component)"),
            package,
            aot_package,
            module: path,
            args: args.to_vec(),
            dirs: vec![],
        }
    }

    fn large(world: &World, dev: &Device, module: &Path, args: &[String]) -> App {
        let package = world.seal_module(module, "com.example.large", "1.0.0", "large.sealed", &[]);
        world.license_product("com.example.large", dev, "large.license", &[]);
        let name = module.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aot_package = seal_aot(world, module, "com.example.large");
        App { name, package, aot_package, module: module.to_owned(), args: args.to_vec(), dirs: vec![] }
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.module).expect("module").len()
    }

    fn sealrun(&self, dev: &Device, extra: &[&str]) -> Command {
        self.sealrun_package(dev, &self.package, extra)
    }

    fn sealrun_package(&self, dev: &Device, package: &Path, extra: &[&str]) -> Command {
        let mut c = dev.sealrun(&dev.root.join("work"));
        c.arg("run").args(extra);
        // The AOT package is the same product release: the plain package's
        // license (next to it) covers it too.
        c.arg("--license").arg(self.package.with_extension("license"));
        for (host, guest) in &self.dirs {
            c.args(["--dir", &format!("{}::{guest}", host.display())]);
        }
        c.arg(package).arg("--").args(&self.args);
        c
    }

    /// `wasmtime run` with its cache in `cache_home` (its default cache
    /// lives under XDG_CACHE_HOME), or `-C cache=n`, or on a `.cwasm`.
    fn wasmtime(&self, dev: &Device, how: Wasmtime<'_>) -> Command {
        let mut c = Command::new(wasmtime());
        c.env_clear().envs(dev.env()).current_dir(dev.root.join("work")).arg("run");
        let module = match how {
            Wasmtime::NoCache => {
                c.args(["-C", "cache=n"]);
                self.module.clone()
            }
            Wasmtime::Cache => self.module.clone(),
            Wasmtime::Precompiled(cwasm) => {
                c.arg("--allow-precompiled");
                cwasm.to_owned()
            }
        };
        for (host, guest) in &self.dirs {
            c.args(["--dir", &format!("{}::{guest}", host.display())]);
        }
        c.arg(module).args(&self.args);
        c
    }

    fn precompile(&self, dev: &Device) -> PathBuf {
        let file: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let out = dev.root.join(format!("work/{file}.cwasm"));
        let status = Command::new(wasmtime()).arg("compile").arg(&self.module).arg("-o").arg(&out).status();
        assert!(status.expect("wasmtime compile").success());
        out
    }
}

/// Seals `module` again as release 1.0.0 of `product`, with native code
/// precompiled for this machine (the vendor AOT path).
fn seal_aot(world: &World, module: &Path, product: &str) -> PathBuf {
    let target = sealrun_engine::host_target().expect("a known target");
    world.seal_module(module, product, "1.0.0", &format!("{product}.aot.sealed"), &["--precompile", target])
}

#[derive(Clone, Copy)]
enum Wasmtime<'a> {
    NoCache,
    Cache,
    Precompiled(&'a Path),
}

/// Times two commands `runs` times each, alternating, so drift in the
/// machine's speed (other load, thermal, a noisy VM neighbour) hits both.
fn time_pair(runs: usize, mut a: impl FnMut() -> Command, mut b: impl FnMut() -> Command) -> (Stat, Stat) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (cmd, times) in [(&mut a as &mut dyn FnMut() -> Command, &mut ta), (&mut b, &mut tb)] {
            let mut c = cmd();
            let s = Instant::now();
            run_quiet(&mut c);
            times.push(s.elapsed());
        }
    }
    (Stat::of(ta), Stat::of(tb))
}

fn time(runs: usize, mut cmd: impl FnMut() -> Command) -> Stat {
    measure(runs, || {
        run_quiet(&mut cmd());
    })
}

/// Runs `cmd` and returns its exit code, stdout and stderr.
fn outcome(cmd: &mut Command) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    (out.status.code(), out.stdout, out.stderr)
}

/// A sealed run and `wasmtime run` of the same guest must agree before
/// their times mean anything: same exit code, stdout and stderr.
fn check_same_output(app: &App, dev: &Device) {
    let ours = outcome(&mut app.sealrun(dev, &[]));
    let theirs = outcome(&mut app.wasmtime(dev, Wasmtime::Cache));
    assert!(
        ours == theirs,
        "{}: sealrun and wasmtime run differ:\nsealrun: {:?} {}{}\nwasmtime: {:?} {}{}",
        app.name,
        ours.0,
        String::from_utf8_lossy(&ours.1),
        String::from_utf8_lossy(&ours.2),
        theirs.0,
        String::from_utf8_lossy(&theirs.1),
        String::from_utf8_lossy(&theirs.2)
    );
}

fn launches(o: &Opts, world: &World, dev: &Device) {
    let mut apps = vec![App::sample(world, dev, "hello", &["a"]), App::component(world, dev, "hello", &["a"])];
    if let Some(large) = &o.large {
        apps.push(App::large(world, dev, large, &o.large_args));
        apps.push(App::large_component(world, dev, large, &o.large_args));
    }
    for app in &apps {
        check_same_output(app, dev);
    }
    println!("## Launch times, median (min..max): cold {} runs, warm and AOT {} runs\n", o.cold_runs, o.runs);
    println!("Cold: sealrun `--no-cache` against `wasmtime run -C cache=n` (both compile).");
    println!("Warm: sealrun with its encrypted cache against `wasmtime run` with its own");
    println!("default cache. AOT: sealrun `--no-cache` on a package with the vendor's precompiled");
    println!("code (vendor trusted) against `wasmtime run --allow-precompiled app.cwasm`.\n");
    println!("| module | size | case | sealrun | wasmtime | ratio | target |");
    println!("|---|---|---|---|---|---|---|");
    for app in &apps {
        let size = format!("{:.1} MB", app.size() as f64 / 1e6);
        let small = app.size() < 20_000_000;
        let cold = o.cold_runs.max(1);
        let (s_cold, w_cold) =
            time_pair(cold, || app.sealrun(dev, &["--no-cache"]), || app.wasmtime(dev, Wasmtime::NoCache));
        let ratio = s_cold.ratio(&w_cold);
        println!(
            "| {} | {size} | cold | {} | {} | {ratio:.2}x | <= 1.05x {} |",
            app.name,
            s_cold.ms(),
            w_cold.ms(),
            verdict(ratio <= 1.05)
        );
        // Prime both caches, then measure warm launches.
        run_quiet(&mut app.sealrun(dev, &[]));
        run_quiet(&mut app.wasmtime(dev, Wasmtime::Cache));
        let (s_warm, w_warm) = time_pair(o.runs, || app.sealrun(dev, &[]), || app.wasmtime(dev, Wasmtime::Cache));
        let component = app.name.ends_with("(component)");
        // A small guest's warm launch is mostly process start: its target
        // is an absolute margin; a large one shows how the cache scales
        // (0.5x for modules; 0.6x for components, issue 17).
        let (target, ok) = if small {
            let extra = s_warm.median.as_secs_f64() * 1e3 - w_warm.median.as_secs_f64() * 1e3;
            (format!("<= wasmtime + 5 ms ({extra:+.1} ms)"), extra <= 5.0)
        } else if component {
            ("<= 0.6x".to_owned(), s_warm.ratio(&w_warm) <= 0.6)
        } else {
            ("<= 0.5x".to_owned(), s_warm.ratio(&w_warm) <= 0.5)
        };
        println!(
            "| {} | {size} | warm | {} | {} | {:.2}x | {target} {} |",
            app.name,
            s_warm.ms(),
            w_warm.ms(),
            s_warm.ratio(&w_warm),
            verdict(ok)
        );
        let cwasm = app.precompile(dev);
        let w_aot = time(o.runs, || app.wasmtime(dev, Wasmtime::Precompiled(&cwasm)));
        // Vendor AOT: the precompiled code verified, decrypted and loaded on
        // every launch (--no-cache), with the vendor trusted.
        let trust = |verb: &str| {
            let mut c = dev.sealrun(&dev.root);
            run_quiet(c.args(["trust", verb]).arg(&app.aot_package));
        };
        trust("allow-native");
        let s_aot = time(o.runs, || app.sealrun_package(dev, &app.aot_package, &["--no-cache"]));
        trust("remove");
        println!(
            "| {} | {size} | AOT | {} | {} | {:.2}x | none (wasmtime's is the floor) |",
            app.name,
            s_aot.ms(),
            w_aot.ms(),
            s_aot.ratio(&w_aot)
        );
    }
    println!();
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn compute(o: &Opts, world: &World, dev: &Device) {
    // About two seconds of guest work, so start-up is a small part.
    let args = ["3000000", "6000"];
    let apps = [App::sample(world, dev, "compute", &args), App::component(world, dev, "compute", &args)];
    let runs = o.runs.clamp(1, 11);
    println!("## Compute-bound guest (`compute 3000000 6000`), warm, median of {runs} runs\n");
    println!("| guest | sealrun | wasmtime run | ratio | target |");
    println!("|---|---|---|---|---|");
    for app in &apps {
        check_same_output(app, dev);
        let (s, w) = time_pair(runs, || app.sealrun(dev, &[]), || app.wasmtime(dev, Wasmtime::Cache));
        let r = s.ratio(&w);
        println!("| {} | {} | {} | {r:.3}x | <= 1.03x {} |", app.name, s.ms(), w.ms(), verdict(r <= 1.03));
    }
    println!();
}

/// Connections wrk keeps open: more than the two cores, fewer than
/// `sealrun serve`'s default limit of concurrent requests (64), so neither
/// server queues requests of its own.
const WRK_CONNECTIONS: usize = 16;

/// A server process on a loopback port, killed when dropped.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Server {
    fn start(mut cmd: Command, port: u16) -> Server {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().expect("wait").is_none(), "{cmd:?} ended before it listened");
            assert!(Instant::now() < deadline, "{cmd:?} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// (status, content type, body) of one request.
fn http_call(agent: &ureq::Agent, url: &str, post: Option<&[u8]>) -> (u16, String, Vec<u8>) {
    let response = match post {
        Some(body) => agent.post(url).send(body),
        None => agent.get(url).call(),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{url}: {e}"));
    let ctype = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (response.status().as_u16(), ctype, response.body_mut().read_to_vec().expect("body"))
}

/// One wrk run: requests per second and the 99th percentile latency.
struct Load {
    per_sec: f64,
    p99: Duration,
}

/// `wrk` from this machine (a second process) against `url` for `secs`,
/// keep-alive, one thread and [`WRK_CONNECTIONS`] connections.
fn wrk(url: &str, secs: u64) -> Load {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{WRK_CONNECTIONS}"), &format!("-d{secs}s"), "--latency", url])
        .output()
        .expect("wrk is needed: scripts/bench installs it (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("Non-2xx") && !text.contains("Socket errors"), "errors under load:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
    };
    let per_sec = field("Requests/sec:").parse().expect("a rate");
    let p99 = field("99%");
    let (number, unit) = p99.split_at(p99.find(|c: char| c.is_ascii_alphabetic()).expect("a unit"));
    let number: f64 = number.parse().expect("a latency");
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        other => panic!("unknown latency unit {other:?}"),
    };
    Load { per_sec, p99: Duration::from_secs_f64(number * scale) }
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `sealrun serve` against `wasmtime serve` on the same HTTP component:
/// the answers must be equal, then wrk drives each in turn.
fn serve(o: &Opts, world: &World, dev: &Device) {
    let product = "com.example.web";
    let wasm = sealrun_tests::component("http_service");
    let package = world.seal_module(&wasm, product, "1.0.0", "web.sealed", &[]);
    let license = world.license_product(product, dev, "web.license", &[]);
    let ours = {
        let port = free_port();
        let mut c = dev.sealrun(&dev.root.join("work"));
        c.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--license"]).arg(&license).arg(&package);
        Server::start(c, port)
    };
    let theirs = {
        let port = free_port();
        let mut c = Command::new(wasmtime());
        c.env_clear().envs(dev.env()).current_dir(dev.root.join("work"));
        // `-S cli` links wasi:cli, which the component imports (std uses
        // its environment and stdio); sealrun serve links it always.
        c.args(["serve", "-S", "cli", "--addr", &format!("127.0.0.1:{port}")]).arg(&wasm);
        Server::start(c, port)
    };
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let cases: [(&str, Option<&[u8]>); 5] = [
        ("/hello", None),
        ("/hello?name=bench", None),
        ("/echo", Some(b"some body \xc3\xbcber alles".as_slice())),
        ("/alloc?mib=4", None),
        ("/nowhere", None),
    ];
    for (path, body) in cases {
        let (a, b) = (http_call(&agent, &ours.url(path), body), http_call(&agent, &theirs.url(path), body));
        assert_eq!(a, b, "{path}: sealrun serve and wasmtime serve answer differently");
    }
    let secs = o.load_secs.clamp(2, 60);
    let rounds = 3;
    // Warm both up (first requests, thread pools, connection setup).
    wrk(&ours.url("/hello"), 2);
    wrk(&theirs.url("/hello"), 2);
    let (mut ours_rounds, mut theirs_rounds) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours_rounds.push(wrk(&ours.url("/hello"), secs));
        theirs_rounds.push(wrk(&theirs.url("/hello"), secs));
    }
    let rate = |v: &[Load]| median_f64(v.iter().map(|l| l.per_sec).collect());
    let p99 = |v: &[Load]| median_f64(v.iter().map(|l| l.p99.as_secs_f64() * 1e3).collect());
    let (r_ours, r_theirs) = (rate(&ours_rounds), rate(&theirs_rounds));
    let (p_ours, p_theirs) = (p99(&ours_rounds), p99(&theirs_rounds));
    println!(
        "## `sealrun serve` against `wasmtime serve` (`GET /hello`, wrk -t1 -c{WRK_CONNECTIONS}, \
         keep-alive), median of {rounds} alternating {secs} s rounds\n"
    );
    println!("The {} test requests got equal answers (status, content type, body) from both.\n", cases.len());
    println!("| figure | sealrun serve | wasmtime serve | ratio | target |");
    println!("|---|---|---|---|---|");
    let rr = r_ours / r_theirs;
    println!("| requests/s | {r_ours:.0} | {r_theirs:.0} | {rr:.3}x | >= 0.95x {} |", verdict(rr >= 0.95));
    let pr = p_ours / p_theirs;
    println!("| p99 latency | {p_ours:.2} ms | {p_theirs:.2} ms | {pr:.3}x | <= 1.1x {} |", verdict(pr <= 1.1));
    let all = |v: &[Load]| v.iter().map(|l| format!("{:.0}", l.per_sec)).collect::<Vec<_>>().join(", ");
    let tails =
        |v: &[Load]| v.iter().map(|l| format!("{:.2}", l.p99.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", ");
    println!("\nEach round, requests/s: sealrun {}; wasmtime {}", all(&ours_rounds), all(&theirs_rounds));
    println!("Each round, p99 ms: sealrun {}; wasmtime {}\n", tails(&ours_rounds), tails(&theirs_rounds));
}

/// A dongle run against a device run of the same package: the dongle adds
/// a fixed cost at launch (module load, login, two token decryptions) and,
/// while the guest runs, only a presence check every few seconds on
/// another thread.
fn dongle(o: &Opts, world: &World, dev: &Device) {
    use sealrun_tests::softhsm::{PIN, SoftHsm, dongle_license, provision};
    let Some(hsm) = SoftHsm::new(&world.path().join("bench-hsm")) else {
        println!("## Dongle runs: skipped, SoftHSM2 is not installed\n");
        return;
    };
    hsm.init_token("bench");
    let dongle_id = provision(world, &hsm, dev);
    let runs = o.runs.clamp(1, 11);
    println!("## Dongle (SoftHSM2) against device license, same package, warm, median of {runs} runs\n");
    println!("| guest | device license | dongle license | ratio | target |");
    println!("|---|---|---|---|---|");
    for (name, args, target) in [("hello", &["a"][..], None), ("compute", &["3000000", "6000"][..], Some(1.03))] {
        let app = App::sample(world, dev, name, args);
        let dongle_lic = dongle_license(world, name, &dongle_id, 1, &format!("{name}-dongle.license"));
        let with_dongle = || {
            let mut c = dev.sealrun(&dev.root.join("work"));
            c.envs(hsm.env()).env("SEALRUN_PIN", PIN).arg("run").arg("--license").arg(&dongle_lic);
            c.arg(&app.package).arg("--").args(&app.args);
            c
        };
        run_quiet(&mut app.sealrun(dev, &[]));
        run_quiet(&mut with_dongle());
        let (d, g) = time_pair(runs, || app.sealrun(dev, &[]), with_dongle);
        let r = g.ratio(&d);
        let verdict_text = match target {
            Some(t) => format!("<= {t:.2}x {}", verdict(r <= t)),
            None => format!("+{:.1} ms at launch", (g.median.as_secs_f64() - d.median.as_secs_f64()) * 1e3),
        };
        println!("| {name} | {} | {} | {r:.3}x | {verdict_text} |", d.ms(), g.ms());
    }
    println!();
}

fn rss(o: &Opts, world: &World, dev: &Device) {
    let mut apps = vec![App::sample(world, dev, "hello", &["a"])];
    if let Some(large) = &o.large {
        apps.push(App::large(world, dev, large, &o.large_args));
    }
    println!("## Peak RSS (wait4 ru_maxrss), median of 3 runs\n");
    println!("Target: sealrun at most wasmtime's peak + 1.2 x the module size.\n");
    println!("| module | size | case | sealrun | wasmtime run | limit | |");
    println!("|---|---|---|---|---|---|---|");
    for app in &apps {
        let peak = |mut cmd: Box<dyn FnMut() -> Command>| {
            let mut v: Vec<u64> = (0..3).map(|_| run_quiet(&mut cmd())).collect();
            v.sort();
            v[1]
        };
        for (case, cached) in [("cold", false), ("warm", true)] {
            let (s, w) = if cached {
                run_quiet(&mut app.sealrun(dev, &[]));
                run_quiet(&mut app.wasmtime(dev, Wasmtime::Cache));
                (peak(Box::new(|| app.sealrun(dev, &[]))), peak(Box::new(|| app.wasmtime(dev, Wasmtime::Cache))))
            } else {
                (
                    peak(Box::new(|| app.sealrun(dev, &["--no-cache"]))),
                    peak(Box::new(|| app.wasmtime(dev, Wasmtime::NoCache))),
                )
            };
            let limit = w + (app.size() as f64 * 1.2 / 1024.0) as u64;
            println!(
                "| {} | {:.1} MB | {case} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |",
                app.name,
                app.size() as f64 / 1e6,
                s as f64 / 1024.0,
                w as f64 / 1024.0,
                limit as f64 / 1024.0,
                verdict(s <= limit)
            );
        }
    }
    println!();
}

/// Concurrent closed-loop clients: enough to keep both cores busy while
/// requests wait for their batch's commit (8 clients give about 1,800
/// licenses/s on SQLite, 32 about 2,900 on this machine).
const LOAD_CLIENTS: usize = 32;

fn server_load(o: &Opts) {
    use sealrun_tests::load::{self, Kind};
    use sealrun_tests::server::{Server, fresh_postgres};
    let window = Duration::from_secs(o.load_secs);
    let warmup = Duration::from_secs(2);
    println!(
        "\n## Licensing server under load: {LOAD_CLIENTS} clients in this process, loopback, {} s after a 2 s warm-up\n",
        o.load_secs
    );
    println!("Goal: at least 2,000 licenses per second on SQLite with p99 under 50 ms.\n");
    println!("| database | requests | per second | p50 | p99 | failed |");
    println!("|---|---|---|---|---|---|");
    let mut backends: Vec<(&str, Option<String>)> = vec![("SQLite", None)];
    match fresh_postgres() {
        Some(url) => backends.push(("PostgreSQL", Some(url))),
        None => println!("| PostgreSQL | skipped: SEALRUN_TEST_POSTGRES is not set (scripts/bench sets it) | | | | |"),
    }
    for (label, db) in backends {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut srv = Server::init(dir.path(), db.as_deref());
        let token = srv.vendor("bench");
        srv.start();
        let setup = load::setup(&srv.url, &token, "com.bench.app");
        // Every activation needs a device of its own; made before the clock starts.
        let devices = std::sync::Arc::new(load::devices(60_000));
        for (kind, what) in [(Kind::Licenses, "licenses issued"), (Kind::Activations, "activations")] {
            let r = load::run(&setup, kind, LOAD_CLIENTS, warmup, window, devices.clone());
            println!(
                "| {label} | {what} | {:.0} | {:.1} ms | {:.1} ms | {} |",
                r.per_second(),
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.failed
            );
        }
        srv.stop();
    }
}

/// Simulated clients of the floating-license load run.
const FLOAT_CLIENTS: usize = 1000;
/// Seats of the license: fewer than clients, so checkouts are also refused.
const FLOAT_SEATS: u32 = 800;
/// Worker threads driving the clients, each on its own connection.
const FLOAT_WORKERS: usize = 32;

fn floating_load(o: &Opts, world: &World) {
    use sealrun_tests::floatd::Floatd;
    let package = world.seal("hello", "1.0.0");
    let key_id = hex::encode(sealrun::runtime::read_header(&package).expect("header").manifest.key_id.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut floatd = Floatd::new(dir.path(), 300);
    floatd.license_for(world, "com.example.hello", FLOAT_SEATS, &[]);
    floatd.start();
    let window = Duration::from_secs(o.load_secs);
    let r = sealrun_tests::floatload::run(
        &floatd.url(),
        "com.example.hello",
        &key_id,
        FLOAT_CLIENTS,
        FLOAT_WORKERS,
        window,
    );
    println!(
        "\n## Floating licenses under load: {FLOAT_CLIENTS} simulated clients (each its own device) on {FLOAT_WORKERS} connections, {FLOAT_SEATS} seats, loopback\n"
    );
    println!("Goal: at least 5,000 heartbeats per second on this machine, and never more than N seats in use.\n");
    println!("| phase | requests | per second | p50 | p99 | refused (all seats taken) | failed |");
    println!("|---|---|---|---|---|---|---|");
    for (name, p) in [
        ("checkout (each client once)", &r.checkout),
        ("heartbeats", &r.heartbeat),
        ("churn (release, check out again)", &r.churn),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {} |",
            p.ok + p.full,
            p.per_second(),
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3,
            p.full,
            p.failed
        );
    }
    println!(
        "\nSeats in use, sampled {} times from the daemon's metrics during the run: at most {} of {FLOAT_SEATS}{}.",
        r.samples,
        r.max_in_use,
        if r.max_in_use <= u64::from(FLOAT_SEATS) { "" } else { " -- MORE THAN N" }
    );
    assert!(r.max_in_use <= u64::from(FLOAT_SEATS), "the daemon lent more seats than the license has");
    floatd.stop();
}
