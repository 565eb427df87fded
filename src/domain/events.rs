//! The transactional outbox: every state change writes its `domain_events` row in the
//! same transaction, so nothing rolled back is ever published and nothing committed is
//! lost.

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
    diesel::insert_into(domain_events::table)
        .values(NewEvent {
            tenant_id: scope.id(),
            event_type,
            subject_id: subject,
            payload,
        })
        .execute(conn)
        .await
        .map(|_| ())
}
