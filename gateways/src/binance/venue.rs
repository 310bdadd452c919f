//! A protocol-faithful Binance USD-M test venue (issue 15): the real venue
//! cannot be reached from the machines fillcast is tested on, so this one speaks
//! the documented shapes over real sockets, verifies every signature, and
//! answers with the documented errors. It drives the tests and can serve a demo;
//! the adapter talks to it exactly as to the real venue, only the URLs differ.
//!
//! Built so far:
//! - REST (HTTP, `tiny_http`): `GET /sapi/v1/account/apiRestrictions` and `GET
//!   /fapi/v1/userTrades` (signed), `GET /fapi/v1/exchangeInfo`, and
//!   `POST`/`PUT`/`DELETE /fapi/v1/listenKey` (API key only);
//! - the user data stream (`/ws/<listenKey>`, a WebSocket on the same port): a
//!   leader's trade (`trade`) is pushed to the account's open streams as
//!   `ORDER_TRADE_UPDATE` and kept for `userTrades`; streams drop and listen
//!   keys expire (with `listenKeyExpired`) on demand.
//!
//! Not yet: the WebSocket API for orders and the rate limits (see the README's
//! status of issue 15).
//!
//! Errors are the documented ones: -2015 for an unknown API key (HTTP 401),
//! -1022 for a signature that does not verify, -1021 for a timestamp outside
//! `recvWindow`, -1102 for a missing parameter, -1125 for a listen key that is
//! not the account's (all HTTP 400).

use crate::binance::rest::SymbolFilters;
use crate::binance::sign::HmacKey;
use base64::Engine as _;
use fillcast_engine::model::Side;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// How the venue checks an account's signatures.
#[derive(Clone)]
pub enum AccountKey {
    /// The shared HMAC secret.
    Hmac(Vec<u8>),
    /// The Ed25519 public key.
    Ed25519([u8; 32]),
}

/// One account of the test venue: its API key, how it signs, and what the key
/// may do (what `apiRestrictions` answers).
#[derive(Clone)]
pub struct VenueAccount {
    pub api_key: String,
    pub key: AccountKey,
    pub withdrawals: bool,
    pub futures: bool,
}

#[derive(Clone)]
pub struct TestVenueOptions {
    pub accounts: Vec<VenueAccount>,
    pub symbols: Vec<SymbolFilters>,
}

/// A trade of an account, as a test makes one happen (`TestVenue::trade`).
#[derive(Clone, Debug)]
pub struct VenueTrade {
    pub symbol: String,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub order_id: u64,
    /// The order's whole quantity.
    pub order_qty: Decimal,
    pub client_order_id: String,
}

/// A trade as the venue keeps it for `userTrades`.
struct Kept {
    api_key: String,
    id: u64,
    time_ms: i64,
    trade: VenueTrade,
}

/// What a stream's thread is told to do.
enum Push {
    Text(String),
    Close,
}

#[derive(Default)]
struct State {
    /// Per API key: its listen key and whether it has expired.
    listen_keys: HashMap<String, (String, bool)>,
    next_key: u64,
    /// Requests answered, by path, for tests that count what the adapter asked.
    requests: HashMap<String, u64>,
    /// Open user data streams: their account's API key and their thread.
    streams: Vec<(String, crossbeam_channel::Sender<Push>)>,
    trades: Vec<Kept>,
    next_trade: u64,
    /// Per (account, order id): the quantity filled so far.
    filled: HashMap<(String, u64), Decimal>,
}

struct Shared {
    opts: TestVenueOptions,
    state: Mutex<State>,
}

