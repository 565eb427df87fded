//! The voice agents' calls: listed and recorded (one per provider call id).

#[allow(unused_imports)]
use super::*;

pub async fn list_calls(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Call>> {
    crate::newest_first!(conn, scope, call_logs, Call, page)
}

/// Records a voice provider's report of a call. Reports of one call (the same provider
/// and `provider_call_id`) update one row: its status only moves forward (a late
/// "ringing" after "completed" leaves it completed), and the other fields a report
/// gives replace what was there. A report without a provider call id is a call of its
/// own. Concurrent reports of one call make one row.
pub async fn record_call(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    provider: CallProvider,
    provider_call_id: Option<String>,
    direction: CallDirection,
    status: CallStatus,
    fields: CallFields,
) -> OpResult<Call> {
    use call_logs as c;
    check_call(provider_call_id.as_deref(), &fields)?;
    check_references(conn, scope, fields.customer_id, None).await?;
    let created = diesel::insert_into(c::table)
        .values((
            c::tenant_id.eq(scope.id()),
            c::provider.eq(provider.as_str()),
            c::provider_call_id.eq(&provider_call_id),
            c::direction.eq(direction.as_str()),
            c::status.eq(status),
            fields.clone(),
        ))
        .on_conflict_do_nothing()
        .returning(Call::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    let call = match (created, provider_call_id) {
        (Some(call), _) => call,
        (None, Some(provider_call_id)) => {
            // Reported before: that row, locked, moved forward.
            let target = c::table
                .filter(c::tenant_id.eq(scope.id()))
                .filter(c::provider.eq(provider.as_str()))
                .filter(c::provider_call_id.eq(&provider_call_id));
            let (id, current): (Uuid, CallStatus) = target
                .select((c::id, c::status))
                .for_update()
                .first(conn)
                .await?;
            let status = if status.stage() > current.stage() {
                status
            } else {
                current
            };
            diesel::update(
                c::table
                    .filter(c::tenant_id.eq(scope.id()))
                    .filter(c::id.eq(id)),
            )
            .set((c::status.eq(status), fields))
            .returning(Call::as_returning())
            .get_result(conn)
            .await?
        }
        (None, None) => {
            return Err(AppError::internal(&"a call without a provider id clashed").into())
        }
    };
    events::record(
        conn,
        scope,
        "call.recorded",
        call.id,
        json!({ "status": call.status.as_str(), "agentType": call.agent_type }),
    )
    .await?;
    Ok(call)
}

fn check_call(provider_call_id: Option<&str>, fields: &CallFields) -> OpResult<()> {
    let invalid = |field: &str, message: &str| {
        Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            message,
        ))
    };
    if provider_call_id.is_some_and(|id| id.is_empty() || id.len() > 200 || id.contains('\0')) {
        return invalid("providerCallId", "providerCallId is 1 to 200 characters");
    }
    check_text("fromNumber", fields.from_number.as_deref(), 50)?;
    check_text("toNumber", fields.to_number.as_deref(), 50)?;
    check_text("summary", fields.summary.as_deref(), 10_000)?;
    check_text("transcript", fields.transcript.as_deref(), 200_000)?;
    if fields
        .duration_seconds
        .is_some_and(|d| !(0..=86_400).contains(&d))
    {
        return invalid(
            "durationSeconds",
            "durationSeconds must be between 0 and 86400",
        );
    }
    if let Some(url) = &fields.recording_url {
        let web = url.starts_with("https://") || url.starts_with("http://");
        if !web || url.len() > 2000 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("recordingUrl", "recordingUrl must be an http(s) URL");
        }
    }
    if let (Some(started), Some(ended)) = (fields.started_at, fields.ended_at) {
        if ended < started {
            return invalid("endedAt", "endedAt must not be before startedAt");
        }
    }
    Ok(())
}
