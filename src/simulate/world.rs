//! The world a seed chooses: a small config built in code (leaders, followers and
//! subscriptions in all four modes with a mix of risk limits, symbols, venues, the
//! engine's capacity and resync settings), the leaders' activity as a timeline of
//! feed events (bursts of partial fills, adds, partial closes, flips, closes to flat,
//! with duplicated and reordered deliveries; every leader ends flat), and the venue
//! and engine faults (latency, rejects, outages, crashes), and in some seeds a
//! person's edit of the config reloaded mid-run (values; a subscription removed
//! and a follower added; a symbol the leaders trade removed, one added that
//! they trade after the reload).
//!
//! Everything here is drawn from the one seeded RNG, in a fixed order: the same
//! seed gives the same world. Choices added later draw from generators of their
//! own, seeded from it (`Rng::peek`), so that a seed without them keeps its world.

use super::rng::Rng;
use fillcast_engine::config::{self, Config, RemovePolicy, Status, SymbolConfig};
use fillcast_engine::event::{Command, FeedEvent, FillKind, LeaderFill};
use fillcast_engine::ids::{fnv1a, leader_event_key};
use fillcast_engine::model::{FollowerIdx, LeaderIdx, Side, SubIdx, SymbolIdx, Universe};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::config::GatewayKinds;
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;

/// The virtual clock's origin: 2023-11-14T22:13:20Z, in ns since the epoch.
pub const T0: u64 = 1_700_000_000_000_000_000;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

/// One feed event the source will deliver, at `arrival` (virtual ns). Its receive
/// timestamp (and a command's or mark's `ts`) is set when the core takes it.
#[derive(Copy, Clone, Debug)]
pub struct Planned {
    pub arrival: u64,
    pub ev: FeedEvent,
}

/// A venue link outage: the link breaks at `down_at`, the gateway notices at
/// `noticed_at`, the link works again at `up_at`, and the gateway has reconnected
/// (and settled its orders in flight) at `reconnect_at`.
#[derive(Copy, Clone, Debug)]
pub struct Outage {
    pub down_at: u64,
    pub noticed_at: u64,
    pub up_at: u64,
    pub reconnect_at: u64,
    /// The venue holds the session's reports meanwhile (delivered on reconnect),
    /// or loses them.
    pub hold: bool,
}

/// How one venue (and the path to it) misbehaves while faults are on.
#[derive(Clone, Debug)]
pub struct VenueFaults {
    /// Gateway → venue, ns.
    pub transit_ns: u64,
    /// Venue → gateway, ns; each report also gets up to `jitter_ns` more, which
    /// reorders reports across orders, and an order's ack after its fills (a
    /// sequenced session keeps an order's other reports in order).
    pub net_ns: u64,
    pub jitter_ns: u64,
    /// A report delivered a second time, later.
    pub dup_ppm: u32,
    /// An IOC remainder reported `Expired` instead of `Canceled`.
    pub expire_ppm: u32,
    /// The venue's front end refuses an order outright (`Other`, `PositionLimit`,
    /// `InsufficientMargin`, or `ReduceOnly` for a reduce-only order), never
    /// executing it.
    pub refuse_ppm: u32,
    /// The front end refuses a reduce-only order that would not reduce the
    /// follower's position on the venue's books (a real venue's rule).
    pub reduce_only_strict: bool,
    /// After a reconnect, a report of an order the settle already answered is
    /// delivered anyway (a repeat the gateway cannot tell).
    pub leak_ppm: u32,
    pub outages: Vec<Outage>,
}

/// Engine-process faults.
#[derive(Clone, Debug)]
pub struct EngineFaults {
    /// Chance per journal entry that the engine dies just before appending it.
    pub crash_ppm: u32,
    pub crashes_max: u32,
    /// Chance that a crash leaves a torn partial record behind.
    pub torn_ppm: u32,
    /// Chance that a crash is a power loss: the journal keeps only what
    /// `durability = "sync"` flushed, which is everything before the last orders
    /// that left.
    pub power_loss_ppm: u32,
    /// How long a dead engine stays dead, ns (at most).
    pub restart_ns_max: u64,
    /// Orders wait this long (at most) between their journal record and the gateway.
    pub egress_ns_max: u64,
    /// The core's time per input (at most), ns.
    pub service_ns_max: u64,
    /// The core thread's preference, per cent, for a waiting venue report over a
    /// feed event when both are there (the rest of the time the feed goes first).
    pub exec_first_pct: u32,
    /// After a restart the source re-delivers up to this many leader fills the
    /// journal already holds (at-least-once resume).
    pub resume_overlap: u32,
    /// Bytes per journal segment (small, so rolls happen).
    pub segment_bytes: u64,
}

