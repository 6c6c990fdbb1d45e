//! `sealrun-bench`: the foundation benchmark. Prints, side by side from one
//! run on one machine: package decryption throughput against raw
//! AES-256-GCM-SIV on the same buffer, seal throughput, and each sample's
//! launch time under `sealrun` against the wasmtime CLI. Run it through
//! `scripts/bench`, which builds everything in release mode first.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use sealrun_format::package::{Package, PackageSpec, seal_to_vec};
use sealrun_format::{ContentKey, Release, VendorSigningKey};
use sealrun_tests::{Device, World, samples_dir};

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Median and spread (min..max) of `runs` timings of `f`.
fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    (t[t.len() / 2], t[0], t[t.len() - 1])
}

fn mb_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = get("--runs", 11);
    let size_mib = get("--size-mib", 64);
    crypto(runs, size_mib);
    launches(runs);
}

fn crypto(runs: usize, size_mib: usize) {
    let len = size_mib << 20;
    let mut module = vec![0u8; len];
    getrandom::fill(&mut module).expect("random");
    let vendor = VendorSigningKey::generate(&mut rng());
    let key = ContentKey::generate(&mut rng());
    let spec = |len| PackageSpec {
        product: "com.example.bench".into(),
        release: Release::new(1, 0, 0),
        display_name: "bench".into(),
        capabilities: vec![],
        chunk_size_log2: sealrun_format::limits::DEFAULT_CHUNK_SIZE_LOG2,
        plaintext_len: len as u64,
    };
    println!("## Throughput on a {size_mib} MiB module, median of {runs} runs (min..max)\n");
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
    };
    let seal_file = measure(runs, || {
        sealrun_sdk::seal::seal_bytes(&module, &key, &vendor, &out, &opts).expect("seal to file");
    });
    row("seal to a file (sealsdk library, fsync)", len, seal_file);

    let mut plain = vec![0u8; len];
    let dec = measure(runs, || {
        let pkg = Package::parse(&sealed).expect("parse");
        pkg.decrypt_into(&key, &mut plain).expect("decrypt");
    });
    assert_eq!(plain, module);
    row("package decrypt (verify signature + STREAM), 1 core", len, dec);

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let par = measure(runs, || {
        let pkg = Package::parse(&sealed).expect("parse");
        pkg.decrypt_into_parallel(&key, &mut plain, cores).expect("decrypt");
    });
    assert_eq!(plain, module);
    row(&format!("package decrypt, {cores} cores"), len, par);

    let verify = measure(runs, || Package::parse(&sealed).expect("parse").verify_signature().expect("verify"));
    row("  of which: signature over chunk digests", len, verify);

    // The peer: raw AES-256-GCM-SIV over the same bytes, one call, one core.
    let cipher = Aes256GcmSiv::new(&[7u8; 32].into());
    let nonce = Nonce::from([1u8; 12]);
    let mut buf = module.clone();
    let tag = cipher.encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into()).expect("encrypt");
    let mut work = buf.clone();
    let raw = measure(runs, || {
        work.copy_from_slice(&buf);
        cipher.decrypt_inout_detached(&nonce, b"", work.as_mut_slice().into(), &tag).expect("raw decrypt");
    });
    row("raw AES-256-GCM-SIV decrypt (peer, incl. copy)", len, raw);
    println!(
        "\npackage decrypt / raw AES-256-GCM-SIV (1 core): {:.2}x the peer's throughput",
        mb_s(len, dec.0) / mb_s(len, raw.0)
    );
    println!("package decrypt on {cores} cores / on 1 core: {:.2}x\n", dec.0.as_secs_f64() / par.0.as_secs_f64());
}

fn row(name: &str, len: usize, (med, min, max): (Duration, Duration, Duration)) {
    println!(
        "| {name} | {:.0} | {:.1} ms ({:.1}..{:.1}) |",
        mb_s(len, med),
        med.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

fn wasmtime() -> PathBuf {
    sealrun_tests::wasmtime_cli().expect("the wasmtime CLI 48.x is needed: scripts/bench installs it")
}

fn run_quiet(cmd: &mut Command) {
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().expect("spawn");
    assert!(status.success(), "{cmd:?} failed: {status}");
}

fn launches(runs: usize) {
    let world = World::new();
    let dev: Device = world.device("bench");
    let work = dev.root.join("work");
    for d in ["in", "out"] {
        std::fs::create_dir_all(work.join(d)).expect("mkdir");
    }
    std::fs::write(work.join("in/a.txt"), "one two two three three three\n").expect("write");
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("hello", &["a"], &[]),
        ("wordfreq", &["/in", "/out/f.tsv"], &[("in", "/in"), ("out", "/out")]),
        ("compute", &["100000", "10"], &[]),
        ("canary", &[], &[]),
    ];
    println!("## Launch and run time per sample, median of {runs} runs (min..max)\n");
    println!("sealrun compiles every launch (no compiled-code cache yet), so its peer is");
    println!("`wasmtime run -C cache=n`; warm `wasmtime run` (its default cache) is shown too.\n");
    println!("| sample | size | sealrun | wasmtime -C cache=n | ratio | wasmtime (warm cache) |");
    println!("|---|---|---|---|---|---|");
    let wt = wasmtime();
    for (name, args, dirs) in cases {
        let package = world.seal(name, "1.0.0");
        world.license(name, &dev, &format!("{name}.license"), &[]);
        let module = samples_dir().join(format!("{name}.wasm"));
        let size = std::fs::metadata(&module).expect("module").len();
        let sealed = measure(runs, || {
            let mut c = dev.sealrun(&work);
            c.arg("run");
            for (host, guest) in *dirs {
                c.args(["--dir", &format!("{}::{guest}", work.join(host).display())]);
            }
            run_quiet(c.arg(&package).arg("--").args(*args));
        });
        let plain = |cache: bool| {
            measure(runs, || {
                let mut c = Command::new(&wt);
                c.current_dir(&work).arg("run");
                if !cache {
                    c.args(["-C", "cache=n"]);
                }
                for (host, guest) in *dirs {
                    c.args(["--dir", &format!("{}::{guest}", work.join(host).display())]);
                }
                run_quiet(c.arg(&module).args(*args));
            })
        };
        let cold = plain(false);
        let warm = plain(true);
        println!(
            "| {name} | {} KiB | {} | {} | {:.2}x | {} |",
            size / 1024,
            ms(sealed),
            ms(cold),
            sealed.0.as_secs_f64() / cold.0.as_secs_f64(),
            ms(warm)
        );
    }
}

fn ms((med, min, max): (Duration, Duration, Duration)) -> String {
    format!("{:.1} ms ({:.1}..{:.1})", med.as_secs_f64() * 1e3, min.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3)
}
