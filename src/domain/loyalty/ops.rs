//! The loyalty rules, each in exactly one place: enrollment lifecycle (one active
//! enrollment per customer, upgrades keep `enrolled_at`, renewals extend from the current
//! expiry), the points ledger (append-only, running balance, never negative), and
//! redemptions (stock, balance and transitions). The database enforces the invariants a
//! second time (partial unique index, ledger triggers, CHECKs); see the loyalty migration.

use bigdecimal::{BigDecimal, RoundingMode, ToPrimitive};
use chrono::{DateTime, Months, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::model::*;
use crate::db::page::PageRequest;
use crate::db::schema::{
    club_enrollments, club_extensions, club_programs, club_stages, customers, loyalty_point_rules,
    loyalty_rewards, orders, point_transactions, queue_jobs, reward_redemptions,
};
use crate::db::Tenant;
use crate::domain::{events, idempotency, user_error, OpError, OpResult, UserErrorCode};
use crate::error::AppResult;

// ---- reads ------------------------------------------------------------------------------

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
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(club_enrollments::status.eq(status));
    }
    if let Some(customer) = filter.customer_id {
        query = query.filter(club_enrollments::customer_id.eq(customer));
    }
    if let Some(stage) = filter.stage_id {
        query = query.filter(club_enrollments::stage_id.eq(stage));
    }
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
    if let Some(kind) = filter.reward_type {
        query = query.filter(r::reward_type.eq(kind));
    }
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

#[derive(Debug, Clone, Default)]
pub struct RedemptionFilter {
    pub status: Option<RedemptionStatus>,
    pub customer_id: Option<Uuid>,
    pub reward_id: Option<Uuid>,
}

pub async fn list_redemptions(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &RedemptionFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Redemption>> {
    use reward_redemptions as r;
    let mut query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .select(Redemption::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(r::status.eq(status));
    }
    if let Some(customer) = filter.customer_id {
        query = query.filter(r::customer_id.eq(customer));
    }
    if let Some(reward) = filter.reward_id {
        query = query.filter(r::reward_id.eq(reward));
    }
    query = crate::keyset!(query, page, r::created_at, r::id, desc);
    Ok(query.load(conn).await?)
}

// ---- program and stages -----------------------------------------------------------------

fn check_name(field: &str, name: &str) -> Result<(), OpError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            "must be 1-200 characters",
        ));
    }
    Ok(())
}

/// Creates the tenant's one club program, or updates it.
pub async fn save_program(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    name: &str,
    description: Option<&str>,
    is_active: bool,
) -> OpResult<ClubProgram> {
    check_name("name", name)?;
    let program = diesel::insert_into(club_programs::table)
        .values((
            club_programs::tenant_id.eq(scope.id()),
            club_programs::name.eq(name.trim()),
            club_programs::description.eq(description),
            club_programs::is_active.eq(is_active),
        ))
        .on_conflict(club_programs::tenant_id)
        .do_update()
        .set((
            club_programs::name.eq(name.trim()),
            club_programs::description.eq(description),
            club_programs::is_active.eq(is_active),
        ))
        .returning(ClubProgram::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "club.program_saved",
        program.id,
        json!({ "name": program.name }),
    )
    .await?;
    Ok(program)
}

fn check_stage(fields: &StageFields) -> Result<(), OpError> {
    if let Some(name) = &fields.name {
        check_name("name", name)?;
    }
    if fields.stage_order.is_some_and(|o| o <= 0) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "stageOrder"],
            "stageOrder must be positive",
        ));
    }
    if fields.duration_months.is_some_and(|m| m <= 0 || m > 600) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "durationMonths"],
            "durationMonths must be 1 to 600",
        ));
    }
    if let Some(pct) = &fields.discount_percentage {
        if pct < &BigDecimal::from(0)
            || pct > &BigDecimal::from(100)
            || pct.fractional_digit_count() > 2
        {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "discountPercentage"],
                "discountPercentage must be between 0 and 100",
            ));
        }
    }
    if let Some(amount) = &fields.min_purchase_amount {
        check_money(amount, &["input", "minPurchaseAmount"])?;
    }
    Ok(())
}

pub fn check_money(amount: &BigDecimal, field: &[&str]) -> Result<(), OpError> {
    if amount < &BigDecimal::from(0)
        || amount >= &BigDecimal::from(10_000_000_000i64)
        || amount.fractional_digit_count() > 2
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            field,
            "must be between 0 and 9999999999.99 with at most 2 decimals",
        ));
    }
    Ok(())
}

fn stage_order_clash(e: DieselError) -> OpError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => user_error(
            UserErrorCode::Conflict,
            &["input", "stageOrder"],
            "another stage already has this stageOrder",
        ),
        e => e.into(),
    }
}

