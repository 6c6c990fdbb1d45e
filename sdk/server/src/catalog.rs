//! Products, releases with their server-generated content keys, and the
//! uploaded packages the server provisions.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use sealrun_format::package::Header;
use sealrun_format::release::ReleaseRange;
use sealrun_format::text::{free_text_problem, product_id_problem};
use sealrun_format::{ContentKey, Release};

use crate::error::ServerError;
use crate::rows::opt_i64;
pub(crate) use crate::rows::{ProductRow, ReleaseRow};
use crate::secrets::rng;
use crate::service::Service;
use crate::time::now;

/// A product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Product id, e.g. `com.acme.tool` (unique on this server).
    pub product: String,
    /// Name for people.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// Its releases, oldest first.
    pub releases: Vec<ReleaseInfo>,
}

/// A release of a product.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseInfo {
    /// MAJOR.MINOR.PATCH.
    pub release: String,
    /// Id of its content key (hex).
    pub key_id: String,
    /// SHA-256 of the uploaded package (hex), if one was uploaded.
    pub package_sha256: Option<String>,
    /// Its length in bytes.
    pub package_len: Option<i64>,
}

/// A release's content key, handed to the vendor's build machine to seal with.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ReleaseKey {
    /// The release.
    pub release: String,
    /// Id of the key (hex).
    pub key_id: String,
    /// The 256-bit content key (hex). Seal with it, then forget it.
    pub content_key: String,
    /// Whether the key was made by this request (false: it existed).
    pub created: bool,
}

/// The release an upload is for, and what its package must say.
pub struct UploadTarget {
    product: ProductRow,
    release: Release,
    key_id: sealrun_format::KeyId,
    vendor_key: Option<String>,
}

impl UploadTarget {
    /// Checks an upload's header: this product and release, sealed with the
    /// release's server key, signed by the key that certified this server.
    pub fn check(&self, h: &Header) -> Result<(), ServerError> {
        let m = &h.manifest;
        if m.product != self.product.product {
            return Err(ServerError::PackageMismatch("it is another product"));
        }
        if m.release != self.release {
            return Err(ServerError::PackageMismatch("it is another release"));
        }
        if m.key_id != self.key_id {
            return Err(ServerError::PackageMismatch(
                "it was not sealed with this release's server key (use `sealsdk seal --server`)",
            ));
        }
        if self.vendor_key.as_deref() != Some(m.vendor_key.to_string().as_str()) {
            return Err(ServerError::PackageMismatch(
                "it is signed by another key than the vendor key that certified this server",
            ));
        }
        Ok(())
    }
}

fn content_key_context(product_row: i64, r: Release) -> Vec<u8> {
    format!("content-key/{product_row}/{r}").into_bytes()
}

/// A release from its text, as a request field.
pub fn parse_release(s: &str) -> Result<Release, ServerError> {
    s.parse().map_err(|_| ServerError::Invalid { field: "release", problem: "must be MAJOR.MINOR.PATCH" })
}

/// A release range: `1.2.0`, `1.0.0..1.9.9` or `1.0.0..` (all from 1.0.0).
pub fn parse_range(s: &str) -> Result<ReleaseRange, ServerError> {
    let bad = ServerError::Invalid { field: "releases", problem: "must be 1.2.0, 1.0.0..1.9.9 or 1.0.0.." };
    let r = match s.split_once("..") {
        None => {
            let r: Release = s.parse().map_err(|_| bad)?;
            ReleaseRange { min: r, max: Some(r) }
        }
        Some((min, "")) => ReleaseRange { min: min.parse().map_err(|_| bad)?, max: None },
        Some((min, max)) => {
            let bad2 = ServerError::Invalid { field: "releases", problem: "must be 1.2.0, 1.0.0..1.9.9 or 1.0.0.." };
            ReleaseRange { min: min.parse().map_err(|_| bad2)?, max: Some(max.parse().map_err(|_| bad)?) }
        }
    };
    if r.max.is_some_and(|m| m < r.min) {
        return Err(ServerError::Invalid { field: "releases", problem: "the range ends before it starts" });
    }
    Ok(r)
}

/// The text form [`parse_range`] reads.
pub fn range_text(r: &ReleaseRange) -> String {
    match r.max {
        Some(m) if m == r.min => r.min.to_string(),
        Some(m) => format!("{}..{m}", r.min),
        None => format!("{}..", r.min),
    }
}

