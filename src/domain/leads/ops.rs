use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::Lead;
use crate::db::schema::lead_memory;
use crate::db::Tenant;

/// Non-deleted leads converted into these customers, oldest first.
pub async fn leads_of_customers(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customers: &[Uuid],
) -> QueryResult<Vec<Lead>> {
    lead_memory::table
        .filter(lead_memory::tenant_id.eq(scope.id()))
        .filter(lead_memory::customer_id.eq_any(customers))
        .filter(lead_memory::deleted.eq(false))
        .select(Lead::as_select())
        .order((lead_memory::created_at, lead_memory::id))
        .load(conn)
        .await
}
