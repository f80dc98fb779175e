//! One tracing subscriber per process: human-readable by default, JSON with
//! `OUTFLOW_LOG_FORMAT=json`; the level comes from `RUST_LOG` (default `info`).
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set (scripts/up points it at Jaeger), the
//! process's spans are also exported over OTLP/gRPC, as service
//! `outflow-<name>`. A span that continues a W3C `traceparent` (an HTTP
//! request's header, a Kafka record's header) joins that trace, so one order
//! is one trace across every writer and consumer it passes.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    runtime,
    trace::{span_processor_with_async_runtime::BatchSpanProcessor, SdkTracerProvider},
    Resource,
};
use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("OUTFLOW_LOG_FORMAT").is_ok_and(|f| f == "json");
    let (otel, exporting) = match exporter(service) {
        Ok(Some(tracer)) => (Some(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(only_outflow_spans())), None),
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // A second init (tests building several apps in one process) is harmless.
    let _ = if json {
        registry.with(fmt::layer().json().with_current_span(true)).try_init()
    } else {
        // Colours only for a terminal: logs redirected to files stay plain text.
        registry.with(fmt::layer().compact().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))).try_init()
    };
    if let Some(e) = exporting {
        tracing::warn!(error = %format!("{e:#}"), "spans are not exported");
    }
    tracing::info!(service, traces = PROVIDER.get().is_some(), "telemetry ready");
}

/// Only Outflow's own spans go to the trace: the libraries' (the OTLP
/// client's own gRPC calls among them) would be noise, or a loop.
fn only_outflow_spans() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new().with_target("outflow", tracing::Level::INFO)
}

/// The OTLP exporter, when an endpoint is configured and a Tokio runtime
/// runs this call (the batch processor lives on it).
fn exporter(service: &str) -> anyhow::Result<Option<opentelemetry_sdk::trace::Tracer>> {
    let Some(endpoint) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    anyhow::ensure!(tokio::runtime::Handle::try_current().is_ok(), "telemetry::init ran outside a Tokio runtime");
    let exporter = SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, runtime::Tokio).build())
        .with_resource(Resource::builder().with_service_name(format!("outflow-{service}")).build())
        .build();
    let tracer = provider.tracer("outflow");
    let _ = PROVIDER.set(provider);
    Ok(Some(tracer))
}

/// Sends the spans still buffered; awaited as a service stops, so that its
/// last seconds of work are not missing from their traces.
pub async fn flush() {
    if let Some(provider) = PROVIDER.get() {
        // The flush waits for the batch task on this runtime: not on a worker thread.
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    }
}

/// A span named `name` in the trace of a stored `traceparent`: for work that
/// belongs to an order's trace but does not arrive with it (the provider's
/// webhook, the expiry sweep).
pub fn continuing(name: &str, traceparent: Option<&str>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!("continuing", otel.name = name);
    let _ = span.set_parent(outflow_outbox::TraceContext::remote_context(traceparent));
    span
}
