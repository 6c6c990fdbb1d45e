//! `sealsdk ledger verify`: checks an invoice against the vendor's own
//! ledger export and the records its keystore keeps (see `ledger_state`), so
//! that an operator who controls the server, its database and its keys
//! still cannot bill more than the vendor's own licenses and codes allow
//! under the plans the vendor accepted (issue 25).
//!
//! In order: the chain verifies from its first entry and ends in the
//! operator-signed head; it extends the last head this keystore verified
//! unchanged; the invoice is signed by the pinned operator key, names a
//! prefix of the chain, bills exactly its month, under exactly the accepted
//! plans; no license is handed out twice; every license the vendor issued
//! is where the server said it put it and no other was billed as issued by
//! the vendor; no code has more activations or transfers than its limits;
//! and recomputing the invoice gives the same lines and total.
use std::collections::BTreeMap;

use serde::Deserialize;
use time::{Date, Month, Time};

use sealrun_format::ledger::{
    ChainHead, EntryFields, EntryKind, GENESIS_HASH, InvoiceLine, InvoiceStatement, LedgerEntry, PlanSegment,
    PricePlan, invoice_over, segments, verify_chain,
};

use crate::ledger_state::{HeadRecord, LedgerRecords, plan_differences};
use crate::{Result, SdkError};

#[derive(Deserialize)]
struct EntryLine {
    seq: u64,
    at: u64,
    kind: String,
    product: String,
    license_id: String,
    device: String,
    seats: u32,
    #[serde(default)]
    code: Option<u64>,
    prev_hash: String,
    hash: String,
}

#[derive(Deserialize)]
struct HeadLine {
    head: HeadJson,
}

#[derive(Deserialize)]
struct HeadJson {
    vendor: String,
    seq: u64,
    hash: String,
    signed_at: u64,
    signature: String,
}

pub use crate::plan::PlanLine;

#[derive(Deserialize)]
struct SegmentLine {
    effective_from: u64,
    from: u64,
    until: u64,
    plan: PlanLine,
}

#[derive(Deserialize)]
struct Line {
    product: String,
    #[serde(default)]
    plan_from: u64,
    licenses: u64,
    free: u64,
    unit_fee: u64,
    seats: u64,
    seat_fee: u64,
    #[serde(default)]
    transfers: u64,
    #[serde(default)]
    transfer_fee: u64,
    amount: u64,
}

impl Line {
    fn to_line(&self) -> InvoiceLine {
        InvoiceLine {
            product: self.product.clone(),
            plan_from: self.plan_from,
            licenses: self.licenses,
            free: self.free,
            unit_fee: self.unit_fee,
            seats: self.seats,
            seat_fee: self.seat_fee,
            transfers: self.transfers,
            transfer_fee: self.transfer_fee,
            amount: self.amount,
        }
    }
}

#[derive(Deserialize)]
struct InvoiceDoc {
    vendor: String,
    period: String,
    start: u64,
    end: u64,
    plan: PlanLine,
    #[serde(default)]
    plans: Option<Vec<SegmentLine>>,
    lines: Vec<Line>,
    total: u64,
    ledger_seq: u64,
    ledger_hash: String,
    closed: bool,
    #[serde(default)]
    signed_at: Option<u64>,
    #[serde(default)]
    signature: Option<String>,
}

fn bad(msg: String) -> SdkError {
    SdkError::LedgerMismatch(msg)
}

fn hex_array<const N: usize>(s: &str, what: &str, line: usize) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| bad(format!("ledger line {line}: {what} is not {} hex digits", N * 2)))?;
    Ok(out)
}

/// A parsed ledger export: its entries and, from a current server, the
/// operator-signed head that ends it.
#[derive(Debug)]
pub struct Export {
    /// The entries, in order.
    pub entries: Vec<LedgerEntry>,
    /// The signed head and its signature.
    pub head: Option<(ChainHead, [u8; 64])>,
}

/// Parses a ledger export (JSON lines, the last one `{"head": …}`).
pub fn parse_export(text: &str) -> Result<Vec<LedgerEntry>> {
    Ok(parse_signed_export(text)?.entries)
}

