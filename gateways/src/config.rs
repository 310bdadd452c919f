//! The venue and source kinds of this crate as a config names them: the shape of
//! their `[[venues]]` and `[[sources]]` tables, and the checks that the engine's
//! loader runs through `GatewayKinds` (`config::load_with`), so that what
//! `check-config` accepts, `run` can build. It builds nothing: the command line
//! does, from these settings.

use fillcast_engine::config::{Item, Kinds, Problem, SourceConfig, VenueConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Every venue and source kind of this crate.
pub struct GatewayKinds;

/// A `[[venues]]` table as the venue kinds here read it: the whole table, `name`
/// and `kind` too, so that a message about an unknown key lists every key it may
/// have. Its messages name it as they did when the engine read it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(expecting = "struct VenueConfig", deny_unknown_fields)]
pub struct VenueSettings {
    pub name: String,
    /// `sim` (in-process simulated venue) or `sim_remote` (a `fillcast sim-venue`
    /// process at `address`, which outlives engine restarts).
    pub kind: VenueKind,
    /// `host:port` of a `sim_remote` venue.
    #[serde(default)]
    pub address: Option<String>,
    /// A `sim_remote` venue is pinged this often while the engine waits for it, ms.
    #[serde(default = "defaults::heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// ... and declared down (then reconnected with backoff) after this long
    /// without a word from it, ms.
    #[serde(default = "defaults::down_after_ms")]
    pub down_after_ms: u64,
    #[serde(default)]
    pub sim: SimVenueConfig,
    /// A `fix` venue's session (`[venues.fix]`).
    #[serde(default)]
    pub fix: Option<FixVenueSettings>,
    /// A `binance` venue's accounts and endpoints (`[venues.binance]`).
    #[serde(default)]
    pub binance: Option<BinanceVenueSettings>,
    /// The config file's folder, which a relative `store` is taken from.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Copy, Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VenueKind {
    Sim,
    SimRemote,
    /// A FIX 4.4 order-entry session at `address` (`fix::orderentry`).
    Fix,
    /// Binance USD-M futures over its WebSocket API (`binance::gateway`).
    Binance,
}

/// A `binance` venue: each follower's account by the name of its key in the
/// vault, and the venue's endpoints.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BinanceVenueSettings {
    /// Follower id → the name of its key in the vault (`fillcast keys add`).
    pub accounts: std::collections::BTreeMap<String, String>,
    /// The key vault, relative to the config file's folder.
    #[serde(default = "defaults::vault")]
    pub vault: PathBuf,
    /// The WebSocket API (`order.place`, `order.status`).
    #[serde(default = "defaults::binance_ws_api_url")]
    pub ws_api_url: String,
    /// USD-M futures REST (`userTrades` for a fill at several prices).
    #[serde(default = "defaults::binance_rest_url")]
    pub rest_url: String,
    /// Where each key's permissions are asked at start.
    #[serde(default = "defaults::binance_api_url")]
    pub api_url: String,
    #[serde(default = "defaults::recv_window_ms")]
    pub recv_window_ms: u64,
    /// Each account's order limits, every one honoured (Binance's: 300 per
    /// 10 s and 1,200 per minute).
    #[serde(default = "defaults::binance_order_limits")]
    pub order_limits: Vec<RateLimitSetting>,
    /// The request weight of the gateway's IP (Binance's: 2,400 per minute).
    #[serde(default = "defaults::binance_request_weight")]
    pub request_weight: RateLimitSetting,
    /// Added to every window for pacing: the venue stamps a request later than
    /// we send it.
    #[serde(default = "defaults::binance_pacing_margin_ms")]
    pub pacing_margin_ms: u64,
    /// Ask each key's permissions at start and refuse one that can withdraw or
    /// cannot trade futures. `false` only where there is no
    /// `apiRestrictions` to ask (Binance's futures testnet); said at start.
    #[serde(default = "defaults::yes")]
    pub check_permissions: bool,
    /// Each Ed25519 account on a connection of its own, logged on with
    /// `session.logon` (its orders then unsigned); HMAC accounts share one.
    #[serde(default)]
    pub session_logon: bool,
}

/// A rate limit: at most `count` in any `window_ms`.
#[derive(Copy, Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSetting {
    pub count: u32,
    pub window_ms: u64,
}

