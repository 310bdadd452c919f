//! What the gateway and the engine do with each refusal Binance gives an
//! order (`classify`), and the clock offset a -1021 asks us to correct
//! (`ClockOffset`).
//!
//! Owns the mapping from the venue's HTTP status, error code and message onto
//! the engine's `RejectReason` (whose policies live in the engine's
//! `engine.resync` config) and onto the gateway's own actions. It must never
//! call an order failed when the venue says its outcome is unknown: resending
//! such an order could execute it twice, and Binance's duplicate check (-4116)
//! is no safety net, since a client order id need only be unique among *open*
//! orders and an IOC order that traded is no longer open. Facts and sources:
//! docs/BINANCE-PROTOCOL.md, "Error codes" and "429 / 418".

use super::limits::Throttle;
use fillcast_engine::event::RejectReason;
use fillcast_engine::units::Nanos;
use thiserror::Error;

/// Binance's error codes that `classify` treats apart from "other".
pub mod code {
    /// An unknown error: the request may or may not have executed.
    pub const UNKNOWN: i32 = -1000;
    pub const UNAUTHORIZED: i32 = -1002;
    pub const TOO_MANY_REQUESTS: i32 = -1003;
    /// An unexpected reply from the venue's message bus: outcome unknown.
    pub const UNEXPECTED_RESP: i32 = -1006;
    /// A timeout waiting for the venue's backend: outcome unknown.
    pub const TIMEOUT: i32 = -1007;
    /// Throttled by the venue's overload protection (reduce-only and
    /// close-position orders exempt).
    pub const SERVER_BUSY: i32 = -1008;
    pub const TOO_MANY_ORDERS: i32 = -1015;
    pub const INVALID_TIMESTAMP: i32 = -1021;
    pub const INVALID_SIGNATURE: i32 = -1022;
    pub const BALANCE_NOT_SUFFICIENT: i32 = -2018;
    pub const MARGIN_NOT_SUFFICIENT: i32 = -2019;
    pub const REDUCE_ONLY_REJECT: i32 = -2022;
    pub const MAX_POSITION_EXCEEDED: i32 = -2027;
    pub const BAD_API_KEY_FMT: i32 = -2014;
    pub const REJECTED_MBX_KEY: i32 = -2015;
    pub const QTY_LESS_THAN_MIN_QTY: i32 = -4004;
    pub const DUPLICATED_CLIENT_ORDER_ID: i32 = -4116;
    pub const MIN_NOTIONAL: i32 = -4164;
}

/// What to do about one refusal of an order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The order did not execute and will not: the engine's policy for
    /// `reason` decides (a report `Rejected` with it). `code` is the venue's,
    /// for the log; `None` when the venue sent only an HTTP status.
    Reject {
        reason: RejectReason,
        code: Option<i32>,
    },
    /// The outcome is unknown: the order may be working or filled. Query
    /// `order.status` by client order id before anything is sent again, and
    /// report what the venue says it holds.
    AskVenue,
    /// -1021: the timestamp was outside `recvWindow`. Nothing executed (the
    /// check comes before the matching engine), so after a fresh
    /// `ClockOffset` sample the same order may go again with the same client
    /// order id.
    FixClockAndRetry,
    /// Refused for rate before the matching engine: nothing executed. The order
    /// stays queued (same client order id) and goes when `Limiter::on_throttled`
    /// for this scope lets it.
    Backoff(Throttle),
    /// The key or its signature is refused (-2014, -2015, -1022, -1002, or a
    /// 401): every request of this account will fail the same way. The gateway
    /// stops sending for the account and says so loudly; retrying in a loop
    /// only looks like an attack on the account.
    Fatal,
}