/// Parses a ledger export with its signed head.
pub fn parse_signed_export(text: &str) -> Result<Export> {
    let mut entries = Vec::new();
    let mut head = None;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 1;
        if head.is_some() {
            return Err(bad(format!("ledger line {n} follows the signed head, which must be the last line")));
        }
        if line.trim_start().starts_with("{\"head\"") {
            let h: HeadLine =
                serde_json::from_str(line).map_err(|e| bad(format!("ledger line {n} is not a signed head: {e}")))?;
            let head_fields = ChainHead {
                vendor: h.head.vendor,
                seq: h.head.seq,
                hash: hex_array(&h.head.hash, "head hash", n)?,
                signed_at: h.head.signed_at,
            };
            head = Some((head_fields, hex_array(&h.head.signature, "head signature", n)?));
            continue;
        }
        let e: EntryLine =
            serde_json::from_str(line).map_err(|e| bad(format!("ledger line {n} is not an entry: {e}")))?;
        let kind =
            EntryKind::from_name(&e.kind).ok_or_else(|| bad(format!("ledger line {n}: unknown kind {:?}", e.kind)))?;
        entries.push(LedgerEntry {
            fields: EntryFields {
                seq: e.seq,
                at: e.at,
                kind,
                product: e.product,
                license_id: hex_array(&e.license_id, "license_id", n)?,
                device: hex_array(&e.device, "device", n)?,
                seats: e.seats,
                code: e.code,
            },
            prev_hash: hex_array(&e.prev_hash, "prev_hash", n)?,
            hash: hex_array(&e.hash, "hash", n)?,
        });
    }
    Ok(Export { entries, head })
}

/// The bounds of a month `YYYY-MM` in Unix seconds (UTC): `[start, end)`.
pub fn period_bounds(period: &str) -> Option<(u64, u64)> {
    let (y, m) = period.split_once('-')?;
    if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let start = Date::from_calendar_date(year, month, 1).ok()?;
    let (ny, nm) = if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    let end = Date::from_calendar_date(ny, nm, 1).ok()?;
    let unix = |d: Date| u64::try_from(d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()).ok();
    Some((unix(start)?, unix(end)?))
}

/// What a successful check found.
#[derive(Debug)]
pub struct Verified {
    /// Entries in the export.
    pub entries: usize,
    /// The invoice's period.
    pub period: String,
    /// Its total, in minor units.
    pub total: u64,
    /// Its currency.
    pub currency: String,
    /// Entries this keystore had verified before (the part that had to be unchanged).
    pub previously_verified: u64,
    /// Licenses issued through the server that were found where recorded.
    pub issued_checked: usize,
    /// Codes whose activations were counted against their limits.
    pub codes_checked: usize,
}

fn day(t: u64) -> String {
    crate::dates::format(t)
}

