//! License issuance (claims 1, 3), activation codes, activation and
//! deactivation.
//!
//! Every operation that hands out a license commits the license row, the
//! activation (if any) and the ledger entry in one transaction, and only
//! then answers. Retries are safe: a vendor request carrying an idempotency
//! key, and a repeat activation from the same device, get the license that
//! was already issued, never a second one (and never a second ledger entry).
use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use sealrun_format::device::DeviceCode;
use sealrun_format::dongle::DongleId;
use sealrun_format::ledger::EntryKind;
use sealrun_format::license::{self, Binding, Feature, LicenseSigner, Meter, SeatUnit, Terms};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{Release, VendorPublicKey};

use crate::catalog::{ProductRow, parse_range, range_text};
use crate::error::ServerError;
use crate::ledger::{Append, append};
use crate::rows::{opt_i64, unix};
use crate::secrets::{new_activation_code, normalize_code, rng, token_hash};
use crate::service::Service;
use crate::time::now;

/// What the ledger records as the holder of a dongle license (where a
/// device license has the device fingerprint): a hash of the dongle id.
pub fn dongle_fingerprint(dongle: &DongleId) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new_with_prefix(b"sealrun/v1/dongle-fingerprint\0").chain_update(dongle.0).finalize().into()
}

/// The ledger's holder value of a stored license's holder: a device code,
/// or `dongle:<id>` for a dongle license.
fn holder_fingerprint(holder: &str) -> Result<[u8; 32], ServerError> {
    match holder.strip_prefix("dongle:") {
        Some(id) => id.parse::<DongleId>().map(|d| dongle_fingerprint(&d)).map_err(ServerError::Format),
        None => parse_device(holder).map(|d| d.fingerprint()),
    }
}

/// How far before issue a license becomes valid, so a customer whose clock
/// runs a little behind the server's is not refused at once.
pub const BACKDATE_SECS: i64 = 86_400;
/// Longest idempotency key accepted.
pub const MAX_REQUEST_KEY_LEN: usize = 128;
/// Most codes made by one request.
pub const MAX_CODES_PER_REQUEST: u32 = 1000;
/// Most activations one code may allow.
pub const MAX_ACTIVATIONS_PER_CODE: i64 = 100_000;
/// Default number of times a code's activation may move to another device.
pub const DEFAULT_TRANSFER_LIMIT: i64 = 3;

/// A vendor's request for a license bound to a device or to a dongle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Product id.
    pub product: String,
    /// The customer's device code (from `sealrun id`); give this or `dongle`.
    #[serde(default)]
    pub device: Option<String>,
    /// A dongle provisioned through this server (its id, hex); the license
    /// is sealed to it. Give this or `device`.
    #[serde(default)]
    pub dongle: Option<String>,
    /// For a dongle: how many copies may run at once [default: 1].
    #[serde(default)]
    pub count: Option<u32>,
    /// A floating license with this many seats, for the site license
    /// manager (`sealrun-floatd`) on `device` (its `sealrun-floatd id`) or
    /// with `dongle`. Each seat is billed at the plan's seat fee.
    #[serde(default)]
    pub floating: Option<u32>,
    /// For a floating license: count a seat per running copy of the app
    /// instead of per computer [default: false].
    #[serde(default)]
    pub per_process: Option<bool>,
    /// Who the license is for.
    pub licensee: String,
    /// Releases covered: `1.2.0`, `1.0.0..1.9.9`, `1.0.0..` [default: every release made so far].
    #[serde(default)]
    pub releases: Option<String>,
    /// Not valid before (Unix seconds) [default: a day before now].
    #[serde(default)]
    pub not_before: Option<i64>,
    /// Expiry (Unix seconds) [default: never].
    #[serde(default)]
    pub expires: Option<i64>,
    /// Features to enable: `NAME`, or `NAME=VALUE` for a feature with a
    /// value the app reads.
    #[serde(default)]
    pub features: Vec<String>,
    /// Features that end on their own while the license goes on: name to
    /// the instant it ends (Unix seconds). A name not in `features` is
    /// added.
    #[serde(default)]
    pub feature_expires: BTreeMap<String, i64>,
    /// Usage meters: `NAME=LIMIT` for the license's life, `NAME=LIMIT/month`
    /// per calendar month (UTC).
    #[serde(default)]
    pub meters: Vec<String>,
}

/// A license handed out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedLicense {
    /// License id (hex).
    pub license_id: String,
    /// Product id.
    pub product: String,
    /// Releases covered.
    pub releases: String,
    /// The license file, base64.
    pub license: String,
    /// False when this request was a retry and got the license issued before.
    pub created: bool,
    /// Where the license's entry is in your ledger (its `seq`): `sealsdk`
    /// records it and checks at `ledger verify` that the entry is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_seq: Option<u64>,
}

