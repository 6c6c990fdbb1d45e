//! The seat table of one floating license: who holds a lease, who waits in
//! line, and the one rule that matters (never more than N seats in use).
//!
//! Pure and synchronous: callers pass the time (milliseconds on the
//! daemon's monotonic clock), so every rule is unit-tested without sleeping.
//! A lease counts towards its seat from the moment it is granted until it
//! is released by its holder or lapses (no renewal for one TTL). A revoked
//! lease still counts until it lapses: its holder may run until then, so
//! handing the seat on earlier could let N+1 run.
use std::collections::{HashMap, VecDeque};

use sealrun_format::device::DeviceCode;
use sealrun_format::lease::{LeaseId, SeenSeqs};
use sealrun_format::license::SeatUnit;

/// Milliseconds on the daemon's monotonic clock.
pub type Millis = u64;

/// Most confirmed leases one device may hold at once: one per running copy
/// of the app; more than this on one computer is a client gone wrong.
/// Unconfirmed leases are bounded apart ([`MAX_UNCONFIRMED_PER_DEVICE`]).
pub const MAX_LEASES_PER_DEVICE: usize = 64;
/// Most leases one device may hold that no heartbeat has confirmed yet.
/// Anyone who knows a device code (the status page lists them, and a
/// checkout carries one in the clear) can check out leases under it, but
/// only the device can confirm one: its first proven heartbeat needs the
/// proof key, which needs the lent content key. A checkout beyond this
/// number replaces the device's oldest unconfirmed lease instead of
/// adding one, so leases made by someone else never lock the device out.
/// 16: more copies of the app than one computer starts within one load.
pub const MAX_UNCONFIRMED_PER_DEVICE: usize = 16;
/// Most requests waiting in line per license: far more computers than any
/// site has; the line is kept in memory.
pub const MAX_QUEUE: usize = 10_000;
/// How long a ticket is kept without being asked about again: one long poll
/// and a margin for the client's round trip.
pub const TICKET_KEEP: Millis = crate::wire::MAX_WAIT_POLL_SECS * 1000 + 10_000;
/// How long a revoked lease is remembered after it lapsed, so its holder
/// hears "revoked" rather than "unknown" (and does not check out again
/// unknowingly) when it comes back.
pub const REVOKED_MEMORY: Millis = 3_600_000;

/// What one seat is keyed by: the device (a seat per computer) or the
/// lease itself (a seat per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeatKey {
    /// A computer, by its device fingerprint.
    Device([u8; 32]),
    /// One process's lease.
    Lease(LeaseId),
}

/// Who holds a lease (for the status page and the usage log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The device code.
    pub device: DeviceCode,
    /// Host name as the client reported it.
    pub host: String,
    /// User name as the client reported it.
    pub user: String,
    /// Process id as the client reported it.
    pub pid: u32,
}

/// One lease.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Its id.
    pub id: LeaseId,
    /// Its proof key (`lease::LeaseRoot::proof_key`): heartbeats and
    /// releases are proven with it, and so are the daemon's answers.
    pub proof_key: [u8; 32],
    /// The request numbers accepted for it (a replayed one is refused).
    pub seen: SeenSeqs,
    /// The lease time it was last given, in milliseconds.
    pub ttl: Millis,
    /// The seat it holds.
    pub seat: SeatKey,
    /// Who holds it.
    pub holder: Holder,
    /// Checked out at (Unix seconds, for people).
    pub since: u64,
    /// Last renewed at (Unix seconds, for people).
    pub last_heartbeat: u64,
    /// Lapses at this monotonic instant unless renewed.
    pub expires: Millis,
    /// Revoked by an admin: renewals are refused.
    pub revoked: bool,
}

impl Lease {
    /// Whether its holder has proven a request about it: only the device it
    /// was lent to can (see [`MAX_UNCONFIRMED_PER_DEVICE`]).
    pub fn is_confirmed(&self) -> bool {
        self.seen.highest > 0
    }
}

/// A place in line.
#[derive(Debug, Clone)]
struct Ticket {
    id: [u8; 16],
    /// Dropped from the line if not asked about again by then.
    expires: Millis,
}

