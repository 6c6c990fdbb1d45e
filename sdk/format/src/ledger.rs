//! The billing ledger: one hash chain of entries per vendor, the price plan
//! and the invoice computed from the chain.
//!
//! The licensing server appends an entry for every license it issues, every
//! activation and deactivation and every revocation. Each entry's hash covers
//! the previous entry's hash and the entry's fields in a fixed binary layout
//! (docs/format.md §7), so a vendor holding an export can check that it is a
//! complete, unaltered prefix of the chain the server billed from, and
//! recompute every invoice line from it (`sealsdk ledger verify`).
use sha2::{Digest, Sha256};

use crate::cursor::PutExt;
use crate::{Error, UnixTime};

/// Domain separation for entry hashes.
const ENTRY_DOMAIN: &[u8] = b"sealrun/v1/ledger-entry\0";

/// The `prev_hash` of a vendor's first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// The vendor issued a license for a device code (billed).
    LicenseIssued,
    /// An end user redeemed an activation code and got a license (billed).
    Activation,
    /// An end user gave an activation back, freeing it for another device.
    Deactivation,
    /// The vendor revoked a license.
    LicenseRevoked,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [EntryKind; 4] =
        [EntryKind::LicenseIssued, EntryKind::Activation, EntryKind::Deactivation, EntryKind::LicenseRevoked];

    /// The name used in exports and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::LicenseIssued => "license_issued",
            EntryKind::Activation => "activation",
            EntryKind::Deactivation => "deactivation",
            EntryKind::LicenseRevoked => "license_revoked",
        }
    }

    /// The kind named `s`, if any.
    pub fn from_name(s: &str) -> Option<EntryKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn code(self) -> u8 {
        match self {
            EntryKind::LicenseIssued => 1,
            EntryKind::Activation => 2,
            EntryKind::Deactivation => 3,
            EntryKind::LicenseRevoked => 4,
        }
    }

    /// Whether the entry puts a license in someone's hands (what a plan charges for).
    pub fn billable(self) -> bool {
        matches!(self, EntryKind::LicenseIssued | EntryKind::Activation)
    }
}

/// The fields of one entry that its hash covers (everything but the hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields {
    /// Position in the vendor's chain, from 1.
    pub seq: u64,
    /// When it was appended.
    pub at: UnixTime,
    /// What happened.
    pub kind: EntryKind,
    /// The product id.
    pub product: String,
    /// The license concerned.
    pub license_id: [u8; 16],
    /// Fingerprint of the device code the license is bound to.
    pub device: [u8; 32],
    /// Floating seats the license grants (0 for a device license).
    pub seats: u32,
}

impl EntryFields {
    /// The hash of this entry after `prev`.
    pub fn hash_after(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut m = Vec::with_capacity(ENTRY_DOMAIN.len() + 32 + 8 + 8 + 1 + 2 + self.product.len() + 16 + 32 + 4);
        m.extend_from_slice(ENTRY_DOMAIN);
        m.extend_from_slice(prev);
        m.put_u64(self.seq);
        m.put_u64(self.at);
        m.push(self.kind.code());
        // Product ids are at most MAX_PRODUCT_ID_LEN (128) bytes; the length
        // prefix keeps the encoding unambiguous for any string.
        m.put_u16(u16::try_from(self.product.len()).unwrap_or(u16::MAX));
        m.extend_from_slice(self.product.as_bytes());
        m.extend_from_slice(&self.license_id);
        m.extend_from_slice(&self.device);
        m.put_u32(self.seats);
        Sha256::digest(&m).into()
    }
}

/// One entry as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The hashed fields.
    pub fields: EntryFields,
    /// The previous entry's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

impl LedgerEntry {
    /// Appends `fields` after `prev` (the previous hash).
    pub fn after(prev: [u8; 32], fields: EntryFields) -> LedgerEntry {
        let hash = fields.hash_after(&prev);
        LedgerEntry { fields, prev_hash: prev, hash }
    }
}

