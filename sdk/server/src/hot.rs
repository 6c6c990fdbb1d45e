//! A short-lived in-memory cache of what every license request reads: the
//! vendor behind a token, a product's row, its releases with their keys, and
//! the vendor's issuing key. Each entry lives [`HOT_TTL`]; changes made by
//! this instance drop the affected entry at once, changes made by another
//! instance (PostgreSQL deployments) are seen within [`HOT_TTL`] — a revoked
//! token keeps working on other instances for at most that long.
//! Cached content and issuing keys are zeroized when dropped.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::rows::{Issuer, ProductRow, ReleaseRow};

/// How long a cached entry is used: short enough that revocations and
/// renewals elsewhere apply almost at once, long enough to save the reads
/// of a busy vendor's every request.
pub(crate) const HOT_TTL: Duration = Duration::from_secs(2);
/// Entries per map before expired ones are swept (bounds memory under a
/// flood of distinct, e.g. invalid, tokens).
const SWEEP_AT: usize = 10_000;

pub(crate) struct Ttl<K, V> {
    map: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Ttl<K, V> {
    fn new() -> Self {
        Ttl { map: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn get(&self, k: &K) -> Option<V> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        m.get(k).filter(|(_, t)| t.elapsed() < HOT_TTL).map(|(v, _)| v.clone())
    }

    pub(crate) fn put(&self, k: K, v: V) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= SWEEP_AT {
            m.retain(|_, (_, t)| t.elapsed() < HOT_TTL);
        }
        m.insert(k, (v, Instant::now()));
    }

    pub(crate) fn forget(&self, k: &K) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(k);
    }
}

/// The caches.
pub(crate) struct Hot {
    /// Token hash → vendor row.
    pub(crate) tokens: Ttl<Vec<u8>, i64>,
    /// Product id → row.
    pub(crate) products: Ttl<String, ProductRow>,
    /// Product row → every release, keys decrypted.
    pub(crate) releases: Ttl<i64, Arc<Vec<ReleaseRow>>>,
    /// Vendor row → issuing key and certificate.
    pub(crate) issuers: Ttl<i64, Arc<Issuer>>,
}

impl Hot {
    pub(crate) fn new() -> Self {
        Hot { tokens: Ttl::new(), products: Ttl::new(), releases: Ttl::new(), issuers: Ttl::new() }
    }
}
