//! The resolved model: symbols, venues, leaders, followers and subscriptions with
//! dense indices and integer units, built once from a validated `Config`.
//!
//! Owns name ↔ index resolution and every decimal → integer conversion of config
//! values. The core stage reads this; it never parses or converts decimals itself.

use crate::config::{
    self, Config, FollowerConfig, LeaderConfig, ModeConfig, OrderTypeConfig, Status,
    SubscriptionConfig, SymbolConfig,
};
use crate::units::{
    leverage_times_money, ratio_of_money, DecParts, Exact, Lots, Money, RatioNum, Ticks, UnitError,
    Q32,
};
use rust_decimal::Decimal;
use std::collections::HashMap;
use thiserror::Error;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SymbolIdx(pub u16);
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VenueIdx(pub u16);
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderIdx(pub u32);
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FollowerIdx(pub u32);
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubIdx(pub u32);

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Side {
    #[default]
    Buy,
    Sell,
}

impl Side {
    /// +1 for buy, -1 for sell.
    #[inline(always)]
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    #[inline(always)]
    pub fn from_sign(sign: i64) -> Side {
        if sign >= 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// Its stable name (`codes::Coded::name`).
    pub fn as_str(self) -> &'static str {
        crate::codes::Coded::name(self)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Proportional,
    FixedRatio,
    FixedAmount,
    FixedLeverage,
}

impl From<ModeConfig> for Mode {
    fn from(m: ModeConfig) -> Mode {
        match m {
            ModeConfig::Proportional => Mode::Proportional,
            ModeConfig::FixedRatio => Mode::FixedRatio,
            ModeConfig::FixedAmount => Mode::FixedAmount,
            ModeConfig::FixedLeverage => Mode::FixedLeverage,
        }
    }
}

impl Mode {
    /// Fixed-notional modes size each leader order that adds exposure by an amount.
    pub fn is_fixed_notional(self) -> bool {
        matches!(self, Mode::FixedAmount | Mode::FixedLeverage)
    }
}

#[derive(Clone, Debug)]
pub struct SymbolSpec {
    pub name: String,
    pub lot_size: Decimal,
    pub tick_size: Decimal,
    pub min_qty: Lots,
    pub min_notional: Money,
    pub venue: VenueIdx,
    /// Money per (one lot × one tick): converts `lots × ticks` products to money.
    pub money_per_lot_tick: i64,
    /// Removed by a reload: kept in place (its index names it in the journal's
    /// orders and positions), never found by new input (`Universe::symbol_in_force`);
    /// its copied positions are closed or kept as `engine.on_remove` says.
    pub removed: bool,
}

impl SymbolSpec {
    /// Notional of `qty` at `price` in money units, saturating.
    #[inline(always)]
    pub fn notional(&self, qty: Lots, price: Ticks) -> Money {
        crate::units::notional(qty, price, self.money_per_lot_tick)
    }

    pub fn qty_decimal(&self, qty: Lots) -> Decimal {
        qty.to_decimal(self.lot_size)
    }