pub struct World {
    pub config: Config,
    pub toml: String,
    pub universe: Arc<Universe>,
    /// A person's edit of the config, reloaded live (`FeedEvent::Revision` in
    /// the feed): new limits, allocations and statuses for some subscriptions.
    /// The model it brings is laid out after the one in force
    /// (`Config::arranged_after`); `reload_file` is the file as the person wrote
    /// it, which a restart after the reload loads.
    pub reload: Option<(Config, Arc<Universe>)>,
    pub reload_file: Option<Config>,
    /// What the reload does to the symbols (nothing in most seeds).
    pub reload_symbols: ReloadSymbols,
    /// Sorted by arrival.
    pub feed: Vec<Planned>,
    pub venues: Vec<VenueFaults>,
    pub engine: EngineFaults,
    /// A line describing the world, for the trace.
    pub summary: String,
}

#[derive(Copy, Clone)]
struct SymbolPlan {
    name: &'static str,
    lot: &'static str,
    tick: &'static str,
    min_qty: &'static str,
    min_notional: &'static str,
    /// Base price in ticks.
    px: i64,
    /// Leader order sizes, lots.
    qty_min: i64,
    qty_max: i64,
}

const SYMBOLS: [SymbolPlan; 2] = [
    SymbolPlan {
        name: "BTC",
        lot: "0.001",
        tick: "0.1",
        min_qty: "0.001",
        min_notional: "5",
        px: 650_000,
        qty_min: 5,
        qty_max: 400,
    },
    SymbolPlan {
        name: "SOL",
        lot: "1",
        tick: "0.01",
        min_qty: "1",
        min_notional: "1",
        px: 2_500,
        qty_min: 20,
        qty_max: 4_000,
    },
];

/// The symbol a reload adds, in the seeds whose reload adds one.
const ADDED: SymbolPlan = SymbolPlan {
    name: "ETH",
    lot: "0.01",
    tick: "0.01",
    min_qty: "0.01",
    min_notional: "5",
    px: 300_000,
    qty_min: 1,
    qty_max: 300,
};

/// What the planned reload does to the symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadSymbols {
    /// A symbol the leaders trade, which the person removes.
    pub removed: Option<&'static str>,
    /// The edited file says `engine.on_remove = "keep"` (else `close`, the
    /// default, which the world's file leaves unset).
    pub keep: bool,
    /// A symbol the person adds (`ADDED`), on one of the world's venues, which
    /// some leaders trade once the reload has arrived.
    pub added: Option<&'static str>,
}

impl ReloadSymbols {
    /// For the world's summary line: empty when the reload leaves the symbols
    /// alone, so that such a seed's trace is what it was.
    fn describe(&self) -> String {
        let mut d = String::new();
        if let Some(name) = self.removed {
            let how = if self.keep { "keep" } else { "close" };
            let _ = write!(d, "; the reload removes {name} (on_remove {how})");
        }
        if let Some(name) = self.added {
            let _ = write!(
                d,
                "{} {name}",
                if d.is_empty() {
                    "; the reload adds"
                } else {
                    " and adds"
                }
            );
        }
        d
    }
}

const POLICIES: [&str; 4] = ["retry", "reduce", "skip", "out_of_sync"];

