//! Price plans and invoices (claim 11). An invoice is computed from the
//! vendor's ledger by [`sealrun_format::ledger::invoice`], the same function
//! `sealsdk ledger verify` runs on the vendor's export, and names the chain
//! head it was computed at, so the vendor can check every line.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::{Date, Month, OffsetDateTime, Time};
use utoipa::ToSchema;

use sealrun_format::ledger::{InvoiceLine, PricePlan, invoice};

use crate::service::Service;
use crate::{ServerError, now};

/// A price plan as stored and sent. Amounts in the currency's minor unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanJson {
    /// ISO 4217 currency code.
    pub currency: String,
    /// Fee per license issued or activated.
    pub license_fee: u64,
    /// Fee per floating seat a license grants.
    pub seat_fee: u64,
    /// Licenses per month that are free.
    pub free_licenses: u64,
    /// License fees for particular products, replacing `license_fee`.
    #[serde(default)]
    pub product_fees: BTreeMap<String, u64>,
}

impl Default for PlanJson {
    fn default() -> Self {
        PlanJson {
            currency: "EUR".into(),
            license_fee: 0,
            seat_fee: 0,
            free_licenses: 0,
            product_fees: BTreeMap::new(),
        }
    }
}

impl PlanJson {
    /// As stored.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a plan serialises")
    }

    /// Checks the values.
    pub fn check(&self) -> Result<(), ServerError> {
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ServerError::Invalid { field: "currency", problem: "must be an ISO 4217 code such as EUR" });
        }
        if let Some(p) = self.product_fees.keys().find_map(|p| sealrun_format::text::product_id_problem(p)) {
            return Err(ServerError::Invalid { field: "product_fees", problem: p });
        }
        Ok(())
    }

    /// The format crate's plan.
    pub fn to_plan(&self) -> PricePlan {
        PricePlan {
            currency: self.currency.clone(),
            license_fee: self.license_fee,
            seat_fee: self.seat_fee,
            free_licenses: self.free_licenses,
            product_fees: self.product_fees.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }
}

/// An invoice line as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineJson {
    /// Product id.
    pub product: String,
    /// Licenses issued or activated.
    pub licenses: u64,
    /// Of which free.
    pub free: u64,
    /// Fee per license.
    pub unit_fee: u64,
    /// Floating seats.
    pub seats: u64,
    /// Fee per seat.
    pub seat_fee: u64,
    /// Amount of the line.
    pub amount: u64,
}

impl From<&InvoiceLine> for LineJson {
    fn from(l: &InvoiceLine) -> Self {
        LineJson {
            product: l.product.clone(),
            licenses: l.licenses,
            free: l.free,
            unit_fee: l.unit_fee,
            seats: l.seats,
            seat_fee: l.seat_fee,
            amount: l.amount,
        }
    }
}

/// A vendor's invoice for one month.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Invoice {
    /// Vendor name.
    pub vendor: String,
    /// `YYYY-MM`.
    pub period: String,
    /// First second of the period (Unix, UTC).
    pub start: u64,
    /// First second after it.
    pub end: u64,
    /// The plan applied.
    pub plan: PlanJson,
    /// One line per product.
    pub lines: Vec<LineJson>,
    /// Sum of the lines.
    pub total: u64,
    /// The ledger entries the invoice was computed from: 1..=`ledger_seq`.
    pub ledger_seq: u64,
    /// Hash of entry `ledger_seq` (hex): check it against your export.
    pub ledger_hash: String,
    /// Whether the period has ended (a current month's invoice still grows).
    pub closed: bool,
}

/// The bounds of a month `YYYY-MM` in Unix seconds (UTC): `[start, end)`.
pub fn period_bounds(period: &str) -> Result<(u64, u64), ServerError> {
    let bad = ServerError::Invalid { field: "period", problem: "must be a month, YYYY-MM" };
    let (y, m) = period.split_once('-').ok_or(bad)?;
    let bad = || ServerError::Invalid { field: "period", problem: "must be a month, YYYY-MM" };
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month = Month::try_from(m.parse::<u8>().map_err(|_| bad())?).map_err(|_| bad())?;
    let start = Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
    let (ny, nm) = if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    let end = Date::from_calendar_date(ny, nm, 1).map_err(|_| bad())?;
    let unix = |d: Date| u64::try_from(d.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()).unwrap_or(0);
    Ok((unix(start), unix(end)))
}

