//! The transactional outbox: every state change writes its `domain_events` row in the
//! same transaction, so nothing rolled back is ever published and nothing committed is
//! lost. Publishing (positions, fan-out to subscribers) lives in `crate::events`.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::domain_events;
use crate::db::Tenant;

#[derive(Insertable)]
#[diesel(table_name = domain_events)]
struct NewEvent<'a> {
    tenant_id: Uuid,
    event_type: &'a str,
    subject_id: Uuid,
    payload: serde_json::Value,
}

/// Appends one event (`type` like `customer.upserted`) about `subject`.
pub async fn record(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    event_type: &str,
    subject: Uuid,
    payload: serde_json::Value,
) -> QueryResult<()> {
    let id: i64 = diesel::insert_into(domain_events::table)
        .values(NewEvent {
            tenant_id: scope.id(),
            event_type,
            subject_id: subject,
            payload,
        })
        .returning(domain_events::id)
        .get_result(conn)
        .await?;
    // Webhook deliveries are jobs of the same transaction (none without endpoints).
    crate::domain::webhooks::ops::enqueue_deliveries(conn, scope, id, event_type).await?;
    // Delivered at commit only (and once per transaction): wakes the sequencer.
    diesel::sql_query("SELECT pg_notify('gg_events_written', '')")
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
    let mut query = domain_events::table
        .filter(domain_events::tenant_id.eq(scope.id()))
        .filter(domain_events::position.gt(after))
        .select(StoredEvent::as_select())
        .order(domain_events::position)
        .limit(limit)
        .into_boxed();
    if let Some(up_to) = up_to {
        query = query.filter(domain_events::position.le(up_to));
    }
    if let Some(types) = types {
        query = query.filter(domain_events::event_type.eq_any(types));
    }
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
