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
use crate::error::Artifact;
use crate::keys::SIGNATURE_LEN;
use crate::{Error, UnixTime, VendorPublicKey, VendorSigningKey};

/// Domain separation for entry hashes (entries that name no activation code).
const ENTRY_DOMAIN: &[u8] = b"sealrun/v1/ledger-entry\0";
/// Domain separation for entries that name an activation code (protocol 2,
/// issue 25). A distinct domain keeps every earlier entry's hash unchanged
/// and makes the two encodings impossible to confuse.
const ENTRY_DOMAIN_V2: &[u8] = b"sealrun/v2/ledger-entry\0";
/// Domain separation for a signed chain head.
const HEAD_DOMAIN: &[u8] = b"sealrun/v1/ledger-head\0";
/// Domain separation for a signed invoice.
const INVOICE_DOMAIN: &[u8] = b"sealrun/v1/invoice\0";

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
    /// An activation that took a slot a deactivation had freed: the license
    /// moved to another device. Billed at the plan's transfer fee, not as a
    /// new license.
    Transfer,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [EntryKind; 5] = [
        EntryKind::LicenseIssued,
        EntryKind::Activation,
        EntryKind::Deactivation,
        EntryKind::LicenseRevoked,
        EntryKind::Transfer,
    ];

    /// The name used in exports and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::LicenseIssued => "license_issued",
            EntryKind::Activation => "activation",
            EntryKind::Deactivation => "deactivation",
            EntryKind::LicenseRevoked => "license_revoked",
            EntryKind::Transfer => "transfer",
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
            EntryKind::Transfer => 5,
        }
    }

    /// Whether the entry puts a new license in someone's hands (what a plan
    /// charges its license fee for).
    pub fn billable(self) -> bool {
        matches!(self, EntryKind::LicenseIssued | EntryKind::Activation)
    }

    /// Whether the entry hands a license to someone at all (a new license or
    /// a transfer): a license id may appear in only one such entry.
    pub fn hands_out(self) -> bool {
        self.billable() || self == EntryKind::Transfer
    }
}

/// The fields of one entry that its hash covers (everything but the hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFields {
    /// Position in the vendor's chain, from 1.
    pub seq: u64,
    /// When it was committed.
    pub at: UnixTime,
    /// What happened.
    pub kind: EntryKind,
    /// The product id.
    pub product: String,
    /// The license concerned.
    pub license_id: [u8; 16],
    /// Fingerprint of the device code the license is bound to.
    pub device: [u8; 32],
    /// Floating seats the license grants (0 for a device license), or the
    /// copies a dongle license lets run at once beyond the first.
    pub seats: u32,
    /// The activation code (the server's id for it) behind an activation,
    /// transfer or deactivation; `None` for the vendor's own licenses and
    /// for entries written before codes were named.
    pub code: Option<u64>,
}

impl EntryFields {
    /// The hash of this entry after `prev`.
    pub fn hash_after(&self, prev: &[u8; 32]) -> [u8; 32] {
        let domain = if self.code.is_some() { ENTRY_DOMAIN_V2 } else { ENTRY_DOMAIN };
        let mut m = Vec::with_capacity(domain.len() + 32 + 8 + 8 + 1 + 2 + self.product.len() + 16 + 32 + 4 + 8);
        m.extend_from_slice(domain);
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
        if let Some(code) = self.code {
            m.put_u64(code);
        }
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
    /// Fee per floating seat a license grants (and per dongle copy beyond
    /// the first), on top of the license fee.
    pub seat_fee: u64,
    /// Fee per transfer (an activation moved to another device). A transfer
    /// is not a new license: only this fee applies to it.
    pub transfer_fee: u64,
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

    fn encode(&self, m: &mut Vec<u8>) {
        put_text(m, &self.currency);
        m.put_u64(self.license_fee);
        m.put_u64(self.seat_fee);
        m.put_u64(self.transfer_fee);
        m.put_u64(self.free_licenses);
        m.put_u32(count(self.product_fees.len()));
        for (p, fee) in &self.product_fees {
            put_text(m, p);
            m.put_u64(*fee);
        }
    }
}

/// A plan and the time from which it applies (a plan history is a list of
/// these, each in force until the next one's `effective_from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledPlan {
    /// When it takes effect.
    pub effective_from: UnixTime,
    /// The plan.
    pub plan: PricePlan,
}

/// The part of a period one plan applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSegment {
    /// The plan's own `effective_from` (its identity in the history).
    pub effective_from: UnixTime,
    /// First second of the period it covers.
    pub from: UnixTime,
    /// First second after it.
    pub until: UnixTime,
    /// The plan.
    pub plan: PricePlan,
}