/// A license as listed and exported.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LicenseInfo {
    /// License id (hex).
    pub license_id: String,
    /// Product id.
    pub product: String,
    /// Device code it is bound to.
    pub device: String,
    /// Licensee.
    pub licensee: String,
    /// Releases covered.
    pub releases: String,
    /// Issued at (Unix seconds).
    pub issued_at: i64,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// When it was revoked or deactivated, if it was.
    pub revoked_at: Option<i64>,
    /// The activation code it came from (its last five characters), if any.
    pub code_hint: Option<String>,
}

/// A request for activation codes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// Product id.
    pub product: String,
    /// Releases the licenses cover [default: `0.0.0..`, every release].
    #[serde(default)]
    pub releases: Option<String>,
    /// Licensee written into each license [default: "Activation code …HINT"].
    #[serde(default)]
    pub licensee: Option<String>,
    /// Features each license enables: `NAME` or `NAME=VALUE`.
    #[serde(default)]
    pub features: Vec<String>,
    /// Features that end this many days after the activation while the
    /// license goes on: name to days. A name not in `features` is added.
    #[serde(default)]
    pub feature_days: BTreeMap<String, i64>,
    /// Usage meters of each license: `NAME=LIMIT` or `NAME=LIMIT/month`.
    #[serde(default)]
    pub meters: Vec<String>,
    /// Each license expires this many days after its activation [default: never].
    #[serde(default)]
    pub license_days: Option<i64>,
    /// Devices that may hold an activation at once [default: 1].
    #[serde(default)]
    pub max_activations: Option<i64>,
    /// Times an activation may be given back and moved [default: 3].
    #[serde(default)]
    pub transfer_limit: Option<i64>,
    /// The code cannot be redeemed from this instant (Unix seconds) [default: never].
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// How many codes to make [default: 1].
    #[serde(default)]
    pub count: Option<u32>,
}

/// An activation code as the vendor sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CodeInfo {
    /// Id (for revoking).
    pub id: i64,
    /// The code itself, only in the answer that made it (it is stored hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Its last five characters.
    pub hint: String,
    /// Product id.
    pub product: String,
    /// Releases covered.
    pub releases: String,
    /// Licensee written into licenses.
    pub licensee: String,
    /// Features, `NAME` or `NAME=VALUE`.
    pub features: Vec<String>,
    /// Features that end days after the activation: name to days.
    #[serde(default)]
    pub feature_days: BTreeMap<String, i64>,
    /// Usage meters, `NAME=LIMIT` or `NAME=LIMIT/month`.
    #[serde(default)]
    pub meters: Vec<String>,
    /// License lifetime in days from activation.
    pub license_days: Option<i64>,
    /// Activations allowed at once.
    pub max_activations: i64,
    /// Activations in use.
    pub used: i64,
    /// Transfers allowed.
    pub transfer_limit: i64,
    /// Transfers made.
    pub transfers: i64,
    /// Redeemable until.
    pub expires_at: Option<i64>,
    /// Revoked at.
    pub revoked_at: Option<i64>,
}

/// An end user's activation (or deactivation) request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The activation code.
    pub code: String,
    /// This device's code (`sealrun id`).
    pub device: String,
}

/// A deactivation request: the code, the device and the license to give back.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateRequest {
    /// The activation code.
    pub code: String,
    /// This device's code.
    pub device: String,
    /// The license being given back (hex id).
    pub license_id: String,
}

/// What a deactivation left.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deactivated {
    /// Activations of the code now in use.
    pub used: i64,
    /// Activations allowed.
    pub max_activations: i64,
    /// Transfers left.
    pub transfers_left: i64,
}

pub(crate) fn parse_device(s: &str) -> Result<DeviceCode, ServerError> {
    s.trim().parse().map_err(|e| match e {
        sealrun_format::Error::DeviceCodeChecksum => {
            ServerError::Invalid { field: "device", problem: "is mistyped (its checksum does not match)" }
        }
        _ => ServerError::Invalid { field: "device", problem: "is not a device code (run `sealrun id` on the device)" },
    })
}

/// What goes into a new license.
struct Draft<'a> {
    vendor: i64,
    product: &'a ProductRow,
    range: ReleaseRange,
    binding: Binding,
    licensee: String,
    not_before: Option<i64>,
    expires: Option<i64>,
    features: Vec<Feature>,
    meters: Vec<Meter>,
}

/// A signed license not yet stored.
struct Built {
    bytes: Vec<u8>,
    license_id: [u8; 16],
    issued_at: i64,
    expires: Option<i64>,
}