/// Checks `invoice_json` against the ledger export `ledger_text` and the
/// keystore's records; on success the export's signed head is recorded, so
/// the next export must extend it.
pub fn verify(records: &LedgerRecords, ledger_text: &str, invoice_json: &str, now: u64) -> Result<Verified> {
    let pin = records.pin()?.ok_or_else(|| {
        SdkError::LedgerRecords(format!(
            "this keystore has pinned no licensing server ({} is missing): run `sealsdk server certify` first, \
             which pins the operator key that signs invoices",
            records.dir().join("pin.json").display()
        ))
    })?;
    let operator = pin.key()?;
    let Export { entries, head } = parse_signed_export(ledger_text)?;
    verify_chain(&entries).map_err(|e| bad(format!("the ledger export does not verify: {e}")))?;
    let last_hash = entries.last().map_or(GENESIS_HASH, |e| e.hash);

    // The export ends in a head the operator signed for exactly these entries.
    let (head, head_sig) = head.ok_or_else(|| {
        bad("the ledger export ends without the operator's signed head: it was cut short or edited, \
             or comes from a server older than this sealsdk"
            .into())
    })?;
    head.verify(&operator, &head_sig).map_err(|_| {
        bad("the export's head is not signed by the operator key you pinned: the export was altered after it was \
             signed, or comes from another server"
            .into())
    })?;
    if head.vendor != pin.vendor {
        return Err(bad(format!("the export is vendor {}'s ledger, not yours ({})", head.vendor, pin.vendor)));
    }
    if head.seq != entries.len() as u64 || head.hash != last_hash {
        return Err(bad(format!(
            "the export has {} entries but its signed head names {}: entries were added or removed after the \
             operator signed it",
            entries.len(),
            head.seq
        )));
    }

    // It extends, unchanged, the last head this keystore verified.
    let heads = records.heads()?;
    let previous = heads.iter().max_by_key(|h| h.seq);
    if let Some(p) = previous {
        let mut p_hash = [0u8; 32];
        hex::decode_to_slice(&p.hash, &mut p_hash)
            .map_err(|_| SdkError::LedgerRecords("ledger/heads.jsonl holds a damaged head".into()))?;
        if p.seq > entries.len() as u64 {
            return Err(bad(format!(
                "the export has {} entries, but on {} you verified {}: the operator removed entries from the ledger \
                 (the signed head you hold in ledger/heads.jsonl proves what it claimed then)",
                entries.len(),
                day(p.verified_at),
                p.seq
            )));
        }
        let at = if p.seq == 0 { GENESIS_HASH } else { entries[p.seq as usize - 1].hash };
        if at != p_hash {
            return Err(bad(format!(
                "the ledger's history was rewritten: entry {} is not the one you verified on {} (the operator signed \
                 head {} then, kept in ledger/heads.jsonl); keep both exports as evidence",
                p.seq,
                day(p.verified_at),
                p.hash
            )));
        }
    }

    // The invoice: signed, a prefix of this chain, exactly its month.
    let inv: InvoiceDoc = serde_json::from_str(invoice_json)
        .map_err(|e| bad(format!("the invoice is not a Sealrun invoice (JSON): {e}")))?;
    let (Some(signed_at), Some(sig_hex), Some(plans)) = (inv.signed_at, inv.signature.as_deref(), inv.plans.as_ref())
    else {
        return Err(bad("the invoice carries no operator signature (or no plan list): it comes from a server \
                        older than this sealsdk, or was edited"
            .into()));
    };
    let mut sig = [0u8; 64];
    hex::decode_to_slice(sig_hex, &mut sig).map_err(|_| bad("the invoice's signature is not 128 hex digits".into()))?;
    let mut ledger_hash = [0u8; 32];
    hex::decode_to_slice(&inv.ledger_hash, &mut ledger_hash)
        .map_err(|_| bad("the invoice's ledger_hash is not 64 hex digits".into()))?;
    let stated_segments: Vec<PlanSegment> = plans
        .iter()
        .map(|s| PlanSegment { effective_from: s.effective_from, from: s.from, until: s.until, plan: s.plan.plan() })
        .collect();
    let stated_lines: Vec<InvoiceLine> = inv.lines.iter().map(Line::to_line).collect();
    let statement = InvoiceStatement {
        vendor: inv.vendor.clone(),
        period: inv.period.clone(),
        start: inv.start,
        end: inv.end,
        segments: stated_segments.clone(),
        lines: stated_lines.clone(),
        total: inv.total,
        ledger_seq: inv.ledger_seq,
        ledger_hash,
        closed: inv.closed,
        signed_at,
    };
    statement.verify(&operator, &sig).map_err(|_| {
        bad("the invoice is not signed by the operator key you pinned: it was altered after the operator signed it, \
             or comes from another server"
            .into())
    })?;
    if inv.vendor != pin.vendor {
        return Err(bad(format!("the invoice is for vendor {}, not for you ({})", inv.vendor, pin.vendor)));
    }
    let n = usize::try_from(inv.ledger_seq).unwrap_or(usize::MAX);
    if n > entries.len() {
        return Err(bad(format!(
            "the invoice was computed from {n} ledger entries but this export has only {}: check it against an \
             export made after the invoice",
            entries.len()
        )));
    }
    let at_n = if n == 0 { GENESIS_HASH } else { entries[n - 1].hash };
    if at_n != ledger_hash {
        return Err(bad(format!(
            "entry {n} in the export has another hash than the invoice names: the operator billed you from a \
             different ledger than it exports (both are signed: keep them as evidence)"
        )));
    }
    let (start, end) = period_bounds(&inv.period)
        .ok_or_else(|| bad(format!("the invoice's period {:?} is not a month (YYYY-MM)", inv.period)))?;
    if (inv.start, inv.end) != (start, end) {
        return Err(bad(format!(
            "the invoice bills the window {} – {}, but its period {} is {} – {}: the window was altered to bill \
             entries outside the month",
            fmt_time(inv.start),
            fmt_time(inv.end),
            inv.period,
            fmt_time(start),
            fmt_time(end)
        )));
    }

    // Exactly the plans the vendor accepted, each where it applied.
    let accepted = records.history()?;
    if accepted.is_empty() {
        return Err(SdkError::LedgerRecords(
            "you have not accepted a price plan: read `sealsdk server plan show`, then run `sealsdk server plan accept`"
                .into(),
        ));
    }
    let expected = segments(&accepted, start, end);
    if expected.is_empty() {
        return Err(bad(format!("no plan you accepted covers {}: the first takes effect later", inv.period)));
    }
    for s in &stated_segments {
        match accepted.iter().find(|a| a.effective_from == s.effective_from) {
            None => {
                return Err(bad(format!(
                    "the invoice applies a plan in force from {} that you never accepted ({}): check it with \
                     `sealsdk server plan show` and accept it only if you agreed to it",
                    fmt_time(s.effective_from),
                    plan_summary(&s.plan)
                )));
            }
            Some(a) if a.plan != s.plan => {
                return Err(bad(format!(
                    "the invoice's plan in force from {} is not the one you accepted: {}",
                    fmt_time(s.effective_from),
                    plan_differences(&a.plan, &s.plan)
                )));
            }
            Some(_) => {}
        }
    }
    if stated_segments != expected {
        let missing = expected.iter().find(|e| !stated_segments.iter().any(|s| s.effective_from == e.effective_from));
        return Err(bad(match missing {
            Some(m) => format!(
                "the invoice leaves out the plan you accepted in force from {}: it prices the month by other plans",
                fmt_time(m.effective_from)
            ),
            None => "the invoice applies your accepted plans to other parts of the month than they cover".into(),
        }));
    }
    if inv.plan.plan() != expected[0].plan {
        return Err(bad("the invoice's headline plan is not the accepted plan in force at the month's start".into()));
    }

    // No license handed out twice.
    let mut handed: BTreeMap<[u8; 16], u64> = BTreeMap::new();
    for f in entries.iter().map(|e| &e.fields).filter(|f| f.kind.hands_out()) {
        if let Some(first) = handed.insert(f.license_id, f.seq) {
            return Err(bad(format!(
                "license {} is handed out twice, in entries {first} and {}: one license was billed twice",
                hex::encode(f.license_id),
                f.seq
            )));
        }
    }

    // The vendor's own licenses: each where the server said, no other.
    let issued = records.issued()?;
    let mut issued_checked = 0;
    for (id, seq) in &issued {
        if *seq == 0 || *seq > entries.len() as u64 {
            continue;
        }
        let f = &entries[*seq as usize - 1].fields;
        if f.kind != EntryKind::LicenseIssued || f.license_id != *id {
            return Err(bad(format!(
                "license {} you issued was entry {seq} when the server issued it, but entry {seq} is now {} of \
                 license {}: the ledger was rewritten",
                hex::encode(id),
                f.kind.as_str(),
                hex::encode(f.license_id)
            )));
        }
        issued_checked += 1;
    }
    let mine: std::collections::BTreeSet<[u8; 16]> = issued.iter().map(|(id, _)| *id).collect();
    for f in entries.iter().map(|e| &e.fields).filter(|f| f.seq > pin.tracking_from) {
        if f.kind == EntryKind::LicenseIssued && !mine.contains(&f.license_id) {
            return Err(bad(format!(
                "entry {} bills license {} as issued by you, but this keystore did not issue it: an entry was \
                 inserted (if you issue through the server from another machine too, add its ledger/issued.txt \
                 lines to this keystore's)",
                f.seq,
                hex::encode(f.license_id)
            )));
        }
        if matches!(f.kind, EntryKind::Activation | EntryKind::Transfer) && f.code.is_none() {
            return Err(bad(format!(
                "entry {} is an activation that names no activation code: it cannot be checked against a code's \
                 limit, so it was not written by a current server",
                f.seq
            )));
        }
    }

    // Activation codes: within their limits at every point.
    let codes = records.codes()?;
    #[derive(Default)]
    struct Count {
        activations: u64,
        transfers: u64,
        deactivations: u64,
    }
    let mut counts: BTreeMap<u64, Count> = BTreeMap::new();
    for f in entries.iter().map(|e| &e.fields) {
        let Some(code) = f.code else { continue };
        let Some(limits) = codes.get(&code) else {
            if f.seq > pin.tracking_from {
                return Err(bad(format!(
                    "entry {} is {} of activation code {code}, which you did not make from this keystore: an entry \
                     was inserted",
                    f.seq,
                    f.kind.as_str()
                )));
            }
            continue;
        };
        let c = counts.entry(code).or_default();
        match f.kind {
            EntryKind::Activation => c.activations += 1,
            EntryKind::Transfer => c.transfers += 1,
            EntryKind::Deactivation => c.deactivations += 1,
            _ => {}
        }
        if c.transfers > limits.transfer_limit || c.transfers > c.deactivations {
            return Err(bad(format!(
                "activation code {code} ({}) allows {} transfer(s), each after a deactivation, but entry {} is \
                 transfer {} after {} deactivation(s): the operator billed transfers that did not happen",
                limits.product, limits.transfer_limit, f.seq, c.transfers, c.deactivations
            )));
        }
        let live = (c.activations + c.transfers).saturating_sub(c.deactivations);
        if c.activations > limits.max_activations || live > limits.max_activations {
            return Err(bad(format!(
                "activation code {code} ({}) allows {} activation(s) at once, but entry {} makes it {}: the \
                 operator billed activations beyond the code's limit",
                limits.product,
                limits.max_activations,
                f.seq,
                c.activations.max(live)
            )));
        }
    }

    // The figures.
    let totals = invoice_over(&expected, &entries[..n], start, end);
    let lines = totals.lines;
    if lines != stated_lines {
        for (mine, theirs) in lines.iter().zip(&stated_lines) {
            if mine != theirs {
                return Err(bad(format!(
                    "invoice line for {} does not match the ledger: the ledger gives {} licenses ({} free), {} \
                     transfers, amount {}; the invoice says {} ({} free), {} transfers, amount {}",
                    theirs.product,
                    mine.licenses,
                    mine.free,
                    mine.transfers,
                    mine.amount,
                    theirs.licenses,
                    theirs.free,
                    theirs.transfers,
                    theirs.amount
                )));
            }
        }
        return Err(bad(format!("the invoice has {} lines but the ledger gives {}", stated_lines.len(), lines.len())));
    }
    if totals.total != inv.total {
        return Err(bad(format!("the invoice total {} does not match the ledger's {}", inv.total, totals.total)));
    }

    if previous.is_none_or(|p| p.seq < head.seq) {
        records.add_head(&HeadRecord {
            vendor: head.vendor.clone(),
            seq: head.seq,
            hash: hex::encode(head.hash),
            signed_at: head.signed_at,
            signature: hex::encode(head_sig),
            verified_at: now,
        })?;
    }
    Ok(Verified {
        entries: entries.len(),
        period: inv.period,
        total: inv.total,
        currency: inv.plan.currency,
        previously_verified: previous.map_or(0, |p| p.seq),
        issued_checked,
        codes_checked: counts.len(),
    })
}

