//! Sealing streams: a large module is sealed with about one copy of it in
//! memory (the mapped input), not two. Alone in its own test binary because
//! it reads the peak RSS of this process's children.
use std::process::Command;

use sealrun_tests::{World, bin, stderr};

/// Size of the generated module's data segment.
const DATA_LEN: usize = 256 << 20;

/// Writes a valid WASI command whose bulk is one passive data segment,
/// streaming, so this process never holds it: a forked child inherits its
/// parent's peak RSS on Linux, which would spoil the measurement.
fn write_big_module(path: &std::path::Path) {
    use std::io::Write;
    fn leb(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(body.len() as u64, out);
        out.extend_from_slice(body);
    }
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut m); // type: () -> ()
    section(3, &[1, 0], &mut m); // one function of type 0
    section(5, &[1, 0, 1], &mut m); // memory, min 1 page
    section(7, &[1, 6, b'_', b's', b't', b'a', b'r', b't', 0, 0], &mut m); // export _start
    section(12, &[1], &mut m); // data count: 1
    section(10, &[1, 2, 0, 0x0b], &mut m); // body: no locals, end
    let mut head = vec![1u8, 1]; // one passive segment
    leb(DATA_LEN as u64, &mut head);
    m.push(11);
    leb((head.len() + DATA_LEN) as u64, &mut m);
    m.extend_from_slice(&head);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&m).unwrap();
    let block = vec![0xA5u8; 1 << 20];
    for _ in 0..DATA_LEN >> 20 {
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
}

#[allow(unsafe_code)]
fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0);
    usage.ru_maxrss
}

#[test]
fn sealing_a_large_module_needs_about_one_copy_of_memory() {
    let world = World::new();
    let input = world.path().join("big.wasm");
    write_big_module(&input);
    let before = children_peak_rss_kib();
    let out = Command::new(bin("sealsdk"))
        .env("SEALSDK_KEYSTORE", world.path().join("keystore"))
        .args(["seal", input.to_str().unwrap(), "--product", "com.example.big", "--release", "1.0.0"])
        .current_dir(world.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let peak_mib = children_peak_rss_kib().max(before) / 1024;
    let module_mib = (DATA_LEN >> 20) as i64;
    eprintln!("sealing a {module_mib} MiB module peaked at {peak_mib} MiB RSS");
    assert!(peak_mib < module_mib * 3 / 2, "peak RSS {peak_mib} MiB for a {module_mib} MiB module");
    let sealed = std::fs::metadata(world.path().join("big.sealed")).unwrap().len();
    assert!(sealed > DATA_LEN as u64);
}
