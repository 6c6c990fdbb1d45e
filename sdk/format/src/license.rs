//! The license format (`*.license`), versions 1 and 2.
//!
//! ```text
//! magic "SEALLIC\x1a" | version u16 | body length u32 | body | signature (64)
//! ```
//! Version 2 adds to each feature an optional value and expiry, and a list
//! of meters; a license that uses neither is still written as version 1, so
//! that launchers from before version 2 keep reading it.
//! The body holds the terms, the content keys wrapped to exactly one holder,
//! and the issuer: the vendor key itself, or an issuing key with a
//! certificate signed by the vendor key. The signature (by the vendor or the
//! certified issuing key) covers every byte before it.
use rand_core::CryptoRng;

use crate::cursor::{Cursor, PutExt};
use crate::device::{DeviceCode, DeviceSecret, MACHINE_TAG_LEN};
use crate::dongle::{
    DONGLE_ID_LEN, DongleId, DongleKey, NONCE_LEN, SEALED_LICENSE_MAGIC, SealedLicense, TokenDecrypt, seal_license,
};
pub use crate::issuer::{ISSUER_CERT_LEN, Issuer, IssuerCert, LicenseSigner, certify_issuer};
use crate::issuer::{decode_issuer, encode_issuer, verify_issued};
use crate::keys::{ContentKey, KeyId, SIGNATURE_LEN, VendorPublicKey};
use crate::limits::*;
use crate::release::ReleaseRange;
use crate::text::{feature_problem, free_text_problem, product_id_problem};
use crate::wrap::{ENC_LEN, WRAPPED_LEN, unwrap_on_device, wrap_to_device};
use crate::{Artifact, Error, Release, Result, UnixTime};

/// Magic bytes at the start of every license.
pub const LICENSE_MAGIC: [u8; 8] = *b"SEALLIC\x1a";
/// The newest license format version this build reads and writes.
pub const LICENSE_VERSION: u16 = 2;
/// The first version: features are bare names and there are no meters.
pub const LICENSE_VERSION_1: u16 = 1;

const A: Artifact = Artifact::License;

/// Who may use a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// One device, named by its device code.
    Device(DeviceCode),
    /// Whoever holds a hardware key (dongle), on the device its record
    /// permits. The license is sealed to the dongle key.
    Dongle {
        /// The dongle.
        dongle: DongleId,
        /// How many copies of the app may run at once with this dongle.
        count: u32,
    },
    /// A floating license: held by a site's license manager
    /// (`sealrun-floatd`), which lends up to `seats` seats at a time to
    /// the devices of its network.
    Floating {
        /// What holds the license: the manager's device, or its dongle
        /// (then the license is sealed to the dongle key).
        holder: Holder,
        /// How many seats may be in use at once.
        seats: u32,
        /// What one seat is.
        unit: SeatUnit,
    },
}

/// Who a license's content keys are wrapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A device (HPKE to its key).
    Device(DeviceCode),
    /// A dongle (AES-256-GCM under its key).
    Dongle(DongleId),
}

/// What one seat of a floating license is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatUnit {
    /// One computer, however many copies of the app it runs: the number of
    /// computers executing the software is what is counted.
    Computer,
    /// One running copy of the app.
    Process,
}

impl SeatUnit {
    fn code(self) -> u8 {
        match self {
            SeatUnit::Computer => 1,
            SeatUnit::Process => 2,
        }
    }

    /// "computer" or "process", for messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatUnit::Computer => "computer",
            SeatUnit::Process => "process",
        }
    }
}

impl Binding {
    /// What the license is bound to, in words.
    pub fn describe(&self) -> String {
        match self {
            Binding::Device(d) => format!("device {d}"),
            Binding::Dongle { dongle, count } => format!("dongle {dongle} ({count} at once)"),
            Binding::Floating { holder, seats, unit } => {
                let on = match holder {
                    Holder::Device(d) => format!("device {d}"),
                    Holder::Dongle(id) => format!("dongle {id}"),
                };
                let s = if *seats == 1 { "" } else { "s" };
                format!("floating, {seats} seat{s} (one per {}), held by the license manager on {on}", unit.as_str())
            }
        }
    }