impl RateLimitSetting {
    /// What is wrong with it, if anything, for `what`.
    fn problem(&self, what: &str) -> Option<String> {
        let max = crate::binance::limits::COUNT_MAX_LIMIT;
        if self.count == 0 || self.count > max {
            return Some(format!("{what}: `count` {} must be 1 to {max}", self.count));
        }
        if self.window_ms == 0 || self.window_ms > 86_400_000 {
            return Some(format!(
                "{what}: `window_ms` {} must be 1 to 86400000 (a day)",
                self.window_ms
            ));
        }
        None
    }

    pub fn limit(&self) -> crate::binance::limits::Limit {
        crate::binance::limits::Limit {
            count_max: self.count,
            window: fillcast_engine::units::Nanos(self.window_ms * 1_000_000),
        }
    }
}

impl BinanceVenueSettings {
    /// The vault's path, from the config file's folder `dir`.
    pub fn vault_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.vault)
    }
}

/// The order-entry session of a `fix` venue. There is no `reset_on_logon`: a
/// session that starts again at 1 on every logon loses the executions the venue
/// sent while fillcast was away (nothing could ask for them again).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FixVenueSettings {
    pub sender_comp_id: String,
    pub target_comp_id: String,
    #[serde(default = "defaults::fix_heartbeat_s")]
    pub heartbeat_s: u32,
    /// Follower id → its Account (1) at the venue; a follower not listed trades
    /// under its own id.
    #[serde(default)]
    pub accounts: std::collections::BTreeMap<String, String>,
    /// How a reduce-only order is marked: `exec_inst` (ExecInst (18) = E, "do not
    /// increase") or `not_sent` (the venue's own risk checks keep it reducing).
    #[serde(default)]
    pub reduce_only: FixReduceOnly,
    /// Application messages per second at most (orders and status requests);
    /// unset: no limit.
    #[serde(default)]
    pub rate_per_sec: Option<u32>,
    /// The venue's own OrdRejReason (103) codes → the engine's reject policy
    /// (`insufficient_margin`, `below_min`, `position_limit`, `reduce_only`,
    /// `transient`, `other`), over FIX 4.4's standard codes.
    #[serde(default)]
    pub reject_codes: std::collections::BTreeMap<String, String>,
    /// How long a restart waits for the venue's answers about unanswered orders.
    #[serde(default = "defaults::recover_timeout_ms")]
    pub recover_timeout_ms: u64,
    /// The session store (our sequence numbers); relative to the config file's
    /// folder. Default `fix-SENDER-TARGET.seqs` there.
    #[serde(default)]
    pub store: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FixReduceOnly {
    #[default]
    ExecInst,
    NotSent,
}

impl FixVenueSettings {
    /// The session store's path: `store`, or `fix-SENDER-TARGET.seqs`, from `dir`.
    pub fn store_in(&self, dir: &Path) -> PathBuf {
        dir.join(store_file(
            self.store.as_deref(),
            &self.sender_comp_id,
            &self.target_comp_id,
        ))
    }

    /// `reject_codes` read: `Err` names the first entry that does not.
    pub fn reject_codes(
        &self,
    ) -> Result<std::collections::HashMap<u32, fillcast_engine::event::RejectReason>, String> {
        use fillcast_engine::codes::Coded;
        use fillcast_engine::event::RejectReason;
        self.reject_codes
            .iter()
            .map(|(code, reason)| {
                let c = code.parse::<u32>().ok().filter(|&c| c != 5).ok_or_else(|| {
                    format!("`{code}` is not an OrdRejReason code (a whole number; 5, unknown order, keeps its FIX meaning)")
                })?;
                let r = RejectReason::from_name(reason)
                    .filter(|r| {
                        !matches!(
                            r,
                            RejectReason::None | RejectReason::UnknownOrder | RejectReason::VenueDown
                        )
                    })
                    .ok_or_else(|| {
                        format!(
                            "code {code}: `{reason}` is not a reject policy (insufficient_margin, below_min, position_limit, reduce_only, transient, other)"
                        )
                    })?;
                Ok((c, r))
            })
            .try_fold(std::collections::HashMap::new(), |mut m, cr: Result<_, String>| {
                let (c, r) = cr?;
                match m.insert(c, r) {
                    // "3" and "03" are one code.
                    Some(_) => Err(format!("code {c} is given twice")),
                    None => Ok(m),
                }
            })
    }
}