    pub fn price_decimal(&self, price: Ticks) -> Decimal {
        price.to_decimal(self.tick_size)
    }
}

#[derive(Clone, Debug)]
pub struct VenueSpec {
    pub name: String,
    pub config: config::VenueConfig,
}

#[derive(Clone, Debug)]
pub struct LeaderSpec {
    pub id: String,
    pub equity: Money,
    pub paused: bool,
    /// Symbols outside the declared profile (`leader_profile`); empty = all allowed.
    pub profile_symbols: Option<Vec<SymbolIdx>>,
    pub profile_max_position: Option<Money>,
    /// Removed by a reload: kept in place so that indices do not move, never
    /// found by name (`Universe::leader`).
    pub removed: bool,
}

#[derive(Clone, Debug)]
pub struct FollowerSpec {
    pub id: String,
    pub equity: Money,
    pub status: Status,
    /// Max gross exposure in money (`max_leverage × equity`), `Money(i64::MAX)` if unlimited.
    pub max_gross: Money,
    /// What `max_gross` is made of, for an equity that changes (`FeedEvent::FollowerEquity`).
    pub max_leverage: Option<Decimal>,
    /// `max_leverage`'s mantissa and scale, for the integer product (`max_gross_at`).
    pub max_leverage_parts: Option<DecParts>,
    pub max_open_positions: u32,
    pub daily_loss_limit: Money,
    /// `allowed[symbol]`.
    pub allowed: Vec<bool>,
    /// Removed by a reload (as `LeaderSpec::removed`).
    pub removed: bool,
}

#[derive(Clone, Debug)]
pub struct SubscriptionSpec {
    pub id: String,
    pub follower: FollowerIdx,
    pub leader: LeaderIdx,
    pub allocation: Money,
    pub mode: Mode,
    /// Ratio modes: follower lots per leader lot at episode open.
    pub base_ratio: Q32,
    /// The multiplier of `proportional` (1 in other modes).
    pub multiplier: Decimal,
    /// `proportional`: `multiplier × allocation`, which a leader's equity divides
    /// into the ratio (`ratio_at`); `None` in other modes and for a product past
    /// `Decimal::MAX` (whose ratio could not follow the equity either).
    pub ratio_num: Option<RatioNumerator>,
    /// Fixed-notional modes: the amount per leader order.
    pub amount: Money,
    pub market_orders: bool,
    pub slippage_bps: u32,
    pub max_order_notional: Money,
    pub max_position_notional: Money,
    /// Stop when P&L ≤ −this; `Money(i64::MAX)` if unset.
    pub stop_loss: Money,
    /// Leader drawdown in parts per million of peak equity; `u32::MAX` if unset.
    pub leader_drawdown_ppm: u32,
    pub copy_open_positions: bool,
    /// `Stopped` for a removed subscription, whatever its config said.
    pub status: Status,
    /// Removed by a reload (as `LeaderSpec::removed`): stopped, its positions
    /// closed or kept as `engine.on_remove` says.
    pub removed: bool,
}

/// A proportional subscription's `multiplier × allocation` (`checked_mul` of
/// `multiplier` and `allocation.to_decimal()`, as the core computed it per event
/// before), with its integer layout.
#[derive(Copy, Clone, Debug)]
pub struct RatioNumerator {
    pub value: Decimal,
    /// `None` for a negative value, which no validated config has.
    pub int: Option<RatioNum>,
}

impl RatioNumerator {
    /// `None` when the product is past `Decimal::MAX`.
    pub fn of(multiplier: Decimal, allocation: Money) -> Option<RatioNumerator> {
        let value = multiplier.checked_mul(allocation.to_decimal())?;
        Some(RatioNumerator {
            value,
            int: DecParts::of(value).map(RatioNum::of),
        })
    }
}

impl FollowerSpec {
    /// `max_gross_of(self.max_leverage, equity.to_decimal())`, the same for every
    /// input, in integers (`units::leverage_times_money`) but for leverages of
    /// twenty-odd digits: what the core runs on a follower's equity.
    #[inline]
    pub fn max_gross_at(&self, equity: Money) -> Option<Money> {
        let Some(lev) = self.max_leverage else {
            return Some(Money::MAX);
        };
        match self
            .max_leverage_parts
            .map(|p| leverage_times_money(p, equity))
        {
            Some(Exact::Proven(v)) => v,
            _ => max_gross_by_decimal(lev, equity),
        }
    }
}

impl SubscriptionSpec {
    /// The proportional ratio at `leader_equity`:
    /// `proportional_ratio(multiplier × allocation, 1, leader_equity.to_decimal())`,
    /// the same for every input, in integers (`units::ratio_of_money`) but for
    /// about one ratio in 2^43 and exact ratios of 29 to 32 binary places; what
    /// the core runs for each proportional subscription of a leader whose equity
    /// moved. `None` (the ratio stays) where `proportional_ratio` gives `None`
    /// and in other modes.
    #[inline]
    pub fn ratio_at(&self, leader_equity: Money) -> Option<Q32> {
        let num = self.ratio_num.as_ref()?;
        match num.int.map(|n| ratio_of_money(n, leader_equity)) {
            Some(Exact::Proven(r)) => r,
            _ => ratio_by_decimal(num.value, leader_equity),
        }
    }
}

/// `max_gross_at` where the integers prove nothing: rare enough (see there) to
/// stay off the core's hot code.
#[cold]
#[inline(never)]
fn max_gross_by_decimal(max_leverage: Decimal, equity: Money) -> Option<Money> {
    max_gross_of(Some(max_leverage), equity.to_decimal())
}

/// `ratio_at` where the integers prove nothing (as `max_gross_by_decimal`).
#[cold]
#[inline(never)]
fn ratio_by_decimal(num: Decimal, leader_equity: Money) -> Option<Q32> {
    proportional_ratio(num, Decimal::ONE, leader_equity.to_decimal())
}

/// Everything the engine knows about the world, indexed densely.
#[derive(Clone, Debug)]
pub struct Universe {
    pub symbols: Vec<SymbolSpec>,
    pub venues: Vec<VenueSpec>,
    pub leaders: Vec<LeaderSpec>,
    pub followers: Vec<FollowerSpec>,
    pub subs: Vec<SubscriptionSpec>,
    /// A hash of the config content: the config revision decisions carry.
    pub revision: u64,
    symbol_by_name: HashMap<String, SymbolIdx>,
    leader_by_name: HashMap<String, LeaderIdx>,
    follower_by_name: HashMap<String, FollowerIdx>,
    venue_by_name: HashMap<String, VenueIdx>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("{what} `{name}`: {err}")]
    Unit {
        what: &'static str,
        name: String,
        err: UnitError,
    },
    #[error("{what} `{name}` refers to unknown {kind} `{target}`")]
    Unknown {
        what: &'static str,
        name: String,
        kind: &'static str,
        target: String,
    },
    #[error("duplicate {what} `{name}`")]
    Duplicate { what: &'static str, name: String },
    #[error("{what} `{name}`: {msg}")]
    Invalid {
        what: &'static str,
        name: String,
        msg: String,
    },
}

fn money(what: &'static str, name: &str, v: Decimal) -> Result<Money, ModelError> {
    Money::from_decimal(v).map_err(|err| ModelError::Unit {
        what,
        name: name.to_string(),
        err,
    })
}

fn opt_money_or_max(
    what: &'static str,
    name: &str,
    v: Option<Decimal>,
) -> Result<Money, ModelError> {
    v.map(|d| money(what, name, d))
        .transpose()
        .map(|m| m.unwrap_or(Money(i64::MAX)))
}

fn pct_to_ppm(v: Decimal) -> u32 {
    use rust_decimal::prelude::ToPrimitive;
    (v * Decimal::from(10_000))
        .trunc()
        .to_u32()
        .unwrap_or(u32::MAX)
}

/// Each name's index, in order; a name given twice is an error.
fn index_names<'a, I>(
    what: &'static str,
    names: impl Iterator<Item = &'a String>,
    idx: impl Fn(usize) -> I,
) -> Result<HashMap<String, I>, ModelError> {
    let mut by_name = HashMap::new();
    for (i, name) in names.enumerate() {
        if by_name.insert(name.clone(), idx(i)).is_some() {
            return Err(ModelError::Duplicate {
                what,
                name: name.clone(),
            });
        }
    }
    Ok(by_name)
}

