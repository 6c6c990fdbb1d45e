//! Issuing device licenses from the keystore.
use std::path::Path;

use sealrun_format::device::DeviceCode;
use sealrun_format::dongle::DongleId;
use sealrun_format::license::{self, Binding, Feature, LicenseSigner, Meter, SeatUnit, Terms};
use sealrun_format::release::ReleaseRange;
use sealrun_format::{Release, UnixTime, VendorPublicKey};

use crate::keystore::Keystore;
use crate::{Result, SdkError, rng};

/// How far before the issue time a license becomes valid by default, so a
/// customer whose clock runs behind the vendor's is not refused at once.
pub const DEFAULT_BACKDATE_SECS: u64 = 86_400;

/// What a license says.
#[derive(Debug, Clone)]
pub struct IssueOptions {
    /// Product id.
    pub product: String,
    /// Releases covered; `None` means every release sealed so far.
    pub releases: Option<ReleaseRange>,
    /// Who holds it: a device, or a dongle.
    pub holder: Holder,
    /// Who it is for.
    pub licensee: String,
    /// Valid from (default: a day before now).
    pub not_before: Option<UnixTime>,
    /// Expiry, if any.
    pub expires: Option<UnixTime>,
    /// Features enabled, with their values and own expiries.
    pub features: Vec<Feature>,
    /// Usage meters.
    pub meters: Vec<Meter>,
    /// A floating license for a site's license manager (the holder is its
    /// host device or its dongle): the seats and what a seat is.
    pub floating: Option<(u32, SeatUnit)>,
    /// The issue time (now, outside tests).
    pub now: UnixTime,
}

/// Who a license is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// One device.
    Device(DeviceCode),
    /// A dongle provisioned from this keystore, with how many copies may
    /// run at once.
    Dongle {
        /// The dongle.
        dongle: DongleId,
        /// The license count.
        count: u32,
    },
}

/// Parses a release range: `1.2.0` (just that one), `1.0.0..1.9.9`
/// (inclusive), or `1.0.0..` (that and every later one).
pub fn parse_range(s: &str) -> Result<ReleaseRange> {
    let range = match s.split_once("..") {
        None => {
            let r: Release = s.parse()?;
            ReleaseRange { min: r, max: Some(r) }
        }
        Some((min, "")) => ReleaseRange { min: min.parse()?, max: None },
        Some((min, max)) => ReleaseRange { min: min.parse()?, max: Some(max.parse()?) },
    };
    if range.max.is_some_and(|max| max < range.min) {
        return Err(sealrun_format::Error::InvalidInput {
            field: "--releases",
            problem: "the range ends before it starts",
        }
        .into());
    }
    Ok(range)
}

/// Gives each feature of `expiries` (`NAME=DATE`, as `--feature-expires`
/// takes them; the date's last second is the last one the feature is on)
/// its own expiry, adding the features not in `features` yet.
pub fn with_expiries(mut features: Vec<Feature>, expiries: &[String]) -> Result<Vec<Feature>> {
    for e in expiries {
        let Some((name, date)) = e.split_once('=') else {
            return Err(sealrun_format::Error::InvalidInput {
                field: "--feature-expires",
                problem: "must be NAME=DATE, e.g. beta=2027-03-01",
            }
            .into());
        };
        Feature::set_expiry(&mut features, name, crate::dates::parse(date, crate::dates::DayEdge::End)?)?;
    }
    Ok(features)
}

/// Issues a license and returns its bytes.
pub fn issue(keystore: &Keystore, opts: &IssueOptions) -> Result<Vec<u8>> {
    let signer = keystore.vendor_key()?;
    let known = keystore.releases(&opts.product)?;
    let range = match (opts.releases, known.first(), known.last()) {
        (Some(r), _, _) => r,
        (None, Some(&min), Some(&max)) => ReleaseRange { min, max: Some(max) },
        (None, _, _) => {
            return Err(SdkError::NoContentKeys {
                product: opts.product.clone(),
                range: "(any release)".into(),
                known: "none sealed yet".into(),
            });
        }
    };
    let in_range: Vec<Release> = known.iter().copied().filter(|r| range.contains(*r)).collect();
    if in_range.is_empty() {
        let known = if known.is_empty() {
            "none sealed yet".to_owned()
        } else {
            known.iter().map(Release::to_string).collect::<Vec<_>>().join(", ")
        };
        return Err(SdkError::NoContentKeys { product: opts.product.clone(), range: range.to_string(), known });
    }
    let keys = in_range
        .iter()
        .map(|r| Ok((*r, keystore.existing_content_key(&opts.product, *r)?)))
        .collect::<Result<Vec<_>>>()?;
    let key_refs: Vec<_> = keys.iter().map(|(r, k)| (*r, k)).collect();
    let terms = Terms {
        license_id: [0; 16],
        vendor_key: VendorPublicKey([0; 32]),
        product: opts.product.clone(),
        releases: range,
        licensee: opts.licensee.clone(),
        issued_at: opts.now,
        not_before: opts.not_before.unwrap_or(opts.now.saturating_sub(DEFAULT_BACKDATE_SECS)),
        expires: opts.expires,
        features: opts.features.clone(),
        meters: opts.meters.clone(),
        binding: match (opts.holder, opts.floating) {
            (Holder::Device(d), None) => Binding::Device(d),
            (Holder::Dongle { dongle, count }, None) => Binding::Dongle { dongle, count },
            (Holder::Device(d), Some((seats, unit))) => {
                Binding::Floating { holder: license::Holder::Device(d), seats, unit }
            }
            (Holder::Dongle { dongle, .. }, Some((seats, unit))) => {
                Binding::Floating { holder: license::Holder::Dongle(dongle), seats, unit }
            }
        },
    };
    let signer = LicenseSigner::Vendor(&signer);
    match opts.holder {
        Holder::Device(_) => Ok(license::issue(terms, &key_refs, &signer, &mut rng())?),
        Holder::Dongle { dongle, .. } => {
            let dongle_key = keystore.dongle_key(&dongle)?;
            Ok(license::issue_for_dongle(terms, &key_refs, &signer, &dongle_key, &mut rng())?)
        }
    }
}

/// Writes `bytes` to `path` (0644: a license is not a secret by itself).
pub fn write_license(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(SdkError::io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = parse_range("1.2.0").unwrap();
        assert_eq!((r.min, r.max), (Release::new(1, 2, 0), Some(Release::new(1, 2, 0))));
        assert_eq!(parse_range("1.0.0..").unwrap().max, None);
        assert_eq!(parse_range("1.0.0..2.0.0").unwrap().max, Some(Release::new(2, 0, 0)));
        assert!(parse_range("1.0..2").is_err());
        assert!(parse_range("2.0.0..1.0.0").is_err());
    }
}
