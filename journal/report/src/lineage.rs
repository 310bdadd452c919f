//! Lineage: the chain leader fill → copy instruction(s) → follower order(s) →
//! venue fill(s), with the reason for every skip, reduction and reject on it.
//!
//! An order the resync made has no leader fill of its own: its instruction says
//! why (`copy_instructions.resync`), and the lineage adds the leader fill whose
//! target it was catching up with (the latest fill of that leader and symbol
//! before the instruction) and the pair's orders that failed in between. A leader
//! fill's lineage lists, after its own instructions, the resync instructions for
//! the same pairs that followed it, up to the next fill of that leader and symbol.
//!
//! Built with a handful of indexed lookups (by client order id, by sequence, by
//! follower), not by loading the tables, so it answers quickly on a large database.

use fillcast_schema::{COPY_INSTRUCTIONS, FOLLOWER_FILLS, FOLLOWER_ORDERS, LEADER_FILLS};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::json::{dec, opt_dec};
use super::query::{
    self, FollowerFill, FollowerOrder, Instruction, LeaderFill, Param, Row, Source,
};
use super::time::format_ts;
use super::ReportError;

/// A follower order and the venue's fills of it.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderLineage {
    pub order: FollowerOrder,
    pub fills: Vec<FollowerFill>,
}

/// A copy instruction and the orders sent for it (legs and retries).
#[derive(Clone, Debug, PartialEq)]
pub struct InstructionLineage {
    pub instruction: Instruction,
    pub orders: Vec<OrderLineage>,
}

/// Where a resync instruction comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResyncOrigin {
    /// `copy_instructions.resync`: `unfilled`, `reject_<venue reason>`, ...
    pub cause: String,
    /// The latest fill of the instruction's leader and symbol before it, that the
    /// engine acted on: the target it was catching up with. `None` if there is none.
    pub catching_up_with: Option<LeaderFill>,
    /// The pair's orders that ended with part unfilled (rejected, canceled,
    /// expired) after that fill and before the instruction, oldest first; at most
    /// `FAILED_MAX`, the latest.
    pub failed_before: Vec<OrderLineage>,
}

/// A lineage, from the leader fill down.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// The order the lineage was asked for; `None` when asked for a leader fill.
    pub client_order_id: Option<String>,
    /// `None` when the instruction names no leader fill that is in the table (a
    /// resync's never does: see `resync`).
    pub leader_fill: Option<LeaderFill>,
    /// Set when the order asked for was made by the resync.
    pub resync: Option<ResyncOrigin>,
    pub instructions: Vec<InstructionLineage>,
    /// For a leader fill: the resync instructions for the same (subscription,
    /// symbol) pairs that followed it, before the next fill of that leader and
    /// symbol (`next_leader_fill_seq`), at most `RESYNCS_MAX`.
    pub resyncs: Vec<InstructionLineage>,
    pub next_leader_fill_seq: Option<i64>,
    /// More than `RESYNCS_MAX` resync instructions matched: the first are listed.
    pub resyncs_truncated: bool,
    /// Orders found without an instruction (their `instruction_seq` is unknown).
    pub orphan_orders: Vec<OrderLineage>,
    /// One line per skip, reduction, reject or unfilled remainder, in order.
    pub reasons: Vec<String>,
}

/// Most failed orders listed before a resync instruction.
pub const FAILED_MAX: usize = 50;
/// Most resync instructions listed after a leader fill.
pub const RESYNCS_MAX: usize = 1_000;

/// The lineage of one follower order, by client order id; `None` if no such order.
pub fn of_order(
    src: &mut dyn Source,
    client_order_id: &str,
) -> Result<Option<Lineage>, ReportError> {
    if !src.has_table("follower_orders")? {
        return Ok(None);
    }
    let orders = orders_where(src, "client_order_id = $1", &[Param::Text(client_order_id)])?;
    let Some(order) = orders.into_iter().next() else {
        return Ok(None);
    };
    let instruction = match order.instruction_seq {
        Some(seq) => instructions_where(src, "seq = $1", "seq", &[Param::Int(seq)])?
            .into_iter()
            .next(),
        None => None,
    };
    let mut lineage = Lineage::new(Some(client_order_id.to_string()), None);
    match instruction {
        Some(i) => {
            if i.is_resync() {
                lineage.resync = Some(resync_origin(src, &i)?);
            } else {
                lineage.leader_fill = leader_fill_of(src, &i)?;
            }
            lineage.instructions.push(with_orders(src, i)?);
        }
        None => lineage.orphan_orders = with_fills(src, vec![order])?,
    }
    lineage.reasons = reasons(&lineage);
    Ok(Some(lineage))
}

