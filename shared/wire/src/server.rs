//! Header names of the licensing server's end-user calls.

/// Request header carrying the activation code on a package download.
pub const CODE_HEADER: &str = "sealrun-code";
/// Request header carrying the device code on a package download.
pub const DEVICE_HEADER: &str = "sealrun-device";
/// Response header carrying the device's license (base64) with a package.
pub const LICENSE_HEADER: &str = "sealrun-license";
/// Response header naming the release of a provisioned package.
pub const RELEASE_HEADER: &str = "sealrun-release";
