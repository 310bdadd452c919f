//! The gateway's own pacing of Binance requests, so that the venue never has to
//! answer 429: the per-account order limits, the gateway-wide (per IP) request
//! weight, the backoff a 429 or a 418 asks for, and the venue's own counts
//! (`rateLimits` in every reply) absorbed so that another client on the same
//! account or IP cannot push us over.
//!
//! Owns its rings, sized at construction; a call allocates nothing and costs
//! O(limits + weight) (`absorb` a binary search more). It must never read the clock (time is the `now`
//! argument, see the crate's Architecture Invariant), never drop a request (a
//! refusal says when to come back: the caller keeps the order queued, which is
//! the backpressure the engine expects), and never panic on what the venue
//! says or on the times it is given.
//!
//! The limits are Binance's documented ones by default (docs/BINANCE-PROTOCOL.md,
//! "Rate limits"): 300 orders per 10 s and 1,200 per minute per account, 2,400
//! request weight per minute per IP. They are configuration, never constants:
//! Binance changes them.

use fillcast_engine::units::Nanos;
use thiserror::Error;

/// The time a request that can never go is told to come back at: a weight over
/// the limit, or a ban without end. Saturating at it keeps every sum in range.
pub const NEVER: Nanos = Nanos(u64::MAX);

/// The largest `count_max` a limit may have: each unit is a slot of a ring
/// allocated per account at construction, so this bounds the memory (8 MiB per
/// account at most), far above any limit Binance documents.
pub const COUNT_MAX_LIMIT: u32 = 1 << 20;

const SECOND_NS: u64 = 1_000_000_000;

/// At most `count_max` units in any half-open interval `[t, t + window)`.
///
/// Sliding rather than fixed: the limiter keeps every interval of length
/// `window` under `count_max`, so it is under the venue's count however the
/// venue counts. A venue counting in fixed windows (aligned to its own clock,
/// which we know only within the clock offset) sees one such interval per
/// window; a venue counting in a sliding window sees exactly ours. A fixed
/// window of our own would let 2 × `count_max` through across a boundary that
/// is not the venue's.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub count_max: u32,
    pub window: Nanos,
}

/// The limiter's settings (from config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Orders per account: every order counts one against each.
    pub order_limits: Vec<Limit>,
    /// Request weight of the whole gateway (one IP).
    pub ip_weight: Limit,
    /// The IP weight the gateway passes for an `order.place` (0: orders count
    /// against the account's order limits, not the IP's weight).
    pub order_place_weight: u32,
    /// The IP weight the gateway passes for an `order.status`.
    pub order_status_weight: u32,
    /// The IP weight of a WebSocket API handshake (5): every connection the
    /// gateway opens, a reconnect's too, counts against `ip_weight`.
    pub handshake_weight: u32,
    /// Added to every window for pacing, never for reading the venue's counts
    /// (`absorb` matches a `rateLimits` entry to a limit by the venue's own
    /// window). See `BinanceGatewayConfig::pacing_margin`.
    pub pacing_margin: Nanos,
    /// The first wait after a 429 that names no `retryAfter`; each further
    /// refusal before a success doubles it, up to `backoff_max`.
    pub backoff_start: Nanos,
    pub backoff_max: Nanos,
    /// The wait after a 418 that names no end: Binance's shortest ban.
    pub ban_min: Nanos,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            order_limits: vec![
                Limit {
                    count_max: 300,
                    window: Nanos(10 * SECOND_NS),
                },
                Limit {
                    count_max: 1_200,
                    window: Nanos(60 * SECOND_NS),
                },
            ],
            ip_weight: Limit {
                count_max: 2_400,
                window: Nanos(60 * SECOND_NS),
            },
            order_place_weight: 0,
            order_status_weight: 1,
            handshake_weight: 5,
            pacing_margin: Nanos(0),
            backoff_start: Nanos(SECOND_NS),
            backoff_max: Nanos(60 * SECOND_NS),
            ban_min: Nanos(120 * SECOND_NS),
        }
    }
}

/// A configuration the limiter refuses, named so that the operator can find it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("binance limits: no per-account order limit; Binance always has one (300 per 10 s and 1200 per minute by default)")]
    NoOrderLimits,
    #[error("binance limits: {what} has count_max 0: nothing could ever be sent (expected 1 to {COUNT_MAX_LIMIT})")]
    ZeroCount { what: String },
    #[error("binance limits: {what} has count_max {count_max}, over the most a ring may hold ({COUNT_MAX_LIMIT})")]
    CountTooLarge { what: String, count_max: u32 },
    #[error("binance limits: {what} has a window of 0 ns: a limit per no time limits nothing (expected a window > 0)")]
    ZeroWindow { what: String },
    #[error("binance limits: {accounts} accounts × {slots} slots each do not fit in memory")]
    TooManyAccounts { accounts: usize, slots: usize },
    #[error("binance limits: backoff_start is 0 ns: an exponential backoff from 0 never waits (expected > 0)")]
    ZeroBackoff,
    #[error("binance limits: backoff_max ({max_ns} ns) is below backoff_start ({start_ns} ns)")]
    BackoffMaxBelowStart { start_ns: u64, max_ns: u64 },
    #[error("binance limits: {what} is {weight}, over the IP weight limit's count_max {count_max}: it could never be sent")]
    WeightOverLimit {
        what: &'static str,
        weight: u32,
        count_max: u32,
    },
}

/// What a 429, a 418 or a throttling code stopped: the gateway cannot tell one
/// limit from another by the status alone, so `errors::classify` names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Throttle {
    /// One account's order count (-1015): only that account waits; the others'
    /// counts are their own.
    Account,
    /// The IP's weight (-1003) or the venue's own overload protection (-1008):
    /// every request of the gateway waits.
    Ip,
    /// A 418: the IP is banned. Every request waits, for at least `ban_min`
    /// unless the venue names the end, since a request during a ban lengthens it.
    Ban,
}

/// Which of the venue's limits a `rateLimits` entry counts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitKind {
    /// `ORDERS`: the account's orders.
    Orders,
    /// `REQUEST_WEIGHT`: the IP's weight.
    RequestWeight,
}

/// One entry of a reply's `rateLimits`: the venue's own count, which includes
/// what other clients of the same account or IP sent.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RateLimitReport {
    pub kind: RateLimitKind,
    pub window: Nanos,
    pub limit: u32,
    pub count: u32,
}