/// Checks that `entries` is a vendor's chain from its first entry: numbered
/// 1, 2, 3… without gaps, each linked to the one before, each hash right.
/// Returns the hash of the last entry ([`GENESIS_HASH`] for none).
pub fn verify_chain(entries: &[LedgerEntry]) -> Result<[u8; 32], Error> {
    let mut prev = GENESIS_HASH;
    for (i, e) in entries.iter().enumerate() {
        let seq = i as u64 + 1;
        if e.fields.seq != seq {
            return Err(Error::LedgerBroken { seq, problem: "is missing, or entries are out of order" });
        }
        if e.prev_hash != prev {
            return Err(Error::LedgerBroken { seq, problem: "does not link to the entry before it" });
        }
        if e.fields.hash_after(&prev) != e.hash {
            return Err(Error::LedgerBroken { seq, problem: "was altered (its hash does not match its fields)" });
        }
        prev = e.hash;
    }
    Ok(prev)
}

/// A vendor's price plan. Amounts are in the currency's minor unit (cents).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PricePlan {
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Fee per license issued (by the vendor or through an activation).
    pub license_fee: u64,
    /// Fee per floating seat a license grants, on top of the license fee.
    pub seat_fee: u64,
    /// Licenses per period that cost nothing (the first ones, in ledger order).
    pub free_licenses: u64,
    /// Per-product license fees that replace `license_fee`, sorted by product.
    pub product_fees: Vec<(String, u64)>,
}

impl PricePlan {
    /// The license fee for `product`.
    pub fn license_fee_for(&self, product: &str) -> u64 {
        self.product_fees.iter().find(|(p, _)| p == product).map_or(self.license_fee, |(_, f)| *f)
    }
}

/// One invoice line: a product's billable licenses in the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// The product id.
    pub product: String,
    /// Licenses issued (directly or by activation).
    pub licenses: u64,
    /// How many of them the free allowance covered.
    pub free: u64,
    /// Fee per license.
    pub unit_fee: u64,
    /// Floating seats granted.
    pub seats: u64,
    /// Fee per seat.
    pub seat_fee: u64,
    /// `(licenses - free) * unit_fee + seats * seat_fee`.
    pub amount: u64,
}

/// The billable content of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTotals {
    /// One line per product with billable entries, sorted by product.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the line amounts.
    pub total: u64,
}

