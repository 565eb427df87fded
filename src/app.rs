//! Shared state, built once at start-up and cloned (cheaply) into every handler.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::config::ServeArgs;
use crate::db::group::ReadGroups;
use crate::db::replica::Replica;
use crate::db::{PgPool, StatementCounter};
use crate::events::EventHub;
use crate::graphql::guard::Prepared;
use crate::graphql::guard::RequestGuard;
use crate::graphql::{build_schema_validating, AppSchema};
use async_graphql::ValidationMode;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub pool: PgPool,
    /// The read replica, when `--replica-url` gives one (see `db::replica`).
    pub replica: Option<Arc<Replica>>,
    pub statements: Arc<StatementCounter>,
    pub schema: AppSchema,
    /// The same schema without the full validation, for operations whose document passed
    /// it before and whose variables cannot fail it (see `graphql::variables`).
    pub unvalidated_schema: AppSchema,
    /// Parsed-query cache, cost, error codes: around every operation the schema runs.
    pub guard: RequestGuard,
    /// Queries of one known key that arrive together (see `db::group`).
    pub read_groups: ReadGroups,
    /// Also holds what the database said about recently used API keys
    /// (`hub.known_keys`: each request has it confirmed; the listener forgets the ones
    /// that change).
    pub hub: Arc<EventHub>,
    pub limits: ServeArgs,
    pub metrics: Metrics,
    /// Flips to true on SIGINT/SIGTERM: WebSockets send a close frame and end.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Open WebSocket connections per API key (limited by `http::MAX_SOCKETS_PER_KEY`).
    pub sockets_per_key: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, usize>>,
    /// The demo admin key, pre-filled into GraphiQL when serving the embedded demo on
    /// loopback.
    pub graphiql_key: Option<String>,
}

/// Counters exported at `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub graphql_operations: AtomicU64,
    pub unauthenticated: AtomicU64,
    pub rejected_requests: AtomicU64,
    pub websocket_connections: AtomicU64,
    /// Subscription payloads sent over WebSockets, by how they were produced.
    pub ws_payloads_executed: AtomicU64,
    pub ws_payloads_rendered: AtomicU64,
    /// Operations run without the full validation (their document passed it before).
    pub validation_skipped: AtomicU64,
}

impl AppState {
    /// The state over `pool` (and `replica`, when there is one: see `db::replica`).
    pub fn new(
        pool: PgPool,
        replica: Option<Arc<Replica>>,
        statements: Arc<StatementCounter>,
        limits: ServeArgs,
        graphiql_key: Option<String>,
        hub: Arc<EventHub>,
    ) -> Self {
        let key = limits.secret_key.clone();
        let schema =
            build_schema_validating(Some(hub.clone()), key.clone(), ValidationMode::Strict);
        let unvalidated_schema =
            build_schema_validating(Some(hub.clone()), key, ValidationMode::Fast);
        AppState(Arc::new(Inner {
            pool,
            replica,
            statements,
            guard: RequestGuard::new(&schema),
            read_groups: ReadGroups::new(limits.read_group, limits.read_group_connections),
            schema,
            unvalidated_schema,
            hub,
            limits,
            metrics: Metrics::default(),
            graphiql_key,
            sockets_per_key: Default::default(),
            shutdown: tokio::sync::watch::channel(false).0,
        }))
    }
}

impl AppState {
    /// Runs one prepared operation over HTTP: without the full validation when
    /// [`Prepared::skips_validation`], and recording a document that passes it.
    pub async fn run(
        &self,
        request: async_graphql::Request,
        prepared: &Prepared,
    ) -> async_graphql::Response {
        if prepared.skips_validation {
            self.metrics
                .validation_skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return async_graphql::Schema::execute(&self.unvalidated_schema, request).await;
        }
        let response = async_graphql::Schema::execute(&self.schema, request).await;
        self.guard.settle(prepared, &response);
        response
    }

    /// Where a request reads: the replica's pool for a query of a known key while the
    /// replica is usable (`read_only` and `known`), else the primary's.
    pub fn pool_for(&self, read_only: bool, known: bool) -> PgPool {
        let replica = match (&self.replica, read_only && known) {
            (Some(replica), true) => replica.for_reads(),
            _ => None,
        };
        replica.unwrap_or_else(|| self.pool.clone())
    }

    pub fn batch_window(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.limits.batch_window_us)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