/// A running test venue; stops when dropped.
pub struct TestVenue {
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl TestVenue {
    /// Serves on `listen` (`127.0.0.1:0` for any free port).
    pub fn start(listen: &str, opts: TestVenueOptions) -> io::Result<TestVenue> {
        let server = tiny_http::Server::http(listen).map_err(io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("the test venue listens on no IP address"))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            opts,
            state: Mutex::new(State::default()),
        });
        let thread = {
            let (server, shared) = (Arc::clone(&server), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("binance-test-venue".into())
                .spawn(move || {
                    for req in server.incoming_requests() {
                        if req.url().starts_with("/ws/") {
                            stream(&shared, req);
                            continue;
                        }
                        let (status, body) = answer(&shared, &req);
                        let header = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"application/json"[..],
                        )
                        .expect("a static header");
                        let _ = req.respond(
                            tiny_http::Response::from_string(body)
                                .with_status_code(status)
                                .with_header(header),
                        );
                    }
                })?
        };
        Ok(TestVenue {
            server,
            shared,
            thread: Some(thread),
            addr,
        })
    }

    /// The REST base URL (`http://127.0.0.1:PORT`), for both `/fapi` and `/sapi`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The user data stream's base URL (`ws://127.0.0.1:PORT`); a stream is
    /// `/ws/<listenKey>` under it.
    pub fn stream_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Expires every account's listen key: open streams get `listenKeyExpired`
    /// and are closed, and the next keep-alive gets -1125.
    pub fn expire_listen_keys(&self) {
        let mut st = self.shared.state.lock().expect("venue state");
        for k in st.listen_keys.values_mut() {
            k.1 = true;
        }
        let now = now_ms();
        let streams = std::mem::take(&mut st.streams);
        for (api_key, tx) in streams {
            let key = st
                .listen_keys
                .get(&api_key)
                .map(|k| k.0.clone())
                .unwrap_or_default();
            let _ = tx.send(Push::Text(format!(
                r#"{{"e":"listenKeyExpired","E":"{now}","listenKey":"{key}"}}"#
            )));
            let _ = tx.send(Push::Close);
        }
    }

    /// Closes every user data stream, as a network drop would; trades made
    /// before a client connects again reach it only through `userTrades`.
    pub fn drop_streams(&self) {
        let mut st = self.shared.state.lock().expect("venue state");
        for (_, tx) in st.streams.drain(..) {
            let _ = tx.send(Push::Close);
        }
    }

    /// How many user data streams are open.
    pub fn streams(&self) -> usize {
        let st = self.shared.state.lock().expect("venue state");
        st.streams.len()
    }

    /// The account of `api_key` trades: pushed to its open streams as an
    /// `ORDER_TRADE_UPDATE` (`x` TRADE) and kept for `userTrades`. Returns the
    /// trade id.
    pub fn trade(&self, api_key: &str, t: &VenueTrade) -> u64 {
        let mut st = self.shared.state.lock().expect("venue state");
        st.next_trade += 1;
        let id = 1_000_000 + st.next_trade;
        let time = now_ms();
        let filled = st
            .filled
            .entry((api_key.to_string(), t.order_id))
            .or_default();
        *filled += t.qty;
        let status = if *filled >= t.order_qty {
            "FILLED"
        } else {
            "PARTIALLY_FILLED"
        };
        let text = format!(
            r#"{{"e":"ORDER_TRADE_UPDATE","E":{time},"T":{time},"o":{{"s":"{}","c":"{}","S":"{}","o":"LIMIT","f":"GTC","q":"{}","p":"{}","ap":"{}","sp":"0","x":"TRADE","X":"{status}","i":{},"l":"{}","z":"{}","L":"{}","N":"USDT","n":"0","T":{time},"t":{id},"m":false,"R":false,"ot":"LIMIT","ps":"BOTH","rp":"0","V":"NONE","pm":"NONE","gtd":0}}}}"#,
            t.symbol,
            t.client_order_id,
            side_name(t.side),
            t.order_qty,
            t.price,
            t.price,
            t.order_id,
            t.qty,
            filled,
            t.price
        );
        st.streams
            .retain(|(k, tx)| k != api_key || tx.send(Push::Text(text.clone())).is_ok());
        st.trades.push(Kept {
            api_key: api_key.to_string(),
            id,
            time_ms: time,
            trade: t.clone(),
        });
        id
    }

    /// How many requests for `path` the venue answered.
    pub fn requests(&self, path: &str) -> u64 {
        let st = self.shared.state.lock().expect("venue state");
        st.requests.get(path).copied().unwrap_or(0)
    }
}

