//! Vendors (tenants), their tokens, price plans and issuing keys.
//!
//! Each vendor gets its own issuing key, made by the server and stored
//! sealed under the master key. The server signs licenses with it once the
//! vendor certifies it with its own signing key (`sealsdk server certify`),
//! so the vendor's root key never leaves the vendor and the launcher can
//! check the chain: package vendor key → certificate → license.
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use sealrun_format::license::{ISSUER_CERT_LEN, IssuerCert};
use sealrun_format::{VendorPublicKey, VendorSigningKey};

use crate::billing::PlanJson;
use crate::error::ServerError;
use crate::rows::{Issuer, blob, opt_i64};
use crate::secrets::{ADMIN_TOKEN_PREFIX, VENDOR_TOKEN_PREFIX};
use crate::secrets::{new_token, rng, token_hash};
use crate::service::Service;
use crate::time::now;

/// Longest vendor name.
pub const MAX_VENDOR_NAME_LEN: usize = 64;

/// A vendor as the operator sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Vendor {
    /// The vendor's name (its id in URLs and on the CLI).
    pub name: String,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// The vendor's signing key (hex), once it has certified the issuing key.
    pub vendor_key: Option<String>,
    /// The server's issuing key for this vendor (hex).
    pub issuer_key: String,
    /// Until when the vendor's certificate lets the server issue licenses.
    pub certified_until: Option<i64>,
    /// The operator's key (hex), which signs invoices and ledger heads;
    /// `sealsdk server certify` pins it.
    pub operator_key: String,
}

/// A new vendor and its first token (shown once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewVendor {
    /// The vendor.
    pub vendor: Vendor,
    /// Its API token; store it now, the server keeps only a hash.
    pub token: String,
}

fn issuer_context(vendor_row: i64) -> Vec<u8> {
    format!("issuer-key/{vendor_row}").into_bytes()
}

/// Checks a vendor name: 1–64 characters of `[a-z0-9-]`, starting with a letter.
pub fn vendor_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > MAX_VENDOR_NAME_LEN {
        return Some("must be 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some("must be lowercase letters, digits and dashes, starting with a letter");
    }
    None
}

