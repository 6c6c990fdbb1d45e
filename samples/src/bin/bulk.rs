//! `bulk`: a guest whose code carries 8 MiB of data, so that its compiled
//! code is large (the launcher's memfd path for large cache entries).
//!
//! Behaviour: prints `bulk: N bytes, sum S` for its data and exits 0.
//!
//! Host tests check: a large cache entry of a module and of a component
//! loads through a sealed memfd, and a damaged one is refused and rebuilt.

/// The data (written by build.rs).
static DATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bulk.bin"));

fn main() {
    let data = std::hint::black_box(DATA);
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    println!("bulk: {} bytes, sum {sum}", data.len());
}