/// The lineage of one leader fill, by its `seq`: every subscription's decision on
/// it; `None` if no such fill.
pub fn of_leader_fill(src: &mut dyn Source, seq: i64) -> Result<Option<Lineage>, ReportError> {
    if !src.has_table("leader_fills")? {
        return Ok(None);
    }
    let Some(fill) = leader_fills_where(src, "seq = $1", "seq", &[Param::Int(seq)])?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let (leader_id, symbol) = (fill.leader_id.clone(), fill.symbol.clone());
    let mut lineage = Lineage::new(None, Some(fill));
    for i in instructions_where(src, "leader_fill_seq = $1", "seq", &[Param::Int(seq)])? {
        lineage.instructions.push(with_orders(src, i)?);
    }
    let subs: std::collections::BTreeSet<&str> = lineage
        .instructions
        .iter()
        .map(|il| il.instruction.subscription_id.as_str())
        .collect();
    if !subs.is_empty() && src.has_column("copy_instructions", "resync")? {
        let acted = acted_on(src)?;
        let next = leader_fills_where(
            src,
            &format!("leader_id = $1 AND symbol = $2 AND seq > $3{acted}"),
            "seq LIMIT 1",
            &[
                Param::Text(&leader_id),
                Param::Text(&symbol),
                Param::Int(seq),
            ],
        )?
        .into_iter()
        .next()
        .map(|f| f.seq);
        let found = instructions_where(
            src,
            "leader_fill_seq IS NULL AND resync <> '' AND leader_id = $1 AND symbol = $2 \
             AND seq > $3 AND seq < $4",
            &format!("seq LIMIT {}", RESYNCS_MAX + 1),
            &[
                Param::Text(&leader_id),
                Param::Text(&symbol),
                Param::Int(seq),
                Param::Int(next.unwrap_or(i64::MAX)),
            ],
        )?;
        lineage.resyncs_truncated = found.len() > RESYNCS_MAX;
        let subs: Vec<String> = subs.into_iter().map(str::to_string).collect();
        for i in found.into_iter().take(RESYNCS_MAX) {
            if subs.contains(&i.subscription_id) {
                lineage.resyncs.push(with_orders(src, i)?);
            }
        }
        lineage.next_leader_fill_seq = next;
    }
    lineage.reasons = reasons(&lineage);
    Ok(Some(lineage))
}

/// The instruction's catch-up target and what failed before it.
fn resync_origin(src: &mut dyn Source, i: &Instruction) -> Result<ResyncOrigin, ReportError> {
    let catching_up_with = if src.has_table("leader_fills")? {
        let acted = acted_on(src)?;
        leader_fills_where(
            src,
            &format!("leader_id = $1 AND symbol = $2 AND seq < $3{acted}"),
            "seq DESC LIMIT 1",
            &[
                Param::Text(&i.leader_id),
                Param::Text(&i.symbol),
                Param::Int(i.seq),
            ],
        )?
        .into_iter()
        .next()
    } else {
        None
    };
    let from = catching_up_with.as_ref().map_or(i64::MIN, |f| f.seq);
    // By follower first: `follower_orders_follower` is the index that narrows it.
    let mut failed = orders_where_ordered(
        src,
        "follower_id = $1 AND subscription_id = $2 AND symbol = $3 AND seq > $4 AND seq < $5 \
         AND status IN ('rejected', 'canceled', 'expired')",
        &format!("seq DESC LIMIT {FAILED_MAX}"),
        &[
            Param::Text(&i.follower_id),
            Param::Text(&i.subscription_id),
            Param::Text(&i.symbol),
            Param::Int(from),
            Param::Int(i.seq),
        ],
    )?;
    failed.retain(|o| o.filled_qty < o.qty);
    failed.reverse();
    Ok(ResyncOrigin {
        cause: i.resync.clone(),
        catching_up_with,
        failed_before: with_fills(src, failed)?,
    })
}

