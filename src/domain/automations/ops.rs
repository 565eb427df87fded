use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::{DemoSession, EmailSequence, SequenceStatus, Testimonial, WidgetConfig};
use crate::db::schema::{demo_sessions, email_sequences, testimonials, widget_configs};
use crate::db::Tenant;
use crate::error::AppResult;
use crate::graphql::connection::PageRequest;

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
