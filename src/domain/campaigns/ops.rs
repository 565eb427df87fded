use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::Campaign;
use crate::db::schema::campaigns;
use crate::db::Tenant;

pub async fn campaigns_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Campaign>> {
    campaigns::table
        .filter(campaigns::tenant_id.eq(scope.id()))
        .filter(campaigns::id.eq_any(ids))
        .select(Campaign::as_select())
        .load(conn)
        .await
}