/// `" AND ignored = ''"` when `leader_fills` says which fills the engine ignored.
fn acted_on(src: &mut dyn Source) -> Result<&'static str, ReportError> {
    Ok(if src.has_column("leader_fills", "ignored")? {
        " AND ignored = ''"
    } else {
        ""
    })
}

fn with_orders(src: &mut dyn Source, i: Instruction) -> Result<InstructionLineage, ReportError> {
    let orders = orders_where(src, "instruction_seq = $1", &[Param::Int(i.seq)])?;
    Ok(InstructionLineage {
        instruction: i,
        orders: with_fills(src, orders)?,
    })
}

impl Lineage {
    fn new(client_order_id: Option<String>, leader_fill: Option<LeaderFill>) -> Lineage {
        Lineage {
            client_order_id,
            leader_fill,
            resync: None,
            instructions: Vec::new(),
            resyncs: Vec::new(),
            next_leader_fill_seq: None,
            resyncs_truncated: false,
            orphan_orders: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// A tree for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(id) = &self.client_order_id {
            s.push_str(&format!("lineage of order {id}\n"));
        }
        match (&self.leader_fill, &self.resync) {
            (Some(f), _) => s.push_str(&format!("leader fill {}\n", fill_text(f))),
            (None, Some(r)) => {
                s.push_str(&format!(
                    "made by the resync (cause {}), not by a leader fill\n",
                    r.cause
                ));
                match &r.catching_up_with {
                    Some(f) => s.push_str(&format!(
                        "   catching up with leader fill {}\n",
                        fill_text(f)
                    )),
                    None => s.push_str(
                        "   catching up with: no earlier leader fill of that leader and symbol\n",
                    ),
                }
                if !r.failed_before.is_empty() {
                    s.push_str("   earlier orders of the pair that failed since then:\n");
                    render_orders(&mut s, "   ", &r.failed_before);
                }
            }
            (None, None) => s.push_str("leader fill: not found\n"),
        }
        if let Some(f) = self.leader_fill.as_ref().filter(|f| !f.ignored.is_empty()) {
            s.push_str(&format!("   ignored by the engine: {}\n", f.ignored));
        }
        let resyncs = !self.resyncs.is_empty();
        render_instructions(
            &mut s,
            &self.instructions,
            self.orphan_orders.is_empty() && !resyncs,
        );
        if !self.orphan_orders.is_empty() {
            s.push_str(&format!(
                "{} (no instruction found)\n",
                if resyncs { "├─" } else { "└─" }
            ));
            render_orders(
                &mut s,
                if resyncs { "│  " } else { "   " },
                &self.orphan_orders,
            );
        }
        if resyncs {
            s.push_str(&format!(
                "└─ resync instructions for these pairs that followed{}{}:\n",
                self.next_leader_fill_seq
                    .map(|n| format!(", before leader fill #{n}"))
                    .unwrap_or_else(|| " (no later leader fill)".to_string()),
                if self.resyncs_truncated {
                    format!(" (the first {RESYNCS_MAX})")
                } else {
                    String::new()
                },
            ));
            let mut sub = String::new();
            render_instructions(&mut sub, &self.resyncs, true);
            for line in sub.lines() {
                s.push_str(&format!("   {line}\n"));
            }
        }
        if self.reasons.is_empty() {
            s.push_str("why: nothing skipped, reduced, deferred or rejected\n");
        } else {
            s.push_str("why:\n");
            for r in &self.reasons {
                s.push_str(&format!("  - {r}\n"));
            }
        }
        s
    }

