//! The service every front end (the HTTP API, the operator CLI) calls: the
//! database, the master key and the package store. The operations are
//! implemented on it in their own modules (catalog, vendors, licensing, ...).
use std::path::PathBuf;

use sqlx::Row;

use crate::db::Db;
use crate::error::ServerError;
use crate::secrets::{ADMIN_TOKEN_PREFIX, MasterKey, VENDOR_TOKEN_PREFIX};
use crate::time::now;

/// The licensing service.
pub struct Service {
    /// The database.
    pub db: std::sync::Arc<Db>,
    pub(crate) master: MasterKey,
    /// Where uploaded packages live, named by their SHA-256.
    pub(crate) packages: PathBuf,
    /// Largest package upload accepted.
    pub(crate) max_package_len: u64,
    /// Hot reads, cached for a moment.
    pub(crate) hot: crate::hot::Hot,
    /// Group commit of issued licenses.
    pub(crate) batcher: crate::batch::Batcher,
    /// The operator key: signs invoices and exported ledger heads, so a
    /// vendor can prove to a third party what this server claimed.
    pub(crate) operator: sealrun_format::VendorSigningKey,
}

/// The `meta` row holding the master key's check value.
const META_MASTER_CHECK: &str = "master_key_check";
/// The `meta` row holding the operator key's seed, sealed under the master
/// key (hex).
const META_OPERATOR_KEY: &str = "operator_key_sealed";
/// Associated data of the sealed operator key.
const OPERATOR_KEY_CONTEXT: &[u8] = b"operator-key";

impl Service {
    /// Opens the service over an initialised database, checking that
    /// `master` is the key the database was set up with.
    pub async fn open(
        db: Db,
        master: MasterKey,
        packages: PathBuf,
        max_package_len: u64,
    ) -> Result<Service, ServerError> {
        db.check_schema().await?;
        let stored: Option<String> = sqlx::query("SELECT value FROM meta WHERE name = $1")
            .bind(META_MASTER_CHECK)
            .fetch_optional(db.pool())
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if stored.as_deref() != Some(master.check_value().as_str()) {
            return Err(ServerError::WrongMasterKey);
        }
        std::fs::create_dir_all(&packages).map_err(|source| ServerError::Io {
            action: "cannot create the package directory",
            path: packages.clone(),
            source,
        })?;
        let operator = operator_key(&db, &master).await?;
        let db = std::sync::Arc::new(db);
        let batcher = crate::batch::Batcher::start(db.clone());
        Ok(Service { db, master, packages, max_package_len, hot: crate::hot::Hot::new(), batcher, operator })
    }

    /// The operator key's public half.
    pub fn operator_public(&self) -> sealrun_format::VendorPublicKey {
        self.operator.public()
    }

    /// Creates the schema in an empty database, records the master key's
    /// check value and makes the first admin token, which is returned (it is
    /// stored only as a hash).
    pub async fn initialise(db: &Db, master: &MasterKey) -> Result<zeroize::Zeroizing<String>, ServerError> {
        if db.schema_version().await? != 0 {
            return Err(ServerError::AlreadyInitialised);
        }
        db.migrate().await?;
        let token = crate::secrets::new_token(ADMIN_TOKEN_PREFIX);
        let mut tx = db.write().await?;
        sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2)")
            .bind(META_MASTER_CHECK)
            .bind(master.check_value())
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO admin_tokens (token_hash, created_at) VALUES ($1, $2)")
            .bind(crate::secrets::token_hash(&token))
            .bind(now())
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Makes another admin token (the operator lost theirs, or rotates it).
    pub async fn new_admin_token(&self) -> Result<zeroize::Zeroizing<String>, ServerError> {
        let token = crate::secrets::new_token(ADMIN_TOKEN_PREFIX);
        sqlx::query("INSERT INTO admin_tokens (token_hash, created_at) VALUES ($1, $2)")
            .bind(crate::secrets::token_hash(&token))
            .bind(now())
            .execute(self.db.pool())
            .await?;
        Ok(token)
    }

    /// Checks an operator token.
    pub async fn authenticate_admin(&self, token: &str) -> Result<(), ServerError> {
        let found = sqlx::query("SELECT id FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(crate::secrets::token_hash(token))
            .fetch_optional(self.db.pool())
            .await?;
        found.map(|_| ()).ok_or(ServerError::Unauthorized)
    }

    /// Checks a vendor token; returns the vendor's row id.
    pub async fn authenticate_vendor(&self, token: &str) -> Result<i64, ServerError> {
        if !token.starts_with(VENDOR_TOKEN_PREFIX) {
            return Err(ServerError::Unauthorized);
        }
        let hash = crate::secrets::token_hash(token);
        if let Some(v) = self.hot.tokens.get(&hash) {
            return Ok(v);
        }
        let row = sqlx::query("SELECT vendor_id FROM vendor_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(&hash)
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            Some(r) => {
                let v: i64 = r.try_get(0)?;
                self.hot.tokens.put(hash, v);
                Ok(v)
            }
            None => Err(ServerError::Unauthorized),
        }
    }
}

/// The server's operator key, made on first start (a database from before
/// issue 25 gets one then). Several instances starting at once agree: only
/// the first insert takes, and every instance reads the row back.
async fn operator_key(db: &Db, master: &MasterKey) -> Result<sealrun_format::VendorSigningKey, ServerError> {
    let fresh = sealrun_format::VendorSigningKey::generate(&mut crate::secrets::rng());
    let sealed = hex::encode(master.seal(OPERATOR_KEY_CONTEXT, &*fresh.to_seed()));
    sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(META_OPERATOR_KEY)
        .bind(sealed)
        .execute(db.pool())
        .await?;
    let text: String = sqlx::query("SELECT value FROM meta WHERE name = $1")
        .bind(META_OPERATOR_KEY)
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    let bytes = hex::decode(text).map_err(|_| ServerError::SecretUnreadable)?;
    let seed = master.open32(OPERATOR_KEY_CONTEXT, &bytes)?;
    Ok(sealrun_format::VendorSigningKey::from_seed(&seed))
}
