//! `hello`: the basic sealed-app smoke test and sandbox probe.
//!
//! Behaviour:
//! - prints `hello from a sealed app` to stdout;
//! - prints each argument (skipping argv[0]) as `arg[i]=VALUE`, `i` starting at 1;
//! - prints every environment variable, sorted by name, as `env NAME=VALUE`;
//! - prints `stderr line` to stderr;
//! - exits with the code in env var `HELLO_EXIT` (parsed as `u8`, default 0).
//!
//! Probe modes (first argument):
//! - `--read PATH`: reads PATH, prints `read ok: N bytes` or
//!   `read failed: <error kind>` and exits 3 on failure;
//! - `--write PATH`: writes `written by hello\n` to PATH, prints `write ok` or
//!   `write failed: <error>` and exits 4 on failure;
//! - `--alloc MIB`: allocates and touches MIB mebibytes, prints `alloc ok`
//!   (the launcher's memory limit turns this into an out-of-memory report);
//! - `--panic`: panics (a trap, since samples build with `panic = "abort"`);
//! - `--spin`: loops forever (for Ctrl-C / SIGTERM tests), after printing
//!   `spinning`.
//!
//! Host tests check: stdout/stderr capture, argument passing, that only the
//! explicitly granted environment is visible (no host env leaks), the exit
//! code plumbing, and the filesystem sandbox (no access outside granted dirs,
//! read-only dirs reject writes).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();

    let _ = writeln!(out, "hello from a sealed app");
    for (i, arg) in args.iter().enumerate() {
        let _ = writeln!(out, "arg[{}]={}", i + 1, arg);
    }

    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    for (name, value) in &vars {
        let _ = writeln!(out, "env {name}={value}");
    }
    let _ = out.flush();

    eprintln!("stderr line");

    match args.first().map(String::as_str) {
        Some("--read") => {
            let Some(path) = args.get(1) else {
                eprintln!("usage: hello --read PATH");
                return ExitCode::from(2);
            };
            match std::fs::read(path) {
                Ok(bytes) => {
                    let _ = writeln!(out, "read ok: {} bytes", bytes.len());
                }
                Err(e) => {
                    let _ = writeln!(out, "read failed: {:?}", e.kind());
                    let _ = out.flush();
                    return ExitCode::from(3);
                }
            }
        }
        Some("--write") => {
            let Some(path) = args.get(1) else {
                eprintln!("usage: hello --write PATH");
                return ExitCode::from(2);
            };
            match std::fs::write(path, b"written by hello\n") {
                Ok(()) => {
                    let _ = writeln!(out, "write ok");
                }
                Err(e) => {
                    let _ = writeln!(out, "write failed: {e}");
                    let _ = out.flush();
                    return ExitCode::from(4);
                }
            }
        }
        Some("--alloc") => {
            let mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            let mut v = vec![0u8; mib << 20];
            for i in (0..v.len()).step_by(4096) {
                v[i] = 1;
            }
            std::hint::black_box(&v);
            let _ = writeln!(out, "alloc ok");
        }
        Some("--panic") => panic!("hello was asked to panic"),
        Some("--spin") => {
            let _ = writeln!(out, "spinning");
            let _ = out.flush();
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        _ => {}
    }
    let _ = out.flush();

    let code = std::env::var("HELLO_EXIT")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(0);
    ExitCode::from(code)
}
