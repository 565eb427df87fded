//! The transactional outbox: every state change writes its `domain_events` row in the
//! same transaction, so nothing rolled back is ever published and nothing committed is
//! lost. Publishing (positions, fan-out to subscribers) lives in `crate::events`.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::filter::FilterSome;
use crate::db::schema::domain_events;
use crate::db::sql::Prepared;
use crate::db::Tenant;

// One statement per event (or per batch of events): the outbox rows, and a delivery and
// its job for each subscribed webhook endpoint (see `crate::domain::webhooks`). Raw SQL
// because the DSL cannot chain data-modifying CTEs. (No NOTIFY here: it would take
// PostgreSQL's global notification lock at every commit; the sequencer polls instead, see
// `crate::events`.)

/// What follows the `event` CTE in both statements below: a webhook delivery and its job
/// for each subscribed endpoint.
macro_rules! deliveries_of_events {
    () => {
        r#"
, deliveries AS (
    INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type)
    SELECT w.tenant_id, w.id, event.id, event.event_type
    FROM webhook_endpoints w, event
    WHERE w.tenant_id = event.tenant_id AND w.enabled
      AND (w.event_types = '{}' OR event.event_type = ANY (w.event_types))
    RETURNING id
), jobs AS (
    INSERT INTO queue_jobs (tenant_id, job_type, payload)
    SELECT $1, 'webhook_delivery', jsonb_build_object('deliveryId', deliveries.id) FROM deliveries
    RETURNING 1
)
SELECT 1 FROM event
"#
    };
}

const RECORD_SQL: &str = concat!(
    r#"
WITH event AS (
    INSERT INTO domain_events (tenant_id, event_type, subject_id, payload)
    VALUES ($1, $2, $3, $4)
    RETURNING id, tenant_id, event_type
)"#,
    deliveries_of_events!()
);

/// [`RECORD_SQL`] for many events at once (arrays of types, subjects and payloads).
const RECORD_MANY_SQL: &str = concat!(
    r#"
WITH event AS (
    INSERT INTO domain_events (tenant_id, event_type, subject_id, payload)
    SELECT $1, e.event_type, e.subject_id, e.payload
    FROM unnest($2::text[], $3::uuid[], $4::jsonb[]) WITH ORDINALITY AS e(event_type, subject_id, payload, n)
    ORDER BY e.n
    RETURNING id, tenant_id, event_type
)"#,
    deliveries_of_events!()
);

/// Appends many events in one statement: `(type, subject, payload)` each, in order (one
/// event alone is [`record`]'s statement).
pub async fn record_many(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    mut events: Vec<(String, Uuid, serde_json::Value)>,
) -> QueryResult<()> {
    if events.len() <= 1 {
        return match events.pop() {
            Some((event_type, subject, payload)) => {
                record(conn, scope, &event_type, subject, payload).await
            }
            None => Ok(()),
        };
    }
    let mut types = Vec::with_capacity(events.len());
    let mut subjects = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for (event_type, subject, payload) in events {
        types.push(event_type);
        subjects.push(subject);
        payloads.push(payload);
    }
    use diesel::sql_types::{Array, Jsonb, Text, Uuid as SqlUuid};
    Prepared::new(RECORD_MANY_SQL)
        .bind::<SqlUuid, _>(scope.id())
        .bind::<Array<Text>, _>(types)
        .bind::<Array<SqlUuid>, _>(subjects)
        .bind::<Array<Jsonb>, _>(payloads)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Appends one event (`type` like `customer.upserted`) about `subject`.
pub async fn record(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    event_type: &str,
    subject: Uuid,
    payload: serde_json::Value,
) -> QueryResult<()> {
    Prepared::new(RECORD_SQL)
        .bind::<diesel::sql_types::Uuid, _>(scope.id())
        .bind::<diesel::sql_types::Text, _>(event_type)
        .bind::<diesel::sql_types::Uuid, _>(subject)
        .bind::<diesel::sql_types::Jsonb, _>(payload)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A published event: committed and given its position (the cursor).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = domain_events, check_for_backend(diesel::pg::Pg))]
pub struct StoredEvent {
    pub position: Option<i64>,
    pub tenant_id: Uuid,
    pub event_type: String,
    pub subject_id: Uuid,
    pub payload: serde_json::Value,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
}

impl StoredEvent {
    pub fn position(&self) -> i64 {
        self.position.unwrap_or_default()
    }
}

/// The tenant's published events after `after`, in position order.
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    after: i64,
    up_to: Option<i64>,
    limit: i64,
    types: Option<&[String]>,
) -> QueryResult<Vec<StoredEvent>> {
    let query = domain_events::table
        .filter(domain_events::tenant_id.eq(scope.id()))
        .filter(domain_events::position.gt(after))
        .select(StoredEvent::as_select())
        .order(domain_events::position)
        .limit(limit)
        .into_boxed()
        .filter_some(up_to, |v| domain_events::position.le(v))
        .filter_some(types, |v| domain_events::event_type.eq_any(v));
    query.load(conn).await
}

/// The tenant's highest published position (0 when none).
pub async fn last_position(conn: &mut AsyncPgConnection, scope: Tenant) -> QueryResult<i64> {
    Ok(domain_events::table
        .filter(domain_events::tenant_id.eq(scope.id()))
        .select(diesel::dsl::max(domain_events::position))
        .first::<Option<i64>>(conn)
        .await?
        .unwrap_or(0))
}
