//! W3C trace context in Kafka headers and HTTP requests (`traceparent`, `tracestate`),
//! read and written by OpenTelemetry's W3C propagator, so one order is one trace across
//! every service, the ERP and Magento calls included.
//!
//! Each input record's span continues its producer's context ([`extract`]); everything the
//! record causes carries the context of a `send` span under it ([`outgoing`]). Without a
//! trace exporter (no OpenTelemetry layer) there are no spans to take a context from: the
//! output then carries the input's trace id with a new span id, so logs still correlate.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// Header names and values as a record or request carries them.
struct Read<'a, I>(I, std::marker::PhantomData<&'a [u8]>);

impl<'a, I> Extractor for Read<'a, I>
where
    I: Fn(&str) -> Option<&'a [u8]>,
{
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

struct Write<F>(F);

impl<F: FnMut(&'static str, String)> Injector for Write<F> {
    fn set(&mut self, key: &str, value: String) {
        let key = match key {
            TRACEPARENT => TRACEPARENT,
            TRACESTATE => TRACESTATE,
            _ => return,
        };
        (self.0)(key, value);
    }
}

/// The remote context `header` (a header lookup by name) carries; the empty context when
/// it carries none or an invalid one (the span then starts a trace of its own).
pub fn extract<'a>(header: impl Fn(&str) -> Option<&'a [u8]>) -> Context {
    TraceContextPropagator::new().extract(&Read(header, std::marker::PhantomData))
}

/// Writes `cx`'s span context as `traceparent` (and `tracestate`) through `set`; nothing
/// when it has no valid span.
pub fn inject(cx: &Context, set: impl FnMut(&'static str, String)) {
    TraceContextPropagator::new().inject_context(cx, &mut Write(set));
}

/// The context an output caused by `span` carries: `span`'s own when spans are recorded,
/// else a new span id in `parent`'s trace (a new trace when `parent` has none).
pub fn outgoing(span: &tracing::Span, parent: &Context) -> Context {
    let own = span.context();
    if own.span().span_context().is_valid() {
        return own;
    }
    let ids = RandomIdGenerator::default();
    let remote = parent.span();
    let remote = remote.span_context();
    let (trace_id, flags, state) = if remote.is_valid() {
        (
            remote.trace_id(),
            remote.trace_flags(),
            remote.trace_state().clone(),
        )
    } else {
        (ids.new_trace_id(), TraceFlags::SAMPLED, Default::default())
    };
    Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        ids.new_span_id(),
        flags,
        false,
        state,
    ))
}

/// A messaging `send` span for one record to `topic`, under the current span (a root when
/// there is none); [`tracing::Span::none`] when spans are not exported, as nothing would
/// read it.
pub fn send_span(topic: &str, event_id: &str) -> tracing::Span {
    if !crate::telemetry::spans_exported() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "send",
        otel.name = %format_args!("send {topic}"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = %topic,
        messaging.message.id = %event_id,
        messaging.kafka.message.key = tracing::field::Empty,
    )
}

/// Marks the current span failed with the parked record's class, and records the parking
/// as an event (the reason names a field or rule, never a value of a customer's).
pub fn parked(class: &str, reason: &str) {
    let span = tracing::Span::current();
    span.add_event(
        "parked",
        vec![
            KeyValue::new("error.type", class.to_owned()),
            KeyValue::new("bridge.parked.reason", reason.to_owned()),
        ],
    );
    span.set_status(opentelemetry::trace::Status::error(class.to_owned()));
}

/// The trace id of `cx` as 32 hex digits, for log fields; `None` without a valid span.
pub fn trace_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let ids = span.span_context();
    ids.is_valid().then(|| ids.trace_id().to_string())
}

/// The trace id of the current span when it is sampled (what an exemplar may point at).
pub fn current_sampled_trace_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let ids = span.span_context();
    (ids.is_valid() && ids.is_sampled()).then(|| ids.trace_id().to_string())
}

/// Records a span event (`parked`, `retry`, `deduplicated`, `partition paused`) on the
/// current span.
pub fn event(name: &'static str, attributes: Vec<KeyValue>) {
    tracing::Span::current().add_event(name, attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> Context {
        let owned: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        extract(|name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        })
    }

    fn written(cx: &Context) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        inject(cx, |k, v| out.push((k, v)));
        out
    }

    #[test]
    fn the_w3c_example_is_read_and_written_back() {
        let cx = headers(&[(TRACEPARENT, SAMPLE), (TRACESTATE, "vendor=a1")]);
        assert_eq!(
            trace_id(&cx).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let out = written(&cx);
        assert!(out.contains(&(TRACEPARENT, SAMPLE.to_owned())), "{out:?}");
        assert!(
            out.contains(&(TRACESTATE, "vendor=a1".to_owned())),
            "{out:?}"
        );
    }

    #[test]
    fn an_output_without_spans_keeps_the_trace_with_a_new_span_id() {
        let parent = headers(&[(TRACEPARENT, SAMPLE), (TRACESTATE, "vendor=a1")]);
        let child = outgoing(&tracing::Span::none(), &parent);
        assert_eq!(trace_id(&child), trace_id(&parent));
        let out = written(&child);
        let Some((_, traceparent)) = out.iter().find(|(k, _)| *k == TRACEPARENT) else {
            panic!("no traceparent in {out:?}")
        };
        assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");
        assert!(traceparent.ends_with("-01"));
        assert!(
            out.contains(&(TRACESTATE, "vendor=a1".to_owned())),
            "{out:?}"
        );
    }

    #[test]
    fn an_output_of_nothing_starts_a_sampled_trace() {
        let a = outgoing(&tracing::Span::none(), &Context::new());
        let b = outgoing(&tracing::Span::none(), &Context::new());
        assert!(trace_id(&a).is_some());
        assert_ne!(trace_id(&a), trace_id(&b));
        assert!(a.span().span_context().is_sampled());
    }

    #[test]
    fn invalid_values_are_not_continued() {
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            assert_eq!(trace_id(&headers(&[(TRACEPARENT, bad)])), None, "{bad:?}");
        }
        let not_utf8 = extract(|_| Some(&[0xFF, 0xFE][..]));
        assert_eq!(trace_id(&not_utf8), None);
    }
}