/// A subscription's id: its own, or `follower:leader`.
pub fn subscription_id(s: &SubscriptionConfig) -> String {
    s.id.clone()
        .unwrap_or_else(|| format!("{}:{}", s.follower, s.leader))
}

/// Symbol names resolved to indices, for `what` called `name`.
fn symbol_list(
    symbol_by_name: &HashMap<String, SymbolIdx>,
    what: &'static str,
    name: &str,
    list: &[String],
) -> Result<Vec<SymbolIdx>, ModelError> {
    list.iter()
        .map(|n| {
            symbol_by_name
                .get(n)
                .copied()
                .ok_or_else(|| ModelError::Unknown {
                    what,
                    name: name.to_string(),
                    kind: "symbol",
                    target: n.clone(),
                })
        })
        .collect()
}

fn symbol_spec(
    s: &SymbolConfig,
    venue_by_name: &HashMap<String, VenueIdx>,
) -> Result<SymbolSpec, ModelError> {
    let venue = *venue_by_name
        .get(&s.venue)
        .ok_or_else(|| ModelError::Unknown {
            what: "symbol",
            name: s.name.clone(),
            kind: "venue",
            target: s.venue.clone(),
        })?;
    let unit = |err| ModelError::Unit {
        what: "symbol",
        name: s.name.clone(),
        err,
    };
    let invalid = |msg: &str| ModelError::Invalid {
        what: "symbol",
        name: s.name.clone(),
        msg: msg.into(),
    };
    let min_qty = match s.min_qty {
        Some(q) => Lots::from_decimal(q, s.lot_size).map_err(unit)?,
        None => Lots(1),
    };
    let lt = s
        .lot_size
        .checked_mul(s.tick_size)
        .ok_or_else(|| invalid("lot_size × tick_size overflows"))?;
    let money_per_lot_tick = Money::from_decimal(lt).map_err(unit)?.0;
    if money_per_lot_tick <= 0 {
        return Err(invalid(
            "lot_size × tick_size must be positive and at least 1e-8",
        ));
    }
    Ok(SymbolSpec {
        name: s.name.clone(),
        lot_size: s.lot_size,
        tick_size: s.tick_size,
        min_qty: Lots(min_qty.0.max(1)),
        min_notional: money("symbol", &s.name, s.min_notional.unwrap_or_default())?,
        venue,
        money_per_lot_tick,
        removed: s.removed,
    })
}