/// The segments of `[start, end)` that each plan of `history` applies to.
/// `history` need not be sorted; a plan replaced before the period began
/// applies to none of it. Time before the first plan is not covered.
pub fn segments(history: &[ScheduledPlan], start: UnixTime, end: UnixTime) -> Vec<PlanSegment> {
    let mut sorted: Vec<&ScheduledPlan> = history.iter().collect();
    sorted.sort_by_key(|p| p.effective_from);
    let mut out = Vec::new();
    for (i, p) in sorted.iter().enumerate() {
        let next = sorted.get(i + 1).map_or(UnixTime::MAX, |n| n.effective_from);
        let from = p.effective_from.max(start);
        let until = next.min(end);
        if from < until {
            out.push(PlanSegment { effective_from: p.effective_from, from, until, plan: p.plan.clone() });
        }
    }
    out
}

/// One invoice line: a product's billable entries in the part of the period
/// one plan applied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// The product id.
    pub product: String,
    /// The `effective_from` of the plan the line is priced under.
    pub plan_from: UnixTime,
    /// Licenses issued (directly or by activation).
    pub licenses: u64,
    /// How many of them the free allowance covered.
    pub free: u64,
    /// Fee per license.
    pub unit_fee: u64,
    /// Floating seats granted (and dongle copies beyond the first).
    pub seats: u64,
    /// Fee per seat.
    pub seat_fee: u64,
    /// Activations moved to another device.
    pub transfers: u64,
    /// Fee per transfer.
    pub transfer_fee: u64,
    /// `(licenses - free) * unit_fee + seats * seat_fee + transfers * transfer_fee`.
    pub amount: u64,
}

/// The billable content of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceTotals {
    /// One line per plan segment and product with billable entries, sorted
    /// by segment, then product.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the line amounts.
    pub total: u64,
}

/// Computes the invoice for the entries appended in `[start, end)` under
/// one plan.
pub fn invoice(plan: &PricePlan, entries: &[LedgerEntry], start: UnixTime, end: UnixTime) -> InvoiceTotals {
    let seg = PlanSegment { effective_from: 0, from: start, until: end, plan: plan.clone() };
    invoice_over(&[seg], entries, start, end)
}

/// Computes the invoice for the entries appended in `[start, end)`, each
/// priced by the plan whose segment it falls in. The free allowance counts
/// licenses over the whole period: a license is free while fewer licenses
/// than its plan's `free_licenses` came before it in the period. Entries in
/// no segment are not billed. Amounts saturate instead of wrapping (no real
/// plan comes near 2^64 cents).
pub fn invoice_over(
    segments: &[PlanSegment],
    entries: &[LedgerEntry],
    start: UnixTime,
    end: UnixTime,
) -> InvoiceTotals {
    let mut lines: Vec<InvoiceLine> = Vec::new();
    let mut licenses_so_far = 0u64;
    for f in entries.iter().map(|e| &e.fields).filter(|f| f.kind.hands_out() && (start..end).contains(&f.at)) {
        let Some(seg) = segments.iter().find(|s| (s.from..s.until).contains(&f.at)) else {
            continue;
        };
        let line = match lines.iter().position(|l| l.product == f.product && l.plan_from == seg.effective_from) {
            Some(i) => &mut lines[i],
            None => {
                lines.push(InvoiceLine {
                    product: f.product.clone(),
                    plan_from: seg.effective_from,
                    licenses: 0,
                    free: 0,
                    unit_fee: seg.plan.license_fee_for(&f.product),
                    seats: 0,
                    seat_fee: seg.plan.seat_fee,
                    transfers: 0,
                    transfer_fee: seg.plan.transfer_fee,
                    amount: 0,
                });
                lines.last_mut().expect("just pushed")
            }
        };
        if f.kind == EntryKind::Transfer {
            line.transfers += 1;
            continue;
        }
        line.licenses += 1;
        line.seats += u64::from(f.seats);
        if licenses_so_far < seg.plan.free_licenses {
            line.free += 1;
        }
        licenses_so_far += 1;
    }
    lines.sort_by(|a, b| (a.plan_from, &a.product).cmp(&(b.plan_from, &b.product)));
    let mut total = 0u64;
    for l in &mut lines {
        l.amount = (l.licenses - l.free)
            .saturating_mul(l.unit_fee)
            .saturating_add(l.seats.saturating_mul(l.seat_fee))
            .saturating_add(l.transfers.saturating_mul(l.transfer_fee));
        total = total.saturating_add(l.amount);
    }
    InvoiceTotals { lines, total }
}

/// A chain head as the operator signs it: "vendor `vendor`'s ledger had
/// `seq` entries ending in `hash` at `signed_at`". Whoever holds one can show
/// a third party what the operator claimed, and any later export must extend
/// it unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The vendor's name on the server.
    pub vendor: String,
    /// Entries in the chain.
    pub seq: u64,
    /// Hash of entry `seq` ([`GENESIS_HASH`] for none).
    pub hash: [u8; 32],
    /// When the operator signed it.
    pub signed_at: UnixTime,
}

