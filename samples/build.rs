//! Writes the data the `bulk` sample carries: 8 MiB of a linear
//! congruential sequence (no compiler can shrink it), made here because
//! const evaluation of that much takes over a minute.
fn main() {
    const LEN: usize = 8 << 20;
    let mut data = Vec::with_capacity(LEN);
    let mut state: u32 = 0x2545_f491;
    for _ in 0..LEN {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        data.push((state >> 16) as u8);
    }
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("bulk.bin");
    std::fs::write(out, data).expect("cannot write the bulk data");
    println!("cargo:rerun-if-changed=build.rs");
}
