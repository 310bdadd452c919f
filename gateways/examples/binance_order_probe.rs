//! What one follower order costs the Binance gateway before it reaches the
//! socket: `order.place` encoded and signed (HMAC-SHA256, or Ed25519) into the
//! gateway's reusable buffer. docs/BENCHMARKS.md ("Binance gateway") quotes it.
//!
//! ```text
//! cargo run --release -p fillcast-gateways --example binance_order_probe [hmac|ed25519] [orders]
//! valgrind --tool=callgrind --toggle-collect='*Encoder*order_place*' \
//!     target/release/examples/binance_order_probe hmac 100000
//! ```

use fillcast_engine::event::{FollowerOrder, OrderType};
use fillcast_engine::model::{Side, SymbolSpec};
use fillcast_engine::units::{Lots, Ticks};
use fillcast_gateways::binance::sign::Signer;
use fillcast_gateways::binance::wsapi::{Auth, Encoder, Envelope, PlaceOrder, RespType};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "hmac".into());
    let orders: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let signer = match kind.as_str() {
        "hmac" => Signer::hmac(b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"),
        "ed25519" => Signer::Ed25519(
            fillcast_gateways::binance::sign::Ed25519Key::from_bytes(&[7u8; 32])
                .expect("a 32-byte seed"),
        )
        .pipe(Ok),
        other => panic!("`{other}`: hmac or ed25519"),
    }
    .expect("a key");
    let spec = SymbolSpec {
        name: "BTCUSDT".into(),
        lot_size: "0.001".parse().unwrap(),
        tick_size: "0.1".parse().unwrap(),
        min_qty: Lots(1),
        min_notional: fillcast_engine::units::Money(0),
        venue: fillcast_engine::model::VenueIdx(0),
        money_per_lot_tick: 1,
        removed: false,
    };
    let api_key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    let mut enc = Encoder::new();
    let mut out = Vec::with_capacity(1024);
    let mut bytes = 0u64;
    let t = Instant::now();
    for i in 0..orders {
        let order = FollowerOrder {
            id: (7u64 << 40) | i,
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            qty: Lots(1 + (i % 500) as i64),
            order_type: OrderType::LimitIoc,
            limit: Ticks(420_880 + (i % 100) as i64),
            reduce_only: i % 3 == 0,
            ..FollowerOrder::default()
        };
        let env = Envelope {
            id: i + 1,
            auth: Auth::Signed {
                api_key,
                signer: &signer,
            },
            timestamp_ms: 1_765_000_000_000 + i,
            recv_window_ms: 5000,
        };
        enc.order_place(
            &mut out,
            &env,
            &PlaceOrder::of(&order, &spec, RespType::Result),
        )
        .expect("a valid order");
        bytes += out.len() as u64;
        std::hint::black_box(&out);
    }
    let ns = t.elapsed().as_nanos() as f64 / orders as f64;
    println!(
        "{kind}: {orders} orders, {:.0} ns an order encoded and signed, {:.0} bytes a request, {:.0} orders/s on one core",
        ns,
        bytes as f64 / orders as f64,
        1e9 / ns
    );
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
