//! `sealsdk ledger verify`: checks an invoice against the vendor's own
//! ledger export. The chain must verify from its first entry, reach the
//! entry the invoice names with the same hash, and give the same lines and
//! total under the invoice's plan.
use std::collections::BTreeMap;

use serde::Deserialize;

use sealrun_format::ledger::{EntryFields, EntryKind, LedgerEntry, PricePlan, invoice, verify_chain};

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
    prev_hash: String,
    hash: String,
}

#[derive(Deserialize)]
struct PlanLine {
    currency: String,
    license_fee: u64,
    seat_fee: u64,
    free_licenses: u64,
    #[serde(default)]
    product_fees: BTreeMap<String, u64>,
}

#[derive(Deserialize, PartialEq, Eq, Debug)]
struct Line {
    product: String,
    licenses: u64,
    free: u64,
    unit_fee: u64,
    seats: u64,
    seat_fee: u64,
    amount: u64,
}

#[derive(Deserialize)]
struct InvoiceDoc {
    period: String,
    start: u64,
    end: u64,
    plan: PlanLine,
    lines: Vec<Line>,
    total: u64,
    ledger_seq: u64,
    ledger_hash: String,
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

/// Parses a ledger export (JSON lines).
pub fn parse_export(text: &str) -> Result<Vec<LedgerEntry>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 1;
        let e: EntryLine =
            serde_json::from_str(line).map_err(|e| bad(format!("ledger line {n} is not an entry: {e}")))?;
        let kind =
            EntryKind::from_name(&e.kind).ok_or_else(|| bad(format!("ledger line {n}: unknown kind {:?}", e.kind)))?;
        out.push(LedgerEntry {
            fields: EntryFields {
                seq: e.seq,
                at: e.at,
                kind,
                product: e.product,
                license_id: hex_array(&e.license_id, "license_id", n)?,
                device: hex_array(&e.device, "device", n)?,
                seats: e.seats,
            },
            prev_hash: hex_array(&e.prev_hash, "prev_hash", n)?,
            hash: hex_array(&e.hash, "hash", n)?,
        });
    }
    Ok(out)
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
}

/// Checks `invoice_json` against the ledger export `ledger_text`.
pub fn verify(ledger_text: &str, invoice_json: &str) -> Result<Verified> {
    let entries = parse_export(ledger_text)?;
    verify_chain(&entries).map_err(|e| bad(format!("the ledger export does not verify: {e}")))?;
    let inv: InvoiceDoc = serde_json::from_str(invoice_json)
        .map_err(|e| bad(format!("the invoice is not a Sealrun invoice (JSON): {e}")))?;
    let n = usize::try_from(inv.ledger_seq).unwrap_or(usize::MAX);
    if n > entries.len() {
        return Err(bad(format!(
            "the invoice was computed from {n} ledger entries but the export has only {}: export the ledger again",
            entries.len()
        )));
    }
    let head = if n == 0 { sealrun_format::ledger::GENESIS_HASH } else { entries[n - 1].hash };
    if hex::encode(head) != inv.ledger_hash {
        return Err(bad(format!(
            "entry {n} in the export has another hash than the invoice names: the ledgers differ"
        )));
    }
    let plan = PricePlan {
        currency: inv.plan.currency.clone(),
        license_fee: inv.plan.license_fee,
        seat_fee: inv.plan.seat_fee,
        free_licenses: inv.plan.free_licenses,
        product_fees: inv.plan.product_fees.into_iter().collect(),
    };
    let totals = invoice(&plan, &entries[..n], inv.start, inv.end);
    let lines: Vec<Line> = totals
        .lines
        .iter()
        .map(|l| Line {
            product: l.product.clone(),
            licenses: l.licenses,
            free: l.free,
            unit_fee: l.unit_fee,
            seats: l.seats,
            seat_fee: l.seat_fee,
            amount: l.amount,
        })
        .collect();
    if lines != inv.lines {
        for (mine, theirs) in lines.iter().zip(&inv.lines) {
            if mine != theirs {
                return Err(bad(format!(
                    "invoice line for {} does not match the ledger: the ledger gives {} licenses ({} free), amount {}; the invoice says {} ({} free), amount {}",
                    theirs.product, mine.licenses, mine.free, mine.amount, theirs.licenses, theirs.free, theirs.amount
                )));
            }
        }
        return Err(bad(format!("the invoice has {} lines but the ledger gives {}", inv.lines.len(), lines.len())));
    }
    if totals.total != inv.total {
        return Err(bad(format!("the invoice total {} does not match the ledger's {}", inv.total, totals.total)));
    }
    Ok(Verified { entries: entries.len(), period: inv.period, total: inv.total, currency: inv.plan.currency })
}