pub async fn create_stage(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: StageFields,
) -> OpResult<ClubStage> {
    check_stage(&fields)?;
    let (Some(_), Some(_), Some(_), Some(_)) = (
        &fields.name,
        fields.stage_order,
        &fields.discount_percentage,
        fields.duration_months,
    ) else {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "name, stageOrder, discountPercentage and durationMonths are required",
        ));
    };
    let program = program(conn, scope).await?.ok_or_else(|| {
        user_error(
            UserErrorCode::NotFound,
            &["input"],
            "create the club program first",
        )
    })?;
    let stage = diesel::insert_into(club_stages::table)
        .values((
            club_stages::tenant_id.eq(scope.id()),
            club_stages::program_id.eq(program.id),
            fields.clone(),
        ))
        .returning(ClubStage::as_returning())
        .get_result(conn)
        .await
        .map_err(stage_order_clash)?;
    events::record(
        conn,
        scope,
        "club.stage_saved",
        stage.id,
        json!({ "name": stage.name }),
    )
    .await?;
    Ok(stage)
}

pub async fn update_stage(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    fields: StageFields,
) -> OpResult<ClubStage> {
    check_stage(&fields)?;
    let target = club_stages::table
        .filter(club_stages::tenant_id.eq(scope.id()))
        .filter(club_stages::id.eq(id));
    let stage = diesel::update(target)
        .set((fields, club_stages::sync_status.eq(SyncStatus::Pending)))
        .returning(ClubStage::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(stage_order_clash)?
        .ok_or_else(|| user_error(UserErrorCode::NotFound, &["input", "id"], "no such stage"))?;
    events::record(
        conn,
        scope,
        "club.stage_saved",
        stage.id,
        json!({ "name": stage.name }),
    )
    .await?;
    Ok(stage)
}

// ---- enrollment lifecycle ---------------------------------------------------------------

fn add_months(at: DateTime<Utc>, months: i32) -> DateTime<Utc> {
    at.checked_add_months(Months::new(months.max(0) as u32))
        .unwrap_or(at)
}

async fn active_stage(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &[&str],
) -> OpResult<ClubStage> {
    let stage = stages_by_ids(conn, scope, &[id])
        .await?
        .pop()
        .ok_or_else(|| user_error(UserErrorCode::NotFound, field, "no such stage"))?;
    if !stage.is_active {
        return Err(user_error(
            UserErrorCode::NotEligible,
            field,
            "this stage is not open for enrollment",
        ));
    }
    Ok(stage)
}

async fn lock_customer(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &[&str],
) -> OpResult<(i64, i64)> {
    customers::table
        .filter(customers::tenant_id.eq(scope.id()))
        .filter(customers::id.eq(id))
        .select((customers::points_balance, customers::points_lifetime))
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| user_error(UserErrorCode::NotFound, field, "no such customer"))
}

/// A qualifying order: the customer's own, and at least the stage's minimum purchase.
async fn qualifying_order(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer: Uuid,
    order: Option<Uuid>,
    stage: &ClubStage,
) -> OpResult<Option<Uuid>> {
    let field = &["input", "qualifyingOrderId"];
    let Some(order) = order else {
        if stage.min_purchase_amount > 0 {
            return Err(user_error(
                UserErrorCode::NotEligible,
                field,
                "this stage needs a qualifying order of at least its minimum purchase",
            ));
        }
        return Ok(None);
    };
    let total: BigDecimal = orders::table
        .filter(orders::tenant_id.eq(scope.id()))
        .filter(orders::id.eq(order))
        .filter(orders::customer_id.eq(customer))
        .select(orders::order_total)
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                field,
                "no such order for this customer",
            )
        })?;
    if total < stage.min_purchase_amount {
        return Err(user_error(
            UserErrorCode::NotEligible,
            field,
            "the order is below the stage's minimum purchase",
        ));
    }
    Ok(Some(order))
}

async fn write_extension(conn: &mut AsyncPgConnection, extension: NewExtension) -> QueryResult<()> {
    diesel::insert_into(club_extensions::table)
        .values(extension)
        .execute(conn)
        .await
        .map(|_| ())
}

/// What a CRM sync job asks the provider to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrmSync {
    pub enrollment_id: Uuid,
    pub customer_id: Uuid,
    pub stage_id: Uuid,
    pub crm_discount_id: Option<String>,
    /// `add` or `remove` the customer from the stage's discount.
    pub action: String,
}