/// The month `t` falls in, as `YYYY-MM`.
pub fn period_of(t: i64) -> String {
    let d = OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

impl Service {
    /// Sets a vendor's price plan.
    pub async fn set_plan(&self, vendor: i64, plan: &PlanJson) -> Result<(), ServerError> {
        plan.check()?;
        sqlx::query("UPDATE vendors SET plan = $1 WHERE id = $2")
            .bind(plan.to_text())
            .bind(vendor)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// A vendor's price plan.
    pub async fn plan(&self, vendor: i64) -> Result<PlanJson, ServerError> {
        let r = sqlx::query("SELECT plan FROM vendors WHERE id = $1")
            .bind(vendor)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(ServerError::NotFound("vendor"))?;
        let text: String = r.try_get(0)?;
        serde_json::from_str(&text).map_err(|_| ServerError::SecretUnreadable)
    }

    /// The vendor's invoice for `period` (`YYYY-MM`), from its ledger.
    pub async fn invoice(&self, vendor: i64, period: &str) -> Result<Invoice, ServerError> {
        let (start, end) = period_bounds(period)?;
        let name = self.vendor(vendor).await?.name;
        let plan = self.plan(vendor).await?;
        let entries = self.ledger(vendor).await?;
        let totals = invoice(&plan.to_plan(), &entries, start, end);
        let (ledger_seq, ledger_hash) =
            entries.last().map_or((0, sealrun_format::ledger::GENESIS_HASH), |e| (e.fields.seq, e.hash));
        Ok(Invoice {
            vendor: name,
            period: period.to_owned(),
            start,
            end,
            plan,
            lines: totals.lines.iter().map(LineJson::from).collect(),
            total: totals.total,
            ledger_seq,
            ledger_hash: hex::encode(ledger_hash),
            closed: u64::try_from(now()).unwrap_or(0) >= end,
        })
    }
}

/// Minor units as a decimal amount (2 decimal places).
fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The invoice as CSV: one row per line and a total row.
pub fn invoice_csv(inv: &Invoice) -> String {
    let mut out = String::from("vendor,period,currency,product,licenses,free,unit_fee,seats,seat_fee,amount\n");
    for l in &inv.lines {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            inv.vendor,
            inv.period,
            inv.plan.currency,
            l.product,
            l.licenses,
            l.free,
            money(l.unit_fee),
            l.seats,
            money(l.seat_fee),
            money(l.amount)
        );
    }
    let _ = writeln!(out, "{},{},{},TOTAL,,,,,,{}", inv.vendor, inv.period, inv.plan.currency, money(inv.total));
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The invoice as a standalone HTML page.
pub fn invoice_html(inv: &Invoice) -> String {
    let mut rows = String::new();
    for l in &inv.lines {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.product),
            l.licenses,
            l.free,
            money(l.unit_fee),
            l.seats,
            money(l.seat_fee),
            money(l.amount)
        );
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Invoice {v} {p}</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style>\
</head><body><h1>Invoice {p}</h1><p>Vendor: <b>{v}</b> · Currency: {c}{open}</p>\
<table><tr><th>Product</th><th>Licenses</th><th>Free</th><th>Unit fee</th><th>Seats</th><th>Seat fee</th><th>Amount</th></tr>{rows}\
<tr><th>Total</th><td></td><td></td><td></td><td></td><td></td><th>{t}</th></tr></table>\
<p><small>Computed from ledger entries 1–{seq}, head {h}. Check it with <code>sealsdk ledger verify</code>.</small></p></body></html>\n",
        v = esc(&inv.vendor),
        p = esc(&inv.period),
        c = esc(&inv.plan.currency),
        open = if inv.closed { "" } else { " · <b>period still open</b>" },
        t = money(inv.total),
        seq = inv.ledger_seq,
        h = inv.ledger_hash,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(period_bounds("2026-11").unwrap(), (1_793_491_200, 1_796_083_200));
        assert_eq!(period_bounds("2026-12").unwrap().1, period_bounds("2027-01").unwrap().0);
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00", "abcd-ef"] {
            assert!(period_bounds(bad).is_err(), "{bad}");
        }
        assert_eq!(period_of(1_793_491_200), "2026-11");
        assert_eq!(period_of(1_793_491_199), "2026-10");
    }
}
