//! Group commit for vendor license issuance.
//!
//! Requests sign their license in parallel, then queue the row here. One
//! writer task takes everything queued (up to [`MAX_BATCH`]) and stores it
//! in one transaction: one multi-row insert of the licenses, one head update
//! and one multi-row insert of ledger entries per vendor. Every caller gets
//! its answer only after that commit, so a license is answered if and only
//! if it and its ledger entry are stored. Under load this turns a dozen
//! database round trips per license into about six per batch (and one lock
//! of each vendor's ledger head per batch on PostgreSQL); with one request
//! queued it is the plain transaction.
use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use sealrun_format::ledger::{EntryFields, EntryKind, LedgerEntry};

use crate::db::Db;
use crate::error::ServerError;
use crate::rows::{blob, unix};

/// Most licenses stored by one transaction: bounds the statement size (11
/// parameters a row, far below SQLite's and PostgreSQL's limits) and the
/// time the first request in a batch waits for the last.
pub(crate) const MAX_BATCH: usize = 128;
/// Queued requests before senders wait (backpressure).
const QUEUE: usize = 4096;

/// One license row to store.
pub(crate) struct Pending {
    pub(crate) vendor: i64,
    pub(crate) product_row: i64,
    pub(crate) product: String,
    pub(crate) license_id: [u8; 16],
    pub(crate) device_code: String,
    pub(crate) device_fp: [u8; 32],
    pub(crate) licensee: String,
    pub(crate) releases: String,
    pub(crate) request_key: Option<String>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) issued_at: i64,
    pub(crate) expires_at: Option<i64>,
    /// Floating seats the license grants (billed per seat); 0 otherwise.
    pub(crate) seats: u32,
}

/// What happened to a queued license.
pub(crate) enum Stored {
    /// Stored, with its ledger entry (at this position in the chain).
    New(u64),
    /// Another request with the same idempotency key was stored first.
    Duplicate,
}

type Job = (Pending, oneshot::Sender<Result<Stored, Arc<ServerError>>>);

/// The queue in front of the writer task.
pub(crate) struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the writer task over `db`.
    pub(crate) fn start(db: Arc<Db>) -> Batcher {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let (rows, replies): (Vec<Pending>, Vec<_>) = jobs.into_iter().unzip();
                match store(&db, &rows).await {
                    Ok(stored) => {
                        for (reply, s) in replies.into_iter().zip(stored) {
                            let _ = reply.send(Ok(s));
                        }
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Batcher { tx }
    }

    /// Queues `row` and waits for its commit.
    pub(crate) async fn store(&self, row: Pending) -> Result<Stored, ServerError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((row, reply)).await.map_err(|_| ServerError::WriterGone)?;
        match answer.await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(ServerError::BatchFailed(e)),
            Err(_) => Err(ServerError::WriterGone),
        }
    }
}

/// `($1, …, $n), ($n+1, …)` for `rows` rows of `cols` parameters.
fn placeholders(rows: usize, cols: usize) -> String {
    let mut s = String::new();
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("${}", r * cols + c + 1));
        }
        s.push(')');
    }
    s
}

async fn store(db: &Db, rows: &[Pending]) -> Result<Vec<Stored>, ServerError> {
    let mut tx = db.write().await?;
    // The licenses; a row whose idempotency key is taken is skipped and
    // not returned.
    let sql = format!(
        "INSERT INTO licenses (vendor_id, product_id, license_id, device_code, licensee, releases, request_key, \
         bytes, issued_at, expires_at) VALUES {} ON CONFLICT (vendor_id, request_key) DO NOTHING RETURNING license_id",
        placeholders(rows.len(), 10)
    );
    // Built from constants and counts only.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows {
        q = q
            .bind(r.vendor)
            .bind(r.product_row)
            .bind(r.license_id.to_vec())
            .bind(r.device_code.clone())
            .bind(r.licensee.clone())
            .bind(r.releases.clone())
            .bind(r.request_key.clone())
            .bind(r.bytes.clone())
            .bind(r.issued_at)
            .bind(r.expires_at);
    }
    let inserted: Vec<[u8; 16]> =
        q.fetch_all(tx.conn()).await?.iter().map(|r| blob(r, "license_id")).collect::<Result<_, _>>()?;
    let mut stored: Vec<Stored> = rows
        .iter()
        .map(|r| if inserted.contains(&r.license_id) { Stored::New(0) } else { Stored::Duplicate })
        .collect();
    // The ledger, per vendor, in queue order.
    let mut by_vendor: BTreeMap<i64, Vec<(usize, &Pending)>> = BTreeMap::new();
    for (i, (r, s)) in rows.iter().zip(&stored).enumerate() {
        if matches!(s, Stored::New(_)) {
            by_vendor.entry(r.vendor).or_default().push((i, r));
        }
    }
    for (vendor, list) in by_vendor {
        let n = list.len() as i64;
        let head = sqlx::query("UPDATE ledger_heads SET seq = seq + $1 WHERE vendor_id = $2 RETURNING seq, hash, at")
            .bind(n)
            .bind(vendor)
            .fetch_one(tx.conn())
            .await?;
        let last: i64 = head.try_get("seq")?;
        let mut prev: [u8; 32] = blob(&head, "hash")?;
        // Stamped now that the head is locked (see ledger.rs), not when the
        // license was signed: a batch committed just after midnight on the
        // 1st belongs to the new month, and the old month's invoice, read
        // under the same lock, cannot have missed it.
        let at = crate::chain::stamp(head.try_get("at")?);
        let sql = format!(
            "INSERT INTO ledger (vendor_id, seq, at, kind, product, license_id, device_fp, seats, prev_hash, hash) VALUES {}",
            placeholders(list.len(), 10)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, (row, r)) in list.iter().enumerate() {
            let seq = last - n + 1 + i as i64;
            stored[*row] = Stored::New(unix(seq));
            let e = LedgerEntry::after(
                prev,
                EntryFields {
                    seq: unix(seq),
                    at: unix(at),
                    kind: EntryKind::LicenseIssued,
                    product: r.product.clone(),
                    license_id: r.license_id,
                    device: r.device_fp,
                    seats: r.seats,
                    code: None,
                },
            );
            q = q
                .bind(vendor)
                .bind(seq)
                .bind(at)
                .bind(EntryKind::LicenseIssued.as_str())
                .bind(r.product.clone())
                .bind(r.license_id.to_vec())
                .bind(r.device_fp.to_vec())
                .bind(i64::from(r.seats))
                .bind(prev.to_vec())
                .bind(e.hash.to_vec());
            prev = e.hash;
        }
        q.execute(tx.conn()).await?;
        sqlx::query("UPDATE ledger_heads SET hash = $1, at = $2 WHERE vendor_id = $3")
            .bind(prev.to_vec())
            .bind(at)
            .bind(vendor)
            .execute(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders() {
        assert_eq!(super::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