/// Computes the invoice for the entries appended in `[start, end)` under
/// `plan`. The free allowance goes to the period's first billable entries.
/// Amounts saturate instead of wrapping (no real plan comes near 2^64 cents).
pub fn invoice(plan: &PricePlan, entries: &[LedgerEntry], start: UnixTime, end: UnixTime) -> InvoiceTotals {
    let mut lines: Vec<InvoiceLine> = Vec::new();
    let mut free_left = plan.free_licenses;
    for f in entries.iter().map(|e| &e.fields).filter(|f| f.kind.billable() && (start..end).contains(&f.at)) {
        let line = match lines.iter_mut().position(|l| l.product == f.product) {
            Some(i) => &mut lines[i],
            None => {
                lines.push(InvoiceLine {
                    product: f.product.clone(),
                    licenses: 0,
                    free: 0,
                    unit_fee: plan.license_fee_for(&f.product),
                    seats: 0,
                    seat_fee: plan.seat_fee,
                    amount: 0,
                });
                lines.last_mut().expect("just pushed")
            }
        };
        line.licenses += 1;
        line.seats += u64::from(f.seats);
        if free_left > 0 {
            free_left -= 1;
            line.free += 1;
        }
    }
    lines.sort_by(|a, b| a.product.cmp(&b.product));
    let mut total = 0u64;
    for l in &mut lines {
        l.amount = (l.licenses - l.free).saturating_mul(l.unit_fee).saturating_add(l.seats.saturating_mul(l.seat_fee));
        total = total.saturating_add(l.amount);
    }
    InvoiceTotals { lines, total }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: u64, at: u64, kind: EntryKind, product: &str) -> EntryFields {
        EntryFields { seq, at, kind, product: product.into(), license_id: [seq as u8; 16], device: [7; 32], seats: 0 }
    }

    fn chain(n: u64) -> Vec<LedgerEntry> {
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|i| {
                let kind = if i % 3 == 0 { EntryKind::Deactivation } else { EntryKind::LicenseIssued };
                let e = LedgerEntry::after(prev, fields(i, 1000 + i, kind, if i % 2 == 0 { "a.b" } else { "c.d" }));
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn chain_verifies_and_any_change_breaks_it() {
        let good = chain(6);
        assert_eq!(verify_chain(&good).unwrap(), good[5].hash);
        assert_eq!(verify_chain(&[]).unwrap(), GENESIS_HASH);

        let mut altered = good.clone();
        altered[2].fields.product = "x.y".into();
        assert_eq!(
            verify_chain(&altered),
            Err(Error::LedgerBroken { seq: 3, problem: "was altered (its hash does not match its fields)" })
        );

        let mut dropped = good.clone();
        dropped.remove(3);
        assert!(matches!(verify_chain(&dropped), Err(Error::LedgerBroken { seq: 4, .. })));

        let mut swapped = good.clone();
        swapped.swap(1, 2);
        assert!(matches!(verify_chain(&swapped), Err(Error::LedgerBroken { seq: 2, .. })));

        // Rehashing an altered entry does not help: the next one no longer links.
        let mut rehashed = good.clone();
        rehashed[2].fields.seats = 5;
        rehashed[2].hash = rehashed[2].fields.hash_after(&rehashed[2].prev_hash);
        assert!(matches!(verify_chain(&rehashed), Err(Error::LedgerBroken { seq: 4, .. })));
    }

    #[test]
    fn every_field_is_hashed() {
        let base = fields(1, 10, EntryKind::Activation, "a.b");
        let h = base.hash_after(&GENESIS_HASH);
        let variants = [
            EntryFields { seq: 2, ..base.clone() },
            EntryFields { at: 11, ..base.clone() },
            EntryFields { kind: EntryKind::LicenseIssued, ..base.clone() },
            EntryFields { product: "a.c".into(), ..base.clone() },
            EntryFields { license_id: [0; 16], ..base.clone() },
            EntryFields { device: [0; 32], ..base.clone() },
            EntryFields { seats: 1, ..base.clone() },
        ];
        for v in variants {
            assert_ne!(v.hash_after(&GENESIS_HASH), h, "{v:?}");
        }
        assert_ne!(base.hash_after(&[1; 32]), h);
    }

    #[test]
    fn invoice_applies_free_allowance_overrides_and_seats() {
        let plan = PricePlan {
            currency: "EUR".into(),
            license_fee: 100,
            seat_fee: 10,
            free_licenses: 2,
            product_fees: vec![("a.b".into(), 250)],
        };
        let mut prev = GENESIS_HASH;
        let mut entries = Vec::new();
        let specs = [
            (5, EntryKind::LicenseIssued, "c.d", 0),  // before the period
            (10, EntryKind::LicenseIssued, "c.d", 0), // free
            (11, EntryKind::Deactivation, "a.b", 0),  // not billable
            (12, EntryKind::Activation, "a.b", 0),    // free
            (13, EntryKind::LicenseIssued, "a.b", 3),
            (14, EntryKind::LicenseIssued, "c.d", 0),
            (20, EntryKind::LicenseIssued, "c.d", 0), // after the period
        ];
        for (i, (at, kind, p, seats)) in specs.into_iter().enumerate() {
            let mut f = fields(i as u64 + 1, at, kind, p);
            f.seats = seats;
            let e = LedgerEntry::after(prev, f);
            prev = e.hash;
            entries.push(e);
        }
        let inv = invoice(&plan, &entries, 10, 20);
        assert_eq!(inv.lines.len(), 2);
        let ab = &inv.lines[0];
        assert_eq!((ab.product.as_str(), ab.licenses, ab.free, ab.unit_fee, ab.seats), ("a.b", 2, 1, 250, 3));
        assert_eq!(ab.amount, 250 + 30);
        let cd = &inv.lines[1];
        assert_eq!((cd.licenses, cd.free, cd.amount), (2, 1, 100));
        assert_eq!(inv.total, 380);
    }
}
