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

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
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

use crate::db::schema::{lead_actions, lead_notes};

text_enum!(pub LeadActionType {
    Created => "created",
    Tagged => "tagged",
    Archived => "archived",
    Deleted => "deleted",
    Reactivated => "reactivated",
    Converted => "converted",
    Reverted => "reverted",
});

/// The full lead row, with its history arrays (seed 001 `lead_memory`).
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = lead_memory, check_for_backend(diesel::pg::Pg))]
pub struct LeadDetail {
    pub id: Uuid,
    pub tone_history: serde_json::Value,
    pub confidence_history: serde_json::Value,
    pub urgency_history: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = lead_actions, check_for_backend(diesel::pg::Pg))]
pub struct LeadAction {
    pub id: Uuid,
    pub lead_id: Uuid,
    pub action_type: LeadActionType,
    pub tag: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub conversion_outcome: Option<bool>,
    pub reversion_reason: Option<String>,
    pub performed_by: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = lead_notes, check_for_backend(diesel::pg::Pg))]
pub struct LeadNote {
    pub id: Uuid,
    pub lead_id: Uuid,
    pub note: String,
    pub performed_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
