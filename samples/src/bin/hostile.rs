//! `hostile`: a guest that misbehaves on purpose, to show the launcher stays
//! in control and reports clearly.
//!
//! Usage: `hostile MODE [ARG]`:
//! - `recurse`: recurses without end (the wasm call stack runs out: a trap);
//! - `flood`: writes 1 MiB blocks to stdout without end, and exits 3 when a
//!   write fails (stdout closed), printing how much went out to stderr;
//! - `escape DIR`: tries to leave the granted DIR with `..`, an absolute
//!   path and a symlink inside DIR that points outside; prints one line per
//!   try (`refused …` or `ESCAPED …`);
//! - `spin N`: reads the clock and asks for random bytes N times, then
//!   prints `spun N`;
//! - `plant DIR`: tries to leave symlinks in DIR that point out of it
//!   (`../…`, deeper `../../…`, an absolute path, and through a link to
//!   `.`) and one that points inside, printing `planted NAME` or
//!   `refused NAME: …` for each;
//! - `open FILE N`: opens FILE N times and keeps every handle, printing
//!   `opened K` every 100 and `open failed after K: …` if one fails.
//!
//! Host tests check each mode's outcome, sealed and plain.

use std::io::Write;
use std::process::ExitCode;

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // black_box keeps the compiler from turning this into a loop.
    let next = std::hint::black_box(depth + 1);
    std::hint::black_box(recurse(next)) ^ depth
}

fn try_read(what: &str, path: &str) {
    match std::fs::read(path) {
        Ok(b) => println!("ESCAPED {what}: read {} bytes of {path}", b.len()),
        Err(e) => println!("refused {what}: {e}"),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("recurse") => {
            let n = recurse(0);
            println!("returned {n}");
            ExitCode::SUCCESS
        }
        Some("flood") => {
            let block = vec![b'x'; 1 << 20];
            let mut out = std::io::stdout().lock();
            let mut sent: u64 = 0;
            loop {
                if out.write_all(&block).is_err() {
                    eprintln!("flood: stdout closed after {sent} bytes");
                    return ExitCode::from(3);
                }
                sent += block.len() as u64;
            }
        }
        Some("escape") => {
            let dir = args.get(1).map(String::as_str).unwrap_or("/data");
            try_read("dot-dot", &format!("{dir}/../../../../etc/passwd"));
            try_read("absolute", "/etc/passwd");
            try_read("symlink", &format!("{dir}/outside"));
            try_read("symlinked dir", &format!("{dir}/outside-dir/secret.txt"));
            match std::fs::write(format!("{dir}/../planted.txt"), b"x") {
                Ok(()) => println!("ESCAPED write: planted a file next to {dir}"),
                Err(e) => println!("refused write: {e}"),
            }
            ExitCode::SUCCESS
        }
        Some("spin") => {
            let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
            let mut acc = 0u64;
            let mut buf = [0u8; 8];
            for _ in 0..n {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos());
                acc = acc.wrapping_add(t.unwrap_or(0) as u64);
                // std's HashMap seeds come from WASI random_get; read it directly.
                if getrandom(&mut buf).is_err() {
                    eprintln!("spin: random_get failed");
                    return ExitCode::from(1);
                }
                acc = acc.wrapping_add(u64::from_le_bytes(buf));
            }
            println!("spun {n}");
            std::hint::black_box(acc);
            ExitCode::SUCCESS
        }
        Some("plant") => {
            let dir = args.get(1).map(String::as_str).unwrap_or("/data");
            let _ = std::fs::create_dir_all(format!("{dir}/out/sub"));
            let _ = std::fs::write(format!("{dir}/out/sub/inside.txt"), b"inside");
            let Ok(root) = std::fs::File::open(dir) else {
                eprintln!("plant: cannot open {dir}");
                return ExitCode::from(1);
            };
            for (name, target) in [
                ("out/report.txt", "../../.bashrc"),
                ("up.txt", "../.bashrc"),
                ("abs.txt", "/etc/passwd"),
                ("loop", "."),
                ("loop/loop/deep.txt", "../../.profile"),
                ("out/ok.txt", "sub/inside.txt"),
            ] {
                match symlink_at(&root, target, name) {
                    Ok(()) => println!("planted {name}"),
                    Err(errno) => println!("refused {name}: errno {errno}"),
                }
            }
            ExitCode::SUCCESS
        }
        Some("open") => {
            let path = args.get(1).map(String::as_str).unwrap_or("/data/f");
            let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20_000);
            let mut held = Vec::new();
            for i in 0..n {
                match std::fs::File::open(path) {
                    Ok(f) => held.push(f),
                    Err(e) => {
                        println!("open failed after {i}: {e}");
                        return ExitCode::from(4);
                    }
                }
                if (i + 1) % 100 == 0 {
                    println!("opened {}", i + 1);
                }
            }
            println!("opened all {}", held.len());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: hostile recurse | flood | escape DIR | spin N | plant DIR | open FILE N");
            ExitCode::from(2)
        }
    }
}

/// wasi-libc's `symlinkat` (std's wrapper is unstable): a link `link` in
/// the directory `dir` pointing at `target`; the error is wasi-libc's
/// errno, WASI's numbering (63 is EPERM). Through libc, so the same code
/// calls `path_symlink` in a wasm32-wasip1 build and
/// `wasi:filesystem/types.descriptor.symlink-at` in a wasm32-wasip2 one.
fn symlink_at(dir: &std::fs::File, target: &str, link: &str) -> Result<(), i32> {
    use std::ffi::{CString, c_char, c_int};
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn symlinkat(target: *const c_char, fd: c_int, link: *const c_char) -> c_int;
    }
    let (Ok(target), Ok(link)) = (CString::new(target), CString::new(link)) else { return Err(28) };
    // SAFETY: both strings are NUL-terminated and live across the call.
    if unsafe { symlinkat(target.as_ptr(), dir.as_raw_fd(), link.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(-1))
    }
}

/// Random bytes from wasi-libc's `getentropy` (WASI's random source on
/// either target), at most 256 bytes per call as it allows.
fn getrandom(buf: &mut [u8]) -> Result<(), ()> {
    unsafe extern "C" {
        fn getentropy(buf: *mut u8, len: usize) -> std::ffi::c_int;
    }
    for piece in buf.chunks_mut(256) {
        // SAFETY: the piece is valid for its length for the call.
        if unsafe { getentropy(piece.as_mut_ptr(), piece.len()) } != 0 {
            return Err(());
        }
    }
    Ok(())
}