    /// Who the content keys are wrapped to.
    pub fn holder(&self) -> Holder {
        match *self {
            Binding::Device(d) => Holder::Device(d),
            Binding::Dongle { dongle, .. } => Holder::Dongle(dongle),
            Binding::Floating { holder, .. } => holder,
        }
    }
}

/// The signed terms of a license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Random license id.
    pub license_id: [u8; 16],
    /// The vendor key the package must carry.
    pub vendor_key: VendorPublicKey,
    /// Product id.
    pub product: String,
    /// Releases covered.
    pub releases: ReleaseRange,
    /// Who the license is for.
    pub licensee: String,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// Not valid before this instant.
    pub not_before: UnixTime,
    /// Not valid from this instant on; `None` never expires.
    pub expires: Option<UnixTime>,
    /// Enabled features, sorted by name, names unique.
    pub features: Vec<Feature>,
    /// Usage meters, sorted by name, names unique.
    pub meters: Vec<Meter>,
    /// Who may use it.
    pub binding: Binding,
}

/// A feature the license enables, with an optional value the app reads
/// (e.g. `seats-per-project=25`) and an optional expiry of its own: the
/// feature is gone from that instant on while the license goes on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Feature {
    /// The name (feature rules: lowercase letters, digits, `-_.`).
    pub name: String,
    /// The value, free text.
    pub value: Option<String>,
    /// Not enabled from this instant on; `None` lasts as long as the license.
    pub expires: Option<UnixTime>,
}

impl Feature {
    /// A feature with a name only, as version 1 licenses carry.
    pub fn named(name: impl Into<String>) -> Feature {
        Feature { name: name.into(), value: None, expires: None }
    }

    /// `NAME` or `NAME=VALUE`, the spelling [`Feature::from_str`] reads
    /// (the expiry is not part of it).
    ///
    /// [`Feature::from_str`]: core::str::FromStr::from_str
    pub fn spec(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether the feature is enabled at `now` (the license itself being
    /// valid is checked separately).
    pub fn enabled_at(&self, now: UnixTime) -> bool {
        self.expires.is_none_or(|e| now < e)
    }

    /// Gives feature `name` of `features` its own expiry `at`, adding the
    /// feature if it is not there yet. `name` is a name only, never
    /// `NAME=VALUE`: an expiry sets no value.
    pub fn set_expiry(features: &mut Vec<Feature>, name: &str, at: UnixTime) -> Result<()> {
        if let Some(problem) = feature_problem(name) {
            return Err(Error::InvalidInput { field: "feature name", problem });
        }
        match features.iter_mut().find(|f| f.name == name) {
            Some(f) => f.expires = Some(at),
            None => features.push(Feature { expires: Some(at), ..Feature::named(name) }),
        }
        Ok(())
    }

    fn is_plain(&self) -> bool {
        self.value.is_none() && self.expires.is_none()
    }
}

/// A usage meter: how many units of something (exports, runs) the license
/// allows, over its life or per calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterPeriod {
    /// The limit is for the whole life of the license.
    Life,
    /// The limit starts again at 00:00 UTC on the first of each month.
    Month,
}

impl MeterPeriod {
    fn code(self) -> u8 {
        match self {
            MeterPeriod::Life => 1,
            MeterPeriod::Month => 2,
        }
    }

    /// "life" or "month", for messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterPeriod::Life => "life",
            MeterPeriod::Month => "month",
        }
    }
}

/// `NAME` or `NAME=VALUE`, as `sealsdk license issue --feature` and the
/// server's API take it. The expiry is given apart (`--feature-expires`).
impl core::str::FromStr for Feature {
    type Err = Error;

    fn from_str(s: &str) -> Result<Feature> {
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if let Some(problem) = feature_problem(name) {
            return Err(Error::InvalidInput { field: "feature name", problem });
        }
        if let Some(problem) = value.and_then(|v| free_text_problem(v, MAX_FEATURE_VALUE_LEN)) {
            return Err(Error::InvalidInput { field: "feature value", problem });
        }
        Ok(Feature { name: name.to_owned(), value: value.map(str::to_owned), expires: None })
    }
}

