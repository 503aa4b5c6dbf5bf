//! W3C trace context in Kafka headers (`traceparent`, `tracestate`): read from each input
//! record and carried onto everything it causes, with a new span id, so one order is one
//! trace across all services. Records without a valid `traceparent` start a new trace.

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// A parsed `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id, never all zero.
    pub trace_id: u128,
    /// 8-byte span id of the parent, never all zero.
    pub span_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value; `None` when it is not a valid version-00 traceparent.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00"
            || parts.next().is_some()
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !(hex(trace) && hex(span) && hex(flags)) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new sampled trace.
    pub fn new_root() -> Self {
        let id: u128 = rand::random();
        Self {
            trace_id: id.max(1),
            span_id: next_span_id(),
            flags: 1,
        }
    }

    /// The context for work caused by this one: same trace, new span.
    pub fn child(&self) -> Self {
        Self {
            span_id: next_span_id(),
            ..*self
        }
    }

    /// The header value.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }

    /// The trace id as 32 hex digits, for log fields.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// Random ids from the thread's generator (seeded once from the OS): a `getrandom` call
/// per output, as `Uuid::new_v4` makes, was 4 % of the aggregator's loop.
fn next_span_id() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_w3c_example_parses_and_prints_back() {
        let parent = TraceParent::parse(SAMPLE);
        assert_eq!(
            parent.map(|p| p.header()).as_deref().map(str::as_bytes),
            Some(SAMPLE)
        );
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_a_new_span() {
        let Some(parent) = TraceParent::parse(SAMPLE) else {
            panic!("sample does not parse")
        };
        let child = parent.child();
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        assert_eq!(TraceParent::parse(child.header().as_bytes()), Some(child));
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            &b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"",
            &[0xFF, 0xFE],
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
