use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::testimonials;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = testimonials, check_for_backend(diesel::pg::Pg))]
pub struct Testimonial {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub content: String,
    pub rating: Option<i32>,
    pub video_url: Option<String>,
    pub status: String,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}