#[cfg(test)]
mod tests {
    use sealrun_format::ledger::GENESIS_HASH;
    use serde_json::json;

    use super::*;

    fn export(n: u64) -> (String, Vec<LedgerEntry>) {
        let mut prev = GENESIS_HASH;
        let mut text = String::new();
        let mut entries = Vec::new();
        for seq in 1..=n {
            let kind = if seq == 3 { EntryKind::Deactivation } else { EntryKind::Activation };
            let e = LedgerEntry::after(
                prev,
                EntryFields {
                    seq,
                    at: 100 + seq,
                    kind,
                    product: "a.b".into(),
                    license_id: [seq as u8; 16],
                    device: [1; 32],
                    seats: 0,
                },
            );
            prev = e.hash;
            text.push_str(
                &json!({
                    "seq": seq, "at": e.fields.at, "kind": kind.as_str(), "product": "a.b",
                    "license_id": hex::encode(e.fields.license_id), "device": hex::encode(e.fields.device), "seats": 0,
                    "prev_hash": hex::encode(e.prev_hash), "hash": hex::encode(e.hash),
                })
                .to_string(),
            );
            text.push('\n');
            entries.push(e);
        }
        (text, entries)
    }

    fn invoice_json(entries: &[LedgerEntry], seq: usize, licenses: u64, total: u64) -> String {
        json!({
            "vendor": "v", "period": "1970-01", "start": 0, "end": 1000,
            "plan": {"currency": "EUR", "license_fee": 100, "seat_fee": 0, "free_licenses": 1, "product_fees": {}},
            "lines": [{"product": "a.b", "licenses": licenses, "free": 1, "unit_fee": 100, "seats": 0, "seat_fee": 0, "amount": total}],
            "total": total, "ledger_seq": seq, "ledger_hash": hex::encode(entries[seq - 1].hash), "closed": true,
        })
        .to_string()
    }

    #[test]
    fn invoices_are_checked_line_by_line() {
        let (text, entries) = export(5);
        let ok = verify(&text, &invoice_json(&entries, 5, 4, 300)).unwrap();
        assert_eq!((ok.entries, ok.total), (5, 300));
        // Computed from a prefix: the later entries do not count.
        assert!(verify(&text, &invoice_json(&entries, 4, 3, 200)).is_ok());
        // Overbilled, undercounted, or naming a chain the export does not have.
        assert!(matches!(verify(&text, &invoice_json(&entries, 5, 4, 400)), Err(SdkError::LedgerMismatch(_))));
        assert!(matches!(verify(&text, &invoice_json(&entries, 5, 5, 400)), Err(SdkError::LedgerMismatch(_))));
        let mut other = invoice_json(&entries, 5, 4, 300);
        other = other.replace(&hex::encode(entries[4].hash), &hex::encode([9u8; 32]));
        assert!(verify(&text, &other).unwrap_err().to_string().contains("the ledgers differ"));
        let short: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(
            verify(&short, &invoice_json(&entries, 5, 4, 300))
                .unwrap_err()
                .to_string()
                .contains("export the ledger again")
        );
        // A dropped entry breaks the chain.
        let dropped: String =
            text.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| format!("{l}\n")).collect();
        assert!(
            verify(&dropped, &invoice_json(&entries, 4, 3, 200)).unwrap_err().to_string().contains("broken at entry 2")
        );
        assert!(verify("not json\n", "{}").unwrap_err().to_string().contains("ledger line 1"));
    }
}