/// A meter the license carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// The name (feature rules).
    pub name: String,
    /// How many units may be consumed per period, 1 to [`MAX_METER_LIMIT`].
    pub limit: u64,
    /// What the limit is for.
    pub period: MeterPeriod,
}

impl Terms {
    /// The license id as hex.
    pub fn license_id_hex(&self) -> String {
        self.license_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The feature named `name`, if the license has it, whether or not it
    /// has expired.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Whether the license enables feature `name` at `now`.
    pub fn has_feature(&self, name: &str, now: UnixTime) -> bool {
        self.feature(name).is_some_and(|f| f.enabled_at(now))
    }

    /// The meter named `name`, if the license has it.
    pub fn meter(&self, name: &str) -> Option<&Meter> {
        self.meters.iter().find(|m| m.name == name)
    }

    /// The feature names, in order.
    pub fn feature_names(&self) -> Vec<&str> {
        self.features.iter().map(|f| f.name.as_str()).collect()
    }

    /// The oldest format version that can carry these terms.
    pub fn format_version(&self) -> u16 {
        if self.meters.is_empty() && self.features.iter().all(Feature::is_plain) {
            LICENSE_VERSION_1
        } else {
            LICENSE_VERSION
        }
    }

    fn problem(&self) -> Option<(&'static str, &'static str)> {
        if let Some(p) = product_id_problem(&self.product) {
            return Some(("product id", p));
        }
        if let Some(p) = free_text_problem(&self.licensee, MAX_LICENSEE_LEN) {
            return Some(("licensee", p));
        }
        if self.releases.max.is_some_and(|max| max < self.releases.min) {
            return Some(("release range", "ends before it starts"));
        }
        if self.expires.is_some_and(|e| e <= self.not_before) {
            return Some(("expiry", "is not after the start of validity"));
        }
        if self.features.len() > MAX_FEATURES {
            return Some(("features", "are more than allowed"));
        }
        if let Some(p) = self.features.iter().find_map(|f| feature_problem(&f.name)) {
            return Some(("feature", p));
        }
        if !self.features.windows(2).all(|w| w[0].name < w[1].name) {
            return Some(("features", "are not sorted and unique"));
        }
        for f in &self.features {
            if let Some(p) = f.value.as_deref().and_then(|v| free_text_problem(v, MAX_FEATURE_VALUE_LEN)) {
                return Some(("feature value", p));
            }
            if f.expires.is_some_and(|e| e <= self.not_before) {
                return Some(("feature expiry", "is not after the start of validity"));
            }
        }
        if self.meters.len() > MAX_METERS {
            return Some(("meters", "are more than allowed"));
        }
        if let Some(p) = self.meters.iter().find_map(|m| feature_problem(&m.name)) {
            return Some(("meter", p));
        }
        if !self.meters.windows(2).all(|w| w[0].name < w[1].name) {
            return Some(("meters", "are not sorted and unique"));
        }
        if self.meters.iter().any(|m| !(1..=MAX_METER_LIMIT).contains(&m.limit)) {
            return Some(("meter limit", "is not between 1 and the most allowed"));
        }
        if let Binding::Dongle { count, .. } = self.binding
            && !(1..=MAX_DONGLE_COUNT).contains(&count)
        {
            return Some(("count", "is not between 1 and the most allowed"));
        }
        if let Binding::Floating { seats, .. } = self.binding
            && !(1..=MAX_FLOATING_SEATS).contains(&seats)
        {
            return Some(("seats", "are not between 1 and the most allowed"));
        }
        None
    }
}

/// One content key wrapped to the license holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The release the key encrypts.
    pub release: Release,
    /// Identifier of the key.
    pub key_id: KeyId,
    blob: KeyBlob,
}

/// How a content key is wrapped; the license's binding decides which.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyBlob {
    /// HPKE to a device.
    Device { enc: [u8; ENC_LEN], wrapped: [u8; WRAPPED_LEN] },
    /// AES-256-GCM under a dongle key (32 key bytes plus the tag).
    Dongle { nonce: [u8; NONCE_LEN], wrapped: [u8; WRAPPED_LEN] },
}

