use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::model::{ClubStage, Enrollment, EnrollmentStatus};
use crate::db::schema::{club_enrollments, club_stages};
use crate::db::Tenant;

pub async fn stages_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<ClubStage>> {
    club_stages::table
        .filter(club_stages::tenant_id.eq(scope.id()))
        .filter(club_stages::id.eq_any(ids))
        .select(ClubStage::as_select())
        .load(conn)
        .await
}

/// Every enrollment of these customers, oldest first.
pub async fn enrollments_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customers: &[Uuid],
) -> QueryResult<Vec<Enrollment>> {
    club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .filter(club_enrollments::customer_id.eq_any(customers))
        .select(Enrollment::as_select())
        .order((
            club_enrollments::enrolled_at,
            club_enrollments::created_at,
            club_enrollments::id,
        ))
        .load(conn)
        .await
}

/// The active enrollment of each of these customers (at most one each, by constraint).
pub async fn current_enrollments(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customers: &[Uuid],
) -> QueryResult<Vec<Enrollment>> {
    club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .filter(club_enrollments::customer_id.eq_any(customers))
        .filter(club_enrollments::status.eq(EnrollmentStatus::Active))
        .select(Enrollment::as_select())
        .load(conn)
        .await
}
