use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{contacts, demo_sessions, email_sequences, testimonials, widget_configs};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = testimonials, check_for_backend(diesel::pg::Pg))]
pub struct Testimonial {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub content: String,
    pub rating: Option<i32>,
    pub video_url: Option<String>,
    pub status: TestimonialStatus,
    pub published_at: Option<DateTime<Utc>>,
    pub linkedin_shared_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

text_enum!(pub TestimonialStatus {
    Draft => "draft",
    PendingReview => "pending_review",
    Published => "published",
    Rejected => "rejected",
});

/// Someone who gives testimonials (seed 000), with their LinkedIn consent.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contacts, check_for_backend(diesel::pg::Pg))]
pub struct Contact {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub linkedin_url: Option<String>,
    pub linkedin_consent: bool,
    pub linkedin_consent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

text_enum!(pub SequenceSegment {
    FrozenStarter => "frozen_starter",
    RejectedRequester => "rejected_requester",
    CollectorUnused => "collector_unused",
    FreeMaximizer => "free_maximizer",
});

text_enum!(pub SequenceStatus {
    Active => "active",
    Paused => "paused",
    Completed => "completed",
    Cancelled => "cancelled",
});

/// A re-engagement email sequence for one recipient.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_sequences, check_for_backend(diesel::pg::Pg))]
pub struct EmailSequence {
    pub id: Uuid,
    pub contact_id: Option<Uuid>,
    pub recipient_email: String,
    pub segment: SequenceSegment,
    pub status: SequenceStatus,
    pub current_step: i32,
    pub next_send_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A visitor's demo session; its token and IP hash are never selected.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = demo_sessions, check_for_backend(diesel::pg::Pg))]
pub struct DemoSession {
    pub id: Uuid,
    pub visitor_email: Option<String>,
    pub video_url: Option<String>,
    pub share_count: i32,
    pub converted: bool,
    pub converted_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// The testimonial widget's settings (one per tenant).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = widget_configs, check_for_backend(diesel::pg::Pg))]
pub struct WidgetConfig {
    pub api_key: String,
    pub theme: serde_json::Value,
    pub allowed_domains: Vec<Option<String>>,
    pub max_testimonials: i32,
    pub is_active: bool,
    pub updated_at: DateTime<Utc>,
}

/// What `configureWidget` changes (a field left `None` keeps its value, or its default
/// for a new widget).
#[derive(Debug, Clone, Default, AsChangeset, Insertable)]
#[diesel(table_name = widget_configs)]
pub struct WidgetFields {
    pub theme: Option<serde_json::Value>,
    pub allowed_domains: Option<Vec<Option<String>>>,
    pub max_testimonials: Option<i32>,
    pub is_active: Option<bool>,
}

crate::created_row!(EmailSequence, DemoSession, Contact, Testimonial);