/// A FIX session store's file name: `store`, or `fix-SENDER-TARGET.seqs`.
fn store_file(store: Option<&Path>, sender: &str, target: &str) -> PathBuf {
    store.map_or_else(
        || PathBuf::from(format!("fix-{sender}-{target}.seqs")),
        Path::to_path_buf,
    )
}

/// The simulated venue's fill model. Probabilities are in parts per million so that
/// the venue's behaviour is exact and reproducible from its seed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimVenueConfig {
    pub latency_us: u64,
    pub partial_fill_ppm: u32,
    pub reject_ppm: u32,
    pub transient_failure_ppm: u32,
    pub seed: u64,
    /// The market's full spread around the mid, ppm of the mid (`simmarket`).
    pub spread_ppm: u32,
    /// The average price impact of an order of notional `depth`, ppm of the mid.
    pub impact_ppm: u32,
    /// The notional, in the quote currency, that moves an order's average
    /// price by `impact_ppm`; > 0.
    pub depth: rust_decimal::Decimal,
    /// The fee of every fill, ppm of its notional. Every order of the engine
    /// takes liquidity (IOC or market: none rests on the book), so there is no
    /// maker fee to charge.
    pub taker_fee_ppm: u32,
}

impl Default for SimVenueConfig {
    fn default() -> Self {
        SimVenueConfig {
            latency_us: 50,
            partial_fill_ppm: 100_000,
            reject_ppm: 2_000,
            transient_failure_ppm: 2_000,
            seed: 7,
            spread_ppm: 100,
            impact_ppm: 500,
            depth: rust_decimal::Decimal::from(1_000_000),
            taker_fee_ppm: 500,
        }
    }
}

impl SimVenueConfig {
    /// The book's shape; `None` when `depth` is not a positive amount of at
    /// most 8 decimals within the money range (`check` says so first).
    pub fn market(&self) -> Option<crate::simmarket::MarketModel> {
        let depth = fillcast_engine::units::Money::from_decimal(self.depth).ok()?;
        (depth.0 > 0).then_some(crate::simmarket::MarketModel {
            spread_ppm: self.spread_ppm,
            impact_ppm: self.impact_ppm,
            depth,
        })
    }
}