/// The answer to a checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// Granted: the lease is in the table (still to be stored).
    Granted,
    /// In line at this position (1 = next).
    Queued {
        /// The ticket to keep the place.
        ticket: [u8; 16],
        /// 1 for the first in line.
        position: u32,
    },
    /// Every seat is in use, and the client did not want to wait.
    Full {
        /// Since when every seat is taken (Unix seconds).
        since: u64,
    },
    /// The device holds [`MAX_LEASES_PER_DEVICE`] leases already, or the
    /// line is [`MAX_QUEUE`] long.
    TooMany,
}

/// Why a renewal failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// No such lease, or the proof is wrong (the two are not told apart).
    Unknown,
    /// A proven request whose number was seen before: a replay.
    Replayed,
    /// Revoked by an admin.
    Revoked,
}

/// A lease that ended, for the log.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The lease.
    pub lease: Lease,
    /// Why it ended.
    pub why: EndReason,
}

/// Why a lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its holder released it.
    Released,
    /// It was not renewed in time.
    Lapsed,
    /// It was never confirmed, and a newer checkout for its device took
    /// its seat ([`MAX_UNCONFIRMED_PER_DEVICE`]).
    Replaced,
}

/// The seats of one floating license.
#[derive(Debug)]
pub struct Pool {
    seats: u32,
    unit: SeatUnit,
    leases: HashMap<LeaseId, Lease>,
    queue: VecDeque<Ticket>,
    /// Revoked leases that lapsed, until when they are remembered.
    revoked: HashMap<LeaseId, Millis>,
    /// Unconfirmed leases a checkout replaced, for the caller to forget
    /// (storage, log): [`Pool::take_replaced`].
    replaced: Vec<Lease>,
}

/// What a checkout asks for.
pub struct Request<'a> {
    /// The new lease's id.
    pub id: LeaseId,
    /// Its proof key.
    pub proof_key: [u8; 32],
    /// Who asks.
    pub holder: &'a Holder,
    /// Wait in line if no seat is free.
    pub wait: bool,
    /// A ticket from an earlier "queued" answer.
    pub ticket: Option<[u8; 16]>,
    /// A fresh ticket id, used if the request joins the line.
    pub new_ticket: [u8; 16],
}

impl Pool {
    /// An empty pool of `seats` seats.
    pub fn new(seats: u32, unit: SeatUnit) -> Pool {
        Pool {
            seats,
            unit,
            leases: HashMap::new(),
            queue: VecDeque::new(),
            revoked: HashMap::new(),
            replaced: Vec::new(),
        }
    }

    /// Seats of the license.
    pub fn seats(&self) -> u32 {
        self.seats
    }

    /// What a seat is.
    pub fn unit(&self) -> SeatUnit {
        self.unit
    }

    fn seat_of(&self, id: LeaseId, device: &DeviceCode) -> SeatKey {
        match self.unit {
            SeatUnit::Computer => SeatKey::Device(device.fingerprint()),
            SeatUnit::Process => SeatKey::Lease(id),
        }
    }

    /// Seats in use: distinct seats among the leases.
    pub fn in_use(&self) -> u32 {
        let mut seen: Vec<&SeatKey> = self.leases.values().map(|l| &l.seat).collect();
        seen.sort_unstable_by_key(|s| match s {
            SeatKey::Device(d) => (0, *d),
            SeatKey::Lease(l) => {
                let mut k = [0u8; 32];
                k[..16].copy_from_slice(&l.0);
                (1, k)
            }
        });
        seen.dedup();
        seen.len() as u32
    }

    /// Requests waiting in line.
    pub fn queued(&self) -> u32 {
        self.queue.len() as u32
    }

    /// The leases, oldest first.
    pub fn leases(&self) -> Vec<&Lease> {
        let mut v: Vec<&Lease> = self.leases.values().collect();
        v.sort_by_key(|l| (l.since, l.id));
        v
    }

    /// A lease by id.
    pub fn get(&self, id: &LeaseId) -> Option<&Lease> {
        self.leases.get(id)
    }

