//! The club program and its stages.

use super::*;

pub(super) fn check_name(field: &str, name: &str) -> Result<(), OpError> {
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

pub(super) fn check_stage(fields: &StageFields) -> Result<(), OpError> {
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

pub(super) fn stage_order_clash(e: DieselError) -> OpError {
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
