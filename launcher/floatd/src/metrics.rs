//! Prometheus metrics (text exposition format): lease events as counters,
//! seats as gauges per product (rendered from the seat table).
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The daemon's counters.
#[derive(Default)]
pub struct Metrics {
    /// Seats granted.
    pub checkouts: AtomicU64,
    /// Leases renewed.
    pub renewals: AtomicU64,
    /// Leases released by their holders.
    pub releases: AtomicU64,
    /// Leases that lapsed.
    pub expiries: AtomicU64,
    /// Leases revoked by an admin.
    pub revocations: AtomicU64,
    /// Checkouts refused because every seat was taken.
    pub refused_full: AtomicU64,
    /// Other refused requests (bad input, unknown lease or product).
    pub refused_other: AtomicU64,
}

/// Seats of one product, for the gauges.
pub struct Gauges<'a> {
    /// The product id.
    pub product: &'a str,
    /// Seats of its license.
    pub seats: u32,
    /// Seats in use.
    pub in_use: u32,
    /// Requests in line.
    pub queued: u32,
}

impl Metrics {
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, gauges: &[Gauges<'_>]) -> String {
        let mut o = String::new();
        for (name, help, c) in [
            ("sealrun_floatd_checkouts_total", "Seats granted.", &self.checkouts),
            ("sealrun_floatd_renewals_total", "Leases renewed by heartbeat.", &self.renewals),
            ("sealrun_floatd_releases_total", "Leases released by their holders.", &self.releases),
            ("sealrun_floatd_expiries_total", "Leases that lapsed without a heartbeat.", &self.expiries),
            ("sealrun_floatd_revocations_total", "Leases revoked by an admin.", &self.revocations),
            ("sealrun_floatd_refused_full_total", "Checkouts refused: every seat in use.", &self.refused_full),
            ("sealrun_floatd_refused_other_total", "Other refused requests.", &self.refused_other),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Ordering::Relaxed));
        }
        for (name, help, get) in [
            (
                "sealrun_floatd_seats",
                "Seats of the floating license.",
                (|g: &Gauges<'_>| g.seats) as fn(&Gauges<'_>) -> u32,
            ),
            ("sealrun_floatd_seats_in_use", "Seats in use.", |g| g.in_use),
            ("sealrun_floatd_queue_length", "Checkouts waiting in line.", |g| g.queued),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            for g in gauges {
                let _ = writeln!(o, "{name}{{product=\"{}\"}} {}", g.product, get(g));
            }
        }
        o
    }
}