/// A `[[sources]]` table as the source kinds here read it; its messages name it
/// as they did when the engine read it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(
    expecting = "internally tagged enum SourceConfig",
    tag = "kind",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum SourceSettings {
    /// Leader fills from a JSON-lines file (format in DESIGN.md).
    File {
        /// Relative to the config file's folder until `SourceSettings::of`
        /// resolves it.
        path: PathBuf,
        /// Replay at most this many lines per second (default: as fast as read).
        #[serde(default)]
        rate_per_sec: Option<u64>,
    },
    /// Synthetic leader trading (the demo's generator).
    Synthetic {
        #[serde(default)]
        fills: Option<u64>,
        #[serde(default)]
        seed: Option<u64>,
        #[serde(default)]
        rate_per_sec: Option<u64>,
    },
    /// Leaders' executions from a FIX 4.4 drop-copy session (`fix::dropcopy`).
    Fix {
        /// `host:port` of the counterparty's acceptor.
        address: String,
        sender_comp_id: String,
        target_comp_id: String,
        #[serde(default = "defaults::fix_heartbeat_s")]
        heartbeat_s: u32,
        /// ResetSeqNumFlag on every Logon: both sides start again at 1.
        #[serde(default)]
        reset_on_logon: bool,
        /// Account (1) → leader id; an account not listed is taken as the leader
        /// id itself.
        #[serde(default)]
        accounts: std::collections::BTreeMap<String, String>,
        /// The session store (our sequence numbers); relative to the config
        /// file's folder until `SourceSettings::of` resolves it. Default
        /// `fix-SENDER-TARGET.seqs` there.
        #[serde(default)]
        store: Option<PathBuf>,
    },
    /// Leaders' fills from their Binance USD-M accounts' user data streams
    /// (`binance::source`), each account's key from the key vault by name.
    Binance {
        /// Leader id → the name of its key in the vault (`fillcast keys add`).
        leaders: std::collections::BTreeMap<String, String>,
        /// The key vault; relative to the config file's folder until
        /// `SourceSettings::of` resolves it. Its master key comes from the
        /// environment (`FILLCAST_VAULT_KEY_FILE` or `FILLCAST_VAULT_KEY`).
        #[serde(default = "defaults::vault")]
        vault: PathBuf,
        /// USD-M futures REST (listen keys, `userTrades`).
        #[serde(default = "defaults::binance_rest_url")]
        rest_url: String,
        /// The user data stream's base; a stream is `<this>/ws/<listenKey>`.
        #[serde(default = "defaults::binance_stream_url")]
        stream_url: String,
        /// Where a key's permissions are asked at start
        /// (`/sapi/v1/account/apiRestrictions`).
        #[serde(default = "defaults::binance_api_url")]
        api_url: String,
        /// The public market streams' base (mark prices); unset: the `/market`
        /// route on `stream_url`'s host.
        #[serde(default)]
        market_url: Option<String>,
        /// Each symbol's mark price every `1s`, every `3s`, or `off`.
        #[serde(default)]
        mark_prices: crate::binance::source::MarkPrices,
        /// As `[venues.binance]`'s: `false` only where the venue has no
        /// `apiRestrictions` (the futures testnet).
        #[serde(default = "defaults::yes")]
        check_permissions: bool,
        #[serde(default = "defaults::recv_window_ms")]
        recv_window_ms: u64,
        /// The listen key is kept alive this often (under its 60 minutes).
        #[serde(default = "defaults::keep_alive_min")]
        keep_alive_min: u64,
        /// A stream is renewed at this age (under the venue's 24 hours).
        #[serde(default = "defaults::reconnect_before_h")]
        reconnect_before_h: u64,
        /// Take a leader's equity from its account updates: this asset's wallet
        /// balance (`USDT`). Unset: the config's equity stands.
        #[serde(default)]
        equity_asset: Option<String>,
    },
}

/// A venue's or source's settings that do not read: a config that was not loaded
/// with `GatewayKinds` (which checks them, naming file and line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("venue `{venue}`: {message}")]
    Venue { venue: String, message: String },
    #[error("{0}")]
    Source(String),
    #[error("venue index {0} out of range")]
    NoSuchVenue(u16),
}

impl VenueSettings {
    /// The settings of a venue of a config: they read for certain when it was
    /// loaded with `GatewayKinds`, not when it was built otherwise.
    pub fn of(venue: &VenueConfig) -> Result<VenueSettings, SettingsError> {
        let mut table = venue.settings.clone();
        table.insert("name".into(), venue.name.clone().into());
        table.insert("kind".into(), venue.kind.clone().into());
        let settings: VenueSettings =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| SettingsError::Venue {
                    venue: venue.name.clone(),
                    message: e.message().to_string(),
                })?;
        Ok(VenueSettings {
            dir: venue.dir.clone(),
            ..settings
        })
    }
}

impl SourceSettings {
    /// The settings of a source of a config, its path taken from the config file's
    /// folder: they read for certain when it was loaded with `GatewayKinds`.
    pub fn of(source: &SourceConfig) -> Result<SourceSettings, SettingsError> {
        let mut table = source.settings.clone();
        table.insert("kind".into(), source.kind.clone().into());
        let settings: SourceSettings = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::Source(e.message().to_string()))?;
        Ok(settings.resolved(&source.dir))
    }

    /// A file's path taken from `dir` (`Path::join` keeps an absolute path as it
    /// is); a `fix` source's store there too, `fix-SENDER-TARGET.seqs` unless set.
    fn resolved(mut self, dir: &Path) -> SourceSettings {
        match &mut self {
            SourceSettings::File { path, .. } => *path = dir.join(&*path),
            SourceSettings::Fix {
                sender_comp_id,
                target_comp_id,
                store,
                ..
            } => {
                let file = store_file(store.as_deref(), sender_comp_id, target_comp_id);
                *store = Some(dir.join(file));
            }
            SourceSettings::Binance { vault, .. } => *vault = dir.join(&*vault),
            SourceSettings::Synthetic { .. } => {}
        }
        self
    }
}

impl Kinds for GatewayKinds {
    fn read_venue(&self, table: &Item<'_>) -> Result<(), Problem> {
        table.read::<VenueSettings>().map(drop)
    }