impl ChainHead {
    /// The bytes the operator signs.
    pub fn message(&self) -> Vec<u8> {
        let mut m = HEAD_DOMAIN.to_vec();
        put_text(&mut m, &self.vendor);
        m.put_u64(self.seq);
        m.extend_from_slice(&self.hash);
        m.put_u64(self.signed_at);
        m
    }

    /// Signs with the operator key.
    pub fn sign(&self, operator: &VendorSigningKey) -> [u8; SIGNATURE_LEN] {
        operator.sign(&self.message())
    }

    /// Checks the operator's signature.
    pub fn verify(&self, operator: &VendorPublicKey, sig: &[u8; SIGNATURE_LEN]) -> Result<(), Error> {
        operator.verify(&self.message(), sig, Artifact::LedgerStatement)
    }
}

/// An invoice as the operator signs it: every figure on it, the plans it
/// applied and the chain head it was computed at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceStatement {
    /// The vendor's name on the server.
    pub vendor: String,
    /// `YYYY-MM`.
    pub period: String,
    /// First second of the window billed.
    pub start: UnixTime,
    /// First second after it.
    pub end: UnixTime,
    /// The plans applied, in order.
    pub segments: Vec<PlanSegment>,
    /// The lines.
    pub lines: Vec<InvoiceLine>,
    /// Their sum.
    pub total: u64,
    /// Entries 1..=`ledger_seq` were read.
    pub ledger_seq: u64,
    /// Hash of entry `ledger_seq`.
    pub ledger_hash: [u8; 32],
    /// Whether the period had ended.
    pub closed: bool,
    /// When the operator signed it.
    pub signed_at: UnixTime,
}

impl InvoiceStatement {
    /// The bytes the operator signs.
    pub fn message(&self) -> Vec<u8> {
        let mut m = INVOICE_DOMAIN.to_vec();
        put_text(&mut m, &self.vendor);
        put_text(&mut m, &self.period);
        m.put_u64(self.start);
        m.put_u64(self.end);
        m.put_u32(count(self.segments.len()));
        for s in &self.segments {
            m.put_u64(s.effective_from);
            m.put_u64(s.from);
            m.put_u64(s.until);
            s.plan.encode(&mut m);
        }
        m.put_u32(count(self.lines.len()));
        for l in &self.lines {
            put_text(&mut m, &l.product);
            for v in [
                l.plan_from,
                l.licenses,
                l.free,
                l.unit_fee,
                l.seats,
                l.seat_fee,
                l.transfers,
                l.transfer_fee,
                l.amount,
            ] {
                m.put_u64(v);
            }
        }
        m.put_u64(self.total);
        m.put_u64(self.ledger_seq);
        m.extend_from_slice(&self.ledger_hash);
        m.push(u8::from(self.closed));
        m.put_u64(self.signed_at);
        m
    }

    /// Signs with the operator key.
    pub fn sign(&self, operator: &VendorSigningKey) -> [u8; SIGNATURE_LEN] {
        operator.sign(&self.message())
    }

    /// Checks the operator's signature.
    pub fn verify(&self, operator: &VendorPublicKey, sig: &[u8; SIGNATURE_LEN]) -> Result<(), Error> {
        operator.verify(&self.message(), sig, Artifact::LedgerStatement)
    }
}

