//! The machine's fixed ID, from the OS (`/etc/machine-id` on Linux, the
//! registry's MachineGuid on Windows, IOPlatformUUID on macOS), through the
//! `machine-uid` crate, which covers each of them.

/// The machine ID as the OS reports it, trimmed; the OS's error when it
/// has none.
pub(crate) fn read() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    machine_uid::get().map(|id| id.trim().to_owned()).map_err(|e| e.to_string().into())
}