/// Checks a signed head fetched at pinning time and returns it as a record.
pub fn check_head(export: &Export, operator: &sealrun_format::VendorPublicKey, now: u64) -> Result<HeadRecord> {
    verify_chain(&export.entries).map_err(|e| bad(format!("the server's ledger export does not verify: {e}")))?;
    let (head, sig) = export.head.clone().ok_or_else(|| {
        bad("the server's ledger export has no signed head: the server is older than this sealsdk".into())
    })?;
    head.verify(operator, &sig)
        .map_err(|_| bad("the server's ledger head is not signed by its operator key".into()))?;
    if head.seq != export.entries.len() as u64 || head.hash != export.entries.last().map_or(GENESIS_HASH, |e| e.hash) {
        return Err(bad("the server's signed head does not match its export".into()));
    }
    Ok(HeadRecord {
        vendor: head.vendor,
        seq: head.seq,
        hash: hex::encode(head.hash),
        signed_at: head.signed_at,
        signature: hex::encode(sig),
        verified_at: now,
    })
}

fn fmt_time(t: u64) -> String {
    match i64::try_from(t).ok().and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()) {
        Some(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => format!("{t} (beyond any date)"),
    }
}

fn plan_summary(p: &PricePlan) -> String {
    format!(
        "{} {} per license, {} per seat, {} per transfer, {} free",
        p.currency, p.license_fee, p.seat_fee, p.transfer_fee, p.free_licenses
    )
}

