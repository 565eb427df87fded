//! Reads: stages, enrollments, rules, rewards and redemptions, by id and by page.

use super::*;

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

pub async fn enrollment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<Option<Enrollment>> {
    club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .filter(club_enrollments::id.eq(id))
        .select(Enrollment::as_select())
        .first(conn)
        .await
        .optional()
}

#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    pub status: Option<EnrollmentStatus>,
    pub customer_id: Option<Uuid>,
    pub stage_id: Option<Uuid>,
}

pub async fn list_enrollments(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &EnrollmentFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Enrollment>> {
    let mut query = club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .select(Enrollment::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(filter.status, |v| club_enrollments::status.eq(v))
        .filter_some(filter.customer_id, |v| club_enrollments::customer_id.eq(v))
        .filter_some(filter.stage_id, |v| club_enrollments::stage_id.eq(v));
    query = crate::keyset!(
        query,
        page,
        club_enrollments::created_at,
        club_enrollments::id,
        desc
    );
    Ok(query.load(conn).await?)
}

pub async fn point_transaction(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<PointTransaction> {
    point_transactions::table
        .filter(point_transactions::tenant_id.eq(scope.id()))
        .filter(point_transactions::id.eq(id))
        .select(PointTransaction::as_select())
        .first(conn)
        .await
}

pub async fn program(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Option<ClubProgram>> {
    club_programs::table
        .filter(club_programs::tenant_id.eq(scope.id()))
        .select(ClubProgram::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn stages_of_program(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<ClubStage>> {
    club_stages::table
        .filter(club_stages::tenant_id.eq(scope.id()))
        .select(ClubStage::as_select())
        .order(club_stages::stage_order)
        .load(conn)
        .await
}

pub async fn rules(conn: &mut AsyncPgConnection, scope: Tenant) -> QueryResult<LoyaltyRules> {
    Ok(loyalty_point_rules::table
        .filter(loyalty_point_rules::tenant_id.eq(scope.id()))
        .select(LoyaltyRules::as_select())
        .first(conn)
        .await
        .optional()?
        .unwrap_or_default())
}

pub async fn rewards_by_ids(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ids: &[Uuid],
) -> QueryResult<Vec<Reward>> {
    loyalty_rewards::table
        .filter(loyalty_rewards::tenant_id.eq(scope.id()))
        .filter(loyalty_rewards::id.eq_any(ids))
        .select(Reward::as_select())
        .load(conn)
        .await
}

#[derive(Debug, Clone, Default)]
pub struct RewardFilter {
    /// Only rewards that can be redeemed now (active, in window, in stock).
    pub available: Option<bool>,
    pub reward_type: Option<RewardType>,
}

pub async fn list_rewards(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &RewardFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Reward>> {
    use loyalty_rewards as r;
    let now = Utc::now();
    let mut query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .select(Reward::as_select())
        .limit(page.limit())
        .into_boxed();
    let open = r::is_active
        .eq(true)
        .and(r::available_from.is_null().or(r::available_from.le(now)))
        .and(r::available_until.is_null().or(r::available_until.gt(now)))
        .and(r::inventory.is_null().or(r::inventory.gt(0)));
    match filter.available {
        Some(true) => query = query.filter(open),
        Some(false) => query = query.filter(open.is_distinct_from(true)),
        None => {}
    }
    query = query.filter_some(filter.reward_type, |v| r::reward_type.eq(v));
    query = crate::keyset!(query, page, r::created_at, r::id, asc);
    Ok(query.load(conn).await?)
}

pub async fn redemption(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> QueryResult<Option<Redemption>> {
    reward_redemptions::table
        .filter(reward_redemptions::tenant_id.eq(scope.id()))
        .filter(reward_redemptions::id.eq(id))
        .select(Redemption::as_select())
        .first(conn)
        .await
        .optional()
}

/// Which ledger entries an aggregate reads (every filter optional).
#[derive(Debug, Clone, Default)]
pub struct PointTransactionFilter {
    pub customer_id: Option<Uuid>,
    pub transaction_type: Option<PointTransactionType>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

/// The ledger entries `filter` selects, every column.
pub fn point_transactions_filtered(
    scope: Tenant,
    filter: &PointTransactionFilter,
) -> point_transactions::BoxedQuery<'static, Pg> {
    use point_transactions as p;
    p::table
        .filter(p::tenant_id.eq(scope.id()))
        .into_boxed()
        .filter_some(filter.customer_id, |v| p::customer_id.eq(v))
        .filter_some(filter.transaction_type, |v| p::transaction_type.eq(v))
        .filter_some(filter.created_from, |v| p::created_at.ge(v))
        .filter_some(filter.created_to, |v| p::created_at.lt(v))
}

#[derive(Debug, Clone, Default)]
pub struct RedemptionFilter {
    pub status: Option<RedemptionStatus>,
    pub customer_id: Option<Uuid>,
    pub reward_id: Option<Uuid>,
}

/// The redemptions `filter` selects, every column: the rows of the list and of its
/// aggregates.
pub fn redemptions_filtered(
    scope: Tenant,
    filter: &RedemptionFilter,
) -> reward_redemptions::BoxedQuery<'static, Pg> {
    use reward_redemptions as r;
    r::table
        .filter(r::tenant_id.eq(scope.id()))
        .into_boxed()
        .filter_some(filter.status, |v| r::status.eq(v))
        .filter_some(filter.customer_id, |v| r::customer_id.eq(v))
        .filter_some(filter.reward_id, |v| r::reward_id.eq(v))
}

pub async fn list_redemptions(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &RedemptionFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Redemption>> {
    use reward_redemptions as r;
    let mut query = redemptions_filtered(scope, filter)
        .select(Redemption::as_select())
        .limit(page.limit());
    query = crate::keyset!(query, page, r::created_at, r::id, desc);
    Ok(query.load(conn).await?)
}