impl Drop for TestVenue {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn error(status: u16, code: i64, msg: &str) -> (u16, String) {
    (status, format!(r#"{{"code":{code},"msg":"{msg}"}}"#))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn answer(shared: &Shared, req: &tiny_http::Request) -> (u16, String) {
    let url = req.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    {
        let mut st = shared.state.lock().expect("venue state");
        *st.requests.entry(path.to_string()).or_default() += 1;
    }
    let api_key = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-MBX-APIKEY"))
        .map(|h| h.value.as_str().to_string());
    let account = api_key
        .as_deref()
        .and_then(|k| shared.opts.accounts.iter().find(|a| a.api_key == k));
    let method = req.method().as_str();
    match (method, path) {
        ("GET", "/fapi/v1/exchangeInfo") => (200, exchange_info(&shared.opts.symbols)),
        ("GET", "/sapi/v1/account/apiRestrictions") => {
            let Some(account) = account else {
                return error(
                    401,
                    -2015,
                    "Invalid API-key, IP, or permissions for action.",
                );
            };
            if let Err(e) = verify(account, query) {
                return e;
            }
            (
                200,
                format!(
                    r#"{{"ipRestrict":false,"createTime":1698645219000,"enableReading":true,"enableWithdrawals":{},"enableInternalTransfer":false,"enableMargin":false,"enableFutures":{},"permitsUniversalTransfer":false,"enableVanillaOptions":false,"enableSpotAndMarginTrading":false}}"#,
                    account.withdrawals, account.futures
                ),
            )
        }
        ("GET", "/fapi/v1/userTrades") => {
            let Some(account) = account else {
                return error(
                    401,
                    -2015,
                    "Invalid API-key, IP, or permissions for action.",
                );
            };
            if let Err(e) = verify(account, query) {
                return e;
            }
            let st = shared.state.lock().expect("venue state");
            user_trades(&st, &account.api_key, query)
        }
        (_, "/fapi/v1/listenKey") => {
            let Some(account) = account else {
                return error(
                    401,
                    -2015,
                    "Invalid API-key, IP, or permissions for action.",
                );
            };
            let mut st = shared.state.lock().expect("venue state");
            match method {
                "POST" => {
                    let fresh = match st.listen_keys.get(&account.api_key) {
                        Some((k, false)) => k.clone(),
                        _ => {
                            st.next_key += 1;
                            format!("tv{:062}", st.next_key)
                        }
                    };
                    st.listen_keys
                        .insert(account.api_key.clone(), (fresh.clone(), false));
                    (200, format!(r#"{{"listenKey":"{fresh}"}}"#))
                }
                "PUT" => match st.listen_keys.get(&account.api_key) {
                    Some((_, false)) => (200, "{}".into()),
                    _ => error(400, -1125, "This listenKey does not exist."),
                },
                "DELETE" => {
                    st.listen_keys.remove(&account.api_key);
                    (200, "{}".into())
                }
                _ => error(
                    405,
                    -1000,
                    "An unknown error occured while processing the request.",
                ),
            }
        }
        _ => error(
            404,
            -1000,
            "An unknown error occured while processing the request.",
        ),
    }
}

/// Checks a signed request's `timestamp`, `recvWindow` and `signature` (the
/// last parameter, over everything before it) as the documentation says.
fn verify(account: &VenueAccount, query: &str) -> Result<(), (u16, String)> {
    let Some((payload, sig)) = query.rsplit_once("&signature=") else {
        return Err(error(
            400,
            -1102,
            "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        ));
    };
    let param = |name: &str| {
        payload
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let Some(ts) = param("timestamp").and_then(|t| t.parse::<i64>().ok()) else {
        return Err(error(
            400,
            -1102,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        ));
    };
    let window = param("recvWindow")
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or(5000);
    let server = now_ms();
    if !(ts < server + 1000 && server - ts <= window) {
        return Err(error(
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    let ok = match &account.key {
        AccountKey::Hmac(secret) => HmacKey::new(secret)
            .map(|k| {
                k.sign(payload.as_bytes())
                    .as_str()
                    .eq_ignore_ascii_case(sig)
            })
            .unwrap_or(false),
        AccountKey::Ed25519(public) => {
            let text = sig
                .replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "=");
            let bytes = base64::engine::general_purpose::STANDARD.decode(text);
            match (ed25519_dalek::VerifyingKey::from_bytes(public), bytes) {
                (Ok(vk), Ok(b)) => <[u8; 64]>::try_from(b.as_slice()).is_ok_and(|b| {
                    vk.verify_strict(
                        payload.as_bytes(),
                        &ed25519_dalek::Signature::from_bytes(&b),
                    )
                    .is_ok()
                }),
                _ => false,
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(error(
            400,
            -1022,
            "Signature for this request is not valid.",
        ))
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// `GET /fapi/v1/userTrades` for the account: `symbol` (required), then
/// `fromId`, `startTime`, `endTime` and `limit` (500, at most 1000) as the
/// documentation describes them, oldest first.
fn user_trades(st: &State, api_key: &str, query: &str) -> (u16, String) {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let Some(symbol) = param("symbol") else {
        return error(
            400,
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        );
    };
    let num = |name| param(name).and_then(|v| v.parse::<i64>().ok());
    let (from_id, start, end) = (num("fromId"), num("startTime"), num("endTime"));
    if from_id.is_some() && (start.is_some() || end.is_some()) {
        return error(400, -1128, "Combination of optional parameters invalid.");
    }
    let limit = num("limit").unwrap_or(500).clamp(1, 1000) as usize;
    let rows: Vec<String> = st
        .trades
        .iter()
        .filter(|k| k.api_key == api_key && k.trade.symbol == symbol)
        .filter(|k| from_id.is_none_or(|f| k.id as i64 >= f))
        .filter(|k| start.is_none_or(|t| k.time_ms >= t))
        .filter(|k| end.is_none_or(|t| k.time_ms <= t))
        .take(limit)
        .map(|k| {
            let t = &k.trade;
            format!(
                r#"{{"buyer":{},"commission":"0","commissionAsset":"USDT","id":{},"maker":false,"orderId":{},"price":"{}","qty":"{}","quoteQty":"{}","realizedPnl":"0","side":"{}","positionSide":"BOTH","symbol":"{}","time":{}}}"#,
                t.side == Side::Buy,
                k.id,
                t.order_id,
                t.price,
                t.qty,
                t.price * t.qty,
                side_name(t.side),
                t.symbol,
                k.time_ms
            )
        })
        .collect();
    (200, format!("[{}]", rows.join(",")))
}

/// A user data stream: `/ws/<listenKey>` upgraded to a WebSocket when the key
/// is an account's live one (else HTTP 400, -1125), then a thread that sends
/// it what the venue pushes until it is closed.
fn stream(shared: &Arc<Shared>, req: tiny_http::Request) {
    let key = req.url().trim_start_matches("/ws/").to_string();
    let ws_key = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Sec-WebSocket-Key"))
        .map(|h| h.value.as_str().to_string());
    let account = {
        let mut st = shared.state.lock().expect("venue state");
        *st.requests.entry("/ws".to_string()).or_default() += 1;
        st.listen_keys
            .iter()
            .find(|(_, (k, expired))| *k == key && !expired)
            .map(|(api, _)| api.clone())
    };
    let (Some(api_key), Some(ws_key)) = (account, ws_key) else {
        let (status, body) = error(400, -1125, "This listenKey does not exist.");
        let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(status));
        return;
    };
    let accept = tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
    let response = tiny_http::Response::empty(101).with_header(
        tiny_http::Header::from_bytes(&b"Sec-WebSocket-Accept"[..], accept.as_bytes())
            .expect("an accept key is a header value"),
    );
    let raw = req.upgrade("websocket", response);
    let (tx, rx) = crossbeam_channel::unbounded();
    shared
        .state
        .lock()
        .expect("venue state")
        .streams
        .push((api_key, tx));
    let _ = std::thread::Builder::new()
        .name("binance-test-stream".into())
        .spawn(move || {
            let mut ws = tungstenite::WebSocket::from_raw_socket(
                raw,
                tungstenite::protocol::Role::Server,
                None,
            );
            for push in rx {
                let sent = match push {
                    Push::Text(t) => ws.send(tungstenite::Message::text(t)),
                    Push::Close => {
                        let _ = ws.close(None);
                        let _ = ws.flush();
                        break;
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
        });
}

fn exchange_info(symbols: &[SymbolFilters]) -> String {
    let mut out = String::from(r#"{"timezone":"UTC","rateLimits":[],"symbols":["#);
    for (i, s) in symbols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(r#"{{"symbol":"{}","filters":["#, s.symbol));
        let mut filters = Vec::new();
        if let Some(t) = s.tick_size {
            filters.push(format!(
                r#"{{"filterType":"PRICE_FILTER","minPrice":"0.01","maxPrice":"1000000","tickSize":"{t}"}}"#
            ));
        }
        if let (Some(step), Some(min)) = (s.step_size, s.min_qty) {
            filters.push(format!(
                r#"{{"filterType":"LOT_SIZE","minQty":"{min}","maxQty":"1000","stepSize":"{step}"}}"#
            ));
        }
        if let Some(n) = s.min_notional {
            filters.push(format!(
                r#"{{"filterType":"MIN_NOTIONAL","notional":"{n}"}}"#
            ));
        }
        out.push_str(&filters.join(","));
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::rest::{RestClient, RestError};
    use crate::binance::sign::Signer;
    use rust_decimal_macros::dec;
    use std::time::Duration;

    const SECRET: &[u8] = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";

    fn venue() -> TestVenue {
        TestVenue::start(
            "127.0.0.1:0",
            TestVenueOptions {
                accounts: vec![
                    VenueAccount {
                        api_key: "safe".into(),
                        key: AccountKey::Hmac(SECRET.to_vec()),
                        withdrawals: false,
                        futures: true,
                    },
                    VenueAccount {
                        api_key: "risky".into(),
                        key: AccountKey::Hmac(SECRET.to_vec()),
                        withdrawals: true,
                        futures: true,
                    },
                ],
                symbols: vec![SymbolFilters {
                    symbol: "BTCUSDT".into(),
                    tick_size: Some(dec!(0.1)),
                    step_size: Some(dec!(0.001)),
                    min_qty: Some(dec!(0.001)),
                    min_notional: Some(dec!(5)),
                }],
            },
        )
        .expect("test venue")
    }

    fn client(v: &TestVenue) -> RestClient {
        RestClient::new(&v.rest_url(), Duration::from_secs(5), 5000)
    }

    #[test]
    fn signed_requests_verify_and_answer_each_accounts_permissions() {
        let v = venue();
        let c = client(&v);
        let signer = Signer::hmac(SECRET).unwrap();
        let p = c.api_restrictions("safe", &signer, now_ms()).unwrap();
        assert!(p.futures && !p.withdrawals);
        let p = c.api_restrictions("risky", &signer, now_ms()).unwrap();
        assert!(p.withdrawals);
        let wrong = Signer::hmac(b"another secret").unwrap();
        match c.api_restrictions("safe", &wrong, now_ms()) {
            Err(RestError::Venue {
                status: 400,
                code: -1022,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match c.api_restrictions("nobody", &signer, now_ms()) {
            Err(RestError::Venue {
                status: 401,
                code: -2015,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match c.api_restrictions("safe", &signer, now_ms() - 60_000) {
            Err(RestError::Venue { code: -1021, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(v.requests("/sapi/v1/account/apiRestrictions"), 5);
    }

    #[test]
    fn ed25519_signed_requests_verify_too() {
        let seed = [7u8; 32];
        let key = crate::binance::sign::Ed25519Key::from_bytes(&seed).unwrap();
        let v = TestVenue::start(
            "127.0.0.1:0",
            TestVenueOptions {
                accounts: vec![VenueAccount {
                    api_key: "ed".into(),
                    key: AccountKey::Ed25519(key.public_key()),
                    withdrawals: false,
                    futures: true,
                }],
                symbols: Vec::new(),
            },
        )
        .unwrap();
        let c = client(&v);
        let p = c
            .api_restrictions("ed", &Signer::Ed25519(key), now_ms())
            .unwrap();
        assert!(p.futures);
        let other = crate::binance::sign::Ed25519Key::from_bytes(&[8u8; 32]).unwrap();
        assert!(c
            .api_restrictions("ed", &Signer::Ed25519(other), now_ms())
            .is_err());
    }

    fn trade(qty: Decimal) -> VenueTrade {
        VenueTrade {
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            qty,
            price: dec!(42088.0),
            order_id: 7,
            order_qty: dec!(0.100),
            client_order_id: "leader-1".into(),
        }
    }

    /// Until the venue has registered a stream (its upgrade answered); a
    /// failure bound, not a timing.
    fn wait_for_stream(v: &TestVenue) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while v.streams() == 0 {
            assert!(std::time::Instant::now() < deadline, "no stream registered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn next_text(
        ws: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    ) -> Option<String> {
        // A failure bound: a message that never comes fails the test.
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_mut() {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        }
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => return Some(t.to_string()),
                Ok(tungstenite::Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    #[test]
    fn trades_reach_open_streams_and_user_trades_and_streams_drop_and_expire() {
        let v = venue();
        let c = client(&v);
        let key = c.new_listen_key("safe").unwrap();
        let (mut ws, _) =
            tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).expect("stream");
        // The stream is registered once the upgrade is answered.
        wait_for_stream(&v);
        let id = v.trade("safe", &trade(dec!(0.040)));
        let text = next_text(&mut ws).expect("the trade");
        let mut parser = crate::binance::stream::Parser::new();
        match parser.message(text.as_bytes()).unwrap() {
            crate::binance::stream::Event::OrderTradeUpdate(u) => {
                assert_eq!(
                    (u.trade_id, u.last_qty, u.order_qty),
                    (id, dec!(0.040), dec!(0.100))
                );
            }
            e => panic!("{e:?}"),
        }
        v.drop_streams();
        assert!(next_text(&mut ws).is_none(), "closed");
        let id2 = v.trade("safe", &trade(dec!(0.060)));
        let signer = Signer::hmac(SECRET).unwrap();
        let body = c
            .signed_get(
                "/fapi/v1/userTrades",
                "symbol=BTCUSDT",
                "safe",
                &signer,
                now_ms(),
            )
            .unwrap();
        let trades = parser.user_trades(&body).unwrap();
        assert_eq!(
            trades.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![id, id2]
        );
        let body = c
            .signed_get(
                "/fapi/v1/userTrades",
                &format!("symbol=BTCUSDT&fromId={id2}"),
                "safe",
                &signer,
                now_ms(),
            )
            .unwrap();
        assert_eq!(parser.user_trades(&body).unwrap().len(), 1);

        let (mut ws, _) =
            tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).expect("stream again");
        wait_for_stream(&v);
        v.expire_listen_keys();
        let text = next_text(&mut ws).expect("listenKeyExpired");
        assert!(text.contains("listenKeyExpired"), "{text}");
        assert!(tungstenite::connect(format!("{}/ws/{key}", v.stream_url())).is_err());
    }

    #[test]
    fn exchange_info_and_listen_keys_follow_the_documented_shapes() {
        let v = venue();
        let c = client(&v);
        let f = c.exchange_info().unwrap();
        assert_eq!(f[0].step_size, Some(dec!(0.001)));
        let k = c.new_listen_key("safe").unwrap();
        assert_eq!(c.new_listen_key("safe").unwrap(), k, "the active key again");
        c.keep_listen_key("safe").unwrap();
        v.expire_listen_keys();
        match c.keep_listen_key("safe") {
            Err(RestError::Venue { code: -1125, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_ne!(
            c.new_listen_key("safe").unwrap(),
            k,
            "a new key after expiry"
        );
    }
}
