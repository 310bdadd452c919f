//! The resolved model: symbols, venues, leaders, followers and subscriptions with
//! dense indices and integer units, built once from a validated `Config`.
//!
//! Owns name ↔ index resolution and every decimal → integer conversion of config
//! values. The core stage reads this; it never parses or converts decimals itself.

use crate::config::{self, Config, ModeConfig, OrderTypeConfig, Status};
use crate::units::{Lots, Money, Ticks, UnitError, Q32};
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
}

#[derive(Clone, Debug)]
pub struct FollowerSpec {
    pub id: String,
    pub equity: Money,
    pub status: Status,
    /// Max gross exposure in money (`max_leverage × equity`), `Money(i64::MAX)` if unlimited.
    pub max_gross: Money,
    pub max_open_positions: u32,
    pub daily_loss_limit: Money,
    /// `allowed[symbol]`.
    pub allowed: Vec<bool>,
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
    /// The multiplier of `proportional`, kept to recompute `base_ratio` on equity change.
    pub multiplier: Decimal,
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
    pub status: Status,
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
        let mut venue_by_name = HashMap::new();
        let mut venues = Vec::new();
        for v in &cfg.venues {
            let idx = VenueIdx(venues.len() as u16);
            if venue_by_name.insert(v.name.clone(), idx).is_some() {
                return Err(ModelError::Duplicate {
                    what: "venue",
                    name: v.name.clone(),
                });
            }
            venues.push(VenueSpec {
                name: v.name.clone(),
                config: v.clone(),
            });
        }

        let mut symbol_by_name = HashMap::new();
        let mut symbols = Vec::new();
        for s in &cfg.symbols {
            let idx = SymbolIdx(symbols.len() as u16);
            if symbol_by_name.insert(s.name.clone(), idx).is_some() {
                return Err(ModelError::Duplicate {
                    what: "symbol",
                    name: s.name.clone(),
                });
            }
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
            let min_qty = match s.min_qty {
                Some(q) => Lots::from_decimal(q, s.lot_size).map_err(unit)?,
                None => Lots(1),
            };
            let lt = s
                .lot_size
                .checked_mul(s.tick_size)
                .ok_or_else(|| ModelError::Invalid {
                    what: "symbol",
                    name: s.name.clone(),
                    msg: "lot_size × tick_size overflows".into(),
                })?;
            let money_per_lot_tick = Money::from_decimal(lt).map_err(unit)?.0;
            if money_per_lot_tick <= 0 {
                return Err(ModelError::Invalid {
                    what: "symbol",
                    name: s.name.clone(),
                    msg: "lot_size × tick_size must be positive and at least 1e-8".into(),
                });
            }
            symbols.push(SymbolSpec {
                name: s.name.clone(),
                lot_size: s.lot_size,
                tick_size: s.tick_size,
                min_qty: Lots(min_qty.0.max(1)),
                min_notional: money("symbol", &s.name, s.min_notional.unwrap_or_default())?,
                venue,
                money_per_lot_tick,
            });
        }
        let symbol_list = |what: &'static str,
                           name: &str,
                           list: &[String]|
         -> Result<Vec<SymbolIdx>, ModelError> {
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
        };

        let mut leader_by_name = HashMap::new();
        let mut leaders = Vec::new();
        for l in &cfg.leaders {
            let idx = LeaderIdx(leaders.len() as u32);
            if leader_by_name.insert(l.id.clone(), idx).is_some() {
                return Err(ModelError::Duplicate {
                    what: "leader",
                    name: l.id.clone(),
                });
            }
            let profile = l.profile.clone().unwrap_or_default();
            leaders.push(LeaderSpec {
                id: l.id.clone(),
                equity: money("leader", &l.id, l.equity)?,
                paused: l.paused,
                profile_symbols: profile
                    .symbols
                    .as_deref()
                    .map(|s| symbol_list("leader", &l.id, s))
                    .transpose()?,
                profile_max_position: profile
                    .max_position_notional
                    .map(|d| money("leader", &l.id, d))
                    .transpose()?,
            });
        }

