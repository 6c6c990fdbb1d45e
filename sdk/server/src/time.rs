//! The server's clock, in the i64 seconds its database stores.

/// Now, in Unix seconds.
pub fn now() -> i64 {
    i64::try_from(sealrun_host::time::now()).unwrap_or(i64::MAX)
}
