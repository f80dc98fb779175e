//! The W3C `traceparent` that an outbox row carries. A write starts a trace; a
//! consumer that reacts to an event continues the event's trace, so every step
//! of one order shares one trace id. With spans exported (OpenTelemetry), the
//! row names the span that wrote it, so the next step's span is its child.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use rand::Rng;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    /// The W3C sampled flag: a trace the first service chose not to record
    /// (OTEL_TRACES_SAMPLER) stays unrecorded in every service after it.
    sampled: bool,
}

impl TraceContext {
    /// A new trace, for a request that arrives without one.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        TraceContext { trace_id: rng.random(), span_id: rng.random(), sampled: true }
    }

    /// The context to store with a step's event: the current span's, when
    /// spans are recorded (it already continues the step's `traceparent`);
    /// otherwise the trace of `traceparent` with a new span id. A missing or
    /// malformed header starts a new trace instead of failing the step.
    pub fn child_of(traceparent: Option<&str>) -> Self {
        if let Some(current) = Self::current_span() {
            return current;
        }
        match traceparent.and_then(parse) {
            Some((trace_id, _, sampled)) => TraceContext { trace_id, span_id: rand::rng().random(), sampled },
            None => Self::new_root(),
        }
    }

    fn current_span() -> Option<Self> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let ids = span.span_context();
        ids.is_valid().then(|| TraceContext { trace_id: ids.trace_id().to_bytes(), span_id: ids.span_id().to_bytes(), sampled: ids.is_sampled() })
    }

    /// The OpenTelemetry context a `traceparent` names, for a span that
    /// continues it (`set_parent`); the empty context when there is none.
    pub fn remote_context(traceparent: Option<&str>) -> opentelemetry::Context {
        match traceparent.and_then(parse) {
            Some((trace_id, span_id, sampled)) => opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(trace_id),
                SpanId::from_bytes(span_id),
                if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
                true,
                TraceState::default(),
            )),
            None => opentelemetry::Context::new(),
        }
    }

    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn to_header(&self) -> String {
        format!("00-{}-{}-{}", hex(&self.trace_id), hex(&self.span_id), if self.sampled { "01" } else { "00" })
    }
}

/// The trace and parent span ids of a `traceparent` and its sampled flag
/// (sampled when the flags are missing); None unless well formed.
fn parse(header: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let mut parts = header.trim().split('-');
    let (version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.chars().all(|c| c == '0') || span.chars().all(|c| c == '0') {
        return None;
    }
    let sampled = match parts.next() {
        Some(flags) => unhex::<1>(flags)?[0] & 1 == 1,
        None => true,
    };
    Some((unhex::<16>(trace)?, unhex::<8>(span)?, sampled))
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_keeps_the_trace_id_and_gets_a_new_span() {
        let parent = TraceContext::new_root();
        let child = TraceContext::child_of(Some(&parent.to_header()));
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.to_header(), parent.to_header());
    }

    #[test]
    fn a_malformed_header_starts_a_new_trace() {
        for bad in [
            "",
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            let context = TraceContext::child_of(Some(bad));
            assert_eq!(context.to_header().len(), 55, "{bad}");
        }
    }

    #[test]
    fn a_remote_context_names_the_header_s_trace_and_span() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::remote_context(Some(header));
        let ids = context.span().span_context().clone();
        assert_eq!(format!("{}", ids.trace_id()), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(format!("{}", ids.span_id()), "00f067aa0ba902b7");
        assert!(ids.is_remote());
        assert!(ids.is_sampled());
        let unsampled = TraceContext::remote_context(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
        assert!(!unsampled.span().span_context().is_sampled());
        let child = TraceContext::child_of(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
        assert!(child.to_header().ends_with("-00"), "an unsampled trace stays unsampled: {}", child.to_header());
        assert!(!TraceContext::remote_context(Some("garbage")).has_active_span());
    }

    #[test]
    fn the_header_has_the_w3c_shape() {
        let header = TraceContext::new_root().to_header();
        let parts: Vec<_> = header.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
    }
}