impl RateLimitReport {
    /// From the entry's fields as the venue spells them (`rateLimitType`,
    /// `interval`, `intervalNum`, `limit`, `count`). `None` for a type or an
    /// interval this limiter does not know (`RAW_REQUESTS`, a new unit), or an
    /// `intervalNum` of 0: the gateway logs it rather than guessing. Counts past
    /// `u32::MAX` saturate, which only makes the limiter more careful.
    pub fn from_venue(
        rate_limit_type: &str,
        interval: &str,
        interval_num: u64,
        limit: u64,
        count: u64,
    ) -> Option<RateLimitReport> {
        let kind = match rate_limit_type {
            "ORDERS" => RateLimitKind::Orders,
            "REQUEST_WEIGHT" => RateLimitKind::RequestWeight,
            _ => return None,
        };
        let unit_ns = match interval {
            "SECOND" => SECOND_NS,
            "MINUTE" => 60 * SECOND_NS,
            "HOUR" => 3_600 * SECOND_NS,
            "DAY" => 86_400 * SECOND_NS,
            _ => return None,
        };
        if interval_num == 0 {
            return None;
        }
        Some(RateLimitReport {
            kind,
            window: Nanos(unit_ns.saturating_mul(interval_num)),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            count: u32::try_from(count).unwrap_or(u32::MAX),
        })
    }
}

/// What absorbing a `rateLimits` entry changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Absorbed {
    /// Our count already left no more room than the venue's: nothing changed.
    InStep,
    /// Ours caught up by this many admissions, stamped now: someone else sends
    /// on this account or IP, which is worth a log line.
    CaughtUp(u32),
    /// No limit of ours has this kind and window: the configuration lacks a
    /// limit the venue enforces, which the gateway should say.
    Untracked,
}

/// The pacing state of one gateway: every account's recent orders, the IP's
/// recent weight, and the backoffs the venue asked for.
#[derive(Clone, Debug)]
pub struct Limiter {
    order_limits: Box<[Limit]>,
    /// Slots per account: the largest order `count_max`. One ring serves every
    /// order limit, since each needs only the times of its last `count_max`
    /// orders, and those are the newest of the largest ring.
    slots_per_account: usize,
    order_slots: Box<[u64]>,
    order_rings: Box<[Ring]>,
    account_backoff: Box<[Backoff]>,
    ip_limit: Limit,
    ip_slots: Box<[u64]>,
    ip_ring: Ring,
    ip_backoff: Backoff,
    backoff_start_ns: u64,
    backoff_max_ns: u64,
    ban_min_ns: u64,
    /// `LimitsConfig::pacing_margin`: added to every window when pacing.
    margin_ns: u64,
    /// The latest `now` seen. An earlier one is taken as this: recording an
    /// admission later than it happened counts it longer, never shorter, and
    /// keeps every ring in time order.
    now_ns: u64,
}

impl Limiter {
    /// A limiter for `accounts` accounts (indices `0..accounts`), with all its
    /// memory: `accounts` × the largest order limit, plus the IP's weight, in
    /// 8-byte slots (9.6 KB per account with the default limits).
    pub fn new(cfg: &LimitsConfig, accounts: usize) -> Result<Limiter, LimitsError> {
        if cfg.order_limits.is_empty() {
            return Err(LimitsError::NoOrderLimits);
        }
        let n = cfg.order_limits.len();
        for (i, l) in cfg.order_limits.iter().enumerate() {
            check_limit(l, || format!("order limit {} of {n}", i + 1))?;
        }
        check_limit(&cfg.ip_weight, || "the IP weight limit".to_string())?;
        if cfg.backoff_start.0 == 0 {
            return Err(LimitsError::ZeroBackoff);
        }
        if cfg.backoff_max.0 < cfg.backoff_start.0 {
            return Err(LimitsError::BackoffMaxBelowStart {
                start_ns: cfg.backoff_start.0,
                max_ns: cfg.backoff_max.0,
            });
        }
        for (what, weight) in [
            ("order_place_weight", cfg.order_place_weight),
            ("order_status_weight", cfg.order_status_weight),
            ("handshake_weight", cfg.handshake_weight),
        ] {
            if weight > cfg.ip_weight.count_max {
                return Err(LimitsError::WeightOverLimit {
                    what,
                    weight,
                    count_max: cfg.ip_weight.count_max,
                });
            }
        }
        let slots_per_account = cfg
            .order_limits
            .iter()
            .map(|l| l.count_max as usize)
            .max()
            .unwrap_or(1);
        let total = accounts
            .checked_mul(slots_per_account)
            .filter(|&t| t <= isize::MAX as usize / 8)
            .ok_or(LimitsError::TooManyAccounts {
                accounts,
                slots: slots_per_account,
            })?;
        let limiter = Limiter {
            order_limits: cfg.order_limits.clone().into_boxed_slice(),
            slots_per_account,
            order_slots: vec![0; total].into_boxed_slice(),
            order_rings: vec![Ring::default(); accounts].into_boxed_slice(),
            account_backoff: vec![Backoff::default(); accounts].into_boxed_slice(),
            ip_limit: cfg.ip_weight,
            ip_slots: vec![0; cfg.ip_weight.count_max as usize].into_boxed_slice(),
            ip_ring: Ring::default(),
            ip_backoff: Backoff::default(),
            backoff_start_ns: cfg.backoff_start.0,
            backoff_max_ns: cfg.backoff_max.0,
            ban_min_ns: cfg.ban_min.0,
            margin_ns: cfg.pacing_margin.0,
            now_ns: 0,
        };
        assert_eq!(limiter.order_slots.len(), accounts * slots_per_account);
        Ok(limiter)
    }

    pub fn accounts(&self) -> usize {
        self.order_rings.len()
    }

    /// The earliest time one order of `account`, weighing `weight` on the IP,
    /// could be admitted: `now` if it can go now. Exact while nothing else is
    /// admitted meanwhile; another account's request can only move it later
    /// (through the shared IP weight), never earlier, so a caller waiting until
    /// it then calling `admit` again never sends early.
    ///
    /// # Panics
    /// If `account` is out of range: the gateway numbers its own accounts.
    pub fn next_ready(&self, account: usize, weight: u32, now: Nanos) -> Nanos {
        let now_ns = now.0.max(self.now_ns);
        let slots = self.account_slots(account);
        let ring = self.order_rings[account];
        let mut ready = self.account_backoff[account].until_ns;
        for l in self.order_limits.iter() {
            ready = ready.max(ring.ready(slots, self.paced(*l), 1));
        }
        ready = ready.max(self.ip_ready(weight));
        Nanos(ready.max(now_ns))
    }

