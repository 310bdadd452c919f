//! The test universe shared by the gateway tests.

#![allow(dead_code)]

use fillcast_engine::config::{
    Config, FollowerConfig, LeaderConfig, LeaderProfile, ModeConfig, SubscriptionConfig,
    SymbolConfig, VenueConfig,
};
use fillcast_engine::model::Universe;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::Arc;

fn symbol(name: &str, lot: Decimal, tick: Decimal, min_notional: Decimal) -> SymbolConfig {
    SymbolConfig {
        name: name.into(),
        lot_size: lot,
        tick_size: tick,
        min_qty: None,
        min_notional: Some(min_notional),
        venue: "sim".into(),
        removed: false,
    }
}

fn follower(id: &str) -> FollowerConfig {
    FollowerConfig {
        id: id.into(),
        equity: dec!(10000),
        status: Default::default(),
        max_leverage: None,
        max_open_positions: None,
        daily_loss_limit: None,
        symbols: None,
        removed: false,
    }
}

fn subscription(follower: &str, leader: &str) -> SubscriptionConfig {
    SubscriptionConfig {
        id: None,
        follower: follower.into(),
        leader: leader.into(),
        allocation: dec!(5000),
        mode: ModeConfig::Proportional,
        multiplier: None,
        ratio: None,
        amount: None,
        leverage: None,
        order_type: Default::default(),
        slippage_bps: 50,
        max_order_notional: None,
        max_position_notional: None,
        max_position_pct: None,
        total_stop_loss_pct: None,
        leader_drawdown_pct: None,
        copy_open_positions: false,
        status: Default::default(),
        removed: false,
    }
}

/// Symbols: 0 BTCUSDT (lot 0.001, tick 0.1, min notional 100), 1 ETHUSDT (lot 0.001,
/// tick 0.01, min notional 20), 2 BTC (Hyperliquid-style: lot 0.00001, tick 1, min
/// notional 10). Leaders: 0 L1 (equity 1,000,000, all symbols), 1 L2 (equity 250,000,
/// declared profile: ETHUSDT only, max position 100,000). Followers F1, F2.
pub fn config() -> Config {
    Config {
        symbols: vec![
            symbol("BTCUSDT", dec!(0.001), dec!(0.1), dec!(100)),
            symbol("ETHUSDT", dec!(0.001), dec!(0.01), dec!(20)),
            symbol("BTC", dec!(0.00001), dec!(1), dec!(10)),
        ],
        venues: vec![VenueConfig {
            name: "sim".into(),
            kind: "sim".into(),
            settings: Default::default(),
            dir: Default::default(),
        }],
        leaders: vec![
            LeaderConfig {
                id: "L1".into(),
                equity: dec!(1000000),
                paused: false,
                profile: None,
                removed: false,
            },
            LeaderConfig {
                id: "L2".into(),
                equity: dec!(250000),
                paused: false,
                profile: Some(LeaderProfile {
                    symbols: Some(vec!["ETHUSDT".into()]),
                    max_position_notional: Some(dec!(100000)),
                }),
                removed: false,
            },
        ],
        followers: vec![follower("F1"), follower("F2")],
        subscriptions: vec![subscription("F1", "L1"), subscription("F2", "L2")],
        ..Config::default()
    }
}

pub fn universe() -> Arc<Universe> {
    Arc::new(Universe::from_config(&config()).expect("test config resolves"))
}