fn wrap_aad(license_id: &[u8; 16], key_id: &KeyId) -> Vec<u8> {
    let mut aad = b"sealrun/v1/license-key\0".to_vec();
    aad.extend_from_slice(license_id);
    aad.extend_from_slice(&key_id.0);
    aad
}

/// A parsed license.
#[derive(Debug, Clone)]
pub struct License {
    /// The terms.
    pub terms: Terms,
    /// Wrapped content keys, one per release, sorted by release.
    pub keys: Vec<WrappedKey>,
    /// Who signed it.
    pub issuer: Issuer,
    signed: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
}

impl License {
    /// Parses a license strictly. No signature is checked yet.
    pub fn parse(input: &[u8]) -> Result<License> {
        let mut c = Cursor::new(input, A);
        let version = c.magic_and_versions(&LICENSE_MAGIC, LICENSE_VERSION_1..=LICENSE_VERSION)?;
        let len = c.u32()?;
        if len > MAX_LICENSE_BODY_LEN {
            return Err(c.malformed("body length", "is larger than allowed"));
        }
        let body = c.bytes(len as usize)?;
        let signed_len = c.position();
        let signature = c.array::<SIGNATURE_LEN>()?;
        c.finish()?;
        let (terms, keys, issuer) = decode_body(body, version).map_err(|e| match e {
            Error::Truncated { .. } | Error::TrailingData { .. } => {
                Error::Malformed { artifact: A, field: "body", problem: "does not match its declared length" }
            }
            other => other,
        })?;
        Ok(License { terms, keys, issuer, signed: input[..signed_len].to_vec(), signature })
    }

    /// Verifies the signature chain up to `vendor_key`, the key the package
    /// carries. The license must name the same vendor key.
    pub fn verify_signature(&self, vendor_key: &VendorPublicKey) -> Result<()> {
        if &self.terms.vendor_key != vendor_key {
            return Err(Error::OtherVendor {
                licensed: self.terms.vendor_key.short_id(),
                package: vendor_key.short_id(),
            });
        }
        verify_issued(vendor_key, &self.issuer, self.terms.issued_at, &signed_message(&self.signed), &self.signature, A)
    }

    /// The wrapped key for `key_id`, if the license carries it.
    pub fn key_for(&self, key_id: &KeyId) -> Option<&WrappedKey> {
        self.keys.iter().find(|k| &k.key_id == key_id)
    }

    /// Unwraps the content key with id `key_id` using the device secret
    /// (of the licensed device, or of the license manager holding a
    /// floating license).
    pub fn unwrap_key(&self, key_id: &KeyId, secret: &DeviceSecret) -> Result<ContentKey> {
        let Holder::Device(device) = self.terms.binding.holder() else { return Err(Error::UnwrapFailed) };
        let entry = self.key_for(key_id).ok_or(Error::UnwrapFailed)?;
        let KeyBlob::Device { enc, wrapped } = &entry.blob else { return Err(Error::UnwrapFailed) };
        let key = unwrap_on_device(enc, wrapped, secret, &device, &wrap_aad(&self.terms.license_id, key_id))?;
        if &key.id() != key_id {
            return Err(Error::UnwrapFailed);
        }
        Ok(key)
    }

    /// What the dongle must decrypt to reveal the content key `key_id` of a
    /// dongle-bound license.
    pub fn dongle_key_request(&self, key_id: &KeyId) -> Result<TokenDecrypt> {
        let entry = self.key_for(key_id).ok_or(Error::UnwrapFailed)?;
        let KeyBlob::Dongle { nonce, wrapped } = &entry.blob else { return Err(Error::UnwrapFailed) };
        Ok(TokenDecrypt { nonce: *nonce, aad: wrap_aad(&self.terms.license_id, key_id), ciphertext: wrapped.to_vec() })
    }

    /// The content key `key_id` from what the dongle decrypted.
    pub fn key_from_dongle(&self, key_id: &KeyId, plaintext: &[u8]) -> Result<ContentKey> {
        let bytes: &[u8; 32] = plaintext.try_into().map_err(|_| Error::UnwrapFailed)?;
        let key = ContentKey::from_bytes(bytes);
        if &key.id() != key_id {
            return Err(Error::UnwrapFailed);
        }
        Ok(key)
    }