impl Service {
    async fn build(&self, d: Draft<'_>) -> Result<Built, ServerError> {
        let releases = self.release_rows(d.product, &d.range).await?;
        if releases.is_empty() {
            return Err(ServerError::NoRelease(range_text(&d.range)));
        }
        let issuer = self.issuer(d.vendor).await?;
        let at = now();
        let terms = Terms {
            license_id: [0; 16],
            vendor_key: VendorPublicKey([0; 32]),
            product: d.product.product.clone(),
            releases: d.range,
            licensee: d.licensee,
            issued_at: unix(at),
            not_before: unix(d.not_before.unwrap_or(at - BACKDATE_SECS)),
            expires: d.expires.map(unix),
            features: d.features,
            meters: d.meters,
            binding: d.binding,
        };
        let keys: Vec<(Release, &sealrun_format::ContentKey)> = releases.iter().map(|r| (r.release, &r.key)).collect();
        let signer = LicenseSigner::Issuer { key: &issuer.key, cert: issuer.cert, vendor: issuer.vendor_key };
        let (bytes, license_id) = match d.binding.holder() {
            license::Holder::Device(_) => {
                let bytes = license::issue(terms, &keys, &signer, &mut rng())?;
                let id = license::License::parse(&bytes)?.terms.license_id;
                (bytes, id)
            }
            license::Holder::Dongle(dongle) => {
                let dongle_key = self.dongle_key(d.vendor, &dongle).await?;
                let bytes = license::issue_for_dongle(terms, &keys, &signer, &dongle_key, &mut rng())?;
                // The id is inside the sealed license: open it with the key.
                let sealed = sealrun_format::dongle::SealedLicense::parse(&bytes)?;
                let inner = dongle_key.decrypt(&sealed.decrypt_request())?;
                (bytes.clone(), sealed.open(&inner)?.terms.license_id)
            }
        };
        Ok(Built { license_id, bytes, issued_at: at, expires: d.expires })
    }

    /// Issues a device license for the vendor. With `request_key`, a retry
    /// of the same request returns the license issued the first time.
    pub async fn issue_license(
        &self,
        vendor: i64,
        req: &IssueRequest,
        request_key: Option<&str>,
    ) -> Result<IssuedLicense, ServerError> {
        // A retry is found when its insert collides with the first request's
        // key (in the batch writer), not by a read on every request.
        if let Some(k) = request_key
            && (k.is_empty() || k.len() > MAX_REQUEST_KEY_LEN || !k.bytes().all(|b| (0x21..0x7f).contains(&b)))
        {
            return Err(ServerError::Invalid {
                field: "Idempotency-Key",
                problem: "must be 1 to 128 printable ASCII characters without spaces",
            });
        }
        let product = self.product_row(Some(vendor), &req.product).await?;
        let (mut binding, holder, holder_fp) = match (&req.device, &req.dongle, req.count) {
            (Some(d), None, None) => {
                let device = parse_device(d)?;
                (Binding::Device(device), device.to_string(), device.fingerprint())
            }
            (None, Some(d), count) => {
                let dongle: DongleId = d.parse().map_err(|_| ServerError::Invalid {
                    field: "dongle",
                    problem: "is not a dongle id (32 hex digits, from `sealsdk server dongle provision`)",
                })?;
                let binding = Binding::Dongle { dongle, count: count.unwrap_or(1) };
                (binding, format!("dongle:{dongle}"), dongle_fingerprint(&dongle))
            }
            _ => {
                return Err(ServerError::Invalid {
                    field: "device",
                    problem: "give either a device code, or a dongle id (with an optional count)",
                });
            }
        };
        let seats = match (req.floating, req.per_process, req.count) {
            (Some(_), _, Some(_)) => {
                return Err(ServerError::Invalid {
                    field: "count",
                    problem: "is for dongle licenses; a floating license has seats (floating) instead",
                });
            }
            (Some(seats), per_process, None) => {
                let unit = if per_process.unwrap_or(false) { SeatUnit::Process } else { SeatUnit::Computer };
                binding = Binding::Floating { holder: binding.holder(), seats, unit };
                seats
            }
            (None, Some(_), _) => {
                return Err(ServerError::Invalid { field: "per_process", problem: "needs floating (the seats)" });
            }
            // A dongle license's count is how many copies may run at once:
            // the first is the license itself, each further one is billed
            // like a floating seat (a count of 1024 cost one license fee).
            (None, None, Some(count)) => count.saturating_sub(1),
            (None, None, None) => 0,
        };
        let range = match &req.releases {
            Some(r) => parse_range(r)?,
            None => ReleaseRange { min: Release::new(0, 0, 0), max: None },
        };
        let built = self
            .build(Draft {
                vendor,
                product: &product,
                range,
                binding,
                licensee: req.licensee.clone(),
                not_before: req.not_before,
                expires: req.expires,
                features: with_expiries(parse_features(&req.features)?, &req.feature_expires, Ok)?,
                meters: parse_meters(&req.meters)?,
            })
            .await?;
        let stored = self
            .batcher
            .store(crate::batch::Pending {
                vendor,
                product_row: product.id,
                product: product.product.clone(),
                license_id: built.license_id,
                device_code: holder,
                device_fp: holder_fp,
                licensee: req.licensee.clone(),
                releases: range_text(&range),
                request_key: request_key.map(str::to_owned),
                bytes: built.bytes.clone(),
                issued_at: built.issued_at,
                expires_at: built.expires,
                seats,
            })
            .await?;
        let seq = match stored {
            crate::batch::Stored::New(seq) => seq,
            crate::batch::Stored::Duplicate => {
                // A retry of a request that was stored first: its license, not a new one.
                return self
                    .replay(vendor, request_key.unwrap_or_default())
                    .await?
                    .ok_or(ServerError::NotFound("license"));
            }
        };
        Ok(IssuedLicense {
            license_id: hex::encode(built.license_id),
            product: product.product,
            releases: range_text(&range),
            license: B64.encode(&built.bytes),
            created: true,
            ledger_seq: Some(seq),
        })
    }

