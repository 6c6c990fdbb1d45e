//! The lease table in SQLite (`leases.sqlite` in the state directory).
//!
//! A lease is stored before its grant is answered and deleted after it is
//! released or lapsed, so after a crash the table holds every lease that
//! may still be in use (and perhaps a few that are not, which only delays
//! their seats by one TTL). Renewals are written in batches: after a
//! restart every stored lease gets a full TTL anyway (see `daemon.rs`).
//!
//! Each lease's proof key is stored (in the column `secret`, which held the
//! lease secret itself before protocol 2): the daemon needs it to check
//! proofs and to prove its renewals after a restart. It lets one renew or
//! give back that lease, nothing more; the state directory is the daemon's
//! alone (0700) and the database file is 0600. With it, the highest request
//! number accepted for the lease, so a request recorded before a restart
//! cannot be replayed after it (numbers accepted in the last batch before a
//! crash, at most [`crate::daemon::TICK`], are the exception).
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sealrun_format::device::DeviceCode;
use sealrun_format::lease::{LeaseId, SeenSeqs};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::FloatdError;
use crate::seats::{Holder, Lease, SeatKey};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    secret BLOB NOT NULL,
    ttl_ms INTEGER NOT NULL,
    device TEXT NOT NULL,
    host TEXT NOT NULL,
    user_name TEXT NOT NULL,
    pid INTEGER NOT NULL,
    since INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0
)";

/// Tables from before protocol 2 lack the request number.
const ADD_SEQ: &str = "ALTER TABLE leases ADD COLUMN seq INTEGER NOT NULL DEFAULT 0";

/// The lease table.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

/// A lease read back after a restart.
pub struct Stored {
    /// Its product.
    pub product: String,
    /// The lease; its seat and expiry are set by the caller.
    pub lease: Lease,
}

impl Store {
    /// Opens (creating) the database at `path`.
    pub async fn open(path: &Path) -> Result<Store, FloatdError> {
        let db = |source| FloatdError::Database { path: path.to_owned(), source };
        // Made 0600 before SQLite opens it: SQLite gives its WAL and
        // shared-memory files the database's mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| FloatdError::Io { action: "cannot create", path: path.to_owned(), source })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A granted lease must survive a power cut: its holder runs.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(5));
        // One connection: SQLite writes one transaction at a time anyway.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(db)?;
        sqlx::query(SCHEMA).execute(&pool).await.map_err(db)?;
        let has_seq: Option<(String,)> =
            sqlx::query_as("SELECT name FROM pragma_table_info('leases') WHERE name = 'seq'")
                .fetch_optional(&pool)
                .await
                .map_err(db)?;
        if has_seq.is_none() {
            sqlx::query(ADD_SEQ).execute(&pool).await.map_err(db)?;
        }
        restrict_to_owner(path)?;
        Ok(Store { pool, path: path.to_owned() })
    }

    fn error(&self, source: sqlx::Error) -> FloatdError {
        FloatdError::Database { path: self.path.clone(), source }
    }

    /// Stores a new lease.
    pub async fn insert(&self, product: &str, lease: &Lease) -> Result<(), FloatdError> {
        sqlx::query(
            "INSERT INTO leases (id, product, secret, ttl_ms, device, host, user_name, pid, since, last_heartbeat, revoked)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(lease.id.to_string())
        .bind(product)
        .bind(lease.proof_key.to_vec())
        .bind(lease.ttl as i64)
        .bind(lease.holder.device.to_string())
        .bind(&lease.holder.host)
        .bind(&lease.holder.user)
        .bind(i64::from(lease.holder.pid))
        .bind(lease.since as i64)
        .bind(lease.last_heartbeat as i64)
        .bind(i64::from(lease.revoked))
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Deletes leases that ended.
    pub async fn delete(&self, ids: &[LeaseId]) -> Result<(), FloatdError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        for id in ids {
            sqlx::query("DELETE FROM leases WHERE id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    /// Marks a lease revoked.
    pub async fn revoke(&self, id: &LeaseId) -> Result<(), FloatdError> {
        sqlx::query("UPDATE leases SET revoked = 1 WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Records renewals (lease, Unix seconds, lease time, the request
    /// number), in one transaction.
    pub async fn renewed(&self, renewals: &[(LeaseId, u64, u64, u64)]) -> Result<(), FloatdError> {
        if renewals.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        for (id, at, ttl, seq) in renewals {
            sqlx::query("UPDATE leases SET last_heartbeat = ?, ttl_ms = ?, seq = MAX(seq, ?) WHERE id = ?")
                .bind(*at as i64)
                .bind(*ttl as i64)
                .bind(i64::try_from(*seq).unwrap_or(i64::MAX))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    /// Every stored lease. A row that does not read back (edited by hand)
    /// is an error: dropping it silently could free a seat in use.
    pub async fn all(&self) -> Result<Vec<Stored>, FloatdError> {
        let rows = sqlx::query(
            "SELECT id, product, secret, device, host, user_name, pid, since, last_heartbeat, revoked, ttl_ms, seq FROM leases",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let bad = || FloatdError::Database {
                path: self.path.clone(),
                source: sqlx::Error::Decode("a lease row does not read back; restore the file from a backup".into()),
            };
            let id: String = row.try_get(0).map_err(|e| self.error(e))?;
            let id = LeaseId::from_str(&id).map_err(|_| bad())?;
            let proof_key: Vec<u8> = row.try_get(2).map_err(|e| self.error(e))?;
            let proof_key: [u8; 32] = proof_key.try_into().map_err(|_| bad())?;
            let seq: i64 = row.try_get(11).map_err(|e| self.error(e))?;
            let ttl: i64 = row.try_get(10).map_err(|e| self.error(e))?;
            let device: String = row.try_get(3).map_err(|e| self.error(e))?;
            let device = DeviceCode::from_str(&device).map_err(|_| bad())?;
            let pid: i64 = row.try_get(6).map_err(|e| self.error(e))?;
            let since: i64 = row.try_get(7).map_err(|e| self.error(e))?;
            let last: i64 = row.try_get(8).map_err(|e| self.error(e))?;
            let revoked: i64 = row.try_get(9).map_err(|e| self.error(e))?;
            out.push(Stored {
                product: row.try_get(1).map_err(|e| self.error(e))?,
                lease: Lease {
                    id,
                    proof_key,
                    seen: SeenSeqs::restored(u64::try_from(seq).unwrap_or(0)),
                    ttl: u64::try_from(ttl).unwrap_or(0),
                    seat: SeatKey::Lease(id),
                    holder: Holder {
                        device,
                        host: row.try_get(4).map_err(|e| self.error(e))?,
                        user: row.try_get(5).map_err(|e| self.error(e))?,
                        pid: u32::try_from(pid).unwrap_or(0),
                    },
                    since: u64::try_from(since).unwrap_or(0),
                    last_heartbeat: u64::try_from(last).unwrap_or(0),
                    expires: 0,
                    revoked: revoked != 0,
                },
            });
        }
        Ok(out)
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The lease database holds every lease's proof key: only the daemon's
/// user may read it (and its WAL and shared-memory files, made by SQLite
/// with the database's mode). Made 0600 whatever the umask was.
fn restrict_to_owner(path: &Path) -> Result<(), FloatdError> {
    use std::os::unix::fs::PermissionsExt;
    for file in [path.to_owned(), wal_file(path, "-wal"), wal_file(path, "-shm")] {
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(FloatdError::Io { action: "cannot restrict", path: file, source }),
        }
    }
    Ok(())
}

fn wal_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