    /// Admit one order of `account` now, or say when it could go (`Err`): the
    /// caller keeps the order queued and comes back then, so a limit slows the
    /// flow and never drops an order.
    ///
    /// # Panics
    /// If `account` is out of range.
    pub fn admit(&mut self, account: usize, weight: u32, now: Nanos) -> Result<(), Nanos> {
        let now_ns = self.advance(now);
        let ready = self.next_ready(account, weight, Nanos(now_ns));
        if ready.0 > now_ns {
            return Err(ready);
        }
        let range = self.account_range(account);
        let ring = &mut self.order_rings[account];
        ring.push(&mut self.order_slots[range], now_ns, 1);
        self.ip_ring.push(&mut self.ip_slots, now_ns, weight);
        debug_assert!(self.order_rings[account].len as usize <= self.slots_per_account);
        Ok(())
    }

    /// Admit as many of `n` orders of `account` as may go now, in order, and say
    /// how many: the caller sends that many from the head of its queue and
    /// keeps the rest for `next_ready`.
    ///
    /// # Panics
    /// If `account` is out of range.
    pub fn admit_batch(&mut self, account: usize, n: usize, weight_each: u32, now: Nanos) -> usize {
        // Bounded: at one instant no more than the smallest `count_max` fit.
        let bound = self
            .order_limits
            .iter()
            .map(|l| l.count_max as usize)
            .min()
            .unwrap_or(0);
        let mut admitted = 0;
        while admitted < n.min(bound) && self.admit(account, weight_each, now).is_ok() {
            admitted += 1;
        }
        debug_assert!(admitted <= n && admitted <= bound);
        admitted
    }

    /// The earliest time a request that places no order (`order.status`, a
    /// logon) weighing `weight` could be admitted. It waits for the IP, never
    /// for an account's order limits or its order backoff: asking about an
    /// order must not wait behind the orders it is about.
    pub fn next_request_ready(&self, weight: u32, now: Nanos) -> Nanos {
        Nanos(self.ip_ready(weight).max(now.0.max(self.now_ns)))
    }

    /// Admit a request that places no order now, or say when it could go.
    pub fn admit_request(&mut self, weight: u32, now: Nanos) -> Result<(), Nanos> {
        let now_ns = self.advance(now);
        let ready = self.next_request_ready(weight, Nanos(now_ns));
        if ready.0 > now_ns {
            return Err(ready);
        }
        self.ip_ring.push(&mut self.ip_slots, now_ns, weight);
        Ok(())
    }

    /// The venue refused with a 429, a 418 or a throttling code (see
    /// `errors::classify`): nothing in `throttle`'s scope is admitted until the
    /// later of `retry_after` (the venue's word, mapped to local time by
    /// `errors::ClockOffset::to_local`) and our own exponential backoff.
    /// Both, because a `retryAfter` already in the past (a clock offset, a
    /// late reply) must still slow us down, and repeated refusals must wait
    /// longer each time, as the venue escalates bans for clients that do not.
    /// Returns the time the scope is blocked until. `account` is used for
    /// `Throttle::Account` only.
    ///
    /// # Panics
    /// If `throttle` is `Account` and `account` is out of range.
    pub fn on_throttled(
        &mut self,
        throttle: Throttle,
        account: usize,
        retry_after: Option<Nanos>,
        now: Nanos,
    ) -> Nanos {
        let now_ns = self.advance(now);
        let floor_ns = match (throttle, retry_after) {
            (_, Some(t)) => t.0,
            (Throttle::Ban, None) => now_ns.saturating_add(self.ban_min_ns),
            (_, None) => 0,
        };
        let (start, max) = (self.backoff_start_ns, self.backoff_max_ns);
        let b = match throttle {
            Throttle::Account => &mut self.account_backoff[account],
            Throttle::Ip | Throttle::Ban => &mut self.ip_backoff,
        };
        b.hit(now_ns, floor_ns, start, max);
        debug_assert!(b.until_ns > now_ns || b.until_ns == u64::MAX);
        Nanos(b.until_ns)
    }

    /// The venue accepted a request of `account`: the next refusal starts its
    /// backoff from `backoff_start` again, since the pressure that escalated it
    /// is gone. A wait already set is kept.
    ///
    /// # Panics
    /// If `account` is out of range.
    pub fn on_success(&mut self, account: usize) {
        self.account_backoff[account].delay_ns = 0;
        self.ip_backoff.delay_ns = 0;
    }

    /// Take in one `rateLimits` entry of a reply to `account`'s request. If the
    /// venue leaves less room than we think is left (another client on the
    /// account or the IP, or a lower limit than configured), admissions
    /// stamped `now` are added until ours leaves no more room than the
    /// venue's. Stamped now, they expire no sooner than the venue's real ones,
    /// whether it counts in fixed or sliding windows. An `ORDERS` entry adds
    /// to the account's one ring, so the catch-up counts against its other
    /// order limits too: careful, at worst slower for one window.
    ///
    /// # Panics
    /// If `report.kind` is `Orders` and `account` is out of range.
    pub fn absorb(&mut self, account: usize, report: RateLimitReport, now: Nanos) -> Absorbed {
        let now_ns = self.advance(now);
        match report.kind {
            RateLimitKind::Orders => {
                let range = self.account_range(account);
                let ring = self.order_rings[account];
                let slots = &self.order_slots[range.clone()];
                let mut add = None;
                for l in self
                    .order_limits
                    .iter()
                    .filter(|l| l.window == report.window)
                {
                    let n = ring.catch_up(slots, *l, report, now_ns);
                    add = Some(add.unwrap_or(0).max(n));
                }
                let Some(add) = add else {
                    return Absorbed::Untracked;
                };
                self.order_rings[account].push(&mut self.order_slots[range], now_ns, add);
                absorbed(add)
            }
            RateLimitKind::RequestWeight => {
                if self.ip_limit.window != report.window {
                    return Absorbed::Untracked;
                }
                let add = self
                    .ip_ring
                    .catch_up(&self.ip_slots, self.ip_limit, report, now_ns);
                self.ip_ring.push(&mut self.ip_slots, now_ns, add);
                absorbed(add)
            }
        }
    }