/// Every enrollment change enqueues its CRM sync (seed 004): the enrollment's
/// `sync_status` goes back to pending until the job succeeds.
async fn enqueue_crm_sync(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment: &Enrollment,
    stage_id: Uuid,
    action: &str,
) -> QueryResult<()> {
    let discount: Option<String> = club_stages::table
        .filter(club_stages::tenant_id.eq(scope.id()))
        .filter(club_stages::id.eq(stage_id))
        .select(club_stages::crm_discount_id)
        .first(conn)
        .await?;
    let payload = CrmSync {
        enrollment_id: enrollment.id,
        customer_id: enrollment.customer_id,
        stage_id,
        crm_discount_id: discount,
        action: action.to_owned(),
    };
    diesel::insert_into(queue_jobs::table)
        .values((
            queue_jobs::tenant_id.eq(scope.id()),
            queue_jobs::job_type.eq("crm_sync"),
            queue_jobs::payload.eq(serde_json::to_value(&payload).expect("serialisable")),
        ))
        .execute(conn)
        .await?;
    diesel::update(
        club_enrollments::table
            .filter(club_enrollments::tenant_id.eq(scope.id()))
            .filter(club_enrollments::id.eq(enrollment.id)),
    )
    .set(club_enrollments::sync_status.eq(SyncStatus::Pending))
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_club_member(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer: Uuid,
    member: bool,
) -> QueryResult<()> {
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(scope.id()))
            .filter(customers::id.eq(customer)),
    )
    .set(customers::is_club_member.eq(member))
    .execute(conn)
    .await
    .map(|_| ())
}

async fn enrollment_changed(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    e: &Enrollment,
    change: &str,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "enrollment.changed",
        e.id,
        json!({ "change": change, "customerId": e.customer_id, "stageId": e.stage_id, "status": e.status, "expiresAt": e.expires_at }),
    )
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct Enroll {
    pub customer_id: Uuid,
    pub stage_id: Uuid,
    pub qualifying_order_id: Option<Uuid>,
}

/// Enrolls a customer at a stage: `expires_at = enrolled_at + stage.duration_months`.
/// One active enrollment per customer per program: checked here, and by the partial
/// unique index when two enrollments race.
pub async fn enroll(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: Enroll,
    key: Option<&str>,
) -> OpResult<Uuid> {
    idempotency::once(conn, scope, key, "enrollCustomer", &input, async |conn| {
        lock_customer(conn, scope, input.customer_id, &["input", "customerId"]).await?;
        let stage = active_stage(conn, scope, input.stage_id, &["input", "stageId"]).await?;
        if !current_enrollments(conn, scope, &[input.customer_id])
            .await?
            .is_empty()
        {
            return Err(user_error(
                UserErrorCode::AlreadyEnrolled,
                &["input", "customerId"],
                "the customer already has an active enrollment",
            ));
        }
        let order = qualifying_order(
            conn,
            scope,
            input.customer_id,
            input.qualifying_order_id,
            &stage,
        )
        .await?;
        let now = Utc::now();
        let enrollment = diesel::insert_into(club_enrollments::table)
            .values(NewEnrollment {
                tenant_id: scope.id(),
                customer_id: input.customer_id,
                program_id: stage.program_id,
                stage_id: stage.id,
                enrolled_at: now,
                expires_at: add_months(now, stage.duration_months),
                qualifying_order_id: order,
            })
            .returning(Enrollment::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => user_error(
                    UserErrorCode::AlreadyEnrolled,
                    &["input", "customerId"],
                    "the customer already has an active enrollment",
                ),
                e => e.into(),
            })?;
        write_extension(
            conn,
            NewExtension {
                tenant_id: scope.id(),
                enrollment_id: enrollment.id,
                extension_type: ExtensionType::Enrolled,
                from_stage_id: None,
                to_stage_id: Some(stage.id),
                previous_expires_at: None,
                new_expires_at: Some(enrollment.expires_at),
                qualifying_order_id: order,
            },
        )
        .await?;
        set_club_member(conn, scope, input.customer_id, true).await?;
        enqueue_crm_sync(conn, scope, &enrollment, stage.id, "add").await?;
        enrollment_changed(conn, scope, &enrollment, "enrolled").await?;
        Ok(enrollment.id)
    })
    .await
}

async fn lock_active_enrollment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> OpResult<Enrollment> {
    let enrollment = club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .filter(club_enrollments::id.eq(id))
        .select(Enrollment::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                &["input", "enrollmentId"],
                "no such enrollment",
            )
        })?;
    if enrollment.status != EnrollmentStatus::Active {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "enrollmentId"],
            "only an active enrollment can change",
        ));
    }
    Ok(enrollment)
}

async fn close_enrollment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    status: EnrollmentStatus,
    ended_at: DateTime<Utc>,
) -> QueryResult<Enrollment> {
    diesel::update(
        club_enrollments::table
            .filter(club_enrollments::tenant_id.eq(scope.id()))
            .filter(club_enrollments::id.eq(id)),
    )
    .set((
        club_enrollments::status.eq(status),
        club_enrollments::ended_at.eq(ended_at),
    ))
    .returning(Enrollment::as_returning())
    .get_result(conn)
    .await
}

