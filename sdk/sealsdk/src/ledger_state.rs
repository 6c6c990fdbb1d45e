//! What the vendor keeps to check its invoices against a dishonest operator
//! (issue 25): the operator key pinned at `certify`, the plans it accepted,
//! every chain head it verified, the licenses it issued through the server
//! and the activation codes it made. It lives in the keystore's `ledger/`
//! folder as small text files, so a vendor can back it up, read it and
//! merge the records of several machines by hand:
//!
//! ```text
//! ledger/pin.json      the server, vendor name and operator key, and the
//!                      entry from which the records below are complete
//! ledger/plans.json    the accepted plans, by the time each takes effect
//! ledger/heads.jsonl   one operator-signed head per verified export
//! ledger/issued.txt    "<license id> <ledger seq>" per license issued
//! ledger/codes.jsonl   one activation code (id and limits) per line
//! ```
//!
//! Nothing here is secret: these files hold what the operator told the
//! vendor, signed where the operator signs.
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use sealrun_format::VendorPublicKey;
use sealrun_format::ledger::{ChainHead, PricePlan, ScheduledPlan};

use crate::plan::PlanLine;
use crate::{Result, SdkError};

/// The server a keystore's ledger records are about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The server's address when it was pinned.
    pub server: String,
    /// The vendor's name there.
    pub vendor: String,
    /// The operator key (hex) that signs its invoices and heads.
    pub operator_key: String,
    /// Entries up to this one came before the records were kept: licenses
    /// issued and codes named in them are not checked against the records.
    pub tracking_from: u64,
}

impl Pin {
    /// The operator key.
    pub fn key(&self) -> Result<VendorPublicKey> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(&self.operator_key, &mut k)
            .map_err(|_| SdkError::LedgerRecords(format!("{}: the operator key is not 64 hex digits", PIN_FILE)))?;
        Ok(VendorPublicKey(k))
    }
}

/// A plan as the vendor accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// When it takes effect (Unix seconds).
    pub effective_from: u64,
    /// The plan.
    #[serde(flatten)]
    pub plan: PlanLine,
    /// When the vendor accepted it.
    pub accepted_at: u64,
}

impl PlanRecord {
    /// The format crate's plan.
    pub fn plan(&self) -> PricePlan {
        self.plan.plan()
    }
}

/// A verified, operator-signed chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRecord {
    /// The vendor's name in the head.
    pub vendor: String,
    /// Entries.
    pub seq: u64,
    /// Hash of the last (hex).
    pub hash: String,
    /// When the operator signed it.
    pub signed_at: u64,
    /// The operator's signature (hex): with it a third party can check what
    /// the operator claimed.
    pub signature: String,
    /// When this keystore verified it.
    pub verified_at: u64,
}

impl HeadRecord {
    /// The head's fields, for checking its signature.
    pub fn head(&self) -> Option<(ChainHead, [u8; 64])> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&self.hash, &mut hash).ok()?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).ok()?;
        Some((ChainHead { vendor: self.vendor.clone(), seq: self.seq, hash, signed_at: self.signed_at }, sig))
    }
}

/// An activation code the vendor made, with its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The server's id for it.
    pub id: u64,
    /// Its product.
    pub product: String,
    /// Devices that may hold an activation at once.
    pub max_activations: u64,
    /// Times an activation may move.
    pub transfer_limit: u64,
}

const PIN_FILE: &str = "ledger/pin.json";

/// The `ledger/` records of a keystore.
#[derive(Debug, Clone)]
pub struct LedgerRecords {
    dir: PathBuf,
}

impl LedgerRecords {
    /// The records in keystore `keystore_dir`.
    pub fn in_keystore(keystore_dir: &Path) -> Self {
        LedgerRecords { dir: keystore_dir.join("ledger") }
    }

