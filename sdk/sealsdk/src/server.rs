//! Working with a licensing server: certifying its issuing key, sealing
//! with a key it generates, and the vendor's API calls.
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use sealrun_format::license::certify_issuer;
use sealrun_format::{ContentKey, UnixTime, VendorPublicKey};

use sealrun_format::ledger::ScheduledPlan;

use crate::client::Client;
use crate::keystore::Keystore;
use crate::ledger::PlanLine;
use crate::ledger_state::{CodeRecord, LedgerRecords, Pin};
use crate::seal::{SealOptions, SealReport, seal_bytes, validate_guest};
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
    let guest = validate_guest(&module).map_err(|source| SdkError::InvalidGuest { path: input.to_owned(), source })?;
    let kind = guest.kind;
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
    let report =
        SealReport { imports: guest.imports, ..seal_bytes(&module, kind, &content_key, &signer, output, opts)? };
    if upload {
        let path = format!("/v1/products/{}/releases/{}/package", opts.product, opts.release);
        client.upload(&path, output)?;
    }
    Ok(ServerSeal { report, new_key: created, uploaded: upload })
}

/// What pinning the server's operator key did.
pub struct Pinned {
    /// The operator key.
    pub operator: VendorPublicKey,
    /// Whether this keystore pinned it now (false: it had, with the same key).
    pub new: bool,
    /// The ledger entries before the records start.
    pub tracking_from: u64,
    /// Codes newly recorded.
    pub codes: usize,
}

/// Pins the server's operator key in the keystore's ledger records (once;
/// a different key later is refused), and records where the records start:
/// the server's current signed head, and the activation codes that exist.
pub fn pin_operator(client: &Client, records: &LedgerRecords, now: UnixTime) -> Result<Pinned> {
    let me: Value = client.get("/v1/vendor")?;
    let too_old = || SdkError::Unreachable {
        url: client.base().to_owned(),
        reason:
            "the server signs no invoices (no operator key): it is older than this sealsdk; ask the operator to upgrade"
                .into(),
    };
    let key_hex = me["operator_key"].as_str().ok_or_else(too_old)?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex, &mut key).map_err(|_| too_old())?;
    let operator = VendorPublicKey(key);
    let vendor = me["name"].as_str().unwrap_or_default().to_owned();
    let export = crate::ledger::parse_signed_export(&client.get_text("/v1/ledger")?)?;
    let head = crate::ledger::check_head(&export, &operator, now)?;
    let pin =
        Pin { server: client.base().to_owned(), vendor, operator_key: operator.to_string(), tracking_from: head.seq };
    let new = records.set_pin(&pin)?;
    if new {
        records.add_head(&head)?;
    }
    let codes = record_codes(records, &client.get::<Value>("/v1/codes")?["codes"])?;
    let tracking_from = records.pin()?.map_or(head.seq, |p| p.tracking_from);
    Ok(Pinned { operator, new, tracking_from, codes })
}

/// Records the codes in a `codes` list from the server.
pub fn record_codes(records: &LedgerRecords, codes: &Value) -> Result<usize> {
    let list: Vec<CodeRecord> = codes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(CodeRecord {
                id: c["id"].as_u64()?,
                product: c["product"].as_str()?.to_owned(),
                max_activations: c["max_activations"].as_u64()?,
                transfer_limit: c["transfer_limit"].as_u64()?,
            })
        })
        .collect();
    records.add_codes(&list)
}

/// The server's plan history for this vendor.
pub fn plan_history(client: &Client) -> Result<Vec<ScheduledPlan>> {
    #[derive(Deserialize)]
    struct History {
        plans: Vec<Scheduled>,
    }
    #[derive(Deserialize)]
    struct Scheduled {
        effective_from: u64,
        plan: PlanLine,
    }
    let h: History = client.get("/v1/vendor/plans")?;
    Ok(h.plans.into_iter().map(|s| ScheduledPlan { effective_from: s.effective_from, plan: s.plan.plan() }).collect())
}
