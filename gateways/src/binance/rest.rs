//! The REST answers the adapter reads at start and on rare occasions (issue 15):
//! a key's permissions (`GET /sapi/v1/account/apiRestrictions`), the exchange's
//! filters (`GET /fapi/v1/exchangeInfo`), and a listen key (`POST
//! /fapi/v1/listenKey`). None is on the order path, so they are parsed with
//! serde (through simd-json's serde support) into owned values, with a size cap
//! first. The account's trade history (`GET /fapi/v1/userTrades`), which fills
//! the user data stream's gaps, is fetched here and parsed by `stream`.
//!
//! The exchange's filters are checked against the config at start
//! (`check_filters`): an order sized to the config's lot but not to the
//! venue's step would be rejected one by one at run time, so a mismatch refuses
//! to start, naming the symbol and both values.

use crate::binance::sign::Signer;
use crate::vault::Permissions;
use fillcast_engine::config::SymbolConfig;
use rust_decimal::Decimal;
use serde::Deserialize;

/// A REST answer longer than this is refused before parsing (`exchangeInfo`
/// for every USD-M symbol is about 1 MiB).
pub const BODY_MAX: usize = 8 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{what}: {len} bytes, more than the {max} accepted")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: not the documented JSON: {reason}")]
    Shape { what: &'static str, reason: String },
}

