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
use crate::db::schema::{demo_sessions, email_sequences, testimonials, widget_configs};
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
        .filter(testimonials::status.eq("published"))
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
    use email_sequences as e;
    let mut query = e::table
        .filter(e::tenant_id.eq(scope.id()))
        .select(EmailSequence::as_select())
        .limit(page.limit())
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(e::status.eq(status));
    }
    crate::keyset!(query, page, e::created_at, e::id, desc)
        .load(conn)
        .await
}

/// Demo sessions, newest first.
pub async fn list_demo_sessions(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<DemoSession>> {
    use demo_sessions as d;
    let query = d::table
        .filter(d::tenant_id.eq(scope.id()))
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