/// Upgrades to a higher stage: the original `enrolled_at` is kept and `expires_at` is
/// recomputed from it; the superseded row is marked `upgraded` (history is kept).
pub async fn upgrade(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment_id: Uuid,
    stage_id: Uuid,
    order: Option<Uuid>,
) -> OpResult<Uuid> {
    let current = lock_active_enrollment(conn, scope, enrollment_id).await?;
    let from = stages_by_ids(conn, scope, &[current.stage_id])
        .await?
        .pop()
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                &["input", "enrollmentId"],
                "stage missing",
            )
        })?;
    let to = active_stage(conn, scope, stage_id, &["input", "stageId"]).await?;
    if to.stage_order <= from.stage_order {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "stageId"],
            "an upgrade goes to a higher stage",
        ));
    }
    let order = qualifying_order(conn, scope, current.customer_id, order, &to).await?;
    let now = Utc::now();
    let old = close_enrollment(conn, scope, current.id, EnrollmentStatus::Upgraded, now).await?;
    let upgraded = diesel::insert_into(club_enrollments::table)
        .values(NewEnrollment {
            tenant_id: scope.id(),
            customer_id: current.customer_id,
            program_id: current.program_id,
            stage_id: to.id,
            enrolled_at: current.enrolled_at,
            expires_at: add_months(current.enrolled_at, to.duration_months).max(current.expires_at),
            qualifying_order_id: order,
        })
        .returning(Enrollment::as_returning())
        .get_result(conn)
        .await?;
    write_extension(
        conn,
        NewExtension {
            tenant_id: scope.id(),
            enrollment_id: upgraded.id,
            extension_type: ExtensionType::Upgrade,
            from_stage_id: Some(from.id),
            to_stage_id: Some(to.id),
            previous_expires_at: Some(current.expires_at),
            new_expires_at: Some(upgraded.expires_at),
            qualifying_order_id: order,
        },
    )
    .await?;
    enqueue_crm_sync(conn, scope, &old, from.id, "remove").await?;
    enqueue_crm_sync(conn, scope, &upgraded, to.id, "add").await?;
    enrollment_changed(conn, scope, &old, "upgraded").await?;
    enrollment_changed(conn, scope, &upgraded, "upgrade").await?;
    Ok(upgraded.id)
}

/// Renews: extends from the current expiry by the stage's duration, linked to the
/// qualifying order.
pub async fn renew(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment_id: Uuid,
    order: Uuid,
) -> OpResult<Uuid> {
    let current = lock_active_enrollment(conn, scope, enrollment_id).await?;
    let stage = stages_by_ids(conn, scope, &[current.stage_id])
        .await?
        .pop()
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                &["input", "enrollmentId"],
                "stage missing",
            )
        })?;
    let already_used = club_extensions::table
        .filter(club_extensions::tenant_id.eq(scope.id()))
        .filter(club_extensions::qualifying_order_id.eq(order))
        .filter(club_extensions::extension_type.eq(ExtensionType::Renewal))
        .count()
        .get_result::<i64>(conn)
        .await?;
    if already_used > 0 {
        return Err(user_error(
            UserErrorCode::NotEligible,
            &["input", "qualifyingOrderId"],
            "this order already renewed a membership",
        ));
    }
    let order = qualifying_order(conn, scope, current.customer_id, Some(order), &stage).await?;
    let expires_at = add_months(current.expires_at, stage.duration_months);
    let renewed = diesel::update(
        club_enrollments::table
            .filter(club_enrollments::tenant_id.eq(scope.id()))
            .filter(club_enrollments::id.eq(current.id)),
    )
    .set((
        club_enrollments::expires_at.eq(expires_at),
        club_enrollments::qualifying_order_id.eq(order),
    ))
    .returning(Enrollment::as_returning())
    .get_result(conn)
    .await?;
    write_extension(
        conn,
        NewExtension {
            tenant_id: scope.id(),
            enrollment_id: current.id,
            extension_type: ExtensionType::Renewal,
            from_stage_id: Some(stage.id),
            to_stage_id: Some(stage.id),
            previous_expires_at: Some(current.expires_at),
            new_expires_at: Some(expires_at),
            qualifying_order_id: order,
        },
    )
    .await?;
    enqueue_crm_sync(conn, scope, &renewed, stage.id, "add").await?;
    enrollment_changed(conn, scope, &renewed, "renewed").await?;
    Ok(renewed.id)
}

pub async fn cancel(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment_id: Uuid,
) -> OpResult<Uuid> {
    let current = lock_active_enrollment(conn, scope, enrollment_id).await?;
    end_membership(
        conn,
        scope,
        current,
        EnrollmentStatus::Cancelled,
        Utc::now(),
    )
    .await?;
    Ok(enrollment_id)
}

async fn end_membership(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    current: Enrollment,
    status: EnrollmentStatus,
    at: DateTime<Utc>,
) -> OpResult<()> {
    let ended = close_enrollment(conn, scope, current.id, status, at).await?;
    let kind = if status == EnrollmentStatus::Expired {
        ExtensionType::Expired
    } else {
        ExtensionType::Cancelled
    };
    write_extension(
        conn,
        NewExtension {
            tenant_id: scope.id(),
            enrollment_id: current.id,
            extension_type: kind,
            from_stage_id: Some(current.stage_id),
            to_stage_id: None,
            previous_expires_at: Some(current.expires_at),
            new_expires_at: None,
            qualifying_order_id: None,
        },
    )
    .await?;
    set_club_member(conn, scope, current.customer_id, false).await?;
    enqueue_crm_sync(conn, scope, &ended, current.stage_id, "remove").await?;
    enrollment_changed(conn, scope, &ended, status.as_str()).await?;
    Ok(())
}

