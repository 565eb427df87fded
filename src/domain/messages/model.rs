use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::schema::{
    communication_log, communication_templates, email_events, email_templates,
};
use crate::domain::comms::model::{Channel, MessageStatus};
pub use crate::domain::customers::model::CommunicationType;

text_enum!(
    /// The purpose of a club communication template (seed 004).
    pub TemplateType {
    MonthlyStatus => "monthly_status",
    ExpirationWarning => "expiration_warning",
    Welcome => "welcome",
    Upgrade => "upgrade",
    Renewal => "renewal",
    PointsEarned => "points_earned",
    RewardRedeemed => "reward_redeemed",
    AppointmentReminder => "appointment_reminder",
    Custom => "custom",
});

impl TemplateType {
    /// The consent a message of this template needs.
    pub fn communication_type(self) -> CommunicationType {
        match self {
            TemplateType::MonthlyStatus => CommunicationType::MonthlyStatus,
            TemplateType::ExpirationWarning => CommunicationType::ExpirationWarning,
            TemplateType::Welcome
            | TemplateType::Upgrade
            | TemplateType::Renewal
            | TemplateType::PointsEarned
            | TemplateType::RewardRedeemed => CommunicationType::Loyalty,
            TemplateType::AppointmentReminder => CommunicationType::Transactional,
            TemplateType::Custom => CommunicationType::Marketing,
        }
    }
}

text_enum!(pub TemplateLanguage {
    En => "en",
    Fr => "fr",
});

/// A club communication template (seed 004 `communication_templates`), one per type and
/// channel.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = communication_templates, check_for_backend(diesel::pg::Pg))]
pub struct CommunicationTemplate {
    pub id: Uuid,
    pub template_type: TemplateType,
    pub channel: Channel,
    pub name: String,
    pub subject: Option<String>,
    pub html_content: Option<String>,
    pub text_content: String,
    pub variables: serde_json::Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `saveCommunicationTemplate` writes.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = communication_templates, treat_none_as_null = true)]
pub struct CommunicationTemplateFields {
    pub template_type: TemplateType,
    pub channel: Channel,
    pub name: String,
    pub subject: Option<String>,
    pub html_content: Option<String>,
    pub text_content: String,
    pub variables: serde_json::Value,
    pub is_active: bool,
}

/// An outreach email template (seed 001 `email_templates`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_templates, check_for_backend(diesel::pg::Pg))]
pub struct EmailTemplate {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub subject: String,
    pub html_content: String,
    pub plain_content: Option<String>,
    pub language: TemplateLanguage,
    pub category: Option<String>,
    pub variables: serde_json::Value,
    pub is_active: bool,
    pub usage_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `saveEmailTemplate` writes.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = email_templates, treat_none_as_null = true)]
pub struct EmailTemplateFields {
    pub name: String,
    pub description: Option<String>,
    pub subject: String,
    pub html_content: String,
    pub plain_content: Option<String>,
    pub language: TemplateLanguage,
    pub category: Option<String>,
    pub variables: serde_json::Value,
    pub is_active: bool,
}

/// One outgoing (or received) message and its delivery record (`communication_log`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = communication_log, check_for_backend(diesel::pg::Pg))]
pub struct Message {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub template_id: Option<Uuid>,
    pub email_template_id: Option<Uuid>,
    pub channel: Channel,
    pub direction: String,
    pub communication_type: CommunicationType,
    pub provider: Option<String>,
    pub recipient: String,
    pub subject: Option<String>,
    pub content: Option<String>,
    pub html_content: Option<String>,
    pub status: MessageStatus,
    pub provider_message_id: Option<String>,
    pub failure_code: Option<String>,
    pub error_message: Option<String>,
    pub attempts: i32,
    pub campaign_recipient_id: Option<Uuid>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A message as `deliver` queues it: already rendered.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = communication_log)]
pub struct NewMessage {
    pub id: Uuid,
    pub customer_id: Option<Uuid>,
    pub template_id: Option<Uuid>,
    pub email_template_id: Option<Uuid>,
    pub channel: Channel,
    pub communication_type: CommunicationType,
    pub recipient: String,
    pub subject: Option<String>,
    pub content: Option<String>,
    pub html_content: Option<String>,
    pub idempotency_key: Option<String>,
    pub campaign_recipient_id: Option<Uuid>,
    pub outreach_email_id: Option<Uuid>,
    pub email_sequence_id: Option<Uuid>,
    pub metadata: serde_json::Value,
}

/// One event of an email's life as a provider reported it (seed 000 `email_events`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_events, check_for_backend(diesel::pg::Pg))]
pub struct EmailEvent {
    pub id: Uuid,
    pub sequence_id: Option<Uuid>,
    pub communication_log_id: Option<Uuid>,
    pub recipient_email: String,
    pub email_type: String,
    pub template: Option<String>,
    pub status: String,
    pub provider_message_id: Option<String>,
    pub metadata: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

crate::created_row!(Message, CommunicationTemplate, EmailTemplate);
