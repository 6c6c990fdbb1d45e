//! The floating licenses the daemon serves, their content keys unwrapped
//! once at start: with the host's device key, or through its dongle.
use std::path::{Path, PathBuf};

use sealrun::license::device::Device;
use sealrun::license::dongle::{self, Attached};
use sealrun_format::license::AnyLicense;
use sealrun_format::license::{Binding, Holder, License, SeatUnit};
use sealrun_format::{ContentKey, KeyId};

use crate::FloatdError;
use crate::config::Config;

/// One floating license, ready to lend.
pub struct Served {
    /// Its file.
    pub path: PathBuf,
    /// The license (for a sealed one, the license inside).
    pub license: License,
    /// The signed license as sent to clients, who check it against the
    /// package's vendor key.
    pub bytes: Vec<u8>,
    /// Seats.
    pub seats: u32,
    /// What a seat is.
    pub unit: SeatUnit,
    keys: Vec<ContentKey>,
    /// The dongle that holds it, for a sealed license: checked while the
    /// daemon runs.
    pub dongle: Option<Attached>,
}

impl Served {
    /// The content key `id`, if the license carries it.
    pub fn key(&self, id: &KeyId) -> Option<&ContentKey> {
        self.keys.iter().find(|k| &k.id() == id)
    }

    /// The product id.
    pub fn product(&self) -> &str {
        &self.license.terms.product
    }
}

/// Loads every license of `config` for this host, `device`.
pub fn load(config: &Config, device: &Device) -> Result<Vec<Served>, FloatdError> {
    let mut out: Vec<Served> = Vec::new();
    for path in &config.licenses {
        let served = load_one(config, path, device)?;
        if let Some(other) = out.iter().find(|s| s.product() == served.product()) {
            return Err(FloatdError::License {
                path: path.clone(),
                problem: format!(
                    "{} also licenses {}: serve one floating license per product (ask the vendor for one license with the seats added up)",
                    other.path.display(),
                    served.product()
                ),
            });
        }
        out.push(served);
    }
    Ok(out)
}

fn load_one(config: &Config, path: &Path, device: &Device) -> Result<Served, FloatdError> {
    let problem = |problem: String| FloatdError::License { path: path.to_owned(), problem };
    let bytes = sealrun::license::store::read_license_file(path)?;
    let parsed = AnyLicense::parse(&bytes).map_err(|e| problem(format!("{e}")))?;
    let (license, keys, dongle) = match parsed {
        AnyLicense::Plain(license) => {
            let license = *license;
            match license.terms.binding.holder() {
                Holder::Device(d) if d == device.code => {}
                Holder::Device(d) => {
                    return Err(problem(format!(
                        "it is held by device {d}, and this host is {}; ask the vendor for a floating license for the code `sealrun-floatd id` prints here",
                        device.code
                    )));
                }
                Holder::Dongle(_) => return Err(problem("it names a dongle but is not sealed to it".into())),
            }
            license.verify_signature(&license.terms.vendor_key).map_err(|e| problem(format!("{e}")))?;
            let keys = license
                .keys
                .iter()
                .map(|k| license.unwrap_key(&k.key_id, &device.secret))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| problem(format!("{e}")))?;
            (license, keys, None)
        }
        AnyLicense::Sealed(sealed) => {
            let opts = dongle::Options { module: config.pkcs11_module.clone(), pin_file: config.pin_file.clone() };
            let held = dongle::open_held(&opts, config.pkcs11_slot, &sealed, &device.code)?;
            (held.license, held.keys, Some(held.attached))
        }
    };
    let Binding::Floating { seats, unit, .. } = license.terms.binding else {
        return Err(problem(format!(
            "it is not a floating license ({}); a floating license names its seats",
            license.terms.binding.describe()
        )));
    };
    let bytes = license.to_bytes();
    Ok(Served { path: path.to_owned(), license, bytes, seats, unit, keys, dongle })
}