fn parse<T: for<'de> Deserialize<'de>>(what: &'static str, body: &[u8]) -> Result<T, ParseError> {
    if body.len() > BODY_MAX {
        return Err(ParseError::TooLarge {
            what,
            len: body.len(),
            max: BODY_MAX,
        });
    }
    let mut copy = body.to_vec();
    simd_json::serde::from_slice(&mut copy).map_err(|e| ParseError::Shape {
        what,
        reason: e.to_string(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Restrictions {
    enable_withdrawals: bool,
    enable_futures: bool,
}

/// A key's permissions from an `apiRestrictions` answer, stamped `now_ms`. Both
/// fields must be there: a key whose withdrawal permission is not stated is not
/// known to be safe.
pub fn permissions(body: &[u8], now_ms: i64) -> Result<Permissions, ParseError> {
    let r: Restrictions = parse("apiRestrictions", body)?;
    Ok(Permissions {
        futures: r.enable_futures,
        withdrawals: r.enable_withdrawals,
        checked_at_ms: now_ms,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionRiskItem {
    symbol: String,
    /// `BOTH` in one-way mode; `LONG`/`SHORT` in hedge mode.
    position_side: String,
    position_amt: String,
}

/// One account's positions, as `GET /fapi/v3/positionRisk` states them: (symbol,
/// signed quantity), every non-zero one, summed over the hedge-mode sides
/// (`SHORT`'s amounts are negative already). A quantity that is not an exact
/// decimal refuses the whole answer: a position read wrong would make a
/// reconciliation say what is not so.
pub fn positions(body: &[u8]) -> Result<Vec<(String, rust_decimal::Decimal)>, ParseError> {
    let items: Vec<PositionRiskItem> = parse("positionRisk", body)?;
    let mut out: Vec<(String, rust_decimal::Decimal)> = Vec::new();
    for i in items {
        if !matches!(i.position_side.as_str(), "BOTH" | "LONG" | "SHORT") {
            return Err(ParseError::Shape {
                what: "positionRisk",
                reason: format!("positionSide {:?}", i.position_side),
            });
        }
        let qty = crate::fix::codec::parse_decimal(i.position_amt.as_bytes()).map_err(|_| {
            ParseError::Shape {
                what: "positionRisk",
                reason: format!("positionAmt {:?} of {}", i.position_amt, i.symbol),
            }
        })?;
        match out.iter_mut().find(|(s, _)| *s == i.symbol) {
            Some((_, q)) => *q += qty,
            None => out.push((i.symbol, qty)),
        }
    }
    out.retain(|(_, q)| !q.is_zero());
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListenKey {
    listen_key: String,
}

/// The listen key of a `POST /fapi/v1/listenKey` answer: 1 to 128 characters of
/// `[A-Za-z0-9]`, since it goes into a URL.
pub fn listen_key(body: &[u8]) -> Result<String, ParseError> {
    let k: ListenKey = parse("listenKey", body)?;
    if k.listen_key.is_empty()
        || k.listen_key.len() > 128
        || !k.listen_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(ParseError::Shape {
            what: "listenKey",
            reason: "the key is empty, longer than 128 or not alphanumeric".into(),
        });
    }
    Ok(k.listen_key)
}

#[derive(Deserialize)]
struct ExchangeInfo {
    symbols: Vec<SymbolInfo>,
}

#[derive(Deserialize)]
struct SymbolInfo {
    symbol: String,
    filters: Vec<Filter>,
}

#[derive(Deserialize)]
#[serde(tag = "filterType")]
enum Filter {
    #[serde(rename = "PRICE_FILTER", rename_all = "camelCase")]
    Price { tick_size: Decimal },
    #[serde(rename = "LOT_SIZE", rename_all = "camelCase")]
    Lot {
        step_size: Decimal,
        min_qty: Decimal,
    },
    #[serde(rename = "MIN_NOTIONAL")]
    MinNotional { notional: Decimal },
    #[serde(other)]
    Other,
}

/// One symbol's order filters as the venue states them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolFilters {
    pub symbol: String,
    pub tick_size: Option<Decimal>,
    pub step_size: Option<Decimal>,
    pub min_qty: Option<Decimal>,
    pub min_notional: Option<Decimal>,
}

/// Every symbol's filters from an `exchangeInfo` answer.
pub fn exchange_filters(body: &[u8]) -> Result<Vec<SymbolFilters>, ParseError> {
    let info: ExchangeInfo = parse("exchangeInfo", body)?;
    Ok(info
        .symbols
        .into_iter()
        .map(|s| {
            let mut f = SymbolFilters {
                symbol: s.symbol,
                tick_size: None,
                step_size: None,
                min_qty: None,
                min_notional: None,
            };
            for filter in s.filters {
                match filter {
                    Filter::Price { tick_size } => f.tick_size = Some(tick_size),
                    Filter::Lot { step_size, min_qty } => {
                        f.step_size = Some(step_size);
                        f.min_qty = Some(min_qty);
                    }
                    Filter::MinNotional { notional } => f.min_notional = Some(notional),
                    Filter::Other => {}
                }
            }
            f
        })
        .collect())
}

/// Where the config and the venue disagree about symbols this venue trades: one
/// line each, naming the symbol, the setting and both values. Empty when they
/// agree. The config's `lot_size` must equal the venue's `stepSize` and its
/// `tick_size` the venue's `tickSize` (orders are sized in them); its `min_qty`
/// (one lot when unset) and `min_notional` (0 when unset) must be at least the
/// venue's, or orders the engine thinks valid would be rejected.
pub fn check_filters<'a>(
    symbols: impl IntoIterator<Item = &'a SymbolConfig>,
    venue: &[SymbolFilters],
) -> Vec<String> {
    let mut out = Vec::new();
    for s in symbols {
        let Some(v) = venue.iter().find(|v| v.symbol == s.name) else {
            out.push(format!("{}: the venue does not list this symbol", s.name));
            continue;
        };
        let mut equal =
            |what: &str, ours: Decimal, theirs: Option<Decimal>, venue_name: &str| match theirs {
                Some(t) if t.normalize() == ours.normalize() => {}
                Some(t) => out.push(format!(
                    "{}: `{what}` is {} in the config, the venue's {venue_name} is {}",
                    s.name,
                    ours.normalize(),
                    t.normalize()
                )),
                None => out.push(format!("{}: the venue states no {venue_name}", s.name)),
            };
        equal("lot_size", s.lot_size, v.step_size, "LOT_SIZE stepSize");
        equal(
            "tick_size",
            s.tick_size,
            v.tick_size,
            "PRICE_FILTER tickSize",
        );
        let min_qty = s.min_qty.unwrap_or(s.lot_size);
        if let Some(t) = v.min_qty.filter(|t| min_qty < *t) {
            out.push(format!(
                "{}: `min_qty` is {} in the config, below the venue's LOT_SIZE minQty {}",
                s.name,
                min_qty.normalize(),
                t.normalize()
            ));
        }
        let min_notional = s.min_notional.unwrap_or_default();
        if let Some(t) = v.min_notional.filter(|t| min_notional < *t) {
            out.push(format!(
                "{}: `min_notional` is {} in the config, below the venue's MIN_NOTIONAL notional {}",
                s.name,
                min_notional.normalize(),
                t.normalize()
            ));
        }
    }
    out
}

/// Where a `GET /fapi/v1/userTrades` page starts. The documentation: without
/// times the last 7 days are answered; `endTime` is at most 7 days after
/// `startTime`; `fromId` may not come with either.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TradesFrom {
    /// Trades from `startTime` on, up to `endTime` when given.
    Time { start_ms: u64, end_ms: Option<u64> },
    /// Trades with this id and later ones, in id order (`fromId`).
    Id(u64),
}

/// What a REST call can fail with. Messages hold the path and the venue's own
/// code and message, never a key or a signature.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("{path}: the venue answered HTTP {status}: code {code}, {msg}")]
    Venue {
        path: &'static str,
        status: u16,
        code: i64,
        msg: String,
    },
    #[error("{path}: {reason}")]
    Transport { path: &'static str, reason: String },
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// A blocking client for one REST base URL (`https://fapi.binance.com`, or the
/// `/sapi` host `https://api.binance.com`, or a test venue's). Calls are rare and
/// made off the order path, so blocking with a timeout is the simple, right tool.
pub struct RestClient {
    agent: ureq::Agent,
    base: String,
    recv_window_ms: u64,
}

/// A venue's or the network's message as an error may hold it: at most 200
/// characters, control characters escaped (it reaches terminals and logs).
fn shown(msg: &str) -> String {
    msg.chars()
        .take(200)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `msg`, unless it quotes 12 or more characters of `api_key` (a proxy or a
/// server that echoes the request): then a sentence saying so. Every caller's
/// error output goes through here, so no caller can print an echoed key.
fn unquoted(msg: String, api_key: &str) -> String {
    const QUOTE_MIN: usize = 12;
    let key = api_key.as_bytes();
    let quotes = key.len() >= QUOTE_MIN
        && key
            .windows(QUOTE_MIN)
            .any(|w| msg.as_bytes().windows(QUOTE_MIN).any(|m| m == w));
    if quotes {
        "the venue's answer quotes the key's own material, so it is not shown (a proxy, or a server that echoes requests?)".into()
    } else {
        msg
    }
}

#[derive(Deserialize)]
struct VenueError {
    code: i64,
    msg: String,
}

impl RestClient {
    pub fn new(base: &str, timeout: std::time::Duration, recv_window_ms: u64) -> RestClient {
        RestClient {
            // No redirects: ureq would send the API key header on to wherever
            // a redirect points, and take that host's answer for the venue's.
            agent: ureq::AgentBuilder::new()
                .timeout(timeout)
                .redirects(0)
                .build(),
            base: base.trim_end_matches('/').to_string(),
            recv_window_ms,
        }
    }

    /// Sends `method path?query` with the API key header and answers the body,
    /// or the venue's error.
    fn call(
        &self,
        method: &str,
        path: &'static str,
        query: &str,
        api_key: &str,
    ) -> Result<Vec<u8>, RestError> {
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let mut req = self.agent.request(method, &url);
        if !api_key.is_empty() {
            req = req.set("X-MBX-APIKEY", api_key);
        }
        let read = |r: ureq::Response| -> Result<Vec<u8>, RestError> {
            let mut body = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(r.into_reader(), BODY_MAX as u64 + 1),
                &mut body,
            )
            .map_err(|e| RestError::Transport {
                path,
                reason: format!("reading the answer: {e}"),
            })?;
            Ok(body)
        };
        match req.call() {
            Ok(r) => read(r),
            Err(ureq::Error::Status(status, r)) => {
                let body = read(r)?;
                let e: VenueError = parse(path, &body).unwrap_or(VenueError {
                    code: 0,
                    msg: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                });
                Err(RestError::Venue {
                    path,
                    status,
                    code: e.code,
                    msg: unquoted(shown(&e.msg), api_key),
                })
            }
            // Not `e.to_string()`: it quotes the whole URL, a signed call's
            // query and signature with it.
            Err(ureq::Error::Transport(t)) => Err(RestError::Transport {
                path,
                reason: shown(&match t.message() {
                    Some(m) => format!("{}: {m}", t.kind()),
                    None => t.kind().to_string(),
                }),
            }),
        }
    }

    /// A signed (`USER_DATA`) GET: `params`, then `recvWindow`, `timestamp` and the
    /// signature of exactly that string, last, as the documentation requires.
    pub(crate) fn signed_get(
        &self,
        path: &'static str,
        params: &str,
        api_key: &str,
        signer: &Signer,
        now_ms: i64,
    ) -> Result<Vec<u8>, RestError> {
        let mut query = String::with_capacity(params.len() + 96);
        query.push_str(params);
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!(
            "recvWindow={}&timestamp={now_ms}",
            self.recv_window_ms
        ));
        let sig = signer.sign(query.as_bytes());
        query.push_str("&signature=");
        // Base64 (Ed25519) has `+`, `/` and `=`, which a query must escape; hex
        // (HMAC) has none of them.
        for b in sig.as_str().bytes() {
            match b {
                b'+' => query.push_str("%2B"),
                b'/' => query.push_str("%2F"),
                b'=' => query.push_str("%3D"),
                b => query.push(b as char),
            }
        }
        self.call("GET", path, &query, api_key)
    }

    /// What the key may do (`GET /sapi/v1/account/apiRestrictions`, on the
    /// `/sapi` host).
    pub fn api_restrictions(
        &self,
        api_key: &str,
        signer: &Signer,
        now_ms: i64,
    ) -> Result<Permissions, RestError> {
        const PATH: &str = "/sapi/v1/account/apiRestrictions";
        let body = self.signed_get(PATH, "", api_key, signer, now_ms)?;
        Ok(permissions(&body, now_ms)?)
    }

    /// The account's positions (`GET /fapi/v3/positionRisk`, signed, weight 5):
    /// see `positions`.
    pub fn position_risk(
        &self,
        api_key: &str,
        signer: &Signer,
        now_ms: i64,
    ) -> Result<Vec<(String, rust_decimal::Decimal)>, RestError> {
        let body = self.signed_get("/fapi/v3/positionRisk", "", api_key, signer, now_ms)?;
        Ok(positions(&body)?)
    }

    /// Every symbol's filters (`GET /fapi/v1/exchangeInfo`, unsigned).
    pub fn exchange_info(&self) -> Result<Vec<SymbolFilters>, RestError> {
        let body = self.call("GET", "/fapi/v1/exchangeInfo", "", "")?;
        Ok(exchange_filters(&body)?)
    }

    /// A listen key for the account of `api_key` (`POST /fapi/v1/listenKey`):
    /// the account's active one, extended, if it has one.
    pub fn new_listen_key(&self, api_key: &str) -> Result<String, RestError> {
        let body = self.call("POST", "/fapi/v1/listenKey", "", api_key)?;
        Ok(listen_key(&body)?)
    }

    /// Extends the account's listen key by 60 minutes (`PUT`); the venue's
    /// -1125 means it expired and a new one must be made.
    pub fn keep_listen_key(&self, api_key: &str) -> Result<(), RestError> {
        self.call("PUT", "/fapi/v1/listenKey", "", api_key)
            .map(|_| ())
    }

    /// One page of the account's trades of `symbol` (`GET /fapi/v1/userTrades`,
    /// signed, weight 5), at most `limit` (1 to 1000) from `from`: the raw body,
    /// for `stream::Parser::user_trades`. The venue keeps 6 months of trades.
    pub fn user_trades(
        &self,
        api_key: &str,
        signer: &Signer,
        symbol: &str,
        from: TradesFrom,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<u8>, RestError> {
        const PATH: &str = "/fapi/v1/userTrades";
        // The symbol goes into the signed query unescaped: only the characters
        // of Binance's symbol names (`^[A-Z0-9-_.]{1,20}$`), with room.
        if symbol.is_empty()
            || symbol.len() > 32
            || !symbol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(RestError::Transport {
                path: PATH,
                reason: format!(
                    "symbol {:?} is not 1 to 32 of A-Z, 0-9, `-`, `_`, `.`",
                    symbol.chars().take(40).collect::<String>()
                ),
            });
        }
        let limit = limit.clamp(1, crate::binance::stream::USER_TRADES_MAX);
        let params = match from {
            TradesFrom::Time {
                start_ms,
                end_ms: None,
            } => format!("symbol={symbol}&startTime={start_ms}&limit={limit}"),
            TradesFrom::Time {
                start_ms,
                end_ms: Some(end_ms),
            } => format!("symbol={symbol}&startTime={start_ms}&endTime={end_ms}&limit={limit}"),
            TradesFrom::Id(id) => format!("symbol={symbol}&fromId={id}&limit={limit}"),
        };
        self.signed_get(PATH, &params, api_key, signer, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// The shape of the documentation's `exchangeInfo` example, cut to one symbol.
    const INFO: &str = r#"{"timezone":"UTC","serverTime":1565613908500,"rateLimits":[],
      "symbols":[{"symbol":"BTCUSDT","pair":"BTCUSDT","contractType":"PERPETUAL",
        "filters":[
          {"filterType":"PRICE_FILTER","maxPrice":"300","minPrice":"0.0001","tickSize":"0.10"},
          {"filterType":"LOT_SIZE","maxQty":"10000000","minQty":"0.001","stepSize":"0.001"},
          {"filterType":"MARKET_LOT_SIZE","maxQty":"590119","minQty":"1","stepSize":"1"},
          {"filterType":"MAX_NUM_ORDERS","limit":200},
          {"filterType":"MIN_NOTIONAL","notional":"5.0"},
          {"filterType":"PERCENT_PRICE","multiplierUp":"1.1500","multiplierDown":"0.8500","multiplierDecimal":4}]}]}"#;

    fn symbol(lot: Decimal, tick: Decimal, min_notional: Option<Decimal>) -> SymbolConfig {
        SymbolConfig {
            name: "BTCUSDT".into(),
            lot_size: lot,
            tick_size: tick,
            min_qty: None,
            min_notional,
            venue: "binance".into(),
            removed: false,
        }
    }

    #[test]
    fn exchange_filters_read_the_documented_shape() {
        let f = exchange_filters(INFO.as_bytes()).unwrap();
        assert_eq!(
            f,
            vec![SymbolFilters {
                symbol: "BTCUSDT".into(),
                tick_size: Some(dec!(0.10)),
                step_size: Some(dec!(0.001)),
                min_qty: Some(dec!(0.001)),
                min_notional: Some(dec!(5.0)),
            }]
        );
    }

    #[test]
    fn a_config_that_agrees_with_the_venue_passes_and_each_disagreement_is_named() {
        let f = exchange_filters(INFO.as_bytes()).unwrap();
        assert!(check_filters([&symbol(dec!(0.001), dec!(0.1), Some(dec!(5)))], &f).is_empty());
        let bad = check_filters([&symbol(dec!(0.01), dec!(0.5), None)], &f);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].contains("BTCUSDT") && bad[0].contains("0.01") && bad[0].contains("0.001"));
        assert!(bad[1].contains("tick_size") && bad[1].contains("0.5") && bad[1].contains("0.1"));
        assert!(bad[2].contains("min_notional") && bad[2].contains("5"));
        let mut other = symbol(dec!(0.001), dec!(0.1), Some(dec!(5)));
        other.name = "ETHUSDT".into();
        assert_eq!(check_filters([&other], &f).len(), 1);
    }

    #[test]
    fn permissions_need_both_documented_fields() {
        let body = br#"{"ipRestrict":false,"createTime":1698645219000,"enableReading":true,
            "enableWithdrawals":false,"enableInternalTransfer":false,"enableMargin":false,
            "enableFutures":true,"permitsUniversalTransfer":false,"enableVanillaOptions":false,
            "enableSpotAndMarginTrading":false}"#;
        let p = permissions(body, 7).unwrap();
        assert_eq!(
            (p.futures, p.withdrawals, p.checked_at_ms),
            (true, false, 7)
        );
        assert!(permissions(br#"{"enableFutures":true}"#, 7).is_err());
        assert!(permissions(br#"{"enableFutures":true,"enableWithdrawals":"no"}"#, 7).is_err());
    }

    #[test]
    fn position_risk_gives_each_non_zero_position_and_refuses_what_it_cannot_read() {
        // The documented v3 shape (fields cut), one-way and hedge mode.
        let body = br#"[
          {"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"0.060","entryPrice":"42088.0","markPrice":"42090.1","unRealizedProfit":"0.126","updateTime":1720736417660},
          {"symbol":"ETHUSDT","positionSide":"LONG","positionAmt":"1.50","entryPrice":"3000"},
          {"symbol":"ETHUSDT","positionSide":"SHORT","positionAmt":"-0.25","entryPrice":"3001"},
          {"symbol":"SOLUSDT","positionSide":"BOTH","positionAmt":"0.00"}]"#;
        assert_eq!(
            positions(body).unwrap(),
            vec![
                ("BTCUSDT".to_string(), dec!(0.060)),
                ("ETHUSDT".to_string(), dec!(1.25))
            ]
        );
        assert_eq!(positions(b"[]").unwrap(), vec![]);
        for bad in [
            &br#"[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"1e3"}]"#[..],
            br#"[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":0.5}]"#,
            br#"[{"symbol":"BTCUSDT","positionSide":"SIDEWAYS","positionAmt":"1"}]"#,
            br#"[{"symbol":"BTCUSDT","positionSide":"BOTH"}]"#,
            br#"{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}"#,
            br#"[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"99999999999999999999999999999999"}]"#,
            b"[{",
            b"",
        ] {
            assert!(positions(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let huge = vec![b' '; BODY_MAX + 1];
        assert!(matches!(positions(&huge), Err(ParseError::TooLarge { .. })));
    }

    #[test]
    fn listen_keys_are_urls_safe_or_refused() {
        let k = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1";
        assert_eq!(
            listen_key(format!(r#"{{"listenKey":"{k}"}}"#).as_bytes()).unwrap(),
            k
        );
        for bad in [
            r#"{"listenKey":""}"#,
            r#"{"listenKey":"a/../b"}"#,
            r#"{"key":"x"}"#,
            "{",
        ] {
            assert!(listen_key(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_venue_message_that_quotes_the_api_key_is_withheld() {
        let key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
        let echoed = format!("Invalid API-key {}", &key[10..30]);
        assert!(!unquoted(echoed, key).contains(&key[10..30]));
        assert_eq!(
            unquoted("Signature for this request is not valid.".into(), key),
            "Signature for this request is not valid."
        );
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        for len in 0..INFO.len() {
            let _ = exchange_filters(&INFO.as_bytes()[..len]);
        }
        let huge = vec![b' '; BODY_MAX + 1];
        assert!(matches!(
            exchange_filters(&huge),
            Err(ParseError::TooLarge { .. })
        ));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(exchange_filters(deep.as_bytes()).is_err());
        assert!(exchange_filters(&[0xff, 0xfe, b'{']).is_err());
        proptest::proptest!(|(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512))| {
            let _ = exchange_filters(&bytes);
            let _ = permissions(&bytes, 0);
            let _ = listen_key(&bytes);
        });
    }
}