    fn check_venue(&self, table: &Item<'_>) -> Vec<Problem> {
        // It read well before the checks began.
        let Ok(v) = table.read::<VenueSettings>() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        match (v.kind, &v.address) {
            (VenueKind::SimRemote, None) => problems.push(table.problem(
                "kind",
                "a `sim_remote` venue needs `address` (host:port of `fillcast sim-venue`)",
            )),
            (VenueKind::Fix, None) => problems.push(table.problem(
                "kind",
                "a `fix` venue needs `address` (host:port of the venue's FIX acceptor)",
            )),
            (VenueKind::Fix, Some(address)) => problems.extend(check_address(table, address)),
            (VenueKind::Sim | VenueKind::Binance, Some(_)) => problems.push(table.problem(
                "address",
                "`address` is only used by kinds `sim_remote` and `fix`",
            )),
            _ => {}
        }
        match (v.kind, &v.binance) {
            (VenueKind::Binance, None) => problems.push(table.problem(
                "kind",
                "a `binance` venue needs a `[venues.binance]` table (accounts)",
            )),
            (VenueKind::Binance, Some(b)) => {
                let t = table.table("binance");
                if b.accounts.is_empty() {
                    problems.push(t.problem(
                        "accounts",
                        "`accounts` must name each follower's key (follower id = \"key name\")",
                    ));
                }
                for (follower, key) in &b.accounts {
                    if !crate::vault::valid_name(key) {
                        problems.push(t.problem(
                            "accounts",
                            format!("follower `{follower}`: `{key}` is not a key name (1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`)"),
                        ));
                    }
                }
                for (field, url, schemes) in [
                    ("rest_url", &b.rest_url, &["https://", "http://"]),
                    ("api_url", &b.api_url, &["https://", "http://"]),
                    ("ws_api_url", &b.ws_api_url, &["wss://", "ws://"]),
                ] {
                    if !schemes.iter().any(|s| url.starts_with(s)) || url.contains('?') {
                        problems.push(t.problem(
                            field,
                            format!(
                                "`{url}` is not a {} or {} URL without a query",
                                schemes[0], schemes[1]
                            ),
                        ));
                    }
                }
                if b.recv_window_ms == 0 || b.recv_window_ms > 60_000 {
                    problems
                        .push(t.problem("recv_window_ms", "`recv_window_ms` must be 1 to 60000"));
                }
                if b.order_limits.is_empty() {
                    problems.push(t.problem(
                        "order_limits",
                        "`order_limits` needs at least one limit (Binance: [{ count = 300, window_ms = 10000 }, { count = 1200, window_ms = 60000 }])",
                    ));
                }
                for (i, l) in b.order_limits.iter().enumerate() {
                    if let Some(why) = l.problem(&format!("order limit {}", i + 1)) {
                        problems.push(t.problem("order_limits", why));
                    }
                }
                if let Some(why) = b.request_weight.problem("request_weight") {
                    problems.push(t.problem("request_weight", why));
                }
                if b.pacing_margin_ms > 10_000 {
                    problems.push(
                        t.problem("pacing_margin_ms", "`pacing_margin_ms` must be 0 to 10000"),
                    );
                }
            }
            (_, Some(_)) => problems.push(table.problem(
                "binance",
                "`[venues.binance]` is only used by kind `binance`",
            )),
            (_, None) => {}
        }
        match (v.kind, &v.fix) {
            (VenueKind::Fix, None) => problems.push(table.problem(
                "kind",
                "a `fix` venue needs a `[venues.fix]` table (sender_comp_id, target_comp_id)",
            )),
            (VenueKind::Fix, Some(fix)) => {
                problems.extend(check_fix_venue(&table.table("fix"), fix))
            }
            (_, Some(_)) => {
                problems.push(table.problem("fix", "`[venues.fix]` is only used by kind `fix`"))
            }
            (_, None) => {}
        }
        if v.heartbeat_ms == 0 || v.down_after_ms < v.heartbeat_ms {
            problems.push(table.problem(
                "down_after_ms",
                format!(
                    "`heartbeat_ms` must be at least 1 and `down_after_ms` at least `heartbeat_ms`; got {} and {}",
                    v.heartbeat_ms, v.down_after_ms
                ),
            ));
        }
        if v.down_after_ms > 3_600_000 {
            problems.push(table.problem(
                "down_after_ms",
                format!(
                    "`down_after_ms` is at most one hour (3600000); got {}",
                    v.down_after_ms
                ),
            ));
        }
        let sim = table.table("sim");
        for (field, ppm) in [
            ("partial_fill_ppm", v.sim.partial_fill_ppm),
            ("reject_ppm", v.sim.reject_ppm),
            ("transient_failure_ppm", v.sim.transient_failure_ppm),
        ] {
            if ppm > 1_000_000 {
                problems.push(sim.problem(
                    field,
                    format!("`{field}` is in parts per million: at most 1000000, got {ppm}"),
                ));
            }
        }
        for (field, ppm, max) in [
            ("spread_ppm", v.sim.spread_ppm, 1_000_000),
            ("impact_ppm", v.sim.impact_ppm, 1_000_000),
            ("taker_fee_ppm", v.sim.taker_fee_ppm, 100_000),
        ] {
            if ppm > max {
                problems.push(sim.problem(
                    field,
                    format!("`{field}` is in parts per million: at most {max}, got {ppm}"),
                ));
            }
        }
        if v.sim.market().is_none() {
            problems.push(sim.problem(
                "depth",
                format!(
                    "`depth` is a notional in the quote currency: more than 0, at most 8 decimals, at most 92233720368; got {}",
                    v.sim.depth
                ),
            ));
        }
        problems
    }