    /// Checks out a seat for `req` at `now` (monotonic) / `wall` (Unix
    /// seconds), with leases lasting `ttl`.
    ///
    /// A device that already holds a seat of a per-computer license gets
    /// another lease on the same seat, without waiting. Otherwise free seats
    /// go to the line first, in order: a request that is not in line gets
    /// one only when more seats are free than requests wait.
    ///
    /// A device that holds [`MAX_UNCONFIRMED_PER_DEVICE`] unconfirmed
    /// leases gets the seat of the oldest of them, which ends
    /// ([`Pool::take_replaced`]). The seat count does not change, and the
    /// new lease lasts at least as long as the old one would have, so a
    /// holder still running on the old lease (its deadline lies inside it)
    /// is covered until it notices.
    pub fn checkout(&mut self, req: &Request<'_>, now: Millis, wall: u64, ttl: Millis) -> Checkout {
        self.expire(now);
        let mine = |l: &&Lease| l.holder.device == req.holder.device;
        let mut unconfirmed: Vec<&Lease> =
            self.leases.values().filter(mine).filter(|l| !l.is_confirmed() && !l.revoked).collect();
        if unconfirmed.len() >= MAX_UNCONFIRMED_PER_DEVICE {
            unconfirmed.sort_by_key(|l| (l.expires, l.id));
            let old_id = unconfirmed[0].id;
            let old = self.leases.remove(&old_id).expect("listed above");
            let lease = Lease {
                id: req.id,
                proof_key: req.proof_key,
                seen: SeenSeqs::default(),
                ttl,
                seat: old.seat,
                holder: req.holder.clone(),
                since: wall,
                last_heartbeat: wall,
                expires: now.saturating_add(ttl).max(old.expires),
                revoked: false,
            };
            self.leases.insert(req.id, lease);
            self.replaced.push(old);
            return Checkout::Granted;
        }
        let seat = self.seat_of(req.id, &req.holder.device);
        if self.leases.values().filter(mine).filter(|l| l.is_confirmed()).count() >= MAX_LEASES_PER_DEVICE {
            return Checkout::TooMany;
        }
        // A revoked lease keeps its seat counted, but lends it to no one.
        let shares_seat = self.unit == SeatUnit::Computer && self.leases.values().any(|l| l.seat == seat && !l.revoked);
        let free = self.seats.saturating_sub(self.in_use()) as usize;
        let place = req.ticket.and_then(|t| self.queue.iter().position(|q| q.id == t));
        let granted = shares_seat
            || match place {
                Some(p) => p < free,
                None => self.queue.len() < free,
            };
        if granted {
            if let Some(p) = place {
                self.queue.remove(p);
            }
            let lease = Lease {
                id: req.id,
                proof_key: req.proof_key,
                seen: SeenSeqs::default(),
                ttl,
                seat,
                holder: req.holder.clone(),
                since: wall,
                last_heartbeat: wall,
                expires: now.saturating_add(ttl),
                revoked: false,
            };
            self.leases.insert(req.id, lease);
            return Checkout::Granted;
        }
        if !req.wait {
            return Checkout::Full { since: self.full_since() };
        }
        let keep = now.saturating_add(TICKET_KEEP);
        let position = match place {
            Some(p) => {
                self.queue[p].expires = keep;
                p
            }
            None if self.queue.len() >= MAX_QUEUE => return Checkout::TooMany,
            None => {
                self.queue.push_back(Ticket { id: req.new_ticket, expires: keep });
                self.queue.len() - 1
            }
        };
        Checkout::Queued { ticket: self.queue[position].id, position: position as u32 + 1 }
    }

    /// The unconfirmed leases that checkouts replaced since the last call.
    pub fn take_replaced(&mut self) -> Vec<Lease> {
        std::mem::take(&mut self.replaced)
    }

    /// Undoes a grant whose lease could not be stored.
    pub fn forget(&mut self, id: &LeaseId) {
        self.leases.remove(id);
    }

    /// When the newest of the current leases began: every seat has been
    /// taken since then (when all are).
    fn full_since(&self) -> u64 {
        self.leases.values().map(|l| l.since).max().unwrap_or(0)
    }

    /// The lease `id`, if `proven` accepts its proof key and `seq` is a
    /// number not seen for it before (which is then recorded).
    fn find(&mut self, id: &LeaseId, proven: &dyn Fn(&[u8; 32]) -> bool, seq: u64) -> Result<&mut Lease, RenewError> {
        let lease = self.leases.get_mut(id).filter(|l| proven(&l.proof_key)).ok_or(RenewError::Unknown)?;
        if !lease.seen.is_fresh(seq) {
            return Err(RenewError::Replayed);
        }
        lease.seen.accept(seq);
        Ok(lease)
    }

    /// Whether `id` is a lease of this pool, or a revoked one it remembers.
    pub fn knows(&self, id: &LeaseId) -> bool {
        self.leases.contains_key(id) || self.revoked.contains_key(id)
    }

