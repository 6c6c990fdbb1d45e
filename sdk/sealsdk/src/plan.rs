//! A price plan as the licensing server sends it and the keystore keeps
//! it (the ledger check and the plan records both read it).
use std::collections::BTreeMap;

use sealrun_format::ledger::PricePlan;
use serde::{Deserialize, Serialize};

/// A price plan as the server sends it and the keystore keeps it.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct PlanLine {
    /// ISO 4217 code.
    pub currency: String,
    /// Fee per license.
    pub license_fee: u64,
    /// Fee per seat.
    pub seat_fee: u64,
    /// Fee per transfer.
    #[serde(default)]
    pub transfer_fee: u64,
    /// Free licenses per month.
    pub free_licenses: u64,
    /// Per-product license fees.
    #[serde(default)]
    pub product_fees: BTreeMap<String, u64>,
}

impl PlanLine {
    /// As sent, from the format crate's plan.
    pub fn from_plan(p: &PricePlan) -> PlanLine {
        PlanLine {
            currency: p.currency.clone(),
            license_fee: p.license_fee,
            seat_fee: p.seat_fee,
            transfer_fee: p.transfer_fee,
            free_licenses: p.free_licenses,
            product_fees: p.product_fees.iter().cloned().collect(),
        }
    }

    /// The format crate's plan.
    pub fn plan(&self) -> PricePlan {
        PricePlan {
            currency: self.currency.clone(),
            license_fee: self.license_fee,
            seat_fee: self.seat_fee,
            transfer_fee: self.transfer_fee,
            free_licenses: self.free_licenses,
            product_fees: self.product_fees.clone().into_iter().collect(),
        }
    }
}
