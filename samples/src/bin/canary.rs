//! `canary`: carries unique markers in both its data and its code so host
//! tests can prove that a sealed (encrypted) artifact does not leak the
//! plaintext module.
//!
//! - Data marker: the string `CANARY` below, which must appear verbatim in the
//!   plain `.wasm` data section and must NOT appear in the sealed file.
//! - Code marker: the 64-bit constant `0x5EA1_C0DE_CA4A_7C0D`, emitted as an
//!   `i64.const` immediate (signed LEB128 encoded, so not plain bytes).
//!
//! Output: `canary: <marker>`, `code marker: 0x...`, then `canary ok`; exit 0.
//! With `--spin` it then prints `spinning` and loops until killed, so a test
//! can look at the running launcher (the core-dump test).
//!
//! Host tests check: the plain module contains the marker, the sealed file
//! does not, and running the sealed file prints the marker and `canary ok`.

use std::hint::black_box;

static CANARY: &str = "SEALRUN-CANARY-7f3c9e2a-d41b-4c8e-9a65-0b1e2f3a4c5d";

#[inline(never)]
fn code_marker(arg_derived: u64) -> u64 {
    black_box(0x5EA1_C0DE_CA4A_7C0D_u64) ^ black_box(arg_derived)
}

fn main() {
    let canary: &str = black_box(CANARY);
    println!("canary: {canary}");

    // Number of arguments (excluding argv[0]); 0 in the normal case, so the
    // printed value is the constant itself.
    let arg_derived = std::env::args().skip(1).count() as u64;
    println!("code marker: {:#x}", code_marker(arg_derived));

    println!("canary ok");
    if std::env::args().nth(1).as_deref() == Some("--spin") {
        println!("spinning");
        let mut x = 0u64;
        loop {
            x = black_box(code_marker(x));
        }
    }
}
