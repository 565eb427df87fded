use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use serde_json::json;
use uuid::Uuid;

use super::model::{
    DemoSession, EmailSequence, SequenceSegment, SequenceStatus, Testimonial, WidgetConfig,
    WidgetFields,
};
use crate::auth::generate_widget_key;
use crate::db::page::PageRequest;
use crate::db::schema::{
    communication_preferences, customers, demo_sessions, email_sequence_steps, email_sequences,
    email_templates, orders, testimonials, widget_configs,
};
use crate::db::Tenant;
use crate::domain::customers::ops::valid_email;
use crate::domain::{check_json_object, events, user_error, OpResult, UserErrorCode};
use crate::error::AppResult;

/// Published testimonials, newest first: what the widget shows.
pub async fn published_testimonials(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> AppResult<Vec<Testimonial>> {
    let mut query = testimonials::table
        .filter(testimonials::tenant_id.eq(scope.id()))
        .filter(testimonials::status.eq(super::model::TestimonialStatus::Published))
        .select(Testimonial::as_select())
        .limit(page.limit())
        .into_boxed();
    query = crate::keyset!(
        query,
        page,
        testimonials::published_at,
        testimonials::id,
        desc
    );
    Ok(query.load(conn).await?)
}

/// Email sequences, optionally in one status, newest first.
pub async fn list_email_sequences(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<SequenceStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<EmailSequence>> {
    crate::newest_first!(
        conn,
        scope,
        email_sequences,
        EmailSequence,
        page,
        status = status
    )
}

/// Live demo sessions (those past their 24 hours are hidden), newest first.
pub async fn list_demo_sessions(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<DemoSession>> {
    use demo_sessions as d;
    let query = d::table
        .filter(d::tenant_id.eq(scope.id()))
        .filter(d::expires_at.gt(Utc::now()))
        .select(DemoSession::as_select())
        .limit(page.limit())
        .into_boxed();
    crate::keyset!(query, page, d::created_at, d::id, desc)
        .load(conn)
        .await
}

pub async fn widget_config(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
) -> QueryResult<Option<WidgetConfig>> {
    widget_configs::table
        .filter(widget_configs::tenant_id.eq(scope.id()))
        .select(WidgetConfig::as_select())
        .first(conn)
        .await
        .optional()
}

/// Starts a re-engagement sequence for `recipient_email` in `segment` (active, its first
/// step due now), optionally for one of the tenant's contacts. A recipient has at most one
/// open (active or paused) sequence per segment: a second is a `CONFLICT`, also when two
/// starts race.
pub async fn start_email_sequence(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    recipient_email: &str,
    segment: SequenceSegment,
    contact_id: Option<Uuid>,
) -> OpResult<EmailSequence> {
    use email_sequences as e;
    let email = recipient_email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "recipientEmail"],
            "not an email address",
        ));
    }
    if let Some(contact) = contact_id {
        let _: Uuid = crate::tenant_row!(
            conn,
            scope,
            contacts,
            contact,
            table::id,
            &["input", "contactId"],
            "no such contact"
        )?;
    }
    let sequence = diesel::insert_into(e::table)
        .values((
            e::tenant_id.eq(scope.id()),
            e::recipient_email.eq(&email),
            e::segment.eq(segment),
            e::contact_id.eq(contact_id),
            e::next_send_at.eq(diesel::dsl::now),
        ))
        .on_conflict_do_nothing()
        .returning(EmailSequence::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            user_error(
                UserErrorCode::Conflict,
                &["input", "recipientEmail"],
                "this recipient already follows an open sequence in this segment",
            )
        })?;
    record_sequence(conn, scope, &sequence).await?;
    Ok(sequence)
}

/// What a sequence may be asked to become.
#[derive(Debug, Clone, Copy)]
pub enum SequenceChange {
    Pause,
    Resume,
    Cancel,
}