        let mut follower_by_name = HashMap::new();
        let mut followers = Vec::new();
        for f in &cfg.followers {
            let idx = FollowerIdx(followers.len() as u32);
            if follower_by_name.insert(f.id.clone(), idx).is_some() {
                return Err(ModelError::Duplicate {
                    what: "follower",
                    name: f.id.clone(),
                });
            }
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
                None => Money(i64::MAX),
            };
            let allowed = match &f.symbols {
                None => vec![true; symbols.len()],
                Some(list) => {
                    let mut a = vec![false; symbols.len()];
                    for s in symbol_list("follower", &f.id, list)? {
                        a[s.0 as usize] = true;
                    }
                    a
                }
            };
            followers.push(FollowerSpec {
                id: f.id.clone(),
                equity,
                status: f.status,
                max_gross,
                max_open_positions: f.max_open_positions.unwrap_or(u32::MAX),
                daily_loss_limit: opt_money_or_max("follower", &f.id, f.daily_loss_limit)?,
                allowed,
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
        let mut sub_ids = HashMap::new();
        let mut subs = Vec::new();
        for s in &cfg.subscriptions {
            let id =
                s.id.clone()
                    .unwrap_or_else(|| format!("{}:{}", s.follower, s.leader));
            if sub_ids.insert(id.clone(), ()).is_some() {
                return Err(ModelError::Duplicate {
                    what: "subscription",
                    name: id,
                });
            }
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
            let invalid = |msg: &str| ModelError::Invalid {
                what: "subscription",
                name: id.clone(),
                msg: msg.into(),
            };
            let allocation = money("subscription", &id, s.allocation)?;
            let (mode, multiplier, base_ratio, amount) = match s.mode {
                ModeConfig::Proportional => {
                    let m = s.multiplier.unwrap_or_else(config::defaults::multiplier);
                    let r =
                        proportional_ratio(m, s.allocation, cfg.leaders[leader.0 as usize].equity)
                            .ok_or_else(|| {
                                invalid("proportional ratio out of range (leader equity zero?)")
                            })?;
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
                        money("subscription", &id, a)?,
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
                        money("subscription", &id, a)?,
                    )
                }
            };
            let mut max_pos = opt_money_or_max("subscription", &id, s.max_position_notional)?;
            if let Some(pct) = s.max_position_pct {
                let by_pct = money(
                    "subscription",
                    &id,
                    (pct / Decimal::from(100) * s.allocation).round_dp(8),
                )?;
                max_pos = max_pos.min(by_pct);
            }
            let stop_loss = match s.total_stop_loss_pct {
                Some(pct) => money(
                    "subscription",
                    &id,
                    (pct / Decimal::from(100) * s.allocation).round_dp(8),
                )?,
                None => Money(i64::MAX),
            };
            subs.push(SubscriptionSpec {
                id,
                follower,
                leader,
                allocation,
                mode,
                base_ratio,
                multiplier,
                amount,
                market_orders: s.order_type == OrderTypeConfig::Market,
                slippage_bps: s.slippage_bps,
                max_order_notional: opt_money_or_max(
                    "subscription",
                    &s.follower,
                    s.max_order_notional,
                )?,
                max_position_notional: max_pos,
                stop_loss,
                leader_drawdown_ppm: s.leader_drawdown_pct.map(pct_to_ppm).unwrap_or(u32::MAX),
                copy_open_positions: s.copy_open_positions,
                status: s.status,
            });
        }

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

    pub fn symbol(&self, name: &str) -> Option<SymbolIdx> {
        self.symbol_by_name.get(name).copied()
    }
    pub fn leader(&self, name: &str) -> Option<LeaderIdx> {
        self.leader_by_name.get(name).copied()
    }
    pub fn follower(&self, name: &str) -> Option<FollowerIdx> {
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
