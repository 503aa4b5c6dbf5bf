//! The store's key layout: handler state, dedupe buckets, timers, the TTL index and the
//! runtime's metadata each under a prefix of their own, so each is one key range.

use bridge_events::Millis;

/// Handler state (`Context::get` / `put`).
pub const STATE: &[u8] = b"s/";
/// Dedupe buckets (see `dedupe`).
pub const DEDUPE: &[u8] = b"d/";
/// Event-time timers: `t/e` + due time + name.
pub const EVENT_TIMER: &[u8] = b"t/e";
/// Wall-clock timers: `t/w` + due time + name.
pub const WALL_CLOCK_TIMER: &[u8] = b"t/w";
/// The TTL index: `x/<expires_at><key>`.
pub const EXPIRY: &[u8] = b"x/";
/// The input offset the tree has applied, in sled beside the state (outside every
/// prefix above, so no scan of them sees it).
pub const APPLIED_OFFSET: &[u8] = b"\x00meta/offset";
/// The partition's event time.
pub const WATERMARK: &[u8] = b"m/watermark";

/// `prefix` followed by `rest`.
pub fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

/// When the event-time timer stored under `key` is due (`None`: not such a timer).
pub fn event_timer_at(key: &[u8]) -> Option<Millis> {
    let rest = key.strip_prefix(EVENT_TIMER)?;
    let at = <[u8; 8]>::try_from(rest.get(..8)?).ok()?;
    Some((u64::from_be_bytes(at) ^ (1 << 63)) as i64)
}