    /// Renews a lease for another `ttl`, if `proven` accepts its proof key
    /// (the request was made with it) and the request's number `seq` is new.
    pub fn renew(
        &mut self,
        id: &LeaseId,
        proven: &dyn Fn(&[u8; 32]) -> bool,
        seq: u64,
        now: Millis,
        wall: u64,
        ttl: Millis,
    ) -> Result<(), RenewError> {
        if self.revoked.contains_key(id) {
            return Err(RenewError::Revoked);
        }
        // A lease past its time is gone, even if the sweep has not run yet:
        // its seat may already be promised to the line.
        if self.leases.get(id).is_none_or(|l| l.expires <= now) {
            return Err(RenewError::Unknown);
        }
        let lease = self.find(id, proven, seq)?;
        if lease.revoked {
            return Err(RenewError::Revoked);
        }
        lease.expires = now.saturating_add(ttl);
        lease.ttl = ttl;
        lease.last_heartbeat = wall;
        Ok(())
    }

    /// Ends a lease at its holder's request (`proven` accepts its proof
    /// key, and the request's number `seq` is new).
    pub fn release(&mut self, id: &LeaseId, proven: &dyn Fn(&[u8; 32]) -> bool, seq: u64) -> Result<Lease, RenewError> {
        self.find(id, proven, seq)?;
        self.leases.remove(id).ok_or(RenewError::Unknown)
    }

    /// Marks a lease revoked: it is not renewed again, and its seat returns
    /// when it lapses. Returns the lease, or `None` if there is no such
    /// lease.
    pub fn revoke(&mut self, id: &LeaseId) -> Option<&Lease> {
        let lease = self.leases.get_mut(id)?;
        lease.revoked = true;
        Some(lease)
    }

    /// Removes the leases that lapsed by `now` and the tickets not asked
    /// about in time; returns the lapsed leases.
    pub fn expire(&mut self, now: Millis) -> Vec<Lease> {
        let lapsed: Vec<LeaseId> = self.leases.values().filter(|l| l.expires <= now).map(|l| l.id).collect();
        self.queue.retain(|t| t.expires > now);
        self.revoked.retain(|_, until| *until > now);
        let gone: Vec<Lease> = lapsed.iter().filter_map(|id| self.leases.remove(id)).collect();
        for l in gone.iter().filter(|l| l.revoked) {
            self.revoked.insert(l.id, now.saturating_add(REVOKED_MEMORY));
        }
        gone
    }

    /// Puts back a lease from storage after a restart: it counts and may be
    /// renewed until `expires`.
    pub fn restore(&mut self, lease: Lease) {
        self.leases.insert(lease.id, lease);
    }

