//! Reads of the channels, the message log, and the voice agents' records (calls,
//! appointments, prospects, support tickets); lists are newest first. Writes of the
//! channels' configurations.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use serde_json::json;
use uuid::Uuid;

use super::model::{
    Appointment, AppointmentFields, AppointmentStatus, Call, CallDirection, CallFields,
    CallProvider, CallStatus, Channel, ChannelConfiguration, ChannelFields, ChannelProvider,
    Prospect, ProspectFields, ProspectStatus, Ticket, TicketFields, TicketPriority, TicketStatus,
};
use crate::db::page::PageRequest;
use crate::db::schema::{call_logs, channel_configurations, prospects, rendez_vous, tickets};
use crate::db::Tenant;
use crate::domain::customers::ops::valid_email;
use crate::domain::{
    check_json_object, check_required_text, check_text, events, user_error, OpResult, UserErrorCode,
};
use crate::error::AppError;
use crate::secrets::SecretKey;

pub async fn list_calls(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Call>> {
    use call_logs as c;
    let query = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(Call::as_select())
        .limit(page.limit())
        .into_boxed();
    crate::keyset!(query, page, c::created_at, c::id, desc)
        .load(conn)
        .await
}

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
    let mut query = r::table
        .filter(r::tenant_id.eq(scope.id()))
        .select(Appointment::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(from) = filter.from {
        query = query.filter(r::rdv_date.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(r::rdv_date.le(to));
    }
    if let Some(status) = filter.status {
        query = query.filter(r::status.eq(status));
    }
    crate::keyset!(query, page, r::created_at, r::id, desc)
        .load(conn)
        .await
}

pub async fn list_tickets(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<TicketStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Ticket>> {
    use tickets as t;
    let mut query = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .select(Ticket::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(t::status.eq(status));
    }
    crate::keyset!(query, page, t::created_at, t::id, desc)
        .load(conn)
        .await
}

pub async fn list_prospects(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<ProspectStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Prospect>> {
    use prospects as p;
    let mut query = p::table
        .filter(p::tenant_id.eq(scope.id()))
        .select(Prospect::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(p::status.eq(status));
    }
    crate::keyset!(query, page, p::created_at, p::id, desc)
        .load(conn)
        .await
}

/// Every channel configuration of the tenant (a handful), by channel then provider.
pub async fn channels(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Vec<ChannelConfiguration>> {
    use channel_configurations as c;
    c::table
        .filter(c::tenant_id.eq(scope.id()))
        .select(ChannelConfiguration::as_select())
        .order((c::channel_type, c::provider))
        .load(conn)
        .await
}

/// At most this much public configuration or credentials (serialised JSON).
const MAX_CONFIG_BYTES: usize = 8 * 1024;

/// Credentials for [`configure_channel`]: kept as they are, removed, or replaced.
#[derive(Clone)]
pub enum Credentials {
    Keep,
    Remove,
    /// A JSON object, sealed with the server's key before it is stored.
    Store(serde_json::Value),
}

impl std::fmt::Debug for Credentials {
    /// Never the credentials themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Keep => "Keep",
            Credentials::Remove => "Remove",
            Credentials::Store(_) => "Store(…)",
        })
    }
}

/// What sealed credentials are bound to: the tenant, the channel and the provider (a
/// sealed value copied to another row does not open there).
pub fn credentials_context(tenant: Uuid, channel: Channel, provider: ChannelProvider) -> String {
    format!(
        "channel_configurations/{tenant}/{}/{}",
        channel.as_str(),
        provider.as_str()
    )
}

/// A configuration as `configureChannel` answers it: with its status hook token when one
/// was made (the first time, or on request), shown this once.
#[derive(Debug)]
pub struct Configured {
    pub configuration: ChannelConfiguration,
    pub hook_token: Option<String>,
}

/// Creates the tenant's configuration of `channel` with `provider`, or changes what
/// `fields` and `credentials` give. Credentials are sealed with `key` (refused when the
/// server has none) and never returned; `configured` says whether some are stored.
/// Concurrent first calls create one configuration. A configuration gets a status hook
/// token (`POST /hooks/{provider}/{token}`) when it has none or `rotate_hook_token` asks.
#[allow(clippy::too_many_arguments)]
pub async fn configure_channel(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    channel: Channel,
    provider: ChannelProvider,
    mut fields: ChannelFields,
    credentials: Credentials,
    rotate_hook_token: bool,
    key: Option<&SecretKey>,
) -> OpResult<Configured> {
    use channel_configurations as c;
    check_channel(channel, provider, &fields)?;
    match credentials {
        Credentials::Keep => {}
        Credentials::Remove => {
            fields.config_encrypted = Some(None);
            fields.configured = Some(false);
        }
        Credentials::Store(value) => {
            check_json_object("credentials", &value, MAX_CONFIG_BYTES)?;
            let Some(key) = key else {
                return Err(user_error(
                    UserErrorCode::Invalid,
                    &["input", "credentials"],
                    "this server has no secret key (GROWTHGRAPH_SECRET_KEY): credentials cannot be stored",
                ));
            };
            let context = credentials_context(scope.id(), channel, provider);
            fields.config_encrypted = Some(Some(key.seal(&context, value.to_string().as_bytes())));
            fields.configured = Some(true);
        }
    }
    let config = diesel::insert_into(c::table)
        .values((
            c::tenant_id.eq(scope.id()),
            c::channel_type.eq(channel),
            c::provider.eq(provider.as_str()),
            fields.clone(),
        ))
        .on_conflict((c::tenant_id, c::channel_type, c::provider))
        .do_update()
        // `updated_at` (stamped by the table's trigger anyway) keeps the change non-empty
        // when only the identity is given.
        .set((fields, c::updated_at.eq(diesel::dsl::now)))
        .returning(ChannelConfiguration::as_returning())
        .get_result(conn)
        .await?;
    events::record(
        conn,
        scope,
        "channel.configured",
        config.id,
        json!({
            "channel": channel.as_str(),
            "provider": provider.as_str(),
            "enabled": config.enabled,
            "configured": config.configured,
        }),
    )
    .await?;
    let has_token: bool = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .filter(c::id.eq(config.id))
        .select(c::hook_token_hash.is_not_null())
        .first(conn)
        .await?;
    let mut hook_token = None;
    if rotate_hook_token || !has_token {
        let token = crate::auth::generate_secret("ghk_");
        let sealed = key.map(|key| {
            let context = crate::domain::messages::ops::hook_token_context(scope.id(), config.id);
            key.seal(&context, token.as_bytes())
        });
        diesel::update(
            c::table
                .filter(c::tenant_id.eq(scope.id()))
                .filter(c::id.eq(config.id)),
        )
        .set((
            c::hook_token_hash.eq(crate::auth::hash_key(&token)),
            c::hook_token_sealed.eq(sealed),
        ))
        .execute(conn)
        .await?;
        hook_token = Some(token);
    }
    Ok(Configured {
        configuration: config,
        hook_token,
    })
}

fn check_channel(
    channel: Channel,
    provider: ChannelProvider,
    fields: &ChannelFields,
) -> OpResult<()> {
    let invalid = |field: &str, message: &str| {
        Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            message,
        ))
    };
    if !provider.carries(channel) {
        return invalid("provider", "this provider does not carry this channel");
    }
    if let Some(config) = &fields.config_public {
        check_json_object("configPublic", config, MAX_CONFIG_BYTES)?;
    }
    if let Some(Some(assistant)) = &fields.assistant_id {
        if channel != Channel::Phone {
            return invalid("assistantId", "only phone channels have a voice assistant");
        }
        if assistant.is_empty() || assistant.chars().count() > 200 || assistant.contains('\0') {
            return invalid("assistantId", "assistantId is 1 to 200 characters");
        }
    }
    if let Some(Some(address)) = &fields.from_address {
        let fits = match channel {
            Channel::Email => valid_email(address),
            _ => !address.is_empty() && address.len() <= 254 && !address.contains('\0'),
        };
        if !fits {
            return invalid("fromAddress", "not a sender address for this channel");
        }
    }
    check_text(
        "fromName",
        fields.from_name.as_ref().and_then(|n| n.as_deref()),
        200,
    )?;
    Ok(())
}

