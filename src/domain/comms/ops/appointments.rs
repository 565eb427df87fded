//! Appointments (seed 002): listed, booked, changed and rescheduled.

#[allow(unused_imports)]
use super::*;

/// Which appointments a list holds: on or after `from`, on or before `to` (dates), in
/// `status`.
#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub status: Option<AppointmentStatus>,
}

pub async fn list_appointments(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    filter: &AppointmentFilter,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Appointment>> {
    use rendez_vous as r;
    let query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .select(Appointment::as_select())
        .limit(page.limit())
        .into_boxed()
        .filter_some(filter.from, |v| r::rdv_date.ge(v))
        .filter_some(filter.to, |v| r::rdv_date.le(v))
        .filter_some(filter.status, |v| r::status.eq(v));
    crate::keyset!(query, page, r::created_at, r::id, desc)
        .load(conn)
        .await
}

/// Books an appointment (pending). The tenant's pending and confirmed appointments do not
/// overlap: one starting before another ends is a `CONFLICT` on `time`, also when two
/// bookings race (booking takes a transaction-scoped advisory lock on the tenant's day).
/// A customer or call it names must be the tenant's.
pub async fn book_appointment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: AppointmentFields,
) -> OpResult<Appointment> {
    use rendez_vous as r;
    check_appointment(&fields)?;
    check_references(conn, scope, fields.customer_id, fields.call_id).await?;
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtext('rendez_vous/' || $1::text || '/' || $2::text))",
    )
    .bind::<diesel::sql_types::Uuid, _>(scope.id())
    .bind::<diesel::sql_types::Date, _>(fields.rdv_date)
    .execute(conn)
    .await?;
    // Minutes since midnight: [start, end) of the new one and of each other one.
    let minute =
        |t: chrono::NaiveTime| i64::from(chrono::Timelike::num_seconds_from_midnight(&t) / 60);
    let start = minute(fields.rdv_time);
    let end = start + i64::from(fields.duration_minutes.unwrap_or(30));
    let same_day: Vec<(chrono::NaiveTime, i32)> = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .filter(r::rdv_date.eq(fields.rdv_date))
        .filter(r::status.eq_any([AppointmentStatus::Pending, AppointmentStatus::Confirmed]))
        .select((r::rdv_time, r::duration_minutes))
        .load(conn)
        .await?;
    let overlaps = same_day.iter().any(|(other, minutes)| {
        let other = minute(*other);
        start < other + i64::from(*minutes) && other < end
    });
    if overlaps {
        return Err(user_error(
            UserErrorCode::Conflict,
            &["input", "time"],
            "another appointment takes this time",
        ));
    }
    let appointment = diesel::insert_into(r::table)
        .values((r::tenant_id.eq(scope.id()), fields))
        .returning(Appointment::as_returning())
        .get_result(conn)
        .await?;
    record_appointment(conn, scope, &appointment).await?;
    Ok(appointment)
}

/// `pending → confirmed | cancelled`, `confirmed → completed | no_show | cancelled`; the
/// others are final (`INVALID_TRANSITION`, nothing written).
pub async fn change_appointment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    to: AppointmentStatus,
) -> OpResult<Appointment> {
    use rendez_vous as r;
    use AppointmentStatus::*;
    let from = appointment_status(conn, scope, id).await?;
    if !matches!(
        (from, to),
        (Pending, Confirmed | Cancelled) | (Confirmed, Completed | NoShow | Cancelled)
    ) {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "status"],
            &format!("not allowed from {} to {}", from.as_str(), to.as_str()),
        ));
    }
    let appointment = diesel::update(
        r::table
            .filter(r::tenant_id.eq(scope.id()))
            .filter(r::id.eq(id)),
    )
    .set(r::status.eq(to))
    .returning(Appointment::as_returning())
    .get_result(conn)
    .await?;
    record_appointment(conn, scope, &appointment).await?;
    Ok(appointment)
}

/// The status of the tenant's appointment `id`, locked for the transaction.
async fn appointment_status(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> OpResult<AppointmentStatus> {
    crate::tenant_row!(
        locked conn,
        scope,
        rendez_vous,
        id,
        table::status,
        &["input", "id"],
        "no such appointment"
    )
}

/// Moves a pending or confirmed appointment to `date` at `time`, re-arming its reminder.
pub async fn reschedule_appointment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    date: NaiveDate,
    time: NaiveTime,
) -> OpResult<Appointment> {
    use rendez_vous as r;
    let from = appointment_status(conn, scope, id).await?;
    if !matches!(
        from,
        AppointmentStatus::Pending | AppointmentStatus::Confirmed
    ) {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            &format!("a {} appointment cannot be rescheduled", from.as_str()),
        ));
    }
    let appointment = diesel::update(
        r::table
            .filter(r::tenant_id.eq(scope.id()))
            .filter(r::id.eq(id)),
    )
    .set((
        r::rdv_date.eq(date),
        r::rdv_time.eq(time),
        r::reminder_24h_sent.eq(false),
        r::reminder_sent_at.eq(None::<DateTime<Utc>>),
    ))
    .returning(Appointment::as_returning())
    .get_result(conn)
    .await?;
    record_appointment(conn, scope, &appointment).await?;
    Ok(appointment)
}

fn check_appointment(fields: &AppointmentFields) -> OpResult<()> {
    check_required_text("clientName", &fields.client_name, 200)?;
    check_text("clientPhone", fields.client_phone.as_deref(), 50)?;
    check_text("serviceType", fields.service_type.as_deref(), 100)?;
    check_text("notes", fields.notes.as_deref(), 10_000)?;
    if fields
        .client_email
        .as_deref()
        .is_some_and(|e| !valid_email(e))
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "clientEmail"],
            "not an email address",
        ));
    }
    if fields
        .duration_minutes
        .is_some_and(|m| !(5..=480).contains(&m))
    {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "durationMinutes"],
            "durationMinutes must be between 5 and 480",
        ));
    }
    Ok(())
}

async fn record_appointment(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    appointment: &Appointment,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "appointment.changed",
        appointment.id,
        json!({
            "status": appointment.status.as_str(),
            "date": appointment.rdv_date,
            "time": appointment.rdv_time,
        }),
    )
    .await
}