fn leader_spec(
    l: &LeaderConfig,
    symbol_by_name: &HashMap<String, SymbolIdx>,
) -> Result<LeaderSpec, ModelError> {
    let profile = l.profile.clone().unwrap_or_default();
    Ok(LeaderSpec {
        id: l.id.clone(),
        equity: money("leader", &l.id, l.equity)?,
        paused: l.paused,
        profile_symbols: profile
            .symbols
            .as_deref()
            .map(|s| symbol_list(symbol_by_name, "leader", &l.id, s))
            .transpose()?,
        profile_max_position: profile
            .max_position_notional
            .map(|d| money("leader", &l.id, d))
            .transpose()?,
        removed: l.removed,
    })
}

/// `max_leverage × equity` in money, rounded as the config's is (`Money::MAX`
/// without a leverage); `None` when it cannot be represented.
pub fn max_gross_of(max_leverage: Option<Decimal>, equity: Decimal) -> Option<Money> {
    match max_leverage {
        None => Some(Money::MAX),
        Some(lev) => lev
            .checked_mul(equity)
            .and_then(|v| Money::from_decimal(v.round_dp(8)).ok()),
    }
}

fn follower_spec(
    f: &FollowerConfig,
    symbol_by_name: &HashMap<String, SymbolIdx>,
    n_symbols: usize,
) -> Result<FollowerSpec, ModelError> {
    let equity = money("follower", &f.id, f.equity)?;
    let max_gross = match f.max_leverage {
        Some(lev) => {
            let v = lev
                .checked_mul(f.equity)
                .ok_or_else(|| ModelError::Invalid {
                    what: "follower",
                    name: f.id.clone(),
                    msg: "max_leverage × equity overflows".into(),
                })?;
            money("follower", &f.id, v.round_dp(8))?
        }
        None => Money::MAX,
    };
    let allowed = match &f.symbols {
        None => vec![true; n_symbols],
        Some(list) => {
            let mut a = vec![false; n_symbols];
            for s in symbol_list(symbol_by_name, "follower", &f.id, list)? {
                a[s.0 as usize] = true;
            }
            a
        }
    };
    Ok(FollowerSpec {
        id: f.id.clone(),
        equity,
        status: f.status,
        max_gross,
        max_leverage: f.max_leverage,
        max_leverage_parts: f.max_leverage.and_then(DecParts::of),
        max_open_positions: f.max_open_positions.unwrap_or(u32::MAX),
        daily_loss_limit: opt_money_or_max("follower", &f.id, f.daily_loss_limit)?,
        allowed,
        removed: f.removed,
    })
}

/// Every subscription's spec, its follower and leader resolved.
fn subscriptions_of(
    cfg: &Config,
    ids: Vec<String>,
    follower_by_name: &HashMap<String, FollowerIdx>,
    leader_by_name: &HashMap<String, LeaderIdx>,
) -> Result<Vec<SubscriptionSpec>, ModelError> {
    cfg.subscriptions
        .iter()
        .zip(ids)
        .map(|(s, id)| {
            let unknown = |kind: &'static str, target: &str| ModelError::Unknown {
                what: "subscription",
                name: id.clone(),
                kind,
                target: target.to_string(),
            };
            let follower = *follower_by_name
                .get(&s.follower)
                .ok_or_else(|| unknown("follower", &s.follower))?;
            let leader = *leader_by_name
                .get(&s.leader)
                .ok_or_else(|| unknown("leader", &s.leader))?;
            let leader_equity = cfg.leaders[leader.0 as usize].equity;
            subscription_spec(s, id, follower, leader, leader_equity)
        })
        .collect()
}

