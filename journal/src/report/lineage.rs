//! Lineage: the chain leader fill → copy instruction(s) → follower order(s) →
//! venue fill(s), with the reason for every skip, reduction and reject on it.
//!
//! Built with a handful of indexed lookups (by client order id and by sequence),
//! not by loading the tables, so it answers quickly on a large database.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::json::{dec, opt_dec};
use super::query::{
    self, FollowerFill, FollowerOrder, Instruction, LeaderFill, Param, Row, Source, FILL_SQL_COLS,
    INSTRUCTION_SQL_COLS, LEADER_FILL_SQL_COLS, ORDER_SQL_COLS,
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

/// A lineage, from the leader fill down.
#[derive(Clone, Debug, PartialEq)]
pub struct Lineage {
    /// The order the lineage was asked for; `None` when asked for a leader fill.
    pub client_order_id: Option<String>,
    /// `None` when the instruction names no leader fill that is in the table.
    pub leader_fill: Option<LeaderFill>,
    pub instructions: Vec<InstructionLineage>,
    /// Orders found without an instruction (their `instruction_seq` is unknown).
    pub orphan_orders: Vec<OrderLineage>,
    /// One line per skip, reduction, reject or unfilled remainder, in order.
    pub reasons: Vec<String>,
}

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
        Some(seq) => instructions_where(src, "seq = $1", &[Param::Int(seq)])?
            .into_iter()
            .next(),
        None => None,
    };
    let mut lineage = Lineage {
        client_order_id: Some(client_order_id.to_string()),
        leader_fill: None,
        instructions: Vec::new(),
        orphan_orders: Vec::new(),
        reasons: Vec::new(),
    };
    match instruction {
        Some(i) => {
            lineage.leader_fill = leader_fill_of(src, &i)?;
            let orders = orders_where(src, "instruction_seq = $1", &[Param::Int(i.seq)])?;
            let orders = with_fills(src, orders)?;
            lineage.instructions.push(InstructionLineage {
                instruction: i,
                orders,
            });
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
    let Some(fill) = leader_fills_where(src, "seq = $1", &[Param::Int(seq)])?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let mut lineage = Lineage {
        client_order_id: None,
        leader_fill: Some(fill),
        instructions: Vec::new(),
        orphan_orders: Vec::new(),
        reasons: Vec::new(),
    };
    for i in instructions_where(src, "leader_fill_seq = $1", &[Param::Int(seq)])? {
        let orders = orders_where(src, "instruction_seq = $1", &[Param::Int(i.seq)])?;
        let orders = with_fills(src, orders)?;
        lineage.instructions.push(InstructionLineage {
            instruction: i,
            orders,
        });
    }
    lineage.reasons = reasons(&lineage);
    Ok(Some(lineage))
}

impl Lineage {
    /// A tree for the terminal.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(id) = &self.client_order_id {
            s.push_str(&format!("lineage of order {id}\n"));
        }
        match &self.leader_fill {
            Some(f) => s.push_str(&format!(
                "leader fill #{} {} event {}: {} {} {} @ {}{} at {} (received +{}ns)\n",
                f.seq,
                f.leader_id,
                f.event_id,
                f.side,
                f.qty,
                f.symbol,
                f.price,
                f.position_after
                    .map(|p| format!(", position after {p}"))
                    .unwrap_or_default(),
                format_ts(f.ts()),
                f.recv_ts.saturating_sub(f.ts()).max(0),
            )),
            None => s.push_str("leader fill: not found\n"),
        }
        if let Some(f) = self.leader_fill.as_ref().filter(|f| !f.ignored.is_empty()) {
            s.push_str(&format!("   ignored by the engine: {}\n", f.ignored));
        }
        let n = self.instructions.len();
        for (k, il) in self.instructions.iter().enumerate() {
            let last = k + 1 == n && self.orphan_orders.is_empty();
            let i = &il.instruction;
            s.push_str(&format!(
                "{} instruction #{} subscription {} follower {}: target {} delta {} sent {}, {}{} (config rev {})\n",
                if last { "└─" } else { "├─" },
                i.seq,
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
            render_orders(&mut s, pad, &il.orders);
        }
        if !self.orphan_orders.is_empty() {
            s.push_str("└─ (no instruction found)\n");
            render_orders(&mut s, "   ", &self.orphan_orders);
        }
        if self.reasons.is_empty() {
            s.push_str("why: nothing skipped, reduced or rejected\n");
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
            "leader_fill": self.leader_fill.as_ref().map(|f| json!({
                "seq": f.seq, "leader_id": f.leader_id, "event_id": f.event_id,
                "symbol": f.symbol, "side": f.side, "qty": dec(f.qty), "price": dec(f.price),
                "position_after": opt_dec(f.position_after), "order_id": f.order_id,
                "order_qty": opt_dec(f.order_qty), "venue_ts": f.venue_ts, "recv_ts": f.recv_ts,
                "ignored": f.ignored,
            })),
            "instructions": self.instructions.iter().map(|il| {
                let i = &il.instruction;
                json!({
                    "seq": i.seq, "leader_fill_seq": i.leader_fill_seq, "event_id": i.event_id,
                    "subscription_id": i.subscription_id, "follower_id": i.follower_id,
                    "leader_id": i.leader_id, "symbol": i.symbol, "target": dec(i.target),
                    "delta": dec(i.delta), "sent": dec(i.sent), "status": i.status,
                    "reason": i.reason, "config_revision": i.config_revision,
                    "orders": il.orders.iter().map(order_json).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
            "orphan_orders": self.orphan_orders.iter().map(order_json).collect::<Vec<_>>(),
            "reasons": self.reasons,
        })
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
    for il in &l.instructions {
        let i = &il.instruction;
        let who = format!(
            "instruction #{} (subscription {}, follower {})",
            i.seq, i.subscription_id, i.follower_id
        );
        let reason = if i.reason.is_empty() {
            "no reason recorded"
        } else {
            &i.reason
        };
        match i.status.as_str() {
            "skipped" => out.push(format!(
                "{who} skipped: {reason} (delta {} not sent)",
                i.delta
            )),
            "reduced" => out.push(format!(
                "{who} reduced: {reason} (delta {}, sent {})",
                i.delta, i.sent
            )),
            _ => {}
        }
        explain_orders(&mut out, &il.orders);
    }
    explain_orders(&mut out, &l.orphan_orders);
    out
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
        Some(seq) => leader_fills_where(src, "seq = $1", &[Param::Int(seq)])?,
        None => leader_fills_where(
            src,
            "event_id = $1 AND leader_id = $2",
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
                    FILL_SQL_COLS,
                    "client_order_id = $1",
                    "seq",
                );
                let mut v = Vec::new();
                src.for_each_row(&sql, &[Param::Text(&order.client_order_id)], &mut |c| {
                    v.push(query::follower_fill(&Row::new(
                        "follower_fills",
                        FILL_SQL_COLS,
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
    let sql = query::select_where("follower_orders", ORDER_SQL_COLS, w, "seq");
    let mut v = Vec::new();
    src.for_each_row(&sql, p, &mut |c| {
        v.push(query::order(&Row::new(
            "follower_orders",
            ORDER_SQL_COLS,
            c,
        ))?);
        Ok(())
    })?;
    Ok(v)
}

fn instructions_where(
    src: &mut dyn Source,
    w: &str,
    p: &[Param<'_>],
) -> Result<Vec<Instruction>, ReportError> {
    if !src.has_table("copy_instructions")? {
        return Ok(Vec::new());
    }
    let sql = query::select_where("copy_instructions", INSTRUCTION_SQL_COLS, w, "seq");
    let mut v = Vec::new();
    src.for_each_row(&sql, p, &mut |c| {
        v.push(query::instruction(&Row::new(
            "copy_instructions",
            INSTRUCTION_SQL_COLS,
            c,
        ))?);
        Ok(())
    })?;
    Ok(v)
}

fn leader_fills_where(
    src: &mut dyn Source,
    w: &str,
    p: &[Param<'_>],
) -> Result<Vec<LeaderFill>, ReportError> {
    let cols = query::columns(src, "leader_fills", LEADER_FILL_SQL_COLS)?;
    let sql = query::select_where("leader_fills", &cols, w, "seq");
    let mut v = Vec::new();
    src.for_each_row(&sql, p, &mut |c| {
        v.push(query::leader_fill(&Row::new(
            "leader_fills",
            LEADER_FILL_SQL_COLS,
            c,
        ))?);
        Ok(())
    })?;
    Ok(v)
}