    /// Checks that the license covers the package described by `manifest`
    /// at time `now`: same product, release in range, a key for this build,
    /// and within the validity period. Signatures and the device binding
    /// are checked separately.
    pub fn check_covers(&self, manifest: &crate::package::Manifest, now: UnixTime) -> Result<()> {
        let t = &self.terms;
        if t.product != manifest.product {
            return Err(Error::WrongProduct { licensed: t.product.clone(), package: manifest.product.clone() });
        }
        if !t.releases.contains(manifest.release) {
            return Err(Error::ReleaseNotLicensed { licensed: t.releases.to_string(), package: manifest.release });
        }
        if !self.keys.iter().any(|k| k.key_id == manifest.key_id && k.release == manifest.release) {
            return Err(Error::NoKeyForPackage(manifest.release));
        }
        if now < t.not_before {
            return Err(Error::NotYetValid(t.not_before));
        }
        if let Some(e) = t.expires.filter(|&e| now >= e) {
            return Err(Error::Expired(e));
        }
        Ok(())
    }

    /// The license bytes as parsed (for storing a copy).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.signed.clone();
        v.extend_from_slice(&self.signature);
        v
    }
}

fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut m = b"sealrun/v1/license\0".to_vec();
    m.extend_from_slice(signed);
    m
}

fn put_release(v: &mut Vec<u8>, r: Release) {
    v.extend_from_slice(&r.to_bytes());
}

fn encode_body(terms: &Terms, keys: &[WrappedKey], issuer: &Issuer, version: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&terms.license_id);
    b.extend_from_slice(&terms.vendor_key.0);
    b.put_str8(&terms.product);
    put_release(&mut b, terms.releases.min);
    b.put_u8(u8::from(terms.releases.max.is_some()));
    if let Some(max) = terms.releases.max {
        put_release(&mut b, max);
    }
    b.put_str16(&terms.licensee);
    b.put_u64(terms.issued_at);
    b.put_u64(terms.not_before);
    b.put_u8(u8::from(terms.expires.is_some()));
    if let Some(e) = terms.expires {
        b.put_u64(e);
    }
    b.put_u8(terms.features.len() as u8);
    for f in &terms.features {
        b.put_str8(&f.name);
        if version >= 2 {
            // One spelling for each feature: a flag bit per optional part.
            b.put_u8(u8::from(f.value.is_some()) | u8::from(f.expires.is_some()) << 1);
            if let Some(v) = &f.value {
                b.put_str8(v);
            }
            if let Some(e) = f.expires {
                b.put_u64(e);
            }
        }
    }
    if version >= 2 {
        b.put_u8(terms.meters.len() as u8);
        for m in &terms.meters {
            b.put_str8(&m.name);
            b.put_u64(m.limit);
            b.put_u8(m.period.code());
        }
    }
    match terms.binding {
        Binding::Device(d) => {
            b.put_u8(1);
            b.extend_from_slice(&d.machine_tag);
            b.extend_from_slice(&d.public_key);
        }
        Binding::Dongle { dongle, count } => {
            b.put_u8(2);
            b.extend_from_slice(&dongle.0);
            b.put_u32(count);
        }
        Binding::Floating { holder, seats, unit } => {
            match holder {
                Holder::Device(d) => {
                    b.put_u8(3);
                    b.extend_from_slice(&d.machine_tag);
                    b.extend_from_slice(&d.public_key);
                }
                Holder::Dongle(dongle) => {
                    b.put_u8(4);
                    b.extend_from_slice(&dongle.0);
                }
            }
            b.put_u32(seats);
            b.put_u8(unit.code());
        }
    }
    b.put_u8(keys.len() as u8);
    for k in keys {
        put_release(&mut b, k.release);
        b.extend_from_slice(&k.key_id.0);
        match &k.blob {
            KeyBlob::Device { enc, wrapped } => {
                b.extend_from_slice(enc);
                b.extend_from_slice(wrapped);
            }
            KeyBlob::Dongle { nonce, wrapped } => {
                b.extend_from_slice(nonce);
                b.extend_from_slice(wrapped);
            }
        }
    }
    encode_issuer(&mut b, issuer);
    b
}

