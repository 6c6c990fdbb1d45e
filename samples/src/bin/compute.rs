//! `compute`: a CPU-bound benchmark with deterministic output.
//!
//! Usage: `compute [N [ROUNDS]]` (defaults: N = 3_000_000, ROUNDS = 3000).
//!
//! Counts the primes below N with a simple sieve of Eratosthenes, then runs
//! ROUNDS rounds of a 64x64 `f64` matrix multiply seeded from a fixed
//! xorshift64 generator, folding every round's result into a `u64` checksum
//! (via `f64::to_bits`). Prints `primes<N=COUNT checksum=HEX`.
//!
//! Host tests check: exact output for a given N (e.g. `primes<1000=168`
//! and a stable checksum), and it is used to compare sealed vs. plain
//! execution time / fuel overhead.

use std::hint::black_box;
use std::process::ExitCode;

const DIM: usize = 64;
/// Matrix rounds by default: about a second of work on a 2020s core, long
/// enough that start-up costs do not hide the guest's speed.
const DEFAULT_ROUNDS: usize = 3000;

fn count_primes(n: usize) -> usize {
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    composite[0] = true;
    composite[1] = true;
    let mut i = 2;
    while i * i < n {
        if !composite[i] {
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
        i += 1;
    }
    composite.iter().filter(|&&c| !c).count()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish value in [-1, 1).
    fn next_f64(&mut self) -> f64 {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

fn mix(h: u64, v: u64) -> u64 {
    // FNV-1a style fold followed by a rotate; fully deterministic.
    (h ^ v).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29)
}

fn matrix_checksum(rounds: usize) -> u64 {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut a = vec![0.0f64; DIM * DIM];
    let mut b = vec![0.0f64; DIM * DIM];
    for x in a.iter_mut().chain(b.iter_mut()) {
        *x = rng.next_f64();
    }
    let mut c = vec![0.0f64; DIM * DIM];
    let mut h = 0xCBF2_9CE4_8422_2325u64;

    for round in 0..rounds {
        c.fill(0.0);
        for i in 0..DIM {
            for k in 0..DIM {
                let aik = a[i * DIM + k];
                for j in 0..DIM {
                    c[i * DIM + j] += aik * b[k * DIM + j];
                }
            }
        }
        // Normalise to keep values bounded, then feed back as next `a`.
        let max = c.iter().fold(0.0f64, |m, &v| m.max(v.abs()));
        let scale = if max > 0.0 { 1.0 / max } else { 1.0 };
        for (dst, &src) in a.iter_mut().zip(c.iter()) {
            *dst = src * scale;
        }
        h = mix(h, round as u64);
        h = mix(h, max.to_bits());
        h = mix(h, c[(round * 7) % (DIM * DIM)].to_bits());
        h = mix(h, c.iter().map(|v| v.to_bits()).fold(0u64, |acc, b| acc.wrapping_add(b)));
        black_box(&c);
    }
    h
}

fn main() -> ExitCode {
    let arg = |i: usize, default: usize| match std::env::args().nth(i) {
        None => Ok(default),
        Some(s) => s.replace('_', "").parse::<usize>().map_err(|_| s),
    };
    let (n, rounds) = match (arg(1, 3_000_000), arg(2, DEFAULT_ROUNDS)) {
        (Ok(n), Ok(r)) => (n, r),
        (Err(s), _) | (_, Err(s)) => {
            eprintln!("compute: invalid number {s:?}\nusage: compute [N [ROUNDS]]");
            return ExitCode::from(2);
        }
    };
    let primes = count_primes(black_box(n));
    let checksum = matrix_checksum(rounds);
    println!("primes<{n}={primes} checksum={checksum:016x}");
    ExitCode::SUCCESS
}