#[cfg(test)]
mod tests {
    use sealrun_format::VendorSigningKey;
    use sealrun_format::ledger::ScheduledPlan;
    use serde_json::{Value, json};

    use super::*;
    use crate::ledger_state::{CodeRecord, Pin};

    const JAN: (u64, u64) = (1_798_761_600, 1_801_440_000); // 2027-01

    /// The operator, as an attacker: it holds the server's key and database,
    /// so it can write any chain and sign any head and invoice.
    struct Operator {
        key: VendorSigningKey,
        chain: Vec<LedgerEntry>,
    }

    impl Operator {
        fn new() -> Self {
            Operator { key: VendorSigningKey::from_seed(&[42; 32]), chain: Vec::new() }
        }

        fn push(&mut self, at: u64, kind: EntryKind, id: u8, code: Option<u64>) -> u64 {
            let prev = self.chain.last().map_or(GENESIS_HASH, |e| e.hash);
            let seq = self.chain.len() as u64 + 1;
            let f = EntryFields {
                seq,
                at,
                kind,
                product: "com.acme.tool".into(),
                license_id: [id; 16],
                device: [1; 32],
                seats: 0,
                code,
            };
            self.chain.push(LedgerEntry::after(prev, f));
            seq
        }

        fn rehash(&mut self) {
            let mut prev = GENESIS_HASH;
            for (i, e) in self.chain.iter_mut().enumerate() {
                e.fields.seq = i as u64 + 1;
                e.prev_hash = prev;
                e.hash = e.fields.hash_after(&prev);
                prev = e.hash;
            }
        }