    pub fn to_json(&self) -> Value {
        json!({
            "client_order_id": self.client_order_id,
            "leader_fill": self.leader_fill.as_ref().map(fill_json),
            "resync": self.resync.as_ref().map(|r| json!({
                "cause": r.cause,
                "catching_up_with": r.catching_up_with.as_ref().map(fill_json),
                "failed_before": r.failed_before.iter().map(order_json).collect::<Vec<_>>(),
            })),
            "instructions": self.instructions.iter().map(instruction_json).collect::<Vec<_>>(),
            "orphan_orders": self.orphan_orders.iter().map(order_json).collect::<Vec<_>>(),
            "resyncs": self.resyncs.iter().map(instruction_json).collect::<Vec<_>>(),
            "next_leader_fill_seq": self.next_leader_fill_seq,
            "resyncs_truncated": self.resyncs_truncated,
            "reasons": self.reasons,
        })
    }
}

fn fill_text(f: &LeaderFill) -> String {
    format!(
        "#{} {} event {}: {}{} {} {} @ {}{} at {} (received +{}ns)",
        f.seq,
        f.leader_id,
        f.event_id,
        if f.is_trade() {
            String::new()
        } else {
            format!("{} ", f.kind)
        },
        f.side,
        f.qty,
        f.symbol,
        f.price,
        f.position_after
            .map(|p| format!(", position after {p}"))
            .unwrap_or_default(),
        format_ts(f.ts()),
        f.recv_ts.saturating_sub(f.ts()).max(0),
    )
}

fn fill_json(f: &LeaderFill) -> Value {
    json!({
        "seq": f.seq, "leader_id": f.leader_id, "event_id": f.event_id,
        "symbol": f.symbol, "side": f.side, "qty": dec(f.qty), "price": dec(f.price),
        "position_after": opt_dec(f.position_after), "order_id": f.order_id,
        "order_qty": opt_dec(f.order_qty), "venue_ts": f.venue_ts, "recv_ts": f.recv_ts,
        "ignored": f.ignored, "kind": f.kind,
    })
}

fn instruction_json(il: &InstructionLineage) -> Value {
    let i = &il.instruction;
    json!({
        "seq": i.seq, "leader_fill_seq": i.leader_fill_seq, "event_id": i.event_id,
        "subscription_id": i.subscription_id, "follower_id": i.follower_id,
        "leader_id": i.leader_id, "symbol": i.symbol, "target": dec(i.target),
        "delta": dec(i.delta), "sent": dec(i.sent), "status": i.status,
        "reason": i.reason, "resync": i.resync, "config_revision": i.config_revision,
        "orders": il.orders.iter().map(order_json).collect::<Vec<_>>(),
    })
}

/// Instructions as tree branches; `ends` when the last one closes the tree.
fn render_instructions(s: &mut String, instructions: &[InstructionLineage], ends: bool) {
    let n = instructions.len();
    for (k, il) in instructions.iter().enumerate() {
        let last = k + 1 == n && ends;
        let i = &il.instruction;
        s.push_str(&format!(
            "{} instruction #{}{} subscription {} follower {}: target {} delta {} sent {}, {}{} (config rev {})\n",
            if last { "└─" } else { "├─" },
            i.seq,
            if i.is_resync() { format!(" (resync: {})", i.resync) } else { String::new() },
            i.subscription_id,
            i.follower_id,
            i.target,
            i.delta,
            i.sent,
            i.status,
            if i.reason.is_empty() { String::new() } else { format!(": {}", i.reason) },
            i.config_revision.as_deref().unwrap_or("?"),
        ));
        let pad = if last { "   " } else { "│  " };
        render_orders(s, pad, &il.orders);
    }
}

fn order_json(ol: &OrderLineage) -> Value {
    let o = &ol.order;
    json!({
        "client_order_id": o.client_order_id, "seq": o.seq, "instruction_seq": o.instruction_seq,
        "venue": o.venue, "symbol": o.symbol, "side": o.side, "qty": dec(o.qty),
        "limit_price": opt_dec(o.limit_price), "order_type": o.order_type,
        "reduce_only": o.reduce_only, "status": o.status, "filled_qty": dec(o.filled_qty),
        "reject_reason": o.reject_reason,
        "fills": ol.fills.iter().map(|f| json!({
            "venue_trade_id": f.venue_trade_id, "seq": f.seq, "side": f.side,
            "qty": dec(f.qty), "price": dec(f.price), "fee": dec(f.fee), "ts": f.ts,
        })).collect::<Vec<_>>(),
    })
}