    /// A lease's seat, for a restored lease (`seat_of` for its unit).
    pub fn seat_for(&self, id: LeaseId, device: &DeviceCode) -> SeatKey {
        self.seat_of(id, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Millis = 30_000;

    fn device(n: u8) -> DeviceCode {
        DeviceCode { machine_tag: [n; 6], public_key: [n; 32] }
    }

    fn holder(n: u8) -> Holder {
        Holder { device: device(n), host: format!("host{n}"), user: "u".into(), pid: u32::from(n) }
    }

    fn lid(n: u32) -> LeaseId {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&n.to_be_bytes());
        LeaseId(b)
    }

    fn sh(n: u32) -> [u8; 32] {
        let mut b = [7u8; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        b
    }

    /// Accepts the proof key of lease `n`.
    fn is(n: u32) -> impl Fn(&[u8; 32]) -> bool {
        move |s| s == &sh(n)
    }

    fn ask(pool: &mut Pool, n: u8, lease: u32, now: Millis, wait: bool, ticket: Option<[u8; 16]>) -> Checkout {
        let h = holder(n);
        let req = Request { id: lid(lease), proof_key: sh(lease), holder: &h, wait, ticket, new_ticket: lid(lease).0 };
        pool.checkout(&req, now, now / 1000, TTL)
    }

    #[test]
    fn per_computer_counts_devices_not_processes() {
        let mut p = Pool::new(2, SeatUnit::Computer);
        assert_eq!(ask(&mut p, 1, 1, 0, false, None), Checkout::Granted);
        assert_eq!(ask(&mut p, 1, 2, 0, false, None), Checkout::Granted, "second process, same computer");
        assert_eq!(ask(&mut p, 2, 3, 0, false, None), Checkout::Granted);
        assert_eq!(p.in_use(), 2);
        assert!(matches!(ask(&mut p, 3, 4, 0, false, None), Checkout::Full { .. }));
        // A third process on a computer that holds a seat still gets in.
        assert_eq!(ask(&mut p, 2, 5, 0, false, None), Checkout::Granted);
        assert_eq!(p.in_use(), 2);
        // The seat stays while any of the device's leases lives.
        assert!(p.release(&lid(1), &is(1), 1).is_ok());
        assert!(matches!(ask(&mut p, 3, 6, 0, false, None), Checkout::Full { .. }));
        assert!(p.release(&lid(2), &is(2), 1).is_ok());
        assert_eq!(ask(&mut p, 3, 7, 0, false, None), Checkout::Granted);
    }

    #[test]
    fn per_process_counts_leases() {
        let mut p = Pool::new(2, SeatUnit::Process);
        assert_eq!(ask(&mut p, 1, 1, 0, false, None), Checkout::Granted);
        assert_eq!(ask(&mut p, 1, 2, 0, false, None), Checkout::Granted);
        assert!(matches!(ask(&mut p, 1, 3, 0, false, None), Checkout::Full { .. }));
    }

    #[test]
    fn leases_lapse_without_renewal_and_renewal_keeps_them() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        assert_eq!(ask(&mut p, 1, 1, 0, false, None), Checkout::Granted);
        assert_eq!(p.renew(&lid(1), &is(1), 1, 20_000, 20, TTL), Ok(()));
        assert!(matches!(ask(&mut p, 2, 2, 49_999, false, None), Checkout::Full { .. }));
        assert_eq!(ask(&mut p, 2, 2, 50_000, false, None), Checkout::Granted, "lapsed one TTL after renewal");
        assert_eq!(p.renew(&lid(1), &is(1), 2, 50_001, 50, TTL), Err(RenewError::Unknown));
    }

    #[test]
    fn a_wrong_secret_is_an_unknown_lease() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        ask(&mut p, 1, 1, 0, false, None);
        assert_eq!(p.renew(&lid(1), &|s: &[u8; 32]| s == &[9; 32], 1, 1, 0, TTL), Err(RenewError::Unknown));
        assert!(p.release(&lid(1), &|s: &[u8; 32]| s == &[9; 32], 1).is_err());
        assert_eq!(p.in_use(), 1);
    }

