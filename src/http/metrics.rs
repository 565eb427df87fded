//! `GET /metrics`: Prometheus' text exposition, encoded by the `prometheus` crate. The
//! process's histograms and counters ([`crate::telemetry`]), then this server's state read
//! at the scrape: requests, refusals, WebSockets, SQL statements, the pool, the replica,
//! and, from the database when it answers within 2 s, the job queue and what retention
//! purged (across tenants).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::app::AppState;
use crate::telemetry::TELEMETRY;

pub async fn metrics(State(state): State<AppState>) -> Response {
    let scrape = Registry::new();
    let counter = |name: &str, help: &str, value: u64| {
        let counter = IntCounter::new(name, help).expect("a valid counter");
        counter.inc_by(value);
        scrape.register(Box::new(counter)).expect("distinct names");
    };
    let gauge = |name: &str, help: &str, value: i64| {
        let gauge = IntGauge::new(name, help).expect("a valid gauge");
        gauge.set(value);
        scrape.register(Box::new(gauge)).expect("distinct names");
    };
    let m = &state.metrics;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    counter(
        "growthgraph_http_requests_total",
        "HTTP requests to /graphql",
        load(&m.http_requests),
    );
    counter(
        "growthgraph_graphql_operations_total",
        "GraphQL operations run over HTTP",
        load(&m.graphql_operations),
    );
    counter(
        "growthgraph_unauthenticated_total",
        "requests refused for their key",
        load(&m.unauthenticated),
    );
    counter(
        "growthgraph_rejected_requests_total",
        "requests refused before they ran",
        load(&m.rejected_requests),
    );
    gauge(
        "growthgraph_websocket_connections",
        "open WebSockets",
        load(&m.websocket_connections) as i64,
    );
    let payloads = IntCounterVec::new(
        Opts::new(
            "growthgraph_websocket_payloads_total",
            "subscription payloads sent, by lane",
        ),
        &["lane"],
    )
    .expect("a valid counter");
    payloads
        .with_label_values(&["executed"])
        .inc_by(load(&m.ws_payloads_executed));
    payloads
        .with_label_values(&["direct"])
        .inc_by(load(&m.ws_payloads_rendered));
    scrape.register(Box::new(payloads)).expect("distinct names");
    counter(
        "growthgraph_graphql_validation_skipped_total",
        "operations run without the full validation (their document passed it before)",
        load(&m.validation_skipped),
    );
    counter(
        "growthgraph_read_group_joins_total",
        "queries that joined another's read group",
        state.read_groups.joins(),
    );
    counter(
        "growthgraph_read_group_shared_total",
        "queries answered by an identical query another member of their read group ran",
        state.read_groups.shared(),
    );
    let statements = IntCounterVec::new(
        Opts::new(
            "growthgraph_sql_statements_total",
            "SQL statements sent, data or control",
        ),
        &["kind"],
    )
    .expect("a valid counter");
    statements
        .with_label_values(&["data"])
        .inc_by(load(&state.statements.data));
    statements
        .with_label_values(&["control"])
        .inc_by(load(&state.statements.control));
    scrape
        .register(Box::new(statements))
        .expect("distinct names");
    let pool = state.pool.status();
    gauge(
        "growthgraph_db_pool_size",
        "connections in the pool",
        pool.size as i64,
    );
    gauge(
        "growthgraph_db_pool_available",
        "idle connections in the pool",
        pool.available as i64,
    );
    let replica = state.replica.as_ref();
    gauge(
        "growthgraph_replica_usable",
        "whether the read replica serves reads",
        i64::from(replica.is_some_and(|r| r.is_usable())),
    );
    counter(
        "growthgraph_replica_reads_total",
        "queries the replica served",
        replica.map_or(0, |r| r.reads()),
    );
    gauge(
        "growthgraph_event_listener_up",
        "whether the event listener's connection is up",
        i64::from(state.hub.is_listening()),
    );
    // The queue and retention, when the database answers in time (else these are absent).
    let from_database = tokio::time::timeout(Duration::from_secs(2), async {
        let queue = crate::jobs::queue_metrics(&state.pool).await.ok()?;
        let purged = crate::scheduler::retention_metrics(&state.pool)
            .await
            .ok()?;
        Some((queue, purged))
    })
    .await;
    if let Ok(Some((queue, purged))) = from_database {
        let jobs = IntGaugeVec::new(
            Opts::new("growthgraph_jobs", "background jobs, by type and status"),
            &["type", "status"],
        )
        .expect("a valid gauge");
        let wait = GaugeVec::new(
            Opts::new(
                "growthgraph_job_wait_seconds",
                "how long the jobs completed in the last hour waited past their time",
            ),
            &["type", "quantile"],
        )
        .expect("a valid gauge");
        for q in &queue {
            jobs.with_label_values(&[&q.job_type, &q.status])
                .set(q.jobs);
            if q.status == "completed" {
                for (quantile, value) in [("0.5", q.p50_seconds), ("0.99", q.p99_seconds)] {
                    if let Some(value) = value {
                        wait.with_label_values(&[&q.job_type, quantile]).set(value);
                    }
                }
            }
        }
        let retention = IntCounterVec::new(
            Opts::new(
                "growthgraph_retention_purged_total",
                "rows retention deleted, by kind",
            ),
            &["kind"],
        )
        .expect("a valid counter");
        for (kind, rows) in purged {
            retention
                .with_label_values(&[&kind])
                .inc_by(rows.max(0) as u64);
        }
        for collector in [
            Box::new(jobs) as Box<dyn prometheus::core::Collector>,
            Box::new(wait),
            Box::new(retention),
        ] {
            scrape.register(collector).expect("distinct names");
        }
    }
    let mut families = TELEMETRY.registry.gather();
    families.extend(scrape.gather());
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(error) = encoder.encode(&families, &mut body) {
        tracing::warn!(%error, "metrics could not be encoded");
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        body,
    )
        .into_response()
}