    async fn replay(&self, vendor: i64, key: &str) -> Result<Option<IssuedLicense>, ServerError> {
        let row = sqlx::query(
            "SELECT l.license_id, p.product, l.releases, l.bytes, \
             (SELECT g.seq FROM ledger g WHERE g.vendor_id = l.vendor_id AND g.license_id = l.license_id \
              AND g.kind = 'license_issued') AS seq \
             FROM licenses l JOIN products p ON p.id = l.product_id WHERE l.vendor_id = $1 AND l.request_key = $2",
        )
        .bind(vendor)
        .bind(key)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(IssuedLicense {
                license_id: hex::encode(r.try_get::<Vec<u8>, _>("license_id")?),
                product: r.try_get("product")?,
                releases: r.try_get("releases")?,
                license: B64.encode(r.try_get::<Vec<u8>, _>("bytes")?),
                created: false,
                ledger_seq: opt_i64(&r, "seq")?.map(crate::rows::unix),
            })
        })
        .transpose()
    }

    /// The vendor's licenses, oldest first, optionally of one product,
    /// after row `after` (for paging), at most `limit`.
    pub async fn licenses(
        &self,
        vendor: i64,
        product: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<LicenseInfo>, Option<i64>), ServerError> {
        let rows = sqlx::query(
            "SELECT l.id, l.license_id, p.product, l.device_code, l.licensee, l.releases, l.issued_at, \
             l.expires_at, l.revoked_at, c.hint FROM licenses l JOIN products p ON p.id = l.product_id \
             LEFT JOIN codes c ON c.id = l.code_id \
             WHERE l.vendor_id = $1 AND l.id > $2 AND ($3 = '' OR p.product = $3) ORDER BY l.id LIMIT $4",
        )
        .bind(vendor)
        .bind(after)
        .bind(product.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let mut last = None;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            last = Some(r.try_get::<i64, _>("id")?);
            out.push(LicenseInfo {
                license_id: hex::encode(r.try_get::<Vec<u8>, _>("license_id")?),
                product: r.try_get("product")?,
                device: r.try_get("device_code")?,
                licensee: r.try_get("licensee")?,
                releases: r.try_get("releases")?,
                issued_at: r.try_get("issued_at")?,
                expires_at: opt_i64(r, "expires_at")?,
                revoked_at: opt_i64(r, "revoked_at")?,
                code_hint: r.try_get("hint")?,
            });
        }
        let next = if (out.len() as i64) < limit { None } else { last };
        Ok((out, next))
    }

    /// Revokes one of the vendor's licenses (recorded in the ledger). A
    /// license already on a device keeps working offline until it expires;
    /// revocation stops the server from handing it out again.
    pub async fn revoke_license(&self, vendor: i64, license_id_hex: &str) -> Result<(), ServerError> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(license_id_hex, &mut id)
            .map_err(|_| ServerError::Invalid { field: "license id", problem: "must be 32 hex digits" })?;
        let mut tx = self.db.write().await?;
        let row = sqlx::query(
            "UPDATE licenses SET revoked_at = $1 WHERE vendor_id = $2 AND license_id = $3 AND revoked_at IS NULL \
             RETURNING id, product_id, device_code",
        )
        .bind(now())
        .bind(vendor)
        .bind(id.to_vec())
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ServerError::NotFound("license (or it is revoked already)"))?;
        let row_id: i64 = row.try_get("id")?;
        let holder: String = row.try_get("device_code")?;
        let holder_fp = holder_fingerprint(&holder)?;
        let product: String = sqlx::query("SELECT product FROM products WHERE id = $1")
            .bind(row.try_get::<i64, _>("product_id")?)
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        sqlx::query("UPDATE activations SET deactivated_at = $1 WHERE license_row = $2 AND deactivated_at IS NULL")
            .bind(now())
            .bind(row_id)
            .execute(tx.conn())
            .await?;
        append(
            tx.conn(),
            Append {
                vendor,
                kind: EntryKind::LicenseRevoked,
                product: &product,
                license_id: id,
                device: holder_fp,
                seats: 0,
                code: None,
            },
        )
        .await?;
        tx.commit().await
    }

    /// Makes activation codes. The codes are returned once; the server
    /// keeps only their hashes.
    pub async fn create_codes(&self, vendor: i64, req: &CodeRequest) -> Result<Vec<CodeInfo>, ServerError> {
        let product = self.product_row(Some(vendor), &req.product).await?;
        let releases = match &req.releases {
            Some(r) => parse_range(r)?,
            None => ReleaseRange { min: Release::new(0, 0, 0), max: None },
        };
        let count = req.count.unwrap_or(1);
        if count == 0 || count > MAX_CODES_PER_REQUEST {
            return Err(ServerError::Invalid { field: "count", problem: "must be 1 to 1000" });
        }
        let max_activations = req.max_activations.unwrap_or(1);
        if !(1..=MAX_ACTIVATIONS_PER_CODE).contains(&max_activations) {
            return Err(ServerError::Invalid { field: "max_activations", problem: "must be 1 to 100000" });
        }
        let transfer_limit = req.transfer_limit.unwrap_or(DEFAULT_TRANSFER_LIMIT);
        if !(0..=MAX_ACTIVATIONS_PER_CODE).contains(&transfer_limit) {
            return Err(ServerError::Invalid { field: "transfer_limit", problem: "must be 0 to 100000" });
        }
        if req.license_days.is_some_and(|d| !(1..=36_500).contains(&d)) {
            return Err(ServerError::Invalid { field: "license_days", problem: "must be 1 to 36500" });
        }
        if req.expires_at.is_some_and(|e| e <= now()) {
            return Err(ServerError::Invalid { field: "expires_at", problem: "is in the past" });
        }
        let mut features = parse_features(&req.features)?;
        features.sort();
        features.dedup();
        if features.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(ServerError::Invalid { field: "features", problem: "name one feature twice" });
        }
        // The days are checked here; the instants are made at activation.
        with_expiries(features.clone(), &req.feature_days, |d| {
            if (1..=36_500).contains(&d) {
                Ok(d)
            } else {
                Err(ServerError::Invalid { field: "feature_days", problem: "must be 1 to 36500" })
            }
        })?;
        let mut meters = parse_meters(&req.meters)?;
        meters.sort_by(|a, b| a.name.cmp(&b.name));
        if meters.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(ServerError::Invalid { field: "meters", problem: "name one meter twice" });
        }
        if meters.len() > sealrun_format::limits::MAX_METERS {
            return Err(ServerError::Invalid { field: "meters", problem: "are more than 16" });
        }
        if features.len() + req.feature_days.keys().filter(|n| !features.iter().any(|f| &f.name == *n)).count()
            > sealrun_format::limits::MAX_FEATURES
        {
            return Err(ServerError::Invalid { field: "features", problem: "are more than 32" });
        }
        let feature_specs: Vec<String> = features.iter().map(Feature::spec).collect();
        let meter_specs: Vec<String> = meters.iter().map(Meter::to_string).collect();
        let day_specs: Vec<String> = req.feature_days.iter().map(|(n, d)| format!("{n}={d}")).collect();
        if let Some(l) = &req.licensee
            && let Some(p) = sealrun_format::text::free_text_problem(l, sealrun_format::limits::MAX_LICENSEE_LEN)
        {
            return Err(ServerError::Invalid { field: "licensee", problem: p });
        }
        let at = now();
        let mut out = Vec::with_capacity(count as usize);
        let mut tx = self.db.write().await?;
        for _ in 0..count {
            let code = new_activation_code();
            let canonical = normalize_code(&code).expect("a new code is well-formed");
            let hint = canonical[canonical.len() - 5..].to_owned();
            let licensee = req.licensee.clone().unwrap_or_else(|| format!("Activation code …{hint}"));
            let id: i64 = sqlx::query(
                "INSERT INTO codes (vendor_id, product_id, code_hash, hint, releases, licensee, features, \
                 license_days, max_activations, transfer_limit, expires_at, created_at, meters, feature_days) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            )
            .bind(vendor)
            .bind(product.id)
            .bind(token_hash(&canonical))
            .bind(&hint)
            .bind(range_text(&releases))
            .bind(&licensee)
            .bind(feature_specs.join("\n"))
            .bind(req.license_days)
            .bind(max_activations)
            .bind(transfer_limit)
            .bind(req.expires_at)
            .bind(at)
            .bind(meter_specs.join("\n"))
            .bind(day_specs.join("\n"))
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
            out.push(CodeInfo {
                id,
                code: Some(code.to_string()),
                hint,
                product: product.product.clone(),
                releases: range_text(&releases),
                licensee,
                features: feature_specs.clone(),
                feature_days: req.feature_days.clone(),
                meters: meter_specs.clone(),
                license_days: req.license_days,
                max_activations,
                used: 0,
                transfer_limit,
                transfers: 0,
                expires_at: req.expires_at,
                revoked_at: None,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The vendor's activation codes (without the codes themselves).
    pub async fn codes(&self, vendor: i64, product: Option<&str>) -> Result<Vec<CodeInfo>, ServerError> {
        let rows = sqlx::query(
            "SELECT c.id, c.hint, p.product, c.releases, c.licensee, c.features, c.license_days, \
             c.max_activations, c.used, c.transfer_limit, c.transfers, c.expires_at, c.revoked_at, \
             c.meters, c.feature_days FROM codes c JOIN products p ON p.id = c.product_id \
             WHERE c.vendor_id = $1 AND ($2 = '' OR p.product = $2) ORDER BY c.id",
        )
        .bind(vendor)
        .bind(product.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let terms = StoredTerms::of(r)?;
                Ok(CodeInfo {
                    id: r.try_get("id")?,
                    code: None,
                    hint: r.try_get("hint")?,
                    product: r.try_get("product")?,
                    releases: r.try_get("releases")?,
                    licensee: r.try_get("licensee")?,
                    features: terms.features.iter().map(Feature::spec).collect(),
                    feature_days: terms.feature_days,
                    meters: terms.meters.iter().map(Meter::to_string).collect(),
                    license_days: opt_i64(r, "license_days")?,
                    max_activations: r.try_get("max_activations")?,
                    used: r.try_get("used")?,
                    transfer_limit: r.try_get("transfer_limit")?,
                    transfers: r.try_get("transfers")?,
                    expires_at: opt_i64(r, "expires_at")?,
                    revoked_at: opt_i64(r, "revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes a code: it can no longer be redeemed (licenses already
    /// issued stay valid).
    pub async fn revoke_code(&self, vendor: i64, id: i64) -> Result<(), ServerError> {
        let done =
            sqlx::query("UPDATE codes SET revoked_at = $1 WHERE id = $2 AND vendor_id = $3 AND revoked_at IS NULL")
                .bind(now())
                .bind(id)
                .bind(vendor)
                .execute(self.db.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(ServerError::NotFound("code (or it is revoked already)"));
        }
        Ok(())
    }

    /// Redeems an activation code for a device (or returns the license it
    /// already has from this code). `product`, when given, must be the
    /// code's product (provisioning names it in the URL).
    pub async fn activate(&self, req: &ActivateRequest, product: Option<&str>) -> Result<Activation, ServerError> {
        let code = self.code_row(&req.code).await?;
        if product.is_some_and(|p| p != code.product.product) {
            return Err(ServerError::CodeUnknown);
        }
        let device = parse_device(&req.device)?;
        let fp = device.fingerprint();
        loop {
            if let Some(a) = self.live_activation(code.id, &fp).await? {
                return Ok(a);
            }
            if code.revoked {
                return Err(ServerError::CodeRevoked);
            }
            if code.expires_at.is_some_and(|e| e <= now()) {
                return Err(ServerError::CodeExpired);
            }
            let built = self
                .build(Draft {
                    vendor: code.vendor,
                    product: &code.product,
                    range: code.releases,
                    binding: Binding::Device(device),
                    licensee: code.licensee.clone(),
                    not_before: None,
                    expires: code.license_days.map(|d| now() + d * 86_400),
                    features: with_expiries(code.terms.features.clone(), &code.terms.feature_days, |d| {
                        Ok(now() + d * 86_400)
                    })?,
                    meters: code.terms.meters.clone(),
                })
                .await?;
            let mut tx = self.db.write().await?;
            let used = sqlx::query(
                "UPDATE codes SET used = used + 1 WHERE id = $1 AND used < max_activations AND revoked_at IS NULL \
                 RETURNING used, transfers",
            )
            .bind(code.id)
            .fetch_optional(tx.conn())
            .await?;
            let Some(used) = used else {
                drop(tx);
                // A concurrent request from this same device may have just
                // taken the last slot: that is its activation, not a refusal.
                if let Some(a) = self.live_activation(code.id, &fp).await? {
                    return Ok(a);
                }
                return Err(ServerError::CodeExhausted(code.max_activations));
            };
            // An activation beyond the code's first `max_activations` takes
            // a slot a deactivation freed: the license moves, and the ledger
            // says so (a transfer is billed at the plan's transfer fee, not
            // as a new license). Every activation added one to `used` and
            // every deactivation moved one from `used` to `transfers`, so
            // their sum before this one counts the code's earlier
            // activations; the UPDATE above holds the row, so concurrent
            // activations count one after another.
            let earlier = used.try_get::<i64, _>("used")? - 1 + used.try_get::<i64, _>("transfers")?;
            let row = insert_license(
                tx.conn(),
                &code.product,
                &built,
                &device,
                &code.licensee,
                &code.releases,
                Some(code.id),
                None,
            )
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO activations (code_id, device_fp, license_row, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(code.id)
            .bind(fp.to_vec())
            .bind(row)
            .bind(built.issued_at)
            .execute(tx.conn())
            .await;
            if let Err(e) = inserted {
                let e = ServerError::from(e);
                if crate::db::is_unique_violation(&e) {
                    // The same device activated concurrently (another
                    // instance); roll back and return that activation.
                    drop(tx);
                    continue;
                }
                return Err(e);
            }
            let kind = if earlier >= code.max_activations { EntryKind::Transfer } else { EntryKind::Activation };
            append(
                tx.conn(),
                Append {
                    vendor: code.vendor,
                    kind,
                    product: &code.product.product,
                    license_id: built.license_id,
                    device: fp,
                    seats: 0,
                    code: Some(code.id),
                },
            )
            .await?;
            tx.commit().await?;
            return Ok(Activation {
                license: built.bytes,
                license_id: built.license_id,
                product: code.product.product.clone(),
                releases: code.releases,
                created: true,
            });
        }
    }

    /// Gives an activation back so the code can be used on another device,
    /// within the code's transfer limit. The license is revoked.
    pub async fn deactivate(&self, req: &DeactivateRequest) -> Result<Deactivated, ServerError> {
        let code = self.code_row(&req.code).await?;
        let device = parse_device(&req.device)?;
        let mut license_id = [0u8; 16];
        hex::decode_to_slice(&req.license_id, &mut license_id)
            .map_err(|_| ServerError::Invalid { field: "license_id", problem: "must be 32 hex digits" })?;
        let fp = device.fingerprint();
        let at = now();
        let mut tx = self.db.write().await?;
        // Ending the activation is the first statement, and conditional: of
        // calls that race (PostgreSQL runs them at once), only the one whose
        // UPDATE ended it goes on. The outer `deactivated_at IS NULL` is
        // checked again on the row as the other committed it; a plain SELECT
        // first let four concurrent calls through twice (used 2 -> 0).
        let act = sqlx::query(
            "UPDATE activations SET deactivated_at = $4 WHERE deactivated_at IS NULL AND id = \
             (SELECT a.id FROM activations a JOIN licenses l ON l.id = a.license_row \
              WHERE a.code_id = $1 AND a.device_fp = $2 AND a.deactivated_at IS NULL AND l.license_id = $3) \
             RETURNING id, license_row",
        )
        .bind(code.id)
        .bind(fp.to_vec())
        .bind(license_id.to_vec())
        .bind(at)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ServerError::NotActivated)?;
        let counts = sqlx::query(
            "UPDATE codes SET used = used - 1, transfers = transfers + 1 \
             WHERE id = $1 AND transfers < transfer_limit AND used > 0 RETURNING used, transfers, transfer_limit",
        )
        .bind(code.id)
        .fetch_optional(tx.conn())
        .await?
        .ok_or(ServerError::TransferLimit(code.transfer_limit))?;
        sqlx::query("UPDATE licenses SET revoked_at = $1 WHERE id = $2")
            .bind(at)
            .bind(act.try_get::<i64, _>("license_row")?)
            .execute(tx.conn())
            .await?;
        append(
            tx.conn(),
            Append {
                vendor: code.vendor,
                kind: EntryKind::Deactivation,
                product: &code.product.product,
                license_id,
                device: fp,
                seats: 0,
                code: Some(code.id),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Deactivated {
            used: counts.try_get("used")?,
            max_activations: code.max_activations,
            transfers_left: counts.try_get::<i64, _>("transfer_limit")? - counts.try_get::<i64, _>("transfers")?,
        })
    }

    async fn code_row(&self, typed: &str) -> Result<CodeRow, ServerError> {
        let canonical = normalize_code(typed).ok_or(ServerError::CodeUnknown)?;
        let r = sqlx::query(
            "SELECT c.id, c.vendor_id, c.product_id, p.product, c.releases, c.licensee, c.features, c.license_days, \
             c.max_activations, c.transfer_limit, c.expires_at, c.revoked_at, c.meters, c.feature_days \
             FROM codes c JOIN products p ON p.id = c.product_id WHERE c.code_hash = $1",
        )
        .bind(token_hash(&canonical))
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(ServerError::CodeUnknown)?;
        let vendor: i64 = r.try_get("vendor_id")?;
        Ok(CodeRow {
            id: r.try_get("id")?,
            vendor,
            product: ProductRow { id: r.try_get("product_id")?, vendor, product: r.try_get("product")? },
            releases: parse_range(&r.try_get::<String, _>("releases")?)?,
            licensee: r.try_get("licensee")?,
            terms: StoredTerms::of(&r)?,
            license_days: opt_i64(&r, "license_days")?,
            max_activations: r.try_get("max_activations")?,
            transfer_limit: r.try_get("transfer_limit")?,
            expires_at: opt_i64(&r, "expires_at")?,
            revoked: opt_i64(&r, "revoked_at")?.is_some(),
        })
    }

    async fn live_activation(&self, code: i64, fp: &[u8; 32]) -> Result<Option<Activation>, ServerError> {
        let r = sqlx::query(
            "SELECT l.bytes, l.license_id, l.releases, p.product FROM activations a \
             JOIN licenses l ON l.id = a.license_row JOIN products p ON p.id = l.product_id \
             WHERE a.code_id = $1 AND a.device_fp = $2 AND a.deactivated_at IS NULL",
        )
        .bind(code)
        .bind(fp.to_vec())
        .fetch_optional(self.db.pool())
        .await?;
        r.map(|r| {
            Ok(Activation {
                license: r.try_get("bytes")?,
                license_id: crate::rows::blob(&r, "license_id")?,
                product: r.try_get("product")?,
                releases: parse_range(&r.try_get::<String, _>("releases")?)?,
                created: false,
            })
        })
        .transpose()
    }
}

/// An activation's license.
#[derive(Debug, Clone)]
pub struct Activation {
    /// The license file.
    pub license: Vec<u8>,
    /// Its id.
    pub license_id: [u8; 16],
    /// Product id.
    pub product: String,
    /// Releases covered.
    pub releases: ReleaseRange,
    /// False when the device already had it.
    pub created: bool,
}

impl Activation {
    /// As the API returns it.
    pub fn to_json(&self) -> IssuedLicense {
        IssuedLicense {
            license_id: hex::encode(self.license_id),
            product: self.product.clone(),
            releases: range_text(&self.releases),
            license: B64.encode(&self.license),
            created: self.created,
            // An end user's answer: the vendor's ledger position is not theirs to see.
            ledger_seq: None,
        }
    }
}

/// A code's features and meters as stored (see migration 0004).
struct StoredTerms {
    features: Vec<Feature>,
    feature_days: BTreeMap<String, i64>,
    meters: Vec<Meter>,
}

impl StoredTerms {
    fn of(r: &sqlx::any::AnyRow) -> Result<StoredTerms, ServerError> {
        // Stored by this server after checking: a row that does not parse
        // is damage, reported as an internal error.
        let damaged = |_| ServerError::StoredRowDamaged("activation code's features or meters");
        let features: String = r.try_get("features")?;
        let meters: String = r.try_get("meters")?;
        let days: String = r.try_get("feature_days")?;
        let mut out = StoredTerms { features: Vec::new(), feature_days: BTreeMap::new(), meters: Vec::new() };
        for line in features.lines() {
            // Rows from before migration 0004 join names with commas; a
            // line with a value has '=' and is one feature.
            if line.contains('=') {
                out.features.push(line.parse().map_err(damaged)?);
            } else {
                for name in line.split(',').filter(|n| !n.is_empty()) {
                    out.features.push(name.parse().map_err(damaged)?);
                }
            }
        }
        for line in meters.lines() {
            out.meters.push(line.parse().map_err(damaged)?);
        }
        for line in days.lines() {
            let bad = ServerError::StoredRowDamaged("activation code's feature days");
            let (name, d) = line.split_once('=').ok_or(bad)?;
            let d = d.parse().map_err(|_| ServerError::StoredRowDamaged("activation code's feature days"))?;
            out.feature_days.insert(name.to_owned(), d);
        }
        Ok(out)
    }
}

fn parse_features(specs: &[String]) -> Result<Vec<Feature>, ServerError> {
    specs.iter().map(|s| s.parse().map_err(invalid("features"))).collect()
}

fn parse_meters(specs: &[String]) -> Result<Vec<Meter>, ServerError> {
    specs.iter().map(|s| s.parse().map_err(invalid("meters"))).collect()
}

/// The request field a format error is about, with its problem.
fn invalid(field: &'static str) -> impl Fn(sealrun_format::Error) -> ServerError {
    move |e| match e {
        sealrun_format::Error::InvalidInput { problem, .. } => ServerError::Invalid { field, problem },
        other => ServerError::Format(other),
    }
}

/// `features` with an expiry for each name of `ends` (made by `at` from
/// the map's value), adding the features not in it yet.
fn with_expiries(
    mut features: Vec<Feature>,
    ends: &BTreeMap<String, i64>,
    at: impl Fn(i64) -> Result<i64, ServerError>,
) -> Result<Vec<Feature>, ServerError> {
    for (name, v) in ends {
        Feature::set_expiry(&mut features, name, unix(at(*v)?)).map_err(invalid("feature name"))?;
    }
    Ok(features)
}

struct CodeRow {
    id: i64,
    vendor: i64,
    product: ProductRow,
    releases: ReleaseRange,
    licensee: String,
    terms: StoredTerms,
    license_days: Option<i64>,
    max_activations: i64,
    transfer_limit: i64,
    expires_at: Option<i64>,
    revoked: bool,
}

#[allow(clippy::too_many_arguments)]
async fn insert_license(
    conn: &mut crate::rows::Conn,
    product: &ProductRow,
    built: &Built,
    device: &DeviceCode,
    licensee: &str,
    range: &ReleaseRange,
    code: Option<i64>,
    request_key: Option<&str>,
) -> Result<i64, ServerError> {
    let r = sqlx::query(
        "INSERT INTO licenses (vendor_id, product_id, license_id, device_code, licensee, releases, code_id, \
         request_key, bytes, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(product.vendor)
    .bind(product.id)
    .bind(built.license_id.to_vec())
    .bind(device.to_string())
    .bind(licensee)
    .bind(range_text(range))
    .bind(code)
    .bind(request_key)
    .bind(built.bytes.clone())
    .bind(built.issued_at)
    .bind(built.expires)
    .fetch_one(conn)
    .await?;
    Ok(r.try_get(0)?)
}