/// The action for a refusal: the HTTP status (the WebSocket API's `status`),
/// the venue's `error.code` if it sent one, and its `error.msg`.
///
/// Why each `RejectReason` (the engine's `Core::on_unfilled` and
/// `policy_for`; closes and reductions are always retried whatever the reason):
/// - -2019 margin / -2018 balance → `InsufficientMargin`: the follower's
///   account cannot carry the copy. The engine applies
///   `engine.resync.insufficient_margin` (`reduce`, halving the size each
///   attempt, by default; `out_of_sync` marks the subscription for a person):
///   retrying at full size would only be refused again.
/// - -4164 below minimum notional → `BelowMin`: the copy is too small for the
///   venue; the default policy `skip` leaves it to the leader's next fill,
///   which may make the gap large enough. (-4004, quantity below the minimum,
///   is the same fact about quantity.)
/// - -2022 reduce-only rejected → `ReduceOnly`: the venue's net position (one
///   account, several subscriptions) disagrees with the subscription's. The
///   engine's resync sends the close again without `reduceOnly`; an opening
///   order refused this way is marked out of sync by default.
/// - -2027 over the maximum position at this leverage → `PositionLimit`, whose
///   default policy `reduce` tries a smaller size.
/// - HTTP 503 "Service Unavailable." and "Internal error; …" → `Transient`:
///   Binance documents both as failed; the engine retries a transient reject
///   with a fresh id after its backoff, which is safe because nothing executed.
/// - Anything else → `Other`, code kept: the default policy `out_of_sync`
///   puts a person in front of a refusal nobody has classified, rather than
///   retrying it blindly.
///
/// An unknown outcome wins any disagreement (a -1007 inside a 503 "Service
/// Unavailable.", any 5XX not documented as failed, a 408): asking costs one
/// query of weight 1, assuming a failure may send an order twice. A code that
/// says the order was refused before matching (-1021, a reject, a throttle)
/// does not make a 5XX or a 408 a failure: only the 503 messages Binance
/// documents as failed do; a refused key stays `Fatal`.
pub fn classify(status: u16, code: Option<i32>, msg: &str) -> Action {
    let by_code = code.and_then(action_for_code);
    let by_message = if status == 503 {
        action_for_503(msg)
    } else {
        None
    };
    if by_code == Some(Action::AskVenue) || by_message == Some(Action::AskVenue) {
        return Action::AskVenue;
    }
    match status {
        418 => return Action::Backoff(Throttle::Ban),
        429 if code == Some(code::TOO_MANY_ORDERS) => return Action::Backoff(Throttle::Account),
        429 => return Action::Backoff(Throttle::Ip),
        _ => {}
    }
    // Binance: a 5XX means the execution status is unknown; a 408 is a
    // timeout waiting for the venue's backend (-1007's own status). A code
    // riding along that would resend (-1021, a throttle: Spot lists -1008
    // among the errors whose execution status is unknown) or end the order
    // (a reject, after which the engine may send a fresh one) could trade it
    // twice. Ask first.
    if status == 408 || (500..=599).contains(&status) {
        let failed = by_message.is_some() && !matches!(by_code, Some(Action::Backoff(_)));
        return match by_code {
            Some(Action::Fatal) => Action::Fatal,
            _ if failed => by_code.or(by_message).expect("by_message is some"),
            _ => Action::AskVenue,
        };
    }
    if let Some(action) = by_code.or(by_message) {
        return action;
    }
    match status {
        401 => Action::Fatal,
        _ => Action::Reject {
            reason: RejectReason::Other,
            code,
        },
    }
}

fn action_for_code(c: i32) -> Option<Action> {
    let reject = |reason| Action::Reject {
        reason,
        code: Some(c),
    };
    Some(match c {
        code::MARGIN_NOT_SUFFICIENT | code::BALANCE_NOT_SUFFICIENT => {
            reject(RejectReason::InsufficientMargin)
        }
        code::MIN_NOTIONAL | code::QTY_LESS_THAN_MIN_QTY => reject(RejectReason::BelowMin),
        code::REDUCE_ONLY_REJECT => reject(RejectReason::ReduceOnly),
        code::MAX_POSITION_EXCEEDED => reject(RejectReason::PositionLimit),
        code::INVALID_TIMESTAMP => Action::FixClockAndRetry,
        // A duplicate among open orders: ours arrived before, by some path.
        code::DUPLICATED_CLIENT_ORDER_ID
        | code::UNKNOWN
        | code::UNEXPECTED_RESP
        | code::TIMEOUT => Action::AskVenue,
        code::TOO_MANY_ORDERS => Action::Backoff(Throttle::Account),
        code::TOO_MANY_REQUESTS | code::SERVER_BUSY => Action::Backoff(Throttle::Ip),
        code::BAD_API_KEY_FMT
        | code::REJECTED_MBX_KEY
        | code::INVALID_SIGNATURE
        | code::UNAUTHORIZED => Action::Fatal,
        _ => return None,
    })
}

