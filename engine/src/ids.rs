//! Deterministic ids: leader event keys, decision ids and client order ids.
//!
//! Every decision id is a pure function of (leader event, subscription, config
//! revision, leg), so a decision re-made after a restart has the same id and the
//! venue can recognise a re-sent order. Client order ids fit every supported venue's
//! rules (Binance: ≤ 36 chars of `[.A-Z:/a-z0-9_-]`; OKX: ≤ 32 letters and digits).

/// FNV-1a, 64-bit: tiny, dependency-free and stable across platforms and releases.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// A strong 64-bit mix (splitmix64 finaliser) so nearby inputs give unrelated ids.
#[inline(always)]
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of a leader event: hash of (leader id, venue event id).
pub fn leader_event_key(leader: &str, event_id: &str) -> u64 {
    let h = fnv1a(leader.as_bytes());
    mix64(h ^ fnv1a(event_id.as_bytes()).rotate_left(17)).max(1)
}

/// An order id holds its subscription index in its top bits, so the order table
/// finds an order's places from its id alone, with no hash-table lookup.
pub const ORDER_ID_SUB_SHIFT: u32 = 40;

/// The most subscriptions an engine can hold (24 bits of the order id).
pub const MAX_SUBSCRIPTIONS: usize = 1 << (64 - ORDER_ID_SUB_SHIFT);

/// The order id of (leader event, subscription, config revision, leg): the
/// subscription index in the top 24 bits, a 40-bit hash of the rest below. Never
/// zero (zero means "none"). Distinct subscriptions never share an id; within one
/// subscription two ids collide with probability 2^-40.
#[inline(always)]
pub fn decision_id(event_key: u64, sub: u32, revision: u64, leg: u32) -> u64 {
    decision_id_of(event_key, sub, sub_leg_mix(sub, leg), revision)
}

/// The part of `decision_id` that depends on the subscription and the leg
/// alone: the core keeps leg 0's per subscription, so that the fan-out makes an
/// id with two mixes rather than three.
#[inline(always)]
pub fn sub_leg_mix(sub: u32, leg: u32) -> u64 {
    mix64(sub as u64 ^ ((leg as u64) << 32))
}

/// `decision_id`, given its `sub_leg_mix(sub, leg)`.
#[inline(always)]
pub fn decision_id_of(event_key: u64, sub: u32, sub_leg: u64, revision: u64) -> u64 {
    debug_assert!((sub as usize) < MAX_SUBSCRIPTIONS);
    let a = mix64(event_key ^ sub_leg);
    let low = mix64(a ^ revision) & ((1 << ORDER_ID_SUB_SHIFT) - 1);
    ((sub as u64) << ORDER_ID_SUB_SHIFT) | low.max(1)
}

/// The subscription index an order id carries (any u64 maps to some index; the
/// order table checks it against its size).
#[inline(always)]
pub fn order_sub(order_id: u64) -> usize {
    (order_id >> ORDER_ID_SUB_SHIFT) as usize
}

/// The client order id sent to venues: `fc` + 16 lowercase hex digits (18 chars).
pub fn client_order_id(order_id: u64) -> String {
    format!("fc{order_id:016x}")
}

/// Inverse of `client_order_id`; `None` for ids the engine did not make.
pub fn parse_client_order_id(s: &str) -> Option<u64> {
    let hex = s.strip_prefix("fc")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_roundtrip_and_fit_venue_rules() {
        for id in [1u64, u64::MAX, decision_id(42, 7, 99, 1)] {
            let c = client_order_id(id);
            assert!(c.len() <= 32 && c.chars().all(|ch| ch.is_ascii_alphanumeric()));
            assert_eq!(parse_client_order_id(&c), Some(id));
        }
        assert_eq!(parse_client_order_id("fcXYZ"), None);
        assert_eq!(parse_client_order_id("autoclose-123"), None);
    }

    #[test]
    fn decision_ids_depend_on_every_input() {
        let base = decision_id(1, 2, 3, 0);
        assert_eq!(base, decision_id(1, 2, 3, 0));
        assert_ne!(base, decision_id(2, 2, 3, 0));
        assert_ne!(base, decision_id(1, 3, 3, 0));
        assert_ne!(base, decision_id(1, 2, 4, 0));
        assert_ne!(base, decision_id(1, 2, 3, 1));
    }
}
