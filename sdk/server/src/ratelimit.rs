//! Per-key token buckets for activation attempts (per client address and
//! per code), so codes cannot be guessed at speed and one client cannot
//! drain a code's activations in a burst. In memory, per instance: behind a
//! load balancer each instance enforces its own share.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets not touched for this long are forgotten (they are full again by then).
const IDLE_FORGET_SECS: f64 = 600.0;
/// How often idle buckets are forgotten: once a minute, whatever the
/// table's size, so no call pays for a scan of a large table but the first
/// after each minute. (Before, the scan began at 100,000 buckets and then
/// ran on every call while the table stayed that full.)
const SWEEP_EVERY_SECS: f64 = 60.0;

/// A set of token buckets, one per key.
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    by_key: HashMap<Vec<u8>, (f64, Instant)>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// `per_minute` attempts per key on average, bursts of up to `burst`.
    /// A rate of 0 turns the limiter off.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        RateLimiter { per_minute: f64::from(per_minute), burst: f64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes one token for `key`; false when the key is over its rate.
    pub fn allow(&self, key: &[u8]) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &[u8], now: Instant) -> bool {
        if self.per_minute == 0.0 {
            return true;
        }
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let due = b.last_sweep.is_none_or(|t| now.saturating_duration_since(t).as_secs_f64() >= SWEEP_EVERY_SECS);
        if due {
            b.by_key.retain(|_, (_, t)| now.saturating_duration_since(*t).as_secs_f64() < IDLE_FORGET_SECS);
            b.last_sweep = Some(now);
        }
        let (tokens, last) = b.by_key.entry(key.to_vec()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*last).as_secs_f64() * self.per_minute / 60.0).min(self.burst);
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

    /// Idle buckets go on a schedule (issue 25, finding 7): a flood of keys
    /// is forgotten ten minutes later, and calls in between scan nothing.
    #[test]
    fn idle_buckets_are_forgotten_on_a_schedule() {
        let r = RateLimiter::new(10, 3);
        let t0 = Instant::now();
        for i in 0..5_000u32 {
            assert!(r.allow_at(&i.to_be_bytes(), t0));
        }
        let len = |r: &RateLimiter| r.buckets.lock().unwrap().by_key.len();
        assert_eq!(len(&r), 5_000);
        let later = t0 + std::time::Duration::from_secs(601);
        assert!(r.allow_at(b"fresh", later));
        assert_eq!(len(&r), 1, "the idle flood was forgotten");
        // Within the minute after a sweep, no sweep: the new keys stay.
        for i in 0..100u32 {
            r.allow_at(&i.to_be_bytes(), later + std::time::Duration::from_secs(1));
        }
        assert_eq!(len(&r), 101);
    }
}