/// The three 503s of Binance's general info, told apart by their message (the
/// status is the same): only "Unknown error…" leaves the outcome unknown. An
/// unrecognised 503 message falls to the 5XX rule: unknown.
fn action_for_503(msg: &str) -> Option<Action> {
    let msg = msg.trim_start();
    let starts = |prefix: &str| {
        msg.get(..prefix.len())
            .is_some_and(|m| m.eq_ignore_ascii_case(prefix))
    };
    if starts("Unknown error") {
        Some(Action::AskVenue)
    } else if starts("Service Unavailable") || starts("Internal error") {
        Some(Action::Reject {
            reason: RejectReason::Transient,
            code: None,
        })
    } else {
        None
    }
}

/// Samples the estimator keeps: the median of five survives two outliers (one
/// from three samples on).
pub const CLOCK_SAMPLES: usize = 5;

/// The venue's clock minus ours, estimated from replies that carry
/// `serverTime`, so that signed requests carry a `timestamp` the venue
/// accepts (`timestamp < serverTime + 1000` and within `recvWindow`, else
/// -1021), and the venue's epoch-ms times (a 418's `retryAfter`) can be read
/// as ours.
///
/// Each sample assumes the venue stamped `serverTime` halfway between our send
/// and our receive (NTP's assumption; the error is at most half the round
/// trip). The estimate is the median of the last `CLOCK_SAMPLES`: one reply
/// delayed in one direction, or a bad `serverTime`, moves a mean but not a
/// median. With an even count the lower one is taken: a timestamp slightly
/// behind the venue is accepted within `recvWindow`, one ahead by a second is
/// not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockOffset {
    offsets_ns: [i64; CLOCK_SAMPLES],
    len: usize,
    next: usize,
}

/// A sample the estimator refuses.
#[derive(Copy, Clone, Debug, Error, PartialEq, Eq)]
pub enum ClockSampleError {
    #[error("clock sample: received at {received_ns} ns, before it was sent at {sent_ns} ns")]
    ReceivedBeforeSent { sent_ns: u64, received_ns: u64 },
}

impl ClockOffset {
    pub fn new() -> ClockOffset {
        ClockOffset::default()
    }

    /// Take in one reply's `serverTime` (ms since the epoch) to a request sent
    /// at `sent` and answered at `received` (our times); returns this sample's
    /// offset. The venue's millisecond is read as its middle (+0.5 ms): it
    /// truncates, so its true time lies in `[ms, ms + 1)`.
    pub fn sample(
        &mut self,
        sent: Nanos,
        server_time_ms: u64,
        received: Nanos,
    ) -> Result<i64, ClockSampleError> {
        if received < sent {
            return Err(ClockSampleError::ReceivedBeforeSent {
                sent_ns: sent.0,
                received_ns: received.0,
            });
        }
        let server_ns = i128::from(server_time_ms) * 1_000_000 + 500_000;
        let midpoint_ns = (i128::from(sent.0) + i128::from(received.0)) / 2;
        let offset = clamp_i64(server_ns - midpoint_ns);
        self.offsets_ns[self.next] = offset;
        self.next = (self.next + 1) % CLOCK_SAMPLES;
        self.len = (self.len + 1).min(CLOCK_SAMPLES);
        debug_assert!(self.len >= 1 && self.next < CLOCK_SAMPLES);
        Ok(offset)
    }

    /// The venue's clock minus ours, ns: the lower median of the samples, 0
    /// before any (our clock is all we know).
    pub fn offset_ns(&self) -> i64 {
        if self.len == 0 {
            return 0;
        }
        let mut sorted = self.offsets_ns;
        let held = &mut sorted[..self.len];
        held.sort_unstable();
        held[(self.len - 1) / 2]
    }

    /// The `timestamp` to sign for a request sent at our time `local`, in the
    /// venue's ms.
    pub fn venue_ms(&self, local: Nanos) -> u64 {
        let venue_ns = i128::from(local.0) + i128::from(self.offset_ns());
        clamp_u64(venue_ns.div_euclid(1_000_000))
    }

    /// Our time for the venue's epoch-ms time `venue_ms` (a ban's end).
    pub fn to_local(&self, venue_ms: u64) -> Nanos {
        let local_ns = i128::from(venue_ms) * 1_000_000 - i128::from(self.offset_ns());
        Nanos(clamp_u64(local_ns))
    }