    /// No two FIX sessions keep their numbers in one store file: each would
    /// overwrite the other's, and a restart would resume at the wrong numbers.
    fn check_together(
        &self,
        cfg: &fillcast_engine::config::Config,
        venues: &[Item<'_>],
        sources: &[Item<'_>],
    ) -> Vec<Problem> {
        let mut seen: Vec<(PathBuf, String)> = Vec::new();
        let mut problems = check_accounts(cfg, venues, sources);
        let stores = venues
            .iter()
            .filter_map(|t| {
                let v = t.read::<VenueSettings>().ok()?;
                let fix = v.fix.filter(|_| v.kind == VenueKind::Fix)?;
                let what = format!("venue `{}`", v.name);
                Some((t.table("fix"), fix.store_in(t.dir()), what))
            })
            .chain(sources.iter().filter_map(|t| {
                match t.read::<SourceSettings>().ok()?.resolved(t.dir()) {
                    SourceSettings::Fix {
                        store: Some(store),
                        sender_comp_id,
                        target_comp_id,
                        ..
                    } => Some((
                        t.table(""),
                        store,
                        format!("the fix source {sender_comp_id}->{target_comp_id}"),
                    )),
                    _ => None,
                }
            }));
        for (table, store, what) in stores {
            match seen.iter().find(|(p, _)| *p == store) {
                Some((_, first)) => problems.push(table.problem(
                    "store",
                    format!(
                        "{what} keeps its sequence numbers in `{}`, as {first} does: give each FIX session its own `store`",
                        store.display()
                    ),
                )),
                None => seen.push((store, what)),
            }
        }
        problems
    }

    fn read_source(&self, table: &Item<'_>) -> Result<(), Problem> {
        table.read::<SourceSettings>().map(drop)
    }

    fn check_source(&self, table: &Item<'_>) -> Vec<Problem> {
        let Ok(source) = table.read::<SourceSettings>() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        match source.resolved(table.dir()) {
            SourceSettings::File { path, rate_per_sec } => {
                if rate_per_sec == Some(0) {
                    problems.push(table.problem("rate_per_sec", "`rate_per_sec` must be positive"));
                }
                if !path.is_file() {
                    let why = if path.exists() {
                        "is not a file"
                    } else {
                        "does not exist"
                    };
                    problems.push(
                        table.problem("path", format!("source file `{}` {why}", path.display())),
                    );
                }
            }
            SourceSettings::Synthetic {
                fills,
                rate_per_sec,
                ..
            } => {
                for (field, v) in [("fills", fills), ("rate_per_sec", rate_per_sec)] {
                    if v == Some(0) {
                        problems.push(table.problem(field, format!("`{field}` must be positive")));
                    }
                }
            }
            SourceSettings::Fix {
                address,
                sender_comp_id,
                target_comp_id,
                heartbeat_s,
                accounts,
                store,
                ..
            } => {
                problems.extend(check_address(table, &address));
                problems.extend(check_session(
                    table,
                    &sender_comp_id,
                    &target_comp_id,
                    heartbeat_s,
                ));
                if let Some(store) = &store {
                    problems.extend(check_store(table, store));
                }
                if accounts.keys().any(|a| a.is_empty()) {
                    problems.push(table.problem("accounts", "an account must not be empty"));
                }
            }
            SourceSettings::Binance {
                leaders,
                rest_url,
                stream_url,
                api_url,
                market_url,
                recv_window_ms,
                keep_alive_min,
                reconnect_before_h,
                ..
            } => {
                if leaders.is_empty() {
                    problems.push(table.problem(
                        "leaders",
                        "a `binance` source needs `leaders` (leader id = \"key name\")",
                    ));
                }
                for (leader, key) in &leaders {
                    if !crate::vault::valid_name(key) {
                        problems.push(table.problem(
                            "leaders",
                            format!("leader `{leader}`: `{key}` is not a key name (1 to 64 of A-Z, a-z, 0-9, `_`, `-`, `.`)"),
                        ));
                    }
                }
                for (field, url, schemes) in [
                    ("rest_url", &rest_url, &["https://", "http://"]),
                    ("api_url", &api_url, &["https://", "http://"]),
                    ("stream_url", &stream_url, &["wss://", "ws://"]),
                ]
                .into_iter()
                .chain(
                    market_url
                        .as_ref()
                        .map(|m| ("market_url", m, &["wss://", "ws://"])),
                ) {
                    if !schemes.iter().any(|s| url.starts_with(s)) || url.contains('?') {
                        problems.push(table.problem(
                            field,
                            format!(
                                "`{url}` is not a {} or {} URL without a query",
                                schemes[0], schemes[1]
                            ),
                        ));
                    }
                }
                if recv_window_ms == 0 || recv_window_ms > 60_000 {
                    problems.push(
                        table.problem("recv_window_ms", "`recv_window_ms` must be 1 to 60000"),
                    );
                }
                if !(1..60).contains(&keep_alive_min) {
                    problems.push(table.problem(
                        "keep_alive_min",
                        "`keep_alive_min` must be 1 to 59 (a listen key lives 60 minutes)",
                    ));
                }
                if !(1..24).contains(&reconnect_before_h) {
                    problems.push(table.problem(
                        "reconnect_before_h",
                        "`reconnect_before_h` must be 1 to 23 (the venue ends a connection at 24 hours)",
                    ));
                }
            }
        }
        problems
    }
}

/// A FIX session's `accounts` name what the config has: a venue's keys are
/// followers (a typo would send that follower's orders under its own id as
/// Account), a source's values leaders (a typo would refuse that account's
/// executions as of no leader).
fn check_accounts(
    cfg: &fillcast_engine::config::Config,
    venues: &[Item<'_>],
    sources: &[Item<'_>],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let followers: std::collections::HashSet<&str> =
        cfg.followers.iter().map(|f| f.id.as_str()).collect();
    let leaders: std::collections::HashSet<&str> =
        cfg.leaders.iter().map(|l| l.id.as_str()).collect();
    for t in venues {
        let Some(fix) = t.read::<VenueSettings>().ok().and_then(|v| v.fix) else {
            continue;
        };
        if let Some(f) = fix
            .accounts
            .keys()
            .find(|f| !followers.contains(f.as_str()))
        {
            problems.push(t.table("fix").problem(
                "accounts",
                format!("`accounts` names follower `{f}`, which this config does not have"),
            ));
        }
    }
    for t in sources {
        if let Ok(SourceSettings::Fix { accounts, .. }) = t.read::<SourceSettings>() {
            if let Some((a, l)) = accounts.iter().find(|(_, l)| !leaders.contains(l.as_str())) {
                problems.push(t.problem(
                    "accounts",
                    format!("account `{a}` maps to leader `{l}`, which this config does not have"),
                ));
            }
        }
    }
    problems
}

/// `address` is `host:port`.
fn check_address(table: &Item<'_>, address: &str) -> Option<Problem> {
    address
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0))
        .then(|| {
            table.problem(
                "address",
                format!("`address` must be host:port, not `{address}`"),
            )
        })
}

/// A FIX session's comp ids and heartbeat.
fn check_session(table: &Item<'_>, sender: &str, target: &str, heartbeat_s: u32) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (field, v) in [("sender_comp_id", sender), ("target_comp_id", target)] {
        if !printable(v) {
            problems.push(table.problem(
                field,
                format!("`{field}` must be printable ASCII without spaces, not `{v}`"),
            ));
        }
    }
    if !(1..=3600).contains(&heartbeat_s) {
        problems.push(table.problem(
            "heartbeat_s",
            format!("`heartbeat_s` must be 1 to 3600 seconds, not {heartbeat_s}"),
        ));
    }
    problems
}

/// Not empty, printable ASCII, no spaces: what a FIX identifier may hold.
fn printable(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn check_fix_venue(table: &Item<'_>, fix: &FixVenueSettings) -> Vec<Problem> {
    let mut problems = check_session(
        table,
        &fix.sender_comp_id,
        &fix.target_comp_id,
        fix.heartbeat_s,
    );
    if let Some((follower, account)) = fix
        .accounts
        .iter()
        .find(|(f, a)| f.is_empty() || !printable(a))
    {
        problems.push(table.problem(
            "accounts",
            format!("follower `{follower}`: its account `{account}` must be printable ASCII without spaces"),
        ));
    }
    if fix.rate_per_sec == Some(0) {
        problems.push(table.problem(
            "rate_per_sec",
            "`rate_per_sec` must be positive (leave it out for no limit)",
        ));
    }
    if !(1..=600_000).contains(&fix.recover_timeout_ms) {
        problems.push(table.problem(
            "recover_timeout_ms",
            format!(
                "`recover_timeout_ms` must be 1 to 600000, not {}",
                fix.recover_timeout_ms
            ),
        ));
    }
    if let Err(why) = fix.reject_codes() {
        problems.push(table.problem("reject_codes", why));
    }
    problems.extend(check_store(table, &fix.store_in(table.dir())));
    problems
}

/// A session store's folder exists: `run` writes the file at the first logon.
fn check_store(table: &Item<'_>, store: &Path) -> Option<Problem> {
    let folder = store.parent().filter(|p| !p.as_os_str().is_empty())?;
    (!folder.is_dir()).then(|| {
        table.problem(
            "store",
            format!(
                "the session store's folder `{}` does not exist (the store is `{}`)",
                folder.display(),
                store.display()
            ),
        )
    })
}

mod defaults {
    pub fn fix_heartbeat_s() -> u32 {
        30
    }

    pub fn recover_timeout_ms() -> u64 {
        10_000
    }

    pub fn heartbeat_ms() -> u64 {
        250
    }
    pub fn down_after_ms() -> u64 {
        1_000
    }

    pub fn vault() -> std::path::PathBuf {
        "keys.vault".into()
    }
    pub fn binance_rest_url() -> String {
        "https://fapi.binance.com".into()
    }
    /// The `/private` route: Binance retired user data streams on the root
    /// on 2026-04-23 (docs/BINANCE-PROTOCOL.md).
    pub fn binance_stream_url() -> String {
        "wss://fstream.binance.com/private".into()
    }
    pub fn binance_order_limits() -> Vec<super::RateLimitSetting> {
        vec![
            super::RateLimitSetting {
                count: 300,
                window_ms: 10_000,
            },
            super::RateLimitSetting {
                count: 1_200,
                window_ms: 60_000,
            },
        ]
    }
    pub fn binance_request_weight() -> super::RateLimitSetting {
        super::RateLimitSetting {
            count: 2_400,
            window_ms: 60_000,
        }
    }
    pub fn binance_pacing_margin_ms() -> u64 {
        100
    }
    pub fn yes() -> bool {
        true
    }
    pub fn binance_ws_api_url() -> String {
        "wss://ws-fapi.binance.com/ws-fapi/v1".into()
    }
    pub fn binance_api_url() -> String {
        "https://api.binance.com".into()
    }
    pub fn recv_window_ms() -> u64 {
        5_000
    }
    pub fn keep_alive_min() -> u64 {
        30
    }
    pub fn reconnect_before_h() -> u64 {
        23
    }
}