        fn export(&self) -> String {
            let mut out = String::new();
            for e in &self.chain {
                let f = &e.fields;
                let mut v = json!({
                    "seq": f.seq, "at": f.at, "kind": f.kind.as_str(), "product": f.product,
                    "license_id": hex::encode(f.license_id), "device": hex::encode(f.device), "seats": f.seats,
                    "prev_hash": hex::encode(e.prev_hash), "hash": hex::encode(e.hash),
                });
                if let Some(c) = f.code {
                    v["code"] = json!(c);
                }
                out.push_str(&format!("{v}\n"));
            }
            let head = ChainHead {
                vendor: "acme".into(),
                seq: self.chain.len() as u64,
                hash: self.chain.last().map_or(GENESIS_HASH, |e| e.hash),
                signed_at: JAN.1 + 10,
            };
            let sig = head.sign(&self.key);
            out.push_str(&format!(
                "{}\n",
                json!({"head": {"vendor": head.vendor, "seq": head.seq, "hash": hex::encode(head.hash),
                    "signed_at": head.signed_at, "signature": hex::encode(sig)}})
            ));
            out
        }

        /// The invoice the server computes, signed, after `edit` changed its statement.
        fn invoice(&self, history: &[ScheduledPlan], edit: impl FnOnce(&mut InvoiceStatement)) -> String {
            let segs = segments(history, JAN.0, JAN.1);
            let totals = invoice_over(&segs, &self.chain, JAN.0, JAN.1);
            let mut st = InvoiceStatement {
                vendor: "acme".into(),
                period: "2027-01".into(),
                start: JAN.0,
                end: JAN.1,
                segments: segs,
                lines: totals.lines,
                total: totals.total,
                ledger_seq: self.chain.len() as u64,
                ledger_hash: self.chain.last().map_or(GENESIS_HASH, |e| e.hash),
                closed: true,
                signed_at: JAN.1 + 10,
            };
            edit(&mut st);
            let sig = st.sign(&self.key);
            let plan_json = |p: &PricePlan| {
                json!({"currency": p.currency, "license_fee": p.license_fee, "seat_fee": p.seat_fee,
                    "transfer_fee": p.transfer_fee, "free_licenses": p.free_licenses,
                    "product_fees": p.product_fees.iter().cloned().collect::<BTreeMap<_, _>>()})
            };
            let v: Value = json!({
                "vendor": st.vendor, "period": st.period, "start": st.start, "end": st.end,
                "plan": plan_json(&st.segments[0].plan),
                "plans": st.segments.iter().map(|s| json!({"effective_from": s.effective_from, "from": s.from,
                    "until": s.until, "plan": plan_json(&s.plan)})).collect::<Vec<_>>(),
                "lines": st.lines.iter().map(|l| json!({"product": l.product, "plan_from": l.plan_from,
                    "licenses": l.licenses, "free": l.free, "unit_fee": l.unit_fee, "seats": l.seats,
                    "seat_fee": l.seat_fee, "transfers": l.transfers, "transfer_fee": l.transfer_fee,
                    "amount": l.amount})).collect::<Vec<_>>(),
                "total": st.total, "ledger_seq": st.ledger_seq, "ledger_hash": hex::encode(st.ledger_hash),
                "closed": st.closed, "signed_at": st.signed_at, "signature": hex::encode(sig),
            });
            v.to_string()
        }
    }

    fn plan(fee: u64) -> PricePlan {
        PricePlan { currency: "EUR".into(), license_fee: fee, transfer_fee: 10, ..PricePlan::default() }
    }

    /// A vendor that pinned the operator, accepted a 1.00 plan, issued
    /// licenses 1 and 2 itself and made code 7 (one activation, one transfer).
    fn setup() -> (tempfile::TempDir, LedgerRecords, Operator, Vec<ScheduledPlan>) {
        let dir = tempfile::tempdir().unwrap();
        let records = LedgerRecords::in_keystore(dir.path());
        let op = Operator::new();
        let pin = Pin {
            server: "http://licenses.test".into(),
            vendor: "acme".into(),
            operator_key: op.key.public().to_string(),
            tracking_from: 0,
        };
        records.set_pin(&pin).unwrap();
        let history = vec![ScheduledPlan { effective_from: 0, plan: plan(100) }];
        records.accept(&history, 1).unwrap();
        records
            .add_codes(&[CodeRecord { id: 7, product: "com.acme.tool".into(), max_activations: 1, transfer_limit: 1 }])
            .unwrap();
        let mut op = op;
        let s1 = op.push(JAN.0 + 10, EntryKind::LicenseIssued, 1, None);
        let s2 = op.push(JAN.0 + 20, EntryKind::LicenseIssued, 2, None);
        records.add_issued(&[1; 16], s1).unwrap();
        records.add_issued(&[2; 16], s2).unwrap();
        op.push(JAN.0 + 30, EntryKind::Activation, 3, Some(7));
        (dir, records, op, history)
    }