impl Service {
    /// Creates a product owned by `vendor`.
    pub async fn create_product(&self, vendor: i64, product: &str, name: Option<&str>) -> Result<Product, ServerError> {
        if let Some(problem) = product_id_problem(product) {
            return Err(ServerError::Invalid { field: "product", problem });
        }
        let name = name.unwrap_or(product);
        if let Some(problem) = free_text_problem(name, sealrun_format::limits::MAX_DISPLAY_NAME_LEN) {
            return Err(ServerError::Invalid { field: "name", problem });
        }
        let at = now();
        let done = sqlx::query("INSERT INTO products (vendor_id, product, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(vendor)
            .bind(product)
            .bind(name)
            .bind(at)
            .execute(self.db.pool())
            .await;
        if let Err(e) = done {
            let e = ServerError::from(e);
            return Err(if crate::db::is_unique_violation(&e) {
                ServerError::Exists("a product with this id")
            } else {
                e
            });
        }
        Ok(Product { product: product.to_owned(), name: name.to_owned(), created_at: at, releases: Vec::new() })
    }

    /// The vendor's product row; another vendor's product is "not found".
    pub(crate) async fn product_row(&self, vendor: Option<i64>, product: &str) -> Result<ProductRow, ServerError> {
        if let Some(row) = self.hot.products.get(&product.to_owned()) {
            if vendor.is_some_and(|v| v != row.vendor) {
                return Err(ServerError::NotFound("product"));
            }
            return Ok(row);
        }
        let r = sqlx::query("SELECT id, vendor_id, product FROM products WHERE product = $1")
            .bind(product)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(ServerError::NotFound("product"))?;
        let row = ProductRow { id: r.try_get("id")?, vendor: r.try_get("vendor_id")?, product: r.try_get("product")? };
        self.hot.products.put(product.to_owned(), row.clone());
        if vendor.is_some_and(|v| v != row.vendor) {
            return Err(ServerError::NotFound("product"));
        }
        Ok(row)
    }

    /// One of the vendor's products with its releases.
    pub async fn product(&self, vendor: i64, product: &str) -> Result<Product, ServerError> {
        let p = self.product_row(Some(vendor), product).await?;
        let r = sqlx::query("SELECT name, created_at FROM products WHERE id = $1")
            .bind(p.id)
            .fetch_one(self.db.pool())
            .await?;
        let releases = sqlx::query(
            "SELECT major, minor, patch, key_id, package_sha256, package_len FROM releases \
             WHERE product_id = $1 ORDER BY major, minor, patch",
        )
        .bind(p.id)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(ReleaseInfo {
                release: release_of(r)?.to_string(),
                key_id: hex::encode(r.try_get::<Vec<u8>, _>("key_id")?),
                package_sha256: r.try_get("package_sha256")?,
                package_len: opt_i64(r, "package_len")?,
            })
        })
        .collect::<Result<Vec<_>, ServerError>>()?;
        Ok(Product { product: p.product, name: r.try_get("name")?, created_at: r.try_get("created_at")?, releases })
    }

    /// The vendor's products.
    pub async fn products(&self, vendor: i64) -> Result<Vec<Product>, ServerError> {
        let ids: Vec<String> = sqlx::query("SELECT product FROM products WHERE vendor_id = $1 ORDER BY product")
            .bind(vendor)
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.product(vendor, &id).await?);
        }
        Ok(out)
    }

    /// Generates the content key of a release (claims 1, 2), or returns the
    /// existing one: sealing a release again keeps its key, so licenses
    /// already issued keep working.
    pub async fn release_key(&self, vendor: i64, product: &str, release: Release) -> Result<ReleaseKey, ServerError> {
        let p = self.product_row(Some(vendor), product).await?;
        if let Some(existing) = self.release_rows(&p, &ReleaseRange { min: release, max: Some(release) }).await?.pop() {
            return Ok(ReleaseKey {
                release: release.to_string(),
                key_id: hex::encode(existing.key.id().0),
                content_key: hex::encode(existing.key.as_bytes()),
                created: false,
            });
        }
        let key = ContentKey::generate(&mut rng());
        let sealed = self.master.seal(&content_key_context(p.id, release), key.as_bytes());
        let done = sqlx::query(
            "INSERT INTO releases (product_id, major, minor, patch, key_id, content_key_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(p.id)
        .bind(i64::from(release.major))
        .bind(i64::from(release.minor))
        .bind(i64::from(release.patch))
        .bind(key.id().0.to_vec())
        .bind(sealed)
        .bind(now())
        .execute(self.db.pool())
        .await;
        self.hot.releases.forget(&p.id);
        match done {
            Ok(_) => Ok(ReleaseKey {
                release: release.to_string(),
                key_id: hex::encode(key.id().0),
                content_key: hex::encode(key.as_bytes()),
                created: true,
            }),
            Err(e) => {
                let e = ServerError::from(e);
                if crate::db::is_unique_violation(&e) {
                    // Two build machines asked at once: the other one's key stands.
                    Box::pin(self.release_key(vendor, product, release)).await
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The product's releases in `range`, oldest first, keys decrypted.
    pub(crate) async fn release_rows(
        &self,
        p: &ProductRow,
        range: &ReleaseRange,
    ) -> Result<Vec<ReleaseRow>, ServerError> {
        let all = match self.hot.releases.get(&p.id) {
            Some(all) => all,
            None => {
                let all = std::sync::Arc::new(self.load_releases(p).await?);
                self.hot.releases.put(p.id, all.clone());
                all
            }
        };
        Ok(all.iter().filter(|r| range.contains(r.release)).cloned().collect())
    }

    async fn load_releases(&self, p: &ProductRow) -> Result<Vec<ReleaseRow>, ServerError> {
        let rows = sqlx::query(
            "SELECT major, minor, patch, content_key_sealed, package_sha256, package_len FROM releases \
             WHERE product_id = $1 ORDER BY major, minor, patch",
        )
        .bind(p.id)
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let release = release_of(r)?;
            let sealed: Vec<u8> = r.try_get("content_key_sealed")?;
            let key = ContentKey::from_bytes(&*self.master.open32(&content_key_context(p.id, release), &sealed)?);
            out.push(ReleaseRow {
                release,
                key,
                package_sha256: r.try_get("package_sha256")?,
                package_len: opt_i64(r, "package_len")?,
            });
        }
        Ok(out)
    }

    /// What an upload for `product` `release` must match, read before any
    /// of its bytes are taken (so a wrong upload stops at its header).
    pub async fn upload_target(
        &self,
        vendor: i64,
        product: &str,
        release: Release,
    ) -> Result<UploadTarget, ServerError> {
        let p = self.product_row(Some(vendor), product).await?;
        let row = self
            .release_rows(&p, &ReleaseRange { min: release, max: Some(release) })
            .await?
            .pop()
            .ok_or(ServerError::NotFound("release"))?;
        let vendor_key = self.vendor(vendor).await?.vendor_key;
        Ok(UploadTarget { product: p, release, key_id: row.key.id(), vendor_key })
    }

    /// Stores an uploaded package for provisioning. `file` is the upload as
    /// received (a temporary file in the package folder), already checked
    /// whole and signed by [`sealrun_format::package::StreamCheck`] and
    /// against the target by [`UploadTarget::check`] as it streamed in;
    /// `sha` and `len` were computed on the same bytes.
    pub async fn store_checked(
        &self,
        target: &UploadTarget,
        file: &Path,
        sha: String,
        len: i64,
    ) -> Result<ReleaseInfo, ServerError> {
        let (p, release, key_id) = (&target.product, target.release, target.key_id);
        let dest = self.package_path(&sha);
        if !dest.exists() {
            tokio::fs::rename(file, &dest).await.map_err(|source| ServerError::Io {
                action: "cannot store the package",
                path: dest.clone(),
                source,
            })?;
        }
        sqlx::query(
            "UPDATE releases SET package_sha256 = $1, package_len = $2 \
             WHERE product_id = $3 AND major = $4 AND minor = $5 AND patch = $6",
        )
        .bind(&sha)
        .bind(len)
        .bind(p.id)
        .bind(i64::from(release.major))
        .bind(i64::from(release.minor))
        .bind(i64::from(release.patch))
        .execute(self.db.pool())
        .await?;
        self.hot.releases.forget(&p.id);
        Ok(ReleaseInfo {
            release: release.to_string(),
            key_id: hex::encode(key_id.0),
            package_sha256: Some(sha),
            package_len: Some(len),
        })
    }

    /// Where a package with this SHA-256 is stored.
    pub(crate) fn package_path(&self, sha256_hex: &str) -> PathBuf {
        self.packages.join(format!("{sha256_hex}.sealed"))
    }

    /// A fresh temporary file for an upload, in the package folder (so the
    /// finished upload is renamed, not copied, into place).
    pub fn upload_file(&self) -> Result<tempfile::NamedTempFile, ServerError> {
        tempfile::Builder::new().prefix(".upload-").tempfile_in(&self.packages).map_err(|source| ServerError::Io {
            action: "cannot create an upload file in",
            path: self.packages.clone(),
            source,
        })
    }

    /// Largest package upload accepted.
    pub fn max_package_len(&self) -> u64 {
        self.max_package_len
    }
}

fn release_of(r: &sqlx::any::AnyRow) -> Result<Release, ServerError> {
    let part = |c: &str| -> Result<u32, ServerError> {
        u32::try_from(r.try_get::<i64, _>(c)?).map_err(|_| ServerError::SecretUnreadable)
    };
    Ok(Release::new(part("major")?, part("minor")?, part("patch")?))
}