    pub fn samples(&self) -> usize {
        self.len
    }
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn clamp_u64(v: i128) -> u64 {
    v.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the red team: a 5XX (outcome unknown) carrying -1021 was sent
    /// again with the same client id, and one carrying a reject code ended the
    /// order (the engine may then send a fresh one): either could trade twice.
    #[test]
    fn a_resend_or_reject_code_on_a_5xx_or_408_asks_the_venue_first() {
        check(&[
            (
                500,
                Some(code::INVALID_TIMESTAMP),
                "Timestamp for this request is outside of the recvWindow.",
                Action::AskVenue,
            ),
            (503, Some(-1021), "", Action::AskVenue),
            (
                502,
                Some(-2019),
                "Margin is insufficient.",
                Action::AskVenue,
            ),
            (504, Some(-4164), "", Action::AskVenue),
            (408, None, "", Action::AskVenue),
            (408, Some(-1021), "", Action::AskVenue),
            (408, Some(-1015), "Too many new orders", Action::AskVenue),
            // A 503 documented as failed keeps the code's own action.
            (
                503,
                Some(-1021),
                "Service Unavailable.",
                Action::FixClockAndRetry,
            ),
            (
                503,
                Some(-2019),
                "Internal error; unable to process your request.",
                reject(RejectReason::InsufficientMargin, -2019),
            ),
            // A refused key is refused whatever the status.
            (500, Some(code::REJECTED_MBX_KEY), "", Action::Fatal),
            (408, Some(code::INVALID_SIGNATURE), "", Action::Fatal),
        ]);
    }

    #[test]
    fn a_throttle_code_on_a_5xx_asks_the_venue_before_any_resend() {
        assert_eq!(
            classify(
                503,
                Some(code::SERVER_BUSY),
                "Server is currently overloaded"
            ),
            Action::AskVenue
        );
        assert_eq!(
            classify(500, Some(code::TOO_MANY_REQUESTS), ""),
            Action::AskVenue
        );
        assert_eq!(
            classify(
                400,
                Some(code::SERVER_BUSY),
                "Request throttled by system-level protection."
            ),
            Action::Backoff(Throttle::Ip)
        );
    }

    const MS: u64 = 1_000_000;

    fn reject(reason: RejectReason, code: i32) -> Action {
        Action::Reject {
            reason,
            code: Some(code),
        }
    }

    const TRANSIENT: Action = Action::Reject {
        reason: RejectReason::Transient,
        code: None,
    };

    /// (HTTP status, error code, message) → the action, one refusal a row.
    fn check(cases: &[(u16, Option<i32>, &str, Action)]) {
        for &(status, code, msg, expected) in cases {
            assert_eq!(
                classify(status, code, msg),
                expected,
                "{status} {code:?} {msg:?}"
            );
        }
    }

    #[test]
    fn every_documented_code_maps_as_the_issue_says() {
        use RejectReason::*;
        check(&[
            (
                400,
                Some(-2019),
                "Margin is insufficient.",
                reject(InsufficientMargin, -2019),
            ),
            (
                400,
                Some(-2018),
                "Balance is insufficient.",
                reject(InsufficientMargin, -2018),
            ),
            (
                400,
                Some(-4164),
                "Order's notional must be no smaller than 5",
                reject(BelowMin, -4164),
            ),
            (
                400,
                Some(-2022),
                "ReduceOnly Order is rejected.",
                reject(ReduceOnly, -2022),
            ),
            (
                400,
                Some(-1021),
                "Timestamp for this request is outside of the recvWindow.",
                Action::FixClockAndRetry,
            ),
            (
                400,
                Some(-4116),
                "ClientOrderId is duplicated.",
                Action::AskVenue,
            ),
            (
                400,
                Some(-1006),
                "An unexpected response was received from the message bus.",
                Action::AskVenue,
            ),
            (
                408,
                Some(-1007),
                "Timeout waiting for response from backend server.",
                Action::AskVenue,
            ),
            (
                500,
                Some(-1000),
                "An unknown error occurred while processing the request.",
                Action::AskVenue,
            ),
        ]);
    }

    #[test]
    fn limits_and_bans_back_off_in_their_scope() {
        check(&[
            (
                429,
                Some(-1003),
                "Too much request weight used",
                Action::Backoff(Throttle::Ip),
            ),
            (
                429,
                Some(-1015),
                "Too many new orders",
                Action::Backoff(Throttle::Account),
            ),
            (429, None, "", Action::Backoff(Throttle::Ip)),
            (
                418,
                Some(-1003),
                "Way too much request weight used; IP banned until 1712840265023.",
                Action::Backoff(Throttle::Ban),
            ),
            (418, None, "", Action::Backoff(Throttle::Ban)),
            (
                400,
                Some(-1008),
                "Request throttled by system-level protection.",
                Action::Backoff(Throttle::Ip),
            ),
            (
                503,
                Some(-1008),
                "Server is currently overloaded with other requests.",
                Action::AskVenue,
            ),
            (
                400,
                Some(-1015),
                "Too many new orders",
                Action::Backoff(Throttle::Account),
            ),
        ]);
    }

    #[test]
    fn a_refused_key_or_signature_is_fatal() {
        check(&[
            (400, Some(-2014), "API-key format invalid.", Action::Fatal),
            (
                401,
                Some(-2015),
                "Invalid API-key, IP, or permissions for action.",
                Action::Fatal,
            ),
            (
                400,
                Some(-1022),
                "Signature for this request is not valid.",
                Action::Fatal,
            ),
            (
                401,
                Some(-1002),
                "You are not authorized to execute this request.",
                Action::Fatal,
            ),
            (401, None, "", Action::Fatal),
        ]);
    }

    #[test]
    fn the_three_503s_are_told_apart_by_their_message() {
        check(&[
            (
                503,
                None,
                "Unknown error, please check your request or try again later.",
                Action::AskVenue,
            ),
            (503, None, "Service Unavailable.", TRANSIENT),
            (
                503,
                None,
                "Internal error; unable to process your request. Please try again.",
                TRANSIENT,
            ),
            // Spacing and case are not what tells them apart.
            (503, None, "  service unavailable.", TRANSIENT),
            (503, None, "UNKNOWN ERROR, please check", Action::AskVenue),
            // An undocumented 503 message: a 5XX, outcome unknown.
            (503, None, "Gateway is sad", Action::AskVenue),
            (503, None, "", Action::AskVenue),
            (503, None, "Unknown", Action::AskVenue),
            // The same texts on another status are not the 503 rule.
            (400, None, "Service Unavailable.", reject_other(None)),
            // A code that says unknown outranks a message that says failed.
            (503, Some(-1007), "Service Unavailable.", Action::AskVenue),
            (
                503,
                Some(-1001),
                "Internal error; unable to process your request.",
                TRANSIENT,
            ),
        ]);
    }

    fn reject_other(code: Option<i32>) -> Action {
        Action::Reject {
            reason: RejectReason::Other,
            code,
        }
    }

    #[test]
    fn other_codes_are_other_with_the_code_kept() {
        check(&[
            (
                400,
                Some(-1102),
                "Mandatory parameter 'quantity' was not sent.",
                reject_other(Some(-1102)),
            ),
            (
                400,
                Some(-4015),
                "Client order id is not valid.",
                reject_other(Some(-4015)),
            ),
            (400, Some(-9999), "", reject_other(Some(-9999))),
            (400, Some(i32::MIN), "", reject_other(Some(i32::MIN))),
            (400, Some(0), "", reject_other(Some(0))),
            (403, None, "WAF", reject_other(None)),
            (0, None, "", reject_other(None)),
            (u16::MAX, Some(7), "\u{0}\u{fffd}", reject_other(Some(7))),
            // Codes the engine has a closer reason for than "other".
            (
                400,
                Some(-2027),
                "Exceeded the maximum allowable position at current leverage.",
                reject(RejectReason::PositionLimit, -2027),
            ),
            (
                400,
                Some(-4004),
                "Quantity less than min qty.",
                reject(RejectReason::BelowMin, -4004),
            ),
            // 5XX other than the documented failed 503s: outcome unknown,
            // whatever unclassified code rides along.
            (500, None, "", Action::AskVenue),
            (502, Some(-1102), "", Action::AskVenue),
            (504, None, "", Action::AskVenue),
        ]);
    }

    #[test]
    fn the_clock_offset_is_the_venue_minus_us_from_the_midpoint() {
        let mut c = ClockOffset::new();
        assert_eq!((c.offset_ns(), c.samples()), (0, 0));
        // Sent at 1,000 ms, answered at 1,010 ms; the venue said 1,255 at 1,005.
        let got = c
            .sample(Nanos(1_000 * MS), 1_255, Nanos(1_010 * MS))
            .unwrap();
        assert_eq!(got, 250 * MS as i64 + 500_000);
        assert_eq!(c.offset_ns(), got);
        assert_eq!(c.venue_ms(Nanos(2_000 * MS)), 2_250);
        assert_eq!(c.to_local(2_250), Nanos(1_999 * MS + 500_000));
        // A venue behind us.
        let mut c = ClockOffset::new();
        c.sample(Nanos(10_000 * MS), 9_000, Nanos(10_000 * MS))
            .unwrap();
        assert_eq!(c.offset_ns(), -(999 * MS as i64) - 500_000);
        assert_eq!(c.venue_ms(Nanos(10_000 * MS)), 9_000);
    }

    #[test]
    fn one_outlier_does_not_move_the_clock_offset() {
        let mut c = ClockOffset::new();
        let at = |i: u64| Nanos(1_000_000 * MS + i * 1_000 * MS);
        // 40 ms ahead, round trips of 2 ms; the third reply was stuck for 3 s
        // on its way back (its serverTime is early for our midpoint).
        let replies = [(0, 1_000_041), (1, 1_001_041), (2, 1_002_041)];
        for (i, server_ms) in replies {
            let sent = at(i);
            let received = Nanos(sent.0 + if i == 2 { 6_000 * MS } else { 2 * MS });
            c.sample(sent, server_ms, received).unwrap();
        }
        assert_eq!(c.offset_ns(), 40 * MS as i64 + 500_000);
        // And a wild serverTime (a different clock, a parse slip) is voted down.
        let mut c = ClockOffset::new();
        for (i, server_ms) in [
            (0, 1_000_041),
            (1, 0),
            (2, 1_002_041),
            (3, u64::MAX),
            (4, 1_004_041),
        ] {
            c.sample(at(i), server_ms, Nanos(at(i).0 + 2 * MS)).unwrap();
        }
        assert_eq!(c.offset_ns(), 40 * MS as i64 + 500_000);
    }

    #[test]
    fn the_clock_offset_keeps_the_last_five_and_leans_behind() {
        let mut c = ClockOffset::new();
        c.sample(Nanos(0), 10, Nanos(0)).unwrap();
        c.sample(Nanos(0), 30, Nanos(0)).unwrap();
        // Two samples: the lower, so that timestamps err behind the venue.
        assert_eq!(c.offset_ns(), 10 * MS as i64 + 500_000);
        for server_ms in [50, 50, 50, 50, 50] {
            c.sample(Nanos(0), server_ms, Nanos(0)).unwrap();
        }
        assert_eq!(
            (c.samples(), c.offset_ns()),
            (CLOCK_SAMPLES, 50 * MS as i64 + 500_000)
        );
    }

    #[test]
    fn hostile_clock_samples_never_panic() {
        let mut c = ClockOffset::new();
        assert_eq!(
            c.sample(Nanos(5), 1, Nanos(4)),
            Err(ClockSampleError::ReceivedBeforeSent {
                sent_ns: 5,
                received_ns: 4
            })
        );
        assert_eq!(c.samples(), 0, "a refused sample is not kept");
        for (sent, server_ms, received) in
            [(0, u64::MAX, u64::MAX), (u64::MAX, 0, u64::MAX), (0, 0, 0)]
        {
            c.sample(Nanos(sent), server_ms, Nanos(received)).unwrap();
        }
        for local in [0, 1, u64::MAX] {
            let _ = c.venue_ms(Nanos(local));
        }
        for ms in [0, 1, u64::MAX] {
            let _ = c.to_local(ms);
        }
        let mut c = ClockOffset::new();
        c.sample(Nanos(u64::MAX), 0, Nanos(u64::MAX)).unwrap();
        assert_eq!(c.offset_ns(), i64::MIN);
        assert_eq!(c.venue_ms(Nanos(0)), 0);
        assert_eq!(c.to_local(u64::MAX), Nanos(u64::MAX));
    }
}
