//! The enrollment lifecycle: enroll, upgrade, renew, cancel, expire; each change queues
//! the customer's CRM sync.

use super::*;

pub(super) fn add_months(at: DateTime<Utc>, months: i32) -> DateTime<Utc> {
    at.checked_add_months(Months::new(months.max(0) as u32))
        .unwrap_or(at)
}

pub(super) async fn active_stage(
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

/// Locks the customer (points move one transaction at a time); its balance and lifetime
/// total.
pub(super) async fn lock_customer(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    field: &[&str],
) -> OpResult<(i64, i64)> {
    let selection = (customers::points_balance, customers::points_lifetime);
    crate::tenant_row!(locked conn, scope, customers, id, selection, field, "no such customer")
}

/// A qualifying order: the customer's own, not refunded in full, and at least the stage's
/// minimum purchase once its refunds are taken off. The order's row is share-locked, so a
/// refund racing with this waits for it (refunds lock the order).
pub(super) async fn qualifying_order(
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
    let (total, status): (BigDecimal, String) = orders::table
        .filter(orders::tenant_id.eq(scope.id()))
        .filter(orders::id.eq(order))
        .filter(orders::customer_id.eq(customer))
        .select((orders::order_total, orders::status))
        .for_share()
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
    if status == "refunded" {
        return Err(user_error(
            UserErrorCode::NotEligible,
            field,
            "the order was refunded: it qualifies for nothing",
        ));
    }
    let refunded: Option<BigDecimal> = order_refunds::table
        .filter(order_refunds::tenant_id.eq(scope.id()))
        .filter(order_refunds::order_id.eq(order))
        .select(diesel::dsl::sum(order_refunds::amount))
        .first(conn)
        .await?;
    if total - refunded.unwrap_or_default() < stage.min_purchase_amount {
        return Err(user_error(
            UserErrorCode::NotEligible,
            field,
            "the order is below the stage's minimum purchase",
        ));
    }
    Ok(Some(order))
}

pub(super) async fn write_extension(
    conn: &mut AsyncPgConnection,
    extension: NewExtension,
) -> QueryResult<()> {
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

/// The error of an enrollment's latest CRM sync job (`None` when it ran without one).
#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct SyncError {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub enrollment_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub error: Option<String>,
}

/// The latest CRM sync job's error of each of `enrollments`.
pub async fn sync_errors(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollments: &[Uuid],
) -> QueryResult<Vec<SyncError>> {
    let ids: Vec<String> = enrollments.iter().map(Uuid::to_string).collect();
    crate::db::sql::Prepared::new(
        "SELECT DISTINCT ON (payload->>'enrollmentId') (payload->>'enrollmentId')::uuid AS enrollment_id, error
         FROM queue_jobs
         WHERE tenant_id = $1 AND job_type = 'crm_sync' AND payload->>'enrollmentId' = ANY($2)
         ORDER BY payload->>'enrollmentId', created_at DESC, id DESC",
    )
    .bind::<diesel::sql_types::Uuid, _>(scope.id())
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(ids)
    .load(conn)
    .await
}

/// Every enrollment change enqueues its CRM sync (seed 004): the enrollment's
/// `sync_status` goes back to pending until the job succeeds.
pub(super) async fn enqueue_crm_sync(
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

pub(super) async fn set_club_member(
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

pub(super) async fn enrollment_changed(
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

/// How many CRM syncs of the enrollment are queued and not yet finished.
pub async fn queued_crm_syncs(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment: Uuid,
) -> QueryResult<i64> {
    queue_jobs::table
        .filter(queue_jobs::tenant_id.eq(scope.id()))
        .filter(queue_jobs::job_type.eq("crm_sync"))
        .filter(queue_jobs::status.eq_any(["pending", "processing"]))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("payload->>'enrollmentId' = ")
                .bind::<diesel::sql_types::Text, _>(enrollment.to_string()),
        )
        .count()
        .get_result(conn)
        .await
}

/// Queues the enrollment's CRM sync again (after a CRM is configured, or a sync failed
/// for good): `add` to its stage's discount while active, `remove` once it ended. A sync
/// already queued and not yet run is the one that counts: none is added (racing retries
/// queue one).
pub async fn retry_crm_sync(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment_id: Uuid,
) -> OpResult<Uuid> {
    let enrollment: Enrollment = crate::tenant_row!(
        locked conn,
        scope,
        club_enrollments,
        enrollment_id,
        Enrollment::as_select(),
        &["input", "enrollmentId"],
        "no such enrollment"
    )?;
    if queued_crm_syncs(conn, scope, enrollment.id).await? == 0 {
        let action = match enrollment.status {
            EnrollmentStatus::Active => "add",
            _ => "remove",
        };
        enqueue_crm_sync(conn, scope, &enrollment, enrollment.stage_id, action).await?;
    }
    Ok(enrollment.id)
}

pub(super) async fn lock_active_enrollment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> OpResult<Enrollment> {
    let enrollment = crate::tenant_row!(
        locked conn,
        scope,
        club_enrollments,
        id,
        Enrollment::as_select(),
        &["input", "enrollmentId"],
        "no such enrollment"
    )?;
    if enrollment.status != EnrollmentStatus::Active {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "enrollmentId"],
            "only an active enrollment can change",
        ));
    }
    Ok(enrollment)
}

pub(super) async fn close_enrollment(
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

/// The stage an enrollment is at.
async fn stage_of(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    enrollment: &Enrollment,
) -> OpResult<ClubStage> {
    let stage = stages_by_ids(conn, scope, &[enrollment.stage_id])
        .await?
        .pop();
    stage.ok_or_else(|| {
        user_error(
            UserErrorCode::NotFound,
            &["input", "enrollmentId"],
            "stage missing",
        )
    })
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
    let from = stage_of(conn, scope, &current).await?;
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
    let stage = stage_of(conn, scope, &current).await?;
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

pub(super) async fn end_membership(
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