fn decode_body(body: &[u8], version: u16) -> Result<(Terms, Vec<WrappedKey>, Issuer)> {
    let mut c = Cursor::new(body, A);
    let license_id = c.array()?;
    let vendor_key = VendorPublicKey(c.array()?);
    let product = c.str8("product id", MAX_PRODUCT_ID_LEN)?.to_owned();
    let min = Release::from_bytes(c.array()?);
    let max = if c.flag("release range")? { Some(Release::from_bytes(c.array()?)) } else { None };
    let licensee = c.str16("licensee", MAX_LICENSEE_LEN)?.to_owned();
    let issued_at = c.u64()?;
    let not_before = c.u64()?;
    let expires = if c.flag("expiry")? { Some(c.u64()?) } else { None };
    let nf = c.u8()? as usize;
    if nf > MAX_FEATURES {
        return Err(c.malformed("features", "are more than allowed"));
    }
    let mut features = Vec::with_capacity(nf);
    for _ in 0..nf {
        let mut f = Feature::named(c.str8("feature", MAX_FEATURE_LEN)?);
        if version >= 2 {
            let parts = c.u8()?;
            if parts & !0b11 != 0 {
                return Err(c.malformed("feature", "has unknown flag bits"));
            }
            if parts & 1 != 0 {
                f.value = Some(c.str8("feature value", MAX_FEATURE_VALUE_LEN)?.to_owned());
            }
            if parts & 2 != 0 {
                f.expires = Some(c.u64()?);
            }
        }
        features.push(f);
    }
    let mut meters = Vec::new();
    if version >= 2 {
        let nm = c.u8()? as usize;
        if nm > MAX_METERS {
            return Err(c.malformed("meters", "are more than allowed"));
        }
        for _ in 0..nm {
            let name = c.str8("meter", MAX_FEATURE_LEN)?.to_owned();
            let limit = c.u64()?;
            let period = match c.u8()? {
                1 => MeterPeriod::Life,
                2 => MeterPeriod::Month,
                _ => return Err(c.malformed("meter period", "is neither life nor month")),
            };
            meters.push(Meter { name, limit, period });
        }
    }
    let binding = match c.u8()? {
        1 => Binding::Device(DeviceCode { machine_tag: c.array::<MACHINE_TAG_LEN>()?, public_key: c.array()? }),
        2 => Binding::Dongle { dongle: DongleId(c.array::<DONGLE_ID_LEN>()?), count: c.u32()? },
        kind @ (3 | 4) => {
            let holder = if kind == 3 {
                Holder::Device(DeviceCode { machine_tag: c.array::<MACHINE_TAG_LEN>()?, public_key: c.array()? })
            } else {
                Holder::Dongle(DongleId(c.array::<DONGLE_ID_LEN>()?))
            };
            let seats = c.u32()?;
            let unit = match c.u8()? {
                1 => SeatUnit::Computer,
                2 => SeatUnit::Process,
                _ => return Err(c.malformed("seat unit", "is neither computer nor process")),
            };
            Binding::Floating { holder, seats, unit }
        }
        _ => return Err(c.malformed("binding", "has an unknown kind")),
    };
    let nk = c.u8()? as usize;
    if nk == 0 || nk > MAX_WRAPPED_KEYS {
        return Err(c.malformed("key list", "is empty or longer than allowed"));
    }
    let mut keys = Vec::with_capacity(nk);
    for _ in 0..nk {
        let release = Release::from_bytes(c.array()?);
        let key_id = KeyId(c.array()?);
        let blob = match binding.holder() {
            Holder::Device(_) => KeyBlob::Device { enc: c.array()?, wrapped: c.array()? },
            Holder::Dongle(_) => KeyBlob::Dongle { nonce: c.array()?, wrapped: c.array()? },
        };
        keys.push(WrappedKey { release, key_id, blob });
    }
    let issuer = decode_issuer(&mut c)?;
    c.finish()?;
    let terms = Terms {
        license_id,
        vendor_key,
        product,
        releases: ReleaseRange { min, max },
        licensee,
        issued_at,
        not_before,
        expires,
        features,
        meters,
        binding,
    };
    if let Some((field, problem)) = terms.problem() {
        return Err(Error::Malformed { artifact: A, field, problem });
    }
    // One spelling per license: what version 1 can carry is written as
    // version 1.
    if version != terms.format_version() {
        return Err(Error::Malformed { artifact: A, field: "version", problem: "is 2 for terms version 1 can carry" });
    }
    if let Some(problem) = keys_problem(&terms, &keys) {
        return Err(Error::Malformed { artifact: A, field: "key list", problem });
    }
    Ok((terms, keys, issuer))
}