    /// Their folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(SdkError::io("cannot create", &self.dir))
    }

    /// The pin, if this keystore pinned a server.
    pub fn pin(&self) -> Result<Option<Pin>> {
        let path = self.file("pin.json");
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                SdkError::LedgerRecords(format!("{} is damaged ({e}); restore it from your backup", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SdkError::io("cannot read", &path)(e)),
        }
    }

    /// Pins `pin` unless a pin exists: the same key is kept as it is (the
    /// first `tracking_from` stays), another key is refused.
    pub fn set_pin(&self, pin: &Pin) -> Result<bool> {
        if let Some(old) = self.pin()? {
            if old.operator_key != pin.operator_key || old.vendor != pin.vendor {
                return Err(SdkError::OperatorKeyChanged {
                    pinned: old.operator_key,
                    offered: pin.operator_key.clone(),
                    file: self.file("pin.json"),
                });
            }
            return Ok(false);
        }
        self.ensure_dir()?;
        write_whole(&self.file("pin.json"), &(serde_json::to_string_pretty(pin).expect("serialises") + "\n"))?;
        Ok(true)
    }

    /// The accepted plans, by `effective_from`.
    pub fn plans(&self) -> Result<Vec<PlanRecord>> {
        let path = self.file("plans.json");
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                SdkError::LedgerRecords(format!("{} is damaged ({e}); restore it from your backup", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(SdkError::io("cannot read", &path)(e)),
        }
    }

    /// The accepted plans as a history.
    pub fn history(&self) -> Result<Vec<ScheduledPlan>> {
        Ok(self.plans()?.iter().map(|p| ScheduledPlan { effective_from: p.effective_from, plan: p.plan() }).collect())
    }

    /// Accepts `offered` (the server's plan history): plans not yet accepted
    /// are added. A plan accepted earlier that the server now shows
    /// otherwise, or no longer shows, is a retroactive change and refused.
    /// Returns the newly accepted plans.
    pub fn accept(&self, offered: &[ScheduledPlan], now: u64) -> Result<Vec<PlanRecord>> {
        let mut plans = self.plans()?;
        for old in &plans {
            match offered.iter().find(|p| p.effective_from == old.effective_from) {
                Some(p) if p.plan == old.plan() => {}
                Some(p) => {
                    return Err(SdkError::LedgerMismatch(format!(
                        "the server now shows the plan in force from {} otherwise than you accepted it ({}): \
                         the operator changed a plan after the fact; nothing was accepted",
                        crate::dates::format(old.effective_from),
                        plan_differences(&old.plan(), &p.plan)
                    )));
                }
                None => {
                    return Err(SdkError::LedgerMismatch(format!(
                        "the server no longer shows the plan you accepted in force from {}: \
                         the operator rewrote the plan history; nothing was accepted",
                        crate::dates::format(old.effective_from)
                    )));
                }
            }
        }
        let mut added = Vec::new();
        for p in offered {
            if plans.iter().any(|o| o.effective_from == p.effective_from) {
                continue;
            }
            let r =
                PlanRecord { effective_from: p.effective_from, plan: PlanLine::from_plan(&p.plan), accepted_at: now };
            added.push(r.clone());
            plans.push(r);
        }
        plans.sort_by_key(|p| p.effective_from);
        if !added.is_empty() {
            self.ensure_dir()?;
            write_whole(&self.file("plans.json"), &(serde_json::to_string_pretty(&plans).expect("serialises") + "\n"))?;
        }
        Ok(added)
    }

    /// Every verified head, oldest first.
    pub fn heads(&self) -> Result<Vec<HeadRecord>> {
        read_lines(&self.file("heads.jsonl"), |l| serde_json::from_str(l).ok())
    }

    /// Records a verified head.
    pub fn add_head(&self, h: &HeadRecord) -> Result<()> {
        self.append("heads.jsonl", &serde_json::to_string(h).expect("serialises"))
    }

    /// The licenses issued through the server: id and ledger position.
    pub fn issued(&self) -> Result<Vec<([u8; 16], u64)>> {
        read_lines(&self.file("issued.txt"), |l| {
            let (id, seq) = l.split_once(' ')?;
            let mut out = [0u8; 16];
            hex::decode_to_slice(id, &mut out).ok()?;
            Some((out, seq.trim().parse().ok()?))
        })
    }

    /// Records a license issued through the server (`seq` 0 if the server did not say).
    pub fn add_issued(&self, license_id: &[u8; 16], seq: u64) -> Result<()> {
        self.append("issued.txt", &format!("{} {seq}", hex::encode(license_id)))
    }

    /// The activation codes made through the server.
    pub fn codes(&self) -> Result<BTreeMap<u64, CodeRecord>> {
        let list: Vec<CodeRecord> = read_lines(&self.file("codes.jsonl"), |l| serde_json::from_str(l).ok())?;
        Ok(list.into_iter().map(|c| (c.id, c)).collect())
    }

    /// Records codes (ones already recorded are skipped).
    pub fn add_codes(&self, codes: &[CodeRecord]) -> Result<usize> {
        let known = self.codes()?;
        let mut n = 0;
        for c in codes.iter().filter(|c| !known.contains_key(&c.id)) {
            self.append("codes.jsonl", &serde_json::to_string(c).expect("serialises"))?;
            n += 1;
        }
        Ok(n)
    }

    fn append(&self, name: &str, line: &str) -> Result<()> {
        self.ensure_dir()?;
        let path = self.file(name);
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(SdkError::io("cannot write", &path))?;
        // One write per line, so lines from two sealsdk runs never interleave.
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(SdkError::io("cannot write", &path))
    }
}

