//! Binance USD-M futures (issue 15): the protocol facts are in
//! docs/BINANCE-PROTOCOL.md, each with its source.
//!
//! - [`sign`]: request signatures (HMAC-SHA256 over the query or the sorted
//!   WebSocket API parameters, Ed25519), checked against the documentation's
//!   own vectors.
//! - [`ws`]: the client WebSocket connection the source and the gateway share.
//! - [`wsapi`]: WebSocket API requests (`order.place`, `order.status`) and
//!   their replies.
//! - [`stream`]: the user data stream and the mark-price stream, parsed into
//!   the engine's events.
//! - [`limits`]: the per-account order limits and the IP weight, paced by the
//!   gateway itself, and the backoff a 429 or a 418 asks for.
//! - [`source`]: leaders' fills from their user data streams, each gap a lost
//!   connection leaves filled from `userTrades` (the `binance` source).
//! - [`rest`]: the REST answers read at start and rarely (a key's
//!   permissions, the exchange's filters checked against the config, a listen
//!   key).
//! - [`venue`]: the protocol-faithful test venue the tests run against:
//!   REST, the user data stream and the WebSocket API (orders, statuses,
//!   session logon), signatures verified, rate limits enforced with the
//!   documented errors, faults on demand.
//! - [`gateway`]: follower orders over the WebSocket API (`order.place`,
//!   IOC, each follower's own key), paced by `limits`, answered as the
//!   engine's reports; lost connections and unknown outcomes settled with
//!   `order.status` (the `binance` gateway).
//! - [`errors`]: the venue's error codes mapped onto the engine's reject
//!   policies and the gateway's own actions (ask the venue, fix the clock).

pub mod errors;
pub mod gateway;
pub mod limits;
pub mod rest;
pub mod sign;
pub mod source;
pub mod stream;
pub mod venue;
pub mod ws;
pub mod wsapi;
