//! Hardware keys (dongles) provisioned through the server: the server makes
//! the dongle key and the signed attach record, keeps the key sealed under
//! its master key to issue licenses later, and hands both to the vendor's
//! `sealsdk` once, which writes them onto the token.
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use sealrun_format::dongle::{DongleId, DongleKey, make_record};
use sealrun_format::license::LicenseSigner;

use crate::error::ServerError;
use crate::licensing::parse_device;
use crate::rows::unix;
use crate::secrets::rng;
use crate::service::Service;
use crate::time::now;

/// A vendor's request to provision a dongle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DongleRequest {
    /// The device code the dongle may be used on (from `sealrun id` there).
    pub device: String,
}

/// A new dongle: what the vendor's `sealsdk` writes onto the token. The key
/// is in this one answer only; the server keeps its own copy sealed.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvisionedDongle {
    /// The dongle id (hex).
    pub dongle_id: String,
    /// The permitted device.
    pub device: String,
    /// The signed attach record, base64.
    pub record: String,
    /// The dongle key (AES-256), base64: import it into the token as
    /// sensitive and non-extractable, then forget it.
    pub key: String,
}

impl std::fmt::Debug for ProvisionedDongle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, wherever a value is printed.
        write!(f, "ProvisionedDongle({} for {})", self.dongle_id, self.device)
    }
}

/// A dongle in the vendor's list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DongleInfo {
    /// The dongle id (hex).
    pub dongle_id: String,
    /// The permitted device.
    pub device: String,
    /// When it was provisioned (Unix seconds).
    pub created_at: i64,
}

/// Associated data of a sealed dongle key: a sealed key opens only in the
/// row (vendor and dongle) it was made for.
fn dongle_context(vendor: i64, dongle: &DongleId) -> Vec<u8> {
    format!("dongle-key/{vendor}/{dongle}").into_bytes()
}

impl Service {
    /// Makes a dongle for the vendor, permitted on `req.device`.
    pub async fn provision_dongle(&self, vendor: i64, req: &DongleRequest) -> Result<ProvisionedDongle, ServerError> {
        let device = parse_device(&req.device)?;
        let issuer = self.issuer(vendor).await?;
        let mut rng = rng();
        let dongle = DongleId::generate(&mut rng);
        let key = DongleKey::generate(&mut rng);
        let at = now();
        let signer = LicenseSigner::Issuer { key: &issuer.key, cert: issuer.cert, vendor: issuer.vendor_key };
        let record = make_record(dongle, device, unix(at), &signer)?;
        let sealed = self.master.seal(&dongle_context(vendor, &dongle), key.as_bytes());
        sqlx::query(
            "INSERT INTO dongles (vendor_id, dongle_id, device_code, key_sealed, record, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(vendor)
        .bind(dongle.0.to_vec())
        .bind(device.to_string())
        .bind(sealed)
        .bind(record.clone())
        .bind(at)
        .execute(self.db.pool())
        .await?;
        Ok(ProvisionedDongle {
            dongle_id: dongle.to_string(),
            device: device.to_string(),
            record: B64.encode(&record),
            key: B64.encode(key.as_bytes()),
        })
    }

    /// The vendor's dongles, oldest first.
    pub async fn dongles(&self, vendor: i64) -> Result<Vec<DongleInfo>, ServerError> {
        let rows =
            sqlx::query("SELECT dongle_id, device_code, created_at FROM dongles WHERE vendor_id = $1 ORDER BY id")
                .bind(vendor)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(DongleInfo {
                    dongle_id: hex::encode(r.try_get::<Vec<u8>, _>("dongle_id")?),
                    device: r.try_get("device_code")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The key of one of the vendor's dongles; another vendor's dongle is
    /// not found, as if it did not exist.
    pub(crate) async fn dongle_key(&self, vendor: i64, dongle: &DongleId) -> Result<DongleKey, ServerError> {
        let row = sqlx::query("SELECT key_sealed FROM dongles WHERE vendor_id = $1 AND dongle_id = $2")
            .bind(vendor)
            .bind(dongle.0.to_vec())
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(ServerError::NotFound("dongle"))?;
        let sealed: Vec<u8> = row.try_get("key_sealed")?;
        let key = self.master.open32(&dongle_context(vendor, dongle), &sealed)?;
        Ok(DongleKey::from_bytes(&key))
    }
}