impl World {
    pub fn generate(rng: &mut Rng) -> World {
        let n_venues = rng.range(1, 2) as usize;
        let n_symbols = rng.range(1, 2) as usize;
        let n_leaders = rng.range(1, 3) as usize;
        let n_subs = if rng.chance(700_000) {
            rng.range(2, 12)
        } else {
            rng.range(2, 40)
        } as usize;
        let mut t = String::new();

        // The engine: capacity, retries, resync, venue-down policy.
        let places = rng.range(2, 8);
        let max_working = if rng.chance(250_000) {
            rng.range(4, 64)
        } else {
            65_536
        };
        let max_retries = if rng.chance(600_000) {
            config::defaults::max_retries() as u64
        } else {
            rng.range(3, 12)
        };
        let backoff_ms = rng.range(1, 20);
        let backoff_max_ms = rng.range(backoff_ms.max(50), 2_000);
        let alarm_ms = rng.range(50, 5_000);
        let stop = rng.chance(150_000);
        let _ = writeln!(
            t,
            "[engine]\nmax_working_orders = {max_working}\ndedup_window = 16384\n\
             orders_per_subscription = {places}\nmax_retries = {max_retries}\n\
             venue_down_alarm_ms = {alarm_ms}\non_venue_down = \"{}\"\n\n\
             [engine.resync]\nbackoff_ms = {backoff_ms}\nbackoff_max_ms = {backoff_max_ms}",
            if stop { "stop" } else { "alarm" }
        );
        let default_policies = rng.chance(700_000);
        if !default_policies {
            for key in [
                "unfilled_opening",
                "insufficient_margin",
                "position_limit",
                "below_min",
                "reduce_only",
                "other",
            ] {
                let p = if key == "unfilled_opening" {
                    POLICIES[rng.below(2) as usize * 2]
                } else {
                    POLICIES[rng.below(4) as usize]
                };
                let _ = writeln!(t, "{key} = \"{p}\"");
            }
        }
        t.push('\n');

        // Venues, with the simulated venue's own fill model.
        let mut venues = Vec::new();
        for v in 0..n_venues {
            let latency_us = if rng.chance(200_000) {
                0
            } else {
                rng.range(1, 3_000)
            };
            let partial = rng.range(0, 600_000);
            let reject = if rng.chance(300_000) {
                0
            } else {
                rng.range(0, 80_000)
            };
            let transient = if rng.chance(300_000) {
                0
            } else {
                rng.range(0, 80_000)
            };
            let _ = writeln!(
                t,
                "[[venues]]\nname = \"v{v}\"\nkind = \"sim\"\n[venues.sim]\nlatency_us = {latency_us}\n\
                 partial_fill_ppm = {partial}\nreject_ppm = {reject}\n\
                 transient_failure_ppm = {transient}\nseed = {}\n",
                rng.next() >> 1
            );
            venues.push(VenueFaults {
                transit_ns: rng.range(1, 500) * US,
                net_ns: rng.range(1, 500) * US,
                jitter_ns: [0, 50 * US, 2 * MS][rng.below(3) as usize],
                dup_ppm: [0, 20_000, 100_000][rng.below(3) as usize] as u32,
                expire_ppm: rng.range(0, 500_000) as u32,
                refuse_ppm: [0, 10_000, 60_000][rng.below(3) as usize] as u32,
                reduce_only_strict: rng.chance(500_000),
                leak_ppm: [0, 100_000][rng.below(2) as usize] as u32,
                outages: Vec::new(),
            });
        }

        // Symbols.
        let mut symbols = Vec::new();
        for (s, plan) in SYMBOLS.iter().enumerate().take(n_symbols) {
            let venue = rng.below(n_venues as u64);
            let _ = writeln!(
                t,
                "[[symbols]]\nname = \"{}\"\nlot_size = \"{}\"\ntick_size = \"{}\"\n\
                 min_qty = \"{}\"\nmin_notional = \"{}\"\nvenue = \"v{venue}\"\n",
                plan.name, plan.lot, plan.tick, plan.min_qty, plan.min_notional
            );
            symbols.push((s, *plan));
        }

        // Leaders.
        let mut leader_equity = Vec::new();
        for l in 0..n_leaders {
            let equity = rng.range(100, 1_000) * 1_000;
            leader_equity.push(equity);
            let _ = writeln!(t, "[[leaders]]\nid = \"L{l}\"\nequity = \"{equity}\"\n");
        }

        // Followers and subscriptions: a follower may copy several leaders.
        let mut followers: Vec<Vec<usize>> = Vec::new();
        let mut subs = Vec::new();
        for i in 0..n_subs {
            let leader = if i < n_leaders {
                i
            } else {
                rng.below(n_leaders as u64) as usize
            };
            let reuse: Vec<usize> = (0..followers.len())
                .filter(|f| !followers[*f].contains(&leader))
                .collect();
            let f = if !reuse.is_empty() && rng.chance(300_000) {
                reuse[rng.below(reuse.len() as u64) as usize]
            } else {
                followers.push(Vec::new());
                followers.len() - 1
            };
            followers[f].push(leader);
            subs.push((f, leader));
        }
        for f in 0..followers.len() {
            let _ = writeln!(
                t,
                "[[followers]]\nid = \"F{f}\"\nequity = \"{}\"",
                rng.range(1, 1_000) * 1_000
            );
            if rng.chance(200_000) {
                let _ = writeln!(t, "max_leverage = \"{}\"", tenths(rng.range(1, 50)));
            }
            if rng.chance(100_000) {
                let _ = writeln!(t, "max_open_positions = {}", rng.range(1, 2));
            }
            if rng.chance(50_000) {
                let _ = writeln!(t, "daily_loss_limit = \"{}\"", rng.range(1, 100) * 10);
            }
            if rng.chance(50_000) {
                t.push_str("status = \"paused\"\n");
            }
            if n_symbols > 1 && rng.chance(100_000) {
                t.push_str("symbols = [\"BTC\"]\n");
            }
            t.push('\n');
        }
        for (i, (f, l)) in subs.iter().enumerate() {
            let allocation = rng.range(1, 100) * 1_000;
            let _ = writeln!(
                t,
                "[[subscriptions]]\nid = \"s{i}\"\nfollower = \"F{f}\"\nleader = \"L{l}\"\n\
                 allocation = \"{allocation}\"\nslippage_bps = {}",
                rng.range(0, 100)
            );
            match rng.below(4) {
                0 => {
                    let _ = writeln!(
                        t,
                        "mode = \"proportional\"\nmultiplier = \"{}\"",
                        tenths(rng.range(1, 30))
                    );
                }
                1 => {
                    let r = ["0.01", "0.1", "0.25", "0.5", "1", "2", "3"][rng.below(7) as usize];
                    let _ = writeln!(t, "mode = \"fixed_ratio\"\nratio = \"{r}\"");
                }
                2 => {
                    let _ = writeln!(
                        t,
                        "mode = \"fixed_amount\"\namount = \"{}\"",
                        rng.range(2, 2_000) * 10
                    );
                }
                _ => {
                    let _ = writeln!(
                        t,
                        "mode = \"fixed_leverage\"\nleverage = \"{}\"",
                        tenths(rng.range(1, 30))
                    );
                }
            }
            if rng.chance(300_000) {
                t.push_str("order_type = \"market\"\n");
            }
            if rng.chance(200_000) {
                let _ = writeln!(t, "max_order_notional = \"{}\"", rng.range(1, 500) * 100);
            }
            if rng.chance(150_000) {
                let _ = writeln!(t, "max_position_notional = \"{}\"", rng.range(1, 500) * 100);
            }
            if rng.chance(100_000) {
                let _ = writeln!(t, "max_position_pct = \"{}\"", rng.range(5, 100));
            }
            if rng.chance(60_000) {
                let _ = writeln!(t, "total_stop_loss_pct = \"{}\"", rng.range(1, 50));
            }
            if rng.chance(60_000) {
                t.push_str("status = \"paused\"\n");
            }
            t.push('\n');
        }

        let config = config::load_str_with(&t, Path::new("simulated.toml"), &GatewayKinds)
            .unwrap_or_else(|e| panic!("the simulator made a config that does not load: {e}\n{t}"));
        let universe = Arc::new(
            Universe::from_config(&config)
                .unwrap_or_else(|e| panic!("the simulator's config does not resolve: {e}\n{t}")),
        );

        // A person edits values and reloads: smaller or larger limits, another
        // allocation, a paused or resumed subscription.
        let edit = rng.chance(400_000).then(|| {
            let mut edited = config.clone();
            let n = edited.subscriptions.len() as u64;
            for _ in 0..rng.range(1, 3) {
                let s = &mut edited.subscriptions[rng.below(n) as usize];
                match rng.below(4) {
                    0 => s.max_order_notional = Some(Decimal::from(rng.range(1, 500) * 100)),
                    1 => s.allocation = Decimal::from(rng.range(1, 100) * 1000),
                    2 => {
                        s.status = if s.status == Status::Paused {
                            Status::Active
                        } else {
                            Status::Paused
                        }
                    }
                    _ => s.max_position_notional = Some(Decimal::from(rng.range(1, 500) * 100)),
                }
            }
            // In some of them the person also removes a subscription and adds
            // a follower copying a leader (issue 12). Drawn from a generator
            // of its own, so that every other draw of the seed stays as it was.
            let mut shape = Rng::new(edited.subscriptions.len() as u64 ^ rng.peek() ^ 0x5a4e);
            if shape.chance(400_000) && edited.subscriptions.len() > 1 {
                let gone = shape.below(edited.subscriptions.len() as u64) as usize;
                let mut sub = edited.subscriptions.remove(gone);
                let mut follower = edited
                    .followers
                    .iter()
                    .find(|f| f.id == sub.follower)
                    .expect("the follower of a subscription")
                    .clone();
                follower.id = "Fnew".into();
                follower.status = Status::Active;
                sub.id = None;
                sub.follower = "Fnew".into();
                sub.status = Status::Active;
                sub.copy_open_positions = shape.chance(500_000);
                edited.followers.push(follower);
                edited.subscriptions.push(sub);
            }
            // In some, the symbols too (`edit_symbols`), from a generator of
            // their own as well, once the leaders' activity is known.
            let symbols_rng = Rng::new(rng.peek() ^ 0x5359_4d42);
            (edited, symbols_rng)
        });

        // The leaders' activity.
        let feed_jitter_ns = [0, 100 * US, 3 * MS][rng.below(3) as usize];
        let dup_feed_ppm = [0, 30_000, 150_000][rng.below(3) as usize] as u32;
        let mut planned: Vec<(u64, u64, FeedEvent)> = Vec::new();
        let mut n_event = 0u64;
        let mut span = 0u64;
        for (l, equity) in leader_equity.iter().enumerate() {
            let _ = equity;
            for (s, plan) in &symbols {
                if *s > 0 && rng.chance(300_000) {
                    continue;
                }
                let at = T0 + rng.range(0, 50) * MS;
                let at = trade(rng, l, *s, plan, at, &mut n_event, &mut planned);
                span = span.max(at - T0);
            }
        }
        // The edited file laid out after the one in force, as a reload does.
        let mut reload_symbols = ReloadSymbols::default();
        let mut reload_at = None;
        let mut symbols_rng = None;
        let mut reload_file = None;
        let mut reload = None;
        if let Some((mut edited, mut g)) = edit {
            (reload_symbols, reload_at) =
                edit_symbols(&mut g, &mut edited, &symbols, &planned, n_venues);
            let arranged = edited
                .arranged_after(&config)
                .unwrap_or_else(|e| panic!("the simulator's edited config cannot follow: {e}"));
            let u = Universe::from_config(&arranged)
                .unwrap_or_else(|e| panic!("the simulator's edited config does not resolve: {e}"));
            reload_file = Some(edited);
            reload = Some((arranged, Arc::new(u)));
            symbols_rng = Some(g);
        }
        // A person commanding now and then (through `fillcast ctl`, so with a
        // uid), and taking it back a little later.
        for _ in 0..rng.range(0, 2) {
            let sub = SubIdx(rng.below(n_subs as u64) as u32);
            let follower = FollowerIdx(rng.below(followers.len() as u64) as u32);
            let at = T0 + rng.range(0, span.max(1));
            let back = at + rng.range(1, 500) * MS;
            let (on, off) = match rng.below(4) {
                0 => (
                    Command::PauseSubscription(sub),
                    Command::ResumeSubscription(sub),
                ),
                1 => (Command::Flatten(sub), Command::ResumeSubscription(sub)),
                2 => (
                    Command::PauseFollower(follower),
                    Command::ResumeFollower(follower),
                ),
                _ => (Command::KillSwitch, Command::KillSwitchOff),
            };
            for (when, cmd) in [(at, on), (back, off)] {
                planned.push((
                    when,
                    0,
                    FeedEvent::Command {
                        cmd,
                        ts: Nanos(0),
                        by: 1000,
                    },
                ));
            }
        }
        if let Some((_, u)) = &reload {
            let at = T0 + rng.range(0, span.max(1));
            let at = reload_at.unwrap_or(at);
            planned.push((
                at,
                0,
                FeedEvent::Revision {
                    revision: u.revision,
                    ts: Nanos(0),
                },
            ));
        }
        planned.sort_by_key(|(at, n, _)| (*at, *n));
        let mut feed = Vec::with_capacity(planned.len() * 2);
        for (at, _, ev) in planned {
            let arrival = at + rng.range(0, feed_jitter_ns);
            feed.push(Planned { arrival, ev });
            if matches!(ev, FeedEvent::LeaderFill(_)) && rng.chance(dup_feed_ppm) {
                feed.push(Planned {
                    arrival: arrival + rng.range(0, 50) * MS,
                    ev,
                });
            }
        }
        // Stable: events that arrive together keep their order.
        feed.sort_by_key(|p| p.arrival);
        // Leaders trade a symbol the reload adds only once it arrived: the
        // source knows the name from then on (and so no interleaving, no
        // redelivery after a crash, hands the core a fill in it before).
        if let (Some(name), Some((_, u)), Some(g)) =
            (reload_symbols.added, &reload, symbols_rng.as_mut())
        {
            let s = u
                .symbol(name)
                .expect("the added symbol in the reload's model")
                .0 as usize;
            let after = feed
                .iter()
                .find(|p| matches!(p.ev, FeedEvent::Revision { .. }))
                .map(|p| p.arrival)
                .expect("the reload in the feed");
            let mut more = Vec::new();
            for l in 0..n_leaders {
                if l == 0 || g.chance(500_000) {
                    let at = after + g.range(1, 200) * MS;
                    trade(g, l, s, &ADDED, at, &mut n_event, &mut more);
                }
            }
            more.sort_by_key(|(at, n, _)| (*at, *n));
            for (at, _, ev) in more {
                let arrival = at + g.range(0, feed_jitter_ns);
                feed.push(Planned { arrival, ev });
                if matches!(ev, FeedEvent::LeaderFill(_)) && g.chance(dup_feed_ppm) {
                    feed.push(Planned {
                        arrival: arrival + g.range(0, 50) * MS,
                        ev,
                    });
                }
            }
            feed.sort_by_key(|p| p.arrival);
            let reload_at = feed
                .iter()
                .position(|p| matches!(p.ev, FeedEvent::Revision { .. }))
                .expect("the reload in the feed");
            assert!(
                feed[..reload_at]
                    .iter()
                    .all(|p| symbol_of(&p.ev) != Some(SymbolIdx(s as u16))),
                "an event in {name} is planned before the reload that adds it"
            );
        }

        // Outages, spread over the activity.
        let mut n_outages = 0;
        for v in &mut venues {
            let count = [0, 0, 1, 1, 2, 3][rng.below(6) as usize];
            let mut from = T0;
            for _ in 0..count {
                let down_at = from + rng.range(1, span.max(2) / 2);
                let noticed_at = down_at + rng.range(1, 1_000) * US;
                let up_at = noticed_at + rng.range(1, 3_000) * MS;
                let reconnect_at = up_at + rng.range(0, 200) * MS;
                v.outages.push(Outage {
                    down_at,
                    noticed_at,
                    up_at,
                    reconnect_at,
                    hold: rng.chance(500_000),
                });
                from = reconnect_at + MS;
                n_outages += 1;
            }
        }

        let engine = EngineFaults {
            crash_ppm: [0, 100, 1_000, 5_000, 20_000][rng.below(5) as usize] as u32,
            crashes_max: if rng.chance(100_000) {
                rng.range(5, 12)
            } else {
                rng.range(0, 4)
            } as u32,
            torn_ppm: 500_000,
            power_loss_ppm: [0, 300_000, 1_000_000][rng.below(3) as usize] as u32,
            restart_ns_max: rng.range(1, 500) * MS,
            egress_ns_max: [0, 20 * US, 2 * MS][rng.below(3) as usize],
            service_ns_max: rng.range(0, 20) * US,
            exec_first_pct: rng.range(50, 100) as u32,
            resume_overlap: rng.range(0, 3) as u32,
            // Small, so that rolls happen, but room for the config record.
            segment_bytes: [4_096u64, 16_384, 65_536, 1 << 20][rng.below(4) as usize]
                .max(((t.len() as u64 + 4_096) * 2).next_power_of_two()),
        };
        let summary = format!(
            "world: {} leaders, {} followers, {} subscriptions, {} symbols, {} venues; \
             {} feed events over {}ms; places {places}, max_working {max_working}, \
             retries {max_retries}, backoff {backoff_ms}..{backoff_max_ms}ms, alarm {alarm_ms}ms{}{}; \
             {n_outages} outages; crash {}ppm x{}; segment {}B",
            n_leaders,
            followers.len(),
            n_subs,
            n_symbols,
            n_venues,
            feed.len(),
            span / MS,
            if stop { " (stop)" } else { "" },
            if default_policies {
                ""
            } else {
                ", own policies"
            },
            engine.crash_ppm,
            engine.crashes_max,
            engine.segment_bytes,
        ) + &reload_symbols.describe();
        World {
            config,
            toml: t,
            universe,
            reload,
            reload_file,
            reload_symbols,
            feed,
            venues,
            engine,
            summary,
        }
    }
}