    fn advance(&mut self, now: Nanos) -> u64 {
        self.now_ns = self.now_ns.max(now.0);
        self.now_ns
    }

    fn ip_ready(&self, weight: u32) -> u64 {
        self.ip_backoff.until_ns.max(self.ip_ring.ready(
            &self.ip_slots,
            self.paced(self.ip_limit),
            weight,
        ))
    }

    /// `l` with the pacing margin added to its window.
    fn paced(&self, l: Limit) -> Limit {
        Limit {
            count_max: l.count_max,
            window: Nanos(l.window.0.saturating_add(self.margin_ns)),
        }
    }

    fn account_range(&self, account: usize) -> std::ops::Range<usize> {
        assert!(
            account < self.order_rings.len(),
            "binance limits: account {account} out of range (the limiter has {})",
            self.order_rings.len()
        );
        let start = account * self.slots_per_account;
        start..start + self.slots_per_account
    }

    fn account_slots(&self, account: usize) -> &[u64] {
        &self.order_slots[self.account_range(account)]
    }
}

fn absorbed(add: u32) -> Absorbed {
    if add == 0 {
        Absorbed::InStep
    } else {
        Absorbed::CaughtUp(add)
    }
}

fn check_limit(l: &Limit, what: impl Fn() -> String) -> Result<(), LimitsError> {
    if l.count_max == 0 {
        return Err(LimitsError::ZeroCount { what: what() });
    }
    if l.count_max > COUNT_MAX_LIMIT {
        return Err(LimitsError::CountTooLarge {
            what: what(),
            count_max: l.count_max,
        });
    }
    if l.window.0 == 0 {
        return Err(LimitsError::ZeroWindow { what: what() });
    }
    Ok(())
}

/// The times of the last admitted units, oldest at `head`, in time order (the
/// limiter's `now` never goes back). The slots are the caller's, so that all
/// accounts share one allocation.
#[derive(Copy, Clone, Debug, Default)]
struct Ring {
    head: u32,
    len: u32,
}

impl Ring {
    /// The time of the `back`-th newest unit (1 = the newest), if held.
    fn nth_newest(&self, slots: &[u64], back: u32) -> Option<u64> {
        if back == 0 || back > self.len {
            return None;
        }
        let i = (self.head as usize + (self.len - back) as usize) % slots.len();
        Some(slots[i])
    }

    /// The earliest time `units` more fit under `limit`: once the unit that
    /// would become the (`count_max` + 1)-th newest has left the window.
    fn ready(&self, slots: &[u64], limit: Limit, units: u32) -> u64 {
        if units == 0 {
            return 0;
        }
        if units > limit.count_max {
            return u64::MAX;
        }
        debug_assert!(limit.count_max as usize <= slots.len());
        match self.nth_newest(slots, limit.count_max - units + 1) {
            Some(t) => t.saturating_add(limit.window.0),
            None => 0,
        }
    }

    /// Record `units` at `t`, forgetting the oldest when full (bounded by the
    /// ring's size: callers never push more than a `count_max`).
    fn push(&mut self, slots: &mut [u64], t: u64, units: u32) {
        let cap = slots.len() as u32;
        debug_assert!(units <= cap);
        debug_assert!(self.len == 0 || self.nth_newest(slots, 1).is_some_and(|last| last <= t));
        for _ in 0..units.min(cap) {
            if self.len < cap {
                slots[((self.head + self.len) % cap) as usize] = t;
                self.len += 1;
            } else {
                slots[self.head as usize] = t;
                self.head = (self.head + 1) % cap;
            }
        }
    }