fn subscription_spec(
    s: &SubscriptionConfig,
    id: String,
    follower: FollowerIdx,
    leader: LeaderIdx,
    leader_equity: Decimal,
) -> Result<SubscriptionSpec, ModelError> {
    let allocation = money("subscription", &id, s.allocation)?;
    let (mode, multiplier, base_ratio, amount) = mode_of(s, &id, leader_equity)?;
    // A share of the allocation, in money.
    let share = |pct: Decimal| {
        money(
            "subscription",
            &id,
            (pct / Decimal::from(100) * s.allocation).round_dp(8),
        )
    };
    let mut max_pos = opt_money_or_max("subscription", &id, s.max_position_notional)?;
    if let Some(pct) = s.max_position_pct {
        max_pos = max_pos.min(share(pct)?);
    }
    let stop_loss = match s.total_stop_loss_pct {
        Some(pct) => share(pct)?,
        None => Money::MAX,
    };
    Ok(SubscriptionSpec {
        follower,
        leader,
        allocation,
        mode,
        base_ratio,
        multiplier,
        ratio_num: if mode == Mode::Proportional {
            RatioNumerator::of(multiplier, allocation)
        } else {
            None
        },
        amount,
        market_orders: s.order_type == OrderTypeConfig::Market,
        slippage_bps: s.slippage_bps,
        max_order_notional: opt_money_or_max("subscription", &id, s.max_order_notional)?,
        max_position_notional: max_pos,
        stop_loss,
        leader_drawdown_ppm: s.leader_drawdown_pct.map(pct_to_ppm).unwrap_or(u32::MAX),
        copy_open_positions: s.copy_open_positions,
        status: if s.removed { Status::Stopped } else { s.status },
        removed: s.removed,
        id,
    })
}

/// A subscription's mode with its multiplier, episode ratio (ratio modes) and
/// amount (fixed-notional modes).
fn mode_of(
    s: &SubscriptionConfig,
    id: &str,
    leader_equity: Decimal,
) -> Result<(Mode, Decimal, Q32, Money), ModelError> {
    let invalid = |msg: &str| ModelError::Invalid {
        what: "subscription",
        name: id.to_string(),
        msg: msg.into(),
    };
    Ok(match s.mode {
        ModeConfig::Proportional => {
            let m = s.multiplier.unwrap_or_else(config::defaults::multiplier);
            let r = proportional_ratio(m, s.allocation, leader_equity)
                .ok_or_else(|| invalid("proportional ratio out of range (leader equity zero?)"))?;
            (Mode::Proportional, m, r, Money::ZERO)
        }
        ModeConfig::FixedRatio => {
            let k = s
                .ratio
                .ok_or_else(|| invalid("fixed_ratio needs `ratio`"))?;
            let r = Q32::from_decimal(k).ok_or_else(|| invalid("ratio out of range"))?;
            (Mode::FixedRatio, Decimal::ONE, r, Money::ZERO)
        }
        ModeConfig::FixedAmount => {
            let a = s
                .amount
                .ok_or_else(|| invalid("fixed_amount needs `amount`"))?;
            (
                Mode::FixedAmount,
                Decimal::ONE,
                Q32(0),
                money("subscription", id, a)?,
            )
        }
        ModeConfig::FixedLeverage => {
            let lev = s
                .leverage
                .ok_or_else(|| invalid("fixed_leverage needs `leverage`"))?;
            let a = lev
                .checked_mul(s.allocation)
                .ok_or_else(|| invalid("leverage × allocation overflows"))?
                .round_dp(8);
            (
                Mode::FixedLeverage,
                Decimal::ONE,
                Q32(0),
                money("subscription", id, a)?,
            )
        }
    })
}