/// `active → paused` (nothing more is sent), `paused → active` (the next step due now),
/// `active | paused → cancelled`; anything else is an `INVALID_TRANSITION`.
pub async fn change_email_sequence(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    change: SequenceChange,
) -> OpResult<EmailSequence> {
    use email_sequences as e;
    use SequenceStatus::*;
    let target = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .filter(e::id.eq(id));
    let status: SequenceStatus = crate::tenant_row!(
        locked conn, scope, email_sequences, id, table::status, &["input", "id"], "no such sequence"
    )?;
    let (next, next_send_at) = match (status, change) {
        (Active, SequenceChange::Pause) => (Paused, None),
        (Paused, SequenceChange::Resume) => (Active, Some(chrono::Utc::now())),
        (Active | Paused, SequenceChange::Cancel) => (Cancelled, None),
        (from, _) => {
            return Err(user_error(
                UserErrorCode::InvalidTransition,
                &["input", "id"],
                &format!("not allowed from {}", from.as_str()),
            ));
        }
    };
    let sequence = diesel::update(target)
        .set((e::status.eq(next), e::next_send_at.eq(next_send_at)))
        .returning(EmailSequence::as_returning())
        .get_result(conn)
        .await?;
    record_sequence(conn, scope, &sequence).await?;
    Ok(sequence)
}

/// Ends an open sequence without sending more: `cancelled` with the reason
/// (`unsubscribed`), or `completed` when the recipient converted. An ended one stays.
pub async fn stop_email_sequence(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    reason: &str,
) -> QueryResult<()> {
    use email_sequences as e;
    let status = match reason {
        "converted" => SequenceStatus::Completed,
        _ => SequenceStatus::Cancelled,
    };
    let sequence: Option<EmailSequence> = diesel::update(
        e::table
            .filter(e::tenant_id.eq(scope.id()))
            .filter(e::id.eq(id))
            .filter(e::status.eq_any([SequenceStatus::Active, SequenceStatus::Paused])),
    )
    .set((
        e::status.eq(status),
        e::next_send_at.eq(None::<DateTime<Utc>>),
        e::completed_at.eq(Some(Utc::now())),
        e::metadata.eq(diesel::dsl::sql::<diesel::sql_types::Jsonb>("metadata || ")
            .bind::<diesel::sql_types::Jsonb, _>(json!({ "stoppedBy": reason }))),
    ))
    .returning(EmailSequence::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(sequence) = sequence {
        record_sequence(conn, scope, &sequence).await?;
    }
    Ok(())
}

/// A segment's sequence: (step number, delay in hours, email template), in order.
pub async fn sequence_steps(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    segment: SequenceSegment,
) -> QueryResult<Vec<(i32, i32, Uuid)>> {
    use email_sequence_steps as s;
    s::table
        .filter(s::tenant_id.eq(scope.id()))
        .filter(s::segment.eq(segment))
        .select((s::step_number, s::delay_hours, s::email_template_id))
        .order(s::step_number)
        .load(conn)
        .await
}

/// Replaces a segment's steps with `steps` (delay in hours after the previous step, the
/// outreach email template): 1 to 20 steps, delays 0 to 8 760 h, templates of the tenant.
pub async fn save_sequence_steps(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    segment: SequenceSegment,
    steps: &[(i32, Uuid)],
) -> OpResult<Vec<(i32, i32, Uuid)>> {
    use email_sequence_steps as s;
    if steps.is_empty() || steps.len() > 20 {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "steps"],
            "1 to 20 steps",
        ));
    }
    for (i, (delay, template)) in steps.iter().enumerate() {
        let index = i.to_string();
        if !(0..=8760).contains(delay) {
            return Err(user_error(
                UserErrorCode::Invalid,
                &["input", "steps", &index, "delayHours"],
                "delayHours is 0 to 8760",
            ));
        }
        let found: i64 = email_templates::table
            .filter(email_templates::tenant_id.eq(scope.id()))
            .filter(email_templates::id.eq(template))
            .count()
            .get_result(conn)
            .await?;
        if found == 0 {
            return Err(user_error(
                UserErrorCode::NotFound,
                &["input", "steps", &index, "templateId"],
                "no such email template",
            ));
        }
    }
    diesel::delete(
        s::table
            .filter(s::tenant_id.eq(scope.id()))
            .filter(s::segment.eq(segment)),
    )
    .execute(conn)
    .await?;
    let rows: Vec<_> = steps
        .iter()
        .enumerate()
        .map(|(i, (delay, template))| {
            (
                s::tenant_id.eq(scope.id()),
                s::segment.eq(segment),
                s::step_number.eq(i as i32 + 1),
                s::delay_hours.eq(*delay),
                s::email_template_id.eq(*template),
            )
        })
        .collect();
    diesel::insert_into(s::table)
        .values(rows)
        .execute(conn)
        .await?;
    events::record(
        conn,
        scope,
        "email_sequence.steps_saved",
        scope.id(),
        json!({ "segment": segment.as_str(), "steps": steps.len() }),
    )
    .await?;
    Ok(sequence_steps(conn, scope, segment).await?)
}

