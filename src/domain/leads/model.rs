use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::lead_memory;

text_enum!(pub Urgency {
    High => "high",
    Medium => "medium",
    Low => "low",
});

text_enum!(pub Language {
    En => "en",
    Fr => "fr",
});

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = lead_memory, check_for_backend(diesel::pg::Pg))]
pub struct Lead {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub message: String,
    pub ai_summary: Option<String>,
    pub intent: Option<String>,
    pub tone: Option<String>,
    pub urgency: Option<Urgency>,
    pub confidence_score: Option<BigDecimal>,
    pub archived: bool,
    pub deleted: bool,
    pub current_tag: Option<String>,
    pub language: Language,
    pub customer_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}
