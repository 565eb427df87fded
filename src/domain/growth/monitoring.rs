//! What the server measured about itself (`performance_metrics`, per tenant, operation
//! and minute) and the calls partners and widgets made (`integration_logs`), newest
//! first, for admins and analysts (`crate::observed` writes both).

use async_graphql::connection::Connection;
use async_graphql::{Context, Json, Object, SimpleObject, ID};
use bigdecimal::ToPrimitive;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use scoped_futures::ScopedFutureExt;
use uuid::Uuid;

use crate::auth::Access;
use crate::db::filter::FilterSome;
use crate::db::page::{CreatedRow, PageRequest};
use crate::db::schema::{integration_logs, performance_metrics};
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::connection::{created_page, Cursor};

type Page<N> = Connection<Cursor<DateTime<Utc>>, N>;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = performance_metrics, check_for_backend(diesel::pg::Pg))]
struct MetricRow {
    id: Uuid,
    event_type: String,
    metric_name: String,
    metric_value: bigdecimal::BigDecimal,
    metric_unit: String,
    response_time_ms: Option<i32>,
    success_rate: Option<bigdecimal::BigDecimal>,
    error_count: i32,
    source_component: Option<String>,
    metadata: serde_json::Value,
    recorded_at: DateTime<Utc>,
}

impl CreatedRow for MetricRow {
    fn created_at(&self) -> DateTime<Utc> {
        self.recorded_at
    }
    fn id(&self) -> Uuid {
        self.id
    }
}

/// One measurement: for the server's own, one operation name over one minute
/// (`metricValue` its p50 in ms, `responseTimeMs` its p95; `metadata` holds the
/// operation, count, p50, p95 and error rate).
#[derive(SimpleObject)]
pub struct PerformanceMetric {
    pub id: ID,
    /// api_response, ai_analysis, translation, lead_processing or email_response.
    pub event_type: String,
    /// response_time, accuracy, success_rate or error_rate.
    pub metric_name: String,
    pub metric_value: f64,
    /// ms, percent, count or score.
    pub metric_unit: String,
    pub response_time_ms: Option<i32>,
    /// 0 to 1.
    pub success_rate: Option<f64>,
    pub error_count: i32,
    pub source_component: Option<String>,
    pub metadata: Json<serde_json::Value>,
    /// The minute measured (its start).
    pub recorded_at: DateTime<Utc>,
}

impl From<MetricRow> for PerformanceMetric {
    fn from(m: MetricRow) -> Self {
        PerformanceMetric {
            id: ID(m.id.to_string()),
            event_type: m.event_type,
            metric_name: m.metric_name,
            metric_value: m.metric_value.to_f64().unwrap_or_default(),
            metric_unit: m.metric_unit,
            response_time_ms: m.response_time_ms,
            success_rate: m.success_rate.and_then(|s| s.to_f64()),
            error_count: m.error_count,
            source_component: m.source_component,
            metadata: Json(m.metadata),
            recorded_at: m.recorded_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = integration_logs, check_for_backend(diesel::pg::Pg))]
struct LogRow {
    id: Uuid,
    api_key: Option<String>,
    endpoint: String,
    method: String,
    request_body: Option<serde_json::Value>,
    response_status: Option<i32>,
    response_body: Option<serde_json::Value>,
    ip_hash: Option<String>,
    user_agent: Option<String>,
    created_at: DateTime<Utc>,
}

crate::created_row!(LogRow);

/// One call of a partner or widget key: the key's display prefix only, bodies with
/// secrets and email addresses redacted and cut at 4 KiB, the caller's address hashed.
#[derive(SimpleObject)]
pub struct IntegrationLog {
    pub id: ID,
    pub api_key_prefix: Option<String>,
    pub endpoint: String,
    pub method: String,
    pub request_body: Option<Json<serde_json::Value>>,
    pub response_status: Option<i32>,
    pub response_body: Option<Json<serde_json::Value>>,
    /// SHA-256 of the caller's IP address.
    pub ip_hash: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<LogRow> for IntegrationLog {
    fn from(l: LogRow) -> Self {
        IntegrationLog {
            id: ID(l.id.to_string()),
            api_key_prefix: l.api_key,
            endpoint: l.endpoint,
            method: l.method,
            request_body: l.request_body.map(Json),
            response_status: l.response_status,
            response_body: l.response_body.map(Json),
            ip_hash: l.ip_hash,
            user_agent: l.user_agent,
            created_at: l.created_at,
        }
    }
}

async fn list_metrics(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    operation: Option<String>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<MetricRow>> {
    use performance_metrics as m;
    let query = m::table
        .filter(m::tenant_id.eq(scope.id()))
        .select(MetricRow::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(operation, |v| {
            diesel::dsl::sql::<diesel::sql_types::Bool>("metadata ->> 'operationName' = ")
                .bind::<diesel::sql_types::Text, _>(v)
        });
    crate::keyset!(query, page, m::recorded_at, m::id, desc)
        .load(conn)
        .await
}

async fn list_logs(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<LogRow>> {
    use integration_logs as l;
    let query = l::table
        .filter(l::tenant_id.eq(scope.id()))
        .select(LogRow::as_select())
        .limit(page.limit())
        .into_boxed();
    crate::keyset!(query, page, l::created_at, l::id, desc)
        .load(conn)
        .await
}

#[derive(Default)]
pub struct MonitoringQuery;

#[Object]
impl MonitoringQuery {
    /// What the server measured (per operation name and minute), newest first
    /// (admins, analysts; kept 30 days).
    #[graphql(guard = "Access::Observe")]
    async fn performance_metrics(
        &self,
        ctx: &Context<'_>,
        operation_name: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<PerformanceMetric>> {
        crate::graphql::connection::check_search(&operation_name)?;
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| {
                async move { list_metrics(conn, scope, operation_name, &page).await }.scope_boxed()
            },
            PerformanceMetric::from,
        )
        .await
    }

    /// The calls of partner and widget keys, newest first (admins, analysts; kept 30 days).
    #[graphql(guard = "Access::Observe")]
    async fn integration_logs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Page<IntegrationLog>> {
        created_page(
            ctx,
            PageRequest::either(first, after, last, before)?,
            |conn, scope, page| async move { list_logs(conn, scope, &page).await }.scope_boxed(),
            IntegrationLog::from,
        )
        .await
    }
}