    /// A proven heartbeat or release sent again (a proxy replaying what
    /// it recorded) is refused, and so is any number at or below one seen,
    /// beyond the reordering window; requests that overtake each other
    /// within it are fine.
    #[test]
    fn a_replayed_request_is_refused() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        ask(&mut p, 1, 1, 0, false, None);
        assert_eq!(p.renew(&lid(1), &is(1), 1, 10, 0, TTL), Ok(()));
        assert_eq!(p.renew(&lid(1), &is(1), 1, 20, 0, TTL), Err(RenewError::Replayed));
        assert_eq!(p.renew(&lid(1), &is(1), 3, 30, 0, TTL), Ok(()));
        assert_eq!(p.renew(&lid(1), &is(1), 2, 40, 0, TTL), Ok(()), "overtaken within the window");
        assert_eq!(p.renew(&lid(1), &is(1), 0, 50, 0, TTL), Err(RenewError::Replayed), "0 is no number");
        // A replayed number does not renew: the lease lapses as it would.
        assert_eq!(p.get(&lid(1)).unwrap().expires, 40 + TTL);
        assert_eq!(p.release(&lid(1), &is(1), 3).unwrap_err(), RenewError::Replayed);
        assert_eq!(p.in_use(), 1, "a replayed release gives nothing back");
        assert!(p.release(&lid(1), &is(1), 4).is_ok());
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn a_revoked_lease_keeps_its_seat_until_it_lapses() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        ask(&mut p, 1, 1, 0, false, None);
        assert!(p.revoke(&lid(1)).is_some());
        assert_eq!(p.renew(&lid(1), &is(1), 1, 1, 0, TTL), Err(RenewError::Revoked));
        assert!(matches!(ask(&mut p, 2, 2, TTL - 1, false, None), Checkout::Full { .. }));
        assert_eq!(ask(&mut p, 2, 2, TTL, false, None), Checkout::Granted);
    }

    #[test]
    fn the_line_is_served_in_order_and_newcomers_do_not_jump_it() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        ask(&mut p, 1, 1, 0, false, None);
        let Checkout::Queued { ticket: t2, position: 1 } = ask(&mut p, 2, 2, 0, true, None) else { panic!() };
        let Checkout::Queued { ticket: t3, position: 2 } = ask(&mut p, 3, 3, 0, true, None) else { panic!() };
        p.release(&lid(1), &is(1), 1).unwrap();
        // A newcomer, waiting or not, and the second in line, do not get it.
        assert!(matches!(ask(&mut p, 4, 4, 1, false, None), Checkout::Full { .. }));
        assert!(matches!(ask(&mut p, 3, 3, 1, true, Some(t3)), Checkout::Queued { position: 2, .. }));
        assert_eq!(ask(&mut p, 2, 2, 1, true, Some(t2)), Checkout::Granted);
        assert_eq!(p.queued(), 1);
        assert!(matches!(ask(&mut p, 3, 3, 2, true, Some(t3)), Checkout::Queued { position: 1, .. }));
    }

    #[test]
    fn a_ticket_not_asked_about_in_time_leaves_the_line() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        ask(&mut p, 1, 1, 0, false, None);
        let Checkout::Queued { ticket, .. } = ask(&mut p, 2, 2, 0, true, None) else { panic!() };
        p.release(&lid(1), &is(1), 1).unwrap();
        // The first in line vanished: after its ticket lapses a newcomer gets the seat.
        let late = TICKET_KEEP + 1;
        assert_eq!(ask(&mut p, 3, 3, late, false, None), Checkout::Granted);
        assert!(matches!(ask(&mut p, 2, 2, late, true, Some(ticket)), Checkout::Queued { position: 1, .. }));
    }

    #[test]
    fn a_revoked_computer_gets_no_free_lease_and_hears_revoked_after_the_lapse() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        ask(&mut p, 1, 1, 0, false, None);
        p.revoke(&lid(1));
        // The same computer does not ride on its revoked lease's seat.
        assert!(matches!(ask(&mut p, 1, 2, 1, false, None), Checkout::Full { .. }));
        p.expire(TTL);
        assert_eq!(
            p.renew(&lid(1), &is(1), 2, TTL + 1, 0, TTL),
            Err(RenewError::Revoked),
            "remembered after the lapse"
        );
        assert_eq!(ask(&mut p, 1, 3, TTL + 1, false, None), Checkout::Granted, "a new run may check out");
        p.expire(TTL + REVOKED_MEMORY + 1);
        assert!(!p.knows(&lid(1)));
    }

    #[test]
    fn floods_are_bounded() {
        let mut p = Pool::new(1, SeatUnit::Computer);
        for i in 0..MAX_LEASES_PER_DEVICE as u32 {
            assert_eq!(ask(&mut p, 1, i, 0, false, None), Checkout::Granted);
            assert_eq!(p.renew(&lid(i), &is(i), 1, 1, 0, TTL), Ok(()), "confirmed by its holder");
        }
        assert_eq!(ask(&mut p, 1, 999, 0, false, None), Checkout::TooMany);
        let mut q = Pool::new(1, SeatUnit::Process);
        ask(&mut q, 1, 0, 0, false, None);
        for i in 1..=MAX_QUEUE as u32 {
            assert!(matches!(ask(&mut q, (i % 200) as u8 + 2, i, 0, true, None), Checkout::Queued { .. }));
        }
        assert_eq!(ask(&mut q, 250, 1_000_000, 0, true, None), Checkout::TooMany);
    }

    /// Someone who knows a device code (the status page lists them) checks
    /// out lease after lease under it: they can never confirm one, so they
    /// hold at most [`MAX_UNCONFIRMED_PER_DEVICE`] of them, the device
    /// still checks out (and confirms) its own, and no seat is added or
    /// freed by the replacements.
    #[test]
    fn leases_squatted_under_a_device_code_never_lock_the_device_out() {
        for unit in [SeatUnit::Computer, SeatUnit::Process] {
            // Per process every squatted lease takes a seat of its own, so
            // the flood is bounded by the replacements only when seats are
            // plenty (with few, it meets "all seats in use" first: anyone
            // can take free seats, which is denial of service, not this).
            let seats = if unit == SeatUnit::Computer { 3 } else { 40 };
            let mut p = Pool::new(seats, unit);
            // The device runs one copy (confirmed); another computer too.
            assert_eq!(ask(&mut p, 1, 1, 0, false, None), Checkout::Granted);
            assert_eq!(p.renew(&lid(1), &is(1), 1, 0, 0, TTL), Ok(()));
            assert_eq!(ask(&mut p, 2, 2, 0, false, None), Checkout::Granted);
            let before = p.in_use();
            let mut granted = 0;
            for i in 0..500u32 {
                let r = ask(&mut p, 1, 1_000 + i, u64::from(i), false, None);
                granted += u32::from(r == Checkout::Granted);
                assert!(p.in_use() <= seats);
                let squatted = p.leases().iter().filter(|l| l.holder.device == device(1) && !l.is_confirmed()).count();
                assert!(squatted <= MAX_UNCONFIRMED_PER_DEVICE, "{squatted}");
            }
            assert!(granted >= MAX_UNCONFIRMED_PER_DEVICE as u32, "{unit:?}: the flood got leases ({granted})");
            assert!(p.in_use() <= seats);
            if unit == SeatUnit::Computer {
                assert_eq!(p.in_use(), before, "the squatted leases ride on the device's seat");
            }
            let replaced = p.take_replaced();
            assert!(!replaced.is_empty() && replaced.iter().all(|l| !l.is_confirmed()), "only unconfirmed leases go");
            assert!(p.get(&lid(1)).is_some(), "the confirmed lease stays");
            // The device's next copy gets in, and confirms its lease.
            let r = ask(&mut p, 1, 9_999, 600, false, None);
            assert_eq!(r, Checkout::Granted, "{unit:?}");
            assert_eq!(p.renew(&lid(9_999), &is(9_999), 1, 601, 0, TTL), Ok(()));
        }
    }

    /// A replaced lease's seat stays taken at least as long as the old
    /// lease would have lasted (its holder may still run on it), even when
    /// the lease time has since been shortened.
    #[test]
    fn a_replacement_lasts_at_least_as_long_as_the_lease_it_replaces() {
        for unit in [SeatUnit::Computer, SeatUnit::Process] {
            let mut p = Pool::new(MAX_UNCONFIRMED_PER_DEVICE as u32, unit);
            for i in 0..MAX_UNCONFIRMED_PER_DEVICE as u32 {
                assert_eq!(ask(&mut p, 1, i, 0, false, None), Checkout::Granted);
            }
            let in_use = p.in_use();
            let h = holder(1);
            let req = Request {
                id: lid(500),
                proof_key: sh(500),
                holder: &h,
                wait: false,
                ticket: None,
                new_ticket: [0; 16],
            };
            assert_eq!(p.checkout(&req, 10, 0, 1_000), Checkout::Granted);
            let old = p.take_replaced();
            assert_eq!(old.iter().map(|l| l.id).collect::<Vec<_>>(), vec![lid(0)], "the oldest went");
            assert!(p.get(&lid(500)).unwrap().expires >= old[0].expires, "{unit:?}");
            assert_eq!(p.in_use(), in_use, "{unit:?}: the new lease took the old one's seat");
        }
    }

    /// Random checkouts, renewals, releases, revocations and lapses: the
    /// seats in use never exceed N, and a seat is never refused while one
    /// is free and nobody waits.
    #[test]
    fn never_more_than_n_under_random_operations() {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let mut next = || rand_core::Rng::next_u32(&mut rng);
        for unit in [SeatUnit::Computer, SeatUnit::Process] {
            let mut p = Pool::new(3, unit);
            let mut now = 0;
            let mut granted = 0;
            for i in 0..20_000u32 {
                now += u64::from(next() % 2_000);
                let old = next() % (i + 1);
                match next() % 5 {
                    0 | 1 => {
                        let before_free = p.seats() - p.in_use();
                        let r = ask(&mut p, (next() % 8) as u8, i, now, next() % 2 == 0, None);
                        if r == Checkout::Granted {
                            granted += 1;
                        } else if p.queued() == 0 {
                            assert_eq!(before_free, 0, "refused while a seat was free: {r:?}");
                        }
                    }
                    2 => {
                        let _ = p.renew(&lid(old), &is(old), u64::from(i) + 1, now, now / 1000, TTL);
                    }
                    3 => {
                        let _ = p.release(&lid(old), &is(old), u64::from(i) + 1);
                    }
                    _ => {
                        p.revoke(&lid(old));
                    }
                }
                p.expire(now);
                assert!(p.in_use() <= 3, "{} seats in use", p.in_use());
            }
            assert!(granted > 100, "the test exercised grants ({granted})");
        }
    }
}