fn keys_problem(terms: &Terms, keys: &[WrappedKey]) -> Option<&'static str> {
    if !keys.windows(2).all(|w| w[0].release < w[1].release) {
        return Some("is not sorted by release without repeats");
    }
    if !keys.iter().all(|k| terms.releases.contains(k.release)) {
        return Some("has a key for a release outside the licensed range");
    }
    None
}

/// `NAME=LIMIT` (for the license's life) or `NAME=LIMIT/month` (per
/// calendar month, UTC), as `sealsdk license issue --meter` and the
/// server's API take it; `NAME=LIMIT/life` is accepted too.
impl core::str::FromStr for Meter {
    type Err = Error;

    fn from_str(s: &str) -> Result<Meter> {
        const SHAPE: Error = Error::InvalidInput {
            field: "meter",
            problem: "must be NAME=LIMIT or NAME=LIMIT/month, e.g. exports=1000",
        };
        let (name, rest) = s.split_once('=').ok_or(SHAPE)?;
        if let Some(problem) = feature_problem(name) {
            return Err(Error::InvalidInput { field: "meter name", problem });
        }
        let (limit, period) = match rest.split_once('/') {
            None => (rest, MeterPeriod::Life),
            Some((l, "life")) => (l, MeterPeriod::Life),
            Some((l, "month")) => (l, MeterPeriod::Month),
            Some(_) => {
                return Err(Error::InvalidInput { field: "meter period", problem: "must be /month or /life" });
            }
        };
        // Plain decimal only: one spelling per limit.
        let canonical = !limit.is_empty() && limit.bytes().all(|b| b.is_ascii_digit()) && !limit.starts_with('0');
        let limit = limit.parse::<u64>().ok().filter(|l| canonical && (1..=MAX_METER_LIMIT).contains(l)).ok_or(
            Error::InvalidInput { field: "meter limit", problem: "must be a whole number from 1 to 9007199254740991" },
        )?;
        Ok(Meter { name: name.to_owned(), limit, period })
    }
}

impl core::fmt::Display for Meter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.period {
            MeterPeriod::Life => write!(f, "{}={}", self.name, self.limit),
            MeterPeriod::Month => write!(f, "{}={}/month", self.name, self.limit),
        }
    }
}

/// Issues a license held by a device for `terms` (a device license, or a
/// floating license for a license manager's device), wrapping each of
/// `keys` (one per release, each within the licensed range) to that device.
pub fn issue(
    terms: Terms,
    keys: &[(Release, &ContentKey)],
    signer: &LicenseSigner<'_>,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>> {
    if !matches!(terms.binding.holder(), Holder::Device(_)) {
        return Err(Error::InvalidInput { field: "binding", problem: "is not a device (dongle licenses are sealed)" });
    }
    issue_signed(terms, keys, signer, None, rng)
}

