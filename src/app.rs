//! Shared state, built once at start-up and cloned (cheaply) into every handler.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::config::ServeArgs;
use crate::db::group::ReadGroups;
use crate::db::replica::Replica;
use crate::db::share::TenantShares;
use crate::db::{PgPool, StatementCounter};
use crate::events::EventHub;
use crate::graphql::budget::TenantBudgets;
use crate::graphql::guard::{coded_error, Prepared, RequestGuard};
use crate::graphql::{build_schema_validating, AppSchema, WebhookPolicy};
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
    /// Each tenant's cost budget (see `graphql::budget`).
    pub budgets: TenantBudgets,
    /// Each tenant's share of the pool (see `db::share`).
    pub shares: Arc<TenantShares>,
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
    /// Documents named by their hash (automatic persisted queries), or the only ones
    /// that run (`--trusted-documents`).
    pub persisted: crate::http::persisted::PersistedDocuments,
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
        let webhooks = WebhookPolicy {
            allow_insecure: limits.allow_insecure_webhooks,
        };
        let schema = build_schema_validating(
            Some(hub.clone()),
            key.clone(),
            webhooks,
            ValidationMode::Strict,
        );
        let unvalidated_schema =
            build_schema_validating(Some(hub.clone()), key, webhooks, ValidationMode::Fast);
        let share = match limits.tenant_pool_share {
            0 => TenantShares::default_per_tenant(pool.status().max_size),
            share => share,
        };
        // A request waits for its tenant's share at most as long as the pool's own wait.
        let shares = TenantShares::new(share, std::time::Duration::from_secs(4));
        AppState(Arc::new(Inner {
            budgets: TenantBudgets::new(limits.tenant_cost_budget, limits.tenant_cost_restore),
            shares: Arc::new(shares),
            pool,
            replica,
            statements,
            guard: RequestGuard::new(&schema, limits.speed),
            read_groups: ReadGroups::new(limits.read_group, limits.read_group_connections),
            schema,
            unvalidated_schema,
            hub,
            limits,
            metrics: Metrics::default(),
            graphiql_key,
            persisted: crate::http::persisted::PersistedDocuments::automatic(),
            sockets_per_key: Default::default(),
            shutdown: tokio::sync::watch::channel(false).0,
        }))
    }
}

impl AppState {
    /// Only `documents` run (`--trusted-documents`); before the state is shared.
    pub fn with_trusted_documents(
        mut self,
        documents: crate::http::persisted::PersistedDocuments,
    ) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("the state is not shared yet")
            .persisted = documents;
        self
    }

    /// Runs one prepared operation over HTTP: without the full validation when
    /// [`Prepared::skips_validation`], and recording a document that passes it.
    pub async fn run(
        &self,
        request: async_graphql::Request,
        prepared: &Prepared,
    ) -> async_graphql::Response {
        if let Some(refused) = prepared.refusal_response() {
            return refused;
        }
        let run = async {
            if prepared.skips_validation {
                self.metrics
                    .validation_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return async_graphql::Schema::execute(&self.unvalidated_schema, request).await;
            }
            let response = async_graphql::Schema::execute(&self.schema, request).await;
            self.guard.settle(prepared, &response);
            response
        };
        let limit = self.request_timeout();
        match tokio::time::timeout(limit, run).await {
            Ok(response) => response,
            Err(_) => async_graphql::Response::from_errors(vec![coded_error(
                "QUERY_TOO_COMPLEX",
                format!(
                    "the operation ran longer than {} ms and was stopped",
                    limit.as_millis()
                ),
            )]),
        }
    }

    /// How long an operation may run.
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.limits.request_timeout_ms)
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