impl Service {
    /// Creates a vendor with an issuing key, an empty ledger and a token.
    pub async fn create_vendor(&self, name: &str) -> Result<NewVendor, ServerError> {
        if let Some(problem) = vendor_name_problem(name) {
            return Err(ServerError::Invalid { field: "vendor name", problem });
        }
        let issuer = VendorSigningKey::generate(&mut rng());
        let token = new_token(VENDOR_TOKEN_PREFIX);
        let at = now();
        let mut tx = self.db.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO vendors (name, created_at, issuer_public, issuer_secret_sealed, plan) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(at)
        .bind(issuer.public().0.to_vec())
        .bind(Vec::<u8>::new())
        .bind(PlanJson::default().to_text())
        .fetch_one(tx.conn())
        .await;
        let id: i64 = match inserted {
            Ok(r) => r.try_get(0)?,
            Err(e) => {
                let e = ServerError::from(e);
                return Err(if crate::db::is_unique_violation(&e) {
                    ServerError::Exists("a vendor with this name")
                } else {
                    e
                });
            }
        };
        let sealed = self.master.seal(&issuer_context(id), &*issuer.to_seed());
        sqlx::query("UPDATE vendors SET issuer_secret_sealed = $1 WHERE id = $2")
            .bind(sealed)
            .bind(id)
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO plans (vendor_id, effective_from, plan, set_at) VALUES ($1, 0, $2, $3)")
            .bind(id)
            .bind(PlanJson::default().to_text())
            .bind(at)
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO ledger_heads (vendor_id, seq, hash) VALUES ($1, 0, $2)")
            .bind(id)
            .bind(sealrun_format::ledger::GENESIS_HASH.to_vec())
            .execute(tx.conn())
            .await?;
        sqlx::query("INSERT INTO vendor_tokens (vendor_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(token_hash(&token))
            .bind("first token")
            .bind(at)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        let vendor = Vendor {
            name: name.to_owned(),
            created_at: at,
            vendor_key: None,
            issuer_key: issuer.public().to_string(),
            certified_until: None,
            operator_key: self.operator.public().to_string(),
        };
        Ok(NewVendor { vendor, token: token.to_string() })
    }

    /// The vendor row id for a name.
    pub async fn vendor_id(&self, name: &str) -> Result<i64, ServerError> {
        let r = sqlx::query("SELECT id FROM vendors WHERE name = $1")
            .bind(name)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(ServerError::NotFound("vendor"))?;
        Ok(r.try_get(0)?)
    }

    /// One vendor.
    pub async fn vendor(&self, vendor: i64) -> Result<Vendor, ServerError> {
        let r = sqlx::query(
            "SELECT name, created_at, vendor_key, issuer_public, cert_not_after FROM vendors WHERE id = $1",
        )
        .bind(vendor)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(ServerError::NotFound("vendor"))?;
        vendor_from_row(&r, &self.operator.public())
    }

    /// Every vendor, by name.
    pub async fn vendors(&self) -> Result<Vec<Vendor>, ServerError> {
        let rows = sqlx::query(
            "SELECT name, created_at, vendor_key, issuer_public, cert_not_after FROM vendors ORDER BY name",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(|r| vendor_from_row(r, &self.operator.public())).collect()
    }

    /// Makes another token for a vendor.
    pub async fn new_vendor_token(&self, vendor: i64, label: &str) -> Result<Zeroizing<String>, ServerError> {
        let token = new_token(VENDOR_TOKEN_PREFIX);
        sqlx::query("INSERT INTO vendor_tokens (vendor_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)")
            .bind(vendor)
            .bind(token_hash(&token))
            .bind(label)
            .bind(now())
            .execute(self.db.pool())
            .await?;
        Ok(token)
    }

    /// Revokes a token given in full (vendor or admin). Returns whether one was revoked.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, ServerError> {
        let table = if token.starts_with(ADMIN_TOKEN_PREFIX) { "admin_tokens" } else { "vendor_tokens" };
        // `table` is one of two fixed names.
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL"
        )))
        .bind(now())
        .bind(token_hash(token))
        .execute(self.db.pool())
        .await?;
        self.hot.tokens.forget(&token_hash(token));
        Ok(done.rows_affected() > 0)
    }

    /// The issuing key and its certificate, ready to sign; errors if the
    /// vendor has not certified it or the certificate has lapsed.
    pub(crate) async fn issuer(&self, vendor: i64) -> Result<std::sync::Arc<Issuer>, ServerError> {
        if let Some(i) = self.hot.issuers.get(&vendor) {
            if i64::try_from(i.cert.not_after).unwrap_or(i64::MAX) <= now() {
                return Err(ServerError::IssuerCertExpired);
            }
            return Ok(i);
        }
        let r = sqlx::query(
            "SELECT vendor_key, issuer_secret_sealed, issuer_cert, cert_not_after FROM vendors WHERE id = $1",
        )
        .bind(vendor)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(ServerError::NotFound("vendor"))?;
        let not_after = opt_i64(&r, "cert_not_after")?.ok_or(ServerError::NoIssuerCert)?;
        if not_after <= now() {
            return Err(ServerError::IssuerCertExpired);
        }
        let vendor_key = VendorPublicKey(blob(&r, "vendor_key")?);
        let cert = IssuerCert::from_bytes(&blob::<ISSUER_CERT_LEN>(&r, "issuer_cert")?);
        let sealed: Vec<u8> = r.try_get("issuer_secret_sealed")?;
        let seed = self.master.open32(&issuer_context(vendor), &sealed)?;
        let key = VendorSigningKey::from_seed(&seed);
        if key.public() != cert.issuer_key {
            return Err(ServerError::SecretUnreadable);
        }
        let issuer = std::sync::Arc::new(Issuer { key, cert, vendor_key });
        self.hot.issuers.put(vendor, issuer.clone());
        Ok(issuer)
    }

    /// Stores the vendor's certificate for its issuing key, after checking
    /// it: signed by `vendor_key`, for this vendor's issuing key, not yet
    /// lapsed. The vendor key cannot change once set (packages carry it).
    pub async fn certify(&self, vendor: i64, vendor_key_hex: &str, cert_hex: &str) -> Result<Vendor, ServerError> {
        let bad = |problem| ServerError::Invalid { field: "certificate", problem };
        let mut vk = [0u8; 32];
        hex::decode_to_slice(vendor_key_hex, &mut vk)
            .map_err(|_| ServerError::Invalid { field: "vendor_key", problem: "must be 64 hex digits" })?;
        let vendor_key = VendorPublicKey(vk);
        let mut cb = [0u8; ISSUER_CERT_LEN];
        hex::decode_to_slice(cert_hex, &mut cb).map_err(|_| bad("must be 208 hex digits"))?;
        let cert = IssuerCert::from_bytes(&cb);
        cert.verify(&vendor_key).map_err(|_| bad("its signature does not verify with the vendor key"))?;
        let current = self.vendor(vendor).await?;
        if cert.issuer_key.to_string() != current.issuer_key {
            return Err(bad("is for another issuing key than this server's for you"));
        }
        if i64::try_from(cert.not_after).unwrap_or(i64::MAX) <= now() {
            return Err(bad("has already expired"));
        }
        if current.vendor_key.as_deref().is_some_and(|k| k != vendor_key.to_string()) {
            return Err(bad("is signed by another vendor key than the one registered for you"));
        }
        sqlx::query("UPDATE vendors SET vendor_key = $1, issuer_cert = $2, cert_not_after = $3 WHERE id = $4")
            .bind(vk.to_vec())
            .bind(cb.to_vec())
            .bind(i64::try_from(cert.not_after).unwrap_or(i64::MAX))
            .bind(vendor)
            .execute(self.db.pool())
            .await?;
        self.hot.issuers.forget(&vendor);
        self.vendor(vendor).await
    }
}

fn vendor_from_row(r: &sqlx::any::AnyRow, operator: &VendorPublicKey) -> Result<Vendor, ServerError> {
    let vendor_key: Option<Vec<u8>> = r.try_get("vendor_key")?;
    let issuer: Vec<u8> = r.try_get("issuer_public")?;
    Ok(Vendor {
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        vendor_key: vendor_key.map(hex::encode),
        issuer_key: hex::encode(issuer),
        certified_until: opt_i64(r, "cert_not_after")?,
        operator_key: operator.to_string(),
    })
}
