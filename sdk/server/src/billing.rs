//! Price plans and invoices (claim 11). An invoice is computed from the
//! vendor's ledger by [`sealrun_format::ledger::invoice_over`], the same
//! function `sealsdk ledger verify` runs on the vendor's export, names the
//! chain head it was computed at and is signed with the operator key, so
//! the vendor can check every line and show a third party what it was billed.
//!
//! Plans have a history: a change takes effect from a stated time, never
//! before it was made, and an invoice prices each part of a month by the
//! plan in force then (issue 25, finding 3).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::{Date, Month, OffsetDateTime, Time};
use utoipa::ToSchema;

use sealrun_format::ledger::{
    InvoiceLine, InvoiceStatement, PlanSegment, PricePlan, ScheduledPlan, invoice_over, segments,
};

use crate::error::ServerError;
use crate::service::Service;
use crate::time::now;

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
    /// Fee per transfer: an activation moved to another device after a
    /// deactivation. A transfer is not a new license; only this fee applies.
    #[serde(default)]
    pub transfer_fee: u64,
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
            transfer_fee: 0,
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
            transfer_fee: self.transfer_fee,
            free_licenses: self.free_licenses,
            product_fees: self.product_fees.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// The plan as sent, from the format crate's.
    pub fn from_plan(p: &PricePlan) -> PlanJson {
        PlanJson {
            currency: p.currency.clone(),
            license_fee: p.license_fee,
            seat_fee: p.seat_fee,
            transfer_fee: p.transfer_fee,
            free_licenses: p.free_licenses,
            product_fees: p.product_fees.iter().cloned().collect(),
        }
    }
}

/// A plan and when it takes effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScheduledPlanJson {
    /// From this instant (Unix seconds); 0 means from the account's start.
    pub effective_from: u64,
    /// The plan.
    pub plan: PlanJson,
}

/// A vendor's plan history, oldest first: each plan is in force until the
/// next one's `effective_from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanHistory {
    /// The plans.
    pub plans: Vec<ScheduledPlanJson>,
}

/// The part of an invoice's period one plan applied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SegmentJson {
    /// The plan's `effective_from` (its identity in the history).
    pub effective_from: u64,
    /// First second it applied to in the period.
    pub from: u64,
    /// First second after that.
    pub until: u64,
    /// The plan.
    pub plan: PlanJson,
}

/// An invoice line as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LineJson {
    /// Product id.
    pub product: String,
    /// The `effective_from` of the plan the line is priced under.
    #[serde(default)]
    pub plan_from: u64,
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
    /// Activations moved to another device.
    #[serde(default)]
    pub transfers: u64,
    /// Fee per transfer.
    #[serde(default)]
    pub transfer_fee: u64,
    /// Amount of the line.
    pub amount: u64,
}