/// Expires every active enrollment whose `expires_at` has passed (at `as_of`). Run by the
/// scheduler and by the `expireEnrollments` mutation. Returns the expired ids.
pub async fn expire_due(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    as_of: DateTime<Utc>,
) -> OpResult<Vec<Uuid>> {
    let due: Vec<Enrollment> = club_enrollments::table
        .filter(club_enrollments::tenant_id.eq(scope.id()))
        .filter(club_enrollments::status.eq(EnrollmentStatus::Active))
        .filter(club_enrollments::expires_at.le(as_of))
        .select(Enrollment::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let mut expired = Vec::with_capacity(due.len());
    for enrollment in due {
        let at = enrollment.expires_at;
        expired.push(enrollment.id);
        end_membership(conn, scope, enrollment, EnrollmentStatus::Expired, at).await?;
    }
    Ok(expired)
}

// ---- points -----------------------------------------------------------------------------

/// The most points a customer's balance or lifetime total may reach: GraphQL's `Int`
/// (32 bits), in which the API returns them.
pub const MAX_POINTS: i64 = i32::MAX as i64;

pub struct LedgerEntry<'a> {
    pub customer_id: Uuid,
    pub kind: PointTransactionType,
    pub points: i64,
    pub order_id: Option<Uuid>,
    pub reward_id: Option<Uuid>,
    pub redemption_id: Option<Uuid>,
    pub description: Option<&'a str>,
}

/// The one way points move: lock the customer, append the entry with its running
/// balance, update the cached balance. A debit beyond the balance is INSUFFICIENT_POINTS.
pub async fn append_ledger(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    entry: LedgerEntry<'_>,
) -> OpResult<PointTransaction> {
    let locked = lock_customer(conn, scope, entry.customer_id, &["input", "customerId"]).await?;
    append_locked(conn, scope, entry, locked).await
}

/// [`append_ledger`] for a customer this transaction has already locked, with the
/// `(balance, lifetime)` it read under that lock.
async fn append_locked(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    entry: LedgerEntry<'_>,
    (balance, lifetime): (i64, i64),
) -> OpResult<PointTransaction> {
    let new_balance = balance.saturating_add(entry.points);
    if new_balance < 0 {
        return Err(user_error(
            UserErrorCode::InsufficientPoints,
            &["input", "customerId"],
            "not enough points",
        ));
    }
    if new_balance > MAX_POINTS || lifetime.saturating_add(entry.points.max(0)) > MAX_POINTS {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "points"],
            &format!("a points balance or lifetime total may not exceed {MAX_POINTS}"),
        ));
    }
    let sequence: i64 = point_transactions::table
        .filter(point_transactions::tenant_id.eq(scope.id()))
        .filter(point_transactions::customer_id.eq(entry.customer_id))
        .select(diesel::dsl::max(point_transactions::sequence))
        .first::<Option<i64>>(conn)
        .await?
        .unwrap_or(0)
        + 1;
    let credit = matches!(
        entry.kind,
        PointTransactionType::Earned | PointTransactionType::Bonus
    ) || (entry.kind == PointTransactionType::Adjusted && entry.points > 0);
    let new_lifetime = if credit {
        lifetime + entry.points
    } else {
        lifetime
    };
    diesel::update(
        customers::table
            .filter(customers::tenant_id.eq(scope.id()))
            .filter(customers::id.eq(entry.customer_id)),
    )
    .set((
        customers::points_balance.eq(new_balance),
        customers::points_lifetime.eq(new_lifetime),
    ))
    .execute(conn)
    .await?;
    let transaction = diesel::insert_into(point_transactions::table)
        .values((
            point_transactions::tenant_id.eq(scope.id()),
            point_transactions::customer_id.eq(entry.customer_id),
            point_transactions::sequence.eq(sequence),
            point_transactions::transaction_type.eq(entry.kind),
            point_transactions::points.eq(entry.points),
            point_transactions::balance_after.eq(new_balance),
            point_transactions::order_id.eq(entry.order_id),
            point_transactions::reward_id.eq(entry.reward_id),
            point_transactions::redemption_id.eq(entry.redemption_id),
            point_transactions::description.eq(entry.description),
        ))
        .returning(PointTransaction::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "points.changed",
        entry.customer_id,
        json!({ "transactionId": transaction.id, "type": entry.kind, "points": entry.points, "balance": new_balance }),
    )
    .await?;
    Ok(transaction)
}

fn floor_points(value: &BigDecimal) -> i64 {
    value
        .with_scale_round(0, RoundingMode::Floor)
        .to_i64()
        .unwrap_or(0)
        .max(0)
}