impl Universe {
    /// Resolve a validated config. `config::load` already reported file/line errors;
    /// this catches what only the resolved model can see (units that do not divide).
    pub fn from_config(cfg: &Config) -> Result<Universe, ModelError> {
        if cfg.venues.len() > u16::MAX as usize || cfg.symbols.len() > u16::MAX as usize {
            return Err(ModelError::Invalid {
                what: "config",
                name: String::new(),
                msg: format!("at most {} venues and {} symbols", u16::MAX, u16::MAX),
            });
        }
        if cfg.subscriptions.len() > crate::ids::MAX_SUBSCRIPTIONS {
            return Err(ModelError::Invalid {
                what: "config",
                name: "subscriptions".into(),
                msg: format!(
                    "{} subscriptions; one engine holds at most {}",
                    cfg.subscriptions.len(),
                    crate::ids::MAX_SUBSCRIPTIONS
                ),
            });
        }
        let venue_by_name = index_names("venue", cfg.venues.iter().map(|v| &v.name), |i| {
            VenueIdx(i as u16)
        })?;
        let venues = cfg
            .venues
            .iter()
            .map(|v| VenueSpec {
                name: v.name.clone(),
                config: v.clone(),
            })
            .collect();
        let symbol_by_name = index_names("symbol", cfg.symbols.iter().map(|s| &s.name), |i| {
            SymbolIdx(i as u16)
        })?;
        let symbols: Vec<SymbolSpec> = cfg
            .symbols
            .iter()
            .map(|s| symbol_spec(s, &venue_by_name))
            .collect::<Result<_, _>>()?;
        let leader_by_name = index_names("leader", cfg.leaders.iter().map(|l| &l.id), |i| {
            LeaderIdx(i as u32)
        })?;
        let leaders = cfg
            .leaders
            .iter()
            .map(|l| leader_spec(l, &symbol_by_name))
            .collect::<Result<_, _>>()?;
        let follower_by_name = index_names("follower", cfg.followers.iter().map(|f| &f.id), |i| {
            FollowerIdx(i as u32)
        })?;
        let followers = cfg
            .followers
            .iter()
            .map(|f| follower_spec(f, &symbol_by_name, symbols.len()))
            .collect::<Result<_, _>>()?;
        let ids: Vec<String> = cfg.subscriptions.iter().map(subscription_id).collect();
        index_names("subscription", ids.iter(), |_| ())?;
        let subs = subscriptions_of(cfg, ids, &follower_by_name, &leader_by_name)?;
        Ok(Universe {
            symbols,
            venues,
            leaders,
            followers,
            subs,
            revision: config_revision(cfg),
            symbol_by_name,
            leader_by_name,
            follower_by_name,
            venue_by_name,
        })
    }

    /// A symbol by name, removed or not: for reading back what the journal and
    /// SQL hold (a removed symbol keeps its place, and positions and orders in it
    /// live on). New input resolves names with `symbol_in_force`.
    pub fn symbol(&self, name: &str) -> Option<SymbolIdx> {
        self.symbol_by_name.get(name).copied()
    }
    /// A symbol by name; `None` for one a reload removed (as `Universe::leader`):
    /// what sources and commands resolve, so that no new input names it.
    pub fn symbol_in_force(&self, name: &str) -> Option<SymbolIdx> {
        self.symbol(name)
            .filter(|s| !self.symbols[s.0 as usize].removed)
    }
    /// A leader by id; `None` for one a reload removed.
    pub fn leader(&self, name: &str) -> Option<LeaderIdx> {
        self.leader_by_name
            .get(name)
            .copied()
            .filter(|l| !self.leaders[l.0 as usize].removed)
    }
    /// A follower by id; `None` for one a reload removed.
    pub fn follower(&self, name: &str) -> Option<FollowerIdx> {
        self.follower_by_name
            .get(name)
            .copied()
            .filter(|f| !self.followers[f.0 as usize].removed)
    }
    /// A leader by id, removed or not: for reading back what the journal and
    /// SQL hold (a removed leader keeps its place), never for new input.
    pub fn leader_in_model(&self, name: &str) -> Option<LeaderIdx> {
        self.leader_by_name.get(name).copied()
    }
    /// A follower by id, removed or not (as `leader_in_model`).
    pub fn follower_in_model(&self, name: &str) -> Option<FollowerIdx> {
        self.follower_by_name.get(name).copied()
    }
    pub fn venue(&self, name: &str) -> Option<VenueIdx> {
        self.venue_by_name.get(name).copied()
    }
    pub fn sym(&self, s: SymbolIdx) -> &SymbolSpec {
        &self.symbols[s.0 as usize]
    }
}

/// `multiplier × allocation ÷ leader equity` as Q32.
pub fn proportional_ratio(
    multiplier: Decimal,
    allocation: Decimal,
    leader_equity: Decimal,
) -> Option<Q32> {
    if leader_equity <= Decimal::ZERO {
        return None;
    }
    Q32::from_decimal(
        multiplier
            .checked_mul(allocation)?
            .checked_div(leader_equity)?,
    )
}

/// The config revision: a stable 64-bit hash (FNV-1a) of the versioned, canonical
/// decision model (`Config::model_toml`), which is also what the journal stores, so
/// a model read back from the journal has the revision it was written with, and an
/// operational change (paths, CPUs, rings, addresses) keeps the revision.
pub fn config_revision(cfg: &Config) -> u64 {
    let text = cfg
        .model_toml()
        .unwrap_or_else(|_| format!("{:?}", cfg.model()));
    let version = crate::ids::fnv1a(crate::config::MODEL_VERSION.as_bytes());
    crate::ids::mix64(version ^ crate::ids::fnv1a(text.as_bytes()))
}