/// Issues a license bound to a dongle: each content key is wrapped under the
/// dongle key, and the whole signed license is then sealed under it too, so
/// neither key nor terms can be read without the token. `terms.binding`
/// must name the dongle.
pub fn issue_for_dongle(
    terms: Terms,
    keys: &[(Release, &ContentKey)],
    signer: &LicenseSigner<'_>,
    dongle_key: &DongleKey,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>> {
    let Holder::Dongle(dongle) = terms.binding.holder() else {
        return Err(Error::InvalidInput { field: "binding", problem: "does not name a dongle" });
    };
    let product = terms.product.clone();
    let inner = zeroize::Zeroizing::new(issue_signed(terms, keys, signer, Some(dongle_key), rng)?);
    Ok(seal_license(dongle, &product, dongle_key, &inner, rng))
}

fn issue_signed(
    mut terms: Terms,
    keys: &[(Release, &ContentKey)],
    signer: &LicenseSigner<'_>,
    dongle_key: Option<&DongleKey>,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>> {
    terms.features.sort();
    terms.features.dedup();
    terms.meters.sort_by(|a, b| a.name.cmp(&b.name));
    rng.fill_bytes(&mut terms.license_id);
    let (vendor, issuer, key) = signer.parts()?;
    terms.vendor_key = vendor;
    if let Some((field, problem)) = terms.problem() {
        return Err(Error::InvalidInput { field, problem });
    }
    if keys.is_empty() || keys.len() > MAX_WRAPPED_KEYS {
        return Err(Error::InvalidInput { field: "content keys", problem: "none in the licensed range, or too many" });
    }
    let mut wrapped = Vec::with_capacity(keys.len());
    for (release, k) in keys {
        let key_id = k.id();
        let aad = wrap_aad(&terms.license_id, &key_id);
        let blob = match (terms.binding.holder(), dongle_key) {
            (Holder::Device(device), None) => {
                let (enc, w) = wrap_to_device(k, &device, &aad, rng)?;
                KeyBlob::Device { enc, wrapped: w }
            }
            (Holder::Dongle(_), Some(dk)) => {
                let (nonce, w) = dk.seal(&aad, k.as_bytes(), rng);
                let wrapped: [u8; WRAPPED_LEN] = w.as_slice().try_into().map_err(|_| Error::UnwrapFailed)?;
                KeyBlob::Dongle { nonce, wrapped }
            }
            _ => return Err(Error::InvalidInput { field: "binding", problem: "does not match the key holder" }),
        };
        wrapped.push(WrappedKey { release: *release, key_id, blob });
    }
    wrapped.sort_by_key(|k| k.release);
    if let Some(problem) = keys_problem(&terms, &wrapped) {
        return Err(Error::InvalidInput { field: "content keys", problem });
    }
    let version = terms.format_version();
    let body = encode_body(&terms, &wrapped, &issuer, version);
    let mut out = Vec::with_capacity(14 + body.len() + SIGNATURE_LEN);
    out.extend_from_slice(&LICENSE_MAGIC);
    out.put_u16(version);
    out.put_u32(body.len() as u32);
    out.extend_from_slice(&body);
    let sig = key.sign(&signed_message(&out));
    out.extend_from_slice(&sig);
    Ok(out)
}

/// Opening a sealed license is the license's business: the dongle module
/// only knows the envelope.
impl SealedLicense {
    /// Parses the license the token decrypted; it must be bound to the
    /// dongle this envelope names, for the product its tag names.
    pub fn open(&self, plaintext: &[u8]) -> Result<License> {
        let license = License::parse(plaintext)?;
        match license.terms.binding.holder() {
            Holder::Dongle(dongle) if dongle == self.dongle => {}
            _ => {
                return Err(Error::Malformed {
                    artifact: A,
                    field: "binding",
                    problem: "names another dongle than its envelope",
                });
            }
        }
        if !self.may_be_for(&license.terms.product) {
            return Err(Error::Malformed { artifact: A, field: "product tag", problem: "does not match the product" });
        }
        Ok(license)
    }
}

/// A license file of either kind, told apart by its magic bytes.
#[derive(Debug, Clone)]
pub enum AnyLicense {
    /// A license readable by anyone (device-bound).
    Plain(Box<License>),
    /// A license sealed to a dongle.
    Sealed(SealedLicense),
}

impl AnyLicense {
    /// Parses a license file of either kind.
    pub fn parse(input: &[u8]) -> Result<AnyLicense> {
        if input.starts_with(&SEALED_LICENSE_MAGIC) {
            SealedLicense::parse(input).map(AnyLicense::Sealed)
        } else {
            License::parse(input).map(|l| AnyLicense::Plain(Box::new(l)))
        }
    }
}