/// Sends the due step of each active sequence (`next_send_at` reached), at most `limit`:
/// the step's template to the recipient, then `current_step` and `next_send_at` advance,
/// and the last step completes the sequence. A sequence stops first when its recipient
/// converted (a customer with that email ordered since it started: `completed`), opted out
/// of marketing email (`cancelled`), or the tenant turned sequences off (seed 000
/// `email_preferences.sequences`); a step whose template does not render pauses it.
/// Returns how many steps were queued.
pub async fn run_sequence_steps(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    now: DateTime<Utc>,
    limit: i64,
) -> OpResult<i64> {
    use crate::domain::messages::ops::{deliver, Outgoing};
    use email_sequences as e;
    let due: Vec<EmailSequence> = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .filter(e::status.eq(SequenceStatus::Active))
        .filter(e::next_send_at.le(now))
        .select(EmailSequence::as_select())
        .order(e::next_send_at)
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let sequences_off = crate::domain::tenancy::ops::email_preferences(conn, scope).await?
        ["sequences"]
        == json!(false);
    // Each segment's steps, read once per batch.
    let mut steps_of: HashMap<SequenceSegment, Vec<(i32, i32, Uuid)>> = HashMap::new();
    let mut queued = 0;
    for sequence in due {
        let stop = if sequences_off {
            Some("tenant_turned_sequences_off")
        } else if converted(conn, scope, &sequence).await? {
            Some("converted")
        } else if opted_out(conn, scope, &sequence.recipient_email).await? {
            Some("unsubscribed")
        } else {
            None
        };
        if let Some(reason) = stop {
            stop_email_sequence(conn, scope, sequence.id, reason).await?;
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = steps_of.entry(sequence.segment) {
            slot.insert(sequence_steps(conn, scope, sequence.segment).await?);
        }
        let steps = &steps_of[&sequence.segment];
        let next = sequence.current_step as usize;
        let Some(&(number, delay, template)) = steps.get(next) else {
            // No (more) steps: the sequence is done.
            finish_sequence(conn, scope, sequence.id, sequence.current_step, None).await?;
            continue;
        };
        // The first step waits its delay after the start.
        let due_at = match next {
            0 => sequence.started_at + chrono::Duration::hours(i64::from(delay)),
            _ => sequence.next_send_at.unwrap_or(now),
        };
        if due_at > now {
            diesel::update(
                e::table
                    .filter(e::tenant_id.eq(scope.id()))
                    .filter(e::id.eq(sequence.id)),
            )
            .set(e::next_send_at.eq(due_at))
            .execute(conn)
            .await?;
            continue;
        }
        let variables = json!({
            "email": sequence.recipient_email, "segment": sequence.segment.as_str(), "step": number,
        });
        let outgoing = Outgoing {
            to: Some(sequence.recipient_email.clone()),
            communication_type: Some(crate::domain::messages::model::CommunicationType::Marketing),
            idempotency_key: Some(format!("sequence/{}/{number}", sequence.id)),
            email_sequence_id: Some(sequence.id),
            ..Outgoing::of_template(
                crate::domain::comms::model::Channel::Email,
                template,
                variables,
            )
        };
        let delivered =
            crate::domain::in_savepoint(conn, async |conn| deliver(conn, scope, outgoing).await)
                .await?;
        if let Err(error) = delivered {
            diesel::update(
                e::table
                    .filter(e::tenant_id.eq(scope.id()))
                    .filter(e::id.eq(sequence.id)),
            )
            .set((
                e::status.eq(SequenceStatus::Paused),
                e::next_send_at.eq(None::<DateTime<Utc>>),
                e::metadata.eq(diesel::dsl::sql::<diesel::sql_types::Jsonb>("metadata || ")
                    .bind::<diesel::sql_types::Jsonb, _>(
                    json!({ "pausedBy": format!("step {number}: {}", error.message) }),
                )),
            ))
            .execute(conn)
            .await?;
            continue;
        }
        queued += 1;
        let following = steps
            .get(next + 1)
            .map(|&(_, delay, _)| now + chrono::Duration::hours(i64::from(delay)));
        finish_sequence(conn, scope, sequence.id, number, following).await?;
    }
    Ok(queued)
}

/// Records a sent step: the next one due at `next` or, with none left, completed.
async fn finish_sequence(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    step: i32,
    next: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    use email_sequences as e;
    let target = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .filter(e::id.eq(id));
    let sequence = match next {
        Some(at) => {
            diesel::update(target)
                .set((e::current_step.eq(step), e::next_send_at.eq(at)))
                .returning(EmailSequence::as_returning())
                .get_result(conn)
                .await?
        }
        None => {
            diesel::update(target)
                .set((
                    e::current_step.eq(step),
                    e::next_send_at.eq(None::<DateTime<Utc>>),
                    e::status.eq(SequenceStatus::Completed),
                    e::completed_at.eq(Some(Utc::now())),
                ))
                .returning(EmailSequence::as_returning())
                .get_result(conn)
                .await?
        }
    };
    record_sequence(conn, scope, &sequence).await
}

/// Whether a customer with the sequence's email ordered since it started.
async fn converted(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    sequence: &EmailSequence,
) -> QueryResult<bool> {
    let orders: i64 = orders::table
        .inner_join(
            customers::table.on(customers::id
                .eq(orders::customer_id)
                .and(customers::tenant_id.eq(orders::tenant_id))),
        )
        .filter(orders::tenant_id.eq(scope.id()))
        .filter(
            crate::domain::customers::ops::lower(customers::email)
                .eq(Some(sequence.recipient_email.to_lowercase())),
        )
        .filter(orders::ordered_at.ge(sequence.started_at))
        .count()
        .get_result(conn)
        .await?;
    Ok(orders > 0)
}

/// Whether a customer with this email opted out of (or unsubscribed from) marketing email.
async fn opted_out(conn: &mut AsyncPgConnection, scope: Tenant, email: &str) -> QueryResult<bool> {
    use communication_preferences as p;
    let refusals: i64 = p::table
        .inner_join(
            customers::table.on(customers::id
                .eq(p::customer_id)
                .and(customers::tenant_id.eq(p::tenant_id))),
        )
        .filter(p::tenant_id.eq(scope.id()))
        .filter(
            crate::domain::customers::ops::lower(customers::email).eq(Some(email.to_lowercase())),
        )
        .filter(p::channel.eq("email"))
        .filter(p::communication_type.eq("marketing"))
        .filter(p::opted_in.eq(false).or(p::unsubscribed_at.is_not_null()))
        .count()
        .get_result(conn)
        .await?;
    Ok(refusals > 0)
}

async fn record_sequence(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    sequence: &EmailSequence,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "email_sequence.changed",
        sequence.id,
        json!({ "status": sequence.status.as_str(), "segment": sequence.segment.as_str() }),
    )
    .await
}