/// Opens a support ticket, numbered `TCK-0001`, `TCK-0002`… per tenant (one numbering at
/// a time: a transaction-scoped advisory lock on the tenant's tickets). A customer or
/// call it names must be the tenant's.
pub async fn open_ticket(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: TicketFields,
) -> OpResult<Ticket> {
    use tickets as t;
    check_ticket(&fields)?;
    check_references(conn, scope, fields.customer_id, fields.call_id).await?;
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('tickets/' || $1::text))")
        .bind::<diesel::sql_types::Uuid, _>(scope.id())
        .execute(conn)
        .await?;
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        next: i64,
    }
    let Next { next } = diesel::sql_query(
        "SELECT coalesce(max(substring(ticket_number FROM 5)::bigint), 0) + 1 AS next \
         FROM tickets WHERE tenant_id = $1 AND ticket_number ~ '^TCK-[0-9]{1,15}$'",
    )
    .bind::<diesel::sql_types::Uuid, _>(scope.id())
    .get_result(conn)
    .await?;
    let ticket = diesel::insert_into(t::table)
        .values((
            t::tenant_id.eq(scope.id()),
            t::ticket_number.eq(format!("TCK-{next:04}")),
            fields,
        ))
        .returning(Ticket::as_returning())
        .get_result(conn)
        .await?;
    record_ticket(conn, scope, &ticket).await?;
    Ok(ticket)
}

