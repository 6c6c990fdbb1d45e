//! Working with a licensing server: certifying its issuing key, sealing
//! with a key it generates, and the vendor's API calls.
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use sealrun_format::license::certify_issuer;
use sealrun_format::{ContentKey, UnixTime, VendorPublicKey};

use crate::client::Client;
use crate::keystore::Keystore;
use crate::seal::{SealOptions, SealReport, seal_bytes, validate_module};
use crate::{Result, SdkError};

/// Default lifetime of an issuing-key certificate: a year, so a server
/// compromise is bounded without the vendor renewing every week.
pub const DEFAULT_CERT_DAYS: u64 = 365;

/// Certifies the server's issuing key for this vendor until `not_after`,
/// with the keystore's vendor key (which never leaves this machine).
/// Returns the issuing key.
pub fn certify(client: &Client, keystore: &Keystore, not_after: UnixTime) -> Result<VendorPublicKey> {
    let vendor = keystore.vendor_key()?;
    let me: Value = client.get("/v1/vendor")?;
    let issuer_hex = me["issuer_key"].as_str().unwrap_or_default();
    let mut issuer = [0u8; 32];
    hex::decode_to_slice(issuer_hex, &mut issuer).map_err(|_| SdkError::Unreachable {
        url: client.base().to_owned(),
        reason: "the server sent no valid issuing key".into(),
    })?;
    let cert = certify_issuer(&vendor, VendorPublicKey(issuer), not_after);
    let _: Value = client.send(
        "PUT",
        "/v1/vendor/certificate",
        &json!({ "vendor_key": vendor.public().to_string(), "certificate": hex::encode(cert.to_bytes()) }),
        None,
    )?;
    Ok(VendorPublicKey(issuer))
}

#[derive(Deserialize)]
struct ReleaseKey {
    content_key: String,
    created: bool,
}

/// What `seal --server` did.
pub struct ServerSeal {
    /// The local seal.
    pub report: SealReport,
    /// Whether the server made a new key (false: the release had one).
    pub new_key: bool,
    /// Whether the package was uploaded for provisioning.
    pub uploaded: bool,
}

/// Seals with the content key the server keeps for this release (made on
/// first use, claims 1 and 2), so the build machine never stores content
/// keys; then uploads the package so the server can provision it. The
/// product is created on the server if it does not exist yet.
pub fn seal_with_server(
    client: &Client,
    keystore: &Keystore,
    input: &Path,
    output: &Path,
    opts: &SealOptions,
    upload: bool,
) -> Result<ServerSeal> {
    let signer = keystore.vendor_key()?;
    let module = std::fs::read(input).map_err(SdkError::io("cannot read", input))?;
    validate_module(&module).map_err(|reason| SdkError::InvalidModule { path: input.to_owned(), reason })?;
    let releases = format!("/v1/products/{}/releases", opts.product);
    let body = json!({ "release": opts.release.to_string() });
    let key: ReleaseKey = match client.send("POST", &releases, &body, None) {
        Err(SdkError::Server { status: 404, .. }) => {
            let name = opts.display_name.clone().unwrap_or_else(|| opts.product.clone());
            let _: Value =
                client.send("POST", "/v1/products", &json!({ "product": opts.product, "name": name }), None)?;
            client.send("POST", &releases, &body, None)?
        }
        r => r?,
    };
    let created = key.created;
    let hex_key = Zeroizing::new(key.content_key);
    let mut raw = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_key.as_str(), raw.as_mut()).map_err(|_| SdkError::Unreachable {
        url: client.base().to_owned(),
        reason: "the server sent no valid content key".into(),
    })?;
    let content_key = ContentKey::from_bytes(&raw);
    let report = seal_bytes(&module, &content_key, &signer, output, opts)?;
    if upload {
        let path = format!("/v1/products/{}/releases/{}/package", opts.product, opts.release);
        client.upload(&path, output)?;
    }
    Ok(ServerSeal { report, new_key: created, uploaded: upload })
}