/// What differs between two plans, for people.
pub fn plan_differences(accepted: &PricePlan, other: &PricePlan) -> String {
    let mut out = Vec::new();
    let mut cmp = |name: &str, a: &dyn std::fmt::Display, b: &dyn std::fmt::Display| {
        let (a, b) = (a.to_string(), b.to_string());
        if a != b {
            out.push(format!("{name} {b} instead of {a}"));
        }
    };
    cmp("currency", &accepted.currency, &other.currency);
    cmp("license_fee", &accepted.license_fee, &other.license_fee);
    cmp("seat_fee", &accepted.seat_fee, &other.seat_fee);
    cmp("transfer_fee", &accepted.transfer_fee, &other.transfer_fee);
    cmp("free_licenses", &accepted.free_licenses, &other.free_licenses);
    if accepted.product_fees != other.product_fees {
        out.push(format!("product fees {:?} instead of {:?}", other.product_fees, accepted.product_fees));
    }
    out.join(", ")
}

fn read_lines<T>(path: &Path, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SdkError::io("cannot read", path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse(l).ok_or_else(|| {
                SdkError::LedgerRecords(format!(
                    "{} line {} is damaged; restore the file from your backup",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Writes a whole file through a temporary file beside it, so a crash
/// leaves the old file or the new one.
fn write_whole(path: &Path, text: &str) -> Result<()> {
    sealrun_host::fs::write_atomic(path, text.as_bytes(), 0o600, sealrun_host::fs::Durability::Synced)
        .map_err(SdkError::io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(fee: u64) -> PricePlan {
        PricePlan { currency: "EUR".into(), license_fee: fee, ..PricePlan::default() }
    }

    #[test]
    fn plans_are_accepted_once_and_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let r = LedgerRecords::in_keystore(dir.path());
        let first = [ScheduledPlan { effective_from: 0, plan: plan(100) }];
        assert_eq!(r.accept(&first, 5).unwrap().len(), 1);
        assert!(r.accept(&first, 6).unwrap().is_empty(), "accepting again adds nothing");
        let later = [first[0].clone(), ScheduledPlan { effective_from: 50, plan: plan(200) }];
        assert_eq!(r.accept(&later, 7).unwrap().len(), 1);
        let rewritten = [ScheduledPlan { effective_from: 0, plan: plan(900) }, later[1].clone()];
        let e = r.accept(&rewritten, 8).unwrap_err().to_string();
        assert!(e.contains("changed a plan after the fact") && e.contains("license_fee 900 instead of 100"), "{e}");
        let dropped = [later[1].clone()];
        assert!(r.accept(&dropped, 8).unwrap_err().to_string().contains("rewrote the plan history"));
        assert_eq!(r.history().unwrap().len(), 2);
    }

    #[test]
    fn a_pin_is_kept_and_another_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = LedgerRecords::in_keystore(dir.path());
        let pin =
            Pin { server: "http://a".into(), vendor: "acme".into(), operator_key: "11".repeat(32), tracking_from: 3 };
        assert!(r.set_pin(&pin).unwrap());
        assert!(!r.set_pin(&Pin { tracking_from: 9, ..pin.clone() }).unwrap());
        assert_eq!(r.pin().unwrap().unwrap().tracking_from, 3, "the first pin's start stays");
        let other = Pin { operator_key: "22".repeat(32), ..pin };
        assert!(matches!(r.set_pin(&other), Err(SdkError::OperatorKeyChanged { .. })));
        r.add_issued(&[7; 16], 4).unwrap();
        r.add_codes(&[CodeRecord { id: 2, product: "a.b".into(), max_activations: 1, transfer_limit: 0 }]).unwrap();
        r.add_codes(&[CodeRecord { id: 2, product: "a.b".into(), max_activations: 1, transfer_limit: 0 }]).unwrap();
        assert_eq!(r.issued().unwrap(), vec![([7; 16], 4)]);
        assert_eq!(r.codes().unwrap().len(), 1);
    }
}
