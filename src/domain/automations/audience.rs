//! Seed 000's audience: the contacts who give testimonials, their LinkedIn consent, and
//! the testimonials themselves, moderated before the widget shows them.
//!
//! A testimonial is written `pending_review`; moderation publishes it (stamping
//! `published_at`) or rejects it, once: anything else is `INVALID_TRANSITION`, also when
//! two moderators race (the row is locked). Sharing one on LinkedIn needs it published
//! and its contact's explicit consent (`setLinkedinConsent`, which stamps
//! `linkedin_consent_at`); it is shared once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use uuid::Uuid;

use super::model::{Contact, Testimonial, TestimonialStatus};
use crate::db::page::PageRequest;
use crate::db::schema::{contacts, testimonials};
use crate::db::Tenant;
use crate::domain::customers::ops::valid_email;
use crate::domain::{
    check_https_url, check_required_text, check_text, events, user_error, OpResult, UserErrorCode,
};

/// What `saveContact` writes.
#[derive(Debug, Clone)]
pub struct ContactFields {
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub linkedin_url: Option<String>,
    pub customer_id: Option<Uuid>,
}

/// The tenant's contacts, newest first.
pub async fn list_contacts(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Contact>> {
    crate::newest_first!(conn, scope, contacts, Contact, page)
}

/// Creates a contact (`id` none) or changes one; consent is not touched here.
pub async fn save_contact(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Option<Uuid>,
    fields: ContactFields,
) -> OpResult<Contact> {
    use contacts as c;
    check_required_text("name", &fields.name, 200)?;
    let email = fields.email.as_deref().map(|e| e.trim().to_lowercase());
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "email"],
            "not an email address",
        ));
    }
    check_text("company", fields.company.as_deref(), 200)?;
    check_text("jobTitle", fields.job_title.as_deref(), 200)?;
    check_https_url("linkedinUrl", fields.linkedin_url.as_deref(), 500)?;
    if let Some(customer) = fields.customer_id {
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
    let values = (
        c::name.eq(fields.name.trim()),
        c::email.eq(email),
        c::company.eq(fields.company),
        c::job_title.eq(fields.job_title),
        c::linkedin_url.eq(fields.linkedin_url),
        c::customer_id.eq(fields.customer_id),
    );
    let contact: Contact = match id {
        None => {
            diesel::insert_into(c::table)
                .values((c::tenant_id.eq(scope.id()), values))
                .returning(Contact::as_returning())
                .get_result(conn)
                .await?
        }
        Some(id) => {
            let _: Uuid = crate::tenant_row!(
                locked conn, scope, contacts, id, table::id, &["input", "id"], "no such contact"
            )?;
            diesel::update(
                c::table
                    .filter(c::tenant_id.eq(scope.id()))
                    .filter(c::id.eq(id)),
            )
            .set(values)
            .returning(Contact::as_returning())
            .get_result(conn)
            .await?
        }
    };
    events::record(
        conn,
        scope,
        "contact.saved",
        contact.id,
        json!({ "linkedinConsent": contact.linkedin_consent }),
    )
    .await?;
    Ok(contact)
}

/// Records a contact's LinkedIn consent (given: stamped now; withdrawn: cleared). Giving
/// it again keeps the first stamp.
pub async fn set_linkedin_consent(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    consent: bool,
) -> OpResult<Contact> {
    use contacts as c;
    let given: bool = crate::tenant_row!(
        locked conn, scope, contacts, id, table::linkedin_consent, &["input", "contactId"], "no such contact"
    )?;
    let stamp = match (consent, given) {
        (true, true) => None,
        (true, false) => Some(Some(Utc::now())),
        (false, _) => Some(None),
    };
    let target = c::table
        .filter(c::tenant_id.eq(scope.id()))
        .filter(c::id.eq(id));
    let contact: Contact = match stamp {
        None => target.select(Contact::as_select()).first(conn).await?,
        Some(at) => {
            diesel::update(target)
                .set((
                    c::linkedin_consent.eq(consent),
                    c::linkedin_consent_at.eq(at),
                ))
                .returning(Contact::as_returning())
                .get_result(conn)
                .await?
        }
    };
    events::record(
        conn,
        scope,
        "contact.consent_changed",
        contact.id,
        json!({ "linkedinConsent": contact.linkedin_consent, "at": contact.linkedin_consent_at }),
    )
    .await?;
    Ok(contact)
}

/// The tenant's testimonials, optionally in one status, newest first.
pub async fn list_testimonials(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    status: Option<TestimonialStatus>,
    page: &PageRequest<DateTime<Utc>>,
) -> QueryResult<Vec<Testimonial>> {
    crate::newest_first!(
        conn,
        scope,
        testimonials,
        Testimonial,
        page,
        status = status
    )
}