    /// Units in the window ending at `now` (later than `now - window`): a
    /// binary search, the ring being in time order.
    fn count_in_window(&self, slots: &[u64], window: Nanos, now_ns: u64) -> u32 {
        let Some(cutoff) = now_ns.checked_sub(window.0) else {
            return self.len;
        };
        let at = |i: u32| slots[((self.head + i) % slots.len() as u32) as usize];
        let (mut lo, mut hi) = (0u32, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at(mid) > cutoff {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.len - lo
    }

    /// How many units to add so that our room under `limit` is no more than
    /// the venue's: ours `count_max - ours`, the venue's `limit - count`.
    fn catch_up(&self, slots: &[u64], limit: Limit, report: RateLimitReport, now_ns: u64) -> u32 {
        let target = i64::from(report.count) + i64::from(limit.count_max) - i64::from(report.limit);
        let target = target.clamp(0, i64::from(limit.count_max)) as u32;
        let ours = self.count_in_window(slots, limit.window, now_ns);
        target.saturating_sub(ours)
    }
}

/// One scope's backoff: blocked until `until_ns`; `delay_ns` the next wait (0:
/// start again from `backoff_start`).
#[derive(Copy, Clone, Debug, Default)]
struct Backoff {
    until_ns: u64,
    delay_ns: u64,
}

impl Backoff {
    fn hit(&mut self, now_ns: u64, floor_ns: u64, start_ns: u64, max_ns: u64) {
        let delay = if self.delay_ns == 0 {
            start_ns
        } else {
            self.delay_ns
        };
        let until = now_ns.saturating_add(delay).max(floor_ns);
        self.until_ns = self.until_ns.max(until);
        self.delay_ns = delay.saturating_mul(2).min(max_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = SECOND_NS;

    fn limiter(accounts: usize) -> Limiter {
        Limiter::new(&LimitsConfig::default(), accounts).unwrap()
    }

    fn small(order_limits: &[(u32, u64)], ip: (u32, u64), accounts: usize) -> Limiter {
        let cfg = LimitsConfig {
            order_limits: order_limits
                .iter()
                .map(|&(count_max, w)| Limit {
                    count_max,
                    window: Nanos(w),
                })
                .collect(),
            ip_weight: Limit {
                count_max: ip.0,
                window: Nanos(ip.1),
            },
            handshake_weight: 1,
            ..LimitsConfig::default()
        };
        Limiter::new(&cfg, accounts).unwrap()
    }

    /// A queue of `n` orders arriving at `start`, sent as soon as the limiter
    /// lets them: the admission time of each.
    fn drain(l: &mut Limiter, account: usize, n: usize, start: u64) -> Vec<u64> {
        let mut times = Vec::with_capacity(n);
        let mut now = Nanos(start);
        while times.len() < n {
            let k = l.admit_batch(account, n - times.len(), 0, now);
            times.extend(std::iter::repeat_n(now.0, k));
            if times.len() < n {
                let next = l.next_ready(account, 0, now);
                assert!(next > now, "refused at {now:?} yet ready then");
                now = next;
            }
        }
        times
    }

    /// At most `count_max` of `times` (sorted) in any `[t, t + window)`.
    fn within(times: &[u64], limit: (u32, u64)) -> bool {
        let m = limit.0 as usize;
        times.windows(m + 1).all(|w| w[m] - w[0] >= limit.1)
    }

    /// At most `count_max` weight in any `[t, t + window)` of (time, weight).
    fn weight_within(sent: &[(u64, u32)], limit: (u32, u64)) -> bool {
        sent.iter().all(|&(t0, _)| {
            let sum: u64 = sent
                .iter()
                .filter(|&&(t, _)| t >= t0 && t - t0 < limit.1)
                .map(|&(_, w)| u64::from(w))
                .sum();
            sum <= u64::from(limit.0)
        })
    }

    #[test]
    fn a_burst_of_1000_goes_at_the_earliest_times_the_limits_allow() {
        let mut l = limiter(1);
        let t0 = 1_700_000_000 * S;
        let times = drain(&mut l, 0, 1_000, t0);
        assert_eq!(times[299], t0);
        assert_eq!(times[300], t0 + 10 * S, "the 301st, 10 s after the first");
        assert_eq!(times[599], t0 + 10 * S);
        assert_eq!(times[600], t0 + 20 * S);
        assert_eq!(times[900], t0 + 30 * S);
        assert_eq!(times[999], t0 + 30 * S);
        assert!(within(&times, (300, 10 * S)) && within(&times, (1_200, 60 * S)));
    }

    #[test]
    fn past_1200_the_minute_limit_holds_the_1201st_until_60_s() {
        let mut l = limiter(1);
        let times = drain(&mut l, 0, 1_500, 0);
        assert_eq!(times[1_199], 30 * S);
        assert_eq!(times[1_200], 60 * S, "not at 40 s: the minute limit binds");
        assert_eq!(times[1_499], 60 * S);
        assert!(within(&times, (300, 10 * S)) && within(&times, (1_200, 60 * S)));
    }

    #[test]
    fn orders_spaced_wider_than_window_over_max_all_go_on_arrival() {
        // 60 s / 1,200 = 50 ms is the tighter spacing; exactly it is allowed.
        let mut l = limiter(2);
        for i in 0..5_000u64 {
            let now = Nanos(i * 50_000_000);
            assert_eq!(l.admit(0, 0, now), Ok(()), "order {i}");
            assert_eq!(l.admit_request(1, now), Ok(()), "IP weight 2400 per minute");
        }
    }

    #[test]
    fn an_err_names_the_exact_time_it_could_go() {
        let mut l = small(&[(3, 100)], (1_000, 100), 1);
        for t in [0, 10, 20] {
            l.admit(0, 0, Nanos(t)).unwrap();
        }
        assert_eq!(l.admit(0, 0, Nanos(50)), Err(Nanos(100)));
        assert_eq!(l.admit(0, 0, Nanos(99)), Err(Nanos(100)));
        assert_eq!(l.admit(0, 0, Nanos(100)), Ok(()));
        assert_eq!(l.next_ready(0, 0, Nanos(100)), Nanos(110));
    }

    #[test]
    fn accounts_are_paced_apart_and_the_ip_weight_together() {
        let mut l = small(&[(2, 100)], (3, 100), 2);
        assert_eq!(l.admit_batch(0, 5, 1, Nanos(0)), 2);
        // Account 1 has its own order count, but the IP has 1 weight left.
        assert_eq!(l.admit_batch(1, 5, 1, Nanos(0)), 1);
        assert_eq!(l.admit_request(1, Nanos(0)), Err(Nanos(100)));
        assert_eq!(l.next_ready(1, 1, Nanos(0)), Nanos(100));
        // A weight-0 order still goes: the account has room.
        assert_eq!(l.admit(1, 0, Nanos(0)), Ok(()));
        assert_eq!(l.admit(1, 0, Nanos(0)), Err(Nanos(100)));
    }

    #[test]
    fn a_weight_over_the_ip_limit_never_goes() {
        let mut l = small(&[(2, 100)], (3, 100), 1);
        assert_eq!(l.admit_request(4, Nanos(0)), Err(NEVER));
        assert_eq!(l.admit(0, 4, Nanos(0)), Err(NEVER));
        assert_eq!(l.admit_request(3, Nanos(0)), Ok(()));
    }

    #[test]
    fn a_429_with_retry_after_blocks_until_then() {
        let mut l = limiter(2);
        let until = l.on_throttled(Throttle::Ip, 0, Some(Nanos(5 * S)), Nanos(S));
        assert_eq!(until, Nanos(5 * S));
        assert_eq!(l.admit(0, 0, Nanos(5 * S - 1)), Err(Nanos(5 * S)));
        assert_eq!(l.admit(1, 0, Nanos(2 * S)), Err(Nanos(5 * S)));
        assert_eq!(l.admit_request(1, Nanos(2 * S)), Err(Nanos(5 * S)));
        assert_eq!(l.admit(0, 0, Nanos(5 * S)), Ok(()));
        assert_eq!(l.admit_request(1, Nanos(5 * S)), Ok(()));
    }

    #[test]
    fn a_429_without_retry_after_backs_off_exponentially_capped_and_resets() {
        let mut l = limiter(1);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..9 {
            let until = l.on_throttled(Throttle::Ip, 0, None, Nanos(now));
            waits.push((until.0 - now) / S);
            now = until.0;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        l.on_success(0);
        let until = l.on_throttled(Throttle::Ip, 0, None, Nanos(now));
        assert_eq!(until, Nanos(now + S), "a success starts it again");
    }

    #[test]
    fn a_429_for_one_account_blocks_only_that_account() {
        let mut l = limiter(2);
        let until = l.on_throttled(Throttle::Account, 1, None, Nanos(0));
        assert_eq!(until, Nanos(S));
        assert_eq!(l.admit(1, 0, Nanos(0)), Err(Nanos(S)));
        assert_eq!(l.admit(0, 0, Nanos(0)), Ok(()));
        assert_eq!(
            l.admit_request(1, Nanos(0)),
            Ok(()),
            "order.status is not an order"
        );
        assert_eq!(l.admit(1, 0, Nanos(S)), Ok(()));
    }

    #[test]
    fn a_418_bans_until_the_time_the_venue_names() {
        let mut l = limiter(1);
        let ban_end = 1_700_000_600 * S;
        let now = Nanos(1_700_000_000 * S);
        assert_eq!(
            l.on_throttled(Throttle::Ban, 0, Some(Nanos(ban_end)), now),
            Nanos(ban_end)
        );
        assert_eq!(l.admit(0, 0, Nanos(ban_end - 1)), Err(Nanos(ban_end)));
        assert_eq!(l.admit_request(1, Nanos(ban_end - 1)), Err(Nanos(ban_end)));
        assert_eq!(l.admit(0, 0, Nanos(ban_end)), Ok(()));
    }

    #[test]
    fn a_418_without_an_end_waits_the_shortest_ban() {
        let mut l = limiter(1);
        assert_eq!(
            l.on_throttled(Throttle::Ban, 0, None, Nanos(S)),
            Nanos(121 * S)
        );
    }

    #[test]
    fn a_retry_after_in_the_past_still_backs_off() {
        let mut l = limiter(1);
        let until = l.on_throttled(Throttle::Ip, 0, Some(Nanos(1)), Nanos(100 * S));
        assert_eq!(until, Nanos(101 * S));
        assert_eq!(l.admit(0, 0, Nanos(100 * S)), Err(Nanos(101 * S)));
    }

    #[test]
    fn a_ban_without_end_blocks_without_overflow() {
        let mut l = limiter(1);
        let until = l.on_throttled(Throttle::Ban, 0, Some(NEVER), Nanos(u64::MAX - 1));
        assert_eq!(until, NEVER);
        assert_eq!(l.admit(0, 0, Nanos(u64::MAX - 1)), Err(NEVER));
        assert_eq!(l.next_request_ready(0, Nanos(0)), NEVER);
        l.on_throttled(Throttle::Ip, 0, None, Nanos(u64::MAX));
        assert_eq!(l.admit(0, 0, Nanos(u64::MAX)), Ok(()));
    }

    #[test]
    fn the_venues_higher_order_count_is_caught_up() {
        let mut l = limiter(2);
        let now = Nanos(100 * S);
        for _ in 0..10 {
            l.admit(0, 0, now).unwrap();
        }
        let r = RateLimitReport::from_venue("ORDERS", "SECOND", 10, 300, 250).unwrap();
        assert_eq!(l.absorb(0, r, now), Absorbed::CaughtUp(240));
        assert_eq!(l.admit_batch(0, 100, 0, now), 50);
        assert_eq!(l.admit(0, 0, now), Err(Nanos(110 * S)));
        // Only account 0 is behind.
        assert_eq!(l.admit_batch(1, 400, 0, now), 300);
        // A lower or equal count from the venue changes nothing.
        let r = RateLimitReport::from_venue("ORDERS", "MINUTE", 1, 1_200, 300).unwrap();
        assert_eq!(l.absorb(1, r, now), Absorbed::InStep);
    }

    #[test]
    fn our_orders_exactly_one_window_old_no_longer_count_in_a_catch_up() {
        let mut l = limiter(1);
        assert_eq!(l.admit_batch(0, 10, 0, Nanos(0)), 10);
        // At 10 s those ten have left the window [0 + 10 s ..): all 250 are others'.
        let r = RateLimitReport::from_venue("ORDERS", "SECOND", 10, 300, 250).unwrap();
        assert_eq!(l.absorb(0, r, Nanos(10 * S)), Absorbed::CaughtUp(250));
        assert_eq!(l.admit_batch(0, 100, 0, Nanos(10 * S)), 50);
    }

    #[test]
    fn a_lower_venue_limit_leaves_us_no_more_room_than_the_venue() {
        let mut l = limiter(1);
        let r = RateLimitReport::from_venue("ORDERS", "SECOND", 10, 200, 0).unwrap();
        assert_eq!(l.absorb(0, r, Nanos(0)), Absorbed::CaughtUp(100));
        assert_eq!(l.admit_batch(0, 300, 0, Nanos(0)), 200);
    }

    #[test]
    fn the_venues_request_weight_is_caught_up() {
        let mut l = limiter(1);
        let r = RateLimitReport::from_venue("REQUEST_WEIGHT", "MINUTE", 1, 2_400, 2_399).unwrap();
        assert_eq!(l.absorb(0, r, Nanos(S)), Absorbed::CaughtUp(2_399));
        assert_eq!(l.admit_request(1, Nanos(S)), Ok(()));
        assert_eq!(l.admit_request(1, Nanos(S)), Err(Nanos(61 * S)));
        assert_eq!(l.admit(0, 0, Nanos(S)), Ok(()), "orders weigh 0");
    }

    #[test]
    fn a_limit_we_do_not_keep_is_untracked() {
        let mut l = limiter(1);
        let r = RateLimitReport::from_venue("ORDERS", "DAY", 1, 100_000, 99_999).unwrap();
        assert_eq!(l.absorb(0, r, Nanos(0)), Absorbed::Untracked);
        let r = RateLimitReport::from_venue("REQUEST_WEIGHT", "SECOND", 1, 10, 10).unwrap();
        assert_eq!(l.absorb(0, r, Nanos(0)), Absorbed::Untracked);
        assert_eq!(l.admit(0, 0, Nanos(0)), Ok(()));
    }

    #[test]
    fn rate_limit_entries_are_read_as_the_venue_spells_them() {
        let r = RateLimitReport::from_venue("ORDERS", "SECOND", 10, 300, 1);
        assert_eq!(
            r,
            Some(RateLimitReport {
                kind: RateLimitKind::Orders,
                window: Nanos(10 * S),
                limit: 300,
                count: 1
            })
        );
        let r = RateLimitReport::from_venue("REQUEST_WEIGHT", "MINUTE", 1, 2_400, 7).unwrap();
        assert_eq!(
            (r.kind, r.window),
            (RateLimitKind::RequestWeight, Nanos(60 * S))
        );
        let r = RateLimitReport::from_venue("ORDERS", "HOUR", 2, 1, 1).unwrap();
        assert_eq!(r.window, Nanos(7_200 * S));
        assert_eq!(
            RateLimitReport::from_venue("RAW_REQUESTS", "MINUTE", 1, 1, 1),
            None
        );
        assert_eq!(RateLimitReport::from_venue("ORDERS", "WEEK", 1, 1, 1), None);
        assert_eq!(
            RateLimitReport::from_venue("ORDERS", "SECOND", 0, 1, 1),
            None
        );
        let r = RateLimitReport::from_venue("ORDERS", "DAY", u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(
            r.map(|r| (r.window, r.limit, r.count)),
            Some((NEVER, u32::MAX, u32::MAX))
        );
    }

    #[test]
    fn hostile_rate_limit_entries_never_panic_nor_overfill() {
        let mut l = limiter(1);
        let cases = [(0, u64::MAX), (u64::MAX, 0), (0, 0), (u64::MAX, u64::MAX)];
        for (limit, count) in cases {
            for (kind, interval, num) in [("ORDERS", "SECOND", 10), ("REQUEST_WEIGHT", "MINUTE", 1)]
            {
                let r = RateLimitReport::from_venue(kind, interval, num, limit, count).unwrap();
                l.absorb(0, r, Nanos(5));
            }
        }
        // Both limits the venue named are full now, and free after their windows.
        assert_eq!(l.admit(0, 0, Nanos(5)), Err(Nanos(5 + 10 * S)));
        assert_eq!(l.admit(0, 0, Nanos(5 + 10 * S)), Ok(()));
        assert_eq!(l.admit_request(1, Nanos(5)), Err(Nanos(5 + 60 * S)));
        assert_eq!(l.admit_request(1, Nanos(5 + 60 * S)), Ok(()));
    }

    /// Found by the red team: the gateway paced by widening every window by its
    /// margin, so no `rateLimits` entry (10 s, 1 min: the venue's windows)
    /// matched a limit any more and every one was `Untracked`.
    #[test]
    fn the_pacing_margin_widens_the_windows_yet_the_venues_counts_are_absorbed() {
        let cfg = LimitsConfig {
            pacing_margin: Nanos(100_000_000),
            ..LimitsConfig::default()
        };
        let mut l = Limiter::new(&cfg, 1).unwrap();
        let t0 = 1_000 * S;
        let orders = RateLimitReport::from_venue("ORDERS", "SECOND", 10, 300, 299).unwrap();
        assert_eq!(l.absorb(0, orders, Nanos(t0)), Absorbed::CaughtUp(299));
        let weight = RateLimitReport::from_venue("REQUEST_WEIGHT", "MINUTE", 1, 2_400, 2_400);
        assert_eq!(
            l.absorb(0, weight.unwrap(), Nanos(t0)),
            Absorbed::CaughtUp(2_400)
        );
        assert_eq!(l.admit(0, 0, Nanos(t0)), Ok(()), "the 300th");
        // The 301st waits for the venue's 10 s and the margin.
        assert_eq!(
            l.admit(0, 0, Nanos(t0)),
            Err(Nanos(t0 + 10 * S + 100_000_000))
        );
        assert_eq!(
            l.admit_request(1, Nanos(t0 + 60 * S)),
            Err(Nanos(t0 + 60 * S + 100_000_000))
        );
        assert_eq!(l.admit_request(1, Nanos(t0 + 60 * S + 100_000_000)), Ok(()));
    }

    #[test]
    fn bad_configurations_are_refused_with_a_clear_error() {
        let d = LimitsConfig::default;
        let with_orders = |order_limits: Vec<Limit>| LimitsConfig {
            order_limits,
            ..d()
        };
        let lim = |count_max, w| Limit {
            count_max,
            window: Nanos(w),
        };
        let cases: Vec<(LimitsConfig, &str)> = vec![
            (with_orders(vec![]), "no per-account order limit"),
            (
                with_orders(vec![lim(300, S), lim(0, S)]),
                "order limit 2 of 2 has count_max 0",
            ),
            (
                with_orders(vec![lim(300, 0)]),
                "order limit 1 of 1 has a window of 0 ns",
            ),
            (
                with_orders(vec![lim(u32::MAX, S)]),
                "over the most a ring may hold",
            ),
            (
                LimitsConfig {
                    ip_weight: lim(0, S),
                    ..d()
                },
                "the IP weight limit has count_max 0",
            ),
            (
                LimitsConfig {
                    ip_weight: lim(10, 0),
                    ..d()
                },
                "the IP weight limit has a window of 0 ns",
            ),
            (
                LimitsConfig {
                    backoff_start: Nanos(0),
                    ..d()
                },
                "backoff_start is 0 ns",
            ),
            (
                LimitsConfig {
                    backoff_max: Nanos(1),
                    ..d()
                },
                "backoff_max (1 ns) is below backoff_start",
            ),
            (
                LimitsConfig {
                    ip_weight: lim(4, S),
                    ..d()
                },
                "handshake_weight is 5, over the IP weight limit's count_max 4",
            ),
            (
                LimitsConfig {
                    order_status_weight: 11,
                    ip_weight: lim(10, S),
                    ..d()
                },
                "order_status_weight is 11",
            ),
        ];
        for (cfg, expected) in cases {
            let err = Limiter::new(&cfg, 1).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
        let err = Limiter::new(&d(), usize::MAX).unwrap_err();
        assert!(matches!(err, LimitsError::TooManyAccounts { .. }), "{err}");
    }

    #[test]
    fn a_huge_window_never_overflows() {
        let mut l = small(&[(2, u64::MAX)], (3, u64::MAX), 1);
        assert_eq!(l.admit_batch(0, 5, 1, Nanos(10)), 2);
        assert_eq!(l.admit(0, 0, Nanos(u64::MAX - 1)), Err(NEVER));
        assert_eq!(l.admit_request(1, Nanos(11)), Ok(()));
        assert_eq!(l.admit_request(1, Nanos(11)), Err(NEVER));
        let r = RateLimitReport::from_venue("ORDERS", "DAY", 1, 5, 5).unwrap();
        assert_eq!(l.absorb(0, r, Nanos(12)), Absorbed::Untracked);
    }

    #[test]
    fn time_going_backwards_counts_from_the_latest_time_seen() {
        let mut l = small(&[(2, 100)], (10, 100), 1);
        l.admit(0, 0, Nanos(1_000)).unwrap();
        // Taken as 1,000: counted until 1,100, never earlier.
        l.admit(0, 0, Nanos(10)).unwrap();
        assert_eq!(l.admit(0, 0, Nanos(5)), Err(Nanos(1_100)));
        assert_eq!(l.next_ready(0, 0, Nanos(0)), Nanos(1_100));
        assert_eq!(l.admit(0, 0, Nanos(1_100)), Ok(()));
        assert_eq!(
            l.on_throttled(Throttle::Ip, 0, None, Nanos(0)),
            Nanos(1_100 + S)
        );
    }

    #[test]
    #[should_panic(expected = "account 2 out of range (the limiter has 2)")]
    fn an_account_out_of_range_is_a_bug_of_the_gateway() {
        let mut l = limiter(2);
        let _ = l.admit(2, 0, Nanos(0));
    }

    /// One arrival: after `gap_ns`, `orders` orders of `account` join its queue
    /// (each weighing `weight` on the IP), and `requests` requests of weight 1.
    #[derive(Clone, Debug)]
    struct Arrival {
        gap_ns: u64,
        account: usize,
        orders: usize,
        weight: u32,
        requests: usize,
    }

    fn arrivals(accounts: usize) -> impl Strategy<Value = Vec<Arrival>> {
        let one = (0u64..40, 0..accounts, 0usize..9, 0u32..3, 0usize..3).prop_map(
            |(gap_ns, account, orders, weight, requests)| Arrival {
                gap_ns,
                account,
                orders,
                weight,
                requests,
            },
        );
        proptest::collection::vec(one, 0..120)
    }

    fn limits() -> impl Strategy<Value = (Vec<(u32, u64)>, (u32, u64))> {
        (
            proptest::collection::vec((1u32..7, 1u64..60), 1..4),
            (2u32..12, 1u64..60),
        )
    }

    proptest! {
        /// Whatever arrives, and however the caller batches it, no account's
        /// admissions exceed any order limit in any interval of its window,
        /// and the IP's weight stays under its limit: the safety the venue
        /// needs. And every order is sent in the end: nothing is dropped.
        #[test]
        fn no_window_ever_holds_more_than_its_limit(
            (order_limits, ip) in limits(),
            arrivals in arrivals(3),
            batch_max in 1usize..6,
        ) {
            let mut l = small(&order_limits, ip, 3);
            let mut queued = [std::collections::VecDeque::new(), Default::default(), Default::default()];
            let mut requests = 0usize;
            let mut sent: Vec<Vec<u64>> = vec![Vec::new(); 3];
            let mut weights: Vec<(u64, u32)> = Vec::new();
            let mut now = 0u64;
            let mut pending = arrivals.into_iter();
            let mut next = pending.next();
            // Bounded: each pass admits something or moves time to a ready time.
            for _ in 0..100_000 {
                if let Some(a) = next.as_ref().filter(|a| now >= a.gap_ns) {
                    now = a.gap_ns.max(now);
                    queued[a.account].extend(std::iter::repeat_n(a.weight, a.orders));
                    requests += a.requests;
                    next = pending.next().map(|b| Arrival { gap_ns: now + b.gap_ns, ..b });
                    continue;
                }
                let mut wake = next.as_ref().map_or(u64::MAX, |a| a.gap_ns);
                for (account, q) in queued.iter_mut().enumerate() {
                    while let Some(&w) = q.front() {
                        let n = q.iter().take(batch_max).take_while(|&&x| x == w).count();
                        let k = l.admit_batch(account, n, w, Nanos(now));
                        for _ in 0..k {
                            q.pop_front();
                            sent[account].push(now);
                            weights.push((now, w));
                        }
                        if k < n {
                            let ready = l.next_ready(account, w, Nanos(now)).0;
                            prop_assert!(ready > now);
                            wake = wake.min(ready);
                            break;
                        }
                    }
                }
                while requests > 0 {
                    match l.admit_request(1, Nanos(now)) {
                        Ok(()) => {
                            requests -= 1;
                            weights.push((now, 1));
                        }
                        Err(t) => {
                            prop_assert!(t.0 > now);
                            wake = wake.min(t.0);
                            break;
                        }
                    }
                }
                if wake == u64::MAX {
                    break;
                }
                now = now.max(wake);
            }
            prop_assert!(queued.iter().all(|q| q.is_empty()) && requests == 0, "all sent");
            for times in &sent {
                for &limit in &order_limits {
                    prop_assert!(within(times, limit), "{times:?} over {limit:?}");
                }
            }
            prop_assert!(weight_within(&weights, ip), "{weights:?} over {ip:?}");
        }

        /// A refusal names the exact time: refused just before it, admitted at it.
        #[test]
        fn a_refusal_names_the_earliest_time(
            (order_limits, ip) in limits(),
            gaps in proptest::collection::vec(0u64..30, 1..80),
            weight in 0u32..3,
        ) {
            let mut l = small(&order_limits, ip, 1);
            let mut now = 0;
            for gap in gaps {
                now += gap;
                if let Err(t) = l.admit(0, weight, Nanos(now)) {
                    prop_assert!(t.0 > now);
                    prop_assert_eq!(l.admit(0, weight, Nanos(t.0 - 1)), Err(t));
                    prop_assert_eq!(l.admit(0, weight, t), Ok(()));
                    now = t.0;
                }
            }
        }

        /// Any times, any venue counts, any backoffs: no panic, and a refusal
        /// always names a time later than now.
        #[test]
        fn hostile_inputs_never_panic(
            steps in proptest::collection::vec(
                (any::<u64>(), 0u8..5, any::<u32>(), any::<u64>(), any::<u64>()),
                0..60,
            ),
        ) {
            let mut l = small(&[(3, 7), (5, u64::MAX / 2)], (4, 1), 2);
            for (now, op, x, y, z) in steps {
                let account = (x % 2) as usize;
                match op {
                    0 => {
                        if let Err(t) = l.admit(account, x % 6, Nanos(now)) {
                            prop_assert!(t.0 > now);
                        }
                    }
                    1 => {
                        l.admit_batch(account, (y % 10) as usize, x % 3, Nanos(now));
                    }
                    2 => {
                        let t = [Throttle::Account, Throttle::Ip, Throttle::Ban][(y % 3) as usize];
                        l.on_throttled(t, account, (z % 2 == 0).then_some(Nanos(z)), Nanos(now));
                    }
                    3 => {
                        let kind = if y % 2 == 0 { "ORDERS" } else { "REQUEST_WEIGHT" };
                        if let Some(r) = RateLimitReport::from_venue(kind, "SECOND", y % 9, z, u64::from(x)) {
                            l.absorb(account, r, Nanos(now));
                        }
                    }
                    _ => l.on_success(account),
                }
            }
        }
    }
}