    fn refused(records: &LedgerRecords, export: &str, invoice: &str) -> String {
        match verify(records, export, invoice, 5) {
            Err(SdkError::LedgerMismatch(m)) => m,
            other => panic!("expected a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn an_honest_invoice_verifies_and_its_head_is_kept() {
        let (_d, records, op, history) = setup();
        let ok = verify(&records, &op.export(), &op.invoice(&history, |_| {}), 5).unwrap();
        assert_eq!((ok.entries, ok.total, ok.issued_checked, ok.codes_checked), (3, 300, 2, 1));
        assert_eq!(records.heads().unwrap().len(), 1);
        // The same export again: nothing new to keep, still fine.
        verify(&records, &op.export(), &op.invoice(&history, |_| {}), 6).unwrap();
        assert_eq!(records.heads().unwrap().len(), 1);
    }

    #[test]
    fn an_edited_window_is_caught() {
        let (_d, records, mut op, history) = setup();
        // The vendor's own license from February, billed in January by
        // widening the window (and the operator signs the result).
        let s = op.push(JAN.1 + 5, EntryKind::LicenseIssued, 4, None);
        records.add_issued(&[4; 16], s).unwrap();
        let wide = op.invoice(&history, |st| {
            st.start = 0;
            st.end = u64::MAX;
            st.segments = segments(&history, st.start, st.end);
            let t = invoice_over(&st.segments, &op.chain, st.start, st.end);
            st.lines = t.lines;
            st.total = t.total;
        });
        let m = refused(&records, &op.export(), &wide);
        assert!(m.contains("the window was altered"), "{m}");
    }

    #[test]
    fn an_edited_plan_is_caught() {
        let (_d, records, op, _) = setup();
        let dearer = vec![ScheduledPlan { effective_from: 0, plan: plan(1000) }];
        let m = refused(&records, &op.export(), &op.invoice(&dearer, |_| {}));
        assert!(m.contains("is not the one you accepted") && m.contains("license_fee 1000 instead of 100"), "{m}");
        // A plan change backdated to the month's start that the vendor never accepted.
        let backdated = vec![
            ScheduledPlan { effective_from: 0, plan: plan(100) },
            ScheduledPlan { effective_from: JAN.0, plan: plan(1000) },
        ];
        let m = refused(&records, &op.export(), &op.invoice(&backdated, |_| {}));
        assert!(m.contains("that you never accepted"), "{m}");
        // The invoice quietly drops a cheaper plan the vendor accepted mid-month.
        let rewritten = [
            ScheduledPlan { effective_from: 0, plan: plan(1) },
            ScheduledPlan { effective_from: JAN.0 + 15, plan: plan(50) },
        ];
        assert!(records.accept(&rewritten, 2).is_err(), "an accepted plan cannot be rewritten");
        let both = vec![
            ScheduledPlan { effective_from: 0, plan: plan(100) },
            ScheduledPlan { effective_from: JAN.0 + 15, plan: plan(50) },
        ];
        records.accept(&both, 2).unwrap();
        let m = refused(&records, &op.export(), &op.invoice(&both[..1], |_| {}));
        assert!(m.contains("leaves out the plan you accepted"), "{m}");
        verify(&records, &op.export(), &op.invoice(&both, |_| {}), 5).unwrap();
    }

    #[test]
    fn inserted_entries_are_caught() {
        let (_d, records, mut op, history) = setup();
        for id in 10..15 {
            op.push(JAN.0 + 40 + u64::from(id), EntryKind::LicenseIssued, id, None);
        }
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("entry 4 bills license") && m.contains("this keystore did not issue it"), "{m}");
    }

    #[test]
    fn a_license_billed_twice_is_caught() {
        let (_d, records, mut op, history) = setup();
        op.push(JAN.0 + 50, EntryKind::Transfer, 3, Some(7));
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("is handed out twice, in entries 3 and 4"), "{m}");
    }