/// A leader's trading in one symbol from `at` on: orders filled in bursts of
/// partial fills (adds, partial closes, flips), sometimes a mark after one, and a
/// close to flat at the end. Pushes the fills and marks to `planned` as (time,
/// event number, event); returns when the leader is done.
fn trade(
    rng: &mut Rng,
    l: usize,
    s: usize,
    plan: &SymbolPlan,
    mut at: u64,
    n_event: &mut u64,
    planned: &mut Vec<(u64, u64, FeedEvent)>,
) -> u64 {
    let mut px = plan.px;
    let mut pos = 0i64;
    let orders = rng.range(2, 14);
    for o in 0..=orders {
        let (side, qty) = if o == orders {
            if pos == 0 {
                break;
            }
            (Side::from_sign(-pos.signum()), pos.abs())
        } else if pos == 0 {
            let side = if rng.chance(500_000) {
                Side::Buy
            } else {
                Side::Sell
            };
            (
                side,
                rng.range(plan.qty_min as u64, plan.qty_max as u64) as i64,
            )
        } else {
            let held = pos.abs();
            let same = Side::from_sign(pos.signum());
            let other = Side::from_sign(-pos.signum());
            match rng.below(4) {
                0 => (
                    same,
                    rng.range(plan.qty_min as u64, plan.qty_max as u64) as i64,
                ),
                1 if held > 1 => (other, rng.range(1, held as u64 - 1) as i64),
                2 => (
                    other,
                    held + rng.range(plan.qty_min as u64, plan.qty_max as u64) as i64,
                ),
                _ => (other, held),
            }
        };
        let order_id = format!("L{l}-{s}-{o}");
        // An order against the position: the venue might have made it.
        let other_side_close = pos != 0 && side.sign() != pos.signum();
        let known = rng.chance(850_000);
        let pieces = rng.range(1, 6).min(qty as u64) as i64;
        let mut left = qty;
        for p in 0..pieces {
            let q = if p == pieces - 1 {
                left
            } else {
                rng.range(1, (left - (pieces - 1 - p)) as u64) as i64
            };
            left -= q;
            px = (px + rng.range(0, 2 * plan.px as u64 / 200) as i64 - plan.px / 200)
                .clamp(plan.px * 9 / 10, plan.px * 11 / 10);
            *n_event += 1;
            let fill = LeaderFill {
                leader: LeaderIdx(l as u32),
                symbol: SymbolIdx(s as u16),
                side,
                qty: Lots(q),
                price: Ticks(px),
                event_key: leader_event_key(&format!("L{l}"), &format!("e{}", *n_event)),
                order_key: if known { fnv1a(order_id.as_bytes()) } else { 0 },
                order_qty: Lots(if known { qty } else { 0 }),
                venue_ts: Nanos(at),
                recv_ts: Nanos(0),
                // A close the venue made now and then (liquidation, ADL), from
                // the count rather than the seed's draws: the kind decides
                // nothing, and crashes and replays must carry it through.
                kind: match (*n_event % 11, other_side_close) {
                    (3, true) => FillKind::Liquidation,
                    (7, true) => FillKind::Adl,
                    _ => FillKind::Trade,
                },
            };
            planned.push((at, *n_event, FeedEvent::LeaderFill(fill)));
            at += rng.range(0, 1_000) * US;
        }
        debug_assert_eq!(left, 0);
        pos += side.sign() * qty;
        if rng.chance(200_000) {
            planned.push((
                at,
                0,
                FeedEvent::MarkPrice {
                    symbol: SymbolIdx(s as u16),
                    price: Ticks(px + rng.range(0, plan.px as u64 / 20) as i64 - plan.px / 40),
                    ts: Nanos(0),
                },
            ));
        }
        at += if rng.chance(200_000) {
            rng.range(100, 2_000) * MS
        } else {
            rng.range(50, 100_000) * US
        };
    }
    debug_assert_eq!(pos, 0);
    at
}

