//! A leader fill's fan-out over its leader's subscriptions (`Core::on_leader_fill`),
//! in two stages over blocks of `BLOCK` slots:
//!
//! 1. **Sizing** (`size`): every slot's episode ratio, target and held lots, from
//!    the book's columns alone: one loop over slices of one length (no bounds
//!    checks), no branch on the slot but the mode's select, nothing written but
//!    the ratio column and two small arrays on the stack.
//! 2. **Decisions** (`decide`), slot by slot in the book's order, which is the
//!    journal's: the risk filter and the order for a reduction or an increase
//!    inline; the rare paths (a stopped subscription, a venue down, a flip, an
//!    order with no place) out of line, so the common loop stays small.
//!
//! The risk filter is not a stage of its own: a follower may hold two
//! subscriptions to one leader, and the second's filter must see the exposure of
//! the first's order in the same fan-out (`update_exposure`), so filter and
//! order go together, slot after slot.
//!
//! The decisions are the ones the loop of one `decide_slot` per slot made
//! before (its copy in the tests compares them on random books and fills).

use super::{increase_slot, reduce_slot, Book, Desk, FanOut, Gap, Leg, Resync, PREFETCH_AHEAD};
use crate::config::Status;
use crate::outputs::{Decision, DecisionStatus, Outputs, Reason, SyncReason};
use crate::sizing::LeaderMove;
use crate::units::{Lots, Money};

/// Slots sized at a time: the stage's two arrays (1 KiB) and the block's
/// parameters (4 KiB) stay in the L1 cache for the decisions that read them.
const BLOCK: usize = 64;

/// Decides every slot of `book` on the fill `fan` describes; emits each order,
/// then its decision, slot after slot.
#[inline(always)]
pub(super) fn fan_out<O: Outputs>(
    book: &mut Book,
    desk: &mut Desk,
    resync: &mut Resync,
    out_of_sync: &mut [bool],
    fan: &FanOut,
    out: &mut O,
) {
    let si = fan.leg.symbol.0 as usize;
    let n = book.subs.len();
    let mut target = [Lots::ZERO; BLOCK];
    let mut held = [Lots::ZERO; BLOCK];
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        size(
            book,
            si,
            start..end,
            &fan.leader_move,
            &mut target,
            &mut held,
        );
        for k in start..end {
            if let Some(ahead) = book.subs.get(k + PREFETCH_AHEAD) {
                desk.orders.prefetch_for(ahead.0 as usize);
                let f = book.follower[k + PREFETCH_AHEAD] as usize;
                crate::order::prefetch(desk.followers.risk.as_ptr().wrapping_add(f));
            }
            let decision = decide(
                book,
                desk,
                resync,
                out_of_sync,
                k,
                (held[k - start], target[k - start]),
                fan,
                out,
            );
            desk.stats.record(&decision);
            out.decision(&decision);
        }
        start = end;
    }
}

/// Stage 1: slots `range`'s new ratios (written to the book), their targets and
/// what they hold (position and working orders), into `target` and `held` from 0.
#[inline(always)]
fn size(
    book: &mut Book,
    si: usize,
    range: std::ops::Range<usize>,
    mv: &LeaderMove,
    target: &mut [Lots; BLOCK],
    held: &mut [Lots; BLOCK],
) {
    let m = range.len();
    let params = &book.params[range.clone()];
    let sb = &mut book.symbols[si];
    let ratio = &mut sb.ratio[range.clone()];
    let pos = &sb.pos[range.clone()];
    let working = &sb.working[range];
    let (target, held) = (&mut target[..m], &mut held[..m]);
    for i in 0..m {
        let p = &params[i];
        let r = mv.ratio(ratio[i], p.mode.is_fixed_notional(), p.base, p.amount);
        ratio[i] = r;
        target[i] = mv.target(r);
        held[i] = pos[i] + working[i];
    }
}

/// Stage 2, slot `k`: nothing (stopped, no change), a deferral (venue down, no
/// order place), a reduction (a flip's close and opening leg out of line), or
/// an increase through the risk filter.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn decide<O: Outputs>(
    book: &mut Book,
    desk: &mut Desk,
    resync: &mut Resync,
    out_of_sync: &mut [bool],
    k: usize,
    (held, target): (Lots, Lots),
    fan: &FanOut,
    out: &mut O,
) -> Decision {
    let sub = book.subs[k];
    let fi = book.follower[k] as usize;
    let mut decision = Decision {
        event_key: fan.leg.event_key,
        sub,
        symbol: fan.leg.symbol,
        target,
        revision: desk.revision,
        ..Decision::default()
    };
    let risk = &mut desk.followers.risk[fi];
    if book.params[k].status == Status::Stopped || risk.status == Status::Stopped {
        decision.status = DecisionStatus::Skipped;
        decision.reason = Reason::FollowerStopped;
        return decision;
    }
    out_of_sync[sub.0 as usize] = false;
    let delta = target - held;
    decision.delta = delta;
    if delta.is_zero() {
        decision.status = DecisionStatus::Skipped;
        decision.reason = Reason::NoChange;
        return decision;
    }
    let si = fan.leg.symbol.0 as usize;
    let pair = sub.0 as usize * fan.risk.n_sym + si;
    if fan.venue_down {
        deferred(
            resync,
            pair,
            SyncReason::VenueDown,
            fan.now_ns,
            &mut decision,
        );
        return decision;
    }
    if risk.day != fan.day {
        risk.day = fan.day;
        risk.realized_today = Money::ZERO;
    }
    let leg = Leg { slot: k, ..fan.leg };
    let gap = Gap::of(held, target);
    let placed = if gap.flips {
        flip(book, desk, &leg, (held, target), fan, &mut decision, out)
    } else if gap.reduces {
        reduce_slot(
            book,
            desk,
            &leg,
            (held, target, false),
            &fan.risk,
            &mut decision,
            out,
        )
    } else {
        increase_slot(book, desk, &leg, held, delta, &fan.risk, &mut decision, out)
    };
    if !placed {
        // An order found no place; it waits for the resync (`ready_for` makes
        // that rare: only while a venue is down or past `max_working_orders`).
        // The status says what was sent: a flip's close may have gone.
        deferred(
            resync,
            pair,
            SyncReason::Capacity,
            fan.now_ns,
            &mut decision,
        );
    }
    debug_assert!(decision.sent.abs() <= delta.abs() + held.abs());
    decision
}

/// Across zero: the whole close, then the opening leg through the risk filter.
#[cold]
#[inline(never)]
fn flip<O: Outputs>(
    book: &mut Book,
    desk: &mut Desk,
    leg: &Leg,
    (held, target): (Lots, Lots),
    fan: &FanOut,
    decision: &mut Decision,
    out: &mut O,
) -> bool {
    reduce_slot(
        book,
        desk,
        leg,
        (held, target, true),
        &fan.risk,
        decision,
        out,
    )
}

/// Not sent now: the resync catches the pair up (`why`).
#[cold]
#[inline(never)]
fn deferred(resync: &mut Resync, pair: usize, why: SyncReason, now_ns: u64, d: &mut Decision) {
    d.status = DecisionStatus::Deferred;
    d.reason = match why {
        SyncReason::VenueDown => Reason::VenueDown,
        _ => Reason::OrderTableFull,
    };
    resync.enqueue(pair, why, 0, now_ns);
}