/// Points an order earns (seed 004): only while the membership is active at the order's
/// time, and only once the customer has `min_membership_days` cumulative membership days.
/// `points_per_dollar` per whole currency unit, plus `bonus_percentage` of that as bonus.
pub async fn earn_for_order(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer_id: Uuid,
    order_id: Uuid,
    order_total: &BigDecimal,
    ordered_at: DateTime<Utc>,
) -> OpResult<Vec<PointTransaction>> {
    let rules = rules(conn, scope).await?;
    if !rules.is_active {
        return Ok(Vec::new());
    }
    let enrollments = enrollments_of(conn, scope, &[customer_id]).await?;
    let active_at_order = enrollments.iter().any(|e| {
        e.status == EnrollmentStatus::Active
            && e.enrolled_at <= ordered_at
            && ordered_at < e.expires_at
    });
    if !active_at_order
        || cumulative_membership_days(&enrollments, ordered_at)
            < i64::from(rules.min_membership_days)
    {
        return Ok(Vec::new());
    }
    // Points stop at MAX_POINTS: an order is never refused for what it would earn.
    let (balance, lifetime) =
        lock_customer(conn, scope, customer_id, &["input", "customerId"]).await?;
    let headroom = MAX_POINTS - balance.max(lifetime);
    let base = floor_points(&(order_total * &rules.points_per_dollar)).min(headroom);
    let bonus =
        floor_points(&(BigDecimal::from(base) * &rules.bonus_percentage / BigDecimal::from(100)))
            .min(headroom - base);
    let mut entries = Vec::new();
    for (kind, points, description) in [
        (PointTransactionType::Earned, base, "Points for an order"),
        (
            PointTransactionType::Bonus,
            bonus,
            "Bonus points for an order",
        ),
    ] {
        if points > 0 {
            let entry = LedgerEntry {
                customer_id,
                kind,
                points,
                order_id: Some(order_id),
                reward_id: None,
                redemption_id: None,
                description: Some(description),
            };
            entries.push(append_ledger(conn, scope, entry).await?);
        }
    }
    Ok(entries)
}

#[derive(Debug, Clone, Serialize)]
pub struct AdjustPoints {
    pub customer_id: Uuid,
    pub points: i64,
    pub reason: String,
}

pub async fn adjust_points(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: AdjustPoints,
    key: Option<&str>,
) -> OpResult<Uuid> {
    if input.points == 0 || input.points.abs() > 10_000_000 {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "points"],
            "points must be non-zero and at most 10,000,000",
        ));
    }
    if input.reason.trim().is_empty()
        || input.reason.chars().count() > 500
        || input.reason.contains('\0')
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "reason"],
            "a reason of 1-500 characters is required",
        ));
    }
    idempotency::once(conn, scope, key, "adjustPoints", &input, async |conn| {
        let entry = LedgerEntry {
            customer_id: input.customer_id,
            kind: PointTransactionType::Adjusted,
            points: input.points,
            order_id: None,
            reward_id: None,
            redemption_id: None,
            description: Some(&input.reason),
        };
        Ok(append_ledger(conn, scope, entry).await?.id)
    })
    .await
}

#[derive(Debug, Clone)]
pub struct RulesUpdate {
    pub points_per_dollar: Option<BigDecimal>,
    pub bonus_percentage: Option<BigDecimal>,
    pub min_membership_days: Option<i32>,
    pub point_dollar_value: Option<BigDecimal>,
    pub is_active: Option<bool>,
}

pub async fn update_rules(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    update: RulesUpdate,
) -> OpResult<LoyaltyRules> {
    let current = rules(conn, scope).await?;
    let next = LoyaltyRules {
        points_per_dollar: update
            .points_per_dollar
            .unwrap_or(current.points_per_dollar),
        bonus_percentage: update.bonus_percentage.unwrap_or(current.bonus_percentage),
        min_membership_days: update
            .min_membership_days
            .unwrap_or(current.min_membership_days),
        point_dollar_value: update
            .point_dollar_value
            .unwrap_or(current.point_dollar_value),
        is_active: update.is_active.unwrap_or(current.is_active),
    };
    let zero = BigDecimal::from(0);
    if next.points_per_dollar < zero
        || next.points_per_dollar >= 1_000_000
        || next.points_per_dollar.fractional_digit_count() > 2
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "pointsPerDollar"],
            "pointsPerDollar must be 0 to 999999.99",
        ));
    }
    if next.bonus_percentage < zero
        || next.bonus_percentage > 100
        || next.bonus_percentage.fractional_digit_count() > 2
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "bonusPercentage"],
            "bonusPercentage must be 0 to 100",
        ));
    }
    if !(0..=36_500).contains(&next.min_membership_days) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "minMembershipDays"],
            "minMembershipDays must be 0 to 36500",
        ));
    }
    check_money(&next.point_dollar_value, &["input", "pointDollarValue"])?;
    use loyalty_point_rules as r;
    let values = (
        r::points_per_dollar.eq(next.points_per_dollar.clone()),
        r::bonus_percentage.eq(next.bonus_percentage.clone()),
        r::min_membership_days.eq(next.min_membership_days),
        r::point_dollar_value.eq(next.point_dollar_value.clone()),
        r::is_active.eq(next.is_active),
    );
    diesel::insert_into(r::table)
        .values((r::tenant_id.eq(scope.id()), values.clone()))
        .on_conflict(r::tenant_id)
        .do_update()
        .set(values)
        .execute(conn)
        .await?;
    events::record(conn, scope, "loyalty.rules_updated", scope.id(), json!({})).await?;
    Ok(next)
}

