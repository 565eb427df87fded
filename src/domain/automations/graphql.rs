use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use scoped_futures::ScopedFutureExt;

use super::{model, ops};
use crate::auth::Access;
use crate::error::AppResult;
use crate::graphql::connection::{Cursor, PageRequest};
use crate::graphql::context::request_context;

pub struct Testimonial(pub model::Testimonial);

#[Object]
impl Testimonial {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn content(&self) -> &str {
        &self.0.content
    }
    /// 1 to 5 stars.
    async fn rating(&self) -> Option<i32> {
        self.0.rating
    }
    async fn video_url(&self) -> Option<&str> {
        self.0.video_url.as_deref()
    }
    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }
}

#[derive(Default)]
pub struct AutomationsQuery;

#[Object]
impl AutomationsQuery {
    /// Published testimonials, newest first. Widget keys (`wgt_…`) may read this and
    /// nothing else.
    #[graphql(
        guard = "Access::Widget",
        complexity = "first.unwrap_or(20).max(0) as usize * child_complexity"
    )]
    async fn published_testimonials(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Connection<Cursor<DateTime<Utc>>, Testimonial>> {
        let request = request_context(ctx)?;
        let page = PageRequest::new(first, after)?;
        let rows = request
            .db
            .query(|conn, scope| {
                let page = &page;
                async move { ops::published_testimonials(conn, scope, page).await }.scope_boxed()
            })
            .await?;
        Ok(page.into_connection(
            rows,
            |t| Cursor {
                key: t.published_at.unwrap_or(t.created_at),
                id: t.id,
            },
            Testimonial,
        ))
    }
}
