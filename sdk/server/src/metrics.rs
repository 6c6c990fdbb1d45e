//! Prometheus metrics in the text exposition format: requests by route and
//! status, a latency histogram per route, and business counters.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    /// Licenses issued (by vendors or activations).
    pub licenses_issued: AtomicU64,
    /// Activations that issued a new license.
    pub activations: AtomicU64,
    /// Deactivations.
    pub deactivations: AtomicU64,
    /// Requests refused by the rate limiter.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    /// Records one request.
    pub fn observe(&self, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let s = routes.entry(route.to_owned()).or_default();
        *s.by_status.entry(status).or_default() += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
        s.count += 1;
        s.sum += secs;
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        o.push_str("# HELP sealrun_http_requests_total HTTP requests by route and status.\n");
        o.push_str("# TYPE sealrun_http_requests_total counter\n");
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (route, s) in routes.iter() {
            for (status, n) in &s.by_status {
                let _ = writeln!(o, "sealrun_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        o.push_str("# HELP sealrun_http_request_duration_seconds Time to answer, by route.\n");
        o.push_str("# TYPE sealrun_http_request_duration_seconds histogram\n");
        for (route, s) in routes.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "sealrun_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "sealrun_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(o, "sealrun_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", s.sum);
            let _ = writeln!(o, "sealrun_http_request_duration_seconds_count{{route=\"{route}\"}} {}", s.count);
        }
        for (name, help, c) in [
            (
                "sealrun_licenses_issued_total",
                "Licenses issued, by vendors or through activations.",
                &self.licenses_issued,
            ),
            ("sealrun_activations_total", "Activations that issued a new license.", &self.activations),
            ("sealrun_deactivations_total", "Activations given back.", &self.deactivations),
            ("sealrun_rate_limited_total", "Requests refused by the rate limiter.", &self.rate_limited),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Ordering::Relaxed));
        }
        o
    }
}