impl From<&InvoiceLine> for LineJson {
    fn from(l: &InvoiceLine) -> Self {
        LineJson {
            product: l.product.clone(),
            plan_from: l.plan_from,
            licenses: l.licenses,
            free: l.free,
            unit_fee: l.unit_fee,
            seats: l.seats,
            seat_fee: l.seat_fee,
            transfers: l.transfers,
            transfer_fee: l.transfer_fee,
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
    /// The plan in force at the period's start (the one of `plans` that
    /// applied first).
    pub plan: PlanJson,
    /// Each plan that applied, and to which part of the period.
    pub plans: Vec<SegmentJson>,
    /// One line per plan and product.
    pub lines: Vec<LineJson>,
    /// Sum of the lines.
    pub total: u64,
    /// The ledger entries the invoice was computed from: 1..=`ledger_seq`.
    pub ledger_seq: u64,
    /// Hash of entry `ledger_seq` (hex): check it against your export.
    pub ledger_hash: String,
    /// Whether the period had ended when the invoice was computed (a current
    /// month's invoice still grows).
    pub closed: bool,
    /// When the operator signed it (Unix seconds).
    pub signed_at: u64,
    /// The operator's Ed25519 signature (hex) over every field above, by the
    /// key in `GET /v1/vendor` `operator_key`.
    pub signature: String,
}

impl Invoice {
    /// What the operator signed.
    pub fn statement(&self) -> Option<InvoiceStatement> {
        let mut ledger_hash = [0u8; 32];
        hex::decode_to_slice(&self.ledger_hash, &mut ledger_hash).ok()?;
        Some(InvoiceStatement {
            vendor: self.vendor.clone(),
            period: self.period.clone(),
            start: self.start,
            end: self.end,
            segments: self
                .plans
                .iter()
                .map(|s| PlanSegment {
                    effective_from: s.effective_from,
                    from: s.from,
                    until: s.until,
                    plan: s.plan.to_plan(),
                })
                .collect(),
            lines: self
                .lines
                .iter()
                .map(|l| InvoiceLine {
                    product: l.product.clone(),
                    plan_from: l.plan_from,
                    licenses: l.licenses,
                    free: l.free,
                    unit_fee: l.unit_fee,
                    seats: l.seats,
                    seat_fee: l.seat_fee,
                    transfers: l.transfers,
                    transfer_fee: l.transfer_fee,
                    amount: l.amount,
                })
                .collect(),
            total: self.total,
            ledger_seq: self.ledger_seq,
            ledger_hash,
            closed: self.closed,
            signed_at: self.signed_at,
        })
    }
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
    /// Schedules a plan change for a vendor from `effective_from` (default:
    /// now). A change never applies backwards: the time must not be in the
    /// past and must come after every change already scheduled, and the
    /// currency stays the account's.
    pub async fn set_plan(&self, vendor: i64, plan: &PlanJson, effective_from: Option<i64>) -> Result<(), ServerError> {
        plan.check()?;
        let at = now();
        let from = effective_from.unwrap_or(at);
        if from < at {
            return Err(ServerError::Invalid {
                field: "effective_from",
                problem: "is in the past: a plan change takes effect now or later, never backwards",
            });
        }
        let mut tx = self.db.write().await?;
        // Locks the vendor's row (PostgreSQL) so two changes cannot race past the checks below.
        sqlx::query("UPDATE vendors SET plan = plan WHERE id = $1").bind(vendor).execute(tx.conn()).await?;
        let last = sqlx::query(
            "SELECT effective_from, plan FROM plans WHERE vendor_id = $1 ORDER BY effective_from DESC LIMIT 1",
        )
        .bind(vendor)
        .fetch_optional(tx.conn())
        .await?;
        if let Some(r) = last {
            let last_from: i64 = r.try_get("effective_from")?;
            if from <= last_from {
                return Err(ServerError::Invalid {
                    field: "effective_from",
                    problem: "must be after the last scheduled plan change (see `plan show`)",
                });
            }
            let text: String = r.try_get("plan")?;
            let last_plan: PlanJson = serde_json::from_str(&text).map_err(|_| ServerError::SecretUnreadable)?;
            if last_plan.currency != plan.currency {
                return Err(ServerError::Invalid {
                    field: "currency",
                    problem: "cannot change on an account (invoices would mix currencies); make a new vendor account",
                });
            }
        }
        sqlx::query("INSERT INTO plans (vendor_id, effective_from, plan, set_at) VALUES ($1, $2, $3, $4)")
            .bind(vendor)
            .bind(from)
            .bind(plan.to_text())
            .bind(at)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// A vendor's plan history, oldest first.
    pub async fn plan_history(&self, vendor: i64) -> Result<PlanHistory, ServerError> {
        let rows = sqlx::query("SELECT effective_from, plan FROM plans WHERE vendor_id = $1 ORDER BY effective_from")
            .bind(vendor)
            .fetch_all(self.db.pool())
            .await?;
        if rows.is_empty() {
            // Every vendor has a plan from the start; none means no such vendor.
            self.vendor(vendor).await?;
        }
        let plans = rows
            .iter()
            .map(|r| {
                let text: String = r.try_get("plan")?;
                Ok(ScheduledPlanJson {
                    effective_from: crate::rows::unix(r.try_get("effective_from")?),
                    plan: serde_json::from_str(&text).map_err(|_| ServerError::SecretUnreadable)?,
                })
            })
            .collect::<Result<Vec<_>, ServerError>>()?;
        Ok(PlanHistory { plans })
    }

    /// A vendor's price plan in force now.
    pub async fn plan(&self, vendor: i64) -> Result<PlanJson, ServerError> {
        let t = crate::rows::unix(now());
        let h = self.plan_history(vendor).await?;
        h.plans.into_iter().rev().find(|p| p.effective_from <= t).map(|p| p.plan).ok_or(ServerError::NotFound("plan"))
    }

    /// The vendor's invoice for `period` (`YYYY-MM`), from its ledger read
    /// under the head's lock (so every entry stamped before now is in it),
    /// signed with the operator key.
    pub async fn invoice(&self, vendor: i64, period: &str) -> Result<Invoice, ServerError> {
        let (start, end) = period_bounds(period)?;
        let name = self.vendor(vendor).await?.name;
        let history: Vec<ScheduledPlan> = self
            .plan_history(vendor)
            .await?
            .plans
            .iter()
            .map(|p| ScheduledPlan { effective_from: p.effective_from, plan: p.plan.to_plan() })
            .collect();
        let segs = segments(&history, start, end);
        let (entries, read_at) = self.locked_ledger(vendor).await?;
        let totals = invoice_over(&segs, &entries, start, end);
        let (ledger_seq, ledger_hash) =
            entries.last().map_or((0, sealrun_format::ledger::GENESIS_HASH), |e| (e.fields.seq, e.hash));
        let plans: Vec<SegmentJson> = segs
            .iter()
            .map(|s| SegmentJson {
                effective_from: s.effective_from,
                from: s.from,
                until: s.until,
                plan: PlanJson::from_plan(&s.plan),
            })
            .collect();
        let mut inv = Invoice {
            vendor: name,
            period: period.to_owned(),
            start,
            end,
            plan: plans.first().map(|s| s.plan.clone()).unwrap_or_default(),
            plans,
            lines: totals.lines.iter().map(LineJson::from).collect(),
            total: totals.total,
            ledger_seq,
            ledger_hash: hex::encode(ledger_hash),
            closed: crate::rows::unix(read_at) >= end,
            signed_at: crate::rows::unix(now()),
            signature: String::new(),
        };
        let statement = inv.statement().expect("the hash was just encoded");
        inv.signature = hex::encode(statement.sign(&self.operator));
        Ok(inv)
    }
}

/// Minor units as a decimal amount (2 decimal places).
fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The invoice as CSV: one row per line and a total row.
pub fn invoice_csv(inv: &Invoice) -> String {
    let mut out = String::from(
        "vendor,period,currency,plan_from,product,licenses,free,unit_fee,seats,seat_fee,transfers,transfer_fee,amount\n",
    );
    for l in &inv.lines {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            inv.vendor,
            inv.period,
            inv.plan.currency,
            l.plan_from,
            l.product,
            l.licenses,
            l.free,
            money(l.unit_fee),
            l.seats,
            money(l.seat_fee),
            l.transfers,
            money(l.transfer_fee),
            money(l.amount)
        );
    }
    let _ = writeln!(out, "{},{},{},,TOTAL,,,,,,,,{}", inv.vendor, inv.period, inv.plan.currency, money(inv.total));
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// When the plan of a line took effect, for people: the period's start if
/// it was in force before.
fn plan_date(inv: &Invoice, plan_from: u64) -> String {
    let t = plan_from.max(inv.start);
    let d = OffsetDateTime::from_unix_timestamp(i64::try_from(t).unwrap_or(0)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The invoice as a standalone HTML page.
pub fn invoice_html(inv: &Invoice) -> String {
    let mut rows = String::new();
    for l in &inv.lines {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.product),
            plan_date(inv, l.plan_from),
            l.licenses,
            l.free,
            money(l.unit_fee),
            l.seats,
            money(l.seat_fee),
            l.transfers,
            money(l.transfer_fee),
            money(l.amount)
        );
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Invoice {v} {p}</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}td:first-child,th:first-child{{text-align:left}}</style>\
</head><body><h1>Invoice {p}</h1><p>Vendor: <b>{v}</b> · Currency: {c}{open}</p>\
<table><tr><th>Product</th><th>Plan from</th><th>Licenses</th><th>Free</th><th>Unit fee</th><th>Seats</th><th>Seat fee</th><th>Transfers</th><th>Transfer fee</th><th>Amount</th></tr>{rows}\
<tr><th>Total</th><td></td><td></td><td></td><td></td><td></td><td></td><td></td><td></td><th>{t}</th></tr></table>\
<p><small>Computed from ledger entries 1–{seq}, head {h}, and signed by the operator. Check it with <code>sealsdk ledger verify</code>.</small></p></body></html>\n",
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