/// The person's edit of the symbols, in some seeds whose reload is planned,
/// drawn from `g` (a generator of its own): removing one the leaders trade
/// (`planned`), under `engine.on_remove` `close` or `keep`, and adding `ADDED`
/// on one of the world's venues. Returns the edit and, for a removal, mostly a
/// moment for the reload at which a leader holds a position in the symbol
/// (halfway to its next fill there), so that followers hold one too.
fn edit_symbols(
    g: &mut Rng,
    edited: &mut Config,
    symbols: &[(usize, SymbolPlan)],
    planned: &[(u64, u64, FeedEvent)],
    n_venues: usize,
) -> (ReloadSymbols, Option<u64>) {
    let mut edit = ReloadSymbols::default();
    let mut at = None;
    let traded: Vec<usize> = symbols
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| {
            planned
                .iter()
                .any(|(_, _, ev)| symbol_of(ev) == Some(SymbolIdx(*s as u16)))
        })
        .collect();
    if g.chance(400_000) && !traded.is_empty() {
        let s = traded[g.below(traded.len() as u64) as usize];
        let name = symbols[s].1.name;
        edited.symbols.retain(|x| x.name != name);
        // A follower's list names only symbols in force: one that named only
        // this one may trade the rest now.
        for f in &mut edited.followers {
            if let Some(list) = &mut f.symbols {
                list.retain(|x| x != name);
                if list.is_empty() {
                    f.symbols = None;
                }
            }
        }
        edit.keep = g.chance(500_000);
        if edit.keep {
            edited.engine.on_remove = RemovePolicy::Keep;
        }
        edit.removed = Some(name);
        if g.chance(750_000) {
            at = while_held(g, planned, s);
        }
    }
    if g.chance(400_000) || edited.symbols.is_empty() {
        let d = |v: &str| Decimal::from_str(v).expect("a decimal");
        edited.symbols.push(SymbolConfig {
            name: ADDED.name.into(),
            lot_size: d(ADDED.lot),
            tick_size: d(ADDED.tick),
            min_qty: Some(d(ADDED.min_qty)),
            min_notional: Some(d(ADDED.min_notional)),
            venue: format!("v{}", g.below(n_venues as u64)),
            removed: false,
        });
        edit.added = Some(ADDED.name);
    }
    (edit, at)
}

