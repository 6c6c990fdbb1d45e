//! Per-key token buckets for activation attempts (per client address and
//! per code), so codes cannot be guessed at speed and one client cannot
//! drain a code's activations in a burst. In memory, per instance: behind a
//! load balancer each instance enforces its own share.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets not touched for this long are forgotten (they are full again by then).
const IDLE_FORGET_SECS: f64 = 600.0;
/// Forget idle buckets once the table holds this many, so an attacker
/// cycling addresses cannot grow it without bound.
const SWEEP_AT: usize = 100_000;

/// A set of token buckets, one per key.
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<Vec<u8>, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` attempts per key on average, bursts of up to `burst`.
    /// A rate of 0 turns the limiter off.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter { per_minute: f64::from(per_minute), burst: f64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes one token for `key`; false when the key is over its rate.
    pub fn allow(&self, key: &[u8]) -> bool {
        if self.per_minute == 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= SWEEP_AT {
            b.retain(|_, (_, t)| now.duration_since(*t).as_secs_f64() < IDLE_FORGET_SECS);
        }
        let (tokens, last) = b.entry(key.to_vec()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_minute / 60.0).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_per_key() {
        let r = RateLimiter::new(1, 3);
        assert!((0..3).all(|_| r.allow(b"a")));
        assert!(!r.allow(b"a"));
        assert!(r.allow(b"b"));
        assert!(RateLimiter::new(0, 1).allow(b"a") && RateLimiter::new(0, 1).allow(b"a"));
    }
}