/// A count as a u32 (lists in a statement are far shorter; a longer one
/// would saturate, which still cannot collide with a valid encoding of
/// another statement because every element follows).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Text with a u32 length, so any string from a parsed JSON invoice has an
/// unambiguous encoding.
fn put_text(m: &mut Vec<u8>, s: &str) {
    m.put_u32(count(s.len()));
    m.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: u64, at: u64, kind: EntryKind, product: &str) -> EntryFields {
        EntryFields {
            seq,
            at,
            kind,
            product: product.into(),
            license_id: [seq as u8; 16],
            device: [7; 32],
            seats: 0,
            code: None,
        }
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
            EntryFields { code: Some(0), ..base.clone() },
            EntryFields { code: Some(1), ..base.clone() },
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
            transfer_fee: 0,
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

    fn entry_chain(specs: &[(u64, EntryKind, &str, u32)]) -> Vec<LedgerEntry> {
        let mut prev = GENESIS_HASH;
        specs
            .iter()
            .enumerate()
            .map(|(i, (at, kind, p, seats))| {
                let mut f = fields(i as u64 + 1, *at, *kind, p);
                f.seats = *seats;
                f.code = matches!(kind, EntryKind::Activation | EntryKind::Transfer).then_some(7);
                let e = LedgerEntry::after(prev, f);
                prev = e.hash;
                e
            })
            .collect()
    }

    fn plan(fee: u64, free: u64) -> PricePlan {
        PricePlan {
            currency: "EUR".into(),
            license_fee: fee,
            free_licenses: free,
            transfer_fee: 5,
            ..PricePlan::default()
        }
    }

    #[test]
    fn segments_clip_a_plan_history_to_the_period() {
        let history = [
            ScheduledPlan { effective_from: 50, plan: plan(200, 0) },
            ScheduledPlan { effective_from: 0, plan: plan(100, 0) },
            ScheduledPlan { effective_from: 5, plan: plan(150, 0) },
            ScheduledPlan { effective_from: 500, plan: plan(300, 0) },
        ];
        let s = segments(&history, 10, 100);
        let got: Vec<(u64, u64, u64, u64)> =
            s.iter().map(|s| (s.effective_from, s.from, s.until, s.plan.license_fee)).collect();
        // The plan of 0 was replaced at 5, before the period: it applies to none of it.
        assert_eq!(got, vec![(5, 10, 50, 150), (50, 50, 100, 200)]);
        assert!(segments(&history[..1], 10, 40).is_empty(), "no plan before 50");
    }

    #[test]
    fn a_plan_change_mid_period_prices_each_part_by_its_plan() {
        let entries = entry_chain(&[
            (10, EntryKind::LicenseIssued, "a.b", 0), // free under the first plan (1 free)
            (20, EntryKind::LicenseIssued, "a.b", 0), // 100
            (60, EntryKind::LicenseIssued, "a.b", 0), // 300 (the second plan allows 2 free, 2 used already)
            (70, EntryKind::Transfer, "a.b", 0),      // transfer fee 5, not a license
            (80, EntryKind::Activation, "c.d", 0),    // 300
        ]);
        let history = [
            ScheduledPlan { effective_from: 0, plan: plan(100, 1) },
            ScheduledPlan { effective_from: 50, plan: plan(300, 2) },
        ];
        let inv = invoice_over(&segments(&history, 0, 100), &entries, 0, 100);
        let got: Vec<(u64, &str, u64, u64, u64, u64)> = inv
            .lines
            .iter()
            .map(|l| (l.plan_from, l.product.as_str(), l.licenses, l.free, l.transfers, l.amount))
            .collect();
        assert_eq!(got, vec![(0, "a.b", 2, 1, 0, 100), (50, "a.b", 1, 0, 1, 305), (50, "c.d", 1, 0, 0, 300)]);
        assert_eq!(inv.total, 705);
    }

    #[test]
    fn statements_are_signed_over_every_field() {
        let key = VendorSigningKey::from_seed(&[3; 32]);
        let other = VendorSigningKey::from_seed(&[4; 32]);
        let head = ChainHead { vendor: "acme".into(), seq: 4, hash: [9; 32], signed_at: 1000 };
        let sig = head.sign(&key);
        assert!(head.verify(&key.public(), &sig).is_ok());
        assert!(head.verify(&other.public(), &sig).is_err());
        for changed in [
            ChainHead { seq: 5, ..head.clone() },
            ChainHead { hash: [8; 32], ..head.clone() },
            ChainHead { vendor: "acmf".into(), ..head.clone() },
            ChainHead { signed_at: 1001, ..head.clone() },
        ] {
            assert_eq!(changed.verify(&key.public(), &sig), Err(Error::BadSignature(Artifact::LedgerStatement)));
        }

        let entries = entry_chain(&[(10, EntryKind::LicenseIssued, "a.b", 0)]);
        let segs = segments(&[ScheduledPlan { effective_from: 0, plan: plan(100, 0) }], 0, 100);
        let totals = invoice_over(&segs, &entries, 0, 100);
        let st = InvoiceStatement {
            vendor: "acme".into(),
            period: "1970-01".into(),
            start: 0,
            end: 100,
            segments: segs,
            lines: totals.lines,
            total: totals.total,
            ledger_seq: 1,
            ledger_hash: entries[0].hash,
            closed: true,
            signed_at: 200,
        };
        let sig = st.sign(&key);
        assert!(st.verify(&key.public(), &sig).is_ok());
        let mut wider = st.clone();
        wider.end = u64::MAX;
        let mut dearer = st.clone();
        dearer.segments[0].plan.license_fee = 1000;
        let mut relabelled = st.clone();
        relabelled.lines[0].product = "a.c".into();
        let mut open = st.clone();
        open.closed = false;
        for changed in [wider, dearer, relabelled, open] {
            assert!(changed.verify(&key.public(), &sig).is_err(), "{changed:?}");
        }
        // A head signature is no invoice signature, and the other way round.
        assert_ne!(st.message()[..HEAD_DOMAIN.len()], head.message()[..HEAD_DOMAIN.len()]);
    }
}
