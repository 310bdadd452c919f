//! fillcast venues and leader-fill sources, behind the engine's `port` traits.
//!
//! - [`sim::SimVenue`]: the simulated venue (latency, partial fills, rejects, venue-side
//!   books), the embedded default for the demo, the tests and the bench.
//! - [`simserver::serve`] runs a `SimVenue` as a standalone server (the process is
//!   `fillcast sim-venue` of the command line) that outlives the engine and serves several clients, kept apart
//!   by session; [`simclient::SimClient`] is the engine's gateway to it, over the
//!   binary protocol of [`simwire`]: down (and rejecting with `VenueDown`) when the
//!   connection fails or stalls, and up again by itself once it has settled the
//!   orders it had in flight.
//! - [`file::FileSource`]: replays leader fills from a JSON-lines file.
//! - [`synthetic::SyntheticLeaders`]: the demo's deterministic leader-trading generator.
//! - [`fix`]: FIX 4.4; so far its codec, session state machine and application
//!   mapping, without the transport.
//! - [`config`]: their `[[venues]]` and `[[sources]]` tables (`VenueSettings`,
//!   `SourceSettings`) and the checks the engine's config loader runs on them
//!   (`GatewayKinds`): the engine keeps those tables unread.
//!
//! **Architecture Invariant:** nothing here runs on the core stage; gateways and sources
//! are driven by the I/O thread, and venue rules (lot, tick, minimums) are checked here,
//! never in the engine.
//!
//! **Architecture Invariant:** no `f64` decides a quantity, a price or money; time comes
//! from the `now` argument, never from the wall clock, so every component is
//! reproducible from its inputs and seed. The exceptions are at the process edge: the
//! sim server's event loop (its own process: it stamps orders with `clock::now()`) and
//! the sim client's blocking start-up calls (their timeouts).

pub mod binance;
pub mod config;
pub mod control;
pub mod file;
pub mod fix;
pub mod fuzzing;
pub mod sim;
pub mod simclient;
pub mod simmarket;
pub mod simserver;
pub mod simwire;
pub mod synthetic;
pub mod vault;

pub use config::{GatewayKinds, SimVenueConfig, SourceSettings, VenueKind, VenueSettings};
pub use file::{FileSource, FileSourceStats, OpenError};
pub use sim::{OrderHistory, QueryAnswer, SimStats, SimVenue};
pub use simclient::SimClient;
pub use synthetic::SyntheticLeaders;