/// A moment at which some leader holds a position in symbol `s`: halfway
/// between one of its fills there that leaves it open and its next one.
fn while_held(g: &mut Rng, planned: &[(u64, u64, FeedEvent)], s: usize) -> Option<u64> {
    // Each leader's fills in a symbol are planned in their order, together.
    let mut open = Vec::new();
    let mut last: Option<(u32, u64, i64)> = None;
    for (at, _, ev) in planned {
        let FeedEvent::LeaderFill(f) = ev else {
            continue;
        };
        if f.symbol.0 as usize != s {
            continue;
        }
        let pos = match last {
            Some((l, was, pos)) if l == f.leader.0 => {
                if pos != 0 {
                    open.push((was, *at));
                }
                pos
            }
            _ => 0,
        };
        last = Some((f.leader.0, *at, pos + f.side.sign() * f.qty.0));
    }
    if open.is_empty() {
        return None;
    }
    let (was, next) = open[g.below(open.len() as u64) as usize];
    Some(was + ((next - was) / 2).max(1))
}

/// The symbol a feed event names, if it names one.
pub fn symbol_of(ev: &FeedEvent) -> Option<SymbolIdx> {
    match ev {
        FeedEvent::LeaderFill(f) => Some(f.symbol),
        FeedEvent::MarkPrice { symbol, .. } | FeedEvent::Funding { symbol, .. } => Some(*symbol),
        _ => None,
    }
}

/// `n / 10` as a decimal string (`23` → `2.3`).
fn tenths(n: u64) -> String {
    format!("{}.{}", n / 10, n % 10)
}
