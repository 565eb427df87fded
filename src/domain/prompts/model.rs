use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{prompt_ab_tests, prompt_evolution, prompt_registry};

text_enum!(pub AbTestStatus {
    Draft => "draft",
    Running => "running",
    Completed => "completed",
    Cancelled => "cancelled",
});

/// What an update of a variant sets (`None`: left as it is).
#[derive(Debug, Default, PartialEq, AsChangeset)]
#[diesel(table_name = prompt_registry)]
pub struct VariantChanges {
    pub prompt_text: Option<String>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prompt_registry, check_for_backend(diesel::pg::Pg))]
pub struct PromptVariant {
    pub id: Uuid,
    pub prompt_name: String,
    pub variant_version: i32,
    pub variant_id: String,
    pub prompt_text: String,
    pub language: String,
    pub score: Option<BigDecimal>,
    pub usage_count: i32,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prompt_ab_tests, check_for_backend(diesel::pg::Pg))]
pub struct AbTest {
    pub id: Uuid,
    pub test_name: String,
    pub prompt_name: String,
    pub control_variant_id: Uuid,
    pub treatment_variant_id: Uuid,
    pub control_traffic_percentage: BigDecimal,
    pub treatment_traffic_percentage: BigDecimal,
    pub min_sample_size: i32,
    pub max_duration_days: i32,
    pub significance_level: BigDecimal,
    pub status: AbTestStatus,
    pub control_metrics: serde_json::Value,
    pub treatment_metrics: serde_json::Value,
    pub statistical_significance: Option<BigDecimal>,
    pub winner_variant_id: Option<Uuid>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = prompt_evolution, check_for_backend(diesel::pg::Pg))]
pub struct Evolution {
    pub id: Uuid,
    pub parent_prompt_id: Uuid,
    pub child_prompt_id: Uuid,
    pub evolution_type: String,
    pub evolution_strategy: Option<String>,
    pub parent_performance: serde_json::Value,
    pub child_performance: serde_json::Value,
    pub improvement_score: Option<BigDecimal>,
    pub evolved_at: DateTime<Utc>,
}

crate::created_row!(PromptVariant, AbTest);
