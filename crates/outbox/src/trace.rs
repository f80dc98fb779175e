//! The W3C `traceparent` that an outbox row carries. A write starts a trace; a
//! consumer that reacts to an event continues the event's trace with a new span
//! id, so every step of one order shares one trace id.

use rand::Rng;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl TraceContext {
    /// A new trace, for a request that arrives without one.
    pub fn new_root() -> Self {
        let mut rng = rand::rng();
        TraceContext { trace_id: rng.random(), span_id: rng.random() }
    }

    /// Continues the trace of a `traceparent` header; a missing or malformed
    /// header starts a new trace instead of failing the step.
    pub fn child_of(traceparent: Option<&str>) -> Self {
        match traceparent.and_then(parse_trace_id) {
            Some(trace_id) => TraceContext { trace_id, span_id: rand::rng().random() },
            None => Self::new_root(),
        }
    }

    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn to_header(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }
}

fn parse_trace_id(header: &str) -> Option<[u8; 16]> {
    let mut parts = header.trim().split('-');
    let (version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || trace.chars().all(|c| c == '0') {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(trace.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
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
        for bad in ["", "00-xyz-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"] {
            let context = TraceContext::child_of(Some(bad));
            assert_eq!(context.to_header().len(), 55, "{bad}");
        }
    }

    #[test]
    fn the_header_has_the_w3c_shape() {
        let header = TraceContext::new_root().to_header();
        let parts: Vec<_> = header.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"));
    }
}
