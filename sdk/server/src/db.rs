//! The storage layer: one pool over SQLite (the embedded default, one file
//! in WAL mode) or PostgreSQL (for several server instances), the same SQL
//! for both, and versioned migrations.
//!
//! Queries use `$1` placeholders, which both backends accept, and only
//! integer, text and blob columns. The two dialects differ in DDL only
//! (`{id}` and `{blob}` in [`MIGRATIONS`]).
//!
//! Concurrency: every write that must be atomic runs in one transaction
//! ([`Db::write`]). Counters are changed with conditional `UPDATE …
//! RETURNING` and the ledger head row is updated first, which on PostgreSQL
//! locks it until commit, so appends to a vendor's chain are serialised
//! across instances. SQLite allows one writer at a time anyway; writes are
//! queued on an in-process lock instead of failing with "database is locked".
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::ServerError;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, one server instance.
    Sqlite,
    /// PostgreSQL: any number of instances.
    Postgres,
}

/// Schema migrations, applied in order; `{id}` and `{blob}` are replaced by
/// each dialect's auto-increment key and byte-string types.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_dongles.sql")),
    (3, include_str!("migrations/0003_billing_history.sql")),
    (4, include_str!("migrations/0004_license_terms.sql")),
];

/// Connections in the pool. SQLite: readers run in parallel beside the one
/// writer. PostgreSQL: enough for two cores' worth of requests without
/// exhausting a default `max_connections` (100) with a few instances.
const SQLITE_POOL: u32 = 8;
const POSTGRES_POOL: u32 = 16;
/// How long a request waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SQLite waits on a lock held by another process (a CLI command
/// run beside the server) before giving up.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// The database.
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the one writer.
    write_lock: Option<Mutex<()>>,
}

/// A write transaction; dropped without [`WriteTx::commit`] it rolls back.
pub struct WriteTx<'a> {
    tx: Transaction<'static, sqlx::Any>,
    _guard: Option<MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    /// The connection to run statements on.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), ServerError> {
        Ok(self.tx.commit().await?)
    }
}

/// Turns a config value into a connection URL: a PostgreSQL URL as is, a
/// `sqlite:` URL as is, anything else is a path to an SQLite file.
pub fn url_for(database: &str) -> String {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") || database.starts_with("sqlite:") {
        database.to_owned()
    } else {
        format!("sqlite://{database}")
    }
}

impl Db {
    /// Connects; `create` makes a missing SQLite file.
    pub async fn connect(database: &str, create: bool) -> Result<Db, ServerError> {
        sqlx::any::install_default_drivers();
        let mut url = url_for(database);
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        if backend == Backend::Sqlite && !url.contains("mode=") {
            url.push_str(if url.contains('?') { "&" } else { "?" });
            url.push_str(if create { "mode=rwc" } else { "mode=rw" });
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { SQLITE_POOL } else { POSTGRES_POOL })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer. synchronous=NORMAL
                        // keeps every commit across a process crash (kill -9);
                        // only a power loss can drop the last commits.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute(SQLITE_BUSY_TIMEOUT).await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if backend == Backend::Sqlite && d.message().contains("unable to open") => {
                    ServerError::NotInitialised
                }
                e => ServerError::Database(e),
            })?;
        let write_lock = (backend == Backend::Sqlite).then(|| Mutex::new(()));
        Ok(Db { pool, backend, write_lock })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction.
    pub async fn write(&self) -> Result<WriteTx<'_>, ServerError> {
        let guard = match &self.write_lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// The schema version, 0 for an empty database.
    pub async fn schema_version(&self) -> Result<i64, ServerError> {
        let exists = match self.backend {
            Backend::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            Backend::Postgres => {
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
            }
        };
        let n: i64 = sqlx::query(exists).fetch_one(&self.pool).await?.try_get(0)?;
        if n == 0 {
            return Ok(0);
        }
        let v: Option<i64> =
            sqlx::query("SELECT max(version) FROM schema_migrations").fetch_one(&self.pool).await?.try_get(0)?;
        Ok(v.unwrap_or(0))
    }

    /// Applies the migrations the database lacks, each in its own
    /// transaction. Returns how many were applied.
    pub async fn migrate(&self) -> Result<usize, ServerError> {
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        let mut applied = 0;
        for &(version, sql) in MIGRATIONS {
            let mut tx = self.write().await?;
            if self.backend == Backend::Postgres {
                // Two instances starting at once: the second waits here, then
                // sees the migration done.
                sqlx::query("SELECT pg_advisory_xact_lock(7245318)").execute(tx.conn()).await?;
            }
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(tx.conn())
            .await?;
            let current: Option<i64> =
                sqlx::query("SELECT max(version) FROM schema_migrations").fetch_one(tx.conn()).await?.try_get(0)?;
            let current = current.unwrap_or(0);
            if current > latest {
                return Err(ServerError::SchemaTooNew { found: current, supported: latest });
            }
            if current >= version {
                continue;
            }
            let (id, blob) = match self.backend {
                Backend::Sqlite => ("INTEGER PRIMARY KEY", "BLOB"),
                Backend::Postgres => ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"),
            };
            let sql = sql.replace("{id}", id).replace("{blob}", blob);
            // Comments go first: they may hold semicolons.
            let sql: String =
                sql.lines().map(|l| l.split_once("--").map_or(l, |(code, _)| code)).collect::<Vec<_>>().join("\n");
            for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                // Our own migration text, not input.
                tx.conn().execute(sqlx::AssertSqlSafe(stmt.to_owned())).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(crate::time::now())
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            applied += 1;
        }
        Ok(applied)
    }

    /// Checks the schema is current and this build can use it.
    pub async fn check_schema(&self) -> Result<(), ServerError> {
        let latest = MIGRATIONS.last().map_or(0, |m| m.0);
        match self.schema_version().await? {
            0 => Err(ServerError::NotInitialised),
            v if v > latest => Err(ServerError::SchemaTooNew { found: v, supported: latest }),
            _ => Ok(()),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Pings the database (for `/healthz`).
    pub async fn ping(&self) -> Result<(), ServerError> {
        let mut c = self.pool.acquire().await?;
        Ok(c.ping().await?)
    }
}

/// Whether `e` is a unique-constraint violation (a concurrent insert won).
pub fn is_unique_violation(e: &ServerError) -> bool {
    matches!(e, ServerError::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
}
