//! This device's identity: the machine ID and the device key.
//!
//! The device key is made on first use and stored 0600, sealed to the
//! machine ID: copied to another machine it does not open, so that machine
//! does not become this device. The machine ID comes from the OS (via
//! machine-uid: /etc/machine-id on Linux) or, for containers without one and
//! for tests that simulate several devices, from `SEALRUN_MACHINE_ID`.
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use sealrun_format::device::{DeviceCode, DeviceSecret, open_device_key, seal_device_key};
use zeroize::Zeroizing;

use crate::error::{DeviceError, LaunchError};
use crate::platform::dirs;
use crate::platform::locked_memory::SecretBox;

/// Environment variable that supplies the machine ID where the OS has none.
pub const MACHINE_ID_ENV: &str = "SEALRUN_MACHINE_ID";

/// The machine's fixed ID. Never printed or sent anywhere.
pub fn machine_id() -> Result<Zeroizing<Vec<u8>>, LaunchError> {
    if let Some(id) = std::env::var_os(MACHINE_ID_ENV).filter(|v| !v.is_empty()) {
        return Ok(Zeroizing::new(id.into_encoded_bytes()));
    }
    match crate::platform::machine_id() {
        Ok(id) if !id.is_empty() => Ok(Zeroizing::new(id.into_bytes())),
        Ok(_) => Err(DeviceError::NoMachineId(None).into()),
        Err(e) => Err(DeviceError::NoMachineId(Some(e)).into()),
    }
}

/// This device: its secret key and its device code.
pub struct Device {
    /// The device secret, in a locked page kept out of core dumps (shared
    /// with a floating seat's watcher, which renews with it).
    pub secret: Arc<SecretBox<DeviceSecret>>,
    /// The device code.
    pub code: DeviceCode,
    /// Where the key is stored.
    pub key_file: PathBuf,
}

impl Device {
    /// This device from its secret (moved into a page of its own).
    pub fn new(secret: DeviceSecret, code: DeviceCode, key_file: PathBuf) -> Device {
        Device { secret: Arc::new(SecretBox::new(secret)), code, key_file }
    }
}

/// Loads this device's key, making it on first use.
pub fn load_or_create() -> Result<Device, LaunchError> {
    load_or_create_at(dirs::device_key_file())
}

/// Loads the device key kept in `path` (a service's own state directory,
/// e.g. `sealrun-floatd`'s), making it on first use.
pub fn load_or_create_at(path: PathBuf) -> Result<Device, LaunchError> {
    let id = machine_id()?;
    for _ in 0..2 {
        match fs::read(&path) {
            Ok(bytes) => {
                // Made elsewhere or damaged: either way it is not this
                // device's key, and the way out is the same.
                let secret = open_device_key(&bytes, &id)
                    .map_err(|_| LaunchError::Device(DeviceError::ForeignKey(path.clone())))?;
                let code = secret.device_code(&id);
                return Ok(Device::new(secret, code, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path, &id)?,
            Err(e) => return Err(LaunchError::io("cannot read", &path)(e)),
        }
    }
    Err(LaunchError::Device(DeviceError::ForeignKey(path)))
}

fn create(path: &PathBuf, machine_id: &[u8]) -> Result<(), LaunchError> {
    let dir = path.parent().expect("the key file is inside the data dir");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(LaunchError::io("cannot create", dir))?;
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let secret = DeviceSecret::generate(&mut rng);
    let file = seal_device_key(&secret, machine_id, &mut rng);
    // Written to a private temporary file first and then hard-linked into
    // place: the key file appears whole or not at all, and if another launch
    // made one at the same moment, theirs is kept (the caller reads it back).
    match sealrun_host::fs::write_new(path, &file, 0o600) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LaunchError::io("cannot create", path)(e)),
    }
}