/// Changes a ticket's status, priority or assignee. Status: `open → in_progress |
/// resolved | closed`, `in_progress → open | resolved | closed`, `resolved → in_progress
/// (reopened) | closed`; `closed` is final. Resolving stamps `resolvedAt`, reopening
/// clears it; anything else is an `INVALID_TRANSITION`, nothing written.
pub async fn update_ticket(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    status: Option<TicketStatus>,
    priority: Option<TicketPriority>,
    assigned_to: Option<Option<String>>,
) -> OpResult<Ticket> {
    use tickets as t;
    use TicketStatus::*;
    if status.is_none() && priority.is_none() && assigned_to.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "give a status, a priority or an assignee",
        ));
    }
    if let Some(Some(assignee)) = &assigned_to {
        check_text("assignedTo", Some(assignee), 200)?;
    }
    let target = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::id.eq(id));
    let current: TicketStatus = crate::tenant_row!(
        locked conn, scope, tickets, id, table::status, &["input", "id"], "no such ticket"
    )?;
    let resolved_at = match status {
        None => None,
        Some(next) if next == current => None,
        Some(next) => match (current, next) {
            (Open | InProgress, Resolved) => Some(Some(chrono::Utc::now())),
            (Resolved, InProgress) => Some(None),
            (Open, InProgress) | (InProgress, Open) | (Open | InProgress | Resolved, Closed) => {
                None
            }
            (from, to) => {
                return Err(user_error(
                    UserErrorCode::InvalidTransition,
                    &["input", "status"],
                    &format!("not allowed from {} to {}", from.as_str(), to.as_str()),
                ));
            }
        },
    };
    if current == Closed {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            "a closed ticket does not change",
        ));
    }
    let ticket = diesel::update(target)
        .set((
            status.map(|s| t::status.eq(s)),
            priority.map(|p| t::priority.eq(p)),
            assigned_to.map(|a| t::assigned_to.eq(a)),
            resolved_at.map(|r| t::resolved_at.eq(r)),
        ))
        .returning(Ticket::as_returning())
        .get_result(conn)
        .await?;
    record_ticket(conn, scope, &ticket).await?;
    Ok(ticket)
}

fn check_ticket(fields: &TicketFields) -> OpResult<()> {
    check_required_text("subject", &fields.subject, 300)?;
    check_text("description", fields.description.as_deref(), 10_000)?;
    check_text("category", fields.category.as_deref(), 100)?;
    check_text("customerName", fields.customer_name.as_deref(), 200)?;
    check_text("customerPhone", fields.customer_phone.as_deref(), 50)?;
    if let Some(email) = &fields.customer_email {
        if !valid_email(email) {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "customerEmail"],
                "not an email address",
            ));
        }
    }
    Ok(())
}

async fn record_ticket(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    ticket: &Ticket,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "ticket.changed",
        ticket.id,
        json!({
            "ticketNumber": ticket.ticket_number,
            "status": ticket.status.as_str(),
            "priority": ticket.priority.as_str(),
        }),
    )
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

