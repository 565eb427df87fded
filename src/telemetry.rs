//! Logs, traces and metrics. Logs go to stderr (text, coloured only on a terminal, or
//! JSON lines); with `--otlp-endpoint`, traces go to an OpenTelemetry collector over OTLP
//! (HTTP, JSON): a span per GraphQL request (operation, tenant, correlation id) with a
//! child span per SQL statement. `/metrics` exposes, through the `prometheus` crate, the
//! process's histograms and counters (kept here, for every server the process runs) and
//! each scrape's readings of one server's state (see `http::metrics`).
//!
//! Operation names come from clients: at most [`MAX_OPERATIONS`] distinct ones get their
//! own label value (the rest are `other`), so hostile names cannot grow the registry.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Distinct operation names labelled before the rest count as `other`.
pub const MAX_OPERATIONS: usize = 200;

pub struct Telemetry {
    pub registry: Registry,
    /// GraphQL operations over HTTP, by operation name and type.
    pub request_duration: HistogramVec,
    /// Errors answered, by their `extensions.code`.
    pub errors: IntCounterVec,
    /// How long a request waited for a pool connection.
    pub pool_wait: Histogram,
    /// How long each SQL statement took.
    pub statement_duration: Histogram,
    /// Subscriptions running over WebSockets.
    pub subscriptions: IntGauge,
    operations: Mutex<HashSet<String>>,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    15.0,
];

pub static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(Telemetry::new);

impl Telemetry {
    fn new() -> Telemetry {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let request_duration = HistogramVec::new(
            histogram(
                "growthgraph_graphql_request_duration_seconds",
                "GraphQL operations over HTTP, from their reading to their answer",
            ),
            &["operation", "type"],
        )
        .expect("a valid histogram");
        let errors = IntCounterVec::new(
            Opts::new(
                "growthgraph_errors_total",
                "errors answered, by extensions.code",
            ),
            &["code"],
        )
        .expect("a valid counter");
        let pool_wait = Histogram::with_opts(histogram(
            "growthgraph_db_pool_wait_seconds",
            "how long a unit of work waited for a pool connection",
        ))
        .expect("a valid histogram");
        let statement_duration = Histogram::with_opts(histogram(
            "growthgraph_sql_statement_duration_seconds",
            "how long each SQL statement took, from sending to its answer",
        ))
        .expect("a valid histogram");
        let subscriptions = IntGauge::new(
            "growthgraph_subscriptions",
            "subscriptions running over WebSockets",
        )
        .expect("a valid gauge");
        let build = IntGaugeVec::new(
            Opts::new("growthgraph_build_info", "the running build"),
            &["version"],
        )
        .expect("a valid gauge");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for collector in [
            Box::new(request_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(pool_wait.clone()),
            Box::new(statement_duration.clone()),
            Box::new(subscriptions.clone()),
            Box::new(build),
        ] {
            registry.register(collector).expect("distinct metric names");
        }
        Telemetry {
            registry,
            request_duration,
            errors,
            pool_wait,
            statement_duration,
            subscriptions,
            operations: Mutex::new(HashSet::new()),
        }
    }

    /// The label of operation `name`: itself while fewer than [`MAX_OPERATIONS`] names
    /// were seen (and it is a GraphQL name), `anonymous` without one, else `other`.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".to_owned();
        };
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return "other".to_owned();
        }
        let mut seen = self.operations.lock().expect("the operation names");
        if seen.contains(name) || seen.len() < MAX_OPERATIONS && seen.insert(name.to_owned()) {
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts an error answered with `code`.
    pub fn error(&self, code: &str) {
        let known = [
            "UNAUTHENTICATED",
            "FORBIDDEN",
            "BAD_USER_INPUT",
            "QUERY_TOO_COMPLEX",
            "RATE_LIMITED",
            "UNAVAILABLE",
            "INTERNAL",
            "PERSISTED_QUERY_NOT_FOUND",
            "NOT_FOUND",
        ];
        let code = if known.contains(&code) { code } else { "OTHER" };
        self.errors.with_label_values(&[code]).inc();
    }
}

/// Whether SQL statements get spans of their own (only while traces are exported: a
/// span per statement costs on the hot path).
static STATEMENT_SPANS: AtomicBool = AtomicBool::new(false);

pub fn statement_spans() -> bool {
    STATEMENT_SPANS.load(Ordering::Relaxed)
}

/// Sets up logging, and trace export when `--otlp-endpoint` is given; returns the tracer
/// provider to shut down (flushing its last spans) before the process ends. Call it
/// before any async runtime starts: the exporter's HTTP client blocks on its own thread.
pub fn init_tracing(
    global: &crate::config::GlobalArgs,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = match global.log_format {
        crate::config::LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        crate::config::LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = match &global.otlp_endpoint {
        None => None,
        Some(endpoint) => Some(tracer_provider(endpoint)?),
    };
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("growthgraph"))
    });
    STATEMENT_SPANS.store(provider.is_some(), Ordering::Relaxed);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    Ok(provider)
}

/// Spans batched and sent to `{endpoint}/v1/traces` (OTLP over HTTP, JSON).
fn tracer_provider(endpoint: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("--otlp-endpoint {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("growthgraph")
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        let telemetry = Telemetry::new();
        assert_eq!(telemetry.operation_label(None), "anonymous");
        assert_eq!(
            telemetry.operation_label(Some("Customer360")),
            "Customer360"
        );
        assert_eq!(telemetry.operation_label(Some("bad name\n")), "other");
        for i in 0..MAX_OPERATIONS * 2 {
            telemetry.operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(
            telemetry.operation_label(Some("Customer360")),
            "Customer360"
        );
        assert_eq!(
            telemetry.operation_label(Some("Op199")),
            "other",
            "201st name"
        );
        assert_eq!(telemetry.operation_label(Some("Op5")), "Op5");
        assert_eq!(telemetry.operations.lock().unwrap().len(), MAX_OPERATIONS);
        telemetry.error("SOMETHING_NEW");
        assert_eq!(telemetry.errors.with_label_values(&["OTHER"]).get(), 1);
    }
}
