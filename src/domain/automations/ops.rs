use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::model::Testimonial;
use crate::db::schema::testimonials;
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
        .order((testimonials::published_at.desc(), testimonials::id.desc()))
        .limit(page.limit())
        .into_boxed();
    query = crate::after_cursor!(
        query,
        page,
        testimonials::published_at,
        testimonials::id,
        desc
    );
    Ok(query.load(conn).await?)
}