/// The customer and the call an input names, when it names them, must be the tenant's
/// (`NOT_FOUND` on `customerId` or `callId` otherwise).
async fn check_references(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    customer: Option<Uuid>,
    call: Option<Uuid>,
) -> OpResult<()> {
    if let Some(customer) = customer {
        let _: Uuid = crate::tenant_row!(
            conn,
            scope,
            customers,
            customer,
            table::id,
            &["input", "customerId"],
            "no such customer"
        )?;
    }
    if let Some(call) = call {
        let _: Uuid = crate::tenant_row!(
            conn,
            scope,
            call_logs,
            call,
            table::id,
            &["input", "callId"],
            "no such call"
        )?;
    }
    Ok(())
}

/// Records a prospect the qualification agent met (status `new`). A call it names must
/// be the tenant's.
pub async fn record_prospect(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: ProspectFields,
) -> OpResult<Prospect> {
    check_required_text("name", &fields.name, 200)?;
    check_prospect_text(&fields)?;
    check_score(fields.qualification_score)?;
    check_references(conn, scope, None, fields.call_id).await?;
    let prospect = diesel::insert_into(prospects::table)
        .values((prospects::tenant_id.eq(scope.id()), fields))
        .returning(Prospect::as_returning())
        .get_result(conn)
        .await?;
    record_prospect_event(conn, scope, &prospect).await?;
    Ok(prospect)
}

/// Moves a prospect along and rescores it: `new → qualified | unqualified | contacted`,
/// `qualified → contacted | unqualified | converted`, `contacted → qualified |
/// unqualified | converted`, `unqualified → qualified` (requalified); `converted` is
/// final (`INVALID_TRANSITION`, nothing written).
pub async fn update_prospect(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    status: Option<ProspectStatus>,
    score: Option<Option<i32>>,
    notes: Option<Option<String>>,
) -> OpResult<Prospect> {
    use prospects as p;
    use ProspectStatus::*;
    if status.is_none() && score.is_none() && notes.is_none() {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input"],
            "give a status, a score or notes",
        ));
    }
    check_score(score.flatten())?;
    check_text("notes", notes.as_ref().and_then(|n| n.as_deref()), 10_000)?;
    let current: ProspectStatus = crate::tenant_row!(
        locked conn,
        scope,
        prospects,
        id,
        table::status,
        &["input", "id"],
        "no such prospect"
    )?;
    let allowed = match (current, status) {
        (Converted, _) => false,
        (_, None) => true,
        (from, Some(to)) if from == to => true,
        (New, Some(Qualified | Unqualified | Contacted))
        | (Qualified, Some(Contacted | Unqualified | Converted))
        | (Contacted, Some(Qualified | Unqualified | Converted))
        | (Unqualified, Some(Qualified)) => true,
        _ => false,
    };
    if !allowed {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "status"],
            &format!("not allowed from {}", current.as_str()),
        ));
    }
    let prospect = diesel::update(
        p::table
            .filter(p::tenant_id.eq(scope.id()))
            .filter(p::id.eq(id)),
    )
    .set((
        status.map(|s| p::status.eq(s)),
        score.map(|s| p::qualification_score.eq(s)),
        notes.map(|n| p::notes.eq(n)),
    ))
    .returning(Prospect::as_returning())
    .get_result(conn)
    .await?;
    record_prospect_event(conn, scope, &prospect).await?;
    Ok(prospect)
}

fn check_prospect_text(fields: &ProspectFields) -> OpResult<()> {
    for (field, value, max) in [
        ("phone", &fields.phone, 50),
        ("company", &fields.company, 200),
        ("need", &fields.need, 2_000),
        ("budget", &fields.budget, 200),
        ("timeline", &fields.timeline, 200),
        ("notes", &fields.notes, 10_000),
    ] {
        check_text(field, value.as_deref(), max)?;
    }
    if fields.email.as_deref().is_some_and(|e| !valid_email(e)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "email"],
            "not an email address",
        ));
    }
    Ok(())
}

fn check_score(score: Option<i32>) -> OpResult<()> {
    if score.is_some_and(|s| !(0..=100).contains(&s)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "qualificationScore"],
            "qualificationScore must be between 0 and 100",
        ));
    }
    Ok(())
}

async fn record_prospect_event(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    prospect: &Prospect,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "prospect.changed",
        prospect.id,
        json!({ "status": prospect.status.as_str(), "qualificationScore": prospect.qualification_score }),
    )
    .await
}