// ---- rewards and redemptions ------------------------------------------------------------

fn check_reward(fields: &RewardFields) -> Result<(), OpError> {
    if let Some(name) = &fields.name {
        check_name("name", name)?;
    }
    if fields.points_cost.is_some_and(|c| c <= 0) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "pointsCost"],
            "pointsCost must be positive",
        ));
    }
    if fields.inventory.flatten().is_some_and(|i| i < 0) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "inventory"],
            "inventory cannot be negative",
        ));
    }
    if let (Some(Some(from)), Some(Some(until))) = (fields.available_from, fields.available_until) {
        if until <= from {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "availableUntil"],
                "availableUntil must be after availableFrom",
            ));
        }
    }
    if fields
        .description
        .as_ref()
        .and_then(|d| d.as_ref())
        .is_some_and(|d| d.chars().count() > 5000 || d.contains('\0'))
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "description"],
            "description must be at most 5000 characters",
        ));
    }
    Ok(())
}

pub async fn create_reward(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: RewardFields,
) -> OpResult<Reward> {
    check_reward(&fields)?;
    if fields.name.is_none() || fields.points_cost.is_none() || fields.reward_type.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "name, rewardType and pointsCost are required",
        ));
    }
    let reward = diesel::insert_into(loyalty_rewards::table)
        .values((loyalty_rewards::tenant_id.eq(scope.id()), fields))
        .returning(Reward::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "reward.saved",
        reward.id,
        json!({ "name": reward.name }),
    )
    .await?;
    Ok(reward)
}

pub async fn update_reward(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    fields: RewardFields,
) -> OpResult<Reward> {
    check_reward(&fields)?;
    let target = loyalty_rewards::table
        .filter(loyalty_rewards::tenant_id.eq(scope.id()))
        .filter(loyalty_rewards::id.eq(id));
    let reward = diesel::update(target)
        .set(fields)
        .returning(Reward::as_returning())
        .get_result(conn)
        .await
        .optional()
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, _) => user_error(
                UserErrorCode::Invalid,
                &["input", "availableUntil"],
                "availableUntil must be after availableFrom",
            ),
            DieselError::QueryBuilderError(_) => {
                user_error(UserErrorCode::Invalid, &["input"], "nothing to update")
            }
            e => e.into(),
        })?
        .ok_or_else(|| user_error(UserErrorCode::NotFound, &["input", "id"], "no such reward"))?;
    events::record(
        conn,
        scope,
        "reward.saved",
        reward.id,
        json!({ "name": reward.name }),
    )
    .await?;
    Ok(reward)
}

#[derive(Debug, Clone, Serialize)]
pub struct Redeem {
    pub customer_id: Uuid,
    pub reward_id: Uuid,
    pub quantity: i32,
}

async fn redemption_changed(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    r: &Redemption,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "redemption.changed",
        r.id,
        json!({ "status": r.status, "customerId": r.customer_id, "rewardId": r.reward_id, "quantity": r.quantity }),
    )
    .await
}