fn render_orders(s: &mut String, pad: &str, orders: &[OrderLineage]) {
    if orders.is_empty() {
        s.push_str(&format!("{pad}└─ no order sent\n"));
    }
    for (k, ol) in orders.iter().enumerate() {
        let last = k + 1 == orders.len();
        let o = &ol.order;
        s.push_str(&format!(
            "{pad}{} order {} {}: {} {} {}{} {}{}, {} (filled {}){}\n",
            if last { "└─" } else { "├─" },
            o.client_order_id,
            o.venue,
            o.side,
            o.qty,
            o.symbol,
            o.limit_price
                .map(|p| format!(" limit {p}"))
                .unwrap_or_default(),
            o.order_type,
            if o.reduce_only { " reduce-only" } else { "" },
            o.status,
            o.filled_qty,
            o.reject_reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
        ));
        let pad2 = format!("{pad}{}", if last { "   " } else { "│  " });
        for (j, f) in ol.fills.iter().enumerate() {
            s.push_str(&format!(
                "{pad2}{} fill {}: {} @ {} fee {} at {}\n",
                if j + 1 == ol.fills.len() {
                    "└─"
                } else {
                    "├─"
                },
                f.venue_trade_id,
                f.qty,
                f.price,
                f.fee,
                format_ts(f.ts),
            ));
        }
    }
}

fn reasons(l: &Lineage) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = l.leader_fill.as_ref().filter(|f| !f.ignored.is_empty()) {
        out.push(format!(
            "leader fill #{} ignored by the engine: {}",
            f.seq, f.ignored
        ));
    }
    if let Some(r) = &l.resync {
        out.push(format!(
            "made by the resync ({}){}",
            r.cause,
            r.catching_up_with
                .as_ref()
                .map(|f| format!(", catching up with leader fill #{}", f.seq))
                .unwrap_or_default()
        ));
        explain_orders(&mut out, &r.failed_before);
    }
    for il in l.instructions.iter().chain(&l.resyncs) {
        explain_instruction(&mut out, il);
    }
    explain_orders(&mut out, &l.orphan_orders);
    out
}

fn explain_instruction(out: &mut Vec<String>, il: &InstructionLineage) {
    let i = &il.instruction;
    let who = format!(
        "instruction #{}{} (subscription {}, follower {})",
        i.seq,
        if i.is_resync() {
            format!(" (resync: {})", i.resync)
        } else {
            String::new()
        },
        i.subscription_id,
        i.follower_id
    );
    let reason = if i.reason.is_empty() {
        "no reason recorded"
    } else {
        &i.reason
    };
    match i.status.as_str() {
        "sent" if i.reason.is_empty() => {}
        "skipped" => out.push(format!(
            "{who} skipped: {reason} (delta {} not sent)",
            i.delta
        )),
        "reduced" => out.push(format!(
            "{who} reduced: {reason} (delta {}, sent {})",
            i.delta, i.sent
        )),
        "deferred" => out.push(format!(
            "{who} deferred: {reason} (delta {} not sent yet; the resync sends it)",
            i.delta
        )),
        // A status this build does not know is still said, never dropped.
        other => out.push(format!(
            "{who} {other}: {reason} (delta {}, sent {})",
            i.delta, i.sent
        )),
    }
    explain_orders(out, &il.orders);
}

fn explain_orders(out: &mut Vec<String>, orders: &[OrderLineage]) {
    for ol in orders {
        let o = &ol.order;
        let filled: Decimal = ol.fills.iter().map(|f| f.qty).sum();
        if o.status == "rejected" || o.reject_reason.is_some() {
            out.push(format!(
                "order {} {}: {}",
                o.client_order_id,
                o.status,
                o.reject_reason.as_deref().unwrap_or("no reason recorded")
            ));
        } else if !o.is_working() && filled < o.qty {
            out.push(format!(
                "order {} {} with {} of {} unfilled",
                o.client_order_id,
                o.status,
                o.qty - filled,
                o.qty
            ));
        }
        if filled != o.filled_qty {
            out.push(format!(
                "order {}: fills add up to {} but the order says {} filled",
                o.client_order_id, filled, o.filled_qty
            ));
        }
    }
}