/// At most this many allowed domains, and this much theme (serialised).
const MAX_DOMAINS: usize = 50;
const MAX_THEME_BYTES: usize = 8 * 1024;

/// Creates the tenant's testimonial widget (a new `wgt_` key; defaults for what `fields`
/// leaves out) or changes what `fields` gives. `rotate_key` gives an existing widget a
/// new key: the old one stops working at once (widget keys are looked up on every
/// request). Concurrent first calls create one widget.
pub async fn configure_widget(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    fields: WidgetFields,
    rotate_key: bool,
) -> OpResult<WidgetConfig> {
    use widget_configs as w;
    check_widget(&fields)?;
    let created = diesel::insert_into(w::table)
        .values((
            w::tenant_id.eq(scope.id()),
            w::api_key.eq(generate_widget_key()),
            fields.clone(),
        ))
        .on_conflict(w::tenant_id)
        .do_nothing()
        .returning(WidgetConfig::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    let (config, rotated) = match created {
        Some(config) => (config, false),
        None => {
            let new_key = rotate_key.then(generate_widget_key);
            let config = diesel::update(w::table.filter(w::tenant_id.eq(scope.id())))
                .set((
                    fields,
                    new_key.map(|key| w::api_key.eq(key)),
                    // Stamped by the trigger anyway; keeps the change non-empty.
                    w::updated_at.eq(diesel::dsl::now),
                ))
                .returning(WidgetConfig::as_returning())
                .get_result(conn)
                .await?;
            (config, rotate_key)
        }
    };
    events::record(
        conn,
        scope,
        "widget.configured",
        scope.id(),
        json!({ "isActive": config.is_active, "keyRotated": rotated }),
    )
    .await?;
    Ok(config)
}

fn check_widget(fields: &WidgetFields) -> OpResult<()> {
    let invalid = |field: &str, message: &str| {
        Err(user_error(
            UserErrorCode::Invalid,
            &["input", field],
            message,
        ))
    };
    if let Some(theme) = &fields.theme {
        check_json_object("theme", theme, MAX_THEME_BYTES)?;
    }
    if let Some(domains) = &fields.allowed_domains {
        if domains.len() > MAX_DOMAINS {
            return invalid("allowedDomains", "at most 50 allowed domains");
        }
        if !domains.iter().flatten().all(|d| is_domain(d)) {
            return invalid(
                "allowedDomains",
                "each allowed domain is a host name (a leading `*.` allows its subdomains)",
            );
        }
    }
    if fields
        .max_testimonials
        .is_some_and(|n| !(1..=100).contains(&n))
    {
        return invalid(
            "maxTestimonials",
            "maxTestimonials must be between 1 and 100",
        );
    }
    Ok(())
}

/// A lower-case host name, optionally `*.`-prefixed: dot-separated labels of letters,
/// digits and inner hyphens, at most 253 characters.
fn is_domain(domain: &str) -> bool {
    let host = domain.strip_prefix("*.").unwrap_or(domain);
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.len() <= 253 && host.split('.').all(label)
}

#[cfg(test)]
mod tests {
    use super::is_domain;

    #[test]
    fn allowed_domains_are_host_names() {
        for good in [
            "example.com",
            "*.example.com",
            "shop.example.co.uk",
            "localhost",
            "a-b.io",
        ] {
            assert!(is_domain(good), "{good}");
        }
        for bad in [
            "",
            "Example.com",
            "https://example.com",
            "example.com/path",
            "-a.com",
            "a..com",
            "*.",
            "ex ample.com",
            "*.*.example.com",
            "example.com:8080",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }
}