    #[test]
    fn rewritten_history_after_a_verify_is_caught() {
        let (_d, records, mut op, history) = setup();
        verify(&records, &op.export(), &op.invoice(&history, |_| {}), 5).unwrap();
        // The operator replaces the vendor's second license by one it says
        // the vendor issued, recomputes the chain and signs everything anew.
        op.chain[1].fields.license_id = [1; 16];
        op.chain[1].fields.seats = 50;
        op.rehash();
        op.push(JAN.0 + 60, EntryKind::LicenseIssued, 20, None);
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("history was rewritten: entry 3 is not the one you verified"), "{m}");
        // Cutting the ledger short is caught too.
        op.chain.truncate(1);
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("removed entries"), "{m}");
    }

    #[test]
    fn a_moved_license_of_the_vendor_is_caught() {
        let (_d, records, mut op, history) = setup();
        // Before any verify: the vendor's license 2 is replaced by a revoke.
        op.chain[1].fields.kind = EntryKind::LicenseRevoked;
        op.rehash();
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("you issued was entry 2 when the server issued it"), "{m}");
    }

    #[test]
    fn activations_beyond_a_codes_limit_are_caught() {
        let (_d, records, mut op, history) = setup();
        op.push(JAN.0 + 70, EntryKind::Activation, 30, Some(7));
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("allows 1 activation(s) at once, but entry 4 makes it 2"), "{m}");

        let (_d, records, mut op, history) = setup();
        op.push(JAN.0 + 70, EntryKind::Transfer, 31, Some(7));
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("transfer 1 after 0 deactivation(s)"), "{m}");

        // A deactivation, then a transfer: within the limits, billed at the transfer fee.
        let (_d, records, mut op, history) = setup();
        op.push(JAN.0 + 70, EntryKind::Deactivation, 3, Some(7));
        op.push(JAN.0 + 80, EntryKind::Transfer, 32, Some(7));
        let ok = verify(&records, &op.export(), &op.invoice(&history, |_| {}), 5).unwrap();
        assert_eq!(ok.total, 310);
        // A second transfer is beyond the code's transfer limit of 1.
        op.push(JAN.0 + 90, EntryKind::Deactivation, 32, Some(7));
        op.push(JAN.0 + 95, EntryKind::Transfer, 33, Some(7));
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("allows 1 transfer(s)"), "{m}");

        // A code the vendor never made.
        let (_d, records, mut op, history) = setup();
        op.push(JAN.0 + 70, EntryKind::Activation, 34, Some(8));
        let m = refused(&records, &op.export(), &op.invoice(&history, |_| {}));
        assert!(m.contains("activation code 8, which you did not make"), "{m}");
    }

    #[test]
    fn signatures_and_figures_are_checked() {
        let (_d, records, op, history) = setup();
        let good = op.invoice(&history, |_| {});
        // Edited after signing (not by the operator key).
        let edited = good.replace("\"total\":300", "\"total\":400");
        assert!(refused(&records, &op.export(), &edited).contains("not signed by the operator key you pinned"));
        // Signed, but the figures are not the ledger's.
        let over = op.invoice(&history, |st| {
            st.lines[0].amount += 100;
            st.total += 100;
        });
        assert!(refused(&records, &op.export(), &over).contains("does not match the ledger"));
        // A head that names other entries than the export holds.
        let export = op.export();
        let without_last: String = {
            let lines: Vec<&str> = export.lines().collect();
            let mut v: Vec<&str> = lines[..lines.len() - 2].to_vec();
            v.push(lines[lines.len() - 1]);
            v.join("\n") + "\n"
        };
        assert!(
            refused(&records, &without_last, &good).contains("entries were added or removed after the operator signed")
        );
        let unsigned: String =
            export.lines().filter(|l| !l.starts_with("{\"head\"")).map(|l| format!("{l}\n")).collect();
        assert!(refused(&records, &unsigned, &good).contains("without the operator's signed head"));
        // A dropped entry breaks the chain.
        let dropped: String =
            export.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| format!("{l}\n")).collect();
        assert!(refused(&records, &dropped, &good).contains("broken at entry 2"));
        assert!(refused(&records, "not json\n", "{}").contains("ledger line 1"));
    }

    #[test]
    fn no_pin_no_verify() {
        let dir = tempfile::tempdir().unwrap();
        let records = LedgerRecords::in_keystore(dir.path());
        let op = Operator::new();
        let e = verify(&records, &op.export(), "{}", 1).unwrap_err();
        assert!(matches!(e, SdkError::LedgerRecords(_)) && e.to_string().contains("sealsdk server certify"), "{e}");
    }

    #[test]
    fn months() {
        assert_eq!(period_bounds("2027-01"), Some(JAN));
        for bad in ["2027-13", "2027-1", "+027-01", "2027/01", ""] {
            assert_eq!(period_bounds(bad), None, "{bad}");
        }
    }
}