/// A contact's testimonial, waiting for review.
pub async fn create_testimonial(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    contact: Uuid,
    content: &str,
    rating: Option<i32>,
    video_url: Option<String>,
) -> OpResult<Testimonial> {
    use testimonials as t;
    check_required_text("content", content, 5000)?;
    if rating.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(user_error(
            UserErrorCode::Invalid,
            &["input", "rating"],
            "a rating is 1 to 5 stars",
        ));
    }
    check_https_url("videoUrl", video_url.as_deref(), 2048)?;
    let _: Uuid = crate::tenant_row!(
        conn,
        scope,
        contacts,
        contact,
        table::id,
        &["input", "contactId"],
        "no such contact"
    )?;
    let testimonial: Testimonial = diesel::insert_into(t::table)
        .values((
            t::tenant_id.eq(scope.id()),
            t::contact_id.eq(contact),
            t::content.eq(content.trim()),
            t::rating.eq(rating),
            t::video_url.eq(video_url),
            t::status.eq(TestimonialStatus::PendingReview),
        ))
        .returning(Testimonial::as_returning())
        .get_result(conn)
        .await?;
    record(conn, scope, &testimonial).await?;
    Ok(testimonial)
}

/// Publishes (`publish`) or rejects a testimonial waiting for review.
pub async fn moderate_testimonial(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
    publish: bool,
) -> OpResult<Testimonial> {
    use testimonials as t;
    let status: TestimonialStatus = crate::tenant_row!(
        locked conn, scope, testimonials, id, table::status, &["input", "id"], "no such testimonial"
    )?;
    if status != TestimonialStatus::PendingReview {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            &format!(
                "only a testimonial pending review is moderated (this one is {})",
                status.as_str()
            ),
        ));
    }
    let (next, published_at) = match publish {
        true => (TestimonialStatus::Published, Some(Utc::now())),
        false => (TestimonialStatus::Rejected, None),
    };
    let testimonial: Testimonial = diesel::update(
        t::table
            .filter(t::tenant_id.eq(scope.id()))
            .filter(t::id.eq(id)),
    )
    .set((t::status.eq(next), t::published_at.eq(published_at)))
    .returning(Testimonial::as_returning())
    .get_result(conn)
    .await?;
    record(conn, scope, &testimonial).await?;
    Ok(testimonial)
}

/// Marks a published testimonial shared on LinkedIn, once; refused (`NOT_ELIGIBLE`)
/// unless its contact consented.
pub async fn share_on_linkedin(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    id: Uuid,
) -> OpResult<Testimonial> {
    use testimonials as t;
    let (status, contact, shared): (TestimonialStatus, Uuid, Option<DateTime<Utc>>) = crate::tenant_row!(
        locked conn, scope, testimonials, id,
        (table::status, table::contact_id, table::linkedin_shared_at),
        &["input", "id"], "no such testimonial"
    )?;
    if status != TestimonialStatus::Published {
        return Err(user_error(
            UserErrorCode::InvalidTransition,
            &["input", "id"],
            "only a published testimonial is shared",
        ));
    }
    let consent: bool = contacts::table
        .filter(contacts::tenant_id.eq(scope.id()))
        .filter(contacts::id.eq(contact))
        .select(contacts::linkedin_consent)
        .first(conn)
        .await?;
    if !consent {
        return Err(user_error(
            UserErrorCode::NotEligible,
            &["input", "id"],
            "its contact has not consented to sharing on LinkedIn",
        ));
    }
    let target = t::table
        .filter(t::tenant_id.eq(scope.id()))
        .filter(t::id.eq(id));
    if shared.is_some() {
        return Ok(target.select(Testimonial::as_select()).first(conn).await?);
    }
    let testimonial: Testimonial = diesel::update(target)
        .set(t::linkedin_shared_at.eq(Some(Utc::now())))
        .returning(Testimonial::as_returning())
        .get_result(conn)
        .await?;
    record(conn, scope, &testimonial).await?;
    Ok(testimonial)
}

async fn record(
    conn: &mut AsyncPgConnection,
    scope: Tenant,
    testimonial: &Testimonial,
) -> QueryResult<()> {
    events::record(
        conn,
        scope,
        "testimonial.changed",
        testimonial.id,
        json!({ "status": testimonial.status.as_str(), "contactId": testimonial.contact_id,
                "linkedinSharedAt": testimonial.linkedin_shared_at }),
    )
    .await
}
