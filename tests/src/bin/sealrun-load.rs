//! `sealrun-load`: drives a running licensing server from this process.
//!
//! ```text
//! sealrun-load URL VENDOR_TOKEN [licenses|activations] [SECONDS] [CLIENTS]
//! ```
//! The vendor must be new: this certifies it with a fresh vendor key and
//! creates a product `com.load.app<random>`.
use std::sync::Arc;
use std::time::Duration;

use sealrun_tests::load::{self, Kind};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: sealrun-load URL VENDOR_TOKEN [licenses|activations] [SECONDS] [CLIENTS]");
        std::process::exit(2);
    }
    let kind = match args.get(3).map(String::as_str) {
        Some("activations") => Kind::Activations,
        _ => Kind::Licenses,
    };
    let secs: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(16);
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).expect("random");
    let setup = load::setup(&args[1], &args[2], &format!("com.load.app{}", hex::encode(suffix)));
    let devices = Arc::new(load::devices(if kind == Kind::Activations { 60_000 } else { 1000 }));
    let r = load::run(&setup, kind, clients, Duration::from_secs(2), Duration::from_secs(secs), devices);
    println!(
        "{kind:?}: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} failed",
        r.per_second(),
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.failed
    );
}