fn leader_fill_of(
    src: &mut dyn Source,
    i: &Instruction,
) -> Result<Option<LeaderFill>, ReportError> {
    if !src.has_table("leader_fills")? {
        return Ok(None);
    }
    let found = match i.leader_fill_seq {
        Some(seq) => leader_fills_where(src, "seq = $1", "seq", &[Param::Int(seq)])?,
        None => leader_fills_where(
            src,
            "event_id = $1 AND leader_id = $2",
            "seq",
            &[Param::Text(&i.event_id), Param::Text(&i.leader_id)],
        )?,
    };
    Ok(found.into_iter().next())
}

fn with_fills(
    src: &mut dyn Source,
    orders: Vec<FollowerOrder>,
) -> Result<Vec<OrderLineage>, ReportError> {
    let has_fills = src.has_table("follower_fills")?;
    orders
        .into_iter()
        .map(|order| {
            let fills = if has_fills {
                let sql = query::select_where(
                    "follower_fills",
                    FOLLOWER_FILLS.names,
                    "client_order_id = $1",
                    "seq",
                );
                let mut v = Vec::new();
                src.for_each_row(&sql, &[Param::Text(&order.client_order_id)], &mut |c| {
                    v.push(query::follower_fill(&Row::new(
                        "follower_fills",
                        FOLLOWER_FILLS.names,
                        c,
                    ))?);
                    Ok(())
                })?;
                v
            } else {
                Vec::new()
            };
            Ok(OrderLineage { order, fills })
        })
        .collect()
}

fn orders_where(
    src: &mut dyn Source,
    w: &str,
    p: &[Param<'_>],
) -> Result<Vec<FollowerOrder>, ReportError> {
    orders_where_ordered(src, w, "seq", p)
}

fn orders_where_ordered(
    src: &mut dyn Source,
    w: &str,
    order: &str,
    p: &[Param<'_>],
) -> Result<Vec<FollowerOrder>, ReportError> {
    let sql = query::select_where("follower_orders", FOLLOWER_ORDERS.names, w, order);
    let mut v = Vec::new();
    src.for_each_row(&sql, p, &mut |c| {
        v.push(query::order(&Row::new(
            "follower_orders",
            FOLLOWER_ORDERS.names,
            c,
        ))?);
        Ok(())
    })?;
    Ok(v)
}

fn instructions_where(
    src: &mut dyn Source,
    w: &str,
    order: &str,
    p: &[Param<'_>],
) -> Result<Vec<Instruction>, ReportError> {
    if !src.has_table("copy_instructions")? {
        return Ok(Vec::new());
    }
    let cols = query::columns(src, "copy_instructions", COPY_INSTRUCTIONS.names)?;
    let sql = query::select_where("copy_instructions", &cols, w, order);
    let mut v = Vec::new();
    src.for_each_row(&sql, p, &mut |c| {
        v.push(query::instruction(&Row::new(
            "copy_instructions",
            COPY_INSTRUCTIONS.names,
            c,
        ))?);
        Ok(())
    })?;
    Ok(v)
}

fn leader_fills_where(
    src: &mut dyn Source,
    w: &str,
    order: &str,
    p: &[Param<'_>],
) -> Result<Vec<LeaderFill>, ReportError> {
    let cols = query::columns(src, "leader_fills", LEADER_FILLS.names)?;
    let sql = query::select_where("leader_fills", &cols, w, order);
    let mut v = Vec::new();
    src.for_each_row(&sql, p, &mut |c| {
        v.push(query::leader_fill(&Row::new(
            "leader_fills",
            LEADER_FILLS.names,
            c,
        ))?);
        Ok(())
    })?;
    Ok(v)
}
