//! Provisioning hardware keys (dongles): a fresh dongle key goes into the
//! token as a sensitive, non-extractable object, the vendor keeps its copy in
//! the keystore, and the signed attach record names the permitted device.
use std::path::Path;

use sealrun_format::device::DeviceCode;
use sealrun_format::dongle::{DongleId, DongleKey, make_record};
use sealrun_format::license::LicenseSigner;
use sealrun_format::{UnixTime, VendorPublicKey};
use sealrun_token::{self as token, Provision};

use crate::keystore::Keystore;
use crate::{Result, rng};

/// Environment variable with the token's user PIN for provisioning.
pub const PIN_ENV: &str = "SEALSDK_PIN";

/// What provisioning made.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The new dongle's id.
    pub dongle: DongleId,
    /// The token's label and serial number.
    pub label: String,
    /// The token's serial number.
    pub serial: String,
    /// The device it is permitted on.
    pub device: DeviceCode,
    /// The vendor key its record is signed with.
    pub vendor: VendorPublicKey,
}

/// The token's user PIN: `--pin-file`, else `SEALSDK_PIN`, else a prompt.
pub fn pin(pin_file: Option<&Path>) -> Result<cryptoki::types::AuthPin> {
    use sealrun_token::{PinProblem, TokenError, checked_pin, read_pin_file};
    let first_line = |text: &str| zeroize::Zeroizing::new(text.lines().next().unwrap_or("").to_owned());
    if let Some(f) = pin_file {
        let source = f.display().to_string();
        let Some(text) = read_pin_file(f) else {
            // A file that is not there is an I/O error, as for any input
            // file; one that is there but too long or not text is a PIN problem.
            std::fs::metadata(f).map_err(crate::SdkError::io("cannot read the PIN file", f))?;
            return Err(TokenError::Pin(PinProblem::Unreadable(source)).into());
        };
        return Ok(checked_pin(first_line(&text), &source)?);
    }
    if let Ok(p) = std::env::var(PIN_ENV) {
        let p = zeroize::Zeroizing::new(p);
        return Ok(checked_pin(first_line(&p), PIN_ENV)?);
    }
    match sealrun_host::prompt::prompt_secret("token user PIN: ") {
        Some(p) => Ok(checked_pin(first_line(&p), "the prompt")?),
        None => Err(TokenError::Pin(PinProblem::Missing).into()),
    }
}

/// Provisions the token in `slot` (counted from 0 among slots with a token)
/// of `module` as a new dongle permitted on `device`.
pub fn provision(
    keystore: &Keystore,
    module: &Path,
    slot: usize,
    device: DeviceCode,
    pin: &cryptoki::types::AuthPin,
    replace: bool,
    now: UnixTime,
) -> Result<Provisioned> {
    let signer = keystore.vendor_key()?;
    let mut rng = rng();
    let dongle = DongleId::generate(&mut rng);
    let key = DongleKey::generate(&mut rng);
    let record = make_record(dongle, device, now, &LicenseSigner::Vendor(&signer))?;
    // The vendor's copy first: a token holding a key nobody else has could
    // never get a license.
    keystore.store_dongle_key(&dongle, &key)?;
    let written = token::provision(module, slot, pin, &Provision { dongle, key: &key, record: &record, replace });
    match written {
        Ok(view) => Ok(Provisioned { dongle, label: view.label, serial: view.serial, device, vendor: signer.public() }),
        Err(e) => {
            let _ = keystore.remove_dongle_key(&dongle);
            Err(e.into())
        }
    }
}

/// Writes a dongle the licensing server made (`POST /v1/dongles`: its id,
/// record and key) onto the token in `slot`. The record is checked first:
/// it must parse and name the dongle the server says.
pub fn provision_from_server(
    mut made: serde_json::Value,
    expect: (&VendorPublicKey, &DeviceCode),
    module: &Path,
    slot: usize,
    pin: &cryptoki::types::AuthPin,
    replace: bool,
) -> Result<Provisioned> {
    use base64::Engine;
    use sealrun_format::dongle::DongleRecord;
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |problem: &'static str| {
        crate::SdkError::Invalid(sealrun_format::Error::InvalidInput { field: "server's dongle", problem })
    };
    let dongle: DongleId = made["dongle_id"].as_str().unwrap_or_default().parse()?;
    let record = b64.decode(made["record"].as_str().unwrap_or_default()).map_err(|_| bad("record is not base64"))?;
    // Out of the JSON value into wiped memory.
    let text = match made["key"].take() {
        serde_json::Value::String(s) => zeroize::Zeroizing::new(s),
        _ => return Err(bad("key is missing")),
    };
    let key = zeroize::Zeroizing::new(b64.decode(text.as_bytes()).map_err(|_| bad("key is not base64"))?);
    let key: &[u8; 32] = key.as_slice().try_into().map_err(|_| bad("key is not 32 bytes"))?;
    let key = DongleKey::from_bytes(key);
    let parsed = DongleRecord::parse(&record)?;
    if parsed.dongle != dongle {
        return Err(bad("record names another dongle"));
    }
    // What goes onto the token must be what the launcher will accept: a
    // record for this vendor, signed through its certificate, for the
    // device asked for.
    parsed.verify(expect.0)?;
    if &parsed.device != expect.1 {
        return Err(bad("record permits another device than the one asked for"));
    }
    let view = token::provision(module, slot, pin, &Provision { dongle, key: &key, record: &record, replace })?;
    Ok(Provisioned { dongle, label: view.label, serial: view.serial, device: parsed.device, vendor: parsed.vendor_key })
}