/// Redeems a reward: checks it is active and inside its window, then (in this one
/// transaction) takes the stock with a conditional decrement (no oversell under any
/// concurrency), debits the points through the ledger (never negative), and creates the
/// `pending` redemption. Any failure rolls all of it back.
pub async fn redeem(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    input: Redeem,
    key: Option<&str>,
) -> OpResult<Uuid> {
    if !(1..=1000).contains(&input.quantity) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "quantity"],
            "quantity must be 1 to 1000",
        ));
    }
    idempotency::once(conn, scope, key, "redeemReward", &input, async |conn| {
        let field = &["input", "rewardId"];
        let reward = rewards_by_ids(conn, scope, &[input.reward_id])
            .await?
            .pop()
            .ok_or_else(|| user_error(UserErrorCode::NotFound, field, "no such reward"))?;
        if !reward.is_open(Utc::now()) {
            return Err(user_error(
                UserErrorCode::RewardUnavailable,
                field,
                "this reward is not available now",
            ));
        }
        // Customer exists? (Checked before taking stock, so an unknown id is NOT_FOUND.)
        // The lock is held to the end: the ledger entry below uses the balance read here.
        let locked =
            lock_customer(conn, scope, input.customer_id, &["input", "customerId"]).await?;
        let taken = diesel::update(
            loyalty_rewards::table
                .filter(loyalty_rewards::tenant_id.eq(scope.id()))
                .filter(loyalty_rewards::id.eq(reward.id))
                .filter(loyalty_rewards::inventory.ge(input.quantity)),
        )
        .set(loyalty_rewards::inventory.eq(loyalty_rewards::inventory - input.quantity))
        .execute(conn)
        .await?;
        if taken == 0 && reward.inventory.is_some() {
            return Err(user_error(
                UserErrorCode::OutOfStock,
                field,
                "not enough of this reward left",
            ));
        }
        let cost = i64::from(reward.points_cost) * i64::from(input.quantity);
        let redemption = diesel::insert_into(reward_redemptions::table)
            .values((
                reward_redemptions::tenant_id.eq(scope.id()),
                reward_redemptions::customer_id.eq(input.customer_id),
                reward_redemptions::reward_id.eq(reward.id),
                reward_redemptions::quantity.eq(input.quantity),
                reward_redemptions::points_spent.eq(cost),
            ))
            .returning(Redemption::as_returning())
            .get_result(conn)
            .await?;
        let description = format!("Redeemed {} × {}", input.quantity, reward.name);
        append_locked(
            conn,
            scope,
            LedgerEntry {
                customer_id: input.customer_id,
                kind: PointTransactionType::Redeemed,
                points: -cost,
                order_id: None,
                reward_id: Some(reward.id),
                redemption_id: Some(redemption.id),
                description: Some(&description),
            },
            locked,
        )
        .await?;
        redemption_changed(conn, scope, &redemption).await?;
        Ok(redemption.id)
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedemptionAction {
    Fulfill,
    Cancel,
    Refund,
}

/// `pending → fulfilled`, `pending → cancelled` (points and stock restored),
/// `fulfilled → refunded` (points restored); anything else is INVALID_TRANSITION.
pub async fn transition_redemption(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    action: RedemptionAction,
) -> OpResult<Uuid> {
    use RedemptionStatus::*;
    let current = reward_redemptions::table
        .filter(reward_redemptions::tenant_id.eq(scope.id()))
        .filter(reward_redemptions::id.eq(id))
        .select(Redemption::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            user_error(
                UserErrorCode::NotFound,
                &["input", "redemptionId"],
                "no such redemption",
            )
        })?;
    let (next, restore_points, restore_stock) = match (current.status, action) {
        (Pending, RedemptionAction::Fulfill) => (Fulfilled, false, false),
        (Pending, RedemptionAction::Cancel) => (Cancelled, true, true),
        (Fulfilled, RedemptionAction::Refund) => (Refunded, true, false),
        (from, _) => {
            return Err(user_error(
                UserErrorCode::InvalidTransition,
                &["input", "redemptionId"],
                &format!(
                    "a {} redemption cannot be {}",
                    from.as_str(),
                    match action {
                        RedemptionAction::Fulfill => "fulfilled",
                        RedemptionAction::Cancel => "cancelled",
                        RedemptionAction::Refund => "refunded",
                    }
                ),
            ))
        }
    };
    let now = Utc::now();
    let target = reward_redemptions::table
        .filter(reward_redemptions::tenant_id.eq(scope.id()))
        .filter(reward_redemptions::id.eq(id));
    let updated = match next {
        Fulfilled => {
            diesel::update(target)
                .set((
                    reward_redemptions::status.eq(next),
                    reward_redemptions::fulfilled_at.eq(now),
                ))
                .returning(Redemption::as_returning())
                .get_result(conn)
                .await?
        }
        Cancelled => {
            diesel::update(target)
                .set((
                    reward_redemptions::status.eq(next),
                    reward_redemptions::cancelled_at.eq(now),
                ))
                .returning(Redemption::as_returning())
                .get_result(conn)
                .await?
        }
        _ => {
            diesel::update(target)
                .set((
                    reward_redemptions::status.eq(next),
                    reward_redemptions::refunded_at.eq(now),
                ))
                .returning(Redemption::as_returning())
                .get_result(conn)
                .await?
        }
    };
    // Customer before reward, as in `redeem`: one lock order, no deadlock.
    if restore_points {
        let description = format!("Points returned for redemption ({})", next.as_str());
        append_ledger(
            conn,
            scope,
            LedgerEntry {
                customer_id: current.customer_id,
                kind: PointTransactionType::Refunded,
                points: current.points_spent,
                order_id: None,
                reward_id: Some(current.reward_id),
                redemption_id: Some(current.id),
                description: Some(&description),
            },
        )
        .await?;
    }
    if restore_stock {
        diesel::update(
            loyalty_rewards::table
                .filter(loyalty_rewards::tenant_id.eq(scope.id()))
                .filter(loyalty_rewards::id.eq(current.reward_id))
                .filter(loyalty_rewards::inventory.is_not_null()),
        )
        .set(loyalty_rewards::inventory.eq(loyalty_rewards::inventory + current.quantity))
        .execute(conn)
        .await?;
    }
    redemption_changed(conn, scope, &updated).await?;
    Ok(updated.id)
}
